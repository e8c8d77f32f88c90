//! Masks kept beside a dense copy, the LoRA / SparseLoRA forms and their merges, add_lora by target, observers
//! and padding, on tiny random models.
use candle_core::{DType, Device, Tensor};
use tessera_lm::testing::{ids, max_abs_diff, tiny_model};
use tessera_lm::*;

const PROMPT: [u32; 9] = [5, 17, 99, 3, 200, 42, 7, 7, 150];

/// A pseudo-random 0/1 mask with about half the entries kept.
fn half_mask(o: usize, i: usize, salt: usize) -> Tensor {
    let v: Vec<f32> = (0..o * i)
        .map(|k| (((k * 2654435761usize + salt * 97) >> 7) % 2) as f32)
        .collect();
    Tensor::from_vec(v, (o, i), &Device::Cpu).unwrap()
}

fn mask_everything(m: &mut Llama, keep_dense: bool) {
    for (li, b) in m.blocks.iter_mut().enumerate() {
        for (pi, (_, l)) in b.linears_mut().into_iter().enumerate() {
            let (o, i) = l.dims();
            let mask = half_mask(o, i, li * 7 + pi);
            if keep_dense {
                l.set_mask_keep_dense(mask).unwrap();
            } else {
                l.set_mask(mask).unwrap();
            }
        }
    }
}

/// Random non-zero B matrices so the adapters change the function.
fn randomise_adapters(m: &Llama) {
    for (k, v) in m.lora_vars().iter().enumerate() {
        let n = v.elem_count();
        let vals: Vec<f32> = (0..n)
            .map(|j| (((j * 31 + k * 17) % 23) as f32 - 11.0) / 40.0)
            .collect();
        v.set(&Tensor::from_vec(vals, v.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

fn logits(m: &Llama, w: WeightMode) -> Tensor {
    m.forward(
        Input::Ids(&ids(&PROMPT)),
        Forward {
            weights: w,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn dense_mode_equals_the_unmasked_model() {
    let base = tiny_model(21).unwrap();
    let want = logits(&base, WeightMode::Sparse);
    let mut m = tiny_model(21).unwrap();
    mask_everything(&mut m, true);
    m.add_lora(&LoraSpec::new("all", 2).unwrap()).unwrap();
    randomise_adapters(&m);
    let dense = logits(&m, WeightMode::Dense);
    assert!(
        max_abs_diff(&want, &dense) < 1e-5,
        "dense ignores masks and adapters"
    );
    let sparse = logits(&m, WeightMode::Sparse);
    assert!(max_abs_diff(&want, &sparse) > 1e-3);
    // The weight variables hold W ⊙ M; restoring gives back the dense model exactly.
    let w = m.blocks[0].up.weight().as_tensor().clone();
    let mk = m.blocks[0].up.mask().unwrap().clone();
    let off = w
        .mul(&(1.0 - &mk).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap();
    assert_eq!(off.to_scalar::<f32>().unwrap(), 0.0);
    for b in &mut m.blocks {
        for (_, l) in b.linears_mut() {
            l.remove_lora();
            l.restore_dense().unwrap();
        }
    }
    assert_eq!(max_abs_diff(&want, &logits(&m, WeightMode::Sparse)), 0.0);
    // A baked mask has no dense copy: dense mode sees the zeros.
    let mut b = tiny_model(21).unwrap();
    mask_everything(&mut b, false);
    assert_eq!(
        max_abs_diff(
            &logits(&b, WeightMode::Dense),
            &logits(&b, WeightMode::Sparse)
        ),
        0.0
    );
}

fn merged_equals_trained(form: LoraForm, keep_dense: bool) {
    let mut m = tiny_model(22).unwrap();
    mask_everything(&mut m, keep_dense);
    let mut spec = LoraSpec::new("q,k,v,o,gate,up,down", 3).unwrap();
    spec.form = form;
    assert_eq!(m.add_lora(&spec).unwrap(), 14);
    randomise_adapters(&m);
    let trained = logits(&m, WeightMode::Sparse);
    let masks: Vec<Tensor> = m
        .blocks
        .iter()
        .flat_map(|b| b.linears().map(|(_, l)| l.mask().unwrap().clone()))
        .collect();
    m.merge_lora().unwrap();
    assert!(m.lora_vars().is_empty());
    let merged = logits(&m, WeightMode::Sparse);
    assert!(
        max_abs_diff(&trained, &merged) < 1e-4,
        "{form}: {}",
        max_abs_diff(&trained, &merged)
    );
    let weights: Vec<Tensor> = m
        .blocks
        .iter()
        .flat_map(|b| b.linears().map(|(_, l)| l.weight().as_tensor().clone()))
        .collect();
    for (w, mk) in weights.iter().zip(&masks) {
        let w: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        let mk: Vec<f32> = mk.flatten_all().unwrap().to_vec1().unwrap();
        match form {
            LoraForm::SparseLora => {
                // Zero pattern equals the mask bit for bit (+0.0, not -0.0, at every masked entry).
                for (x, k) in w.iter().zip(&mk) {
                    if *k == 0.0 {
                        assert_eq!(x.to_bits(), 0);
                    } else {
                        assert_ne!(*x, 0.0);
                    }
                }
            }
            LoraForm::Lora => {
                let zeros = w.iter().filter(|x| **x == 0.0).count();
                assert!(zeros < w.len() / 10, "plain LoRA's merge is dense");
            }
        }
    }
    if form == LoraForm::Lora {
        assert!(m
            .blocks
            .iter()
            .all(|b| b.linears().iter().all(|(_, l)| l.mask().is_none())));
    }
}

#[test]
fn each_lora_form_merges_into_what_was_trained() {
    merged_equals_trained(LoraForm::SparseLora, false);
    merged_equals_trained(LoraForm::SparseLora, true);
    merged_equals_trained(LoraForm::Lora, false);
    merged_equals_trained(LoraForm::Lora, true);
}

#[test]
fn sparse_lora_differs_from_lora_and_trains_through_the_mask() {
    let mk = |form| {
        let mut m = tiny_model(23).unwrap();
        mask_everything(&mut m, false);
        let mut spec = LoraSpec::new("up,down", 2).unwrap();
        spec.form = form;
        m.add_lora(&spec).unwrap();
        randomise_adapters(&m);
        m
    };
    let (a, b) = (mk(LoraForm::Lora), mk(LoraForm::SparseLora));
    assert!(
        max_abs_diff(
            &logits(&a, WeightMode::Sparse),
            &logits(&b, WeightMode::Sparse)
        ) > 1e-4
    );
    // Gradients reach A and B of the SparseLoRA form with the base frozen.
    let grads = b
        .next_token_loss_with(&PROMPT, Grad::Adapters)
        .unwrap()
        .backward()
        .unwrap();
    assert!(b.lora_vars().iter().all(|v| grads.get(v).is_some()));
    assert!(grads.get(b.blocks[0].up.weight()).is_none());
}

#[test]
fn add_lora_by_name_and_layer_range() {
    let mut m = tiny_model(24).unwrap();
    let mut spec = LoraSpec::new("gate, v", 2).unwrap();
    assert_eq!(spec.targets, [Proj::V, Proj::Gate]);
    spec.layers = Some(1..2);
    assert_eq!(m.add_lora(&spec).unwrap(), 2);
    assert!(m.blocks[0].v.lora().is_none());
    assert!(m.blocks[1].v.lora().is_some() && m.blocks[1].gate.lora().is_some());
    assert!(m.blocks[1].q.lora().is_none());
    let names: Vec<String> = m.named_lora_vars().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "model.layers.1.self_attn.v_proj.lora_a",
            "model.layers.1.self_attn.v_proj.lora_b",
            "model.layers.1.mlp.gate_proj.lora_a",
            "model.layers.1.mlp.gate_proj.lora_b"
        ]
    );
    assert_eq!("up_proj".parse::<Proj>().unwrap(), Proj::Up);
    assert_eq!("mlp.down_proj".parse::<Proj>().unwrap(), Proj::Down);
    assert_eq!(Proj::parse_list("all").unwrap().len(), 7);
    for p in Proj::ALL {
        assert_eq!(p.to_string().parse::<Proj>().unwrap(), p);
    }
    for g in [Grad::Off, Grad::All, Grad::Adapters] {
        assert_eq!(g.to_string().parse::<Grad>().unwrap(), g);
    }
    assert_eq!(
        "sparse-lora".parse::<LoraForm>().unwrap(),
        LoraForm::SparseLora
    );
    assert_eq!("dense".parse::<WeightMode>().unwrap(), WeightMode::Dense);
}

#[test]
fn bad_targets_and_masks_are_typed_errors() {
    let mut m = tiny_model(25).unwrap();
    assert!(matches!(
        LoraSpec::new("q,attn_x", 2),
        Err(LmError::UnknownTarget { name }) if name == "attn_x"
    ));
    assert!(matches!(
        "ffn".parse::<Proj>(),
        Err(LmError::UnknownTarget { .. })
    ));
    assert!(matches!(
        LoraSpec::new("", 2),
        Err(LmError::UnknownTarget { .. })
    ));
    let mut spec = LoraSpec::new("q", 2).unwrap();
    spec.layers = Some(1..5);
    assert!(matches!(m.add_lora(&spec), Err(LmError::Invalid(_))));
    assert!(m.lora_vars().is_empty(), "nothing attached on error");
    spec.layers = None;
    spec.rank = 0;
    assert!(m.add_lora(&spec).is_err());
    let l = &mut m.blocks[0].q;
    let (o, i) = l.dims();
    let wrong = Tensor::ones((i, o + 1), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        l.set_mask(wrong.clone()),
        Err(LmError::MaskShape { expected, got }) if expected == [o, i] && got == [i, o + 1]
    ));
    assert!(matches!(
        l.set_mask_keep_dense(wrong),
        Err(LmError::MaskShape { .. })
    ));
    let not_binary = Tensor::full(0.5f32, (o, i), &Device::Cpu).unwrap();
    assert!(l.set_mask(not_binary).is_err());
    assert!(l.mask().is_none(), "nothing changed on error");
}

#[test]
fn observers_ignore_padded_rows() {
    let m0 = tiny_model(26).unwrap();
    // Unpadded reference: the short prompt alone.
    let short = [9u32, 8, 7];
    let mut a = tiny_model(26).unwrap();
    a.blocks[0].gate.observe(true);
    a.forward(Input::Ids(&ids(&short)), Forward::default())
        .unwrap();
    let sa = a.blocks[0].gate.take_stats().unwrap();
    assert_eq!(sa.rows, 3);
    // The same prompt left-padded to 6 in a batch with a mask: the padded rows are not counted.
    let mut b = tiny_model(26).unwrap();
    b.blocks[0].gate.observe(true);
    let x = Tensor::new(&[[0u32, 0, 0, 9, 8, 7]], &Device::Cpu).unwrap();
    let km = Tensor::new(&[[0u8, 0, 0, 1, 1, 1]], &Device::Cpu).unwrap();
    let pos = Tensor::new(&[[0u32, 0, 0, 0, 1, 2]], &Device::Cpu).unwrap();
    b.forward(
        Input::Ids(&x),
        Forward {
            key_mask: Some(&km),
            positions: Some(&pos),
            ..Default::default()
        },
    )
    .unwrap();
    let sb = b.blocks[0].gate.take_stats().unwrap();
    assert_eq!(sb.rows, 3);
    for (p, q) in sa.sq_norm.iter().zip(&sb.sq_norm) {
        assert!((p - q).abs() < 1e-3 * (1.0 + p.abs()), "{p} vs {q}");
    }
    drop(m0);
}

#[test]
fn sparse_lora_gradients_match_the_composed_ops() {
    let m = tiny_model(27).unwrap();
    let w = m.blocks[0].up.weight().as_tensor().detach().copy().unwrap();
    let (o, i) = (w.dim(0).unwrap(), w.dim(1).unwrap());
    let mut l = Linear::new(candle_core::Var::from_tensor(&w).unwrap());
    let mask = half_mask(o, i, 3);
    l.set_mask(mask.clone()).unwrap();
    let lo = l
        .add_lora_form(3, 6.0, 1, LoraForm::SparseLora)
        .unwrap()
        .clone();
    let bv: Vec<f32> = (0..o * 3).map(|k| ((k % 7) as f32 - 3.0) / 10.0).collect();
    lo.b.set(&Tensor::from_vec(bv, (o, 3), &Device::Cpu).unwrap())
        .unwrap();
    let xv: Vec<f32> = (0..5 * i).map(|k| ((k % 11) as f32 - 5.0) / 7.0).collect();
    let x = candle_core::Var::from_tensor(&Tensor::from_vec(xv, (5, i), &Device::Cpu).unwrap())
        .unwrap();
    let r: Vec<f32> = (0..5 * o).map(|k| ((k % 5) as f32 - 2.0) / 3.0).collect();
    let r = Tensor::from_vec(r, (5, o), &Device::Cpu).unwrap();
    let y = l.forward_grad(x.as_tensor(), Grad::Adapters).unwrap();
    let g = (y.clone() * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    // Reference: the same function from differentiable candle ops.
    let wm = l.weight().as_tensor().detach();
    let delta =
        lo.b.as_tensor()
            .matmul(lo.a.as_tensor())
            .unwrap()
            .affine(lo.scale, 0.0)
            .unwrap()
            .mul(&mask)
            .unwrap();
    let y2 = x
        .as_tensor()
        .matmul(&(wm + delta).unwrap().t().unwrap())
        .unwrap();
    assert!(max_abs_diff(&y, &y2) < 1e-5);
    let g2 = (y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&lo.a, &lo.b, &x] {
        let (a, b) = (g.get(v).unwrap(), g2.get(v).unwrap());
        assert!(max_abs_diff(a, b) < 1e-4, "{}", max_abs_diff(a, b));
    }
}
