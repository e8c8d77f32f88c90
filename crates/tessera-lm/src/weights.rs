//! The weight representation of the runtime's linear layer, and the choice between f32 and compact inference forms.
//!
//! Every [`Linear`] holds its weight in one of these forms:
//!
//! | form | held as | computed by | used for |
//! |---|---|---|---|
//! | dense f32 | a candle `Var` (`out × in`) | `kernels.rs` (decode) / candle matmul | everything: training, masks, LoRA, observers, perturbation |
//! | quantized blocks | [`QMatrix`]: Q8_0 / Q4_0 / Q4_1 blocks, the GGUF's own bytes | [`crate::quant`] (8-bit activations) | inference only |
//! | compressed sparse | [`SparseMatrix`]: bitmask + packed f32, or N:M packed f32 + small indices | [`crate::sparse`] | inference only, models with masks |
//!
//! The compact forms ([`CompactWeights`]) are for inference only and chosen explicitly: [`crate::load::load`]
//! always gives f32 (so every caller that attaches a mask, an adapter or an observer, or trains, gets f32 weights),
//! and [`crate::load::load_with`] with [`LoadOptions::dtype`] (the CLI's `--dtype f32|q8_0|file|sparse`) or
//! [`Llama::to_inference`] gives the compact forms. A compact layer refuses masks, adapters and training with an
//! error; its [`Linear::weight`] `Var` is an empty placeholder (`0 × in`), except for a tied head, which keeps the
//! embedding's `Var` beside its Q8_0 copy; [`Linear::dense_weight`] dequantizes. A GGUF loaded with
//! [`WeightDtype::File`] and a tied Q8_0 head has no f32 embedding at all: [`Llama::embed`] is an empty `0 × hidden`
//! placeholder and token rows are dequantized from the head's blocks ([`Linear::lookup_rows`]).
//!
//! [`WeightDtype::File`] means "the file's own representation": a GGUF's blocks (Q8_0, Q4_0, Q4_1 used as they are;
//! F32/F16 tensors stay f32; other block types are dequantized and requantized to Q8_0; the output head in Q8_0),
//! and for a pruned HF directory (one with `masks.safetensors`) the compressed sparse formats, chosen per matrix by
//! [`SparseMatrix::from_masked`]. An unpruned HF directory stays f32.
use crate::error::{LmError, Result};
use crate::linear::Linear;
use crate::model::Llama;
pub use crate::quant::{QFormat, QMatrix};
pub use crate::sparse::SparseMatrix;
use std::fmt;
use std::str::FromStr;

/// Which weight representation inference uses (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightDtype {
    /// Dense f32 everywhere (required for masks with a dense copy, adapters, observers, training).
    #[default]
    F32,
    /// Every projection and the head requantized to Q8_0.
    #[serde(rename = "q8_0")]
    Q8_0,
    /// The file's own representation (GGUF blocks; compressed sparse for a pruned directory; else f32).
    File,
    /// The compressed sparse formats for every masked projection (a pruned model; an error without masks).
    Sparse,
}

impl fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WeightDtype::F32 => "f32",
            WeightDtype::Q8_0 => "q8_0",
            WeightDtype::File => "file",
            WeightDtype::Sparse => "sparse",
        })
    }
}

impl FromStr for WeightDtype {
    type Err = LmError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" => Ok(WeightDtype::F32),
            "q8_0" | "q8" => Ok(WeightDtype::Q8_0),
            "file" => Ok(WeightDtype::File),
            "sparse" => Ok(WeightDtype::Sparse),
            other => Err(LmError::Invalid(format!(
                "unknown dtype `{other}` (expected f32, q8_0, file or sparse)"
            ))),
        }
    }
}

/// Options of [`crate::load::load_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Weight representation (default f32: safe for every hook and for training).
    pub dtype: WeightDtype,
}

/// An inference-only weight representation of a linear layer.
#[derive(Debug, Clone)]
pub enum CompactWeights {
    /// GGUF blocks.
    Quantized(QMatrix),
    /// Compressed sparse.
    Sparse(SparseMatrix),
}

impl CompactWeights {
    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            CompactWeights::Quantized(q) => q.dims(),
            CompactWeights::Sparse(s) => s.dims(),
        }
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            CompactWeights::Quantized(q) => q.bytes(),
            CompactWeights::Sparse(s) => s.bytes(),
        }
    }
    /// The format's name (`q4_1`, `q8_0`, `bitmask`, `2:4`, ...).
    pub fn format_name(&self) -> String {
        match self {
            CompactWeights::Quantized(q) => q.format().to_string(),
            CompactWeights::Sparse(s) => s.format_name(),
        }
    }
    /// `y = x Wᵀ` for `x` of `m × in`, returned as `m × out`.
    pub fn matmul_t(&self, x: &[f32], m: usize) -> Vec<f32> {
        match self {
            CompactWeights::Quantized(q) => q.matmul_t(x, m),
            CompactWeights::Sparse(s) => s.matmul_t(x, m),
        }
    }
    /// Row `r` in f32 (`in` values).
    pub fn decode_row(&self, r: usize, out: &mut [f32]) {
        match self {
            CompactWeights::Quantized(q) => q.dequantize_row(r, out),
            CompactWeights::Sparse(s) => s.decode_row(r, out),
        }
    }
    /// The weight in f32, row-major (dequantized or expanded).
    pub fn to_dense(&self) -> Vec<f32> {
        match self {
            CompactWeights::Quantized(q) => q.dequantize(),
            CompactWeights::Sparse(s) => s.to_dense(),
        }
    }
}

/// How a model's weights are held, for reports (`tessera bench`, `info`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct WeightSummary {
    /// Bytes of every projection and the head (a tied head counted once, in its compact form if any).
    pub linear_bytes: usize,
    /// Layers per format name (`f32`, `q4_1`, `2:4`, `bitmask`, ...).
    pub formats: std::collections::BTreeMap<String, usize>,
}

impl Llama {
    fn all_linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut v: Vec<&mut Linear> = Vec::new();
        for b in &mut self.blocks {
            for (_, l) in b.linears_mut() {
                v.push(l);
            }
        }
        v.push(&mut self.lm_head);
        v
    }

    /// Whether any projection (or the head) is held in a compact, inference-only form.
    pub fn is_inference_only(&self) -> bool {
        self.lm_head.compact().is_some()
            || self
                .blocks
                .iter()
                .any(|b| b.linears().iter().any(|(_, l)| l.compact().is_some()))
    }

    /// Bytes and formats of the linear layers.
    pub fn weight_summary(&self) -> WeightSummary {
        let mut s = WeightSummary {
            linear_bytes: 0,
            formats: Default::default(),
        };
        let mut add = |l: &Linear| {
            let (name, bytes) = match l.compact() {
                Some(c) => (c.format_name(), c.bytes()),
                None => {
                    let (o, i) = l.dims();
                    ("f32".to_string(), o * i * 4)
                }
            };
            s.linear_bytes += bytes;
            *s.formats.entry(name).or_default() += 1;
        };
        for b in &self.blocks {
            for (_, l) in b.linears() {
                add(l);
            }
        }
        add(&self.lm_head);
        s
    }

    /// Converts the model in place to an inference representation (see the module docs): [`WeightDtype::Q8_0`]
    /// quantizes every projection and the head; [`WeightDtype::Sparse`] compresses every masked projection (an
    /// error when none is masked); [`WeightDtype::File`] is `Sparse` when some projection is masked and a no-op
    /// otherwise (a file's blocks are only available at load time, [`crate::load::load_with`]);
    /// [`WeightDtype::F32`] turns compact layers back into dense f32 (dequantized). Layers with an adapter or an
    /// observer are refused (merge or detach them first).
    pub fn to_inference(&mut self, dtype: WeightDtype) -> Result<()> {
        let masked = self
            .blocks
            .iter()
            .any(|b| b.linears().iter().any(|(_, l)| l.mask().is_some()));
        let dtype = match dtype {
            WeightDtype::File if masked => WeightDtype::Sparse,
            WeightDtype::File => return Ok(()),
            WeightDtype::Sparse if !masked => {
                return Err(LmError::Invalid(
                    "--dtype sparse needs a pruned model (no projection has a mask)".into(),
                ))
            }
            d => d,
        };
        let tied = self.is_tied();
        let embed = self.embed.clone();
        let n = self.blocks.len() * 7;
        for (i, l) in self.all_linears_mut().into_iter().enumerate() {
            let head = i == n;
            match dtype {
                WeightDtype::F32 => l.decompress()?,
                WeightDtype::Q8_0 => {
                    l.compress_q8_0(if head && tied { Some(&embed) } else { None })?
                }
                WeightDtype::Sparse if !head && l.mask().is_some() => l.compress_sparse()?,
                _ => {}
            }
        }
        if self.embed.dims()[0] == 0 && self.lm_head.compact().is_none() {
            // The embedding lived in the compact head: it is the dense head again.
            self.embed = self.lm_head.weight().clone();
        }
        self.advise_huge_pages();
        Ok(())
    }
}

/// A borrowed view of one layer's weight in whichever form it is held, for the one-token decode path
/// ([`crate::decode`]): one row-range kernel per representation.
#[derive(Clone, Copy)]
pub(crate) enum RowsView<'a> {
    /// Dense f32, row-major `rows × cols`.
    F32 { w: &'a [f32], cols: usize },
    /// GGUF blocks (activations quantized to 8 bits per block once per call of [`gemv_many`]).
    Quant(&'a QMatrix),
    /// Compressed sparse.
    Sparse(&'a SparseMatrix),
}

impl RowsView<'_> {
    /// `(rows, cols)`.
    pub(crate) fn dims(&self) -> (usize, usize) {
        match self {
            RowsView::F32 { w, cols } => (w.len() / cols, *cols),
            RowsView::Quant(q) => q.dims(),
            RowsView::Sparse(s) => s.dims(),
        }
    }
}

/// Rows per task of [`gemv_many`] (a multiple of the quantized kernel's 8-row group).
const GEMV_ROWS: usize = 16;

/// `out = [W₀ x | W₁ x | …]` for one activation row `x`: the products of several layers that read the same input
/// (q/k/v, gate/up) in one fork-join over 16-row tasks, `x` quantized once if any layer is quantized.
pub(crate) fn gemv_many(views: &[RowsView<'_>], x: &[f32], out: &mut [f32]) -> Result<()> {
    let total: usize = views.iter().map(|v| v.dims().0).sum();
    if out.len() != total || views.iter().any(|v| v.dims().1 != x.len()) {
        return Err(LmError::Invalid(format!(
            "fused product: input {} and output {} do not match the layers {:?}",
            x.len(),
            out.len(),
            views.iter().map(|v| v.dims()).collect::<Vec<_>>()
        )));
    }
    let acts = views
        .iter()
        .any(|v| matches!(v, RowsView::Quant(_)))
        .then(|| crate::quant::QActs::quantize(x));
    // (layer, first row) of each task, and its output slice.
    let mut tasks = Vec::with_capacity(total.div_ceil(GEMV_ROWS) + views.len());
    let mut parts = Vec::with_capacity(tasks.capacity());
    let mut rest = out;
    for (li, v) in views.iter().enumerate() {
        let (rows, _) = v.dims();
        let (mine, tail) = rest.split_at_mut(rows);
        rest = tail;
        for (c, part) in mine.chunks_mut(GEMV_ROWS).enumerate() {
            tasks.push((li, c * GEMV_ROWS));
            parts.push(part);
        }
    }
    crate::pool::parallel_parts_mut(parts, &|i, part| {
        let (li, r0) = tasks[i];
        match views[li] {
            RowsView::F32 { w, cols } => crate::kernels::rows_block_dispatch(
                x,
                cols,
                &w[r0 * cols..(r0 + part.len()) * cols],
                part,
            ),
            RowsView::Quant(q) => q.gemv_rows(acts.as_ref().expect("quantized above"), r0, part),
            RowsView::Sparse(s) => s.gemv_rows(x, r0, part),
        }
    });
    Ok(())
}
