//! `tessera bio name`: one gene set named by the Thought Graph, with the over-representation baseline's top
//! terms beside it.
use crate::data::{DataPaths, Resources};
use crate::enrichment::{self, EnrichOptions, EnrichedTerm};
use crate::error::{BioError, Result};
use crate::ontology::Resolved;
use crate::thought_graph::{self, ThoughtGraph, ThoughtGraphConfig};
use serde::Serialize;
use tessera_llm::ChatModel;

/// What to name.
#[derive(Debug, Clone)]
pub struct NameConfig {
    /// Gene symbols (official symbols or unique aliases).
    pub genes: Vec<String>,
    /// Chat backend spec.
    pub backend: String,
    /// Thought Graph settings.
    pub thought_graph: ThoughtGraphConfig,
    /// Ontology and annotations (`None`: the assets).
    pub data: Option<DataPaths>,
    /// Never download assets.
    pub offline: bool,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameResult {
    /// How the symbols resolved (unknown ones are skipped).
    pub resolved: Resolved,
    /// The Thought Graph's final name.
    pub name: String,
    /// The nearest GO term of the final node.
    pub go_id: Option<String>,
    /// The backend.
    pub backend: String,
    /// The graph.
    pub graph: ThoughtGraph,
    /// The top over-represented terms (at most 5).
    pub enrichment: Vec<EnrichedTerm>,
}

/// Loads the data and backend and names the genes.
pub fn name(cfg: &NameConfig) -> Result<NameResult> {
    cfg.thought_graph.validate()?;
    if cfg.genes.iter().all(|g| g.trim().is_empty()) {
        return Err(BioError::invalid("no gene symbols given"));
    }
    let paths = match &cfg.data {
        Some(p) => p.clone(),
        None => DataPaths::from_assets(cfg.offline)?,
    };
    let res = Resources::load(&paths, cfg.offline)?;
    let model = tessera_llm::spec::open(&cfg.backend, cfg.offline)?;
    name_with(cfg, &res, model.as_ref())
}

/// Names the genes with loaded resources and a backend.
pub fn name_with(cfg: &NameConfig, res: &Resources, model: &dyn ChatModel) -> Result<NameResult> {
    let resolved = res.annotations.resolve(&cfg.genes);
    if resolved.genes.is_empty() {
        return Err(BioError::invalid(format!(
            "none of the genes is a known symbol or alias: {}",
            resolved.unknown.join(", ")
        )));
    }
    let e = enrichment::enrich(
        &res.ontology,
        &res.annotations,
        &resolved.genes,
        &EnrichOptions {
            top: 5,
            ..EnrichOptions::default()
        },
    )?;
    let graph = thought_graph::run(
        &cfg.thought_graph,
        &resolved.symbols,
        model,
        res.embedder.as_ref(),
        &res.ontology,
        &res.index,
    )?;
    Ok(NameResult {
        name: graph.final_name.clone(),
        go_id: graph.final_node.map(|i| graph.nodes[i].go_id.clone()),
        backend: model.name(),
        resolved,
        graph,
        enrichment: e.terms,
    })
}

impl NameResult {
    /// Writes the thought graph as an SVG drawing to `path`, titled with the gene symbols.
    pub fn write_svg(&self, path: &std::path::Path) -> Result<()> {
        let title = format!("Thought Graph: {}", self.resolved.symbols.join(", "));
        tessera_core::fsx::write_atomic(
            path,
            crate::thought_graph::render_svg(&self.graph, &title).as_bytes(),
        )?;
        Ok(())
    }
}
