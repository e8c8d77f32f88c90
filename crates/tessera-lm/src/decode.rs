//! One-token decoding on plain slices: the fast path of incremental decoding (issue #21 §2).
//!
//! A decode step of one sequence feeds one token through every block. On the general path
//! ([`Llama::block_forward`]) each block costs some twenty candle ops (norms, reshapes, rope, a `Tensor::cat` of
//! the whole KV cache, small matmuls, softmax), each allocating a tensor and running on one thread while the other
//! waits; with 30 blocks that serial time is about a fifth of a step. This path computes the same function on
//! `f32` slices:
//!
//! - RMSNorm, rotary embedding (neox "rotate half"), SiLU and the residual adds in place;
//! - the projections that read the same input in one fork-join each ([`gemv_many`]: q/k/v, then gate/up), on the
//!   layer's own weight representation (dense f32, GGUF blocks or compressed sparse, [`RowsView`]);
//! - the KV cache written in place into per-layer buffers that grow by doubling ([`RawKv`], `[kv_head][pos][dim]`),
//!   so a step copies only its own keys and values;
//! - attention of the one query over the cached keys per head, the heads spread over the threads.
//!
//! [`Llama::forward_output`] takes this path by itself when the step allows it ([`Llama::fast_decode_applies`]):
//! one token of one sequence with a cache, in inference, and nothing that needs the general ops (no hook, prefix,
//! key mask, explicit positions, residuals, dense-teacher weights, adapter or observer). Everything else, and any
//! model with [`Llama::fast_decode`] off, runs the general path; the two give the same logits up to float rounding
//! (`tests/runtime.rs`, `tests/weights.rs`), and a cache filled by one is read by the other.
use crate::error::{LmError, Result};
use crate::linear::{Linear, WeightMode};
use crate::model::{Cache, Forward, Llama};
use crate::weights::{gemv_many, CompactWeights, RowsView};
use candle_core::{DType, Device, Tensor};

/// Keys and values of one layer for one sequence, laid out `[kv_head][position][head_dim]` with room for `cap`
/// positions per head.
#[derive(Debug, Clone)]
pub(crate) struct RawKv {
    k: Vec<f32>,
    v: Vec<f32>,
    heads: usize,
    dim: usize,
    cap: usize,
    len: usize,
}

impl RawKv {
    /// No positions yet.
    pub(crate) fn empty(heads: usize, dim: usize) -> Self {
        RawKv {
            k: Vec::new(),
            v: Vec::new(),
            heads,
            dim,
            cap: 0,
            len: 0,
        }
    }

    /// From cache tensors `[1, heads, len, dim]`.
    pub(crate) fn from_tensors(k: &Tensor, v: &Tensor) -> Result<Self> {
        let (b, heads, len, dim) = k.dims4()?;
        if b != 1 || v.dims() != k.dims() {
            return Err(LmError::Invalid(format!(
                "a one-sequence decode step needs a cache of one sequence, it holds keys {:?} and values {:?}",
                k.dims(),
                v.dims()
            )));
        }
        let flat = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
        };
        Ok(RawKv {
            k: flat(k)?,
            v: flat(v)?,
            heads,
            dim,
            cap: len,
            len,
        })
    }

    /// As cache tensors `[1, heads, len, dim]`.
    pub(crate) fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let compact = |src: &[f32]| -> Vec<f32> {
            let mut out = Vec::with_capacity(self.heads * self.len * self.dim);
            for h in 0..self.heads {
                out.extend_from_slice(&src[h * self.cap * self.dim..][..self.len * self.dim]);
            }
            out
        };
        let shape = (1, self.heads, self.len, self.dim);
        Ok((
            Tensor::from_vec(compact(&self.k), shape, device)?,
            Tensor::from_vec(compact(&self.v), shape, device)?,
        ))
    }

    /// `(kv heads, head dim)`.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.heads, self.dim)
    }

    /// Positions held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends one position (`k`, `v`: `heads × dim`), growing the buffers to at most `limit` positions.
    fn push(&mut self, k: &[f32], v: &[f32], limit: usize) {
        if self.len == self.cap {
            let cap = (self.cap * 2).max(64).min(limit.max(self.len + 1));
            let grow = |src: &[f32]| -> Vec<f32> {
                let mut out = vec![0f32; self.heads * cap * self.dim];
                for h in 0..self.heads {
                    out[h * cap * self.dim..][..self.len * self.dim]
                        .copy_from_slice(&src[h * self.cap * self.dim..][..self.len * self.dim]);
                }
                out
            };
            self.k = grow(&self.k);
            self.v = grow(&self.v);
            self.cap = cap;
        }
        let d = self.dim;
        for h in 0..self.heads {
            let at = (h * self.cap + self.len) * d;
            self.k[at..at + d].copy_from_slice(&k[h * d..(h + 1) * d]);
            self.v[at..at + d].copy_from_slice(&v[h * d..(h + 1) * d]);
        }
        self.len += 1;
    }

    /// Keys and values of head `h`, `len × dim` each.
    fn head(&self, h: usize) -> (&[f32], &[f32]) {
        let at = h * self.cap * self.dim;
        let n = self.len * self.dim;
        (&self.k[at..at + n], &self.v[at..at + n])
    }
}

/// Runs `f` on views of the layers' weights (the dense ones borrowed from their candle storage for the call).
fn with_views<R>(layers: &[&Linear], f: impl FnOnce(&[RowsView<'_>]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = layers
        .iter()
        .map(|l| {
            l.compact()
                .is_none()
                .then(|| l.weight().storage_and_layout())
        })
        .collect();
    let mut views = Vec::with_capacity(layers.len());
    for (l, g) in layers.iter().zip(&guards) {
        views.push(match (l.compact(), g) {
            (Some(CompactWeights::Quantized(q)), _) => RowsView::Quant(q),
            (Some(CompactWeights::Sparse(s)), _) => RowsView::Sparse(s),
            (None, Some((storage, layout))) => {
                let cpu = match &**storage {
                    candle_core::Storage::Cpu(c) => c,
                    _ => return Err(LmError::Invalid("the decode path runs on the CPU".into())),
                };
                let s = cpu.as_slice::<f32>()?;
                let (a, b) = layout
                    .contiguous_offsets()
                    .ok_or_else(|| LmError::Invalid("weight is not contiguous".into()))?;
                RowsView::F32 {
                    w: &s[a..b],
                    cols: l.dims().1,
                }
            }
            (None, None) => unreachable!("a guard is taken for every dense layer"),
        });
    }
    f(&views)
}

/// `out = [W₀ x | W₁ x | …] (+ biases)` for the layers in one fork-join.
fn project(layers: &[&Linear], x: &[f32], out: &mut [f32]) -> Result<()> {
    with_views(layers, |views| gemv_many(views, x, out))?;
    let mut at = 0;
    for l in layers {
        let rows = l.dims().0;
        if let Some(b) = l.bias() {
            let b: Vec<f32> = b.as_tensor().to_dtype(DType::F32)?.to_vec1()?;
            for (o, bi) in out[at..at + rows].iter_mut().zip(b) {
                *o += bi;
            }
        }
        at += rows;
    }
    Ok(())
}

/// `x / sqrt(mean(x²) + eps) · w`, as candle's fused RMSNorm.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    for ((o, &xi), &wi) in out.iter_mut().zip(x).zip(w) {
        *o = xi * inv * wi;
    }
}

/// Rotary embedding of every head of `x` (`heads × dim`) at one position, "rotate half" layout.
fn rope(x: &mut [f32], dim: usize, cos: &[f32], sin: &[f32]) {
    let half = dim / 2;
    for head in x.chunks_exact_mut(dim) {
        let (a, b) = head.split_at_mut(half);
        for i in 0..half {
            let (x1, x2) = (a[i], b[i]);
            a[i] = x1 * cos[i] - x2 * sin[i];
            b[i] = x2 * cos[i] + x1 * sin[i];
        }
    }
}

/// One query (`heads × dim`) attending over the cached keys: `out = softmax(q·Kᵀ/√dim) V` per head, the query
/// heads sharing a KV head in groups of `heads / kv_heads`.
fn attend(q: &[f32], kv: &RawKv, dim: usize, out: &mut [f32]) {
    let rep = q.len() / dim / kv.heads;
    let scale = 1.0 / (dim as f32).sqrt();
    crate::pool::parallel_chunks_mut(out, dim, &|h, o| {
        let qh = &q[h * dim..(h + 1) * dim];
        let (keys, vals) = kv.head(h / rep);
        let mut p: Vec<f32> = keys
            .chunks_exact(dim)
            .map(|k| crate::kernels::dot_dispatch(qh, k) * scale)
            .collect();
        let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for s in &mut p {
            *s = (*s - max).exp();
            sum += *s;
        }
        o.fill(0.0);
        for (&pj, vj) in p.iter().zip(vals.chunks_exact(dim)) {
            let w = pj / sum;
            for (oi, &vi) in o.iter_mut().zip(vj) {
                *oi += w * vi;
            }
        }
    });
}

/// A small `f32` tensor (norm scales, rotary tables) as a vector.
fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

impl Llama {
    /// Whether a forward of `ids` with `opts` can take the one-token path (see the module docs).
    pub(crate) fn fast_decode_applies(&self, ids: &Tensor, opts: &Forward<'_>) -> bool {
        self.fast_decode
            && ids.dims() == [1, 1]
            && self.device().is_cpu()
            && opts.cache.is_some()
            && opts.prefix.is_none()
            && opts.hook.is_none()
            && opts.key_mask.is_none()
            && opts.positions.is_none()
            && opts.residuals.is_none()
            && !opts.no_head
            && opts.logits_from.is_none_or(|f| f == 0)
            && !opts.train
            && opts.weights == WeightMode::Sparse
            && self.lm_head.fast_decode_ok()
            && self
                .blocks
                .iter()
                .all(|b| b.linears().iter().all(|(_, l)| l.fast_decode_ok()))
    }

    /// Feeds one token at position `cache.len`, extending `cache`; returns the logits (`vocab` values).
    pub(crate) fn decode_token(&self, id: u32, cache: &mut Cache) -> Result<Vec<f32>> {
        let c = &self.config;
        if id as usize >= c.vocab_size {
            return Err(LmError::Invalid(format!(
                "token id {id} >= vocabulary size {}",
                c.vocab_size
            )));
        }
        let pos = cache.len;
        let limit = self.max_positions();
        if pos + 1 > limit {
            return Err(LmError::Invalid(format!(
                "sequence of {} tokens is too long (at most {limit})",
                pos + 1
            )));
        }
        if cache.layers() != self.blocks.len() {
            return Err(LmError::Invalid(format!(
                "cache has {} layers, model has {}",
                cache.layers(),
                self.blocks.len()
            )));
        }
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim());
        let eps = c.rms_norm_eps as f32;
        let (cos_t, sin_t) = self.rope_tables(pos + 1)?;
        let (cos, sin) = (
            values(&cos_t.narrow(0, pos, 1)?)?,
            values(&sin_t.narrow(0, pos, 1)?)?,
        );
        let mut x: Vec<f32> = if self.embed.dims()[0] == 0 {
            values(&self.lm_head.lookup_rows(&[id])?)?
        } else {
            values(&self.embed.as_tensor().narrow(0, id as usize, 1)?)?
        };
        let hidden = x.len();
        let mut h = vec![0f32; hidden];
        let mut qkv = vec![0f32; (nh + 2 * nkv) * hd];
        let mut y = vec![0f32; nh * hd];
        let mut a = vec![0f32; hidden];
        let mut gu = Vec::new();
        for (li, blk) in self.blocks.iter().enumerate() {
            rms_norm(&x, &values(blk.attn_norm.as_tensor())?, eps, &mut h);
            project(&[&blk.q, &blk.k, &blk.v], &h, &mut qkv)?;
            let (q, kv) = qkv.split_at_mut(nh * hd);
            let (k, v) = kv.split_at_mut(nkv * hd);
            rope(q, hd, &cos, &sin);
            rope(k, hd, &cos, &sin);
            let slot = cache.raw_slot(li, nkv, hd)?;
            slot.push(k, v, limit);
            attend(q, slot, hd, &mut y);
            project(&[&blk.o], &y, &mut a)?;
            for (xi, ai) in x.iter_mut().zip(&a) {
                *xi += ai;
            }
            rms_norm(&x, &values(blk.ffn_norm.as_tensor())?, eps, &mut h);
            let n = blk.gate.dims().0;
            gu.resize(2 * n, 0.0);
            project(&[&blk.gate, &blk.up], &h, &mut gu)?;
            let (g, u) = gu.split_at_mut(n);
            for (gi, &ui) in g.iter_mut().zip(u.iter()) {
                *gi = *gi / (1.0 + (-*gi).exp()) * ui;
            }
            project(&[&blk.down], g, &mut a)?;
            for (xi, ai) in x.iter_mut().zip(&a) {
                *xi += ai;
            }
        }
        cache.advance(1);
        rms_norm(&x, &values(self.norm.as_tensor())?, eps, &mut h);
        let mut logits = vec![0f32; self.lm_head.dims().0];
        project(&[&self.lm_head], &h, &mut logits)?;
        Ok(logits)
    }
}

#[cfg(test)]
mod tests {
    use crate::quant::QMatrix;
    use crate::sparse::SparseMatrix;
    use crate::testing::pseudo_values;
    use crate::weights::{gemv_many, RowsView};

    /// One fused product over a dense, a quantized and a sparse layer (row counts that are not multiples of the
    /// 16-row task) equals each layer's own product.
    #[test]
    fn fused_products_equal_each_layers_own() {
        let k = 64;
        let x = pseudo_values(k, 9);
        let dense = pseudo_values(40 * k, 1);
        let q = QMatrix::quantize_q8_0(&pseudo_values(24 * k, 2), 24, k).unwrap();
        let w = pseudo_values(67 * k, 3);
        let keep: Vec<f32> = w.iter().map(|v| f32::from(v.abs() > 0.5)).collect();
        let s = SparseMatrix::from_masked(&w, &keep, 67, k).unwrap();
        let views = [
            RowsView::F32 { w: &dense, cols: k },
            RowsView::Quant(&q),
            RowsView::Sparse(&s),
        ];
        let mut got = vec![0f32; 40 + 24 + 67];
        gemv_many(&views, &x, &mut got).unwrap();
        let mut want = crate::kernels::matmul_rows_t(&x, 1, k, &dense, 40);
        want.extend(q.matmul_t(&x, 1));
        want.extend(s.matmul_t(&x, 1));
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "row {i}: {a} vs {b}"
            );
        }
        let mut short = vec![0f32; 10];
        assert!(gemv_many(&views, &x, &mut short).is_err());
    }
}
