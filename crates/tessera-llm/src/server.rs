//! `tessera serve`: an OpenAI-compatible HTTP server (axum) for a local model.
//!
//! Routes: `GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (JSON, or server-sent events with
//! `stream: true`). Requests go to the [`Engine`]'s bounded queue; a full queue answers 503, a dropped connection
//! cancels its generation, bad requests get 400 (`context_length_exceeded` when the prompt plus `max_tokens` does
//! not fit the context, `memory_budget_exceeded` when the engine's memory budget can never hold the request), a
//! wrong bearer token 401, an unknown model 404, an oversized body 413 and a body that does not arrive in time
//! 408, all with OpenAI-style error bodies.
//!
//! Connections: a cap on open connections (when it is reached, the oldest connection that has not sent a request
//! yet is closed to make room, so idle connections cannot starve `/health`), a timeout for request headers (which
//! also closes idle keep-alive connections) and one for the body. Tokenization runs on the blocking pool, after a
//! byte-length check that refuses prompts too long to fit the context whatever their tokenization.
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
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tessera_lm::LmError;
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
    /// Time a client has to send a request's headers (from the connection's start or the previous response).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body once its headers arrived.
    pub body_timeout: Duration,
    /// Most open connections (`None`: derived from the open-file limit, see [`default_max_connections`]).
    pub max_connections: Option<usize>,
}

impl ServerConfig {
    /// Open server, 256 default new tokens, 1 MiB bodies, 10 s for headers, 30 s for a body.
    pub fn new(model_id: impl Into<String>) -> Self {
        ServerConfig {
            model_id: model_id.into(),
            api_key: None,
            default_max_tokens: 256,
            body_limit: 1 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: None,
        }
    }
}

/// The default connection cap: the soft open-file limit less 64 descriptors kept for the process itself, between
/// 8 and 1024 (1024 where the limit cannot be read).
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Max open files"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<usize>().ok())
        });
    soft.map(|n| n.saturating_sub(64).clamp(8, 1024))
        .unwrap_or(1024)
}

#[derive(Clone)]
struct AppState {
    engine: Arc<Engine>,
    cfg: Arc<ServerConfig>,
    next_id: Arc<AtomicU64>,
    /// Longest token of the vocabulary in bytes: a text of `b` bytes has at least `b / max_token_bytes` tokens.
    max_token_bytes: usize,
}

/// Longest token of the model's vocabulary, in bytes of its stored form (at least the bytes it decodes to, for
/// byte-level and SentencePiece vocabularies alike).
fn longest_token(engine: &Engine) -> usize {
    let Ok(tok) = engine.model().tokenizer() else {
        return usize::MAX;
    };
    (0..tok.vocab_size() as u32)
        .filter_map(|i| tok.id_to_token(i).map(|t| t.len()))
        .max()
        .unwrap_or(usize::MAX)
        .max(1)
}

/// The router (for embedding in another server).
pub fn router(engine: Arc<Engine>, cfg: ServerConfig) -> Router {
    let max_token_bytes = longest_token(&engine);
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AppState {
            engine,
            cfg: Arc::new(cfg),
            next_id: Arc::new(AtomicU64::new(0)),
            max_token_bytes,
        })
}

async fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "no such route",
        "invalid_request_error",
        None,
        Some("unknown_url"),
    )
}

async fn method_not_allowed() -> Response {
    api_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
        "invalid_request_error",
        None,
        None,
    )
}

/// Reads a request body within the size limit and the body timeout: 413 or 408 (JSON) otherwise.
async fn read_body(st: &AppState, body: axum::body::Body) -> std::result::Result<Bytes, Response> {
    use http_body_util::BodyExt as _;
    let limited = http_body_util::Limited::new(body, st.cfg.body_limit);
    match tokio::time::timeout(st.cfg.body_timeout, limited.collect()).await {
        Err(_) => Err(api_error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request body did not arrive within {} s",
                st.cfg.body_timeout.as_secs()
            ),
            "invalid_request_error",
            None,
            Some("request_timeout"),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "request body exceeds the limit of {} bytes",
                st.cfg.body_limit
            ),
            "invalid_request_error",
            None,
            Some("request_too_large"),
        )),
        Ok(Err(e)) => Err(invalid(
            &format!("could not read the request body: {e}"),
            None,
            None,
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// The response for a request the engine refuses.
fn refusal(e: &LlmError) -> Response {
    match e {
        LlmError::Invalid(m) => invalid(m, None, None),
        LlmError::Runtime(LmError::ContextLength { .. }) => invalid(
            &e.to_string(),
            Some("messages"),
            Some("context_length_exceeded"),
        ),
        LlmError::Runtime(LmError::OverBudget { .. }) => {
            invalid(&e.to_string(), None, Some("memory_budget_exceeded"))
        }
        LlmError::Runtime(LmError::Invalid(m)) => invalid(m, None, None),
        LlmError::Overloaded(_) => overloaded(e),
        other => internal(other),
    }
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

/// `POST /v1/completions` (prompt scoring with `echo` and `logprobs`, [`crate::completions`]), behind the same
/// authentication and body limits as chat completions.
async fn completions(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if let Some(r) = check_auth(&st, &headers) {
        return r;
    }
    match read_body(&st, body).await {
        Ok(b) => crate::completions::handle(st.engine.clone(), &st.cfg, b).await,
        Err(r) => r,
    }
}

async fn chat_completions(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if let Some(r) = check_auth(&st, &headers) {
        return r;
    }
    let body = match read_body(&st, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed = match wire::parse_request(&body, st.cfg.default_max_tokens) {
        Ok(p) => p,
        Err(e) => return invalid(&e.message, e.param.as_deref(), None),
    };
    if parsed.model != st.cfg.model_id {
        return api_error(
            StatusCode::NOT_FOUND,
            &format!(
                "model `{}` does not exist (this server has `{}`)",
                parsed.model, st.cfg.model_id
            ),
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
        );
    }
    // Every token stands for at most `max_token_bytes` bytes: a longer text cannot fit whatever its tokenization.
    let text_bytes: usize = parsed
        .request
        .messages
        .iter()
        .map(|m| m.content.len())
        .sum();
    let ctx = st.engine.context_len();
    if text_bytes / st.max_token_bytes.max(1) > ctx {
        return invalid(
            &format!("messages of {text_bytes} bytes exceed the model's context of {ctx} tokens"),
            Some("messages"),
            Some("context_length_exceeded"),
        );
    }
    let engine = st.engine.clone();
    let request = parsed.request.clone();
    let fit = !parsed.max_tokens_given;
    let prepared =
        tokio::task::spawn_blocking(move || local::prepare(&engine, &request, fit)).await;
    let (prompt, sp) = match prepared {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return refusal(&e),
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
        Err(e) => return refusal(&e),
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
    let mut body = wire::completion_json(&id, created, &resp);
    wire::add_skip_usage(&mut body, &gens);
    json_response(StatusCode::OK, &body)
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
                    let mut v =
                        wire::chunk_json(&self.id, self.created, &self.model, None, None, Some(&u));
                    wire::add_skip_usage(&mut v, [&g]);
                    self.pending
                        .push_back(SseEvent::default().data(v.to_string()));
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

/// Open connections, and which of them have not sent a request yet (those may be closed to make room).
struct Slots {
    cap: usize,
    inner: Mutex<SlotsInner>,
}

#[derive(Default)]
struct SlotsInner {
    next: u64,
    /// Connection id -> (has sent a request, closes the connection when notified).
    live: BTreeMap<u64, (bool, Arc<tokio::sync::Notify>)>,
}

impl Slots {
    /// Registers a new connection, closing the oldest never-used one when the cap is reached. `None` when every
    /// open connection is in use (the new one is then refused).
    fn open(&self) -> Option<(u64, Arc<tokio::sync::Notify>)> {
        let mut g = self.inner.lock().ok()?;
        if g.live.len() >= self.cap {
            let victim = g
                .live
                .iter()
                .find(|(_, (used, _))| !used)
                .map(|(&id, _)| id)?;
            if let Some((_, kill)) = g.live.remove(&victim) {
                kill.notify_one();
            }
        }
        let id = g.next;
        g.next += 1;
        let kill = Arc::new(tokio::sync::Notify::new());
        g.live.insert(id, (false, kill.clone()));
        Some((id, kill))
    }

    fn mark_used(&self, id: u64) {
        if let Ok(mut g) = self.inner.lock() {
            if let Some(e) = g.live.get_mut(&id) {
                e.0 = true;
            }
        }
    }

    fn close(&self, id: u64) {
        if let Ok(mut g) = self.inner.lock() {
            g.live.remove(&id);
        }
    }

    fn count(&self) -> usize {
        self.inner.lock().map(|g| g.live.len()).unwrap_or(0)
    }
}

/// Serves one connection: HTTP/1.1 with the header timeout, until it ends, is evicted, or the server stops.
async fn serve_conn(
    stream: tokio::net::TcpStream,
    app: Router,
    slots: Arc<Slots>,
    id: u64,
    kill: Arc<tokio::sync::Notify>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    header_timeout: Duration,
) {
    use tower_service::Service as _;
    let _ = stream.set_nodelay(true);
    let svc_slots = slots.clone();
    let svc = hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
        svc_slots.mark_used(id);
        let mut app = app.clone();
        async move { app.call(req.map(axum::body::Body::new)).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let stop = async move {
        let _ = stopping.wait_for(|s| *s).await.map(|_| ());
    };
    let graceful = tokio::select! {
        _ = conn.as_mut() => false,
        _ = kill.notified() => false,
        _ = stop => true,
    };
    if graceful {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
    slots.close(id);
}

/// Binds `bind` (e.g. `127.0.0.1:8080`, port 0 for a free one) and serves on the current runtime.
pub async fn start(engine: Arc<Engine>, cfg: ServerConfig, bind: &str) -> Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| LlmError::Config(format!("cannot bind {bind}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| LlmError::Config(format!("cannot read the bound address: {e}")))?;
    let header_timeout = cfg.header_timeout;
    let slots = Arc::new(Slots {
        cap: cfg
            .max_connections
            .unwrap_or_else(default_max_connections)
            .max(1),
        inner: Mutex::default(),
    });
    let app = router(engine.clone(), cfg);
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    // Out of file descriptors or a reset before accept: back off briefly, keep serving.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                _ = &mut stopped => break,
            };
            let Some((id, kill)) = slots.open() else {
                drop(stream);
                continue;
            };
            tokio::spawn(serve_conn(
                stream,
                app.clone(),
                slots.clone(),
                id,
                kill,
                stopping.clone(),
                header_timeout,
            ));
        }
        drop(listener);
        let _ = stopping_tx.send(true);
        while slots.count() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
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
