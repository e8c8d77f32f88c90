//! The FFN-SkipLLM rule on tiny random models: +∞ threshold is the runtime bit for bit, −1 skips every eligible
//! FFN while cold layers and warm-up / anchor tokens run, KV caches stay consistent, teacher-forced scoring equals
//! token-by-token decoding, the random-span baseline, and a pruned model.
use candle_core::{Tensor, Var};
use tessera_lm::model::Block;
use tessera_lm::testing::tiny_model;
use tessera_lm::*;
use tessera_skip::eval::continuation_nll;
use tessera_skip::{Budget, FfnSkipConfig, FfnSkipHook, SkipMode};

/// A tiny random model with `layers` layers (the blocks of `tiny_model` repeated, each with its own copy of the
/// weights, slightly rescaled so the layers differ).
fn deep_tiny(layers: usize, seed: u64) -> Llama {
    let base = tiny_model(seed).unwrap();
    let copy = |v: &Var, s: f64| Var::from_tensor(&(v.as_tensor() * s).unwrap()).unwrap();
    let blocks: Vec<Block> = (0..layers)
        .map(|i| {
            let b = &base.blocks[i % base.blocks.len()];
            let s = 1.0 - 0.03 * i as f64;
            let lin = |l: &Linear| Linear::new(copy(l.weight(), s));
            Block {
                attn_norm: copy(&b.attn_norm, 1.0),
                q: lin(&b.q),
                k: lin(&b.k),
                v: lin(&b.v),
                o: lin(&b.o),
                ffn_norm: copy(&b.ffn_norm, 1.0),
                gate: lin(&b.gate),
                up: lin(&b.up),
                down: lin(&b.down),
            }
        })
        .collect();
    let mut config = base.config.clone();
    config.num_hidden_layers = layers;
    Llama::from_parts(
        config,
        copy(&base.embed, 1.0),
        blocks,
        copy(&base.norm, 1.0),
        None,
        base.tokenizer.clone(),
    )
    .unwrap()
}

fn prompt(n: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 37 + 11) % 250 + 2) as u32).collect()
}

/// Never stops at EOS: greedy over every token but EOS (id 0) so generations have a fixed length.
fn no_eos(m: &mut Llama) {
    if let Some(t) = m.tokenizer.as_mut() {
        t.eos_ids = vec![u32::MAX];
    }
}

/// Records every decision of the wrapped hook: (layer, generated index or None, ran).
struct Spy {
    inner: FfnSkipHook,
    seen: Vec<(usize, Option<usize>, bool)>,
    gen: Option<usize>,
}

impl LayerHook for Spy {
    fn begin_sequence(&mut self, i: &SequenceInfo) {
        self.inner.begin_sequence(i)
    }
    fn begin_step(&mut self, s: &StepInfo) {
        self.gen = s.generated;
        self.inner.begin_step(s)
    }
    fn after_attention(&mut self, s: &LayerSite<'_>) -> Result<FfnDecision> {
        let d = self.inner.after_attention(s)?;
        if s.step.tokens == 1 {
            self.seen.push((s.layer, self.gen, d.runs(0)));
        }
        Ok(d)
    }
    fn after_ffn(&mut self, s: &LayerSite<'_>, r: &FfnDecision) -> Result<()> {
        self.inner.after_ffn(s, r)
    }
    fn end_step(&mut self, s: &StepInfo) {
        self.inner.end_step(s)
    }
    fn summary(&self) -> Option<serde_json::Value> {
        self.inner.summary()
    }
}

fn greedy(n: usize) -> SamplingParams {
    SamplingParams {
        max_tokens: n,
        ..Default::default()
    }
}

#[test]
fn infinite_threshold_is_bit_identical_to_the_runtime() {
    let mut m = deep_tiny(12, 3);
    no_eos(&mut m);
    // A hooked step always runs the runtime's general path; the reference runs on it too (the one-token path gives
    // the same logits up to float rounding, tessera-lm's tests/runtime.rs).
    m.fast_decode = false;
    let p = prompt(9);
    let plain = generate(&m, &p, &greedy(20), &mut |_| true).unwrap();
    let cfg = FfnSkipConfig {
        threshold: f64::INFINITY,
        budget: Budget::All,
        ..Default::default()
    };
    let mut h = FfnSkipHook::new(&cfg, 12).unwrap();
    let g = generate_with(&m, &p, &greedy(20), Some(&mut h), &mut |_| true).unwrap();
    assert_eq!(g.tokens, plain.tokens);
    assert_eq!(
        g.logprobs.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        plain
            .logprobs
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    );
    assert_eq!(h.stats().skipped, 0);
    assert_eq!(h.stats().tokens, 19);
    assert_eq!(g.hook.unwrap()["skipped_fraction"], 0.0);
    // Batched generation too (with EOS, which pads the batch).
    let m = deep_tiny(12, 3);
    let prompts = vec![p.clone(), prompt(5)];
    let plain = generate_batch(&m, &prompts, &greedy(8)).unwrap();
    let mut h = FfnSkipHook::new(&cfg, 12).unwrap();
    let got = generate_batch_with(&m, &prompts, &greedy(8), Some(&mut h)).unwrap();
    for (a, b) in plain.iter().zip(&got) {
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(a.logprobs, b.logprobs);
    }
}

#[test]
fn threshold_minus_one_skips_every_eligible_ffn_and_respects_cold_layers_and_warmup() {
    let mut m = deep_tiny(12, 4);
    no_eos(&mut m);
    let cfg = FfnSkipConfig {
        threshold: -1.0,
        budget: Budget::All,
        ..Default::default()
    };
    let mut spy = Spy {
        inner: FfnSkipHook::new(&cfg, 12).unwrap(),
        seen: vec![],
        gen: None,
    };
    let plan = *spy.inner.plan();
    // 12 layers: cold 2 + 2 (5/30 scaled), eligible 2..10.
    assert_eq!((plan.cold_first, plan.cold_last), (2, 2));
    assert_eq!(
        (plan.first_eligible, plan.end_eligible, plan.span),
        (2, 10, 8)
    );
    let n = 150; // warm-up 150/64 = 2 tokens
    let g = generate_with(&m, &prompt(7), &greedy(n), Some(&mut spy), &mut |_| true).unwrap();
    assert_eq!(g.tokens.len(), n);
    let mut skipped = 0;
    for &(layer, gen, ran) in &spy.seen {
        let Some(gi) = gen else {
            assert!(ran, "prefill runs in full");
            continue;
        };
        let full_token = gi < 2 || (gi - 2) % 6 == 5;
        let eligible = (2..10).contains(&layer);
        assert_eq!(ran, full_token || !eligible, "layer {layer} token {gi}");
        skipped += usize::from(!ran);
    }
    let decoded = n - 1;
    let full_tokens = 2 + (2..decoded).filter(|g| (g - 2) % 6 == 5).count();
    assert_eq!(skipped, (decoded - full_tokens) * 8);
    let st = spy.inner.stats();
    assert_eq!(st.skipped as usize, skipped);
    assert_eq!(st.blocks as usize, decoded * 12);
    assert_eq!(st.per_layer()[0], 0.0);
    assert_eq!(st.per_layer()[11], 0.0);
    assert!(st.per_layer()[5] > 0.8);
    assert_eq!(st.per_position(12)[0], 0.0);
    assert!((st.per_position(12)[3] - 8.0 / 12.0).abs() < 1e-12);
    // A budget of 3 layers: exactly one span of 3 at the first eligible layer.
    let cfg3 = FfnSkipConfig {
        budget: Budget::Layers(3),
        ..cfg.clone()
    };
    let mut spy = Spy {
        inner: FfnSkipHook::new(&cfg3, 12).unwrap(),
        seen: vec![],
        gen: None,
    };
    generate_with(&m, &prompt(7), &greedy(10), Some(&mut spy), &mut |_| true).unwrap();
    for &(layer, gen, ran) in &spy.seen {
        if gen == Some(3) {
            assert_eq!(ran, !(2..5).contains(&layer), "layer {layer}");
        }
    }
    // The output changes (the FFNs matter in this model).
    let plain = generate(&m, &prompt(7), &greedy(n), &mut |_| true).unwrap();
    assert_ne!(plain.logprobs, g.logprobs);
}

#[test]
fn kv_cache_lengths_stay_consistent() {
    let m = deep_tiny(8, 5);
    let cfg = FfnSkipConfig {
        threshold: -1.0,
        budget: Budget::All,
        ..Default::default()
    };
    for mode in [SkipMode::Cosine, SkipMode::RandomSpan] {
        let mut h = FfnSkipHook::new(
            &FfnSkipConfig {
                mode,
                ..cfg.clone()
            },
            8,
        )
        .unwrap();
        let p = prompt(6);
        h.begin_sequence(&SequenceInfo::new(&[&p], 12));
        let mut cache = Cache::new(8);
        let mut feed = p.clone();
        for i in 0..12 {
            let ids = Tensor::new(feed.as_slice(), m.device())
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let logits = m
                .forward(
                    Input::Ids(&ids),
                    Forward {
                        cache: Some(&mut cache),
                        last_only: true,
                        hook: Some(&mut h),
                        generated: (i > 0).then(|| i - 1),
                        ..Default::default()
                    },
                )
                .unwrap();
            for l in 0..8 {
                assert_eq!(cache.layer_len(l), cache.len, "{mode} layer {l} step {i}");
            }
            let row: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
            let next = row
                .iter()
                .enumerate()
                .fold(0, |b, (j, &x)| if x > row[b] { j } else { b });
            feed = vec![next as u32];
        }
        assert_eq!(cache.len, 6 + 11);
        assert!(h.stats().skipped > 0);
    }
}

#[test]
fn teacher_forced_scoring_equals_decoding_with_the_rule() {
    let mut m = deep_tiny(12, 6);
    no_eos(&mut m);
    let p = prompt(8);
    for (mode, threshold) in [
        (SkipMode::Cosine, 0.5),
        (SkipMode::Cosine, -1.0),
        (SkipMode::RandomSpan, 0.0),
    ] {
        let cfg = FfnSkipConfig {
            mode,
            threshold,
            budget: Budget::Layers(4),
            ..Default::default()
        };
        let mut h = FfnSkipHook::new(&cfg, 12).unwrap();
        let g = generate_with(&m, &p, &greedy(16), Some(&mut h), &mut |_| true).unwrap();
        let gen_stats = h.take_stats();
        let mut h = FfnSkipHook::new(&cfg, 12).unwrap();
        let (nll, k) = continuation_nll(&m, &p, &g.tokens, 16, Some(&mut h)).unwrap();
        assert_eq!(k, 16);
        let want: f64 = -g.logprobs.iter().map(|&x| x as f64).sum::<f64>();
        assert!(
            (nll - want).abs() < 1e-3 * k as f64,
            "{mode} τ={threshold}: {nll} vs {want}"
        );
        // The same decisions: the teacher-forced pass also counts the last token, which decoding never feeds.
        let tf = h.stats();
        assert!(tf.skipped >= gen_stats.skipped && tf.skipped <= gen_stats.skipped + 12);
        assert_eq!(&tf.layer_skipped.iter().sum::<u64>(), &tf.skipped);
    }
}

#[test]
fn random_span_skips_one_contiguous_span_of_the_budget() {
    let mut m = deep_tiny(12, 7);
    no_eos(&mut m);
    let cfg = FfnSkipConfig {
        mode: SkipMode::RandomSpan,
        budget: Budget::Layers(3),
        seed: 11,
        ..Default::default()
    };
    let mut spy = Spy {
        inner: FfnSkipHook::new(&cfg, 12).unwrap(),
        seen: vec![],
        gen: None,
    };
    generate_with(&m, &prompt(5), &greedy(40), Some(&mut spy), &mut |_| true).unwrap();
    let mut starts = std::collections::BTreeSet::new();
    for gi in 1..39 {
        let skipped: Vec<usize> = spy
            .seen
            .iter()
            .filter(|s| s.1 == Some(gi) && !s.2)
            .map(|s| s.0)
            .collect();
        if (gi - 1) % 6 == 5 {
            assert!(skipped.is_empty());
            continue;
        }
        assert_eq!(skipped.len(), 3, "token {gi}");
        assert_eq!(skipped[2] - skipped[0], 2, "contiguous");
        assert!(skipped[0] >= 2 && skipped[2] < 10);
        starts.insert(skipped[0]);
    }
    assert!(starts.len() > 2, "random starts: {starts:?}");
}

#[test]
fn the_rule_works_on_a_pruned_model() {
    let mut m = deep_tiny(12, 8);
    no_eos(&mut m);
    // Prune half of every projection (a fixed checkerboard mask) with the runtime's baked masks.
    for b in &mut m.blocks {
        for (_, l) in b.linears_mut() {
            let (o, i) = l.dims();
            let mask: Vec<f32> = (0..o * i).map(|k| ((k / i + k % i) % 2) as f32).collect();
            l.set_mask(Tensor::from_vec(mask, (o, i), &candle_core::Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let p = prompt(6);
    // Same path as the hooked runs (see infinite_threshold_is_bit_identical_to_the_runtime).
    m.fast_decode = false;
    let plain = generate(&m, &p, &greedy(24), &mut |_| true).unwrap();
    let off = FfnSkipConfig::cosine(f64::INFINITY);
    let mut h = FfnSkipHook::new(&off, 12).unwrap();
    let same = generate_with(&m, &p, &greedy(24), Some(&mut h), &mut |_| true).unwrap();
    assert_eq!(same.logprobs, plain.logprobs);
    let on = FfnSkipConfig {
        threshold: -1.0,
        budget: Budget::Fraction(0.25),
        ..Default::default()
    };
    let mut h = FfnSkipHook::new(&on, 12).unwrap();
    let g = generate_with(&m, &p, &greedy(24), Some(&mut h), &mut |_| true).unwrap();
    assert_eq!(h.plan().span, 4); // round(0.25 · 12 · 6/5)
    let f = h.stats().skipped_fraction();
    assert!(f > 0.2 && f < 0.3, "{f}");
    assert_ne!(g.logprobs, plain.logprobs);
    let s = g.hook.unwrap();
    assert!((s["skipped_fraction"].as_f64().unwrap() - f).abs() < 1e-12);
}

#[test]
fn bad_settings_are_errors() {
    for cfg in [
        FfnSkipConfig::cosine(f64::NAN),
        FfnSkipConfig {
            cold_first: Some(7),
            cold_last: Some(6),
            ..Default::default()
        },
        FfnSkipConfig {
            full_every: 1,
            ..Default::default()
        },
        FfnSkipConfig {
            budget: Budget::Fraction(-0.5),
            ..Default::default()
        },
    ] {
        assert!(FfnSkipHook::new(&cfg, 12).is_err(), "{cfg:?}");
    }
}
