//! Sparse × dense message passing with autograd: `Y = A_w X`, where `A_w` has a fixed sparsity pattern (CSR) and
//! per-edge weights `w` that are themselves a differentiable tensor.
//!
//! Forward: `Y[i] = Σ_{e=(i←j)} w_e X[j]` (row-parallel CSR, rayon).
//! Backward: `∂L/∂X[j] = Σ_{e=(i←j)} w_e ∂L/∂Y[i]` (the transposed pattern, built once on demand) and
//! `∂L/∂w_e = ⟨∂L/∂Y[i], X[j]⟩` (a sampled dense–dense product, SDDMM). The gradient with respect to the edge
//! weights is what the gradient-magnitude criterion and the MoG router train on.
use crate::error::{invalid, Result};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// A directed sparsity pattern: row `i` lists the sources `j` of the messages `i ← j`. Usually square (a graph);
/// rectangular for sparse feature matrices (rows = nodes, columns = feature ids).
#[derive(Debug)]
pub struct Pattern {
    /// Number of rows (target nodes).
    pub n: usize,
    /// Number of columns (source nodes or feature ids).
    pub n_cols: usize,
    /// Row offsets.
    pub row_ptr: Vec<usize>,
    /// Source node of every edge.
    pub col: Vec<u32>,
    transpose: OnceLock<Transpose>,
}

#[derive(Debug)]
struct Transpose {
    ptr: Vec<usize>,
    /// For each transposed slot: (target row i, edge id e).
    slots: Vec<(u32, u32)>,
    /// Row of every edge.
    edge_row: Vec<u32>,
}

impl Pattern {
    /// A square pattern from CSR arrays (checked).
    pub fn new(n: usize, row_ptr: Vec<usize>, col: Vec<u32>) -> Result<Arc<Self>> {
        Self::rect(n, n, row_ptr, col)
    }
    /// An `n × n_cols` pattern from CSR arrays (checked).
    pub fn rect(n: usize, n_cols: usize, row_ptr: Vec<usize>, col: Vec<u32>) -> Result<Arc<Self>> {
        if row_ptr.len() != n + 1
            || row_ptr[n] != col.len()
            || row_ptr.windows(2).any(|w| w[0] > w[1])
        {
            invalid!("malformed CSR pattern");
        }
        if col.len() > u32::MAX as usize {
            invalid!("too many edges for u32 edge ids");
        }
        if col.iter().any(|&c| c as usize >= n_cols) {
            invalid!("CSR column out of range");
        }
        Ok(Arc::new(Pattern {
            n,
            n_cols,
            row_ptr,
            col,
            transpose: OnceLock::new(),
        }))
    }
    /// Number of edges.
    pub fn nnz(&self) -> usize {
        self.col.len()
    }
    /// In-degree of every row.
    pub fn degrees(&self) -> Vec<usize> {
        self.row_ptr.windows(2).map(|w| w[1] - w[0]).collect()
    }
    fn transpose(&self) -> &Transpose {
        self.transpose.get_or_init(|| {
            let mut cnt = vec![0usize; self.n_cols + 1];
            for &c in &self.col {
                cnt[c as usize + 1] += 1;
            }
            for i in 0..self.n_cols {
                cnt[i + 1] += cnt[i];
            }
            let mut fill = cnt.clone();
            let mut slots = vec![(0u32, 0u32); self.col.len()];
            let mut edge_row = vec![0u32; self.col.len()];
            for i in 0..self.n {
                for e in self.row_ptr[i]..self.row_ptr[i + 1] {
                    let j = self.col[e] as usize;
                    slots[fill[j]] = (i as u32, e as u32);
                    fill[j] += 1;
                    edge_row[e] = i as u32;
                }
            }
            Transpose {
                ptr: cnt,
                slots,
                edge_row,
            }
        })
    }
}

/// Minimum items per rayon task so that each task does at least ~256k multiply-adds: small products run on one
/// thread (rayon's hand-offs cost more than they save there, and far more when the cores are shared).
fn par_min_len(work: usize, items: usize) -> usize {
    const GRAIN: usize = 1 << 18;
    if work == 0 || items == 0 {
        return 1;
    }
    (GRAIN * items / work).clamp(1, items)
}

/// `Y = A_w X` on plain slices (`x` is `n × f` row-major, `w` has one weight per edge).
pub fn spmm_raw(p: &Pattern, x: &[f32], f: usize, w: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; p.n * f];
    if f == 0 {
        return y;
    }
    let min_rows = par_min_len(p.nnz() * f, p.n);
    y.par_chunks_mut(f)
        .with_min_len(min_rows)
        .enumerate()
        .for_each(|(i, yr)| {
            for e in p.row_ptr[i]..p.row_ptr[i + 1] {
                let we = w[e];
                let j = p.col[e] as usize;
                let xr = &x[j * f..(j + 1) * f];
                for (a, b) in yr.iter_mut().zip(xr) {
                    *a += we * b;
                }
            }
        });
    y
}

/// `Aᵀ_w G` on plain slices.
fn spmm_t_raw(p: &Pattern, g: &[f32], f: usize, w: &[f32]) -> Vec<f32> {
    let t = p.transpose();
    let mut y = vec![0f32; p.n_cols * f];
    if f == 0 {
        return y;
    }
    let min_rows = par_min_len(p.nnz() * f, p.n_cols);
    y.par_chunks_mut(f)
        .with_min_len(min_rows)
        .enumerate()
        .for_each(|(j, yr)| {
            for &(i, e) in &t.slots[t.ptr[j]..t.ptr[j + 1]] {
                let we = w[e as usize];
                let gr = &g[i as usize * f..(i as usize + 1) * f];
                for (a, b) in yr.iter_mut().zip(gr) {
                    *a += we * b;
                }
            }
        });
    y
}

/// `∂L/∂w_e = ⟨G[i], X[j]⟩` for every edge `e = (i ← j)`.
fn sddmm_raw(p: &Pattern, g: &[f32], x: &[f32], f: usize) -> Vec<f32> {
    let t = p.transpose();
    (0..p.nnz())
        .into_par_iter()
        .with_min_len(par_min_len(p.nnz() * f, p.nnz()))
        .map(|e| {
            let i = t.edge_row[e] as usize;
            let j = p.col[e] as usize;
            g[i * f..(i + 1) * f]
                .iter()
                .zip(&x[j * f..(j + 1) * f])
                .map(|(a, b)| a * b)
                .sum()
        })
        .collect()
}

struct SpMM {
    pattern: Arc<Pattern>,
}

fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("spmm: {what} must be contiguous"),
    }
}

impl CustomOp2 for SpMM {
    fn name(&self) -> &'static str {
        "tessera-spmm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, f) = l1.shape().dims2()?;
        let x = cpu_f32(s1, l1, "features")?;
        let w = cpu_f32(s2, l2, "edge weights")?;
        if n != self.pattern.n_cols || w.len() != self.pattern.nnz() {
            candle_core::bail!(
                "spmm: shapes ({n}, {f}) / {} do not match pattern ({}x{}, {})",
                w.len(),
                self.pattern.n,
                self.pattern.n_cols,
                self.pattern.nnz()
            );
        }
        let y = spmm_raw(&self.pattern, x, f, w);
        Ok((CpuStorage::F32(y), Shape::from((self.pattern.n, f))))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, f) = x.dims2()?;
        let g = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        // Skip the gradients nobody needs (constant features or constant normalisation weights).
        let dx = if x.track_op() {
            let wv = w.flatten_all()?.to_vec1::<f32>()?;
            Some(Tensor::from_vec(
                spmm_t_raw(&self.pattern, &g, f, &wv),
                (n, f),
                x.device(),
            )?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let xv = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            Some(Tensor::from_vec(
                sddmm_raw(&self.pattern, &g, &xv, f),
                w.shape(),
                w.device(),
            )?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `A_w X` as a differentiable candle op (gradients reach both `x` and `w`). `x`: `(n, f)` f32, `w`: `(nnz,)` f32.
pub fn spmm(pattern: &Arc<Pattern>, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        SpMM {
            pattern: pattern.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn small() -> Arc<Pattern> {
        // 0 ← 1, 0 ← 2, 1 ← 0, 2 ← 2, 3 ← 0, 3 ← 1, 3 ← 2 (deliberately asymmetric, with a self-loop)
        Pattern::new(4, vec![0, 2, 3, 4, 7], vec![1, 2, 0, 2, 0, 1, 2]).unwrap()
    }

    #[test]
    fn forward_matches_dense_product() {
        let p = small();
        let x: Vec<f32> = (0..12).map(|v| v as f32 * 0.5 - 2.0).collect();
        let w = vec![0.5, -1.0, 2.0, 1.5, 0.25, 3.0, -0.5];
        let y = spmm_raw(&p, &x, 3, &w);
        let mut dense = [[0f32; 4]; 4];
        for i in 0..4 {
            for e in p.row_ptr[i]..p.row_ptr[i + 1] {
                dense[i][p.col[e] as usize] += w[e];
            }
        }
        for i in 0..4 {
            for k in 0..3 {
                let want: f32 = (0..4).map(|j| dense[i][j] * x[j * 3 + k]).sum();
                assert!((y[i * 3 + k] - want).abs() < 1e-5);
            }
        }
    }

    /// Central finite differences of L = Σ c ⊙ (A_w X)² against the op's backward, for both inputs.
    #[test]
    fn gradient_check() {
        let dev = Device::Cpu;
        let p = small();
        let xs: Vec<f64> = (0..12).map(|v| ((v * 7 % 5) as f64 - 2.0) * 0.3).collect();
        let ws: Vec<f64> = vec![0.5, -1.0, 2.0, 1.5, 0.25, 3.0, -0.5];
        let c: Vec<f32> = (0..12).map(|v| 1.0 + (v % 3) as f32).collect();
        let loss = |x: &[f64], w: &[f64]| -> f64 {
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let y = spmm_raw(&p, &xf, 3, &wf);
            y.iter()
                .zip(&c)
                .map(|(a, b)| (*a as f64).powi(2) * *b as f64)
                .sum()
        };
        let xv = Var::from_vec(
            xs.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (4, 3),
            &dev,
        )
        .unwrap();
        let wv = Var::from_vec(ws.iter().map(|&v| v as f32).collect::<Vec<_>>(), 7, &dev).unwrap();
        let ct = Tensor::from_vec(c.clone(), (4, 3), &dev).unwrap();
        let y = spmm(&p, xv.as_tensor(), wv.as_tensor()).unwrap();
        let l = (y.sqr().unwrap() * ct).unwrap().sum_all().unwrap();
        let grads = l.backward().unwrap();
        let gx = grads
            .get(xv.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let gw = grads.get(wv.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let h = 1e-3;
        for k in 0..xs.len() {
            let (mut a, mut b) = (xs.clone(), xs.clone());
            a[k] += h;
            b[k] -= h;
            let num = (loss(&a, &ws) - loss(&b, &ws)) / (2.0 * h);
            assert!(
                (num - gx[k] as f64).abs() < 1e-2 * (1.0 + num.abs()),
                "dX[{k}]: numeric {num} vs {}",
                gx[k]
            );
        }
        for k in 0..ws.len() {
            let (mut a, mut b) = (ws.clone(), ws.clone());
            a[k] += h;
            b[k] -= h;
            let num = (loss(&xs, &a) - loss(&xs, &b)) / (2.0 * h);
            assert!(
                (num - gw[k] as f64).abs() < 1e-2 * (1.0 + num.abs()),
                "dw[{k}]: numeric {num} vs {}",
                gw[k]
            );
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(Pattern::new(2, vec![0, 1], vec![0]).is_err());
        assert!(Pattern::new(2, vec![0, 1, 1], vec![5]).is_err());
    }
}
