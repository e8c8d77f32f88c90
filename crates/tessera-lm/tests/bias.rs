//! The optional bias of the runtime's `Linear` (used by the vision tower): forward, gradients, masks, LoRA.
use candle_core::{Device, Tensor, Var};
use tessera_lm::testing::max_abs_diff;
use tessera_lm::{Grad, Linear};

fn layer() -> Linear {
    let w = Tensor::new(&[[1f32, -2.0, 0.5], [0.25, 3.0, -1.0]], &Device::Cpu).unwrap();
    let b = Tensor::new(&[0.5f32, -1.5], &Device::Cpu).unwrap();
    Linear::with_bias(
        Var::from_tensor(&w).unwrap(),
        Some(Var::from_tensor(&b).unwrap()),
    )
    .unwrap()
}

#[test]
fn bias_is_added_and_trained_with_the_weight() {
    let l = layer();
    let x = Tensor::new(&[[1f32, 1.0, 1.0], [2.0, 0.0, -1.0]], &Device::Cpu).unwrap();
    let y = l.forward(&x, false).unwrap();
    let want = Tensor::new(&[[0f32, 0.75], [2.0, 0.0]], &Device::Cpu).unwrap();
    assert!(max_abs_diff(&y, &want) < 1e-6, "{y}");
    // Full training: the bias gets dL/db = Σ_rows dL/dy.
    let loss = l.forward_grad(&x, Grad::All).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    let gb = g.get(l.bias().unwrap().as_tensor()).expect("bias gradient");
    assert_eq!(gb.to_vec1::<f32>().unwrap(), vec![2.0, 2.0]);
    // Adapter mode: the base (and its bias) is frozen.
    let xv = Var::from_tensor(&x).unwrap();
    let loss = l
        .forward_grad(xv.as_tensor(), Grad::Adapters)
        .unwrap()
        .sum_all()
        .unwrap();
    let g = loss.backward().unwrap();
    assert!(g.get(l.bias().unwrap().as_tensor()).is_none());
    assert!(g.get(xv.as_tensor()).is_some());
}

#[test]
fn masks_and_lora_leave_the_bias_alone_and_bad_shapes_are_refused() {
    let mut l = layer();
    l.set_mask(Tensor::new(&[[1f32, 0.0, 1.0], [0.0, 1.0, 1.0]], &Device::Cpu).unwrap())
        .unwrap();
    l.add_lora(1, 1.0, 7).unwrap();
    l.merge_lora().unwrap();
    assert_eq!(l.bias().unwrap().to_vec1::<f32>().unwrap(), vec![0.5, -1.5]);
    let x = Tensor::zeros((1, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    let y = l.forward(&x, false).unwrap();
    assert_eq!(y.to_vec2::<f32>().unwrap(), vec![vec![0.5, -1.5]]);
    let w = Var::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    let b = Var::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(Linear::with_bias(w, Some(b)).is_err());
}
