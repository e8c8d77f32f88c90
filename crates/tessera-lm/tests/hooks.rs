//! Layer-level access, the layer hook, chunked prefill and blocked attention on tiny random models.
use candle_core::{DType, Device, Tensor};
use tessera_lm::testing::{ids, max_abs_diff, tiny_model};
use tessera_lm::*;

fn prompt(n: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 37 + 11) % 250 + 2) as u32).collect()
}

#[test]
fn chained_blocks_equal_forward() {
    let m = tiny_model(1).unwrap();
    let p = prompt(13);
    let want = m.forward(Input::Ids(&ids(&p)), Forward::default()).unwrap();
    let mut x = m.embed(&ids(&p)).unwrap();
    let opts = Forward::default();
    let ctx = m.step_context(1, p.len(), &opts).unwrap();
    for l in 0..m.blocks.len() {
        x = m.block_forward(l, &x, &ctx, None, None, None).unwrap();
    }
    let got = m.head(&x).unwrap();
    assert!(max_abs_diff(&want, &got) < 1e-5);

    // The same with a cache, step by step, and the residual capture.
    let mut cache = Cache::new(m.blocks.len());
    let out = m
        .forward_output(
            Input::Ids(&ids(&p[..5])),
            Forward {
                cache: Some(&mut cache),
                residuals: Some(&[1, 0]),
                no_head: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(out.logits.is_none());
    assert_eq!(
        out.residuals.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 0]
    );
    let mut x = m.embed(&ids(&p[5..])).unwrap();
    let opts = Forward {
        cache: Some(&mut cache),
        ..Default::default()
    };
    let ctx = m.step_context(1, p.len() - 5, &opts).unwrap();
    assert_eq!(ctx.info.past, 5);
    assert_eq!(ctx.info.positions, (5..13).collect::<Vec<u32>>());
    let Forward { cache: c, .. } = opts;
    let c = c.unwrap();
    for l in 0..m.blocks.len() {
        x = m
            .block_forward(l, &x, &ctx, Some(&mut *c), None, None)
            .unwrap();
    }
    c.advance(p.len() - 5);
    assert_eq!(c.len, 13);
    let got = m.head(&x).unwrap();
    let tail = want.narrow(1, 5, 8).unwrap();
    assert!(max_abs_diff(&tail, &got) < 1e-4);
    // Residual after the last layer, normed and projected, is the logits.
    let full = m
        .forward_output(
            Input::Ids(&ids(&p)),
            Forward {
                residuals: Some(&[1]),
                ..Default::default()
            },
        )
        .unwrap();
    let r = m.head(&full.residuals[0].1).unwrap();
    assert!(max_abs_diff(&r, full.logits.as_ref().unwrap()) < 1e-6);
    // Bad layer indices are errors.
    assert!(m
        .forward_output(
            Input::Ids(&ids(&p)),
            Forward {
                residuals: Some(&[2]),
                ..Default::default()
            }
        )
        .is_err());
    let ctx = m.step_context(1, p.len(), &Forward::default()).unwrap();
    let x = m.embed(&ids(&p)).unwrap();
    assert!(m.block_forward(9, &x, &ctx, None, None, None).is_err());
}

/// One recorded call: (event, layer, tokens, positions, generated).
type Event = (&'static str, usize, usize, Vec<u32>, Option<usize>);

/// Records every call and the residual after every FFN.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
    sequences: Vec<SequenceInfo>,
    residuals: Vec<Tensor>,
}

impl LayerHook for Recorder {
    fn begin_sequence(&mut self, info: &SequenceInfo) {
        self.sequences.push(info.clone());
    }
    fn before_attention(&mut self, s: &LayerSite<'_>) -> Result<()> {
        self.events.push((
            "before",
            s.layer,
            s.step.tokens,
            s.step.positions.clone(),
            s.step.generated,
        ));
        Ok(())
    }
    fn after_attention(&mut self, s: &LayerSite<'_>) -> Result<FfnDecision> {
        self.events.push((
            "attn",
            s.layer,
            s.step.tokens,
            s.step.positions.clone(),
            s.step.generated,
        ));
        Ok(FfnDecision::Run)
    }
    fn after_ffn(&mut self, s: &LayerSite<'_>, _ran: &FfnDecision) -> Result<()> {
        self.events.push((
            "ffn",
            s.layer,
            s.step.tokens,
            s.step.positions.clone(),
            s.step.generated,
        ));
        self.residuals.push(s.residual.clone());
        Ok(())
    }
    fn summary(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "events": self.events.len() }))
    }
}

#[test]
fn hook_sees_every_block_of_every_decoding_step() {
    let m = tiny_model(2).unwrap();
    let p = prompt(6);
    let sp = SamplingParams {
        max_tokens: 4,
        ..Default::default()
    };
    let plain = generate(&m, &p, &sp, &mut |_| true).unwrap();
    let mut rec = Recorder::default();
    let g = generate_with(&m, &p, &sp, Some(&mut rec), &mut |_| true).unwrap();
    assert_eq!(g.tokens, plain.tokens, "a do-nothing hook changes nothing");
    assert_eq!(rec.sequences.len(), 1);
    assert_eq!(rec.sequences[0].prompt_lens, [6]);
    assert_eq!(rec.sequences[0].max_new_tokens, 4);
    // Prompt step, then one step per generated token fed back (the last token is not fed).
    let steps = 1 + g.tokens.len().saturating_sub(1);
    assert_eq!(rec.events.len(), steps * 2 * 3);
    let (_, l, t, pos, gen) = &rec.events[0];
    assert_eq!((*l, *t, gen.is_none()), (0, 6, true));
    assert_eq!(pos, &(0..6).collect::<Vec<u32>>());
    let decode: Vec<_> = rec.events.iter().skip(6).collect();
    for (k, e) in decode.iter().enumerate() {
        let step = k / 6;
        assert_eq!(e.2, 1, "one token per decoding step");
        assert_eq!(e.3, vec![6 + step as u32]);
        assert_eq!(e.4, Some(step));
        assert_eq!(e.1, (k / 3) % 2);
    }
    // The residual after the last block is what the head sees.
    let last_prompt = &rec.residuals[1];
    let logits = m.head(&last_prompt.narrow(1, 5, 1).unwrap()).unwrap();
    let want = m.next_logits(&p, &mut Cache::new(2)).unwrap();
    let got: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
    let d = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-4);
    assert_eq!(
        g.hook,
        Some(serde_json::json!({ "events": rec.events.len() }))
    );
}

/// A model whose FFN outputs are exactly zero (down projection zeroed).
fn without_ffn(seed: u64) -> Llama {
    let mut m = tiny_model(seed).unwrap();
    for b in &mut m.blocks {
        let (o, i) = b.down.dims();
        b.down
            .set_mask(Tensor::zeros((o, i), DType::F32, &Device::Cpu).unwrap())
            .unwrap();
    }
    m
}

#[test]
fn always_veto_equals_the_model_without_ffns() {
    let m = tiny_model(3).unwrap();
    let z = without_ffn(3);
    let p = prompt(9);
    let skip = m
        .forward(
            Input::Ids(&ids(&p)),
            Forward {
                hook: Some(&mut SkipAllFfn),
                ..Default::default()
            },
        )
        .unwrap();
    let want = z.forward(Input::Ids(&ids(&p)), Forward::default()).unwrap();
    assert!(max_abs_diff(&skip, &want) < 1e-5);
    let base = m.forward(Input::Ids(&ids(&p)), Forward::default()).unwrap();
    assert!(max_abs_diff(&skip, &base) > 1e-3);
    // During generation too (attention and the cache still run).
    let sp = SamplingParams {
        max_tokens: 5,
        ..Default::default()
    };
    let a = generate_with(&m, &p, &sp, Some(&mut SkipAllFfn), &mut |_| true).unwrap();
    let b = generate(&z, &p, &sp, &mut |_| true).unwrap();
    assert_eq!(a.tokens, b.tokens);
}

/// Skips the FFN of layer 1 for the tokens at odd positions.
struct OddTokens;
impl LayerHook for OddTokens {
    fn after_attention(&mut self, s: &LayerSite<'_>) -> Result<FfnDecision> {
        if s.layer != 1 {
            return Ok(FfnDecision::Run);
        }
        Ok(FfnDecision::PerToken(
            s.step.positions.iter().map(|p| p % 2 == 0).collect(),
        ))
    }
}

/// Skips layer 1's FFN for every token at an odd position, one decision per whole step.
struct OddStep;
impl LayerHook for OddStep {
    fn after_attention(&mut self, s: &LayerSite<'_>) -> Result<FfnDecision> {
        Ok(if s.layer == 1 && s.step.positions[0] % 2 == 1 {
            FfnDecision::Skip
        } else {
            FfnDecision::Run
        })
    }
}

#[test]
fn per_token_veto_matches_per_step_veto_while_decoding() {
    let m = tiny_model(4).unwrap();
    let p = prompt(7);
    // Whole prompt at once with per-token decisions == token-by-token decoding with per-step decisions.
    let a = m
        .forward(
            Input::Ids(&ids(&p)),
            Forward {
                hook: Some(&mut OddTokens),
                ..Default::default()
            },
        )
        .unwrap();
    let mut cache = Cache::new(2);
    let mut rows = Vec::new();
    for &t in &p {
        rows.push(
            m.forward(
                Input::Ids(&ids(&[t])),
                Forward {
                    cache: Some(&mut cache),
                    hook: Some(&mut OddStep),
                    ..Default::default()
                },
            )
            .unwrap(),
        );
    }
    let b = Tensor::cat(&rows, 1).unwrap();
    assert!(max_abs_diff(&a, &b) < 1e-4);
    let plain = m.forward(Input::Ids(&ids(&p)), Forward::default()).unwrap();
    assert!(max_abs_diff(&a, &plain) > 1e-4);
    // A decision of the wrong length is an error.
    struct Bad;
    impl LayerHook for Bad {
        fn after_attention(&mut self, _s: &LayerSite<'_>) -> Result<FfnDecision> {
            Ok(FfnDecision::PerToken(vec![true]))
        }
    }
    assert!(m
        .forward(
            Input::Ids(&ids(&p)),
            Forward {
                hook: Some(&mut Bad),
                ..Default::default()
            }
        )
        .is_err());
}

#[test]
fn batch_generation_passes_the_hook_per_row() {
    let m = tiny_model(5).unwrap();
    let prompts = vec![prompt(5), prompt(3)];
    let sp = SamplingParams {
        max_tokens: 3,
        ..Default::default()
    };
    let mut rec = Recorder::default();
    let gens = generate_batch_with(&m, &prompts, &sp, Some(&mut rec)).unwrap();
    assert_eq!(rec.sequences[0].prompt_lens, [5, 3]);
    // Prefill: left-padded positions of both rows.
    assert_eq!(rec.events[0].3, vec![0, 1, 2, 3, 4, 0, 0, 0, 1, 2]);
    assert!(rec
        .events
        .iter()
        .skip(6)
        .all(|e| e.2 == 1 && e.3.len() == 2));
    assert_eq!(rec.events[6].3, vec![5, 3]);
    assert!(gens.iter().all(|g| g.hook.is_some()));
    let plain = generate_batch(&m, &prompts, &sp).unwrap();
    for (a, b) in gens.iter().zip(&plain) {
        assert_eq!(a.tokens, b.tokens);
    }
}

#[test]
fn perplexity_takes_a_hook() {
    let m = tiny_model(6).unwrap();
    let p = prompt(40);
    let a = perplexity::perplexity(&m, &p, 16, 8, 0, &mut |_, _| {}).unwrap();
    let mut rec = Recorder::default();
    let b = perplexity::perplexity_with(&m, &p, 16, 8, 0, Some(&mut rec), &mut |_, _| {}).unwrap();
    assert_eq!(a.perplexity, b.perplexity);
    assert_eq!(rec.sequences.len(), a.windows);
    let c = perplexity::perplexity_with(&m, &p, 16, 8, 0, Some(&mut SkipAllFfn), &mut |_, _| {})
        .unwrap();
    assert_ne!(a.perplexity, c.perplexity);
}

#[test]
fn chunked_prefill_and_blocked_attention_equal_the_plain_path() {
    let mut m = tiny_model(7).unwrap();
    let p = prompt(70);
    m.prefill_chunk = 0;
    m.attention_block = 0;
    let want = m.forward(Input::Ids(&ids(&p)), Forward::default()).unwrap();
    for (chunk, block) in [(16, 0), (0, 8), (16, 8), (7, 5), (64, 13)] {
        m.prefill_chunk = chunk;
        m.attention_block = block;
        let got = m.forward(Input::Ids(&ids(&p)), Forward::default()).unwrap();
        assert!(
            max_abs_diff(&want, &got) < 1e-4,
            "chunk {chunk}, block {block}"
        );
        let last = m
            .forward(
                Input::Ids(&ids(&p)),
                Forward {
                    last_only: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(max_abs_diff(&want.narrow(1, 69, 1).unwrap(), &last) < 1e-4);
        let from = m
            .forward(
                Input::Ids(&ids(&p)),
                Forward {
                    logits_from: Some(30),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(max_abs_diff(&want.narrow(1, 30, 40).unwrap(), &from) < 1e-4);
    }
    // Batched, left-padded prompts through chunks and blocks: each row equals its own unpadded forward.
    let sp = SamplingParams {
        max_tokens: 4,
        ..Default::default()
    };
    let prompts = vec![prompt(40), prompt(23)];
    m.prefill_chunk = 0;
    m.attention_block = 0;
    let plain = generate_batch(&m, &prompts, &sp).unwrap();
    m.prefill_chunk = 8;
    m.attention_block = 6;
    let chunked = generate_batch(&m, &prompts, &sp).unwrap();
    for (a, b) in plain.iter().zip(&chunked) {
        assert_eq!(a.tokens, b.tokens);
        for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
            assert!((x - y).abs() < 1e-4);
        }
    }
    // A cache filled by a chunked prefill continues like one filled in one go.
    let mut c1 = Cache::new(2);
    let mut c2 = Cache::new(2);
    m.prefill_chunk = 0;
    let a = m.next_logits(&p, &mut c1).unwrap();
    m.prefill_chunk = 9;
    let b = m.next_logits(&p, &mut c2).unwrap();
    assert_eq!(c1.len, c2.len);
    assert_eq!(c2.layer_len(0), 70);
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-4);
}

#[test]
fn rope_tables_grow_lazily() {
    let m = tiny_model(8).unwrap();
    assert_eq!(m.rope_len(), 0, "nothing built at load");
    m.next_logits(&prompt(10), &mut Cache::new(2)).unwrap();
    let n = m.rope_len();
    assert!((10..=64).contains(&n), "{n}");
    m.next_logits(&prompt(100), &mut Cache::new(2)).unwrap();
    assert!(m.rope_len() >= 100 && m.rope_len() <= m.max_positions());
    // Tables grown in between give the same logits.
    let fresh = tiny_model(8).unwrap();
    let a = fresh.next_logits(&prompt(10), &mut Cache::new(2)).unwrap();
    let b = m.next_logits(&prompt(10), &mut Cache::new(2)).unwrap();
    assert_eq!(a, b);
    // Positions beyond the limit are refused before anything is allocated.
    let pos = Tensor::new(&[[0u32, m.max_positions() as u32]], &Device::Cpu).unwrap();
    assert!(m
        .forward(
            Input::Ids(&ids(&[3, 4])),
            Forward {
                positions: Some(&pos),
                ..Default::default()
            }
        )
        .is_err());
}
