//! `tessera serve`: an OpenAI-compatible HTTP server (axum) for a local model.
//!
//! Routes: `GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (JSON, or server-sent events with
//! `stream: true`). Requests go to the [`Engine`]'s bounded queue; a full queue answers 503, a dropped connection
//! cancels its generation, bad requests get 400 and a wrong bearer token 401, all with OpenAI-style error bodies.
use crate::engine::{Engine, Event};
use crate::error::{LlmError, Result};
use crate::local::{self, finish_name};
use crate::types::{ChatResponse, Usage};
use crate::wire;
// `POST /v1/completions` (text prompts, `echo`, `logprobs`) is handled in [`crate::completions`].
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Server options.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model id clients must name (`/v1/models` lists it).
    pub model_id: String,
    /// Required bearer token on `/v1/*` (none: open).
    pub api_key: Option<String>,
    /// `max_tokens` when a request sets none (lowered to what the context leaves).
    pub default_max_tokens: usize,
    /// Largest request body in bytes.
    pub body_limit: usize,
}

impl ServerConfig {
    /// Open server, 256 default new tokens, 1 MiB bodies.
    pub fn new(model_id: impl Into<String>) -> Self {
        ServerConfig {
            model_id: model_id.into(),
            api_key: None,
            default_max_tokens: 256,
            body_limit: 1 << 20,
        }
    }
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    cfg: Arc<ServerConfig>,
    next_id: Arc<AtomicU64>,
}

/// The router (for embedding in another server).
pub fn router(engine: Arc<Engine>, cfg: ServerConfig) -> Router {
    let limit = cfg.body_limit;
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route(
            "/v1/completions",
            post(
                |State(st): State<AppState>, h: HeaderMap, b: Bytes| async move {
                    match check_auth(&st, &h) {
                        Some(r) => r,
                        None => crate::completions::handle(st.engine.clone(), &st.cfg, b).await,
                    }
                },
            ),
        )
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(AppState {
            engine,
            cfg: Arc::new(cfg),
            next_id: Arc::new(AtomicU64::new(0)),
        })
}

/// A JSON response (axum's `json` feature is left out to keep the build lean).
fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn api_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    json_response(status, &wire::error_json(message, kind, param, code))
}

fn invalid(message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        code,
    )
}

fn internal(e: &dyn std::fmt::Display) -> Response {
    api_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &e.to_string(),
        "server_error",
        None,
        None,
    )
}

fn overloaded(e: &LlmError) -> Response {
    api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        &e.to_string(),
        "server_error",
        None,
        Some("queue_full"),
    )
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_auth(st: &AppState, headers: &HeaderMap) -> Option<Response> {
    let key = st.cfg.api_key.as_ref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if same(given.trim().as_bytes(), key.as_bytes()) {
        None
    } else {
        Some(api_error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key (send `Authorization: Bearer <key>`)",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ))
    }
}

async fn health(State(st): State<AppState>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({ "status": "ok", "model": st.cfg.model_id, "engine": st.engine.stats() }),
    )
    .into_response()
}

async fn models(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = check_auth(&st, &headers) {
        return r;
    }
    json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": [{ "id": st.cfg.model_id, "object": "model", "created": 0, "owned_by": "tessera" }],
        }),
    )
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn chat_completions(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = check_auth(&st, &headers) {
        return r;
    }
    let parsed = match wire::parse_request(&body, st.cfg.default_max_tokens) {
        Ok(p) => p,
        Err(e) => return invalid(&e.message, e.param.as_deref(), None),
    };
    if parsed.model != st.cfg.model_id {
        return invalid(
            &format!(
                "model `{}` does not exist (this server has `{}`)",
                parsed.model, st.cfg.model_id
            ),
            Some("model"),
            Some("model_not_found"),
        );
    }
    let (prompt, sp) = match local::prepare(&st.engine, &parsed.request, !parsed.max_tokens_given) {
        Ok(x) => x,
        Err(LlmError::Invalid(m)) => return invalid(&m, None, None),
        Err(e) => return internal(&e),
    };
    let created = unix_secs();
    let id = format!(
        "chatcmpl-{created:x}{:06x}",
        st.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let n = parsed.request.params.n;
    let prompt_tokens = prompt.len();
    let rx = if parsed.stream {
        st.engine.submit_stream(prompt, sp)
    } else if n == 1 {
        st.engine.submit_plain(prompt, sp)
    } else {
        st.engine.submit_batch(vec![prompt; n], sp)
    };
    let rx = match rx {
        Ok(rx) => rx,
        Err(e @ LlmError::Overloaded(_)) => return overloaded(&e),
        Err(e) => return internal(&e),
    };
    if parsed.stream {
        let stream = SseStream::new(
            rx,
            id,
            created,
            st.cfg.model_id.clone(),
            parsed.include_usage,
            prompt_tokens,
        );
        return Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(2)))
            .into_response();
    }
    let gens = match local::collect(rx).await {
        Ok(g) => g,
        Err(e) => return internal(&e),
    };
    let tok = match st.engine.model().tokenizer() {
        Ok(t) => t,
        Err(e) => return internal(&e),
    };
    let resp = ChatResponse {
        model: st.cfg.model_id.clone(),
        usage: Usage {
            prompt_tokens,
            completion_tokens: gens.iter().map(|g| g.tokens.len()).sum(),
        },
        choices: gens
            .iter()
            .map(|g| local::choice(g, tok, parsed.request.params.logprobs))
            .collect(),
    };
    json_response(StatusCode::OK, &wire::completion_json(&id, created, &resp))
}

/// Turns a job's events into SSE chunks: a role delta, content deltas, a finish chunk, optional usage, `[DONE]`.
/// Dropping it (client gone) drops the job's receiver, which cancels the generation.
struct SseStream {
    rx: UnboundedReceiver<Event>,
    pending: VecDeque<SseEvent>,
    done: bool,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    prompt_tokens: usize,
}

impl SseStream {
    fn new(
        rx: UnboundedReceiver<Event>,
        id: String,
        created: u64,
        model: String,
        include_usage: bool,
        prompt_tokens: usize,
    ) -> Self {
        let mut s = SseStream {
            rx,
            pending: VecDeque::new(),
            done: false,
            id,
            created,
            model,
            include_usage,
            prompt_tokens,
        };
        s.push_chunk(
            Some(json!({ "role": "assistant", "content": "" })),
            None,
            None,
        );
        s
    }

    fn push_chunk(&mut self, delta: Option<Value>, finish: Option<&str>, usage: Option<&Usage>) {
        let v = wire::chunk_json(&self.id, self.created, &self.model, delta, finish, usage);
        self.pending
            .push_back(SseEvent::default().data(v.to_string()));
    }

    fn push_error(&mut self, message: &str) {
        let v = wire::error_json(message, "server_error", None, None);
        self.pending
            .push_back(SseEvent::default().data(v.to_string()));
        self.done = true;
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Text(t) => self.push_chunk(Some(json!({ "content": t })), None, None),
            Event::Done(gens) => {
                let Some(g) = gens.into_iter().next() else {
                    return self.push_error("no generation");
                };
                self.push_chunk(Some(json!({})), Some(finish_name(g.finish_reason)), None);
                if self.include_usage {
                    let u = Usage {
                        prompt_tokens: self.prompt_tokens,
                        completion_tokens: g.tokens.len(),
                    };
                    self.push_chunk(None, None, Some(&u));
                }
                self.pending.push_back(SseEvent::default().data("[DONE]"));
                self.done = true;
            }
            Event::Failed(e) => self.push_error(&e),
        }
    }
}

impl futures_core::Stream for SseStream {
    type Item = std::result::Result<SseEvent, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(e) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.push_error("the model worker stopped"),
                Poll::Ready(Some(ev)) => this.on_event(ev),
            }
        }
    }
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    engine: Arc<Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v1`, the base URL for [`crate::OpenAiChat`].
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The engine (stats, pause/resume).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Stops accepting and lets open requests finish for up to 10 s; then drops them (cancelling their
    /// generations).
    pub async fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match tokio::time::timeout(Duration::from_secs(10), &mut self.task).await {
            Ok(Ok(r)) => r.map_err(|e| LlmError::Config(format!("server: {e}"))),
            Ok(Err(e)) => Err(LlmError::Config(format!("server task: {e}"))),
            Err(_) => {
                self.task.abort();
                Ok(())
            }
        }
    }
}

/// Binds `bind` (e.g. `127.0.0.1:8080`, port 0 for a free one) and serves on the current runtime.
pub async fn start(engine: Arc<Engine>, cfg: ServerConfig, bind: &str) -> Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| LlmError::Config(format!("cannot bind {bind}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| LlmError::Config(format!("cannot read the bound address: {e}")))?;
    let app = router(engine.clone(), cfg);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(ServerHandle {
        addr,
        engine,
        stop: Some(stop),
        task,
    })
}

/// Serves until Ctrl-C on a runtime of its own; `ready` gets the bound address once listening.
pub fn run_blocking(
    engine: Arc<Engine>,
    cfg: ServerConfig,
    bind: &str,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LlmError::Config(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let h = start(engine, cfg, bind).await?;
        ready(h.addr());
        let _ = tokio::signal::ctrl_c().await;
        h.stop().await
    })
}
