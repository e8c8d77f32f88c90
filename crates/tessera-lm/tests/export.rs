//! Export round trips on the tiny random model: GGUF (f32, f16) and HF directories load back with the same
//! logits; masks and adapters are folded in.
use candle_core::{Device, Tensor};
use tessera_lm::export::{export_gguf, export_hf_dir, GgufPrecision};
use tessera_lm::testing::{tiny_model, write_tiny_gguf};
use tessera_lm::*;

const PROMPT: [u32; 9] = [5, 17, 33, 90, 4, 8, 150, 2, 77];

fn logits(m: &Llama) -> Tensor {
    let x = Tensor::new(&PROMPT, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    m.forward(Input::Ids(&x), Forward::default()).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn exported_f32_gguf_loads_back_with_identical_logits() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.gguf");
    write_tiny_gguf(&src, 3).unwrap();
    let m = load(&src).unwrap();
    // With the source's tokenizer metadata, and rebuilt from the tokenizer alone.
    for (i, source) in [Some(src.as_path()), None].into_iter().enumerate() {
        let out = dir.path().join(format!("out{i}.gguf"));
        export_gguf(&m, &out, GgufPrecision::F32, source).unwrap();
        let back = load(&out).unwrap();
        assert_eq!(max_diff(&logits(&m), &logits(&back)), 0.0, "source {i}");
        for ((n, a), (_, b)) in m.named_vars().iter().zip(back.named_vars().iter()) {
            assert_eq!(max_diff(a.as_tensor(), b.as_tensor()), 0.0, "{n}");
        }
        let (t1, t2) = (m.tokenizer().unwrap(), back.tokenizer().unwrap());
        for s in ["hello there 123", "<|im_start|>user\nhi<|im_end|>"] {
            assert_eq!(t1.encode(s).unwrap(), t2.encode(s).unwrap(), "{s}");
        }
        assert_eq!(t1.eos_ids, t2.eos_ids);
        // The file is a GGUF llama.cpp understands: Q/K rows are stored permuted, as in the source.
        let g = gguf::GgufFile::open(&out).unwrap();
        let s = gguf::GgufFile::open(&src).unwrap();
        let (a, b) = (
            g.tensor_f32("blk.0.attn_q.weight").unwrap(),
            s.tensor_f32("blk.0.attn_q.weight").unwrap(),
        );
        assert_eq!(max_diff(&a, &b), 0.0);
    }
}

#[test]
fn f16_gguf_is_close_and_hf_dir_is_exact() {
    let m = tiny_model(4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f16 = dir.path().join("m16.gguf");
    export_gguf(&m, &f16, GgufPrecision::F16, None).unwrap();
    let back = load(&f16).unwrap();
    let (a, b) = (logits(&m), logits(&back));
    let scale = a
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let d = max_diff(&a, &b);
    assert!(
        d > 0.0 && d < 1e-2 * scale,
        "f16 logits differ by {d} (scale {scale})"
    );
    assert!((std::fs::metadata(&f16).unwrap().len() as f64) < 0.6 * (m.num_params() * 4) as f64);

    let hf = dir.path().join("hf");
    export_hf_dir(&m, &hf).unwrap();
    let back = load(&hf).unwrap();
    assert_eq!(max_diff(&logits(&m), &logits(&back)), 0.0);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "LlamaForCausalLM");
    assert_eq!(cfg["hidden_act"], "silu");
    assert!(hf.join("tokenizer.json").is_file());
    // Replacing an existing export leaves no temporary directories behind.
    export_hf_dir(&m, &hf).unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn masks_and_adapters_are_folded_into_the_export() {
    let mut m = tiny_model(5).unwrap();
    m.add_lora_qv(2, 4.0).unwrap();
    for v in m.lora_vars() {
        v.set(&(v.as_tensor().ones_like().unwrap() * 0.03).unwrap())
            .unwrap();
    }
    let (o, i) = m.blocks[1].down.dims();
    let mask: Vec<f32> = (0..o * i).map(|k| (k % 2) as f32).collect();
    m.blocks[1]
        .down
        .set_mask(Tensor::from_vec(mask, (o, i), &Device::Cpu).unwrap())
        .unwrap();
    let want = logits(&m);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tuned.gguf");
    export_gguf(&m, &p, GgufPrecision::F32, None).unwrap();
    let back = load(&p).unwrap();
    let scale = want
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let d = max_diff(&want, &logits(&back));
    assert!(d < 1e-5 * scale.max(1.0), "merged export differs by {d}");
    let w: Vec<f32> = back.blocks[1]
        .down
        .weight()
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(
        w.iter().step_by(2).all(|&x| x == 0.0),
        "masked weights are zero in the export"
    );
    assert!("f8".parse::<GgufPrecision>().is_err());
}

#[test]
fn save_safetensors_dir_replaces_atomically() {
    let m = tiny_model(6).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    save_safetensors_dir(&m, &out).unwrap();
    let m2 = tiny_model(7).unwrap();
    save_safetensors_dir(&m2, &out).unwrap();
    let back = load(&out).unwrap();
    assert_eq!(max_diff(&logits(&m2), &logits(&back)), 0.0);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // A target whose parent is a file fails and leaves nothing behind.
    let f = dir.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    assert!(save_safetensors_dir(&m, &f.join("sub")).is_err());
    assert_eq!(std::fs::read(&f).unwrap(), b"x");
}

fn alternating_mask(l: &Linear, phase: usize) -> Tensor {
    let (o, i) = l.dims();
    let m: Vec<f32> = (0..o * i).map(|k| ((k + phase) % 2) as f32).collect();
    Tensor::from_vec(m, (o, i), &Device::Cpu).unwrap()
}

#[test]
fn a_pruned_hf_dir_carries_its_masks_and_loads_as_the_same_pruned_model() {
    let mut m = tiny_model(9).unwrap();
    let mask_up = alternating_mask(&m.blocks[0].up, 0);
    m.blocks[0].up.set_mask(mask_up.clone()).unwrap();
    let mask_q = alternating_mask(&m.blocks[1].q, 1);
    m.blocks[1].q.set_mask_keep_dense(mask_q.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pruned");
    export_hf_dir(&m, &out).unwrap();
    assert!(out.join(tessera_lm::load::MASKS_FILE).is_file());
    let back = load(&out).unwrap();
    assert_eq!(max_diff(&logits(&m), &logits(&back)), 0.0);
    assert_eq!(max_diff(back.blocks[0].up.mask().unwrap(), &mask_up), 0.0);
    assert_eq!(max_diff(back.blocks[1].q.mask().unwrap(), &mask_q), 0.0);
    assert!(back.blocks[0].down.mask().is_none());
    // A plain-LoRA adapter folds into a dense weight: its mask is not written.
    let mut p = tiny_model(9).unwrap();
    let mask_v = alternating_mask(&p.blocks[0].v, 0);
    p.blocks[0].v.set_mask(mask_v).unwrap();
    p.blocks[0]
        .v
        .add_lora_form(2, 4.0, 1, tessera_lm::linear::LoraForm::Lora)
        .unwrap();
    let out2 = dir.path().join("plain");
    export_hf_dir(&p, &out2).unwrap();
    assert!(!out2.join(tessera_lm::load::MASKS_FILE).exists());
}

#[test]
fn a_masks_file_that_does_not_fit_the_model_is_a_clear_error() {
    let m = tiny_model(9).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d");
    export_hf_dir(&m, &out).unwrap();
    let masks = out.join(tessera_lm::load::MASKS_FILE);
    let cases: Vec<(&str, Tensor, &str)> = vec![
        (
            "model.layers.0.mlp.up_proj.weight",
            Tensor::ones((3, 3), candle_core::DType::U8, &Device::Cpu).unwrap(),
            "shape",
        ),
        (
            "model.layers.0.mlp.nope.weight",
            Tensor::ones((3, 3), candle_core::DType::U8, &Device::Cpu).unwrap(),
            "names no linear",
        ),
    ];
    for (name, t, want) in cases {
        let map: std::collections::HashMap<String, Tensor> = [(name.to_string(), t)].into();
        candle_core::safetensors::save(&map, &masks).unwrap();
        let e = load(&out).err().unwrap().to_string();
        assert!(e.contains(want) && e.contains("masks.safetensors"), "{e}");
    }
    std::fs::write(&masks, b"garbage").unwrap();
    assert!(load(&out)
        .err()
        .unwrap()
        .to_string()
        .contains("masks.safetensors"));
}
