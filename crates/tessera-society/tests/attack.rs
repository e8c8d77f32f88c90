//! The operative attack on tiny random models: the sheep's gradient reaches the injected embeddings and matches
//! finite differences, zero steps report failure, checkpoints resume exactly and refuse other settings, GCG never
//! raises its loss.
use candle_core::Tensor;
use tessera_lm::testing::tiny_model;
use tessera_society::attack::{attack_with, AttackConfig, AttackSettings, Variant};
use tessera_society::gcg::{self, GcgOpts};
use tessera_society::wolf::{embedding_matrix, Chain, EmbedBlock, GumbelOpts, OperativeInput};

fn settings(variant: Variant, steps: usize) -> AttackSettings {
    AttackSettings {
        target: "hi".into(),
        variant,
        steps,
        inject_len: 3,
        reply_len: 3,
        eval_every: 2,
        redecode_every: 2,
        top_k: 8,
        candidates: 4,
        stop_on_success: false,
        ..Default::default()
    }
}

fn cfg(s: AttackSettings, out: Option<std::path::PathBuf>) -> AttackConfig {
    AttackConfig {
        settings: s,
        model: "tiny".into(),
        minilm: false,
        out,
        ..Default::default()
    }
}

/// The chain's loss with fixed noise, as a number.
fn loss_at(chain: &Chain<'_>, x: &Tensor, reply: &[u32]) -> f64 {
    let mut r = tessera_core::rng::seeded(5);
    chain
        .loss(x, reply, &mut r)
        .unwrap()
        .0
        .to_scalar::<f32>()
        .unwrap() as f64
}

#[test]
fn gradient_reaches_the_injection_and_matches_finite_differences() {
    let wolf = tiny_model(1).unwrap();
    let sheep = tiny_model(2).unwrap();
    // Soft Gumbel-softmax: the chain is differentiable everywhere, so the autograd gradient must equal the
    // directional finite difference.
    let soft = GumbelOpts {
        tau: 1.0,
        hard: false,
    };
    let chain = Chain::new(&wolf, &sheep, "hi", 3, soft).unwrap();
    let block = EmbedBlock::from_ids(&embedding_matrix(&wolf).unwrap(), &[40, 50, 60]).unwrap();
    let reply = chain.wolf_reply(&block.embeds().unwrap()).unwrap();
    assert_eq!(reply.len(), 3);
    let x = block.embeds().unwrap();
    let mut r = tessera_core::rng::seeded(5);
    let (loss, _) = chain.loss(&x, &reply, &mut r).unwrap();
    let grads = loss.backward().unwrap();
    let g = grads
        .get(block.var().as_tensor())
        .expect("gradient reaches the injection");
    let gv: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
    let norm: f64 = gv.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    assert!(norm > 1e-6 && norm.is_finite(), "gradient norm {norm}");
    let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    for seed in [1u32, 2, 3] {
        let d = tessera_lm::testing::pseudo_values(xv.len(), seed);
        let eps = 1e-2f32;
        let shifted = |s: f32| {
            let v: Vec<f32> = xv.iter().zip(&d).map(|(a, b)| a + s * b).collect();
            Tensor::from_vec(v, x.shape().clone(), x.device()).unwrap()
        };
        let fd = (loss_at(&chain, &shifted(eps), &reply) - loss_at(&chain, &shifted(-eps), &reply))
            / (2.0 * eps as f64);
        let an: f64 = gv.iter().zip(&d).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert!(
            (fd - an).abs() <= 0.05 * an.abs().max(fd.abs()) + 1e-4,
            "direction {seed}: finite difference {fd} vs autograd {an}"
        );
    }
    // Hard straight-through: the forward value is the sheep's loss on the sampled discrete tokens, and the
    // surrogate gradient still reaches the injection.
    let hard = Chain::new(&wolf, &sheep, "hi", 3, GumbelOpts::default()).unwrap();
    let mut r = tessera_core::rng::seeded(9);
    let (loss, ids) = hard.loss(&x, &reply, &mut r).unwrap();
    let exact = hard.sheep_losses(std::slice::from_ref(&ids)).unwrap()[0];
    let v = loss.to_scalar::<f32>().unwrap() as f64;
    assert!((v - exact).abs() < 1e-3 * exact.max(1.0), "{v} vs {exact}");
    assert!(ids.iter().all(|&i| !hard.is_special(i)));
    let g = loss.backward().unwrap();
    let g = g
        .get(block.var().as_tensor())
        .expect("straight-through gradient");
    let n: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
    assert!(n > 0.0 && n.is_finite());
}

#[test]
fn zero_steps_report_failure() {
    let m = tiny_model(3).unwrap();
    for v in [Variant::Embed, Variant::Gcg] {
        let r = attack_with(&cfg(settings(v, 0), None), &m, &m, None, None).unwrap();
        assert!(!r.success, "{v}: {:?}", r.evals);
        assert_eq!(r.steps_to_success, None);
        assert_eq!(r.steps_run, 0);
        assert!(r.loss.is_empty());
        assert_eq!(r.evals.len(), 1);
        assert_eq!(r.injection.ids.len(), 3);
    }
}

#[test]
fn checkpoints_resume_exactly_and_refuse_other_settings() {
    let m = tiny_model(4).unwrap();
    for v in [Variant::Embed, Variant::Gcg] {
        let a = tempfile::tempdir().unwrap();
        let whole = attack_with(
            &cfg(settings(v, 5), Some(a.path().into())),
            &m,
            &m,
            None,
            None,
        )
        .unwrap();
        assert_eq!(whole.loss.len(), 5);
        let b = tempfile::tempdir().unwrap();
        let mut c = cfg(settings(v, 5), Some(b.path().into()));
        c.pause_after = Some(3);
        let first = attack_with(&c, &m, &m, None, None).unwrap();
        assert!(first.paused);
        assert_eq!(first.steps_run, 3);
        c.pause_after = None;
        let rest = attack_with(&c, &m, &m, None, None).unwrap();
        assert_eq!(rest.resumed_from, 3);
        assert!(!rest.paused);
        assert_eq!(rest.loss, whole.loss, "{v}");
        assert_eq!(rest.evals, whole.evals, "{v}");
        assert_eq!(rest.injection, {
            let mut i = whole.injection.clone();
            i.embeddings_file = rest.injection.embeddings_file.clone();
            i
        });
        let mut other = cfg(settings(v, 5), Some(b.path().into()));
        other.settings.lr = 0.5;
        let err = attack_with(&other, &m, &m, None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("other settings"), "{err}");
    }
}

#[test]
fn embed_steps_move_the_injection_within_the_table_range() {
    let m = tiny_model(6).unwrap();
    let table = embedding_matrix(&m).unwrap();
    let block = EmbedBlock::from_ids(&table, &[10, 20]).unwrap();
    let before = block.values().unwrap();
    let g = Tensor::ones(
        block.var().as_tensor().shape().clone(),
        candle_core::DType::F32,
        m.device(),
    )
    .unwrap();
    block.signed_step(&g, 0.1).unwrap();
    let after = block.values().unwrap();
    let (lo, hi) = block.range();
    for (a, b) in before.iter().zip(&after) {
        assert!((*b - (a - 0.1).clamp(lo, hi)).abs() < 1e-6);
    }
    assert!(block.set_values(&[1.0]).is_err());
}

#[test]
fn gcg_never_raises_the_loss_and_rejects_bad_options() {
    let m = tiny_model(7).unwrap();
    let chain = Chain::new(&m, &m, "hi", 3, GumbelOpts::default()).unwrap();
    let mut ids = vec![40u32, 41, 42, 43];
    let mut cur = chain.sheep_losses(&[ids.clone()]).unwrap()[0];
    let opts = GcgOpts {
        top_k: 8,
        candidates: 8,
    };
    let (g, l) = gcg::onehot_grad(&chain, &ids).unwrap();
    assert_eq!(g.len(), 4);
    assert!((l - cur).abs() < 1e-3 * cur.max(1.0));
    for s in 0..4 {
        let mut r = tessera_core::rng::seeded(s);
        let (n, l) = gcg::step(&chain, &ids, cur, opts, &mut r).unwrap();
        assert!(l <= cur);
        // Batched and single-row forwards differ only by summation order.
        assert!(
            (chain.sheep_losses(std::slice::from_ref(&n)).unwrap()[0] - l).abs()
                < 1e-4 * l.max(1.0)
        );
        ids = n;
        cur = l;
    }
    let bad = GcgOpts {
        top_k: 0,
        candidates: 1,
    };
    assert!(gcg::step(&chain, &ids, cur, bad, &mut tessera_core::rng::seeded(0)).is_err());
    assert!(Chain::new(&m, &m, "", 3, GumbelOpts::default()).is_err());
    assert!(Chain::new(&m, &m, "hi", 0, GumbelOpts::default()).is_err());
}
