//! Edge-pruning criteria used as MoG experts and as single-criterion baselines (MoG paper §3 and Fig. 2; GST
//! baselines). Every function returns one score per directed edge of a [`Graph`], in CSR order; a higher score
//! means "more worth keeping".
//!
//! - Jaccard similarity `|N(u) ∩ N(v)| / |N(u) ∪ N(v)|`.
//! - Edge degree `1 / sqrt(d_u d_v)` (the GCN normalisation weight of the edge; favours edges between
//!   low-degree nodes, whose messages weigh most).
//! - Effective resistance `R_uv = (e_u − e_v)ᵀ L⁺ (e_u − e_v)`, approximated as in Spielman & Srivastava (2011):
//!   `R_uv ≈ ‖Z(e_u − e_v)‖²` with `Z = Q B L⁺`, `Q` a `k × m` random ±1/√k matrix and `B` the edge–node incidence
//!   matrix; each of the `k` rows of `Z` costs one Laplacian solve (Jacobi-preconditioned conjugate gradients).
//! - Gradient magnitude `|∂L/∂w_uv|` of the training loss with respect to a unit edge weight, from a trained dense
//!   GNN ([`crate::gnn::edge_gradient_magnitude`]).
use crate::data::Graph;
use crate::error::{GraphError, Result};
use rand::Rng;
use rayon::prelude::*;

/// The four criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Jaccard similarity of the endpoints' neighbourhoods.
    Jaccard,
    /// `1 / sqrt(d_u d_v)`.
    EdgeDegree,
    /// Effective resistance (random-projection approximation).
    EffectiveResistance,
    /// Gradient magnitude of the edge weight.
    GradientMagnitude,
    /// Prediction agreement `Σ_c p_u(c) p_v(c)` of the trained dense GNN's class probabilities (not one of the
    /// paper's criteria; opt-in with `--criteria …,agreement`).
    Agreement,
}

impl Criterion {
    /// All criteria, in expert order.
    pub const ALL: [Criterion; 4] = [
        Criterion::Jaccard,
        Criterion::EdgeDegree,
        Criterion::EffectiveResistance,
        Criterion::GradientMagnitude,
    ];
    /// [`Criterion::ALL`] plus the opt-in criteria, in score order ([`crate::experiment::all_scores`]).
    pub const EVERY: [Criterion; 5] = [
        Criterion::Jaccard,
        Criterion::EdgeDegree,
        Criterion::EffectiveResistance,
        Criterion::GradientMagnitude,
        Criterion::Agreement,
    ];
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Criterion::Jaccard => "jaccard",
            Criterion::EdgeDegree => "degree",
            Criterion::EffectiveResistance => "eff_resistance",
            Criterion::GradientMagnitude => "grad_magnitude",
            Criterion::Agreement => "agreement",
        }
    }
}

impl std::str::FromStr for Criterion {
    type Err = crate::GraphError;
    fn from_str(s: &str) -> crate::Result<Self> {
        Criterion::EVERY
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                crate::GraphError::Invalid(format!(
                    "unknown criterion {s:?} (expected jaccard, degree, eff_resistance, grad_magnitude or agreement)"
                ))
            })
    }
}

/// A fixed pseudo-random tie-break key for edge `e` (SplitMix64): ranking ties (common: many Jaccard scores are 0,
/// many gradients are exactly 0) must not be broken by node id, which can correlate with the labels.
pub fn tie_key(e: usize) -> u64 {
    let mut z = (e as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Orders edge ids by descending score, ties by [`tie_key`].
pub fn sort_desc(idx: &mut [usize], score: impl Fn(usize) -> f64) {
    idx.sort_by(|&a, &b| {
        score(b)
            .total_cmp(&score(a))
            .then(tie_key(a).cmp(&tie_key(b)))
    });
}

/// Jaccard similarity of every directed edge.
pub fn jaccard(g: &Graph) -> Vec<f32> {
    let rows = g.edge_rows();
    (0..g.num_directed_edges())
        .into_par_iter()
        .with_min_len(4096)
        .map(|e| {
            let (a, b) = (
                g.neighbors(rows[e] as usize),
                g.neighbors(g.col[e] as usize),
            );
            let (mut i, mut j, mut inter) = (0, 0, 0usize);
            while i < a.len() && j < b.len() {
                match a[i].cmp(&b[j]) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        inter += 1;
                        i += 1;
                        j += 1;
                    }
                }
            }
            let union = a.len() + b.len() - inter;
            if union == 0 {
                0.0
            } else {
                inter as f32 / union as f32
            }
        })
        .collect()
}

/// `1 / sqrt(d_u d_v)` for every directed edge.
pub fn edge_degree(g: &Graph) -> Vec<f32> {
    let rows = g.edge_rows();
    rows.iter()
        .zip(&g.col)
        .map(|(&u, &v)| 1.0 / ((g.degree(u as usize) * g.degree(v as usize)) as f32).sqrt())
        .collect()
}

/// `y = L x` for the combinatorial Laplacian `L = D − A`.
fn laplacian_mul(g: &Graph, x: &[f64], y: &mut [f64]) {
    y.par_iter_mut()
        .with_min_len(1024)
        .enumerate()
        .for_each(|(i, yi)| {
            let nb = g.neighbors(i);
            *yi = nb.len() as f64 * x[i] - nb.iter().map(|&j| x[j as usize]).sum::<f64>();
        });
}

/// Solves `L z = b` (with `b ⟂ 1` per component) by Jacobi-preconditioned conjugate gradients; returns `z` and the
/// iteration count.
pub fn laplacian_solve(g: &Graph, b: &[f64], rel_tol: f64, max_iter: usize) -> (Vec<f64>, usize) {
    let n = g.n;
    let inv_d: Vec<f64> = (0..n)
        .map(|i| {
            if g.degree(i) > 0 {
                1.0 / g.degree(i) as f64
            } else {
                0.0
            }
        })
        .collect();
    let mut z = vec![0.0; n];
    let mut r = b.to_vec();
    let mut s: Vec<f64> = r.iter().zip(&inv_d).map(|(a, d)| a * d).collect();
    let mut p = s.clone();
    let mut ap = vec![0.0; n];
    let mut rs = dot(&r, &s);
    let b_norm = dot(b, b).sqrt().max(1e-300);
    for it in 0..max_iter {
        if dot(&r, &r).sqrt() <= rel_tol * b_norm {
            return (z, it);
        }
        laplacian_mul(g, &p, &mut ap);
        let pap = dot(&p, &ap);
        if pap <= 0.0 {
            return (z, it);
        }
        let alpha = rs / pap;
        for i in 0..n {
            z[i] += alpha * p[i];
            r[i] -= alpha * ap[i];
            s[i] = r[i] * inv_d[i];
        }
        let rs_new = dot(&r, &s);
        let beta = rs_new / rs;
        rs = rs_new;
        for i in 0..n {
            p[i] = s[i] + beta * p[i];
        }
    }
    (z, max_iter)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Approximate effective resistance of every directed edge from `k` random projections (see module docs).
pub fn effective_resistance(g: &Graph, k: usize, seed: u64) -> Result<Vec<f32>> {
    if k == 0 {
        return Err(GraphError::Invalid(
            "effective resistance needs at least one projection".into(),
        ));
    }
    let rows = g.edge_rows();
    let scale = 1.0 / (k as f64).sqrt();
    let solves: Vec<Vec<f64>> = (0..k)
        .into_par_iter()
        .map(|r| {
            // y = Bᵀ q over undirected edges (u < v), q_e = ±1/√k.
            let mut rng = tessera_core::rng::derived(seed, &format!("er-projection-{r}"));
            let mut y = vec![0.0; g.n];
            for (&u, &v) in rows.iter().zip(&g.col) {
                if u < v {
                    let q = if rng.gen::<bool>() { scale } else { -scale };
                    y[u as usize] += q;
                    y[v as usize] -= q;
                }
            }
            laplacian_solve(g, &y, 1e-6, 2000).0
        })
        .collect();
    Ok(rows
        .iter()
        .zip(&g.col)
        .map(|(&u, &v)| {
            solves
                .iter()
                .map(|z| (z[u as usize] - z[v as usize]).powi(2))
                .sum::<f64>() as f32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Triangle 0-1-2 with a pendant node 3 on node 2.
    fn kite() -> Graph {
        Graph::from_edges(4, &[(0, 1), (1, 2), (0, 2), (2, 3)]).unwrap()
    }

    fn score(g: &Graph, s: &[f32], u: u32, v: u32) -> f32 {
        let rows = g.edge_rows();
        let e = rows
            .iter()
            .zip(&g.col)
            .position(|(&a, &b)| a == u && b == v)
            .unwrap();
        s[e]
    }

    #[test]
    fn jaccard_on_kite() {
        let g = kite();
        let s = jaccard(&g);
        assert!((score(&g, &s, 0, 1) - 1.0 / 3.0).abs() < 1e-6); // N(0)={1,2}, N(1)={0,2}
        assert!((score(&g, &s, 0, 2) - 1.0 / 4.0).abs() < 1e-6); // {1,2} vs {0,1,3}: ∩={1}, ∪={0,1,2,3}
        assert_eq!(score(&g, &s, 2, 3), 0.0);
    }

    #[test]
    fn degree_on_kite() {
        let g = kite();
        let s = edge_degree(&g);
        assert!((score(&g, &s, 0, 1) - 0.5).abs() < 1e-6);
        assert!((score(&g, &s, 3, 2) - 1.0 / 3f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn effective_resistance_on_kite() {
        // Exact: the bridge has R = 1; each triangle edge is 1 Ω in parallel with 2 Ω, R = 2/3.
        let g = kite();
        let s = effective_resistance(&g, 4000, 7).unwrap();
        assert!(
            (score(&g, &s, 2, 3) - 1.0).abs() < 0.1,
            "bridge {}",
            score(&g, &s, 2, 3)
        );
        assert!(
            (score(&g, &s, 0, 1) - 2.0 / 3.0).abs() < 0.07,
            "triangle {}",
            score(&g, &s, 0, 1)
        );
        assert_eq!(score(&g, &s, 0, 1), score(&g, &s, 1, 0));
    }

    #[test]
    fn laplacian_solver_solves() {
        let g = kite();
        let b = [1.0, -0.5, 0.25, -0.75];
        let (z, _) = laplacian_solve(&g, &b, 1e-10, 100);
        let mut y = vec![0.0; 4];
        laplacian_mul(&g, &z, &mut y);
        for (a, c) in y.iter().zip(&b) {
            assert!((a - c).abs() < 1e-8);
        }
    }
}
