//! tessera-bio on fixtures written here: OBO, GAF and SQLite readers, hypergeometric p-values against exact
//! values, BH, and the Thought Graph's grouping, voting, selection and stop rule with a scripted backend.
use std::path::Path;
use std::sync::Mutex;
use tessera_bio::data::{DataPaths, Resources};
use tessera_bio::enrichment::{self, benjamini_hochberg, EnrichOptions, LogFactorials};
use tessera_bio::eval::{self, BioEvalConfig, Method};
use tessera_bio::ontology::{Annotations, Ontology, Relation};
use tessera_bio::semantic::{TermIndex, TextEmbedder};
use tessera_bio::thought_graph::{self, ThoughtGraphConfig};
use tessera_llm::{BoxFuture, ChatModel, ChatRequest, ChatResponse, Choice, Usage};

/// Bag-of-words vectors (lower-cased words hashed into 64 buckets, L2-normalised): equal word multisets give
/// cosine 1, disjoint ones 0 (barring collisions).
struct Bow;

impl TextEmbedder for Bow {
    fn embed(&self, texts: &[&str]) -> tessera_bio::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 64];
                for w in t
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    let h = w.bytes().fold(1469598103934665603u64, |h, b| {
                        (h ^ b as u64).wrapping_mul(1099511628211)
                    });
                    v[(h % 64) as usize] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
    fn id(&self) -> String {
        "bow".into()
    }
}

const OBO: &str = r#"format-version: 1.2
ontology: go

[Term]
id: GO:0008150
name: biological_process
namespace: biological_process
def: "A biological process." [GOC:pdt]

[Term]
id: GO:0006281
name: DNA repair
namespace: biological_process
def: "The process of restoring DNA after damage." [PMID:1]
is_a: GO:0008150 ! biological_process

[Term]
id: GO:0006289
name: nucleotide-excision repair
namespace: biological_process
is_a: GO:0006281 ! DNA repair

[Term]
id: GO:0007049
name: cell cycle
namespace: biological_process
is_a: GO:0008150

[Term]
id: GO:0000278
name: mitotic cell cycle
namespace: biological_process
is_a: GO:0007049

[Term]
id: GO:0051726
name: regulation of cell cycle
namespace: biological_process
relationship: regulates GO:0007049 ! cell cycle
is_a: GO:0008150

[Term]
id: GO:0006915
name: apoptotic process
namespace: biological_process
is_a: GO:0008150

[Term]
id: GO:0097193
name: intrinsic apoptotic signaling pathway
namespace: biological_process
relationship: part_of GO:0006915 ! apoptotic process
is_a: GO:0008150

[Term]
id: GO:0003674
name: molecular_function
namespace: molecular_function

[Term]
id: GO:0000001
name: old thing
namespace: biological_process
is_obsolete: true

[Typedef]
id: part_of
name: part of
"#;

fn gaf_line(sym: &str, qual: &str, go: &str, aspect: &str, syn: &str) -> String {
    format!("UniProtKB\tP{sym}\t{sym}\t{qual}\t{go}\tPMID:1\tIDA\t\t{aspect}\t{sym} protein\t{syn}\tprotein\ttaxon:9606\t20200101\tUniProt\n")
}

fn gaf() -> String {
    let mut s = String::from("!gaf-version: 2.2\n");
    s += &gaf_line("XPA", "", "GO:0006289", "P", "XP1|XPAC");
    s += &gaf_line("ERCC4", "", "GO:0006289", "P", "XPF");
    s += &gaf_line("OGG1", "", "GO:0006281", "P", "");
    s += &gaf_line("CDK1", "", "GO:0000278", "P", "CDC2");
    s += &gaf_line("CCNB1", "", "GO:0000278", "P", "");
    s += &gaf_line("CDKN1A", "", "GO:0051726", "P", "P21|CIP1");
    s += &gaf_line("BAX", "", "GO:0097193", "P", "");
    s += &gaf_line("BAX", "NOT", "GO:0007049", "P", "");
    s += &gaf_line("CASP3", "", "GO:0006915", "P", "CPP32");
    s += &gaf_line("TP53", "", "GO:0097193", "P", "P53");
    s += &gaf_line("TP53", "", "GO:0006281", "P", "P53");
    s += &gaf_line("ALB", "", "GO:0003674", "F", "");
    s
}

#[test]
fn obo_reader_keeps_bp_terms_and_relations() {
    let o = Ontology::parse_obo(OBO, Path::new("t.obo")).unwrap();
    assert_eq!(o.len(), 8, "MF term and obsolete term dropped");
    let ner = o.find("GO:0006289").unwrap();
    let dna = o.find("GO:0006281").unwrap();
    assert_eq!(o.parents(ner), &[(dna, Relation::IsA)]);
    let intr = o.find("GO:0097193").unwrap();
    assert!(o
        .parents(intr)
        .contains(&(o.find("GO:0006915").unwrap(), Relation::PartOf)));
    let reg = o.find("GO:0051726").unwrap();
    assert!(o
        .parents(reg)
        .contains(&(o.find("GO:0007049").unwrap(), Relation::Regulates)));
    assert_eq!(
        o.term(dna).definition,
        "The process of restoring DNA after damage."
    );
    let root = o.find("GO:0008150").unwrap();
    assert_eq!(o.ancestors(ner, &[Relation::IsA]), {
        let mut v = vec![dna, root];
        v.sort();
        v
    });
    // Errors name the file and line.
    let e =
        Ontology::parse_obo("[Term]\nid: GO:1\nbroken line\n", Path::new("bad.obo")).unwrap_err();
    assert!(e.to_string().contains("bad.obo: line 3"), "{e}");
    assert!(Ontology::parse_obo("[Term]\nname: x\n", Path::new("x.obo")).is_err());
    assert!("occurs_in".parse::<Relation>().is_err());
    assert_eq!(
        "positively regulates".parse::<Relation>().unwrap(),
        Relation::PositivelyRegulates
    );
}

#[test]
fn gaf_reader_propagates_along_is_a_and_part_of_and_skips_not() {
    let o = Ontology::parse_obo(OBO, Path::new("t.obo")).unwrap();
    let a = Annotations::parse_gaf(&gaf(), Path::new("t.gaf"), &o).unwrap();
    let sym = |t: &str| -> Vec<String> {
        a.term_genes(o.find(t).unwrap())
            .iter()
            .map(|&g| a.symbol(g as usize).to_string())
            .collect()
    };
    let mut dna = sym("GO:0006281");
    dna.sort();
    assert_eq!(dna, ["ERCC4", "OGG1", "TP53", "XPA"]);
    let mut apo = sym("GO:0006915");
    apo.sort();
    assert_eq!(apo, ["BAX", "CASP3", "TP53"], "part_of propagates");
    // `regulates` does not propagate; the NOT row is skipped.
    let mut cc = sym("GO:0007049");
    cc.sort();
    assert_eq!(cc, ["CCNB1", "CDK1"]);
    assert_eq!(
        sym("GO:0008150").len(),
        9,
        "every BP-annotated gene reaches the root (ALB is MF only)"
    );
    assert_eq!(a.background(), 9);
    let r = a.resolve(&["xpa", "CPP32", "NOTAGENE", "XPA", "P53"]);
    assert_eq!(r.symbols, ["XPA", "CASP3", "TP53"]);
    assert_eq!(r.unknown, ["NOTAGENE"]);
    assert_eq!(r.via_alias.len(), 2);
    let e = Annotations::parse_gaf("a\tb\n", Path::new("x.gaf"), &o).unwrap_err();
    assert!(e.to_string().contains("x.gaf: line 1"), "{e}");
}

/// Writes GO.sqlite and org.Hs.eg.sqlite look-alikes with the Bioconductor schema (the columns read).
fn write_sqlite(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let go = dir.join("GO.sqlite");
    let c = rusqlite::Connection::open(&go).unwrap();
    c.execute_batch(
        "CREATE TABLE go_term (_id INTEGER PRIMARY KEY, go_id TEXT NOT NULL UNIQUE, term TEXT NOT NULL,
           ontology TEXT NOT NULL, definition TEXT NULL);
         CREATE TABLE go_bp_parents (_id INTEGER NOT NULL, _parent_id INTEGER NOT NULL, relationship_type TEXT NOT NULL);
         INSERT INTO go_term VALUES (1, 'GO:0008150', 'biological_process', 'BP', 'root');
         INSERT INTO go_term VALUES (2, 'GO:0006281', 'DNA repair', 'BP', NULL);
         INSERT INTO go_term VALUES (3, 'GO:0006289', 'nucleotide-excision repair', 'BP', 'NER');
         INSERT INTO go_term VALUES (4, 'GO:0006915', 'apoptotic process', 'BP', '');
         INSERT INTO go_term VALUES (5, 'GO:0003674', 'molecular_function', 'MF', '');
         INSERT INTO go_term VALUES (6, 'GO:0042981', 'regulation of apoptotic process', 'BP', '');
         INSERT INTO go_bp_parents VALUES (2, 1, 'isa');
         INSERT INTO go_bp_parents VALUES (3, 2, 'isa');
         INSERT INTO go_bp_parents VALUES (4, 1, 'isa');
         INSERT INTO go_bp_parents VALUES (6, 4, 'regulates');
         INSERT INTO go_bp_parents VALUES (6, 1, 'isa');",
    )
    .unwrap();
    let org = dir.join("org.Hs.eg.sqlite");
    let c = rusqlite::Connection::open(&org).unwrap();
    c.execute_batch(
        "CREATE TABLE gene_info (_id INTEGER NOT NULL UNIQUE, gene_name TEXT NOT NULL, symbol TEXT NOT NULL);
         CREATE TABLE alias (_id INTEGER NOT NULL, alias_symbol TEXT NOT NULL);
         CREATE TABLE go_bp (_id INTEGER NOT NULL, go_id TEXT NOT NULL, evidence TEXT NOT NULL);
         CREATE TABLE go_bp_all (_id INTEGER NOT NULL, go_id TEXT NOT NULL, evidence TEXT NOT NULL);
         INSERT INTO gene_info VALUES (1, 'XPA', 'XPA'), (2, 'ERCC4', 'ERCC4'), (3, 'CASP3', 'CASP3'), (4, 'A1BG', 'A1BG');
         INSERT INTO alias VALUES (1, 'XP1'), (3, 'CPP32'), (3, 'SHARED'), (2, 'SHARED');
         INSERT INTO go_bp VALUES (1, 'GO:0006289', 'IDA'), (2, 'GO:0006289', 'IMP'), (3, 'GO:0006915', 'TAS'),
                                  (4, 'GO:0008150', 'ND');
         INSERT INTO go_bp_all VALUES (1, 'GO:0006289', 'IDA'), (1, 'GO:0006281', 'IDA'), (1, 'GO:0008150', 'IDA'),
                                      (1, 'GO:0006281', 'IEA'),
                                      (2, 'GO:0006289', 'IMP'), (2, 'GO:0006281', 'IMP'), (2, 'GO:0008150', 'IMP'),
                                      (3, 'GO:0006915', 'TAS'), (3, 'GO:0008150', 'TAS'),
                                      (4, 'GO:0008150', 'ND');",
    )
    .unwrap();
    (go, org)
}

#[test]
fn sqlite_readers_follow_the_bioconductor_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (go, org) = write_sqlite(dir.path());
    let o = Ontology::from_go_sqlite(&go).unwrap();
    assert_eq!(o.len(), 5, "the MF term is left out");
    assert_eq!(o.edge_count(), 5);
    let reg = o.find("GO:0042981").unwrap();
    assert!(o
        .parents(reg)
        .contains(&(o.find("GO:0006915").unwrap(), Relation::Regulates)));
    let a = Annotations::from_org_sqlite(&org, &o).unwrap();
    assert_eq!(a.gene_count(), 4);
    assert_eq!(a.direct_count(), 3, "ND rows are left out");
    assert_eq!(a.background(), 3, "A1BG has only an ND annotation");
    assert_eq!(
        a.term_genes(o.find("GO:0006281").unwrap()).len(),
        2,
        "duplicate rows counted once"
    );
    let r = a.resolve(&["XP1", "SHARED", "casp3"]);
    assert_eq!(r.symbols, ["XPA", "CASP3"]);
    assert_eq!(r.unknown, ["SHARED"], "an alias of two genes is ambiguous");
    let missing = Ontology::from_go_sqlite(&dir.path().join("nope.sqlite")).unwrap_err();
    assert!(missing.to_string().contains("nope.sqlite"), "{missing}");
    std::fs::write(
        dir.path().join("junk.sqlite"),
        b"not a database at all, just text",
    )
    .unwrap();
    assert!(Ontology::from_go_sqlite(&dir.path().join("junk.sqlite")).is_err());
}

#[test]
fn hypergeometric_tails_match_exact_values() {
    // Exact values: sum of C(K,i) C(N-K,n-i) / C(N,n) in rational arithmetic (Python fractions + math.comb),
    // printed as float. The first is also by hand: 1 - C(7,2)/C(10,2) = 24/45.
    let lf = LogFactorials::new(20_000);
    let cases = [
        ((1, 10, 3, 2), 24.0 / 45.0),
        ((2, 20, 5, 5), 0.36609907120743035),
        ((3, 18903, 50, 10), 2.0624880778978405e-06),
        ((5, 18903, 100, 20), 5.4524454684425906e-08),
        ((10, 18903, 200, 15), 4.02103836066043e-17),
        ((0, 20, 5, 5), 1.0),
    ];
    for ((k, n_pop, big_k, n), want) in cases {
        let got = lf.hypergeom_sf(k, n_pop, big_k, n).unwrap();
        assert!(
            ((got - want) / want).abs() < 1e-9,
            "P(X>={k}; N={n_pop},K={big_k},n={n}) = {got}, want {want}"
        );
    }
    // Impossible tails are 0, and an extreme one stays finite in log space.
    assert_eq!(lf.hypergeom_sf(4, 10, 3, 5).unwrap(), 0.0);
    let ln = lf.ln_hypergeom_sf(300, 18903, 300, 300).unwrap();
    assert!(ln.is_finite() && ln < -1000.0, "{ln}");
    assert!(lf.hypergeom_sf(1, 10, 11, 2).is_err());
}

#[test]
fn benjamini_hochberg_matches_hand_values() {
    // Sorted p = .005 .01 .03 .04, m = 4: p·m/rank = .02 .02 .04 .04 (already monotone).
    let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
    let want = [0.02, 0.04, 0.04, 0.02];
    for (a, b) in q.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{q:?}");
    }
    // Step-up monotonicity: a later smaller ratio pulls earlier ones down; capped at 1.
    let q = benjamini_hochberg(&[0.02, 0.021, 0.9, 1.0]);
    assert!(
        (q[0] - 0.042).abs() < 1e-12 && (q[1] - 0.042).abs() < 1e-12,
        "{q:?}"
    );
    assert!((q[2] - 1.0).abs() < 1e-12 && q[3] == 1.0, "{q:?}");
}

#[test]
fn enrichment_ranks_the_right_term_and_exclusion_removes_same_gene_terms() {
    let o = Ontology::parse_obo(OBO, Path::new("t.obo")).unwrap();
    let a = Annotations::parse_gaf(&gaf(), Path::new("t.gaf"), &o).unwrap();
    let q = a.resolve(&["XPA", "ERCC4"]).genes;
    let opts = EnrichOptions {
        alpha: 1.0,
        ..EnrichOptions::default()
    };
    let e = enrichment::enrich(&o, &a, &q, &opts).unwrap();
    assert_eq!(e.query_size, 2);
    assert_eq!(e.background, 9);
    assert_eq!(e.terms[0].id, "GO:0006289");
    let lf = LogFactorials::new(9);
    // NER annotates exactly XPA and ERCC4: P(X >= 2) = 1 / C(9,2) = 1/36.
    assert!((e.terms[0].p_value - 1.0 / 36.0).abs() < 1e-12);
    assert!((e.terms[0].p_value - lf.hypergeom_sf(2, 9, 2, 2).unwrap()).abs() < 1e-15);
    let ner = o.find("GO:0006289").unwrap();
    let same = enrichment::same_gene_terms(&a, &o, ner);
    assert_eq!(same, vec![ner]);
    let ex = EnrichOptions {
        exclude: same,
        ..opts
    };
    let e2 = enrichment::enrich(&o, &a, &q, &ex).unwrap();
    assert!(e2.terms.iter().all(|t| t.id != "GO:0006289"));
    assert_eq!(e2.terms[0].id, "GO:0006281");
    assert!(enrichment::enrich(
        &o,
        &a,
        &q,
        &EnrichOptions {
            alpha: 0.0,
            ..EnrichOptions::default()
        }
    )
    .is_err());
}

/// A backend answering from a script keyed on the prompt, recording every request.
struct Scripted {
    log: Mutex<Vec<ChatRequest>>,
    stop_cell_cycle: bool,
}

impl Scripted {
    fn answer(&self, req: &ChatRequest) -> Vec<String> {
        let u = &req.messages.last().unwrap().content;
        let n = req.params.n;
        let j = |s: &str| {
            format!("{{\"process\": \"{s}\", \"relation\": \"is_a\", \"reason\": \"r\"}}")
        };
        if u.contains("as general as possible") {
            let base = [
                j("DNA repair"),
                j("DNA repair"),
                j("cell cycle"),
                j("dna  repair"),
                j("apoptosis"),
                "garbage {".into(),
            ];
            return (0..n).map(|i| base[i % base.len()].clone()).collect();
        }
        if u.contains("Vote for") {
            // Candidates 1 = DNA repair (group 3), 2 = cell cycle, 3 = apoptosis: votes go to 3 and 2.
            return vec!["{\"best\": [3, 2]}".into(); n];
        }
        if u.contains("how specific") {
            let r = if self.stop_cell_cycle && u.contains("\"cell cycle\"") {
                9
            } else {
                3
            };
            return vec![format!("{{\"specificity\": {r}}}"); n];
        }
        if u.contains("Which candidate") {
            return (0..n)
                .map(|i| {
                    if i == 0 {
                        j("cell cycle")
                    } else {
                        j("intrinsic apoptotic signaling pathway")
                    }
                })
                .collect();
        }
        if u.contains("more specific than \"cell cycle\"") {
            return vec![j("mitotic cell cycle"); n];
        }
        if u.contains("more specific than \"apoptosis\"") {
            return vec![j("intrinsic apoptotic signaling pathway"); n];
        }
        vec!["no idea".into(); n]
    }
}

impl ChatModel for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, tessera_llm::Result<ChatResponse>> {
        self.log.lock().unwrap().push(req.clone());
        let texts = self.answer(req);
        Box::pin(std::future::ready(Ok(ChatResponse {
            model: "scripted".into(),
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5 * texts.len(),
            },
            choices: texts
                .into_iter()
                .map(|text| Choice {
                    text,
                    finish_reason: "stop".into(),
                    logprobs: None,
                })
                .collect(),
        })))
    }
}

fn graph_setup(stop: bool) -> (Ontology, TermIndex, Scripted) {
    let o = Ontology::parse_obo(OBO, Path::new("t.obo")).unwrap();
    let idx = TermIndex::build(&o, &Bow, None).unwrap();
    (
        o,
        idx,
        Scripted {
            log: Mutex::new(vec![]),
            stop_cell_cycle: stop,
        },
    )
}

#[test]
fn thought_graph_groups_votes_and_selects() {
    let (o, idx, model) = graph_setup(false);
    let cfg = ThoughtGraphConfig {
        layers: 2,
        samples: 6,
        voters: 5,
        final_samples: 5,
        ..Default::default()
    };
    let genes: Vec<String> = ["TP53", "CDK1", "BAX"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let g = thought_graph::run(&cfg, &genes, &model, &Bow, &o, &idx).unwrap();
    let l1: Vec<_> = g.nodes.iter().filter(|n| n.layer == 1).collect();
    assert_eq!(l1.len(), 3, "top-3 groups");
    assert_eq!(l1[0].name, "DNA repair");
    assert_eq!(
        l1[0].group_size, 3,
        "`DNA repair` x2 and `dna  repair` grouped"
    );
    assert_eq!(g.unparsed, 1);
    assert_eq!((l1[0].votes, l1[1].votes, l1[2].votes), (0, 5, 5));
    assert_eq!(l1[1].value, 5);
    assert!(
        !l1[0].selected && l1[1].selected && l1[2].selected,
        "value = votes x group size picks 2 and 3"
    );
    assert_eq!(
        l1[0].go_id, "GO:0006281",
        "nodes link to their nearest GO term"
    );
    let l2: Vec<_> = g.nodes.iter().filter(|n| n.layer == 2).collect();
    assert_eq!(l2.len(), 2);
    assert_eq!(l2[0].parent, Some(l1[1].id));
    assert_eq!(l2[0].name, "mitotic cell cycle");
    assert_eq!(l2[1].relation.as_deref(), Some("is_a"));
    assert_eq!(
        g.final_name, "intrinsic apoptotic signaling pathway",
        "majority of the final samples"
    );
    assert_eq!(g.final_node, Some(l2[1].id));
    let log = model.log.lock().unwrap();
    // Layer 1: one request with n = samples, one vote request; layer 2: two requests (no vote: 2 <= select);
    // the final pick.
    assert_eq!(log.len(), 5);
    assert_eq!(log[0].params.n, 6);
    assert_eq!(log[1].params.n, 5);
    assert_eq!(g.cost.calls, 5);
    assert_eq!(g.cost.completions, 6 + 5 + 6 + 6 + 5);
    let svg = thought_graph::render_svg(&g, "test <genes>");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<rect x=").count(), g.nodes.len());
    assert_eq!(svg.matches("<line ").count(), 2);
    assert!(svg.contains("test &lt;genes&gt;"));
}

#[test]
fn specificity_stop_keeps_a_specific_node_from_expanding() {
    let (o, idx, model) = graph_setup(true);
    let cfg = ThoughtGraphConfig {
        layers: 3,
        samples: 6,
        stop_specificity: Some(8),
        ..Default::default()
    };
    let genes = vec!["TP53".to_string()];
    let g = thought_graph::run(&cfg, &genes, &model, &Bow, &o, &idx).unwrap();
    let cc = g.nodes.iter().find(|n| n.name == "cell cycle").unwrap();
    assert_eq!(cc.specificity, Some(9));
    assert!(
        g.nodes.iter().all(|n| n.parent != Some(cc.id)),
        "a node rated >= 8 is not expanded"
    );
    assert!(g
        .nodes
        .iter()
        .any(|n| n.name == "intrinsic apoptotic signaling pathway"));
    assert!(ThoughtGraphConfig {
        samples: 0,
        ..Default::default()
    }
    .validate()
    .is_err());
    assert!(ThoughtGraphConfig {
        stop_specificity: Some(11),
        ..Default::default()
    }
    .validate()
    .is_err());
}

#[test]
fn evaluation_reports_unknown_genes_resumes_and_refuses_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let obo = dir.path().join("go.obo");
    std::fs::write(&obo, OBO).unwrap();
    let gaf_p = dir.path().join("h.gaf");
    std::fs::write(&gaf_p, gaf()).unwrap();
    let csv = dir.path().join("sets.csv");
    std::fs::write(
        &csv,
        "GO,Genes,Gene_Count,Term_Description\nGO:0006289,XPA ERCC4 NOTAGENE,3,nucleotide-excision repair\n\
         GO:0006915,\"CASP3 BAX TP53\",3,\"apoptotic process\"\nGO:0000278,CDK1 CCNB1,2,mitotic cell cycle\n",
    )
    .unwrap();
    let paths = DataPaths {
        ontology: obo,
        annotations: gaf_p,
    };
    let res = Resources::with_embedder(&paths, Box::new(Bow), None).unwrap();
    let model = Scripted {
        log: Mutex::new(vec![]),
        stop_cell_cycle: false,
    };
    let out = dir.path().join("run");
    let cfg = BioEvalConfig {
        gene_sets: Some(csv.clone()),
        data: Some(paths.clone()),
        limit: 2,
        methods: vec![Method::Gsea, Method::ThoughtGraph],
        thought_graph: ThoughtGraphConfig {
            layers: 2,
            samples: 3,
            voters: 2,
            final_samples: 2,
            ..Default::default()
        },
        enrich: EnrichOptions {
            alpha: 1.0,
            ..EnrichOptions::default()
        },
        out: Some(out.clone()),
        ..BioEvalConfig::default()
    };
    let r = eval::run_with(&cfg, &res, Some(&model)).unwrap();
    assert_eq!(r.gene_sets, 2);
    assert_eq!(r.records[0].unknown, ["NOTAGENE"]);
    assert_eq!(r.unknown_genes, 1);
    assert_eq!(
        r.records[0].outcomes["gsea"].prediction,
        "nucleotide-excision repair"
    );
    assert!(
        (r.records[0].outcomes["gsea"].score.cosine - 1.0).abs() < 1e-5,
        "the gold term leaks in"
    );
    assert_ne!(
        r.records[0].outcomes["gsea_excluding_gold"].prediction,
        "nucleotide-excision repair"
    );
    assert!(
        r.thought_graph_cosine.is_some()
            && r.thought_graph_best_cosine.unwrap() >= r.thought_graph_cosine.unwrap()
    );
    assert!(r.zero_shot_cosine.is_none());
    let v = serde_json::to_value(&r).unwrap();
    for k in [
        "gsea_cosine",
        "gsea_cosine_excluding_gold",
        "thought_graph_cosine",
        "thought_graph_best_cosine",
        "zero_shot_cosine",
        "cost_per_set",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }
    let calls = model.log.lock().unwrap().len();
    // Resume: a larger limit runs only the new set; the journal answers the first two.
    let r2 = eval::run_with(
        &BioEvalConfig {
            limit: 3,
            ..cfg.clone()
        },
        &res,
        Some(&model),
    )
    .unwrap();
    assert_eq!((r2.gene_sets, r2.resumed), (3, 2));
    assert!(model.log.lock().unwrap().len() > calls);
    // Read back from the journal: the same answers (floats may differ in the last bit through JSON).
    for (a, b) in r2.records[..2].iter().zip(&r.records) {
        assert_eq!((a.index, &a.unknown), (b.index, &b.unknown));
        for (k, o) in &b.outcomes {
            assert_eq!(a.outcomes[k].prediction, o.prediction, "{k}");
            assert!(
                (a.outcomes[k].score.cosine - o.score.cosine).abs() < 1e-12,
                "{k}"
            );
        }
    }
    // Other settings in the same folder are refused.
    let other = BioEvalConfig {
        thought_graph: ThoughtGraphConfig {
            samples: 4,
            ..cfg.thought_graph.clone()
        },
        ..cfg.clone()
    };
    let e = eval::run_with(&other, &res, Some(&model)).unwrap_err();
    assert!(e.to_string().contains("different settings"), "{e}");
    // An LLM method without a backend is a clear error.
    let no_model = BioEvalConfig { out: None, ..cfg };
    assert!(eval::run_with(&no_model, &res, None)
        .unwrap_err()
        .to_string()
        .contains("chat backend"));
}

#[test]
fn local_backend_decodes_n_samples_as_one_batch_job() {
    // The Thought Graph asks for its s samples in one request with n = s; the local backend runs them as one
    // engine job (one left-padded batch), not s jobs.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&p, 5).unwrap();
    let chat = tessera_llm::LocalChat::new(tessera_lm::load(&p).unwrap(), "tiny").unwrap();
    let req = ChatRequest::user("hi").with_params(tessera_llm::ChatParams {
        n: 4,
        temperature: 1.0,
        max_tokens: 6,
        seed: Some(3),
        ..Default::default()
    });
    let r = tessera_llm::blocking::chat(&chat, &req).unwrap();
    assert_eq!(r.choices.len(), 4);
    let st = chat.engine().stats();
    assert_eq!(st.completed, 1, "one job for four samples: {st:?}");
    assert_eq!(st.split_jobs, 0);
    assert_eq!(st.generated_tokens as usize, r.usage.completion_tokens);
    let distinct: std::collections::HashSet<&str> =
        r.choices.iter().map(|c| c.text.as_str()).collect();
    assert!(
        distinct.len() > 1,
        "rows sample independently: {distinct:?}"
    );
}
