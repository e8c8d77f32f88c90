use tessera_qnewton::hhl::{hhl_solve, random_rhs, random_symmetric, HhlConfig};

#[test]
fn hhl_matches_classical_solve_on_well_conditioned_blocks() {
    for (dim, kappa) in [(2, 2.0), (4, 5.0), (8, 10.0), (16, 10.0), (5, 8.0)] {
        let a = random_symmetric(dim, kappa, false, dim as u64).unwrap();
        let b = random_rhs(dim, 3);
        let r = hhl_solve(
            &a,
            &b,
            &HhlConfig {
                clock_qubits: 9,
                range: 0.75,
            },
        )
        .unwrap();
        assert!(
            r.fidelity > 0.99,
            "dim {dim} κ {kappa}: fidelity {}",
            r.fidelity
        );
        assert!(r.success_probability > 0.0 && r.success_probability <= 1.0 + 1e-12);
        assert!(r.total_qubits <= 4 + 9 + 1);
    }
}

#[test]
fn more_clock_qubits_give_higher_fidelity() {
    let a = random_symmetric(8, 10.0, false, 11).unwrap();
    let b = random_rhs(8, 5);
    let f = |nc| {
        hhl_solve(
            &a,
            &b,
            &HhlConfig {
                clock_qubits: nc,
                range: 0.75,
            },
        )
        .unwrap()
        .fidelity
    };
    let (low, high) = (f(3), f(10));
    assert!(high > low, "3 clock qubits {low}, 10 clock qubits {high}");
    assert!(high > 0.995, "{high}");
}

#[test]
fn hhl_handles_indefinite_blocks_and_rejects_bad_input() {
    let a = random_symmetric(4, 4.0, true, 2).unwrap();
    let b = random_rhs(4, 1);
    let r = hhl_solve(
        &a,
        &b,
        &HhlConfig {
            clock_qubits: 10,
            range: 0.75,
        },
    )
    .unwrap();
    assert!(r.fidelity > 0.99, "{}", r.fidelity);
    let big = random_symmetric(17, 2.0, false, 0).unwrap();
    assert!(hhl_solve(&big, &random_rhs(17, 0), &HhlConfig::default()).is_err());
    let nonsym = faer::Mat::from_fn(2, 2, |i, j| [[1.0, 2.0], [3.0, 4.0]][i][j]);
    assert!(hhl_solve(&nonsym, &[1.0, 0.0], &HhlConfig::default()).is_err());
}
