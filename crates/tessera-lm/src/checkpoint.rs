//! Crash-safe training checkpoints.
//!
//! A checkpoint root holds numbered directories `step-00000042/` and a `LATEST` file naming the newest one. A
//! save writes every file into a temporary directory beside them, fsyncs the files and the directory, renames
//! it to its final name (a new name, never an existing one), then replaces `LATEST` atomically and prunes older
//! checkpoints. A kill at any moment therefore leaves `LATEST` pointing at a complete checkpoint: the old one
//! or the new one.
//!
//! One checkpoint directory:
//! - `model.safetensors`: every base weight ([`Llama::named_vars`] names), masks (`<linear>.mask`) and LoRA
//!   adapters (`<linear>.lora_a` / `.lora_b`);
//! - `optimizer.safetensors`: the optimizer's moments ([`Optimizer::state_tensors`]);
//! - `settings.json`: the run's settings (any JSON) and the model fingerprint;
//! - `state.json` (written last): step, RNG position, data cursor, optimizer config and step count, LoRA
//!   scales, and the size and sha256 of every other file, so a truncated or damaged file is a typed error.
//!
//! [`model_state`] / [`restore_model_state`] are the single place that gathers and restores a model's trainable
//! state (weights, masks, adapters).
use crate::error::LmError;
use crate::linear::Linear;
use crate::linear::LoraForm;
use crate::model::Llama;
use crate::optim::{Optimizer, OptimizerConfig};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Why a checkpoint could not be written, read or resumed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint was written by a run with different settings.
    #[error("{dir}: checkpoint was written with different settings ({diff}); use a fresh checkpoint directory or the original settings")]
    SettingsMismatch {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The first difference, `key: saved → requested`.
        diff: String,
    },
    /// The checkpoint belongs to a different model (architecture or parameter shapes).
    #[error("{dir}: checkpoint is for a different model ({msg})")]
    ModelMismatch {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What differs.
        msg: String,
    },
    /// A file of the checkpoint is missing, truncated or damaged.
    #[error("{path}: checkpoint is truncated or damaged ({msg})")]
    Damaged {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Runtime error (tensor ops, invalid state).
    #[error(transparent)]
    Lm(#[from] LmError),
    /// I/O or JSON error.
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

impl From<candle_core::Error> for CheckpointError {
    fn from(e: candle_core::Error) -> Self {
        CheckpointError::Lm(LmError::Candle(e))
    }
}

/// Result alias for checkpoints.
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// A model's trainable state: named tensors (weights, masks, adapters) and the LoRA scales.
#[derive(Debug, Clone, Default)]
pub struct ModelState {
    /// Weights by [`Llama::named_vars`] name, masks as `<linear>.mask`, adapters as `<linear>.lora_a` / `.lora_b`.
    pub tensors: HashMap<String, Tensor>,
    /// LoRA scale `alpha / r` per linear that has an adapter.
    pub lora_scales: BTreeMap<String, f64>,
    /// How each adapter composes with its layer's mask (plain LoRA or SparseLoRA).
    pub lora_forms: BTreeMap<String, LoraForm>,
}

/// Every linear layer of the model with its HF prefix (`model.layers.3.mlp.up_proj`, `lm_head`).
fn linears(model: &Llama) -> Vec<(String, &Linear)> {
    let mut out = Vec::new();
    for (i, b) in model.blocks.iter().enumerate() {
        for (n, l) in b.linears() {
            out.push((format!("model.layers.{i}.{n}"), l));
        }
    }
    out.push(("lm_head".into(), &model.lm_head));
    out
}

fn linears_mut(model: &mut Llama) -> Vec<(String, &mut Linear)> {
    let mut out = Vec::new();
    for (i, b) in model.blocks.iter_mut().enumerate() {
        for (n, l) in b.linears_mut() {
            out.push((format!("model.layers.{i}.{n}"), l));
        }
    }
    out.push(("lm_head".into(), &mut model.lm_head));
    out
}

/// Gathers the model's weights, masks and LoRA adapters (copies, detached from autograd).
pub fn model_state(model: &Llama) -> Result<ModelState> {
    let mut s = ModelState::default();
    for (n, v) in model.named_vars() {
        s.tensors.insert(n, v.as_tensor().detach().copy()?);
    }
    for (n, l) in linears(model) {
        if let Some(m) = l.mask() {
            s.tensors.insert(format!("{n}.mask"), m.detach().copy()?);
        }
        if let Some(r) = l.dense_rest() {
            s.tensors
                .insert(format!("{n}.dense_rest"), r.detach().copy()?);
        }
        if let Some(lo) = l.lora() {
            s.tensors
                .insert(format!("{n}.lora_a"), lo.a.as_tensor().detach().copy()?);
            s.tensors
                .insert(format!("{n}.lora_b"), lo.b.as_tensor().detach().copy()?);
            s.lora_scales.insert(n.clone(), lo.scale);
            s.lora_forms.insert(n, lo.form);
        }
    }
    Ok(s)
}

/// Restores a state gathered by [`model_state`] in place (the model's `Var`s keep their identity, so an
/// optimizer built on them stays valid). Masks and adapters absent from the state are removed. The model must
/// have the same parameter names and shapes.
pub fn restore_model_state(model: &mut Llama, state: &ModelState) -> Result<()> {
    let dir = PathBuf::from("<state>");
    for (n, v) in model.named_vars() {
        let t = state
            .tensors
            .get(&n)
            .ok_or_else(|| CheckpointError::ModelMismatch {
                dir: dir.clone(),
                msg: format!("no tensor `{n}`"),
            })?;
        if t.dims() != v.dims() {
            return Err(CheckpointError::ModelMismatch {
                dir,
                msg: format!("`{n}` has shape {:?}, the model {:?}", t.dims(), v.dims()),
            });
        }
        v.set(t)?;
    }
    for (n, l) in linears_mut(model) {
        // The weight now holds the saved `W ⊙ M`; drop any mask and dense copy the model still had, so the
        // split below starts from the saved values only (a kept copy would otherwise be added in twice).
        l.clear_mask();
        match (
            state.tensors.get(&format!("{n}.mask")),
            state.tensors.get(&format!("{n}.dense_rest")),
        ) {
            // A kept dense copy: rebuild the full weight, then split it again by the mask.
            (Some(m), Some(rest)) => {
                let full = (l.weight().as_tensor().detach() + rest)?;
                l.weight().set(&full)?;
                l.set_mask_keep_dense(m.clone())?
            }
            (Some(m), None) => l.set_mask(m.clone())?,
            (None, _) => l.clear_mask(),
        }
        let a = state.tensors.get(&format!("{n}.lora_a"));
        let b = state.tensors.get(&format!("{n}.lora_b"));
        match (a, b, state.lora_scales.get(&n)) {
            (Some(a), Some(b), Some(&scale)) => {
                let r = a.dim(0)?;
                // Keep an existing adapter's `Var`s (an optimizer may hold them); attach a new one otherwise.
                let form = state.lora_forms.get(&n).copied().unwrap_or_default();
                let fits = l.lora().is_some_and(|lo| {
                    lo.a.dims() == a.dims()
                        && lo.b.dims() == b.dims()
                        && lo.scale == scale
                        && lo.form == form
                });
                if !fits {
                    l.add_lora_form(r, scale * r as f64, 0, form)?;
                }
                let lo = l.lora().expect("attached above");
                if lo.a.dims() != a.dims() || lo.b.dims() != b.dims() {
                    return Err(CheckpointError::ModelMismatch {
                        dir,
                        msg: format!("adapter of `{n}` does not fit the layer"),
                    });
                }
                lo.a.set(a)?;
                lo.b.set(b)?;
            }
            (None, None, None) => {
                l.remove_lora();
            }
            _ => {
                return Err(CheckpointError::ModelMismatch {
                    dir,
                    msg: format!("incomplete adapter for `{n}`"),
                })
            }
        }
    }
    Ok(())
}

/// A fingerprint of the model's architecture: sha256 of its config and every parameter's name and shape (not
/// the values).
pub fn model_fingerprint(model: &Llama) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(serde_json::to_string(&model.config).unwrap_or_default());
    h.update(format!("|tied={}", model.is_tied()));
    for (n, v) in model.named_vars() {
        h.update(format!("|{n}:{:?}", v.dims()));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The position of a ChaCha8 stream (seed, stream, word position): restoring it continues the exact sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed, hex.
    pub seed: String,
    /// Stream id.
    pub stream: u64,
    /// Word position, decimal (a u128).
    pub word_pos: String,
}

impl RngState {
    /// Captures `rng`'s position.
    pub fn capture(rng: &tessera_core::rng::Rng) -> Self {
        RngState {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }
    /// A generator at the captured position.
    pub fn restore(&self) -> std::result::Result<tessera_core::rng::Rng, LmError> {
        use rand::SeedableRng as _;
        let bad = || LmError::Invalid(format!("malformed RNG state {self:?}"));
        if self.seed.len() != 64 {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, s) in seed.iter_mut().enumerate() {
            *s = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let mut r = tessera_core::rng::Rng::from_seed(seed);
        r.set_stream(self.stream);
        r.set_word_pos(self.word_pos.parse::<u128>().map_err(|_| bad())?);
        Ok(r)
    }
}

/// Progress of a run besides tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Optimizer steps completed.
    pub step: u64,
    /// The run's random stream, if it has one.
    pub rng: Option<RngState>,
    /// Where the data loader is (any JSON: epoch, index, shuffled order...).
    pub cursor: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileInfo {
    bytes: u64,
    sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    train: TrainState,
    optimizer: Option<OptimizerMeta>,
    lora_scales: BTreeMap<String, f64>,
    #[serde(default)]
    lora_forms: BTreeMap<String, LoraForm>,
    files: BTreeMap<String, FileInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OptimizerMeta {
    config: OptimizerConfig,
    steps: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SettingsFile {
    settings: serde_json::Value,
    model_fingerprint: String,
}

const LATEST: &str = "LATEST";

fn io(path: &Path, e: std::io::Error) -> CheckpointError {
    CheckpointError::Core(tessera_core::Error::io(path, e))
}

fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(path, e))
}

fn sync_dir(path: &Path) -> Result<()> {
    // Directory fsync makes renames durable; not every platform allows opening a directory, so ignore that.
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.sync_all();
    }
    Ok(())
}

fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    candle_core::safetensors::save(tensors, path)?;
    sync_file(path)
}

/// Writes a checkpoint of `model`, `optimizer` and `train` under `root` (created if needed) and makes it the
/// latest; older checkpoints beyond `keep` (≥ 1) are removed. Returns the new checkpoint's directory.
pub fn save(
    root: &Path,
    settings: &impl Serialize,
    model: &Llama,
    optimizer: Option<&Optimizer>,
    train: &TrainState,
    keep: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
    let settings = serde_json::to_value(settings).map_err(tessera_core::Error::from)?;
    // Refuse to mix runs in one root.
    if let Some(prev) = latest_dir(root)? {
        check_settings(&prev, &settings, &model_fingerprint(model))?;
    }
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-step-")
        .tempdir_in(root)
        .map_err(|e| io(root, e))?;
    let d = tmp.path();
    let ms = model_state(model)?;
    save_tensors(&d.join("model.safetensors"), &ms.tensors)?;
    let opt_meta = match optimizer {
        Some(o) => {
            let st: HashMap<String, Tensor> = o.state_tensors().into_iter().collect();
            save_tensors(&d.join("optimizer.safetensors"), &st)?;
            Some(OptimizerMeta {
                config: *o.config(),
                steps: o.steps(),
            })
        }
        None => None,
    };
    tessera_core::fsx::write_json_atomic(
        d.join("settings.json"),
        &SettingsFile {
            settings,
            model_fingerprint: model_fingerprint(model),
        },
    )?;
    let mut files = BTreeMap::new();
    for name in [
        "model.safetensors",
        "optimizer.safetensors",
        "settings.json",
    ] {
        let p = d.join(name);
        if p.is_file() {
            let bytes = std::fs::metadata(&p).map_err(|e| io(&p, e))?.len();
            files.insert(
                name.to_string(),
                FileInfo {
                    bytes,
                    sha256: tessera_core::assets::sha256_file(&p)?,
                },
            );
        }
    }
    tessera_core::fsx::write_json_atomic(
        d.join("state.json"),
        &StateFile {
            train: train.clone(),
            optimizer: opt_meta,
            lora_scales: ms.lora_scales,
            lora_forms: ms.lora_forms,
            files,
        },
    )?;
    sync_dir(d)?;
    let name = format!("step-{:08}", train.step);
    let fin = root.join(&name);
    if fin.exists() {
        // Same step saved again (e.g. a rerun after a crash between rename and LATEST): replace the stale copy,
        // which LATEST does not point at (it is checked below) or is identical by construction.
        if read_latest_name(root)?.as_deref() == Some(name.as_str()) {
            return Err(CheckpointError::Lm(LmError::Invalid(format!(
                "{}: a checkpoint for step {} already exists and is the latest",
                fin.display(),
                train.step
            ))));
        }
        std::fs::remove_dir_all(&fin).map_err(|e| io(&fin, e))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &fin).map_err(|e| io(&fin, e))?;
    sync_dir(root)?;
    tessera_core::fsx::write_atomic(root.join(LATEST), format!("{name}\n").as_bytes())?;
    sync_dir(root)?;
    prune(root, &name, keep.max(1))?;
    Ok(fin)
}

fn read_latest_name(root: &Path) -> Result<Option<String>> {
    let p = root.join(LATEST);
    if !p.is_file() {
        return Ok(None);
    }
    let s = tessera_core::fsx::read_to_string(&p)?;
    let s = s.trim();
    if s.is_empty() || s.contains('/') || s.contains("..") {
        return Err(CheckpointError::Damaged {
            path: p,
            msg: "LATEST does not name a checkpoint".into(),
        });
    }
    Ok(Some(s.to_string()))
}

/// The directory of the latest checkpoint under `root`, or `None` when there is none.
pub fn latest_dir(root: &Path) -> Result<Option<PathBuf>> {
    Ok(read_latest_name(root)?.map(|n| root.join(n)))
}

fn prune(root: &Path, latest: &str, keep: usize) -> Result<()> {
    let mut steps: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| io(root, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("step-") || n.starts_with(".tmp-step-"))
        .collect();
    steps.sort();
    let finals: Vec<&String> = steps.iter().filter(|n| n.starts_with("step-")).collect();
    let cut = finals.len().saturating_sub(keep);
    for n in &steps {
        let old_final =
            n.starts_with("step-") && finals[..cut].contains(&n) && n.as_str() != latest;
        let stale_tmp = n.starts_with(".tmp-step-");
        if old_final || stale_tmp {
            let _ = std::fs::remove_dir_all(root.join(n));
        }
    }
    Ok(())
}

fn first_diff(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value as V;
    match (a, b) {
        (V::Object(x), V::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_diff(u, v, &p) {
                            return Some(d);
                        }
                    }
                    (u, v) => {
                        let show =
                            |o: Option<&V>| o.map(|x| x.to_string()).unwrap_or("(absent)".into());
                        return Some(format!("{p}: {} → {}", show(u), show(v)));
                    }
                }
            }
            None
        }
        _ if a == b => None,
        _ => Some(format!(
            "{}: {a} → {b}",
            if path.is_empty() { "settings" } else { path }
        )),
    }
}

fn check_settings(dir: &Path, settings: &serde_json::Value, fingerprint: &str) -> Result<()> {
    let p = dir.join("settings.json");
    let s: SettingsFile = read_json(&p)?;
    if s.model_fingerprint != fingerprint {
        return Err(CheckpointError::ModelMismatch {
            dir: dir.into(),
            msg: format!(
                "fingerprint {} (saved) vs {fingerprint} (this model)",
                s.model_fingerprint
            ),
        });
    }
    if let Some(diff) = first_diff(&s.settings, settings, "") {
        return Err(CheckpointError::SettingsMismatch {
            dir: dir.into(),
            diff,
        });
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let bytes = std::fs::read(p).map_err(|e| CheckpointError::Damaged {
        path: p.into(),
        msg: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Damaged {
        path: p.into(),
        msg: format!("not valid JSON: {e}"),
    })
}

fn load_tensors(p: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(p, &Device::Cpu).map_err(|e| CheckpointError::Damaged {
        path: p.into(),
        msg: e.to_string(),
    })
}

/// Resumes from the latest checkpoint under `root`, if any: checks that it was written with the same
/// `settings` and for the same model architecture (else [`CheckpointError::SettingsMismatch`] /
/// [`CheckpointError::ModelMismatch`]), verifies every file (else [`CheckpointError::Damaged`]), then restores
/// the model (weights, masks, adapters) and the optimizer in place and returns the saved [`TrainState`].
/// `Ok(None)` when `root` holds no checkpoint (a fresh run). Nothing is modified when an error is returned.
pub fn resume(
    root: &Path,
    settings: &impl Serialize,
    model: &mut Llama,
    optimizer: Option<&mut Optimizer>,
) -> Result<Option<TrainState>> {
    let Some(dir) = latest_dir(root)? else {
        return Ok(None);
    };
    if !dir.is_dir() {
        return Err(CheckpointError::Damaged {
            path: dir,
            msg: "LATEST names a missing directory".into(),
        });
    }
    let settings = serde_json::to_value(settings).map_err(tessera_core::Error::from)?;
    check_settings(&dir, &settings, &model_fingerprint(model))?;
    let st: StateFile = read_json(&dir.join("state.json"))?;
    for (name, info) in &st.files {
        let p = dir.join(name);
        let len = std::fs::metadata(&p)
            .map_err(|e| CheckpointError::Damaged {
                path: p.clone(),
                msg: e.to_string(),
            })?
            .len();
        if len != info.bytes {
            return Err(CheckpointError::Damaged {
                path: p,
                msg: format!("{len} bytes, expected {}", info.bytes),
            });
        }
        if tessera_core::assets::sha256_file(&p)? != info.sha256 {
            return Err(CheckpointError::Damaged {
                path: p,
                msg: "sha256 differs from the one recorded at save time".into(),
            });
        }
    }
    if !st.files.contains_key("model.safetensors") {
        return Err(CheckpointError::Damaged {
            path: dir.join("model.safetensors"),
            msg: "not recorded in state.json".into(),
        });
    }
    let tensors = load_tensors(&dir.join("model.safetensors"))?;
    let ms = ModelState {
        tensors,
        lora_scales: st.lora_scales.clone(),
        lora_forms: st.lora_forms.clone(),
    };
    // Validate the optimizer state before touching the model, so that an error leaves both as they were.
    let opt_state = match (&optimizer, &st.optimizer) {
        (Some(o), Some(meta)) => {
            if o.config() != &meta.config {
                return Err(CheckpointError::SettingsMismatch {
                    dir: dir.clone(),
                    diff: format!("optimizer: {:?} → {:?}", meta.config, o.config()),
                });
            }
            Some((
                load_tensors(&dir.join("optimizer.safetensors"))?,
                meta.steps,
            ))
        }
        (Some(_), None) => {
            return Err(CheckpointError::SettingsMismatch {
                dir: dir.clone(),
                diff: "optimizer: (none saved) → requested".into(),
            })
        }
        _ => None,
    };
    for (n, v) in model.named_vars() {
        match ms.tensors.get(&n) {
            Some(t) if t.dims() == v.dims() => {}
            _ => {
                return Err(CheckpointError::ModelMismatch {
                    dir: dir.clone(),
                    msg: format!("tensor `{n}` missing or of another shape"),
                })
            }
        }
    }
    let backup = model_state(model)?;
    if let Err(e) = restore_model_state(model, &ms) {
        let _ = restore_model_state(model, &backup);
        return Err(e);
    }
    if let (Some(o), Some((state, steps))) = (optimizer, opt_state) {
        if let Err(e) = o.load_state(state, steps) {
            let _ = restore_model_state(model, &backup);
            return Err(e.into());
        }
    }
    Ok(Some(st.train))
}
