//! Per-system command glue: argument structs and thin calls into the library crates.
pub mod arena;
pub mod assets;
pub mod aurora;
pub mod bench_arena;
pub mod bench_graph;
pub mod bench_sparse;
pub mod bench_train;
pub mod bio;
pub mod embed;
pub mod export;
pub mod graph;
pub mod kg;
pub mod llm_bridge;
pub mod lm;
pub mod prune;
pub mod qnewton;
pub mod serve;
pub mod skip;
pub mod society;
pub mod vlm;
pub mod vlm_train;
pub mod zo;

/// Options shared by every command.
pub struct Ctx {
    /// Never download assets.
    pub offline: bool,
}

/// Prints a JSON value on one line (the `--json` contract: one object on stdout).
/// A closed pipe (e.g. `| head`) is not an error.
pub fn print_json(v: &serde_json::Value) {
    use std::io::Write as _;
    let line = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Prints a command's result: one JSON line with `--json`, else its human-readable `Display` text.
pub fn emit<T: serde::Serialize + std::fmt::Display>(json: bool, r: &T) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::to_value(r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}
