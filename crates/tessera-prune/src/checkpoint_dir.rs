//! The pruned checkpoint directory: an HF directory (`model.safetensors` with exact zeros, `config.json`,
//! tokenizer files) plus `masks.safetensors` (U8 0/1 tensors named by the HF weight name) and a JSON record of
//! how it was made (`prune.json`, `sparselora.json`). Every command that takes a model loads it.
use crate::error::{PruneError, Result};
use crate::pattern::Mask;
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tessera_lm::Llama;

/// The masks file of a pruned checkpoint.
pub const MASKS_FILE: &str = "masks.safetensors";

/// Every mask of `model` as U8 tensors named by HF weight name.
pub fn model_masks(model: &Llama) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (i, b) in model.blocks.iter().enumerate() {
        for (n, l) in b.linears() {
            if let Some(m) = l.mask() {
                out.insert(
                    format!("model.layers.{i}.{n}.weight"),
                    m.to_dtype(DType::U8)?.to_device(&Device::Cpu)?,
                );
            }
        }
    }
    Ok(out)
}

/// Refuses to replace `dir` unless it is absent, an empty directory, or a previous pruned checkpoint (has a
/// masks file or a `prune.json` / `sparselora.json` record), so that a typo in `--out` never deletes unrelated
/// files.
pub fn check_replaceable(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(PruneError::Invalid(format!(
            "{}: --out exists and is not a directory",
            dir.display()
        )));
    }
    let empty = std::fs::read_dir(dir)
        .map_err(|e| tessera_core::Error::io(dir, e))?
        .next()
        .is_none();
    let ours = ["prune.json", "sparselora.json", MASKS_FILE]
        .iter()
        .any(|f| dir.join(f).is_file());
    if empty || ours {
        Ok(())
    } else {
        Err(PruneError::Invalid(format!(
            "{}: --out is a non-empty directory that is not a pruned checkpoint; refusing to replace it",
            dir.display()
        )))
    }
}

/// Writes `model` as a pruned checkpoint directory at `dir` (atomically) with `record` as `record_name`.
pub fn write(
    model: &Llama,
    dir: &Path,
    record_name: &str,
    record: &serde_json::Value,
) -> Result<()> {
    let masks = model_masks(model)?;
    tessera_lm::export::write_dir_atomic(dir, |d| {
        let inner = d.join(".export");
        tessera_lm::export::export_hf_dir(model, &inner)?;
        for e in std::fs::read_dir(&inner).map_err(|e| tessera_core::Error::io(&inner, e))? {
            let p = e.map_err(|e| tessera_core::Error::io(&inner, e))?.path();
            if let Some(name) = p.file_name() {
                std::fs::rename(&p, d.join(name)).map_err(|e| tessera_core::Error::io(&p, e))?;
            }
        }
        std::fs::remove_dir_all(&inner).map_err(|e| tessera_core::Error::io(&inner, e))?;
        // `export_hf_dir` writes the masks itself once the runtime knows about them; write them otherwise.
        let mp = d.join(MASKS_FILE);
        if !mp.exists() && !masks.is_empty() {
            candle_core::safetensors::save(&masks, &mp)?;
        }
        tessera_core::fsx::write_json_atomic(d.join(record_name), record)?;
        Ok(())
    })?;
    Ok(())
}

/// Reads the masks of a pruned checkpoint directory ([`PruneError::NoMasks`] when it has none).
pub fn read_masks(dir: &Path) -> Result<BTreeMap<String, Mask>> {
    let p = dir.join(MASKS_FILE);
    if !p.is_file() {
        return Err(PruneError::NoMasks { dir: dir.into() });
    }
    let t = candle_core::safetensors::load(&p, &Device::Cpu).map_err(|e| {
        tessera_core::Error::format(&p, format!("not a valid safetensors file: {e}"))
    })?;
    if t.is_empty() {
        return Err(PruneError::NoMasks { dir: dir.into() });
    }
    t.iter()
        .map(|(n, t)| Ok((n.clone(), Mask::from_tensor(n, t)?)))
        .collect()
}
