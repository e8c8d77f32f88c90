//! `tessera info|generate|perplexity` and `tessera bench decode` glue (being written).
use super::Ctx;
use clap::Args;

/// `tessera info` arguments.
#[derive(Args)]
pub struct InfoArgs {}
/// `tessera generate` arguments.
#[derive(Args)]
pub struct GenerateArgs {}
/// `tessera perplexity` arguments.
#[derive(Args)]
pub struct PerplexityArgs {}
/// `tessera bench decode` arguments.
#[derive(Args)]
pub struct BenchDecodeArgs {}

/// Runs `tessera info`.
pub fn info(_ctx: &Ctx, _a: InfoArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
/// Runs `tessera generate`.
pub fn generate(_ctx: &Ctx, _a: GenerateArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
/// Runs `tessera perplexity`.
pub fn perplexity(_ctx: &Ctx, _a: PerplexityArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
/// Runs `tessera bench decode`.
pub fn bench_decode(_ctx: &Ctx, _a: BenchDecodeArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
/// The tour's runtime section.
pub fn tour(_ctx: &Ctx, _dir: &tessera_core::record::RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    Ok(None)
}
