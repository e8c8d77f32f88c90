//! Model files and configs cannot drive allocations: every reproduction of issue #11 item 3 as a regression test,
//! plus property tests of the config validator and of the GGUF metadata reader (a few seconds in CI).
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use tessera_lm::gguf::{self, GgufFile, Value};
use tessera_lm::testing::{tiny_config, write_tiny_gguf};
use tessera_lm::{LlamaConfig, LmError};

fn tiny(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.gguf");
    write_tiny_gguf(&p, 3).unwrap();
    p
}

/// Rewrites the tiny GGUF with metadata edits (`None` removes a key) and an optional tensor filter.
fn rewrite(src: &Path, dst: &Path, edits: &[(&str, Option<Value>)], keep: impl Fn(&str) -> bool) {
    let g = GgufFile::open(src).unwrap();
    let mut meta: Vec<(String, Value)> = g
        .metadata
        .iter()
        .filter(|(k, _)| !edits.iter().any(|(e, _)| e == k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in edits {
        if let Some(v) = v {
            meta.push((k.to_string(), v.clone()));
        }
    }
    let tensors: Vec<_> = g
        .tensors
        .keys()
        .filter(|n| keep(n))
        .map(|n| (n.clone(), g.tensor_f32(n).unwrap()))
        .collect();
    gguf::write_f32(dst, &meta, &tensors).unwrap();
}

fn load_err(p: &Path) -> String {
    match tessera_lm::load(p) {
        Ok(_) => panic!("{} loaded", p.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn meaningless_gguf_configs_are_refused_with_the_path_once() {
    let d = tempfile::tempdir().unwrap();
    let src = tiny(d.path());
    assert!(tessera_lm::load(&src).is_ok());
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "llama.context_length",
            Value::U32(0),
            "max_position_embeddings",
        ),
        (
            "llama.context_length",
            Value::U64(1 << 24),
            "max_position_embeddings",
        ),
        ("llama.rope.freq_base", Value::F32(f32::NAN), "rope base"),
        (
            "llama.rope.freq_base",
            Value::F32(f32::INFINITY),
            "rope base",
        ),
        ("llama.rope.freq_base", Value::F32(0.0), "rope base"),
        ("llama.rope.freq_base", Value::F32(-1.0), "rope base"),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(f32::NAN),
            "epsilon",
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(-1.0),
            "epsilon",
        ),
        (
            "llama.attention.head_count_kv",
            Value::U32(3),
            "key/value heads",
        ),
        (
            "llama.attention.head_count_kv",
            Value::U32(9),
            "key/value heads",
        ),
        // Divides the query heads, but the K/V tensors hold 2 heads: caught by the shape check, with the path.
        ("llama.attention.head_count_kv", Value::U32(4), "shape"),
        ("llama.block_count", Value::U32(1), "layers"),
        ("llama.block_count", Value::U32(3), "layers"),
        (
            "llama.block_count",
            Value::U64(1_000_000_000_000_000_000),
            "num_hidden_layers",
        ),
        ("llama.attention.head_count", Value::I32(-4), "head_count"),
    ];
    for (i, (key, v, want)) in cases.into_iter().enumerate() {
        let p = d.path().join(format!("bad{i}.gguf"));
        rewrite(&src, &p, &[(key, Some(v.clone()))], |_| true);
        let e = load_err(&p);
        assert!(e.contains(want), "{key} = {v:?}: {e}");
        let path = p.display().to_string();
        assert_eq!(e.matches(&path).count(), 1, "path once: {e}");
    }
}

#[test]
fn tensors_must_match_the_declared_layers() {
    let d = tempfile::tempdir().unwrap();
    let src = tiny(d.path());
    // One layer's tensors removed: the block count says 2.
    let p = d.path().join("fewer.gguf");
    rewrite(&src, &p, &[], |n| !n.starts_with("blk.1."));
    assert!(load_err(&p).contains("layer"), "{}", load_err(&p));
    // An extra (third) layer present that the block count would silently ignore.
    let g = GgufFile::open(&src).unwrap();
    let mut meta: Vec<(String, Value)> = g.metadata.clone().into_iter().collect();
    meta.retain(|(k, _)| k != "llama.block_count");
    meta.push(("llama.block_count".into(), Value::U32(2)));
    let mut tensors: Vec<_> = g
        .tensors
        .keys()
        .map(|n| (n.clone(), g.tensor_f32(n).unwrap()))
        .collect();
    let extra: Vec<_> = tensors
        .iter()
        .filter(|(n, _)| n.starts_with("blk.1."))
        .map(|(n, t)| (n.replace("blk.1.", "blk.2."), t.clone()))
        .collect();
    tensors.extend(extra);
    let p = d.path().join("more.gguf");
    gguf::write_f32(&p, &meta, &tensors).unwrap();
    let e = load_err(&p);
    assert!(
        e.contains("declares 2 layers") && e.contains("3 layer"),
        "{e}"
    );
}

/// Points the second tensor's data offset at the first one's: overlapping data must be refused.
#[test]
fn overlapping_tensor_offsets_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let src = tiny(d.path());
    let mut b = std::fs::read(&src).unwrap();
    let g = GgufFile::open(&src).unwrap();
    // The writer lays tensors out in the order given (BTreeMap order here is not the file order, so look for a
    // tensor whose data does not start the data section).
    let (name, _) = g
        .tensors
        .iter()
        .find(|(_, t)| t.offset > g.tensors.values().map(|t| t.offset).min().unwrap())
        .unwrap();
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    let at = b
        .windows(key.len())
        .position(|w| w == key.as_slice())
        .unwrap();
    let nd = u32::from_le_bytes(b[at + key.len()..at + key.len() + 4].try_into().unwrap()) as usize;
    let off_at = at + key.len() + 4 + 8 * nd + 4;
    b[off_at..off_at + 8].copy_from_slice(&0u64.to_le_bytes());
    let p = d.path().join("overlap.gguf");
    std::fs::write(&p, &b).unwrap();
    let e = load_err(&p);
    assert!(e.contains("overlap"), "{e}");
}

/// A metadata array re-declared as `u8 × (all remaining bytes)`: the count passes the 1-byte-per-element check,
/// but decoding would take 32 bytes per element. It must be refused without allocating that.
#[test]
fn metadata_cannot_decode_to_more_than_the_file_holds() {
    let pad = 8 << 20;
    let mut b = Vec::new();
    b.extend_from_slice(&0x4655_4747u32.to_le_bytes());
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // metadata entries
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'x');
    b.extend_from_slice(&9u32.to_le_bytes()); // array
    b.extend_from_slice(&0u32.to_le_bytes()); // of u8
    b.extend_from_slice(&(pad as u64).to_le_bytes());
    b.resize(b.len() + pad, 0);
    let e = GgufFile::parse_bytes(&b).unwrap_err();
    assert!(e.contains("metadata would take more than"), "{e}");
    // The same array of real size passes.
    let mut ok = b[..b.len() - pad].to_vec();
    let n_at = ok.len() - 8;
    ok[n_at..].copy_from_slice(&1000u64.to_le_bytes());
    ok.resize(ok.len() + 1000, 7);
    let (m, _) = GgufFile::parse_bytes(&ok).unwrap();
    assert_eq!(m["x"].as_array().unwrap().len(), 1000);
}

fn write_hf_dir(dir: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let m = tessera_lm::testing::tiny_model(1).unwrap();
    tessera_lm::save_safetensors_dir(&m, dir).unwrap();
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn safetensors_configs_are_validated_before_allocation() {
    let root = tempfile::tempdir().unwrap();
    let ok = root.path().join("ok");
    write_hf_dir(&ok, |_| {});
    assert!(tessera_lm::load(&ok).is_ok());
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "num_hidden_layers",
            1_000_000_000_000_000_000u64.into(),
            "num_hidden_layers",
        ),
        (
            "num_hidden_layers",
            1_000_000_000_000_000u64.into(),
            "num_hidden_layers",
        ),
        ("num_hidden_layers", 1.into(), "layer"),
        (
            "max_position_embeddings",
            (1u64 << 62).into(),
            "max_position_embeddings",
        ),
        (
            "max_position_embeddings",
            0.into(),
            "max_position_embeddings",
        ),
        ("rope_theta", (-1.0).into(), "rope base"),
        ("rms_norm_eps", (-1.0).into(), "epsilon"),
        ("num_key_value_heads", 3.into(), "key/value heads"),
        ("vocab_size", 10.into(), "shape"),
    ];
    for (i, (key, v, want)) in cases.into_iter().enumerate() {
        let d = root.path().join(format!("bad{i}"));
        write_hf_dir(&d, |c| c[key] = v.clone());
        let e = load_err(&d);
        assert!(e.contains(want), "{key} = {v}: {e}");
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_not_waited_on() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("m");
    write_hf_dir(&d, |_| {});
    let st = d.join("model.safetensors");
    std::fs::remove_file(&st).unwrap();
    let mk = |p: &Path| {
        assert!(std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success())
    };
    mk(&st);
    let e = load_err(&d);
    assert!(e.contains("not a regular file"), "{e}");
    let g = root.path().join("fifo.gguf");
    mk(&g);
    assert!(load_err(&g).contains("not a regular file"));
    std::fs::remove_file(&st).unwrap();
    std::fs::create_dir(&st).unwrap();
    assert!(load_err(&d).contains("directory"));
    // A missing config.json names the file once.
    let e = load_err(root.path());
    assert_eq!(e.matches("config.json").count(), 1, "{e}");
}

fn interesting_usize() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1usize),
        Just(2usize),
        1usize..300,
        Just(1usize << 20),
        Just(1usize << 30),
        Just(1usize << 62),
        Just(usize::MAX),
        any::<usize>(),
    ]
}

fn interesting_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-1.0),
        Just(1.0),
        Just(1e-5),
        Just(10_000.0),
        any::<f64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The validator never panics, and whatever it accepts is bounded and consistent, so sizes derived from it
    /// (memory estimates, head widths) cannot overflow.
    #[test]
    fn config_validator_accepts_only_sane_configs(
        vocab in interesting_usize(), hidden in interesting_usize(), inter in interesting_usize(),
        layers in interesting_usize(), heads in interesting_usize(), kv in interesting_usize(),
        ctx in interesting_usize(), eps in interesting_f64(), theta in interesting_f64(),
    ) {
        let c = LlamaConfig {
            vocab_size: vocab, hidden_size: hidden, intermediate_size: inter, num_hidden_layers: layers,
            num_attention_heads: heads, num_key_value_heads: kv, max_position_embeddings: ctx,
            rms_norm_eps: eps, rope_theta: theta, ..tiny_config(10)
        };
        let m = tessera_lm::MemoryModel::new(&c);
        let _ = m.job_bytes(16, ctx, ctx);
        if c.check().is_ok() {
            prop_assert!(c.num_hidden_layers <= tessera_lm::limits::MAX_LAYERS);
            prop_assert!(c.max_position_embeddings >= 1);
            prop_assert!(c.head_dim().is_multiple_of(2) && c.num_attention_heads.is_multiple_of(c.num_key_value_heads));
            prop_assert!(c.rope_theta.is_finite() && c.rope_theta > 1.0);
            prop_assert!(c.rms_norm_eps > 0.0 && c.rms_norm_eps < 1.0);
            prop_assert!(m.weight_bytes < u64::MAX);
        }
    }
}

fn tiny_bytes() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::fs::read(tiny(d.path())).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Random overwrites (bytes or little-endian u64 counts) and truncations of a valid GGUF: the reader fails
    /// with a message or parses, never panics; what it parses keeps every tensor inside the file.
    #[test]
    fn gguf_reader_survives_mutations(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>(), any::<bool>()), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut b = tiny_bytes().to_vec();
        // Mostly the header: that is where counts and lengths live.
        let header = 12_000.min(b.len());
        for (at, v, wide) in edits {
            let i = at.index(header);
            if wide && i + 8 <= b.len() {
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            } else {
                b[i] = v as u8;
            }
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len()));
        }
        if let Ok((_, tensors)) = GgufFile::parse_bytes(&b) {
            for t in tensors.values() {
                prop_assert!(t.offset + t.n_bytes <= b.len());
            }
        }
    }
}

#[test]
fn a_config_error_is_typed() {
    let c = LlamaConfig {
        max_position_embeddings: 0,
        ..tiny_config(10)
    };
    assert!(matches!(
        c.validate(Path::new("x")),
        Err(LmError::BadFile { .. })
    ));
}
