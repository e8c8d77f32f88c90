//! LLM baselines of the Thought Graph paper: zero-shot naming (`Process: <name>`), few-shot naming with worked
//! examples, and chain of thought (reason, then name). Greedy decoding; the prompts are our own wording.
use crate::error::{BioError, Result};
use crate::parse;
use crate::thought_graph::{Asker, Cost};
use serde::Serialize;
use std::str::FromStr;
use tessera_llm::ChatModel;

/// Which baseline.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
pub enum Baseline {
    /// One instruction, no examples.
    ZeroShot,
    /// The instruction after a few solved gene sets.
    FewShot,
    /// Reason step by step, then name.
    ChainOfThought,
}

impl Baseline {
    /// Every baseline.
    pub const ALL: [Baseline; 3] = [
        Baseline::ZeroShot,
        Baseline::FewShot,
        Baseline::ChainOfThought,
    ];

    /// `zero-shot`, `few-shot`, `cot`.
    pub fn as_str(self) -> &'static str {
        match self {
            Baseline::ZeroShot => "zero-shot",
            Baseline::FewShot => "few-shot",
            Baseline::ChainOfThought => "cot",
        }
    }
}

impl std::fmt::Display for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Baseline {
    type Err = BioError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "zero-shot" | "zeroshot" => Ok(Baseline::ZeroShot),
            "few-shot" | "fewshot" => Ok(Baseline::FewShot),
            "cot" | "chain-of-thought" => Ok(Baseline::ChainOfThought),
            _ => Err(BioError::invalid(format!(
                "unknown baseline `{s}` (known: zero-shot, few-shot, cot)"
            ))),
        }
    }
}

/// A solved gene set shown to the few-shot baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Example {
    /// Gene symbols.
    pub genes: Vec<String>,
    /// The process name.
    pub name: String,
}

/// Genes shown per few-shot example (longer sets are cut, keeping prompts short).
pub const EXAMPLE_GENES: usize = 20;

const SYSTEM: &str =
    "You are an expert in molecular and cell biology. You name the biological process that a set \
of human genes carries out, using Gene Ontology vocabulary.";

fn instruction(genes: &[String]) -> String {
    format!(
        "Genes: {}\n\nIn a few words, name the most prominent biological process these genes carry out together. \
Reply with one line: Process: <name>",
        genes.join(", ")
    )
}

/// The user prompt of a baseline.
pub fn prompt(b: Baseline, genes: &[String], examples: &[Example]) -> String {
    match b {
        Baseline::ZeroShot => instruction(genes),
        Baseline::FewShot => {
            let mut s = String::new();
            for e in examples {
                let shown: Vec<String> = e.genes.iter().take(EXAMPLE_GENES).cloned().collect();
                s.push_str(&format!("{}\nProcess: {}\n\n", instruction(&shown), e.name));
            }
            s.push_str(&instruction(genes));
            s
        }
        Baseline::ChainOfThought => format!(
            "Genes: {}\n\nFirst think step by step: say in two or three sentences what several of these genes do \
and what they have in common. Then, on a last line, name the most prominent biological process they carry \
out together as: Process: <name>",
            genes.join(", ")
        ),
    }
}

/// One baseline answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineAnswer {
    /// The parsed name ("" when the reply held none).
    pub name: String,
    /// The raw reply.
    pub reply: String,
    /// Requests and tokens spent.
    pub cost: Cost,
}

/// Runs baseline `b` for `genes` on `model` (greedy; `examples` are used by the few-shot baseline only).
pub fn run(
    b: Baseline,
    genes: &[String],
    examples: &[Example],
    model: &dyn ChatModel,
) -> Result<BaselineAnswer> {
    if genes.is_empty() {
        return Err(BioError::invalid("no genes to name"));
    }
    if b == Baseline::FewShot && examples.is_empty() {
        return Err(BioError::invalid(
            "the few-shot baseline needs at least one example",
        ));
    }
    let max_tokens = if b == Baseline::ChainOfThought {
        256
    } else {
        48
    };
    let mut ask = Asker::new(model, 0);
    let reply = ask
        .ask(SYSTEM, &prompt(b, genes, examples), 1, 0.0, max_tokens)?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(BaselineAnswer {
        name: parse::process_answer(&reply).unwrap_or_default(),
        reply,
        cost: ask.cost,
    })
}
