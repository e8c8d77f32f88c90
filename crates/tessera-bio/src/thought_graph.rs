//! Thought Graph (Hsu et al., "Thought Graph: Generating Thought Process for Biological Reasoning", WWW '24
//! Companion, arXiv 2403.07144; §3 "Thought Graph" and the `tot_certainty` configuration of the authors' code).
//!
//! A breadth-first tree of thoughts over biological-process names, [`ThoughtGraphConfig::layers`] deep (5):
//!
//! 1. **Expansion.** Layer 1 asks for one biological process as general as possible that the genes take part in
//!    (the prompt explains the GO relations is_a, has_part, part_of and regulates); later layers ask for one
//!    process more specific than the parent, with its relation to the parent and a reason, as JSON. Each parent
//!    is sampled `samples` times (15) in **one request with `n = samples`**.
//! 2. **Uncertainty grouping.** The parsed names are embedded and grouped single-linkage when their cosine is
//!    above `group_threshold` (0.9); the `children` (3) largest groups become child nodes, named by their most
//!    frequent member.
//! 3. **Voting.** `voters` (5) samples of one voting prompt each name the two best candidates of the layer; a
//!    node's value is its votes times its group size (the code's `uncertainty_voters` mode).
//! 4. **Selection.** The `select` (2) highest-valued nodes of the layer are expanded next (greedy), so layer 1
//!    holds 3 nodes and later layers 6.
//! 5. **Optional stop.** With `stop_specificity = Some(8)`, a selected node the model rates 8 or more on a 1–10
//!    specificity scale is not expanded further.
//! 6. **Final answer.** The model picks the best name among all selected nodes, `final_samples` times; the
//!    answers are grouped as in step 2 and the largest group's answer, mapped to the nearest selected node, is
//!    the final name.
//!
//! Every node is linked to its nearest real GO BP term (embedding cosine), so the graph can be drawn against the
//! ontology ([`render_svg`]). Deviations from the reference code: MiniLM instead of SapBERT embeddings; the
//! voters are one request with `n = voters` rather than five requests; no `exploration_rate` noise; prompts are
//! our own wording.
use crate::error::{BioError, Result};
use crate::ontology::Ontology;
use crate::parse;
use crate::semantic::{cosine, TermIndex, TextEmbedder};
use serde::Serialize;
use tessera_llm::{ChatMessage, ChatModel, ChatParams, ChatRequest};

/// Settings of one Thought Graph run.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ThoughtGraphConfig {
    /// Layers of the tree (the paper's `steps`).
    pub layers: usize,
    /// Samples per parent (`n_generate_sample`).
    pub samples: usize,
    /// Single-linkage threshold on the embedding cosine.
    pub group_threshold: f32,
    /// Groups kept per parent (fewer when the samples form fewer groups).
    pub children: usize,
    /// Voting samples per layer.
    pub voters: usize,
    /// Nodes selected per layer (`n_select_sample`).
    pub select: usize,
    /// Stop expanding a node rated at least this specific (1–10); `None` never stops early.
    pub stop_specificity: Option<u8>,
    /// Samples of the final pick.
    pub final_samples: usize,
    /// Sampling temperature of proposals, votes and the final pick.
    pub temperature: f64,
    /// Token limit of one proposal.
    pub max_tokens: usize,
    /// Base seed (each request gets `seed + its number`).
    pub seed: u64,
}

impl Default for ThoughtGraphConfig {
    fn default() -> Self {
        ThoughtGraphConfig {
            layers: 5,
            samples: 15,
            group_threshold: 0.9,
            children: 3,
            voters: 5,
            select: 2,
            stop_specificity: None,
            final_samples: 15,
            temperature: 1.0,
            max_tokens: 96,
            seed: 0,
        }
    }
}

impl ThoughtGraphConfig {
    /// Checks every range.
    pub fn validate(&self) -> Result<()> {
        let max_n = tessera_llm::types::MAX_N;
        let bad = |m: String| Err(BioError::invalid(m));
        if !(1..=16).contains(&self.layers) {
            return bad(format!("layers {} out of range 1..=16", self.layers));
        }
        for (k, v) in [
            ("samples", self.samples),
            ("voters", self.voters),
            ("final_samples", self.final_samples),
        ] {
            if !(1..=max_n).contains(&v) {
                return bad(format!("{k} {v} out of range 1..={max_n}"));
            }
        }
        if !(1..=16).contains(&self.children) {
            return bad(format!("children {} out of range 1..=16", self.children));
        }
        if self.select == 0 || self.select > 8 {
            return bad(format!("select {} out of range 1..=8", self.select));
        }
        if !(self.group_threshold.is_finite() && (-1.0..=1.0).contains(&self.group_threshold)) {
            return bad(format!(
                "group_threshold {} out of range [-1, 1]",
                self.group_threshold
            ));
        }
        if let Some(s) = self.stop_specificity {
            if !(1..=10).contains(&s) {
                return bad(format!("stop_specificity {s} out of range 1..=10"));
            }
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return bad(format!(
                "temperature {} out of range [0, 2]",
                self.temperature
            ));
        }
        if !(8..=2048).contains(&self.max_tokens) {
            return bad(format!(
                "max_tokens {} out of range 8..=2048",
                self.max_tokens
            ));
        }
        Ok(())
    }
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Node {
    /// Index in [`ThoughtGraph::nodes`].
    pub id: usize,
    /// Layer, from 1.
    pub layer: usize,
    /// The parent node (`None` on layer 1).
    pub parent: Option<usize>,
    /// The process name.
    pub name: String,
    /// The stated relation to the parent.
    pub relation: Option<String>,
    /// The stated reason.
    pub reason: Option<String>,
    /// Samples in the node's group.
    pub group_size: usize,
    /// Votes received.
    pub votes: usize,
    /// `votes × group_size`.
    pub value: usize,
    /// Selected for expansion (or, on the last layer, for the final pick).
    pub selected: bool,
    /// Specificity rating, when asked.
    pub specificity: Option<u8>,
    /// Nearest GO BP term id.
    pub go_id: String,
    /// Its name.
    pub go_name: String,
    /// Cosine of the node's name to that term's name.
    pub go_cosine: f32,
}

/// Requests and tokens spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Cost {
    /// Chat requests.
    pub calls: usize,
    /// Completions (a request with `n = s` gives `s`).
    pub completions: usize,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Completion tokens.
    pub completion_tokens: usize,
}

impl Cost {
    /// Adds another cost.
    pub fn add(&mut self, o: &Cost) {
        self.calls += o.calls;
        self.completions += o.completions;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

/// A finished graph.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ThoughtGraph {
    /// The gene symbols asked about.
    pub genes: Vec<String>,
    /// Every node, layer by layer.
    pub nodes: Vec<Node>,
    /// The final name ("" when the model never produced a parseable name).
    pub final_name: String,
    /// The node the final name came from.
    pub final_node: Option<usize>,
    /// Samples that could not be parsed into a name.
    pub unparsed: usize,
    /// Requests and tokens spent.
    pub cost: Cost,
}

/// Chat calls with cost accounting and per-request seeds.
pub struct Asker<'a> {
    model: &'a dyn ChatModel,
    seed: u64,
    /// Running cost.
    pub cost: Cost,
}

impl<'a> Asker<'a> {
    /// Wraps a backend.
    pub fn new(model: &'a dyn ChatModel, seed: u64) -> Self {
        Asker {
            model,
            seed,
            cost: Cost::default(),
        }
    }

    /// One request with `n` completions; returns their texts.
    pub fn ask(
        &mut self,
        system: &str,
        user: &str,
        n: usize,
        temperature: f64,
        max_tokens: usize,
    ) -> Result<Vec<String>> {
        let req = ChatRequest::new(vec![
            ChatMessage::new("system", system),
            ChatMessage::new("user", user),
        ])
        .with_params(ChatParams {
            temperature,
            max_tokens,
            n,
            seed: Some(self.seed.wrapping_add(self.cost.calls as u64)),
            ..ChatParams::default()
        });
        let r = tessera_llm::blocking::chat(self.model, &req)?;
        self.cost.calls += 1;
        self.cost.completions += r.choices.len();
        self.cost.prompt_tokens += r.usage.prompt_tokens;
        self.cost.completion_tokens += r.usage.completion_tokens;
        Ok(r.texts())
    }
}

/// The system prompt of every Thought Graph call.
pub const SYSTEM: &str = "You are an expert in molecular and cell biology who names the biological processes \
that sets of human genes carry out, using Gene Ontology vocabulary. Always answer with a single JSON object and \
nothing else.";

const RELATIONS: &str = "Gene Ontology relates processes in four ways: \"is_a\" (A is a kind of B), \"part_of\" (A \
is always a step within B), \"has_part\" (A always includes B as a step) and \"regulates\" (A controls how often, \
how fast or how much B happens).";

/// The layer-1 prompt: one process as general as possible.
pub fn first_prompt(genes: &[String]) -> String {
    format!(
        "{RELATIONS}\n\nGenes: {}\n\nName one high-level biological process, as general as possible, that these \
genes take part in together. Answer as {{\"process\": \"<name>\", \"reason\": \"<one sentence>\"}}.",
        genes.join(", ")
    )
}

/// The prompt of later layers: one process more specific than `parent`.
pub fn expand_prompt(genes: &[String], parent: &str) -> String {
    format!(
        "{RELATIONS}\n\nGenes: {}\n\nThese genes take part in \"{parent}\". Name one biological process that is \
more specific than \"{parent}\" and better describes what these genes do, and say how it relates to \
\"{parent}\" (is_a, part_of, has_part or regulates). Answer as {{\"process\": \"<name>\", \"relation\": \
\"<relation>\", \"reason\": \"<one sentence>\"}}.",
        genes.join(", ")
    )
}

fn numbered(names: &[&str]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}. {n}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The voting prompt.
pub fn vote_prompt(genes: &[String], candidates: &[&str]) -> String {
    format!(
        "Genes: {}\n\nCandidate biological processes:\n{}\n\nVote for the two candidates that best describe the \
process these genes carry out together. Answer as {{\"best\": [<number>, <number>]}}.",
        genes.join(", "),
        numbered(candidates)
    )
}

/// The specificity prompt.
pub fn specificity_prompt(genes: &[String], name: &str) -> String {
    format!(
        "Genes: {}\n\nOn a scale from 1 (very general, e.g. \"biological process\") to 10 (a precise Gene Ontology \
leaf term), how specific is \"{name}\" as a description of what these genes do? Answer as {{\"specificity\": \
<1-10>}}.",
        genes.join(", ")
    )
}

/// The final-pick prompt.
pub fn final_prompt(genes: &[String], candidates: &[&str]) -> String {
    format!(
        "Genes: {}\n\nCandidate names:\n{}\n\nWhich candidate is the best name for the most prominent biological \
process these genes carry out? Answer as {{\"process\": \"<the candidate's name>\"}}.",
        genes.join(", "),
        numbered(candidates)
    )
}

/// Single-linkage groups of `vecs` (edges where cosine > `threshold`), largest first, ties by first member;
/// each group lists member indices in order.
pub fn group(vecs: &[Vec<f32>], threshold: f32) -> Vec<Vec<usize>> {
    let n = vecs.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for i in 0..n {
        for j in i + 1..n {
            if cosine(&vecs[i], &vecs[j]) > threshold {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut slot: Vec<Option<usize>> = vec![None; n];
    for i in 0..n {
        let r = root(&mut parent, i);
        match slot[r] {
            Some(g) => groups[g].push(i),
            None => {
                slot[r] = Some(groups.len());
                groups.push(vec![i]);
            }
        }
    }
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups
}

/// The most frequent member text of a group (case-insensitive), ties by first appearance.
fn representative<'a>(members: &[usize], names: &'a [String]) -> &'a str {
    let mut best = (0usize, members[0]);
    for &m in members {
        let c = members
            .iter()
            .filter(|&&o| names[o].eq_ignore_ascii_case(&names[m]))
            .count();
        if c > best.0 {
            best = (c, m);
        }
    }
    &names[best.1]
}

/// Runs the Thought Graph for `genes` (official symbols) on `model`, embedding with `emb` and linking nodes to
/// `ont`'s terms through `index`.
pub fn run(
    cfg: &ThoughtGraphConfig,
    genes: &[String],
    model: &dyn ChatModel,
    emb: &dyn TextEmbedder,
    ont: &Ontology,
    index: &TermIndex,
) -> Result<ThoughtGraph> {
    cfg.validate()?;
    if genes.is_empty() {
        return Err(BioError::invalid("no genes to name"));
    }
    if index.len() != ont.len() {
        return Err(BioError::invalid("term index and ontology differ in size"));
    }
    let mut ask = Asker::new(model, cfg.seed);
    let mut nodes: Vec<Node> = Vec::new();
    let mut unparsed = 0usize;
    let mut frontier: Vec<Option<usize>> = vec![None];
    for layer in 1..=cfg.layers {
        let mut layer_nodes: Vec<usize> = Vec::new();
        for parent in frontier.iter().copied() {
            let prompt = match parent {
                None => first_prompt(genes),
                Some(p) => expand_prompt(genes, &nodes[p].name),
            };
            let texts = ask.ask(
                SYSTEM,
                &prompt,
                cfg.samples,
                cfg.temperature,
                cfg.max_tokens,
            )?;
            let props: Vec<parse::Proposal> =
                texts.iter().filter_map(|t| parse::proposal(t)).collect();
            unparsed += texts.len() - props.len();
            if props.is_empty() {
                continue;
            }
            let names: Vec<String> = props.iter().map(|p| p.name.clone()).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let vecs = emb.embed(&refs)?;
            for g in group(&vecs, cfg.group_threshold)
                .into_iter()
                .take(cfg.children)
            {
                let rep = representative(&g, &names);
                let first = g.iter().copied().find(|&m| names[m] == rep).unwrap_or(g[0]);
                let (t, c) = index.nearest(&vecs[first]);
                let id = nodes.len();
                nodes.push(Node {
                    id,
                    layer,
                    parent,
                    name: rep.to_string(),
                    relation: props[first].relation.clone(),
                    reason: props[first].reason.clone(),
                    group_size: g.len(),
                    votes: 0,
                    value: 0,
                    selected: false,
                    specificity: None,
                    go_id: ont.term(t).id.clone(),
                    go_name: ont.term(t).name.clone(),
                    go_cosine: c,
                });
                layer_nodes.push(id);
            }
        }
        if layer_nodes.is_empty() {
            break;
        }
        let cands: Vec<&str> = layer_nodes
            .iter()
            .map(|&i| nodes[i].name.as_str())
            .collect();
        if layer_nodes.len() > cfg.select {
            let ballots = ask.ask(
                SYSTEM,
                &vote_prompt(genes, &cands),
                cfg.voters,
                cfg.temperature,
                32,
            )?;
            for b in &ballots {
                for v in parse::votes(b, layer_nodes.len(), 2) {
                    nodes[layer_nodes[v]].votes += 1;
                }
            }
        }
        for &i in &layer_nodes {
            nodes[i].value = nodes[i].votes * nodes[i].group_size;
        }
        let mut order = layer_nodes.clone();
        order.sort_by(|&a, &b| {
            nodes[b]
                .value
                .cmp(&nodes[a].value)
                .then(nodes[b].group_size.cmp(&nodes[a].group_size))
                .then(a.cmp(&b))
        });
        frontier.clear();
        for &i in order.iter().take(cfg.select) {
            nodes[i].selected = true;
            if let Some(stop) = cfg.stop_specificity {
                let r = ask.ask(
                    SYSTEM,
                    &specificity_prompt(genes, &nodes[i].name),
                    1,
                    0.0,
                    16,
                )?;
                nodes[i].specificity = r.first().and_then(|t| parse::rating(t));
                if nodes[i].specificity.is_some_and(|s| s >= stop) {
                    continue;
                }
            }
            frontier.push(Some(i));
        }
        if frontier.is_empty() {
            break;
        }
    }
    let (final_name, final_node) = final_pick(cfg, genes, &nodes, &mut ask, emb)?;
    Ok(ThoughtGraph {
        genes: genes.to_vec(),
        nodes,
        final_name,
        final_node,
        unparsed,
        cost: ask.cost,
    })
}

fn final_pick(
    cfg: &ThoughtGraphConfig,
    genes: &[String],
    nodes: &[Node],
    ask: &mut Asker<'_>,
    emb: &dyn TextEmbedder,
) -> Result<(String, Option<usize>)> {
    let sel: Vec<usize> = nodes.iter().filter(|n| n.selected).map(|n| n.id).collect();
    let fallback = || {
        sel.iter()
            .copied()
            .max_by(|&a, &b| {
                nodes[a]
                    .layer
                    .cmp(&nodes[b].layer)
                    .then(nodes[a].value.cmp(&nodes[b].value))
                    .then(b.cmp(&a))
            })
            .map(|i| (nodes[i].name.clone(), Some(i)))
            .unwrap_or((String::new(), None))
    };
    match sel.len() {
        0 => return Ok((String::new(), None)),
        1 => return Ok((nodes[sel[0]].name.clone(), Some(sel[0]))),
        _ => {}
    }
    let cands: Vec<&str> = sel.iter().map(|&i| nodes[i].name.as_str()).collect();
    let texts = ask.ask(
        SYSTEM,
        &final_prompt(genes, &cands),
        cfg.final_samples,
        cfg.temperature,
        cfg.max_tokens,
    )?;
    let answers: Vec<String> = texts
        .iter()
        .filter_map(|t| parse::proposal(t).map(|p| p.name))
        .map(|a| {
            // A bare candidate number ("3") names that candidate.
            match a.trim().parse::<usize>() {
                Ok(k) if (1..=cands.len()).contains(&k) => cands[k - 1].to_string(),
                _ => a,
            }
        })
        .collect();
    if answers.is_empty() {
        return Ok(fallback());
    }
    let refs: Vec<&str> = answers.iter().map(String::as_str).collect();
    let vecs = emb.embed(&refs)?;
    let groups = group(&vecs, cfg.group_threshold);
    let top = &groups[0];
    let rep = representative(top, &answers);
    let rep_i = top
        .iter()
        .copied()
        .find(|&m| answers[m] == rep)
        .unwrap_or(top[0]);
    let cand_vecs = emb.embed(&cands)?;
    let best = (0..sel.len())
        .map(|k| {
            let exact = cands[k].eq_ignore_ascii_case(rep);
            (
                k,
                if exact {
                    2.0
                } else {
                    cosine(&vecs[rep_i], &cand_vecs[k])
                },
            )
        })
        .fold((0, f32::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b });
    let i = sel[best.0];
    Ok((nodes[i].name.clone(), Some(i)))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Draws the graph as an SVG: one row per layer, nodes left to right in creation order, edges to parents.
/// Selected nodes are filled blue, the final node has a thick border; each box shows the name and, below it,
/// the nearest GO term with its cosine.
pub fn render_svg(g: &ThoughtGraph, title: &str) -> String {
    let (w, h, gap_x, gap_y, top) = (230.0f64, 58.0f64, 20.0f64, 56.0f64, 60.0f64);
    let layers = g.nodes.iter().map(|n| n.layer).max().unwrap_or(0);
    let mut pos = vec![(0.0, 0.0); g.nodes.len()];
    let mut widest = 1usize;
    for l in 1..=layers {
        let row: Vec<&Node> = g.nodes.iter().filter(|n| n.layer == l).collect();
        widest = widest.max(row.len());
        for (k, n) in row.iter().enumerate() {
            pos[n.id] = (
                gap_x + k as f64 * (w + gap_x),
                top + (l - 1) as f64 * (h + gap_y),
            );
        }
    }
    let width = gap_x + widest as f64 * (w + gap_x);
    let height = top + layers as f64 * (h + gap_y) + 30.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
<text x=\"{gap_x}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>\n\
<text x=\"{gap_x}\" y=\"40\">final: {}</text>\n",
        esc(&clip(title, 120)),
        esc(&g.final_name)
    );
    for n in &g.nodes {
        if let Some(p) = n.parent {
            let (px, py) = pos[p];
            let (x, y) = pos[n.id];
            s.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#888\"/>\n",
                px + w / 2.0,
                py + h,
                x + w / 2.0
            ));
            if let Some(r) = &n.relation {
                s.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666\" font-size=\"9\">{}</text>\n",
                    x + w / 2.0 + 4.0,
                    y - 6.0,
                    esc(&clip(r, 24))
                ));
            }
        }
    }
    for n in &g.nodes {
        let (x, y) = pos[n.id];
        let fill = if n.selected { "#dbe9ff" } else { "#f4f4f4" };
        let stroke = if Some(n.id) == g.final_node { 3.0 } else { 1.0 };
        s.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w}\" height=\"{h}\" rx=\"6\" fill=\"{fill}\" \
stroke=\"#335\" stroke-width=\"{stroke}\"/>\n\
<text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>\n\
<text x=\"{:.1}\" y=\"{:.1}\">group {} · votes {} · value {}</text>\n\
<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#264\">{} {} ({:.2})</text>\n",
            x + 6.0,
            y + 16.0,
            esc(&clip(&n.name, 36)),
            x + 6.0,
            y + 32.0,
            n.group_size,
            n.votes,
            n.value,
            x + 6.0,
            y + 48.0,
            esc(&n.go_id),
            esc(&clip(&n.go_name, 22)),
            n.go_cosine
        ));
    }
    s.push_str("</svg>\n");
    s
}
