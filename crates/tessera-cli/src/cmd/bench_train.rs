//! `tessera bench lora` and `tessera bench perturb`: argument parsing and printing around
//! `tessera_lm::bench_train` (each LoRA case runs in a fresh worker process so its peak RSS is its own).
use super::lm::{load_model, wikitext_test, DEFAULT_MODEL};
use super::{print_json, Ctx};
use clap::Args;
use tessera_lm::bench_train::{self, LoraBenchConfig, LoraCaseResult};

/// `tessera bench lora` arguments.
#[derive(Args)]
pub struct BenchLoraArgs {
    /// Model name or path.
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Tokens per step (the batch is one sequence of this length).
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// LoRA rank (alpha = 2·rank).
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// Steps per case (median time reported; memory is the peak over all of them).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Comma-separated cases (default: all): qv_trainable, qv_frozen, all_frozen, all_lora_sparse50,
    /// all_sparselora_sparse50.
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,
    /// Internal: measure one case in this process and print its JSON.
    #[arg(long, hide = true)]
    pub worker: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn bench_tokens(m: &tessera_lm::Llama, n: usize) -> anyhow::Result<Vec<u32>> {
    let text = std::fs::read_to_string(wikitext_test()?)?;
    let cut = text
        .char_indices()
        .nth(20_000)
        .map_or(text.len(), |(i, _)| i);
    let ids = m.tokenizer()?.encode(&text[..cut])?;
    if ids.len() < n {
        anyhow::bail!("the text has only {} tokens, {n} asked for", ids.len());
    }
    Ok(ids[..n].to_vec())
}

/// Runs `tessera bench lora`.
pub fn bench_lora(ctx: &Ctx, a: BenchLoraArgs) -> anyhow::Result<()> {
    if a.tokens < 2 || a.rank == 0 {
        anyhow::bail!("--tokens must be at least 2 and --rank at least 1");
    }
    if let Some(name) = &a.worker {
        let case = bench_train::lora_case(name)?;
        let mut m = load_model(ctx, &a.model)?;
        let toks = bench_tokens(&m, a.tokens + 1)?;
        let r = bench_train::run_lora_case(&mut m, &toks, &case, a.rank, a.reps)?;
        print_json(&serde_json::to_value(&r)?);
        return Ok(());
    }
    let cfg = LoraBenchConfig {
        model: a.model.clone(),
        tokens: a.tokens,
        rank: a.rank,
        reps: a.reps,
        cases: a.cases.clone(),
    };
    let exe = tessera_core::worker::current_exe()?;
    let mut spawn = |case: &bench_train::LoraCase| -> tessera_lm::Result<LoraCaseResult> {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["bench", "lora", "--json", "--worker", &case.name])
            .args(["--tokens", &a.tokens.to_string()])
            .args(["--rank", &a.rank.to_string(), "--reps", &a.reps.to_string()])
            .args(ctx.offline.then_some("--offline"))
            .arg(&a.model);
        Ok(tessera_core::worker::run_json(&mut cmd, &case.name)?)
    };
    let rep = bench_train::lora_bench(&cfg, &mut spawn)?;
    if a.json {
        print_json(&serde_json::to_value(&rep)?);
        return Ok(());
    }
    println!(
        "LoRA r={}, {} tokens, forward + backward (time, peak heap, peak RSS growth):",
        a.rank, a.tokens
    );
    for (name, r) in &rep.cases {
        println!(
            "  {name:<26} {:>6.2} s  {:>8.1} MiB heap  {:>8.1} MiB RSS  ({:.2}x time, {:.2}x heap vs qv_frozen)",
            r.seconds,
            r.peak_heap_bytes as f64 / 1048576.0,
            r.peak_extra_mb.unwrap_or(f64::NAN),
            rep.seconds_vs_qv_frozen.get(name).copied().unwrap_or(f64::NAN),
            rep.heap_vs_qv_frozen.get(name).copied().unwrap_or(f64::NAN),
        );
    }
    if let (Some(s), Some(h)) = (rep.sparselora_vs_lora_seconds, rep.sparselora_vs_lora_heap) {
        println!("  SparseLoRA vs LoRA on the 50%-sparse model: {s:.2}x time, {h:.2}x heap");
    }
    Ok(())
}

/// `tessera bench perturb` arguments.
#[derive(Args)]
pub struct BenchPerturbArgs {
    /// Model name or path.
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Tokens of the forward pass compared against.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// Repetitions (medians reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera bench perturb`.
pub fn bench_perturb(ctx: &Ctx, a: BenchPerturbArgs) -> anyhow::Result<()> {
    if a.tokens == 0 || a.reps == 0 {
        anyhow::bail!("--tokens and --reps must be at least 1");
    }
    let m = load_model(ctx, &a.model)?;
    let toks = bench_tokens(&m, a.tokens)?;
    let r = bench_train::perturb_bench(&m, &toks, a.reps)?;
    if a.json {
        print_json(&serde_json::to_value(&r)?);
        return Ok(());
    }
    println!(
        "in-place perturbation of {} parameters: {:.3} s vs forward of {} tokens {:.3} s ({:.2}x); \
         peak heap growth {:.2} MiB = {:.3}% of the weights (forward: {:.1} MiB){}; restore error {:.1e}",
        r.parameters,
        r.perturb_seconds,
        r.forward_tokens,
        r.forward_seconds,
        r.perturb_vs_forward,
        r.perturb_peak_heap_bytes as f64 / 1048576.0,
        100.0 * r.perturb_heap_fraction,
        r.forward_peak_heap_bytes as f64 / 1048576.0,
        if r.heap_counted { "" } else { " [heap not counted]" },
        r.restore_max_abs_error,
    );
    Ok(())
}
