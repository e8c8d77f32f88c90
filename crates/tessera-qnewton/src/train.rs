//! Training loops: SGD, Adam, classical block-Newton and scheduled Q-Newton (arXiv 2405.00252).
//!
//! Every optimiser sees the same seeded minibatches. Time is thread CPU time with faer single-threaded
//! ([`crate::clock`]). The clock counts forward/backward, Hessian blocks, pruning,
//! κ estimation, solves and updates; evaluation is excluded. For Q-Newton the solve of a block routed to the
//! quantum solver is charged its *modelled* time `T_Q` (the solution itself is computed classically, i.e. an ideal
//! error-free QLSA is emulated), so Q-Newton's time axis is partly modelled and is labelled so everywhere.
use crate::clock::Stopwatch;
use crate::condition::{lanczos_extremes, log_kappa_bound_from};
use crate::data::Dataset;
use crate::error::{QnError, Result};
use crate::hessian::{layer_blocks, Curvature};
use crate::mlp::{batch_matrix, Mlp};
use crate::newton::{clip, regularize_in_place, solve_lu, NewtonConfig, StepRule, StepState};
use crate::scheduler::{decide, Route, SchedulerConfig};
use crate::sparsify::sparsify_in_place;
use rand::seq::SliceRandom;
use serde::Serialize;
use std::time::Instant;

/// Which optimiser to train with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with momentum on the gradient.
    Sgd,
    /// Adam on the gradient.
    Adam,
    /// Layer-block Newton, every block solved classically (dense LU), no pruning.
    Newton,
    /// Layer-block Newton with pruning and the quantum/classical scheduler.
    Qnewton,
}

named_enum!(Optimizer, "optimizer", {
    Optimizer::Sgd => "sgd",
    Optimizer::Adam => "adam",
    Optimizer::Newton => "newton",
    Optimizer::Qnewton => "qnewton" | "q-newton",
});

impl Optimizer {
    /// True for the two Newton variants.
    pub fn is_newton(&self) -> bool {
        matches!(self, Optimizer::Newton | Optimizer::Qnewton)
    }
}

/// SGD's default learning rate (tuned on digits; see the crate README).
pub const DEFAULT_SGD_LR: f64 = 0.1;
/// Adam's default learning rate.
pub const DEFAULT_ADAM_LR: f64 = 1e-2;
/// The Newton variants' default learning rate (applied to Δθ).
pub const DEFAULT_NEWTON_LR: f64 = 0.05;
/// Heavy-ball momentum of every SGD-style rule.
pub const DEFAULT_MOMENTUM: f64 = 0.9;

/// Training settings.
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    /// Hidden widths, e.g. `[16, 16]` for 64→16→16→10.
    pub hidden: Vec<usize>,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// How directions (gradient or Newton step) become updates.
    pub rule: StepRule,
    /// Minibatch size.
    pub batch: usize,
    /// Number of steps.
    pub steps: usize,
    /// Evaluate every this many steps.
    pub eval_every: usize,
    /// Curvature for the Newton blocks.
    pub curvature: Curvature,
    /// Newton-step settings.
    pub newton: NewtonConfig,
    /// Scheduler settings (Q-Newton).
    pub scheduler: SchedulerConfig,
    /// Seed for initialisation and batches.
    pub seed: u64,
}

impl TrainConfig {
    /// Defaults for `optimizer` (learning rates tuned on digits; see the crate README).
    pub fn defaults(optimizer: Optimizer) -> Self {
        let rule = match optimizer {
            Optimizer::Sgd => StepRule::Sgd {
                lr: DEFAULT_SGD_LR,
                momentum: DEFAULT_MOMENTUM,
            },
            Optimizer::Adam => StepRule::Adam {
                lr: DEFAULT_ADAM_LR,
            },
            Optimizer::Newton | Optimizer::Qnewton => StepRule::Sgd {
                lr: DEFAULT_NEWTON_LR,
                momentum: DEFAULT_MOMENTUM,
            },
        };
        TrainConfig {
            hidden: vec![16, 16],
            optimizer,
            rule,
            batch: 256,
            steps: 150,
            eval_every: 10,
            curvature: Curvature::GaussNewton,
            newton: NewtonConfig::default(),
            scheduler: SchedulerConfig::default(),
            seed: 0,
        }
    }
}

/// One evaluation point.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    /// Steps taken.
    pub step: usize,
    /// Charged training time so far (measured; for Q-Newton with quantum solves partly modelled), seconds.
    pub time_s: f64,
    /// Mean cross-entropy on the whole training set.
    pub train_loss: f64,
    /// Mean cross-entropy on the test set.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_acc: f64,
}

/// One block's scheduling record.
#[derive(Debug, Clone, Serialize)]
pub struct BlockRecord {
    /// Step index.
    pub step: usize,
    /// Layer index.
    pub layer: usize,
    /// Block order N.
    pub n: usize,
    /// Row sparsity d after pruning.
    pub d: usize,
    /// Regulariser λ.
    pub lambda: f64,
    /// Lanczos κ of `H + λI` (after pruning for Q-Newton).
    pub kappa: f64,
    /// Lanczos κ of the raw block `H` before pruning and λ (diagnostic, not charged; `inf` when singular).
    pub kappa_raw: f64,
    /// log10 of the determinant/Frobenius upper bound on κ (diagnostic).
    pub log10_kappa_bound: f64,
    /// Measured LU solve time, seconds.
    pub t_classical: f64,
    /// Modelled QLSA time, seconds.
    pub t_quantum: f64,
    /// Chosen route (always classical for plain Newton).
    pub route: Route,
}

/// Where the charged time went, seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TimeBreakdown {
    /// Forward and backward passes.
    pub forward_backward: f64,
    /// Hessian blocks.
    pub hessian: f64,
    /// Regularisation and pruning.
    pub prune: f64,
    /// κ estimation (scheduler overhead).
    pub kappa: f64,
    /// Classical solves (measured).
    pub solve_classical: f64,
    /// Quantum solves (modelled).
    pub solve_quantum_modelled: f64,
    /// Parameter updates.
    pub update: f64,
    /// Not charged: wall time spent emulating quantum-routed solves classically.
    pub uncharged_quantum_emulation: f64,
}

impl TimeBreakdown {
    /// Sum of the charged parts.
    pub fn charged(&self) -> f64 {
        self.forward_backward
            + self.hessian
            + self.prune
            + self.kappa
            + self.solve_classical
            + self.solve_quantum_modelled
            + self.update
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainResult {
    /// The optimiser (serialised as its name).
    pub optimizer: Optimizer,
    /// Dataset name.
    pub dataset: String,
    /// Settings used.
    pub config: TrainConfig,
    /// Evaluation curve.
    pub curve: Vec<CurvePoint>,
    /// Per-block records (Newton variants).
    pub blocks: Vec<BlockRecord>,
    /// Blocks routed to the quantum solver.
    pub blocks_quantum: usize,
    /// Blocks routed to the classical solver.
    pub blocks_classical: usize,
    /// Charged time breakdown.
    pub time: TimeBreakdown,
    /// Total charged time, seconds.
    pub time_s: f64,
    /// True when part of `time_s` is modelled quantum time.
    pub time_includes_modelled: bool,
    /// Wall-clock time of the whole run including evaluation, seconds.
    pub wall_s: f64,
    /// Final test accuracy.
    pub final_test_acc: f64,
    /// Final training loss.
    pub final_train_loss: f64,
}

fn evaluate(mlp: &Mlp, data: &Dataset) -> (f64, f64) {
    let idx: Vec<usize> = (0..data.len()).collect();
    let (x, y) = batch_matrix(data, &idx);
    let cache = mlp.forward(&x);
    (Mlp::loss(&cache, &y), Mlp::accuracy(&cache, &y))
}

/// Trains an MLP on `train`, evaluating on `test`; `on_eval` sees every curve point (for progress output).
pub fn train(
    cfg: &TrainConfig,
    train: &Dataset,
    test: &Dataset,
    mut on_eval: impl FnMut(&CurvePoint),
) -> Result<TrainResult> {
    if train.is_empty() || cfg.batch == 0 || cfg.steps == 0 || cfg.eval_every == 0 {
        return Err(QnError::invalid(
            "empty training set, or zero batch/steps/eval_every",
        ));
    }
    let wall = Instant::now();
    // One thread: the clock charges thread CPU time (see `crate::clock`).
    faer::set_global_parallelism(faer::Par::Seq);
    let mut sizes = vec![train.dim];
    sizes.extend(&cfg.hidden);
    sizes.push(train.classes);
    let mut mlp = Mlp::new(&sizes, cfg.seed);
    let mut states: Vec<StepState> = (0..mlp.layers.len())
        .map(|l| StepState::new(mlp.block_size(l)))
        .collect();
    let mut rng = tessera_core::rng::derived(cfg.seed, "batches");
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut cursor = order.len();
    let mut time = TimeBreakdown::default();
    let mut curve = Vec::new();
    let mut blocks = Vec::new();
    let record = |step: usize,
                  mlp: &Mlp,
                  time: &TimeBreakdown,
                  curve: &mut Vec<CurvePoint>,
                  f: &mut dyn FnMut(&CurvePoint)| {
        let (train_loss, _) = evaluate(mlp, train);
        let (test_loss, test_acc) = evaluate(mlp, test);
        let p = CurvePoint {
            step,
            time_s: time.charged(),
            train_loss,
            test_loss,
            test_acc,
        };
        f(&p);
        curve.push(p);
    };
    record(0, &mlp, &time, &mut curve, &mut on_eval);
    for step in 0..cfg.steps {
        if cursor + cfg.batch > order.len() {
            order.shuffle(&mut rng);
            cursor = 0;
        }
        let idx = &order[cursor..(cursor + cfg.batch).min(order.len())];
        cursor += cfg.batch;
        let (x, y) = batch_matrix(train, idx);

        let t0 = Stopwatch::start();
        let cache = mlp.forward(&x);
        let deltas = mlp.deltas(&cache, &y);
        let grads = mlp.gradients(&cache, &deltas);
        time.forward_backward += t0.elapsed();

        let dirs = if cfg.optimizer.is_newton() {
            let t0 = Stopwatch::start();
            let hs = layer_blocks(&mlp, &cache, &deltas, cfg.curvature);
            time.hessian += t0.elapsed();
            let mut dirs = Vec::with_capacity(hs.len());
            for (layer, (h, g)) in hs.into_iter().zip(&grads).enumerate() {
                let (dir, rec) = newton_block(cfg, step, layer, h, g, &mut time)?;
                blocks.push(rec);
                dirs.push(dir);
            }
            dirs
        } else {
            grads
        };

        let t0 = Stopwatch::start();
        for (l, dir) in dirs.iter().enumerate() {
            let upd = states[l].update(cfg.rule, dir);
            mlp.apply_update(l, &upd);
        }
        time.update += t0.elapsed();

        if (step + 1) % cfg.eval_every == 0 || step + 1 == cfg.steps {
            record(step + 1, &mlp, &time, &mut curve, &mut on_eval);
        }
    }
    let blocks_quantum = blocks.iter().filter(|b| b.route == Route::Quantum).count();
    let last = curve
        .last()
        .cloned()
        .ok_or_else(|| QnError::InvalidInput("no evaluation".into()))?;
    Ok(TrainResult {
        optimizer: cfg.optimizer,
        dataset: train.name.clone(),
        config: cfg.clone(),
        blocks_classical: blocks.len() - blocks_quantum,
        blocks_quantum,
        blocks,
        time_s: time.charged(),
        time_includes_modelled: cfg.optimizer == Optimizer::Qnewton,
        time,
        curve,
        wall_s: wall.elapsed().as_secs_f64(),
        final_test_acc: last.test_acc,
        final_train_loss: last.train_loss,
    })
}

/// One layer block: regularise (and for Q-Newton prune and schedule), solve, clip.
fn newton_block(
    cfg: &TrainConfig,
    step: usize,
    layer: usize,
    h: faer::Mat<f64>,
    g: &[f64],
    time: &mut TimeBreakdown,
) -> Result<(Vec<f64>, BlockRecord)> {
    let scheduled = cfg.optimizer == Optimizer::Qnewton;
    let seed = tessera_core::rng::derive_seed(cfg.seed, &format!("kappa-{step}-{layer}"));
    let kappa_raw = lanczos_extremes(h.as_ref(), cfg.scheduler.lanczos_steps, seed)?.kappa();
    let t0 = Stopwatch::start();
    let mut a = h;
    let d = if scheduled {
        sparsify_in_place(
            &mut a,
            cfg.newton.sparsity_ratio,
            cfg.newton.symmetrize,
            cfg.newton.compensate,
        )
        .0
    } else {
        a.nrows()
    };
    let lambda = regularize_in_place(&mut a, &cfg.newton);
    time.prune += t0.elapsed();

    let t0 = Stopwatch::start();
    let kappa = lanczos_extremes(a.as_ref(), cfg.scheduler.lanczos_steps, seed)?.kappa();
    let t_kappa = t0.elapsed();

    let t0 = Stopwatch::start();
    let (mut dir, log_det) = solve_lu(&a, g)?;
    let t_classical = t0.elapsed();
    clip(&mut dir, cfg.newton.clip);

    let route = if scheduled {
        time.kappa += t_kappa;
        let dec = decide(&cfg.scheduler, kappa, d, t_classical);
        match dec.route {
            Route::Quantum => {
                time.solve_quantum_modelled += dec.t_quantum;
                time.uncharged_quantum_emulation += t_classical;
            }
            Route::Classical => time.solve_classical += t_classical,
        }
        (dec.route, dec.t_quantum)
    } else {
        // Plain Newton needs no κ: it is measured for the κ trajectory only and not charged.
        time.solve_classical += t_classical;
        (
            Route::Classical,
            crate::cost::quantum_time(cfg.scheduler.gate_time, d, kappa, cfg.scheduler.qlsa_eps),
        )
    };
    let log10_kappa_bound =
        log_kappa_bound_from(a.nrows(), a.norm_l2(), log_det) / std::f64::consts::LN_10;
    let rec = BlockRecord {
        step,
        layer,
        n: a.nrows(),
        d,
        lambda,
        kappa,
        kappa_raw,
        log10_kappa_bound,
        t_classical,
        t_quantum: route.1,
        route: route.0,
    };
    Ok((dir, rec))
}
