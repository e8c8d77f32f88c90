//! In-place seeded perturbation (MeZO's +μ, −2μ, +μ and update) on tiny random models.
#![allow(clippy::needless_range_loop)]
use candle_core::{Device, Tensor};
use tessera_lm::perturb::{params, Z_BLOCK};
use tessera_lm::testing::tiny_model;
use tessera_lm::*;

fn snapshot(m: &Llama, set: ParamSet) -> Vec<(String, Vec<f32>)> {
    params(m, set)
        .into_iter()
        .map(|p| {
            (
                p.name,
                p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect()
}

fn mask_half(m: &mut Llama) {
    for b in &mut m.blocks {
        for (_, l) in b.linears_mut() {
            let (o, i) = l.dims();
            let v: Vec<f32> = (0..o * i).map(|k| ((k / 3) % 2) as f32).collect();
            l.set_mask_keep_dense(Tensor::from_vec(v, (o, i), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
}

#[test]
fn plus_minus_plus_restores_and_masked_weights_stay_zero() {
    let mut m = tiny_model(31).unwrap();
    mask_half(&mut m);
    let before = snapshot(&m, ParamSet::Base);
    let p = Perturbation::new(42, ParamSet::Base);
    let mu = 1e-3;
    let s1 = p.apply(&m, mu).unwrap();
    let moved = snapshot(&m, ParamSet::Base);
    let s2 = p.apply(&m, -2.0 * mu).unwrap();
    let s3 = p.apply(&m, mu).unwrap();
    assert_eq!(s1, s2);
    assert_eq!(s1, s3);
    assert_eq!(s1.tensors, before.len());
    let after = snapshot(&m, ParamSet::Base);
    let masks: std::collections::HashMap<String, Vec<f32>> = params(&m, ParamSet::Base)
        .into_iter()
        .filter_map(|p| {
            p.mask
                .map(|t| (p.name, t.flatten_all().unwrap().to_vec1().unwrap()))
        })
        .collect();
    assert_eq!(masks.len(), 14);
    let (mut changed, mut masked) = (0usize, 0usize);
    for (((name, b), (_, mv)), (_, a)) in before.iter().zip(&moved).zip(&after) {
        let mk = masks.get(name);
        for k in 0..b.len() {
            assert!(
                (a[k] - b[k]).abs() <= 1e-6 * (1.0 + b[k].abs()),
                "{name}[{k}]"
            );
            if mk.is_some_and(|m| m[k] == 0.0) {
                masked += 1;
                assert_eq!(mv[k].to_bits(), 0, "masked weight moved: {name}[{k}]");
                assert_eq!(a[k].to_bits(), 0);
            } else if mv[k] != b[k] {
                changed += 1;
            }
        }
    }
    let total: usize = before.iter().map(|(_, v)| v.len()).sum();
    assert_eq!(s1.perturbed, total - masked);
    assert!(changed as f64 > 0.99 * (total - masked) as f64);
}

#[test]
fn z_is_seeded_standard_normal_and_regenerated_exactly() {
    let m = tiny_model(32).unwrap();
    let p = Perturbation::new(7, ParamSet::Base);
    let name = "model.embed_tokens.weight";
    let before = snapshot(&m, ParamSet::Base);
    p.apply(&m, 1.0).unwrap();
    let after = snapshot(&m, ParamSet::Base);
    let i = before.iter().position(|(n, _)| n == name).unwrap();
    let z = p.z_values(name, before[i].1.len());
    assert!(z.len() > 2 * Z_BLOCK, "several blocks exercised");
    for k in 0..z.len() {
        let d = after[i].1[k] - before[i].1[k];
        assert!((d - z[k]).abs() < 1e-5, "{k}");
    }
    let n = z.len() as f64;
    let mean = z.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = z.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!(
        mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
        "{mean} {var}"
    );
    assert_eq!(z, p.z_values(name, z.len()));
    assert_ne!(
        z,
        Perturbation::new(8, ParamSet::Base).z_values(name, z.len())
    );
    assert_ne!(z[..100], p.z_values("model.norm.weight", 100)[..]);
}

#[test]
fn update_uses_the_same_z_and_skips_decay_on_norms() {
    let m = tiny_model(33).unwrap();
    let p = Perturbation::new(3, ParamSet::Base);
    let before = snapshot(&m, ParamSet::Base);
    let (lr, g, wd) = (0.01f32, 2.5f32, 0.1f32);
    p.update(&m, lr, g, wd).unwrap();
    let after = snapshot(&m, ParamSet::Base);
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        let z = p.z_values(name, b.len());
        let decay = if name.contains("norm") { 0.0 } else { wd };
        for k in 0..b.len() {
            let want = b[k] - lr * (g * z[k] + decay * b[k]);
            assert!((a[k] - want).abs() < 1e-6, "{name}[{k}]");
        }
    }
}

#[test]
fn fraction_subset_and_adapters() {
    let mut m = tiny_model(34).unwrap();
    m.add_lora(&LoraSpec::new("q,v", 2).unwrap()).unwrap();
    let base_before = snapshot(&m, ParamSet::Base);
    let mut p = Perturbation::new(5, ParamSet::Adapters);
    let s = p.apply(&m, 0.5).unwrap();
    assert_eq!(s.tensors, 8);
    assert_eq!(snapshot(&m, ParamSet::Base), base_before, "base untouched");
    p.apply(&m, -0.5).unwrap();
    // A fraction perturbs about that share of coordinates, the same ones for the same selection seed.
    p.set = ParamSet::Base;
    p.fraction = 0.25;
    let s = p.apply(&m, 1.0).unwrap();
    let share = s.perturbed as f64 / s.elements as f64;
    assert!((share - 0.25).abs() < 0.01, "{share}");
    let after = snapshot(&m, ParamSet::Base);
    let moved: usize = base_before
        .iter()
        .zip(&after)
        .map(|((_, b), (_, a))| b.iter().zip(a).filter(|(x, y)| x != y).count())
        .sum();
    assert!(moved <= s.perturbed && moved as f64 > 0.99 * s.perturbed as f64);
    p.apply(&m, -1.0).unwrap();
    // Named subset; unknown names and bad settings are errors.
    p.fraction = 1.0;
    p.only = Some(vec!["model.norm.weight".into()]);
    assert_eq!(p.apply(&m, 1.0).unwrap().tensors, 1);
    p.only = Some(vec!["model.nope".into()]);
    assert!(p.apply(&m, 1.0).is_err());
    p.only = None;
    p.fraction = 0.0;
    assert!(p.apply(&m, 1.0).is_err());
    p.fraction = 1.0;
    assert!(p.apply(&m, f32::NAN).is_err());
    assert_eq!("adapters".parse::<ParamSet>().unwrap(), ParamSet::Adapters);
}

#[test]
fn perturbation_changes_the_loss_and_restores_it() {
    let m = tiny_model(35).unwrap();
    let toks = [5u32, 17, 99, 3, 200, 42, 7];
    let loss = |m: &Llama| {
        m.next_token_loss_with(&toks, Grad::Off)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let l0 = loss(&m);
    let p = Perturbation::new(1, ParamSet::Base);
    p.apply(&m, 1e-2).unwrap();
    let lp = loss(&m);
    p.apply(&m, -2e-2).unwrap();
    let lm = loss(&m);
    p.apply(&m, 1e-2).unwrap();
    assert!(lp != l0 && lm != l0);
    assert!((loss(&m) - l0).abs() < 1e-5);
}

#[test]
fn z_has_gaussian_quantiles_and_direction_matches_apply() {
    // The polynomial Box–Muller must give a real standard normal: check the tail masses, not just two moments.
    let p = Perturbation::new(11, ParamSet::Base);
    let z = p.z_values("probe", 400_000);
    let share = |k: f32| z.iter().filter(|x| x.abs() < k).count() as f64 / z.len() as f64;
    for (k, want) in [
        (0.5, 0.382925),
        (1.0, 0.682689),
        (2.0, 0.954500),
        (3.0, 0.997300),
    ] {
        assert!(
            (share(k) - want).abs() < 0.003,
            "P(|z| < {k}) = {}",
            share(k)
        );
    }
    let m4 = z.iter().map(|&x| (x as f64).powi(4)).sum::<f64>() / z.len() as f64;
    assert!((m4 - 3.0).abs() < 0.06, "fourth moment {m4}");
    // `direction` is exactly what `apply_to` adds, with the fraction and masks applied.
    let mut m = tiny_model(36).unwrap();
    mask_half(&mut m);
    let mut p = Perturbation::new(12, ParamSet::Base);
    p.fraction = 0.5;
    let ps = params(&m, ParamSet::Base);
    let before = snapshot(&m, ParamSet::Base);
    p.apply_to(&ps, 1.0).unwrap();
    let after = snapshot(&m, ParamSet::Base);
    for (i, q) in ps.iter().enumerate() {
        let d = p.direction(q).unwrap();
        for k in 0..d.len() {
            assert!(
                (after[i].1[k] - before[i].1[k] - d[k]).abs() < 1e-5,
                "{}[{k}]",
                q.name
            );
        }
    }
    // map_inplace edits the storage the model reads.
    let v = &ps[0].var;
    tessera_lm::perturb::map_inplace(v, |t| t.iter_mut().for_each(|x| *x = 2.0)).unwrap();
    let vals: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    assert!(vals.iter().all(|&x| x == 2.0));
}
