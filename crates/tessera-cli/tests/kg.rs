//! The `tessera kg` CLI contract: JSON keys of `kg import`, `kg build`, `kg ask` and `kg eval` (scripted backend,
//! hashed-trigram encoder: no model files), and bad input → one-line error, exit code 2.
mod common;
use common::{assert_clean_failure, run_json, tessera};
use std::path::Path;

fn assert_keys(v: &serde_json::Value, keys: &[&str]) {
    for k in keys {
        assert!(v.get(k).is_some(), "missing key {k:?} in {v}");
    }
}

fn script(dir: &Path) -> std::path::PathBuf {
    let s = serde_json::json!({
        "rules": [
            {"contains": ["head | relation | tail"], "reply": "APOE | associates | Alzheimer disease\nAlzheimer disease | causes | dementia\nbroken line"},
            {"contains": ["List every biomedical entity"], "reply": "1. APOE\n2. dementia"},
            {"contains": ["Rerank the knowledge graph facts"], "reply": "2\n1"},
            {"contains": ["Evidence", "The final answer"], "reply": "A"},
            {"contains": ["The final answer"], "reply": "B"}
        ],
        "default": "Thinking.",
        "prefer": ["APOE", "dementia"]
    });
    let p = dir.join("script.json");
    std::fs::write(&p, s.to_string()).unwrap();
    p
}

fn adqa(dir: &Path) -> std::path::PathBuf {
    let d = dir.join("adqa");
    std::fs::create_dir(&d).unwrap();
    let q = |file: &str, v: serde_json::Value| std::fs::write(d.join(file), v.to_string()).unwrap();
    q(
        "medqa_filter.json",
        serde_json::json!([{"question": "Main genetic risk factor of Alzheimer disease?", "choices": ["APOE", "keratin", "actin", "myosin"], "answer": ["APOE"]}]),
    );
    q(
        "medmcqa_filter.json",
        serde_json::json!([{"question": "Alzheimer disease causes:", "opa": "dementia", "opb": "fracture", "opc": "anemia", "opd": "asthma", "cop": 0}]),
    );
    q(
        "mmlu_filter.json",
        serde_json::json!([{"question": "What raises the risk?", "choices": ["salt", "APOE", "sugar", "water"], "answer": 1}]),
    );
    q(
        "qa4mre_filter.json",
        serde_json::json!([{"document_id": "1", "document_str": "x", "question_str": "Which gene?", "answer_options": {"answer_str": ["APOE", "b", "c", "d", "e"]}, "correct_answer_id": "1"}]),
    );
    d
}

#[test]
fn kg_import_json_keys_and_skip_counting() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("kg.tsv");
    std::fs::write(
        &f,
        "APOE\tassociates\tAD\nbad line\nAD\tcauses\tdementia\nx\t\ty\n",
    )
    .unwrap();
    let db = dir.path().join("kg.sqlite");
    let v = run_json(
        tessera()
            .args(["kg", "import"])
            .arg(&f)
            .arg("--db")
            .arg(&db)
            .arg("--json"),
    );
    assert_keys(
        &v,
        &[
            "triples",
            "entities",
            "skipped",
            "added",
            "duplicates",
            "seconds",
        ],
    );
    assert_eq!(
        (
            v["triples"].as_u64(),
            v["entities"].as_u64(),
            v["skipped"].as_u64()
        ),
        (Some(2), Some(3), Some(2))
    );
    // Export round-trip.
    let out = dir.path().join("out.jsonl");
    let v = run_json(
        tessera()
            .args(["kg", "export"])
            .arg(&out)
            .arg("--db")
            .arg(&db)
            .arg("--json"),
    );
    assert_eq!(v["triples"], 2);
}

#[test]
fn kg_build_ask_and_eval_with_a_scripted_backend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corpus = d.join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    std::fs::write(corpus.join("a.txt"), "APOE is associated with Alzheimer disease. Alzheimer disease causes dementia in most patients.").unwrap();
    let backend = format!("script:{}", script(d).display());
    let db = d.join("kg.sqlite");
    let build = || {
        let mut c = tessera();
        c.args(["kg", "build", "--corpus"])
            .arg(&corpus)
            .arg("--db")
            .arg(&db);
        c.args(["--backend", &backend, "--encoder", "hash", "--json"]);
        c
    };
    let v = run_json(&mut build());
    assert_keys(
        &v,
        &[
            "passages",
            "processed_now",
            "already_done",
            "triples_added",
            "triples",
            "entities",
            "unparsed",
        ],
    );
    assert_eq!(
        (v["triples"].as_u64(), v["unparsed"].as_u64()),
        (Some(2), Some(1))
    );
    let v = run_json(&mut build());
    assert_eq!(
        (v["processed_now"].as_u64(), v["already_done"].as_u64()),
        (Some(0), Some(1)),
        "resumed"
    );

    let v = run_json(
        tessera()
            .args(["kg", "ask", "What does APOE cause?", "--db"])
            .arg(&db)
            .args(["--option", "dementia", "--option", "fracture"])
            .args(["--backend", &backend, "--encoder", "hash", "--json"]),
    );
    assert_keys(
        &v,
        &["keywords", "linked", "evidence", "kept", "choice", "answer"],
    );
    assert_eq!(v["choice"], "A");
    assert_eq!(v["answer"], "dementia");

    let data = adqa(d);
    let v = run_json(
        tessera()
            .args(["kg", "eval", "--db"])
            .arg(&db)
            .arg("--data")
            .arg(&data)
            .args([
                "--limit",
                "3",
                "--backend",
                &backend,
                "--encoder",
                "hash",
                "--json",
            ]),
    );
    assert_keys(
        &v,
        &[
            "no_kg_accuracy",
            "dalk_accuracy",
            "no_rerank_accuracy",
            "retrieval_recall",
            "per_subset",
            "overall",
            "transcript",
        ],
    );
    assert_eq!(v["questions"], 3);
    for s in ["medqa", "medmcqa", "mmlu"] {
        assert_keys(
            &v["per_subset"][s],
            &["no_kg_accuracy", "dalk_accuracy", "no_rerank_accuracy"],
        );
    }
    // With evidence the script answers A: right for medqa and medmcqa, wrong for mmlu; without it B (mmlu only).
    assert!(
        (v["dalk_accuracy"].as_f64().unwrap() - 200.0 / 3.0).abs() < 1e-9,
        "{v}"
    );
    assert!(
        (v["no_kg_accuracy"].as_f64().unwrap() - 100.0 / 3.0).abs() < 1e-9,
        "{v}"
    );
    assert_keys(
        &v["retrieval_recall"],
        &["path", "neighbour", "sampled", "reranked"],
    );
    // Log-likelihood scoring, its own output folder.
    let v = run_json(
        tessera()
            .args(["kg", "eval", "--db"])
            .arg(&db)
            .arg("--data")
            .arg(&data)
            .args([
                "--limit",
                "4",
                "--scoring",
                "loglik",
                "--backend",
                &backend,
                "--encoder",
                "hash",
                "--json",
            ]),
    );
    assert_eq!(
        v["no_kg_accuracy"], 100.0,
        "the preferred option is gold in each of the four: {v}"
    );
}

#[test]
fn kg_bad_input_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("kg.sqlite");
    let out = tessera()
        .args(["kg", "import", "/no/such/file.tsv", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_clean_failure(&out, "file.tsv");
    let out = tessera()
        .args(["kg", "eval", "--db"])
        .arg(d.join("none.sqlite"))
        .output()
        .unwrap();
    assert_clean_failure(&out, "no such database");
    let good = d.join("good.sqlite");
    let f = d.join("k.tsv");
    std::fs::write(&f, "a\tb\tc\n").unwrap();
    run_json(
        tessera()
            .args(["kg", "import"])
            .arg(&f)
            .arg("--db")
            .arg(&good)
            .arg("--json"),
    );
    let junk = d.join("junk.sqlite");
    std::fs::write(&junk, b"not sqlite at all ".repeat(200)).unwrap();
    let out = tessera()
        .args(["kg", "import"])
        .arg(d.join("k.tsv"))
        .arg("--db")
        .arg(&junk)
        .output()
        .unwrap();
    assert_clean_failure(&out, "junk.sqlite");
    let out = tessera()
        .args(["kg", "eval", "--db"])
        .arg(&good)
        .args(["--scoring", "bogus"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "bogus");
    let out = tessera()
        .args(["kg", "ask", "q", "--db"])
        .arg(&good)
        .args(["--backend", "nonsense", "--encoder", "hash"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "nonsense");
}
