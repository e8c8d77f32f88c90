use faer::{Mat, Side};
use tessera_qnewton::data::blobs;
use tessera_qnewton::hessian::{layer_blocks, Curvature};
use tessera_qnewton::mlp::{batch_matrix, Mlp};

fn layer_gradient(mlp: &Mlp, x: &Mat<f64>, y: &[usize], l: usize) -> Vec<f64> {
    let cache = mlp.forward(x);
    let deltas = mlp.deltas(&cache, y);
    mlp.gradients(&cache, &deltas).swap_remove(l)
}

#[test]
fn exact_blocks_match_finite_differences_of_gradients() {
    let data = blobs(9, 5, 3, 1);
    let (x, y) = batch_matrix(&data, &(0..9).collect::<Vec<_>>());
    let mlp = Mlp::new(&[5, 4, 3, 3], 2);
    let cache = mlp.forward(&x);
    let deltas = mlp.deltas(&cache, &y);
    let blocks = layer_blocks(&mlp, &cache, &deltas, Curvature::Exact);
    let h = 1e-5;
    for (l, block) in blocks.iter().enumerate() {
        let n = mlp.block_size(l);
        assert_eq!(block.nrows(), n);
        let mut worst = 0.0f64;
        for j in 0..n {
            let mut plus = mlp.clone();
            let mut minus = mlp.clone();
            let mut e = vec![0.0; n];
            e[j] = -h; // apply_update subtracts
            plus.apply_update(l, &e);
            e[j] = h;
            minus.apply_update(l, &e);
            let (gp, gm) = (
                layer_gradient(&plus, &x, &y, l),
                layer_gradient(&minus, &x, &y, l),
            );
            for i in 0..n {
                let fd = (gp[i] - gm[i]) / (2.0 * h);
                worst = worst.max((fd - block[(i, j)]).abs());
            }
        }
        let scale = block.norm_max();
        assert!(
            worst < 1e-6 * scale.max(1e-3),
            "layer {l}: max |FD − exact| = {worst} (scale {scale})"
        );
    }
}

#[test]
fn gauss_newton_blocks_are_psd_and_differ_from_exact_in_hidden_layers() {
    let data = blobs(16, 6, 4, 3);
    let (x, y) = batch_matrix(&data, &(0..16).collect::<Vec<_>>());
    let mlp = Mlp::new(&[6, 5, 5, 4], 4);
    let cache = mlp.forward(&x);
    let deltas = mlp.deltas(&cache, &y);
    let gn = layer_blocks(&mlp, &cache, &deltas, Curvature::GaussNewton);
    let ex = layer_blocks(&mlp, &cache, &deltas, Curvature::Exact);
    for (l, b) in gn.iter().enumerate() {
        let ev = b.self_adjoint_eigenvalues(Side::Lower).unwrap();
        assert!(
            ev[0] > -1e-10 * b.norm_max(),
            "GN block {l} has eigenvalue {}",
            ev[0]
        );
    }
    // The output layer has no activation after it: exact = GN there; hidden layers differ.
    assert!((&gn[2] - &ex[2]).norm_max() < 1e-12);
    assert!((&gn[0] - &ex[0]).norm_max() > 1e-8);
}
