//! `tessera embed`: sentence vectors and pairwise cosines (all-MiniLM-L6-v2).
use super::{print_json, Ctx};
use clap::Args;
use std::path::PathBuf;

/// `tessera embed` arguments.
#[derive(Args)]
pub struct EmbedArgs {
    /// A text to embed (repeat for several).
    #[arg(long = "text", required = true)]
    pub texts: Vec<String>,
    /// A BERT sentence-embedder directory (default: the all-minilm-l6-v2 asset).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Print one JSON object: texts, vectors, cosines.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera embed`.
pub fn run(ctx: &Ctx, a: EmbedArgs) -> anyhow::Result<()> {
    let r = tessera_embed::run(&tessera_embed::EmbedConfig {
        texts: a.texts,
        model_dir: a.model,
        offline: ctx.offline,
    })?;
    if a.json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!("model {} (dim {})", r.model, r.dim);
        for (i, t) in r.texts.iter().enumerate() {
            println!("[{i}] {t}");
        }
        for i in 0..r.texts.len() {
            for j in i + 1..r.texts.len() {
                println!("cos([{i}], [{j}]) = {:.4}", r.cosines[i][j]);
            }
        }
    }
    Ok(())
}
