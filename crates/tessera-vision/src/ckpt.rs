//! The VLM checkpoint directory, loadable by path:
//!
//! | file | holds |
//! |---|---|
//! | `config.json` | [`VlmFile`]: vision, projector and language settings, named apart |
//! | `vision.safetensors` | encoder tensors `vision.*` (+ `vision_masks.safetensors` when pruned) |
//! | `projector.safetensors` | projector tensors `projector.*` |
//! | `language_lora.safetensors` | LoRA adapters of the language model, when it has any |
//! | `language/` | the language model as a pruned HF directory, only when its weights differ from the base |
//!
//! Without `language/` the language model is the base named in `config.json` (a cached asset or a path).
use crate::error::{io, Result, VisionError};
use crate::llava::Vlm;
use crate::projector::{Projector, ProjectorConfig};
use crate::vit::{load_vars, Vit, VitConfig};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tessera_lm::model::LoraSpec;

/// Format tag of `config.json`.
pub const FORMAT: &str = "tessera-vlm/1";

/// The language part of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageFile {
    /// The base model (asset name or path) when `language/` is absent.
    pub base: String,
    /// Whether `language/` holds modified (pruned / merged) weights.
    pub modified: bool,
    /// The LoRA adapters in `language_lora.safetensors`, if any.
    pub lora: Option<LoraSpec>,
}

/// `config.json` of a VLM checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VlmFile {
    /// [`FORMAT`].
    pub format: String,
    /// Encoder sizes.
    pub vision: VitConfig,
    /// Projector sizes.
    pub projector: ProjectorConfig,
    /// Language model.
    pub language: LanguageFile,
    /// System prompt.
    pub system: String,
}

/// Default system prompt: short, since every token costs a pass through the language model.
pub const DEFAULT_SYSTEM: &str = "Answer about the image.";

impl Vlm {
    /// A new VLM: random encoder and projector (from `seed`) on the language model at `lm_path`.
    pub fn fresh(
        vision: VitConfig,
        projector_hidden: usize,
        lm: tessera_lm::Llama,
        seed: u64,
    ) -> Result<Self> {
        let vit = Vit::new(vision, seed, lm.device())?;
        let projector = Projector::new(
            ProjectorConfig {
                input: vision.width,
                hidden: projector_hidden,
                output: lm.config.hidden_size,
            },
            seed,
            lm.device(),
        )?;
        Ok(Vlm {
            vit,
            projector,
            lm,
            system: DEFAULT_SYSTEM.into(),
        })
    }

    /// The configuration file of this model with `base` as its language base.
    pub fn file(&self, base: &str, lora: Option<LoraSpec>, modified: bool) -> VlmFile {
        VlmFile {
            format: FORMAT.into(),
            vision: self.vit.config,
            projector: self.projector.config,
            language: LanguageFile {
                base: base.into(),
                modified,
                lora,
            },
            system: self.system.clone(),
        }
    }

    /// Vision and projector tensors by checkpoint name.
    pub fn vision_tensors(&self) -> HashMap<String, Tensor> {
        let mut m = HashMap::new();
        for (n, v) in self.vit.named_vars() {
            m.insert(format!("vision.{n}"), v.as_tensor().detach());
        }
        m
    }

    fn vision_masks(&self) -> Result<HashMap<String, Tensor>> {
        let mut m = HashMap::new();
        for (i, b) in self.vit.blocks.iter().enumerate() {
            for (n, l) in b.linears() {
                if let Some(mask) = l.mask() {
                    m.insert(
                        format!("vision.blocks.{i}.{n}.weight"),
                        mask.to_dtype(DType::U8)?,
                    );
                }
            }
        }
        Ok(m)
    }

    /// Writes the checkpoint to `dir` (atomically: a temporary sibling renamed into place). `file` says what the
    /// language part is; with `file.language.modified` the language model is written to `language/`.
    pub fn save(&self, dir: &Path, file: &VlmFile) -> Result<()> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-vlm-")
            .tempdir_in(parent)
            .map_err(|e| io(parent, e))?;
        let d = tmp.path();
        candle_core::safetensors::save(&self.vision_tensors(), d.join("vision.safetensors"))?;
        let masks = self.vision_masks()?;
        if !masks.is_empty() {
            candle_core::safetensors::save(&masks, d.join("vision_masks.safetensors"))?;
        }
        let proj: HashMap<String, Tensor> = self
            .projector
            .named_vars()
            .into_iter()
            .map(|(n, v)| (format!("projector.{n}"), v.as_tensor().detach()))
            .collect();
        candle_core::safetensors::save(&proj, d.join("projector.safetensors"))?;
        if file.language.lora.is_some() {
            let lora: HashMap<String, Tensor> = self
                .lm
                .named_lora_vars()
                .into_iter()
                .map(|(n, v)| (n, v.as_tensor().detach()))
                .collect();
            candle_core::safetensors::save(&lora, d.join("language_lora.safetensors"))?;
        }
        if file.language.modified {
            let rec = serde_json::json!({"written_by": "tessera vlm"});
            tessera_prune::checkpoint_dir::write(
                &self.lm,
                &d.join("language"),
                "prune.json",
                &rec,
            )?;
        }
        tessera_core::fsx::write_json_atomic(d.join("config.json"), file)?;
        let tmp = tmp.keep();
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
        Ok(())
    }

    /// Loads a checkpoint written by [`Vlm::save`]; the base language model is resolved (and fetched unless
    /// `offline`) when `language/` is absent. Returns the model and its configuration file.
    pub fn load(dir: &Path, offline: bool) -> Result<(Self, VlmFile)> {
        let bad = |msg: String| VisionError::Checkpoint {
            path: dir.into(),
            msg,
        };
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| {
            bad(format!(
                "no readable config.json ({e}); is this a `tessera vlm` model directory?"
            ))
        })?;
        let file: VlmFile =
            serde_json::from_str(&text).map_err(|e| bad(format!("config.json: {e}")))?;
        if file.format != FORMAT {
            return Err(bad(format!(
                "format `{}`, expected `{FORMAT}`",
                file.format
            )));
        }
        let lm = if file.language.modified {
            tessera_lm::load(dir.join("language"))?
        } else {
            let p = tessera_core::assets::resolve_model(&file.language.base, offline)?;
            tessera_lm::load(p)?
        };
        let mut vlm = Vlm::fresh(file.vision, file.projector.hidden, lm, 0)?;
        if file.projector.output != vlm.lm.config.hidden_size
            || file.projector.input != file.vision.width
        {
            return Err(bad("projector sizes do not match the towers".into()));
        }
        vlm.system = file.system.clone();
        let read = |name: &str| -> Result<HashMap<String, Tensor>> {
            candle_core::safetensors::load(dir.join(name), &Device::Cpu)
                .map_err(|e| bad(format!("{name}: {e}")))
        };
        load_vars(
            &vlm.vit.named_vars(),
            &read("vision.safetensors")?,
            "vision.",
        )?;
        load_vars(
            &vlm.projector.named_vars(),
            &read("projector.safetensors")?,
            "projector.",
        )?;
        if dir.join("vision_masks.safetensors").exists() {
            let masks = read("vision_masks.safetensors")?;
            for (i, b) in vlm.vit.blocks.iter_mut().enumerate() {
                for (n, l) in b.linears_mut() {
                    if let Some(m) = masks.get(&format!("vision.blocks.{i}.{n}.weight")) {
                        l.set_mask(m.to_dtype(DType::F32)?)?;
                    }
                }
            }
        }
        if let Some(spec) = &file.language.lora {
            vlm.lm.add_lora(spec)?;
            let saved = read("language_lora.safetensors")?;
            load_vars(&vlm.lm.named_lora_vars(), &saved, "")?;
        }
        Ok((vlm, file))
    }
}
