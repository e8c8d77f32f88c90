//! Quantized weight matrices in the GGUF's own block formats, and their decode kernels.
//!
//! A GGUF file stores `rows × cols` weights row-major, each row a run of blocks of 32 consecutive weights (ggml's
//! little-endian structs); a [`QMatrix`] takes those bytes and keeps the same integers and scales, repacked so the
//! kernel reads eight rows at a time (see [`QMatrix`]), without requantizing anything:
//!
//! | format | bytes / 32 weights | block layout | weight `j` of the block |
//! |---|---|---|---|
//! | [`QFormat::Q8_0`] | 34 | `d: f16`, `q: [i8; 32]` | `d · q[j]` |
//! | [`QFormat::Q4_0`] | 18 | `d: f16`, `q: [u8; 16]` | `d · (n_j − 8)`, `n_j` = low nibble of `q[j]` for `j < 16`, high nibble of `q[j − 16]` after |
//! | [`QFormat::Q4_1`] | 20 | `d: f16`, `m: f16`, `q: [u8; 16]` | `d · n_j + m` (nibbles as for Q4_0) |
//!
//! The product `y = x Wᵀ` quantizes each activation row to 8 bits per block of 32 first, as llama.cpp does
//! ([`QActs`]: `x_j ≈ d_x · a_j`, `a_j = round(x_j / d_x)` with `d_x = max|x| / 127`, plus the block sum `Σ a_j`), so
//! a block's dot product is an integer dot product scaled once:
//! Q8_0: `d_w d_x Σ q_j a_j`; Q4_0: `d_w d_x (Σ n_j a_j − 8 Σ a_j)`; Q4_1: `d_w d_x Σ n_j a_j + m d_x Σ a_j`.
//! Error bound (what the tests check): relative to the dequantize-then-f32 product, the only extra error is the
//! activation rounding, at most `d_x / 2` per element, so per block `|err| ≤ (d_x / 2) Σ_j |w_j|` (plus f32
//! rounding).
//!
//! Kernels: rayon over groups of output rows (each group's weights read once per call and reused, from L1, for every
//! activation row); AVX-VNNI `vpdpbusd` when the CPU has it, AVX2 `vpmaddubsw`/`vpmaddwd` otherwise (detected at run
//! time), and a portable scalar path on the file's block bytes (the reference the tests compare with).
use crate::error::{LmError, Result};
use half::f16;
use rayon::prelude::*;

/// Weights per block.
pub const BLOCK: usize = 32;

/// A GGUF block format the runtime computes on directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum QFormat {
    /// 8-bit weights, one f16 scale per block (ggml type 8).
    Q8_0,
    /// 4-bit weights with an offset of 8, one f16 scale per block (ggml type 2).
    Q4_0,
    /// 4-bit weights, an f16 scale and an f16 minimum per block (ggml type 3).
    Q4_1,
}

impl QFormat {
    /// Bytes per block of 32 weights.
    pub fn block_bytes(self) -> usize {
        match self {
            QFormat::Q8_0 => 34,
            QFormat::Q4_0 => 18,
            QFormat::Q4_1 => 20,
        }
    }
    /// The format of a ggml type id, if the runtime computes on it.
    pub fn from_ggml(id: u32) -> Option<Self> {
        match id {
            8 => Some(QFormat::Q8_0),
            2 => Some(QFormat::Q4_0),
            3 => Some(QFormat::Q4_1),
            _ => None,
        }
    }
}

impl std::fmt::Display for QFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QFormat::Q8_0 => "q8_0",
            QFormat::Q4_0 => "q4_0",
            QFormat::Q4_1 => "q4_1",
        })
    }
}

/// Rows per interleaved group of the packed layout (one output lane per row of a 256-bit vector).
const GROUP: usize = 8;

/// A matrix of quantized blocks (see the module docs for the block formats), held in the packed layout the decode
/// kernel reads.
///
/// Rows are taken eight at a time (the last group padded with zero rows). For group `g` and block `b` the integer
/// weights of the eight rows are interleaved four at a time, so one 32-byte load holds four consecutive weights of
/// each of the eight rows (`byte 4i + t` = weight `t` of row `i`), and one `vpdpbusd` against four broadcast
/// activation bytes updates the eight rows' block sums at once, with no horizontal sums. Q4 nibbles hold two such
/// chunks: weights `8c..8c+4` in the low nibbles and `8c+4..8c+8` in the high nibbles of chunk `c`. The eight rows'
/// scales `d` (and Q4_1 minimums `m`) of a block sit side by side as f32 (converted once from the file's f16, so
/// exactly the file's values), one 32-byte load each. [`QMatrix::raw_row`] rebuilds the file's bytes.
#[derive(Clone)]
pub struct QMatrix {
    format: QFormat,
    rows: usize,
    cols: usize,
    /// Integer weights: `groups × blocks × (128 | 256)` bytes (Q4 nibbles | Q8 bytes).
    q: Vec<u8>,
    /// Scales: `groups × blocks × 8`.
    d: Vec<f32>,
    /// Q4_1 minimums: `groups × blocks × 8` (empty for the other formats).
    m: Vec<f32>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({} {}×{})", self.format, self.rows, self.cols)
    }
}

/// Packed bytes per (group, block).
fn packed_bytes(format: QFormat) -> usize {
    match format {
        QFormat::Q8_0 => GROUP * BLOCK,
        QFormat::Q4_0 | QFormat::Q4_1 => GROUP * BLOCK / 2,
    }
}

impl QMatrix {
    /// Wraps raw blocks (`rows × cols / 32` blocks, row-major, as in a GGUF file); `cols` must be a multiple of 32
    /// and the byte count must match exactly. The blocks are repacked (see the type docs).
    pub fn from_bytes(format: QFormat, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self> {
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return Err(LmError::Invalid(format!(
                "a {format} matrix needs a width that is a positive multiple of {BLOCK} (got {cols})"
            )));
        }
        let want = rows
            .checked_mul(cols / BLOCK)
            .and_then(|b| b.checked_mul(format.block_bytes()));
        if want != Some(data.len()) {
            return Err(LmError::Invalid(format!(
                "{format} matrix {rows}×{cols} needs {want:?} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self::pack(format, rows, cols, &data))
    }

    /// Repacks row-major raw blocks (checked by the caller).
    fn pack(format: QFormat, rows: usize, cols: usize, data: &[u8]) -> Self {
        let nb = cols / BLOCK;
        let groups = rows.div_ceil(GROUP);
        let (bb, pb) = (format.block_bytes(), packed_bytes(format));
        let mut q = vec![0u8; groups * nb * pb];
        let mut d = vec![0f32; groups * nb * GROUP];
        let mut m = if format == QFormat::Q4_1 {
            vec![0f32; groups * nb * GROUP]
        } else {
            Vec::new()
        };
        q.par_chunks_mut(nb * pb)
            .zip(d.par_chunks_mut(nb * GROUP))
            .enumerate()
            .for_each(|(g, (qg, dg))| {
                for i in 0..GROUP.min(rows - g * GROUP) {
                    let row = &data[(g * GROUP + i) * nb * bb..(g * GROUP + i + 1) * nb * bb];
                    for (b, blk) in row.chunks_exact(bb).enumerate() {
                        dg[b * GROUP + i] = f16_at(blk, 0);
                        let qb = &mut qg[b * pb..(b + 1) * pb];
                        match format {
                            QFormat::Q8_0 => {
                                for j in 0..BLOCK {
                                    qb[(j / 4) * 32 + i * 4 + j % 4] = blk[2 + j];
                                }
                            }
                            QFormat::Q4_0 | QFormat::Q4_1 => {
                                let qs = &blk[bb - 16..];
                                let nib = |j: usize| {
                                    if j < 16 {
                                        qs[j] & 15
                                    } else {
                                        qs[j - 16] >> 4
                                    }
                                };
                                for c in 0..4 {
                                    for t in 0..4 {
                                        qb[c * 32 + i * 4 + t] =
                                            nib(8 * c + t) | (nib(8 * c + 4 + t) << 4);
                                    }
                                }
                            }
                        }
                    }
                }
            });
        if format == QFormat::Q4_1 {
            m.par_chunks_mut(nb * GROUP)
                .enumerate()
                .for_each(|(g, mg)| {
                    for i in 0..GROUP.min(rows - g * GROUP) {
                        let row = &data[(g * GROUP + i) * nb * bb..(g * GROUP + i + 1) * nb * bb];
                        for (b, blk) in row.chunks_exact(bb).enumerate() {
                            mg[b * GROUP + i] = f16_at(blk, 2);
                        }
                    }
                });
        }
        QMatrix {
            format,
            rows,
            cols,
            q,
            d,
            m,
        }
    }

    /// Quantizes a row-major f32 matrix to Q8_0 (`d = max|w| / 127` per block, stored as f16).
    pub fn quantize_q8_0(w: &[f32], rows: usize, cols: usize) -> Result<Self> {
        if w.len() != rows * cols {
            return Err(LmError::Invalid(format!(
                "{} values for a {rows}×{cols} matrix",
                w.len()
            )));
        }
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return Err(LmError::Invalid(format!(
                "Q8_0 needs a width that is a positive multiple of {BLOCK} (got {cols})"
            )));
        }
        let mut data = Vec::with_capacity(rows * cols / BLOCK * 34);
        for blk in w.chunks_exact(BLOCK) {
            let amax = blk.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let d = f16::from_f32(amax / 127.0);
            let df = d.to_f32();
            let inv = if df > 0.0 { 1.0 / df } else { 0.0 };
            data.extend_from_slice(&d.to_bits().to_le_bytes());
            data.extend(
                blk.iter()
                    .map(|&v| (v * inv).round().clamp(-127.0, 127.0) as i8 as u8),
            );
        }
        Ok(Self::pack(QFormat::Q8_0, rows, cols, &data))
    }

    /// The block format.
    pub fn format(&self) -> QFormat {
        self.format
    }
    /// `(rows, cols)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// Bytes held (the packed layout: f32 scales, so slightly more than the file's f16 ones).
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * (self.d.len() + self.m.len())
    }
    fn blocks(&self) -> usize {
        self.cols / BLOCK
    }

    /// Row `r` in the file's own block bytes (rebuilt from the packed layout; `r < rows`).
    pub fn raw_row(&self, r: usize) -> Vec<u8> {
        let (nb, pb, bb) = (
            self.blocks(),
            packed_bytes(self.format),
            self.format.block_bytes(),
        );
        let (g, i) = (r / GROUP, r % GROUP);
        let mut out = Vec::with_capacity(nb * bb);
        for b in 0..nb {
            let at = (g * nb + b) * GROUP + i;
            out.extend_from_slice(&f16::from_f32(self.d[at]).to_bits().to_le_bytes());
            if self.format == QFormat::Q4_1 {
                out.extend_from_slice(&f16::from_f32(self.m[at]).to_bits().to_le_bytes());
            }
            let qb = &self.q[(g * nb + b) * pb..(g * nb + b + 1) * pb];
            match self.format {
                QFormat::Q8_0 => {
                    out.extend((0..BLOCK).map(|j| qb[(j / 4) * 32 + i * 4 + j % 4]));
                }
                QFormat::Q4_0 | QFormat::Q4_1 => {
                    // Weight `j` sits in chunk `j / 8`, byte `4i + j % 4`: the low nibble for `j % 8 < 4`.
                    let nib = |j: usize| {
                        let byte = qb[(j / 8) * 32 + i * 4 + j % 4];
                        if j % 8 < 4 {
                            byte & 15
                        } else {
                            byte >> 4
                        }
                    };
                    out.extend((0..16).map(|j| nib(j) | (nib(j + 16) << 4)));
                }
            }
        }
        out
    }

    /// Reorders rows: row `i` of the result is row `perm[i]` of `self` (blocks are moved whole).
    pub fn permute_rows(&self, perm: &[usize]) -> Result<Self> {
        if perm.len() != self.rows || perm.iter().any(|&p| p >= self.rows) {
            return Err(LmError::Invalid(
                "row permutation does not fit the matrix".into(),
            ));
        }
        let mut data = Vec::with_capacity(self.rows * self.blocks() * self.format.block_bytes());
        for &p in perm {
            data.extend_from_slice(&self.raw_row(p));
        }
        Ok(Self::pack(self.format, self.rows, self.cols, &data))
    }

    /// Dequantizes row `r` into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        dequantize_row(self.format, &self.raw_row(r), out)
    }

    /// The whole matrix in f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        out.par_chunks_mut(self.cols)
            .enumerate()
            .for_each(|(r, o)| self.dequantize_row(r, o));
        out
    }

    /// `y = x Wᵀ` for `x` of `m × cols` (row-major), returned as `m × rows`; activations are quantized to 8 bits
    /// per block first (see the module docs).
    pub fn matmul_t(&self, x: &[f32], m: usize) -> Vec<f32> {
        let n = self.rows;
        let acts: Vec<QActs> = x.chunks_exact(self.cols).map(QActs::quantize).collect();
        let mut t = vec![0f32; n * m];
        // 16 rows (2 groups) per task, computed feature-major so each task owns a contiguous block of the output.
        const ROWS: usize = 2 * GROUP;
        let kern = group_kernel();
        crate::pool::parallel_chunks_mut(&mut t, ROWS * m, &|c, out| {
            let rows = out.len() / m;
            for gi in 0..rows.div_ceil(GROUP) {
                let g = c * ROWS / GROUP + gi;
                let valid = GROUP.min(rows - gi * GROUP);
                for (r, a) in acts.iter().enumerate() {
                    let y = kern(self, g, a);
                    for (i, v) in y.iter().take(valid).enumerate() {
                        out[(gi * GROUP + i) * m + r] = *v;
                    }
                }
            }
        });
        crate::kernels::transpose_feature_major(t, m, n)
    }

    /// Rows `r0 .. r0 + out.len()` of `W x` for one activation row `a` already quantized ([`QActs::quantize`]);
    /// `r0` is a multiple of the 8-row group (the one-token decode path, [`crate::weights::gemv_many`]).
    pub(crate) fn gemv_rows(&self, a: &QActs, r0: usize, out: &mut [f32]) {
        debug_assert!(r0.is_multiple_of(GROUP) && r0 + out.len() <= self.rows);
        let kern = group_kernel();
        for (gi, o) in out.chunks_mut(GROUP).enumerate() {
            let y = kern(self, r0 / GROUP + gi, a);
            o.copy_from_slice(&y[..o.len()]);
        }
    }

    /// `(address, bytes)` of the buffers held ([`crate::hugepages`]).
    pub(crate) fn buffers(&self) -> [(usize, usize); 3] {
        [
            (self.q.as_ptr() as usize, self.q.len()),
            (self.d.as_ptr() as usize, self.d.len() * 4),
            (self.m.as_ptr() as usize, self.m.len() * 4),
        ]
    }

    /// The packed data of group `g`: weights, scales, minimums.
    fn group(&self, g: usize) -> (&[u8], &[f32], &[f32]) {
        let (nb, pb) = (self.blocks(), packed_bytes(self.format));
        let m = if self.m.is_empty() {
            &self.m[..]
        } else {
            &self.m[g * nb * GROUP..(g + 1) * nb * GROUP]
        };
        (
            &self.q[g * nb * pb..(g + 1) * nb * pb],
            &self.d[g * nb * GROUP..(g + 1) * nb * GROUP],
            m,
        )
    }
}

/// The eight rows of a group dotted with one quantized activation row.
type GroupKernel = fn(&QMatrix, usize, &QActs) -> [f32; GROUP];

fn group_kernel() -> GroupKernel {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::kernels::has_avx2_fma() {
            if std::is_x86_feature_detected!("avxvnni") {
                // SAFETY (both): the features were detected at run time.
                return |q, g, a| unsafe { avx2::group_vnni(q, g, a) };
            }
            return |q, g, a| unsafe { avx2::group_avx2(q, g, a) };
        }
    }
    group_scalar
}

/// Portable version of the group kernel, on the rebuilt file blocks.
fn group_scalar(q: &QMatrix, g: usize, a: &QActs) -> [f32; GROUP] {
    let mut y = [0f32; GROUP];
    for (i, v) in y.iter_mut().enumerate() {
        let r = g * GROUP + i;
        if r < q.rows {
            let raw = q.raw_row(r);
            *v = match q.format {
                QFormat::Q8_0 => dot_q8_0_scalar(&raw, a),
                QFormat::Q4_0 => dot_q4_scalar(&raw, a, false),
                QFormat::Q4_1 => dot_q4_scalar(&raw, a, true),
            };
        }
    }
    y
}

/// One activation row quantized to 8 bits per block of 32: `x_j ≈ d[b] · q[j]`, `sum[b] = Σ_{j ∈ b} q[j]`,
/// `s[b] ≈ d[b] · sum[b]`. As in ggml's Q8_0 / Q8_1 activation blocks, the scale and the scaled sum are rounded to
/// f16 (so the products track llama.cpp's to the last bit of the scales).
#[derive(Debug, Clone)]
pub struct QActs {
    /// Quantized values.
    pub q: Vec<i8>,
    /// Scale per block (an f16 value).
    pub d: Vec<f32>,
    /// Integer sum per block.
    pub sum: Vec<i32>,
    /// `d · sum` per block, rounded to f16 (Q4_1's minimum term).
    pub s: Vec<f32>,
}

impl QActs {
    /// Quantizes one row (its length a multiple of 32).
    pub fn quantize(x: &[f32]) -> Self {
        let nb = x.len() / BLOCK;
        let mut q = Vec::with_capacity(x.len());
        let mut d = Vec::with_capacity(nb);
        let mut sum = Vec::with_capacity(nb);
        let mut ss = Vec::with_capacity(nb);
        for blk in x.chunks_exact(BLOCK) {
            let amax = blk.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let s = amax / 127.0;
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            let mut t = 0i32;
            for &v in blk {
                let qi = (v * inv).round().clamp(-127.0, 127.0) as i8;
                t += qi as i32;
                q.push(qi);
            }
            d.push(f16::from_f32(s).to_f32());
            sum.push(t);
            ss.push(f16::from_f32(t as f32 * s).to_f32());
        }
        QActs { q, d, sum, s: ss }
    }
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Dequantizes one row of blocks of `format` into `out`.
pub fn dequantize_row(format: QFormat, row: &[u8], out: &mut [f32]) {
    let bb = format.block_bytes();
    for (blk, o) in row.chunks_exact(bb).zip(out.chunks_exact_mut(BLOCK)) {
        let d = f16_at(blk, 0);
        match format {
            QFormat::Q8_0 => {
                for j in 0..BLOCK {
                    o[j] = d * (blk[2 + j] as i8) as f32;
                }
            }
            QFormat::Q4_0 | QFormat::Q4_1 => {
                let (m, qs) = if format == QFormat::Q4_1 {
                    (f16_at(blk, 2), &blk[4..20])
                } else {
                    (-8.0 * d, &blk[2..18])
                };
                for j in 0..16 {
                    o[j] = d * (qs[j] & 15) as f32 + m;
                    o[j + 16] = d * (qs[j] >> 4) as f32 + m;
                }
            }
        }
    }
}

/// Portable Q8_0 · Q8 block dot product.
pub fn dot_q8_0_scalar(w: &[u8], a: &QActs) -> f32 {
    let mut s = 0f32;
    for (b, blk) in w.chunks_exact(34).enumerate() {
        let q = &a.q[b * BLOCK..(b + 1) * BLOCK];
        let mut t = 0i32;
        for j in 0..BLOCK {
            t += (blk[2 + j] as i8) as i32 * q[j] as i32;
        }
        s += f16_at(blk, 0) * a.d[b] * t as f32;
    }
    s
}

/// Portable Q4_0 (`min = false`) / Q4_1 (`min = true`) · Q8 block dot product.
pub fn dot_q4_scalar(w: &[u8], a: &QActs, min: bool) -> f32 {
    let bb = if min { 20 } else { 18 };
    let mut s = 0f32;
    for (b, blk) in w.chunks_exact(bb).enumerate() {
        let q = &a.q[b * BLOCK..(b + 1) * BLOCK];
        let qs = &blk[bb - 16..bb];
        let mut t = 0i32;
        for j in 0..16 {
            t += (qs[j] & 15) as i32 * q[j] as i32 + (qs[j] >> 4) as i32 * q[j + 16] as i32;
        }
        let d = f16_at(blk, 0);
        s += if min {
            d * a.d[b] * t as f32 + f16_at(blk, 2) * a.s[b]
        } else {
            d * a.d[b] * (t - 8 * a.sum[b]) as f32
        };
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{QActs, QFormat, QMatrix, BLOCK, GROUP};
    use std::arch::x86_64::*;

    /// `acc + Σ_{4 bytes} u·s` per 32-bit lane (`u` unsigned, `s` signed bytes): one `vpdpbusd` with AVX-VNNI, else
    /// `vpmaddubsw` + `vpmaddwd` (exact here: |u| ≤ 128 and |s| ≤ 127 never saturate the 16-bit pair sums).
    #[inline(always)]
    unsafe fn dp<const VNNI: bool>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        if VNNI {
            _mm256_dpbusd_avx_epi32(acc, u, s)
        } else {
            let p = _mm256_maddubs_epi16(u, s);
            _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
        }
    }

    /// Four activation bytes at `p`, broadcast to every 32-bit lane.
    #[inline(always)]
    unsafe fn bcast4(p: *const i8) -> __m256i {
        _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32))
    }

    /// The group kernel (see [`QMatrix`]'s layout): per block, the eight rows' integer sums in the eight lanes, then
    /// one scale multiply-add per block.
    #[inline(always)]
    unsafe fn group_body<const VNNI: bool>(q: &QMatrix, g: usize, a: &QActs) -> [f32; GROUP] {
        let (qg, dg, mg) = q.group(g);
        let nb = q.cols / BLOCK;
        let (qp, xq) = (qg.as_ptr(), a.q.as_ptr());
        let low = _mm256_set1_epi8(15);
        let mut facc = _mm256_setzero_ps();
        for b in 0..nb {
            let x = xq.add(b * BLOCK);
            let (mut i0, mut i1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            match q.format {
                QFormat::Q8_0 => {
                    let wb = qp.add(b * GROUP * BLOCK);
                    for c in (0..8).step_by(2) {
                        let w0 = _mm256_loadu_si256(wb.add(c * 32) as *const __m256i);
                        let w1 = _mm256_loadu_si256(wb.add(c * 32 + 32) as *const __m256i);
                        let x0 = _mm256_sign_epi8(bcast4(x.add(4 * c)), w0);
                        let x1 = _mm256_sign_epi8(bcast4(x.add(4 * c + 4)), w1);
                        i0 = dp::<VNNI>(i0, _mm256_sign_epi8(w0, w0), x0);
                        i1 = dp::<VNNI>(i1, _mm256_sign_epi8(w1, w1), x1);
                    }
                }
                QFormat::Q4_0 | QFormat::Q4_1 => {
                    let wb = qp.add(b * GROUP * BLOCK / 2);
                    for c in 0..4 {
                        let v = _mm256_loadu_si256(wb.add(c * 32) as *const __m256i);
                        let lo = _mm256_and_si256(v, low);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                        i0 = dp::<VNNI>(i0, lo, bcast4(x.add(8 * c)));
                        i1 = dp::<VNNI>(i1, hi, bcast4(x.add(8 * c + 4)));
                    }
                }
            }
            let mut isum = _mm256_add_epi32(i0, i1);
            if q.format == QFormat::Q4_0 {
                isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(8 * *a.sum.get_unchecked(b)));
            }
            let dv = _mm256_mul_ps(
                _mm256_loadu_ps(dg.as_ptr().add(b * GROUP)),
                _mm256_set1_ps(*a.d.get_unchecked(b)),
            );
            facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), dv, facc);
            if q.format == QFormat::Q4_1 {
                facc = _mm256_fmadd_ps(
                    _mm256_loadu_ps(mg.as_ptr().add(b * GROUP)),
                    _mm256_set1_ps(*a.s.get_unchecked(b)),
                    facc,
                );
            }
        }
        let mut y = [0f32; GROUP];
        _mm256_storeu_ps(y.as_mut_ptr(), facc);
        y
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and AVX-VNNI; `g` is a group of `q` and `a` has `q`'s width.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    pub unsafe fn group_vnni(q: &QMatrix, g: usize, a: &QActs) -> [f32; GROUP] {
        group_body::<true>(q, g, a)
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA; `g` is a group of `q` and `a` has `q`'s width.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn group_avx2(q: &QMatrix, g: usize, a: &QActs) -> [f32; GROUP] {
        group_body::<false>(q, g, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::pseudo_values as pseudo;

    /// Random blocks of each format: f16 scales in a sane range, random nibbles / bytes.
    fn random_blocks(f: QFormat, rows: usize, cols: usize) -> QMatrix {
        let v = pseudo(rows * cols / BLOCK * f.block_bytes(), 7);
        let mut data = Vec::new();
        let mut it = v.iter();
        for _ in 0..rows * cols / BLOCK {
            let d = f16::from_f32(0.01 + it.next().unwrap().abs() * 0.05);
            data.extend_from_slice(&d.to_bits().to_le_bytes());
            let mut rest = f.block_bytes() - 2;
            if f == QFormat::Q4_1 {
                let m = f16::from_f32(-0.1 * it.next().unwrap().abs());
                data.extend_from_slice(&m.to_bits().to_le_bytes());
                rest -= 2;
            }
            for _ in 0..rest {
                let x = ((it.next().unwrap_or(&0.3) + 1.0) * 127.9) as u8;
                data.push(if f == QFormat::Q8_0 && x == 128 {
                    129
                } else {
                    x
                });
            }
        }
        QMatrix::from_bytes(f, rows, cols, data).unwrap()
    }

    #[test]
    fn quantized_products_match_dequantized_reference_within_the_block_bound() {
        let (rows, cols, m) = (70, 96, 3);
        let x = pseudo(m * cols, 3);
        for f in [QFormat::Q8_0, QFormat::Q4_0, QFormat::Q4_1] {
            let q = random_blocks(f, rows, cols);
            let w = q.dequantize();
            let y = q.matmul_t(&x, m);
            for i in 0..m {
                let xr = &x[i * cols..(i + 1) * cols];
                let acts = QActs::quantize(xr);
                for r in 0..rows {
                    let wr = &w[r * cols..(r + 1) * cols];
                    let exact: f64 = xr.iter().zip(wr).map(|(a, b)| *a as f64 * *b as f64).sum();
                    let bound: f64 = (0..cols / BLOCK)
                        .map(|b| {
                            acts.d[b] as f64
                                * 0.6
                                * wr[b * BLOCK..(b + 1) * BLOCK]
                                    .iter()
                                    .map(|v| v.abs() as f64)
                                    .sum::<f64>()
                        })
                        .sum::<f64>()
                        + 1e-4;
                    let got = y[i * rows + r] as f64;
                    assert!(
                        (got - exact).abs() <= bound,
                        "{f} {i},{r}: {got} vs {exact} (bound {bound})"
                    );
                    // The SIMD and the scalar kernel agree up to f32 summation order.
                    let s = scalar_dot(f, &q.raw_row(r), &acts) as f64;
                    assert!(
                        (got - s).abs() <= 1e-4 * (1.0 + s.abs()),
                        "{f}: simd {got} scalar {s}"
                    );
                }
            }
        }
    }

    fn scalar_dot(f: QFormat, w: &[u8], a: &QActs) -> f32 {
        match f {
            QFormat::Q8_0 => dot_q8_0_scalar(w, a),
            QFormat::Q4_0 => dot_q4_scalar(w, a, false),
            QFormat::Q4_1 => dot_q4_scalar(w, a, true),
        }
    }

    /// Random raw blocks as a GGUF file holds them.
    fn raw_blocks(f: QFormat, rows: usize, cols: usize) -> Vec<u8> {
        let q = random_blocks(f, rows, cols);
        (0..rows).flat_map(|r| q.raw_row(r)).collect()
    }

    #[test]
    fn packing_round_trips_the_file_bytes() {
        for f in [QFormat::Q8_0, QFormat::Q4_0, QFormat::Q4_1] {
            // 13 rows: one full group of eight and a padded one.
            let (rows, cols) = (13, 64);
            let v = pseudo(rows * cols / BLOCK * f.block_bytes(), 5);
            let raw: Vec<u8> = v.iter().map(|x| ((x + 1.0) * 127.9) as u8).collect();
            // Scales must be finite f16 values to survive the f32 round trip bit for bit.
            let mut raw = raw;
            for blk in raw.chunks_exact_mut(f.block_bytes()) {
                blk[1] &= 0x3b;
                if f == QFormat::Q4_1 {
                    blk[3] &= 0xbb;
                }
            }
            let q = QMatrix::from_bytes(f, rows, cols, raw.clone()).unwrap();
            let back: Vec<u8> = (0..rows).flat_map(|r| q.raw_row(r)).collect();
            assert_eq!(back, raw, "{f}");
            assert_eq!(raw_blocks(f, 3, 32).len(), 3 * f.block_bytes());
        }
    }

    #[test]
    fn every_group_kernel_equals_the_scalar_dot_products() {
        let (rows, cols) = (21, 160);
        let x = pseudo(cols, 9);
        let a = QActs::quantize(&x);
        let mut kernels: Vec<(&str, GroupKernel)> = vec![("scalar", group_scalar)];
        #[cfg(target_arch = "x86_64")]
        {
            if crate::kernels::has_avx2_fma() {
                kernels.push(("avx2", |q, g, a| unsafe { avx2::group_avx2(q, g, a) }));
                if std::is_x86_feature_detected!("avxvnni") {
                    kernels.push(("vnni", |q, g, a| unsafe { avx2::group_vnni(q, g, a) }));
                }
            }
        }
        for f in [QFormat::Q8_0, QFormat::Q4_0, QFormat::Q4_1] {
            let q = random_blocks(f, rows, cols);
            for (name, k) in &kernels {
                for g in 0..rows.div_ceil(GROUP) {
                    let y = k(&q, g, &a);
                    for (i, v) in y.iter().enumerate() {
                        let r = g * GROUP + i;
                        if r < rows {
                            let s = scalar_dot(f, &q.raw_row(r), &a);
                            assert!(
                                (v - s).abs() <= 1e-4 * (1.0 + s.abs()),
                                "{f} {name} row {r}: {v} vs {s}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn q8_0_quantization_round_trips_within_half_a_step() {
        let (rows, cols) = (5, 64);
        let w = pseudo(rows * cols, 11);
        let q = QMatrix::quantize_q8_0(&w, rows, cols).unwrap();
        assert_eq!(q.bytes(), 8 * cols / 32 * 36);
        let back = q.dequantize();
        for (b, (a, r)) in w.chunks(32).zip(back.chunks(32)).enumerate() {
            let amax = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(r) {
                assert!(
                    (x - y).abs() <= amax / 127.0 * 0.51 + 1e-3 * amax,
                    "block {b}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(QMatrix::from_bytes(QFormat::Q4_1, 2, 33, vec![0; 40]).is_err());
        assert!(QMatrix::from_bytes(QFormat::Q4_1, 2, 32, vec![0; 39]).is_err());
        assert!(QMatrix::quantize_q8_0(&[0.0; 10], 1, 10).is_err());
        let q = random_blocks(QFormat::Q8_0, 3, 32);
        assert!(q.permute_rows(&[0, 1]).is_err());
        let p = q.permute_rows(&[2, 0, 1]).unwrap();
        assert_eq!(p.raw_row(0), q.raw_row(2));
    }
}
