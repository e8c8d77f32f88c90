//! Malformed files give typed errors naming the file and the problem; the GGUF reader never panics and never
//! allocates blindly from header counts.
use proptest::prelude::*;
use tessera_lm::gguf::GgufFile;
use tessera_lm::testing::write_tiny_gguf;
use tessera_lm::LmError;

fn tiny_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.gguf");
    write_tiny_gguf(&p, 1).unwrap();
    std::fs::read(p).unwrap()
}

fn load_bytes(bytes: &[u8], name: &str) -> (String, tessera_lm::Result<tessera_lm::Llama>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    let r = tessera_lm::load(&p);
    (p.display().to_string(), r)
}

#[test]
fn truncated_gguf_is_reported_with_its_path() {
    let b = tiny_bytes();
    for cut in [3, 20, 200, b.len() / 2, b.len() - 1] {
        let (p, r) = load_bytes(&b[..cut], "cut.gguf");
        let msg = r.err().expect("truncated file must fail").to_string();
        assert!(msg.contains(&p), "{msg}");
        assert!(!msg.contains('\n'), "one-line error: {msg}");
    }
}

#[test]
fn random_bytes_are_not_a_model() {
    let (p, r) = load_bytes(&[7u8; 4096], "noise.gguf");
    let msg = r.err().unwrap().to_string();
    assert!(msg.contains(&p) && msg.contains("bad magic"), "{msg}");
    let (_, r) = load_bytes(b"", "empty.gguf");
    assert!(r.is_err());
}

#[test]
fn crafted_counts_cannot_exhaust_memory() {
    let mut b = tiny_bytes();
    // Tensor count (offset 8) and metadata count (offset 16) set to huge values.
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = GgufFile::parse_bytes(&b).unwrap_err();
    assert!(err.contains("exceeds"), "{err}");
    let mut b = tiny_bytes();
    b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(GgufFile::parse_bytes(&b).unwrap_err().contains("exceeds"));
    // First key's length set to 2^62.
    let mut b = tiny_bytes();
    b[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(GgufFile::parse_bytes(&b).is_err());
}

#[test]
fn wrong_tensor_shape_and_unknown_architecture_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("g");
    let m = tessera_lm::testing::tiny_model(2).unwrap();
    tessera_lm::save_safetensors_dir(&m, &good).unwrap();
    // Wrong shape: claim a wider model in config.json.
    let cfg_path = good.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["intermediate_size"] = serde_json::json!(48);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = tessera_lm::load(&good).err().unwrap();
    assert!(matches!(err, LmError::TensorShape { .. }), "{err}");
    assert!(err.to_string().contains("mlp.gate_proj"), "{err}");
    cfg["intermediate_size"] = serde_json::json!(64);
    cfg["model_type"] = serde_json::json!("gpt_neox");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = tessera_lm::load(&good).err().unwrap();
    assert!(matches!(err, LmError::UnsupportedArch { .. }), "{err}");
    // A corrupt safetensors file.
    std::fs::write(
        good.join("model.safetensors"),
        b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage",
    )
    .unwrap();
    cfg["model_type"] = serde_json::json!("llama");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = tessera_lm::load(&good).err().unwrap().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn gguf_with_other_architecture_is_rejected() {
    let b = tiny_bytes();
    let pos = b.windows(5).position(|w| w == b"llama").unwrap();
    let mut c = b.clone();
    c[pos..pos + 5].copy_from_slice(b"gemma");
    let (_, r) = load_bytes(&c, "arch.gguf");
    let e = r.err().unwrap();
    assert!(matches!(e, LmError::UnsupportedArch { .. }), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn reader_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = GgufFile::parse_bytes(&bytes);
        let mut b = b"GGUF\x03\x00\x00\x00".to_vec();
        b.extend_from_slice(&bytes);
        let _ = GgufFile::parse_bytes(&b);
    }

    #[test]
    fn reader_never_panics_on_mutated_files(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
                                            cut in any::<prop::sample::Index>()) {
        thread_local!(static GOOD: Vec<u8> = tiny_bytes());
        let mut b = GOOD.with(|g| g.clone());
        for (i, v) in edits {
            let k = i.index(b.len());
            b[k] = v;
        }
        // Mutations concentrated in the header, where counts and lengths live.
        let header = 4096.min(b.len());
        let k = cut.index(header);
        b[k] ^= 0xff;
        let _ = GgufFile::parse_bytes(&b);
    }
}
