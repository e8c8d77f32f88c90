//! Inputs: the gene sets with gold names (`1000_selected_go_terms.csv` of the Thought Graph repository) and the
//! resources every method shares (ontology, annotations, embedder, term index), loaded once.
use crate::error::{BioError, Result};
use crate::ontology::{Annotations, Ontology};
use crate::semantic::{TermIndex, TextEmbedder};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The gene-set table, relative to the shared data root.
pub const DEFAULT_GENE_SETS: &str = "thought_graph/1000_selected_go_terms.csv";

/// One gene set and its gold name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GeneSet {
    /// The GO term the set was taken from.
    pub go_id: String,
    /// Gene symbols.
    pub genes: Vec<String>,
    /// The gold name (the GO term's name).
    pub name: String,
}

/// Reads a CSV with columns `GO`, `Genes` (space-separated symbols), `Gene_Count`, `Term_Description`.
pub fn read_gene_sets(path: &Path) -> Result<Vec<GeneSet>> {
    let bytes = tessera_core::fsx::read(path)?;
    parse_gene_sets(&bytes, path)
}

/// Parses the gene-set CSV (`path` names it in errors).
pub fn parse_gene_sets(bytes: &[u8], path: &Path) -> Result<Vec<GeneSet>> {
    let bad = |line: usize, msg: String| BioError::Parse {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let head = rd.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let col = |name: &str| {
        head.iter().position(|h| h.trim() == name).ok_or_else(|| {
            bad(
                1,
                format!(
                    "no `{name}` column (have: {})",
                    head.iter().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    let (c_go, c_genes, c_name) = (col("GO")?, col("Genes")?, col("Term_Description")?);
    let mut out = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| bad(line, e.to_string()))?;
        let get = |c: usize| rec.get(c).unwrap_or("").trim().to_string();
        let genes: Vec<String> = get(c_genes)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let (go_id, name) = (get(c_go), get(c_name));
        if go_id.is_empty() || name.is_empty() || genes.is_empty() {
            return Err(bad(line, "empty GO id, name or gene list".into()));
        }
        out.push(GeneSet { go_id, genes, name });
    }
    if out.is_empty() {
        return Err(bad(1, "no gene sets".into()));
    }
    Ok(out)
}

/// Where the ontology and annotations come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataPaths {
    /// Bioconductor `GO.sqlite` (or an OBO file, by extension `.obo`).
    pub ontology: PathBuf,
    /// Bioconductor `org.Hs.eg.sqlite` (or a GAF file, by extension `.gaf`).
    pub annotations: PathBuf,
}

impl DataPaths {
    /// The `go-db` and `org-hs-eg-db` assets (fetched unless `offline`).
    pub fn from_assets(offline: bool) -> Result<Self> {
        let go = tessera_core::assets::data_package("go-db", offline)?;
        let org = tessera_core::assets::data_package("org-hs-eg-db", offline)?;
        Ok(DataPaths {
            ontology: go.main_path(),
            annotations: org.main_path(),
        })
    }
}

/// The ontology, annotations, embedder and term index, loaded once and shared by every method.
pub struct Resources {
    /// GO BP.
    pub ontology: Ontology,
    /// Gene annotations.
    pub annotations: Annotations,
    /// Name embedder.
    pub embedder: Box<dyn TextEmbedder>,
    /// Embeddings of every GO BP name.
    pub index: TermIndex,
}

fn ext_is(p: &Path, e: &str) -> bool {
    p.extension().is_some_and(|x| x.eq_ignore_ascii_case(e))
}

impl Resources {
    /// Loads everything: OBO / GAF by extension, SQLite otherwise; MiniLM from its asset; the term index from
    /// (or into) the cache under `$TESSERA_HOME/cache/bio`.
    pub fn load(paths: &DataPaths, offline: bool) -> Result<Self> {
        let (ontology, annotations) = Self::read(paths)?;
        let embedder: Box<dyn TextEmbedder> =
            Box::new(tessera_embed::Embedder::from_asset(offline)?);
        let cache = tessera_core::assets::home().join("cache").join("bio");
        let index = TermIndex::build(&ontology, embedder.as_ref(), Some(&cache))?;
        Ok(Resources {
            ontology,
            annotations,
            embedder,
            index,
        })
    }

    /// Reads the ontology and annotations: OBO / GAF by extension, SQLite otherwise.
    pub fn read(paths: &DataPaths) -> Result<(Ontology, Annotations)> {
        let ontology = if ext_is(&paths.ontology, "obo") {
            Ontology::from_obo(&paths.ontology)?
        } else {
            Ontology::from_go_sqlite(&paths.ontology)?
        };
        let annotations = if ext_is(&paths.annotations, "gaf") {
            Annotations::from_gaf(&paths.annotations, &ontology)?
        } else {
            Annotations::from_org_sqlite(&paths.annotations, &ontology)?
        };
        Ok((ontology, annotations))
    }

    /// Loads the ontology and annotations with a given embedder and term-index cache folder.
    pub fn with_embedder(
        paths: &DataPaths,
        embedder: Box<dyn TextEmbedder>,
        cache: Option<&Path>,
    ) -> Result<Self> {
        let (ontology, annotations) = Self::read(paths)?;
        let index = TermIndex::build(&ontology, embedder.as_ref(), cache)?;
        Ok(Resources {
            ontology,
            annotations,
            embedder,
            index,
        })
    }
}
