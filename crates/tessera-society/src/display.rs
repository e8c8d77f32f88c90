//! Human-readable text of the command results (what `tessera society …` prints without `--json`).
use crate::attack::{AttackResult, SweepResult};
use crate::society::SocietyResult;
use std::fmt;

impl fmt::Display for AttackResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "success {} after {} steps (steps to success {:?}); final loss {:?}; injection {:?}",
            self.success,
            self.steps_run,
            self.steps_to_success,
            self.loss.last(),
            self.injection.text
        )
    }
}

impl fmt::Display for SweepResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} targets: success rate {:.2}, mean steps to success {:?}",
            self.targets, self.success_rate, self.mean_steps_to_success
        )
    }
}

impl fmt::Display for SocietyResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "infected by round {:?}, by hop {:?}; detection {:?}, false positives {:?}",
            self.infected_by_round,
            self.infected_by_hop,
            self.detection_rate,
            self.false_positive_rate
        )
    }
}
