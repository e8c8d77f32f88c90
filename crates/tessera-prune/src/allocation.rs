//! Which sparsity each matrix gets. Only the seven projections of the decoder blocks are ever pruned:
//! embeddings, norms and the output head never are (as in Wanda, SparseGPT and VLM-Compression). The default is
//! the same pattern for every projection of every layer ("uniform", the references' setting); rules refine it by
//! part (attention `q,k,v,o` vs MLP `gate,up,down`) and layer range, so that "same sparsity for both" and
//! "prune only one side" are expressible (the vision/language towers of the VLM issue become more parts).
//!
//! Rule syntax (comma-separated, later rules win): `PART[@A-B]=PATTERN` with `PART` one of `attn`, `mlp`,
//! `all`, an inclusive layer range `@A-B` (or one layer `@A`), and `PATTERN` a ratio (`0.5`), `N:M` or `dense`.
//! Example: `attn=dense,mlp@0-9=0.3`.
use crate::error::{PruneError, Result};
use crate::pattern::Pattern;
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use tessera_lm::Proj;

/// A part of a decoder block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// `q, k, v, o`.
    Attention,
    /// `gate, up, down`.
    Mlp,
    /// All seven projections.
    All,
}

impl Part {
    /// Whether projection `p` belongs to this part.
    pub fn contains(self, p: Proj) -> bool {
        match self {
            Part::All => true,
            Part::Attention => matches!(p, Proj::Q | Proj::K | Proj::V | Proj::O),
            Part::Mlp => matches!(p, Proj::Gate | Proj::Up | Proj::Down),
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Attention => "attn",
            Part::Mlp => "mlp",
            Part::All => "all",
        })
    }
}

impl FromStr for Part {
    type Err = PruneError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "attn" | "attention" => Ok(Part::Attention),
            "mlp" | "ffn" => Ok(Part::Mlp),
            "all" => Ok(Part::All),
            other => Err(PruneError::Invalid(format!(
                "unknown part `{other}` (attn, mlp, all)"
            ))),
        }
    }
}

/// One allocation rule: `part` in `layers` gets `pattern` (`None` = left dense).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Which projections.
    pub part: Part,
    /// Which layers (inclusive; `None` = all).
    pub layers: Option<RangeInclusive<usize>>,
    /// The pattern, or `None` to keep them dense.
    pub pattern: Option<Pattern>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.part)?;
        if let Some(r) = &self.layers {
            write!(f, "@{}-{}", r.start(), r.end())?;
        }
        match &self.pattern {
            Some(p) => write!(f, "={p}"),
            None => write!(f, "=dense"),
        }
    }
}

impl FromStr for Rule {
    type Err = PruneError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            PruneError::Invalid(format!(
                "allocation rule `{s}` is not PART[@A-B]=PATTERN (e.g. mlp@0-9=2:4, attn=dense)"
            ))
        };
        let (lhs, rhs) = s.split_once('=').ok_or_else(bad)?;
        let (part, layers) = match lhs.split_once('@') {
            Some((p, l)) => {
                let (a, b) = l.split_once('-').unwrap_or((l, l));
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b {
                    return Err(bad());
                }
                (p.parse::<Part>()?, Some(a..=b))
            }
            None => (lhs.parse::<Part>()?, None),
        };
        let pattern = match rhs.trim().to_ascii_lowercase().as_str() {
            "dense" | "none" => None,
            other => Some(other.parse::<Pattern>()?),
        };
        Ok(Rule {
            part,
            layers,
            pattern,
        })
    }
}

/// The sparsity of every projection: a default pattern and rules refining it.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// The pattern of every projection no rule matches.
    pub default: Pattern,
    /// Rules, later ones winning.
    pub rules: Vec<Rule>,
}

impl Allocation {
    /// The same pattern everywhere.
    pub fn uniform(p: Pattern) -> Self {
        Allocation {
            default: p,
            rules: vec![],
        }
    }
    /// `default` refined by the comma-separated rules of `spec` (empty = uniform).
    pub fn with_rules(default: Pattern, spec: &str) -> Result<Self> {
        let rules = spec
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Rule>>>()?;
        Ok(Allocation { default, rules })
    }
    /// The pattern of projection `p` in layer `layer` (`None`: not pruned).
    pub fn pattern_for(&self, layer: usize, p: Proj) -> Option<Pattern> {
        let mut out = Some(self.default);
        for r in &self.rules {
            if r.part.contains(p) && r.layers.as_ref().is_none_or(|l| l.contains(&layer)) {
                out = r.pattern;
            }
        }
        out
    }
    /// Checks every pattern and that every rule's layers exist in a model of `layers` layers.
    pub fn validate(&self, layers: usize) -> Result<()> {
        self.default.validate()?;
        for r in &self.rules {
            if let Some(p) = &r.pattern {
                p.validate()?;
            }
            if let Some(l) = &r.layers {
                if *l.end() >= layers {
                    return Err(PruneError::Invalid(format!(
                        "allocation rule `{r}` names layer {} but the model has {layers} layers",
                        l.end()
                    )));
                }
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Allocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Allocation", 2)?;
        st.serialize_field("default", &self.default)?;
        let rules: Vec<String> = self.rules.iter().map(|r| r.to_string()).collect();
        st.serialize_field("rules", &rules)?;
        st.end()
    }
}
