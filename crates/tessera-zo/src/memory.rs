//! `tessera zo memory`: measured peak memory of one training step per optimizer, next to plain inference on the
//! same batch. Every case runs in its own process (the CLI re-runs its binary as a worker), so one case's
//! allocations and resident pages never count towards another's.
//!
//! A case loads the model, prepares the scheme, takes the batch (the first `batch` SST-2 training examples of
//! seed 0), then opens a [`HeapScope`] and runs two steps (inference: two loss evaluations). The figures are the
//! highest **live heap** inside the scope (the counting allocator; model weights included, since they are live),
//! the peak RSS, and the wall time of the second step. The optimizer state allocated in the first step counts, as
//! it stays live for the whole run.
use crate::batch;
use crate::error::{Result, ZoError};
use crate::optimizer::Optimizer;
use crate::run::{self, Trainer, ZoConfig};
use crate::scheme::Scheme;
use crate::task::{self, Task};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use tessera_core::alloc::HeapScope;

/// Settings of `tessera zo memory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryConfig {
    /// Model name or path.
    pub model: String,
    /// Scheme.
    pub scheme: Scheme,
    /// Examples in the batch.
    pub batch: usize,
    /// Optimizers measured (default: all that can run the scheme).
    pub optimizers: Vec<Optimizer>,
    /// Folder holding the SST-2 files (default: the shared data root).
    pub data_dir: Option<PathBuf>,
    /// Never download the model.
    pub offline: bool,
}

/// One case's measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// `inference` or the optimizer key.
    pub case: String,
    /// Highest live heap during the steps (weights included), bytes.
    pub peak_heap_bytes: usize,
    /// Live heap when the steps started (model, data, scheme prepared), bytes.
    pub start_heap_bytes: usize,
    /// `peak − start`, bytes.
    pub peak_growth_bytes: usize,
    /// Whether the counting allocator was installed (else the heap figures are 0).
    pub heap_counted: bool,
    /// Peak resident memory of the worker process, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Wall time of the second step (or loss evaluation), seconds.
    pub seconds: f64,
    /// Tokens in the batch.
    pub tokens: usize,
}

/// The report of `tessera zo memory`: one entry per case under its key (`inference`, `zo_sgd`, ...), and the
/// ratios to inference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Model.
    pub model: String,
    /// Scheme.
    pub scheme: Scheme,
    /// Batch size.
    pub batch: usize,
    /// Every case by key.
    #[serde(flatten)]
    pub cases: BTreeMap<String, MemoryEntry>,
    /// Peak heap of each case / peak heap of inference.
    pub heap_vs_inference: BTreeMap<String, f64>,
    /// Peak RSS of each case / peak RSS of inference.
    pub rss_vs_inference: BTreeMap<String, f64>,
    /// Step time of each case / one inference loss evaluation.
    pub step_vs_forward: BTreeMap<String, f64>,
    /// The targets: ZO-SGD heap ≤ 1.1× inference, FO-Adam ≥ 3×, ZO-SGD step ≤ 2.3× a forward pass.
    pub targets: BTreeMap<String, bool>,
}

/// The optimizers measured by default.
pub fn default_optimizers() -> Vec<Optimizer> {
    Optimizer::ALL.to_vec()
}

/// Measures one case (`inference` or an optimizer key) in this process.
pub fn measure_case(cfg: &MemoryConfig, case: &str) -> Result<MemoryEntry> {
    let opt = if case == "inference" {
        None
    } else {
        Some(
            Optimizer::ALL
                .into_iter()
                .find(|o| o.key() == case)
                .ok_or_else(|| ZoError::invalid(format!("unknown memory case `{case}`")))?,
        )
    };
    let path = tessera_core::assets::resolve_model(&cfg.model, cfg.offline)?;
    let mut model = tessera_lm::load(&path)?;
    let data = task::load(Task::Sst2, cfg.data_dir.as_deref(), cfg.batch, 1, 0)?;
    let rc = ZoConfig {
        model: cfg.model.clone(),
        optimizer: opt.unwrap_or(Optimizer::ZoSgd),
        scheme: cfg.scheme,
        batch: cfg.batch,
        ..Default::default()
    };
    let s = run::settings(&rc, &model)?;
    let enc = batch::encode(&model, &data.train)?;
    let tokens = enc
        .iter()
        .map(|e| e.prompt.len() + e.candidates[e.label].len())
        .sum();
    let tun = run::prepare(&mut model, cfg.scheme, 0, &enc)?;
    let mut tr = Trainer::new(&model, tun, enc, s)?;
    let scope = HeapScope::start();
    let mut seconds = 0.0;
    for step in 0..2 {
        let t0 = Instant::now();
        match opt {
            None => {
                tr.loss_of(&tr.batch_at(0))?;
            }
            Some(_) => {
                tr.step(step)?;
            }
        }
        seconds = t0.elapsed().as_secs_f64();
    }
    let r = scope.reading();
    Ok(MemoryEntry {
        case: case.to_string(),
        peak_heap_bytes: r.peak,
        start_heap_bytes: r.start,
        peak_growth_bytes: r.peak_growth,
        heap_counted: tessera_core::alloc::installed(),
        peak_rss_mb: tessera_core::mem::peak_rss_bytes().map(|b| b as f64 / 1048576.0),
        seconds,
        tokens,
    })
}

/// Runs every case of `cfg` through `run_case` (a fresh worker process per case) and compares them.
pub fn memory(
    cfg: &MemoryConfig,
    run_case: &mut dyn FnMut(&str) -> Result<MemoryEntry>,
) -> Result<MemoryReport> {
    if cfg.batch == 0 {
        return Err(ZoError::invalid("--batch must be at least 1"));
    }
    let mut keys = vec!["inference".to_string()];
    let opts = if cfg.optimizers.is_empty() {
        default_optimizers()
    } else {
        cfg.optimizers.clone()
    };
    keys.extend(opts.iter().map(|o| o.key()));
    let mut cases = BTreeMap::new();
    for k in &keys {
        cases.insert(k.clone(), run_case(k)?);
    }
    let inf = cases.get("inference").cloned().expect("measured first");
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let (mut heap, mut rss, mut time) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (k, e) in &cases {
        heap.insert(
            k.clone(),
            ratio(e.peak_heap_bytes as f64, inf.peak_heap_bytes as f64),
        );
        if let (Some(a), Some(b)) = (e.peak_rss_mb, inf.peak_rss_mb) {
            rss.insert(k.clone(), ratio(a, b));
        }
        time.insert(k.clone(), ratio(e.seconds, inf.seconds));
    }
    let mut targets = BTreeMap::new();
    if let Some(&h) = heap.get("zo_sgd") {
        targets.insert("zo_sgd_heap_at_most_1.1x_inference".into(), h <= 1.1);
    }
    if let Some(&h) = heap.get("fo_adam") {
        targets.insert("fo_adam_heap_at_least_3x_inference".into(), h >= 3.0);
    }
    if let Some(&t) = time.get("zo_sgd") {
        targets.insert("zo_sgd_step_at_most_2.3x_forward".into(), t <= 2.3);
    }
    Ok(MemoryReport {
        model: cfg.model.clone(),
        scheme: cfg.scheme,
        batch: cfg.batch,
        cases,
        heap_vs_inference: heap,
        rss_vs_inference: rss,
        step_vs_forward: time,
        targets,
    })
}

impl std::fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peak live heap of one step, scheme {}, batch {}:",
            self.scheme, self.batch
        )?;
        for (k, e) in &self.cases {
            write!(
                f,
                "\n  {k:<14} {:>8.1} MiB  {:>5.2}x inference  {:>6.2} s  ({:.2}x a forward)",
                e.peak_heap_bytes as f64 / 1048576.0,
                self.heap_vs_inference.get(k).copied().unwrap_or(f64::NAN),
                e.seconds,
                self.step_vs_forward.get(k).copied().unwrap_or(f64::NAN)
            )?;
        }
        Ok(())
    }
}
