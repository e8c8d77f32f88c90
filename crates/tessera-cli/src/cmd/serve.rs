//! `tessera serve` (an OpenAI-compatible server for a local model), `tessera bench serve` and the serve tour section.
//! The work lives in `tessera-llm`; this module only parses arguments and prints.
use super::{print_json, Ctx};
use clap::Args;
use std::sync::Arc;
use tessera_llm::bench::{self, BenchConfig, Target};
use tessera_llm::server::{self, ServerConfig};
use tessera_llm::{Engine, EngineConfig};

/// `tessera serve` arguments.
#[derive(Args)]
pub struct ServeArgs {
    /// Model name (e.g. smollm2-135m) or path to a GGUF file / safetensors directory.
    #[arg(default_value = super::lm::DEFAULT_MODEL)]
    pub model: String,
    /// Address to bind (loopback by default; use 0.0.0.0 to expose it).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Model id clients must send (default: the model name or file stem).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Generation worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Most requests waiting for a worker; beyond it the server answers 503.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Require `Authorization: Bearer <key>` with the key read from this environment variable.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// `max_tokens` for requests that set none.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Merge up to this many queued non-streamed greedy requests into one batch (1 = off).
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Memory budget in bytes, model included: requests that can never fit are refused (400), others wait or run
    /// in smaller batches (default: the model plus 3/4 of the available memory).
    #[arg(long)]
    pub memory_budget: Option<u64>,
    /// Most open connections (default: the open-file limit less 64, at most 1024).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Weight representation: f32, q8_0, file (the file's own blocks; sparse for a pruned dir) or sparse.
    #[arg(long, default_value = "file")]
    pub dtype: tessera_lm::WeightDtype,
    /// Skip feed-forward blocks while decoding (FFN-SkipLLM, budget 25%); each response's usage reports
    /// `ffn_skipped_fraction`.
    #[arg(long)]
    pub ffn_skip: bool,
    /// With --ffn-skip: the cosine threshold.
    #[arg(long, requires = "ffn_skip", allow_negative_numbers = true,
          default_value_t = tessera_skip::ffn_skip::DEFAULT_THRESHOLD)]
    pub threshold: f64,
}

fn load_engine(
    ctx: &Ctx,
    model: &str,
    c: &EngineConfig,
    dtype: tessera_lm::WeightDtype,
) -> anyhow::Result<Arc<Engine>> {
    let m = super::lm::load_model_with(ctx, model, dtype)?;
    Ok(Arc::new(Engine::from_config(Arc::new(m), c)?))
}

/// Runs `tessera serve` until Ctrl-C.
pub fn run(ctx: &Ctx, a: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = ServerConfig::new(
        a.model_id
            .clone()
            .unwrap_or_else(|| tessera_llm::local::model_id(&a.model)),
    );
    if let Some(var) = &a.api_key_env {
        let key =
            std::env::var(var).map_err(|_| anyhow::anyhow!("--api-key-env: `{var}` is not set"))?;
        anyhow::ensure!(!key.is_empty(), "--api-key-env: `{var}` is empty");
        cfg.api_key = Some(key);
    }
    cfg.default_max_tokens = a.max_tokens;
    cfg.max_connections = a.max_connections;
    anyhow::ensure!(a.max_tokens > 0, "--max-tokens must be at least 1");
    anyhow::ensure!(
        a.max_connections != Some(0),
        "--max-connections must be at least 1"
    );
    let id = cfg.model_id.clone();
    let ec = EngineConfig {
        workers: a.workers,
        queue: a.queue,
        max_batch: a.max_batch,
        memory_budget: a.memory_budget,
    };
    let engine = if a.ffn_skip {
        let m = super::lm::load_model_with(ctx, &a.model, a.dtype)?;
        let rule = tessera_skip::FfnSkipConfig::cosine(a.threshold);
        let hooks = tessera_skip::FfnSkipHook::factory(&rule, m.config.num_hidden_layers)?;
        Arc::new(Engine::from_config_with_hooks(
            Arc::new(m),
            &ec,
            Some(hooks),
        )?)
    } else {
        load_engine(ctx, &a.model, &ec, a.dtype)?
    };
    let bind = format!("{}:{}", a.host, a.port);
    server::run_blocking(engine, cfg, &bind, |addr| {
        eprintln!("tessera serve: model `{id}` at http://{addr}/v1 (Ctrl-C to stop)");
    })?;
    Ok(())
}

/// `tessera bench serve` arguments.
#[derive(Args)]
pub struct BenchServeArgs {
    /// Model name or path to serve (ignored with --url).
    #[arg(default_value = super::lm::DEFAULT_MODEL)]
    pub model: String,
    /// Benchmark an already running server at this base URL (e.g. http://127.0.0.1:8080/v1) instead.
    #[arg(long)]
    pub url: Option<String>,
    /// Model id to request (default: the model name or file stem).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Concurrency levels (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub clients: Vec<usize>,
    /// Requests per level.
    #[arg(long, default_value_t = 32)]
    pub requests: usize,
    /// `max_tokens` of each request.
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// Generation worker threads of the self-hosted server.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Batching settings of the self-hosted server to compare (comma-separated `--max-batch` values).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub max_batch: Vec<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Instead: a bounded mix of hostile requests against a self-hosted server (status codes, peak RSS, /health).
    #[arg(long)]
    pub abuse: bool,
    /// With --abuse: the server's memory budget in bytes (default: the model plus 3/4 of the available memory).
    #[arg(long)]
    pub memory_budget: Option<u64>,
    /// With --abuse: rounds of the mix.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// With --abuse: idle connections held open throughout.
    #[arg(long, default_value_t = 200)]
    pub idle_connections: usize,
}

fn abuse(ctx: &Ctx, a: &BenchServeArgs, id: String) -> anyhow::Result<()> {
    let ec = EngineConfig {
        workers: a.workers,
        memory_budget: a.memory_budget,
        ..EngineConfig::default()
    };
    let engine = load_engine(ctx, &a.model, &ec, tessera_lm::WeightDtype::F32)?;
    let cfg = tessera_llm::abuse::AbuseConfig {
        rounds: a.rounds,
        idle_connections: a.idle_connections,
        ..Default::default()
    };
    let r = tessera_llm::abuse::run(engine, ServerConfig::new(id.clone()), &cfg)?;
    if a.json {
        print_json(&serde_json::json!({ "model": id, "abuse": r }));
    } else {
        print!("{}", r.render(&id, &cfg));
    }
    Ok(())
}

/// Runs `tessera bench serve`.
pub fn bench(ctx: &Ctx, a: BenchServeArgs) -> anyhow::Result<()> {
    let id = a
        .model_id
        .clone()
        .unwrap_or_else(|| tessera_llm::local::model_id(&a.model));
    if a.abuse {
        return abuse(ctx, &a, id);
    }
    let cfg = BenchConfig {
        clients: a.clients.clone(),
        requests: a.requests,
        max_tokens: a.max_tokens,
        prompt: "Write one sentence about the ocean.".into(),
    };
    cfg.validate()?;
    let target = match &a.url {
        Some(url) => Target::Remote(url.clone()),
        None => Target::SelfHosted {
            model: Arc::new(super::lm::load_model(ctx, &a.model)?),
            max_batch: a.max_batch.clone(),
        },
    };
    let r = bench::run(target, &id, a.workers, &cfg)?;
    if a.json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        print!("{}", r.render());
    }
    Ok(())
}

/// The tour: serve SmolLM2 on a free loopback port and do one chat round trip (and one streamed).
pub fn tour(
    ctx: &Ctx,
    dir: &tessera_core::record::RunDir,
) -> anyhow::Result<Option<crate::tour::Section>> {
    let model = super::lm::DEFAULT_MODEL;
    let m = super::lm::load_model(ctx, model)?;
    Ok(Some(tessera_llm::tour::tour(dir, m, model)?))
}
