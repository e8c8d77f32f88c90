//! Helpers shared by the real-model differential tests.
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama;
use std::path::{Path, PathBuf};
use tessera_lm::{Forward, Input, Llama};

/// The cached SmolLM2 GGUF; `None` (the test skips) when it is not cached, a panic under
/// `TESSERA_REQUIRE_ASSETS` (CI must not pass by skipping).
pub fn model_path() -> Option<PathBuf> {
    let a = tessera_core::assets::find_model("smollm2-135m").unwrap();
    if a.is_present() {
        return Some(a.main_path());
    }
    if std::env::var_os("TESSERA_REQUIRE_ASSETS").is_some() {
        panic!("SmolLM2 is not in the cache: run `tessera assets fetch`");
    }
    eprintln!("skipping: SmolLM2 not cached (run `tessera assets fetch`)");
    None
}

/// An English paragraph long enough for 64-token prompts.
pub const TEXT: &str = "The Eiffel Tower, completed in 1889 for the World's Fair in Paris, was at first criticised by many of France's leading artists. Today it is the most visited paid monument in the world, and its silhouette is recognised everywhere. Engineers admire its lattice of wrought iron, which weighs about seven thousand tonnes and sways only a few centimetres in strong wind.";

/// The logits `[positions, vocab]` of one full forward over `ids`.
pub fn all_logits(m: &Llama, ids: &[u32]) -> Tensor {
    let x = Tensor::new(ids, m.device()).unwrap().unsqueeze(0).unwrap();
    m.forward(Input::Ids(&x), Forward::default())
        .unwrap()
        .squeeze(0)
        .unwrap()
}

/// The top-1 next token at every position of `ids` under candle-transformers' `quantized_llama` reading the GGUF
/// file at `path` (fed one token at a time through its own KV cache): the reference our runtimes are checked
/// against.
pub fn quantized_llama_top1(path: &Path, ids: &[u32]) -> Vec<u32> {
    let mut f = std::fs::File::open(path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut q = quantized_llama::ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    ids.iter()
        .enumerate()
        .map(|(i, &t)| {
            let x = Tensor::new(&[t], &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            q.forward(&x, i)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .argmax(0)
                .unwrap()
                .to_scalar::<u32>()
                .unwrap()
        })
        .collect()
}
