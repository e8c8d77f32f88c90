use faer::Mat;
use tessera_qnewton::data::blobs;
use tessera_qnewton::hhl::{random_rhs, random_symmetric};
use tessera_qnewton::newton::{regularize, solve_lu, NewtonConfig, StepRule, StepState};
use tessera_qnewton::sparsify::{sparsify_symmetric, Symmetrize};
use tessera_qnewton::train::{train, Optimizer, TrainConfig};

#[test]
fn newton_on_a_quadratic_converges_in_one_step() {
    // f(θ) = ½θᵀAθ − bᵀθ, gradient Aθ − b, Hessian A.
    let n = 25;
    let a = random_symmetric(n, 100.0, false, 9).unwrap();
    let b = random_rhs(n, 4);
    let mut theta = random_rhs(n, 8);
    let grad = |t: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| (0..n).map(|j| a[(i, j)] * t[j]).sum::<f64>() - b[i])
            .collect()
    };
    let cfg = NewtonConfig {
        reg_eps: 0.0,
        damping: 0.0,
        sparsity_ratio: 1.0,
        symmetrize: Symmetrize::Intersection,
        compensate: false,
        clip: f64::INFINITY,
    };
    let (reg, lambda) = regularize(&a, &cfg);
    assert_eq!(lambda, 0.0);
    let (dir, _) = solve_lu(&reg, &grad(&theta)).unwrap();
    let upd = StepState::new(n).update(
        StepRule::Sgd {
            lr: 1.0,
            momentum: 0.0,
        },
        &dir,
    );
    theta.iter_mut().zip(&upd).for_each(|(t, u)| *t -= u);
    let g_after = grad(&theta).iter().map(|g| g.abs()).fold(0.0, f64::max);
    assert!(g_after < 1e-10, "gradient after one Newton step: {g_after}");
}

#[test]
fn sparsification_is_symmetric_and_keeps_top_entries() {
    let h = random_symmetric(20, 10.0, false, 1).unwrap();
    let s = sparsify_symmetric(&h, 0.2, Symmetrize::Union, false);
    for i in 0..20 {
        assert_eq!(s.matrix[(i, i)], h[(i, i)]);
        for j in 0..20 {
            assert_eq!(s.matrix[(i, j)], s.matrix[(j, i)]);
        }
        // The row's 4 largest-magnitude entries survive.
        let mut mags: Vec<f64> = (0..20).map(|j| h[(i, j)].abs()).collect();
        mags.sort_by(|a, b| b.total_cmp(a));
        let kept = (0..20)
            .filter(|&j| s.matrix[(i, j)].abs() >= mags[3])
            .count();
        assert!(kept >= 4);
    }
    assert!(s.row_sparsity >= 4 && s.row_sparsity < 20);
    assert!(s.density < 1.0);
    let inter = sparsify_symmetric(&h, 0.2, Symmetrize::Intersection, false);
    assert!(inter.row_sparsity <= 5, "d = {}", inter.row_sparsity);
    for i in 0..20 {
        for j in 0..20 {
            assert_eq!(inter.matrix[(i, j)], inter.matrix[(j, i)]);
            if inter.matrix[(i, j)] != 0.0 {
                assert_eq!(s.matrix[(i, j)], h[(i, j)]);
            }
        }
    }
    let dense = sparsify_symmetric(&h, 1.0, Symmetrize::Intersection, false);
    assert_eq!((&dense.matrix - &h).norm_max(), 0.0);
}

#[test]
fn compensated_pruning_keeps_a_psd_block_psd() {
    // A Gram matrix (PSD) whose plain pruning goes indefinite.
    let g = random_symmetric(30, 50.0, false, 3).unwrap();
    let h = &g * &g;
    let min_eig = |m: &Mat<f64>| m.self_adjoint_eigenvalues(faer::Side::Lower).unwrap()[0];
    let plain = sparsify_symmetric(&h, 0.1, Symmetrize::Union, false);
    let comp = sparsify_symmetric(&h, 0.1, Symmetrize::Union, true);
    assert!(
        min_eig(&plain.matrix) < 0.0,
        "expected plain pruning to lose definiteness here"
    );
    assert!(min_eig(&comp.matrix) > -1e-12);
    // H_pruned − H is PSD: the pruned block dominates the original.
    assert!(min_eig(&(&comp.matrix - &h)) > -1e-12);
    assert_eq!(plain.row_sparsity, comp.row_sparsity);
    let inter = sparsify_symmetric(&h, 0.1, Symmetrize::Intersection, true);
    assert!(min_eig(&inter.matrix) > -1e-12);
    assert!(inter.row_sparsity <= 4);
}

#[test]
fn newton_variants_and_baselines_reduce_the_loss_on_blobs() {
    let data = blobs(600, 8, 4, 0);
    let (tr, te) = data.split(0.25, 0);
    for opt in [
        Optimizer::Sgd,
        Optimizer::Adam,
        Optimizer::Newton,
        Optimizer::Qnewton,
    ] {
        let mut cfg = TrainConfig::defaults(opt);
        cfg.hidden = vec![6, 6];
        cfg.batch = 128;
        cfg.steps = 40;
        cfg.eval_every = 20;
        let r = train(&cfg, &tr, &te, |_| {}).unwrap();
        let (first, last) = (&r.curve[0], r.curve.last().unwrap());
        assert!(
            last.train_loss < 0.6 * first.train_loss,
            "{}: loss {} → {}",
            opt.name(),
            first.train_loss,
            last.train_loss
        );
        assert!(
            last.test_acc > 0.8,
            "{}: accuracy {}",
            opt.name(),
            last.test_acc
        );
        if opt.is_newton() {
            assert_eq!(r.blocks.len(), 40 * 3);
            assert_eq!(r.blocks_quantum + r.blocks_classical, 120);
        }
    }
}
