//! Exact statevector simulation of the HHL quantum linear-system algorithm (Harrow, Hassidim & Lloyd,
//! PRL 103, 150502 (2009)) — the small-scale check behind Q-Newton's quantum route (arXiv 2405.00252, background on QLSAs).
//!
//! Registers: `n_s ≤ 4` system qubits holding `|b⟩` (the block padded to `2^{n_s}` with `λ_max` on the extra
//! diagonal, which `b` never touches), `n_c` clock qubits and one ancilla. Index of an amplitude:
//! `ancilla·2^{n_c+n_s} + clock·2^{n_s} + system`. The circuit, applied gate by gate:
//!
//! 1. Hadamards on the clock register.
//! 2. Phase estimation: for clock qubit `j`, controlled-`U^{2^j}` with `U = e^{iAt}`; `U^{2^j}` is built exactly
//!    from faer's symmetric eigendecomposition `A = VΛVᵀ` as `V·diag(e^{iλt2^j})·Vᵀ`.
//! 3. Inverse quantum Fourier transform on the clock (a dense `2^{n_c}` unitary).
//! 4. Controlled rotation: for clock value `m` with eigenvalue estimate `λ̃(m) = 2πm/(t·2^{n_c})` (signed when `A`
//!    is indefinite: `m ≥ 2^{n_c−1}` means `m − 2^{n_c}`), `RY` on the ancilla with `sin(θ/2) = C/λ̃`,
//!    `C` = the largest clock-grid value `2πk/(t·2^{n_c})` not above `min|λ|` (at least one grid step; knowing a
//!    lower bound on the spectrum is the usual HHL assumption); `|C/λ̃|` is clamped to 1; `m = 0` is left unrotated.
//! 5. Uncomputation: QFT, controlled-`U^{−2^j}`, Hadamards.
//! 6. Post-selection on ancilla = 1 and clock = 0 leaves the system register ∝ `A⁻¹|b⟩`.
//!
//! `t` is chosen so that `max|λ|` maps to a fraction `range` of the clock's (half-)range, leaving headroom against
//! phase wrap-around. Fidelity is `|⟨x_HHL|x⟩|²` against the normalised classical LU solution.
use crate::error::{QnError, Result};
use faer::linalg::solvers::Solve;
use faer::{c64, Mat, Side};
use rand::Rng;
use serde::Serialize;

/// HHL settings.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HhlConfig {
    /// Number of clock (phase-estimation) qubits.
    pub clock_qubits: usize,
    /// Fraction of the clock range that `max|λ|` maps to (0 < range < 1).
    pub range: f64,
}

impl Default for HhlConfig {
    fn default() -> Self {
        HhlConfig {
            clock_qubits: 8,
            range: 0.75,
        }
    }
}

/// Outcome of one simulated HHL run.
#[derive(Debug, Clone, Serialize)]
pub struct HhlResult {
    /// `|⟨x_HHL|x_classical⟩|²` of the normalised solutions.
    pub fidelity: f64,
    /// Probability of the post-selected outcome (ancilla 1, clock 0).
    pub success_probability: f64,
    /// System qubits.
    pub system_qubits: usize,
    /// Clock qubits.
    pub clock_qubits: usize,
    /// Total qubits simulated.
    pub total_qubits: usize,
    /// Exact κ₂ of A.
    pub kappa: f64,
    /// Normalised HHL solution (real parts after removing the global phase).
    pub solution: Vec<f64>,
    /// Normalised classical solution.
    pub classical: Vec<f64>,
}

struct Circuit {
    ns: usize,
    nc: usize,
    amps: Vec<c64>,
}

impl Circuit {
    fn sys_dim(&self) -> usize {
        1 << self.ns
    }
    fn clock_dim(&self) -> usize {
        1 << self.nc
    }
    fn hadamard_clock(&mut self) {
        let (sd, cd) = (self.sys_dim(), self.clock_dim());
        let h = std::f64::consts::FRAC_1_SQRT_2;
        for q in 0..self.nc {
            let bit = 1 << q;
            for anc in 0..2 {
                for k in (0..cd).filter(|k| k & bit == 0) {
                    for s in 0..sd {
                        let i0 = (anc * cd + k) * sd + s;
                        let i1 = (anc * cd + (k | bit)) * sd + s;
                        let (a, b) = (self.amps[i0], self.amps[i1]);
                        self.amps[i0] = (a + b) * h;
                        self.amps[i1] = (a - b) * h;
                    }
                }
            }
        }
    }
    /// Applies the system unitary `u` wherever clock bit `q` is 1.
    fn controlled_system(&mut self, q: usize, u: &Mat<c64>) {
        let (sd, cd) = (self.sys_dim(), self.clock_dim());
        let mut buf = vec![c64::new(0.0, 0.0); sd];
        for anc in 0..2 {
            for k in (0..cd).filter(|k| k & (1 << q) != 0) {
                let base = (anc * cd + k) * sd;
                for (r, out) in buf.iter_mut().enumerate() {
                    *out = (0..sd).map(|c| u[(r, c)] * self.amps[base + c]).sum();
                }
                self.amps[base..base + sd].copy_from_slice(&buf);
            }
        }
    }
    /// Applies a dense unitary `f` to the clock register.
    fn clock_unitary(&mut self, f: &Mat<c64>) {
        let (sd, cd) = (self.sys_dim(), self.clock_dim());
        let mut col = vec![c64::new(0.0, 0.0); cd];
        for anc in 0..2 {
            for s in 0..sd {
                for (k, c) in col.iter_mut().enumerate() {
                    *c = self.amps[(anc * cd + k) * sd + s];
                }
                for m in 0..cd {
                    self.amps[(anc * cd + m) * sd + s] = (0..cd).map(|k| f[(m, k)] * col[k]).sum();
                }
            }
        }
    }
}

fn qft_matrix(dim: usize, inverse: bool) -> Mat<c64> {
    let sign = if inverse { -1.0 } else { 1.0 };
    let norm = 1.0 / (dim as f64).sqrt();
    Mat::from_fn(dim, dim, |m, k| {
        let phase = sign * std::f64::consts::TAU * ((m * k) % dim) as f64 / dim as f64;
        c64::new(phase.cos() * norm, phase.sin() * norm)
    })
}

/// Runs HHL on the symmetric `a` (order ≤ 16) and right-hand side `b`, returning fidelity against LU.
pub fn hhl_solve(a: &Mat<f64>, b: &[f64], cfg: &HhlConfig) -> Result<HhlResult> {
    let n = a.nrows();
    if n == 0 || n > 16 || a.ncols() != n || b.len() != n {
        return Err(QnError::InvalidInput(format!(
            "HHL needs a square matrix of order 1..=16 and a matching b (got {n}×{}, b {})",
            a.ncols(),
            b.len()
        )));
    }
    if !((1..=12).contains(&cfg.clock_qubits) && cfg.range > 0.0 && cfg.range < 1.0) {
        return Err(QnError::InvalidInput(
            "clock qubits must be 1..=12 and range in (0, 1)".into(),
        ));
    }
    let asym = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| (a[(i, j)] - a[(j, i)]).abs())
        .fold(0.0, f64::max);
    if asym > 1e-10 * a.norm_max().max(1e-300) {
        return Err(QnError::InvalidInput(
            "HHL needs a symmetric (Hermitian) matrix".into(),
        ));
    }
    let bnorm = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if bnorm == 0.0 {
        return Err(QnError::InvalidInput("right-hand side is zero".into()));
    }
    let ns = (n as f64).log2().ceil() as usize;
    let sd = 1usize << ns;
    let eig = a
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| QnError::Linalg(format!("eigendecomposition: {e:?}")))?;
    let lams: Vec<f64> = eig.S().column_vector().iter().copied().collect();
    let max_abs = lams.iter().map(|l| l.abs()).fold(0.0, f64::max);
    let min_abs = lams.iter().map(|l| l.abs()).fold(f64::INFINITY, f64::min);
    if min_abs == 0.0 {
        return Err(QnError::Linalg("matrix is singular".into()));
    }
    let signed = lams.iter().any(|&l| l < 0.0);
    // Pad to 2^ns with max|λ| on the new diagonal: eigenvectors e_i, untouched by b.
    let mut vecs = Mat::<f64>::zeros(sd, sd);
    let mut pad_lams = lams.clone();
    for i in 0..n {
        for j in 0..n {
            vecs[(i, j)] = eig.U()[(i, j)];
        }
    }
    for i in n..sd {
        vecs[(i, i)] = 1.0;
        pad_lams.push(max_abs);
    }
    let nc = cfg.clock_qubits;
    let cd = 1usize << nc;
    let half = if signed { cd as f64 / 2.0 } else { cd as f64 };
    // max|λ|·t·cd/(2π) = range·half
    let t = std::f64::consts::TAU * cfg.range * half / (max_abs * cd as f64);
    let unitary = |power: f64| -> Mat<c64> {
        Mat::from_fn(sd, sd, |r, c| {
            (0..sd)
                .map(|k| {
                    let ph = pad_lams[k] * t * power;
                    c64::new(ph.cos(), ph.sin()) * (vecs[(r, k)] * vecs[(c, k)])
                })
                .sum()
        })
    };
    let mut circ = Circuit {
        ns,
        nc,
        amps: vec![c64::new(0.0, 0.0); 2 * cd * sd],
    };
    for (i, bi) in b.iter().enumerate() {
        circ.amps[i] = c64::new(bi / bnorm, 0.0);
    }
    circ.hadamard_clock();
    let powers: Vec<f64> = (0..nc).map(|q| (1u64 << q) as f64).collect();
    for (q, p) in powers.iter().enumerate() {
        circ.controlled_system(q, &unitary(*p));
    }
    circ.clock_unitary(&qft_matrix(cd, true));
    // Controlled rotation on the ancilla.
    // C: the largest clock-grid eigenvalue not above min|λ| (at least one grid step), so C/λ̃ ≤ 1 on the peaks and
    // the success probability scales like 1/κ² instead of shrinking with every extra clock qubit.
    let grid = std::f64::consts::TAU / (t * cd as f64);
    let c_const = grid * (min_abs / grid).floor().max(1.0);
    for m in 1..cd {
        let mm = if signed && m >= cd / 2 {
            m as f64 - cd as f64
        } else {
            m as f64
        };
        let lam_est = std::f64::consts::TAU * mm / (t * cd as f64);
        let s = (c_const / lam_est).clamp(-1.0, 1.0);
        let c = (1.0 - s * s).sqrt();
        for sys in 0..sd {
            let i0 = m * sd + sys;
            let i1 = (cd + m) * sd + sys;
            let (a0, a1) = (circ.amps[i0], circ.amps[i1]);
            circ.amps[i0] = a0 * c - a1 * s;
            circ.amps[i1] = a0 * s + a1 * c;
        }
    }
    circ.clock_unitary(&qft_matrix(cd, false));
    for (q, p) in powers.iter().enumerate().rev() {
        circ.controlled_system(q, &unitary(-*p));
    }
    circ.hadamard_clock();
    // Post-select ancilla = 1, clock = 0.
    let post: Vec<c64> = (0..n).map(|s| circ.amps[cd * sd + s]).collect();
    let success_probability: f64 = post.iter().map(|z| z.norm_sqr()).sum();
    let classical = normalized(&classical_solve(a, b)?);
    let overlap: c64 = post.iter().zip(&classical).map(|(z, x)| z * *x).sum();
    let fidelity = if success_probability > 0.0 {
        overlap.norm_sqr() / success_probability
    } else {
        0.0
    };
    let phase = if overlap.norm() > 0.0 {
        overlap.conj() / overlap.norm()
    } else {
        c64::new(1.0, 0.0)
    };
    let norm = success_probability.sqrt().max(f64::MIN_POSITIVE);
    let solution = post.iter().map(|z| (z * phase).re / norm).collect();
    Ok(HhlResult {
        fidelity,
        success_probability,
        system_qubits: ns,
        clock_qubits: nc,
        total_qubits: ns + nc + 1,
        kappa: max_abs / min_abs,
        solution,
        classical,
    })
}

fn classical_solve(a: &Mat<f64>, b: &[f64]) -> Result<Vec<f64>> {
    let rhs = Mat::from_fn(b.len(), 1, |i, _| b[i]);
    let x = a.partial_piv_lu().solve(&rhs);
    let v: Vec<f64> = (0..b.len()).map(|i| x[(i, 0)]).collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err(QnError::Linalg("classical solve failed".into()));
    }
    Ok(v)
}

fn normalized(v: &[f64]) -> Vec<f64> {
    let n = v
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    v.iter().map(|x| x / n).collect()
}

/// A random symmetric matrix `Q·diag(λ)·Qᵀ` with eigenvalues geometrically spaced from `1/κ` to 1 (so its exact
/// κ₂ is `kappa`); with `indefinite`, every other eigenvalue is negated. `Q` is the eigenvector matrix of a
/// Gaussian symmetric matrix (Haar-like).
pub fn random_symmetric(dim: usize, kappa: f64, indefinite: bool, seed: u64) -> Result<Mat<f64>> {
    let mut rng = tessera_core::rng::derived(seed, "random-symmetric");
    let g = Mat::from_fn(dim, dim, |_, _| rng.gen_range(-1.0..1.0));
    let s = Mat::from_fn(dim, dim, |i, j| g[(i, j)] + g[(j, i)]);
    let q = s
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| QnError::Linalg(format!("{e:?}")))?;
    let lam: Vec<f64> = (0..dim)
        .map(|i| {
            let f = if dim > 1 {
                i as f64 / (dim - 1) as f64
            } else {
                1.0
            };
            let l = kappa.powf(f - 1.0);
            if indefinite && i % 2 == 1 {
                -l
            } else {
                l
            }
        })
        .collect();
    let u = q.U();
    // Compute the upper triangle once and mirror it, so the result is exactly symmetric.
    let entry =
        |i: usize, j: usize| -> f64 { (0..dim).map(|k| u[(i, k)] * lam[k] * u[(j, k)]).sum() };
    let upper = Mat::from_fn(dim, dim, |i, j| if i <= j { entry(i, j) } else { 0.0 });
    Ok(Mat::from_fn(dim, dim, |i, j| {
        if i <= j {
            upper[(i, j)]
        } else {
            upper[(j, i)]
        }
    }))
}

/// A seeded random right-hand side with entries in `[-1, 1]`.
pub fn random_rhs(dim: usize, seed: u64) -> Vec<f64> {
    let mut rng = tessera_core::rng::derived(seed, "random-rhs");
    (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect()
}
