//! The Gene Ontology's biological-process branch and human gene annotations.
//!
//! - [`Ontology`]: GO BP terms (id, name, definition) and their `is_a` / `part_of` / `regulates` edges, from
//!   Bioconductor's `GO.sqlite` ([`Ontology::from_go_sqlite`], tables `go_term` and `go_bp_parents`) or from an
//!   OBO 1.2 file ([`Ontology::from_obo`], a small reader of `[Term]` stanzas: `id`, `name`, `namespace`, `def`,
//!   `is_a`, `relationship`, `is_obsolete`).
//! - [`Annotations`]: gene symbols, aliases and gene → GO BP annotations, from Bioconductor's `org.Hs.eg.sqlite`
//!   ([`Annotations::from_org_sqlite`]: `gene_info`, `alias`, `go_bp` direct and `go_bp_all` propagated) or from a
//!   GAF 2.x file ([`Annotations::from_gaf`], aspect `P` rows, `NOT` qualifiers skipped, propagated here along
//!   `is_a` and `part_of`, the true-path rule).
//!
//! Annotations with evidence `ND` ("no biological data available", only ever made to the root term) are left out,
//! so a gene counts in the background only when something is known about it.
use crate::error::{BioError, Result};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

/// The biological-process root, `GO:0008150`.
pub const BP_ROOT: &str = "GO:0008150";

/// A relation between two GO terms (child → parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Relation {
    /// The child is a kind of the parent.
    IsA,
    /// The child is a part of the parent.
    PartOf,
    /// The child has the parent as a part.
    HasPart,
    /// The child regulates the parent.
    Regulates,
    /// The child positively regulates the parent.
    PositivelyRegulates,
    /// The child negatively regulates the parent.
    NegativelyRegulates,
}

impl Relation {
    /// Every relation, in display order.
    pub const ALL: [Relation; 6] = [
        Relation::IsA,
        Relation::PartOf,
        Relation::HasPart,
        Relation::Regulates,
        Relation::PositivelyRegulates,
        Relation::NegativelyRegulates,
    ];

    /// The OBO name (`is_a`, `part_of`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::IsA => "is_a",
            Relation::PartOf => "part_of",
            Relation::HasPart => "has_part",
            Relation::Regulates => "regulates",
            Relation::PositivelyRegulates => "positively_regulates",
            Relation::NegativelyRegulates => "negatively_regulates",
        }
    }
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Relation {
    type Err = BioError;
    /// Accepts the OBO names and GO.db's spellings (`isa`, `part of`, `positively regulates`), any case.
    fn from_str(s: &str) -> Result<Self> {
        let k: String = s
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .collect();
        Ok(match k.as_str() {
            "isa" => Relation::IsA,
            "partof" => Relation::PartOf,
            "haspart" => Relation::HasPart,
            "regulates" => Relation::Regulates,
            "positivelyregulates" => Relation::PositivelyRegulates,
            "negativelyregulates" => Relation::NegativelyRegulates,
            _ => {
                return Err(BioError::invalid(format!(
                    "unknown GO relation `{s}` (known: is_a, part_of, has_part, regulates, positively_regulates, negatively_regulates)"
                )))
            }
        })
    }
}

/// One GO term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Term {
    /// `GO:0006915`.
    pub id: String,
    /// `apoptotic process`.
    pub name: String,
    /// The textual definition (may be empty).
    pub definition: String,
}

/// The GO biological-process terms and their relations.
#[derive(Debug, Clone)]
pub struct Ontology {
    terms: Vec<Term>,
    index: HashMap<String, usize>,
    parents: Vec<Vec<(usize, Relation)>>,
}

impl Ontology {
    /// Builds an ontology from terms and `(child id, parent id, relation)` edges; edges naming unknown terms are
    /// dropped (they point outside the branch). Fails on an empty or duplicate id.
    pub fn from_parts(terms: Vec<Term>, edges: &[(String, String, Relation)]) -> Result<Self> {
        let mut index = HashMap::with_capacity(terms.len());
        for (i, t) in terms.iter().enumerate() {
            if t.id.trim().is_empty() {
                return Err(BioError::invalid(format!("term {i} has an empty id")));
            }
            if index.insert(t.id.clone(), i).is_some() {
                return Err(BioError::invalid(format!("duplicate term id {}", t.id)));
            }
        }
        let mut parents = vec![Vec::new(); terms.len()];
        for (c, p, r) in edges {
            if let (Some(&ci), Some(&pi)) = (index.get(c), index.get(p)) {
                if ci != pi && !parents[ci].contains(&(pi, *r)) {
                    parents[ci].push((pi, *r));
                }
            }
        }
        Ok(Ontology {
            terms,
            index,
            parents,
        })
    }

    /// Reads the BP terms and `go_bp_parents` edges of Bioconductor's `GO.sqlite`.
    pub fn from_go_sqlite(path: &Path) -> Result<Self> {
        let e = |err| BioError::sqlite(path, err);
        let db = open_sqlite(path)?;
        let mut st = db
            .prepare(
                "SELECT _id, go_id, term, COALESCE(definition, '') FROM go_term WHERE ontology = 'BP' ORDER BY go_id",
            )
            .map_err(e)?;
        let mut terms = Vec::new();
        let mut by_row: HashMap<i64, String> = HashMap::new();
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(e)?;
        for row in rows {
            let (rid, id, name, definition) = row.map_err(e)?;
            by_row.insert(rid, id.clone());
            terms.push(Term {
                id,
                name,
                definition,
            });
        }
        if terms.is_empty() {
            return Err(BioError::invalid(format!(
                "{}: no biological-process terms in go_term",
                path.display()
            )));
        }
        let mut st = db
            .prepare("SELECT _id, _parent_id, relationship_type FROM go_bp_parents")
            .map_err(e)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(e)?;
        let mut edges = Vec::new();
        for row in rows {
            let (c, p, rel) = row.map_err(e)?;
            if let (Some(c), Some(p)) = (by_row.get(&c), by_row.get(&p)) {
                edges.push((c.clone(), p.clone(), rel.parse()?));
            }
        }
        Self::from_parts(terms, &edges)
    }

    /// Reads an OBO file, keeping non-obsolete `biological_process` terms (all terms when no stanza names a
    /// namespace).
    pub fn from_obo(path: &Path) -> Result<Self> {
        let text = tessera_core::fsx::read_to_string(path)?;
        Self::parse_obo(&text, path)
    }

    /// Parses OBO text (`path` names it in errors).
    pub fn parse_obo(text: &str, path: &Path) -> Result<Self> {
        #[derive(Default)]
        struct Stanza {
            line: usize,
            id: String,
            name: String,
            def: String,
            namespace: Option<String>,
            obsolete: bool,
            parents: Vec<(String, Relation)>,
        }
        let bad = |line: usize, msg: String| BioError::Parse {
            path: path.to_path_buf(),
            line,
            msg,
        };
        let mut stanzas: Vec<Stanza> = Vec::new();
        let mut cur: Option<Stanza> = None;
        let mut in_term = false;
        for (i, raw) in text.lines().enumerate() {
            let ln = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('!') {
                continue;
            }
            if line.starts_with('[') {
                stanzas.extend(cur.take());
                in_term = line == "[Term]";
                if in_term {
                    cur = Some(Stanza {
                        line: ln,
                        ..Default::default()
                    });
                }
                continue;
            }
            let Some(st) = cur.as_mut().filter(|_| in_term) else {
                continue; // header tags and [Typedef] stanzas
            };
            let (tag, value) = line
                .split_once(':')
                .ok_or_else(|| bad(ln, format!("`{line}` is not `tag: value`")))?;
            let value = strip_comment(value.trim());
            match tag.trim() {
                "id" => st.id = value.to_string(),
                "name" => st.name = value.to_string(),
                "namespace" => st.namespace = Some(value.to_string()),
                "def" => st.def = quoted(value).unwrap_or(value).to_string(),
                "is_obsolete" => st.obsolete = value == "true",
                "is_a" => {
                    let p = value.split_whitespace().next().unwrap_or("");
                    if p.is_empty() {
                        return Err(bad(ln, "is_a without a parent id".into()));
                    }
                    st.parents.push((p.to_string(), Relation::IsA));
                }
                "relationship" => {
                    let mut it = value.split_whitespace();
                    match (it.next(), it.next()) {
                        (Some(rel), Some(p)) => {
                            // Relations outside the GO BP vocabulary (occurs_in, ends_during, ...) are skipped.
                            if let Ok(r) = rel.parse::<Relation>() {
                                st.parents.push((p.to_string(), r));
                            }
                        }
                        _ => {
                            return Err(bad(
                                ln,
                                format!("`relationship: {value}` needs a relation and an id"),
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        stanzas.extend(cur.take());
        let any_ns = stanzas.iter().any(|s| s.namespace.is_some());
        let mut terms = Vec::new();
        let mut edges = Vec::new();
        for s in stanzas {
            if s.id.is_empty() {
                return Err(bad(s.line, "[Term] stanza without an id".into()));
            }
            let keep =
                !s.obsolete && (!any_ns || s.namespace.as_deref() == Some("biological_process"));
            if !keep {
                continue;
            }
            for (p, r) in &s.parents {
                edges.push((s.id.clone(), p.clone(), *r));
            }
            terms.push(Term {
                id: s.id,
                name: s.name,
                definition: s.def,
            });
        }
        if terms.is_empty() {
            return Err(bad(1, "no biological-process terms".into()));
        }
        Self::from_parts(terms, &edges)
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True when there is no term.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Every term, by index.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Term `i`.
    pub fn term(&self, i: usize) -> &Term {
        &self.terms[i]
    }

    /// The index of a GO id.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Direct parents of term `i` with their relations.
    pub fn parents(&self, i: usize) -> &[(usize, Relation)] {
        &self.parents[i]
    }

    /// Number of edges.
    pub fn edge_count(&self) -> usize {
        self.parents.iter().map(Vec::len).sum()
    }

    /// Every ancestor of `i` (not `i` itself) reachable through the relations in `via`.
    pub fn ancestors(&self, i: usize, via: &[Relation]) -> Vec<usize> {
        let mut seen = HashSet::new();
        let mut stack = vec![i];
        while let Some(t) = stack.pop() {
            for &(p, r) in &self.parents[t] {
                if via.contains(&r) && seen.insert(p) {
                    stack.push(p);
                }
            }
        }
        let mut v: Vec<usize> = seen.into_iter().collect();
        v.sort_unstable();
        v
    }
}

fn open_sqlite(path: &Path) -> Result<rusqlite::Connection> {
    if !path.is_file() {
        return Err(tessera_core::Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        )
        .into());
    }
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| BioError::sqlite(path, e))
}

/// Drops a trailing ` ! comment` (OBO's inline comment), leaving quoted text alone.
fn strip_comment(v: &str) -> &str {
    if v.starts_with('"') {
        return v;
    }
    match v.find(" !") {
        Some(i) => v[..i].trim_end(),
        None => v,
    }
}

/// The text between the first pair of double quotes, honouring `\"` escapes.
fn quoted(v: &str) -> Option<&str> {
    let rest = v.strip_prefix('"')?;
    let mut prev = '\0';
    for (i, c) in rest.char_indices() {
        if c == '"' && prev != '\\' {
            return Some(&rest[..i]);
        }
        prev = c;
    }
    None
}

/// Gene symbols resolved against [`Annotations`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// Gene indices, in input order, without repeats.
    pub genes: Vec<usize>,
    /// The official symbols of `genes`.
    pub symbols: Vec<String>,
    /// Inputs matched through an alias: `(input, official symbol)`.
    pub via_alias: Vec<(String, String)>,
    /// Inputs that match no symbol and no unique alias (reported and skipped).
    pub unknown: Vec<String>,
}

/// Gene symbols, aliases and propagated GO BP annotations.
#[derive(Debug, Clone)]
pub struct Annotations {
    symbols: Vec<String>,
    by_symbol: HashMap<String, usize>,
    by_alias: HashMap<String, Vec<usize>>,
    /// Per ontology term, the sorted indices of the genes annotated to it or to a descendant.
    term_genes: Vec<Vec<u32>>,
    annotated: Vec<bool>,
    background: usize,
    direct: usize,
}

impl Annotations {
    /// Builds annotations from symbols, `(gene, alias)` pairs, direct `(gene, term)` pairs (propagated here
    /// along `is_a` and `part_of`) and already propagated pairs (taken as they are).
    pub fn from_pairs(
        ont: &Ontology,
        symbols: Vec<String>,
        aliases: &[(usize, String)],
        direct: &[(usize, usize)],
        propagated: &[(usize, usize)],
    ) -> Self {
        let mut by_symbol = HashMap::with_capacity(symbols.len());
        for (i, s) in symbols.iter().enumerate() {
            by_symbol.entry(s.to_ascii_uppercase()).or_insert(i);
        }
        let mut by_alias: HashMap<String, Vec<usize>> = HashMap::new();
        for (g, a) in aliases {
            let v = by_alias.entry(a.to_ascii_uppercase()).or_default();
            if !v.contains(g) {
                v.push(*g);
            }
        }
        let mut term_genes: Vec<Vec<u32>> = vec![Vec::new(); ont.len()];
        let via = [Relation::IsA, Relation::PartOf];
        let mut anc_cache: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(g, t) in direct {
            term_genes[t].push(g as u32);
            let anc = anc_cache.entry(t).or_insert_with(|| ont.ancestors(t, &via));
            for &a in anc.iter() {
                term_genes[a].push(g as u32);
            }
        }
        for &(g, t) in propagated {
            term_genes[t].push(g as u32);
        }
        let mut annotated = vec![false; symbols.len()];
        for v in &mut term_genes {
            v.sort_unstable();
            v.dedup();
            for &g in v.iter() {
                annotated[g as usize] = true;
            }
        }
        Annotations {
            background: annotated.iter().filter(|&&a| a).count(),
            symbols,
            by_symbol,
            by_alias,
            term_genes,
            annotated,
            direct: direct.len(),
        }
    }

    /// Reads `gene_info`, `alias`, `go_bp` (counted) and `go_bp_all` (used) of Bioconductor's `org.*.eg.sqlite`;
    /// GO ids absent from `ont` are skipped.
    pub fn from_org_sqlite(path: &Path, ont: &Ontology) -> Result<Self> {
        let e = |err| BioError::sqlite(path, err);
        let db = open_sqlite(path)?;
        let mut row_to_gene: HashMap<i64, usize> = HashMap::new();
        let mut symbols = Vec::new();
        {
            let mut st = db
                .prepare("SELECT _id, symbol FROM gene_info ORDER BY _id")
                .map_err(e)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(e)?;
            for row in rows {
                let (id, sym) = row.map_err(e)?;
                row_to_gene.insert(id, symbols.len());
                symbols.push(sym);
            }
        }
        if symbols.is_empty() {
            return Err(BioError::invalid(format!(
                "{}: no genes in gene_info",
                path.display()
            )));
        }
        let mut aliases = Vec::new();
        {
            let mut st = db
                .prepare("SELECT _id, alias_symbol FROM alias")
                .map_err(e)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(e)?;
            for row in rows {
                let (id, a) = row.map_err(e)?;
                if let Some(&g) = row_to_gene.get(&id) {
                    aliases.push((g, a));
                }
            }
        }
        let read_pairs = |table: &str| -> Result<Vec<(usize, usize)>> {
            let mut st = db
                .prepare(&format!(
                    "SELECT DISTINCT _id, go_id FROM {table} WHERE evidence != 'ND'"
                ))
                .map_err(e)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(e)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, go) = row.map_err(e)?;
                if let (Some(&g), Some(t)) = (row_to_gene.get(&id), ont.find(&go)) {
                    out.push((g, t));
                }
            }
            Ok(out)
        };
        let direct = read_pairs("go_bp")?;
        let all = read_pairs("go_bp_all")?;
        let mut a = Self::from_pairs(ont, symbols, &aliases, &[], &all);
        a.direct = direct.len();
        Ok(a)
    }

    /// Reads a GAF 2.x file: biological-process rows (aspect `P`) without a `NOT` qualifier; column 3 is the
    /// symbol, column 11 the `|`-separated synonyms. Terms absent from `ont` are skipped.
    pub fn from_gaf(path: &Path, ont: &Ontology) -> Result<Self> {
        let text = tessera_core::fsx::read_to_string(path)?;
        Self::parse_gaf(&text, path, ont)
    }

    /// Parses GAF text (`path` names it in errors).
    pub fn parse_gaf(text: &str, path: &Path, ont: &Ontology) -> Result<Self> {
        let mut symbols: Vec<String> = Vec::new();
        let mut gene_of: HashMap<String, usize> = HashMap::new();
        let mut aliases = Vec::new();
        let mut direct = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('!') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 15 {
                return Err(BioError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    msg: format!("{} tab-separated columns, GAF has 15 or more", cols.len()),
                });
            }
            let (sym, qual, go, aspect) = (cols[2].trim(), cols[3], cols[4].trim(), cols[8].trim());
            if aspect != "P" || qual.split('|').any(|q| q.eq_ignore_ascii_case("NOT")) {
                continue;
            }
            if sym.is_empty() {
                return Err(BioError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    msg: "empty symbol (column 3)".into(),
                });
            }
            let g = *gene_of.entry(sym.to_string()).or_insert_with(|| {
                symbols.push(sym.to_string());
                for syn in cols[10].split('|').map(str::trim).filter(|s| !s.is_empty()) {
                    aliases.push((symbols.len() - 1, syn.to_string()));
                }
                symbols.len() - 1
            });
            if let Some(t) = ont.find(go) {
                direct.push((g, t));
            }
        }
        if symbols.is_empty() {
            return Err(BioError::Parse {
                path: path.to_path_buf(),
                line: 1,
                msg: "no biological-process annotations".into(),
            });
        }
        Ok(Self::from_pairs(ont, symbols, &aliases, &direct, &[]))
    }

    /// Number of genes with a symbol.
    pub fn gene_count(&self) -> usize {
        self.symbols.len()
    }

    /// Number of genes with at least one BP annotation (the enrichment background).
    pub fn background(&self) -> usize {
        self.background
    }

    /// Number of direct annotations read (before propagation).
    pub fn direct_count(&self) -> usize {
        self.direct
    }

    /// True when gene `g` has at least one BP annotation (is in the background).
    pub fn is_annotated(&self, g: usize) -> bool {
        self.annotated.get(g).copied().unwrap_or(false)
    }

    /// Gene `g`'s official symbol.
    pub fn symbol(&self, g: usize) -> &str {
        &self.symbols[g]
    }

    /// The sorted genes annotated to term `t` or a descendant.
    pub fn term_genes(&self, t: usize) -> &[u32] {
        &self.term_genes[t]
    }

    /// Resolves symbols: an official symbol first (any case), else an alias naming exactly one gene.
    pub fn resolve<S: AsRef<str>>(&self, inputs: &[S]) -> Resolved {
        let mut r = Resolved::default();
        for s in inputs {
            let s = s.as_ref().trim();
            if s.is_empty() {
                continue;
            }
            let k = s.to_ascii_uppercase();
            let g = match self.by_symbol.get(&k) {
                Some(&g) => Some(g),
                None => match self.by_alias.get(&k).map(Vec::as_slice) {
                    Some([g]) => {
                        r.via_alias.push((s.to_string(), self.symbols[*g].clone()));
                        Some(*g)
                    }
                    _ => None,
                },
            };
            match g {
                Some(g) if !r.genes.contains(&g) => {
                    r.genes.push(g);
                    r.symbols.push(self.symbols[g].clone());
                }
                Some(_) => {}
                None => r.unknown.push(s.to_string()),
            }
        }
        r
    }
}
