//! Loading models from GGUF files or HF safetensors directories, and saving them as safetensors.
//!
//! GGUF tensors are dequantized to f32 and renamed to HF names. llama.cpp stores the Q and K projections with rows
//! permuted for its interleaved rope; that is undone here (reshape `(heads, head_dim/2, 2, in)` → swap the middle
//! axes → `(out, in)`), so one rope implementation (HF "rotate half") serves both formats.
use crate::config::LlamaConfig;
use crate::error::{LmError, Result};
use crate::gguf::GgufFile;
use crate::linear::Linear;
use crate::model::{Block, Llama};
use crate::tokenizer::Tokenizer;
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// Loads a model: a `.gguf` file, or a directory with `config.json`, `*.safetensors` and `tokenizer.json`.
pub fn load(path: impl AsRef<Path>) -> Result<Llama> {
    let path = path.as_ref();
    if path.is_dir() {
        load_safetensors_dir(path)
    } else if path.is_file() {
        load_gguf(path)
    } else {
        Err(LmError::Core(tessera_core::Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        )))
    }
}

fn unpermute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / heads;
    Ok(w.reshape((heads, hd / 2, 2, inp))?
        .transpose(1, 2)?
        .reshape((out, inp))?)
}

/// Loads a GGUF file (every tensor dequantized to f32).
pub fn load_gguf(path: &Path) -> Result<Llama> {
    let g = GgufFile::open(path)?;
    let cfg = LlamaConfig::from_gguf(&g)?;
    let tok = Tokenizer::from_gguf(&g)?;
    let get = |name: &str| g.tensor_f32(name);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    tensors.insert(
        "model.embed_tokens.weight".into(),
        get("token_embd.weight")?,
    );
    tensors.insert("model.norm.weight".into(), get("output_norm.weight")?);
    if g.tensors.contains_key("output.weight") {
        tensors.insert("lm_head.weight".into(), get("output.weight")?);
    }
    for i in 0..cfg.num_hidden_layers {
        let p = format!("blk.{i}");
        let h = format!("model.layers.{i}");
        let q = get(&format!("{p}.attn_q.weight"))?;
        let k = get(&format!("{p}.attn_k.weight"))?;
        tensors.insert(
            format!("{h}.self_attn.q_proj.weight"),
            unpermute(&q, cfg.num_attention_heads)?,
        );
        tensors.insert(
            format!("{h}.self_attn.k_proj.weight"),
            unpermute(&k, cfg.num_key_value_heads)?,
        );
        for (gg, hf) in [
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
        ] {
            tensors.insert(
                format!("{h}.{hf}.weight"),
                get(&format!("{p}.{gg}.weight"))?,
            );
        }
    }
    from_hf_tensors(path, cfg, tensors, Some(tok))
}

/// Builds a model from HF-named tensors, checking presence and shape of each.
pub fn from_hf_tensors(
    path: &Path,
    cfg: LlamaConfig,
    mut t: HashMap<String, Tensor>,
    tok: Option<Tokenizer>,
) -> Result<Llama> {
    let mut take = |name: String| -> Result<Var> {
        let x = t.remove(&name).ok_or_else(|| LmError::MissingTensor {
            path: path.into(),
            name: name.clone(),
        })?;
        Ok(Var::from_tensor(&x.to_dtype(DType::F32)?.contiguous()?)?)
    };
    let embed = take("model.embed_tokens.weight".into())?;
    let norm = take("model.norm.weight".into())?;
    let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
    for i in 0..cfg.num_hidden_layers {
        let h = format!("model.layers.{i}");
        blocks.push(Block {
            attn_norm: take(format!("{h}.input_layernorm.weight"))?,
            q: Linear::new(take(format!("{h}.self_attn.q_proj.weight"))?),
            k: Linear::new(take(format!("{h}.self_attn.k_proj.weight"))?),
            v: Linear::new(take(format!("{h}.self_attn.v_proj.weight"))?),
            o: Linear::new(take(format!("{h}.self_attn.o_proj.weight"))?),
            ffn_norm: take(format!("{h}.post_attention_layernorm.weight"))?,
            gate: Linear::new(take(format!("{h}.mlp.gate_proj.weight"))?),
            up: Linear::new(take(format!("{h}.mlp.up_proj.weight"))?),
            down: Linear::new(take(format!("{h}.mlp.down_proj.weight"))?),
        });
    }
    let head = if cfg.tie_word_embeddings {
        None
    } else {
        Some(take("lm_head.weight".into())?)
    };
    Llama::from_parts(cfg, embed, blocks, norm, head, tok).map_err(|e| match e {
        LmError::TensorShape {
            name,
            expected,
            got,
            ..
        } => LmError::TensorShape {
            path: path.into(),
            name,
            expected,
            got,
        },
        other => other,
    })
}

/// Loads an HF-style directory: `config.json`, one or more `*.safetensors`, optional `tokenizer.json`.
pub fn load_safetensors_dir(dir: &Path) -> Result<Llama> {
    let cfg = LlamaConfig::from_json_file(&dir.join("config.json"))?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| tessera_core::Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LmError::bad(dir, "no *.safetensors file"));
    }
    let mut tensors = HashMap::new();
    for f in &files {
        let m = candle_core::safetensors::load(f, &Device::Cpu)
            .map_err(|e| LmError::bad(f, format!("not a valid safetensors file: {e}")))?;
        tensors.extend(m);
    }
    let tok = if dir.join("tokenizer.json").is_file() {
        Some(Tokenizer::from_dir(
            dir,
            cfg.bos_token_id,
            cfg.eos_token_id,
        )?)
    } else {
        None
    };
    from_hf_tensors(dir, cfg.clone(), tensors, tok)
}

/// Saves `model.safetensors`, `config.json` and (when present) the tokenizer into `dir`. The loader reads the
/// result back bit-exactly. The files are written into a temporary directory beside `dir` and swapped into
/// place ([`crate::export::write_dir_atomic`]), so a failure or a kill leaves the old directory or the new one,
/// never a mix. Masks and LoRA adapters are not written here (see [`crate::checkpoint`]).
pub fn save_safetensors_dir(model: &Llama, dir: &Path) -> Result<()> {
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (name, v) in model.named_vars() {
        map.insert(name, v.as_tensor().clone());
    }
    crate::export::write_dir_atomic(dir, |d| {
        candle_core::safetensors::save(&map, d.join("model.safetensors"))?;
        let mut cfg = model.config.clone();
        cfg.tie_word_embeddings = model.is_tied();
        tessera_core::fsx::write_json_atomic(d.join("config.json"), &cfg)?;
        if let Some(t) = &model.tokenizer {
            t.save_dir(d)?;
        }
        Ok(())
    })
}
