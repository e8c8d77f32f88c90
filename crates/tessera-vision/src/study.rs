//! The sparsity-distribution study of "Rethinking Pruning for Vision-Language Models" (He et al. 2024,
//! README figure `diff_modalities.png`) on this VLM: the same sparsity on both towers, on the language tower
//! only, and on the vision tower only, for each method and sparsity, scored by easy-vqa accuracy on an evenly
//! spaced test slice. Each configuration's result is written to its own JSON file as soon as it is done and a
//! rerun skips finished ones, so an interrupted study resumes.
use crate::data::EasyVqa;
use crate::error::Result;
use crate::eval::{evaluate, EvalConfig};
use crate::llava::Vlm;
use crate::prune::{measure, prune_loaded, TowerSpec};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tessera_prune::prune::Method;
use tessera_prune::Pattern;

/// Which towers a configuration prunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// Vision and language at the same sparsity.
    Both,
    /// Language only.
    LanguageOnly,
    /// Vision only.
    VisionOnly,
}

impl Setting {
    /// Every setting.
    pub const ALL: [Setting; 3] = [Setting::Both, Setting::LanguageOnly, Setting::VisionOnly];
    fn name(self) -> &'static str {
        match self {
            Setting::Both => "both",
            Setting::LanguageOnly => "language-only",
            Setting::VisionOnly => "vision-only",
        }
    }
}

/// A study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyConfig {
    /// Dense VLM directory.
    pub model: PathBuf,
    /// Methods.
    pub methods: Vec<Method>,
    /// Sparsities (ratios, N:M).
    pub sparsities: Vec<Pattern>,
    /// easy-vqa test questions per configuration.
    pub limit: usize,
    /// Calibration pairs.
    pub calib: usize,
    /// Output directory.
    pub out: PathBuf,
    /// Never download.
    pub offline: bool,
}

/// One configuration's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRow {
    /// Method (`None` for the dense model).
    pub method: Option<Method>,
    /// Setting (`None` for the dense model).
    pub setting: Option<Setting>,
    /// Pattern as written (`0.5`, `2:4`, `dense`).
    pub pattern: String,
    /// Nominal sparsity of the pruned tower(s).
    pub sparsity: f64,
    /// Measured vision sparsity.
    pub vision_sparsity: f64,
    /// Measured language sparsity.
    pub language_sparsity: f64,
    /// easy-vqa accuracy on the slice.
    pub easyvqa_accuracy: f64,
    /// Questions scored.
    pub questions: usize,
    /// Wall seconds (prune + eval).
    pub seconds: f64,
}

/// The whole study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyResult {
    /// Dense first, then every configuration done.
    pub rows: Vec<StudyRow>,
    /// The SVG plot.
    pub plot: PathBuf,
}

/// Runs (or resumes) the study; `log` is told about each configuration.
pub fn run(cfg: &StudyConfig, log: &mut dyn FnMut(&str)) -> Result<StudyResult> {
    if cfg.calib == 0 || cfg.calib > 4096 || cfg.limit == 0 {
        return Err(crate::VisionError::Invalid(
            "the study needs 1 ≤ --calib ≤ 4096 and --limit ≥ 1".into(),
        ));
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| crate::error::io(&cfg.out, e))?;
    let side = Vlm::load_file(&cfg.model)?.vision.image_size;
    let vqa = EasyVqa::load(&crate::data::easy_vqa_root(cfg.offline)?, side, None)?;
    let ev = EvalConfig {
        model: cfg.model.clone(),
        vqa_limit: Some(cfg.limit),
        fashion_limit: Some(0),
        offline: cfg.offline,
    };
    let mut rows = vec![];
    let one = |name: String,
               method: Option<Method>,
               setting: Option<Setting>,
               pat: Option<Pattern>,
               log: &mut dyn FnMut(&str)|
     -> Result<StudyRow> {
        let path = cfg.out.join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(r) = serde_json::from_str::<StudyRow>(&text) {
                log(&format!("{name}: done before ({:.3})", r.easyvqa_accuracy));
                return Ok(r);
            }
        }
        let t0 = std::time::Instant::now();
        let (mut vlm, _) = Vlm::load(&cfg.model, cfg.offline)?;
        if let (Some(m), Some(s), Some(p)) = (method, setting, pat) {
            let v = TowerSpec((s != Setting::LanguageOnly).then_some(p));
            let l = TowerSpec((s != Setting::VisionOnly).then_some(p));
            prune_loaded(&mut vlm, &vqa, m, v, l, cfg.calib, 0)?;
        }
        let (vs, ls) = measure(&vlm)?;
        let acc = evaluate(&vlm, Some(&vqa), None, &ev, &mut |_, _, _| {})?
            .easyvqa_accuracy
            .unwrap_or(0.0);
        let r = StudyRow {
            method,
            setting,
            pattern: pat.map_or("dense".into(), |p| p.to_string()),
            sparsity: pat.map_or(0.0, |p| p.sparsity()),
            vision_sparsity: vs,
            language_sparsity: ls,
            easyvqa_accuracy: acc,
            questions: cfg.limit,
            seconds: t0.elapsed().as_secs_f64(),
        };
        tessera_core::fsx::write_json_atomic(&path, &r)?;
        log(&format!("{name}: accuracy {acc:.3} ({:.0} s)", r.seconds));
        Ok(r)
    };
    rows.push(one("dense".into(), None, None, None, log)?);
    for &m in &cfg.methods {
        for &p in &cfg.sparsities {
            for s in Setting::ALL {
                let name = format!("{m}-{}-{}", s.name(), p.to_string().replace(':', "of"));
                rows.push(one(name, Some(m), Some(s), Some(p), log)?);
            }
        }
    }
    let plot = cfg.out.join("study.svg");
    let dense = rows[0].easyvqa_accuracy;
    let mut series = vec![];
    for &m in &cfg.methods {
        for s in Setting::ALL {
            let mut pts = vec![(0.0, dense)];
            for r in rows
                .iter()
                .filter(|r| r.method == Some(m) && r.setting == Some(s))
            {
                if !r.pattern.contains(':') {
                    pts.push((r.sparsity, r.easyvqa_accuracy));
                }
            }
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push(tessera_core::report::Series::new(
                format!("{m} {}", s.name()),
                pts,
            ));
        }
    }
    tessera_core::report::line_plot_svg(
        &plot,
        "easy-vqa accuracy vs unstructured sparsity of the pruned tower(s)",
        "sparsity",
        "accuracy",
        &series,
    )?;
    let res = StudyResult { rows, plot };
    tessera_core::fsx::write_json_atomic(cfg.out.join("study.json"), &res)?;
    Ok(res)
}
