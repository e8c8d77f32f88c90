//! The sequential protocol on the tiny model: block k sees the pruned (or, with `--propagate dense`, the dense)
//! outputs of block k−1, and every projection ends with the pattern asked for.
use candle_core::Tensor;
use tessera_lm::testing::{max_abs_diff, tiny_model, TINY_VOCAB};
use tessera_lm::{Forward, Llama, Proj};
use tessera_prune::protocol::{prune_sequential, SequentialOptions};
use tessera_prune::{Allocation, Mask, Method, Pattern, Propagate, SparseGptOptions};

fn windows(n: usize, len: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            (0..len)
                .map(|j| ((i * 31 + j * 7 + (j * j) % 13) % TINY_VOCAB) as u32)
                .collect()
        })
        .collect()
}

fn block0_out(m: &Llama, w: &[u32]) -> Tensor {
    let ids = Tensor::new(w, m.device()).unwrap().unsqueeze(0).unwrap();
    let x = m.embed(&ids).unwrap();
    let ctx = m.step_context(1, w.len(), &Forward::default()).unwrap();
    m.block_forward(0, &x, &ctx, None, None, None).unwrap()
}

fn run(method: Method, propagate: Propagate, pattern: Pattern) -> (Llama, Vec<Tensor>) {
    let mut m = tiny_model(3).unwrap();
    let ws = windows(4, 24);
    let mut seen: Vec<Tensor> = vec![];
    let alloc = Allocation::uniform(pattern);
    let mut inspect = |layer: usize, xs: &[Tensor]| {
        if layer == 1 {
            seen = xs.to_vec();
        }
    };
    let out = prune_sequential(
        &mut m,
        &ws,
        SequentialOptions {
            method,
            allocation: &alloc,
            propagate,
            sparsegpt: SparseGptOptions::default(),
            inspect: Some(&mut inspect),
            progress: &mut |_, _| {},
        },
    )
    .unwrap();
    assert_eq!(out.len(), 2 * 7);
    (m, seen)
}

#[test]
fn block_k_sees_the_pruned_outputs_of_block_k_minus_1() {
    let ws = windows(4, 24);
    let dense = tiny_model(3).unwrap();
    for method in [Method::Wanda, Method::SparseGpt] {
        let pat = Pattern::nm(2, 4).unwrap();
        let (pruned, seen) = run(method, Propagate::Pruned, pat);
        assert_eq!(seen.len(), ws.len());
        for (w, s) in ws.iter().zip(&seen) {
            let want = block0_out(&pruned, w);
            assert_eq!(
                max_abs_diff(&want, s),
                0.0,
                "{method}: pruned block 0 output"
            );
            let d = block0_out(&dense, w);
            assert!(
                max_abs_diff(&d, s) > 1e-6,
                "{method}: the dense output differs"
            );
        }
        // Every projection holds the 2:4 pattern as exact zeros and a baked mask.
        for b in &pruned.blocks {
            for p in Proj::ALL {
                let l = b.linear(p);
                let m = Mask::from_tensor("m", l.mask().expect("masked")).unwrap();
                m.verify(&pat, true).unwrap();
                let w: Vec<f32> = l
                    .weight()
                    .as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                for (&k, &x) in m.keep.iter().zip(&w) {
                    if k == 0 {
                        assert_eq!(x, 0.0);
                    }
                }
            }
        }
        // Head and embedding untouched.
        assert!(pruned.lm_head.mask().is_none());
        assert_eq!(
            max_abs_diff(pruned.embed.as_tensor(), dense.embed.as_tensor()),
            0.0
        );
    }
}

#[test]
fn propagate_dense_feeds_the_dense_outputs() {
    let ws = windows(4, 24);
    let dense = tiny_model(3).unwrap();
    let (_, seen) = run(
        Method::Wanda,
        Propagate::Dense,
        Pattern::unstructured(0.5).unwrap(),
    );
    for (w, s) in ws.iter().zip(&seen) {
        assert_eq!(max_abs_diff(&block0_out(&dense, w), s), 0.0);
    }
}

#[test]
fn only_the_allocated_parts_are_pruned() {
    let mut m = tiny_model(3).unwrap();
    let alloc = Allocation::with_rules(Pattern::unstructured(0.5).unwrap(), "attn=dense,mlp@1=4:8")
        .unwrap();
    let out = prune_sequential(
        &mut m,
        &windows(2, 16),
        SequentialOptions {
            method: Method::Wanda,
            allocation: &alloc,
            propagate: Propagate::Pruned,
            sparsegpt: SparseGptOptions::default(),
            inspect: None,
            progress: &mut |_, _| {},
        },
    )
    .unwrap();
    assert_eq!(out.len(), 6);
    for b in &m.blocks {
        for p in [Proj::Q, Proj::K, Proj::V, Proj::O] {
            assert!(b.linear(p).mask().is_none());
        }
    }
    let m1 = Mask::from_tensor("m", m.blocks[1].up.mask().unwrap()).unwrap();
    m1.verify(&Pattern::nm(4, 8).unwrap(), true).unwrap();
    let m0 = Mask::from_tensor("m", m.blocks[0].up.mask().unwrap()).unwrap();
    m0.verify(&Pattern::unstructured(0.5).unwrap(), true)
        .unwrap();
}
