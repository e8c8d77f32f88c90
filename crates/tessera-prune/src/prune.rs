//! The typed entry point of `tessera prune`: [`PruneConfig`] → [`run`] → [`PruneResult`], and the per-layer
//! dispatch [`prune_linear`] shared by the sequential protocol.
use crate::allocation::Allocation;
use crate::calib::{self, CalibConfig, WindowMode};
use crate::error::{PruneError, Result};
use crate::pattern::{Mask, Pattern};
use crate::protocol::{prune_sequential, weight_name, Propagate, PrunedMatrix, SequentialOptions};
use crate::sparsegpt::{sparsegpt, SparseGptOptions};
use crate::{checkpoint_dir, eval};
use candle_core::Tensor;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;
use tessera_lm::linear::InputStats;
use tessera_lm::perplexity::PerplexityReport;
use tessera_lm::{Linear, Llama, Proj};

/// A pruning algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `|W|`, one threshold per matrix ([`crate::magnitude`]).
    Magnitude,
    /// `|W|·‖X‖`, per output row ([`crate::wanda`]).
    Wanda,
    /// OBS updates with the Hessian `2XᵀX` ([`crate::sparsegpt`]).
    #[serde(rename = "sparsegpt")]
    SparseGpt,
}

impl Method {
    /// Whether the method needs calibration statistics.
    pub fn needs_data(self) -> bool {
        self != Method::Magnitude
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Magnitude => "magnitude",
            Method::Wanda => "wanda",
            Method::SparseGpt => "sparsegpt",
        })
    }
}

impl FromStr for Method {
    type Err = PruneError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "magnitude" => Ok(Method::Magnitude),
            "wanda" => Ok(Method::Wanda),
            "sparsegpt" => Ok(Method::SparseGpt),
            other => Err(PruneError::Invalid(format!(
                "unknown pruning method `{other}` (magnitude, wanda, sparsegpt)"
            ))),
        }
    }
}

/// The weight of `l` as a row-major f32 vector with its `(rows, cols)`.
pub fn weight_rows(l: &Linear) -> Result<(Vec<f32>, usize, usize)> {
    let (rows, cols) = l.dims();
    let w = l
        .weight()
        .as_tensor()
        .detach()
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok((w, rows, cols))
}

/// Prunes one linear layer in place with `method` and returns its mask: the mask is baked in
/// (`Linear::set_mask`: pruned weights become exact zeros) and, for SparseGPT, the remaining weights are
/// replaced by the OBS-updated ones. `stats` are the layer's calibration statistics (not needed by magnitude;
/// SparseGPT needs the Gram matrix). The mask is verified against the pattern before it is applied.
pub fn prune_linear(
    method: Method,
    l: &mut Linear,
    stats: Option<&InputStats>,
    pattern: &Pattern,
    sgpt: &SparseGptOptions,
) -> Result<Mask> {
    let (w, rows, cols) = weight_rows(l)?;
    let need = || PruneError::Invalid(format!("{method} needs calibration statistics"));
    let (mask, new_w) = match method {
        Method::Magnitude => {
            let m = crate::magnitude::magnitude_mask(&w, rows, cols, pattern)?;
            m.verify(pattern, false)?;
            (m, None)
        }
        Method::Wanda => {
            let m = crate::wanda::wanda_mask(&w, rows, cols, stats.ok_or_else(need)?, pattern)?;
            m.verify(pattern, true)?;
            (m, None)
        }
        Method::SparseGpt => {
            let o = sparsegpt(&w, rows, cols, stats.ok_or_else(need)?, pattern, sgpt)?;
            if let Pattern::NM { .. } = pattern {
                o.mask.verify(pattern, true)?;
            }
            (o.mask, Some(o.weight))
        }
    };
    let dev = l.weight().device().clone();
    if let Some(nw) = new_w {
        l.weight().set(&Tensor::from_vec(nw, (rows, cols), &dev)?)?;
    }
    l.set_mask(mask.to_tensor(&dev)?)?;
    Ok(mask)
}

/// Prunes every projection `allocation` names by magnitude (no data needed).
pub fn prune_magnitude(model: &mut Llama, allocation: &Allocation) -> Result<Vec<PrunedMatrix>> {
    allocation.validate(model.blocks.len())?;
    let mut out = vec![];
    for layer in 0..model.blocks.len() {
        for p in Proj::ALL {
            let Some(pat) = allocation.pattern_for(layer, p) else {
                continue;
            };
            let l = model.blocks[layer].linear_mut(p);
            let (rows, cols) = l.dims();
            let m = prune_linear(
                Method::Magnitude,
                l,
                None,
                &pat,
                &SparseGptOptions::default(),
            )?;
            out.push(PrunedMatrix {
                name: weight_name(layer, p),
                layer,
                proj: p,
                rows,
                cols,
                pattern: pat,
                sparsity: m.sparsity(),
            });
        }
    }
    Ok(out)
}

/// Everything `tessera prune` needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneConfig {
    /// The model file (GGUF) or HF directory.
    pub model: PathBuf,
    /// The algorithm.
    pub method: Method,
    /// Sparsity per projection.
    pub allocation: Allocation,
    /// Calibration data (ignored by magnitude).
    pub calib: CalibConfig,
    /// Which outputs feed the next block.
    pub propagate: Propagate,
    /// SparseGPT settings.
    pub sparsegpt: SparseGptOptions,
    /// The pruned checkpoint directory to write (replaced atomically).
    pub out: PathBuf,
    /// Perplexity of the pruned model, if asked.
    pub eval: Option<eval::EvalConfig>,
}

/// The calibration actually used.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CalibUsed {
    /// The text file.
    pub path: PathBuf,
    /// Tokens in the text.
    pub text_tokens: usize,
    /// Windows.
    pub nsamples: usize,
    /// Tokens per window.
    pub seqlen: usize,
    /// Random or first windows.
    pub windows: WindowMode,
    /// Seed of the random starts.
    pub seed: u64,
}

/// Sparsity measured on one matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MatrixSparsity {
    /// HF weight name.
    pub name: String,
    /// `(rows, cols)`.
    pub shape: [usize; 2],
    /// The pattern applied.
    pub pattern: Pattern,
    /// Ratio of exact zeros in the weight (measured after pruning).
    pub sparsity: f64,
    /// Ratio pruned by the mask (verified against the pattern: N:M group by group, a ratio row by row for
    /// Wanda, per matrix for magnitude, per 128-column block for SparseGPT). `sparsity` exceeds it only where a
    /// kept weight happens to be exactly 0.
    pub mask_sparsity: f64,
}

/// What `tessera prune --json` prints (and `prune.json` in the output directory holds).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneResult {
    /// The source model.
    pub model: PathBuf,
    /// The algorithm.
    pub method: Method,
    /// The default pattern (`2:4`, `0.5`).
    pub pattern: Pattern,
    /// Sparsity per projection.
    pub allocation: Allocation,
    /// Zeros / weights over every pruned matrix (measured on the weights).
    pub sparsity: f64,
    /// Pruned weights (exact zeros in the pruned matrices).
    pub zeros: usize,
    /// Weights in the pruned matrices.
    pub pruned_matrix_weights: usize,
    /// Per matrix.
    pub matrices: Vec<MatrixSparsity>,
    /// Seconds of the pruning itself (calibration forward passes, statistics, masks, updates), without loading
    /// the model and writing the checkpoint.
    pub seconds: f64,
    /// Calibration (none for magnitude).
    pub calibration: Option<CalibUsed>,
    /// Which outputs fed the next block.
    pub propagate: Propagate,
    /// SparseGPT settings (when used).
    pub sparsegpt: Option<SparseGptOptions>,
    /// The checkpoint written.
    pub out: PathBuf,
    /// Perplexity of the pruned model, when asked.
    pub perplexity: Option<PerplexityReport>,
}

/// Prunes `model` in memory as `cfg` says (its `model`, `out` and `eval` are not used). Returns the matrices,
/// the calibration used and the seconds spent.
pub fn prune_model(
    model: &mut Llama,
    cfg: &PruneConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<PrunedMatrix>, Option<CalibUsed>, f64)> {
    cfg.allocation.validate(model.blocks.len())?;
    if !cfg.method.needs_data() {
        let t0 = Instant::now();
        let m = prune_magnitude(model, &cfg.allocation)?;
        return Ok((m, None, t0.elapsed().as_secs_f64()));
    }
    let cal = calib::load(model, &cfg.calib)?;
    let t0 = Instant::now();
    let m = prune_sequential(
        model,
        &cal.windows,
        SequentialOptions {
            method: cfg.method,
            allocation: &cfg.allocation,
            propagate: cfg.propagate,
            sparsegpt: cfg.sparsegpt,
            inspect: None,
            progress,
        },
    )?;
    let used = CalibUsed {
        path: cal.path,
        text_tokens: cal.text_tokens,
        nsamples: cfg.calib.nsamples,
        seqlen: cfg.calib.seqlen,
        windows: cfg.calib.windows,
        seed: cfg.calib.seed,
    };
    Ok((m, Some(used), t0.elapsed().as_secs_f64()))
}

/// Measures the zeros of every matrix in `pruned` on the model's weights.
pub fn measure(model: &Llama, pruned: &[PrunedMatrix]) -> Result<Vec<MatrixSparsity>> {
    pruned
        .iter()
        .map(|p| {
            let (w, rows, cols) = weight_rows(model.blocks[p.layer].linear(p.proj))?;
            let z = w.iter().filter(|&&x| x == 0.0).count();
            Ok(MatrixSparsity {
                name: p.name.clone(),
                shape: [rows, cols],
                pattern: p.pattern,
                sparsity: z as f64 / (rows * cols) as f64,
                mask_sparsity: p.sparsity,
            })
        })
        .collect()
}

/// Runs `tessera prune`: loads the model, prunes it, writes the pruned checkpoint directory
/// ([`write_pruned_dir`]) with `prune.json`, and optionally measures its perplexity. Every argument is checked
/// before anything is written; `cfg.out` is replaced atomically (and only when it is absent, empty or a pruned
/// checkpoint).
pub fn run(cfg: &PruneConfig, progress: &mut dyn FnMut(usize, usize)) -> Result<PruneResult> {
    cfg.allocation.default.validate()?;
    checkpoint_dir::check_replaceable(&cfg.out)?;
    let mut model = tessera_lm::load(&cfg.model)?;
    cfg.allocation.validate(model.blocks.len())?;
    if cfg.method.needs_data() {
        cfg.calib.validate(model.max_positions())?;
    }
    if let Some(e) = &cfg.eval {
        e.validate(model.max_positions())?;
    }
    let (pruned, calibration, seconds) = prune_model(&mut model, cfg, progress)?;
    let matrices = measure(&model, &pruned)?;
    let weights: usize = matrices.iter().map(|m| m.shape[0] * m.shape[1]).sum();
    let zeros: usize = matrices
        .iter()
        .map(|m| (m.sparsity * (m.shape[0] * m.shape[1]) as f64).round() as usize)
        .sum();
    let perplexity = match &cfg.eval {
        Some(e) => Some(eval::perplexity(&model, e)?),
        None => None,
    };
    let result = PruneResult {
        model: cfg.model.clone(),
        method: cfg.method,
        pattern: cfg.allocation.default,
        allocation: cfg.allocation.clone(),
        sparsity: if weights == 0 {
            0.0
        } else {
            zeros as f64 / weights as f64
        },
        zeros,
        pruned_matrix_weights: weights,
        matrices,
        seconds,
        calibration,
        propagate: cfg.propagate,
        sparsegpt: (cfg.method == Method::SparseGpt).then_some(cfg.sparsegpt),
        out: cfg.out.clone(),
        perplexity,
    };
    write_pruned_dir(
        &model,
        &cfg.out,
        "prune.json",
        &serde_json::to_value(&result)?,
    )?;
    Ok(result)
}

/// Writes a pruned checkpoint directory: what `tessera_lm::export::export_hf_dir` writes (`model.safetensors`
/// with exact zeros, `config.json`, tokenizer files, `masks.safetensors`) plus `record` as `record_name`,
/// swapped into place atomically.
pub fn write_pruned_dir(
    model: &Llama,
    dir: &Path,
    record_name: &str,
    record: &serde_json::Value,
) -> Result<()> {
    checkpoint_dir::write(model, dir, record_name, record)
}
