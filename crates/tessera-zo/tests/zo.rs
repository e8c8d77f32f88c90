//! ZO-Bench on tiny random models: the estimator, in-place restore, every optimizer's descent, sparsity,
//! block-wise seeds, exact resume, bad input.
use candle_core::{Device, Tensor, Var};
use std::collections::HashMap;
use tessera_lm::perturb::Param;
use tessera_lm::testing::tiny_model;
use tessera_lm::{Llama, ParamSet, Perturbation};
use tessera_zo::batch::{self, Encoded};
use tessera_zo::blockwise;
use tessera_zo::run::{self, Settings, Trainer, ZoConfig};
use tessera_zo::task::{self, Task, TaskData};
use tessera_zo::{zo_sgd, Optimizer, Scheme, SparsityMode};

fn sst2(k: usize, eval: usize) -> TaskData {
    task::load(Task::Sst2, None, k, eval, 0).unwrap()
}

fn snapshot(ps: &[Param]) -> Vec<Vec<f32>> {
    ps.iter()
        .map(|p| p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

fn setup(
    model: &mut Llama,
    data: &TaskData,
    o: Optimizer,
    scheme: Scheme,
    lr: f64,
    mu: f64,
) -> (tessera_zo::Tunable, Vec<Encoded>, Settings) {
    let cfg = ZoConfig {
        optimizer: o,
        scheme,
        lr: Some(lr),
        mu: Some(mu),
        batch: data.train.len(),
        train_examples: Some(data.train.len()),
        ..Default::default()
    };
    let s = run::settings(&cfg, model).unwrap();
    let enc = batch::encode(model, &data.train).unwrap();
    let tun = run::prepare(model, scheme, 0, &enc).unwrap();
    (tun, enc, s)
}

#[test]
fn zo_estimate_is_unbiased_on_a_quadratic() {
    // L(θ) = ½ Σ a_i θ_i² − Σ b_i θ_i, ∇L = aθ − b. E[g z] = ∇L for the two-sided estimate (exact for quadratics).
    let d = 8;
    let a: Vec<f64> = (0..d).map(|i| 0.5 + i as f64 * 0.3).collect();
    let b: Vec<f64> = (0..d).map(|i| (i as f64 - 3.0) * 0.7).collect();
    let theta0: Vec<f32> = (0..d).map(|i| 0.2 * i as f32 - 0.5).collect();
    let var =
        Var::from_tensor(&Tensor::from_vec(theta0.clone(), d, &Device::Cpu).unwrap()).unwrap();
    let ps = vec![Param {
        name: "theta".into(),
        var: var.clone(),
        mask: None,
        decay: false,
    }];
    let mut loss = || -> tessera_zo::Result<f64> {
        let t: Vec<f32> = var.as_tensor().to_vec1()?;
        Ok((0..d)
            .map(|i| 0.5 * a[i] * (t[i] as f64).powi(2) - b[i] * t[i] as f64)
            .sum())
    };
    let grad: Vec<f64> = (0..d).map(|i| a[i] * theta0[i] as f64 - b[i]).collect();
    let n = 6000;
    let mut mean = vec![0f64; d];
    for s in 0..n {
        let p = Perturbation::new(s, ParamSet::All);
        let (g, _) = zo_sgd::estimate(&mut loss, std::slice::from_ref(&p), &ps, 1e-2).unwrap();
        let z = p.direction(&ps[0]).unwrap();
        for i in 0..d {
            mean[i] += g[0] * z[i] as f64 / n as f64;
        }
    }
    let err: f64 = mean
        .iter()
        .zip(&grad)
        .map(|(m, g)| (m - g).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    assert!(
        err < 0.1 * norm,
        "|E[gz] − ∇L| = {err}, |∇L| = {norm}: {mean:?} vs {grad:?}"
    );
    // θ came back after every query.
    let t: Vec<f32> = var.as_tensor().to_vec1().unwrap();
    for i in 0..d {
        assert!(
            (t[i] - theta0[i]).abs() < 1e-5,
            "{i}: {} vs {}",
            t[i],
            theta0[i]
        );
    }
}

#[test]
fn perturb_and_restore_leave_the_model_unchanged() {
    let mut m = tiny_model(40).unwrap();
    let data = sst2(4, 4);
    for scheme in Scheme::ALL {
        let (tun, enc, _) = setup(&mut m, &data, Optimizer::ZoSgd, scheme, 1e-3, 1e-2);
        let ps = tun.params(&m);
        let before = snapshot(&ps);
        let refs: Vec<&Encoded> = enc.iter().collect();
        let mut f = || batch::loss_value(&m, &tun, &refs);
        let l0 = f().unwrap();
        let p = Perturbation::new(9, ParamSet::All);
        let (lp, lm) = zo_sgd::spsa(&mut f, &p, &ps, 1e-2).unwrap();
        assert!(
            lp != l0 && lm != l0,
            "{scheme}: the perturbation changes the loss"
        );
        let after = snapshot(&ps);
        for (x, y) in before.iter().flatten().zip(after.iter().flatten()) {
            assert!(
                (x - y).abs() <= 1e-6 * (1.0 + x.abs()),
                "{scheme}: {x} vs {y}"
            );
        }
        assert!((f().unwrap() - l0).abs() < 1e-5);
        if scheme == Scheme::Lora {
            // Leave the adapters out of the next schemes' base model.
            for b in &mut m.blocks {
                for (_, l) in b.linears_mut() {
                    l.remove_lora();
                }
            }
        }
    }
}

#[test]
fn every_optimizer_lowers_the_loss_on_a_tiny_model() {
    let data = sst2(6, 4);
    let cases = [
        (Optimizer::ZoSgd, Scheme::Full, 2e-3, 1e-3, 60),
        (Optimizer::ZoSgdSign, Scheme::Full, 2e-4, 1e-3, 60),
        (Optimizer::ZoSgdMmt, Scheme::Full, 1e-4, 1e-3, 60),
        (Optimizer::ZoSgdCons, Scheme::Full, 2e-3, 1e-3, 40),
        (Optimizer::ZoAdam, Scheme::Full, 2e-3, 1e-3, 60),
        (Optimizer::ForwardGrad, Scheme::Full, 2e-3, 1e-3, 30),
        (Optimizer::FoSgd, Scheme::Full, 2e-2, 1e-3, 15),
        (Optimizer::FoAdam, Scheme::Full, 3e-3, 1e-3, 15),
        (Optimizer::ZoSgd, Scheme::Lora, 2e-2, 1e-2, 60),
        (Optimizer::ZoSgd, Scheme::Prefix, 3e-1, 1e-2, 60),
        (Optimizer::ZoSgd, Scheme::Prompt, 2e-2, 1e-2, 60),
        (Optimizer::FoSgd, Scheme::Lora, 5e-2, 1e-3, 15),
        (Optimizer::FoSgd, Scheme::Prefix, 5e-1, 1e-3, 15),
        (Optimizer::FoAdam, Scheme::Prompt, 1e-2, 1e-3, 15),
    ];
    for (o, scheme, lr, mu, steps) in cases {
        let mut m = tiny_model(41).unwrap();
        let (tun, enc, s) = setup(&mut m, &data, o, scheme, lr, mu);
        let mut tr = Trainer::new(&m, tun, enc.clone(), s).unwrap();
        let all: Vec<&Encoded> = enc.iter().collect();
        let l0 = tr.loss_of(&all).unwrap();
        for step in 0..steps {
            tr.step(step).unwrap();
        }
        let l1 = tr.loss_of(&all).unwrap();
        assert!(l1 < l0 - 0.01, "{o} {scheme}: loss {l0} → {l1}");
    }
}

#[test]
fn block_wise_and_hybrid_lower_the_loss_and_blocks_have_their_own_seeds() {
    let data = sst2(6, 4);
    let mut m = tiny_model(42).unwrap();
    let (tun, enc, mut s) = setup(&mut m, &data, Optimizer::ZoSgd, Scheme::Full, 2e-3, 1e-3);
    let ps = tun.params(&m);
    let blocks = blockwise::blocks(&ps);
    let names: Vec<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["embed", "layer.0", "layer.1", "final_norm"]);
    let seeds: std::collections::HashSet<u64> = blocks
        .iter()
        .map(|b| blockwise::block_seed(7, &b.name))
        .collect();
    assert_eq!(seeds.len(), blocks.len(), "every block has its own seed");
    s.block_wise = true;
    let mut tr = Trainer::new(&m, tun, enc.clone(), s.clone()).unwrap();
    // The two layers' q projections (same shape) get different directions in the same step.
    let q = |i: usize| {
        ps.iter()
            .find(|p| p.name == format!("model.layers.{i}.self_attn.q_proj.weight"))
            .unwrap()
    };
    let z0 = tr.perturbations(0, Some("layer.0"))[0]
        .direction(q(0))
        .unwrap();
    let z1 = tr.perturbations(0, Some("layer.1"))[0]
        .direction(q(1))
        .unwrap();
    assert_eq!(z0.len(), z1.len());
    assert!(z0.iter().zip(&z1).filter(|(a, b)| a == b).count() < z0.len() / 100);
    let all: Vec<&Encoded> = enc.iter().collect();
    let l0 = tr.loss_of(&all).unwrap();
    for step in 0..30 {
        tr.step(step).unwrap();
    }
    assert!(tr.loss_of(&all).unwrap() < l0 - 0.01, "block-wise ZO-SGD");
    // Hybrid: layer 1 first-order, the rest ZO.
    let mut m = tiny_model(42).unwrap();
    let (tun, enc, mut s) = setup(&mut m, &data, Optimizer::ZoSgd, Scheme::Full, 2e-3, 1e-3);
    s.hybrid_fo_layers = vec![1];
    s.fo_lr = 2e-2;
    let fo_before = snapshot(&tun.params(&m)[2..3]);
    let mut tr = Trainer::new(&m, tun, enc.clone(), s).unwrap();
    let l0 = tr.loss_of(&all).unwrap();
    for step in 0..20 {
        tr.step(step).unwrap();
    }
    assert!(tr.loss_of(&all).unwrap() < l0 - 0.01, "hybrid ZO/FO");
    assert_ne!(fo_before, snapshot(&tr.params()[2..3]));
}

#[test]
fn sparsity_perturbs_the_share_asked_for() {
    let m = tiny_model(43).unwrap();
    let ps = tessera_lm::perturb::params(&m, ParamSet::Base);
    for r in [0.0, 0.3, 0.5, 0.9] {
        let mut p = Perturbation::new(3, ParamSet::Base);
        p.fraction = tessera_zo::sparsity::perturbed_fraction(r).unwrap();
        let before = snapshot(&ps);
        let st = p.apply_to(&ps, 1.0).unwrap();
        let share = st.perturbed as f64 / st.elements as f64;
        assert!(
            (share - (1.0 - r)).abs() < 0.01,
            "sparsity {r}: perturbed {share}"
        );
        let moved = before
            .iter()
            .flatten()
            .zip(snapshot(&ps).iter().flatten())
            .filter(|(a, b)| a != b)
            .count();
        assert!((moved as f64 / st.elements as f64 - (1.0 - r)).abs() < 0.01);
        p.apply_to(&ps, -1.0).unwrap();
    }
    assert!(tessera_zo::sparsity::perturbed_fraction(1.0).is_err());
    assert!(tessera_zo::sparsity::perturbed_fraction(-0.1).is_err());
}

#[test]
fn magnitude_selection_keeps_the_largest_weights_of_a_hand_made_tensor() {
    use tessera_zo::sparsity::magnitude_selection;
    let w = [0.5, -3.0, 0.0, 2.0, -2.0, 0.1, 2.0, -0.7];
    // Half: 3 and the three tied 2s.
    assert_eq!(
        magnitude_selection(&w, None, 0.5).unwrap(),
        [0., 1., 0., 1., 1., 0., 1., 0.]
    );
    // A quarter: 3, then the tie at 2 goes to the lowest index.
    assert_eq!(
        magnitude_selection(&w, None, 0.25).unwrap(),
        [0., 1., 0., 1., 0., 0., 0., 0.]
    );
    // With a pruning mask the share counts the 7 unpruned coordinates (round(3.5) = 4) and never picks a pruned one.
    let pruned = [1., 0., 1., 1., 1., 1., 1., 1.];
    assert_eq!(
        magnitude_selection(&w, Some(&pruned), 0.5).unwrap(),
        [0., 0., 0., 1., 1., 0., 1., 1.]
    );
    assert_eq!(magnitude_selection(&w, None, 0.0).unwrap(), [0.0; 8]);
    assert_eq!(magnitude_selection(&w, Some(&pruned), 1.0).unwrap(), pruned);
    assert!(magnitude_selection(&w, Some(&pruned[..3]), 0.5).is_err());
    assert!(magnitude_selection(&w, None, 1.5).is_err());
    assert_eq!(
        "magnitude".parse::<SparsityMode>().unwrap(),
        SparsityMode::Magnitude
    );
    assert_eq!(SparsityMode::default().to_string(), "random");
    assert!("largest".parse::<SparsityMode>().is_err());
}

#[test]
fn magnitude_sparsity_perturbs_the_share_asked_for_in_every_tensor_and_only_the_largest() {
    let mut m = tiny_model(47).unwrap();
    let data = sst2(4, 4);
    for r in [0.3, 0.75] {
        let cfg = ZoConfig {
            lr: Some(1e-2),
            mu: Some(1e-3),
            batch: 4,
            train_examples: Some(4),
            sparsity: r,
            sparsity_mode: SparsityMode::Magnitude,
            ..Default::default()
        };
        let s = run::settings(&cfg, &m).unwrap();
        let enc = batch::encode(&m, &data.train).unwrap();
        let tun = run::prepare(&mut m, Scheme::Full, 0, &enc).unwrap();
        let mut tr = Trainer::new(&m, tun, enc, s).unwrap();
        let ps: Vec<Param> = tr.params().to_vec();
        let before = snapshot(&ps);
        let mut total = (0, 0);
        for (p, w) in ps.iter().zip(&before) {
            // Every direction perturbs exactly the selected coordinates of this tensor.
            let st = Perturbation::new(11, ParamSet::All)
                .apply_to(std::slice::from_ref(p), 0.0)
                .unwrap();
            let n = w.len();
            assert_eq!(
                st.perturbed,
                tessera_zo::sparsity::kept_count(n, 1.0 - r),
                "{}",
                p.name
            );
            assert!((st.perturbed as f64 / n as f64 - (1.0 - r)).abs() <= 0.5 / n as f64);
            total = (total.0 + st.perturbed, total.1 + n);
            // ... and they are the largest |w|.
            let z = Perturbation::new(11, ParamSet::All).direction(p).unwrap();
            let (mut lo_in, mut hi_out) = (f32::INFINITY, 0f32);
            for (x, zi) in w.iter().zip(&z) {
                if *zi != 0.0 {
                    lo_in = lo_in.min(x.abs());
                } else {
                    hi_out = hi_out.max(x.abs());
                }
            }
            assert!(lo_in >= hi_out, "{}: {lo_in} < {hi_out}", p.name);
        }
        let share = tr.perturbed_share().unwrap();
        assert!((share - total.0 as f64 / total.1 as f64).abs() < 1e-12);
        assert!((share - (1.0 - r)).abs() < 0.01, "{share}");
        // A step moves only the selected coordinates, and some of them.
        let sel: Vec<Vec<bool>> = ps
            .iter()
            .map(|p| {
                let z = Perturbation::new(1, ParamSet::All).direction(p).unwrap();
                z.iter().map(|&x| x != 0.0).collect()
            })
            .collect();
        tr.step(0).unwrap();
        let after = snapshot(&ps);
        let mut moved = 0;
        for ((b, a), s) in before.iter().zip(&after).zip(&sel) {
            for ((x, y), k) in b.iter().zip(a).zip(s) {
                if x.to_bits() != y.to_bits() {
                    assert!(*k, "an unselected coordinate moved");
                    moved += 1;
                }
            }
        }
        assert!(moved > total.0 / 2, "{moved} of {} moved", total.0);
        drop(tr);
    }
    // LoRA's B starts at zero: magnitude selection is refused there.
    let c = ZoConfig {
        scheme: Scheme::Lora,
        sparsity: 0.5,
        sparsity_mode: SparsityMode::Magnitude,
        ..Default::default()
    };
    let e = run::validate(&c).unwrap_err().to_string();
    assert!(e.contains("magnitude"), "{e}");
}

#[test]
fn forward_gradient_is_the_directional_derivative() {
    let mut m = tiny_model(44).unwrap();
    let data = sst2(3, 3);
    let (tun, enc, _) = setup(
        &mut m,
        &data,
        Optimizer::ForwardGrad,
        Scheme::Full,
        1e-3,
        1e-3,
    );
    let ps = tun.params(&m);
    let refs: Vec<&Encoded> = enc.iter().collect();
    let v = Perturbation::new(5, ParamSet::All);
    let loss = batch::loss(&m, &tun, &refs, tessera_zo::scheme::Pass::Train).unwrap();
    let d = tessera_zo::forward_grad::directional_derivative(&loss, &v, &ps).unwrap();
    let mut f = || batch::loss_value(&m, &tun, &refs);
    let (lp, lm) = zo_sgd::spsa(&mut f, &v, &ps, 1e-3).unwrap();
    let fd = (lp - lm) / 2e-3;
    assert!(
        (d - fd).abs() < 0.05 * d.abs().max(1.0),
        "autograd {d} vs central difference {fd}"
    );
}

fn cfg_for(o: Optimizer, out: &std::path::Path, steps: u64) -> ZoConfig {
    ZoConfig {
        optimizer: o,
        lr: Some(1e-3),
        mu: Some(1e-3),
        steps,
        batch: 3,
        train_examples: Some(6),
        eval_examples: Some(4),
        checkpoint_every: 2,
        out: out.to_path_buf(),
        ..Default::default()
    }
}

fn params_of(out: &std::path::Path) -> HashMap<String, Vec<u32>> {
    let name = std::fs::read_to_string(out.join("LATEST")).unwrap();
    candle_core::safetensors::load(
        out.join(name.trim()).join("params.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
    .into_iter()
    .map(|(k, t)| {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        (k, v.into_iter().map(f32::to_bits).collect())
    })
    .collect()
}

#[test]
fn a_resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    let data = sst2(6, 4);
    // (optimizer, magnitude-selected gradient sparsity 0.6)
    for (o, magnitude) in [
        (Optimizer::ZoSgdMmt, false),
        (Optimizer::ZoAdam, false),
        (Optimizer::FoAdam, false),
        (Optimizer::ZoSgd, true),
        (Optimizer::ZoAdam, true),
    ] {
        let cfg_for = |o: Optimizer, out: &std::path::Path, steps: u64| {
            let mut c = cfg_for(o, out, steps);
            if magnitude {
                c.sparsity = 0.6;
                c.sparsity_mode = SparsityMode::Magnitude;
            }
            c
        };
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let whole = run::train(&mut tiny_model(45).unwrap(), &data, &cfg_for(o, &a, 5)).unwrap();
        let part = run::train(&mut tiny_model(45).unwrap(), &data, &cfg_for(o, &b, 3)).unwrap();
        assert_eq!(part.steps_done, 3);
        let mut rc = cfg_for(o, &b, 5);
        rc.resume = Some(b.clone());
        let resumed = run::train(&mut tiny_model(45).unwrap(), &data, &rc).unwrap();
        assert_eq!(resumed.resumed_from, Some(3));
        assert_eq!(resumed.loss_curve, whole.loss_curve, "{o}");
        assert_eq!(
            params_of(&a),
            params_of(&b),
            "{o}: parameters differ after resume"
        );
        assert_eq!(resumed.accuracy_after, whole.accuracy_after);
    }
}

#[test]
fn settings_written_before_sparsity_mode_still_resume() {
    let data = sst2(6, 4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run::train(
        &mut tiny_model(48).unwrap(),
        &data,
        &cfg_for(Optimizer::ZoSgd, &out, 2),
    )
    .unwrap();
    let p = out.join("settings.json");
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(j["sparsity_mode"], "random");
    j.as_object_mut().unwrap().remove("sparsity_mode");
    std::fs::write(&p, serde_json::to_string(&j).unwrap()).unwrap();
    let mut rc = cfg_for(Optimizer::ZoSgd, &out, 3);
    rc.resume = Some(out.clone());
    let r = run::train(&mut tiny_model(48).unwrap(), &data, &rc).unwrap();
    assert_eq!(r.resumed_from, Some(2));
    // A magnitude run is another run.
    rc.sparsity = 0.5;
    rc.sparsity_mode = SparsityMode::Magnitude;
    let e = run::train(&mut tiny_model(48).unwrap(), &data, &rc)
        .unwrap_err()
        .to_string();
    assert!(e.contains("other settings"), "{e}");
}

#[test]
fn bad_input_is_a_clear_error_and_overwrites_nothing() {
    let data = sst2(6, 4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run::train(
        &mut tiny_model(46).unwrap(),
        &data,
        &cfg_for(Optimizer::ZoSgd, &out, 2),
    )
    .unwrap();
    let settings = std::fs::read(out.join("settings.json")).unwrap();
    let latest = std::fs::read(out.join("LATEST")).unwrap();
    // Other settings into the same directory, fresh or resumed: refused.
    let mut other = cfg_for(Optimizer::ZoSgd, &out, 2);
    other.lr = Some(5e-3);
    let e = run::train(&mut tiny_model(46).unwrap(), &data, &other)
        .unwrap_err()
        .to_string();
    assert!(e.contains("other settings") && e.contains("lr"), "{e}");
    other.resume = Some(out.clone());
    let e = run::train(&mut tiny_model(46).unwrap(), &data, &other)
        .unwrap_err()
        .to_string();
    assert!(e.contains("other settings"), "{e}");
    // The same settings without --resume: refused too (nothing silently restarts over a run).
    let e = run::train(
        &mut tiny_model(46).unwrap(),
        &data,
        &cfg_for(Optimizer::ZoSgd, &out, 2),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--resume"), "{e}");
    assert_eq!(std::fs::read(out.join("settings.json")).unwrap(), settings);
    assert_eq!(std::fs::read(out.join("LATEST")).unwrap(), latest);
    // Combinations that cannot run.
    for (o, f) in [
        (Optimizer::ForwardGrad, "block"),
        (Optimizer::FoSgd, "q"),
        (Optimizer::ZoSgdCons, "block"),
        (Optimizer::FoAdam, "hybrid"),
    ] {
        let mut c = cfg_for(o, &dir.path().join("x"), 1);
        match f {
            "block" => c.block_wise = true,
            "q" => c.q = 4,
            _ => c.hybrid_fo = Some("0".into()),
        }
        assert!(run::validate(&c).is_err(), "{o} with {f}");
    }
    assert!(!dir.path().join("x").exists());
    let mut c = cfg_for(Optimizer::ZoSgd, &dir.path().join("y"), 1);
    c.hybrid_fo = Some("0-7".into());
    let e = run::train(&mut tiny_model(46).unwrap(), &data, &c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--hybrid-fo"), "{e}");
    assert!("zo-bogus".parse::<Optimizer>().is_err());
    assert!("half".parse::<Scheme>().is_err());
    // Malformed task lines are skipped and counted.
    let (ex, skipped) =
        task::parse_sst2("good film\t1\nno label here\nbad\tx\n\t0\ntoo\tmany\t1\nfine\t0");
    assert_eq!((ex.len(), skipped), (2, 4));
    let (items, skipped) = task::parse_copa(
        "<item id=\"1\" asks-for=\"cause\" most-plausible-alternative=\"1\"><p>A.</p><a1>B.</a1><a2>C.</a2></item>\
         <item id=\"2\" asks-for=\"why\" most-plausible-alternative=\"1\"><p>A.</p><a1>B.</a1><a2>C.</a2></item>\
         <item id=\"3\" most-plausible-alternative=\"3\"><p>A.</p></item>",
    );
    assert_eq!((items.len(), skipped), (1, 2));
    assert_eq!(items[0].1.prompt, "A because");
    assert_eq!(items[0].1.candidates, [" b.", " c."]);
}

#[test]
fn copa_splits_and_sst2_counts_match_the_manifest() {
    let c = task::load(Task::Copa, None, 400, 100, 1).unwrap();
    assert_eq!(
        (c.train.len(), c.eval.len(), c.train_pool, c.skipped),
        (400, 100, 400, 0)
    );
    let s = task::load(Task::Sst2, None, 1000, 872, 1).unwrap();
    assert_eq!(
        (s.train.len(), s.eval.len(), s.train_pool, s.skipped),
        (1000, 872, 6920, 0)
    );
    let s2 = task::load(Task::Sst2, None, 1000, 872, 2).unwrap();
    assert_ne!(s.train, s2.train, "the training sample depends on the seed");
    assert_eq!(s.eval, s2.eval, "the evaluation set does not");
}
