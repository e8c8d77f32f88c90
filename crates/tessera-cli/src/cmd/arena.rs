//! `tessera arena` glue (placeholder until the arena issue lands).
use super::Ctx;
use clap::{Args, Subcommand};

/// `tessera arena` subcommands.
#[derive(Subcommand)]
pub enum ArenaCmd {
    /// Not yet implemented.
    Todo,
}

/// Runs a `tessera arena` subcommand.
pub fn run(_ctx: &Ctx, _cmd: ArenaCmd) -> anyhow::Result<()> {
    anyhow::bail!("tessera arena is not implemented yet")
}

/// `tessera bench arena` arguments.
#[derive(Args)]
pub struct BenchArenaArgs {}

/// Runs `tessera bench arena`.
pub fn bench(_ctx: &Ctx, _a: BenchArenaArgs) -> anyhow::Result<()> {
    anyhow::bail!("tessera bench arena is not implemented yet")
}

/// The tour's section for this system, or `None` while it is not finished.
pub fn tour(_ctx: &Ctx, _dir: &tessera_core::record::RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    Ok(None)
}
