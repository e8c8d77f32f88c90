//! Defensive parsing of model answers: JSON objects buried in prose, `Process: <name>` lines, vote lists and
//! ratings. Small models rarely answer in the asked format, so every parser falls back to looser readings and
//! returns `None` rather than failing.
use serde::Serialize;

/// Longest name kept, in characters (longer answers are prose, not names).
pub const MAX_NAME_CHARS: usize = 120;

/// One proposed process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    /// The process name.
    pub name: String,
    /// The stated relation to the parent (`is_a`, `part_of`, ...), as written.
    pub relation: Option<String>,
    /// The stated reason.
    pub reason: Option<String>,
}

/// The first balanced `{...}` in `text` that parses as a JSON object.
pub fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(off) = text[start..].find('{') {
        let s = start + off;
        let (mut depth, mut in_str, mut esc) = (0i32, false, false);
        for (i, &b) in bytes.iter().enumerate().skip(s) {
            if in_str {
                match b {
                    _ if esc => esc = false,
                    b'\\' => esc = true,
                    b'"' => in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(&text[s..=i])
                        {
                            return Some(m);
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
        start = s + 1;
    }
    None
}

/// Tidies a name: strips quotes, markdown, list markers, a trailing full stop and surrounding space; `None` when
/// nothing name-like is left.
pub fn clean_name(s: &str) -> Option<String> {
    let mut t = s.trim();
    for _ in 0..3 {
        t = t
            .trim_start_matches(|c: char| {
                matches!(c, '-' | '*' | '#' | '>' | '•') || c.is_whitespace()
            })
            .trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | '*' | '_') || c.is_whitespace())
            .trim_end_matches(['.', ',', ';', ':']);
    }
    let t: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() || t.chars().count() > MAX_NAME_CHARS || !t.chars().any(char::is_alphabetic) {
        return None;
    }
    Some(t)
}

fn str_field(m: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> Option<String> {
    for k in keys {
        for (key, v) in m {
            if key.eq_ignore_ascii_case(k) {
                if let Some(s) = v.as_str() {
                    return Some(s.to_string());
                }
            }
        }
    }
    None
}

/// The value after `key:` on the first line that has it (case-insensitive), e.g. `Process: apoptosis`.
pub fn labelled_line(text: &str, key: &str) -> Option<String> {
    let k = key.to_ascii_lowercase();
    for line in text.lines() {
        let low = line.to_ascii_lowercase();
        if let Some(i) = low.find(&format!("{k}:")) {
            let rest = &line[i + k.len() + 1..];
            if let Some(n) = clean_name(rest) {
                return Some(n);
            }
        }
    }
    None
}

/// Reads a proposal: a JSON object with `process` (or `name`, `biological_process`, `term`), optional
/// `relation` and `reason`; else a `"process": "..."` fragment; else a `Process:` line; else a short first line.
pub fn proposal(text: &str) -> Option<Proposal> {
    const NAME_KEYS: [&str; 5] = ["process", "name", "biological_process", "term", "answer"];
    if let Some(m) = json_object(text) {
        if let Some(name) = str_field(&m, &NAME_KEYS).and_then(|s| clean_name(&s)) {
            return Some(Proposal {
                name,
                relation: str_field(&m, &["relation", "relationship"]),
                reason: str_field(&m, &["reason", "explanation"]),
            });
        }
    }
    // A truncated object: `{"process": "cell cycle", "reason": "...` (no closing brace).
    let low = text.to_ascii_lowercase();
    for k in NAME_KEYS {
        if let Some(i) = low.find(&format!("\"{k}\"")) {
            let rest = &text[i + k.len() + 2..];
            let rest = rest
                .trim_start()
                .strip_prefix(':')
                .unwrap_or(rest)
                .trim_start();
            if let Some(r) = rest.strip_prefix('"') {
                if let Some(end) = r.find('"') {
                    if let Some(name) = clean_name(&r[..end]) {
                        return Some(Proposal {
                            name,
                            relation: None,
                            reason: None,
                        });
                    }
                }
            }
        }
    }
    for k in ["process", "name", "answer"] {
        if let Some(name) = labelled_line(text, k) {
            return Some(Proposal {
                name,
                relation: None,
                reason: None,
            });
        }
    }
    if let Some(name) = prose_process(text) {
        return Some(Proposal {
            name,
            relation: None,
            reason: None,
        });
    }
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    if first.contains('{') || first.split_whitespace().count() > 12 {
        return None;
    }
    clean_name(first).map(|name| Proposal {
        name,
        relation: None,
        reason: None,
    })
}

/// A name stated in prose, as small models answer instead of the asked `Process: <name>` line: in the last
/// sentence that mentions a process, the phrase after its ` is ` / ` are `, without a leading article or
/// "process of", cut at the first comma, semicolon or relative clause. "The most prominent biological process
/// these genes carry out is the regulation of lipid transport, which …" gives `regulation of lipid transport`.
pub fn prose_process(text: &str) -> Option<String> {
    let mut found = None;
    for sentence in text.split(['\n', '.', '!', '?']) {
        let low = sentence.to_ascii_lowercase();
        let Some(p) = low.find("process") else {
            continue;
        };
        let Some(v) = [" is ", " are "]
            .iter()
            .filter_map(|v| low[p..].find(v).map(|i| p + i + v.len()))
            .min()
        else {
            continue;
        };
        let mut rest = &sentence[v..];
        let mut lower = &low[v..];
        for lead in [
            "the ",
            "a ",
            "an ",
            "likely ",
            "probably ",
            "the process of ",
            "process of ",
            "that of ",
        ] {
            if let Some(r) = lower.strip_prefix(lead) {
                rest = &rest[lead.len()..];
                lower = r;
            }
        }
        let end = [
            ",",
            ";",
            ":",
            "(",
            " which ",
            " that ",
            " where ",
            " in which ",
            " and is ",
            " because ",
        ]
        .iter()
        .filter_map(|m| lower.find(m))
        .min()
        .unwrap_or(rest.len());
        if let Some(n) = clean_name(&rest[..end]).filter(|n| n.split_whitespace().count() <= 12) {
            found = Some(n);
        }
    }
    found
}

/// The `Process: <name>` answer of a baseline (the last such line wins, as a chain of thought ends with it);
/// else a JSON `process`; else a name stated in prose ([`prose_process`]); else a short last line.
pub fn process_answer(text: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let low = line.to_ascii_lowercase();
        if let Some(i) = low.rfind("process:") {
            if let Some(n) = clean_name(&line[i + "process:".len()..]) {
                found = Some(n);
            }
        }
    }
    if found.is_some() {
        return found;
    }
    if let Some(p) = proposal(text) {
        return Some(p.name);
    }
    if let Some(n) = prose_process(text) {
        return Some(n);
    }
    let last = text.lines().map(str::trim).rev().find(|l| !l.is_empty())?;
    (last.split_whitespace().count() <= 12)
        .then(|| clean_name(last))
        .flatten()
}

/// Up to `want` distinct candidate numbers (1-based in the text, returned 0-based) below `m`: from a JSON
/// `best`/`votes` array, else the numbers in the text in order of appearance.
pub fn votes(text: &str, m: usize, want: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    let mut push = |v: u64| {
        if v >= 1 && (v as usize) <= m && !out.contains(&(v as usize - 1)) && out.len() < want {
            out.push(v as usize - 1);
        }
    };
    if let Some(obj) = json_object(text) {
        for (k, v) in &obj {
            let k = k.to_ascii_lowercase();
            if k.contains("best") || k.contains("vote") {
                match v {
                    serde_json::Value::Array(a) => {
                        for x in a {
                            if let Some(n) = x
                                .as_u64()
                                .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
                            {
                                push(n);
                            }
                        }
                    }
                    serde_json::Value::Number(n) => {
                        if let Some(n) = n.as_u64() {
                            push(n);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let mut num = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            num.push(c);
        } else if !num.is_empty() {
            if let Ok(n) = num.parse() {
                push(n);
            }
            num.clear();
        }
    }
    out
}

/// A 1–10 rating: a JSON `specificity`/`score`/`rating`, else the first integer 1..=10 in the text.
pub fn rating(text: &str) -> Option<u8> {
    if let Some(m) = json_object(text) {
        for (k, v) in &m {
            let k = k.to_ascii_lowercase();
            if k.contains("specific") || k.contains("score") || k.contains("rating") {
                let n = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
                if let Some(n) = n.filter(|n| (1.0..=10.0).contains(n)) {
                    return Some(n.round() as u8);
                }
            }
        }
    }
    let mut num = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            num.push(c);
        } else if !num.is_empty() {
            if let Ok(n) = num.parse::<u32>() {
                if (1..=10).contains(&n) {
                    return Some(n as u8);
                }
            }
            num.clear();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stated_in_prose_are_read() {
        // Replies of SmolLM2-135M-Instruct to the zero-shot and chain-of-thought prompts (tour, 2026-12-02).
        let cases = [
            (
                "The most prominent biological process this gene carries out is the regulation of LDLRAP1, a gene \
                 encoding a protein involved in lipid metabolism.",
                "regulation of LDLRAP1",
            ),
            ("The most prominent biological process this gene carries out is the synthesis of DNA itself.", "synthesis of DNA itself"),
            (
                "The most prominent biological process that carries out the genes NOD1, HLA-DRA, CD74 are the process \
                 of gene expression.",
                "gene expression",
            ),
            (
                "The process that combines genes OGG1, ERCC5, XPA is a multicellular cellular process that is involved \
                 in the regulation of gene expression.",
                "multicellular cellular process",
            ),
        ];
        for (reply, want) in cases {
            assert_eq!(process_answer(reply).as_deref(), Some(want), "{reply}");
        }
        // The last sentence naming a process wins (a chain of thought concludes).
        assert_eq!(
            prose_process("OGG1 is a glycosylase. Together the process is DNA repair.").as_deref(),
            Some("DNA repair")
        );
        // No process mentioned, or no verb after it: nothing.
        assert_eq!(prose_process("These genes are interesting."), None);
        assert_eq!(prose_process("A process."), None);
        // Multi-byte text does not split a character.
        assert_eq!(
            prose_process("Le processus est … ; the process is Zellteilung über Mitose").as_deref(),
            Some("Zellteilung über Mitose")
        );
    }

    #[test]
    fn proposals_are_read_from_json_prose_and_broken_json() {
        let p = proposal("Sure! {\"process\": \"DNA repair\", \"relation\": \"is_a\", \"reason\": \"ERCC genes\"} ok")
            .unwrap();
        assert_eq!(p.name, "DNA repair");
        assert_eq!(p.relation.as_deref(), Some("is_a"));
        assert_eq!(
            proposal("{\"Process\": \"cell cycle\", \"reason\": \"cyc")
                .unwrap()
                .name,
            "cell cycle"
        );
        assert_eq!(
            proposal("Process: **lipid transport**.").unwrap().name,
            "lipid transport"
        );
        assert_eq!(
            proposal("  \"immune response\"\n").unwrap().name,
            "immune response"
        );
        assert!(proposal("").is_none());
        assert!(proposal("{\"process\": \"\"}").is_none());
        assert!(proposal(
            "{ not json at all and a long sentence that goes on and on and on and on"
        )
        .is_none());
    }

    #[test]
    fn baseline_answers_take_the_last_process_line() {
        let t = "The genes do X.\nProcess: wrong guess\nOn reflection:\nProcess: apoptotic process";
        assert_eq!(process_answer(t).unwrap(), "apoptotic process");
        assert_eq!(process_answer("autophagy").unwrap(), "autophagy");
    }

    #[test]
    fn votes_and_ratings_are_bounded() {
        assert_eq!(votes("{\"best\": [3, 1]}", 3, 2), vec![2, 0]);
        assert_eq!(votes("I pick 2 and 2 then 9 and 1", 3, 2), vec![1, 0]);
        assert!(votes("none", 3, 2).is_empty());
        assert_eq!(rating("{\"specificity\": 8}"), Some(8));
        assert_eq!(rating("I'd say 42, no, 7."), Some(7));
        assert_eq!(rating("no idea"), None);
    }
}
