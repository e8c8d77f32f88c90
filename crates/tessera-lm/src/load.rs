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
use crate::quant::{QFormat, QMatrix};
use crate::tokenizer::Tokenizer;
use crate::weights::{CompactWeights, LoadOptions, WeightDtype};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor, Var};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Loads a model: a `.gguf` file, or a directory with `config.json`, `*.safetensors` and `tokenizer.json`.
pub fn load(path: impl AsRef<Path>) -> Result<Llama> {
    let path = path.as_ref();
    let md = std::fs::metadata(path).map_err(|e| tessera_core::Error::io(path, e))?;
    let m = if md.is_dir() {
        load_safetensors_dir(path)?
    } else {
        // Refuses FIFOs, sockets and devices before opening them.
        load_gguf(path)?
    };
    m.advise_huge_pages();
    Ok(m)
}

/// Loads a model in the weight representation `opts` asks for ([`crate::weights`]): f32 is [`load`];
/// [`WeightDtype::File`] on a GGUF uses its Q8_0 / Q4_0 / Q4_1 blocks as they are ([`load_gguf_blocks`]), on a
/// pruned directory the compressed sparse formats; [`WeightDtype::Q8_0`] requantizes; [`WeightDtype::Sparse`]
/// needs a pruned directory.
pub fn load_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Llama> {
    let path = path.as_ref();
    let md = std::fs::metadata(path).map_err(|e| tessera_core::Error::io(path, e))?;
    match (md.is_dir(), opts.dtype) {
        (_, WeightDtype::F32) => load(path),
        (false, WeightDtype::File) => {
            let m = load_gguf_blocks(path)?;
            m.advise_huge_pages();
            Ok(m)
        }
        (false, WeightDtype::Sparse) => Err(LmError::Invalid(format!(
            "--dtype sparse needs a pruned model directory (with {MASKS_FILE}); {} is a single file",
            path.display()
        ))),
        (_, d) => {
            let mut m = load(path)?;
            m.to_inference(d)?;
            Ok(m)
        }
    }
}

/// Row order that undoes llama.cpp's rope permutation (see the module docs): row `h·hd + j·hd/2 + i` of the
/// result is row `h·hd + 2i + j` of the file.
fn unpermute_rows(out: usize, heads: usize) -> Vec<usize> {
    let hd = out / heads;
    let mut p = Vec::with_capacity(out);
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..hd / 2 {
                p.push(h * hd + 2 * i + j);
            }
        }
    }
    p
}

/// A GGUF tensor as quantized blocks: its own when the runtime computes on its type, else dequantized and
/// requantized to Q8_0 (`None` for F32 / F16 tensors, which stay f32 unless `force`).
fn gguf_blocks(g: &GgufFile, name: &str, force: bool) -> Result<Option<QMatrix>> {
    let info = g.tensors.get(name).ok_or_else(|| LmError::MissingTensor {
        path: g.path().into(),
        name: name.into(),
    })?;
    let (rows, cols) = match info.shape[..] {
        [r, c] => (r, c),
        _ => {
            return Err(LmError::bad(
                g.path(),
                format!("tensor `{name}` is not a matrix"),
            ))
        }
    };
    let bad = |e: LmError| LmError::bad(g.path(), format!("tensor `{name}`: {e}"));
    if let Some(f) = QFormat::from_ggml(info.ggml_type) {
        return Ok(Some(
            QMatrix::from_bytes(f, rows, cols, g.read_tensor_bytes(name)?).map_err(bad)?,
        ));
    }
    if !force && matches!(info.ggml_type, 0 | 1) {
        return Ok(None);
    }
    let w: Vec<f32> = g.tensor_f32(name)?.flatten_all()?.to_vec1()?;
    Ok(Some(QMatrix::quantize_q8_0(&w, rows, cols).map_err(bad)?))
}

/// Loads a GGUF file for inference on its own blocks: every projection stays in the file's Q8_0 / Q4_0 / Q4_1
/// blocks (Q/K rows reordered whole), other block types are requantized to Q8_0, F32/F16 projections stay f32;
/// the head is Q8_0 (the file's `token_embd` / `output` blocks when they are Q8_0). A tied head on Q8_0 blocks
/// also serves the embedding lookups (no f32 table; [`Llama::embed`] is an empty placeholder), otherwise the
/// embedding is an f32 table. Tensor bytes are read, not mapped, so resident memory is about the file's size.
pub fn load_gguf_blocks(path: &Path) -> Result<Llama> {
    let (g, cfg, tok) = open_gguf_checked(path)?;
    let (v, h) = (cfg.vocab_size, cfg.hidden_size);
    let to_q8 = |q: QMatrix| -> Result<QMatrix> {
        if q.format() == QFormat::Q8_0 {
            return Ok(q);
        }
        let (r, c) = q.dims();
        QMatrix::quantize_q8_0(&q.dequantize(), r, c)
    };
    let emb_q = gguf_blocks(&g, "token_embd.weight", false)?;
    let tied = !g.tensors.contains_key("output.weight");
    // Tied with Q8_0 blocks: no f32 table at all, token rows are read from the head's blocks.
    let (emb_f32, embed) = if tied && emb_q.as_ref().is_some_and(|q| q.format() == QFormat::Q8_0) {
        (None, Var::zeros((0, h), DType::F32, &Device::Cpu)?)
    } else {
        let t = match &emb_q {
            Some(q) => Tensor::from_vec(q.dequantize(), (v, h), &Device::Cpu)?,
            None => g.tensor_f32("token_embd.weight")?,
        };
        let var = Var::from_tensor(&t.to_dtype(DType::F32)?.contiguous()?)?;
        (Some(t), var)
    };
    let norm_var = |name: &str| -> Result<Var> { Ok(Var::from_tensor(&g.tensor_f32(name)?)?) };
    let lin = |name: String, heads: Option<usize>| -> Result<Linear> {
        match gguf_blocks(&g, &name, false)? {
            Some(q) => {
                let q = match heads {
                    Some(nh) => q.permute_rows(&unpermute_rows(q.dims().0, nh))?,
                    None => q,
                };
                Linear::from_compact(CompactWeights::Quantized(q), None)
            }
            None => {
                let t = g.tensor_f32(&name)?;
                let t = match heads {
                    Some(nh) => unpermute(&t, nh)?.contiguous()?,
                    None => t,
                };
                Ok(Linear::new(Var::from_tensor(&t)?))
            }
        }
    };
    let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
    for i in 0..cfg.num_hidden_layers {
        let p = format!("blk.{i}");
        blocks.push(Block {
            attn_norm: norm_var(&format!("{p}.attn_norm.weight"))?,
            q: lin(format!("{p}.attn_q.weight"), Some(cfg.num_attention_heads))?,
            k: lin(format!("{p}.attn_k.weight"), Some(cfg.num_key_value_heads))?,
            v: lin(format!("{p}.attn_v.weight"), None)?,
            o: lin(format!("{p}.attn_output.weight"), None)?,
            ffn_norm: norm_var(&format!("{p}.ffn_norm.weight"))?,
            gate: lin(format!("{p}.ffn_gate.weight"), None)?,
            up: lin(format!("{p}.ffn_up.weight"), None)?,
            down: lin(format!("{p}.ffn_down.weight"), None)?,
        });
    }
    let head = if !tied {
        let q = to_q8(gguf_blocks(&g, "output.weight", true)?.expect("forced"))?;
        Linear::from_compact(CompactWeights::Quantized(q), None)?
    } else {
        let q = match emb_q {
            Some(q) => to_q8(q)?,
            None => {
                let t = emb_f32.as_ref().expect("no blocks: the f32 table was read");
                QMatrix::quantize_q8_0(&t.flatten_all()?.to_vec1::<f32>()?, v, h)?
            }
        };
        Linear::from_compact(CompactWeights::Quantized(q), Some(embed.clone()))?
    };
    drop(emb_f32);
    let norm = norm_var("output_norm.weight")?;
    let mut m = Llama::from_parts(cfg, embed, blocks, norm, None, Some(tok))?;
    m.lm_head = head;
    Ok(m)
}

/// Every tensor the architecture needs for `cfg`: `(HF name, GGUF name, row-major shape)`.
pub fn tensor_layout(cfg: &LlamaConfig) -> Vec<(String, String, Vec<usize>)> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (q, kv) = (
        cfg.num_attention_heads * cfg.head_dim(),
        cfg.num_key_value_heads * cfg.head_dim(),
    );
    let mut out = vec![
        (
            "model.embed_tokens.weight".into(),
            "token_embd.weight".into(),
            vec![v, h],
        ),
        (
            "model.norm.weight".into(),
            "output_norm.weight".into(),
            vec![h],
        ),
    ];
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".into(), "output.weight".into(), vec![v, h]));
    }
    for l in 0..cfg.num_hidden_layers {
        for (gg, hf, shape) in [
            ("attn_q", "self_attn.q_proj", vec![q, h]),
            ("attn_k", "self_attn.k_proj", vec![kv, h]),
            ("attn_v", "self_attn.v_proj", vec![kv, h]),
            ("attn_output", "self_attn.o_proj", vec![h, q]),
            ("ffn_gate", "mlp.gate_proj", vec![i, h]),
            ("ffn_up", "mlp.up_proj", vec![i, h]),
            ("ffn_down", "mlp.down_proj", vec![h, i]),
            ("attn_norm", "input_layernorm", vec![h]),
            ("ffn_norm", "post_attention_layernorm", vec![h]),
        ] {
            out.push((
                format!("model.layers.{l}.{hf}.weight"),
                format!("blk.{l}.{gg}.weight"),
                shape,
            ));
        }
    }
    out
}

/// The layer indices named by tensors `<prefix><N>.…`.
fn layer_indices<'a>(names: impl Iterator<Item = &'a str>, prefix: &str) -> BTreeSet<usize> {
    names
        .filter_map(|n| n.strip_prefix(prefix)?.split('.').next()?.parse().ok())
        .collect()
}

/// Checks, before any tensor data is read, that the file's tensors match the config: exactly layers
/// `0..num_hidden_layers` present (a block count smaller or larger than the tensors is refused), and every
/// required tensor present with the expected shape. `shape_of` looks a tensor up by its name in the file.
fn check_tensors<'a>(
    path: &Path,
    cfg: &LlamaConfig,
    names: impl Iterator<Item = &'a str>,
    gguf: bool,
    shape_of: impl Fn(&str) -> Option<Vec<usize>>,
) -> Result<()> {
    let prefix = if gguf { "blk." } else { "model.layers." };
    let layers = layer_indices(names, prefix);
    let want = cfg.num_hidden_layers;
    if let Some(&last) = layers.last() {
        if last >= want || layers.len() != want {
            return Err(LmError::bad(
                path,
                format!(
                    "the config declares {want} layers but the file has tensors for {} layer(s) (indices up to {last})",
                    layers.len()
                ),
            ));
        }
    }
    for (hf, gg, shape) in tensor_layout(cfg) {
        let name = if gguf { gg } else { hf };
        match shape_of(&name) {
            None => {
                return Err(LmError::MissingTensor {
                    path: path.into(),
                    name,
                })
            }
            Some(got) if got != shape => {
                return Err(LmError::TensorShape {
                    path: path.into(),
                    name,
                    expected: shape,
                    got,
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn unpermute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / heads;
    Ok(w.reshape((heads, hd / 2, 2, inp))?
        .transpose(1, 2)?
        .reshape((out, inp))?)
}

/// Opens a GGUF file, reads its config and tokenizer, and checks that every tensor the config needs is there
/// with its shape (shared by both GGUF loaders).
fn open_gguf_checked(path: &Path) -> Result<(GgufFile, LlamaConfig, Tokenizer)> {
    let g = GgufFile::open(path)?;
    let cfg = LlamaConfig::from_gguf(&g)?;
    check_tensors(
        path,
        &cfg,
        g.tensors.keys().map(String::as_str),
        true,
        |n| g.tensors.get(n).map(|t| t.shape.clone()),
    )?;
    let tok = Tokenizer::from_gguf(&g)?;
    Ok((g, cfg, tok))
}

/// Loads a GGUF file (every tensor dequantized to f32).
pub fn load_gguf(path: &Path) -> Result<Llama> {
    let (g, cfg, tok) = open_gguf_checked(path)?;
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
        .filter(|p| p.file_name().is_none_or(|n| n != MASKS_FILE))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LmError::bad(dir, "no *.safetensors file"));
    }
    for f in &files {
        tessera_core::fsx::ensure_regular_file(f)?;
    }
    // SAFETY: read-only maps of regular files; a file truncated underneath us is the usual mmap caveat, accepted
    // here as for GGUF files.
    let st = unsafe { MmapedSafetensors::multi(&files) }
        .map_err(|e| LmError::bad(dir, format!("not a valid set of safetensors files: {e}")))?;
    let listed = st.tensors();
    let shapes: HashMap<&str, Vec<usize>> = listed
        .iter()
        .map(|(n, v)| (n.as_str(), v.shape().to_vec()))
        .collect();
    check_tensors(dir, &cfg, shapes.keys().copied(), false, |n| {
        shapes.get(n).cloned()
    })?;
    let mut tensors = HashMap::new();
    for (name, _, _) in tensor_layout(&cfg) {
        let t = st
            .load(&name, &Device::Cpu)
            .map_err(|e| LmError::bad(dir, format!("tensor `{name}`: {e}")))?;
        tensors.insert(name, t);
    }
    let tok = if dir.join("tokenizer.json").exists() {
        tessera_core::fsx::ensure_regular_file(dir.join("tokenizer.json"))?;
        Some(Tokenizer::from_dir(
            dir,
            cfg.bos_token_id,
            cfg.eos_token_id,
        )?)
    } else {
        None
    };
    let mut model = from_hf_tensors(dir, cfg.clone(), tensors, tok)?;
    let masks = dir.join(MASKS_FILE);
    if masks.exists() {
        apply_masks(&mut model, &masks)?;
    }
    Ok(model)
}

/// The file of a pruned checkpoint directory that holds its masks: U8 0/1 tensors named by the HF weight name
/// of each masked linear layer (e.g. `model.layers.3.mlp.up_proj.weight`), written by
/// [`crate::export::export_hf_dir`] and applied on load with [`Linear::set_mask`].
pub const MASKS_FILE: &str = "masks.safetensors";

/// The linear layer behind an HF weight name, if the name is one.
pub fn linear_by_hf_name_mut<'a>(model: &'a mut Llama, name: &str) -> Option<&'a mut Linear> {
    if name == "lm_head.weight" {
        return Some(&mut model.lm_head);
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (i, rest) = rest.split_once('.')?;
    let proj = rest.strip_suffix(".weight")?;
    let block = model.blocks.get_mut(i.parse::<usize>().ok()?)?;
    block
        .linears_mut()
        .into_iter()
        .find(|(n, _)| *n == proj)
        .map(|(_, l)| l)
}

/// Reads a masks file ([`MASKS_FILE`]) and bakes each mask into its layer; an unknown name, a shape mismatch or
/// a value other than 0/1 is an error naming the file.
pub fn apply_masks(model: &mut Llama, path: &Path) -> Result<()> {
    tessera_core::fsx::ensure_regular_file(path)?;
    let masks = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| LmError::bad(path, format!("not a valid safetensors file: {e}")))?;
    let mut names: Vec<_> = masks.keys().cloned().collect();
    names.sort();
    for name in names {
        let m = &masks[&name];
        let l = linear_by_hf_name_mut(model, &name)
            .ok_or_else(|| LmError::bad(path, format!("mask `{name}` names no linear layer")))?;
        l.set_mask(m.to_dtype(DType::F32)?).map_err(|e| match e {
            LmError::MaskShape { expected, got } => LmError::bad(
                path,
                format!("mask `{name}` has shape {got:?}, the weight {expected:?}"),
            ),
            LmError::Invalid(msg) => LmError::bad(path, format!("mask `{name}`: {msg}")),
            other => other,
        })?;
    }
    Ok(())
}

/// Saves `model.safetensors`, `config.json` and (when present) the tokenizer into `dir`. The loader reads the
/// result back bit-exactly. The files are written into a temporary directory beside `dir` and swapped into
/// place ([`crate::export::write_dir_atomic`]), so a failure or a kill leaves the old directory or the new one,
/// never a mix. Masks and LoRA adapters are not written here (see [`crate::checkpoint`]).
pub fn save_safetensors_dir(model: &Llama, dir: &Path) -> Result<()> {
    if model.is_inference_only() {
        return Err(LmError::Invalid(
            "this model is held in compact inference-only form; load it with f32 weights to save it".into(),
        ));
    }
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
