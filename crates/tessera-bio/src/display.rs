//! Human-readable text of the command results (what `tessera bio …` prints without `--json`).
use crate::bench::SampleBench;
use crate::eval::BioEvalResult;
use crate::name::NameResult;
use std::fmt;

impl fmt::Display for SampleBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} samples on {}: one request n={} {:.2}s ({:.1} tok/s), {} requests n=1 {:.2}s ({:.1} tok/s): {:.2}x",
            self.samples,
            self.backend,
            self.samples,
            self.batched_s,
            self.batched_tokens_per_s,
            self.samples,
            self.sequential_s,
            self.sequential_tokens_per_s,
            self.speedup
        )
    }
}

impl fmt::Display for NameResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.resolved.unknown.is_empty() {
            writeln!(
                f,
                "unknown symbols (skipped): {}",
                self.resolved.unknown.join(", ")
            )?;
        }
        writeln!(f, "name: {}", self.name)?;
        for n in &self.graph.nodes {
            let mark = if Some(n.id) == self.graph.final_node {
                "*"
            } else if n.selected {
                "+"
            } else {
                " "
            };
            writeln!(
                f,
                "{}{mark} {} [group {}, votes {}; nearest {} {} ({:.2})]",
                "  ".repeat(n.layer.saturating_sub(1)),
                n.name,
                n.group_size,
                n.votes,
                n.go_id,
                n.go_name,
                n.go_cosine
            )?;
        }
        let c = self.graph.cost;
        write!(
            f,
            "{} calls, {} completions, {} + {} tokens",
            c.calls, c.completions, c.prompt_tokens, c.completion_tokens
        )
    }
}

impl fmt::Display for BioEvalResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
        write!(
            f,
            "{} gene sets, embedder {}",
            self.gene_sets, self.embedder
        )?;
        let rows = [
            (
                "gsea (gold leaks in)",
                self.gsea_cosine,
                self.gsea_percentile,
            ),
            (
                "gsea excluding gold",
                self.gsea_cosine_excluding_gold,
                self.gsea_percentile_excluding_gold,
            ),
            (
                "zero-shot",
                self.zero_shot_cosine,
                self.zero_shot_percentile,
            ),
            ("few-shot", self.few_shot_cosine, self.few_shot_percentile),
            ("cot", self.cot_cosine, self.cot_percentile),
            (
                "thought graph final",
                self.thought_graph_cosine,
                self.thought_graph_percentile,
            ),
            (
                "thought graph best",
                self.thought_graph_best_cosine,
                self.thought_graph_best_percentile,
            ),
        ];
        for (label, c, p) in rows {
            write!(
                f,
                "\n{label:<22} cosine {:>6}  percentile {:>6}",
                s(c),
                s(p)
            )?;
        }
        for (k, c) in &self.cost_per_set {
            write!(
                f,
                "\n{k:<22} {:.1} calls, {:.0} + {:.0} tokens per set",
                c.calls, c.prompt_tokens, c.completion_tokens
            )?;
            if let Some(&n) = self.no_answer.get(k).filter(|&&n| n > 0) {
                write!(f, "; no readable name in {n} of {} sets", self.gene_sets)?;
            }
        }
        Ok(())
    }
}
