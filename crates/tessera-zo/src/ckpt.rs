//! Crash-safe checkpoints of a run: `<out>/ckpt-<step>/` holds `params.safetensors` (the trainable tensors),
//! `optimizer.safetensors` (ZO momentum / Adam moments, first-order optimizer state) and `state.json` (step, the
//! step seeds used, the loss curve, evaluations, optimizer step counts). A checkpoint is written into a temporary
//! directory, fsynced, renamed to its final name, and only then named in `<out>/LATEST` (atomic replace), after
//! which older checkpoints are removed: a kill at any moment leaves `LATEST` naming a complete checkpoint.
//! `<out>/settings.json` is the run's identity: a rerun with other settings into the same directory is refused.
use crate::error::{Result, ZoError};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One accuracy measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// Steps done when it was measured.
    pub step: u64,
    /// Accuracy on the evaluation set.
    pub accuracy: f64,
}

/// Progress saved beside the tensors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Steps completed.
    pub step: u64,
    /// The seed of every completed step (`z` of query `i` is derived from it).
    pub step_seeds: Vec<u64>,
    /// Training loss of every completed step.
    pub loss_curve: Vec<f64>,
    /// Accuracy measurements so far (step 0 is zero-shot).
    pub evals: Vec<EvalPoint>,
    /// ZO-Adam's bias-correction count.
    pub zo_adam_t: u64,
    /// Steps of the first-order optimizer (FO-Adam's count).
    pub fo_steps: u64,
    /// ZO-SGD-Cons: how often it kept θ, θ − ηgz, θ + ηgz.
    pub cons_choices: [u64; 3],
}

fn io(p: &Path, e: std::io::Error) -> ZoError {
    ZoError::Core(tessera_core::Error::io(p, e))
}

fn damaged(dir: &Path, msg: impl Into<String>) -> ZoError {
    ZoError::Checkpoint {
        dir: dir.to_path_buf(),
        msg: msg.into(),
    }
}

/// Writes a checkpoint of `params` (name → tensor), `opt` and `progress` under `out` and makes it the latest.
pub fn save(
    out: &Path,
    params: &HashMap<String, Tensor>,
    opt: &HashMap<String, Tensor>,
    progress: &Progress,
) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-ckpt-")
        .tempdir_in(out)
        .map_err(|e| io(out, e))?;
    let d = tmp.path();
    let sync = |p: &Path| {
        std::fs::File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(p, e))
    };
    for (name, t) in [
        ("params.safetensors", params),
        ("optimizer.safetensors", opt),
    ] {
        let p = d.join(name);
        candle_core::safetensors::save(t, &p)?;
        sync(&p)?;
    }
    tessera_core::fsx::write_json_atomic(d.join("state.json"), progress)?;
    let name = format!("ckpt-{:08}", progress.step);
    let fin = out.join(&name);
    if fin.exists() {
        std::fs::remove_dir_all(&fin).map_err(|e| io(&fin, e))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &fin).map_err(|e| io(&fin, e))?;
    tessera_core::fsx::sync_dir(out)?;
    tessera_core::fsx::write_atomic(out.join("LATEST"), name.as_bytes())?;
    for e in std::fs::read_dir(out).map_err(|e| io(out, e))?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with("ckpt-") && n != name {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(fin)
}

/// What [`load`] returns: trainable tensors, optimizer tensors, progress.
pub type Loaded = (HashMap<String, Tensor>, HashMap<String, Tensor>, Progress);

/// Reads the latest checkpoint under `out` (`None` when there is none).
pub fn load(out: &Path) -> Result<Option<Loaded>> {
    let latest = out.join("LATEST");
    if !latest.is_file() {
        return Ok(None);
    }
    let name = tessera_core::fsx::read_to_string(&latest)?
        .trim()
        .to_string();
    if !name.starts_with("ckpt-") || name.contains('/') {
        return Err(damaged(
            out,
            format!("LATEST names `{name}`, not a checkpoint"),
        ));
    }
    let d = out.join(&name);
    let read = |f: &str| -> Result<HashMap<String, Tensor>> {
        let p = d.join(f);
        candle_core::safetensors::load(&p, &Device::Cpu)
            .map_err(|e| damaged(&d, format!("{f}: {e}")))
    };
    let params = read("params.safetensors")?;
    let opt = read("optimizer.safetensors")?;
    let text = tessera_core::fsx::read_to_string(d.join("state.json"))?;
    let progress: Progress =
        serde_json::from_str(&text).map_err(|e| damaged(&d, format!("state.json: {e}")))?;
    if progress.loss_curve.len() as u64 != progress.step {
        return Err(damaged(&d, "state.json: loss curve and step disagree"));
    }
    Ok(Some((params, opt, progress)))
}

/// Checks `out/settings.json` against `settings`: `Ok(true)` when it matches, `Ok(false)` when there is none.
pub fn check_settings(out: &Path, settings: &serde_json::Value) -> Result<bool> {
    let p = out.join("settings.json");
    if !p.is_file() {
        return Ok(false);
    }
    let saved: serde_json::Value = serde_json::from_str(&tessera_core::fsx::read_to_string(&p)?)
        .map_err(|e| damaged(out, format!("settings.json: {e}")))?;
    // Settings written before a field existed take its default (e.g. `sparsity_mode`: random).
    let saved = match serde_json::from_value::<crate::run::Settings>(saved.clone()) {
        Ok(s) => serde_json::to_value(s).map_err(tessera_core::Error::from)?,
        Err(_) => saved,
    };
    if &saved == settings {
        return Ok(true);
    }
    let diff = match (saved.as_object(), settings.as_object()) {
        (Some(a), Some(b)) => a
            .iter()
            .find(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {v} → {}", b.get(k).cloned().unwrap_or_default()))
            .or_else(|| {
                b.keys()
                    .find(|k| !a.contains_key(*k))
                    .map(|k| format!("{k} added"))
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    Err(ZoError::Checkpoint {
        dir: out.to_path_buf(),
        msg: format!(
            "holds a run with other settings ({diff}); use a fresh --out directory or the original settings"
        ),
    })
}
