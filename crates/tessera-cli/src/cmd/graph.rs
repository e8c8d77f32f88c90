//! `tessera graph` glue (placeholder until the graph issue lands).
use super::Ctx;
use clap::{Args, Subcommand};

/// `tessera graph` subcommands.
#[derive(Subcommand)]
pub enum GraphCmd {
    /// Not yet implemented.
    Todo,
}

/// Runs a `tessera graph` subcommand.
pub fn run(_ctx: &Ctx, _cmd: GraphCmd) -> anyhow::Result<()> {
    anyhow::bail!("tessera graph is not implemented yet")
}

/// `tessera bench graph` arguments.
#[derive(Args)]
pub struct BenchGraphArgs {}

/// Runs `tessera bench graph`.
pub fn bench(_ctx: &Ctx, _a: BenchGraphArgs) -> anyhow::Result<()> {
    anyhow::bail!("tessera bench graph is not implemented yet")
}

/// The tour's section for this system, or `None` while it is not finished.
pub fn tour(_ctx: &Ctx, _dir: &tessera_core::record::RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    Ok(None)
}
