//! `tessera serve` (an OpenAI-compatible server for a local model), `tessera bench serve` and the serve tour section.
//! The work lives in `tessera-llm`; this module only parses arguments and prints.
use super::{print_json, Ctx};
use clap::Args;
use std::sync::Arc;
use std::time::Instant;
use tessera_core::report::Report;
use tessera_llm::bench::{self, BenchConfig};
use tessera_llm::server::{self, ServerConfig};
use tessera_llm::{
    ChatModel, ChatParams, ChatRequest, Engine, EngineConfig, OpenAiChat, OpenAiConfig,
};

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
    let engine = load_engine(ctx, &a.model, &ec, a.dtype)?;
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
        return Ok(());
    }
    let mb = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!(
        "tessera bench serve --abuse: model {id}, {} rounds, {} requests, {} idle connections",
        a.rounds, r.requests, a.idle_connections
    );
    for (st, n) in &r.statuses {
        println!("  HTTP {st:>3}: {n}");
    }
    println!(
        "  peak RSS {} MiB; engine peak reserved {:.1} MiB of a {:.1} MiB job budget",
        r.peak_rss_bytes
            .map(|b| format!("{:.1}", mb(b)))
            .unwrap_or_else(|| "-".into()),
        mb(r.peak_reserved_bytes),
        mb(r.budget_bytes)
    );
    println!(
        "  /health: {} probes, p50 {:.1} ms, max {:.1} ms, {} failed or >= 100 ms -> {}",
        r.health_probes,
        r.health_p50_ms,
        r.health_max_ms,
        r.health_slow,
        if r.health_ok {
            "stayed under 100 ms"
        } else {
            "NOT always under 100 ms"
        }
    );
    Ok(())
}

/// Runs `tessera bench serve`.
pub fn bench(ctx: &Ctx, a: BenchServeArgs) -> anyhow::Result<()> {
    if a.abuse {
        let id = a
            .model_id
            .clone()
            .unwrap_or_else(|| tessera_llm::local::model_id(&a.model));
        return abuse(ctx, &a, id);
    }
    anyhow::ensure!(
        !a.clients.is_empty() && a.clients.iter().all(|&c| c > 0),
        "--clients must be positive"
    );
    let id = a
        .model_id
        .clone()
        .unwrap_or_else(|| tessera_llm::local::model_id(&a.model));
    let cfg = BenchConfig {
        clients: a.clients.clone(),
        requests: a.requests,
        max_tokens: a.max_tokens,
        prompt: "Write one sentence about the ocean.".into(),
    };
    let mut rows = Vec::new();
    match &a.url {
        Some(url) => rows.extend(
            bench::remote(url, &id, &cfg)?
                .into_iter()
                .map(|l| (None, l)),
        ),
        None => {
            let queue = a.clients.iter().max().copied().unwrap_or(1) * 2;
            let model = Arc::new(super::lm::load_model(ctx, &a.model)?);
            for &mb in &a.max_batch {
                let engine = Arc::new(Engine::with_batching(model.clone(), a.workers, queue, mb)?);
                let mut sc = ServerConfig::new(id.clone());
                sc.default_max_tokens = a.max_tokens;
                let levels = bench::self_hosted(engine, sc, &cfg)?;
                rows.extend(levels.into_iter().map(|l| (Some(mb), l)));
            }
        }
    }
    let base = rows
        .first()
        .map(|(_, l)| l.requests_per_s)
        .unwrap_or(f64::NAN);
    if a.json {
        let levels: Vec<_> = rows
            .iter()
            .map(|(mb, l)| serde_json::json!({ "max_batch": mb, "result": l }))
            .collect();
        print_json(&serde_json::json!({
            "model": id, "url": a.url, "workers": a.workers, "requests": a.requests,
            "max_tokens": a.max_tokens, "levels": levels,
        }));
        return Ok(());
    }
    println!(
        "tessera bench serve: model {id}, {} requests per level, max_tokens {}, {} worker(s){}",
        a.requests,
        a.max_tokens,
        a.workers,
        a.url
            .as_ref()
            .map(|u| format!(", remote {u}"))
            .unwrap_or_default()
    );
    println!(
        "{:>9} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "max_batch",
        "clients",
        "errors",
        "req/s",
        "tok/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "vs first"
    );
    for (mb, l) in &rows {
        println!(
            "{:>9} {:>7} {:>7} {:>9.2} {:>9.1} {:>9.0} {:>9.0} {:>9.0} {:>8.2}x",
            mb.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            l.clients,
            l.errors,
            l.requests_per_s,
            l.tokens_per_s,
            l.p50_ms,
            l.p95_ms,
            l.p99_ms,
            l.requests_per_s / base
        );
    }
    Ok(())
}

/// The tour: serve SmolLM2 on a free loopback port and do one chat round trip (and one streamed) through
/// `OpenAiChat`.
pub fn tour(
    ctx: &Ctx,
    dir: &tessera_core::record::RunDir,
) -> anyhow::Result<Option<crate::tour::Section>> {
    let model = super::lm::DEFAULT_MODEL;
    let ec = EngineConfig {
        queue: 16,
        max_batch: 1,
        ..EngineConfig::default()
    };
    let engine = load_engine(ctx, model, &ec, tessera_lm::WeightDtype::F32)?;
    let question = "What is the capital of France? Answer in one sentence.";
    let req = ChatRequest::user(question).with_params(ChatParams {
        max_tokens: 32,
        ..ChatParams::default()
    });
    let rt = tessera_llm::blocking::build_runtime(2)?;
    let (addr, reply, latency_s, first_piece_s, streamed) = rt.block_on(async {
        let h = server::start(engine, ServerConfig::new(model), "127.0.0.1:0").await?;
        let client = OpenAiChat::new(OpenAiConfig::new(h.base_url(), model))?;
        let t0 = Instant::now();
        let reply = client.chat(&req).await?;
        let latency_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut first: Option<f64> = None;
        let streamed = client
            .chat_stream(&req, &mut |_| {
                first.get_or_insert(t1.elapsed().as_secs_f64());
            })
            .await?;
        let addr = h.addr();
        h.stop().await?;
        anyhow::Ok((addr, reply, latency_s, first, streamed))
    })?;
    let json = serde_json::json!({
        "model": model, "address": addr.to_string(), "question": question,
        "reply": reply.text(), "usage": reply.usage, "finish_reason": reply.choices.first().map(|c| c.finish_reason.clone()),
        "latency_s": latency_s, "stream_first_piece_s": first_piece_s,
        "stream_matches": streamed.text() == reply.text(),
    });
    dir.write_json("serve.json", &json)?;
    let mut rep = Report::new("Serve (OpenAI-compatible server and client)");
    rep.para(&format!(
        "`tessera serve` logic on {addr} with {model}; one chat round trip through `OpenAiChat` (greedy, \
         max_tokens 32), then the same request streamed."
    ));
    rep.table(
        &["measure", "value"],
        &[
            vec!["question".into(), question.into()],
            vec!["reply".into(), reply.text().trim().to_string()],
            vec![
                "tokens (prompt / completion)".into(),
                format!(
                    "{} / {}",
                    reply.usage.prompt_tokens, reply.usage.completion_tokens
                ),
            ],
            vec!["round-trip latency (s)".into(), format!("{latency_s:.2}")],
            vec![
                "streamed: first piece after (s)".into(),
                first_piece_s
                    .map(|s| format!("{s:.2}"))
                    .unwrap_or_else(|| "-".into()),
            ],
            vec![
                "streamed text equals non-streamed".into(),
                (streamed.text() == reply.text()).to_string(),
            ],
        ],
    );
    rep.para("Throughput and latency under load: `tessera bench serve`.");
    Ok(Some(crate::tour::Section {
        title: "serve".into(),
        report: rep,
        json,
    }))
}
