//! `tessera info|generate|perplexity`, `tessera bench decode` and the runtime's tour section.
use super::{print_json, Ctx};
use anyhow::Context as _;
use clap::Args;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use tessera_core::{assets, report::Report};
use tessera_lm::{
    generate as lm_generate, perplexity as ppl, speed, ChatMessage, Llama, SamplingParams,
};

/// Default model for every command that takes one.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

/// Resolves a model name or path (fetching a known asset unless offline) and loads it.
pub fn load_model(ctx: &Ctx, spec: &str) -> anyhow::Result<Llama> {
    let path = assets::resolve_model(spec, ctx.offline)?;
    Ok(tessera_lm::load(&path)?)
}

/// `tessera info` arguments.
#[derive(Args)]
pub struct InfoArgs {
    /// Model name (e.g. smollm2-135m) or path to a GGUF file / safetensors directory.
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera info`.
pub fn info(ctx: &Ctx, a: InfoArgs) -> anyhow::Result<()> {
    let path = assets::resolve_model(&a.model, ctx.offline)?;
    let m = tessera_lm::load(&path)?;
    let v = serde_json::json!({
        "path": path,
        "config": m.config,
        "parameters": m.num_params(),
        "tied_embeddings": m.is_tied(),
        "f32_bytes": m.num_params() * 4,
        "tokenizer_vocab": m.tokenizer.as_ref().map(|t| t.vocab_size()),
        "eos_ids": m.tokenizer.as_ref().map(|t| t.eos_ids.clone()),
        "default_system_prompt": m.tokenizer.as_ref().and_then(|t| t.template.default_system.clone()),
    });
    if a.json {
        print_json(&v);
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

/// `tessera generate` arguments.
#[derive(Args)]
pub struct GenerateArgs {
    /// Model name or path.
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// The prompt (repeat for a batch of prompts).
    #[arg(long, required = true)]
    pub prompt: Vec<String>,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// System message (with --chat); default: the template's own.
    #[arg(long)]
    pub system: Option<String>,
    /// Most new tokens.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Top-k filter (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus filter (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Stop strings.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// With --json: also record the N most likely tokens at every step (`generation.top_logprobs`, 0–20).
    #[arg(long, default_value_t = 0)]
    pub top_logprobs: usize,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

fn prompt_ids(m: &Llama, text: &str, chat: bool, system: Option<&str>) -> anyhow::Result<Vec<u32>> {
    let tok = m.tokenizer()?;
    Ok(if chat {
        let mut msgs = vec![];
        if let Some(s) = system {
            msgs.push(ChatMessage::new("system", s));
        }
        msgs.push(ChatMessage::new("user", text));
        tok.encode_chat(&msgs)?
    } else {
        tok.encode(text)?
    })
}

/// Runs `tessera generate`.
pub fn generate(ctx: &Ctx, a: GenerateArgs) -> anyhow::Result<()> {
    let p = SamplingParams {
        max_tokens: a.max_tokens,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        stop: a.stop.clone(),
        seed: a.seed,
        top_logprobs: a.top_logprobs,
    };
    tessera_lm::limits::check_sampling(&p)?;
    let m = load_model(ctx, &a.model)?;
    let prompts: Vec<Vec<u32>> = a
        .prompt
        .iter()
        .map(|t| prompt_ids(&m, t, a.chat, a.system.as_deref()))
        .collect::<anyhow::Result<_>>()?;
    for q in &prompts {
        tessera_lm::limits::check_generation(m.config.max_position_embeddings, q.len(), &p)?;
    }
    let t0 = std::time::Instant::now();
    let gens = if prompts.len() == 1 {
        let mut out = std::io::stdout();
        let stream = !a.json;
        let g = lm_generate(&m, &prompts[0], &p, &mut |s| {
            if stream {
                let _ = out.write_all(s.as_bytes());
                let _ = out.flush();
            }
            true
        })?;
        if stream {
            println!();
        }
        vec![g]
    } else {
        let gs = tessera_lm::generate_batch(&m, &prompts, &p)?;
        if !a.json {
            for (i, g) in gs.iter().enumerate() {
                println!("[{i}] {}", g.text);
            }
        }
        gs
    };
    let secs = t0.elapsed().as_secs_f64();
    if a.json {
        let n: usize = gens.iter().map(|g| g.tokens.len()).sum();
        let v = if gens.len() == 1 {
            serde_json::json!({ "text": gens[0].text, "generation": gens[0], "seconds": secs, "tokens_per_s": n as f64 / secs })
        } else {
            serde_json::json!({ "generations": gens, "seconds": secs, "tokens_per_s": n as f64 / secs })
        };
        print_json(&v);
    }
    Ok(())
}

/// `tessera perplexity` arguments.
#[derive(Args)]
pub struct PerplexityArgs {
    /// Model name or path.
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Text file (default: WikiText-2 raw test).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Window length in tokens.
    #[arg(long, default_value_t = 1024)]
    pub window: usize,
    /// Stride in tokens.
    #[arg(long, default_value_t = 512)]
    pub stride: usize,
    /// Only the first N tokens of the text (0 = all).
    #[arg(long, default_value_t = 0)]
    pub max_tokens: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The default perplexity text.
pub fn wikitext_test() -> anyhow::Result<PathBuf> {
    Ok(assets::resolve_data("wikitext2/raw/wiki.test.raw")?)
}

fn run_perplexity(
    m: &Llama,
    text_path: &Path,
    window: usize,
    stride: usize,
    max_tokens: usize,
) -> anyhow::Result<ppl::PerplexityReport> {
    let text = tessera_core::fsx::read_to_string(text_path)?;
    let ids =
        ppl::tokenize_document(m, &text).with_context(|| format!("{}", text_path.display()))?;
    tessera_lm::limits::check_perplexity(m.config.max_position_embeddings, window, stride)?;
    let total = if max_tokens > 0 {
        ids.len().min(max_tokens)
    } else {
        ids.len()
    };
    let windows = tessera_lm::limits::perplexity_windows(total, window, stride);
    let pb = tessera_core::progress::bar(windows as u64, "perplexity");
    let r = ppl::perplexity(m, &ids, window, stride, max_tokens, &mut |d, _| {
        pb.set_position(d as u64)
    })
    .with_context(|| format!("{}", text_path.display()))?;
    pb.finish_and_clear();
    Ok(r)
}

/// Runs `tessera perplexity`.
pub fn perplexity(ctx: &Ctx, a: PerplexityArgs) -> anyhow::Result<()> {
    tessera_lm::limits::check_perplexity(usize::MAX, a.window, a.stride)?;
    let text = match a.text {
        Some(t) => t,
        None => wikitext_test()?,
    };
    let m = load_model(ctx, &a.model)?;
    let t0 = std::time::Instant::now();
    let r = run_perplexity(&m, &text, a.window, a.stride, a.max_tokens)?;
    let mut v = serde_json::to_value(&r)?;
    v["text"] = serde_json::json!(text);
    v["seconds"] = serde_json::json!(t0.elapsed().as_secs_f64());
    if a.json {
        print_json(&v);
    } else {
        println!(
            "perplexity {:.4} over {} scored tokens ({} windows of {}, stride {})",
            r.perplexity, r.scored_tokens, r.windows, r.window, r.stride
        );
    }
    Ok(())
}

/// `tessera bench decode` arguments.
#[derive(Args)]
pub struct BenchDecodeArgs {
    /// Model name or path (a GGUF file for the llama.cpp comparison).
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Threads for every engine.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Greedy decode steps.
    #[arg(long, default_value_t = 63)]
    pub steps: usize,
    /// Python interpreter with llama-cpp-python.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Internal: run one engine in this process and print its JSON.
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The benchmark prompt (37 tokens with SmolLM2's tokenizer).
pub const BENCH_PROMPT: &str = "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined movable metal type, oil-based inks and a wooden hand press into a system that could print books quickly";

/// Runs `tessera bench decode`: our f32 runtime and llama.cpp (f32 GGUF written by us, and the original file),
/// each in its own process so peak memory is per engine.
pub fn bench_decode(ctx: &Ctx, a: BenchDecodeArgs) -> anyhow::Result<()> {
    let path = assets::resolve_model(&a.model, ctx.offline)?;
    if a.worker {
        let m = tessera_lm::load(&path)?;
        let ids = m.tokenizer()?.encode(BENCH_PROMPT)?;
        let s = speed::measure_decode(&m, &ids, a.steps)?;
        let mut v = serde_json::to_value(&s)?;
        v["prompt_ids"] = serde_json::json!(ids);
        print_json(&v);
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let ours = std::process::Command::new(&exe)
        .args([
            "bench",
            "decode",
            "--worker",
            "--json",
            "--steps",
            &a.steps.to_string(),
        ])
        .arg(&path)
        .env("RAYON_NUM_THREADS", a.threads.to_string())
        .output()?;
    if !ours.status.success() {
        anyhow::bail!(
            "tessera worker failed: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
    }
    let ours: serde_json::Value = serde_json::from_slice(&ours.stdout).context("worker output")?;
    let ids = ours["prompt_ids"].clone();
    let mut rows = vec![("tessera f32".to_string(), ours.clone())];
    let is_gguf = path.extension().is_some_and(|e| e == "gguf");
    if is_gguf {
        let f32_path = assets::home().join("bench").join(format!(
            "{}.f32.gguf",
            path.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
        ));
        if !f32_path.exists() {
            eprintln!("tessera: writing f32 GGUF {}", f32_path.display());
            tessera_lm::export::gguf_to_f32(&path, &f32_path)?;
        }
        let script = std::env::temp_dir().join("tessera_llama_cpp_decode.py");
        tessera_core::fsx::write_atomic(
            &script,
            include_str!("../../../tessera-lm/bench/llama_cpp_decode.py").as_bytes(),
        )?;
        for (label, p) in [("llama.cpp f32", &f32_path), ("llama.cpp original", &path)] {
            let job = serde_json::json!({ "model": p, "prompt_ids": ids, "steps": a.steps, "threads": a.threads });
            let out = std::process::Command::new(&a.python)
                .arg(&script)
                .arg(job.to_string())
                .output();
            let v = match out {
                Ok(o) if o.status.success() => serde_json::from_slice(
                    o.stdout
                        .trim_ascii_end()
                        .rsplit(|&b| b == b'\n')
                        .next()
                        .unwrap_or(b"{}"),
                )
                .unwrap_or_else(|_| serde_json::json!({ "skipped": "unparsable output" })),
                Ok(o) => {
                    serde_json::json!({ "skipped": format!("failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")) })
                }
                Err(e) => serde_json::json!({ "skipped": format!("{}: {e}", a.python) }),
            };
            rows.push((label.to_string(), v));
        }
    }
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64();
    let base = rows
        .iter()
        .find(|r| r.0 == "llama.cpp f32")
        .map(|r| r.1.clone());
    let ratio = |k: &str| base.as_ref().and_then(|b| Some(f(&ours, k)? / f(b, k)?));
    if a.json {
        let engines: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(l, v)| {
                let mut v = v.clone();
                if let Some(o) = v.as_object_mut() {
                    o.remove("prompt_ids");
                }
                (l.clone(), v)
            })
            .collect();
        print_json(&serde_json::json!({
            "model": path, "threads": a.threads, "prompt_tokens": ids.as_array().map(|a| a.len()), "steps": a.steps,
            "engines": engines,
            "decode_ratio_vs_llama_cpp_f32": ratio("decode_tokens_per_s"),
            "prompt_ratio_vs_llama_cpp_f32": ratio("prompt_tokens_per_s"),
        }));
    } else {
        println!(
            "model {}  threads {}  prompt {} tokens  decode {} steps",
            path.display(),
            a.threads,
            ids.as_array().map_or(0, |a| a.len()),
            a.steps
        );
        println!(
            "{:<20} {:>12} {:>12} {:>10}",
            "engine", "prompt tok/s", "decode tok/s", "peak MiB"
        );
        for (l, v) in &rows {
            if let Some(s) = v.get("skipped") {
                println!("{l:<20} skipped ({})", s.as_str().unwrap_or(""));
            } else {
                println!(
                    "{l:<20} {:>12.1} {:>12.1} {:>10.0}",
                    f(v, "prompt_tokens_per_s").unwrap_or(0.0),
                    f(v, "decode_tokens_per_s").unwrap_or(0.0),
                    f(v, "peak_rss_mb").unwrap_or(0.0)
                );
            }
        }
        match (ratio("decode_tokens_per_s"), ratio("prompt_tokens_per_s")) {
            (Some(d), Some(p)) => println!("ratio vs llama.cpp f32: decode {d:.2}x (target >= 0.8), prompt {p:.2}x (target >= 0.5)"),
            _ => println!("ratio vs llama.cpp f32: skipped"),
        }
    }
    Ok(())
}

/// The tour's runtime section: a chat sample, perplexity on the start of WikiText-2 test, and speed.
pub fn tour(
    ctx: &Ctx,
    dir: &tessera_core::record::RunDir,
) -> anyhow::Result<Option<crate::tour::Section>> {
    let mut m = load_model(ctx, DEFAULT_MODEL)?;
    let question = "What is the capital of France?";
    let ids = prompt_ids(&m, question, true, None)?;
    let g = lm_generate(
        &m,
        &ids,
        &SamplingParams {
            max_tokens: 48,
            ..Default::default()
        },
        &mut |_| true,
    )?;
    let text = wikitext_test()?;
    let r = run_perplexity(&m, &text, 1024, 512, 2048)?;
    let bench_ids = m.tokenizer()?.encode(BENCH_PROMPT)?;
    let s = speed::measure_decode(&m, &bench_ids, 63)?;
    // One LoRA training step each way (B starts at zero, so the adapters do not change the model).
    m.add_lora_qv(8, 16.0)?;
    let wiki = std::fs::read_to_string(&text)?;
    let toks = m.tokenizer()?.encode(&wiki[..wiki.len().min(4000)])?;
    let toks = &toks[..toks.len().min(129)];
    let lora: Vec<speed::StepCost> = [false, true]
        .into_iter()
        .map(|freeze| speed::train_step_cost(&m, toks, freeze))
        .collect::<Result<_, _>>()?;
    let json = serde_json::json!({
        "model": DEFAULT_MODEL, "parameters": m.num_params(),
        "sample": { "prompt": question, "completion": g.text },
        "perplexity_first_2048_tokens": r, "speed": s, "lora_step": lora,
    });
    dir.write_json("lm.json", &json)?;
    let mut rep = Report::new("LM runtime (SmolLM2-135M-Instruct, f32)");
    rep.para(&format!(
        "{} parameters, loaded from the Q4_1 GGUF and dequantized to f32.",
        m.num_params()
    ));
    rep.para(&format!(
        "**Chat sample** (greedy): *{question}* → {}",
        g.text.trim()
    ));
    rep.table(
        &["measure", "value"],
        &[
            vec![
                "perplexity, WikiText-2 test, first 2048 tokens (window 1024, stride 512)".into(),
                format!("{:.3}", r.perplexity),
            ],
            vec![
                "prompt processing (tok/s)".into(),
                format!("{:.1}", s.prompt_tokens_per_s),
            ],
            vec![
                "decode (tok/s)".into(),
                format!("{:.1}", s.decode_tokens_per_s),
            ],
            vec![
                "peak RSS (MiB)".into(),
                format!("{:.0}", s.peak_rss_mb.unwrap_or(0.0)),
            ],
            vec![
                format!(
                    "LoRA step (r = 8 on q, v; {} tokens), base trainable: seconds / tensors with a gradient",
                    toks.len() - 1
                ),
                format!("{:.2} / {}", lora[0].seconds, lora[0].gradients),
            ],
            vec![
                "LoRA step, base frozen (`freeze_base`): seconds / tensors with a gradient".into(),
                format!("{:.2} / {}", lora[1].seconds, lora[1].gradients),
            ],
        ],
    );
    rep.para("Full-text perplexity, the llama.cpp comparison and LoRA-step memory: `tessera perplexity`, `tessera bench decode` and `tessera bench lora`.");
    Ok(Some(crate::tour::Section {
        title: "lm".into(),
        report: rep,
        json,
    }))
}

/// `tessera bench lora` arguments (defined with the training benchmarks).
pub use super::bench_train::BenchLoraArgs;

/// Runs `tessera bench lora` (`tessera_lm::bench_train` through `cmd/bench_train.rs`).
pub fn bench_lora(ctx: &Ctx, a: BenchLoraArgs) -> anyhow::Result<()> {
    super::bench_train::bench_lora(ctx, a)
}
