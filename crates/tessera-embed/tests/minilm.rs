//! all-MiniLM-L6-v2 against the reference cosines (an independent numpy implementation, see
//! `shared/notes/candle-notes.md`). Runs after `tessera assets fetch`; with `TESSERA_REQUIRE_ASSETS=1` a missing
//! model is a failure rather than a skip.
use tessera_embed::{cosine, Embedder};

fn embedder() -> Option<Embedder> {
    let a = tessera_core::assets::find_model("all-minilm-l6-v2").unwrap();
    if a.is_present() {
        return Some(Embedder::load(&a.main_dir()).unwrap());
    }
    if std::env::var_os("TESSERA_REQUIRE_ASSETS").is_some() {
        panic!("all-MiniLM-L6-v2 is not in the cache: run `tessera assets fetch`");
    }
    eprintln!("skipping: all-MiniLM-L6-v2 not cached (run `tessera assets fetch`)");
    None
}

const CAT: &str = "The cat sits on the mat.";
const KITTEN: &str = "A kitten is resting on a rug.";
const REVENUE: &str = "Quarterly revenue exceeded analyst expectations.";

#[test]
fn cosines_match_the_reference() {
    let Some(e) = embedder() else { return };
    let v = e.embed(&[CAT, KITTEN, REVENUE]).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].len(), 384);
    for x in &v {
        let n: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5, "norm {n}");
    }
    let c1 = cosine(&v[0], &v[1]);
    let c2 = cosine(&v[0], &v[2]);
    assert!((c1 - 0.6411).abs() < 1e-3, "cos(cat, kitten) = {c1}");
    assert!((c2 - 0.0014).abs() < 1e-3, "cos(cat, revenue) = {c2}");
}

#[test]
fn padding_and_cache_do_not_change_vectors() {
    let Some(e) = embedder() else { return };
    e.set_cache_capacity(0);
    let alone = e.embed(&[CAT]).unwrap();
    // In a batch with a much longer sentence, CAT is padded; its vector must not move.
    let long = "A considerably longer sentence, with many more words in it than the short one, pads the batch.";
    let batch = e.embed(&[long, CAT]).unwrap();
    let d: f32 = alone[0]
        .iter()
        .zip(&batch[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d < 1e-5, "padding changed the vector by {d}");
    e.set_cache_capacity(16);
    let first = e.embed(&[CAT, KITTEN, CAT]).unwrap();
    assert_eq!(first[0], first[2]);
    let hits = e.cache_hits();
    let again = e.embed(&[KITTEN]).unwrap();
    assert_eq!(e.cache_hits(), hits + 1);
    assert_eq!(again[0], first[1]);
}
