//! Human-readable text of the command results (what `tessera vlm …` prints without `--json`).
use crate::ask::AskResult;
use crate::eval::EvalResult;
use crate::prune::VlmPruneResult;
use crate::restore::RestoreResult;
use crate::study::StudyResult;
use crate::train::TrainResult;
use std::fmt;

impl fmt::Display for TrainResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trained {} steps (from {}), loss {:.3} -> {:.3}, {:.2} images/s; model in {}",
            self.steps,
            self.resumed_from,
            self.first_loss,
            self.last_loss,
            self.images_per_s,
            self.model.display()
        )
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v))
}

impl fmt::Display for EvalResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "easy-vqa {} ({} questions), Fashion-MNIST {} ({} images)",
            pct(self.easyvqa_accuracy),
            self.easyvqa_questions,
            pct(self.fashion_mnist_accuracy),
            self.fashion_mnist_images
        )
    }
}

impl fmt::Display for VlmPruneResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: vision {} ({:.1}% zeros), language {} ({:.1}% zeros) -> {}",
            self.method,
            self.vision_spec,
            100.0 * self.vision.sparsity,
            self.language_spec,
            100.0 * self.language.sparsity,
            self.out.display()
        )
    }
}

impl fmt::Display for RestoreResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: accuracy {:?} -> {:?}, language sparsity {:.3} -> {:.3}, mask kept: {}",
            self.form,
            self.accuracy_before,
            self.accuracy_after,
            self.language_sparsity.0,
            self.language_sparsity.1,
            self.mask_kept
        )
    }
}

impl fmt::Display for StudyResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} configurations; plot in {}",
            self.rows.len(),
            self.plot.display()
        )
    }
}

impl fmt::Display for AskResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  (best of the 13 easy-vqa answers: {}, p = {:.2})",
            self.answer, self.best_choice, self.best_choice_prob
        )
    }
}
