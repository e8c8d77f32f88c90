//! Quantized weight matrices in the GGUF's own block formats, and their decode kernels.
//!
//! A [`QMatrix`] holds `rows × cols` weights row-major, each row a run of blocks of 32 consecutive weights, laid out
//! byte for byte as in a GGUF file (ggml's little-endian structs), so a file's tensors are used without re-encoding:
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
//! Kernels: rayon over output rows (each weight row read once per call and reused for every activation row), AVX2 +
//! FMA + F16C when the CPU has them (detected at run time), a portable scalar path otherwise.
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

/// A row-major matrix of quantized blocks (see the module docs for the layouts).
#[derive(Clone)]
pub struct QMatrix {
    format: QFormat,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({} {}×{})", self.format, self.rows, self.cols)
    }
}

impl QMatrix {
    /// Wraps raw blocks (`rows × cols / 32` blocks, row-major); `cols` must be a multiple of 32 and the byte count
    /// must match exactly.
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
        Ok(QMatrix {
            format,
            rows,
            cols,
            data,
        })
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
        Ok(QMatrix {
            format: QFormat::Q8_0,
            rows,
            cols,
            data,
        })
    }

    /// The block format.
    pub fn format(&self) -> QFormat {
        self.format
    }
    /// `(rows, cols)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
    fn row_bytes(&self) -> usize {
        self.cols / BLOCK * self.format.block_bytes()
    }
    /// The raw blocks of row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Reorders rows: row `i` of the result is row `perm[i]` of `self` (blocks are moved whole).
    pub fn permute_rows(&self, perm: &[usize]) -> Result<Self> {
        if perm.len() != self.rows || perm.iter().any(|&p| p >= self.rows) {
            return Err(LmError::Invalid(
                "row permutation does not fit the matrix".into(),
            ));
        }
        let mut data = Vec::with_capacity(self.data.len());
        for &p in perm {
            data.extend_from_slice(self.row(p));
        }
        Ok(QMatrix { data, ..*self })
    }

    /// Dequantizes row `r` into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        dequantize_row(self.format, self.row(r), out)
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
        const ROWS: usize = 32;
        let kern = kernel(self.format);
        t.par_chunks_mut(ROWS * m).enumerate().for_each(|(c, out)| {
            let r0 = c * ROWS;
            for (i, o) in out.chunks_exact_mut(m).enumerate() {
                let w = self.row(r0 + i);
                for (a, om) in acts.iter().zip(o.iter_mut()) {
                    *om = kern(w, a);
                }
            }
        });
        crate::kernels::transpose_feature_major(t, m, n)
    }
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

type Kernel = fn(&[u8], &QActs) -> f32;

fn kernel(format: QFormat) -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::kernels::has_avx2_fma() && std::is_x86_feature_detected!("f16c") {
            return match format {
                QFormat::Q8_0 => |w, a| unsafe { avx2::dot_q8_0(w, a) },
                QFormat::Q4_0 => |w, a| unsafe { avx2::dot_q4(w, a, false) },
                QFormat::Q4_1 => |w, a| unsafe { avx2::dot_q4(w, a, true) },
            };
        }
    }
    match format {
        QFormat::Q8_0 => dot_q8_0_scalar,
        QFormat::Q4_0 => |w, a| dot_q4_scalar(w, a, false),
        QFormat::Q4_1 => |w, a| dot_q4_scalar(w, a, true),
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
    use super::{QActs, BLOCK};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn f16(p: *const u8) -> f32 {
        let h = u16::from_le_bytes([*p, *p.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
    }

    #[inline(always)]
    pub(crate) unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Σ a_i b_i over 32 signed bytes, as 8 f32 partial sums.
    #[inline(always)]
    unsafe fn dot_i8(a: __m256i, b: __m256i) -> __m256 {
        let ax = _mm256_sign_epi8(a, a);
        let sb = _mm256_sign_epi8(b, a);
        let p = _mm256_maddubs_epi16(ax, sb);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `w` holds `a.d.len()` Q8_0 blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0(w: &[u8], a: &QActs) -> f32 {
        let nb = a.d.len();
        debug_assert_eq!(w.len(), nb * 34);
        let mut acc = _mm256_setzero_ps();
        let (wp, qp) = (w.as_ptr(), a.q.as_ptr());
        for b in 0..nb {
            let blk = wp.add(b * 34);
            let wv = _mm256_loadu_si256(blk.add(2) as *const __m256i);
            let xv = _mm256_loadu_si256(qp.add(b * BLOCK) as *const __m256i);
            let d = _mm256_set1_ps(f16(blk) * *a.d.get_unchecked(b));
            acc = _mm256_fmadd_ps(d, dot_i8(wv, xv), acc);
        }
        hsum(acc)
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `w` holds `a.d.len()` Q4_0 (`min = false`) or Q4_1 blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4(w: &[u8], a: &QActs, min: bool) -> f32 {
        let nb = a.d.len();
        let bb = if min { 20 } else { 18 };
        debug_assert_eq!(w.len(), nb * bb);
        let mut acc = _mm256_setzero_ps();
        let mut corr = 0f32;
        let low = _mm_set1_epi8(15);
        let ones = _mm256_set1_epi16(1);
        let (wp, qp) = (w.as_ptr(), a.q.as_ptr());
        for b in 0..nb {
            let blk = wp.add(b * bb);
            let raw = _mm_loadu_si128(blk.add(bb - 16) as *const __m128i);
            let lo = _mm_and_si128(raw, low);
            let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), low);
            let n = _mm256_set_m128i(hi, lo);
            let xv = _mm256_loadu_si256(qp.add(b * BLOCK) as *const __m256i);
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(n, xv), ones);
            let dx = *a.d.get_unchecked(b);
            let dw = f16(blk);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), _mm256_cvtepi32_ps(p), acc);
            corr += if min {
                f16(blk.add(2)) * *a.s.get_unchecked(b)
            } else {
                -8.0 * dw * dx * *a.sum.get_unchecked(b) as f32
            };
        }
        hsum(acc) + corr
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
                let sc = kernel_scalar(f);
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
                    let s = sc(q.row(r), &acts) as f64;
                    assert!(
                        (got - s).abs() <= 1e-4 * (1.0 + s.abs()),
                        "{f}: simd {got} scalar {s}"
                    );
                }
            }
        }
    }

    fn kernel_scalar(f: QFormat) -> Kernel {
        match f {
            QFormat::Q8_0 => dot_q8_0_scalar,
            QFormat::Q4_0 => |w, a| dot_q4_scalar(w, a, false),
            QFormat::Q4_1 => |w, a| dot_q4_scalar(w, a, true),
        }
    }

    #[test]
    fn q8_0_quantization_round_trips_within_half_a_step() {
        let (rows, cols) = (5, 64);
        let w = pseudo(rows * cols, 11);
        let q = QMatrix::quantize_q8_0(&w, rows, cols).unwrap();
        assert_eq!(q.bytes(), rows * cols / 32 * 34);
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
        assert_eq!(p.row(0), q.row(2));
    }
}
