//! Mock LLM providers for deja's integration tests, benchmarks and demos (the `deja-mock`
//! binary, or in process through [`MockProvider`] and each module's `*Mock`). This crate
//! does not depend on `deja`: the mocks check requests with their own code, so a bug in
//! the gateway cannot be mirrored by the mock that tests it.
//!
//! The root module is a mock provider speaking the OpenAI wire format (JSON and SSE;
//! `deja-mock --port N`). It can be told to fail, stall or
//! drop mid-stream (`PUT /_mock/behaviour`), and it records what it received
//! (`GET /_mock/requests`). Answers are deterministic functions of the request.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod cohere;
pub mod gemini;
mod runner;
pub mod sigv4;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the mock answers the next requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Behaviour {
    #[default]
    Normal,
    /// Answer every request with `status` and `body` (raw text; JSON or not).
    Fail { status: u16, body: String },
    /// Wait `ms` before answering (a stalled provider).
    Stall { ms: u64 },
    /// Stream `after_chunks` chunks, then break the connection.
    DropMidStream { after_chunks: usize },
    /// Stream normally, with `ms` between chunks.
    SlowStream { ms: u64 },
}

#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MockStats {
    pub calls: u64,
    pub streams_started: u64,
    pub streams_completed: u64,
    pub streams_cancelled: u64,
}

#[derive(Debug, Clone)]
pub struct MockSettings {
    /// Keep every request body (off for benchmarks).
    pub record: bool,
    /// Models listed by `GET /v1/models`.
    pub models: Vec<String>,
    pub workers: usize,
}

impl Default for MockSettings {
    fn default() -> Self {
        MockSettings {
            record: true,
            models: vec!["mock-model".into()],
            workers: 1,
        }
    }
}

/// The requests a mock received, in order (shared by every mock's state).
pub struct Recorder<T>(Mutex<Vec<T>>);

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder(Mutex::new(Vec::new()))
    }
}

impl<T: Clone> Recorder<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, r: T) {
        self.lock().push(r);
    }

    /// A copy of everything recorded so far.
    pub fn all(&self) -> Vec<T> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// Shared mock state; tests hold an `Arc` to steer and inspect it.
#[derive(Default)]
pub struct MockState {
    behaviour: Mutex<Behaviour>,
    requests: Recorder<Recorded>,
    record: bool,
    models: Vec<String>,
    calls: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_cancelled: AtomicU64,
}

impl MockState {
    pub fn new(settings: &MockSettings) -> Self {
        MockState {
            record: settings.record,
            models: settings.models.clone(),
            ..Default::default()
        }
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap_or_else(|e| e.into_inner()) = b;
    }

    fn behaviour(&self) -> Behaviour {
        self.behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.all()
    }

    pub fn clear(&self) {
        self.requests.clear();
    }

    pub fn stats(&self) -> MockStats {
        MockStats {
            calls: self.calls.load(Ordering::SeqCst),
            streams_started: self.streams_started.load(Ordering::SeqCst),
            streams_completed: self.streams_completed.load(Ordering::SeqCst),
            streams_cancelled: self.streams_cancelled.load(Ordering::SeqCst),
        }
    }
}

/// The reply text for a request: derived from its last message or prompt, so different
/// questions get different answers.
pub fn answer_for(body: &Value) -> String {
    let last = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .map(content_text)
        .or_else(|| body.get("prompt").map(content_text))
        .unwrap_or_default();
    format!("Mock answer to: {last}")
}

fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn tokens(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn prompt_tokens(body: &Value) -> u64 {
    body.get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|x| x.get("content"))
                .map(|c| tokens(&content_text(c)))
                .sum()
        })
        .or_else(|| body.get("prompt").map(|p| tokens(&content_text(p))))
        .unwrap_or(0)
}

const CREATED: u64 = 1_700_000_000;

/// The answer cut to `max_tokens` words, with OpenAI's finish reason.
fn answer_and_finish(body: &Value) -> (String, &'static str) {
    let text = answer_for(body);
    let limit = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64);
    match limit {
        Some(n) if tokens(&text) > n => {
            let cut: Vec<&str> = text.split_whitespace().take(n as usize).collect();
            (cut.join(" "), "length")
        }
        _ => (text, "stop"),
    }
}

fn chat_response(body: &Value, n: u64) -> Value {
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let (text, finish) = answer_and_finish(body);
    let (p, c) = (prompt_tokens(body), tokens(&text));
    json!({
        "id": format!("chatcmpl-mock-{n}"),
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_mock",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish
        }],
        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
        "mock_extra": {"received_fields": body.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>())}
    })
}

fn completion_response(body: &Value, n: u64) -> Value {
    let (text, finish) = answer_and_finish(body);
    let (p, c) = (prompt_tokens(body), tokens(&text));
    json!({
        "id": format!("cmpl-mock-{n}"),
        "object": "text_completion",
        "created": CREATED,
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    })
}

fn embedding_for(text: &str) -> Vec<f32> {
    // Deterministic pseudo-embedding: FNV-1a seeded per dimension.
    (0..8u64)
        .map(|d| {
            let mut h: u64 = 0xcbf29ce484222325 ^ d;
            for b in text.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100000001b3);
            }
            ((h % 2000) as f32 / 1000.0) - 1.0
        })
        .collect()
}

fn embeddings_response(body: &Value) -> Value {
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::Array(a)) => a.iter().map(content_text).collect(),
        Some(v) => vec![content_text(v)],
        None => vec![],
    };
    let total: u64 = inputs.iter().map(|s| tokens(s)).sum();
    json!({
        "object": "list",
        "data": inputs.iter().enumerate().map(|(i, s)| json!({"object": "embedding", "index": i, "embedding": embedding_for(s)})).collect::<Vec<_>>(),
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "usage": {"prompt_tokens": total, "total_tokens": total}
    })
}

/// The SSE events of a streamed reply (without `[DONE]`).
fn stream_events(body: &Value, n: u64, chat: bool) -> Vec<Value> {
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (text, finish) = answer_and_finish(body);
    let words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    let usage_field = if include_usage {
        Some(Value::Null)
    } else {
        None
    };
    let mut events = Vec::new();
    let chunk = |choice: Value| {
        let mut c = if chat {
            json!({"id": format!("chatcmpl-mock-{n}"), "object": "chat.completion.chunk", "created": CREATED, "model": model, "system_fingerprint": "fp_mock", "choices": [choice]})
        } else {
            json!({"id": format!("cmpl-mock-{n}"), "object": "text_completion", "created": CREATED, "model": model, "choices": [choice]})
        };
        if let Some(u) = &usage_field {
            c["usage"] = u.clone();
        }
        c
    };
    if chat {
        events.push(chunk(json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})));
    }
    for w in &words {
        events.push(if chat {
            chunk(json!({"index": 0, "delta": {"content": w}, "logprobs": null, "finish_reason": null}))
        } else {
            chunk(json!({"text": w, "index": 0, "logprobs": null, "finish_reason": null}))
        });
    }
    events.push(if chat {
        chunk(json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}))
    } else {
        chunk(json!({"text": "", "index": 0, "logprobs": null, "finish_reason": finish}))
    });
    if include_usage {
        let (p, c) = (prompt_tokens(body), tokens(&text));
        let mut last = chunk(Value::Null);
        last["choices"] = json!([]);
        last["usage"] = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
        events.push(last);
    }
    events
}

/// Counts a stream as cancelled when it is dropped before its end.
struct StreamGuard {
    state: Arc<MockState>,
    finished: bool,
}

impl StreamGuard {
    /// The stream reached its end (normally or by the scripted drop).
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.finished {
            &self.state.streams_completed
        } else {
            &self.state.streams_cancelled
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

fn sse_response(
    state: Arc<MockState>,
    events: Vec<Value>,
    drop_after: Option<usize>,
    delay: Option<Duration>,
) -> HttpResponse {
    state.streams_started.fetch_add(1, Ordering::SeqCst);
    let guard = StreamGuard {
        state,
        finished: false,
    };
    let frames: Vec<Bytes> = events
        .iter()
        .map(|e| Bytes::from(format!("data: {e}\n\n")))
        .chain(std::iter::once(Bytes::from_static(b"data: [DONE]\n\n")))
        .collect();
    let s = stream::unfold(
        (frames.into_iter().enumerate(), guard),
        move |(mut it, mut guard)| async move {
            if let Some(d) = delay {
                actix_rt::time::sleep(d).await;
            }
            match it.next() {
                Some((i, _)) if drop_after.is_some_and(|n| i >= n) => {
                    guard.finished = true;
                    Some((
                        Err(std::io::Error::other("mock: dropped mid-stream")),
                        (it, guard),
                    ))
                }
                Some((_, f)) => Some((Ok::<_, std::io::Error>(f), (it, guard))),
                None => {
                    guard.finish();
                    None
                }
            }
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(s)
}

async fn handle(
    state: web::Data<Arc<MockState>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let st = state.get_ref().clone();
    let n = st.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let path = req.path().to_owned();
    let json_body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return HttpResponse::BadRequest().json(json!({"error": {"message": format!("mock: invalid JSON: {e}"), "type": "invalid_request_error", "param": null, "code": null}}))
        }
    };
    if st.record {
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        st.requests.push(Recorded {
            path: path.clone(),
            authorization,
            body: json_body.clone(),
        });
    }
    let behaviour = st.behaviour();
    match &behaviour {
        Behaviour::Fail { status, body } => {
            let code = actix_web::http::StatusCode::from_u16(*status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            let ct = if body.trim_start().starts_with('{') {
                "application/json"
            } else {
                "text/plain"
            };
            return HttpResponse::build(code)
                .content_type(ct)
                .body(body.clone());
        }
        Behaviour::Stall { ms } => actix_rt::time::sleep(Duration::from_millis(*ms)).await,
        _ => {}
    }
    let streaming = json_body
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (drop_after, delay) = match behaviour {
        Behaviour::DropMidStream { after_chunks } => {
            (Some(after_chunks), Some(Duration::from_millis(20)))
        }
        Behaviour::SlowStream { ms } => (None, Some(Duration::from_millis(ms))),
        _ => (None, None),
    };
    if path.ends_with("/chat/completions") {
        if streaming {
            return sse_response(st, stream_events(&json_body, n, true), drop_after, delay);
        }
        HttpResponse::Ok().json(chat_response(&json_body, n))
    } else if path.ends_with("/completions") {
        if streaming {
            return sse_response(st, stream_events(&json_body, n, false), drop_after, delay);
        }
        HttpResponse::Ok().json(completion_response(&json_body, n))
    } else {
        HttpResponse::Ok().json(embeddings_response(&json_body))
    }
}

async fn models(state: web::Data<Arc<MockState>>) -> HttpResponse {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": CREATED, "owned_by": "mock"}))
        .collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data}))
}

async fn put_behaviour(state: web::Data<Arc<MockState>>, b: web::Json<Behaviour>) -> HttpResponse {
    state.set_behaviour(b.into_inner());
    HttpResponse::NoContent().finish()
}

async fn get_requests(state: web::Data<Arc<MockState>>) -> HttpResponse {
    HttpResponse::Ok().json(state.requests())
}

async fn delete_requests(state: web::Data<Arc<MockState>>) -> HttpResponse {
    state.clear();
    HttpResponse::NoContent().finish()
}

async fn get_stats(state: web::Data<Arc<MockState>>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats())
}

fn configure(cfg: &mut web::ServiceConfig) {
    for prefix in ["", "/v1"] {
        cfg.route(
            &format!("{prefix}/chat/completions"),
            web::post().to(handle),
        )
        .route(&format!("{prefix}/completions"), web::post().to(handle))
        .route(&format!("{prefix}/embeddings"), web::post().to(handle))
        .route(&format!("{prefix}/models"), web::get().to(models));
    }
    cfg.route("/_mock/behaviour", web::put().to(put_behaviour))
        .route("/_mock/requests", web::get().to(get_requests))
        .route("/_mock/requests", web::delete().to(delete_requests))
        .route("/_mock/stats", web::get().to(get_stats));
}

/// Run the mock on `listener` until the process stops (inside an actix System).
pub fn server(
    listener: TcpListener,
    state: Arc<MockState>,
    workers: usize,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .configure(configure)
    })
    // SSE frames are small writes: without TCP_NODELAY Nagle's algorithm can hold one
    // until the reader's delayed ACK, and the mock must never be what a benchmark measures.
    .tcp_nodelay(true)
    .workers(workers.max(1))
    .backlog(4096)
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

/// A mock running on its own thread (tests, benchmarks).
pub struct MockProvider {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    _server: runner::Running,
}

impl MockProvider {
    pub fn start(settings: MockSettings) -> std::io::Result<Self> {
        let state = Arc::new(MockState::new(&settings));
        let st = state.clone();
        let server = runner::Running::start(move |l| server(l, st, settings.workers))?;
        Ok(MockProvider {
            addr: server.addr,
            state,
            _server: server,
        })
    }

    /// Base URL including `/v1`, as a provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_depend_on_the_question() {
        let a = answer_for(&json!({"messages": [{"role": "user", "content": "one"}]}));
        let b = answer_for(&json!({"messages": [{"role": "user", "content": "two"}]}));
        assert_ne!(a, b);
        assert_eq!(answer_for(&json!({"prompt": "x"})), "Mock answer to: x");
    }

    #[test]
    fn stream_events_reassemble_the_answer_and_report_usage() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "how are you"}], "stream_options": {"include_usage": true}});
        let ev = stream_events(&body, 1, true);
        let text: String = ev
            .iter()
            .filter_map(|e| {
                e.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(text, answer_for(&body));
        let last = ev.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["prompt_tokens"], 3);
    }
}
