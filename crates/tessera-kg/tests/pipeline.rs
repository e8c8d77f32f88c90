//! tessera-kg end to end without a model: import counting, path and neighbour queries on a hand-made graph,
//! linking without reuse, the triple parser on broken output, construction and evaluation with a scripted
//! backend (including an outage and its resume), and refusal of other schemas.
use std::collections::HashSet;
use std::path::Path;
use tessera_kg::adqa::Subset;
use tessera_kg::construct::{self, BuildConfig, BuildMode};
use tessera_kg::dalk::{self, DalkConfig, Scoring};
use tessera_kg::encoder::{EncoderKind, HashEncoder};
use tessera_kg::eval::{self, KgEvalConfig};
use tessera_kg::store::{KgStore, Triple};
use tessera_kg::testing::{Rule, Script};

fn t(h: &str, r: &str, tl: &str) -> Triple {
    Triple {
        head: h.into(),
        relation: r.into(),
        tail: tl.into(),
        provenance: "hand".into(),
        is_generated: false,
    }
}

/// APOE -> associates -> AD -> causes -> dementia; APOE -> binds -> Abeta -> causes -> dementia;
/// donepezil -> treats -> AD; tau -> interacts -> Abeta.
fn hand_graph() -> KgStore {
    let mut s = KgStore::open_in_memory().unwrap();
    s.insert_triples(&[
        t("APOE", "associates", "Alzheimer disease"),
        t("Alzheimer disease", "causes", "dementia"),
        t("APOE", "binds", "amyloid beta"),
        t("amyloid beta", "causes", "dementia"),
        t("donepezil", "treats", "Alzheimer disease"),
        t("tau", "interacts", "amyloid beta"),
        t("APOE", "regulates", "cholesterol"),
        t("APOE", "regulates", "lipid transport"),
    ])
    .unwrap();
    s
}

#[test]
fn import_counts_triples_entities_and_skipped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("kg.tsv");
    std::fs::write(
        &f,
        "APOE\tassociates\tAlzheimer disease\n\
         only two\tfields\n\
         \n\
         BACE1\t\tAPP\n\
         BACE1\tcleaves\tAPP\n\
         a\tb\tc\td\te\tf\n\
         apoe\tassociates\talzheimer  disease\n\
         tau\tinteracts\tAPP\tpaper-3\t1\n",
    )
    .unwrap();
    let mut s = KgStore::open(dir.path().join("kg.sqlite")).unwrap();
    let r = s.import(&f, None).unwrap();
    assert_eq!(r.skipped, 3, "{r:?}");
    assert_eq!(r.skipped_lines, vec![2, 4, 6]);
    assert_eq!(r.added, 3);
    assert_eq!(r.duplicates, 1, "case/whitespace variants are one triple");
    assert_eq!(r.triples, 3);
    assert_eq!(r.entities, 5, "APOE, Alzheimer disease, BACE1, APP, tau");
    let all = s.triples().unwrap();
    assert!(all
        .iter()
        .any(|x| x.provenance == "paper-3" && x.is_generated));
    // Export and re-import into a new database round-trips.
    let out = dir.path().join("out.jsonl");
    assert_eq!(
        s.export(&out, tessera_kg::store::KgFormat::Jsonl).unwrap(),
        3
    );
    let mut s2 = KgStore::open(dir.path().join("kg2.sqlite")).unwrap();
    let r2 = s2.import(&out, None).unwrap();
    assert_eq!((r2.triples, r2.skipped), (3, 0));
    assert_eq!(s2.triples().unwrap(), all);
}

#[test]
fn path_and_neighbour_queries_on_a_hand_made_graph() {
    let s = hand_graph();
    let g = s.graph().unwrap();
    let id = |n: &str| s.entity_id(n).unwrap().unwrap();
    let paths = g.shortest_paths(id("APOE"), id("dementia"), 5, 5);
    assert_eq!(paths.len(), 2, "two shortest 2-hop paths");
    assert!(paths.iter().all(|p| p.len() == 2));
    let rendered: HashSet<String> = paths.iter().map(|p| g.render_path(p)).collect();
    assert!(rendered.contains("APOE -> associates -> Alzheimer disease -> causes -> dementia"));
    assert!(rendered.contains("APOE -> binds -> amyloid beta -> causes -> dementia"));
    // Directed: no path back, and the hop limit holds.
    assert!(g
        .shortest_paths(id("dementia"), id("APOE"), 5, 5)
        .is_empty());
    assert!(g
        .shortest_paths(id("donepezil"), id("dementia"), 1, 5)
        .is_empty());
    assert_eq!(
        g.shortest_paths(id("donepezil"), id("dementia"), 2, 5)
            .len(),
        1
    );
    // Neighbours grouped by relation.
    let n = s.neighbours(id("APOE")).unwrap();
    let regulates = n.iter().find(|g| g.relation == "regulates").unwrap();
    assert_eq!(regulates.tails, vec!["cholesterol", "lipid transport"]);
    assert_eq!(n.len(), 3);
    // Evidence samplers: chained paths over consecutive entities and at most 5 neighbour lines.
    let cfg = DalkConfig::default();
    let facts = dalk::path_evidence(
        &g,
        &[id("donepezil"), id("Alzheimer disease"), id("dementia")],
        &cfg,
    );
    assert_eq!(facts.len(), 1);
    assert_eq!(
        facts[0].text,
        "donepezil -> treats -> Alzheimer disease -> causes -> dementia"
    );
    let nb =
        dalk::neighbour_evidence(&s, &g, &[id("APOE"), id("tau"), id("donepezil")], &cfg).unwrap();
    assert_eq!(nb.len(), 5, "first 5 lines");
    assert!(nb[0].text.starts_with("APOE -> associates"));
}

#[test]
fn a_path_through_a_later_candidate_replaces_its_segment() {
    let s = hand_graph();
    let g = s.graph().unwrap();
    let id = |n: &str| s.entity_id(n).unwrap().unwrap();
    // donepezil -> AD -> dementia passes through "Alzheimer disease", a later candidate: one chain, AD dropped.
    let facts = dalk::path_evidence(
        &g,
        &[id("donepezil"), id("dementia"), id("Alzheimer disease")],
        &DalkConfig::default(),
    );
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert!(facts[0]
        .text
        .contains("treats -> Alzheimer disease -> causes -> dementia"));
}

#[test]
fn linking_never_reuses_an_entity() {
    let mut s = hand_graph();
    let enc = HashEncoder::default();
    s.ensure_embeddings(&enc).unwrap();
    let idx = s.embedding_index().unwrap();
    let g = s.graph().unwrap();
    let kws: Vec<String> = ["APOE", "apoe", "APOE gene", "tau protein"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    let (linked, unlinked) = dalk::link(&kws, &enc, &idx, &g, -1.0).unwrap();
    let ids: HashSet<i64> = linked.iter().map(|l| l.entity_id).collect();
    assert_eq!(
        ids.len(),
        linked.len(),
        "an entity was linked twice: {linked:?}"
    );
    assert_eq!(linked[0].entity, "APOE");
    assert_ne!(linked[1].entity, "APOE");
    assert!(unlinked.is_empty());
    // With a threshold, weak matches stay unlinked.
    let (linked, unlinked) = dalk::link(&["zzzz qqqq".to_string()], &enc, &idx, &g, 0.5).unwrap();
    assert!(linked.is_empty());
    assert_eq!(unlinked, vec!["zzzz qqqq"]);
}

#[test]
fn triple_parser_survives_broken_llm_output() {
    let out = "Here are the triples:\n\
               head | relation | tail\n\
               1. GSK3β | regulates | BACE1\n\
               - \"BACE1\" | cleaves | APP.\n\
               BACE1 | cleaves | APP\n\
               NF-κB | | BACE1\n\
               a | b | c | d\n\
               APP | is | APP\n\
               tau | forms a very long and rambling relation phrase | tangles\n\
               just some prose without separators\n\
               Aβ | associated with | Alzheimer's disease";
    let (ts, st) = construct::parse_triples(out, "p");
    let names: Vec<(String, String, String)> = ts
        .iter()
        .map(|t| (t.head.clone(), t.relation.clone(), t.tail.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("GSK3β".into(), "regulates".into(), "BACE1".into()),
            ("BACE1".into(), "cleaves".into(), "APP".into()),
            (
                "Aβ".into(),
                "associated with".into(),
                "Alzheimer's disease".into()
            ),
        ]
    );
    assert!(!ts[0].is_generated && ts[1].is_generated && ts[2].is_generated);
    assert_eq!(st.unparsed, 5, "{st:?}");
    // Nothing usable: no triples, no panic.
    let (ts, _) = construct::parse_triples("|||\n| | |\n\u{0}", "p");
    assert!(ts.is_empty());
}

fn write_adqa(dir: &Path) {
    let medqa = serde_json::json!([
        {"question": "Which gene is the main genetic risk factor of Alzheimer disease?",
         "choices": ["APOE", "insulin", "hemoglobin", "keratin"], "answer": ["APOE"]},
        {"question": "Which drug treats Alzheimer disease?",
         "choices": ["aspirin", "donepezil", "penicillin", "insulin"], "answer": ["donepezil"]}
    ]);
    let medmcqa = serde_json::json!([
        {"question": "Alzheimer disease causes:", "opa": "fracture", "opb": "dementia", "opc": "anemia",
         "opd": "asthma", "cop": 1}
    ]);
    let mmlu = serde_json::json!([
        {"question": "Passage. What binds amyloid beta?", "choices": ["APOE", "water", "salt", "sugar"], "answer": 0}
    ]);
    let qa4mre = serde_json::json!([
        {"document_id": "1", "document_str": "APOE binds amyloid beta. Amyloid beta causes dementia. Donepezil treats Alzheimer disease in many patients.",
         "question_str": "What does tau interact with?",
         "answer_options": {"answer_str": ["amyloid beta", "APOE", "dementia", "donepezil", "cholesterol"]},
         "correct_answer_id": "1"}
    ]);
    for (s, v) in [
        (Subset::Medqa, medqa),
        (Subset::Medmcqa, medmcqa),
        (Subset::Mmlu, mmlu),
        (Subset::Qa4mre, qa4mre),
    ] {
        std::fs::write(dir.join(s.file()), v.to_string()).unwrap();
    }
}

/// A script that lists entities, reranks to fact 1, and answers "A" only with evidence, "D" without.
fn answer_script() -> Script {
    Script {
        rules: vec![
            Rule {
                contains: vec!["List every biomedical entity".into()],
                reply: "1. APOE\n2. Alzheimer disease\n3. dementia".into(),
            },
            Rule {
                contains: vec!["Rerank the knowledge graph facts".into()],
                reply: "1\n2".into(),
            },
            Rule {
                contains: vec!["Evidence".into(), "The final answer".into()],
                reply: "A".into(),
            },
            Rule {
                contains: vec!["The final answer".into()],
                reply: "D".into(),
            },
        ],
        default: "Let me think about it.".into(),
        prefer: vec!["APOE".into()],
        unavailable_after: None,
    }
}

fn eval_cfg(dir: &Path, db: &Path, script: &Path, scoring: Scoring) -> KgEvalConfig {
    KgEvalConfig {
        db: db.to_path_buf(),
        data_dir: Some(dir.to_path_buf()),
        subsets: vec![],
        limit: None,
        backend: format!("script:{}", script.display()),
        encoder: EncoderKind::Hash,
        dalk: DalkConfig {
            scoring,
            min_link_similarity: 0.3,
            ..DalkConfig::default()
        },
        out: dir.join(format!("eval-{scoring}")),
        offline: true,
    }
}

#[test]
fn whole_pipeline_with_a_scripted_backend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_adqa(d);
    // Construction: generative mode over the QA4MRE article, with a broken line in the answer.
    let build_script = Script {
        rules: vec![Rule {
            contains: vec!["head | relation | tail".into()],
            reply: "APOE | associates | Alzheimer disease\nAlzheimer disease | causes | dementia\n\
                    APOE | binds | amyloid beta\nnonsense line\ntau | interacts | amyloid beta\n\
                    donepezil | treats | Alzheimer disease"
                .into(),
        }],
        ..Script::default()
    };
    let bs = d.join("build.json");
    std::fs::write(&bs, serde_json::to_string(&build_script).unwrap()).unwrap();
    let db = d.join("kg.sqlite");
    let mut bc = BuildConfig::new(&db, format!("script:{}", bs.display()));
    bc.data_dir = Some(d.to_path_buf());
    bc.mode = BuildMode::Generative;
    bc.encoder = EncoderKind::Hash;
    bc.merge_threshold = Some(0.99);
    let r = construct::build(&bc, |_, _| {}).unwrap();
    assert_eq!(r.passages, 1);
    assert_eq!((r.processed_now, r.triples, r.unparsed), (1, 5, 1), "{r:?}");
    assert_eq!(
        r.generated_added, 1,
        "`causes` is not in DALK's relation sets"
    );
    // A rerun skips the finished passage.
    let r = construct::build(&bc, |_, _| {}).unwrap();
    assert_eq!((r.processed_now, r.already_done, r.llm_calls), (0, 1, 0));

    // Evaluation, letter scoring: without evidence the script answers D (wrong), with evidence A.
    let es = d.join("eval.json");
    std::fs::write(&es, serde_json::to_string(&answer_script()).unwrap()).unwrap();
    let cfg = eval_cfg(d, &db, &es, Scoring::Letter);
    let res = eval::run(&cfg, |_, _| {}).unwrap();
    assert_eq!(res.questions, 5);
    assert_eq!(res.no_kg_accuracy, 0.0, "{res:?}");
    // Gold is A for medqa:0, mmlu:0, qa4mre:0: evidence is found for every question (APOE links).
    assert_eq!(res.dalk_accuracy, 60.0, "{res:#?}");
    assert_eq!(res.no_rerank_accuracy, 60.0);
    assert_eq!(res.unlinked_questions, 0);
    assert_eq!(res.per_subset["medqa"].questions, 2);
    assert!(res.overall.dalk.ci95[0] < 60.0 && res.overall.dalk.ci95[1] > 60.0);
    // Recall: the gold option "dementia" (medmcqa) is named by the neighbour/path evidence.
    assert!(
        res.retrieval_recall.sampled.gold > 0.0,
        "{:?}",
        res.retrieval_recall
    );
    let lines = std::fs::read_to_string(&res.transcript).unwrap();
    assert_eq!(lines.lines().count(), 5);
    let first: eval::QuestionRecord = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(
        first.retrieval.keywords,
        vec!["APOE", "Alzheimer disease", "dementia"]
    );
    assert_eq!(first.retrieval.kept, vec![0, 1]);
    assert!(first.retrieval.rerank_parsed);

    // Log-likelihood scoring: the option containing "APOE" scores highest, with or without the KG.
    let res = eval::run(&eval_cfg(d, &db, &es, Scoring::Loglik), |_, _| {}).unwrap();
    assert_eq!(
        res.no_kg_accuracy, 40.0,
        "medqa:0 and mmlu:0 have APOE as gold"
    );
    assert_eq!(res.dalk_accuracy, 40.0);
}

#[test]
fn an_outage_stops_the_evaluation_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_adqa(d);
    let db = d.join("kg.sqlite");
    {
        let mut s = KgStore::open(&db).unwrap();
        s.insert_triples(&[
            t("APOE", "associates", "Alzheimer disease"),
            t("Alzheimer disease", "causes", "dementia"),
        ])
        .unwrap();
    }
    let es = d.join("eval.json");
    let mut script = answer_script();
    // Each question makes 1 (list) + 1 (rerank) + 3 × 2 (answers) calls: the outage hits question 2.
    script.unavailable_after = Some(10);
    std::fs::write(&es, serde_json::to_string(&script).unwrap()).unwrap();
    let cfg = eval_cfg(d, &db, &es, Scoring::Letter);
    let err = eval::run(&cfg, |_, _| {}).unwrap_err().to_string();
    assert!(
        err.contains("unavailable") && err.contains("rerun"),
        "{err}"
    );
    let kept = std::fs::read_to_string(cfg.out.join("transcript.jsonl")).unwrap();
    assert_eq!(kept.lines().count(), 1);
    // The backend is back: the rerun answers only the other four.
    std::fs::write(&es, serde_json::to_string(&answer_script()).unwrap()).unwrap();
    let res = eval::run(&cfg, |_, _| {}).unwrap();
    assert_eq!((res.questions, res.answered_now), (5, 4));
    // Other settings on the same folder are refused.
    let mut other = cfg.clone();
    other.dalk.k = 3;
    let err = eval::run(&other, |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("different settings"), "{err}");
}

#[test]
fn questions_linking_to_nothing_are_answered_without_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_adqa(d);
    let db = d.join("kg.sqlite");
    KgStore::open(&db)
        .unwrap()
        .insert_triples(&[t("zebrafish", "lives in", "water")])
        .unwrap();
    let es = d.join("eval.json");
    let mut script = answer_script();
    script.rules[0].reply = "1. qqqq xxxx\n2. vvvv".into();
    std::fs::write(&es, serde_json::to_string(&script).unwrap()).unwrap();
    let mut cfg = eval_cfg(d, &db, &es, Scoring::Letter);
    cfg.dalk.min_link_similarity = 0.6;
    let res = eval::run(&cfg, |_, _| {}).unwrap();
    assert_eq!(res.unlinked_questions, 5);
    assert_eq!(res.no_evidence_questions, 5);
    assert_eq!(res.dalk_accuracy, res.no_kg_accuracy);
}

#[test]
fn databases_of_other_schemas_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.sqlite");
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        c.execute_batch("CREATE TABLE triples (head TEXT, relation TEXT, tail TEXT);")
            .unwrap();
    }
    let err = KgStore::open(&old).unwrap_err().to_string();
    assert!(
        err.contains("schema_version") && err.contains("import"),
        "{err}"
    );
    let v0 = dir.path().join("v0.sqlite");
    {
        let c = rusqlite::Connection::open(&v0).unwrap();
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (0);",
        )
        .unwrap();
    }
    let err = KgStore::open(&v0).unwrap_err().to_string();
    assert!(err.contains("older"), "{err}");
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(
        &junk,
        b"this is not a database at all, just text ".repeat(100),
    )
    .unwrap();
    assert!(KgStore::open(&junk).is_err());
}
