//! `tessera`: one command line over every Tessera system. This file only parses arguments and dispatches;
//! each system's glue lives in `cmd/<system>.rs` and the work itself in the system's library crate.
mod cmd;
mod tour;

use clap::{Parser, Subcommand};

/// Live-heap counting for the memory benchmarks (`tessera_core::alloc::HeapScope`).
#[global_allocator]
static ALLOC: tessera_core::alloc::CountingAlloc = tessera_core::alloc::CountingAlloc;

/// Lean and trustworthy AI research systems in one tool.
#[derive(Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
    /// Never download assets; fail with a clear message when one is missing.
    #[arg(long, global = true)]
    offline: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fetch or list the models and datasets Tessera uses.
    #[command(subcommand)]
    Assets(cmd::assets::AssetsCmd),
    /// Show a model's configuration and size.
    Info(cmd::lm::InfoArgs),
    /// Generate text with a local model.
    Generate(cmd::lm::GenerateArgs),
    /// Sliding-window perplexity of a model on a text file.
    Perplexity(cmd::lm::PerplexityArgs),
    /// Serve a local model over the OpenAI chat/completions API.
    Serve(cmd::serve::ServeArgs),
    /// Game arena (GTBench): games, agents, tournaments, ratings.
    #[command(subcommand)]
    Arena(cmd::arena::ArenaCmd),
    /// Graph sparsification with a mixture of sparsifier experts (MoG).
    #[command(subcommand)]
    Graph(cmd::graph::GraphCmd),
    /// Knowledge-graph question answering (DALK): import, build from literature, ask, evaluate on ADQA.
    #[command(subcommand)]
    Kg(cmd::kg::KgCmd),
    /// Multi-agent societies and covert injection through an operative (The Wolf Within).
    #[command(subcommand)]
    Society(cmd::society::SocietyCmd),
    /// Newton training with quantum/classical linear-solver scheduling (Q-Newton).
    #[command(subcommand)]
    Qnewton(cmd::qnewton::QnewtonCmd),
    /// Benchmarks that print side-by-side ratios.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Run every finished system at small scale and write a report under runs/.
    Tour(tour::TourArgs),
    /// Gene-set naming over the Gene Ontology (Thought Graph, enrichment and LLM baselines).
    #[command(subcommand)]
    Bio(cmd::bio::BioCmd),
    /// Sentence embeddings (all-MiniLM-L6-v2) and pairwise cosines.
    Embed(cmd::embed::EmbedArgs),
    /// Zeroth-order fine-tuning benchmark (ZO-Bench, MeZO): train, memory.
    #[command(subcommand)]
    Zo(cmd::zo::ZoCmd),
    /// Export a model as an HF safetensors directory and/or a GGUF file (llama.cpp, Ollama, vLLM).
    Export(cmd::export::ExportArgs),
    /// FFN-SkipLLM: input-adaptive feed-forward skipping during decoding.
    #[command(subcommand)]
    Skip(cmd::skip::SkipCmd),
    /// Prune a model (magnitude, Wanda, SparseGPT; unstructured or N:M) into a pruned checkpoint directory.
    Prune(Box<cmd::prune::PruneArgs>),
    /// Recover a pruned checkpoint with SparseLoRA (or plain LoRA) distilled from the dense teacher.
    Sparselora(Box<cmd::prune::SparseLoraArgs>),
    /// Aurora-M: continual pretraining (CAP), alignment tuning (CAT) and red-team evaluation.
    #[command(subcommand)]
    Aurora(cmd::aurora::AuroraCmd),
    /// Vision-language model (ViT + SmolLM2): train, eval, prune, restore, study, ask.
    #[command(subcommand)]
    Vlm(cmd::vlm::VlmCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Prompt and decode speed of the runtime against llama.cpp.
    Decode(cmd::lm::BenchDecodeArgs),
    /// Decode speed and peak memory of a pruned model: dense f32 vs compressed sparse weights.
    Sparse(cmd::bench_sparse::BenchSparseArgs),
    /// Throughput and latency of `tessera serve`.
    Serve(cmd::serve::BenchServeArgs),
    /// MCTS simulations per second, against OpenSpiel.
    Arena(cmd::bench_arena::BenchArenaArgs),
    /// GNN inference on sparsified vs dense graphs.
    Graph(cmd::bench_graph::BenchGraphArgs),
    /// Time and peak memory of a LoRA training step: q/v or all projections, trainable vs frozen base,
    /// LoRA vs SparseLoRA on a sparse model.
    Lora(cmd::bench_train::BenchLoraArgs),
    /// Time and peak heap of one in-place seeded perturbation of all parameters vs one forward pass.
    Perturb(cmd::bench_train::BenchPerturbArgs),
    /// Decode speed of the full model vs FFN skipping, interleaved on the same prompts.
    Skip(cmd::skip::BenchSkipArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TESSERA_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => exit_on_usage_error(e),
    };
    let ctx = cmd::Ctx {
        offline: cli.offline,
    };
    let res = match cli.cmd {
        Cmd::Assets(c) => cmd::assets::run(&ctx, c),
        Cmd::Info(a) => cmd::lm::info(&ctx, a),
        Cmd::Generate(a) => cmd::lm::generate(&ctx, a),
        Cmd::Perplexity(a) => cmd::lm::perplexity(&ctx, a),
        Cmd::Serve(a) => cmd::serve::run(&ctx, a),
        Cmd::Arena(c) => cmd::arena::run(&ctx, c),
        Cmd::Graph(c) => cmd::graph::run(&ctx, c),
        Cmd::Kg(c) => cmd::kg::run(&ctx, c),
        Cmd::Society(c) => cmd::society::run(&ctx, c),
        Cmd::Qnewton(c) => cmd::qnewton::run(&ctx, c),
        Cmd::Bench(b) => match b {
            BenchCmd::Decode(a) => cmd::lm::bench_decode(&ctx, a),
            BenchCmd::Sparse(a) => cmd::bench_sparse::bench(&ctx, a),
            BenchCmd::Lora(a) => cmd::bench_train::bench_lora(&ctx, a),
            BenchCmd::Perturb(a) => cmd::bench_train::bench_perturb(&ctx, a),
            BenchCmd::Serve(a) => cmd::serve::bench(&ctx, a),
            BenchCmd::Arena(a) => cmd::bench_arena::bench(&ctx, a),
            BenchCmd::Graph(a) => cmd::bench_graph::bench(&ctx, a),
            BenchCmd::Skip(a) => cmd::skip::bench_cmd(&ctx, a),
        },
        Cmd::Tour(a) => tour::run(&ctx, a),
        Cmd::Bio(c) => cmd::bio::run(&ctx, c),
        Cmd::Embed(a) => cmd::embed::run(&ctx, a),
        Cmd::Export(a) => cmd::export::run(&ctx, a),
        Cmd::Skip(c) => cmd::skip::run(&ctx, c),
        Cmd::Zo(c) => cmd::zo::run(&ctx, c),
        Cmd::Aurora(c) => cmd::aurora::run(&ctx, c),
        Cmd::Prune(a) => cmd::prune::prune(&ctx, *a),
        Cmd::Sparselora(a) => cmd::prune::sparselora(&ctx, *a),
        Cmd::Vlm(c) => cmd::vlm::run(&ctx, c),
    };
    if let Err(e) = res {
        eprintln!("tessera: error: {}", one_line(&e));
        std::process::exit(2);
    }
}

/// Help and version go to stdout with exit 0; a usage error is printed as its first line (exit 2).
fn exit_on_usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    eprintln!("tessera: error: {first} (see --help)");
    std::process::exit(2)
}

/// The error and its causes on one line, each cause once: a cause whose text the message already contains (as
/// `path: io error` contains the io error) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let t = cause.to_string();
        if t.is_empty() || out.contains(&t) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&t);
    }
    out.replace(['\n', '\r'], " ")
}
