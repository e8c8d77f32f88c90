//! Compressed sparse weight matrices for pruned models, and their decode kernels.
//!
//! Pruning (Wanda, SparseGPT, magnitude) zeroes weights but the dense matrix is still streamed from memory at every
//! decode step, so it gives no speed-up. These formats store only the kept weights (f32, bit-exact) and an index
//! structure, and their kernels read each compressed row once:
//!
//! | format | per row of `k` weights with `z` kept | value of column `c` |
//! |---|---|---|
//! | [`BitmaskMatrix`] (unstructured) | `k / 8` mask bytes (bit `c % 8` of byte `c / 8`, LSB first) + `z` packed f32 | the next packed value if the bit is set, else 0 |
//! | [`NmMatrix`] (N:M, e.g. 2:4) | `k / M · N` packed f32 + as many `⌈log₂ M⌉`-bit indices (LSB-first bit stream) | slot `s` of group `g` holds column `g·M + idx[g·N + s]` |
//!
//! A group of an N:M matrix with fewer than N kept weights is padded with explicit zeros at unused slots, so the
//! indices of a group are always distinct. Bytes at 70% unstructured sparsity: `k/8 + 0.3·4k ≈ 0.33×` dense; at 2:4:
//! `k/2 · 4 + k/8 ≈ 0.53×`.
//!
//! Kernels (AVX2 + FMA, detected at run time, scalar fallback): bitmask rows are expanded 8 columns at a time: one
//! mask byte selects a permutation (a 256-entry table) that scatters the next `popcount` packed values into their
//! lanes, then one FMA with the activations. 2:4 rows work the same way with one index byte per 8 columns. For
//! more than one activation row (prefill) each compressed row is expanded once into a scratch row and dotted with
//! every activation row.
use crate::error::{LmError, Result};
use crate::kernels::{dot_dispatch, transpose_feature_major};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Readable values after the last kept one (the vector kernels load 16 lanes at a time).
const PAD: usize = 16;

/// An unstructured sparse matrix: per-row bitmask + packed kept values (see the module docs).
#[derive(Debug, Clone)]
pub struct BitmaskMatrix {
    rows: usize,
    cols: usize,
    mask: Vec<u8>,
    values: Vec<f32>,
    row_start: Vec<usize>,
}

/// An N:M sparse matrix: packed values + small per-value column indices within each group of M.
#[derive(Debug, Clone)]
pub struct NmMatrix {
    n: usize,
    m: usize,
    bits: usize,
    rows: usize,
    cols: usize,
    values: Vec<f32>,
    idx: Vec<u8>,
    idx_row_bytes: usize,
}

fn check_dense(w: &[f32], keep: &[f32], rows: usize, cols: usize) -> Result<()> {
    if w.len() != rows * cols || keep.len() != rows * cols {
        return Err(LmError::Invalid(format!(
            "sparse matrix {rows}×{cols}: got {} weights and {} mask entries",
            w.len(),
            keep.len()
        )));
    }
    Ok(())
}

impl BitmaskMatrix {
    /// Compresses `w` (row-major `rows × cols`) keeping the entries where `keep` is non-zero; `cols` must be a
    /// multiple of 8.
    pub fn from_masked(w: &[f32], keep: &[f32], rows: usize, cols: usize) -> Result<Self> {
        check_dense(w, keep, rows, cols)?;
        if cols == 0 || !cols.is_multiple_of(8) {
            return Err(LmError::Invalid(format!(
                "bitmask format needs a width that is a positive multiple of 8 (got {cols})"
            )));
        }
        let mut mask = vec![0u8; rows * cols / 8];
        let mut values = Vec::new();
        let mut row_start = Vec::with_capacity(rows + 1);
        for r in 0..rows {
            row_start.push(values.len());
            for c in 0..cols {
                let i = r * cols + c;
                if keep[i] != 0.0 {
                    mask[i / 8] |= 1 << (c % 8);
                    values.push(w[i]);
                }
            }
        }
        row_start.push(values.len());
        values.extend([0.0; PAD]);
        Ok(BitmaskMatrix {
            rows,
            cols,
            mask,
            values,
            row_start,
        })
    }
    /// `(rows, cols)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// Kept weights.
    pub fn nnz(&self) -> usize {
        self.row_start[self.rows]
    }
    /// Bytes held (mask, values, row offsets).
    pub fn bytes(&self) -> usize {
        self.mask.len() + self.values.len() * 4 + self.row_start.len() * 8
    }
    fn row(&self, r: usize) -> (&[u8], &[f32]) {
        let cb = self.cols / 8;
        (
            &self.mask[r * cb..(r + 1) * cb],
            &self.values[self.row_start[r]..],
        )
    }
    /// Expands row `r` into `out` (`cols` values).
    pub fn decode_row(&self, r: usize, out: &mut [f32]) {
        let (mask, vals) = self.row(r);
        let mut p = 0;
        for (j, &b) in mask.iter().enumerate() {
            for bit in 0..8 {
                out[j * 8 + bit] = if b >> bit & 1 == 1 {
                    p += 1;
                    vals[p - 1]
                } else {
                    0.0
                };
            }
        }
    }
    fn dot_row(&self, r: usize, x: &[f32]) -> f32 {
        let (mask, vals) = self.row(r);
        #[cfg(target_arch = "x86_64")]
        {
            if crate::kernels::has_avx512() {
                // SAFETY: features detected; `x` has `8 · mask.len()` values, `vals` the row's kept ones and PAD more.
                return unsafe { avx512::dot_bitmask(mask, vals, x) };
            }
            if crate::kernels::has_avx2_fma() {
                // SAFETY: features detected; `vals` has PAD readable values past the row's last kept one.
                return unsafe { avx2::dot_expand(mask, vals, x, bitmask_lut()) };
            }
        }
        let mut s = 0f32;
        let mut p = 0;
        for (j, &b) in mask.iter().enumerate() {
            let mut b = b;
            while b != 0 {
                let bit = b.trailing_zeros() as usize;
                s += vals[p] * x[j * 8 + bit];
                p += 1;
                b &= b - 1;
            }
        }
        s
    }
}

/// Bits of an index into a group of `m`.
fn index_bits(m: usize) -> usize {
    (usize::BITS - (m - 1).leading_zeros()).max(1) as usize
}

impl NmMatrix {
    /// Compresses `w` keeping the entries where `keep` is non-zero; every group of `m` consecutive entries of a row
    /// must keep at most `n` (an error names the first group that keeps more). `cols` must be a multiple of `m`.
    pub fn from_masked(
        w: &[f32],
        keep: &[f32],
        rows: usize,
        cols: usize,
        n: usize,
        m: usize,
    ) -> Result<Self> {
        check_dense(w, keep, rows, cols)?;
        if n == 0 || n >= m || m > 256 || cols == 0 || !cols.is_multiple_of(m) {
            return Err(LmError::Invalid(format!(
                "N:M format {n}:{m} needs 0 < N < M ≤ 256 and a width that is a multiple of M (got {cols})"
            )));
        }
        let bits = index_bits(m);
        let groups = cols / m;
        let idx_row_bytes = (groups * n * bits).div_ceil(8);
        let mut values = Vec::with_capacity(rows * groups * n + PAD);
        let mut idx = vec![0u8; rows * idx_row_bytes];
        for r in 0..rows {
            let ib = &mut idx[r * idx_row_bytes..(r + 1) * idx_row_bytes];
            for g in 0..groups {
                let base = r * cols + g * m;
                let mut slots: Vec<usize> = (0..m).filter(|&c| keep[base + c] != 0.0).collect();
                if slots.len() > n {
                    return Err(LmError::Invalid(format!(
                        "row {r}, columns {}..{}: {} kept weights, more than the {n}:{m} pattern allows",
                        g * m,
                        g * m + m,
                        slots.len()
                    )));
                }
                let free: Vec<usize> = (0..m).filter(|c| !slots.contains(c)).collect();
                let missing = n - slots.len();
                slots.extend_from_slice(&free[..missing]);
                slots.sort_unstable();
                for (s, &c) in slots.iter().enumerate() {
                    values.push(if keep[base + c] != 0.0 {
                        w[base + c]
                    } else {
                        0.0
                    });
                    let pos = (g * n + s) * bits;
                    for b in 0..bits {
                        if c >> b & 1 == 1 {
                            ib[(pos + b) / 8] |= 1 << ((pos + b) % 8);
                        }
                    }
                }
            }
        }
        values.extend([0.0; PAD]);
        Ok(NmMatrix {
            n,
            m,
            bits,
            rows,
            cols,
            values,
            idx,
            idx_row_bytes,
        })
    }
    /// `(rows, cols)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// The pattern `(N, M)`.
    pub fn pattern(&self) -> (usize, usize) {
        (self.n, self.m)
    }
    /// Bytes held (values and indices).
    pub fn bytes(&self) -> usize {
        self.values.len() * 4 + self.idx.len()
    }
    fn row(&self, r: usize) -> (&[u8], &[f32]) {
        let per = self.cols / self.m * self.n;
        (
            &self.idx[r * self.idx_row_bytes..(r + 1) * self.idx_row_bytes],
            &self.values[r * per..],
        )
    }
    fn index(&self, ib: &[u8], i: usize) -> usize {
        let pos = i * self.bits;
        let mut c = 0;
        for b in 0..self.bits {
            c |= ((ib[(pos + b) / 8] >> ((pos + b) % 8) & 1) as usize) << b;
        }
        c
    }
    /// Expands row `r` into `out` (`cols` values).
    pub fn decode_row(&self, r: usize, out: &mut [f32]) {
        out.fill(0.0);
        let (ib, vals) = self.row(r);
        for i in 0..self.cols / self.m * self.n {
            out[i / self.n * self.m + self.index(ib, i)] = vals[i];
        }
    }
    fn dot_row(&self, r: usize, x: &[f32]) -> f32 {
        let (ib, vals) = self.row(r);
        #[cfg(target_arch = "x86_64")]
        {
            if (self.n, self.m) == (2, 4)
                && self.cols.is_multiple_of(8)
                && crate::kernels::has_avx512()
            {
                // SAFETY: features detected; one index byte per 8 columns, 4 values per byte.
                return unsafe { avx512::dot_2_4(ib, vals, x, nm24_lane_masks()) };
            }
            if (self.n, self.m) == (2, 4)
                && self.cols.is_multiple_of(8)
                && crate::kernels::has_avx2_fma()
            {
                // SAFETY: features detected; one index byte per 8 columns, 4 values per byte.
                return unsafe { avx2::dot_2_4(ib, vals, x, nm24_lut()) };
            }
        }
        let mut s = 0f32;
        for i in 0..self.cols / self.m * self.n {
            s += vals[i] * x[i / self.n * self.m + self.index(ib, i)];
        }
        s
    }
}

/// A compressed sparse matrix in one of the two formats.
#[derive(Debug, Clone)]
pub enum SparseMatrix {
    /// Unstructured.
    Bitmask(BitmaskMatrix),
    /// N:M.
    Nm(NmMatrix),
}

impl SparseMatrix {
    /// Compresses `w` under the 0/1 `keep` mask, choosing N:M (tried for M = 4 and 8 with N the most weights any
    /// group keeps) when its bytes are at most 1.25× the bitmask's, else the bitmask.
    pub fn from_masked(w: &[f32], keep: &[f32], rows: usize, cols: usize) -> Result<Self> {
        check_dense(w, keep, rows, cols)?;
        let kept = keep.iter().filter(|&&k| k != 0.0).count();
        let bitmask_bytes = cols * rows / 8 + kept * 4;
        let mut best: Option<(usize, usize, usize)> = None;
        for m in [4usize, 8] {
            if !cols.is_multiple_of(m) {
                continue;
            }
            let n = keep
                .chunks_exact(m)
                .map(|g| g.iter().filter(|&&k| k != 0.0).count())
                .max()
                .unwrap_or(0)
                .max(1);
            if n >= m {
                continue;
            }
            let bytes =
                rows * (cols / m * n) * 4 + (rows * cols / m * n * index_bits(m)).div_ceil(8);
            // N:M's kernel has a fixed layout (no popcount chain): preferred up to 1.25× the bitmask's bytes.
            if bytes * 4 <= bitmask_bytes * 5 && best.is_none_or(|b| bytes < b.2) {
                best = Some((n, m, bytes));
            }
        }
        Ok(match best {
            Some((n, m, _)) => SparseMatrix::Nm(NmMatrix::from_masked(w, keep, rows, cols, n, m)?),
            None => SparseMatrix::Bitmask(BitmaskMatrix::from_masked(w, keep, rows, cols)?),
        })
    }
    /// `(rows, cols)`.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            SparseMatrix::Bitmask(b) => b.dims(),
            SparseMatrix::Nm(b) => b.dims(),
        }
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            SparseMatrix::Bitmask(b) => b.bytes(),
            SparseMatrix::Nm(b) => b.bytes(),
        }
    }
    /// A short name of the format (`bitmask`, `2:4`).
    pub fn format_name(&self) -> String {
        match self {
            SparseMatrix::Bitmask(_) => "bitmask".into(),
            SparseMatrix::Nm(b) => format!("{}:{}", b.n, b.m),
        }
    }
    /// Expands row `r` into `out`.
    pub fn decode_row(&self, r: usize, out: &mut [f32]) {
        match self {
            SparseMatrix::Bitmask(b) => b.decode_row(r, out),
            SparseMatrix::Nm(b) => b.decode_row(r, out),
        }
    }
    fn dot_row(&self, r: usize, x: &[f32]) -> f32 {
        match self {
            SparseMatrix::Bitmask(b) => b.dot_row(r, x),
            SparseMatrix::Nm(b) => b.dot_row(r, x),
        }
    }
    /// Rows `r0 .. r0 + out.len()` of `W x` for one activation row (the one-token decode path).
    pub(crate) fn gemv_rows(&self, x: &[f32], r0: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::has_avx512() {
            match self {
                // SAFETY (both): features detected; the rows are the caller's, inside the matrix.
                SparseMatrix::Bitmask(b) => {
                    return unsafe { avx512::rows_bitmask(b, x, r0, out) };
                }
                SparseMatrix::Nm(b) if (b.n, b.m) == (2, 4) && b.cols.is_multiple_of(8) => {
                    return unsafe { avx512::rows_2_4(b, x, r0, out, nm24_lane_masks()) };
                }
                SparseMatrix::Nm(_) => {}
            }
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.dot_row(r0 + i, x);
        }
    }
    /// `(address, bytes)` of the buffers held ([`crate::hugepages`]).
    pub(crate) fn buffers(&self) -> [(usize, usize); 2] {
        match self {
            SparseMatrix::Bitmask(b) => [
                (b.mask.as_ptr() as usize, b.mask.len()),
                (b.values.as_ptr() as usize, b.values.len() * 4),
            ],
            SparseMatrix::Nm(b) => [
                (b.idx.as_ptr() as usize, b.idx.len()),
                (b.values.as_ptr() as usize, b.values.len() * 4),
            ],
        }
    }
    /// The whole matrix, dense, row-major.
    pub fn to_dense(&self) -> Vec<f32> {
        let (rows, cols) = self.dims();
        let mut out = vec![0f32; rows * cols];
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(r, o)| self.decode_row(r, o));
        out
    }
    /// `y = x Wᵀ` for `x` of `m × cols`, returned as `m × rows`.
    pub fn matmul_t(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = self.dims();
        let mut t = vec![0f32; n * m];
        const ROWS: usize = 32;
        crate::pool::parallel_chunks_mut(&mut t, ROWS * m, &|c, out| {
            let r0 = c * ROWS;
            if m == 1 {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = self.dot_row(r0 + i, x);
                }
            } else {
                let mut scratch = vec![0f32; k];
                for (i, o) in out.chunks_exact_mut(m).enumerate() {
                    self.decode_row(r0 + i, &mut scratch);
                    for (j, om) in o.iter_mut().enumerate() {
                        *om = dot_dispatch(&x[j * k..(j + 1) * k], &scratch);
                    }
                }
            }
        });
        transpose_feature_major(t, m, n)
    }
}

/// Per mask byte: the lane permutation that scatters the next packed values to the set bits, and the lane mask.
type Lut = Vec<([i32; 8], [i32; 8])>;

fn bitmask_lut() -> &'static Lut {
    static L: OnceLock<Lut> = OnceLock::new();
    L.get_or_init(|| {
        (0..256u32)
            .map(|b| {
                let (mut perm, mut mask, mut j) = ([0i32; 8], [0i32; 8], 0);
                for lane in 0..8 {
                    if b >> lane & 1 == 1 {
                        perm[lane] = j;
                        mask[lane] = -1;
                        j += 1;
                    }
                }
                (perm, mask)
            })
            .collect()
    })
}

/// Per 2:4 index byte (two groups of four columns, two 2-bit indices each): permutation and lane mask.
fn nm24_lut() -> &'static Lut {
    static L: OnceLock<Lut> = OnceLock::new();
    L.get_or_init(|| {
        (0..256u32)
            .map(|b| {
                let (mut perm, mut mask) = ([0i32; 8], [0i32; 8]);
                for s in 0..4 {
                    let lane = (s / 2) * 4 + (b >> (2 * s) & 3) as usize;
                    perm[lane] = s as i32;
                    mask[lane] = -1;
                }
                (perm, mask)
            })
            .collect()
    })
}

/// Per 2:4 index byte: the 8-bit lane mask of the columns it keeps (bit `4·(s/2) + idx_s` for its four slots).
fn nm24_lane_masks() -> &'static [u8; 256] {
    static L: OnceLock<[u8; 256]> = OnceLock::new();
    L.get_or_init(|| {
        let mut t = [0u8; 256];
        for (b, m) in t.iter_mut().enumerate() {
            for s in 0..4 {
                *m |= 1 << ((s / 2) * 4 + (b >> (2 * s) & 3));
            }
        }
        t
    })
}

/// AVX-512 kernels: `vexpandps` moves the next packed values into the lanes a 16-bit mask selects, so a bitmask
/// row needs no permutation table, and a 2:4 row's two index bytes become that mask through a 256-entry table (its
/// slots are stored in column order, [`NmMatrix::from_masked`]); values are prefetched 2 KiB ahead.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Prefetch distance in values (2 KiB ahead): one stream per row is too few for the hardware prefetcher to
    /// keep DRAM busy (measured: 2:4 rows 14 → 17 GB/s).
    const AHEAD: usize = 512;

    /// Rows `r0 .. r0 + out.len()` of a bitmask matrix times `x`, the row loop inside the AVX-512 code (a call
    /// per row from outside costs ~15% of the kernel's throughput).
    ///
    /// # Safety
    /// AVX-512F; `x` has `cols` values; the rows exist.
    #[target_feature(enable = "avx512f,popcnt")]
    pub unsafe fn rows_bitmask(b: &super::BitmaskMatrix, x: &[f32], r0: usize, out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            let (mask, vals) = b.row(r0 + i);
            *o = dot_bitmask(mask, vals, x);
        }
    }

    /// As [`rows_bitmask`] for a 2:4 matrix.
    ///
    /// # Safety
    /// AVX-512F; the matrix is 2:4 with `cols` a multiple of 8; `x` has `cols` values; the rows exist.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn rows_2_4(
        b: &super::NmMatrix,
        x: &[f32],
        r0: usize,
        out: &mut [f32],
        lanes: &[u8; 256],
    ) {
        for (i, o) in out.iter_mut().enumerate() {
            let (ib, vals) = b.row(r0 + i);
            *o = dot_2_4(ib, vals, x, lanes);
        }
    }

    /// # Safety
    /// AVX-512F; `x` has `8 · mask.len()` values; `vals` holds the row's kept values and 16 more readable ones.
    #[inline]
    #[target_feature(enable = "avx512f,popcnt")]
    pub unsafe fn dot_bitmask(mask: &[u8], vals: &[f32], x: &[f32]) -> f32 {
        let mut acc = [_mm512_setzero_ps(); 4];
        let (vp, xp) = (vals.as_ptr(), x.as_ptr());
        let mut p = 0usize;
        let words = mask.len() / 8;
        for c in 0..words {
            let m = u64::from_le_bytes(
                mask.get_unchecked(c * 8..c * 8 + 8)
                    .try_into()
                    .unwrap_unchecked(),
            );
            _mm_prefetch(vp.add(p + AHEAD) as *const i8, _MM_HINT_T0);
            if m == 0 {
                continue;
            }
            // The offsets of the four 16-column quarters, each from the word alone (no chain between them).
            let o = [
                0,
                (m & 0xffff).count_ones() as usize,
                (m & 0xffff_ffff).count_ones() as usize,
                (m & 0xffff_ffff_ffff).count_ones() as usize,
            ];
            for (q, a) in acc.iter_mut().enumerate() {
                let k = (m >> (16 * q)) as u16;
                // Register-form expand of 16 loaded values (the memory form is slower on Intel).
                let v = _mm512_maskz_expand_ps(k, _mm512_loadu_ps(vp.add(p + o[q])));
                *a = _mm512_fmadd_ps(v, _mm512_loadu_ps(xp.add(c * 64 + q * 16)), *a);
            }
            p += m.count_ones() as usize;
        }
        for (j, &b) in mask.iter().enumerate().skip(words * 8) {
            let v = _mm512_maskz_expand_ps(u16::from(b), _mm512_loadu_ps(vp.add(p)));
            acc[0] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(0xff, xp.add(j * 8)), acc[0]);
            p += b.count_ones() as usize;
        }
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }

    /// # Safety
    /// AVX-512F; `x` has `8 · idx.len()` values; `vals` has `4 · idx.len()` values.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_2_4(idx: &[u8], vals: &[f32], x: &[f32], lanes: &[u8; 256]) -> f32 {
        let mut acc = [_mm512_setzero_ps(); 4];
        let (vp, xp) = (vals.as_ptr(), x.as_ptr());
        let pairs = idx.len() / 2;
        for c in 0..pairs {
            if c % 2 == 0 {
                _mm_prefetch(vp.add(8 * c + AHEAD) as *const i8, _MM_HINT_T0);
            }
            let k = u16::from(*lanes.get_unchecked(*idx.get_unchecked(2 * c) as usize))
                | u16::from(*lanes.get_unchecked(*idx.get_unchecked(2 * c + 1) as usize)) << 8;
            // Exactly 8 values per 16 columns: a 256-bit load, expanded in registers.
            let v =
                _mm512_maskz_expand_ps(k, _mm512_castps256_ps512(_mm256_loadu_ps(vp.add(8 * c))));
            let a = acc.get_unchecked_mut(c & 3);
            *a = _mm512_fmadd_ps(v, _mm512_loadu_ps(xp.add(16 * c)), *a);
        }
        if idx.len() % 2 == 1 {
            let j = idx.len() - 1;
            let k = u16::from(lanes[idx[j] as usize]);
            let v = _mm512_maskz_expand_ps(k, _mm512_castps128_ps512(_mm_loadu_ps(vp.add(4 * j))));
            acc[0] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(0xff, xp.add(8 * j)), acc[0]);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Lut;
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// AVX2 and FMA; `x` has `8 · mask.len()` values; `vals` has the row's kept values and 8 more readable ones.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_expand(mask: &[u8], vals: &[f32], x: &[f32], lut: &Lut) -> f32 {
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut p = 0usize;
        let (vp, xp) = (vals.as_ptr(), x.as_ptr());
        for (j, &b) in mask.iter().enumerate() {
            if b == 0 {
                continue;
            }
            let (perm, lm) = lut.get_unchecked(b as usize);
            let v = _mm256_loadu_ps(vp.add(p));
            let v =
                _mm256_permutevar8x32_ps(v, _mm256_loadu_si256(perm.as_ptr() as *const __m256i));
            let v = _mm256_and_ps(v, _mm256_loadu_ps(lm.as_ptr() as *const f32));
            let xv = _mm256_loadu_ps(xp.add(j * 8));
            if j & 1 == 0 {
                acc0 = _mm256_fmadd_ps(v, xv, acc0);
            } else {
                acc1 = _mm256_fmadd_ps(v, xv, acc1);
            }
            p += b.count_ones() as usize;
        }
        hsum(_mm256_add_ps(acc0, acc1))
    }

    /// # Safety
    /// AVX2 and FMA; `x` has `8 · idx.len()` values; `vals` has `4 · idx.len()` values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_2_4(idx: &[u8], vals: &[f32], x: &[f32], lut: &Lut) -> f32 {
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let (vp, xp) = (vals.as_ptr(), x.as_ptr());
        let mut j = 0;
        while j < idx.len() {
            let (perm, lm) = lut.get_unchecked(*idx.get_unchecked(j) as usize);
            let v = _mm256_castps128_ps256(_mm_loadu_ps(vp.add(4 * j)));
            let v =
                _mm256_permutevar8x32_ps(v, _mm256_loadu_si256(perm.as_ptr() as *const __m256i));
            let v = _mm256_and_ps(v, _mm256_loadu_ps(lm.as_ptr() as *const f32));
            let xv = _mm256_loadu_ps(xp.add(8 * j));
            if j & 1 == 0 {
                acc0 = _mm256_fmadd_ps(v, xv, acc0);
            } else {
                acc1 = _mm256_fmadd_ps(v, xv, acc1);
            }
            j += 1;
        }
        hsum(_mm256_add_ps(acc0, acc1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::pseudo_values as pseudo;

    fn dense_product(
        w: &[f32],
        keep: &[f32],
        x: &[f32],
        rows: usize,
        cols: usize,
        m: usize,
    ) -> Vec<f32> {
        let mut y = vec![0f32; m * rows];
        for i in 0..m {
            for r in 0..rows {
                y[i * rows + r] = (0..cols)
                    .map(|c| x[i * cols + c] * w[r * cols + c] * keep[r * cols + c])
                    .sum();
            }
        }
        y
    }

    fn check(s: &SparseMatrix, w: &[f32], keep: &[f32], rows: usize, cols: usize) {
        let dense: Vec<f32> = w.iter().zip(keep).map(|(a, k)| a * k).collect();
        assert_eq!(
            s.to_dense(),
            dense,
            "{} decode is bit-exact",
            s.format_name()
        );
        for m in [1, 3] {
            let x = pseudo(m * cols, 5 + m as u32);
            let y = s.matmul_t(&x, m);
            let r = dense_product(w, keep, &x, rows, cols, m);
            for (a, b) in y.iter().zip(&r) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{}: {a} vs {b}",
                    s.format_name()
                );
            }
        }
    }

    #[test]
    fn sparse_kernels_equal_the_dense_product() {
        let (rows, cols) = (67, 96);
        let w = pseudo(rows * cols, 1);
        // Unstructured, ~70% pruned (by magnitude threshold).
        let keep: Vec<f32> = w.iter().map(|v| f32::from(v.abs() > 0.7)).collect();
        let s = SparseMatrix::from_masked(&w, &keep, rows, cols).unwrap();
        assert_eq!(s.format_name(), "bitmask");
        check(&s, &w, &keep, rows, cols);
        // 2:4: keep the two largest of every four; some groups keep only one (a zero weight on the mask's 1).
        let mut keep24 = vec![0f32; rows * cols];
        for (g, grp) in w.chunks(4).enumerate() {
            let mut o: Vec<usize> = (0..4).collect();
            o.sort_by(|&a, &b| grp[b].abs().total_cmp(&grp[a].abs()));
            keep24[g * 4 + o[0]] = 1.0;
            if g % 5 != 0 {
                keep24[g * 4 + o[1]] = 1.0;
            }
        }
        let s = SparseMatrix::from_masked(&w, &keep24, rows, cols).unwrap();
        assert_eq!(s.format_name(), "2:4");
        check(&s, &w, &keep24, rows, cols);
        // A generic N:M (1:4 forced) and a bitmask over the same 2:4 mask.
        let keep14: Vec<f32> = (0..rows * cols).map(|i| f32::from(i % 4 == 1)).collect();
        check(
            &SparseMatrix::Nm(NmMatrix::from_masked(&w, &keep14, rows, cols, 1, 4).unwrap()),
            &w,
            &keep14,
            rows,
            cols,
        );
        check(
            &SparseMatrix::Nm(NmMatrix::from_masked(&w, &keep24, rows, cols, 4, 8).unwrap()),
            &w,
            &keep24,
            rows,
            cols,
        );
        check(
            &SparseMatrix::Bitmask(BitmaskMatrix::from_masked(&w, &keep24, rows, cols).unwrap()),
            &w,
            &keep24,
            rows,
            cols,
        );
    }

    /// Each kernel the CPU can run (scalar, AVX2, AVX-512) gives the same row products, including the tails
    /// after the last 64-column word (bitmask) or 16-column pair (2:4).
    #[test]
    fn every_sparse_kernel_agrees_with_the_scalar_one() {
        let (rows, cols) = (5, 64 + 24);
        let w = pseudo(rows * cols, 3);
        let x = pseudo(cols, 4);
        let keep: Vec<f32> = w.iter().map(|v| f32::from(v.abs() > 0.6)).collect();
        let keep24: Vec<f32> = (0..rows * cols)
            .map(|i| f32::from((i % 4 + i / 8) % 4 < 2))
            .collect();
        let bm = BitmaskMatrix::from_masked(&w, &keep, rows, cols).unwrap();
        let nm = NmMatrix::from_masked(&w, &keep24, rows, cols, 2, 4).unwrap();
        for r in 0..rows {
            let dense = |k: &[f32]| -> f32 {
                (0..cols)
                    .map(|c| w[r * cols + c] * k[r * cols + c] * x[c])
                    .sum()
            };
            let (want_bm, want_nm) = (dense(&keep), dense(&keep24));
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
            assert!(close(bm.dot_row(r, &x), want_bm));
            assert!(close(nm.dot_row(r, &x), want_nm));
            #[cfg(target_arch = "x86_64")]
            {
                let ((mask, mv), (ib, nv)) = (bm.row(r), nm.row(r));
                if crate::kernels::has_avx2_fma() {
                    assert!(close(
                        unsafe { avx2::dot_expand(mask, mv, &x, bitmask_lut()) },
                        want_bm
                    ));
                    assert!(close(
                        unsafe { avx2::dot_2_4(ib, nv, &x, nm24_lut()) },
                        want_nm
                    ));
                }
                if std::is_x86_feature_detected!("avx512f") {
                    assert!(
                        close(unsafe { avx512::dot_bitmask(mask, mv, &x) }, want_bm),
                        "row {r}"
                    );
                    assert!(
                        close(
                            unsafe { avx512::dot_2_4(ib, nv, &x, nm24_lane_masks()) },
                            want_nm
                        ),
                        "row {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_mask_that_breaks_the_pattern_is_an_error() {
        let w = vec![1.0; 8];
        let keep = vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let e = NmMatrix::from_masked(&w, &keep, 1, 8, 2, 4).unwrap_err();
        assert!(e.to_string().contains("2:4"), "{e}");
        assert!(NmMatrix::from_masked(&w, &keep, 1, 8, 4, 4).is_err());
        assert!(BitmaskMatrix::from_masked(&w, &keep, 1, 7).is_err());
    }
}
