//! Language streams, per-stream sampling weights and packing into fixed windows (Aurora-M §3, the CAP data mix).
//!
//! - Built-in streams ([`builtin_streams`]): `en`, `fi`, `hi`, `ja`, `vi` from the FLORES-200 dev split (997
//!   parallel sentences; the *same* seeded half of the line numbers is held out in every language, so no
//!   held-out sentence is seen in translation either); `en` also gets the WikiText-2 raw validation articles
//!   (training only; WikiText-2 test is the English forgetting probe); `code` is this workspace's Rust sources
//!   (whole files, split by seed into halves).
//! - Users' corpora ([`user_stream`], `--stream LANG=FILE`): documents are blank-line separated paragraphs; a
//!   user stream replaces a built-in one of the same name. Empty or non-UTF-8 files are errors naming the file.
//! - Packing ([`Mixture`]): every stream is tokenized once into one buffer, each document followed by a
//!   separator token (`<|endoftext|>` when the vocabulary has it, else EOS). A window is the next `window`
//!   tokens of one stream's buffer, continuing across document boundaries and wrapping around at the end (an
//!   epoch). Which stream a window comes from is drawn with probability proportional to its weight.
//! - Exact data position ([`MixtureCursor`]): the token offset and epoch of every stream, saved in checkpoints
//!   together with the sampling RNG, so a resumed run reads exactly the windows the uninterrupted run would.
use crate::error::{AuroraError, Result};
use rand::seq::SliceRandom;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tessera_lm::Llama;

/// FLORES-200 dev files (relative to the data root) of the five languages, by stream name.
pub const FLORES_DEV: &[(&str, &str)] = &[
    ("en", "multilingual/flores200/dev/eng_Latn.dev"),
    ("fi", "multilingual/flores200/dev/fin_Latn.dev"),
    ("hi", "multilingual/flores200/dev/hin_Deva.dev"),
    ("ja", "multilingual/flores200/dev/jpn_Jpan.dev"),
    ("vi", "multilingual/flores200/dev/vie_Latn.dev"),
];
/// WikiText-2 raw validation (an English training stream).
pub const WIKITEXT_VALID: &str = "wikitext2/raw/wiki.valid.raw";
/// WikiText-2 raw test (the English forgetting probe of the evaluation).
pub const WIKITEXT_TEST: &str = "wikitext2/raw/wiki.test.raw";
/// Default cap on the bytes of Rust source in the `code` stream.
pub const DEFAULT_CODE_BYTES: usize = 400_000;

/// Per-stream sampling weights, `en=0.3,fi=0.15,...` (non-negative, summing to a positive number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights(pub BTreeMap<String, f64>);

impl Weights {
    /// The default CAP mix: English-heavy as in Aurora-M, the four other languages equal, a little code.
    pub fn default_cap() -> Self {
        "en=0.3,fi=0.15,hi=0.15,ja=0.15,vi=0.15,code=0.1"
            .parse()
            .expect("static weights")
    }
    /// Checks every weight is finite and ≥ 0 and that they sum to a positive number.
    pub fn validate(&self) -> Result<()> {
        for (k, &w) in &self.0 {
            if !(w.is_finite() && w >= 0.0) {
                return Err(AuroraError::invalid(format!(
                    "weight of `{k}` must be a finite number ≥ 0, got {w}"
                )));
            }
        }
        let s: f64 = self.0.values().sum();
        if s.is_nan() || s <= 0.0 {
            return Err(AuroraError::invalid(format!(
                "weights must sum to a positive number (got {s} for `{self}`)"
            )));
        }
        Ok(())
    }
    /// Weights normalised to probabilities.
    pub fn probabilities(&self) -> BTreeMap<String, f64> {
        let s: f64 = self.0.values().sum();
        self.0.iter().map(|(k, v)| (k.clone(), v / s)).collect()
    }
}

impl FromStr for Weights {
    type Err = AuroraError;
    fn from_str(s: &str) -> Result<Self> {
        let mut m = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                AuroraError::invalid(format!("weight `{part}` is not NAME=NUMBER"))
            })?;
            let k = k.trim();
            if k.is_empty() {
                return Err(AuroraError::invalid(format!("weight `{part}` has no name")));
            }
            let v: f64 = v.trim().parse().map_err(|_| {
                AuroraError::invalid(format!("weight of `{k}` is not a number: `{v}`"))
            })?;
            if m.insert(k.to_string(), v).is_some() {
                return Err(AuroraError::invalid(format!("weight of `{k}` given twice")));
            }
        }
        if m.is_empty() {
            return Err(AuroraError::invalid("no weights given"));
        }
        let w = Weights(m);
        w.validate()?;
        Ok(w)
    }
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// A named text stream: documents, and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TextStream {
    /// Stream name (`en`, `fi`, `code`, or a user's name).
    pub name: String,
    /// Source description (files).
    pub source: String,
    /// Documents.
    pub docs: Vec<String>,
}

/// Training and held-out halves of every stream.
#[derive(Debug, Clone)]
pub struct Streams {
    /// Training documents per stream.
    pub train: Vec<TextStream>,
    /// Held-out documents per stream (perplexity probes).
    pub heldout: Vec<TextStream>,
}

/// Reads a text file: UTF-8 (else an error naming the file and the offset), not empty, line endings made `\n`.
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| AuroraError::data(path, e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        AuroraError::data(
            path,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(AuroraError::data(path, "the stream file is empty"));
    }
    Ok(text.replace("\r\n", "\n").replace('\r', "\n"))
}

/// Seeded split of `n` items: `(train indices, held-out indices)`, the held-out half the larger when `n` is odd.
pub fn split_indices(n: usize, seed: u64, label: &str) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut tessera_core::rng::derived(seed, label));
    let cut = n / 2;
    let (mut a, mut b) = (idx[..cut].to_vec(), idx[cut..].to_vec());
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

fn halves(name: &str, source: String, docs: Vec<String>, seed: u64) -> (TextStream, TextStream) {
    let (tr, ho) = split_indices(docs.len(), seed, &format!("aurora/split/{name}"));
    let pick = |ix: &[usize]| ix.iter().map(|&i| docs[i].clone()).collect::<Vec<_>>();
    (
        TextStream {
            name: name.into(),
            source: source.clone(),
            docs: pick(&tr),
        },
        TextStream {
            name: name.into(),
            source,
            docs: pick(&ho),
        },
    )
}

/// WikiText articles: split at top-level ` = Title = ` headings.
pub fn wikitext_articles(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        let top = t.starts_with("= ") && t.ends_with(" =") && !t.starts_with("= =");
        if top && !cur.trim().is_empty() {
            out.push(std::mem::take(&mut cur).trim().to_string());
        }
        if !t.is_empty() {
            cur.push_str(line.trim_start());
            cur.push('\n');
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The workspace root of this checkout (for the `code` stream): the compile-time location, else the first
/// ancestor of the current directory holding `Cargo.toml` and `crates/`.
pub fn workspace_root() -> Option<PathBuf> {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if compiled.join("crates").is_dir() {
        return Some(compiled);
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .find(|a| a.join("Cargo.toml").is_file() && a.join("crates").is_dir())
        .map(Path::to_path_buf)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The workspace's Rust sources (`crates/*/src/**/*.rs`, sorted by path), one document per file, at most
/// `max_bytes` in total.
pub fn code_docs(max_bytes: usize) -> Result<(String, Vec<String>)> {
    let root = workspace_root().ok_or_else(|| {
        AuroraError::invalid(
            "the `code` stream needs the workspace's sources (run from the checkout)",
        )
    })?;
    let mut files = Vec::new();
    let crates = root.join("crates");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&crates)
        .map_err(|e| AuroraError::data(&crates, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path().join("src")))
        .collect();
    dirs.sort();
    for d in dirs {
        rust_files(&d, &mut files);
    }
    let (mut docs, mut total) = (Vec::new(), 0usize);
    for f in files {
        let Ok(t) = std::fs::read_to_string(&f) else {
            continue;
        };
        if t.trim().is_empty() {
            continue;
        }
        if total + t.len() > max_bytes {
            break;
        }
        total += t.len();
        docs.push(t);
    }
    if docs.is_empty() {
        return Err(AuroraError::invalid(
            "no Rust sources found for the `code` stream",
        ));
    }
    Ok((
        format!("{}/crates/*/src (Rust, {total} bytes)", root.display()),
        docs,
    ))
}

/// A user's corpus: blank-line separated paragraphs of a UTF-8 file, split by seed into halves.
pub fn user_stream(name: &str, path: &Path, seed: u64) -> Result<(TextStream, TextStream)> {
    let text = read_utf8(path)?;
    let mut docs: Vec<String> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(String::from)
        .collect();
    if docs.len() == 1 {
        // One paragraph: split it into lines so that both halves get text.
        docs = docs[0]
            .lines()
            .map(String::from)
            .filter(|l| !l.trim().is_empty())
            .collect();
    }
    if docs.len() < 2 {
        return Err(AuroraError::data(
            path,
            "a stream needs at least two documents (lines or paragraphs)",
        ));
    }
    Ok(halves(name, path.display().to_string(), docs, seed))
}

/// Parses `LANG=FILE`.
pub fn parse_stream_arg(s: &str) -> Result<(String, PathBuf)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| AuroraError::invalid(format!("--stream `{s}` is not LANG=FILE")))?;
    let k = k.trim();
    if k.is_empty()
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(AuroraError::invalid(format!(
            "stream name `{k}` must be letters, digits, `-` or `_`"
        )));
    }
    Ok((k.to_string(), PathBuf::from(v.trim())))
}

/// The built-in streams (FLORES-200 dev languages, WikiText-2 valid in `en`, the `code` stream) plus users'
/// streams, split by `seed` into training and held-out halves.
pub fn builtin_streams(
    seed: u64,
    code_bytes: usize,
    user: &[(String, PathBuf)],
) -> Result<Streams> {
    let (mut train, mut heldout) = (Vec::new(), Vec::new());
    for (name, rel) in FLORES_DEV {
        if user.iter().any(|(n, _)| n == name) {
            continue;
        }
        let p = tessera_core::assets::resolve_data(rel)?;
        let text = read_utf8(&p)?;
        let docs: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect();
        // One index split shared by all languages (the files are line-parallel).
        let (tr, ho) = split_indices(docs.len(), seed, "aurora/split/flores");
        let pick = |ix: &[usize]| ix.iter().map(|&i| docs[i].clone()).collect::<Vec<_>>();
        let mut t = TextStream {
            name: name.to_string(),
            source: p.display().to_string(),
            docs: pick(&tr),
        };
        if *name == "en" {
            let wp = tessera_core::assets::resolve_data(WIKITEXT_VALID)?;
            t.docs.extend(wikitext_articles(&read_utf8(&wp)?));
            t.source = format!("{} + {}", t.source, wp.display());
        }
        train.push(t);
        heldout.push(TextStream {
            name: name.to_string(),
            source: p.display().to_string(),
            docs: pick(&ho),
        });
    }
    if code_bytes > 0 && !user.iter().any(|(n, _)| n == "code") {
        let (src, docs) = code_docs(code_bytes)?;
        let (a, b) = halves("code", src, docs, seed);
        train.push(a);
        heldout.push(b);
    }
    for (name, path) in user {
        let (a, b) = user_stream(name, path, seed)?;
        train.push(a);
        heldout.push(b);
    }
    Ok(Streams { train, heldout })
}

/// The document separator of `model`'s tokenizer: `<|endoftext|>` when it is one token, else the first EOS.
pub fn separator_id(model: &Llama) -> Result<u32> {
    let tok = model.tokenizer()?;
    if let Ok(ids) = tok.encode_plain("<|endoftext|>") {
        if ids.len() == 1 {
            return Ok(ids[0]);
        }
    }
    tok.eos_ids
        .first()
        .copied()
        .or(model.config.eos_token_id)
        .ok_or_else(|| {
            AuroraError::invalid("the model has no end-of-sequence token to separate documents")
        })
}

/// Tokenizes every document of `stream` and joins them, each followed by `sep`.
pub fn pack_stream(model: &Llama, stream: &TextStream, sep: u32) -> Result<Vec<u32>> {
    let tok = model.tokenizer()?;
    let mut out = Vec::new();
    for d in &stream.docs {
        out.extend(tok.encode_plain(d)?);
        out.push(sep);
    }
    Ok(out)
}

/// Exact data position: per stream, the token offset of the next window and the completed passes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixtureCursor {
    /// Token offset of the next window, per stream.
    pub offsets: BTreeMap<String, u64>,
    /// Times the stream's buffer was read through, per stream.
    pub epochs: BTreeMap<String, u64>,
    /// Windows drawn so far.
    pub windows: u64,
}

/// One packed training window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The stream it came from.
    pub stream: String,
    /// Exactly `window` token ids.
    pub ids: Vec<u32>,
}

/// Packed streams with their sampling probabilities.
#[derive(Debug, Clone)]
pub struct Mixture {
    names: Vec<String>,
    cumulative: Vec<f64>,
    buffers: Vec<Vec<u32>>,
    window: usize,
    cursor: MixtureCursor,
}

impl Mixture {
    /// A mixture of token buffers (`name`, tokens) sampled by `weights`. Every weighted stream must exist and
    /// hold at least 2 tokens; streams without a weight are never drawn.
    pub fn new(buffers: Vec<(String, Vec<u32>)>, weights: &Weights, window: usize) -> Result<Self> {
        weights.validate()?;
        if window < 2 {
            return Err(AuroraError::invalid(format!(
                "--window must be at least 2 tokens, got {window}"
            )));
        }
        let known: Vec<&String> = buffers.iter().map(|b| &b.0).collect();
        for k in weights.0.keys() {
            if !known.contains(&k) {
                return Err(AuroraError::invalid(format!(
                    "weight for unknown stream `{k}` (streams: {})",
                    known
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let p = weights.probabilities();
        let (mut names, mut cumulative, mut bufs, mut acc) = (vec![], vec![], vec![], 0.0);
        for (n, b) in buffers {
            let w = p.get(&n).copied().unwrap_or(0.0);
            if w <= 0.0 {
                continue;
            }
            if b.len() < 2 {
                return Err(AuroraError::invalid(format!(
                    "stream `{n}` has fewer than 2 tokens"
                )));
            }
            acc += w;
            names.push(n);
            cumulative.push(acc);
            bufs.push(b);
        }
        let mut cursor = MixtureCursor::default();
        for n in &names {
            cursor.offsets.insert(n.clone(), 0);
            cursor.epochs.insert(n.clone(), 0);
        }
        Ok(Mixture {
            names,
            cumulative,
            buffers: bufs,
            window,
            cursor,
        })
    }

    /// Names of the streams that can be drawn.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Tokens in each drawable stream's buffer.
    pub fn buffer_tokens(&self) -> BTreeMap<String, usize> {
        self.names
            .iter()
            .cloned()
            .zip(self.buffers.iter().map(Vec::len))
            .collect()
    }

    /// The current data position.
    pub fn cursor(&self) -> &MixtureCursor {
        &self.cursor
    }

    /// Restores a position saved by [`Mixture::cursor`] (same streams, offsets inside their buffers).
    pub fn restore(&mut self, c: &MixtureCursor) -> Result<()> {
        for (i, n) in self.names.iter().enumerate() {
            let off = c.offsets.get(n).copied().ok_or_else(|| {
                AuroraError::invalid(format!("saved data position has no stream `{n}`"))
            })?;
            if off as usize >= self.buffers[i].len() {
                return Err(AuroraError::invalid(format!(
                    "saved offset {off} of stream `{n}` is past its {} tokens",
                    self.buffers[i].len()
                )));
            }
        }
        self.cursor = c.clone();
        Ok(())
    }

    /// Draws the stream of the next window (probability proportional to its weight).
    pub fn sample_stream(&self, rng: &mut tessera_core::rng::Rng) -> usize {
        let u: f64 = rng.gen::<f64>() * self.cumulative.last().copied().unwrap_or(1.0);
        self.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.names.len() - 1)
    }

    /// The next window of stream `i`: `window` tokens from its offset, wrapping to the start at the end.
    pub fn take(&mut self, i: usize) -> Window {
        let name = &self.names[i];
        let buf = &self.buffers[i];
        let off = self
            .cursor
            .offsets
            .get_mut(name)
            .expect("every stream has an offset");
        let mut ids = Vec::with_capacity(self.window);
        let mut pos = *off as usize;
        while ids.len() < self.window {
            ids.push(buf[pos]);
            pos += 1;
            if pos == buf.len() {
                pos = 0;
                *self
                    .cursor
                    .epochs
                    .get_mut(name)
                    .expect("every stream has an epoch") += 1;
            }
        }
        *off = pos as u64;
        self.cursor.windows += 1;
        Window {
            stream: name.clone(),
            ids,
        }
    }

    /// Draws a stream and takes its next window.
    pub fn next_window(&mut self, rng: &mut tessera_core::rng::Rng) -> Window {
        let i = self.sample_stream(rng);
        self.take(i)
    }
}
