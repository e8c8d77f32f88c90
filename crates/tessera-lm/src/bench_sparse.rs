//! `tessera bench sparse`: decode speed and peak memory of a pruned model on its dense f32 path vs its compressed
//! sparse path ([`crate::sparse`]), same model, same threads, each run in its own process, interleaved; plus a
//! check that both paths give the same logits.
//!
//! Also the small magnitude pruner the benchmark uses to make its own pruned directories ([`magnitude_mask`],
//! [`prune_by_magnitude`]): keep the largest |w| per matrix (unstructured) or per group of M (N:M). It is a
//! baseline for benchmarking the formats, not a pruning method (those live in `tessera-prune`).
use crate::error::{LmError, Result};
use crate::model::Llama;
use crate::speed::{run_worker, EngineRuns, Spread, WorkerCommand};
use crate::weights::WeightDtype;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which weights a magnitude mask keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaskPattern {
    /// Prune this fraction of every matrix (in `[0, 1)`), smallest |w| first.
    Unstructured(f64),
    /// Keep the `n` largest |w| of every group of `m` consecutive weights in a row.
    Nm(usize, usize),
}

impl fmt::Display for MaskPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskPattern::Unstructured(r) => write!(f, "{r}"),
            MaskPattern::Nm(n, m) => write!(f, "{n}:{m}"),
        }
    }
}

impl FromStr for MaskPattern {
    type Err = LmError;
    /// `N:M` (0 < N < M) or a sparsity ratio in `[0, 1)`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            LmError::Invalid(format!(
                "pattern `{s}`: expected N:M with 0 < N < M, or a sparsity in [0, 1)"
            ))
        };
        if let Some((n, m)) = s.split_once(':') {
            let (n, m): (usize, usize) = (
                n.trim().parse().map_err(|_| bad())?,
                m.trim().parse().map_err(|_| bad())?,
            );
            if n == 0 || n >= m || m > 256 {
                return Err(bad());
            }
            return Ok(MaskPattern::Nm(n, m));
        }
        let r: f64 = s.trim().parse().map_err(|_| bad())?;
        if !(0.0..1.0).contains(&r) {
            return Err(bad());
        }
        Ok(MaskPattern::Unstructured(r))
    }
}

/// The 0/1 magnitude mask of a row-major `rows × cols` matrix under `p`.
pub fn magnitude_mask(w: &[f32], rows: usize, cols: usize, p: MaskPattern) -> Result<Vec<f32>> {
    if w.len() != rows * cols {
        return Err(LmError::Invalid(format!(
            "{} weights for {rows}×{cols}",
            w.len()
        )));
    }
    let mut keep = vec![0f32; w.len()];
    match p {
        MaskPattern::Unstructured(r) => {
            let prune = ((w.len() as f64) * r).round() as usize;
            let mut order: Vec<usize> = (0..w.len()).collect();
            order.sort_unstable_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()).then(a.cmp(&b)));
            for &i in &order[prune..] {
                keep[i] = 1.0;
            }
        }
        MaskPattern::Nm(n, m) => {
            if !cols.is_multiple_of(m) {
                return Err(LmError::Invalid(format!(
                    "width {cols} is not a multiple of M = {m}"
                )));
            }
            for (g, grp) in w.chunks_exact(m).enumerate() {
                let mut o: Vec<usize> = (0..m).collect();
                o.sort_unstable_by(|&a, &b| grp[b].abs().total_cmp(&grp[a].abs()).then(a.cmp(&b)));
                for &j in &o[..n] {
                    keep[g * m + j] = 1.0;
                }
            }
        }
    }
    Ok(keep)
}

/// Masks every projection of every block by magnitude (baked masks, [`crate::Linear::set_mask`]); the head and
/// the embedding stay dense. Returns the overall sparsity of the projections.
pub fn prune_by_magnitude(model: &mut Llama, p: MaskPattern) -> Result<f64> {
    let (mut zeros, mut total) = (0usize, 0usize);
    for b in &mut model.blocks {
        for (_, l) in b.linears_mut() {
            let (rows, cols) = l.dims();
            let w: Vec<f32> = l.dense_weight()?.flatten_all()?.to_vec1()?;
            let keep = magnitude_mask(&w, rows, cols, p)?;
            zeros += keep.iter().filter(|&&k| k == 0.0).count();
            total += keep.len();
            let m = candle_core::Tensor::from_vec(keep, (rows, cols), &candle_core::Device::Cpu)?;
            l.set_mask(m)?;
        }
    }
    Ok(zeros as f64 / total.max(1) as f64)
}

/// Settings of [`bench_sparse`].
#[derive(Debug, Clone)]
pub struct SparseBenchConfig {
    /// A pruned HF directory (with `masks.safetensors`).
    pub model: PathBuf,
    /// Threads per engine.
    pub threads: usize,
    /// Greedy decode steps.
    pub steps: usize,
    /// Runs per path, interleaved (dense, sparse, dense, sparse, …).
    pub reps: usize,
}

/// The `tessera bench sparse --json` object.
#[derive(Debug, Clone, Serialize)]
pub struct SparseBench {
    /// The pruned directory.
    pub model: PathBuf,
    /// Threads per engine.
    pub threads: usize,
    /// Greedy decode steps.
    pub steps: usize,
    /// Runs per path.
    pub reps: usize,
    /// Overall sparsity of the projections (zeros / weights), from the masks.
    pub sparsity: f64,
    /// Linear layers per format on the sparse path (`2:4`, `bitmask`, `f32`).
    pub formats: std::collections::BTreeMap<String, usize>,
    /// Bytes of the linear layers (head included): dense path.
    pub dense_linear_bytes: usize,
    /// Bytes of the linear layers (head included): sparse path.
    pub sparse_linear_bytes: usize,
    /// Median decode tokens/s of the dense f32 path.
    pub dense_tokens_per_s: f64,
    /// Median decode tokens/s of the sparse path.
    pub sparse_tokens_per_s: f64,
    /// Median over paired runs of sparse / dense decode tokens/s.
    pub speedup: f64,
    /// Spread of the paired speed-ups.
    pub speedup_spread: Spread,
    /// Median peak RSS of the dense path's processes, MiB.
    pub dense_peak_rss_mb: Option<f64>,
    /// Median peak RSS of the sparse path's processes, MiB.
    pub sparse_peak_rss_mb: Option<f64>,
    /// Every run of the dense path.
    pub dense: EngineRuns,
    /// Every run of the sparse path.
    pub sparse: EngineRuns,
    /// Largest |Δ| between the two paths' last-position logits of the benchmark prompt.
    pub logits_max_abs_diff: f32,
    /// Largest |logit| of the dense path (the scale of the difference).
    pub logits_scale: f32,
    /// Whether the difference is within 1e-4 of the scale (f32 summation order only).
    pub logits_match: bool,
    /// Whether the two paths pick the same greedy token.
    pub same_argmax: bool,
}

impl fmt::Display for SparseBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}  sparsity {:.3}  formats {:?}  threads {}  {} steps  {} interleaved runs per path",
            self.model.display(),
            self.sparsity,
            self.formats,
            self.threads,
            self.steps,
            self.reps
        )?;
        writeln!(
            f,
            "dense f32: {} tok/s  peak {:.0} MiB  linear weights {:.1} MiB",
            self.dense.decode,
            self.dense_peak_rss_mb.unwrap_or(0.0),
            self.dense_linear_bytes as f64 / 1048576.0
        )?;
        writeln!(
            f,
            "sparse:    {} tok/s  peak {:.0} MiB  linear weights {:.1} MiB",
            self.sparse.decode,
            self.sparse_peak_rss_mb.unwrap_or(0.0),
            self.sparse_linear_bytes as f64 / 1048576.0
        )?;
        writeln!(f, "speed-up (paired runs): {}", self.speedup_spread)?;
        write!(
            f,
            "logits: max |Δ| {:.2e} of scale {:.2} ({}), same greedy token: {}",
            self.logits_max_abs_diff,
            self.logits_scale,
            if self.logits_match {
                "match"
            } else {
                "MISMATCH"
            },
            self.same_argmax
        )
    }
}

/// Runs `tessera bench sparse`: the logits check in this process, then `reps` rounds of one dense and one
/// sparse worker process each ([`crate::speed::decode_worker`] with `--dtype f32` / `--dtype sparse`).
pub fn bench_sparse(cfg: &SparseBenchConfig, worker: &WorkerCommand) -> Result<SparseBench> {
    if !(1..=crate::speed::MAX_BENCH_REPS).contains(&cfg.reps) {
        return Err(LmError::Invalid(format!(
            "--reps must lie in 1..={} (got {})",
            crate::speed::MAX_BENCH_REPS,
            cfg.reps
        )));
    }
    if !(1..=crate::speed::MAX_BENCH_THREADS).contains(&cfg.threads) {
        return Err(LmError::Invalid(format!(
            "--threads must lie in 1..={} (got {})",
            crate::speed::MAX_BENCH_THREADS,
            cfg.threads
        )));
    }
    if !(1..=crate::speed::MAX_BENCH_STEPS).contains(&cfg.steps) {
        return Err(LmError::Invalid(format!(
            "--steps must lie in 1..={} (got {})",
            crate::speed::MAX_BENCH_STEPS,
            cfg.steps
        )));
    }
    if !cfg.model.join(crate::load::MASKS_FILE).is_file() {
        return Err(LmError::Invalid(format!(
            "{} is not a pruned model directory (no {})",
            cfg.model.display(),
            crate::load::MASKS_FILE
        )));
    }
    // Logits check, and the facts about the two representations.
    let mut m = crate::load(&cfg.model)?;
    let dense_summary = m.weight_summary();
    let (mut zeros, mut total) = (0usize, 0usize);
    for b in &m.blocks {
        for (_, l) in b.linears() {
            let (o, i) = l.dims();
            total += o * i;
            if let Some(mask) = l.mask() {
                let kept = mask.sum_all()?.to_scalar::<f32>()? as usize;
                zeros += o * i - kept;
            }
        }
    }
    let prompt = m.tokenizer()?.encode(crate::speed::BENCH_PROMPT)?;
    let layers = m.config.num_hidden_layers;
    let dense_logits = m.next_logits(&prompt, &mut crate::Cache::new(layers))?;
    m.to_inference(WeightDtype::Sparse)?;
    let sparse_summary = m.weight_summary();
    let sparse_logits = m.next_logits(&prompt, &mut crate::Cache::new(layers))?;
    drop(m);
    let diff = dense_logits
        .iter()
        .zip(&sparse_logits)
        .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
    let scale = dense_logits.iter().fold(0f32, |a, x| a.max(x.abs()));
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    let (mut dense, mut sparse) = (Vec::new(), Vec::new());
    for _ in 0..cfg.reps {
        dense.push(run_worker(worker, &cfg.model, cfg.steps, cfg.threads, WeightDtype::F32)?.speed);
        sparse.push(
            run_worker(
                worker,
                &cfg.model,
                cfg.steps,
                cfg.threads,
                WeightDtype::Sparse,
            )?
            .speed,
        );
    }
    let ratios: Vec<f64> = dense
        .iter()
        .zip(&sparse)
        .map(|(d, s)| s.decode_tokens_per_s / d.decode_tokens_per_s)
        .collect();
    let speedup_spread = Spread::of(&ratios).expect("reps ≥ 1");
    let dense = EngineRuns::from_runs(dense).expect("reps ≥ 1");
    let sparse = EngineRuns::from_runs(sparse).expect("reps ≥ 1");
    Ok(SparseBench {
        model: cfg.model.clone(),
        threads: cfg.threads,
        steps: cfg.steps,
        reps: cfg.reps,
        sparsity: zeros as f64 / total.max(1) as f64,
        formats: sparse_summary.formats,
        dense_linear_bytes: dense_summary.linear_bytes,
        sparse_linear_bytes: sparse_summary.linear_bytes,
        dense_tokens_per_s: dense.median.decode_tokens_per_s,
        sparse_tokens_per_s: sparse.median.decode_tokens_per_s,
        speedup: speedup_spread.median,
        speedup_spread,
        dense_peak_rss_mb: dense.median.peak_rss_mb,
        sparse_peak_rss_mb: sparse.median.peak_rss_mb,
        dense,
        sparse,
        logits_max_abs_diff: diff,
        logits_scale: scale,
        logits_match: diff <= 1e-4 * scale.max(1.0),
        same_argmax: argmax(&dense_logits) == argmax(&sparse_logits),
    })
}

/// Writes a magnitude-pruned copy of the model at `src` into `out` (an HF directory with masks), for the
/// benchmark; returns the sparsity.
pub fn write_magnitude_pruned(src: &Path, p: MaskPattern, out: &Path) -> Result<f64> {
    let mut m = crate::load(src)?;
    let s = prune_by_magnitude(&mut m, p)?;
    crate::export::export_hf_dir(&m, out)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_masks_hit_the_pattern() {
        let w: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 31.5) / 10.0)
            .collect();
        let k = magnitude_mask(&w, 4, 16, MaskPattern::Nm(2, 4)).unwrap();
        for g in k.chunks(4) {
            assert_eq!(g.iter().sum::<f32>(), 2.0);
        }
        let k = magnitude_mask(&w, 4, 16, MaskPattern::Unstructured(0.75)).unwrap();
        assert_eq!(k.iter().sum::<f32>(), 16.0);
        let kept_min = w
            .iter()
            .zip(&k)
            .filter(|(_, &k)| k == 1.0)
            .map(|(w, _)| w.abs())
            .fold(f32::MAX, f32::min);
        let pruned_max = w
            .iter()
            .zip(&k)
            .filter(|(_, &k)| k == 0.0)
            .map(|(w, _)| w.abs())
            .fold(0.0, f32::max);
        assert!(kept_min >= pruned_max);
        assert!("4:4".parse::<MaskPattern>().is_err());
        assert!("1.0".parse::<MaskPattern>().is_err());
        assert_eq!("2:4".parse::<MaskPattern>().unwrap(), MaskPattern::Nm(2, 4));
    }
}
