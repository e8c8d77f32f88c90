//! The weight representations of the linear layer (`tessera_lm::weights`): the quantized path on the GGUF's own
//! blocks against candle-transformers' `quantized_llama` (real SmolLM2 file; skipped when it is not cached unless
//! `TESSERA_REQUIRE_ASSETS=1`), Q8_0 and the compressed sparse formats on a tiny model, pruned directories loading
//! sparse, and compact layers refusing the hooks that need f32.
use candle_core::{Device, Tensor};
use tessera_lm::bench_sparse::{prune_by_magnitude, MaskPattern};
use tessera_lm::testing::{max_abs_diff, tiny_model, write_tiny_gguf};
use tessera_lm::*;

mod common;
use common::{all_logits, model_path, TEXT};

fn scale(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn quantized_path_top1_agrees_with_candle_quantized_llama() {
    let Some(p) = model_path() else { return };
    let m = load_with(
        &p,
        &LoadOptions {
            dtype: WeightDtype::File,
        },
    )
    .unwrap();
    assert!(m.is_inference_only());
    let s = m.weight_summary();
    assert!(s.formats.contains_key("q4_1"), "{:?}", s.formats);
    assert_eq!(m.lm_head.compact().unwrap().format_name(), "q8_0");
    assert!(m.is_tied(), "the Q8_0 head keeps the embedding as its Var");
    // Loaded in about its file size (98 MB of blocks), not 513 MiB of f32.
    assert!(s.linear_bytes < 110 << 20, "{} bytes", s.linear_bytes);
    let toks = m.tokenizer().unwrap().encode(TEXT).unwrap()[..64].to_vec();
    let ours = all_logits(&m, &toks)
        .argmax(1)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    let reference = common::quantized_llama_top1(&p, &toks);
    let mut agree = 0;
    for (&top, &o) in reference.iter().zip(&ours) {
        agree += usize::from(top == o);
    }
    eprintln!("quantized path: top-1 agreement with quantized_llama {agree}/64");
    assert!(agree * 100 >= 95 * 64, "top-1 agreement {agree}/64 < 95%");
    // Cached decoding on the blocks gives the same last logits as the full forward.
    let mut cache = Cache::new(m.config.num_hidden_layers);
    m.next_logits(&toks[..40], &mut cache).unwrap();
    let mut last = Vec::new();
    for &t in &toks[40..] {
        last = m.next_logits(&[t], &mut cache).unwrap();
    }
    let full = all_logits(&m, &toks).get(63).unwrap();
    let last = Tensor::from_vec(last, full.dims(), &Device::Cpu).unwrap();
    // Activation quantization turns the f32 summation-order differences between a batched and a cached pass
    // into occasional one-step rounding flips, so the tolerance is that of 8-bit activations, not of f32.
    let d = max_abs_diff(&full, &last);
    eprintln!(
        "cached vs full forward on the blocks: max |Δ| {d} of scale {}",
        scale(&full)
    );
    // Measured 2026-12-02: 0.55 of 24.8 (2.2%); f32 gives ~1e-5. To be investigated (see the report).
    assert!(d <= 5e-2 * scale(&full), "{d}");
    let am = |t: &Tensor| t.argmax(0).unwrap().to_scalar::<u32>().unwrap();
    assert_eq!(am(&full), am(&last));
}

#[test]
fn q8_0_path_stays_close_to_f32_and_the_default_load_is_f32() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gguf");
    write_tiny_gguf(&p, 4).unwrap();
    let f = load(&p).unwrap();
    assert!(!f.is_inference_only(), "load() is always f32");
    let toks: Vec<u32> = (0..24).map(|i| (i * 7 + 3) % 250 + 2).collect();
    let want = all_logits(&f, &toks);
    for opts in [
        LoadOptions {
            dtype: WeightDtype::Q8_0,
        },
        LoadOptions {
            dtype: WeightDtype::File,
        },
    ] {
        let q = load_with(&p, &opts).unwrap();
        assert!(q.is_inference_only(), "{:?}", opts);
        let got = all_logits(&q, &toks);
        let d = max_abs_diff(&got, &want);
        // 8-bit weights and activations: about 1% of the logit scale on a random model.
        assert!(
            d <= 0.05 * scale(&want),
            "{:?}: {d} vs {}",
            opts,
            scale(&want)
        );
    }
    // The f32 file's own representation keeps f32 projections.
    let fm = load_with(
        &p,
        &LoadOptions {
            dtype: WeightDtype::File,
        },
    )
    .unwrap();
    assert_eq!(fm.blocks[0].q.compact().map(|c| c.format_name()), None);
    assert!(load_with(
        &p,
        &LoadOptions {
            dtype: WeightDtype::Sparse
        }
    )
    .is_err());
}

#[test]
fn pruned_directories_load_sparse_and_give_the_dense_logits() {
    let toks: Vec<u32> = (0..20).map(|i| (i * 11 + 5) % 250 + 2).collect();
    for (pat, fmt) in [
        (MaskPattern::Nm(2, 4), "2:4"),
        (MaskPattern::Unstructured(0.7), "bitmask"),
    ] {
        let mut m = tiny_model(9).unwrap();
        let s = prune_by_magnitude(&mut m, pat).unwrap();
        assert!(s > 0.45, "{s}");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pruned");
        tessera_lm::export::export_hf_dir(&m, &d).unwrap();
        let dense = load(&d).unwrap();
        let want = all_logits(&dense, &toks);
        let sp = load_with(
            &d,
            &LoadOptions {
                dtype: WeightDtype::File,
            },
        )
        .unwrap();
        let summary = sp.weight_summary();
        assert_eq!(
            summary.formats.get(fmt),
            Some(&14),
            "{pat}: {:?}",
            summary.formats
        );
        assert!(summary.linear_bytes < dense.weight_summary().linear_bytes);
        let got = all_logits(&sp, &toks);
        assert!(
            max_abs_diff(&got, &want) <= 1e-4 * scale(&want).max(1.0),
            "{pat}"
        );
        // In-memory conversion gives the same model; decoding through the cache agrees too.
        let mut conv = load(&d).unwrap();
        conv.to_inference(WeightDtype::Sparse).unwrap();
        assert!(max_abs_diff(&all_logits(&conv, &toks), &want) <= 1e-4 * scale(&want).max(1.0));
        let mut cache = Cache::new(conv.config.num_hidden_layers);
        conv.next_logits(&toks[..12], &mut cache).unwrap();
        let mut last = Vec::new();
        for &t in &toks[12..] {
            last = conv.next_logits(&[t], &mut cache).unwrap();
        }
        let w = want.get(toks.len() - 1).unwrap().to_vec1::<f32>().unwrap();
        let dd = w
            .iter()
            .zip(&last)
            .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(
            dd <= 1e-4 * scale(&want).max(1.0),
            "{pat}: cached decode {dd}"
        );
        // Sparse needs masks.
        let mut plain = tiny_model(9).unwrap();
        assert!(plain.to_inference(WeightDtype::Sparse).is_err());
    }
}

#[test]
fn compact_layers_refuse_what_needs_f32_weights() {
    let mut m = tiny_model(2).unwrap();
    let w0 = m.blocks[0].up.dense_weight().unwrap();
    m.to_inference(WeightDtype::Q8_0).unwrap();
    let l = &mut m.blocks[0].up;
    // The dense weight is still readable (dequantized), within half a Q8_0 step.
    let back = l.dense_weight().unwrap();
    assert!(max_abs_diff(&back, &w0) <= scale(&w0) / 127.0);
    let (o, i) = l.dims();
    let mask = Tensor::ones((o, i), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = l.set_mask(mask.clone()).unwrap_err().to_string();
    assert!(e.contains("f32"), "{e}");
    assert!(l.set_mask_keep_dense(mask).is_err());
    assert!(l.add_lora(2, 4.0, 0).is_err());
    let x = Tensor::zeros((1, i), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(l.forward(&x, true).is_err(), "training needs f32");
    assert!(l.forward(&x, false).is_ok());
    assert!(m.next_token_loss(&[3, 4, 5], false).is_err());
    let dir = tempfile::tempdir().unwrap();
    assert!(save_safetensors_dir(&m, &dir.path().join("x")).is_err());
    // Back to f32: everything works again.
    m.to_inference(WeightDtype::F32).unwrap();
    assert!(!m.is_inference_only());
    assert!(m.next_token_loss(&[3, 4, 5], false).is_ok());
    assert!("bogus".parse::<WeightDtype>().is_err());
    assert_eq!("q8_0".parse::<WeightDtype>().unwrap().to_string(), "q8_0");
}
