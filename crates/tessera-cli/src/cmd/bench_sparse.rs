//! `tessera bench sparse`: argument parsing and printing around `tessera_lm::bench_sparse` (dense f32 vs compressed
//! sparse decode on the same pruned model, each run in its own worker process: `tessera bench decode --worker`).
use super::{print_json, Ctx};
use clap::Args;
use std::path::PathBuf;
use tessera_core::assets;
use tessera_lm::bench_sparse::{self, MaskPattern, SparseBenchConfig};
use tessera_lm::speed;

/// `tessera bench sparse` arguments.
#[derive(Args)]
pub struct BenchSparseArgs {
    /// A pruned HF directory (with masks.safetensors); with --magnitude, the model to prune first.
    pub model: String,
    /// Prune MODEL by magnitude first (N:M, e.g. 2:4, or a sparsity such as 0.7) into --out and bench that.
    #[arg(long)]
    pub magnitude: Option<MaskPattern>,
    /// Where --magnitude writes the pruned directory (default: TESSERA_HOME/bench/<model>-magnitude-<pattern>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Threads per engine.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Greedy decode steps.
    #[arg(long, default_value_t = speed::BENCH_STEPS)]
    pub steps: usize,
    /// Runs per path, interleaved (dense, sparse, dense, sparse, ...).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera bench sparse`.
pub fn bench(ctx: &Ctx, a: BenchSparseArgs) -> anyhow::Result<()> {
    let src = assets::resolve_model(&a.model, ctx.offline)?;
    let dir = match a.magnitude {
        None => src,
        Some(p) => {
            let stem = src
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "model".into());
            let out = a.out.clone().unwrap_or_else(|| {
                assets::home().join("bench").join(format!(
                    "{stem}-magnitude-{}",
                    p.to_string().replace(':', "of")
                ))
            });
            let s = bench_sparse::write_magnitude_pruned(&src, p, &out)?;
            eprintln!(
                "tessera: magnitude {p} → {} (sparsity {s:.3})",
                out.display()
            );
            out
        }
    };
    let worker = speed::WorkerCommand {
        exe: std::env::current_exe()?,
        args: ["bench", "decode", "--worker", "--json"]
            .map(String::from)
            .to_vec(),
    };
    let cfg = SparseBenchConfig {
        model: dir,
        threads: a.threads,
        steps: a.steps,
        reps: a.reps,
    };
    let r = bench_sparse::bench_sparse(&cfg, &worker)?;
    if a.json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}
