//! The OpenAI chat/completions wire format, shared by the client ([`crate::openai`]) and the server
//! ([`crate::server`]): request parsing with per-field errors, response and stream-chunk JSON.
use crate::types::{
    ChatMessage, ChatParams, ChatRequest, ChatResponse, Choice, TokenLogprob, TopLogprob, Usage,
    MAX_N,
};
use serde_json::{json, Map, Value};

/// A request field that is wrong: the message and the offending parameter (OpenAI's `param`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub message: String,
    /// The parameter at fault.
    pub param: Option<String>,
}

fn bad(param: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        message: message.into(),
        param: Some(param.into()),
    }
}

/// A parsed `/v1/chat/completions` body.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    /// The `model` field.
    pub model: String,
    /// Messages and parameters.
    pub request: ChatRequest,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage: true`.
    pub include_usage: bool,
    /// The body set `max_tokens` (or `max_completion_tokens`) itself.
    pub max_tokens_given: bool,
}

fn content_text(v: &Value, i: usize) -> Result<String, FieldError> {
    let param = format!("messages[{i}].content");
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut s = String::new();
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => s.push_str(t),
                    _ => return Err(bad(&param, "only text content parts are supported")),
                }
            }
            Ok(s)
        }
        Value::Null => Ok(String::new()),
        _ => Err(bad(
            &param,
            "content must be a string or an array of text parts",
        )),
    }
}

fn number(o: &Map<String, Value>, key: &str) -> Result<Option<f64>, FieldError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(key, format!("`{key}` must be a number"))),
    }
}

fn uint(o: &Map<String, Value>, key: &str) -> Result<Option<u64>, FieldError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(key, format!("`{key}` must be a non-negative integer"))),
    }
}

fn boolean(o: &Map<String, Value>, key: &str) -> Result<bool, FieldError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(key, format!("`{key}` must be a boolean"))),
    }
}

/// Parses and range-checks a request body. `default_max_tokens` applies when the body sets no limit.
pub fn parse_request(body: &[u8], default_max_tokens: usize) -> Result<ParsedRequest, FieldError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| FieldError {
        message: format!("request body is not valid JSON: {e}"),
        param: None,
    })?;
    let o = v.as_object().ok_or_else(|| FieldError {
        message: "request body must be a JSON object".into(),
        param: None,
    })?;
    let model = match o.get("model") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(bad("model", "`model` (a string) is required")),
    };
    let msgs = match o.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(bad("messages", "`messages` must be a non-empty array")),
    };
    let mut messages = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let role = if role == "developer" { "system" } else { role };
        if !matches!(role, "system" | "user" | "assistant") {
            return Err(bad(
                &format!("messages[{i}].role"),
                "role must be system, developer, user or assistant",
            ));
        }
        let content = content_text(m.get("content").unwrap_or(&Value::Null), i)?;
        messages.push(ChatMessage::new(role, content));
    }
    let mut p = ChatParams {
        max_tokens: default_max_tokens,
        ..ChatParams::default()
    };
    if let Some(t) = number(o, "temperature")? {
        p.temperature = t;
    }
    if let Some(t) = number(o, "top_p")? {
        p.top_p = t;
    }
    let max = uint(o, "max_completion_tokens")?.or(uint(o, "max_tokens")?);
    if let Some(m) = max {
        p.max_tokens = usize::try_from(m).unwrap_or(usize::MAX);
    }
    if let Some(n) = uint(o, "n")? {
        p.n = usize::try_from(n).unwrap_or(usize::MAX);
    }
    p.seed = match o.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_i64().map(|i| i as u64))
                .ok_or_else(|| bad("seed", "`seed` must be an integer"))?,
        ),
    };
    p.stop = match o.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("stop", "`stop` must be a string or an array of strings"))?,
        Some(_) => {
            return Err(bad(
                "stop",
                "`stop` must be a string or an array of strings",
            ))
        }
    };
    p.logprobs = boolean(o, "logprobs")?;
    p.top_logprobs = match o.get("top_logprobs") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or_else(|| {
            bad(
                "top_logprobs",
                "`top_logprobs` must be an integer in [0, 20]",
            )
        })? as usize,
    };
    let stream = boolean(o, "stream")?;
    let include_usage = o
        .get("stream_options")
        .and_then(|s| s.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    check_ranges(&p)?;
    if stream && p.n > 1 {
        return Err(bad("n", "streaming supports n = 1 only"));
    }
    Ok(ParsedRequest {
        model,
        request: ChatRequest {
            messages,
            params: p,
        },
        stream,
        include_usage,
        max_tokens_given: max.is_some(),
    })
}

fn check_ranges(p: &ChatParams) -> Result<(), FieldError> {
    if !(0.0..=2.0).contains(&p.temperature) {
        return Err(bad(
            "temperature",
            format!("temperature {} out of range [0, 2]", p.temperature),
        ));
    }
    if !(p.top_p > 0.0 && p.top_p <= 1.0) {
        return Err(bad(
            "top_p",
            format!("top_p {} out of range (0, 1]", p.top_p),
        ));
    }
    if p.max_tokens == 0 {
        return Err(bad("max_tokens", "max_tokens must be at least 1"));
    }
    if !(1..=MAX_N).contains(&p.n) {
        return Err(bad("n", format!("n {} out of range [1, {MAX_N}]", p.n)));
    }
    if p.stop.len() > 4 {
        return Err(bad("stop", "at most 4 stop strings"));
    }
    let most = tessera_lm::generate::MAX_TOP_LOGPROBS;
    if p.top_logprobs > most {
        return Err(bad(
            "top_logprobs",
            format!("top_logprobs {} out of range [0, {most}]", p.top_logprobs),
        ));
    }
    if p.top_logprobs > 0 && !p.logprobs {
        return Err(bad("top_logprobs", "top_logprobs needs logprobs = true"));
    }
    Ok(())
}

/// The request body a client sends for `req`.
pub fn request_json(model: &str, req: &ChatRequest, stream: bool) -> Value {
    let p = &req.params;
    let mut o = json!({
        "model": model,
        "messages": req.messages,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "max_tokens": p.max_tokens,
        "n": p.n,
    });
    if !p.stop.is_empty() {
        o["stop"] = json!(p.stop);
    }
    if let Some(s) = p.seed {
        o["seed"] = json!(s);
    }
    if p.logprobs {
        o["logprobs"] = json!(true);
        if p.top_logprobs > 0 {
            o["top_logprobs"] = json!(p.top_logprobs);
        }
    }
    if stream {
        o["stream"] = json!(true);
        o["stream_options"] = json!({ "include_usage": true });
    }
    o
}

fn logprobs_json(lp: &Option<Vec<TokenLogprob>>) -> Value {
    match lp {
        None => Value::Null,
        Some(v) => json!({ "content": v.iter().map(|t| json!({
            "token": t.token, "logprob": t.logprob, "bytes": t.token.as_bytes(),
            "top_logprobs": t.top_logprobs.iter().map(|a| json!({
                "token": a.token, "logprob": a.logprob, "bytes": a.token.as_bytes(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>() }),
    }
}

/// A `chat.completion` object.
pub fn completion_json(id: &str, created: u64, resp: &ChatResponse) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": resp.model,
        "choices": resp.choices.iter().enumerate().map(|(i, c)| json!({
            "index": i,
            "message": { "role": "assistant", "content": c.text },
            "logprobs": logprobs_json(&c.logprobs),
            "finish_reason": c.finish_reason,
        })).collect::<Vec<_>>(),
        "usage": usage_json(&resp.usage),
    })
}

/// The share of FFN blocks a skipping layer hook (FFN-SkipLLM, `tessera serve --ffn-skip`) skipped in these
/// generations, from their hook summaries' `ffn_skipped` / `ffn_blocks` counts; `None` when no generation carries
/// such a summary. Rows of one merged batch share the batch's summary, so the fraction is the batch's.
pub fn ffn_skipped_fraction<'a>(
    gens: impl IntoIterator<Item = &'a tessera_lm::Generation>,
) -> Option<f64> {
    let (mut skipped, mut blocks, mut any) = (0.0, 0.0, false);
    for g in gens {
        let Some(h) = &g.hook else { continue };
        if let (Some(s), Some(b)) = (h["ffn_skipped"].as_f64(), h["ffn_blocks"].as_f64()) {
            skipped += s;
            blocks += b;
            any = true;
        }
    }
    any.then(|| if blocks > 0.0 { skipped / blocks } else { 0.0 })
}

/// Adds `ffn_skipped_fraction` to a response's `usage` object when the generations ran a skipping hook.
pub fn add_skip_usage<'a>(
    v: &mut Value,
    gens: impl IntoIterator<Item = &'a tessera_lm::Generation>,
) {
    if let Some(f) = ffn_skipped_fraction(gens) {
        if v["usage"].is_object() {
            v["usage"]["ffn_skipped_fraction"] = json!(f);
        }
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// One `chat.completion.chunk`: a delta (role and/or content), a finish reason, or (with no choices) usage.
pub fn chunk_json(
    id: &str,
    created: u64,
    model: &str,
    delta: Option<Value>,
    finish: Option<&str>,
    usage: Option<&Usage>,
) -> Value {
    let choices = match (&delta, finish) {
        (None, None) => vec![],
        _ => vec![json!({
            "index": 0,
            "delta": delta.unwrap_or_else(|| json!({})),
            "logprobs": null,
            "finish_reason": finish,
        })],
    };
    let mut o = json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices,
    });
    if let Some(u) = usage {
        o["usage"] = usage_json(u);
    }
    o
}

/// An OpenAI-style error body.
pub fn error_json(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({ "error": { "message": message, "type": kind, "param": param, "code": code } })
}

fn parse_usage(v: &Value) -> Usage {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
    Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
    }
}

fn parse_logprobs(v: &Value) -> Option<Vec<TokenLogprob>> {
    let c = v.get("content")?.as_array()?;
    Some(
        c.iter()
            .map(|t| TokenLogprob {
                token: t.get("token").and_then(Value::as_str).unwrap_or("").into(),
                logprob: t.get("logprob").and_then(Value::as_f64).unwrap_or(f64::NAN) as f32,
                top_logprobs: t
                    .get("top_logprobs")
                    .and_then(Value::as_array)
                    .map(|alts| {
                        alts.iter()
                            .map(|a| TopLogprob {
                                token: a.get("token").and_then(Value::as_str).unwrap_or("").into(),
                                logprob: a
                                    .get("logprob")
                                    .and_then(Value::as_f64)
                                    .unwrap_or(f64::NAN)
                                    as f32,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect(),
    )
}

/// Reads a `chat.completion` object.
pub fn parse_completion(v: &Value) -> Result<ChatResponse, String> {
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("no `choices` array")?;
    let mut out = Vec::with_capacity(choices.len());
    for c in choices {
        let text = c
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        out.push(Choice {
            text,
            finish_reason: c
                .get("finish_reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            logprobs: c.get("logprobs").and_then(parse_logprobs),
        });
    }
    Ok(ChatResponse {
        model: v.get("model").and_then(Value::as_str).unwrap_or("").into(),
        choices: out,
        usage: v.get("usage").map(parse_usage).unwrap_or_default(),
    })
}

/// What one stream chunk carries.
#[derive(Debug, Default)]
pub struct ChunkParts {
    /// Content delta of choice 0.
    pub content: Option<String>,
    /// Finish reason of choice 0.
    pub finish: Option<String>,
    /// Usage, on the last chunk.
    pub usage: Option<Usage>,
    /// Model name.
    pub model: Option<String>,
}

/// Reads a `chat.completion.chunk` object.
pub fn parse_chunk(v: &Value) -> ChunkParts {
    let c0 = v.get("choices").and_then(|c| c.get(0));
    ChunkParts {
        content: c0
            .and_then(|c| c.get("delta"))
            .and_then(|d| d.get("content"))
            .and_then(Value::as_str)
            .map(str::to_string),
        finish: c0
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .map(str::to_string),
        usage: v.get("usage").filter(|u| u.is_object()).map(parse_usage),
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
    }
}

/// The `error.message` of an error body, or the raw text (truncated).
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned())
}
