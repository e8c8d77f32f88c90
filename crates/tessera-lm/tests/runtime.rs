//! Runtime behaviour on tiny random models: caching, batching, hooks, autograd, save/load.
use candle_core::{DType, Device, Tensor, D};
use tessera_lm::testing::{ids, max_abs_diff, tiny_model};
use tessera_lm::*;

const PROMPT: [u32; 9] = [5, 17, 99, 3, 200, 42, 7, 7, 150];

#[test]
fn incremental_decoding_matches_full_forward() {
    let m = tiny_model(1).unwrap();
    let full = m
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    let mut cache = Cache::new(m.config.num_hidden_layers);
    let first = m
        .forward(
            Input::Ids(&ids(&PROMPT[..4])),
            Forward {
                cache: Some(&mut cache),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(max_abs_diff(&first, &full.narrow(1, 0, 4).unwrap()) < 1e-5);
    for (i, &t) in PROMPT.iter().enumerate().skip(4) {
        let step = m
            .forward(
                Input::Ids(&ids(&[t])),
                Forward {
                    cache: Some(&mut cache),
                    last_only: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let d = max_abs_diff(&step, &full.narrow(1, i, 1).unwrap());
        assert!(d < 1e-4, "position {i}: {d}");
    }
    assert_eq!(cache.len, PROMPT.len());
}

#[test]
fn train_mode_matches_inference_mode() {
    let m = tiny_model(2).unwrap();
    let a = m
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    let b = m
        .forward(
            Input::Ids(&ids(&PROMPT)),
            Forward {
                train: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(max_abs_diff(&a, &b) < 1e-4);
}

#[test]
fn embeddings_input_matches_ids_input() {
    let m = tiny_model(3).unwrap();
    let a = m
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    let e = m.embed_ids(&ids(&PROMPT)).unwrap();
    let b = m.forward(Input::Embeds(&e), Forward::default()).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn prefix_key_values_act_like_a_cached_prompt() {
    let m = tiny_model(4).unwrap();
    let (head, tail) = PROMPT.split_at(5);
    let mut cache = Cache::new(m.config.num_hidden_layers);
    m.forward(
        Input::Ids(&ids(head)),
        Forward {
            cache: Some(&mut cache),
            ..Default::default()
        },
    )
    .unwrap();
    let want = m
        .forward(
            Input::Ids(&ids(tail)),
            Forward {
                cache: Some(&mut cache.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    let prefix = cache.layer_kv().unwrap();
    let pos = Tensor::new(&[5u32, 6, 7, 8], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let got = m
        .forward(
            Input::Ids(&ids(tail)),
            Forward {
                prefix: Some(&prefix),
                positions: Some(&pos),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(max_abs_diff(&want, &got) < 1e-4);
}

struct RunAll;
impl LayerHook for RunAll {}

#[test]
fn ffn_gate_controls_the_mlp() {
    let m = tiny_model(5).unwrap();
    let base = m
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    let run = m
        .forward(
            Input::Ids(&ids(&PROMPT)),
            Forward {
                hook: Some(&mut RunAll),
                ..Default::default()
            },
        )
        .unwrap();
    let skip = m
        .forward(
            Input::Ids(&ids(&PROMPT)),
            Forward {
                hook: Some(&mut SkipAllFfn),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(max_abs_diff(&base, &run), 0.0);
    assert!(max_abs_diff(&base, &skip) > 1e-3);
}

#[test]
fn batch_generation_matches_single_generation() {
    let m = tiny_model(6).unwrap();
    let p = SamplingParams {
        max_tokens: 8,
        ..Default::default()
    };
    let prompts = vec![
        vec![5u32, 17, 99],
        vec![3u32, 200, 42, 7, 7, 150],
        vec![9u32],
    ];
    let batch = generate_batch(&m, &prompts, &p).unwrap();
    for (q, b) in prompts.iter().zip(&batch) {
        let single = generate(&m, q, &p, &mut |_| true).unwrap();
        assert_eq!(single.tokens, b.tokens, "prompt {q:?}");
    }
    // Top alternatives: greedy picks the first one; batched rows list the same tokens as single runs.
    let p = SamplingParams {
        top_logprobs: 4,
        ..p
    };
    let batch = generate_batch(&m, &prompts, &p).unwrap();
    for (q, b) in prompts.iter().zip(&batch) {
        let single = generate(&m, q, &p, &mut |_| true).unwrap();
        assert_eq!(single.top_logprobs.len(), single.tokens.len());
        for (i, alts) in single.top_logprobs.iter().enumerate() {
            assert_eq!(alts.len(), 4);
            assert_eq!(alts[0].0, single.tokens[i]);
            assert!((alts[0].1 - single.logprobs[i]).abs() < 1e-6);
            let batch_ids: Vec<u32> = b.top_logprobs[i].iter().map(|a| a.0).collect();
            let single_ids: Vec<u32> = alts.iter().map(|a| a.0).collect();
            assert_eq!(batch_ids, single_ids, "prompt {q:?} step {i}");
        }
    }
    assert!(SamplingParams {
        top_logprobs: 21,
        ..p
    }
    .validate()
    .is_err());
}

#[test]
fn top_alternatives_are_sorted_normalised_log_probabilities() {
    let logits = [1.0f32, 3.0, 3.0, -2.0, 0.5];
    let top = tessera_lm::top_alternatives(&logits, 3);
    assert_eq!(top.iter().map(|a| a.0).collect::<Vec<_>>(), vec![1, 2, 0]);
    let z: f32 = logits.iter().map(|l| l.exp()).sum();
    assert!((top[0].1 - (3.0f32.exp() / z).ln()).abs() < 1e-6);
    let all = tessera_lm::top_alternatives(&logits, 99);
    assert_eq!(all.len(), 5);
    let mass: f32 = all.iter().map(|a| a.1.exp()).sum();
    assert!((mass - 1.0).abs() < 1e-5);
    assert!(tessera_lm::top_alternatives(&logits, 0).is_empty());
}

#[test]
fn sampling_is_reproducible_and_respects_limits() {
    let m = tiny_model(7).unwrap();
    let p = SamplingParams {
        max_tokens: 12,
        temperature: 1.0,
        top_k: 20,
        top_p: 0.9,
        seed: 11,
        ..Default::default()
    };
    let a = generate(&m, &PROMPT, &p, &mut |_| true).unwrap();
    let b = generate(&m, &PROMPT, &p, &mut |_| true).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert!(a.tokens.len() <= 12);
    assert!(a.logprobs.iter().all(|&l| l <= 0.0));
    let mut streamed = String::new();
    let c = generate(&m, &PROMPT, &p, &mut |s| {
        streamed.push_str(s);
        true
    })
    .unwrap();
    assert_eq!(streamed, c.text);
    // Cancellation after the first piece.
    let mut calls = 0;
    let d = generate(
        &m,
        &PROMPT,
        &SamplingParams {
            max_tokens: 50,
            ..p.clone()
        },
        &mut |_| {
            calls += 1;
            false
        },
    )
    .unwrap();
    if calls > 0 {
        assert_eq!(d.finish_reason, FinishReason::Cancelled);
    }
    assert!(SamplingParams { top_p: 0.0, ..p }.validate().is_err());
}

#[test]
fn stop_strings_end_generation_and_are_not_returned() {
    let m = tiny_model(8).unwrap();
    let free = generate(
        &m,
        &PROMPT,
        &SamplingParams {
            max_tokens: 20,
            ..Default::default()
        },
        &mut |_| true,
    )
    .unwrap();
    let chars: Vec<char> = free.text.chars().collect();
    if chars.len() >= 4 {
        let stop: String = chars[2..4].iter().collect();
        let cut = free.text.find(&stop).unwrap();
        let g = generate(
            &m,
            &PROMPT,
            &SamplingParams {
                max_tokens: 20,
                stop: vec![stop],
                ..Default::default()
            },
            &mut |_| true,
        )
        .unwrap();
        assert_eq!(g.text, free.text[..cut]);
        assert_eq!(g.finish_reason, FinishReason::Stop);
    }
}

/// A tiny model with rank-4 LoRA adapters on every q and v projection.
fn tiny_model_with_lora(seed: u64) -> tessera_lm::Llama {
    let mut m = tiny_model(seed).unwrap();
    for (i, b) in m.blocks.iter_mut().enumerate() {
        b.q.add_lora(4, 8.0, i as u64).unwrap();
        b.v.add_lora(4, 8.0, 100 + i as u64).unwrap();
    }
    m
}

#[test]
fn lora_gradients_flow_on_a_128_token_batch() {
    let m = tiny_model_with_lora(9);
    let toks: Vec<u32> = (0..129u32).map(|i| (i * 37 + 11) % 250 + 2).collect();
    let x = ids(&toks[..128]);
    let y = Tensor::new(&toks[1..], &Device::Cpu).unwrap();
    let logits = m
        .forward(
            Input::Ids(&x),
            Forward {
                train: true,
                ..Default::default()
            },
        )
        .unwrap()
        .squeeze(0)
        .unwrap();
    // LoRA B starts at zero, so dL/dA is zero at first; dL/dB must not be.
    let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
    let grads = loss.backward().unwrap();
    for v in m.lora_vars() {
        let g = grads.get(&v).expect("every LoRA parameter has a gradient");
        assert_eq!(g.dims(), v.dims());
    }
    let b0 = m.blocks[0].q.lora().unwrap().b.clone();
    let gb = grads
        .get(&b0)
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(gb > 0.0, "LoRA B gradient is zero");
    // Base weights are frozen under LoRA.
    assert!(grads.get(m.blocks[0].q.weight()).is_none());
}

#[test]
fn adapter_training_freezes_the_base_and_keeps_the_same_lora_gradients() {
    let m = tiny_model_with_lora(9);
    // Make B non-zero so that dL/dA is non-trivial too.
    for v in m.lora_vars() {
        let r = v.affine(0.0, 0.01).unwrap();
        v.set(&(v.as_tensor() + r).unwrap()).unwrap();
    }
    let toks: Vec<u32> = (0..65u32).map(|i| (i * 53 + 7) % 250 + 2).collect();
    let loss_of = |freeze_base: bool| m.next_token_loss(&toks, freeze_base).unwrap();
    let full = loss_of(false).backward().unwrap();
    let adapters = loss_of(true).backward().unwrap();
    for v in m.lora_vars() {
        let a = full.get(&v).unwrap();
        let b = adapters
            .get(&v)
            .expect("LoRA parameters still get gradients");
        let diff = max_abs_diff(a, b);
        let scale = max_abs_diff(a, &a.zeros_like().unwrap());
        assert!(
            scale > 0.0 && diff <= 1e-5 * scale.max(1e-3),
            "diff {diff} scale {scale}"
        );
    }
    // Full mode trains the non-adapted weights; adapter mode leaves every base parameter without a gradient.
    assert!(full.get(m.blocks[0].k.weight()).is_some());
    for (name, v) in m.named_vars() {
        assert!(adapters.get(&v).is_none(), "{name} got a gradient");
    }
}

#[test]
fn frozen_matmul_gives_the_input_gradient_of_a_plain_matmul() {
    let x = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 7), &Device::Cpu).unwrap())
        .unwrap();
    let w = Tensor::randn(0f32, 1.0, (3, 7), &Device::Cpu).unwrap();
    let plain = x.as_tensor().matmul(&w.t().unwrap()).unwrap();
    let frozen = tessera_lm::linear::frozen_matmul(x.as_tensor(), &w).unwrap();
    assert!(max_abs_diff(&plain, &frozen) < 1e-6);
    let gp = plain.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let gf = frozen.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(max_abs_diff(gp.get(&x).unwrap(), gf.get(&x).unwrap()) < 1e-5);
}

#[test]
fn full_weight_gradients_respect_the_mask() {
    let mut m = tiny_model(10).unwrap();
    let (o, i) = m.blocks[1].up.dims();
    let mask: Vec<f32> = (0..o * i).map(|k| (k % 2) as f32).collect();
    m.blocks[1]
        .up
        .set_mask(Tensor::from_vec(mask, (o, i), &Device::Cpu).unwrap())
        .unwrap();
    let w = m.blocks[1]
        .up
        .weight()
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(
        w.iter().step_by(2).all(|&x| x == 0.0),
        "set_mask zeroes masked weights"
    );
    let x = ids(&PROMPT);
    let logits = m
        .forward(
            Input::Ids(&x),
            Forward {
                train: true,
                ..Default::default()
            },
        )
        .unwrap();
    let loss = logits.sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let g = grads
        .get(m.blocks[1].up.weight())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(
        g.iter().step_by(2).all(|&x| x == 0.0),
        "masked entries get zero gradient"
    );
    assert!(g.iter().skip(1).step_by(2).any(|&x| x != 0.0));
    assert!(grads.get(m.blocks[0].gate.weight()).is_some());
}

#[test]
fn lora_merge_keeps_the_mask_exact() {
    let mut m = tiny_model(11).unwrap();
    let l = &mut m.blocks[0].down;
    let (o, i) = l.dims();
    let mask = Tensor::from_vec(
        (0..o * i)
            .map(|k| ((k % 3) != 0) as u8 as f32)
            .collect::<Vec<_>>(),
        (o, i),
        &Device::Cpu,
    )
    .unwrap();
    l.set_mask(mask.clone()).unwrap();
    let lo = l.add_lora(2, 4.0, 1).unwrap();
    lo.b.set(&Tensor::ones(lo.b.dims(), DType::F32, &Device::Cpu).unwrap())
        .unwrap();
    let before = m
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    let l = &mut m.blocks[0].down;
    l.merge_lora().unwrap();
    let w = l.weight().as_tensor();
    let off = w
        .mul(&(1.0 - &mask).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(off, 0.0);
    let after = m
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    assert!(
        max_abs_diff(&before, &after) < 1e-5,
        "a SparseLoRA merge computes what was trained"
    );
}

#[test]
fn observer_accumulates_input_statistics() {
    let mut m = tiny_model(12).unwrap();
    m.blocks[0].gate.observe(true);
    m.blocks[0].down.observe(false);
    m.forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    m.forward(Input::Ids(&ids(&PROMPT[..3])), Forward::default())
        .unwrap();
    let s = m.blocks[0].gate.take_stats().unwrap();
    assert_eq!(s.rows, 12);
    let g = s.gram.unwrap();
    let d = s.sq_norm.len();
    for j in 0..d {
        assert!(
            (g[j * d + j] - s.sq_norm[j]).abs() < 1e-3 * s.sq_norm[j].max(1.0),
            "Gram diagonal = squared norms"
        );
    }
    let d2 = m.blocks[0].down.take_stats().unwrap();
    assert_eq!(d2.rows, 12);
    assert!(d2.gram.is_none());
    // Independent check: the first query projection sees RMSNorm(embedding) * weight.
    m.blocks[0].q.observe(false);
    m.forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    let q = m.blocks[0].q.take_stats().unwrap();
    let e = m
        .embed_ids(&ids(&PROMPT))
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let w = m.blocks[0].attn_norm.as_tensor().to_vec1::<f32>().unwrap();
    let mut want = vec![0f64; w.len()];
    for row in &e {
        let rms = (row.iter().map(|x| x * x).sum::<f32>() / row.len() as f32 + 1e-5).sqrt();
        for (j, x) in row.iter().enumerate() {
            want[j] += ((x / rms * w[j]) as f64).powi(2);
        }
    }
    for (a, b) in q.sq_norm.iter().zip(&want) {
        assert!((a - b).abs() < 1e-3 * b.max(1.0), "{a} vs {b}");
    }
    assert!(m.blocks[0].gate.take_stats().is_none());
}

#[test]
fn save_and_load_round_trip_bit_exactly() {
    let m = tiny_model(13).unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_safetensors_dir(&m, dir.path()).unwrap();
    let m2 = load(dir.path()).unwrap();
    for ((n1, a), (n2, b)) in m.named_vars().iter().zip(m2.named_vars().iter()) {
        assert_eq!(n1, n2);
        assert_eq!(max_abs_diff(a.as_tensor(), b.as_tensor()), 0.0, "{n1}");
    }
    let a = m
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    let b = m2
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    let t1 = m.tokenizer().unwrap();
    let t2 = m2.tokenizer().unwrap();
    assert_eq!(
        t1.encode("hello there 123").unwrap(),
        t2.encode("hello there 123").unwrap()
    );
    assert_eq!(t1.eos_ids, t2.eos_ids);
}

#[test]
fn f32_gguf_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.gguf");
    tessera_lm::testing::write_tiny_gguf(&src, 14).unwrap();
    let dst = dir.path().join("b.gguf");
    tessera_lm::export::gguf_to_f32(&src, &dst).unwrap();
    let (a, b) = (load(&src).unwrap(), load(&dst).unwrap());
    let la = a
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    let lb = b
        .forward(Input::Ids(&ids(&PROMPT)), Forward::default())
        .unwrap();
    assert_eq!(max_abs_diff(&la, &lb), 0.0);
}

#[test]
fn tokenizer_splits_digits_and_renders_chat() {
    let m = tiny_model(15).unwrap();
    let t = m.tokenizer().unwrap();
    let ids = t.encode("hello 123").unwrap();
    assert_eq!(t.decode(&ids, false).unwrap(), "hello 123");
    // Digits are split one by one, and "he"+"ll" merged.
    let toks: Vec<String> = ids.iter().map(|&i| t.id_to_token(i).unwrap()).collect();
    assert!(toks.contains(&"hell".to_string()), "{toks:?}");
    assert!(
        toks.ends_with(&["1".into(), "2".into(), "3".into()]),
        "{toks:?}"
    );
    let chat = t.template.render(&[ChatMessage::new("user", "hi")], true);
    assert_eq!(
        chat,
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    let enc = t.encode_chat(&[ChatMessage::new("user", "hi")]).unwrap();
    assert_eq!(enc[0], 1, "<|im_start|> is one special token");
    assert!(enc.contains(&0), "<|im_end|> is one special token");
}

#[test]
fn perplexity_protocol_scores_every_token_once() {
    let m = tiny_model(16).unwrap();
    let toks: Vec<u32> = (0..50u32).map(|i| (i * 13) % 200 + 2).collect();
    let r = tessera_lm::perplexity::perplexity(&m, &toks, 16, 8, 0, &mut |_, _| {}).unwrap();
    assert_eq!(r.scored_tokens, 49);
    // One window covering everything gives the same answer as the exact full-sequence NLL.
    let one = tessera_lm::perplexity::perplexity(&m, &toks, 64, 64, 0, &mut |_, _| {}).unwrap();
    let logits = m
        .forward(Input::Ids(&ids(&toks)), Forward::default())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let mut nll = 0f64;
    for i in 0..49 {
        nll -= lsm
            .get(i)
            .unwrap()
            .get(toks[i + 1] as usize)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
    }
    assert!((one.nll - nll / 49.0).abs() < 1e-5);
    assert!(tessera_lm::perplexity::perplexity(&m, &toks, 16, 0, 0, &mut |_, _| {}).is_err());
    assert!(tessera_lm::perplexity::tokenize_document(&m, "  \n\r\n").is_err());
}

/// Feeds `prompt`, then `steps` one token at a time, except that the two tokens at `pair` go in one step (the
/// general path reading a cache the one-token path wrote, and back). Returns every step's last logits.
fn decode_run(m: &Llama, prompt: &[u32], steps: &[u32], pair: usize) -> (Vec<Tensor>, Cache) {
    let mut cache = Cache::new(m.config.num_hidden_layers);
    let mut out = Vec::new();
    let feed = |toks: &[u32], cache: &mut Cache| {
        m.forward(
            Input::Ids(&ids(toks)),
            Forward {
                cache: Some(cache),
                last_only: true,
                ..Default::default()
            },
        )
        .unwrap()
    };
    out.push(feed(prompt, &mut cache));
    let mut i = 0;
    while i < steps.len() {
        let n = if i == pair { 2 } else { 1 };
        out.push(feed(&steps[i..i + n], &mut cache));
        i += n;
    }
    (out, cache)
}

/// The one-token decode path (`src/decode.rs`) gives the general path's logits at every step, also when the two
/// paths take turns on one cache and past the point where its key/value buffers grow, for dense f32, Q8_0 and
/// compressed sparse weights.
#[test]
fn one_token_path_matches_general_path() {
    let steps: Vec<u32> = (0..80u32).map(|i| (i * 37 + 11) % 250).collect();
    let check = |mut m: Llama, what: &str| {
        m.fast_decode = false;
        let (want, wc) = decode_run(&m, &PROMPT, &steps, 30);
        m.fast_decode = true;
        let (got, gc) = decode_run(&m, &PROMPT, &steps, 30);
        assert_eq!(want.len(), got.len());
        for (i, (a, b)) in want.iter().zip(&got).enumerate() {
            assert_eq!(a.dims(), b.dims(), "{what} step {i}");
            let d = max_abs_diff(a, b);
            assert!(d < 1e-4, "{what} step {i}: {d}");
        }
        assert_eq!(wc.len, gc.len);
        let (wk, gk) = (wc.layer_kv().unwrap(), gc.layer_kv().unwrap());
        for ((a, b), (c, d)) in wk.iter().zip(&gk) {
            assert_eq!(a.dims(), c.dims(), "{what}");
            assert!(
                max_abs_diff(a, c) < 1e-4 && max_abs_diff(b, d) < 1e-4,
                "{what}"
            );
        }
    };
    check(tiny_model(7).unwrap(), "f32");
    let mut q = tiny_model(7).unwrap();
    q.to_inference(WeightDtype::Q8_0).unwrap();
    check(q, "q8_0");
    let mut s = tiny_model(7).unwrap();
    for b in &mut s.blocks {
        for (_, l) in b.linears_mut() {
            let (o, i) = l.dims();
            // Keep 2 of every 4 inputs, the kept pair moving with the row.
            let keep: Vec<f32> = (0..o * i)
                .map(|j| f32::from(u8::from((j % 4 + j / i) % 4 < 2)))
                .collect();
            l.set_mask(Tensor::from_vec(keep, (o, i), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    s.to_inference(WeightDtype::Sparse).unwrap();
    check(s, "sparse");
}
