use faer::Mat;
use tessera_qnewton::condition::{exact_kappa, lanczos_extremes, log_kappa_bound};
use tessera_qnewton::hhl::random_symmetric;

#[test]
fn determinant_bound_on_the_papers_2x2_example() {
    let a = Mat::from_fn(2, 2, |i, j| [[1.0, 2.0], [3.0, 4.0]][i][j]);
    let bound = log_kappa_bound(a.as_ref()).exp();
    assert!((bound - 14.933).abs() < 1e-3, "bound {bound}");
    // Exact for 2×2: equals σ_max/σ_min.
    let exact = exact_kappa(a.as_ref()).unwrap();
    assert!(
        (bound - exact).abs() < 1e-9 * exact,
        "bound {bound} vs exact {exact}"
    );
}

#[test]
fn determinant_bound_is_an_upper_bound_and_finite_for_large_n() {
    for (n, kappa) in [(5, 10.0), (30, 100.0), (200, 1e3)] {
        let a = random_symmetric(n, kappa, false, n as u64).unwrap();
        let exact = exact_kappa(a.as_ref()).unwrap();
        let log_bound = log_kappa_bound(a.as_ref());
        assert!(log_bound.is_finite(), "n={n}: bound overflowed");
        assert!(
            log_bound >= exact.ln() - 1e-9,
            "n={n}: bound e^{log_bound} below exact {exact}"
        );
    }
}

#[test]
fn lanczos_kappa_matches_svd_ratio_on_random_spd() {
    for seed in 0..4u64 {
        let n = 60;
        let kappa = [5.0, 50.0, 500.0, 5000.0][seed as usize];
        let a = random_symmetric(n, kappa, false, 100 + seed).unwrap();
        let exact = exact_kappa(a.as_ref()).unwrap();
        // A full Krylov space recovers the spectrum exactly.
        let full = lanczos_extremes(a.as_ref(), n, seed).unwrap().kappa();
        assert!(
            (full - exact).abs() < 1e-6 * exact,
            "full lanczos {full} vs {exact}"
        );
        // 30 steps: extreme Ritz values lie inside the spectrum, so κ is under-estimated, but not by much.
        let partial = lanczos_extremes(a.as_ref(), 30, seed).unwrap().kappa();
        assert!(
            partial <= exact * (1.0 + 1e-9),
            "partial {partial} above exact {exact}"
        );
        assert!(
            partial >= 0.5 * exact,
            "partial {partial} far below exact {exact}"
        );
    }
}

#[test]
fn lanczos_handles_indefinite_and_tiny_matrices() {
    let a = random_symmetric(12, 20.0, true, 7).unwrap();
    let e = lanczos_extremes(a.as_ref(), 12, 1).unwrap();
    assert!(e.min < 0.0 && e.max > 0.0);
    assert!((e.kappa() - 20.0).abs() < 1e-6 * 20.0, "{}", e.kappa());
    let one = Mat::from_fn(1, 1, |_, _| 3.0);
    assert!((lanczos_extremes(one.as_ref(), 5, 0).unwrap().kappa() - 1.0).abs() < 1e-12);
    assert!(lanczos_extremes(Mat::<f64>::zeros(0, 0).as_ref(), 5, 0).is_err());
}
