//! Tiny random models for tests (of this crate and of every crate built on it).
use crate::config::LlamaConfig;
use crate::error::Result;
use crate::gguf::{self, Value};
use crate::model::Llama;
use candle_core::{Device, Tensor};
use rand::Rng as _;

/// A small config: 2 layers, width 32, 4 query heads over 2 KV heads, vocabulary `vocab`.
pub fn tiny_config(vocab: usize) -> LlamaConfig {
    LlamaConfig {
        vocab_size: vocab,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        max_position_embeddings: 256,
        tie_word_embeddings: true,
        bos_token_id: None,
        eos_token_id: Some(0),
        architectures: vec!["LlamaForCausalLM".into()],
        model_type: "llama".into(),
    }
}

fn rand_tensor(rng: &mut tessera_core::rng::Rng, shape: &[usize], scale: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// A byte-level vocabulary: token 0 is `<|im_end|>` (EOS, control), 1 `<|im_start|>`, then the 256 byte symbols
/// and a few merges. Returns GGUF tokenizer metadata.
fn tiny_tokenizer_meta() -> Vec<(String, Value)> {
    let mut tokens = vec!["<|im_end|>".to_string(), "<|im_start|>".to_string()];
    // GPT-2 byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 onwards.
    let mut n = 0u32;
    let mut syms = vec![];
    for b in 0u32..256 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let c = if printable {
            char::from_u32(b).expect("valid")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("valid")
        };
        syms.push(c.to_string());
    }
    tokens.extend(syms);
    let merges = ["h e", "l l", "he ll", "Ġ t", "Ġt h"];
    for m in merges {
        tokens.push(m.replace(' ', ""));
    }
    let mut types = vec![Value::I32(3), Value::I32(3)];
    types.extend(std::iter::repeat_n(Value::I32(1), tokens.len() - 2));
    vec![
        ("tokenizer.ggml.model".into(), Value::Str("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::Str("smollm".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::Str).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(merges.iter().map(|m| Value::Str(m.to_string())).collect()),
        ),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ]
}

/// Vocabulary size of [`write_tiny_gguf`]'s tokenizer.
pub const TINY_VOCAB: usize = 2 + 256 + 5;

/// Writes a tiny random llama model with a working byte-level tokenizer as an f32 GGUF file (llama.cpp layout,
/// Q/K rows permuted as llama.cpp's converter does).
pub fn write_tiny_gguf(path: &std::path::Path, seed: u64) -> Result<()> {
    let c = tiny_config(TINY_VOCAB);
    let mut rng = tessera_core::rng::seeded(seed);
    let hd = c.head_dim();
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::Str("llama".into())),
        ("general.name".into(), Value::Str("tiny-random".into())),
        (
            "llama.context_length".into(),
            Value::U32(c.max_position_embeddings as u32),
        ),
        (
            "llama.embedding_length".into(),
            Value::U32(c.hidden_size as u32),
        ),
        (
            "llama.feed_forward_length".into(),
            Value::U32(c.intermediate_size as u32),
        ),
        (
            "llama.block_count".into(),
            Value::U32(c.num_hidden_layers as u32),
        ),
        (
            "llama.attention.head_count".into(),
            Value::U32(c.num_attention_heads as u32),
        ),
        (
            "llama.attention.head_count_kv".into(),
            Value::U32(c.num_key_value_heads as u32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(c.rms_norm_eps as f32),
        ),
        (
            "llama.rope.freq_base".into(),
            Value::F32(c.rope_theta as f32),
        ),
    ];
    meta.extend(tiny_tokenizer_meta());
    let h = c.hidden_size;
    let mut t: Vec<(String, Tensor)> = vec![
        (
            "token_embd.weight".into(),
            rand_tensor(&mut rng, &[c.vocab_size, h], 0.5)?,
        ),
        (
            "output_norm.weight".into(),
            (rand_tensor(&mut rng, &[h], 0.1)? + 1.0)?,
        ),
    ];
    let permute = |w: Tensor, heads: usize| -> Result<Tensor> {
        let (out, inp) = w.dims2()?;
        Ok(w.reshape((heads, 2, out / heads / 2, inp))?
            .transpose(1, 2)?
            .reshape((out, inp))?)
    };
    for i in 0..c.num_hidden_layers {
        let s = 1.0 / (h as f32).sqrt();
        let kv = c.num_key_value_heads * hd;
        t.push((
            format!("blk.{i}.attn_norm.weight"),
            (rand_tensor(&mut rng, &[h], 0.1)? + 1.0)?,
        ));
        t.push((
            format!("blk.{i}.attn_q.weight"),
            permute(
                rand_tensor(&mut rng, &[h, h], s * 2.0)?,
                c.num_attention_heads,
            )?,
        ));
        t.push((
            format!("blk.{i}.attn_k.weight"),
            permute(
                rand_tensor(&mut rng, &[kv, h], s * 2.0)?,
                c.num_key_value_heads,
            )?,
        ));
        t.push((
            format!("blk.{i}.attn_v.weight"),
            rand_tensor(&mut rng, &[kv, h], s)?,
        ));
        t.push((
            format!("blk.{i}.attn_output.weight"),
            rand_tensor(&mut rng, &[h, h], s)?,
        ));
        t.push((
            format!("blk.{i}.ffn_norm.weight"),
            (rand_tensor(&mut rng, &[h], 0.1)? + 1.0)?,
        ));
        t.push((
            format!("blk.{i}.ffn_gate.weight"),
            rand_tensor(&mut rng, &[c.intermediate_size, h], s)?,
        ));
        t.push((
            format!("blk.{i}.ffn_up.weight"),
            rand_tensor(&mut rng, &[c.intermediate_size, h], s)?,
        ));
        t.push((
            format!("blk.{i}.ffn_down.weight"),
            rand_tensor(&mut rng, &[h, c.intermediate_size], s)?,
        ));
    }
    gguf::write_f32(path, &meta, &t)
}

/// A tiny random model (with tokenizer), built through the GGUF writer and loader.
pub fn tiny_model(seed: u64) -> Result<Llama> {
    let dir = tempfile::tempdir().map_err(|e| tessera_core::Error::io(std::env::temp_dir(), e))?;
    let p = dir.path().join("tiny.gguf");
    write_tiny_gguf(&p, seed)?;
    crate::load::load(&p)
}

/// A `[1, n]` token-id tensor on the CPU (test helper; panics on failure).
pub fn ids(v: &[u32]) -> Tensor {
    Tensor::new(v, &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("a token-id tensor")
}

/// The largest absolute element-wise difference of two tensors of the same shape (test helper; panics on failure).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("tensors of the same shape")
}

/// `n` deterministic pseudo-random values in [-1, 1] (xorshift from `seed`), for kernel tests.
pub fn pseudo_values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 20001) as f32 / 10000.0 - 1.0
        })
        .collect()
}
