//! Speed measurement of the runtime (used by `tessera bench decode` and the tour): prompt processing and greedy
//! decoding timed separately, plus the process's peak resident memory.
//!
//! [`bench_decode`] is the whole `tessera bench decode` comparison: our runtime and llama.cpp (on an f32 GGUF we
//! write, and on the original file), each in its own process so that peak memory is per engine. Our engine's
//! process is a [`WorkerCommand`] (the `tessera` binary in worker mode) that runs [`decode_worker`] and prints its
//! [`DecodeWorkerOutput`] as JSON.
use crate::error::Result;
use crate::generate::{sample, SamplingParams};
use crate::model::{Cache, Llama};
use crate::weights::WeightDtype;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The benchmark prompt (37 tokens with SmolLM2's tokenizer).
pub const BENCH_PROMPT: &str = "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined movable metal type, oil-based inks and a wooden hand press into a system that could print books quickly";
/// Default greedy decode steps of the benchmark and the tour.
pub const BENCH_STEPS: usize = 63;

/// Measured speed of one engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecodeSpeed {
    /// Prompt tokens processed per second (one batched forward).
    pub prompt_tokens_per_s: f64,
    /// Generated tokens per second (one forward per token, KV cache).
    pub decode_tokens_per_s: f64,
    /// Peak resident set size of this process, MiB (Linux `VmHWM`).
    pub peak_rss_mb: Option<f64>,
}

/// Peak resident set size of this process in MiB, where the OS reports it.
pub fn peak_rss_mb() -> Option<f64> {
    tessera_core::mem::peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0))
}

/// Time and memory of one training step (forward + backward, no optimizer update).
#[derive(Debug, Clone, Serialize)]
pub struct StepCost {
    /// Whether base parameters were frozen ([`crate::Grad::Adapters`]) or trainable ([`crate::Grad::All`]).
    pub freeze_base: bool,
    /// Wall time of forward + backward, seconds.
    pub seconds: f64,
    /// Peak resident memory during the step minus resident memory before it, MiB (Linux only).
    pub peak_extra_mb: Option<f64>,
    /// Number of tensors that received a gradient.
    pub gradients: usize,
}

/// One next-token cross-entropy step on `tokens` (length ≥ 2), measuring time and the peak memory it adds.
/// The model is expected to carry LoRA adapters; with `freeze_base` only they (and no base weight) get gradients.
pub fn train_step_cost(model: &Llama, tokens: &[u32], freeze_base: bool) -> Result<StepCost> {
    let before = tessera_core::mem::rss_bytes();
    let reset = tessera_core::mem::reset_peak_rss();
    let t0 = Instant::now();
    let grads = model.next_token_loss(tokens, freeze_base)?.backward()?;
    let seconds = t0.elapsed().as_secs_f64();
    let peak = tessera_core::mem::peak_rss_bytes();
    let mut vars: Vec<candle_core::Var> = model.named_vars().into_iter().map(|(_, v)| v).collect();
    vars.extend(model.lora_vars());
    let gradients = vars.iter().filter(|v| grads.get(v).is_some()).count();
    let peak_extra_mb = match (reset, before, peak) {
        (true, Some(b), Some(p)) => Some(p.saturating_sub(b) as f64 / (1024.0 * 1024.0)),
        _ => None,
    };
    Ok(StepCost {
        freeze_base,
        seconds,
        peak_extra_mb,
        gradients,
    })
}

/// Times one prompt forward and `steps` greedy decode steps (after a short warm-up).
pub fn measure_decode(model: &Llama, prompt: &[u32], steps: usize) -> Result<DecodeSpeed> {
    let layers = model.config.num_hidden_layers;
    // Warm-up: touch every weight once.
    model.next_logits(&prompt[..prompt.len().min(4)], &mut Cache::new(layers))?;
    let mut cache = Cache::new(layers);
    let t0 = Instant::now();
    let mut row = model.next_logits(prompt, &mut cache)?;
    let prompt_s = t0.elapsed().as_secs_f64();
    let greedy = SamplingParams::default();
    let mut rng = tessera_core::rng::seeded(0);
    let t1 = Instant::now();
    for _ in 0..steps {
        let (next, _) = sample(&row, &greedy, &mut rng);
        row = model.next_logits(&[next], &mut cache)?;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    Ok(DecodeSpeed {
        prompt_tokens_per_s: prompt.len() as f64 / prompt_s,
        decode_tokens_per_s: steps as f64 / decode_s,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// What the runtime's worker process prints (one JSON object).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecodeWorkerOutput {
    /// The measured speed.
    #[serde(flatten)]
    pub speed: DecodeSpeed,
    /// The benchmark prompt's token ids (passed on to llama.cpp so both engines see the same prompt).
    pub prompt_ids: Vec<u32>,
}

/// The worker's job: load `model` in the representation `dtype`, encode [`BENCH_PROMPT`] and time it (run inside
/// the worker process).
pub fn decode_worker(model: &Path, steps: usize, dtype: WeightDtype) -> Result<DecodeWorkerOutput> {
    let m = crate::load_with(model, &crate::LoadOptions { dtype })?;
    let prompt_ids = m.tokenizer()?.encode(BENCH_PROMPT)?;
    let speed = measure_decode(&m, &prompt_ids, steps)?;
    Ok(DecodeWorkerOutput { speed, prompt_ids })
}

/// How to start the runtime's worker process: `exe args… --steps N --dtype D <model>` must run [`decode_worker`] and print
/// its [`DecodeWorkerOutput`] as one JSON object on stdout.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The executable.
    pub exe: PathBuf,
    /// Leading arguments (e.g. `bench decode --worker --json`).
    pub args: Vec<String>,
}

/// Settings of [`bench_decode`].
#[derive(Debug, Clone)]
pub struct DecodeBenchConfig {
    /// The model (a `.gguf` file enables the llama.cpp rows).
    pub model: PathBuf,
    /// Threads for every engine.
    pub threads: usize,
    /// Greedy decode steps.
    pub steps: usize,
    /// Python interpreter with llama-cpp-python.
    pub python: String,
    /// Where the f32 GGUF for llama.cpp is written (once) and found again.
    pub f32_dir: PathBuf,
    /// Runs of every engine, interleaved (A B C A B C …), each in its own process.
    pub reps: usize,
    /// Our engine's weight representations, one row each (`tessera f32`, `tessera file`, ...).
    pub dtypes: Vec<WeightDtype>,
}

/// Median, minimum and maximum of a set of runs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `v` (`None` when empty).
    pub fn of(v: &[f64]) -> Option<Self> {
        if v.is_empty() {
            return None;
        }
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: s[0],
            max: s[n - 1],
        })
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} [{:.2}–{:.2}]", self.median, self.min, self.max)
    }
}

/// All runs of one engine, with the medians as the row's headline figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineRuns {
    /// Median prompt and decode speed and peak memory.
    #[serde(flatten)]
    pub median: DecodeSpeed,
    /// Spread of decode tokens/s.
    pub decode: Spread,
    /// Spread of prompt tokens/s.
    pub prompt: Spread,
    /// Every run, in order.
    pub runs: Vec<DecodeSpeed>,
}

impl EngineRuns {
    /// Medians and spreads of `runs` (`None` when empty).
    pub fn from_runs(runs: Vec<DecodeSpeed>) -> Option<Self> {
        let d: Vec<f64> = runs.iter().map(|r| r.decode_tokens_per_s).collect();
        let p: Vec<f64> = runs.iter().map(|r| r.prompt_tokens_per_s).collect();
        let m: Vec<f64> = runs.iter().filter_map(|r| r.peak_rss_mb).collect();
        let (decode, prompt) = (Spread::of(&d)?, Spread::of(&p)?);
        Some(EngineRuns {
            median: DecodeSpeed {
                prompt_tokens_per_s: prompt.median,
                decode_tokens_per_s: decode.median,
                peak_rss_mb: Spread::of(&m).map(|s| s.median),
            },
            decode,
            prompt,
            runs,
        })
    }
}

/// One ratio between two engines over paired runs (run `i` of one over run `i` of the other).
#[derive(Debug, Clone, Serialize)]
pub struct RatioRow {
    /// The engine measured.
    pub engine: String,
    /// The engine it is divided by.
    pub baseline: String,
    /// Which figure (`decode_tokens_per_s`, `prompt_tokens_per_s`, `peak_rss_mb`).
    pub figure: String,
    /// Spread of the paired ratios.
    pub ratio: Spread,
}

/// One engine's row: its speed, or why it did not run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EngineResult {
    /// The engine did not run (e.g. llama-cpp-python missing).
    Skipped {
        /// Why.
        skipped: String,
    },
    /// The engine ran (every run).
    Measured(EngineRuns),
}

impl EngineResult {
    /// The speed, when measured.
    pub fn speed(&self) -> Option<&DecodeSpeed> {
        match self {
            EngineResult::Measured(s) => Some(&s.median),
            EngineResult::Skipped { .. } => None,
        }
    }
}

/// Label of our runtime's f32 row.
pub const ENGINE_TESSERA: &str = "tessera f32";

/// Label of our runtime's row for `dtype`.
pub fn engine_label(dtype: WeightDtype) -> String {
    format!("tessera {dtype}")
}
/// Label of llama.cpp on the f32 GGUF (the ratios' baseline).
pub const ENGINE_LLAMA_CPP_F32: &str = "llama.cpp f32";
/// Label of llama.cpp on the original (quantized) file.
pub const ENGINE_LLAMA_CPP_ORIGINAL: &str = "llama.cpp original";

/// The `tessera bench decode` result (its `--json` object).
#[derive(Debug, Clone, Serialize)]
pub struct DecodeBench {
    /// The model file.
    pub model: PathBuf,
    /// Threads per engine.
    pub threads: usize,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Greedy decode steps.
    pub steps: usize,
    /// Runs per engine (interleaved).
    pub reps: usize,
    /// Every engine's row, by label.
    #[serde(serialize_with = "ordered_map")]
    pub engines: Vec<(String, EngineResult)>,
    /// Median over paired runs of our f32 decode speed over llama.cpp f32's.
    pub decode_ratio_vs_llama_cpp_f32: Option<f64>,
    /// Median over paired runs of our f32 prompt speed over llama.cpp f32's.
    pub prompt_ratio_vs_llama_cpp_f32: Option<f64>,
    /// Every ratio with its spread: each `tessera <dtype>` row against llama.cpp f32, and `tessera file` against
    /// llama.cpp on the original file (decode, prompt and peak memory).
    pub ratios: Vec<RatioRow>,
}

fn ordered_map<S: serde::Serializer>(
    rows: &[(String, EngineResult)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(rows.iter().map(|(k, v)| (k, v)))
}

impl std::fmt::Display for DecodeBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "model {}  threads {}  prompt {} tokens  decode {} steps  {} interleaved runs per engine (median [min–max])",
            self.model.display(),
            self.threads,
            self.prompt_tokens,
            self.steps,
            self.reps
        )?;
        writeln!(
            f,
            "{:<20} {:>26} {:>26} {:>10}",
            "engine", "prompt tok/s", "decode tok/s", "peak MiB"
        )?;
        for (l, v) in &self.engines {
            match v {
                EngineResult::Skipped { skipped } => writeln!(f, "{l:<20} skipped ({skipped})")?,
                EngineResult::Measured(s) => writeln!(
                    f,
                    "{l:<20} {:>26} {:>26} {:>10.0}",
                    s.prompt.to_string(),
                    s.decode.to_string(),
                    s.median.peak_rss_mb.unwrap_or(0.0)
                )?,
            }
        }
        for r in &self.ratios {
            writeln!(
                f,
                "{} / {} ({}): {}",
                r.engine, r.baseline, r.figure, r.ratio
            )?;
        }
        match (
            self.decode_ratio_vs_llama_cpp_f32,
            self.prompt_ratio_vs_llama_cpp_f32,
        ) {
            (Some(d), Some(p)) => write!(
                f,
                "ratio vs llama.cpp f32: decode {d:.2}x (target >= 0.8), prompt {p:.2}x (target >= 0.5)"
            ),
            _ => write!(f, "ratio vs llama.cpp f32: skipped"),
        }
    }
}

/// Runs one llama.cpp job through the Python script: its speed, or why it did not run.
fn llama_cpp_row(
    python: &str,
    script: &Path,
    job: &serde_json::Value,
) -> std::result::Result<DecodeSpeed, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Row {
        Skipped { skipped: String },
        Measured(DecodeSpeed),
    }
    match std::process::Command::new(python)
        .arg(script)
        .arg(job.to_string())
        .output()
    {
        Ok(o) if o.status.success() => {
            let last = o
                .stdout
                .trim_ascii_end()
                .rsplit(|&b| b == b'\n')
                .next()
                .unwrap_or(b"{}");
            match serde_json::from_slice(last) {
                Ok(Row::Measured(s)) => Ok(s),
                Ok(Row::Skipped { skipped }) => Err(skipped),
                Err(_) => Err("unparsable output".into()),
            }
        }
        Ok(o) => Err(format!(
            "failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("{python}: {e}")),
    }
}

/// Reads one figure of a run.
type Figure = fn(&DecodeSpeed) -> Option<f64>;

/// Runs our engine once in its own process ([`WorkerCommand`]) on `model` in representation `dtype`.
pub fn run_worker(
    worker: &WorkerCommand,
    model: &Path,
    steps: usize,
    threads: usize,
    dtype: WeightDtype,
) -> Result<DecodeWorkerOutput> {
    let mut cmd = std::process::Command::new(&worker.exe);
    cmd.args(&worker.args)
        .args(["--steps", &steps.to_string(), "--dtype", &dtype.to_string()])
        .arg(model)
        .env("RAYON_NUM_THREADS", threads.to_string());
    Ok(tessera_core::worker::run_json(
        &mut cmd,
        &format!("decode {dtype}"),
    )?)
}

/// Most threads `bench decode` runs an engine with.
pub const MAX_BENCH_THREADS: usize = 256;
/// Most decode steps `bench decode` times.
pub const MAX_BENCH_STEPS: usize = 4096;
/// Most runs per engine `bench decode` makes.
pub const MAX_BENCH_REPS: usize = 100;

/// Runs `tessera bench decode`: `reps` rounds, each running every engine once in its own process, interleaved
/// (our runtime in each representation of `dtypes`, then for a GGUF model llama.cpp on an f32 GGUF written by us
/// and on the original file); each figure and each paired ratio is reported as median and range.
pub fn bench_decode(cfg: &DecodeBenchConfig, worker: &WorkerCommand) -> Result<DecodeBench> {
    if !(1..=MAX_BENCH_THREADS).contains(&cfg.threads) {
        return Err(crate::LmError::Invalid(format!(
            "--threads must lie in 1..={MAX_BENCH_THREADS} (got {})",
            cfg.threads
        )));
    }
    if !(1..=MAX_BENCH_STEPS).contains(&cfg.steps) {
        return Err(crate::LmError::Invalid(format!(
            "--steps must lie in 1..={MAX_BENCH_STEPS} (got {})",
            cfg.steps
        )));
    }
    if !(1..=MAX_BENCH_REPS).contains(&cfg.reps) {
        return Err(crate::LmError::Invalid(format!(
            "--reps must lie in 1..={MAX_BENCH_REPS} (got {})",
            cfg.reps
        )));
    }
    let mut dtypes = cfg.dtypes.clone();
    dtypes.dedup();
    if dtypes.is_empty() {
        dtypes.push(WeightDtype::F32);
    }
    let run_ours = |d: WeightDtype| run_worker(worker, &cfg.model, cfg.steps, cfg.threads, d);
    // The first run of our first engine also yields the prompt ids llama.cpp is given.
    let first = run_ours(dtypes[0])?;
    let prompt_ids = first.prompt_ids.clone();
    let mut llama_jobs: Vec<(String, PathBuf)> = Vec::new();
    let mut script = None;
    if cfg.model.extension().is_some_and(|e| e == "gguf") {
        let stem = cfg
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let f32_path = cfg.f32_dir.join(format!("{stem}.f32.gguf"));
        if !f32_path.exists() {
            eprintln!("tessera: writing f32 GGUF {}", f32_path.display());
            crate::export::gguf_to_f32(&cfg.model, &f32_path)?;
        }
        let sp = std::env::temp_dir().join("tessera_llama_cpp_decode.py");
        tessera_core::fsx::write_atomic(
            &sp,
            include_str!("../bench/llama_cpp_decode.py").as_bytes(),
        )?;
        script = Some(sp);
        llama_jobs.push((ENGINE_LLAMA_CPP_F32.into(), f32_path));
        llama_jobs.push((ENGINE_LLAMA_CPP_ORIGINAL.into(), cfg.model.clone()));
    }
    let mut runs: Vec<(String, Vec<DecodeSpeed>, Option<String>)> = dtypes
        .iter()
        .map(|&d| (engine_label(d), Vec::new(), None))
        .chain(
            llama_jobs
                .iter()
                .map(|(l, _)| (l.clone(), Vec::new(), None)),
        )
        .collect();
    let mut first = Some(first);
    for rep in 0..cfg.reps {
        for (i, &d) in dtypes.iter().enumerate() {
            let o = match (rep, i, first.take()) {
                (0, 0, Some(f)) => f,
                _ => run_ours(d)?,
            };
            runs[i].1.push(o.speed);
        }
        for (j, (_, p)) in llama_jobs.iter().enumerate() {
            let row = &mut runs[dtypes.len() + j];
            if row.2.is_some() {
                continue;
            }
            let job = serde_json::json!({
                "model": p, "prompt_ids": prompt_ids, "steps": cfg.steps, "threads": cfg.threads,
            });
            let sp = script.as_ref().expect("set with the jobs");
            match llama_cpp_row(&cfg.python, sp, &job) {
                Ok(m) => row.1.push(m),
                Err(skipped) => row.2 = Some(skipped),
            }
        }
    }
    let engines: Vec<(String, EngineResult)> = runs
        .iter()
        .map(|(l, r, skip)| {
            let res = match (skip, EngineRuns::from_runs(r.clone())) {
                (Some(s), _) => EngineResult::Skipped { skipped: s.clone() },
                (None, Some(m)) => EngineResult::Measured(m),
                (None, None) => EngineResult::Skipped {
                    skipped: "no run".into(),
                },
            };
            (l.clone(), res)
        })
        .collect();
    let runs_of = |label: &str| -> Option<&Vec<DecodeSpeed>> {
        runs.iter()
            .find(|r| r.0 == label && r.2.is_none() && !r.1.is_empty())
            .map(|r| &r.1)
    };
    let mut ratios = Vec::new();
    let mut pair = |engine: &str, baseline: &str| {
        if let (Some(a), Some(b)) = (runs_of(engine), runs_of(baseline)) {
            let figs: [(&str, Figure); 3] = [
                ("decode_tokens_per_s", |s| Some(s.decode_tokens_per_s)),
                ("prompt_tokens_per_s", |s| Some(s.prompt_tokens_per_s)),
                ("peak_rss_mb", |s| s.peak_rss_mb),
            ];
            for (name, f) in figs {
                let v: Vec<f64> = a
                    .iter()
                    .zip(b)
                    .filter_map(|(x, y)| Some(f(x)? / f(y)?))
                    .collect();
                if let Some(ratio) = Spread::of(&v) {
                    ratios.push(RatioRow {
                        engine: engine.into(),
                        baseline: baseline.into(),
                        figure: name.into(),
                        ratio,
                    });
                }
            }
        }
    };
    for &d in &dtypes {
        pair(&engine_label(d), ENGINE_LLAMA_CPP_F32);
    }
    if dtypes.contains(&WeightDtype::File) {
        pair(&engine_label(WeightDtype::File), ENGINE_LLAMA_CPP_ORIGINAL);
    }
    let median_of = |fig: &str| {
        ratios
            .iter()
            .find(|r| {
                r.engine == ENGINE_TESSERA && r.baseline == ENGINE_LLAMA_CPP_F32 && r.figure == fig
            })
            .map(|r| r.ratio.median)
    };
    Ok(DecodeBench {
        model: cfg.model.clone(),
        threads: cfg.threads,
        prompt_tokens: prompt_ids.len(),
        steps: cfg.steps,
        reps: cfg.reps,
        decode_ratio_vs_llama_cpp_f32: median_of("decode_tokens_per_s"),
        prompt_ratio_vs_llama_cpp_f32: median_of("prompt_tokens_per_s"),
        engines,
        ratios,
    })
}
