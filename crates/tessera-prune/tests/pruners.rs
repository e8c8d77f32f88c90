//! Pruners on hand-made and random matrices: exact ratios and N:M patterns, Wanda's choice, SparseGPT below
//! Wanda on a layer with a known Hessian, and bad patterns as typed errors.
use tessera_lm::linear::InputStats;
use tessera_prune::magnitude::magnitude_mask;
use tessera_prune::pattern::{mask_per_row, prune_count};
use tessera_prune::sparsegpt::{sparsegpt, SparseGptOptions};
use tessera_prune::wanda::wanda_mask;
use tessera_prune::{Allocation, Pattern, PruneError};

fn lcg(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

fn stats_from(x: &[f64], n: usize, d: usize, gram: bool) -> InputStats {
    let mut sq = vec![0.0; d];
    let mut g = vec![0.0; d * d];
    for r in 0..n {
        let row = &x[r * d..(r + 1) * d];
        for i in 0..d {
            sq[i] += row[i] * row[i];
            if gram {
                for j in 0..d {
                    g[i * d + j] += row[i] * row[j];
                }
            }
        }
    }
    InputStats {
        rows: n,
        sq_norm: sq,
        gram: gram.then_some(g),
    }
}

#[test]
fn patterns_parse_and_reject_bad_input() {
    assert_eq!(
        "2:4".parse::<Pattern>().unwrap(),
        Pattern::NM { n: 2, m: 4 }
    );
    assert_eq!(
        "50%".parse::<Pattern>().unwrap(),
        Pattern::Unstructured { sparsity: 0.5 }
    );
    assert_eq!("0.7".parse::<Pattern>().unwrap().to_string(), "0.7");
    for bad in ["4:4", "5:4", "0:4"] {
        assert!(
            matches!(bad.parse::<Pattern>(), Err(PruneError::Pattern { .. })),
            "{bad}"
        );
    }
    for bad in ["1", "1.5", "-0.1", "NaN", "100%"] {
        assert!(
            matches!(bad.parse::<Pattern>(), Err(PruneError::Sparsity(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        "x:4".parse::<Pattern>(),
        Err(PruneError::Invalid(_))
    ));
}

#[test]
fn masks_hit_the_exact_ratio_and_nm_pattern() {
    let (rows, cols) = (24, 64);
    let mut r = lcg(1);
    let w: Vec<f32> = (0..rows * cols).map(|_| r() as f32).collect();
    let x: Vec<f64> = (0..50 * cols).map(|_| r()).collect();
    let st = stats_from(&x, 50, cols, false);
    for s in [0.0, 0.3, 0.5, 0.7, 0.9] {
        let p = Pattern::unstructured(s).unwrap();
        let m = wanda_mask(&w, rows, cols, &st, &p).unwrap();
        m.verify(&p, true).unwrap();
        for row in m.keep.chunks(cols) {
            assert_eq!(
                row.iter().filter(|&&k| k == 0).count(),
                prune_count(cols, s)
            );
        }
        let mm = magnitude_mask(&w, rows, cols, &p).unwrap();
        mm.verify(&p, false).unwrap();
        assert_eq!(mm.pruned(), prune_count(rows * cols, s));
    }
    for (n, mm) in [(2, 4), (4, 8), (1, 4)] {
        let p = Pattern::nm(n, mm).unwrap();
        for m in [
            wanda_mask(&w, rows, cols, &st, &p).unwrap(),
            magnitude_mask(&w, rows, cols, &p).unwrap(),
        ] {
            m.verify(&p, true).unwrap();
            for g in m.keep.chunks(mm) {
                assert_eq!(g.iter().filter(|&&k| k == 0).count(), n);
            }
        }
    }
    // A width that is not a multiple of M is a typed error.
    let p = Pattern::nm(2, 4).unwrap();
    assert!(matches!(
        wanda_mask(
            &w[..rows * 62],
            rows,
            62,
            &stats_from(&x[..50 * 62], 50, 62, false),
            &p
        ),
        Err(PruneError::Pattern { .. })
    ));
}

#[test]
fn wanda_picks_by_weight_times_input_norm_within_each_row() {
    // Two rows, four inputs. Input norms ‖X_j‖ = (10, 1, 1, 0.1).
    let w = [
        0.1f32, 1.0, -0.5, 4.0, // scores 1.0, 1.0, 0.5, 0.4
        -0.2, 0.3, 0.2, 9.0, // scores 2.0, 0.3, 0.2, 0.9
    ];
    let st = InputStats {
        rows: 1,
        sq_norm: vec![100.0, 1.0, 1.0, 0.01],
        gram: None,
    };
    let m = wanda_mask(&w, 2, 4, &st, &Pattern::unstructured(0.5).unwrap()).unwrap();
    // Row 0 prunes inputs 2 and 3 (the largest weight, 4.0, goes: its input is tiny); row 1 prunes 1 and 2.
    assert_eq!(m.keep, vec![1, 1, 0, 0, 1, 0, 0, 1]);
    // Magnitude alone would keep 4.0 and 9.0.
    let mm = magnitude_mask(&w, 2, 4, &Pattern::unstructured(0.5).unwrap()).unwrap();
    assert_eq!(mm.keep[3], 1);
    assert_eq!(mm.keep[7], 1);
    // 2:4 is the same here (one group per row); a ratio of 0.25 prunes only the lowest.
    let m = wanda_mask(&w, 2, 4, &st, &Pattern::unstructured(0.25).unwrap()).unwrap();
    assert_eq!(m.keep, vec![1, 1, 1, 0, 1, 1, 0, 1]);
    // Ties keep the earlier index (stable order).
    let m = mask_per_row(&[1.0, 1.0, 1.0, 1.0], 1, 4, &Pattern::nm(2, 4).unwrap()).unwrap();
    assert_eq!(m.keep, vec![0, 0, 1, 1]);
}

fn output_error(x: &[f64], n: usize, d: usize, w: &[f32], q: &[f32], rows: usize) -> f64 {
    let mut e = 0.0;
    for t in 0..n {
        for r in 0..rows {
            let mut y = 0.0;
            for j in 0..d {
                y += x[t * d + j] * (w[r * d + j] - q[r * d + j]) as f64;
            }
            e += y * y;
        }
    }
    e
}

#[test]
fn sparsegpt_beats_wanda_on_a_layer_with_a_known_hessian() {
    // Inputs in nearly duplicated pairs (x_{2k+1} = x_{2k} + 0.05·noise) with scales varying by feature: the
    // Hessian couples each pair strongly, so OBS can move a pruned weight onto its partner, which Wanda (no
    // update) cannot.
    let (n, d, rows) = (400, 32, 16);
    let mut r = lcg(7);
    let mut x = vec![0.0; n * d];
    for t in 0..n {
        for k in 0..d / 2 {
            let s = 1.0 + k as f64 / 4.0;
            let z = r() * s;
            x[t * d + 2 * k] = z;
            x[t * d + 2 * k + 1] = z + 0.05 * r();
        }
    }
    let w: Vec<f32> = (0..rows * d).map(|_| r() as f32).collect();
    let st = stats_from(&x, n, d, true);
    for p in [
        Pattern::unstructured(0.5).unwrap(),
        Pattern::nm(2, 4).unwrap(),
        Pattern::unstructured(0.7).unwrap(),
    ] {
        let wm = wanda_mask(&w, rows, d, &st, &p).unwrap();
        let wq: Vec<f32> = w
            .iter()
            .zip(&wm.keep)
            .map(|(&a, &k)| if k == 1 { a } else { 0.0 })
            .collect();
        let o = sparsegpt(&w, rows, d, &st, &p, &SparseGptOptions::default()).unwrap();
        // Exact zeros wherever the mask prunes, and the pattern holds.
        for (&k, &v) in o.mask.keep.iter().zip(&o.weight) {
            if k == 0 {
                assert_eq!(v, 0.0);
            }
        }
        if let Pattern::NM { .. } = p {
            o.mask.verify(&p, true).unwrap();
        } else {
            assert_eq!(o.mask.pruned(), prune_count(rows * d, p.sparsity()));
        }
        let e_w = output_error(&x, n, d, &w, &wq, rows);
        let e_s = output_error(&x, n, d, &w, &o.weight, rows);
        // The OBS update is what helps: the same mask without it is worse.
        let sm: Vec<f32> = w
            .iter()
            .zip(&o.mask.keep)
            .map(|(&a, &k)| if k == 1 { a } else { 0.0 })
            .collect();
        let e_m = output_error(&x, n, d, &w, &sm, rows);
        eprintln!(
            "{p}: Wanda {e_w:.2}, SparseGPT {e_s:.2}, SparseGPT mask without update {e_m:.2}"
        );
        assert!(
            e_s < e_w && e_s < 0.5 * e_m,
            "{p}: SparseGPT error {e_s:.3} should be below Wanda's {e_w:.3} and its own mask's {e_m:.3}"
        );
    }
    // Without the Gram matrix SparseGPT refuses.
    let st2 = stats_from(&x, n, d, false);
    assert!(sparsegpt(
        &w,
        rows,
        d,
        &st2,
        &Pattern::nm(2, 4).unwrap(),
        &Default::default()
    )
    .is_err());
}

#[test]
fn sparsegpt_error_is_the_exact_quadratic_loss_across_blocks() {
    // The sequential OBS elimination is exact: for every row, ½ δᵀ H δ (δ = W − Ŵ, H the damped Hessian) summed
    // over rows equals SparseGPT's accumulated Σ (w − q)² / U_qq² / 2. With 160 columns this crosses a 128-column
    // block, so the lazy batch update is checked too.
    let (n, d, rows) = (300, 160, 6);
    let mut r = lcg(11);
    let base: Vec<f64> = (0..n * 8).map(|_| r()).collect();
    let mut x = vec![0.0; n * d];
    for t in 0..n {
        for j in 0..d {
            x[t * d + j] = base[t * 8 + j % 8] * (1.0 + (j % 5) as f64) + 0.3 * r();
        }
    }
    let w: Vec<f32> = (0..rows * d).map(|_| r() as f32).collect();
    let st = stats_from(&x, n, d, true);
    let g = st.gram.as_ref().unwrap();
    let mut h: Vec<f64> = g.iter().map(|v| 2.0 * v / n as f64).collect();
    let mean = (0..d).map(|i| h[i * d + i]).sum::<f64>() / d as f64;
    for i in 0..d {
        h[i * d + i] += 0.01 * mean;
    }
    for p in [
        Pattern::unstructured(0.6).unwrap(),
        Pattern::nm(2, 4).unwrap(),
    ] {
        let o = sparsegpt(&w, rows, d, &st, &p, &SparseGptOptions::default()).unwrap();
        let mut loss = 0.0;
        for rr in 0..rows {
            let dl: Vec<f64> = (0..d)
                .map(|j| w[rr * d + j] as f64 - o.weight[rr * d + j] as f64)
                .collect();
            for i in 0..d {
                for j in 0..d {
                    loss += 0.5 * dl[i] * h[i * d + j] * dl[j];
                }
            }
        }
        let rel = (loss - o.error).abs() / o.error;
        assert!(
            rel < 1e-3,
            "{p}: ½δᵀHδ = {loss}, SparseGPT's error {}",
            o.error
        );
    }
}

#[test]
fn sparsegpt_with_identity_hessian_is_magnitude_with_no_update() {
    // H ∝ I: OBS has nothing to compensate with, so the kept weights stay and the pruned are the smallest.
    let (rows, d) = (4, 8);
    let mut g = vec![0.0; d * d];
    for i in 0..d {
        g[i * d + i] = 1.0;
    }
    let st = InputStats {
        rows: 1,
        sq_norm: vec![1.0; d],
        gram: Some(g),
    };
    let mut r = lcg(3);
    let w: Vec<f32> = (0..rows * d).map(|_| r() as f32).collect();
    let p = Pattern::nm(2, 4).unwrap();
    let o = sparsegpt(&w, rows, d, &st, &p, &Default::default()).unwrap();
    let mm = magnitude_mask(&w, rows, d, &p).unwrap();
    assert_eq!(o.mask, mm);
    for ((&a, &b), &k) in w.iter().zip(&o.weight).zip(&o.mask.keep) {
        assert_eq!(b, if k == 1 { a } else { 0.0 });
    }
}

#[test]
fn allocation_rules_select_parts_and_layers() {
    use tessera_lm::Proj;
    let a = Allocation::with_rules(Pattern::nm(2, 4).unwrap(), "attn=dense,mlp@1-2=0.7").unwrap();
    assert_eq!(a.pattern_for(0, Proj::Q), None);
    assert_eq!(a.pattern_for(0, Proj::Up), Some(Pattern::nm(2, 4).unwrap()));
    assert_eq!(
        a.pattern_for(2, Proj::Down),
        Some(Pattern::unstructured(0.7).unwrap())
    );
    assert_eq!(
        a.pattern_for(3, Proj::Down),
        Some(Pattern::nm(2, 4).unwrap())
    );
    assert!(a.validate(2).is_err());
    assert!(a.validate(3).is_ok());
    assert!(Allocation::with_rules(Pattern::nm(2, 4).unwrap(), "vision=0.5").is_err());
    assert!(Allocation::with_rules(Pattern::nm(2, 4).unwrap(), "mlp=4:4").is_err());
}
