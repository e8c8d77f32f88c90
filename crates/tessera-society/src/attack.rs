//! `AttackConfig → attack → AttackResult`: the operative attack (the [`crate::wolf`] embedding chain or
//! the [`crate::gcg`] text variant) with evaluation, checkpoints and transfer to a chat backend.
//!
//! Checkpoints (`checkpoint.json` in [`AttackConfig::out`], written atomically every `checkpoint_every` steps)
//! hold the step, the injected values (or ids), the current reply slots, the loss curve and the evaluations. The
//! Gumbel noise of step `s` and GCG's candidate draw come from the stream `derived(seed, "gumbel/s")` /
//! `"gcg/s"`, so the RNG state at a step is a function of `(seed, step)`: a resumed run continues exactly. A
//! checkpoint written with other settings is refused.
//!
//! Learning rate: the reference defaults to `lr = 1e-4` with cosine annealing and its README shows that only
//! `1e-1` drives the loss to about 0 (1e-4 stays near 8); Tessera defaults to `1e-1`, constant, and makes the
//! schedule a flag. See the crate README for the measured curves on SmolLM2.
use crate::error::{invalid, Result, SocietyError};
use crate::gcg::{self, GcgOpts};
use crate::targets::{Matcher, DEFAULT_COSINE_THRESHOLD};
use crate::wolf::{self, Chain, EmbedBlock, GumbelOpts, OperativeInput};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use tessera_core::rng;
use tessera_embed::Embedder;
use tessera_llm::{ChatMessage, ChatModel, ChatParams, ChatRequest};
use tessera_lm::Llama;

/// Which attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Continuous injected embeddings through the wolf (the paper's method).
    Embed,
    /// Discrete token search on a plain-text message (transferable).
    Gcg,
}

impl FromStr for Variant {
    type Err = SocietyError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "embed" => Ok(Variant::Embed),
            "gcg" => Ok(Variant::Gcg),
            _ => invalid(format!("unknown variant `{s}` (known: embed, gcg)")),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::Embed => "embed",
            Variant::Gcg => "gcg",
        })
    }
}

/// Learning-rate schedule of the signed-gradient steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` at every step.
    Constant,
    /// Cosine annealing from `lr` to `eta_min` over the step budget (the reference's schedule).
    Cosine,
}

impl FromStr for LrSchedule {
    type Err = SocietyError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine),
            _ => invalid(format!("unknown schedule `{s}` (known: constant, cosine)")),
        }
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        })
    }
}

/// The algorithm's settings (what a checkpoint must agree with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackSettings {
    /// The text the sheep should emit.
    pub target: String,
    /// embed or gcg.
    pub variant: Variant,
    /// Optimisation steps.
    pub steps: usize,
    /// Learning rate of the signed steps (embed).
    pub lr: f64,
    /// Schedule of `lr`.
    pub schedule: LrSchedule,
    /// Floor of the cosine schedule.
    pub eta_min: f64,
    /// Injected embeddings `K` (embed) or injected tokens `L` (gcg).
    pub inject_len: usize,
    /// The wolf's reply slots `R` (embed).
    pub reply_len: usize,
    /// Re-decode the wolf's greedy reply every this many steps (embed).
    pub redecode_every: usize,
    /// Evaluate (greedy wolf reply, greedy sheep reply, success test) every this many steps.
    pub eval_every: usize,
    /// Gumbel-softmax temperature.
    pub tau: f64,
    /// Straight-through hard one-hot (the paper) or soft.
    pub hard: bool,
    /// GCG substitutions per position.
    pub top_k: usize,
    /// GCG candidates per step.
    pub candidates: usize,
    /// Run seed.
    pub seed: u64,
    /// MiniLM cosine threshold of the success test.
    pub cosine_threshold: f32,
    /// Stop at the first successful evaluation.
    pub stop_on_success: bool,
}

impl Default for AttackSettings {
    fn default() -> Self {
        AttackSettings {
            target: crate::targets::CANARIES[0].text.into(),
            variant: Variant::Embed,
            steps: 100,
            lr: 1e-1,
            schedule: LrSchedule::Constant,
            eta_min: 1e-4,
            inject_len: 8,
            reply_len: 12,
            redecode_every: 5,
            eval_every: 10,
            tau: 1.0,
            hard: true,
            top_k: 64,
            candidates: 16,
            seed: 0,
            cosine_threshold: DEFAULT_COSINE_THRESHOLD,
            stop_on_success: true,
        }
    }
}

/// One attack run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttackConfig {
    /// Algorithm settings.
    pub settings: AttackSettings,
    /// White-box wolf and sheep model (asset name or `.gguf` path; one copy serves both).
    pub model: String,
    /// Backend the final plain-text injection is sent to (transfer), a `tessera-llm` spec.
    pub backend: Option<String>,
    /// Checkpoint / output directory (none: no checkpoint).
    pub out: Option<PathBuf>,
    /// Use MiniLM for the semantic part of the success test.
    pub minilm: bool,
    /// Never download assets.
    pub offline: bool,
    /// Stop (checkpointed) after this many steps in this process, to be resumed later.
    pub pause_after: Option<usize>,
}

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig {
            settings: AttackSettings::default(),
            model: "smollm2-135m".into(),
            backend: None,
            out: None,
            minilm: true,
            offline: false,
            pause_after: None,
        }
    }
}

/// One evaluation point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// Steps done.
    pub step: usize,
    /// The sheep's target cross-entropy on the wolf's greedy (discrete) message.
    pub loss: f64,
    /// The operative's message (wolf's greedy reply, or the GCG text).
    pub message: String,
    /// The sheep's greedy reply.
    pub reply: String,
    /// Success test on the reply.
    pub hit: bool,
    /// MiniLM cosine of reply and target.
    pub cosine: Option<f32>,
}

/// The attack's output: the injection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    /// The operative's message as text (what the sheep reads).
    pub text: String,
    /// Its token ids.
    pub ids: Vec<u32>,
    /// The injected embeddings `[K, hidden]` flattened (embed variant; the operative's hidden input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings_file: Option<PathBuf>,
}

/// What [`attack`] returns (and `tessera society attack --json` prints).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttackResult {
    /// The target.
    pub target: String,
    /// embed or gcg.
    pub variant: Variant,
    /// The sheep (white-box model) emitted the target at some evaluation.
    pub success: bool,
    /// Steps done at the first successful evaluation.
    pub steps_to_success: Option<usize>,
    /// Steps done.
    pub steps_run: usize,
    /// Paused before the budget was spent (`pause_after`); rerun to resume.
    pub paused: bool,
    /// The step from which this process resumed (0: fresh).
    pub resumed_from: usize,
    /// Training loss per step (embed: the Gumbel-sampled chain loss; gcg: the current loss).
    pub loss: Vec<f64>,
    /// Evaluations.
    pub evals: Vec<EvalPoint>,
    /// The best injection (at success, else at the end).
    pub injection: Injection,
    /// The transfer backend's reply to the plain-text injection, and whether it carries the target.
    pub transfer: Option<TransferOutcome>,
    /// The learning rate and schedule.
    pub lr: f64,
    /// Schedule.
    pub schedule: LrSchedule,
    /// Wall-clock seconds of this process.
    pub seconds: f64,
}

/// The transfer test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferOutcome {
    /// The backend's name.
    pub backend: String,
    /// Its reply.
    pub reply: String,
    /// Whether it carries the target.
    pub hit: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    settings: AttackSettings,
    model: String,
    step: usize,
    #[serde(with = "bits32")]
    values: Vec<f32>,
    ids: Vec<u32>,
    #[serde(with = "bits64")]
    cur_loss: Vec<f64>,
    #[serde(with = "bits64")]
    loss: Vec<f64>,
    evals: Vec<EvalPoint>,
    #[serde(with = "bits64")]
    eval_loss: Vec<f64>,
    steps_to_success: Option<usize>,
    best_ids: Vec<u32>,
}

/// Floats in checkpoints are stored as their bit patterns: JSON decimal round trips are not guaranteed exact by
/// serde_json's default parser, and a resumed run must continue bit for bit.
mod bits32 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|x| x.to_bits())
            .collect::<Vec<u32>>()
            .serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        Ok(Vec::<u32>::deserialize(d)?
            .into_iter()
            .map(f32::from_bits)
            .collect())
    }
}

mod bits64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|x| x.to_bits())
            .collect::<Vec<u64>>()
            .serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<u64>::deserialize(d)?
            .into_iter()
            .map(f64::from_bits)
            .collect())
    }
}

impl AttackSettings {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if self.target.trim().is_empty() {
            return invalid("the target text is empty");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return invalid(format!("learning rate {} must be > 0", self.lr));
        }
        if self.inject_len == 0 || self.reply_len == 0 {
            return invalid("inject_len and reply_len must be > 0");
        }
        if self.eval_every == 0 || self.redecode_every == 0 {
            return invalid("eval_every and redecode_every must be > 0");
        }
        Ok(())
    }

    /// The learning rate at `step`.
    pub fn lr_at(&self, step: usize) -> f64 {
        match self.schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => {
                let t = step as f64 / self.steps.max(1) as f64;
                self.eta_min
                    + (self.lr - self.eta_min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// Loads the models and backends named in `cfg` and runs [`attack_with`].
pub fn attack(cfg: &AttackConfig) -> Result<AttackResult> {
    cfg.settings.validate()?;
    let path = tessera_core::assets::resolve_model(&cfg.model, cfg.offline)?;
    let model = tessera_lm::load(&path)?;
    let embedder = if cfg.minilm {
        Some(Arc::new(Embedder::from_asset(cfg.offline)?))
    } else {
        None
    };
    let backend = match &cfg.backend {
        Some(s) => Some(tessera_llm::spec::open(s, cfg.offline)?),
        None => None,
    };
    attack_with(cfg, &model, &model, embedder, backend.as_deref())
}

fn random_ids(chain: &Chain<'_>, n: usize, rng: &mut rng::Rng) -> Vec<u32> {
    let v = chain.wolf.config.vocab_size as u32;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let id = rng.gen_range(0..v);
        if !chain.is_special(id) {
            out.push(id);
        }
    }
    out
}

/// Runs the attack on loaded models (`wolf` and `sheep` may be the same model).
pub fn attack_with(
    cfg: &AttackConfig,
    wolf: &Llama,
    sheep: &Llama,
    embedder: Option<Arc<Embedder>>,
    backend: Option<&dyn ChatModel>,
) -> Result<AttackResult> {
    let s = &cfg.settings;
    s.validate()?;
    let t0 = Instant::now();
    let gumbel = GumbelOpts {
        tau: s.tau,
        hard: s.hard,
    };
    let chain = Chain::new(wolf, sheep, &s.target, s.reply_len, gumbel)?;
    let matcher = Matcher::new(&s.target, embedder, s.cosine_threshold)?;
    let tok = sheep.tokenizer()?;
    let max_reply = chain.target.len() + 8;
    let mut init_rng = rng::derived(s.seed, "init");
    let init = random_ids(&chain, s.inject_len, &mut init_rng);
    let block = EmbedBlock::from_ids(&wolf::embedding_matrix(wolf)?, &init)?;
    let mut ids = match s.variant {
        Variant::Embed => chain.wolf_reply(&block.embeds()?)?,
        Variant::Gcg => init.clone(),
    };
    let mut cur_loss = chain.sheep_losses(std::slice::from_ref(&ids))?[0];
    let mut st = Checkpoint {
        settings: s.clone(),
        model: cfg.model.clone(),
        step: 0,
        values: vec![],
        ids: ids.clone(),
        cur_loss: vec![cur_loss],
        loss: vec![],
        evals: vec![],
        eval_loss: vec![],
        steps_to_success: None,
        best_ids: ids.clone(),
    };
    let ckpt_path = cfg.out.as_ref().map(|d| d.join("checkpoint.json"));
    if let Some(p) = &ckpt_path {
        if p.exists() {
            let old: Checkpoint = serde_json::from_str(&tessera_core::fsx::read_to_string(p)?)
                .map_err(|e| tessera_core::Error::format(p, e.to_string()))?;
            if old.settings != st.settings || old.model != st.model {
                return invalid(format!(
                    "{} was written with other settings; use another --out or remove it",
                    p.display()
                ));
            }
            if s.variant == Variant::Embed {
                block.set_values(&old.values)?;
            }
            ids = old.ids.clone();
            cur_loss = old.cur_loss.first().copied().unwrap_or(cur_loss);
            st = old;
            for (e, &l) in st.evals.iter_mut().zip(&st.eval_loss) {
                e.loss = l;
            }
        }
    }
    let resumed_from = st.step;
    let mut done_here = 0usize;
    let mut paused = false;
    let save = |st: &Checkpoint| -> Result<()> {
        if let Some(p) = &ckpt_path {
            tessera_core::fsx::write_json_atomic(p, st)?;
        }
        Ok(())
    };
    let opts = GcgOpts {
        top_k: s.top_k,
        candidates: s.candidates,
    };
    loop {
        let step = st.step;
        let evaluated = st.evals.last().is_some_and(|e| e.step == step);
        if !evaluated && (step.is_multiple_of(s.eval_every) || step == s.steps) {
            if s.variant == Variant::Embed {
                ids = chain.wolf_reply(&block.embeds()?)?;
            }
            let loss = chain.sheep_losses(std::slice::from_ref(&ids))?[0];
            let reply = chain.sheep_reply(&ids, max_reply)?;
            let v = matcher.judge(&reply)?;
            st.eval_loss.push(loss);
            st.evals.push(EvalPoint {
                step,
                loss,
                message: tok.decode(&ids, false)?,
                reply,
                hit: v.hit,
                cosine: v.cosine,
            });
            if v.hit && st.steps_to_success.is_none() {
                st.steps_to_success = Some(step);
                st.best_ids = ids.clone();
            }
            if st.steps_to_success.is_none() {
                st.best_ids = ids.clone();
            }
        }
        if step >= s.steps || (s.stop_on_success && st.steps_to_success.is_some()) {
            break;
        }
        if cfg.pause_after.is_some_and(|n| done_here >= n) {
            paused = true;
            break;
        }
        match s.variant {
            Variant::Embed => {
                if step.is_multiple_of(s.redecode_every) && !step.is_multiple_of(s.eval_every) {
                    ids = chain.wolf_reply(&block.embeds()?)?;
                }
                let mut r = rng::derived(s.seed, &format!("gumbel/{step}"));
                let (loss, _) = chain.loss(&block.embeds()?, &ids, &mut r)?;
                let grads = loss.backward()?;
                let Some(g) = grads.get(block.var().as_tensor()) else {
                    return invalid("no gradient reached the injected embeddings");
                };
                block.signed_step(g, s.lr_at(step))?;
                st.loss.push(loss.to_scalar::<f32>()? as f64);
            }
            Variant::Gcg => {
                let mut r = rng::derived(s.seed, &format!("gcg/{step}"));
                let (n, l) = gcg::step(&chain, &ids, cur_loss, opts, &mut r)?;
                ids = n;
                cur_loss = l;
                st.loss.push(l);
            }
        }
        st.step += 1;
        done_here += 1;
        if s.variant == Variant::Embed {
            st.values = block.values()?;
        }
        st.ids = ids.clone();
        st.cur_loss = vec![cur_loss];
        if st.step.is_multiple_of(s.eval_every.min(10)) {
            save(&st)?;
        }
    }
    if s.variant == Variant::Embed {
        st.values = block.values()?;
    }
    save(&st)?;
    let text = tok.decode(&st.best_ids, false)?;
    let mut embeddings_file = None;
    if let (Some(dir), Variant::Embed) = (&cfg.out, s.variant) {
        let p = dir.join("injected_embeddings.json");
        tessera_core::fsx::write_json_atomic(&p, &st.values)?;
        embeddings_file = Some(p);
    }
    let transfer = match backend {
        Some(b) if !paused => Some(transfer_test(b, &text, &matcher, max_reply + 8)?),
        _ => None,
    };
    let res = AttackResult {
        target: s.target.clone(),
        variant: s.variant,
        success: st.steps_to_success.is_some(),
        steps_to_success: st.steps_to_success,
        steps_run: st.step,
        paused,
        resumed_from,
        loss: st.loss.clone(),
        evals: st.evals.clone(),
        injection: Injection {
            text,
            ids: st.best_ids.clone(),
            embeddings_file,
        },
        transfer,
        lr: s.lr,
        schedule: s.schedule,
        seconds: t0.elapsed().as_secs_f64(),
    };
    if let Some(dir) = &cfg.out {
        tessera_core::fsx::write_json_atomic(dir.join("attack.json"), &res)?;
    }
    Ok(res)
}

/// Sends the plain-text injection to `backend` in the sheep's layout and judges the reply.
pub fn transfer_test(
    backend: &dyn ChatModel,
    text: &str,
    matcher: &Matcher,
    max_tokens: usize,
) -> Result<TransferOutcome> {
    let user = wolf::SlotPrompt::user_text(&wolf::sheep_user(), text);
    let req = ChatRequest::new(vec![ChatMessage::new("user", user)]).with_params(ChatParams {
        max_tokens,
        seed: Some(0),
        ..Default::default()
    });
    let reply = tessera_llm::blocking::chat(backend, &req)?
        .text()
        .to_string();
    Ok(TransferOutcome {
        backend: backend.name(),
        hit: matcher.judge(&reply)?.hit,
        reply,
    })
}

/// Success over many targets: one [`attack`] per target, each in `out/<i>/`, results journaled in
/// `out/sweep.jsonl` so a rerun skips finished targets.
pub fn sweep(cfg: &AttackConfig, targets: &[String], out: &Path) -> Result<SweepResult> {
    if targets.is_empty() {
        return invalid("no targets to sweep");
    }
    std::fs::create_dir_all(out).map_err(|e| tessera_core::Error::io(out, e))?;
    let path = tessera_core::assets::resolve_model(&cfg.model, cfg.offline)?;
    let model = tessera_lm::load(&path)?;
    let embedder = if cfg.minilm {
        Some(Arc::new(Embedder::from_asset(cfg.offline)?))
    } else {
        None
    };
    let backend = match &cfg.backend {
        Some(s) => Some(tessera_llm::spec::open(s, cfg.offline)?),
        None => None,
    };
    let (journal, done): (_, Vec<AttackResult>) =
        tessera_core::journal::Journal::open(out.join("sweep.jsonl"))?;
    let mut results = done;
    for (i, t) in targets.iter().enumerate() {
        if results.iter().any(|r| &r.target == t) {
            continue;
        }
        let mut c = cfg.clone();
        c.settings.target = t.clone();
        c.out = Some(out.join(format!("{i:02}")));
        std::fs::create_dir_all(out.join(format!("{i:02}")))
            .map_err(|e| tessera_core::Error::io(out, e))?;
        let r = attack_with(&c, &model, &model, embedder.clone(), backend.as_deref())?;
        if r.paused {
            break;
        }
        journal.append(&r)?;
        results.push(r);
    }
    let n = results.len().max(1) as f64;
    let ok: Vec<usize> = results.iter().filter_map(|r| r.steps_to_success).collect();
    Ok(SweepResult {
        targets: results.len(),
        success_rate: ok.len() as f64 / n,
        mean_steps_to_success: if ok.is_empty() {
            None
        } else {
            Some(ok.iter().sum::<usize>() as f64 / ok.len() as f64)
        },
        transfer_rate: {
            let t: Vec<bool> = results
                .iter()
                .filter_map(|r| r.transfer.as_ref().map(|t| t.hit))
                .collect();
            (!t.is_empty()).then(|| t.iter().filter(|&&h| h).count() as f64 / t.len() as f64)
        },
        results,
    })
}

/// What [`sweep`] returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepResult {
    /// Targets attacked.
    pub targets: usize,
    /// Fraction with a successful evaluation.
    pub success_rate: f64,
    /// Mean steps to success over the successes.
    pub mean_steps_to_success: Option<f64>,
    /// Fraction whose plain-text injection also carried the target through the transfer backend.
    pub transfer_rate: Option<f64>,
    /// Per target.
    pub results: Vec<AttackResult>,
}

/// Reads an `attack.json` written by [`attack`] (e.g. to use its injection in a society run).
pub fn load_result(path: &Path) -> Result<AttackResult> {
    let text = tessera_core::fsx::read_to_string(path)?;
    Ok(
        serde_json::from_str(&text)
            .map_err(|e| tessera_core::Error::format(path, e.to_string()))?,
    )
}
