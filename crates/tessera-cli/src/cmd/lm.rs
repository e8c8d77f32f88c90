//! `tessera info|generate|perplexity`, `tessera bench decode|lora`: argument parsing and printing; the work is in
//! `tessera-lm` (the tour section is `tessera_lm::tour::tour`).
use super::{emit, print_json, Ctx};
use clap::Args;
use std::io::Write as _;
use std::path::PathBuf;
use tessera_core::assets;
use tessera_lm::{commands, speed, Llama, LoadOptions, SamplingParams, WeightDtype};

/// Default model for every command that takes one.
pub const DEFAULT_MODEL: &str = tessera_lm::tour::TOUR_MODEL;

/// Resolves a model name or path (fetching a known asset unless offline) and loads it.
pub fn load_model(ctx: &Ctx, spec: &str) -> anyhow::Result<Llama> {
    let path = assets::resolve_model(spec, ctx.offline)?;
    Ok(tessera_lm::load(&path)?)
}

/// Resolves and loads a model for inference in the weight representation `dtype` (`--dtype`).
pub fn load_model_with(ctx: &Ctx, spec: &str, dtype: WeightDtype) -> anyhow::Result<Llama> {
    let path = assets::resolve_model(spec, ctx.offline)?;
    Ok(tessera_lm::load_with(&path, &LoadOptions { dtype })?)
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
    let mut v = serde_json::to_value(commands::model_info(&path, &m))?;
    v["sparsity"] = super::prune::info_sparsity(&path, &m)?;
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
    /// Weight representation: f32, q8_0, file (the file's own blocks; sparse for a pruned dir) or sparse.
    #[arg(long, default_value = "file")]
    pub dtype: WeightDtype,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Skip feed-forward blocks while decoding (FFN-SkipLLM, budget 25%; `generation.hook` reports the skipped
    /// fraction).
    #[arg(long)]
    pub ffn_skip: bool,
    /// With --ffn-skip: the cosine threshold.
    #[arg(long, requires = "ffn_skip", allow_negative_numbers = true, default_value_t = tessera_skip::ffn_skip::DEFAULT_THRESHOLD)]
    pub threshold: f64,
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
    let m = load_model_with(ctx, &a.model, a.dtype)?;
    let prompts: Vec<Vec<u32>> = a
        .prompt
        .iter()
        .map(|t| commands::prompt_ids(&m, t, a.chat, a.system.as_deref()))
        .collect::<Result<_, _>>()?;
    let stream = !a.json && prompts.len() == 1;
    let mut out = std::io::stdout();
    let mut on_text = |s: &str| {
        if stream {
            let _ = out.write_all(s.as_bytes());
            let _ = out.flush();
        }
        true
    };
    let r = if a.ffn_skip {
        let rule = tessera_skip::FfnSkipConfig::cosine(a.threshold);
        tessera_skip::commands::generate_prompts(&m, &prompts, &p, &rule, &mut on_text)?
    } else {
        commands::generate_prompts(&m, &prompts, &p, &mut on_text)?
    };
    match (&r, a.json) {
        (_, true) => print_json(&serde_json::to_value(&r)?),
        (commands::GenerateOutput::Single { .. }, false) => println!(),
        (commands::GenerateOutput::Batch { generations, .. }, false) => {
            for (i, g) in generations.iter().enumerate() {
                println!("[{i}] {}", g.text);
            }
        }
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
    /// Weight representation: f32, q8_0, file (the file's own blocks; sparse for a pruned dir) or sparse.
    #[arg(long, default_value = "file")]
    pub dtype: WeightDtype,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The default perplexity text.
pub fn wikitext_test() -> anyhow::Result<PathBuf> {
    Ok(assets::resolve_data(tessera_lm::tour::WIKITEXT_TEST)?)
}

/// Runs `tessera perplexity`.
pub fn perplexity(ctx: &Ctx, a: PerplexityArgs) -> anyhow::Result<()> {
    tessera_lm::limits::check_perplexity(usize::MAX, a.window, a.stride)?;
    let text = match a.text {
        Some(t) => t,
        None => wikitext_test()?,
    };
    let m = load_model_with(ctx, &a.model, a.dtype)?;
    let pb = tessera_core::progress::bar(0, "perplexity");
    let r = commands::perplexity_file(&m, &text, a.window, a.stride, a.max_tokens, &mut |d, n| {
        pb.set_length(n as u64);
        pb.set_position(d as u64)
    })?;
    pb.finish_and_clear();
    emit(a.json, &r)
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
    #[arg(long, default_value_t = speed::BENCH_STEPS)]
    pub steps: usize,
    /// Python interpreter with llama-cpp-python.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Runs per engine, interleaved (A B C A B C ...), each in its own process.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Our engine's weight representations, one row each (f32, q8_0, file, sparse).
    #[arg(long, value_delimiter = ',', default_value = "f32,file")]
    pub dtype: Vec<WeightDtype>,
    /// Internal: run one engine in this process and print its JSON.
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera bench decode`: our f32 runtime and llama.cpp (f32 GGUF written by us, and the original file),
/// each in its own process so peak memory is per engine (`tessera_lm::speed::bench_decode`).
pub fn bench_decode(ctx: &Ctx, a: BenchDecodeArgs) -> anyhow::Result<()> {
    let path = assets::resolve_model(&a.model, ctx.offline)?;
    if a.worker {
        let d = a.dtype.first().copied().unwrap_or_default();
        print_json(&serde_json::to_value(speed::decode_worker(
            &path, a.steps, d,
        )?)?);
        return Ok(());
    }
    let worker = speed::WorkerCommand {
        exe: std::env::current_exe()?,
        args: ["bench", "decode", "--worker", "--json"]
            .map(String::from)
            .to_vec(),
    };
    let cfg = speed::DecodeBenchConfig {
        model: path,
        threads: a.threads,
        steps: a.steps,
        python: a.python,
        f32_dir: assets::home().join("bench"),
        reps: a.reps,
        dtypes: a.dtype,
    };
    emit(a.json, &speed::bench_decode(&cfg, &worker)?)
}
