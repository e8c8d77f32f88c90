//! Training-side benchmarks of the runtime (not tests): `tessera bench lora` (LoRA on q/v or all seven
//! projections, plain LoRA vs SparseLoRA on a masked model, trainable vs frozen base) and `tessera bench perturb`
//! (one in-place seeded perturbation of every parameter vs one forward pass). Memory is the live heap measured by
//! [`tessera_core::alloc::HeapScope`] (zero, and flagged, when the counting allocator is not installed) next to the
//! process's peak RSS.
use crate::error::{LmError, Result};
use crate::linear::{Grad, LoraForm, Proj};
use crate::model::{Forward, Input, Llama, LoraSpec};
use crate::perturb::{ParamSet, PerturbStats, Perturbation};
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;
use tessera_core::alloc::HeapScope;

/// One configuration of the LoRA benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraCase {
    /// Short name (`qv_trainable`, ...), the key in the report.
    pub name: String,
    /// Projections with an adapter.
    pub targets: Vec<Proj>,
    /// Trainable ([`Grad::All`]) or frozen ([`Grad::Adapters`]) base.
    pub grad: Grad,
    /// Adapter form.
    pub form: LoraForm,
    /// Fraction of every projection's weights masked out before the adapters are attached (0 = dense model).
    pub sparsity: f64,
}

/// The benchmark's cases: the two q/v cases of the original benchmark (trainable vs frozen base), LoRA on all
/// seven projections, and on a 50%-sparse model plain LoRA (`W⊙M + sBA`) against SparseLoRA (`(W + sBA)⊙M`).
pub fn lora_cases() -> Vec<LoraCase> {
    let qv = vec![Proj::Q, Proj::V];
    let all = Proj::ALL.to_vec();
    let case = |name: &str, t: &Vec<Proj>, grad, form, sparsity| LoraCase {
        name: name.into(),
        targets: t.clone(),
        grad,
        form,
        sparsity,
    };
    vec![
        case("qv_trainable", &qv, Grad::All, LoraForm::Lora, 0.0),
        case("qv_frozen", &qv, Grad::Adapters, LoraForm::Lora, 0.0),
        case("all_frozen", &all, Grad::Adapters, LoraForm::Lora, 0.0),
        case(
            "all_lora_sparse50",
            &all,
            Grad::Adapters,
            LoraForm::Lora,
            0.5,
        ),
        case(
            "all_sparselora_sparse50",
            &all,
            Grad::Adapters,
            LoraForm::SparseLora,
            0.5,
        ),
    ]
}

/// The case named `name`.
pub fn lora_case(name: &str) -> Result<LoraCase> {
    lora_cases()
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            LmError::Invalid(format!(
                "unknown LoRA bench case `{name}` (expected one of {})",
                lora_cases()
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// What one case measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraCaseResult {
    /// The case.
    pub case: LoraCase,
    /// Median wall time of forward + backward, seconds.
    pub seconds: f64,
    /// Peak live heap above the prepared model during a step, bytes (0 when not counted).
    pub peak_heap_bytes: usize,
    /// Whether the counting allocator was installed.
    pub heap_counted: bool,
    /// Resident memory of the prepared model, MiB.
    pub loaded_mb: Option<f64>,
    /// Peak RSS above that during the steps, MiB.
    pub peak_extra_mb: Option<f64>,
    /// Tensors that received a gradient.
    pub gradients: usize,
    /// Adapter parameters.
    pub adapter_params: usize,
}

/// Puts a magnitude mask with `sparsity` of the smallest |w| of each projection removed (baked in).
pub fn mask_by_magnitude(model: &mut Llama, sparsity: f64) -> Result<()> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(LmError::Invalid(format!(
            "sparsity {sparsity} out of range [0, 1)"
        )));
    }
    if sparsity == 0.0 {
        return Ok(());
    }
    for b in &mut model.blocks {
        for (_, l) in b.linears_mut() {
            let w = l.weight().as_tensor().detach();
            let mut a: Vec<f32> = w.abs()?.flatten_all()?.to_vec1()?;
            let k = ((a.len() as f64) * sparsity) as usize;
            let thr = *a.select_nth_unstable_by(k, f32::total_cmp).1;
            let mask = w.abs()?.ge(thr)?.to_dtype(candle_core::DType::F32)?;
            l.set_mask(mask)?;
        }
    }
    Ok(())
}

/// Runs one case in this process: masks, adapters, then `reps` forward + backward steps on `tokens`
/// (length ≥ 2). Run each case in a fresh process for its own RSS figure.
pub fn run_lora_case(
    model: &mut Llama,
    tokens: &[u32],
    case: &LoraCase,
    rank: usize,
    reps: usize,
) -> Result<LoraCaseResult> {
    mask_by_magnitude(model, case.sparsity)?;
    let spec = LoraSpec {
        targets: case.targets.clone(),
        layers: None,
        rank,
        alpha: 2.0 * rank as f64,
        form: case.form,
        seed: 0,
    };
    model.add_lora(&spec)?;
    let adapter_params = model.lora_vars().iter().map(|v| v.elem_count()).sum();
    let loaded = tessera_core::mem::rss_bytes();
    tessera_core::mem::reset_peak_rss();
    let mut secs = Vec::new();
    let (mut gradients, mut peak_heap) = (0, 0);
    for _ in 0..reps.max(1) {
        let scope = HeapScope::start();
        let t0 = Instant::now();
        let grads = model.next_token_loss_with(tokens, case.grad)?.backward()?;
        secs.push(t0.elapsed().as_secs_f64());
        peak_heap = peak_heap.max(scope.reading().peak_growth);
        let mut vars: Vec<Var> = model.named_vars().into_iter().map(|(_, v)| v).collect();
        vars.extend(model.lora_vars());
        gradients = vars.iter().filter(|v| grads.get(v).is_some()).count();
    }
    secs.sort_by(f64::total_cmp);
    let peak = tessera_core::mem::peak_rss_bytes();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    Ok(LoraCaseResult {
        case: case.clone(),
        seconds: secs[secs.len() / 2],
        peak_heap_bytes: peak_heap,
        heap_counted: tessera_core::alloc::installed(),
        loaded_mb: loaded.map(mib),
        peak_extra_mb: loaded.zip(peak).map(|(l, p)| mib(p.saturating_sub(l))),
        gradients,
        adapter_params,
    })
}

/// Settings of `tessera bench lora`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraBenchConfig {
    /// Model name or path (reported).
    pub model: String,
    /// Tokens per step.
    pub tokens: usize,
    /// LoRA rank (alpha = 2·rank).
    pub rank: usize,
    /// Steps per case.
    pub reps: usize,
    /// Case names (default: all of [`lora_cases`]).
    pub cases: Vec<String>,
}

/// The report of `tessera bench lora`: every case side by side, with the original benchmark's keys
/// (`trainable_base`, `frozen_base`, `memory_ratio`, `speed_ratio`: q/v, trainable vs frozen).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoraBenchReport {
    /// Model.
    pub model: String,
    /// Tokens per step.
    pub tokens: usize,
    /// Rank.
    pub rank: usize,
    /// q/v with trainable base (when run).
    pub trainable_base: Option<LoraCaseResult>,
    /// q/v with frozen base (when run).
    pub frozen_base: Option<LoraCaseResult>,
    /// Peak RSS growth, trainable / frozen base.
    pub memory_ratio: Option<f64>,
    /// Step time, trainable / frozen base.
    pub speed_ratio: Option<f64>,
    /// Every case by name.
    pub cases: BTreeMap<String, LoraCaseResult>,
    /// Step time of each case relative to `qv_frozen`.
    pub seconds_vs_qv_frozen: BTreeMap<String, f64>,
    /// Peak heap of each case relative to `qv_frozen`.
    pub heap_vs_qv_frozen: BTreeMap<String, f64>,
    /// SparseLoRA step time / plain LoRA step time on the sparse model.
    pub sparselora_vs_lora_seconds: Option<f64>,
    /// SparseLoRA peak heap / plain LoRA peak heap on the sparse model.
    pub sparselora_vs_lora_heap: Option<f64>,
}

/// Runs every case of `cfg` through `run_case` (typically a fresh worker process per case) and compares them.
pub fn lora_bench(
    cfg: &LoraBenchConfig,
    run_case: &mut dyn FnMut(&LoraCase) -> Result<LoraCaseResult>,
) -> Result<LoraBenchReport> {
    let names: Vec<String> = if cfg.cases.is_empty() {
        lora_cases().into_iter().map(|c| c.name).collect()
    } else {
        cfg.cases.clone()
    };
    let cases = names
        .iter()
        .map(|n| lora_case(n))
        .collect::<Result<Vec<_>>>()?;
    let mut out = BTreeMap::new();
    for c in &cases {
        out.insert(c.name.clone(), run_case(c)?);
    }
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    };
    let tr = out.get("qv_trainable").cloned();
    let fr = out.get("qv_frozen").cloned();
    let memory_ratio = ratio(
        tr.as_ref().and_then(|r| r.peak_extra_mb),
        fr.as_ref().and_then(|r| r.peak_extra_mb),
    );
    let speed_ratio = ratio(
        tr.as_ref().map(|r| r.seconds),
        fr.as_ref().map(|r| r.seconds),
    );
    let (mut sec_rel, mut heap_rel) = (BTreeMap::new(), BTreeMap::new());
    if let Some(f) = &fr {
        for (k, r) in &out {
            if let Some(x) = ratio(Some(r.seconds), Some(f.seconds)) {
                sec_rel.insert(k.clone(), x);
            }
            if let Some(x) = ratio(
                Some(r.peak_heap_bytes as f64),
                Some(f.peak_heap_bytes as f64),
            ) {
                heap_rel.insert(k.clone(), x);
            }
        }
    }
    let (sl, pl) = (
        out.get("all_sparselora_sparse50"),
        out.get("all_lora_sparse50"),
    );
    Ok(LoraBenchReport {
        model: cfg.model.clone(),
        tokens: cfg.tokens,
        rank: cfg.rank,
        trainable_base: tr,
        frozen_base: fr,
        memory_ratio,
        speed_ratio,
        seconds_vs_qv_frozen: sec_rel,
        heap_vs_qv_frozen: heap_rel,
        sparselora_vs_lora_seconds: ratio(sl.map(|r| r.seconds), pl.map(|r| r.seconds)),
        sparselora_vs_lora_heap: ratio(
            sl.map(|r| r.peak_heap_bytes as f64),
            pl.map(|r| r.peak_heap_bytes as f64),
        ),
        cases: out,
    })
}

/// The report of `tessera bench perturb`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerturbBench {
    /// Parameters perturbed.
    pub parameters: usize,
    /// Their f32 bytes.
    pub weights_bytes: usize,
    /// Tokens of the forward pass compared against.
    pub forward_tokens: usize,
    /// Median seconds of one in-place perturbation of every parameter.
    pub perturb_seconds: f64,
    /// Median seconds of one inference forward pass.
    pub forward_seconds: f64,
    /// `perturb_seconds / forward_seconds`.
    pub perturb_vs_forward: f64,
    /// Peak live-heap growth during one perturbation, bytes.
    pub perturb_peak_heap_bytes: usize,
    /// Peak live-heap growth during one forward pass, bytes.
    pub forward_peak_heap_bytes: usize,
    /// `perturb_peak_heap_bytes / weights_bytes` (target < 0.05).
    pub perturb_heap_fraction: f64,
    /// Whether the counting allocator was installed (else every heap figure is 0).
    pub heap_counted: bool,
    /// Largest |θ_after − θ_before| over a probe tensor after `+μ, −2μ, +μ`.
    pub restore_max_abs_error: f32,
    /// What one pass touched.
    pub stats: PerturbStats,
}

/// Times and measures one in-place perturbation of every base parameter (`μ = 1e-3`, as MeZO) against one
/// forward pass over `tokens`, `reps` times each; the model is restored (`+μ, −2μ, +μ`) at the end.
pub fn perturb_bench(model: &Llama, tokens: &[u32], reps: usize) -> Result<PerturbBench> {
    if tokens.is_empty() {
        return Err(LmError::Invalid("the forward pass needs tokens".into()));
    }
    let mu = 1e-3f32;
    let p = Perturbation::new(0, ParamSet::Base);
    let ids = Tensor::new(tokens, model.device())?.unsqueeze(0)?;
    let probe = model.blocks[0].down.weight().as_tensor().detach().copy()?;
    model.forward(Input::Ids(&ids), Forward::default())?; // warm-up
    let (mut pt, mut ft, mut ph, mut fh) = (vec![], vec![], 0usize, 0usize);
    let mut stats = PerturbStats::default();
    for _ in 0..reps.max(1) {
        for c in [mu, -2.0 * mu, mu] {
            let scope = HeapScope::start();
            let t0 = Instant::now();
            stats = p.apply(model, c)?;
            pt.push(t0.elapsed().as_secs_f64());
            ph = ph.max(scope.reading().peak_growth);
        }
        let scope = HeapScope::start();
        let t0 = Instant::now();
        let out = model.forward(
            Input::Ids(&ids),
            Forward {
                last_only: true,
                ..Default::default()
            },
        )?;
        ft.push(t0.elapsed().as_secs_f64());
        drop(out);
        fh = fh.max(scope.reading().peak_growth);
    }
    let after = model.blocks[0].down.weight().as_tensor().detach();
    let err = (after - &probe)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ps, fs) = (med(&mut pt), med(&mut ft));
    let parameters = stats.elements;
    let weights_bytes = parameters * 4;
    Ok(PerturbBench {
        parameters,
        weights_bytes,
        forward_tokens: tokens.len(),
        perturb_seconds: ps,
        forward_seconds: fs,
        perturb_vs_forward: ps / fs,
        perturb_peak_heap_bytes: ph,
        forward_peak_heap_bytes: fh,
        perturb_heap_fraction: ph as f64 / weights_bytes.max(1) as f64,
        heap_counted: tessera_core::alloc::installed(),
        restore_max_abs_error: err,
        stats,
    })
}
