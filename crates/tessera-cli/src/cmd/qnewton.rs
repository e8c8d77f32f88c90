//! `tessera qnewton` glue (placeholder until the qnewton issue lands).
use super::Ctx;
use clap::Subcommand;

/// `tessera qnewton` subcommands.
#[derive(Subcommand)]
pub enum QnewtonCmd {
    /// Not yet implemented.
    Todo,
}

/// Runs a `tessera qnewton` subcommand.
pub fn run(_ctx: &Ctx, _cmd: QnewtonCmd) -> anyhow::Result<()> {
    anyhow::bail!("tessera qnewton is not implemented yet")
}

/// The tour's section for this system, or `None` while it is not finished.
pub fn tour(_ctx: &Ctx, _dir: &tessera_core::record::RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    Ok(None)
}
