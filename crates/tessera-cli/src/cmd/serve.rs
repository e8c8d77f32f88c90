//! `tessera serve` glue (placeholder until the backends issue lands).
use super::Ctx;
use clap::Args;

/// `tessera serve` arguments.
#[derive(Args)]
pub struct ServeArgs {}

/// Runs `tessera serve`.
pub fn run(_ctx: &Ctx, _a: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("tessera serve is not implemented yet")
}

/// `tessera bench serve` arguments.
#[derive(Args)]
pub struct BenchServeArgs {}

/// Runs `tessera bench serve`.
pub fn bench(_ctx: &Ctx, _a: BenchServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("tessera bench serve is not implemented yet")
}

/// The tour's section for this system, or `None` while it is not finished.
pub fn tour(_ctx: &Ctx, _dir: &tessera_core::record::RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    Ok(None)
}
