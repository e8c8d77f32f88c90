//! `tessera export MODEL --out DIR --gguf FILE`: write a loaded model for other engines.
use super::{print_json, Ctx};
use clap::Args;
use std::path::PathBuf;
use tessera_lm::export::{export_gguf, export_hf_dir, GgufPrecision};

/// `tessera export` arguments.
#[derive(Args)]
pub struct ExportArgs {
    /// Model name (e.g. smollm2-135m) or path to a GGUF file / safetensors directory.
    pub model: String,
    /// Write an HF safetensors directory (config.json, model.safetensors, tokenizer) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a GGUF file (llama.cpp / Ollama layout) here.
    #[arg(long)]
    pub gguf: Option<PathBuf>,
    /// GGUF weight precision: f32 or f16.
    #[arg(long, default_value_t = GgufPrecision::F32)]
    pub precision: GgufPrecision,
    /// Replace existing outputs (default: refuse to overwrite).
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera export`.
pub fn run(ctx: &Ctx, a: ExportArgs) -> anyhow::Result<()> {
    if a.out.is_none() && a.gguf.is_none() {
        anyhow::bail!("nothing to write: give --out DIR and/or --gguf FILE");
    }
    for p in a.out.iter().chain(a.gguf.iter()) {
        if p.exists() && !a.force {
            anyhow::bail!("{} exists; pass --force to replace it", p.display());
        }
    }
    let src = tessera_core::assets::resolve_model(&a.model, ctx.offline)?;
    let m = tessera_lm::load(&src)?;
    let gguf_source = src.is_file().then_some(src.as_path());
    if let Some(d) = &a.out {
        export_hf_dir(&m, d)?;
    }
    if let Some(f) = &a.gguf {
        export_gguf(&m, f, a.precision, gguf_source)?;
    }
    let v = serde_json::json!({
        "model": src, "parameters": m.num_params(),
        "hf_dir": a.out, "gguf": a.gguf, "precision": a.precision.to_string(),
    });
    if a.json {
        print_json(&v);
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
