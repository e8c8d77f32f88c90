//! Human-readable text of the command results (what `tessera kg …` prints without `--json`).
use crate::construct::BuildResult;
use crate::eval::{KgEvalResult, PAPER_DALK, PAPER_NO_KG, PAPER_NO_RERANK};
use crate::store::ImportReport;
use crate::{AskResult, ExportReport};
use std::fmt;

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} triples, {} entities ({} added, {} duplicates, {} malformed lines skipped) in {:.2}s",
            self.triples, self.entities, self.added, self.duplicates, self.skipped, self.seconds
        )
    }
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} triples written to {} ({})",
            self.triples,
            self.file.display(),
            self.format
        )
    }
}

impl fmt::Display for BuildResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passages ({} now, {} done before, {} failed): +{} triples ({} generated); {} triples, {} \
             entities; {} unparsed, {} no-relation, {} merged",
            self.passages,
            self.processed_now,
            self.already_done,
            self.failed,
            self.triples_added,
            self.generated_added,
            self.triples,
            self.entities,
            self.unparsed,
            self.no_relation,
            self.merged_entities
        )
    }
}

impl fmt::Display for AskResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.linked {
            writeln!(
                f,
                "linked: {} -> {} ({:.2})",
                l.keyword, l.entity, l.similarity
            )?;
        }
        for fact in &self.kept {
            writeln!(f, "evidence: {}", fact.text)?;
        }
        match &self.choice {
            Some(c) => write!(f, "answer: {c}. {}", self.answer),
            None => write!(f, "answer: {}", self.answer),
        }
    }
}

impl fmt::Display for KgEvalResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} questions: no KG {:.1}%, KG no rerank {:.1}%, DALK {:.1}% (paper, gpt-3.5: {PAPER_NO_KG} / \
             {PAPER_NO_RERANK} / {PAPER_DALK}); transcript {}",
            self.questions,
            self.no_kg_accuracy,
            self.no_rerank_accuracy,
            self.dalk_accuracy,
            self.transcript.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KgFormat;

    #[test]
    fn texts_name_the_counts() {
        let r = ImportReport {
            triples: 7,
            entities: 3,
            added: 5,
            duplicates: 2,
            ..Default::default()
        };
        assert!(r
            .to_string()
            .starts_with("7 triples, 3 entities (5 added, 2 duplicates"));
        let e = ExportReport {
            triples: 4,
            file: "x.tsv".into(),
            format: KgFormat::Tsv,
        };
        assert_eq!(e.to_string(), "4 triples written to x.tsv (tsv)");
        let a = AskResult {
            keywords: vec![],
            linked: vec![],
            unlinked: vec![],
            evidence: vec![],
            kept: vec![],
            reasoning: String::new(),
            choice: Some("B".into()),
            answer: "tau".into(),
        };
        assert_eq!(a.to_string(), "answer: B. tau");
    }
}
