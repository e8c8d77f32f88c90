//! MoG: "Graph Sparsification via Mixture of Graphs" (Zhang, Sun, Yue, Jiang, Wang, Chen, Pan; ICLR 2025,
//! arXiv 2405.14260), §3. This file is the paper's algorithm; everything else in the crate is plumbing.
//!
//! **Ego-graphs (§3.1).** Node `i` owns the star ego-graph `G⁽ⁱ⁾` = node `i` (local index 0), its `d_i` neighbours
//! (local 1..=d_i) and the `d_i` edges `(i ← j)` along which `i` receives messages; sparsifying `G⁽ⁱ⁾` decides which
//! messages `i` keeps (as in the released code, which selects edges per target node).
//!
//! **Experts (§3.2).** Expert `m = (criterion C, keep level k_m)` keeps the top `⌈k_m·d_i⌉` (≥ 1) edges of `G⁽ⁱ⁾` by
//! `C` (Jaccard, edge degree, effective resistance, gradient magnitude; see [`crate::criteria`]) — 4 × 3 = 12
//! experts with `k ∈ {0.7, 0.5, 0.3}` by default.
//!
//! **Router (§3.2, Eq. 5–6).** `ψ(x_i) = x_i W_g + ε ⊙ Softplus(x_i W_n)`, `ε ~ N(0, I)` (training only; +0.01 to
//! the noise scale as in the code), `E(x_i) = Softmax(TopK(ψ(x_i), k))` with `k = 2` (all other gates are 0).
//! Balancing loss (Eq. 7): `L_bal = CV²(Importance) + CV²(Load)`, `Importance_m = Σ_i E_m(x_i)`,
//! `Load_m = Σ_i P(expert m stays in the top k)` with `P = Φ((x_i W_g − threshold)/σ)` (Shazeer et al. 2017), and
//! `CV²(v) = Var(v)/(Mean(v)² + 1e-10)`. Total loss `L = L_task + λ·L_bal`.
//!
//! **Grassmann mixture (§3.3, Eq. 10–14).** For node `i` with selected experts `m` (gates `E_m`), `L_m` is the
//! normalised Laplacian of expert `m`'s sparse ego-graph and `U_m` its `p` smallest eigenvectors (Eq. 10: the
//! spectral embedding minimising `tr(UᵀL_mU)`). The mixture solves (Eq. 11)
//!
//! `min_{UᵀU = I}  Σ_m E_m [ tr(Uᵀ L_m U) + β (p − tr(U Uᵀ U_m U_mᵀ)) ]`,
//!
//! whose minimiser (Eq. 12) is `U` = the `p` smallest eigenvectors of `Σ_m E_m (L_m − β U_m U_mᵀ)` (the constant
//! `β p Σ E_m` drops out). The ego-graph is rebuilt (Eq. 13) as `L̂ = U Λ Uᵀ` (Λ: the matching eigenvalues) and
//! `Â = D − L̂` with `D` the original ego-graph degrees; post-sparsification (Eq. 14) keeps the top
//! `⌈|E⁽ⁱ⁾| · Σ_m E_m k_m⌉` star edges of `Â`.
//!
//! Choice of `p`: a star ego-graph with `c` kept leaves has normalised-Laplacian spectrum {0 (× 1 + d − c),
//! 1 (× c − 1), 2 (× 1)}, so the only subspace size that falls on a spectral gap for *every* expert (and hence makes
//! `U_m U_mᵀ` independent of the eigensolver's basis choice) is `p = n − 1`; that is the default. With `β > 0` a
//! mixture of identical experts returns exactly their edge set (tested).
//!
//! **Training.** The router and the GNN train jointly. Edge selection is discrete, so (as in the released code,
//! where the mask multiplies the messages) the router also receives the task gradient through the kept edges'
//! message weights: edge `e = (i ← j)` kept by the mixture carries weight `(1 + Σ_m E_m(x_i)·[m keeps e]) / 2`
//! (1 when every selected expert keeps it, ½ when none does). The sparse structure is recomputed every
//! `refresh_every` epochs: from noisy gates for training, from clean gates for evaluation.
//!
//! **Ablation** ([`MixMode::ScoreAverage`]): instead of the Grassmann step, score each edge by the gate-weighted
//! average of the selected experts' masked, row-rank-normalised criterion scores (the released code's mixture) and
//! keep the same number of edges.
use crate::criteria::Criterion;
use crate::data::Graph;
use crate::error::{invalid, GraphError, Result};
use crate::gnn::{EdgeSource, EpochGraph, Input, ModelKind, Params, Propagation};
use crate::sparse::Pattern;
use candle_core::{Device, Tensor, D};
use candle_nn::Linear;
use faer::Mat;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::Arc;

/// How the selected experts' ego-graphs are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MixMode {
    /// The paper's Grassmann-manifold mixture (Eq. 10–14).
    Grassmann,
    /// Gate-weighted averaging of expert scores (ablation; what the released code does).
    ScoreAverage,
}

/// What happens after joint router + GNN training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalStage {
    /// Report the GNN at its best validation epoch, on the evaluation structure of that epoch (refreshed every
    /// `refresh_every` epochs, so possibly computed by an older router).
    Joint,
    /// Sparsify once more with the final router's clean gates, freeze the router and fine-tune the GNN on that
    /// structure for `finetune_epochs` epochs (early stopping on validation); the paper's post-sparsification
    /// fine-tune.
    FineTune,
    /// Sparsify once more with the final router's clean gates and train a fresh GNN from scratch on that structure
    /// (unit edge weights), as the single-criterion baselines are trained.
    Retrain,
}

impl std::fmt::Display for FinalStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FinalStage::Joint => "joint",
            FinalStage::FineTune => "finetune",
            FinalStage::Retrain => "retrain",
        })
    }
}

impl std::str::FromStr for FinalStage {
    type Err = GraphError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "joint" => Ok(FinalStage::Joint),
            "finetune" | "fine-tune" | "fine_tune" => Ok(FinalStage::FineTune),
            "retrain" => Ok(FinalStage::Retrain),
            _ => Err(GraphError::Invalid(format!(
                "unknown final stage {s:?} (expected joint, finetune or retrain)"
            ))),
        }
    }
}

/// MoG settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MogConfig {
    /// Keep ratios of the expert levels (`1 − s_m`).
    pub keep_levels: Vec<f64>,
    /// Criteria (experts = criteria × levels).
    pub criteria: Vec<Criterion>,
    /// Experts selected per node.
    pub top_k: usize,
    /// Weight of the Grassmann distance term.
    pub beta: f64,
    /// Weight λ of the load-balancing loss.
    pub balance_weight: f64,
    /// Recompute the sparse structure every this many epochs.
    pub refresh_every: usize,
    /// Mixture rule.
    pub mix: MixMode,
    /// Choose the training structure with the noisy gates (the paper's noisy top-k); when false, the structure
    /// always comes from the clean gates and the noise only perturbs the gate values (train = eval structure).
    pub noisy_structure: bool,
    /// What follows joint training (see [`FinalStage`]).
    pub final_stage: FinalStage,
    /// Epoch limit of [`FinalStage::FineTune`].
    pub finetune_epochs: usize,
}

impl Default for MogConfig {
    fn default() -> Self {
        MogConfig {
            keep_levels: vec![0.7, 0.5, 0.3],
            criteria: Criterion::ALL.to_vec(),
            top_k: 2,
            beta: 1.0,
            balance_weight: 1e-2,
            refresh_every: 10,
            mix: MixMode::Grassmann,
            noisy_structure: true,
            final_stage: FinalStage::Joint,
            finetune_epochs: 50,
        }
    }
}

/// `⌈keep·d⌉`, at least 1 and at most `d`.
pub fn keep_count(keep: f64, d: usize) -> usize {
    if d == 0 {
        return 0;
    }
    ((keep * d as f64 - 1e-9).ceil() as usize).clamp(1, d)
}

/// The experts: per criterion, each edge's rank inside its row (0 = best).
pub struct Experts {
    ranks: Vec<Vec<u32>>,
    levels: Vec<f64>,
}

impl Experts {
    /// Experts from one score vector per criterion (CSR edge order of `g`) and keep levels.
    pub fn new(g: &Graph, scores: &[Vec<f32>], levels: &[f64]) -> Result<Self> {
        if scores.is_empty() || levels.is_empty() {
            invalid!("MoG needs at least one criterion and one level");
        }
        if levels.iter().any(|&k| !(0.0..=1.0).contains(&k)) {
            invalid!("keep levels must lie in [0, 1]");
        }
        let mut ranks = Vec::with_capacity(scores.len());
        for s in scores {
            if s.len() != g.num_directed_edges() {
                invalid!(
                    "criterion has {} scores for {} edges",
                    s.len(),
                    g.num_directed_edges()
                );
            }
            let mut r = vec![0u32; s.len()];
            let chunks: Vec<Vec<u32>> = (0..g.n)
                .into_par_iter()
                .with_min_len(256)
                .map(|i| {
                    let (a, b) = (g.row_ptr[i], g.row_ptr[i + 1]);
                    let mut idx: Vec<usize> = (a..b).collect();
                    crate::criteria::sort_desc(&mut idx, |e| s[e] as f64);
                    let mut out = vec![0u32; b - a];
                    for (rank, e) in idx.into_iter().enumerate() {
                        out[e - a] = rank as u32;
                    }
                    out
                })
                .collect();
            for (i, c) in chunks.into_iter().enumerate() {
                r[g.row_ptr[i]..g.row_ptr[i + 1]].copy_from_slice(&c);
            }
            ranks.push(r);
        }
        Ok(Experts {
            ranks,
            levels: levels.to_vec(),
        })
    }
    /// Number of experts (criteria × levels).
    pub fn len(&self) -> usize {
        self.ranks.len() * self.levels.len()
    }
    /// Whether there are no experts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Keep ratio of expert `m`.
    pub fn keep_ratio(&self, m: usize) -> f64 {
        self.levels[m % self.levels.len()]
    }
    /// Whether expert `m` keeps edge `e` of a row with degree `d`.
    pub fn keeps(&self, m: usize, e: usize, d: usize) -> bool {
        let c = m / self.levels.len();
        (self.ranks[c][e] as usize) < keep_count(self.keep_ratio(m), d)
    }
    /// Row-rank-normalised score in (0, 1] of edge `e` under expert `m`'s criterion (1 = best in its row).
    fn rank_score(&self, m: usize, e: usize, d: usize) -> f64 {
        let c = m / self.levels.len();
        1.0 - self.ranks[c][e] as f64 / d.max(1) as f64
    }
}

/// Normalised Laplacian `I − D^{-1/2} A D^{-1/2}` of a star ego-graph (centre 0, leaves 1..=d) whose kept leaves
/// are `kept` (isolated nodes get a zero row, as in networkx).
fn star_laplacian(kept: &[bool]) -> Mat<f64> {
    let n = kept.len() + 1;
    let c = kept.iter().filter(|&&k| k).count() as f64;
    Mat::from_fn(n, n, |a, b| {
        if a == b {
            let has = if a == 0 { c > 0.0 } else { kept[a - 1] };
            if has {
                1.0
            } else {
                0.0
            }
        } else if a == 0 && kept[b - 1] || b == 0 && kept[a - 1] {
            -1.0 / c.sqrt()
        } else {
            0.0
        }
    })
}

/// Eigenpairs of a symmetric matrix, ascending.
fn sym_eigen(m: &Mat<f64>) -> Result<(Vec<f64>, Mat<f64>)> {
    let e = m
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| GraphError::Numerics(format!("eigensolver: {e:?}")))?;
    let s = e.S();
    let u = e.U();
    let n = m.nrows();
    let mut order: Vec<usize> = (0..n).collect();
    let vals: Vec<f64> = (0..n).map(|k| s[k]).collect();
    order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
    let sorted = Mat::from_fn(n, n, |r, k| u[(r, order[k])]);
    Ok((order.iter().map(|&k| vals[k]).collect(), sorted))
}

/// Eq. 10–13 for one star ego-graph: `experts` are `(gate E_m, kept flags over the d leaves)`. Returns `Â[0, t]`
/// for every leaf `t` (the rebuilt adjacency between the centre and each neighbour).
pub fn grassmann_scores(experts: &[(f64, Vec<bool>)], beta: f64) -> Result<Vec<f64>> {
    let d = experts.first().map_or(0, |e| e.1.len());
    if experts.iter().any(|e| e.1.len() != d) {
        invalid!("experts disagree on the ego-graph size");
    }
    let n = d + 1;
    let p = n - 1;
    // Σ_m E_m (L_m − β U_m U_mᵀ)
    let mut mix = Mat::<f64>::zeros(n, n);
    for (gate, kept) in experts {
        let l = star_laplacian(kept);
        let (_, u) = sym_eigen(&l)?;
        let up = u.as_ref().subcols(0, p);
        let proj = up * up.transpose();
        mix += (&l - proj * beta) * gate;
    }
    // U = p smallest eigenvectors of the mixture; L̂ = U Λ Uᵀ; Â = D − L̂ (off-diagonal: −L̂).
    let (vals, u) = sym_eigen(&mix)?;
    Ok((1..n)
        .map(|t| -(0..p).map(|k| vals[k] * u[(0, k)] * u[(t, k)]).sum::<f64>())
        .collect())
}

/// Eq. 10–13 for one star ego-graph, computed exactly through the symmetry of the problem (same result as
/// [`grassmann_scores`], which it is tested against, at a fraction of the cost: a `(1 + C) × (1 + C)` eigenproblem
/// instead of three `(d + 1) × (d + 1)` ones).
///
/// Derivation. For a star with `c_m ≥ 1` kept leaves, `L_m`'s largest eigenvalue 2 is simple with eigenvector
/// `w_m` = `1/√2` at the centre, `−1/√(2c_m)` at kept leaves, 0 elsewhere; so with `p = n − 1`,
/// `U_m U_mᵀ = I − w_m w_mᵀ` and `M = Σ_m E_m (L_m − β U_m U_mᵀ) = Σ_m E_m L_m − β I + β Σ_m E_m w_m w_mᵀ`
/// (using `Σ_m E_m = 1`). Leaves with the same membership signature (which experts keep them) form classes
/// `c` of size `n_c`; `M` commutes with permutations inside a class, so its eigenvectors are either constant on
/// each class (spanned by `e_0` and `1_c/√n_c`: the reduced matrix `R` below) or sum to zero inside one class
/// (eigenvalue `Σ_m E_m [m keeps c] − β`, centre component 0). `L̂ = U Λ Uᵀ` over the `n − 1` smallest pairs is
/// `M − λ_max v vᵀ`, so `Â[0, t] = −M[0, t] + λ_max v_0 v_t`, where `v_0 v_t = 0` unless the top pair lies in
/// the class-constant subspace.
pub fn grassmann_scores_fast(experts: &[(f64, Vec<bool>)], beta: f64) -> Result<Vec<f64>> {
    let d = experts.first().map_or(0, |e| e.1.len());
    if experts.iter().any(|e| e.1.len() != d) || experts.len() > 16 {
        invalid!("experts disagree on the ego-graph size (or more than 16 experts)");
    }
    let c_m: Vec<f64> = experts
        .iter()
        .map(|e| e.1.iter().filter(|&&k| k).count().max(1) as f64)
        .collect();
    // Leaf classes by signature.
    let sig: Vec<u32> = (0..d)
        .map(|t| {
            experts
                .iter()
                .enumerate()
                .fold(0u32, |acc, (m, e)| acc | (u32::from(e.1[t]) << m))
        })
        .collect();
    let mut classes: Vec<u32> = sig.clone();
    classes.sort_unstable();
    classes.dedup();
    let n_c: Vec<f64> = classes
        .iter()
        .map(|&c| sig.iter().filter(|&&s| s == c).count() as f64)
        .collect();
    let kept = |c: u32, m: usize| (c >> m) & 1 == 1;
    // M[0, t] for a leaf of class c, and the diagonal of M on leaves of class c (without the rank-one terms).
    let m0 = |c: u32| -> f64 {
        experts
            .iter()
            .enumerate()
            .filter(|(m, _)| kept(c, *m))
            .map(|(m, e)| -e.0 / c_m[m].sqrt() * (1.0 + beta / 2.0))
            .sum()
    };
    let diag = |c: u32| -> f64 {
        experts
            .iter()
            .enumerate()
            .filter(|(m, _)| kept(c, *m))
            .map(|(_, e)| e.0)
            .sum::<f64>()
            - beta
    };
    let k = classes.len();
    let mut r = Mat::<f64>::zeros(k + 1, k + 1);
    let total_gate: f64 = experts.iter().map(|e| e.0).sum();
    r[(0, 0)] = total_gate - beta + beta * total_gate / 2.0;
    for (a, &ca) in classes.iter().enumerate() {
        r[(0, a + 1)] = n_c[a].sqrt() * m0(ca);
        r[(a + 1, 0)] = r[(0, a + 1)];
        for (b, &cb) in classes.iter().enumerate() {
            let rank_one: f64 = experts
                .iter()
                .enumerate()
                .filter(|(m, _)| kept(ca, *m) && kept(cb, *m))
                .map(|(m, e)| e.0 / (2.0 * c_m[m]))
                .sum();
            r[(a + 1, b + 1)] =
                beta * (n_c[a] * n_c[b]).sqrt() * rank_one + if a == b { diag(ca) } else { 0.0 };
        }
    }
    let (vals, vecs) = sym_eigen(&r)?;
    let top_r = vals[k];
    // The largest eigenvalue of a within-class difference subspace (classes with at least two leaves).
    let top_diff = classes
        .iter()
        .zip(&n_c)
        .filter(|(_, &n)| n >= 2.0)
        .map(|(&c, _)| diag(c))
        .fold(f64::NEG_INFINITY, f64::max);
    Ok(sig
        .iter()
        .map(|&c| {
            let a = classes.binary_search(&c).unwrap_or(0);
            let correction = if top_r >= top_diff {
                top_r * vecs[(0, k)] * vecs[(a + 1, k)] / n_c[a].sqrt()
            } else {
                0.0
            };
            -m0(c) + correction
        })
        .collect())
}

/// Which of node `i`'s edges (CSR range of row `i`) the mixture keeps, given the node's gates over all experts.
fn mix_row(
    experts: &Experts,
    g: &Graph,
    i: usize,
    gates: &[f32],
    cfg: &MogConfig,
) -> Result<Vec<bool>> {
    let (a, b) = (g.row_ptr[i], g.row_ptr[i + 1]);
    let d = b - a;
    let selected: Vec<(usize, f64)> = gates
        .iter()
        .enumerate()
        .filter(|(_, &w)| w > 0.0)
        .map(|(m, &w)| (m, w as f64))
        .collect();
    let total: f64 = selected.iter().map(|s| s.1).sum();
    if d == 0 || total <= 0.0 {
        return Ok(vec![true; d]);
    }
    let keep_frac: f64 = selected
        .iter()
        .map(|&(m, w)| w / total * experts.keep_ratio(m))
        .sum();
    let n_keep = keep_count(keep_frac, d);
    // Gate-weighted, mask-weighted rank scores: the ablation's score, and the tie-break for the Grassmann scores.
    let avg: Vec<f64> = (a..b)
        .map(|e| {
            selected
                .iter()
                .map(|&(m, w)| {
                    if experts.keeps(m, e, d) {
                        w / total * experts.rank_score(m, e, d)
                    } else {
                        0.0
                    }
                })
                .sum()
        })
        .collect();
    let score: Vec<f64> = match cfg.mix {
        MixMode::ScoreAverage => avg,
        MixMode::Grassmann if n_keep >= d => avg,
        MixMode::Grassmann => {
            let inputs: Vec<(f64, Vec<bool>)> = selected
                .iter()
                .map(|&(m, w)| (w / total, (a..b).map(|e| experts.keeps(m, e, d)).collect()))
                .collect();
            let s = grassmann_scores_fast(&inputs, cfg.beta)?;
            s.iter().zip(&avg).map(|(x, t)| x + 1e-6 * t).collect()
        }
    };
    let mut idx: Vec<usize> = (0..d).collect();
    crate::criteria::sort_desc(&mut idx, |t| score[t]);
    let mut keep = vec![false; d];
    for &t in &idx[..n_keep] {
        keep[t] = true;
    }
    Ok(keep)
}

/// The mixture over every node: a keep flag per directed edge of `g`. `gates` is `n × M` row-major.
pub fn mix_graph(
    experts: &Experts,
    g: &Graph,
    gates: &[f32],
    cfg: &MogConfig,
) -> Result<Vec<bool>> {
    let m = experts.len();
    if gates.len() != g.n * m {
        invalid!(
            "gates have {} entries for {} nodes × {m} experts",
            gates.len(),
            g.n
        );
    }
    let rows: Vec<Vec<bool>> = (0..g.n)
        .into_par_iter()
        .with_min_len(64)
        .map(|i| mix_row(experts, g, i, &gates[i * m..(i + 1) * m], cfg))
        .collect::<Result<_>>()?;
    Ok(rows.concat())
}

/// The sub-pattern of `g` with the kept directed edges; also returns the original edge id of each kept edge.
pub fn pattern_from_mask(g: &Graph, keep: &[bool]) -> Result<(Arc<Pattern>, Vec<u32>)> {
    let mut row_ptr = Vec::with_capacity(g.n + 1);
    row_ptr.push(0);
    let (mut col, mut ids) = (Vec::new(), Vec::new());
    for i in 0..g.n {
        for e in g.row_ptr[i]..g.row_ptr[i + 1] {
            if keep[e] {
                col.push(g.col[e]);
                ids.push(e as u32);
            }
        }
        row_ptr.push(col.len());
    }
    Ok((Pattern::new(g.n, row_ptr, col)?, ids))
}

/// Coefficient of variation squared, `Var(v) / (Mean(v)² + 1e-10)` (unbiased variance, as `torch.var`).
pub fn cv_squared(v: &Tensor) -> Result<Tensor> {
    let n = v.elem_count();
    if n <= 1 {
        return Ok(Tensor::new(0f32, v.device())?);
    }
    let mean = v.mean_all()?;
    let var = (v.broadcast_sub(&mean)?.sqr()?.sum_all()? / (n as f64 - 1.0))?;
    Ok(var.broadcast_div(&(mean.sqr()? + 1e-10)?)?)
}

/// The noisy top-k router.
pub struct Router {
    w_gate: Linear,
    w_noise: Linear,
    k: usize,
    m: usize,
}

/// One routing pass.
pub struct Gating {
    /// `n × M` gates (zero outside each node's top k), differentiable.
    pub gates: Tensor,
    /// The same values on the host.
    pub host: Vec<f32>,
    /// `CV²(Importance) + CV²(Load)`.
    pub balance_loss: Tensor,
}

impl Router {
    /// A router over `m` experts on `f`-dimensional features; `W_g` and `W_n` start at zero as in the code.
    pub fn new(ps: &mut Params, f: usize, m: usize, k: usize) -> Result<Self> {
        if k == 0 || k > m {
            invalid!("top-k must be in 1..={m}, got {k}");
        }
        let w_gate = Linear::new(ps.zeros(&[m, f])?, None);
        let w_noise = Linear::new(ps.zeros(&[m, f])?, None);
        Ok(Router {
            w_gate,
            w_noise,
            k,
            m,
        })
    }

    /// Routes every node: noisy when `noise` is given (training), clean otherwise.
    pub fn route(&self, x: &Input, noise: Option<&mut ChaCha8Rng>) -> Result<Gating> {
        let clean = x.linear(&self.w_gate, false)?;
        let n = clean.dim(0)?;
        let (logits, std) = match noise {
            Some(rng) => {
                let raw = x.linear(&self.w_noise, false)?;
                // Softplus(z) = ln(1 + e^z), written with composable ops so it has a backward.
                let std = ((raw.exp()? + 1.0)?.log()? + 1e-2)?;
                let eps: Vec<f32> = (0..n * self.m)
                    .map(|_| crate::data::standard_normal(rng) as f32)
                    .collect();
                let eps = Tensor::from_vec(eps, (n, self.m), &Device::Cpu)?;
                ((&clean + (eps * &std)?)?, Some(std))
            }
            None => (clean.clone(), None),
        };
        let lh = logits.flatten_all()?.to_vec1::<f32>()?;
        let (m, k) = (self.m, self.k);
        // Top-k per row; thresholds for the load estimate: the k-th and (k+1)-th largest noisy logits.
        let mut mask = vec![f32::NEG_INFINITY; n * m];
        let mut thr = vec![0f32; n * m];
        for i in 0..n {
            let row = &lh[i * m..(i + 1) * m];
            let mut idx: Vec<usize> = (0..m).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let kth = row[idx[k - 1]];
            let next = if k < m {
                row[idx[k]]
            } else {
                f32::NEG_INFINITY
            };
            for (r, &j) in idx.iter().enumerate() {
                let inside = r < k;
                if inside {
                    mask[i * m + j] = 0.0;
                }
                // P(j stays in the top k under fresh noise): compare against the best competitor outside.
                thr[i * m + j] = if inside { next } else { kth };
            }
        }
        let mask_t = Tensor::from_vec(mask, (n, m), &Device::Cpu)?;
        let gates = candle_nn::ops::softmax(&(&logits + mask_t)?, D::Minus1)?;
        let host = gates.flatten_all()?.to_vec1::<f32>()?;
        let importance = gates.sum(0)?;
        let load = match std {
            Some(std) => {
                let thr_t = Tensor::from_vec(
                    thr.iter().map(|&t| t.max(-1e30)).collect::<Vec<f32>>(),
                    (n, m),
                    &Device::Cpu,
                )?;
                let z = ((&clean - thr_t)? / (std * std::f64::consts::SQRT_2)?)?;
                (((z.erf()? + 1.0)? * 0.5)?).sum(0)?
            }
            None => {
                let cnt: Vec<f32> = (0..m)
                    .map(|j| (0..n).filter(|&i| host[i * m + j] > 0.0).count() as f32)
                    .collect();
                Tensor::from_vec(cnt, m, &Device::Cpu)?
            }
        };
        let balance_loss = (cv_squared(&importance)? + cv_squared(&load)?)?;
        Ok(Gating {
            gates,
            host,
            balance_loss,
        })
    }
}

/// A sparse structure chosen by the mixture, ready for message passing.
#[derive(Clone)]
pub struct Structure {
    /// Aggregation operator on the kept edges.
    pub prop: Arc<Propagation>,
    /// Target node of every kept edge.
    rows: Tensor,
    /// `[kept edges, M]`: 1 where expert m keeps the edge.
    agree: Tensor,
    /// Fraction of the graph's directed edges removed.
    pub sparsity: f64,
    /// Original edge id of every kept edge.
    pub edge_ids: Arc<Vec<u32>>,
}

/// The MoG edge source: routes nodes, mixes experts, and hands the GNN the sparsified graph every epoch.
pub struct MogSource<'a> {
    graph: &'a Graph,
    kind: ModelKind,
    x: Input,
    router: Router,
    experts: Experts,
    cfg: MogConfig,
    rng: ChaCha8Rng,
    train_state: Option<Structure>,
    eval_state: Option<Structure>,
    best: Option<Structure>,
    /// Wall time spent computing structures (routing + mixture), seconds.
    pub mix_seconds: f64,
}

impl<'a> MogSource<'a> {
    /// A MoG source; the router's parameters are added to `ps`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        graph: &'a Graph,
        kind: ModelKind,
        x: Input,
        num_features: usize,
        scores: &[Vec<f32>],
        cfg: MogConfig,
        ps: &mut Params,
        seed: u64,
    ) -> Result<Self> {
        if cfg.refresh_every == 0 || cfg.beta <= 0.0 {
            invalid!("refresh_every must be >= 1 and beta > 0");
        }
        if !(cfg.balance_weight >= 0.0 && cfg.balance_weight.is_finite()) {
            invalid!("balance_weight must be a finite number >= 0");
        }
        let experts = Experts::new(graph, scores, &cfg.keep_levels)?;
        let router = Router::new(
            ps,
            num_features,
            experts.len(),
            cfg.top_k.min(experts.len()),
        )?;
        Ok(MogSource {
            graph,
            kind,
            x,
            router,
            experts,
            cfg,
            rng: tessera_core::rng::derived(seed, "mog-router-noise"),
            train_state: None,
            eval_state: None,
            best: None,
            mix_seconds: 0.0,
        })
    }

    fn build(&self, gates: &[f32]) -> Result<Structure> {
        let keep = mix_graph(&self.experts, self.graph, gates, &self.cfg)?;
        let (pattern, ids) = pattern_from_mask(self.graph, &keep)?;
        let m = self.experts.len();
        let mut rows = Vec::with_capacity(ids.len());
        let mut agree = Vec::with_capacity(ids.len() * m);
        for i in 0..self.graph.n {
            for &e in &ids[pattern.row_ptr[i]..pattern.row_ptr[i + 1]] {
                rows.push(i as u32);
                let d = self.graph.degree(i);
                agree.extend((0..m).map(|mm| {
                    if self.experts.keeps(mm, e as usize, d) {
                        1f32
                    } else {
                        0.0
                    }
                }));
            }
        }
        let kept = ids.len();
        let sparsity = 1.0 - kept as f64 / self.graph.num_directed_edges().max(1) as f64;
        Ok(Structure {
            prop: Arc::new(Propagation::new(self.kind, pattern)?),
            rows: Tensor::from_vec(rows, kept, &Device::Cpu)?,
            agree: Tensor::from_vec(agree, (kept, m), &Device::Cpu)?,
            sparsity,
            edge_ids: Arc::new(ids),
        })
    }

    /// Message weight of every kept edge: `(1 + Σ_m E_m(x_i)·[m keeps e]) / 2`.
    fn edge_gate(s: &Structure, gates: &Tensor) -> Result<Tensor> {
        let per_edge = gates.index_select(&s.rows, 0)?;
        Ok((((per_edge * &s.agree)?.sum(1)? + 1.0)? * 0.5)?)
    }

    /// The evaluation structure of the best validation epoch (or the latest one), with its clean edge gates.
    pub fn final_graph(&mut self) -> Result<(Structure, Tensor)> {
        let s = match self.best.clone().or_else(|| self.eval_state.clone()) {
            Some(s) => s,
            None => {
                let g = self.router.route(&self.x, None)?;
                self.build(&g.host)?
            }
        };
        let gating = self.router.route(&self.x, None)?;
        let gate = Self::edge_gate(&s, &gating.gates)?.detach();
        Ok((s, gate))
    }

    /// The structure the router chooses now (clean gates), with its detached edge gates: the graph that
    /// [`FinalStage::FineTune`] and [`FinalStage::Retrain`] train on.
    pub fn chosen_graph(&mut self) -> Result<(Structure, Tensor)> {
        let t0 = std::time::Instant::now();
        let gating = self.router.route(&self.x, None)?;
        let s = self.build(&gating.host)?;
        let gate = Self::edge_gate(&s, &gating.gates)?.detach();
        self.mix_seconds += t0.elapsed().as_secs_f64();
        Ok((s, gate))
    }

    /// Mean number of experts' keep levels actually used (diagnostic): gate-weighted keep ratio over nodes.
    pub fn expert_usage(&self) -> Result<Vec<f64>> {
        let g = self.router.route(&self.x, None)?;
        let m = self.experts.len();
        let mut u = vec![0.0; m];
        for row in g.host.chunks(m) {
            for (j, &w) in row.iter().enumerate() {
                u[j] += w as f64;
            }
        }
        let n = (g.host.len() / m).max(1) as f64;
        Ok(u.into_iter().map(|v| v / n).collect())
    }
}

impl EdgeSource for MogSource<'_> {
    fn epoch_graph(&mut self, epoch: usize, training: bool) -> Result<EpochGraph> {
        let t0 = std::time::Instant::now();
        let gating = if training {
            self.router.route(&self.x, Some(&mut self.rng))?
        } else {
            self.router.route(&self.x, None)?
        };
        let refresh = epoch % self.cfg.refresh_every == 0;
        let state = if training {
            &self.train_state
        } else {
            &self.eval_state
        };
        if refresh || state.is_none() {
            let s = if training && !self.cfg.noisy_structure {
                let clean = self.router.route(&self.x, None)?;
                self.build(&clean.host)?
            } else {
                self.build(&gating.host)?
            };
            if training {
                self.train_state = Some(s);
            } else {
                self.eval_state = Some(s);
            }
        }
        self.mix_seconds += t0.elapsed().as_secs_f64();
        let s = if training {
            self.train_state.as_ref()
        } else {
            self.eval_state.as_ref()
        };
        let s = s.ok_or_else(|| GraphError::Numerics("no structure".into()))?;
        let gate = Self::edge_gate(s, &gating.gates)?;
        let aux_loss = if training {
            Some((gating.balance_loss * self.cfg.balance_weight)?)
        } else {
            None
        };
        Ok(EpochGraph {
            prop: s.prop.clone(),
            gate: Some(gate),
            aux_loss,
        })
    }
    fn mark_best(&mut self, _epoch: usize) {
        self.best = self.eval_state.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grassmann_of_identical_experts_returns_the_input() {
        let kept = vec![true, false, true, true, false, false, true];
        let experts = vec![(0.6, kept.clone()), (0.4, kept.clone())];
        let s = grassmann_scores(&experts, 1.0).unwrap();
        let f = grassmann_scores_fast(&experts, 1.0).unwrap();
        assert!(s.iter().zip(&f).all(|(a, b)| (a - b).abs() < 1e-9));
        let n_keep = kept.iter().filter(|&&k| k).count();
        let mut idx: Vec<usize> = (0..kept.len()).collect();
        idx.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        let mut got = vec![false; kept.len()];
        for &t in &idx[..n_keep] {
            got[t] = true;
        }
        assert_eq!(got, kept, "scores {s:?}");
        // kept edges score strictly above removed ones
        let min_kept = (0..kept.len())
            .filter(|&t| kept[t])
            .map(|t| s[t])
            .fold(f64::INFINITY, f64::min);
        let max_removed = (0..kept.len())
            .filter(|&t| !kept[t])
            .map(|t| s[t])
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(min_kept > max_removed + 1e-6);
    }

    #[test]
    fn fast_grassmann_matches_the_generic_eigensolves() {
        use rand::Rng;
        let mut rng = tessera_core::rng::seeded(11);
        for trial in 0..40 {
            let d = rng.gen_range(1..14);
            let k = rng.gen_range(1..4);
            let mut experts = Vec::new();
            for _ in 0..k {
                let mut kept: Vec<bool> = (0..d).map(|_| rng.gen::<bool>()).collect();
                if !kept.iter().any(|&x| x) {
                    kept[rng.gen_range(0..d)] = true;
                }
                experts.push((rng.gen_range(0.1..1.0), kept));
            }
            let total: f64 = experts.iter().map(|e| e.0).sum();
            experts.iter_mut().for_each(|e| e.0 /= total);
            let beta = rng.gen_range(0.2..2.0);
            let slow = grassmann_scores(&experts, beta).unwrap();
            let fast = grassmann_scores_fast(&experts, beta).unwrap();
            for (a, b) in slow.iter().zip(&fast) {
                assert!((a - b).abs() < 1e-8, "trial {trial}: {slow:?} vs {fast:?}");
            }
        }
    }

    #[test]
    fn grassmann_prefers_edges_more_experts_keep() {
        let a = vec![true, true, false, false];
        let b = vec![true, false, true, false];
        let s = grassmann_scores(&[(0.5, a), (0.5, b)], 1.0).unwrap();
        assert!(s[0] > s[1] && s[0] > s[2], "{s:?}");
        assert!(s[1] > s[3] && s[2] > s[3], "{s:?}");
    }

    #[test]
    fn balance_loss_is_zero_when_balanced() {
        // 4 nodes, 4 experts, each expert gets exactly the same importance and load.
        let g = Tensor::from_vec(
            vec![
                0.5f32, 0.5, 0., 0., 0., 0., 0.5, 0.5, 0.5, 0., 0.5, 0., 0., 0.5, 0., 0.5,
            ],
            (4, 4),
            &Device::Cpu,
        )
        .unwrap();
        let importance = g.sum(0).unwrap();
        assert!(
            cv_squared(&importance)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .abs()
                < 1e-7
        );
        let skewed = Tensor::from_vec(vec![2f32, 0., 0., 0.], 4, &Device::Cpu).unwrap();
        assert!(cv_squared(&skewed).unwrap().to_scalar::<f32>().unwrap() > 1.0);
    }

    #[test]
    fn clean_router_with_zero_weights_balances_nothing_but_runs() {
        let mut ps = Params::new(1);
        let r = Router::new(&mut ps, 3, 6, 2).unwrap();
        let x = Input::Dense(Tensor::from_vec(vec![1f32; 12], (4, 3), &Device::Cpu).unwrap());
        let mut rng = tessera_core::rng::seeded(3);
        let g = r.route(&x, Some(&mut rng)).unwrap();
        for row in g.host.chunks(6) {
            assert_eq!(row.iter().filter(|&&v| v > 0.0).count(), 2);
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert!(g.balance_loss.to_scalar::<f32>().unwrap().is_finite());
    }

    #[test]
    fn keep_count_rounds_up_and_clamps() {
        assert_eq!(keep_count(0.5, 3), 2);
        assert_eq!(keep_count(0.3, 1), 1);
        assert_eq!(keep_count(0.7, 10), 7);
        assert_eq!(keep_count(1.0, 4), 4);
    }
}
