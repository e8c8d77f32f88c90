//! `tessera generate --ffn-skip`: the runtime's generation with a fresh [`FfnSkipHook`] per prompt batch, returning
//! the same [`GenerateOutput`] as plain generation (the hook's summary, with the skipped fraction, is in each
//! generation's `hook` field).
use crate::error::Result;
use crate::ffn_skip::{FfnSkipConfig, FfnSkipHook};
use std::time::Instant;
use tessera_lm::commands::GenerateOutput;
use tessera_lm::{generate_batch_with, generate_with, Llama, SamplingParams};

/// Generates from every prompt with FFN skipping (one prompt streams through `on_text`; several decode as one
/// batch, deciding per row).
pub fn generate_prompts(
    m: &Llama,
    prompts: &[Vec<u32>],
    p: &SamplingParams,
    rule: &FfnSkipConfig,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<GenerateOutput> {
    tessera_lm::limits::check_sampling(p)?;
    for q in prompts {
        tessera_lm::limits::check_generation(m.config.max_position_embeddings, q.len(), p)?;
    }
    let mut hook = FfnSkipHook::new(rule, m.config.num_hidden_layers)?;
    let t0 = Instant::now();
    if let [one] = prompts {
        let g = generate_with(m, one, p, Some(&mut hook), on_text)?;
        let seconds = t0.elapsed().as_secs_f64();
        return Ok(GenerateOutput::Single {
            text: g.text.clone(),
            tokens_per_s: g.tokens.len() as f64 / seconds,
            generation: g,
            seconds,
        });
    }
    let generations = generate_batch_with(m, prompts, p, Some(&mut hook))?;
    let seconds = t0.elapsed().as_secs_f64();
    let n: usize = generations.iter().map(|g| g.tokens.len()).sum();
    Ok(GenerateOutput::Batch {
        generations,
        seconds,
        tokens_per_s: n as f64 / seconds,
    })
}
