//! A mock Cohere v2 API that checks the bearer key and the request shapes Cohere
//! documents, and answers with recorded-style payloads (SSE for `stream: true`).
//!
//! On demand, driven by the last user text: `ERROR <status>` answers that status with
//! Cohere's `{"message": ...}`; `STREAM_ERROR` ends a stream with `finish_reason: ERROR`;
//! when tools are offered (and `tool_choice` is not `NONE`) and the last message is the
//! user's, the model calls the first tool.
//!
//! References: <https://docs.cohere.com/reference/chat>, <https://docs.cohere.com/v2/docs/streaming>,
//! <https://docs.cohere.com/docs/tool-use-streaming>, <https://docs.cohere.com/reference/embed>,
//! <https://docs.cohere.com/reference/list-models>, <https://docs.cohere.com/reference/errors>.

use super::Recorder;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct CohereMockSettings {
    pub api_key: String,
    pub models: Vec<String>,
}

impl Default for CohereMockSettings {
    fn default() -> Self {
        CohereMockSettings {
            api_key: "co-test-key".into(),
            models: vec!["command-a-03-2025".into(), "embed-v4.0".into()],
        }
    }
}

#[derive(Debug, Clone)]
pub struct CohereRecorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

pub struct CohereMockState {
    settings: CohereMockSettings,
    requests: Recorder<CohereRecorded>,
}

fn error(status: u16, message: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code).json(json!({"message": message}))
}

/// The 401 Cohere answers unless the request carries the mock's key as a bearer token.
fn auth_refusal(st: &CohereMockState, req: &HttpRequest) -> Option<HttpResponse> {
    let want = format!("Bearer {}", st.settings.api_key);
    match req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        Some(a) if a == want => None,
        Some(_) => Some(error(401, "invalid api token")),
        None => Some(error(401, "no api key supplied")),
    }
}

fn record(st: &CohereMockState, req: &HttpRequest, body: &Value) {
    st.requests.push(CohereRecorded {
        path: req.path().to_owned(),
        authorization: req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    });
}

fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The v2 chat request checks (the fields deja may send; OpenAI-only names refused).
fn check_chat(body: &Value) -> Result<(), String> {
    let obj = body
        .as_object()
        .ok_or("invalid request: expected a JSON object")?;
    const KEYS: &[&str] = &[
        "model",
        "messages",
        "stream",
        "tools",
        "documents",
        "citation_options",
        "response_format",
        "safety_mode",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "k",
        "p",
        "logprobs",
        "tool_choice",
        "strict_tools",
        "thinking",
    ];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("invalid request: unknown field `{k}`"));
    }
    if obj
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("invalid request: model must be a non-empty string".into());
    }
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("invalid request: messages must be a non-empty list")?;
    for (i, m) in messages.iter().enumerate() {
        match m.get("role").and_then(Value::as_str) {
            Some("system") | Some("user") => {
                if m.get("content").is_none() {
                    return Err(format!("invalid request: messages[{i}].content is required"));
                }
            }
            Some("assistant") => {
                if let Some(calls) = m.get("tool_calls") {
                    let ok = calls.as_array().is_some_and(|c| {
                        c.iter().all(|c| {
                            c.get("id").and_then(Value::as_str).is_some()
                                && c.get("type").and_then(Value::as_str) == Some("function")
                                && c.pointer("/function/name").and_then(Value::as_str).is_some()
                                && c.pointer("/function/arguments").and_then(Value::as_str).is_some()
                        })
                    });
                    if !ok {
                        return Err(format!("invalid request: messages[{i}].tool_calls is malformed"));
                    }
                }
            }
            Some("tool") => {
                if m.get("tool_call_id").and_then(Value::as_str).is_none() {
                    return Err(format!("invalid request: messages[{i}].tool_call_id is required"));
                }
            }
            other => return Err(format!("invalid request: messages[{i}].role {other:?} is not one of system, user, assistant, tool")),
        }
    }
    if let Some(tools) = obj.get("tools") {
        let ok = tools.as_array().is_some_and(|t| {
            t.iter().all(|t| {
                t.get("type").and_then(Value::as_str) == Some("function")
                    && t.pointer("/function/name")
                        .and_then(Value::as_str)
                        .is_some()
                    && t.pointer("/function/parameters")
                        .is_some_and(Value::is_object)
            })
        });
        if !ok {
            return Err(
                "invalid request: tools must be [{type: function, function: {name, parameters}}]"
                    .into(),
            );
        }
    }
    if let Some(tc) = obj.get("tool_choice") {
        if !matches!(tc.as_str(), Some("REQUIRED") | Some("NONE")) {
            return Err("invalid request: tool_choice must be REQUIRED or NONE".into());
        }
    }
    Ok(())
}

struct Plan {
    text: String,
    tool: Option<(String, String)>,
    finish: &'static str,
    input_tokens: u64,
}

fn plan(body: &Value) -> Plan {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let input_tokens = messages
        .iter()
        .map(|m| words(&text_of(m.get("content"))))
        .sum();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let last_text = text_of(last.get("content"));
    let tools_on = body.get("tool_choice").and_then(Value::as_str) != Some("NONE");
    if let (Some(tool), true, Some("user")) = (
        body.pointer("/tools/0/function/name")
            .and_then(Value::as_str),
        tools_on,
        last.get("role").and_then(Value::as_str),
    ) {
        return Plan {
            text: String::new(),
            tool: Some((tool.to_owned(), json!({"query": last_text}).to_string())),
            finish: "TOOL_CALL",
            input_tokens,
        };
    }
    let text = if last.get("role").and_then(Value::as_str) == Some("tool") {
        format!("Mock answer from tool result: {last_text}")
    } else {
        format!("Mock answer to: {last_text}")
    };
    let (text, finish) = match body.get("max_tokens").and_then(Value::as_u64) {
        Some(n) if words(&text) > n => (
            text.split_whitespace()
                .take(n as usize)
                .collect::<Vec<_>>()
                .join(" "),
            "MAX_TOKENS",
        ),
        _ => (text, "COMPLETE"),
    };
    Plan {
        text,
        tool: None,
        finish,
        input_tokens,
    }
}

fn usage(p: &Plan, out: u64) -> Value {
    json!({
        "billed_units": {"input_tokens": p.input_tokens, "output_tokens": out},
        "tokens": {"input_tokens": p.input_tokens + 200, "output_tokens": out}
    })
}

const MSG_ID: &str = "c14c80c3-18eb-4519-9460-6c92edd8cfb4";

/// Recorded-style v2 chat response (https://docs.cohere.com/reference/chat).
fn chat_response(p: &Plan) -> Value {
    let mut message = json!({"role": "assistant"});
    if let Some((name, args)) = &p.tool {
        message["tool_plan"] = json!(format!("I will use the {name} tool."));
        message["tool_calls"] = json!([{"id": format!("{name}_1byjy32y4hvq"), "type": "function", "function": {"name": name, "arguments": args}}]);
    } else {
        message["content"] = json!([{"type": "text", "text": p.text}]);
    }
    let out = if p.tool.is_some() { 28 } else { words(&p.text) };
    json!({"id": MSG_ID, "finish_reason": p.finish, "message": message, "usage": usage(p, out)})
}

/// The v2 stream events (https://docs.cohere.com/v2/docs/streaming,
/// https://docs.cohere.com/docs/tool-use-streaming), as SSE with `event:` lines.
fn stream_events(p: &Plan, fail: bool) -> Vec<Value> {
    let mut ev = vec![
        json!({"id": MSG_ID, "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
    ];
    if let Some((name, args)) = &p.tool {
        ev.push(json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will use the tool."}}}));
        ev.push(json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": format!("{name}_nsz5zm3w56q3"), "type": "function", "function": {"name": name, "arguments": ""}}}}}));
        let mid = args
            .char_indices()
            .nth(args.chars().count() / 2)
            .map(|(i, _)| i)
            .unwrap_or(0);
        for part in [&args[..mid], &args[mid..]] {
            ev.push(json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}}}));
        }
        ev.push(json!({"type": "tool-call-end", "index": 0}));
    } else {
        ev.push(json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}));
        for w in p.text.split_inclusive(' ') {
            ev.push(json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": w}}}}));
        }
        ev.push(json!({"type": "content-end", "index": 0}));
    }
    let out = if p.tool.is_some() { 28 } else { words(&p.text) };
    let finish = if fail { "ERROR" } else { p.finish };
    let mut end =
        json!({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage(p, out)}});
    if fail {
        end["delta"]["error"] = json!("internal failure (mock)");
    }
    ev.push(end);
    ev
}

async fn chat(
    state: web::Data<Arc<CohereMockState>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let st = state.get_ref();
    if let Some(r) = auth_refusal(st, &req) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid request: body is not valid JSON");
    };
    record(st, &req, &body);
    if let Err(m) = check_chat(&body) {
        return error(400, &m);
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    if !st.settings.models.iter().any(|m| m == model) {
        return error(404, &format!("model '{model}' not found, make sure the correct model ID was used and that you have access to the model."));
    }
    let last = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .map(|m| text_of(m.get("content")))
        .unwrap_or_default();
    if let Some(code) = last
        .strip_prefix("ERROR ")
        .and_then(|c| c.trim().parse::<u16>().ok())
    {
        let message = match code {
            429 => "You are using a Trial key, which is limited to 20 API calls / minute.",
            401 => "invalid api token",
            _ => "the mock was asked to fail",
        };
        return error(code, message);
    }
    let p = plan(&body);
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return HttpResponse::Ok().json(chat_response(&p));
    }
    let frames: Vec<Result<Bytes, std::io::Error>> =
        stream_events(&p, last.contains("STREAM_ERROR"))
            .into_iter()
            .map(|e| {
                Ok(Bytes::from(format!(
                    "event: {}\ndata: {e}\n\n",
                    e["type"].as_str().unwrap_or("")
                )))
            })
            .collect();
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(futures_util::stream::iter(frames))
}

fn embedding(text: &str, dims: usize) -> Vec<f32> {
    (0..dims as u64)
        .map(|d| {
            let mut h: u64 = 0x84222325cbf29ce4 ^ d;
            for b in text.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100000001b3);
            }
            ((h % 2000) as f32 / 1000.0) - 1.0
        })
        .collect()
}

/// `/v2/embed` (https://docs.cohere.com/reference/embed).
async fn embed(
    state: web::Data<Arc<CohereMockState>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let st = state.get_ref();
    if let Some(r) = auth_refusal(st, &req) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid request: body is not valid JSON");
    };
    record(st, &req, &body);
    let Some(obj) = body.as_object() else {
        return error(400, "invalid request: expected a JSON object");
    };
    const KEYS: &[&str] = &[
        "model",
        "texts",
        "images",
        "inputs",
        "input_type",
        "embedding_types",
        "truncate",
        "output_dimension",
        "max_tokens",
    ];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return error(400, &format!("invalid request: unknown field `{k}`"));
    }
    let Some(texts) = obj
        .get("texts")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty() && t.iter().all(Value::is_string))
    else {
        return error(
            400,
            "invalid request: texts must be a non-empty list of strings",
        );
    };
    if !obj
        .get("input_type")
        .and_then(Value::as_str)
        .is_some_and(|t| {
            [
                "search_document",
                "search_query",
                "classification",
                "clustering",
            ]
            .contains(&t)
        })
    {
        return error(
            400,
            "invalid request: input_type is required for embed models v3 and higher",
        );
    }
    if !obj
        .get("embedding_types")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|x| x == "float"))
    {
        return error(400, "invalid request: embedding_types must include float");
    }
    let dims = obj
        .get("output_dimension")
        .and_then(Value::as_u64)
        .unwrap_or(1536) as usize;
    let texts: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
    let tokens: u64 = texts.iter().map(|t| words(t)).sum();
    HttpResponse::Ok().json(json!({
        "id": "da6e531f-54c6-4a73-bf92-f60566d8d753",
        "embeddings": {"float": texts.iter().map(|t| embedding(t, dims)).collect::<Vec<_>>()},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
        "response_type": "embeddings_by_type"
    }))
}

/// `GET /v1/models` (https://docs.cohere.com/reference/list-models).
async fn models(state: web::Data<Arc<CohereMockState>>, req: HttpRequest) -> HttpResponse {
    let st = state.get_ref();
    if let Some(r) = auth_refusal(st, &req) {
        return r;
    }
    let models: Vec<Value> = st
        .settings
        .models
        .iter()
        .map(|m| {
            let endpoints = if m.starts_with("embed") { json!(["embed"]) } else { json!(["chat"]) };
            json!({"name": m, "endpoints": endpoints, "finetuned": false, "context_length": 256000,
                "tokenizer_url": "https://storage.googleapis.com/cohere-public/tokenizers/command-a.json",
                "default_endpoints": endpoints})
        })
        .collect();
    HttpResponse::Ok().json(json!({"models": models, "next_page_token": null}))
}

/// Run the mock on `listener` inside the current actix System (`deja-mock
/// --format cohere`).
pub fn server(
    listener: TcpListener,
    state: Arc<CohereMockState>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .route("/v2/chat", web::post().to(chat))
            .route("/v2/embed", web::post().to(embed))
            .route("/v1/models", web::get().to(models))
            .default_service(web::to(|| async { error(404, "not found") }))
    })
    .workers(1)
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

impl CohereMockState {
    pub fn new(settings: CohereMockSettings) -> Self {
        CohereMockState {
            settings,
            requests: Recorder::default(),
        }
    }
}

/// A mock Cohere API on its own thread; `base_url()` goes in the provider config.
pub struct CohereMock {
    pub addr: SocketAddr,
    pub state: Arc<CohereMockState>,
    _server: super::runner::Running,
}

impl CohereMock {
    pub fn start(settings: CohereMockSettings) -> std::io::Result<Self> {
        let state = Arc::new(CohereMockState::new(settings));
        let st = state.clone();
        let server = super::runner::Running::start(move |l| server(l, st))?;
        Ok(CohereMock {
            addr: server.addr,
            state,
            _server: server,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<CohereRecorded> {
        self.state.requests.all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_checks_refuse_openai_only_fields() {
        let ok = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        check_chat(&ok).unwrap();
        for (bad, needle) in [
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_p": 1}),
                "top_p",
            ),
            (
                json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
                "tool_call_id",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}),
                "tool_choice",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
        ] {
            assert!(check_chat(&bad).unwrap_err().contains(needle));
        }
    }
}
