//! Datasets: scikit-learn's 8×8 digits (from the `scikit-learn` wheel), Fashion-MNIST (Debian
//! `dataset-fashion-mnist`, average-pooled to keep the layer blocks small) and a generated Gaussian-blob set for tests.
use crate::error::{QnError, Result};
use flate2::read::GzDecoder;
use rand::seq::SliceRandom;
use rand::Rng;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A classification dataset held as row-major features in `[0, 1]`-ish scale.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Short name.
    pub name: String,
    /// Row-major features, `n × dim`.
    pub x: Vec<f64>,
    /// Labels in `0..classes`.
    pub y: Vec<usize>,
    /// Number of features.
    pub dim: usize,
    /// Number of classes.
    pub classes: usize,
}

/// `scikit-learn` release whose wheel carries `digits.csv.gz`.
pub const SKLEARN_REQUIREMENT: &str = "scikit-learn==1.7.2";
/// Path of the digits file inside the wheel.
pub const DIGITS_MEMBER: &str = "sklearn/datasets/data/digits.csv.gz";
/// Pinned sha256 of `digits.csv.gz` (57,523 bytes; identical in every 1.7.2 wheel).
pub const DIGITS_SHA256: &str = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22";
/// Debian package with Fashion-MNIST.
pub const FASHION_DEB: &str = "dataset-fashion-mnist";

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }
    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    /// Features of example `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
    /// The examples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut x = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            x.extend_from_slice(self.row(i));
        }
        Dataset {
            name: self.name.clone(),
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
            dim: self.dim,
            classes: self.classes,
        }
    }
    /// Seeded shuffle, then split off `test_fraction` of the examples as a test set.
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut tessera_core::rng::derived(seed, "split"));
        let n_test = ((self.len() as f64) * test_fraction).round() as usize;
        (self.subset(&idx[n_test..]), self.subset(&idx[..n_test]))
    }
}

/// Gaussian blobs: `classes` centres on a sphere of radius 2 in `dim` dimensions, unit-variance noise.
pub fn blobs(n: usize, dim: usize, classes: usize, seed: u64) -> Dataset {
    let mut rng = tessera_core::rng::derived(seed, "blobs");
    let mut normal = move || -> f64 {
        // Box–Muller; the `rand` 0.8 API has no normal distribution without rand_distr.
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let centres: Vec<Vec<f64>> = (0..classes)
        .map(|_| {
            let v: Vec<f64> = (0..dim).map(|_| normal()).collect();
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
            v.iter().map(|a| 2.0 * a / norm).collect()
        })
        .collect();
    let mut x = Vec::with_capacity(n * dim);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % classes;
        for centre in &centres[c] {
            x.push(centre + 0.7 * normal());
        }
        y.push(c);
    }
    Dataset {
        name: "blobs".into(),
        x,
        y,
        dim,
        classes,
    }
}

/// Parses the digits CSV (1797 rows of 64 pixel values in 0..=16 and a label), scaling pixels to `[0, 1]`.
pub fn parse_digits_csv(text: &str) -> Result<Dataset> {
    let bad = |msg: String| QnError::Data {
        name: "digits".into(),
        msg,
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (ln, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let vals: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(format!("line {}: {e}", ln + 1)))?;
        if vals.len() != 65 {
            return Err(bad(format!(
                "line {}: {} fields, expected 65",
                ln + 1,
                vals.len()
            )));
        }
        x.extend(vals[..64].iter().map(|v| v / 16.0));
        let label = vals[64];
        if !(0.0..10.0).contains(&label) || label.fract() != 0.0 {
            return Err(bad(format!("line {}: label {label}", ln + 1)));
        }
        y.push(label as usize);
    }
    if y.is_empty() {
        return Err(bad("no rows".into()));
    }
    Ok(Dataset {
        name: "digits".into(),
        x,
        y,
        dim: 64,
        classes: 10,
    })
}

fn gunzip(path: &Path) -> Result<Vec<u8>> {
    let raw = tessera_core::fsx::read(path)?;
    let mut out = Vec::new();
    GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| QnError::Data {
            name: path.display().to_string(),
            msg: format!("gzip: {e}"),
        })?;
    Ok(out)
}

/// Where the asset step keeps `digits.csv.gz`.
pub fn digits_cache_path() -> PathBuf {
    tessera_core::assets::home()
        .join("data")
        .join("sklearn")
        .join("digits.csv.gz")
}

/// Finds `digits.csv.gz` (`$TESSERA_DATA`/`shared/data` under `sklearn/`, then the cache), fetching it from the
/// `scikit-learn` wheel with pip unless `offline`; the sha256 is checked every time.
pub fn digits_path(offline: bool) -> Result<PathBuf> {
    let candidate = tessera_core::assets::resolve_data("sklearn/digits.csv.gz")
        .ok()
        .filter(|p| p.is_file());
    let path = match candidate {
        Some(p) => p,
        None => {
            let p = digits_cache_path();
            if !p.is_file() {
                if offline {
                    return Err(tessera_core::Error::Asset {
                        name: "digits".into(),
                        msg: format!(
                            "{} is missing and --offline is set; run without --offline once",
                            p.display()
                        ),
                    }
                    .into());
                }
                fetch_digits(&p)?;
            }
            p
        }
    };
    let got = tessera_core::assets::sha256_file(&path)?;
    if got != DIGITS_SHA256 {
        return Err(tessera_core::Error::Asset {
            name: "digits".into(),
            msg: format!(
                "{} has sha256 {got}, expected {DIGITS_SHA256}; delete it to refetch",
                path.display()
            ),
        }
        .into());
    }
    Ok(path)
}

/// `pip download --no-deps scikit-learn==…`, then extracts only `digits.csv.gz` to `dest`.
fn fetch_digits(dest: &Path) -> Result<()> {
    let asset_err = |msg: String| {
        QnError::Core(tessera_core::Error::Asset {
            name: "digits".into(),
            msg,
        })
    };
    let dir = dest.parent().unwrap_or(Path::new("."));
    let dl = dir.join(".download");
    std::fs::create_dir_all(&dl).map_err(|e| tessera_core::Error::io(&dl, e))?;
    let python = std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "tessera: fetching digits from the {SKLEARN_REQUIREMENT} wheel into {}",
        dir.display()
    );
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(&dl)
        .arg(SKLEARN_REQUIREMENT)
        .status()
        .map_err(|e| asset_err(format!("could not run `{python} -m pip`: {e}")))?;
    if !status.success() {
        return Err(asset_err(format!(
            "`pip download {SKLEARN_REQUIREMENT}` failed ({status})"
        )));
    }
    let wheel = std::fs::read_dir(&dl)
        .map_err(|e| tessera_core::Error::io(&dl, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| asset_err(format!("pip left no wheel in {}", dl.display())))?;
    let script = "import sys, zipfile\nopen(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))";
    // Python writes a temporary file next to the destination, renamed into place once complete.
    let part = dest.with_extension("part");
    let status = Command::new(&python)
        .args(["-c", script])
        .arg(&wheel)
        .arg(DIGITS_MEMBER)
        .arg(&part)
        .status()
        .map_err(|e| asset_err(format!("could not extract {DIGITS_MEMBER}: {e}")))?;
    let _ = std::fs::remove_dir_all(&dl);
    if !status.success() {
        return Err(asset_err(format!(
            "extracting {DIGITS_MEMBER} from {} failed",
            wheel.display()
        )));
    }
    tessera_core::fsx::rename_durable(&part, dest)?;
    Ok(())
}

/// Loads scikit-learn's digits (1797 × 64, 10 classes).
pub fn digits(offline: bool) -> Result<Dataset> {
    let path = digits_path(offline)?;
    let bytes = gunzip(&path)?;
    let text = String::from_utf8(bytes).map_err(|e| QnError::Data {
        name: "digits".into(),
        msg: e.to_string(),
    })?;
    parse_digits_csv(&text)
}

/// Folders searched for the Fashion-MNIST IDX files.
pub fn fashion_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(p) = tessera_core::assets::resolve_data("fashion-mnist") {
        v.push(p);
    }
    v.push(
        tessera_core::assets::home()
            .join("data")
            .join("fashion-mnist"),
    );
    v.push(PathBuf::from("/usr/share/datasets/fashion-mnist"));
    v
}

fn read_idx(path: &Path, expect_magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = gunzip(path)?;
    let bad = |msg: String| QnError::Data {
        name: path.display().to_string(),
        msg,
    };
    if bytes.len() < 8 {
        return Err(bad("truncated header".into()));
    }
    let be = |o: usize| u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let magic = be(0);
    if magic != expect_magic {
        return Err(bad(format!("magic {magic:#x}, expected {expect_magic:#x}")));
    }
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated header".into()));
    }
    let shape: Vec<usize> = (0..ndim).map(|i| be(4 + 4 * i) as usize).collect();
    let count: usize = shape.iter().product();
    if bytes.len() != header + count {
        return Err(bad(format!(
            "{} data bytes, expected {count}",
            bytes.len() - header
        )));
    }
    Ok((shape, bytes[header..].to_vec()))
}

/// Loads Fashion-MNIST (`train` or `t10k`), keeping the first `limit` images, average-pooled by `pool`×`pool`
/// (pool 4 → 7×7 = 49 features), pixels scaled to `[0, 1]`.
pub fn fashion_mnist(split: &str, limit: usize, pool: usize) -> Result<Dataset> {
    let dir = fashion_dirs()
        .into_iter()
        .find(|d| d.join(format!("{split}-images-idx3-ubyte.gz")).is_file())
        .ok_or_else(|| {
            QnError::Core(tessera_core::Error::Asset {
                name: "fashion-mnist".into(),
                msg: format!(
                    "no {split}-images-idx3-ubyte.gz found; `apt-get install {FASHION_DEB}` (or `apt-get download {FASHION_DEB}` \
                     and `dpkg-deb -x` it, then copy usr/share/datasets/fashion-mnist to {})",
                    tessera_core::assets::home().join("data").join("fashion-mnist").display()
                ),
            })
        })?;
    let (shape, pixels) = read_idx(&dir.join(format!("{split}-images-idx3-ubyte.gz")), 0x0803)?;
    let (_, labels) = read_idx(&dir.join(format!("{split}-labels-idx1-ubyte.gz")), 0x0801)?;
    let (n, rows, cols) = (shape[0].min(labels.len()).min(limit), shape[1], shape[2]);
    if pool == 0 || rows % pool != 0 || cols % pool != 0 {
        return Err(QnError::InvalidInput(format!(
            "pool {pool} must divide the {rows}×{cols} image"
        )));
    }
    let (pr, pc) = (rows / pool, cols / pool);
    let mut x = Vec::with_capacity(n * pr * pc);
    for img in 0..n {
        let base = img * rows * cols;
        for r in 0..pr {
            for c in 0..pc {
                let mut s = 0.0;
                for dr in 0..pool {
                    for dc in 0..pool {
                        s += pixels[base + (r * pool + dr) * cols + c * pool + dc] as f64;
                    }
                }
                x.push(s / (255.0 * (pool * pool) as f64));
            }
        }
    }
    let y = labels[..n].iter().map(|&l| l as usize).collect();
    Ok(Dataset {
        name: "fashion-mnist".into(),
        x,
        y,
        dim: pr * pc,
        classes: 10,
    })
}
