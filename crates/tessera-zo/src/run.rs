//! A fine-tuning run: [`ZoConfig`] → [`run`] → [`ZoResult`], and the [`Trainer`] that takes one step at a time
//! (shared by `tessera zo train`, `tessera zo memory` and the tour).
//!
//! Every step `s` draws its batch from `derive(seed, "zo/batch/<s>")` and its directions from
//! `derive_seed(seed, "zo/step/<s>")` (query `i`: `derive_seed(step seed, "query/<i>")`), so a run resumed from a
//! checkpoint takes exactly the steps the uninterrupted run would have taken, and ends with bit-identical
//! parameters.
use crate::batch::{self, Encoded};
use crate::blockwise;
use crate::ckpt::{self, EvalPoint, Progress};
use crate::error::{Result, ZoError};
use crate::fo;
use crate::forward_grad;
use crate::hybrid;
use crate::optimizer::Optimizer;
use crate::scheme::{Pass, Scheme, Tunable};
use crate::sparsity::{self, SparsityMode};
use crate::task::{self, Task, TaskData};
use crate::zo_adam::ZoAdam;
use crate::zo_sgd::{self, ConsChoice, Momentum};
use candle_core::Tensor;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera_core::alloc::HeapScope;
use tessera_lm::optim;
use tessera_lm::perturb::Param;
use tessera_lm::{Llama, ParamSet, Perturbation};

/// Settings of `tessera zo train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoConfig {
    /// Model name or path (resolved by [`run`]).
    pub model: String,
    /// Task.
    pub task: Task,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Tuning scheme.
    pub scheme: Scheme,
    /// Total optimizer steps (a resumed run continues up to this many).
    pub steps: u64,
    /// Run seed (training sample, batches, directions, adapter / prompt initialisation).
    pub seed: u64,
    /// Constant learning rate (default: [`Optimizer::default_lr`]).
    pub lr: Option<f64>,
    /// Perturbation scale μ (default: [`Optimizer::default_mu`]).
    pub mu: Option<f64>,
    /// Query budget: estimates averaged per step, each with its own seed.
    pub q: usize,
    /// Block-wise ZO ([`crate::blockwise`]).
    pub block_wise: bool,
    /// Layers trained first-order in hybrid ZO/FO ([`crate::hybrid`]), e.g. `0-3`.
    pub hybrid_fo: Option<String>,
    /// Learning rate of the first-order layers in hybrid ZO/FO (default 1e-4).
    pub fo_lr: Option<f64>,
    /// Gradient sparsity: the share of coordinates left unperturbed ([`crate::sparsity`]).
    pub sparsity: f64,
    /// How the perturbed coordinates are chosen under [`ZoConfig::sparsity`] (random or by magnitude).
    #[serde(default)]
    pub sparsity_mode: SparsityMode,
    /// Weight decay (skipped on norms, biases, prefixes, prompts).
    pub weight_decay: f64,
    /// Examples per step.
    pub batch: usize,
    /// Training examples drawn by seed (default [`Task::default_train_examples`]).
    pub train_examples: Option<usize>,
    /// Evaluation examples (default [`Task::default_eval_examples`]).
    pub eval_examples: Option<usize>,
    /// Evaluate every this many steps (0: only before and after).
    pub eval_every: u64,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Folder holding the task files (default: the shared data root).
    pub data_dir: Option<PathBuf>,
    /// Output directory (settings, checkpoints, `result.json`).
    pub out: PathBuf,
    /// Resume from this output directory of an earlier run with the same settings.
    pub resume: Option<PathBuf>,
    /// Never download the model.
    pub offline: bool,
}

impl Default for ZoConfig {
    fn default() -> Self {
        ZoConfig {
            model: tessera_lm::tour::TOUR_MODEL.into(),
            task: Task::Sst2,
            optimizer: Optimizer::ZoSgd,
            scheme: Scheme::Full,
            steps: 100,
            seed: 0,
            lr: None,
            mu: None,
            q: 1,
            block_wise: false,
            hybrid_fo: None,
            fo_lr: None,
            sparsity: 0.0,
            sparsity_mode: SparsityMode::Random,
            weight_decay: 0.0,
            batch: 16,
            train_examples: None,
            eval_examples: None,
            eval_every: 0,
            checkpoint_every: 0,
            data_dir: None,
            out: PathBuf::from("runs/zo"),
            resume: None,
            offline: false,
        }
    }
}

/// The effective settings of a run: its identity in `settings.json` (steps, evaluation and checkpoint cadence
/// and paths are not part of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Model as given.
    pub model: String,
    /// Architecture fingerprint of the model.
    pub model_fingerprint: String,
    /// Task.
    pub task: Task,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Scheme.
    pub scheme: Scheme,
    /// Seed.
    pub seed: u64,
    /// Learning rate.
    pub lr: f64,
    /// μ (unused by first-order optimizers).
    pub mu: f64,
    /// Query budget.
    pub q: usize,
    /// Block-wise ZO.
    pub block_wise: bool,
    /// First-order layers (hybrid ZO/FO); empty for none.
    pub hybrid_fo_layers: Vec<usize>,
    /// Learning rate of the first-order layers.
    pub fo_lr: f64,
    /// Gradient sparsity.
    pub sparsity: f64,
    /// Gradient-sparsity mode (absent in the settings of runs made before it existed: random).
    #[serde(default)]
    pub sparsity_mode: SparsityMode,
    /// Weight decay.
    pub weight_decay: f64,
    /// Batch size.
    pub batch: usize,
    /// Training examples.
    pub train_examples: usize,
    /// Evaluation examples.
    pub eval_examples: usize,
}

/// Checks the combination of settings (before anything is loaded or written).
pub fn validate(cfg: &ZoConfig) -> Result<()> {
    let o = cfg.optimizer;
    let bad = |m: String| Err(ZoError::invalid(m));
    let pos = |x: Option<f64>| x.is_none_or(|v| v.is_finite() && v > 0.0);
    if !pos(cfg.lr) || !pos(cfg.mu) || !pos(cfg.fo_lr) {
        return bad("--lr, --mu and --fo-lr must be finite and > 0".into());
    }
    if !(cfg.weight_decay.is_finite() && cfg.weight_decay >= 0.0) {
        return bad(format!(
            "weight decay must be ≥ 0, got {}",
            cfg.weight_decay
        ));
    }
    if cfg.batch == 0 || cfg.q == 0 {
        return bad("--batch and --q must be at least 1".into());
    }
    sparsity::perturbed_fraction(cfg.sparsity)?;
    if !o.is_zo() && o != Optimizer::ForwardGrad && cfg.q > 1 {
        return bad(format!(
            "{o} is first-order: a query budget --q > 1 applies to ZO optimizers only"
        ));
    }
    if o == Optimizer::ZoSgdCons && cfg.q > 1 {
        return bad("zo-sgd-cons compares single steps: it runs with --q 1 only".into());
    }
    if cfg.block_wise && (!o.is_zo() || o == Optimizer::ZoSgdCons) {
        return bad(format!(
            "--block-wise perturbs and updates block by block: it needs zo-sgd, zo-sgd-sign, zo-sgd-mmt or zo-adam, not {o}"
        ));
    }
    if cfg.sparsity > 0.0 && matches!(o, Optimizer::FoSgd | Optimizer::FoAdam) {
        return bad(format!(
            "--sparsity sparsifies the perturbation: {o} has none"
        ));
    }
    if cfg.sparsity > 0.0
        && cfg.sparsity_mode == SparsityMode::Magnitude
        && cfg.scheme == Scheme::Lora
    {
        return bad(
            "--sparsity-mode magnitude selects by the initial |w|, and LoRA's B starts at zero: use random with --scheme lora"
                .into(),
        );
    }
    if cfg.hybrid_fo.is_some() {
        if !o.is_zo() || o == Optimizer::ZoSgdCons {
            return bad(format!(
                "--hybrid-fo mixes a ZO optimizer with first-order layers: it needs zo-sgd, zo-sgd-sign, zo-sgd-mmt or zo-adam, not {o}"
            ));
        }
        if cfg.scheme != Scheme::Full || cfg.block_wise {
            return bad("--hybrid-fo runs with --scheme full and without --block-wise".into());
        }
    }
    Ok(())
}

/// The effective settings of `cfg` on `model` (defaults filled in).
pub fn settings(cfg: &ZoConfig, model: &Llama) -> Result<Settings> {
    validate(cfg)?;
    let layers = match &cfg.hybrid_fo {
        Some(s) => hybrid::parse_layers(s, model.blocks.len())?,
        None => Vec::new(),
    };
    Ok(Settings {
        model: cfg.model.clone(),
        model_fingerprint: tessera_lm::checkpoint::model_fingerprint(model),
        task: cfg.task,
        optimizer: cfg.optimizer,
        scheme: cfg.scheme,
        seed: cfg.seed,
        lr: cfg.lr.unwrap_or(cfg.optimizer.default_lr(cfg.scheme)),
        mu: cfg.mu.unwrap_or(cfg.optimizer.default_mu(cfg.scheme)),
        q: cfg.q,
        block_wise: cfg.block_wise,
        hybrid_fo_layers: layers,
        fo_lr: cfg.fo_lr.unwrap_or(1e-4),
        sparsity: cfg.sparsity,
        sparsity_mode: cfg.sparsity_mode,
        weight_decay: cfg.weight_decay,
        batch: cfg.batch,
        train_examples: cfg
            .train_examples
            .unwrap_or(cfg.task.default_train_examples()),
        eval_examples: cfg
            .eval_examples
            .unwrap_or(cfg.task.default_eval_examples()),
    })
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOut {
    /// The step's loss (ZO: the mean of `L(θ ± μz)`; ZO-SGD-Cons: `L(θ)`; autograd methods: `L(θ)`).
    pub loss: f64,
    /// ZO-SGD-Cons's choice.
    pub choice: Option<ConsChoice>,
}

/// The state of a run between steps: the trainable tensors and the optimizer state.
pub struct Trainer<'a> {
    model: &'a Llama,
    tun: Tunable,
    params: Vec<Param>,
    train: Vec<Encoded>,
    s: Settings,
    fraction: f64,
    momentum: Momentum,
    adam: ZoAdam,
    fo: Option<optim::Optimizer>,
    hybrid_fo: Option<optim::Optimizer>,
}

impl<'a> Trainer<'a> {
    /// A trainer over the prepared `tun` (see [`prepare`]) and the tokenised training set.
    pub fn new(model: &'a Llama, tun: Tunable, train: Vec<Encoded>, s: Settings) -> Result<Self> {
        if train.is_empty() {
            return Err(ZoError::invalid("no training examples"));
        }
        let params = tun.params(model);
        if params.is_empty() {
            return Err(ZoError::invalid(format!(
                "the {} scheme has no trainable tensor",
                s.scheme
            )));
        }
        let o = s.optimizer;
        let fo = match o {
            Optimizer::FoSgd | Optimizer::FoAdam => Some(fo::optimizer(
                o == Optimizer::FoAdam,
                s.weight_decay,
                &params,
            )?),
            _ => None,
        };
        let hybrid_fo = if s.hybrid_fo_layers.is_empty() {
            None
        } else {
            let fp: Vec<Param> = params
                .iter()
                .filter(|p| hybrid::in_layers(&p.name, &s.hybrid_fo_layers))
                .cloned()
                .collect();
            Some(fo::optimizer(false, s.weight_decay, &fp)?)
        };
        // Magnitude sparsity: the selection, from the initial weights, becomes each ZO tensor's mask (after the
        // first-order optimizers above took their own copies of the parameter list).
        let mut params = params;
        let mut fraction = sparsity::perturbed_fraction(s.sparsity)?;
        if s.sparsity_mode == SparsityMode::Magnitude && fraction < 1.0 {
            sparsity::select_by_magnitude(&mut params, fraction, |n| {
                hybrid::in_layers(n, &s.hybrid_fo_layers)
            })?;
            fraction = 1.0;
        }
        Ok(Trainer {
            model,
            tun,
            params,
            train,
            fraction,
            s,
            momentum: Momentum::new(0.9),
            adam: ZoAdam::default(),
            fo,
            hybrid_fo,
        })
    }

    /// The trainable tensors.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The scheme's state.
    pub fn tunable(&self) -> &Tunable {
        &self.tun
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// The examples of step `step`: `batch` distinct training examples drawn from the step's own stream.
    pub fn batch_at(&self, step: u64) -> Vec<&Encoded> {
        batch_of(&self.train, self.s.seed, self.s.batch, step)
    }

    /// The seed of step `step`.
    pub fn step_seed(&self, step: u64) -> u64 {
        tessera_core::rng::derive_seed(self.s.seed, &format!("zo/step/{step}"))
    }

    /// The directions of step `step` over one block (`None`: all tensors).
    pub fn perturbations(&self, step: u64, block: Option<&str>) -> Vec<Perturbation> {
        let ss = self.step_seed(step);
        (0..self.s.q)
            .map(|i| {
                let qs = tessera_core::rng::derive_seed(ss, &format!("query/{i}"));
                let mut p = Perturbation::new(
                    match block {
                        Some(b) => blockwise::block_seed(qs, b),
                        None => qs,
                    },
                    ParamSet::All,
                );
                p.fraction = self.fraction;
                p
            })
            .collect()
    }

    /// The inference loss of a batch.
    pub fn loss_of(&self, ex: &[&Encoded]) -> Result<f64> {
        batch::loss_value(self.model, &self.tun, ex)
    }

    /// Takes step `step`.
    pub fn step(&mut self, step: u64) -> Result<StepOut> {
        let ex = batch_of(&self.train, self.s.seed, self.s.batch, step);
        let (model, tun) = (self.model, &self.tun);
        let mut f = || batch::loss_value(model, tun, &ex);
        let (lr, wd, mu) = (self.s.lr, self.s.weight_decay, self.s.mu as f32);
        let o = self.s.optimizer;
        match o {
            Optimizer::FoSgd | Optimizer::FoAdam => {
                let loss = batch::loss(model, tun, &ex, Pass::Train)?;
                let opt = self.fo.as_mut().expect("built for first-order optimizers");
                Ok(StepOut {
                    loss: fo::step(opt, loss, lr)?,
                    choice: None,
                })
            }
            Optimizer::ForwardGrad => {
                let loss = batch::loss(model, tun, &ex, Pass::Train)?;
                let perts = self.perturbations(step, None);
                Ok(StepOut {
                    loss: forward_grad::step(loss, &perts, &self.params, lr, wd)?,
                    choice: None,
                })
            }
            Optimizer::ZoSgdCons => {
                let perts = self.perturbations(step, None);
                let (loss, c) = zo_sgd::cons_step(&mut f, &perts[0], &self.params, mu, lr)?;
                Ok(StepOut {
                    loss,
                    choice: Some(c),
                })
            }
            _ => {
                let zo_params: Vec<Param> = self
                    .params
                    .iter()
                    .filter(|p| !hybrid::in_layers(&p.name, &self.s.hybrid_fo_layers))
                    .cloned()
                    .collect();
                let groups: Vec<(Option<String>, Vec<Param>)> = if self.s.block_wise {
                    blockwise::blocks(&zo_params)
                        .into_iter()
                        .map(|b| {
                            let ps = zo_params
                                .iter()
                                .filter(|p| b.params.contains(&p.name))
                                .cloned()
                                .collect();
                            (Some(b.name), ps)
                        })
                        .collect()
                } else {
                    vec![(None, zo_params)]
                };
                if o == Optimizer::ZoAdam {
                    self.adam.begin_step();
                }
                let mut loss = 0.0;
                let ng = groups.len() as f64;
                for (name, ps) in &groups {
                    let perts = self.perturbations(step, name.as_deref());
                    let (gs, l) = zo_sgd::estimate(&mut f, &perts, ps, mu)?;
                    loss += l / ng;
                    match o {
                        Optimizer::ZoSgd => zo_sgd::sgd_update(&perts, &gs, ps, lr, wd, false)?,
                        Optimizer::ZoSgdSign => zo_sgd::sgd_update(&perts, &gs, ps, lr, wd, true)?,
                        Optimizer::ZoSgdMmt => self.momentum.update(&perts, &gs, ps, lr, wd)?,
                        Optimizer::ZoAdam => self.adam.update(&perts, &gs, ps, lr, wd)?,
                        _ => unreachable!("handled above"),
                    }
                }
                if let Some(opt) = self.hybrid_fo.as_mut() {
                    let l = batch::loss(model, tun, &ex, Pass::Hybrid(&self.s.hybrid_fo_layers))?;
                    fo::step(opt, l, self.s.fo_lr)?;
                }
                Ok(StepOut { loss, choice: None })
            }
        }
    }

    /// The share of trainable coordinates one direction perturbs (one extra pass adding `0·z`).
    pub fn perturbed_share(&self) -> Result<f64> {
        let mut p = Perturbation::new(self.step_seed(0), ParamSet::All);
        p.fraction = self.fraction;
        let st = p.apply_to(&self.params, 0.0)?;
        Ok(st.perturbed as f64 / st.elements.max(1) as f64)
    }

    /// The tensors a checkpoint holds: trainable tensors and optimizer state.
    pub fn state_tensors(&self) -> Result<(HashMap<String, Tensor>, HashMap<String, Tensor>)> {
        let mut ps = HashMap::new();
        for p in &self.params {
            ps.insert(p.name.clone(), p.var.as_tensor().detach());
        }
        let mut opt = HashMap::new();
        let dev = self.model.device();
        let mut put = |prefix: &str, m: &HashMap<String, Vec<f32>>| -> Result<()> {
            for (k, v) in m {
                opt.insert(
                    format!("{prefix}/{k}"),
                    Tensor::from_slice(v, v.len(), dev)?,
                );
            }
            Ok(())
        };
        put("momentum", &self.momentum.buffers)?;
        put("adam_m", &self.adam.m)?;
        put("adam_v", &self.adam.v)?;
        for (tag, o) in [("fo", &self.fo), ("hybrid_fo", &self.hybrid_fo)] {
            if let Some(o) = o {
                for (k, t) in o.state_tensors() {
                    opt.insert(format!("{tag}/{k}"), t);
                }
            }
        }
        Ok((ps, opt))
    }

    /// Restores tensors saved by [`Trainer::state_tensors`] and the optimizer step counts of `progress`.
    pub fn load_state(
        &mut self,
        params: &HashMap<String, Tensor>,
        opt: HashMap<String, Tensor>,
        progress: &Progress,
    ) -> Result<()> {
        for p in &self.params {
            let t = params
                .get(&p.name)
                .filter(|t| t.dims() == p.var.dims())
                .ok_or_else(|| {
                    ZoError::invalid(format!(
                        "checkpoint lacks `{}` or has another shape",
                        p.name
                    ))
                })?;
            p.var.set(t)?;
        }
        let mut fo_state: [HashMap<String, Tensor>; 2] = Default::default();
        for (k, t) in opt {
            let (tag, name) = k
                .split_once('/')
                .ok_or_else(|| ZoError::invalid(format!("unknown optimizer tensor `{k}`")))?;
            let vec = || -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1()?) };
            match tag {
                "momentum" => drop(self.momentum.buffers.insert(name.into(), vec()?)),
                "adam_m" => drop(self.adam.m.insert(name.into(), vec()?)),
                "adam_v" => drop(self.adam.v.insert(name.into(), vec()?)),
                "fo" => drop(fo_state[0].insert(name.into(), t)),
                "hybrid_fo" => drop(fo_state[1].insert(name.into(), t)),
                _ => return Err(ZoError::invalid(format!("unknown optimizer tensor `{k}`"))),
            }
        }
        self.adam.t = progress.zo_adam_t;
        let [a, b] = fo_state;
        if let Some(o) = self.fo.as_mut() {
            o.load_state(a, progress.fo_steps)?;
        }
        if let Some(o) = self.hybrid_fo.as_mut() {
            o.load_state(b, progress.step)?;
        }
        Ok(())
    }

    /// ZO-Adam's step count and the first-order optimizer's.
    pub fn counts(&self) -> (u64, u64) {
        (self.adam.t, self.fo.as_ref().map_or(0, |o| o.steps()))
    }
}

/// `batch` distinct examples of `train` drawn from step `step`'s stream of `seed`.
fn batch_of(train: &[Encoded], seed: u64, batch: usize, step: u64) -> Vec<&Encoded> {
    let n = train.len();
    let mut rng = tessera_core::rng::derived(seed, &format!("zo/batch/{step}"));
    sample(&mut rng, n, batch.min(n))
        .into_iter()
        .map(|i| &train[i])
        .collect()
}

/// Prepares `scheme` on `model` for a run: adapters, or a prefix from the real activations of the first
/// training prompt(s), or a prompt from real token embeddings.
pub fn prepare(model: &mut Llama, scheme: Scheme, seed: u64, train: &[Encoded]) -> Result<Tunable> {
    let init: Vec<u32> = train
        .iter()
        .flat_map(|e| e.prompt.iter().copied())
        .take(64)
        .collect();
    Tunable::prepare(model, scheme, seed, &init)
}

/// The result of `tessera zo train`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoResult {
    /// Effective settings.
    pub settings: Settings,
    /// Steps asked for.
    pub steps: u64,
    /// Steps completed (all of them unless an error stopped the run).
    pub steps_done: u64,
    /// The step a resumed run started from.
    pub resumed_from: Option<u64>,
    /// Zero-shot accuracy: the same prompt before any step.
    pub zero_shot_accuracy: f64,
    /// Accuracy before training (= zero-shot).
    pub accuracy_before: f64,
    /// Accuracy after the last step.
    pub accuracy_after: f64,
    /// `100 · (after − before)`, in points.
    pub gain_points: f64,
    /// Training loss of every step.
    pub loss_curve: Vec<f64>,
    /// Accuracy measurements (step 0 = zero-shot).
    pub evals: Vec<EvalPoint>,
    /// Median wall time of a step in this process, seconds.
    pub step_seconds: f64,
    /// Median wall time of one inference loss evaluation of a batch, seconds.
    pub forward_seconds: f64,
    /// `step_seconds / forward_seconds`.
    pub step_vs_forward: f64,
    /// Highest live heap during a step (weights included), bytes; 0 when the counting allocator is absent.
    pub peak_heap_bytes: usize,
    /// Whether the counting allocator was installed.
    pub heap_counted: bool,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Trainable scalars.
    pub trainable_params: usize,
    /// Share of them one direction perturbs (ZO and forward-gradient methods).
    pub perturbed_share: Option<f64>,
    /// ZO-SGD-Cons: times it kept θ, θ − ηgz, θ + ηgz.
    pub cons_choices: Option<[u64; 3]>,
    /// Training examples used.
    pub train_examples: usize,
    /// Training examples available.
    pub train_pool: usize,
    /// Evaluation examples.
    pub eval_examples: usize,
    /// Malformed lines or items skipped in the task files.
    pub skipped_lines: usize,
    /// Output directory.
    pub out: PathBuf,
}

fn quiet() -> bool {
    std::env::var_os("TESSERA_QUIET").is_some()
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `cfg`: resolves and loads the model, reads the task, then [`train`].
pub fn run(cfg: &ZoConfig) -> Result<ZoResult> {
    validate(cfg)?;
    let path = tessera_core::assets::resolve_model(&cfg.model, cfg.offline)?;
    let mut model = tessera_lm::load(&path)?;
    let data = task::load(
        cfg.task,
        cfg.data_dir.as_deref(),
        cfg.train_examples
            .unwrap_or(cfg.task.default_train_examples()),
        cfg.eval_examples
            .unwrap_or(cfg.task.default_eval_examples()),
        cfg.seed,
    )?;
    train(&mut model, &data, cfg)
}

/// Checks the output and resume directories; returns the checkpoint to resume from.
fn open_dirs(cfg: &ZoConfig, settings: &serde_json::Value) -> Result<Option<ckpt::Loaded>> {
    match &cfg.resume {
        Some(dir) => {
            if !ckpt::check_settings(dir, settings)? {
                return Err(ZoError::Checkpoint {
                    dir: dir.clone(),
                    msg: "no run to resume here (no settings.json)".into(),
                });
            }
            if !same_dir(dir, &cfg.out) && ckpt::check_settings(&cfg.out, settings)? {
                return Err(ZoError::Checkpoint {
                    dir: cfg.out.clone(),
                    msg: "already holds a run; resume into it with --resume on the same directory"
                        .into(),
                });
            }
            let loaded = ckpt::load(dir)?.ok_or_else(|| ZoError::Checkpoint {
                dir: dir.clone(),
                msg: "no checkpoint to resume from (no LATEST)".into(),
            })?;
            Ok(Some(loaded))
        }
        None => {
            if ckpt::check_settings(&cfg.out, settings)? {
                return Err(ZoError::Checkpoint {
                    dir: cfg.out.clone(),
                    msg: format!(
                        "already holds a run with these settings; continue it with --resume {}",
                        cfg.out.display()
                    ),
                });
            }
            Ok(None)
        }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Trains on an already loaded model and task (tests use tiny models): zero-shot accuracy, `cfg.steps` steps with
/// periodic evaluation and checkpoints, accuracy after; writes `settings.json`, checkpoints and `result.json`
/// under `cfg.out`.
pub fn train(model: &mut Llama, data: &TaskData, cfg: &ZoConfig) -> Result<ZoResult> {
    let s = settings(cfg, model)?;
    let sj = serde_json::to_value(&s).map_err(tessera_core::Error::from)?;
    let loaded = open_dirs(cfg, &sj)?;
    let train_enc = batch::encode(model, &data.train)?;
    let eval_enc = batch::encode(model, &data.eval)?;
    let tun = prepare(model, s.scheme, s.seed, &train_enc)?;
    let model: &Llama = model;
    let mut tr = Trainer::new(model, tun, train_enc, s.clone())?;
    let mut progress = Progress::default();
    let resumed_from = match loaded {
        Some((ps, opt, pr)) => {
            tr.load_state(&ps, opt, &pr)?;
            progress = pr;
            Some(progress.step)
        }
        None => None,
    };
    std::fs::create_dir_all(&cfg.out).map_err(|e| tessera_core::Error::io(&cfg.out, e))?;
    tessera_core::fsx::write_json_atomic(cfg.out.join("settings.json"), &s)?;
    let eval = |tr: &Trainer<'_>| batch::accuracy(model, tr.tunable(), &eval_enc, s.batch);
    if resumed_from.is_none() {
        let a = eval(&tr)?;
        progress.evals.push(EvalPoint {
            step: 0,
            accuracy: a,
        });
        if !quiet() {
            eprintln!("zo: zero-shot accuracy {:.2}%", 100.0 * a);
        }
    }
    let before = progress.evals.first().map_or(0.0, |e| e.accuracy);
    // One inference loss on the first batch: warms up and gives the forward-pass time the step is compared to.
    let mut fwd = Vec::new();
    for _ in 0..2 {
        let b0 = tr.batch_at(0);
        let t0 = Instant::now();
        tr.loss_of(&b0)?;
        fwd.push(t0.elapsed().as_secs_f64());
    }
    let perturbed_share = if s.optimizer.is_zo() || s.optimizer == Optimizer::ForwardGrad {
        Some(tr.perturbed_share()?)
    } else {
        None
    };
    let (mut times, mut peak) = (Vec::new(), 0usize);
    let save = |tr: &Trainer<'_>, progress: &mut Progress| -> Result<()> {
        let (a, f) = tr.counts();
        progress.zo_adam_t = a;
        progress.fo_steps = f;
        let (ps, opt) = tr.state_tensors()?;
        ckpt::save(&cfg.out, &ps, &opt, progress)?;
        Ok(())
    };
    let t_run = Instant::now();
    for step in progress.step..cfg.steps {
        let scope = HeapScope::start();
        let t0 = Instant::now();
        let out = tr.step(step)?;
        times.push(t0.elapsed().as_secs_f64());
        peak = peak.max(scope.reading().peak);
        progress.step = step + 1;
        progress.step_seeds.push(tr.step_seed(step));
        progress.loss_curve.push(out.loss);
        if let Some(c) = out.choice {
            progress.cons_choices[c as usize] += 1;
        }
        let done = step + 1;
        if !quiet() && (done % 10 == 0 || done == cfg.steps) {
            eprintln!(
                "zo: step {done}/{} loss {:.4} ({:.2} s/step, {:.0} s)",
                cfg.steps,
                out.loss,
                median(&mut times.clone()),
                t_run.elapsed().as_secs_f64()
            );
        }
        if cfg.eval_every > 0 && done % cfg.eval_every == 0 && done < cfg.steps {
            let a = eval(&tr)?;
            progress.evals.push(EvalPoint {
                step: done,
                accuracy: a,
            });
            if !quiet() {
                eprintln!("zo: step {done} accuracy {:.2}%", 100.0 * a);
            }
        }
        if cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0 && done < cfg.steps {
            save(&tr, &mut progress)?;
        }
    }
    let after = match progress.evals.last() {
        Some(e) if e.step == progress.step => e.accuracy,
        _ => {
            let a = eval(&tr)?;
            progress.evals.push(EvalPoint {
                step: progress.step,
                accuracy: a,
            });
            a
        }
    };
    save(&tr, &mut progress)?;
    let step_seconds = median(&mut times);
    let forward_seconds = median(&mut fwd);
    let res = ZoResult {
        trainable_params: tr.params().iter().map(|p| p.var.elem_count()).sum(),
        settings: s.clone(),
        steps: cfg.steps,
        steps_done: progress.step,
        resumed_from,
        zero_shot_accuracy: before,
        accuracy_before: before,
        accuracy_after: after,
        gain_points: 100.0 * (after - before),
        loss_curve: progress.loss_curve.clone(),
        evals: progress.evals.clone(),
        step_seconds,
        forward_seconds,
        step_vs_forward: if forward_seconds > 0.0 {
            step_seconds / forward_seconds
        } else {
            0.0
        },
        peak_heap_bytes: peak,
        heap_counted: tessera_core::alloc::installed(),
        peak_rss_mb: tessera_core::mem::peak_rss_bytes().map(|b| b as f64 / 1048576.0),
        perturbed_share,
        cons_choices: (s.optimizer == Optimizer::ZoSgdCons).then_some(progress.cons_choices),
        train_examples: data.train.len(),
        train_pool: data.train_pool,
        eval_examples: data.eval.len(),
        skipped_lines: data.skipped,
        out: cfg.out.clone(),
    };
    tessera_core::fsx::write_json_atomic(cfg.out.join("result.json"), &res)?;
    Ok(res)
}

impl std::fmt::Display for ZoResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} on {}: accuracy {:.2}% → {:.2}% ({:+.2} points) after {} steps; {:.2} s/step ({:.2}× a \
             forward), peak heap {:.0} MiB; results in {}",
            self.settings.optimizer,
            self.settings.scheme,
            self.settings.task,
            100.0 * self.accuracy_before,
            100.0 * self.accuracy_after,
            self.gain_points,
            self.steps_done,
            self.step_seconds,
            self.step_vs_forward,
            self.peak_heap_bytes as f64 / 1048576.0,
            self.out.display()
        )
    }
}
