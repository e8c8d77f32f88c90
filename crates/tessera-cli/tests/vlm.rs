//! `tessera vlm`: JSON keys of `ask` on a tiny random VLM, `eval` on real data slices when the assets are cached,
//! and one-line failures on bad input.
mod common;
use common::{assert_clean_failure, run_json, tessera};
use tessera_vision::data::{save_png, RgbImage};
use tessera_vision::llava::Vlm;
use tessera_vision::VitConfig;

fn tiny_vlm_dir(d: &std::path::Path) -> std::path::PathBuf {
    let gguf = d.join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&gguf, 5).unwrap();
    let vit = VitConfig {
        image_size: 16,
        patch: 4,
        width: 16,
        layers: 1,
        heads: 2,
        mlp_ratio: 2,
        pool: 2,
        channels: 3,
    };
    let vlm = Vlm::fresh(vit, 16, tessera_lm::load(&gguf).unwrap(), 0).unwrap();
    let out = d.join("vlm");
    vlm.save(&out, &vlm.file(gguf.to_str().unwrap(), None, false))
        .unwrap();
    out
}

#[test]
fn ask_prints_its_json_keys_and_bad_images_fail_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    let model = tiny_vlm_dir(d.path());
    let png = d.path().join("img.png");
    let img = RgbImage {
        side: 20,
        bytes: (0..20 * 20 * 3).map(|i| (i % 251) as u8).collect(),
    };
    save_png(&img, &png).unwrap();
    let v = run_json(
        tessera()
            .args(["--offline", "vlm", "ask"])
            .arg(&model)
            .arg("--image")
            .arg(&png)
            .args(["what shape is it?", "--json"]),
    );
    for k in [
        "image",
        "question",
        "answer",
        "best_choice",
        "best_choice_prob",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    let p = v["best_choice_prob"].as_f64().unwrap();
    assert!(p > 0.0 && p <= 1.0);
    let bad = d.path().join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let out = tessera()
        .args(["--offline", "vlm", "ask"])
        .arg(&model)
        .arg("--image")
        .arg(&bad)
        .args(["q", "--json"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "cannot read image");
}

#[test]
fn bad_input_fails_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let out = tessera()
        .args(["--offline", "vlm", "eval"])
        .arg(d.path())
        .arg("--json")
        .output()
        .unwrap();
    assert_clean_failure(&out, "config.json");
    let out = tessera()
        .args(["--offline", "vlm", "prune"])
        .arg(d.path())
        .args(["--vision", "1.5", "--out"])
        .arg(d.path().join("o"))
        .output()
        .unwrap();
    assert_clean_failure(&out, "1.5");
    let model = tiny_vlm_dir(d.path());
    let out = tessera()
        .args(["--offline", "vlm", "prune"])
        .arg(&model)
        .args(["--out"])
        .arg(d.path().join("o"))
        .output()
        .unwrap();
    assert_clean_failure(&out, "nothing to prune");
    let out = tessera()
        .args(["--offline", "vlm", "train", "--steps", "0", "--out"])
        .arg(d.path().join("t"))
        .output()
        .unwrap();
    assert_clean_failure(&out, "steps");
}

#[test]
fn eval_prints_both_accuracies_on_real_slices() {
    let cached = ["easy-vqa", "fashion-mnist"]
        .iter()
        .all(|n| tessera_core::assets::find_data_package(n).is_some_and(|a| a.is_present()));
    if !cached {
        eprintln!("skipped: easy-vqa / fashion-mnist not cached (tessera assets fetch easy-vqa fashion-mnist)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // The tiny VLM's encoder is 16×16: the loaders resize the 64×64 images.
    let model = tiny_vlm_dir(d.path());
    let v = run_json(
        tessera()
            .args(["--offline", "vlm", "eval"])
            .arg(&model)
            .args(["--limit", "3", "--json"]),
    );
    for k in [
        "easyvqa_accuracy",
        "fashion_mnist_accuracy",
        "easyvqa_questions",
        "fashion_mnist_images",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert_eq!(v["easyvqa_questions"], 3);
    let a = v["easyvqa_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&a));
}
