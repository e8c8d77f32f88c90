//! Experiments: MoG against the dense graph, random edge dropping and single-criterion sparsifiers over several
//! seeds (`tessera graph mog`), and the inference-speed benchmark on stochastic-block-model graphs
//! (`tessera bench graph`).
use crate::criteria::{self, Criterion};
use crate::data::{Dataset, Graph, SbmConfig};
use crate::error::{invalid, Result};
use crate::gnn::{
    self, EdgeSource, FixedGatedGraph, FixedGraph, Gnn, Input, ModelKind, Params, Propagation,
    TrainConfig,
};
use crate::mog::{keep_count, pattern_from_mask, FinalStage, MixMode, MogConfig, MogSource};
use rand::Rng;
use serde::Serialize;
use std::sync::Arc;

/// Settings of `tessera graph mog`.
#[derive(Debug, Clone, Serialize)]
pub struct MogExperiment {
    /// Dataset spec (`cora`, `citeseer`, `sbm:N[:D]`).
    pub dataset: String,
    /// Backbone.
    pub model: ModelKind,
    /// Seeds `0..seeds` (each: a split, initialisations, router noise).
    pub seeds: u64,
    /// GNN training settings.
    pub train: TrainConfig,
    /// MoG settings for the headline run.
    pub mog: MogConfig,
    /// Extra MoG expert level sets for the accuracy-vs-sparsity curve.
    pub extra_level_sets: Vec<Vec<f64>>,
    /// Global keep ratios for the baselines (empty: no baselines).
    pub baseline_keeps: Vec<f64>,
    /// Also run the score-averaging ablation.
    pub ablation: bool,
    /// Random projections for effective resistance.
    pub er_projections: usize,
    /// Inference timing repetitions.
    pub timing_reps: usize,
    /// Also run the label oracle at every baseline level (diagnostic only: it reads every node's label, test
    /// nodes included): removes edges between differently labelled nodes first, then random same-label ones.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub oracle: bool,
}

impl MogExperiment {
    /// Defaults for `dataset` / `model`.
    pub fn new(dataset: &str, model: ModelKind) -> Self {
        MogExperiment {
            dataset: dataset.into(),
            model,
            seeds: 5,
            train: TrainConfig::default(),
            mog: MogConfig::default(),
            extra_level_sets: vec![
                vec![0.9, 0.7, 0.5],
                vec![0.5, 0.3, 0.2],
                vec![0.3, 0.2, 0.1],
            ],
            baseline_keeps: vec![0.7, 0.5, 0.3],
            ablation: true,
            er_projections: 24,
            timing_reps: 11,
            oracle: false,
        }
    }
}

/// One trained model on one graph.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// `dense`, `random`, a criterion name, `mog` or `mog_score_average`.
    pub method: String,
    /// Target level (`1.0`, a keep ratio, or MoG's level set as text).
    pub level: String,
    /// Seed.
    pub seed: u64,
    /// Fraction of directed edges removed.
    pub sparsity: f64,
    /// Test accuracy at the best validation epoch.
    pub test_accuracy: f64,
    /// Best validation accuracy.
    pub val_accuracy: f64,
    /// Median inference time (one full forward pass), seconds.
    pub inference_seconds: f64,
    /// Training time, seconds.
    pub train_seconds: f64,
}

/// Mean ± std of one method at one level over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    /// Method.
    pub method: String,
    /// Level.
    pub level: String,
    /// Mean sparsity.
    pub sparsity: f64,
    /// Mean test accuracy.
    pub accuracy_mean: f64,
    /// Sample standard deviation of the test accuracy.
    pub accuracy_std: f64,
    /// Mean inference time, seconds.
    pub inference_seconds: f64,
    /// Seeds.
    pub runs: usize,
}

/// Result of [`run_mog_experiment`].
#[derive(Debug, Clone, Serialize)]
pub struct MogResult {
    /// Dataset.
    pub dataset: String,
    /// Backbone.
    pub model: ModelKind,
    /// Nodes / directed edges of the graph used.
    pub nodes: usize,
    /// Directed edges.
    pub edges: usize,
    /// Mean dense test accuracy.
    pub dense_accuracy: f64,
    /// Std of dense test accuracy.
    pub dense_accuracy_std: f64,
    /// Mean MoG test accuracy (headline level set).
    pub mog_accuracy: f64,
    /// Std of MoG test accuracy.
    pub mog_accuracy_std: f64,
    /// Mean MoG sparsity (headline level set).
    pub sparsity: f64,
    /// Dense inference time / MoG inference time (means over seeds).
    pub inference_speedup: f64,
    /// Every method × level.
    pub summary: Vec<SummaryRow>,
    /// Per method: the highest sparsity its accuracy curve reaches while staying within
    /// [`TOLERANCE_POINTS`] of dense accuracy (see [`max_sparsity_within`]): the paper's claim in one number.
    pub max_sparsity_within_1pt: Vec<(String, f64)>,
    /// Per method: mean test accuracy at sparsity [`MATCHED_SPARSITY`], interpolated linearly along its curve
    /// (absent when the curve does not reach it): methods compared at equal sparsity.
    pub accuracy_at_matched_sparsity: Vec<(String, f64)>,
    /// Every run.
    pub runs: Vec<RunRecord>,
    /// The settings.
    pub config: MogExperiment,
}

/// The sparsity at which [`MogResult::accuracy_at_matched_sparsity`] compares methods.
pub const MATCHED_SPARSITY: f64 = 0.5;

/// Mean accuracy at sparsity `s` by linear interpolation along a curve that starts at `(0, dense)`; `None` when
/// `s` lies beyond the curve's largest sparsity.
pub fn accuracy_at(points: &[(f64, f64)], dense: f64, s: f64) -> Option<f64> {
    let mut pts = vec![(0.0, dense)];
    pts.extend_from_slice(points);
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts.windows(2).find_map(|w| {
        let ((s0, a0), (s1, a1)) = (w[0], w[1]);
        (s0 <= s && s <= s1).then(|| {
            if s1 > s0 {
                a0 + (a1 - a0) * (s - s0) / (s1 - s0)
            } else {
                a1
            }
        })
    })
}

/// Accuracy loss (percentage points) against dense that [`MogResult::max_sparsity_within_1pt`] tolerates.
pub const TOLERANCE_POINTS: f64 = 1.0;

/// The highest sparsity at which a method's mean-accuracy curve is still within `tol` (a fraction, 0.01 = one
/// point) of `dense`: walk the curve from `(0, dense)` in order of sparsity, stop at the first point below
/// `dense − tol` and interpolate linearly between it and the last point above. A curve that never drops returns its
/// largest sparsity (a lower bound).
pub fn max_sparsity_within(points: &[(f64, f64)], dense: f64, tol: f64) -> f64 {
    let mut pts = points.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let floor = dense - tol;
    let mut last = (0.0, dense);
    for &(s, a) in &pts {
        if a < floor {
            let t = if last.1 > a {
                (last.1 - floor) / (last.1 - a)
            } else {
                0.0
            };
            return last.0 + t.clamp(0.0, 1.0) * (s - last.0);
        }
        last = (s, a);
    }
    last.0
}

/// Each non-dense method's `(sparsity, mean accuracy)` curve, in first-seen order.
fn curves(summary: &[SummaryRow]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for row in summary.iter().filter(|r| r.method != "dense") {
        match out.iter_mut().find(|(m, _)| *m == row.method) {
            Some((_, pts)) => pts.push((row.sparsity, row.accuracy_mean)),
            None => out.push((row.method.clone(), vec![(row.sparsity, row.accuracy_mean)])),
        }
    }
    out
}

fn sparsity_at_tolerance(summary: &[SummaryRow], dense: f64) -> Vec<(String, f64)> {
    curves(summary)
        .into_iter()
        .map(|(m, pts)| {
            (
                m,
                max_sparsity_within(&pts, dense, TOLERANCE_POINTS / 100.0),
            )
        })
        .collect()
}

fn accuracy_at_matched(summary: &[SummaryRow], dense: f64) -> Vec<(String, f64)> {
    curves(summary)
        .into_iter()
        .filter_map(|(m, pts)| accuracy_at(&pts, dense, MATCHED_SPARSITY).map(|a| (m, a)))
        .collect()
}

/// Index of the reverse edge `(j ← i)` of every directed edge `(i ← j)`.
pub fn reverse_edges(g: &Graph) -> Vec<u32> {
    let rows = g.edge_rows();
    rows.iter()
        .zip(&g.col)
        .map(|(&i, &j)| {
            let nb = g.neighbors(j as usize);
            let k = nb.binary_search(&i).unwrap_or(0);
            (g.row_ptr[j as usize] + k) as u32
        })
        .collect()
}

/// Random edge dropping: keeps each undirected edge with probability `keep` (both directions together).
pub fn random_mask(g: &Graph, keep: f64, seed: u64) -> Vec<bool> {
    let rev = reverse_edges(g);
    let rows = g.edge_rows();
    let mut rng = tessera_core::rng::derived(seed, "random-drop");
    let mut m = vec![false; g.num_directed_edges()];
    for e in 0..m.len() {
        if rows[e] < g.col[e] {
            let k = rng.gen::<f64>() < keep;
            m[e] = k;
            m[rev[e] as usize] = k;
        }
    }
    m
}

/// Global single-criterion sparsifier: keeps the `⌈keep·|E|⌉` directed edges with the highest scores.
pub fn global_top_mask(scores: &[f32], keep: f64) -> Vec<bool> {
    let n_keep = keep_count(keep, scores.len());
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    criteria::sort_desc(&mut idx, |e| scores[e] as f64);
    let mut m = vec![false; scores.len()];
    for &e in &idx[..n_keep] {
        m[e] = true;
    }
    m
}

/// The label oracle (diagnostic): keeps the `⌈keep·|E|⌉` directed edges ranked same-label first (ties broken by
/// the fixed edge hash, i.e. at random), so it removes every edge between differently labelled nodes before any
/// other.
pub fn oracle_mask(d: &Dataset, keep: f64) -> Vec<bool> {
    let rows = d.graph.edge_rows();
    let scores: Vec<f32> = rows
        .iter()
        .zip(&d.graph.col)
        .map(|(&i, &j)| f32::from(u8::from(d.labels[i as usize] == d.labels[j as usize])))
        .collect();
    global_top_mask(&scores, keep)
}

/// Per-node single-criterion sparsifier (one MoG expert applied everywhere).
pub fn local_top_mask(g: &Graph, scores: &[f32], keep: f64) -> Vec<bool> {
    let mut m = vec![false; g.num_directed_edges()];
    for i in 0..g.n {
        let (a, b) = (g.row_ptr[i], g.row_ptr[i + 1]);
        let mut idx: Vec<usize> = (a..b).collect();
        criteria::sort_desc(&mut idx, |e| scores[e] as f64);
        for &e in &idx[..keep_count(keep, b - a)] {
            m[e] = true;
        }
    }
    m
}

fn sparsity_of(mask: &[bool]) -> f64 {
    1.0 - mask.iter().filter(|&&k| k).count() as f64 / mask.len().max(1) as f64
}

fn level_label(levels: &[f64]) -> String {
    levels
        .iter()
        .map(|l| format!("{l}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// A dataset with its feature input and one seeded split, ready for training.
pub struct Prepared<'a> {
    /// The dataset.
    pub d: &'a Dataset,
    /// Its features as GNN input.
    pub x: Input,
    /// Planetoid-style split of `seed`.
    pub split: crate::data::Split,
}

impl<'a> Prepared<'a> {
    /// Features and the standard split of `seed`.
    pub fn new(d: &'a Dataset, seed: u64) -> Result<Self> {
        Ok(Prepared {
            d,
            x: gnn::feature_input(d)?,
            split: d.standard_split(seed),
        })
    }
}

/// Trains a fresh `kind` GNN (initialised from `seed`) on the fixed graph `prop`; returns the model, the training
/// outcome and the median inference time over `reps` passes.
pub fn train_fixed(
    p: &Prepared,
    kind: ModelKind,
    prop: Arc<Propagation>,
    cfg: &TrainConfig,
    seed: u64,
    reps: usize,
) -> Result<(Gnn, gnn::TrainOutcome, f64)> {
    let mut ps = Params::new(seed);
    let model = Gnn::new(
        kind,
        &mut ps,
        &[p.d.num_features, cfg.hidden, p.d.num_classes],
        cfg.dropout,
    )?;
    let out = gnn::train(
        &model,
        ps.vars.clone(),
        &p.x,
        &p.d.labels,
        &p.split,
        &mut FixedGraph(prop.clone()),
        cfg,
        seed,
    )?;
    let t = gnn::time_inference(&model, &p.x, &prop, None, reps)?;
    Ok((model, out, t))
}

/// One finished MoG training run.
pub struct MogRun {
    /// Training outcome.
    pub outcome: gnn::TrainOutcome,
    /// Fraction of directed edges removed by the final structure.
    pub sparsity: f64,
    /// Median inference seconds on the final structure.
    pub inference_seconds: f64,
    /// Seconds spent routing and mixing during training.
    pub mix_seconds: f64,
    /// The trained GNN.
    pub model: Gnn,
    /// The final structure's aggregation operator.
    pub prop: Arc<Propagation>,
    /// The final structure's (detached) edge weights.
    pub gate: candle_core::Tensor,
}

/// One MoG training run (router + GNN), evaluated on the structure of the best validation epoch.
#[allow(clippy::too_many_arguments)]
pub fn train_mog(
    d: &Dataset,
    x: &Input,
    split: &crate::data::Split,
    kind: ModelKind,
    scores: &[Vec<f32>],
    mog: &MogConfig,
    cfg: &TrainConfig,
    seed: u64,
    reps: usize,
) -> Result<MogRun> {
    let mut ps = Params::new(seed);
    let model = Gnn::new(
        kind,
        &mut ps,
        &[d.num_features, cfg.hidden, d.num_classes],
        cfg.dropout,
    )?;
    let model_vars = ps.vars.clone();
    if mog.criteria.is_empty() || scores.len() != Criterion::EVERY.len() {
        invalid!("MoG needs at least one criterion and scores for all (in Criterion::EVERY order)");
    }
    let chosen: Vec<Vec<f32>> = mog
        .criteria
        .iter()
        .map(|c| scores[Criterion::EVERY.iter().position(|a| a == c).unwrap_or(0)].clone())
        .collect();
    let mut src = MogSource::new(
        &d.graph,
        kind,
        x.clone(),
        d.num_features,
        &chosen,
        mog.clone(),
        &mut ps,
        seed,
    )?;
    let outcome = gnn::train(
        &model,
        ps.vars.clone(),
        x,
        &d.labels,
        split,
        &mut src as &mut dyn EdgeSource,
        cfg,
        seed,
    )?;
    let (s, gate, model, outcome) = match mog.final_stage {
        FinalStage::Joint => {
            let (s, gate) = src.final_graph()?;
            (s, gate, model, outcome)
        }
        FinalStage::FineTune => {
            let (s, gate) = src.chosen_graph()?;
            let ft = TrainConfig {
                max_epochs: mog.finetune_epochs,
                patience: cfg.patience.min(mog.finetune_epochs),
                ..cfg.clone()
            };
            let mut fixed = FixedGatedGraph(s.prop.clone(), gate.clone());
            let mut out = gnn::train(
                &model,
                model_vars,
                x,
                &d.labels,
                split,
                &mut fixed,
                &ft,
                seed ^ 0xf1e7,
            )?;
            out.train_seconds += outcome.train_seconds;
            out.epochs += outcome.epochs;
            (s, gate, model, out)
        }
        FinalStage::Retrain => {
            let (s, _) = src.chosen_graph()?;
            let mut ps = Params::new(seed);
            let fresh = Gnn::new(
                kind,
                &mut ps,
                &[d.num_features, cfg.hidden, d.num_classes],
                cfg.dropout,
            )?;
            let mut out = gnn::train(
                &fresh,
                ps.vars.clone(),
                x,
                &d.labels,
                split,
                &mut FixedGraph(s.prop.clone()),
                cfg,
                seed,
            )?;
            out.train_seconds += outcome.train_seconds;
            let ones = candle_core::Tensor::ones(
                s.prop.nnz(),
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            )?;
            (s, ones, fresh, out)
        }
    };
    let inference_seconds = gnn::time_inference(&model, x, &s.prop, Some(&gate), reps)?;
    Ok(MogRun {
        outcome,
        sparsity: s.sparsity,
        inference_seconds,
        mix_seconds: src.mix_seconds,
        model,
        prop: s.prop.clone(),
        gate,
    })
}

/// Criterion scores for every directed edge, in [`Criterion::EVERY`] order; the gradient and agreement criteria use
/// `model`.
pub fn all_scores(
    d: &Dataset,
    x: &Input,
    model: &Gnn,
    prop: &Propagation,
    train_ids: &[u32],
    er_projections: usize,
    seed: u64,
) -> Result<Vec<Vec<f32>>> {
    Ok(vec![
        criteria::jaccard(&d.graph),
        criteria::edge_degree(&d.graph),
        criteria::effective_resistance(&d.graph, er_projections, seed)?,
        gnn::edge_gradient_magnitude(model, x, prop, &d.labels, train_ids)?,
        prediction_agreement(d, x, model, prop)?,
    ])
}

/// `Σ_c p_u(c) p_v(c)` for every directed edge: how much the trained dense GNN's class distributions of the two
/// endpoints agree (high: likely a same-class edge).
pub fn prediction_agreement(
    d: &Dataset,
    x: &Input,
    model: &Gnn,
    prop: &Propagation,
) -> Result<Vec<f32>> {
    let logits = model.forward(x, prop, None, None)?;
    let p = candle_nn::ops::softmax(&logits, candle_core::D::Minus1)?;
    let c = p.dim(1)?;
    let p = p.flatten_all()?.to_vec1::<f32>()?;
    let rows = d.graph.edge_rows();
    Ok(rows
        .iter()
        .zip(&d.graph.col)
        .map(|(&i, &j)| {
            let (a, b) = (i as usize * c, j as usize * c);
            (0..c).map(|k| p[a + k] * p[b + k]).sum()
        })
        .collect())
}

/// Runs MoG, its ablation and the baselines over seeds. `progress` is called with a line per finished run.
pub fn run_mog_experiment(
    cfg: &MogExperiment,
    progress: &mut dyn FnMut(&RunRecord),
) -> Result<MogResult> {
    run_mog_experiment_resuming(cfg, &[], progress)
}

/// Like [`run_mog_experiment`], but runs whose (method, level, seed) is in `done` are taken from there instead of
/// being trained again (a seed's dense model is still retrained when anything of that seed is missing: the
/// gradient criterion needs it; training is deterministic for a seed). `progress` sees only new runs.
pub fn run_mog_experiment_resuming(
    cfg: &MogExperiment,
    done: &[RunRecord],
    progress: &mut dyn FnMut(&RunRecord),
) -> Result<MogResult> {
    if cfg.seeds == 0 {
        invalid!("need at least one seed");
    }
    let data = Dataset::by_name(&cfg.dataset, 0)?;
    let x = gnn::feature_input(&data)?;
    let full = gnn::full_pattern(&data.graph)?;
    let prop_full = Arc::new(Propagation::new(cfg.model, full)?);
    let mut variants = vec![("mog", cfg.mog.clone())];
    for levels in &cfg.extra_level_sets {
        variants.push((
            "mog",
            MogConfig {
                keep_levels: levels.clone(),
                ..cfg.mog.clone()
            },
        ));
    }
    if cfg.ablation {
        variants.push((
            "mog_score_average",
            MogConfig {
                mix: MixMode::ScoreAverage,
                ..cfg.mog.clone()
            },
        ));
    }
    let mut planned: Vec<(String, String)> = vec![("dense".into(), "1".into())];
    for &keep in &cfg.baseline_keeps {
        planned.push(("random".into(), format!("{keep}")));
        for c in Criterion::ALL {
            planned.push((c.name().into(), format!("{keep}")));
        }
        if cfg.mog.criteria.contains(&Criterion::Agreement) {
            planned.push((Criterion::Agreement.name().into(), format!("{keep}")));
        }
        if cfg.oracle {
            planned.push(("label_oracle".into(), format!("{keep}")));
        }
    }
    for (name, mog) in &variants {
        planned.push((name.to_string(), level_label(&mog.keep_levels)));
    }
    let previous = |m: &str, l: &str, seed: u64| {
        done.iter()
            .find(|r| r.seed == seed && r.method == m && r.level == l)
            .cloned()
    };
    let mut runs = Vec::new();
    let mut push = |r: RunRecord, runs: &mut Vec<RunRecord>| {
        progress(&r);
        runs.push(r);
    };
    for seed in 0..cfg.seeds {
        if planned.iter().all(|(m, l)| previous(m, l, seed).is_some()) {
            runs.extend(planned.iter().filter_map(|(m, l)| previous(m, l, seed)));
            continue;
        }
        let p = Prepared {
            d: &data,
            x: x.clone(),
            split: data.standard_split(seed),
        };
        let (dense_model, out, t) = train_fixed(
            &p,
            cfg.model,
            prop_full.clone(),
            &cfg.train,
            seed,
            cfg.timing_reps,
        )?;
        match previous("dense", "1", seed) {
            Some(r) => runs.push(r),
            None => push(record("dense", "1", seed, 0.0, &out, t), &mut runs),
        }
        let scores = all_scores(
            &data,
            &x,
            &dense_model,
            &prop_full,
            &p.split.train,
            cfg.er_projections,
            seed,
        )?;
        for &keep in &cfg.baseline_keeps {
            let level = format!("{keep}");
            let mut masks = vec![("random".to_string(), random_mask(&data.graph, keep, seed))];
            for (c, s) in Criterion::ALL.iter().zip(&scores) {
                masks.push((c.name().to_string(), global_top_mask(s, keep)));
            }
            if cfg.mog.criteria.contains(&Criterion::Agreement) {
                masks.push((
                    Criterion::Agreement.name().to_string(),
                    global_top_mask(&scores[4], keep),
                ));
            }
            if cfg.oracle {
                masks.push(("label_oracle".to_string(), oracle_mask(&data, keep)));
            }
            for (name, mask) in masks {
                if let Some(r) = previous(&name, &level, seed) {
                    runs.push(r);
                    continue;
                }
                let (pat, _) = pattern_from_mask(&data.graph, &mask)?;
                let prop = Arc::new(Propagation::new(cfg.model, pat)?);
                let (_, out, t) =
                    train_fixed(&p, cfg.model, prop, &cfg.train, seed, cfg.timing_reps)?;
                push(
                    record(&name, &level, seed, sparsity_of(&mask), &out, t),
                    &mut runs,
                );
            }
        }
        for (name, mog) in &variants {
            let level = level_label(&mog.keep_levels);
            if let Some(r) = previous(name, &level, seed) {
                runs.push(r);
                continue;
            }
            let r = train_mog(
                &data,
                &x,
                &p.split,
                cfg.model,
                &scores,
                mog,
                &cfg.train,
                seed,
                cfg.timing_reps,
            )?;
            push(
                record(
                    name,
                    &level,
                    seed,
                    r.sparsity,
                    &r.outcome,
                    r.inference_seconds,
                ),
                &mut runs,
            );
        }
    }
    let summary = summarise(&runs);
    let find = |m: &str, l: &str| {
        summary
            .iter()
            .find(|r| r.method == m && r.level == l)
            .cloned()
    };
    let dense = find("dense", "1");
    let mog = find("mog", &level_label(&cfg.mog.keep_levels));
    let (dense_accuracy, dense_accuracy_std, dense_t) = dense.map_or((0.0, 0.0, 0.0), |r| {
        (r.accuracy_mean, r.accuracy_std, r.inference_seconds)
    });
    let (mog_accuracy, mog_accuracy_std, sparsity, mog_t) = mog.map_or((0.0, 0.0, 0.0, 0.0), |r| {
        (
            r.accuracy_mean,
            r.accuracy_std,
            r.sparsity,
            r.inference_seconds,
        )
    });
    Ok(MogResult {
        dataset: data.name.clone(),
        model: cfg.model,
        nodes: data.graph.n,
        edges: data.graph.num_directed_edges(),
        dense_accuracy,
        dense_accuracy_std,
        mog_accuracy,
        mog_accuracy_std,
        sparsity,
        inference_speedup: if mog_t > 0.0 { dense_t / mog_t } else { 0.0 },
        max_sparsity_within_1pt: sparsity_at_tolerance(&summary, dense_accuracy),
        accuracy_at_matched_sparsity: accuracy_at_matched(&summary, dense_accuracy),
        summary,
        runs,
        config: cfg.clone(),
    })
}

fn record(
    method: &str,
    level: &str,
    seed: u64,
    sparsity: f64,
    out: &gnn::TrainOutcome,
    t: f64,
) -> RunRecord {
    RunRecord {
        method: method.into(),
        level: level.into(),
        seed,
        sparsity,
        test_accuracy: out.test_accuracy,
        val_accuracy: out.val_accuracy,
        inference_seconds: t,
        train_seconds: out.train_seconds,
    }
}

/// Mean ± std per (method, level), in first-seen order.
pub fn summarise(runs: &[RunRecord]) -> Vec<SummaryRow> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in runs {
        let k = (r.method.clone(), r.level.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(method, level)| {
            let rs: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.method == method && r.level == level)
                .collect();
            let n = rs.len() as f64;
            let mean = |f: &dyn Fn(&RunRecord) -> f64| rs.iter().map(|r| f(r)).sum::<f64>() / n;
            let acc = mean(&|r| r.test_accuracy);
            let var = if rs.len() > 1 {
                rs.iter()
                    .map(|r| (r.test_accuracy - acc).powi(2))
                    .sum::<f64>()
                    / (n - 1.0)
            } else {
                0.0
            };
            SummaryRow {
                sparsity: mean(&|r| r.sparsity),
                accuracy_mean: acc,
                accuracy_std: var.sqrt(),
                inference_seconds: mean(&|r| r.inference_seconds),
                runs: rs.len(),
                method,
                level,
            }
        })
        .collect()
}

/// Settings of `tessera bench graph`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchConfig {
    /// The SBM graph for the accuracy + speed comparison (`sbm:N:DEGREE[:key=value,…]`).
    pub sbm: SbmConfig,
    /// Backbone.
    pub model: ModelKind,
    /// Training settings.
    pub train: TrainConfig,
    /// MoG settings.
    pub mog: MogConfig,
    /// Node counts for the scaling curve (inference only; same SBM settings otherwise).
    pub scaling_nodes: Vec<usize>,
    /// Interleaved timing repetitions (after one warm-up pass of each graph).
    pub reps: usize,
    /// First seed.
    pub seed: u64,
    /// Seeds `seed..seed + seeds`, each with its own graph, split and initialisation.
    pub seeds: u64,
}

/// One point of the scaling curve.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingPoint {
    /// Nodes.
    pub nodes: usize,
    /// Directed edges of the dense graph.
    pub dense_edges: usize,
    /// Directed edges after sparsification.
    pub sparse_edges: usize,
    /// Dense inference seconds (median).
    pub dense_seconds: f64,
    /// Sparse inference seconds (median).
    pub sparse_seconds: f64,
    /// Ratio of the medians.
    pub speedup: f64,
    /// Median of the per-repetition ratios dense / sparse.
    pub speedup_median: f64,
    /// Smallest per-repetition ratio.
    pub speedup_min: f64,
    /// Largest per-repetition ratio.
    pub speedup_max: f64,
}

/// Dense vs MoG on one seed's graph (one line of the benchmark's `seeds.jsonl` journal).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BenchSeed {
    /// Seed.
    pub seed: u64,
    /// Dense test accuracy.
    pub dense_accuracy: f64,
    /// MoG test accuracy.
    pub mog_accuracy: f64,
    /// MoG − dense, points.
    pub accuracy_delta_points: f64,
    /// MoG sparsity.
    pub sparsity: f64,
    /// Dense inference seconds, every repetition (paired with `mog_times`).
    pub dense_times: Vec<f64>,
    /// MoG-graph inference seconds, every repetition.
    pub mog_times: Vec<f64>,
    /// Median of the per-repetition speedups.
    pub speedup_median: f64,
    /// Smallest per-repetition speedup.
    pub speedup_min: f64,
    /// Largest per-repetition speedup.
    pub speedup_max: f64,
    /// Seconds spent routing + mixing during MoG training.
    pub mog_mix_seconds: f64,
    /// Dense training seconds.
    pub dense_train_seconds: f64,
    /// MoG training seconds (including mixing and the final stage).
    pub mog_train_seconds: f64,
}

/// Result of [`run_bench`]. Accuracy, sparsity and time fields are means over seeds; the `speedup_*` fields pool
/// the per-repetition ratios of every seed.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Graph.
    pub dataset: String,
    /// Nodes.
    pub nodes: usize,
    /// Directed edges (of the first seed's graph).
    pub edges: usize,
    /// Dense test accuracy.
    pub dense_accuracy: f64,
    /// MoG test accuracy.
    pub mog_accuracy: f64,
    /// Accuracy change in points (MoG − dense).
    pub accuracy_delta_points: f64,
    /// MoG sparsity.
    pub sparsity: f64,
    /// Dense inference seconds (median over all repetitions of all seeds).
    pub dense_inference_seconds: f64,
    /// MoG-graph inference seconds (median over all repetitions of all seeds).
    pub mog_inference_seconds: f64,
    /// Ratio of the two medians above.
    pub inference_speedup: f64,
    /// Median of the per-repetition ratios dense / MoG (interleaved passes, same trained weights).
    pub speedup_median: f64,
    /// Smallest per-repetition ratio.
    pub speedup_min: f64,
    /// Largest per-repetition ratio.
    pub speedup_max: f64,
    /// Seconds spent routing + mixing during MoG training.
    pub mog_mix_seconds: f64,
    /// Seconds of dense / MoG training.
    pub dense_train_seconds: f64,
    /// MoG training seconds (including mixing).
    pub mog_train_seconds: f64,
    /// Every seed.
    pub per_seed: Vec<BenchSeed>,
    /// Time vs edges.
    pub scaling: Vec<ScalingPoint>,
    /// Settings.
    pub config: BenchConfig,
}

/// `(median, min, max)` of the per-repetition ratios `a[r] / b[r]`.
pub fn ratio_stats(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let r: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, &y)| y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    if r.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    (
        gnn::median(&r),
        r.iter().copied().fold(f64::INFINITY, f64::min),
        r.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

fn bench_seed(
    cfg: &BenchConfig,
    seed: u64,
    log: &mut dyn FnMut(&str),
) -> Result<(BenchSeed, usize)> {
    let t = std::time::Instant::now();
    let d = Dataset::sbm(&cfg.sbm, seed)?;
    log(&format!(
        "seed {seed}: generated {} ({} directed edges) in {:.1}s",
        d.name,
        d.graph.num_directed_edges(),
        t.elapsed().as_secs_f64()
    ));
    let x = gnn::feature_input(&d)?;
    let split = d.standard_split(seed);
    let prop_full = Arc::new(Propagation::new(cfg.model, gnn::full_pattern(&d.graph)?)?);
    let p = Prepared {
        d: &d,
        x: x.clone(),
        split: split.clone(),
    };
    let (dense_model, dense, dense_t0) =
        train_fixed(&p, cfg.model, prop_full.clone(), &cfg.train, seed, 1)?;
    log(&format!(
        "seed {seed}: dense: test {:.4}, {} epochs in {:.1}s, inference {:.4}s",
        dense.test_accuracy, dense.epochs, dense.train_seconds, dense_t0
    ));
    let t = std::time::Instant::now();
    let scores = all_scores(&d, &x, &dense_model, &prop_full, &split.train, 16, seed)?;
    drop(dense_model);
    log(&format!(
        "seed {seed}: criteria in {:.1}s",
        t.elapsed().as_secs_f64()
    ));
    let run = train_mog(
        &d, &x, &split, cfg.model, &scores, &cfg.mog, &cfg.train, seed, 1,
    )?;
    drop(scores);
    // Same trained weights on the dense and the MoG graph, timed interleaved.
    let (dense_times, mog_times) = gnn::time_inference_pairs(
        &run.model,
        &x,
        (&prop_full, None),
        (&run.prop, Some(&run.gate)),
        cfg.reps,
    )?;
    let (speedup_median, speedup_min, speedup_max) = ratio_stats(&dense_times, &mog_times);
    log(&format!(
        "seed {seed}: mog: test {:.4}, sparsity {:.3}, {} epochs in {:.1}s (mixing {:.1}s), inference {:.4}s; \
         speedup median {speedup_median:.2}x [{speedup_min:.2}, {speedup_max:.2}]",
        run.outcome.test_accuracy,
        run.sparsity,
        run.outcome.epochs,
        run.outcome.train_seconds,
        run.mix_seconds,
        gnn::median(&mog_times)
    ));
    Ok((
        BenchSeed {
            seed,
            dense_accuracy: dense.test_accuracy,
            mog_accuracy: run.outcome.test_accuracy,
            accuracy_delta_points: 100.0 * (run.outcome.test_accuracy - dense.test_accuracy),
            sparsity: run.sparsity,
            dense_times,
            mog_times,
            speedup_median,
            speedup_min,
            speedup_max,
            mog_mix_seconds: run.mix_seconds,
            dense_train_seconds: dense.train_seconds,
            mog_train_seconds: run.outcome.train_seconds,
        },
        d.graph.num_directed_edges(),
    ))
}

/// MoG vs dense on SBM graphs over seeds (accuracy + interleaved inference timing), then inference time vs graph
/// size.
pub fn run_bench(cfg: &BenchConfig, log: &mut dyn FnMut(&str)) -> Result<BenchResult> {
    run_bench_resuming(cfg, &[], &mut |_| Ok(()), log)
}

/// Like [`run_bench`], but seeds found in `done` (with their graph's edge count) are taken from there instead of
/// being trained again; `finished` sees every newly benchmarked seed (to journal it) before the next one starts.
pub fn run_bench_resuming(
    cfg: &BenchConfig,
    done: &[(BenchSeed, usize)],
    finished: &mut dyn FnMut(&(BenchSeed, usize)) -> Result<()>,
    log: &mut dyn FnMut(&str),
) -> Result<BenchResult> {
    if cfg.seeds == 0 || cfg.reps == 0 {
        invalid!("bench graph needs at least one seed and one repetition");
    }
    cfg.sbm.validate()?;
    let mut per_seed = Vec::new();
    let mut edges = 0;
    for seed in cfg.seed..cfg.seed + cfg.seeds {
        let (s, e) = match done.iter().find(|(s, _)| s.seed == seed) {
            Some(r) => {
                log(&format!("seed {seed}: resumed from the journal"));
                r.clone()
            }
            None => {
                let r = bench_seed(cfg, seed, log)?;
                finished(&r)?;
                r
            }
        };
        if per_seed.is_empty() {
            edges = e;
        }
        per_seed.push(s);
    }
    let mean =
        |f: &dyn Fn(&BenchSeed) -> f64| per_seed.iter().map(f).sum::<f64>() / per_seed.len() as f64;
    let dense_all: Vec<f64> = per_seed
        .iter()
        .flat_map(|s| s.dense_times.clone())
        .collect();
    let mog_all: Vec<f64> = per_seed.iter().flat_map(|s| s.mog_times.clone()).collect();
    let (speedup_median, speedup_min, speedup_max) = ratio_stats(&dense_all, &mog_all);
    let (dense_t, mog_t) = (gnn::median(&dense_all), gnn::median(&mog_all));
    let sparsity = mean(&|s| s.sparsity);
    let keep = 1.0 - sparsity;
    let mut scaling = Vec::new();
    for &n in &cfg.scaling_nodes {
        let g = Dataset::sbm(
            &SbmConfig {
                nodes: n,
                ..cfg.sbm.clone()
            },
            cfg.seed,
        )?;
        let xg = gnn::feature_input(&g)?;
        let mut ps = Params::new(cfg.seed);
        let model = Gnn::new(
            cfg.model,
            &mut ps,
            &[g.num_features, cfg.train.hidden, g.num_classes],
            0.0,
        )?;
        let dense_p = Propagation::new(cfg.model, gnn::full_pattern(&g.graph)?)?;
        // Sparse graph at MoG's measured keep ratio, chosen per node by one MoG expert (edge degree).
        let mask = local_top_mask(&g.graph, &criteria::edge_degree(&g.graph), keep);
        let (pat, _) = pattern_from_mask(&g.graph, &mask)?;
        let sparse_edges = pat.nnz();
        let sparse_p = Propagation::new(cfg.model, pat)?;
        let ones = candle_core::Tensor::ones(
            sparse_edges,
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )?;
        let (dts, sts) = gnn::time_inference_pairs(
            &model,
            &xg,
            (&dense_p, None),
            (&sparse_p, Some(&ones)),
            cfg.reps,
        )?;
        drop(dense_p);
        let (dt, st) = (gnn::median(&dts), gnn::median(&sts));
        let (m, lo, hi) = ratio_stats(&dts, &sts);
        let pt = ScalingPoint {
            nodes: n,
            dense_edges: g.graph.num_directed_edges(),
            sparse_edges,
            dense_seconds: dt,
            sparse_seconds: st,
            speedup: dt / st,
            speedup_median: m,
            speedup_min: lo,
            speedup_max: hi,
        };
        log(&format!(
            "scaling n={n}: dense {:.4}s ({} edges) vs sparse {:.4}s ({} edges): median {m:.2}x [{lo:.2}, {hi:.2}]",
            dt, pt.dense_edges, st, sparse_edges
        ));
        scaling.push(pt);
    }
    Ok(BenchResult {
        dataset: cfg.sbm.spec(),
        nodes: cfg.sbm.nodes,
        edges,
        dense_accuracy: mean(&|s| s.dense_accuracy),
        mog_accuracy: mean(&|s| s.mog_accuracy),
        accuracy_delta_points: mean(&|s| s.accuracy_delta_points),
        sparsity,
        dense_inference_seconds: dense_t,
        mog_inference_seconds: mog_t,
        inference_speedup: if mog_t > 0.0 { dense_t / mog_t } else { 0.0 },
        speedup_median,
        speedup_min,
        speedup_max,
        mog_mix_seconds: mean(&|s| s.mog_mix_seconds),
        dense_train_seconds: mean(&|s| s.dense_train_seconds),
        mog_train_seconds: mean(&|s| s.mog_train_seconds),
        per_seed,
        scaling,
        config: cfg.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_have_requested_sizes() {
        let g = Graph::from_edges(5, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)]).unwrap();
        let rev = reverse_edges(&g);
        for (e, &r) in rev.iter().enumerate() {
            assert_eq!(rev[r as usize] as usize, e);
        }
        let m = random_mask(&g, 0.5, 1);
        for (e, &r) in rev.iter().enumerate() {
            assert_eq!(m[e], m[r as usize]);
        }
        let s: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(global_top_mask(&s, 0.5).iter().filter(|&&k| k).count(), 6);
        assert!(local_top_mask(&g, &s, 0.01).iter().filter(|&&k| k).count() == 5);
    }

    #[test]
    fn tolerance_sparsity_interpolates_the_crossing() {
        // Dense 0.80, floor 0.79: between (0.2, 0.80) and (0.4, 0.76) the curve crosses at 0.2 + 0.25·0.2 = 0.25.
        let pts = [(0.4, 0.76), (0.2, 0.80), (0.6, 0.70)];
        assert!((max_sparsity_within(&pts, 0.80, 0.01) - 0.25).abs() < 1e-12);
        // Never drops: the largest sparsity measured.
        assert_eq!(
            max_sparsity_within(&[(0.3, 0.81), (0.5, 0.795)], 0.80, 0.01),
            0.5
        );
        // Already below at the first point: interpolate from the dense point at 0.
        assert!((max_sparsity_within(&[(0.5, 0.75)], 0.80, 0.01) - 0.1).abs() < 1e-12);
        // Accuracy at a given sparsity.
        assert!((accuracy_at(&pts, 0.80, 0.3).unwrap() - 0.78).abs() < 1e-12);
        assert!((accuracy_at(&pts, 0.80, 0.1).unwrap() - 0.80).abs() < 1e-12);
        assert_eq!(accuracy_at(&pts, 0.80, 0.9), None);
    }

    #[test]
    fn a_resumed_experiment_trains_only_what_is_missing_and_agrees() {
        let mut cfg = MogExperiment::new("sbm:400:8", ModelKind::Gcn);
        cfg.seeds = 1;
        cfg.baseline_keeps = vec![0.5];
        cfg.extra_level_sets = vec![];
        cfg.ablation = false;
        cfg.er_projections = 4;
        cfg.timing_reps = 1;
        cfg.train.max_epochs = 15;
        cfg.train.hidden = 8;
        let mut fresh = 0;
        let full = run_mog_experiment(&cfg, &mut |_| fresh += 1).unwrap();
        assert_eq!(fresh, 7, "dense + random + 4 criteria + mog");
        // Everything done: nothing is trained again.
        let mut again = 0;
        let same = run_mog_experiment_resuming(&cfg, &full.runs, &mut |_| again += 1).unwrap();
        assert_eq!(again, 0);
        assert_eq!(same.mog_accuracy, full.mog_accuracy);
        // Half done: the rest is trained and matches the uninterrupted run (training is deterministic).
        let mut rest = 0;
        let resumed =
            run_mog_experiment_resuming(&cfg, &full.runs[..3], &mut |_| rest += 1).unwrap();
        assert_eq!(rest, 4);
        for (a, b) in resumed.runs.iter().zip(&full.runs) {
            assert_eq!((&a.method, &a.level), (&b.method, &b.level));
            assert_eq!(a.test_accuracy, b.test_accuracy, "{} {}", a.method, a.level);
        }
    }
}
