//! Typed entry points behind `tessera qnewton train|hhl`: a [`RunConfig`] goes in, [`run`] trains one optimiser or
//! the whole comparison, and a [`RunOutput`] comes out that serialises to the command's documented JSON.
//! [`HhlRunConfig`] → [`hhl_run`] → [`HhlRun`] does the same for the HHL simulation.
use crate::data::{self, Dataset};
use crate::error::Result;
use crate::experiment::{self, CompareConfig, HhlPoint, LabelledRun};
use crate::hhl::{hhl_solve, random_rhs, random_symmetric, HhlConfig};
use crate::train::{self, CurvePoint, Optimizer, TimeBreakdown, TrainConfig, TrainResult};
use serde::Serialize;
use std::path::PathBuf;
use tessera_core::record::RunDir;
use tessera_core::report::Report;

/// Which dataset to train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// scikit-learn's 8×8 digits (1797 × 64, 10 classes).
    Digits,
    /// Fashion-MNIST, average-pooled (Debian `dataset-fashion-mnist`).
    FashionMnist,
    /// Generated Gaussian blobs (2000 × 16, 10 classes; no asset needed).
    Blobs,
}

named_enum!(DatasetKind, "dataset", {
    DatasetKind::Digits => "digits",
    DatasetKind::FashionMnist => "fashion-mnist" | "fashion",
    DatasetKind::Blobs => "blobs",
});

/// One optimiser, or the comparison of all of them (`--optimizer all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerChoice {
    /// Train with this optimiser.
    One(Optimizer),
    /// SGD, Adam, Newton and Q-Newton at every gate time, on the same split.
    All,
}

impl std::str::FromStr for OptimizerChoice {
    type Err = crate::QnError;
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("all") {
            Ok(OptimizerChoice::All)
        } else {
            s.parse().map(OptimizerChoice::One).map_err(|_| {
                crate::QnError::invalid(format!(
                    "unknown optimizer {s:?} ({}|all)",
                    Optimizer::NAMES.join("|")
                ))
            })
        }
    }
}

impl std::fmt::Display for OptimizerChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptimizerChoice::One(o) => o.fmt(f),
            OptimizerChoice::All => f.write_str("all"),
        }
    }
}

/// Everything `tessera qnewton train` needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The dataset (split 80/20 with `train.seed`).
    pub dataset: DatasetKind,
    /// Fashion-MNIST: training images used.
    pub fashion_limit: usize,
    /// Fashion-MNIST: average-pool size.
    pub pool: usize,
    /// Never download the digits file.
    pub offline: bool,
    /// One optimiser or all.
    pub optimizer: OptimizerChoice,
    /// The training settings (for [`OptimizerChoice::All`]: the Newton runs' template).
    pub train: TrainConfig,
    /// Steps for SGD and Adam in the comparison.
    pub first_order_steps: usize,
    /// Gate times of the comparison's Q-Newton runs.
    pub gate_times: Vec<f64>,
    /// Time to accuracy in the comparison is measured to this fraction of Newton's final accuracy.
    pub target_fraction: f64,
    /// Where to write `run.json` (one optimiser) or the comparison's report, plots and `runs.json`
    /// (default for the comparison: a fresh `runs/qnewton-<time>`).
    pub out: Option<PathBuf>,
}

/// One run as the `--json` output shows it (the full record, with every block, is in `run.json`/`runs.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Label (the optimiser, or `qnewton gate <t>s` in the comparison).
    pub label: String,
    /// The optimiser (serialised as its name).
    pub optimizer: Optimizer,
    /// Dataset name.
    pub dataset: String,
    /// Evaluation curve.
    pub curves: Vec<CurvePoint>,
    /// Charged training time, seconds.
    pub time_s: f64,
    /// True when part of `time_s` is modelled quantum time.
    pub time_includes_modelled_quantum: bool,
    /// What `time_s` means.
    pub time_note: &'static str,
    /// Where the charged time went.
    pub time_breakdown: TimeBreakdown,
    /// Wall-clock time including evaluation, seconds.
    pub wall_s: f64,
    /// Blocks routed to the quantum solver.
    pub blocks_quantum: usize,
    /// Blocks routed to the classical solver.
    pub blocks_classical: usize,
    /// κ of every layer's block over the steps.
    pub kappa_trajectory: Vec<LayerKappa>,
    /// Final test accuracy.
    pub final_test_acc: f64,
    /// Final training loss.
    pub final_train_loss: f64,
    /// Settings used.
    pub config: TrainConfig,
    /// Comparison only: the target accuracy of the time-to-accuracy measure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_acc: Option<f64>,
    /// Comparison only: charged time to the target accuracy (`null`: not reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_target_s: Option<Option<f64>>,
}

/// `(step, κ)` points of one layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerKappa {
    /// Layer index.
    pub layer: usize,
    /// `(step, κ)` pairs.
    pub points: Vec<(usize, f64)>,
}

const TIME_NOTE: &str =
    "time_s is charged training time; for qnewton, quantum-routed solves are charged their modelled time";

impl RunSummary {
    /// The summary of `r` under `label`.
    pub fn new(label: &str, r: &TrainResult) -> Self {
        RunSummary {
            label: label.into(),
            optimizer: r.optimizer,
            dataset: r.dataset.clone(),
            curves: r.curve.clone(),
            time_s: r.time_s,
            time_includes_modelled_quantum: r.time_includes_modelled,
            time_note: TIME_NOTE,
            time_breakdown: r.time.clone(),
            wall_s: r.wall_s,
            blocks_quantum: r.blocks_quantum,
            blocks_classical: r.blocks_classical,
            kappa_trajectory: experiment::kappa_trajectory(&r.blocks)
                .into_iter()
                .enumerate()
                .map(|(layer, points)| LayerKappa { layer, points })
                .collect(),
            final_test_acc: r.final_test_acc,
            final_train_loss: r.final_train_loss,
            config: r.config.clone(),
            target_acc: None,
            time_to_target_s: None,
        }
    }
    /// The summary of a comparison run, with its time to `target`.
    pub fn of_comparison(r: &LabelledRun, target: Option<f64>) -> Self {
        let mut s = Self::new(&r.label, &r.result);
        s.target_acc = target;
        s.time_to_target_s = target.map(|_| r.time_to_target_s);
        s
    }
}

/// What [`run`] produced.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RunOutput {
    /// One optimiser (JSON: the [`RunSummary`] itself).
    Single(Box<RunSummary>),
    /// The comparison (JSON: `{dataset, runs, out, target_acc}`).
    Compare {
        /// Dataset name.
        dataset: String,
        /// One summary per run.
        runs: Vec<RunSummary>,
        /// Directory holding `report.md`, the plots and `runs.json`.
        out: PathBuf,
        /// Target accuracy of the time-to-accuracy column.
        target_acc: Option<f64>,
        /// The report (also written to `out/report.md`).
        #[serde(skip)]
        report: Report,
    },
}

impl RunOutput {
    /// Human-readable result: one line for a single run, the Markdown report for the comparison.
    pub fn text(&self) -> String {
        match self {
            RunOutput::Single(r) => format!(
                "{}: test acc {:.3}, train loss {:.4}, time {:.3}s{} (wall {:.1}s), blocks quantum/classical {}/{}",
                r.optimizer,
                r.final_test_acc,
                r.final_train_loss,
                r.time_s,
                if r.time_includes_modelled_quantum {
                    " incl. modelled quantum solves"
                } else {
                    ""
                },
                r.wall_s,
                r.blocks_quantum,
                r.blocks_classical
            ),
            RunOutput::Compare { report, .. } => report.as_markdown().to_string(),
        }
    }
}

/// Progress of [`run`].
#[derive(Debug)]
pub enum Event<'a> {
    /// A comparison run starts (its label).
    Training(&'a str),
    /// A single run reached an evaluation point.
    Eval(&'a CurvePoint),
    /// The comparison's report was written here.
    Report(&'a std::path::Path),
}

/// Loads `cfg`'s dataset and splits it 80/20 with `seed`.
pub fn load_split(cfg: &RunConfig) -> Result<(Dataset, Dataset)> {
    let d = match cfg.dataset {
        DatasetKind::Digits => data::digits(cfg.offline)?,
        DatasetKind::FashionMnist => data::fashion_mnist("train", cfg.fashion_limit, cfg.pool)?,
        DatasetKind::Blobs => data::blobs(2000, 16, 10, cfg.train.seed),
    };
    Ok(d.split(0.2, cfg.train.seed))
}

/// Runs `tessera qnewton train`.
pub fn run(cfg: &RunConfig, mut on_event: impl FnMut(Event<'_>)) -> Result<RunOutput> {
    let (tr, te) = load_split(cfg)?;
    match cfg.optimizer {
        OptimizerChoice::One(opt) => {
            let mut c = cfg.train.clone();
            c.optimizer = opt;
            let res = train::train(&c, &tr, &te, |p| on_event(Event::Eval(p)))?;
            if let Some(out) = &cfg.out {
                RunDir::at(out)?.write_json("run.json", &res)?;
            }
            Ok(RunOutput::Single(Box::new(RunSummary::new(
                opt.name(),
                &res,
            ))))
        }
        OptimizerChoice::All => {
            let mut newton = cfg.train.clone();
            newton.optimizer = Optimizer::Newton;
            let cc = CompareConfig {
                newton,
                first_order_steps: cfg.first_order_steps,
                gate_times: cfg.gate_times.clone(),
                target_fraction: cfg.target_fraction,
            };
            let runs = experiment::compare(&cc, &tr, &te, |l| on_event(Event::Training(l)))?;
            let dir = match &cfg.out {
                Some(p) => RunDir::at(p)?,
                None => RunDir::fresh("runs", "qnewton")?,
            };
            let report = experiment::comparison_report(&runs, dir.path(), "", cfg.target_fraction)?;
            report.write(dir.file("report.md"))?;
            dir.write_json("runs.json", &runs)?;
            on_event(Event::Report(&dir.file("report.md")));
            let target = experiment::target_accuracy(&runs, cfg.target_fraction);
            Ok(RunOutput::Compare {
                dataset: tr.name.clone(),
                runs: runs
                    .iter()
                    .map(|r| RunSummary::of_comparison(r, target))
                    .collect(),
                out: dir.path().to_path_buf(),
                target_acc: target,
                report,
            })
        }
    }
}

/// Everything `tessera qnewton hhl` needs.
#[derive(Debug, Clone)]
pub struct HhlRunConfig {
    /// Matrix order (1..=16).
    pub dim: usize,
    /// Exact condition number of the random SPD test matrix.
    pub kappa: f64,
    /// Clock qubits.
    pub clock: usize,
    /// Seed for the matrix and right-hand side.
    pub seed: u64,
    /// Also sweep fidelity over clock qubits and κ.
    pub sweep: bool,
}

/// What [`hhl_run`] produced (the `tessera qnewton hhl --json` object).
#[derive(Debug, Clone, Serialize)]
pub struct HhlRun {
    /// Matrix order.
    pub dim: usize,
    /// κ of the test matrix.
    pub kappa: f64,
    /// Clock qubits.
    pub clock_qubits: usize,
    /// Qubits in the whole register.
    pub total_qubits: usize,
    /// Fidelity against the classical solve.
    pub fidelity: f64,
    /// Post-selection success probability.
    pub success_probability: f64,
    /// The normalised HHL solution.
    pub solution: Vec<f64>,
    /// The normalised classical solution.
    pub classical: Vec<f64>,
    /// With `sweep`: fidelity against clock qubits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_clock_qubits: Option<Vec<HhlPoint>>,
    /// With `sweep`: fidelity against κ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_kappa: Option<Vec<HhlPoint>>,
}

impl HhlRun {
    /// Human-readable result (one line, plus the sweep tables).
    pub fn text(&self) -> String {
        let mut s = format!(
            "HHL N={} κ={:.2} clock={} ({} qubits): fidelity {:.6}, success probability {:.3e}",
            self.dim,
            self.kappa,
            self.clock_qubits,
            self.total_qubits,
            self.fidelity,
            self.success_probability
        );
        if let (Some(c), Some(k)) = (&self.by_clock_qubits, &self.by_kappa) {
            s.push('\n');
            s.push_str(experiment::hhl_report(c, k).as_markdown());
        }
        s
    }
}

/// Largest system dimension `hhl` simulates (the statevector is `dim × 2^clock` complex amplitudes).
pub const MAX_HHL_DIM: usize = 1 << 10;
/// Most clock qubits `hhl` simulates.
pub const MAX_HHL_CLOCK: usize = 16;

/// Runs `tessera qnewton hhl`: one exact HHL solve on a random SPD block (and the sweeps).
pub fn hhl_run(cfg: &HhlRunConfig) -> Result<HhlRun> {
    // The statevector holds dim × 2^clock amplitudes: bound both before anything is allocated.
    if !(2..=MAX_HHL_DIM).contains(&cfg.dim) {
        return Err(crate::QnError::invalid(format!(
            "hhl --dim must lie in 2..={MAX_HHL_DIM} (got {})",
            cfg.dim
        )));
    }
    if cfg.clock == 0 || cfg.clock > MAX_HHL_CLOCK {
        return Err(crate::QnError::invalid(format!(
            "hhl --clock must lie in 1..={MAX_HHL_CLOCK} (got {})",
            cfg.clock
        )));
    }
    let m = random_symmetric(cfg.dim, cfg.kappa, false, cfg.seed)?;
    let b = random_rhs(cfg.dim, cfg.seed);
    let r = hhl_solve(
        &m,
        &b,
        &HhlConfig {
            clock_qubits: cfg.clock,
            ..HhlConfig::default()
        },
    )?;
    let (by_clock_qubits, by_kappa) = if cfg.sweep {
        let (c, k) = experiment::hhl_sweeps(cfg.dim, cfg.kappa, cfg.clock, cfg.seed)?;
        (Some(c), Some(k))
    } else {
        (None, None)
    };
    Ok(HhlRun {
        dim: cfg.dim,
        kappa: r.kappa,
        clock_qubits: r.clock_qubits,
        total_qubits: r.total_qubits,
        fidelity: r.fidelity,
        success_probability: r.success_probability,
        solution: r.solution,
        classical: r.classical,
        by_clock_qubits,
        by_kappa,
    })
}
