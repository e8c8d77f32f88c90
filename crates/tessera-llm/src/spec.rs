//! Backend spec strings, one syntax for every command:
//!
//! - `local:NAME_OR_PATH[;dtype=f32|q8_0|file]`: the Tessera runtime (`local:smollm2-135m`, `local:/models/x.gguf`),
//!   by default on the file's own weights (a GGUF's quantized blocks); `;dtype=f32` dequantizes to f32.
//! - `openai:URL#MODEL[,key_env=VAR][,timeout=SECS][,retries=N][,concurrency=N]`: an OpenAI-compatible server,
//!   e.g. `openai:http://127.0.0.1:8080/v1#smollm2-135m,key_env=MY_KEY`.
//! - `replay:PATH`: answers recorded in a JSONL transcript.
//!
//! Any spec may end with `;record=PATH` to append every call to a JSONL transcript.
use crate::chat::ChatModel;
use crate::error::{LlmError, Result};
use crate::local::LocalChat;
use crate::openai::{OpenAiChat, OpenAiConfig};
use crate::record::{Recording, ReplayChat};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// Local models already open in this process, so agents naming the same model share one copy and one queue.
fn open_local(name_or_path: &str, offline: bool) -> Result<Arc<LocalChat>> {
    static OPEN: OnceLock<Mutex<HashMap<String, Weak<LocalChat>>>> = OnceLock::new();
    let map = OPEN.get_or_init(Default::default);
    let mut m = map
        .lock()
        .map_err(|_| LlmError::Config("local model cache poisoned".into()))?;
    if let Some(c) = m.get(name_or_path).and_then(Weak::upgrade) {
        return Ok(c);
    }
    let (name, dtype) = match name_or_path.split_once(";dtype=") {
        Some((n, d)) => (
            n,
            d.parse::<tessera_lm::WeightDtype>()
                .map_err(|e| LlmError::Config(format!("`local:{name_or_path}`: {e}")))?,
        ),
        None => (name_or_path, tessera_lm::WeightDtype::File),
    };
    let c = Arc::new(LocalChat::open_with(name, offline, dtype)?);
    m.insert(name_or_path.to_string(), Arc::downgrade(&c));
    Ok(c)
}

/// Parses the part after `openai:`.
pub fn parse_openai(rest: &str) -> Result<OpenAiConfig> {
    let (url, tail) = rest.split_once('#').ok_or_else(|| {
        LlmError::Config(format!(
            "`openai:{rest}`: expected `openai:URL#MODEL`, e.g. `openai:http://127.0.0.1:8080/v1#smollm2-135m`"
        ))
    })?;
    let mut parts = tail.split(',');
    let model = parts.next().unwrap_or("").trim();
    if model.is_empty() || url.is_empty() {
        return Err(LlmError::Config(format!(
            "`openai:{rest}`: empty URL or model name"
        )));
    }
    let mut cfg = OpenAiConfig::new(url, model);
    for opt in parts {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| LlmError::Config(format!("option `{opt}` is not key=value")))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    LlmError::Config(format!("option `{k}`: `{v}` is not a non-negative number"))
                })
        };
        match k {
            "key_env" => cfg.api_key_env = Some(v.to_string()),
            "timeout" => cfg.timeout = Duration::from_secs_f64(num(v)?.max(0.001)),
            "retries" => cfg.max_retries = num(v)? as u32,
            "concurrency" => cfg.max_concurrency = (num(v)? as usize).max(1),
            _ => {
                return Err(LlmError::Config(format!(
                    "unknown option `{k}` (known: key_env, timeout, retries, concurrency)"
                )))
            }
        }
    }
    Ok(cfg)
}

/// Opens a backend from its spec string. `offline` forbids downloading local models. A local model already open
/// in this process (same spec) is shared, not loaded again.
pub fn open(spec: &str, offline: bool) -> Result<Arc<dyn ChatModel>> {
    let (spec, record) = match spec.rsplit_once(";record=") {
        Some((s, p)) => (s, Some(p)),
        None => (spec, None),
    };
    let (kind, rest) = spec.split_once(':').ok_or_else(|| {
        LlmError::Config(format!(
            "`{spec}`: expected `local:MODEL[;dtype=f32|q8_0|file]`, `openai:URL#MODEL` or `replay:PATH`"
        ))
    })?;
    let model: Arc<dyn ChatModel> = match kind {
        "local" => open_local(rest, offline)?,
        "openai" => Arc::new(OpenAiChat::new(parse_openai(rest)?)?),
        "replay" => Arc::new(ReplayChat::open(rest)?),
        _ => {
            return Err(LlmError::Config(format!(
                "`{kind}:`: unknown backend kind (known: local, openai, replay)"
            )))
        }
    };
    Ok(match record {
        Some(p) => Arc::new(Recording::new(model, p)),
        None => model,
    })
}
