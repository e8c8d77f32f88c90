//! Human-readable text of the command results (what `tessera aurora …` prints without `--json`).
use crate::cap::CapResult;
use crate::cat::CatResult;
use crate::eval::EvalResult;
use crate::train::TrainOutcome;
use std::fmt;
use std::path::Path;

fn stage(f: &mut fmt::Formatter<'_>, name: &str, t: &TrainOutcome, out: &Path) -> fmt::Result {
    let l = |i: usize| t.loss_curve.get(i).copied().unwrap_or(f64::NAN);
    write!(
        f,
        "{name}: {} steps{}, loss {:.3} → {:.3}, {:.0} tokens/s; {}",
        t.steps_done,
        if t.finished {
            ""
        } else {
            " (paused; --resume continues)"
        },
        l(0),
        l(t.loss_curve.len().saturating_sub(1)),
        t.tokens_per_second,
        out.display()
    )
}

impl fmt::Display for CapResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        stage(f, "CAP", &self.train, &self.out)
    }
}

impl fmt::Display for CatResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        stage(f, "CAT", &self.train, &self.out)
    }
}

impl fmt::Display for EvalResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.perplexity_by_language {
            writeln!(f, "perplexity {k}: {v:.2}")?;
        }
        if let Some(p) = self.perplexity {
            writeln!(f, "perplexity --text: {p:.2}")?;
        }
        let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
        write!(
            f,
            "refusal {} ({} harmful), over-refusal {} ({} benign)",
            pct(self.refusal_rate),
            self.harmful_evaluated,
            pct(self.over_refusal_rate),
            self.benign_evaluated
        )
    }
}
