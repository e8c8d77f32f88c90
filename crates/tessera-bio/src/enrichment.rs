//! Over-representation analysis, the baseline the Thought Graph paper calls "GSEA" (it ran g:Profiler).
//!
//! For a query of `n` annotated genes, a term annotating `K` of the `N` background genes and sharing `k` with the
//! query gets the one-sided hypergeometric p-value `P(X ≥ k) = Σ_{i=k}^{min(n,K)} C(K,i) C(N−K,n−i) / C(N,n)`,
//! summed exactly in log space (log-factorial table, log-sum-exp), so tails far below `f64::MIN_POSITIVE` do
//! not underflow until the final `exp`. P-values of all tested terms are adjusted with Benjamini–Hochberg
//! (1995); terms with `q ≤ alpha` are significant, and the `top` of them by p-value are reported.
//!
//! Deviations from g:Profiler: the background is every gene with a BP annotation (g:Profiler's default
//! "annotated genes" domain), the correction is BH rather than g:SCS, and the ontology and annotations are
//! Bioconductor's 2022 releases rather than g:Profiler's current ones.
use crate::error::{BioError, Result};
use crate::ontology::{Annotations, Ontology};
use serde::Serialize;
use std::collections::HashSet;

/// `ln(k!)` for `k` up to a bound, by running sums of `ln i` (exact to rounding).
#[derive(Debug, Clone)]
pub struct LogFactorials(Vec<f64>);

impl LogFactorials {
    /// A table for `0..=n`.
    pub fn new(n: usize) -> Self {
        let mut v = Vec::with_capacity(n + 1);
        v.push(0.0);
        let mut acc = 0.0f64;
        for i in 1..=n {
            acc += (i as f64).ln();
            v.push(acc);
        }
        LogFactorials(v)
    }

    /// Largest `k` covered.
    pub fn max(&self) -> usize {
        self.0.len() - 1
    }

    /// `ln C(n, k)` (`-inf` when `k > n`).
    pub fn ln_choose(&self, n: usize, k: usize) -> f64 {
        if k > n {
            return f64::NEG_INFINITY;
        }
        self.0[n] - self.0[k] - self.0[n - k]
    }

    /// `ln P(X ≥ k)` for `X ~ Hypergeometric(N = population, K = successes, n = draws)`.
    pub fn ln_hypergeom_sf(
        &self,
        k: usize,
        population: usize,
        successes: usize,
        draws: usize,
    ) -> Result<f64> {
        if successes > population || draws > population {
            return Err(BioError::invalid(format!(
                "hypergeometric: K = {successes} and n = {draws} must not exceed N = {population}"
            )));
        }
        if population > self.max() {
            return Err(BioError::invalid(format!(
                "hypergeometric: N = {population} exceeds the table ({})",
                self.max()
            )));
        }
        let lo = k.max((draws + successes).saturating_sub(population));
        let hi = draws.min(successes);
        if lo > hi {
            return Ok(f64::NEG_INFINITY);
        }
        if k == 0 {
            return Ok(0.0);
        }
        let denom = self.ln_choose(population, draws);
        let terms: Vec<f64> = (lo..=hi)
            .map(|i| {
                self.ln_choose(successes, i) + self.ln_choose(population - successes, draws - i)
                    - denom
            })
            .collect();
        let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = terms.iter().map(|t| (t - m).exp()).sum();
        Ok((m + s.ln()).min(0.0))
    }

    /// `P(X ≥ k)` (see [`LogFactorials::ln_hypergeom_sf`]).
    pub fn hypergeom_sf(
        &self,
        k: usize,
        population: usize,
        successes: usize,
        draws: usize,
    ) -> Result<f64> {
        Ok(self.ln_hypergeom_sf(k, population, successes, draws)?.exp())
    }
}

/// Benjamini–Hochberg adjusted p-values (step-up, monotone, capped at 1), in input order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        let v = (p[i] * m as f64 / (rank + 1) as f64).min(1.0);
        running = running.min(v);
        q[i] = running;
    }
    q
}

/// Settings of one over-representation test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnrichOptions {
    /// Most terms reported (the paper's 15).
    pub top: usize,
    /// Significance threshold on the BH-adjusted p-value.
    pub alpha: f64,
    /// Terms annotating fewer background genes are not tested.
    pub min_term_size: usize,
    /// Terms annotating more background genes are not tested (`None`: no limit).
    pub max_term_size: Option<usize>,
    /// Terms (ontology indices) left out of the test altogether.
    pub exclude: Vec<usize>,
}

impl Default for EnrichOptions {
    fn default() -> Self {
        EnrichOptions {
            top: 15,
            alpha: 0.05,
            min_term_size: 1,
            max_term_size: None,
            exclude: Vec::new(),
        }
    }
}

/// One significant term.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnrichedTerm {
    /// Ontology index.
    pub index: usize,
    /// GO id.
    pub id: String,
    /// GO name.
    pub name: String,
    /// Query genes annotated to the term (`k`).
    pub overlap: usize,
    /// Background genes annotated to the term (`K`).
    pub term_size: usize,
    /// Hypergeometric p-value.
    pub p_value: f64,
    /// BH-adjusted p-value.
    pub q_value: f64,
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Enrichment {
    /// Query genes in the background (`n`).
    pub query_size: usize,
    /// Background genes (`N`).
    pub background: usize,
    /// Terms tested (the BH `m`).
    pub tested: usize,
    /// Significant terms, smallest p-value first, at most `top`.
    pub terms: Vec<EnrichedTerm>,
}

/// Tests `genes` (gene indices of `ann`) against every term of `ont`.
pub fn enrich(
    ont: &Ontology,
    ann: &Annotations,
    genes: &[usize],
    opts: &EnrichOptions,
) -> Result<Enrichment> {
    if !(opts.alpha > 0.0 && opts.alpha <= 1.0) {
        return Err(BioError::invalid(format!(
            "alpha {} out of range (0, 1]",
            opts.alpha
        )));
    }
    let big_n = ann.background();
    let mut in_query = vec![false; ann.gene_count()];
    for &g in genes {
        if g < in_query.len() {
            in_query[g] = true;
        }
    }
    let n = (0..in_query.len())
        .filter(|&g| in_query[g] && ann.is_annotated(g))
        .count();
    let excluded: HashSet<usize> = opts.exclude.iter().copied().collect();
    let lf = LogFactorials::new(big_n);
    let mut tested = Vec::new();
    for t in 0..ont.len() {
        let tg = ann.term_genes(t);
        let size = tg.len();
        if size < opts.min_term_size.max(1)
            || opts.max_term_size.is_some_and(|m| size > m)
            || excluded.contains(&t)
        {
            continue;
        }
        let k = tg.iter().filter(|&&g| in_query[g as usize]).count();
        let p = if k == 0 || n == 0 {
            1.0
        } else {
            lf.hypergeom_sf(k, big_n, size, n)?
        };
        tested.push((t, k, size, p));
    }
    let q = benjamini_hochberg(&tested.iter().map(|x| x.3).collect::<Vec<_>>());
    let mut sig: Vec<EnrichedTerm> = tested
        .iter()
        .zip(&q)
        .filter(|((_, k, _, _), &q)| *k > 0 && q <= opts.alpha)
        .map(|(&(t, k, size, p), &q)| EnrichedTerm {
            index: t,
            id: ont.term(t).id.clone(),
            name: ont.term(t).name.clone(),
            overlap: k,
            term_size: size,
            p_value: p,
            q_value: q,
        })
        .collect();
    sig.sort_by(|a, b| {
        a.p_value
            .total_cmp(&b.p_value)
            .then(b.overlap.cmp(&a.overlap))
            .then(a.id.cmp(&b.id))
    });
    sig.truncate(opts.top);
    Ok(Enrichment {
        query_size: n,
        background: big_n,
        tested: tested.len(),
        terms: sig,
    })
}

/// Term `t` and every term annotating exactly the same genes (what "excluding the gold term" leaves out).
pub fn same_gene_terms(ann: &Annotations, ont: &Ontology, t: usize) -> Vec<usize> {
    let want = ann.term_genes(t);
    let mut out: Vec<usize> = (0..ont.len())
        .filter(|&u| u == t || (!want.is_empty() && ann.term_genes(u) == want))
        .collect();
    out.sort_unstable();
    out
}
