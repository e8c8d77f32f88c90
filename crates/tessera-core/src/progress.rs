//! Progress bars for long work. Hidden when stderr is not a terminal or `TESSERA_QUIET` is set,
//! so logs and CI output stay clean.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

fn visible() -> bool {
    std::env::var_os("TESSERA_QUIET").is_none() && std::io::stderr().is_terminal()
}

/// A bar over `len` steps labelled `msg`.
pub fn bar(len: u64, msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if !visible() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    pb.set_message(msg.into());
    pb
}

/// A spinner for work of unknown length.
pub fn spinner(msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    if !visible() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_message(msg.into());
    pb
}
