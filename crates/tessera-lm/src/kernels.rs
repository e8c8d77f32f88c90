//! Hand-written CPU kernels for the decode path.
//!
//! Decoding multiplies a handful of activation rows by every weight matrix, so its speed is bounded by how fast the
//! weights stream from memory. `matmul_rows_t` reads each weight row once and reuses it for all activation rows,
//! splits the output features across threads, and uses wide SIMD when the CPU has it.

#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    // 16 independent accumulators: the compiler keeps them in vector registers without reassociating.
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}

#[inline(always)]
fn rows_block(x: &[f32], k: usize, w: &[f32], out: &mut [f32]) {
    let m = x.len() / k;
    for (n, o) in out.chunks_exact_mut(m).enumerate() {
        let wr = &w[n * k..(n + 1) * k];
        for (r, om) in o.iter_mut().enumerate() {
            *om = dot(&x[r * k..(r + 1) * k], wr);
        }
    }
}

/// The AVX2 + FMA version of [`rows_block`]: four weight rows at a time, each activation chunk loaded once for all
/// four, two accumulators per row (eight independent FMA chains), so the loop is bound by how fast the weights
/// stream in rather than by FMA latency.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `x` holds `m` rows of `k`, `w` holds `out.len() / m` rows of `k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_block_avx2(x: &[f32], k: usize, w: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let m = x.len() / k;
    let n = out.len() / m;
    let k16 = k / 16 * 16;
    let mut j = 0;
    while j + 4 <= n {
        let wp = [
            w.as_ptr().add(j * k),
            w.as_ptr().add((j + 1) * k),
            w.as_ptr().add((j + 2) * k),
            w.as_ptr().add((j + 3) * k),
        ];
        for r in 0..m {
            let xp = x.as_ptr().add(r * k);
            let mut a = [_mm256_setzero_ps(); 4];
            let mut b = [_mm256_setzero_ps(); 4];
            let mut t = 0;
            while t < k16 {
                let x0 = _mm256_loadu_ps(xp.add(t));
                let x1 = _mm256_loadu_ps(xp.add(t + 8));
                for i in 0..4 {
                    a[i] = _mm256_fmadd_ps(_mm256_loadu_ps(wp[i].add(t)), x0, a[i]);
                    b[i] = _mm256_fmadd_ps(_mm256_loadu_ps(wp[i].add(t + 8)), x1, b[i]);
                }
                t += 16;
            }
            for i in 0..4 {
                let mut s = hsum256(_mm256_add_ps(a[i], b[i]));
                for u in k16..k {
                    s += *xp.add(u) * *wp[i].add(u);
                }
                out[(j + i) * m + r] = s;
            }
        }
        j += 4;
    }
    for jj in j..n {
        let wr = &w[jj * k..(jj + 1) * k];
        for r in 0..m {
            out[jj * m + r] = dot(&x[r * k..(r + 1) * k], wr);
        }
    }
}

/// The AVX-512 version of [`rows_block_avx2`]: the same four-row scheme on 16-lane vectors (one cache line per
/// load).
///
/// # Safety
/// The CPU must have AVX-512F; `x` holds `m` rows of `k`, `w` holds `out.len() / m` rows of `k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn rows_block_avx512(x: &[f32], k: usize, w: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let m = x.len() / k;
    let n = out.len() / m;
    let k32 = k / 32 * 32;
    let mut j = 0;
    while j + 4 <= n {
        let wp = [
            w.as_ptr().add(j * k),
            w.as_ptr().add((j + 1) * k),
            w.as_ptr().add((j + 2) * k),
            w.as_ptr().add((j + 3) * k),
        ];
        for r in 0..m {
            let xp = x.as_ptr().add(r * k);
            let mut a = [_mm512_setzero_ps(); 4];
            let mut b = [_mm512_setzero_ps(); 4];
            let mut t = 0;
            while t < k32 {
                let x0 = _mm512_loadu_ps(xp.add(t));
                let x1 = _mm512_loadu_ps(xp.add(t + 16));
                for i in 0..4 {
                    a[i] = _mm512_fmadd_ps(_mm512_loadu_ps(wp[i].add(t)), x0, a[i]);
                    b[i] = _mm512_fmadd_ps(_mm512_loadu_ps(wp[i].add(t + 16)), x1, b[i]);
                }
                t += 32;
            }
            for i in 0..4 {
                let mut s = _mm512_reduce_add_ps(_mm512_add_ps(a[i], b[i]));
                for u in k32..k {
                    s += *xp.add(u) * *wp[i].add(u);
                }
                out[(j + i) * m + r] = s;
            }
        }
        j += 4;
    }
    for jj in j..n {
        let wr = &w[jj * k..(jj + 1) * k];
        for r in 0..m {
            out[jj * m + r] = dot(&x[r * k..(r + 1) * k], wr);
        }
    }
}

/// Whether the CPU has AVX-512F (detected once; `TESSERA_NO_AVX512=1` forces the AVX2 kernel, for comparisons).
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && has_avx2_fma()
                && std::env::var_os("TESSERA_NO_AVX512").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The sum of the eight lanes.
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn hsum256(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Whether the CPU has AVX2 and FMA (detected once).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A dot product of two equally long f32 slices with the widest SIMD available.
pub(crate) fn dot_dispatch(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: the features were detected at run time.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

/// `t` computed feature-major (`n × m`) back to row-major `m × n`.
pub(crate) fn transpose_feature_major(t: Vec<f32>, m: usize, n: usize) -> Vec<f32> {
    if m == 1 {
        return t;
    }
    let mut y = vec![0f32; m * n];
    for (j, row) in t.chunks_exact(m).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            y[i * n + j] = v;
        }
    }
    y
}

/// `out[r] = w_r · x` for the rows of `w` (`out.len()` rows of `k`) and one activation row `x` (feature-major
/// `rows × m` for `m` activation rows), on the best kernel the CPU has.
pub(crate) fn rows_block_dispatch(x: &[f32], k: usize, w: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the features were detected at run time.
            unsafe { rows_block_avx512(x, k, w, out) };
            return;
        }
        if has_avx2_fma() {
            // SAFETY: the features were detected at run time.
            unsafe { rows_block_avx2(x, k, w, out) };
            return;
        }
    }
    rows_block(x, k, w, out)
}

/// `y = x · wᵀ` for `x` of `m × k` and `w` of `n × k` (row-major), returned as `m × n`.
pub fn matmul_rows_t(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), m * k);
    debug_assert_eq!(w.len(), n * k);
    // Output computed feature-major (n × m) so each thread owns a contiguous block of weight rows.
    let mut t = vec![0f32; n * m];
    // 16 rows per task: even the 192-row key/value projections split into 12 tasks, so the threads finish together.
    const ROWS: usize = 16;
    crate::pool::parallel_chunks_mut(&mut t, ROWS * m, &|c, out| {
        let n0 = c * ROWS;
        let rows = out.len() / m;
        rows_block_dispatch(x, k, &w[n0 * k..(n0 + rows) * k], out);
    });
    transpose_feature_major(t, m, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product() {
        for (m, k, n) in [(3, 37, 130), (1, 576, 70), (2, 48, 9), (1, 80, 7)] {
            matches_naive(m, k, n);
        }
        // Every kernel the CPU can run agrees with the portable one.
        let (m, k, n) = (2, 600, 9);
        let x = crate::testing::pseudo_values(m * k, 1);
        let w = crate::testing::pseudo_values(n * k, 2);
        let mut want = vec![0f32; n * m];
        rows_block(&x, k, &w, &mut want);
        #[cfg(target_arch = "x86_64")]
        {
            let mut got = vec![0f32; n * m];
            if has_avx2_fma() {
                unsafe { rows_block_avx2(&x, k, &w, &mut got) };
                assert!(
                    got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-3),
                    "avx2"
                );
            }
            if has_avx512() {
                unsafe { rows_block_avx512(&x, k, &w, &mut got) };
                assert!(
                    got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-3),
                    "avx512"
                );
            }
        }
    }

    fn matches_naive(m: usize, k: usize, n: usize) {
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 11 % 17) as f32 - 8.0) / 7.0)
            .collect();
        let y = matmul_rows_t(&x, m, k, &w, n);
        for i in 0..m {
            for j in 0..n {
                let r: f32 = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
                assert!(
                    (y[i * n + j] - r).abs() < 1e-3 * (1.0 + r.abs()),
                    "{m}x{k}x{n} {i},{j}"
                );
            }
        }
    }
}
