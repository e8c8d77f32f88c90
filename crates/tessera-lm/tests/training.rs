//! Losses, optimizers and checkpoints on the tiny random model.
use candle_core::{Device, Tensor, Var};
use tessera_lm::checkpoint::{self, CheckpointError, RngState, TrainState};
use tessera_lm::loss::{self, LossMode, TokenBatch};
use tessera_lm::optim::{self, Decay, Grads, Optimizer, OptimizerConfig, Param, Schedule};
use tessera_lm::testing::tiny_model;
use tessera_lm::*;

fn seqs() -> Vec<Vec<u32>> {
    vec![
        vec![5, 17, 33, 90, 4, 8, 150],
        vec![3, 44, 9],
        vec![200, 1, 77, 12, 63],
    ]
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f32>().unwrap() as f64
}

/// Sum of −log p over every target of one unpadded sequence, from a batch-1 forward.
fn seq_nll_sum(m: &Llama, s: &[u32]) -> f64 {
    let b = TokenBatch::new(&[s.to_vec()], 0).unwrap();
    scalar(&loss::next_token_loss(m, &b, LossMode::Inference).unwrap()) * (s.len() - 1) as f64
}

#[test]
fn padded_batch_loss_equals_per_sequence_losses() {
    let m = tiny_model(1).unwrap();
    let s = seqs();
    let b = TokenBatch::new(&s, 0).unwrap();
    let got = scalar(&loss::next_token_loss(&m, &b, LossMode::Inference).unwrap());
    let n: usize = s.iter().map(|x| x.len() - 1).sum();
    let want: f64 = s.iter().map(|x| seq_nll_sum(&m, x)).sum::<f64>() / n as f64;
    assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
    // Train mode (composed ops) agrees with inference mode (fused kernels).
    let tr =
        scalar(&loss::next_token_loss(&m, &b, LossMode::Train { freeze_base: false }).unwrap());
    assert!((tr - got).abs() < 1e-4 * got, "{tr} vs {got}");
    // The padding id does not matter.
    let b2 = TokenBatch::new(&s, 99).unwrap();
    let got2 = scalar(&loss::next_token_loss(&m, &b2, LossMode::Inference).unwrap());
    assert!((got2 - got).abs() < 1e-6 * got, "{got2} vs {got}");
    assert!((loss::next_token_loss_value(&m, &b).unwrap() - got).abs() < 1e-9);
}

#[test]
fn masked_tokens_do_not_contribute() {
    let m = tiny_model(2).unwrap();
    let s = seqs();
    // Weight 0 on the prompt part (first 3 tokens) of sequence 0 and on the last token of sequence 2.
    let mut w: Vec<Vec<f32>> = s.iter().map(|x| vec![1.0; x.len()]).collect();
    w[0][..3].fill(0.0);
    *w[2].last_mut().unwrap() = 0.0;
    let b = TokenBatch::weighted(&s, &w, 0).unwrap();
    let l1 = scalar(&loss::next_token_loss(&m, &b, LossMode::Inference).unwrap());
    // Changing the masked last token of sequence 2 changes nothing (it is no one's context).
    let mut s2 = s.clone();
    *s2[2].last_mut().unwrap() = 7;
    let b2 = TokenBatch::weighted(&s2, &w, 0).unwrap();
    let l2 = scalar(&loss::next_token_loss(&m, &b2, LossMode::Inference).unwrap());
    assert!((l1 - l2).abs() < 1e-6, "{l1} vs {l2}");
    // ...while changing an unmasked target does.
    let mut s3 = s.clone();
    *s3[0].last_mut().unwrap() = 7;
    let b3 = TokenBatch::weighted(&s3, &w, 0).unwrap();
    let l3 = scalar(&loss::next_token_loss(&m, &b3, LossMode::Inference).unwrap());
    assert!((l1 - l3).abs() > 1e-4, "{l1} vs {l3}");
    // Assistant-only masks are the same thing with booleans.
    let a: Vec<Vec<bool>> = w
        .iter()
        .map(|r| r.iter().map(|&x| x > 0.0).collect())
        .collect();
    let b4 = TokenBatch::assistant_only(&s, &a, 0).unwrap();
    let l4 = scalar(&loss::next_token_loss(&m, &b4, LossMode::Inference).unwrap());
    assert_eq!(l1, l4);
    // All-zero weights are refused.
    let z: Vec<Vec<f32>> = s.iter().map(|x| vec![0.0; x.len()]).collect();
    assert!(TokenBatch::weighted(&s, &z, 0).is_err());
    assert!(TokenBatch::new(&[vec![3]], 0).is_err());
    assert!(TokenBatch::weighted(&s, &w[..2], 0).is_err());
}

#[test]
fn gradient_reaches_input_embeddings_through_a_frozen_model_and_matches_finite_differences() {
    let m = tiny_model(3).unwrap();
    let s = vec![vec![5u32, 17, 33, 90, 4], vec![8u32, 150, 2]];
    let b = TokenBatch::new(&s, 0).unwrap();
    let e0 = m.embed_ids(&b.ids).unwrap();
    let e = Var::from_tensor(&e0).unwrap();
    let mode = LossMode::Train { freeze_base: true };
    let l = loss::next_token_loss_embeds(&m, e.as_tensor(), &b, mode).unwrap();
    let grads = l.backward().unwrap();
    let g = grads
        .get(e.as_tensor())
        .expect("gradient reaches the embeddings");
    // Frozen: no base parameter has a gradient.
    for (n, v) in m.named_vars() {
        assert!(grads.get(v.as_tensor()).is_none(), "{n} got a gradient");
    }
    let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
    let base: Vec<f32> = e0.flatten_all().unwrap().to_vec1().unwrap();
    let dims = e0.dims().to_vec();
    let h = 1e-2f32;
    let eval = |v: &[f32]| -> f64 {
        let t = Tensor::from_vec(v.to_vec(), dims.as_slice(), &Device::Cpu).unwrap();
        scalar(&loss::next_token_loss_embeds(&m, &t, &b, mode).unwrap())
    };
    let hidden = dims[2];
    let t = dims[1];
    // Coordinates in real tokens of both sequences (row, token, feature); padded tokens have zero gradient.
    let mut checked = 0;
    for &(row, tok, f) in &[
        (0usize, 0usize, 3usize),
        (0, 2, 17),
        (0, 3, 31),
        (1, 0, 5),
        (1, 1, 20),
    ] {
        let i = (row * t + tok) * hidden + f;
        let mut p = base.clone();
        p[i] += h;
        let up = eval(&p);
        p[i] -= 2.0 * h;
        let dn = eval(&p);
        let fd = (up - dn) / (2.0 * h as f64);
        let an = g[i] as f64;
        assert!(
            (fd - an).abs() < 2e-3 + 2e-2 * an.abs(),
            "({row},{tok},{f}): finite difference {fd} vs autograd {an}"
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
    // A padded position of sequence 1 gets no gradient.
    let pad = (t + 4) * hidden;
    assert!(g[pad..pad + hidden].iter().all(|&x| x == 0.0));
    assert!(g.iter().any(|&x| x.abs() > 1e-6));
}

#[test]
fn kl_of_a_model_with_itself_is_zero_and_positive_otherwise() {
    let m = tiny_model(4).unwrap();
    let other = tiny_model(5).unwrap();
    let b = TokenBatch::new(&seqs(), 0).unwrap();
    for t in [1.0, 2.0] {
        let k = scalar(&loss::distill_kl(&m, &m, &b, t, LossMode::Inference).unwrap());
        assert!(k.abs() < 1e-5, "KL(m‖m) = {k} at T = {t}");
        let k2 = scalar(&loss::distill_kl(&m, &other, &b, t, LossMode::Inference).unwrap());
        assert!(k2 > 1e-2, "KL between different models = {k2}");
    }
    // Hand check on one token: p = softmax([0, ln 3]) = [1/4, 3/4], q = [1/2, 1/2].
    let zt = Tensor::new(&[[[0f32, 3f32.ln()]]], &Device::Cpu).unwrap();
    let zs = Tensor::new(&[[[0f32, 0f32]]], &Device::Cpu).unwrap();
    let want = 0.25 * (0.5f64).ln() + 0.75 * (1.5f64).ln();
    let got = scalar(&loss::kl_divergence(&zt, &zs, 1.0, None).unwrap());
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // Summed over tokens, divided by batch: two identical tokens in one row double it; two rows do not.
    let zt2 = Tensor::cat(&[&zt, &zt], 1).unwrap();
    let zs2 = Tensor::cat(&[&zs, &zs], 1).unwrap();
    let got2 = scalar(&loss::kl_divergence(&zt2, &zs2, 1.0, None).unwrap());
    assert!((got2 - 2.0 * want).abs() < 1e-6);
    let zt3 = Tensor::cat(&[&zt, &zt], 0).unwrap();
    let zs3 = Tensor::cat(&[&zs, &zs], 0).unwrap();
    let got3 = scalar(&loss::kl_divergence(&zt3, &zs3, 1.0, None).unwrap());
    assert!((got3 - want).abs() < 1e-6);
    // Masked tokens do not contribute.
    let w = Tensor::new(&[[1f32, 0.0]], &Device::Cpu).unwrap();
    let got4 = scalar(&loss::kl_divergence(&zt2, &zs2, 1.0, Some(&w)).unwrap());
    assert!((got4 - want).abs() < 1e-6);
    assert!(loss::kl_divergence(&zt, &zs, 0.0, None).is_err());
    assert!(loss::kl_divergence(&zt, &zs2, 1.0, None).is_err());
}

#[test]
fn kl_gradient_flows_into_the_student_only() {
    let teacher = tiny_model(6).unwrap();
    let mut student = tiny_model(6).unwrap();
    student.add_lora_qv(2, 4.0).unwrap();
    // Make the adapter non-trivial so the student differs from the teacher.
    for p in optim::lora_params(&student) {
        let t = (p.var.as_tensor().ones_like().unwrap() * 0.05).unwrap();
        p.var.set(&t).unwrap();
    }
    let b = TokenBatch::new(&seqs(), 0).unwrap();
    let k = loss::distill_kl(
        &teacher,
        &student,
        &b,
        1.0,
        LossMode::Train { freeze_base: true },
    )
    .unwrap();
    assert!(scalar(&k) > 0.0);
    let g = k.backward().unwrap();
    let ps = optim::lora_params(&student);
    assert!(ps.iter().all(|p| g.get(p.var.as_tensor()).is_some()));
    for (n, v) in teacher.named_vars() {
        assert!(g.get(v.as_tensor()).is_none(), "teacher {n} got a gradient");
    }
}

fn t1(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn vals(v: &Var) -> Vec<f32> {
    v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn adamw_matches_a_hand_computation() {
    // A matrix (decayed) and a norm vector (not decayed), three steps of hand-made gradients.
    let w = Var::from_tensor(&Tensor::new(&[[0.5f32, -1.0], [2.0, 0.0]], &Device::Cpu).unwrap())
        .unwrap();
    let n = Var::from_tensor(&t1(&[1.0, -0.5])).unwrap();
    let params = vec![
        Param::new("layer.weight", w.clone()),
        Param::new("layer.norm", n.clone()),
    ];
    assert!(params[0].decay && !params[1].decay);
    let (b1, b2, eps, wd, lr) = (0.9f64, 0.99f64, 1e-8f64, 0.1f64, 0.01f64);
    let cfg = OptimizerConfig::AdamW {
        beta1: b1,
        beta2: b2,
        eps,
        weight_decay: wd,
    };
    let mut opt = Optimizer::new(cfg, params).unwrap();
    let gw = [
        [0.1f64, -0.2, 0.3, 0.0],
        [0.05, 0.1, -0.4, 1.0],
        [-0.3, 0.2, 0.1, 0.5],
    ];
    let gn = [[1.0f64, 0.5], [-1.0, 0.25], [0.5, 0.0]];
    let mut hw = [0.5f64, -1.0, 2.0, 0.0];
    let mut hn = [1.0f64, -0.5];
    let (mut mw, mut vw, mut mn, mut vn) = ([0f64; 4], [0f64; 4], [0f64; 2], [0f64; 2]);
    for s in 0..3 {
        let grads = Grads(vec![
            Some(
                Tensor::from_vec(
                    gw[s].iter().map(|&x| x as f32).collect::<Vec<_>>(),
                    (2, 2),
                    &Device::Cpu,
                )
                .unwrap(),
            ),
            Some(t1(&gn[s].iter().map(|&x| x as f32).collect::<Vec<_>>())),
        ]);
        opt.step(&grads, lr).unwrap();
        let t = (s + 1) as i32;
        let upd = |th: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64], decay: bool| {
            for i in 0..th.len() {
                if decay {
                    th[i] *= 1.0 - lr * wd;
                }
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                th[i] -= lr * mh / (vh.sqrt() + eps);
            }
        };
        upd(&mut hw, &mut mw, &mut vw, &gw[s], true);
        upd(&mut hn, &mut mn, &mut vn, &gn[s], false);
        for (a, b) in vals(&w).iter().zip(&hw) {
            assert!((*a as f64 - b).abs() < 1e-6, "step {s}: weight {a} vs {b}");
        }
        for (a, b) in vals(&n).iter().zip(&hn) {
            assert!((*a as f64 - b).abs() < 1e-6, "step {s}: norm {a} vs {b}");
        }
    }
    assert_eq!(opt.steps(), 3);
    let st = opt.state_tensors();
    assert_eq!(st.len(), 4);
    // A zero gradient still moves a weight through decoupled decay only where decay applies.
    let before = vals(&n);
    opt.step(&Grads(vec![None, None]), lr).unwrap();
    assert_eq!(vals(&n), before);
}

#[test]
fn sgd_momentum_and_schedules_and_clipping() {
    let w = Var::from_tensor(&Tensor::new(&[[1.0f32, 2.0]], &Device::Cpu).unwrap()).unwrap();
    let cfg = OptimizerConfig::Sgd {
        momentum: 0.9,
        weight_decay: 0.0,
    };
    let mut opt = Optimizer::new(cfg, vec![Param::new("w", w.clone())]).unwrap();
    let g = Grads(vec![Some(
        Tensor::new(&[[1.0f32, -1.0]], &Device::Cpu).unwrap(),
    )]);
    opt.step(&g, 0.1).unwrap(); // buf = g, w = [0.9, 2.1]
    opt.step(&g, 0.1).unwrap(); // buf = 1.9 g, w = [0.71, 2.29]
    let v = vals(&w);
    assert!(
        (v[0] - 0.71).abs() < 1e-6 && (v[1] - 2.29).abs() < 1e-6,
        "{v:?}"
    );

    let s = Schedule {
        lr: 1.0,
        warmup_steps: 4,
        decay: Decay::Cosine {
            total_steps: 14,
            floor: 0.1,
        },
    };
    assert!((s.lr_at(0) - 0.25).abs() < 1e-12);
    assert!((s.lr_at(3) - 1.0).abs() < 1e-12);
    assert!((s.lr_at(4) - 1.0).abs() < 1e-12);
    assert!((s.lr_at(9) - 0.55).abs() < 1e-12, "{}", s.lr_at(9));
    assert!((s.lr_at(14) - 0.1).abs() < 1e-12);
    assert!((s.lr_at(100) - 0.1).abs() < 1e-12);
    assert_eq!(Schedule::constant(0.3).lr_at(77), 0.3);
    assert!(optim::validate_schedule(&Schedule::constant(-1.0)).is_err());

    let mut g = Grads(vec![Some(t1(&[3.0, 4.0])), None, Some(t1(&[0.0]))]);
    assert!((g.global_norm().unwrap() - 5.0).abs() < 1e-9);
    let n = g.clip_global_norm(1.0).unwrap();
    assert!((n - 5.0).abs() < 1e-9);
    assert!((g.global_norm().unwrap() - 1.0).abs() < 1e-5);
    let mut acc = Grads(vec![Some(t1(&[1.0])), None]);
    acc.accumulate(&Grads(vec![Some(t1(&[2.0])), Some(t1(&[5.0]))]))
        .unwrap();
    acc.scale(0.5).unwrap();
    assert_eq!(
        acc.0[0].as_ref().unwrap().to_vec1::<f32>().unwrap(),
        vec![1.5]
    );
    assert_eq!(
        acc.0[1].as_ref().unwrap().to_vec1::<f32>().unwrap(),
        vec![2.5]
    );
    assert!(Optimizer::new(
        OptimizerConfig::Sgd {
            momentum: 1.5,
            weight_decay: 0.0
        },
        vec![]
    )
    .is_err());
    assert!(Optimizer::new(cfg, vec![Param::new("w", w.clone()), Param::new("w", w)]).is_err());
}

// ---------------------------------------------------------------------------------------------------------
// Kill-and-resume.

#[derive(serde::Serialize, Clone)]
struct Settings {
    seed: u64,
    steps: u64,
    micro_batches: usize,
    lr: f64,
}

const SETTINGS: Settings = Settings {
    seed: 9,
    steps: 6,
    micro_batches: 2,
    lr: 3e-3,
};

fn data() -> Vec<Vec<u32>> {
    use rand::Rng as _;
    let mut r = tessera_core::rng::seeded(77);
    (0..8)
        .map(|_| {
            let n = r.gen_range(3..9);
            (0..n).map(|_| r.gen_range(2..250u32)).collect()
        })
        .collect()
}

/// A fresh model set up for training: LoRA on q/v, a mask on layer 0's up projection.
fn fresh() -> (Llama, Optimizer) {
    let mut m = tiny_model(21).unwrap();
    m.add_lora_qv(4, 8.0).unwrap();
    let (o, i) = m.blocks[0].up.dims();
    let mask: Vec<f32> = (0..o * i)
        .map(|k| if k % 3 == 0 { 0.0 } else { 1.0 })
        .collect();
    m.blocks[0]
        .up
        .set_mask(Tensor::from_vec(mask, (o, i), &Device::Cpu).unwrap())
        .unwrap();
    // Full fine-tuning of the unadapted weights plus the adapters.
    let mut params = optim::base_params(&m);
    params.extend(optim::lora_params(&m));
    let opt = Optimizer::new(OptimizerConfig::adamw(0.01), params).unwrap();
    (m, opt)
}

/// Trains until `stop_after` steps (or the end), checkpointing after every step when `ckpt` is given.
fn train(m: &mut Llama, opt: &mut Optimizer, ckpt: Option<&std::path::Path>, stop_after: u64) {
    use rand::Rng as _;
    let d = data();
    let sched = Schedule {
        lr: SETTINGS.lr,
        warmup_steps: 2,
        decay: Decay::Cosine {
            total_steps: SETTINGS.steps,
            floor: 0.1,
        },
    };
    let (mut rng, mut step, mut cursor) = (tessera_core::rng::seeded(SETTINGS.seed), 0u64, 0usize);
    if let Some(root) = ckpt {
        if let Some(st) = checkpoint::resume(root, &SETTINGS, m, Some(opt)).unwrap() {
            step = st.step;
            rng = st.rng.unwrap().restore().unwrap();
            cursor = st.cursor["next"].as_u64().unwrap() as usize;
        }
    }
    while step < SETTINGS.steps && step < stop_after {
        let mut acc: Option<Grads> = None;
        for _ in 0..SETTINGS.micro_batches {
            // Batch: the next sequence in order plus one drawn at random.
            let pick = vec![
                d[cursor % d.len()].clone(),
                d[rng.gen_range(0..d.len())].clone(),
            ];
            cursor += 1;
            let b = TokenBatch::new(&pick, 0).unwrap();
            let l = loss::next_token_loss(m, &b, LossMode::Train { freeze_base: false }).unwrap();
            let g = opt.grads(&l).unwrap();
            match acc.as_mut() {
                Some(a) => a.accumulate(&g).unwrap(),
                None => acc = Some(g),
            }
        }
        let mut g = acc.unwrap();
        g.scale(1.0 / SETTINGS.micro_batches as f64).unwrap();
        g.clip_global_norm(1.0).unwrap();
        opt.step(&g, sched.lr_at(step)).unwrap();
        step += 1;
        if let Some(root) = ckpt {
            let st = TrainState {
                step,
                rng: Some(RngState::capture(&rng)),
                cursor: serde_json::json!({ "next": cursor }),
            };
            checkpoint::save(root, &SETTINGS, m, Some(opt), &st, 2).unwrap();
        }
    }
}

fn state_bits(m: &Llama, opt: &Optimizer) -> Vec<(String, Vec<u32>)> {
    let s = checkpoint::model_state(m).unwrap();
    let mut all: Vec<(String, Tensor)> = s.tensors.into_iter().collect();
    all.extend(
        opt.state_tensors()
            .into_iter()
            .map(|(n, t)| (format!("opt/{n}"), t)),
    );
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.into_iter()
        .map(|(n, t)| {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            (n, v.into_iter().map(f32::to_bits).collect())
        })
        .collect()
}

#[test]
fn kill_and_resume_ends_bit_identical() {
    let (mut m, mut opt) = fresh();
    let before = state_bits(&m, &opt);
    train(&mut m, &mut opt, None, u64::MAX);
    let want = state_bits(&m, &opt);
    assert_ne!(before, want, "training changed nothing");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ckpt");
    {
        let (mut m1, mut o1) = fresh();
        train(&mut m1, &mut o1, Some(&root), 3); // "killed" after 3 steps
    }
    // A kill in the middle of the next save leaves a temporary directory behind; resume ignores it.
    std::fs::create_dir_all(root.join(".tmp-step-crashed")).unwrap();
    std::fs::write(root.join(".tmp-step-crashed/model.safetensors"), b"half").unwrap();
    let (mut m2, mut o2) = fresh();
    train(&mut m2, &mut o2, Some(&root), u64::MAX);
    let got = state_bits(&m2, &o2);
    assert_eq!(got.len(), want.len());
    for ((n1, a), (n2, b)) in got.iter().zip(&want) {
        assert_eq!(n1, n2);
        assert!(a == b, "{n1} differs after resume");
    }
    // The masked weights stayed exactly zero through training.
    let up: Vec<f32> = m2.blocks[0]
        .up
        .weight()
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(up.iter().step_by(3).all(|&x| x == 0.0));
    // Old checkpoints are pruned to `keep` and the stale temporary directory is gone.
    let names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"step-00000006".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with(".tmp")), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("step-")).count(),
        2,
        "{names:?}"
    );
}

#[test]
fn resume_refuses_other_settings_other_models_and_damaged_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ckpt");
    let (mut m, mut opt) = fresh();
    train(&mut m, &mut opt, Some(&root), 1);
    let snapshot = state_bits(&m, &opt);

    // Different settings.
    let mut other = SETTINGS.clone();
    other.lr = 1e-2;
    let err = checkpoint::resume(&root, &other, &mut m, Some(&mut opt)).unwrap_err();
    assert!(
        matches!(err, CheckpointError::SettingsMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("lr"), "{err}");
    assert!(!err.to_string().contains('\n'));
    // ...also refused when saving into the same root.
    let st = TrainState::default();
    assert!(checkpoint::save(&root, &other, &m, Some(&opt), &st, 1).is_err());
    // A different optimizer configuration.
    let mut sgd = Optimizer::new(
        OptimizerConfig::Sgd {
            momentum: 0.9,
            weight_decay: 0.0,
        },
        optim::lora_params(&m),
    )
    .unwrap();
    let err = checkpoint::resume(&root, &SETTINGS, &mut m, Some(&mut sgd)).unwrap_err();
    assert!(
        matches!(err, CheckpointError::SettingsMismatch { .. }),
        "{err}"
    );

    // A different model: one layer instead of two.
    let small = {
        let t = tiny_model(21).unwrap();
        let mut cfg = t.config.clone();
        cfg.num_hidden_layers = 1;
        let map = t
            .named_vars()
            .into_iter()
            .filter(|(n, _)| !n.starts_with("model.layers.1."))
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        load::from_hf_tensors(std::path::Path::new("<mem>"), cfg, map, None).unwrap()
    };
    let mut small = small;
    let err = checkpoint::resume(&root, &SETTINGS, &mut small, None).unwrap_err();
    assert!(
        matches!(err, CheckpointError::ModelMismatch { .. }),
        "{err}"
    );

    // Truncated weights: a typed error, and the model is left untouched.
    let latest = checkpoint::latest_dir(&root).unwrap().unwrap();
    let f = latest.join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let err = checkpoint::resume(&root, &SETTINGS, &mut m, Some(&mut opt)).unwrap_err();
    assert!(matches!(err, CheckpointError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    // Same length, different bytes.
    let mut flipped = bytes.clone();
    let k = flipped.len() - 3;
    flipped[k] ^= 0xff;
    std::fs::write(&f, &flipped).unwrap();
    let err = checkpoint::resume(&root, &SETTINGS, &mut m, Some(&mut opt)).unwrap_err();
    assert!(matches!(err, CheckpointError::Damaged { .. }), "{err}");
    // A truncated state file.
    std::fs::write(&f, &bytes).unwrap();
    let sp = latest.join("state.json");
    let s = std::fs::read(&sp).unwrap();
    std::fs::write(&sp, &s[..s.len() / 3]).unwrap();
    let err = checkpoint::resume(&root, &SETTINGS, &mut m, Some(&mut opt)).unwrap_err();
    assert!(matches!(err, CheckpointError::Damaged { .. }), "{err}");
    assert_eq!(
        state_bits(&m, &opt),
        snapshot,
        "a failed resume modified the model"
    );
    // An empty root is a fresh start.
    assert!(
        checkpoint::resume(&dir.path().join("none"), &SETTINGS, &mut m, None)
            .unwrap()
            .is_none()
    );
}

#[test]
fn model_state_round_trips_masks_and_adapters() {
    let (m, _) = fresh();
    for p in optim::lora_params(&m) {
        p.var
            .set(&(p.var.as_tensor().ones_like().unwrap() * 0.01).unwrap())
            .unwrap();
    }
    let s = checkpoint::model_state(&m).unwrap();
    assert!(s.tensors.contains_key("model.layers.0.mlp.up_proj.mask"));
    assert!(s
        .tensors
        .contains_key("model.layers.1.self_attn.v_proj.lora_b"));
    let mut plain = tiny_model(99).unwrap();
    checkpoint::restore_model_state(&mut plain, &s).unwrap();
    let b = TokenBatch::new(&seqs(), 0).unwrap();
    let a = loss::batch_logits(&m, &b, LossMode::Inference).unwrap();
    let c = loss::batch_logits(&plain, &b, LossMode::Inference).unwrap();
    let d = (a - c)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(d, 0.0);
    assert!(plain.blocks[0].up.mask().is_some());
    assert_eq!(plain.lora_vars().len(), m.lora_vars().len());
}

#[test]
fn restoring_a_state_into_a_model_that_keeps_dense_copies_does_not_add_them_twice() {
    let mut m = tiny_model(4).unwrap();
    // A copy: `dense_weight` of an unmasked layer shares the weight's storage, which masking overwrites.
    let dense = m.blocks[0].up.dense_weight().unwrap().copy().unwrap();
    let (o, i) = m.blocks[0].up.dims();
    let mask: Vec<f32> = (0..o * i).map(|k| (k % 3 != 0) as u8 as f32).collect();
    let mask = Tensor::from_vec(mask, (o, i), &Device::Cpu).unwrap();
    m.blocks[0].up.set_mask_keep_dense(mask.clone()).unwrap();
    let state = checkpoint::model_state(&m).unwrap();
    // The same model, still holding its dense copy, restored from its own state (what a resume does).
    checkpoint::restore_model_state(&mut m, &state).unwrap();
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(diff(&m.blocks[0].up.dense_weight().unwrap(), &dense), 0.0);
    assert_eq!(diff(m.blocks[0].up.mask().unwrap(), &mask), 0.0);
    // A model whose layer has another mask and copy: restored to the saved ones exactly.
    let other = mask.affine(-1.0, 1.0).unwrap();
    m.blocks[0].up.set_mask_keep_dense(other).unwrap();
    checkpoint::restore_model_state(&mut m, &state).unwrap();
    assert_eq!(diff(&m.blocks[0].up.dense_weight().unwrap(), &dense), 0.0);
    assert_eq!(diff(m.blocks[0].up.mask().unwrap(), &mask), 0.0);
}
