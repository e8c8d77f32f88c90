//! Export for other engines.
//!
//! - [`export_hf_dir`]: an HF directory (`config.json`, `model.safetensors`, `tokenizer.json`,
//!   `tokenizer_config.json`) that `transformers` and vLLM load as `LlamaForCausalLM`.
//! - [`export_gguf`]: a GGUF file (f32 or f16 weights; norms stay f32 as llama.cpp's converter does) with
//!   llama.cpp's Q/K row order restored, loadable by llama.cpp and Ollama.
//! - [`gguf_to_f32`]: an f32 copy of an existing GGUF file, for same-work comparisons with llama.cpp.
//!
//! Both exports write the function the model computes: a masked weight is written masked and a LoRA adapter
//! is folded in ([`effective_weight`]). Every file is written to a temporary path and renamed into place, so a
//! failed export overwrites nothing.
use crate::error::{LmError, Result};
use crate::gguf::{self, GgufFile, Value};
use crate::linear::Linear;
use crate::model::Llama;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Writes `dst`, an f32 copy of the GGUF file `src`. `general.file_type` becomes 0 (all f32).
pub fn gguf_to_f32(src: &Path, dst: &Path) -> Result<()> {
    let g = GgufFile::open(src)?;
    let mut meta: Vec<(String, Value)> = g
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.file_type" && k.as_str() != "general.alignment")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.push(("general.file_type".into(), Value::U32(0)));
    // Keep the original tensor order (by offset) so the file mirrors the source.
    let mut names: Vec<(&String, usize)> = g.tensors.iter().map(|(n, i)| (n, i.offset)).collect();
    names.sort_by_key(|x| x.1);
    let tensors = names
        .into_iter()
        .map(|(n, _)| Ok((n.clone(), g.tensor_f32(n)?)))
        .collect::<Result<Vec<_>>>()?;
    gguf::write_f32(dst, &meta, &tensors)
}

/// Weight precision of a GGUF export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GgufPrecision {
    /// 32-bit floats (exact).
    #[default]
    F32,
    /// 16-bit floats for matrices, f32 for norms.
    F16,
}

impl FromStr for GgufPrecision {
    type Err = LmError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(GgufPrecision::F32),
            "f16" => Ok(GgufPrecision::F16),
            other => Err(LmError::Invalid(format!(
                "unknown GGUF precision `{other}` (f32, f16)"
            ))),
        }
    }
}

impl std::fmt::Display for GgufPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GgufPrecision::F32 => "f32",
            GgufPrecision::F16 => "f16",
        })
    }
}

/// The weight a linear layer effectively applies in its default (sparse) forward: `W ⊙ M`, plus the folded LoRA
/// update `s·BA` (plain LoRA) or `(W + s·BA) ⊙ M` (SparseLoRA), exactly what [`Linear::merge_lora`] produces.
pub fn effective_weight(l: &Linear) -> Result<Tensor> {
    // The weight variable already holds `W ⊙ M` (a mask is baked in or kept beside a dense copy).
    let mut w = l.weight().as_tensor().detach();
    if let Some(lo) = l.lora() {
        let d =
            lo.b.as_tensor()
                .detach()
                .matmul(&lo.a.as_tensor().detach())?
                .affine(lo.scale, 0.0)?;
        w = (w + d)?;
        // SparseLoRA computes `(W + s·BA) ⊙ M`: the update stays inside the mask (masked entries `+0.0`).
        if let (Some(m), crate::linear::LoraForm::SparseLora) = (l.mask(), lo.form) {
            w = w.mul(m)?.affine(1.0, 0.0)?;
        }
    }
    Ok(w)
}

/// The model's tensors with HF names, adapters folded in (what a plain `LlamaForCausalLM` computes).
pub fn hf_tensors(model: &Llama) -> Result<Vec<(String, Tensor)>> {
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        model.embed.as_tensor().detach(),
    )];
    for (i, b) in model.blocks.iter().enumerate() {
        out.push((
            format!("model.layers.{i}.input_layernorm.weight"),
            b.attn_norm.as_tensor().detach(),
        ));
        out.push((
            format!("model.layers.{i}.post_attention_layernorm.weight"),
            b.ffn_norm.as_tensor().detach(),
        ));
        for (name, l) in b.linears() {
            out.push((
                format!("model.layers.{i}.{name}.weight"),
                effective_weight(l)?,
            ));
        }
    }
    out.push(("model.norm.weight".into(), model.norm.as_tensor().detach()));
    let head_changed = model.lm_head.mask().is_some() || model.lm_head.lora().is_some();
    if !model.is_tied() || head_changed {
        out.push(("lm_head.weight".into(), effective_weight(&model.lm_head)?));
    }
    Ok(out)
}

/// Writes `files` (name → bytes producer) into a fresh temporary directory beside `dir`, fsyncs them, and
/// swaps it into place: an existing `dir` is renamed aside first and removed after the swap. A failure at any
/// point before the swap leaves `dir` untouched.
pub fn write_dir_atomic(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| tessera_core::Error::io(&parent, e))?;
    let base = dir
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    // The staging directory is made with `create_dir` (mode 0777 less the umask, like any new directory; a
    // temporary directory would be private 0700) and removed again if anything fails before the swap.
    let staged = staging_dir(&parent, &base)?;
    let guard = RemoveOnDrop(Some(staged.clone()));
    write(&staged)?;
    for e in std::fs::read_dir(&staged).map_err(|e| tessera_core::Error::io(&staged, e))? {
        let p = e.map_err(|e| tessera_core::Error::io(&staged, e))?.path();
        if p.is_file() {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| tessera_core::Error::io(&p, e))?;
        }
    }
    guard.disarm();
    let old = if dir.exists() {
        let aside = parent.join(format!(".{base}.old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(dir, &aside).map_err(|e| tessera_core::Error::io(dir, e))?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&staged, dir) {
        if let Some(a) = &old {
            let _ = std::fs::rename(a, dir);
        }
        let _ = std::fs::remove_dir_all(&staged);
        return Err(tessera_core::Error::io(dir, e).into());
    }
    if let Ok(f) = std::fs::File::open(&parent) {
        let _ = f.sync_all();
    }
    if let Some(a) = old {
        let _ = std::fs::remove_dir_all(a);
    }
    Ok(())
}

/// The masks that survive [`effective_weight`], as U8 0/1 tensors by HF weight name: every masked layer except
/// those with a plain-LoRA adapter (`W ⊙ M + s·BA` is dense once folded, so its mask no longer holds).
pub fn hf_masks(model: &Llama) -> Result<Vec<(String, Tensor)>> {
    let keeps = |l: &Linear| {
        l.mask().is_some()
            && !matches!(l.lora(), Some(lo) if lo.form == crate::linear::LoraForm::Lora)
    };
    let mut out = Vec::new();
    for (i, b) in model.blocks.iter().enumerate() {
        for (name, l) in b.linears() {
            if let (true, Some(m)) = (keeps(l), l.mask()) {
                out.push((
                    format!("model.layers.{i}.{name}.weight"),
                    m.to_dtype(DType::U8)?,
                ));
            }
        }
    }
    if let (true, Some(m)) = (keeps(&model.lm_head), model.lm_head.mask()) {
        out.push(("lm_head.weight".into(), m.to_dtype(DType::U8)?));
    }
    Ok(out)
}

/// Writes an HF directory at `dir` (replacing it atomically): `model.safetensors` with adapters folded in,
/// `config.json`, the tokenizer files when the model has a tokenizer, and for a pruned model
/// [`crate::load::MASKS_FILE`] with the masks that still hold after folding ([`hf_masks`]); the loader bakes them
/// back in, so a pruned directory loads as the same pruned model.
pub fn export_hf_dir(model: &Llama, dir: &Path) -> Result<()> {
    let tensors = hf_tensors(model)?;
    let masks = hf_masks(model)?;
    let tied = !tensors.iter().any(|(n, _)| n == "lm_head.weight");
    write_dir_atomic(dir, |d| {
        let map: HashMap<String, Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&map, d.join("model.safetensors"))?;
        if !masks.is_empty() {
            let masks: HashMap<String, Tensor> = masks.into_iter().collect();
            candle_core::safetensors::save(&masks, d.join(crate::load::MASKS_FILE))?;
        }
        let mut cfg = serde_json::to_value(&model.config).map_err(tessera_core::Error::from)?;
        cfg["tie_word_embeddings"] = serde_json::Value::Bool(tied);
        cfg["hidden_act"] = "silu".into();
        cfg["torch_dtype"] = "float32".into();
        tessera_core::fsx::write_json_atomic(d.join("config.json"), &cfg)?;
        if let Some(t) = &model.tokenizer {
            t.save_dir(d)?;
        }
        Ok(())
    })
}

/// llama.cpp's row order for Q/K: the inverse of the loader's un-permutation.
fn permute_for_gguf(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / heads;
    Ok(w.reshape((heads, 2, hd / 2, inp))?
        .transpose(1, 2)?
        .reshape((out, inp))?
        .contiguous()?)
}

/// GGUF tokenizer metadata rebuilt from the model's `tokenizer.json` (when no source GGUF is at hand).
fn tokenizer_meta(model: &Llama) -> Result<Vec<(String, Value)>> {
    let Some(t) = &model.tokenizer else {
        return Ok(vec![]);
    };
    let dir = tempfile::tempdir().map_err(|e| tessera_core::Error::io(std::env::temp_dir(), e))?;
    t.save_dir(dir.path())?;
    let p = dir.path().join("tokenizer.json");
    let j: serde_json::Value = serde_json::from_str(&tessera_core::fsx::read_to_string(&p)?)
        .map_err(|e| LmError::bad(&p, format!("tokenizer.json: {e}")))?;
    let bad = |m: &str| LmError::bad(&p, m.to_string());
    if j["model"]["type"].as_str() != Some("BPE") {
        return Err(bad(
            "only byte-level BPE tokenizers can be exported to GGUF",
        ));
    }
    let vocab = j["model"]["vocab"]
        .as_object()
        .ok_or_else(|| bad("no model.vocab"))?;
    let mut tokens: Vec<Option<String>> = vec![None; t.vocab_size().max(vocab.len())];
    let mut types = vec![1i32; tokens.len()];
    for (tok, id) in vocab {
        let id = id.as_u64().ok_or_else(|| bad("non-integer id"))? as usize;
        if id >= tokens.len() {
            tokens.resize(id + 1, None);
            types.resize(id + 1, 1);
        }
        tokens[id] = Some(tok.clone());
    }
    for a in j["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(c)) = (a["id"].as_u64(), a["content"].as_str()) else {
            continue;
        };
        let id = id as usize;
        if id >= tokens.len() {
            tokens.resize(id + 1, None);
            types.resize(id + 1, 1);
        }
        tokens[id] = Some(c.to_string());
        if a["special"].as_bool().unwrap_or(false) {
            types[id] = 3;
        }
    }
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| format!("[PAD{i}]")))
        .collect();
    let merges: Vec<Value> = j["model"]["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            serde_json::Value::String(s) => Some(Value::Str(s.clone())),
            serde_json::Value::Array(p) if p.len() == 2 => {
                Some(Value::Str(format!("{} {}", p[0].as_str()?, p[1].as_str()?)))
            }
            _ => None,
        })
        .collect();
    let pre = if j["pre_tokenizer"].to_string().contains("Digits") {
        "smollm"
    } else {
        "default"
    };
    let mut meta = vec![
        (
            "tokenizer.ggml.model".to_string(),
            Value::Str("gpt2".into()),
        ),
        ("tokenizer.ggml.pre".into(), Value::Str(pre.into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::Str).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(merges)),
        (
            "tokenizer.ggml.add_bos_token".into(),
            Value::Bool(t.add_bos),
        ),
    ];
    if let Some(b) = t.bos_id {
        meta.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(b)));
    }
    if let Some(&e) = t.eos_ids.first() {
        meta.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(e)));
    }
    Ok(meta)
}

fn to_candle_value(v: &Value) -> gguf_file::Value {
    use gguf_file::Value as C;
    match v {
        Value::U8(x) => C::U8(*x),
        Value::I8(x) => C::I8(*x),
        Value::U16(x) => C::U16(*x),
        Value::I16(x) => C::I16(*x),
        Value::U32(x) => C::U32(*x),
        Value::I32(x) => C::I32(*x),
        Value::F32(x) => C::F32(*x),
        Value::U64(x) => C::U64(*x),
        Value::I64(x) => C::I64(*x),
        Value::F64(x) => C::F64(*x),
        Value::Bool(x) => C::Bool(*x),
        Value::Str(s) => C::String(s.clone()),
        Value::Array(a) => C::Array(a.iter().map(to_candle_value).collect()),
    }
}

/// Writes the model as a GGUF file `path` (atomically) in llama.cpp's layout. Tokenizer metadata (and the chat
/// template) are copied from `source` when the model was loaded from a GGUF file, else rebuilt from the model's
/// tokenizer.
pub fn export_gguf(
    model: &Llama,
    path: &Path,
    precision: GgufPrecision,
    source: Option<&Path>,
) -> Result<()> {
    let c = &model.config;
    let u = |x: usize| Value::U32(x as u32);
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::Str("llama".into())),
        ("general.name".into(), Value::Str("tessera-export".into())),
        (
            "general.file_type".into(),
            Value::U32(match precision {
                GgufPrecision::F32 => 0,
                GgufPrecision::F16 => 1,
            }),
        ),
        ("llama.context_length".into(), u(c.max_position_embeddings)),
        ("llama.embedding_length".into(), u(c.hidden_size)),
        ("llama.feed_forward_length".into(), u(c.intermediate_size)),
        ("llama.block_count".into(), u(c.num_hidden_layers)),
        (
            "llama.attention.head_count".into(),
            u(c.num_attention_heads),
        ),
        (
            "llama.attention.head_count_kv".into(),
            u(c.num_key_value_heads),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(c.rms_norm_eps as f32),
        ),
        (
            "llama.rope.freq_base".into(),
            Value::F32(c.rope_theta as f32),
        ),
        ("llama.rope.dimension_count".into(), u(c.head_dim())),
        ("llama.vocab_size".into(), u(c.vocab_size)),
    ];
    match source {
        Some(src) => {
            let g = GgufFile::open(src)?;
            for (k, v) in &g.metadata {
                if k.starts_with("tokenizer.") {
                    meta.push((k.clone(), v.clone()));
                }
            }
        }
        None => meta.extend(tokenizer_meta(model)?),
    }
    let hf = hf_tensors(model)?;
    let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(hf.len());
    for (name, t) in hf {
        let g = hf_to_gguf_name(&name)
            .ok_or_else(|| LmError::Invalid(format!("no GGUF name for tensor `{name}`")))?;
        let t = if name.ends_with("q_proj.weight") {
            permute_for_gguf(&t, c.num_attention_heads)?
        } else if name.ends_with("k_proj.weight") {
            permute_for_gguf(&t, c.num_key_value_heads)?
        } else {
            t
        };
        tensors.push((g, t));
    }
    let q: Vec<(String, QTensor)> = tensors
        .iter()
        .map(|(n, t)| {
            let dt = match precision {
                GgufPrecision::F16 if t.rank() > 1 => GgmlDType::F16,
                _ => GgmlDType::F32,
            };
            let t = t
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .contiguous()?;
            Ok((n.clone(), QTensor::quantize(&t, dt)?))
        })
        .collect::<Result<_>>()?;
    let cmeta: Vec<(String, gguf_file::Value)> = meta
        .iter()
        .map(|(k, v)| (k.clone(), to_candle_value(v)))
        .collect();
    let mrefs: Vec<(&str, &gguf_file::Value)> =
        cmeta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let trefs: Vec<(&str, &QTensor)> = q.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| tessera_core::Error::io(&dir, e))?;
    // Created with mode 0666 less the umask (a plain temporary file would be 0600), fsynced, renamed durably.
    let mut tmp = tessera_core::fsx::temp_file_in(&dir)?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        gguf_file::write(&mut w, &mrefs, &trefs)?;
        use std::io::Write as _;
        w.flush().map_err(|e| tessera_core::Error::io(path, e))?;
    }
    tessera_core::fsx::persist(tmp, path)?;
    Ok(())
}

/// A new, uniquely named directory `.<base>.tmp-<pid>-<n>` in `parent`.
fn staging_dir(parent: &Path, base: &str) -> Result<PathBuf> {
    for n in 0u32..1000 {
        let p = parent.join(format!(".{base}.tmp-{}-{n}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(tessera_core::Error::io(&p, e).into()),
        }
    }
    Err(tessera_core::Error::io(
        parent,
        std::io::Error::other("no free name for a staging directory"),
    )
    .into())
}

/// Removes a staging directory when dropped, unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) -> Option<PathBuf> {
        self.0.take()
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// llama.cpp's tensor name for an HF tensor name.
pub fn hf_to_gguf_name(name: &str) -> Option<String> {
    match name {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (i, rest) = rest.split_once('.')?;
    let i: usize = i.parse().ok()?;
    let g = match rest {
        "input_layernorm.weight" => "attn_norm",
        "post_attention_layernorm.weight" => "ffn_norm",
        "self_attn.q_proj.weight" => "attn_q",
        "self_attn.k_proj.weight" => "attn_k",
        "self_attn.v_proj.weight" => "attn_v",
        "self_attn.o_proj.weight" => "attn_output",
        "mlp.gate_proj.weight" => "ffn_gate",
        "mlp.up_proj.weight" => "ffn_up",
        "mlp.down_proj.weight" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{i}.{g}.weight"))
}
