//! The knowledge-graph section of `tessera tour`: imports DALK's AD knowledge graph (`dalk/train_s2s.txt`) into
//! a fresh database and answers a few ADQA questions (one per subset) with the local model, log-likelihood
//! scoring, no-KG vs DALK. Linking uses the hashed-trigram encoder here: embedding all ~17.7k entities with MiniLM
//! takes minutes on a small CPU (once per database; `kg eval` and `kg ask` use MiniLM by default).
use crate::dalk::{DalkConfig, Scoring};
use crate::encoder::EncoderKind;
use crate::error::Result;
use crate::eval::{self, KgEvalConfig};
use crate::store::KgStore;
use tessera_core::record::RunDir;
use tessera_core::report::{markdown_table, Report, TourSection};

/// Questions the tour answers (round-robin over the four subsets).
pub const TOUR_QUESTIONS: usize = 4;
/// The tour's backend.
pub const TOUR_BACKEND: &str = "local:smollm2-135m";

/// Runs the tour's part, writing `kg.sqlite` and `kg_eval/` into `dir`.
pub fn tour(dir: &RunDir, offline: bool) -> Result<TourSection> {
    let kg_file = tessera_core::assets::resolve_data("dalk/train_s2s.txt")?;
    let db = dir.file("kg.sqlite");
    let _ = std::fs::remove_file(&db);
    let mut store = KgStore::open(&db)?;
    let imp = store.import(&kg_file, None)?;
    drop(store);
    let cfg = KgEvalConfig {
        db: db.clone(),
        data_dir: None,
        subsets: vec![],
        limit: Some(TOUR_QUESTIONS),
        backend: TOUR_BACKEND.into(),
        encoder: EncoderKind::Hash,
        dalk: DalkConfig {
            scoring: Scoring::Loglik,
            ..DalkConfig::default()
        },
        out: dir.file("kg_eval"),
        offline,
    };
    let res = eval::run(&cfg, |_, _| {})?;
    let mut rep = Report::new("Knowledge-graph QA (DALK)");
    rep.para(&format!(
        "Imported DALK's generative AD knowledge graph: {} triples, {} entities, {} malformed lines skipped, in \
         {:.2} s.",
        imp.triples, imp.entities, imp.skipped, imp.seconds
    ));
    let rows = vec![
        vec![
            "no KG".into(),
            format!("{:.1}", res.no_kg_accuracy),
            format!("{:.1}", eval::PAPER_NO_KG),
        ],
        vec![
            "KG, no rerank".into(),
            format!("{:.1}", res.no_rerank_accuracy),
            format!("{:.1}", eval::PAPER_NO_RERANK),
        ],
        vec![
            "DALK".into(),
            format!("{:.1}", res.dalk_accuracy),
            format!("{:.1}", eval::PAPER_DALK),
        ],
    ];
    rep.para(&format!(
        "{} ADQA questions with `{TOUR_BACKEND}` (log-likelihood scoring, lexical linking); the paper used gpt-3.5-turbo on all \
         446. Far too few questions to compare: this only shows the pipeline runs.\n\n{}",
        res.questions,
        markdown_table(&["condition", "accuracy %", "paper (gpt-3.5) %"], &rows)
    ));
    rep.para(&format!(
        "Full run: `tessera kg eval --db kg.sqlite --limit 100 --scoring loglik --json` (see \
         crates/tessera-kg/README.md). Transcript: `{}`.",
        res.transcript.display()
    ));
    let json = serde_json::json!({ "import": imp, "eval": res });
    Ok(TourSection::new("kg", rep, json))
}
