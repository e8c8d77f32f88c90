//! Token log-likelihoods on the local runtime, and `POST /v1/completions` for `tessera serve`.
//!
//! - [`score_continuations`]: one prefill of the context, then one forward pass per continuation on a copy of the
//!   KV cache; the continuation's log-likelihood is the sum of its tokens' log-probabilities (lm-eval-harness's
//!   `loglikelihood`). [`score_local`] renders a [`ScoreRequest`] with the chat template and calls it; it backs
//!   [`crate::ChatModel::score`] for [`crate::LocalChat`].
//! - [`handle`]: the legacy OpenAI Completions endpoint as vLLM serves it: a text prompt (or a list of them),
//!   `max_tokens` (0 allowed), `echo` (return the prompt and, with `logprobs`, its tokens' log-probabilities:
//!   `tokens`, `token_logprobs` with `null` first, `top_logprobs`, `text_offset` in characters). Prompts of one
//!   request share the KV cache of their longest common token prefix. This is what lm-eval-harness and the
//!   OpenAI client's [`crate::OpenAiChat`] `score` call use to score continuations over HTTP.
use crate::engine::Engine;
use crate::error::{LlmError, Result};
use crate::local;
use crate::server::ServerConfig;
use crate::types::{ChatParams, ContinuationScore, ScoreRequest, ScoreResponse, Usage};
use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use candle_core::{DType, Tensor};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tessera_lm::{Cache, Forward, Input, Llama};

/// Tokens fed through the model per forward pass when scoring long prompts.
const CHUNK: usize = 256;

fn runtime(e: candle_core::Error) -> LlmError {
    LlmError::Runtime(e.into())
}

/// Natural-log softmax normaliser (log-sum-exp) of one logit row.
fn log_norm(row: &[f32]) -> f64 {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + row
        .iter()
        .map(|&l| (l as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

/// Feeds `ids` through the model, extending `cache`, and returns the logit row of every position.
fn logit_rows(model: &Llama, cache: &mut Cache, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let t = Tensor::new(chunk, model.device())
            .and_then(|t| t.unsqueeze(0))
            .map_err(runtime)?;
        let logits = model.forward(
            Input::Ids(&t),
            Forward {
                cache: Some(&mut *cache),
                ..Default::default()
            },
        )?;
        let l = logits
            .to_dtype(DType::F32)
            .and_then(|l| l.squeeze(0))
            .and_then(|l| l.to_vec2::<f32>())
            .map_err(runtime)?;
        rows.extend(l);
    }
    Ok(rows)
}

/// The log-likelihood of each continuation after `context` (token ids): one prefill of the context, then one
/// forward pass per continuation on a copy of the cache.
pub fn score_continuations(
    model: &Llama,
    context: &[u32],
    continuations: &[Vec<u32>],
) -> Result<Vec<ContinuationScore>> {
    if context.is_empty() {
        return Err(LlmError::Invalid("the scoring context is empty".into()));
    }
    let mut cache = Cache::new(model.config.num_hidden_layers);
    let last = model.next_logits(context, &mut cache)?;
    let last_norm = log_norm(&last);
    let mut out = Vec::with_capacity(continuations.len());
    for cont in continuations {
        let Some(&first) = cont.first() else {
            return Err(LlmError::Invalid("a continuation has no tokens".into()));
        };
        let mut lp = last
            .get(first as usize)
            .copied()
            .unwrap_or(f32::NEG_INFINITY) as f64
            - last_norm;
        if cont.len() > 1 {
            let mut c = cache.clone();
            let rows = logit_rows(model, &mut c, &cont[..cont.len() - 1])?;
            for (row, &tok) in rows.iter().zip(&cont[1..]) {
                lp += row.get(tok as usize).copied().unwrap_or(f32::NEG_INFINITY) as f64
                    - log_norm(row);
            }
        }
        out.push(ContinuationScore {
            logprob: lp,
            tokens: cont.len(),
        });
    }
    Ok(out)
}

/// Scores a request on a local model: the conversation rendered with the chat template (ending with the
/// assistant header), then `prefix`, then each continuation.
pub fn score_local(engine: &Engine, name: &str, req: &ScoreRequest) -> Result<ScoreResponse> {
    req.validate()?;
    let tok = engine.model().tokenizer()?;
    let mut context = tok.encode_chat(&req.messages)?;
    if !req.prefix.is_empty() {
        context.extend(tok.encode_plain(&req.prefix)?);
    }
    let conts: Vec<Vec<u32>> = req
        .continuations
        .iter()
        .map(|c| tok.encode_plain(c))
        .collect::<std::result::Result<_, _>>()?;
    let longest = conts.iter().map(Vec::len).max().unwrap_or(0);
    if context.len() + longest > engine.context_len() {
        return Err(LlmError::Invalid(format!(
            "context of {} tokens plus a continuation of {longest} exceeds the model's context of {} tokens",
            context.len(),
            engine.context_len()
        )));
    }
    let scores = score_continuations(engine.model(), &context, &conts)?;
    Ok(ScoreResponse {
        model: name.to_string(),
        usage: Usage {
            prompt_tokens: context.len(),
            completion_tokens: scores.iter().map(|s| s.tokens).sum(),
        },
        scores,
    })
}

/// Per prompt token after the first: its log-probability and the `top` most likely tokens at its position.
type TokenStats = Vec<(f32, Vec<(u32, f32)>)>;

/// Log-probabilities of every token of each prompt (given the tokens before it); prompts share the cache of
/// their longest common prefix.
fn prompt_logprobs(model: &Llama, prompts: &[Vec<u32>], top: usize) -> Result<Vec<TokenStats>> {
    let lcp = prompts
        .iter()
        .skip(1)
        .fold(prompts.first().map_or(0, Vec::len), |n, p| {
            n.min(
                p.iter()
                    .zip(&prompts[0])
                    .take_while(|(a, b)| a == b)
                    .count(),
            )
        });
    let stat = |row: &[f32], tok: u32| {
        let lp = (row.get(tok as usize).copied().unwrap_or(f32::NEG_INFINITY) as f64
            - log_norm(row)) as f32;
        (lp, tessera_lm::generate::top_alternatives(row, top))
    };
    let mut cache = Cache::new(model.config.num_hidden_layers);
    let shared = &prompts[0][..lcp];
    let rows = logit_rows(model, &mut cache, shared)?;
    let common: TokenStats = rows
        .iter()
        .zip(shared.iter().skip(1))
        .map(|(r, &t)| stat(r, t))
        .collect();
    let last = rows.last().cloned();
    drop(rows);
    let mut out = Vec::with_capacity(prompts.len());
    for p in prompts {
        let mut s = common.clone();
        let rest = &p[lcp..];
        if !rest.is_empty() {
            let mut c = cache.clone();
            let rows = logit_rows(model, &mut c, rest)?;
            let mut prev = last.as_deref();
            for (i, &t) in rest.iter().enumerate() {
                if let Some(r) = prev {
                    s.push(stat(r, t));
                }
                prev = Some(&rows[i]);
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// A parsed `/v1/completions` request.
struct CompletionRequest {
    prompts: Vec<String>,
    echo: bool,
    logprobs: Option<usize>,
    params: ChatParams,
}

fn parse(
    v: &Value,
    cfg: &ServerConfig,
) -> std::result::Result<CompletionRequest, (String, &'static str)> {
    let obj = v
        .as_object()
        .ok_or(("the body must be a JSON object".to_string(), ""))?;
    let model = obj.get("model").and_then(Value::as_str).unwrap_or("");
    if model != cfg.model_id {
        return Err((
            format!(
                "model `{model}` does not exist (this server has `{}`)",
                cfg.model_id
            ),
            "model",
        ));
    }
    let prompts: Vec<String> = match obj.get("prompt") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => {
            return Err((
                "`prompt` must be a non-empty string or a list of strings".into(),
                "prompt",
            ))
        }
    };
    if prompts.iter().any(String::is_empty) || prompts.len() > crate::types::MAX_CONTINUATIONS {
        return Err((
            "prompts must be non-empty, at most 1024 per request".into(),
            "prompt",
        ));
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err((
            "`stream` is not supported on /v1/completions".into(),
            "stream",
        ));
    }
    if obj.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
        return Err(("only n = 1 is supported on /v1/completions".into(), "n"));
    }
    let num = |k: &str| obj.get(k).filter(|x| !x.is_null());
    let max_tokens = match num("max_tokens") {
        None => 16,
        Some(x) => x.as_u64().ok_or((
            "`max_tokens` must be a non-negative integer".to_string(),
            "max_tokens",
        ))? as usize,
    };
    let logprobs = match num("logprobs") {
        None => None,
        Some(x) => Some(
            x.as_u64()
                .filter(|&k| k as usize <= tessera_core::chat::MAX_TOP_LOGPROBS)
                .ok_or((
                    "`logprobs` must be an integer in [0, 20]".to_string(),
                    "logprobs",
                ))? as usize,
        ),
    };
    let stop = match obj.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(_) => {
            return Err((
                "`stop` must be a string or a list of strings".into(),
                "stop",
            ))
        }
    };
    let mut params = ChatParams {
        temperature: num("temperature").and_then(Value::as_f64).unwrap_or(1.0),
        top_p: num("top_p").and_then(Value::as_f64).unwrap_or(1.0),
        max_tokens: max_tokens.max(1),
        stop,
        seed: num("seed").and_then(Value::as_u64),
        n: 1,
        logprobs: logprobs.is_some(),
        top_logprobs: logprobs.unwrap_or(0),
    };
    params.validate().map_err(|e| (e.to_string(), ""))?;
    params.max_tokens = max_tokens;
    Ok(CompletionRequest {
        prompts,
        echo: obj.get("echo").and_then(Value::as_bool).unwrap_or(false),
        logprobs,
        params,
    })
}

fn error(status: StatusCode, message: &str, param: &str) -> Response {
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    let param = (!param.is_empty()).then_some(param);
    let body = crate::wire::error_json(message, kind, param, None);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn failed(e: LlmError) -> Response {
    match e {
        LlmError::Invalid(m) => error(StatusCode::BAD_REQUEST, &m, ""),
        e @ LlmError::Overloaded(_) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), ""),
        e => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), ""),
    }
}

/// Character offset of every token in the decoded text of `ids`.
fn text_offsets(tok: &tessera_lm::Tokenizer, ids: &[u32], base: usize) -> Vec<usize> {
    (0..ids.len())
        .map(|i| {
            base + tok
                .decode(&ids[..i], true)
                .map(|s| s.chars().count())
                .unwrap_or(0)
        })
        .collect()
}

fn top_map(tok: &tessera_lm::Tokenizer, alts: &[(u32, f32)]) -> Value {
    let mut m = Map::new();
    for &(a, lp) in alts {
        m.insert(tok.decode(&[a], true).unwrap_or_default(), json!(lp));
    }
    Value::Object(m)
}

/// `POST /v1/completions` (the caller has checked the API key).
pub async fn handle(engine: Arc<Engine>, cfg: &ServerConfig, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not JSON: {e}"),
                "",
            )
        }
    };
    let req = match parse(&v, cfg) {
        Ok(r) => r,
        Err((m, p)) => return error(StatusCode::BAD_REQUEST, &m, p),
    };
    match complete(engine, cfg, req).await {
        Ok(v) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Err(e) => failed(e),
    }
}

async fn complete(
    engine: Arc<Engine>,
    cfg: &ServerConfig,
    req: CompletionRequest,
) -> Result<Value> {
    // Tokenize on the blocking pool, never on the async workers (a long prompt would stall `/health`); the body
    // size is already bounded by the server's body limit.
    let (e, prompts) = (engine.clone(), req.prompts.clone());
    let ids: Vec<Vec<u32>> = tokio::task::spawn_blocking(move || {
        let tok = e.model().tokenizer()?;
        prompts
            .iter()
            .map(|p| tok.encode(p))
            .collect::<std::result::Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| LlmError::Protocol(format!("tokenizing task failed: {e}")))??;
    let tok = engine.model().tokenizer()?;
    let ctx = engine.context_len();
    if let Some(p) = ids.iter().find(|p| {
        p.len()
            .checked_add(req.params.max_tokens)
            .is_none_or(|n| n > ctx)
    }) {
        return Err(LlmError::Invalid(format!(
            "prompt of {} tokens plus max_tokens {} exceeds the model's context of {ctx} tokens",
            p.len(),
            req.params.max_tokens
        )));
    }
    let echo_stats = if req.echo && req.logprobs.is_some() {
        let (e, ids2, top) = (engine.clone(), ids.clone(), req.logprobs.unwrap_or(0));
        tokio::task::spawn_blocking(move || prompt_logprobs(e.model(), &ids2, top))
            .await
            .map_err(|e| LlmError::Protocol(format!("scoring task failed: {e}")))??
    } else {
        vec![Vec::new(); ids.len()]
    };
    let mut choices = Vec::with_capacity(ids.len());
    let (mut prompt_tokens, mut completion_tokens) = (0, 0);
    let mut gens = Vec::new();
    for (i, (p, stats)) in ids.iter().zip(echo_stats).enumerate() {
        prompt_tokens += p.len();
        let gen = if req.params.max_tokens > 0 {
            let rx = engine.submit_plain(p.clone(), local::sampling(&req.params))?;
            local::collect(rx).await?.into_iter().next()
        } else {
            None
        };
        let mut text = if req.echo {
            req.prompts[i].clone()
        } else {
            String::new()
        };
        let (mut tokens, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
        if req.echo {
            offsets = text_offsets(tok, p, 0);
            for (j, &t) in p.iter().enumerate() {
                tokens.push(json!(tok.decode(&[t], true).unwrap_or_default()));
                match j.checked_sub(1).and_then(|k| stats.get(k)) {
                    Some((lp, alts)) => {
                        lps.push(json!(lp));
                        tops.push(top_map(tok, alts));
                    }
                    None => {
                        lps.push(Value::Null);
                        tops.push(Value::Null);
                    }
                }
            }
        }
        let mut finish = "length".to_string();
        if let Some(g) = &gen {
            completion_tokens += g.tokens.len();
            let base = text.chars().count();
            offsets.extend(text_offsets(tok, &g.tokens, base));
            text.push_str(&g.text);
            finish = local::finish_name(g.finish_reason).to_string();
            for (j, (&t, &lp)) in g.tokens.iter().zip(&g.logprobs).enumerate() {
                tokens.push(json!(tok.decode(&[t], true).unwrap_or_default()));
                lps.push(json!(lp));
                tops.push(top_map(tok, g.top_logprobs.get(j).map_or(&[][..], |v| v)));
            }
        }
        let logprobs = match req.logprobs {
            Some(_) => {
                json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
            }
            None => Value::Null,
        };
        choices
            .push(json!({"index": i, "text": text, "finish_reason": finish, "logprobs": logprobs}));
        gens.extend(gen);
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut body = json!({
        "id": format!("cmpl-{created:x}"),
        "object": "text_completion",
        "created": created,
        "model": cfg.model_id,
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    });
    crate::wire::add_skip_usage(&mut body, &gens);
    Ok(body)
}
