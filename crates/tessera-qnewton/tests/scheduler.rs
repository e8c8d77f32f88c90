use tessera_qnewton::cost::{lu_flops, qlsa_queries};
use tessera_qnewton::scheduler::{crossover_gate_time, decide, Route, SchedulerConfig};

#[test]
fn query_count_grows_with_kappa_and_sparsity() {
    assert!(qlsa_queries(10, 100.0, 0.01) > qlsa_queries(10, 10.0, 0.01));
    assert!(qlsa_queries(100, 10.0, 0.01) > qlsa_queries(10, 10.0, 0.01));
    assert!(qlsa_queries(10, 10.0, 0.001) > qlsa_queries(10, 10.0, 0.01));
    // Roughly linear in κ for large κ.
    let r = qlsa_queries(10, 2e4, 0.01) / qlsa_queries(10, 1e4, 0.01);
    assert!(r > 1.9 && r < 2.3, "{r}");
}

#[test]
fn choice_flips_where_the_cost_curves_cross_in_gate_time() {
    let base = SchedulerConfig::default();
    for (kappa, d, t_c) in [(10.0, 8, 1e-4), (900.0, 200, 2e-2), (5.0, 1000, 0.3)] {
        let g = crossover_gate_time(&base, kappa, d, t_c);
        let at = |gate_time: f64| {
            decide(
                &SchedulerConfig {
                    gate_time,
                    ..base.clone()
                },
                kappa,
                d,
                t_c,
            )
        };
        assert_eq!(at(g * 0.99).route, Route::Quantum);
        assert_eq!(at(g * 1.01).route, Route::Classical);
        let d_at = at(g);
        assert!((d_at.t_quantum - t_c).abs() < 1e-9 * t_c);
    }
}

#[test]
fn choice_flips_where_the_cost_curves_cross_in_kappa() {
    // Classical cost from the LU flop model at 1 GFLOP/s; quantum cost rises with κ: find κ* by bisection.
    let cfg = SchedulerConfig {
        gate_time: 1e-10,
        ..SchedulerConfig::default()
    };
    let (n, d) = (1000, 50);
    let t_c = lu_flops(n) / 1e9;
    let tq = |k: f64| cfg.gate_time * qlsa_queries(d, k, cfg.qlsa_eps);
    let (mut lo, mut hi) = (1.0f64, 1e4f64);
    assert!(tq(lo) < t_c && tq(hi) > t_c);
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        if tq(mid) < t_c {
            lo = mid
        } else {
            hi = mid
        }
    }
    assert_eq!(decide(&cfg, lo * 0.98, d, t_c).route, Route::Quantum);
    assert_eq!(decide(&cfg, hi * 1.02, d, t_c).route, Route::Classical);
}

#[test]
fn kappa_above_the_limit_always_goes_classical() {
    let cfg = SchedulerConfig {
        gate_time: 1e-30,
        kappa_limit: 1e4,
        ..SchedulerConfig::default()
    };
    let cheap = decide(&cfg, 9e3, 10, 1.0);
    assert_eq!(cheap.route, Route::Quantum);
    let limited = decide(&cfg, 2e4, 10, 1.0);
    assert!(limited.t_quantum < limited.t_classical);
    assert_eq!(limited.route, Route::Classical);
    assert!(limited.kappa_limited);
    assert_eq!(decide(&cfg, f64::INFINITY, 10, 1.0).route, Route::Classical);
    assert_eq!(decide(&cfg, f64::NAN, 10, 1.0).route, Route::Classical);
}
