//! `tessera bio` contracts on fixtures written here (a small OBO ontology, a GAF file and a gene-set CSV), so the
//! Debian GO packages are not needed: `bio eval --json` keys, `bio name` on a tiny random model, and one-line
//! failures. Scoring uses the MiniLM asset (`tessera assets fetch`); without it the tests skip unless
//! `TESSERA_REQUIRE_ASSETS` is set.
mod common;
use common::{assert_clean_failure, run_json, tessera};
use std::path::Path;

const OBO: &str = "format-version: 1.2\n\n\
[Term]\nid: GO:0008150\nname: biological_process\nnamespace: biological_process\n\n\
[Term]\nid: GO:0006281\nname: DNA repair\nnamespace: biological_process\nis_a: GO:0008150\n\n\
[Term]\nid: GO:0006289\nname: nucleotide-excision repair\nnamespace: biological_process\nis_a: GO:0006281\n\n\
[Term]\nid: GO:0006915\nname: apoptotic process\nnamespace: biological_process\nis_a: GO:0008150\n";

fn gaf_row(sym: &str, go: &str) -> String {
    format!("UniProtKB\tP{sym}\t{sym}\t\t{go}\tPMID:1\tIDA\t\tP\t{sym}\t\tprotein\ttaxon:9606\t20200101\tUniProt\n")
}

fn minilm_present() -> bool {
    let ok = tessera_core::assets::find_model("all-minilm-l6-v2").is_some_and(|a| a.is_present());
    if !ok && std::env::var_os("TESSERA_REQUIRE_ASSETS").is_some() {
        panic!("all-minilm-l6-v2 missing and TESSERA_REQUIRE_ASSETS is set");
    }
    if !ok {
        eprintln!("skipping: all-minilm-l6-v2 not fetched (tessera assets fetch)");
    }
    ok
}

fn fixtures(dir: &Path) {
    std::fs::write(dir.join("go.obo"), OBO).unwrap();
    let mut gaf = String::from("!gaf-version: 2.2\n");
    for (s, g) in [
        ("XPA", "GO:0006289"),
        ("ERCC4", "GO:0006289"),
        ("OGG1", "GO:0006281"),
        ("CASP3", "GO:0006915"),
        ("BAX", "GO:0006915"),
    ] {
        gaf += &gaf_row(s, g);
    }
    std::fs::write(dir.join("h.gaf"), gaf).unwrap();
    std::fs::write(
        dir.join("sets.csv"),
        "GO,Genes,Gene_Count,Term_Description\nGO:0006289,XPA ERCC4 NOTAGENE,3,nucleotide-excision repair\n\
         GO:0006915,CASP3 BAX,2,apoptotic process\n",
    )
    .unwrap();
}

#[test]
fn eval_json_has_the_contract_keys_and_reports_unknown_genes() {
    if !minilm_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
    let d = dir.path();
    let v = run_json(
        tessera()
            .args([
                "bio",
                "eval",
                "--methods",
                "gsea",
                "--limit",
                "2",
                "--alpha",
                "1",
                "--json",
                "--ontology",
            ])
            .arg(d.join("go.obo"))
            .arg("--annotations")
            .arg(d.join("h.gaf"))
            .arg("--gene-sets")
            .arg(d.join("sets.csv"))
            .arg("--out")
            .arg(d.join("run")),
    );
    for k in [
        "gene_sets",
        "gsea_cosine",
        "gsea_percentile",
        "gsea_cosine_excluding_gold",
        "gsea_percentile_excluding_gold",
        "zero_shot_cosine",
        "few_shot_cosine",
        "cot_cosine",
        "thought_graph_cosine",
        "thought_graph_best_cosine",
        "thought_graph_percentile",
        "cost_per_set",
        "unknown_genes",
        "embedder",
        "reference",
        "records",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {v}");
    }
    assert_eq!(v["gene_sets"], 2);
    assert_eq!(v["unknown_genes"], 1);
    assert_eq!(v["records"][0]["unknown"][0], "NOTAGENE");
    assert!(v["thought_graph_cosine"].is_null(), "not run");
    assert!(
        v["gsea_cosine"].as_f64().unwrap() > 0.99,
        "the gold term itself is the best match"
    );
    assert!(d.join("run/records.jsonl").is_file());
}

#[test]
fn name_runs_the_graph_on_smollm2_and_writes_the_svg() {
    let smol = tessera_core::assets::find_model("smollm2-135m").is_some_and(|a| a.is_present());
    if !minilm_present() || !smol {
        assert!(
            std::env::var_os("TESSERA_REQUIRE_ASSETS").is_none(),
            "smollm2-135m missing"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
    let d = dir.path();
    let v = run_json(
        tessera()
            .args([
                "bio",
                "name",
                "--genes",
                "XPA,ERCC4,NOTAGENE",
                "--layers",
                "2",
                "--samples",
                "2",
                "--voters",
                "2",
            ])
            .args([
                "--max-tokens",
                "40",
                "--backend",
                "local:smollm2-135m",
                "--json",
            ])
            .arg("--ontology")
            .arg(d.join("go.obo"))
            .arg("--annotations")
            .arg(d.join("h.gaf"))
            .arg("--svg")
            .arg(d.join("g.svg")),
    );
    for k in ["resolved", "name", "graph", "enrichment", "backend"] {
        assert!(v.get(k).is_some(), "missing {k} in {v}");
    }
    assert_eq!(v["resolved"]["unknown"][0], "NOTAGENE");
    assert!(v["graph"]["cost"]["calls"].as_u64().unwrap() >= 1);
    assert!(v["graph"]["cost"]["completions"].as_u64() >= v["graph"]["cost"]["calls"].as_u64());
    let svg = std::fs::read_to_string(d.join("g.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
}

#[test]
fn bad_input_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
    let d = dir.path();
    let out = tessera()
        .args(["bio", "eval", "--methods", "gsea,nonsense"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "nonsense");
    let out = tessera()
        .args(["bio", "eval", "--methods", "gsea", "--ontology"])
        .arg(d.join("go.obo"))
        .arg("--annotations")
        .arg(d.join("missing.gaf"))
        .output()
        .unwrap();
    assert_clean_failure(&out, "missing.gaf");
    let out = tessera()
        .args(["bio", "eval", "--limit", "0"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "limit");
    let out = tessera()
        .args([
            "bio",
            "name",
            "--genes",
            "XPA",
            "--samples",
            "0",
            "--ontology",
        ])
        .arg(d.join("go.obo"))
        .arg("--annotations")
        .arg(d.join("h.gaf"))
        .output()
        .unwrap();
    assert_clean_failure(&out, "samples");
}
