//! Calibration (and recovery) windows of token ids, as in the Wanda and SparseGPT reference code: `nsamples`
//! windows of `seqlen` tokens cut from a tokenized text at random starts drawn from a seeded generator
//! ([`WindowMode::Random`]), or the first `nsamples` consecutive non-overlapping windows
//! ([`WindowMode::First`]) so that another implementation can reproduce a run exactly. The default text is
//! WikiText-2 raw validation ([`WIKITEXT_VALID`], found by the shared data resolver); evaluation uses test.
use crate::error::{PruneError, Result};
use rand::Rng as _;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use tessera_lm::Llama;

/// WikiText-2 raw validation, relative to the data root: the default calibration and recovery text.
pub const WIKITEXT_VALID: &str = "wikitext2/raw/wiki.valid.raw";
/// WikiText-2 raw test, relative to the data root: the evaluation text.
pub const WIKITEXT_TEST: &str = "wikitext2/raw/wiki.test.raw";
/// Most calibration tokens (`nsamples · seqlen`) accepted: 4× the default 128 × 512.
pub const MAX_CALIB_TOKENS: usize = 262_144;

/// How windows are cut from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowMode {
    /// Uniform random starts from the seeded generator (windows may overlap).
    #[default]
    Random,
    /// The first `nsamples` consecutive non-overlapping windows.
    First,
}

impl fmt::Display for WindowMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WindowMode::Random => "random",
            WindowMode::First => "first",
        })
    }
}

impl FromStr for WindowMode {
    type Err = PruneError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "random" => Ok(WindowMode::Random),
            "first" => Ok(WindowMode::First),
            other => Err(PruneError::Invalid(format!(
                "unknown window mode `{other}` (random, first)"
            ))),
        }
    }
}

/// Where calibration windows come from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalibConfig {
    /// Text file (default: WikiText-2 raw validation).
    pub text: Option<PathBuf>,
    /// Number of windows.
    pub nsamples: usize,
    /// Tokens per window.
    pub seqlen: usize,
    /// Random or first windows.
    pub windows: WindowMode,
    /// Seed of the random starts.
    pub seed: u64,
}

impl Default for CalibConfig {
    fn default() -> Self {
        CalibConfig {
            text: None,
            nsamples: 128,
            seqlen: 512,
            windows: WindowMode::Random,
            seed: 0,
        }
    }
}

impl CalibConfig {
    /// Checks the numbers against a model with `max_positions` positions (no file is read).
    pub fn validate(&self, max_positions: usize) -> Result<()> {
        if self.nsamples == 0 {
            return Err(PruneError::Invalid("--nsamples must be at least 1".into()));
        }
        if self.seqlen < 2 || self.seqlen > max_positions {
            return Err(PruneError::Invalid(format!(
                "--seqlen {} must be in [2, {max_positions}] (the model's positions)",
                self.seqlen
            )));
        }
        match self.nsamples.checked_mul(self.seqlen) {
            Some(t) if t <= MAX_CALIB_TOKENS => Ok(()),
            _ => Err(PruneError::Invalid(format!(
                "{} windows of {} tokens exceed the {MAX_CALIB_TOKENS}-token calibration limit",
                self.nsamples, self.seqlen
            ))),
        }
    }
    /// The text file: the given one, or WikiText-2 raw validation from the data resolver.
    pub fn text_path(&self) -> Result<PathBuf> {
        resolve_text(self.text.as_ref(), WIKITEXT_VALID)
    }
}

/// `given`, or the dataset file `default_rel` from the shared data resolver.
pub fn resolve_text(given: Option<&PathBuf>, default_rel: &str) -> Result<PathBuf> {
    match given {
        Some(p) => {
            tessera_core::fsx::ensure_regular_file(p)?;
            Ok(p.clone())
        }
        None => Ok(tessera_core::assets::resolve_data(default_rel)?),
    }
}

/// Calibration windows cut from a text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Calibration {
    /// The text file.
    pub path: PathBuf,
    /// Tokens in the whole text.
    pub text_tokens: usize,
    /// Start of every window (token index).
    pub starts: Vec<usize>,
    /// The windows' token ids.
    #[serde(skip)]
    pub windows: Vec<Vec<u32>>,
}

/// Tokenizes the text of `cfg` with `model`'s tokenizer (the perplexity protocol: CRLF → LF, no BOS) and cuts
/// the windows.
pub fn load(model: &Llama, cfg: &CalibConfig) -> Result<Calibration> {
    cfg.validate(model.max_positions())?;
    let path = cfg.text_path()?;
    let text = tessera_core::fsx::read_to_string(&path)?;
    let ids = tessera_lm::perplexity::tokenize_document(model, &text).map_err(|e| match e {
        tessera_lm::LmError::Invalid(m) => PruneError::Invalid(format!("{}: {m}", path.display())),
        other => other.into(),
    })?;
    let starts = window_starts(ids.len(), cfg).map_err(|e| match e {
        PruneError::TextTooShort {
            tokens, need, why, ..
        } => PruneError::TextTooShort {
            path: path.clone(),
            tokens,
            need,
            why,
        },
        other => other,
    })?;
    let windows = starts
        .iter()
        .map(|&s| ids[s..s + cfg.seqlen].to_vec())
        .collect();
    Ok(Calibration {
        path,
        text_tokens: ids.len(),
        starts,
        windows,
    })
}

/// The window starts for a text of `tokens` tokens.
pub fn window_starts(tokens: usize, cfg: &CalibConfig) -> Result<Vec<usize>> {
    let too_short = |need: usize, why: String| PruneError::TextTooShort {
        path: cfg.text.clone().unwrap_or_default(),
        tokens,
        need,
        why,
    };
    if tokens < cfg.seqlen {
        return Err(too_short(cfg.seqlen, "one calibration window".into()));
    }
    match cfg.windows {
        WindowMode::First => {
            let need = cfg.nsamples.saturating_mul(cfg.seqlen);
            if tokens < need {
                return Err(too_short(
                    need,
                    format!("{} consecutive windows of {}", cfg.nsamples, cfg.seqlen),
                ));
            }
            Ok((0..cfg.nsamples).map(|i| i * cfg.seqlen).collect())
        }
        WindowMode::Random => {
            let mut rng = tessera_core::rng::derived(cfg.seed, "calibration-windows");
            Ok((0..cfg.nsamples)
                .map(|_| rng.gen_range(0..=tokens - cfg.seqlen))
                .collect())
        }
    }
}
