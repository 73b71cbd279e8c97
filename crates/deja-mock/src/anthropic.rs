//! A mock of Anthropic's Messages API (`deja-mock --format anthropic`): it checks
//! the wire format deja must send — `x-api-key` (not a bearer token), `anthropic-version`,
//! `POST /v1/messages` with `max_tokens`, a top-level `system`, alternating user/assistant
//! turns, well-formed content blocks and tools — and answers deterministically, as JSON or
//! as the streaming event sequence, with `tool_use` when tools are given and the prompt
//! asks for one. Errors come in Anthropic's shape, on demand.
//!
//! Payload shapes follow Anthropic's API reference:
//! - Message: <https://docs.anthropic.com/en/api/messages>
//! - streaming events: <https://docs.anthropic.com/en/api/messages-streaming>
//! - errors: <https://docs.anthropic.com/en/api/errors>
//! - models: <https://docs.anthropic.com/en/api/models-list>
//!
//! Steering: `PUT /_mock/behaviour` takes the OpenAI mock's [`Behaviour`]
//! (`fail` answers `status` with `body` as is; `drop_mid_stream` sends an `error` event
//! (`overloaded_error`) after that many events, as Anthropic does mid-stream). A prompt
//! containing `mock-error:<status>` is answered with that status and Anthropic's error
//! type for it; a model not named `claude-*` gets 404 `not_found_error`, as an unknown
//! model does. `GET /_mock/requests` lists what was received, headers included.

use super::{Behaviour, Recorder};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Models listed by `GET /v1/models` unless configured otherwise.
pub const DEFAULT_MODELS: &[&str] = &["claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022"];

#[derive(Debug, Clone, Serialize)]
pub struct AnthropicRecorded {
    pub path: String,
    pub x_api_key: Option<String>,
    pub anthropic_version: Option<String>,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Default)]
pub struct AnthropicMockState {
    /// When set, `x-api-key` must equal it.
    api_key: Option<String>,
    models: Vec<String>,
    behaviour: Mutex<Behaviour>,
    requests: Recorder<AnthropicRecorded>,
    calls: AtomicU64,
}

impl AnthropicMockState {
    pub fn new(api_key: Option<String>, models: Vec<String>) -> Self {
        AnthropicMockState {
            api_key,
            models,
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

    pub fn requests(&self) -> Vec<AnthropicRecorded> {
        self.requests.all()
    }

    pub fn clear(&self) {
        self.requests.clear();
    }
}

/// Anthropic's error type for a status (<https://docs.anthropic.com/en/api/errors>).
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        500 => "api_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error response as Anthropic sends it, `request-id` header included.
fn error(status: u16, message: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = HttpResponse::build(code);
    b.insert_header(("request-id", "req_mock_0001"));
    if status == 429 {
        b.insert_header(("retry-after", "7"));
    }
    b.json(json!({"type": "error", "error": {"type": error_type(status), "message": message}}))
}

fn invalid(message: impl AsRef<str>) -> HttpResponse {
    error(400, message.as_ref())
}

/// Check a content block of a `role` message; `Err` is the 400 message.
fn check_block(b: &Value, role: &str, at: &str, prev_tool_ids: &[String]) -> Result<(), String> {
    let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
    match (kind, role) {
        ("text", _) => {
            if b.get("text").and_then(Value::as_str).is_none() {
                return Err(format!("{at}.text: Field required"));
            }
        }
        ("image", "user") => {
            let src = b
                .get("source")
                .ok_or(format!("{at}.source: Field required"))?;
            match src.get("type").and_then(Value::as_str) {
                Some("base64") => {
                    let media = src.get("media_type").and_then(Value::as_str).unwrap_or("");
                    if !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&media) {
                        return Err(format!("{at}.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"));
                    }
                    if src
                        .get("data")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        return Err(format!("{at}.source.data: Field required"));
                    }
                }
                Some("url") => {
                    if src.get("url").and_then(Value::as_str).is_none() {
                        return Err(format!("{at}.source.url: Field required"));
                    }
                }
                _ => {
                    return Err(format!(
                        "{at}.source.type: Input tag does not match 'base64' or 'url'"
                    ))
                }
            }
        }
        ("tool_use", "assistant") => {
            if b.get("id")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
                || b.get("name").and_then(Value::as_str).is_none()
                || !b.get("input").is_some_and(Value::is_object)
            {
                return Err(format!("{at}: tool_use needs id, name and an object input"));
            }
        }
        ("tool_result", "user") => {
            let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
            if !prev_tool_ids.iter().any(|t| t == id) {
                return Err(format!("{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."));
            }
        }
        _ => {
            return Err(format!(
                "{at}.type: `{kind}` is not valid in a {role} message"
            ))
        }
    }
    Ok(())
}

/// Validate a Messages request the way the API does; `Err` is the 400 message.
fn validate(body: &Value) -> Result<(), String> {
    let obj = body.as_object().ok_or("body: expected an object")?;
    if !obj.get("model").is_some_and(Value::is_string) {
        return Err("model: Field required".into());
    }
    match obj.get("max_tokens").and_then(Value::as_u64) {
        Some(n) if n >= 1 => {}
        _ => return Err("max_tokens: Field required".into()),
    }
    if let Some(s) = obj.get("system") {
        let ok = s.is_string()
            || s.as_array().is_some_and(|a| {
                a.iter()
                    .all(|b| b["type"] == "text" && b["text"].is_string())
            });
        if !ok {
            return Err("system: Input should be a valid string or a list of text blocks".into());
        }
    }
    let msgs = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: Field required")?;
    if msgs.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let mut prev_role = "";
    let mut prev_tool_ids: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role == "system" {
            return Err(format!("messages.{i}.role: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role."));
        }
        if role != "user" && role != "assistant" {
            return Err(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        if role == prev_role {
            return Err(format!("messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"{role}\" roles in a row"));
        }
        let mut tool_ids = Vec::new();
        match m.get("content") {
            Some(Value::String(_)) => {}
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    check_block(
                        b,
                        role,
                        &format!("messages.{i}.content.{j}"),
                        &prev_tool_ids,
                    )?;
                    if b["type"] == "tool_use" {
                        tool_ids.extend(b["id"].as_str().map(str::to_owned));
                    }
                }
            }
            _ => return Err(format!("messages.{i}.content: Field required")),
        }
        prev_role = role;
        prev_tool_ids = tool_ids;
    }
    if let Some(tools) = obj.get("tools") {
        for (i, t) in tools
            .as_array()
            .ok_or("tools: expected a list")?
            .iter()
            .enumerate()
        {
            if !t.get("name").is_some_and(Value::is_string) {
                return Err(format!("tools.{i}.name: Field required"));
            }
            if !t.get("input_schema").is_some_and(Value::is_object) {
                return Err(format!("tools.{i}.input_schema: Field required"));
            }
            if t.get("function").is_some() || t.get("parameters").is_some() {
                return Err(format!(
                    "tools.{i}: Extra inputs are not permitted (OpenAI tool shape)"
                ));
            }
        }
    }
    if let Some(c) = obj.get("tool_choice") {
        match c.get("type").and_then(Value::as_str) {
            Some("auto" | "any" | "none") => {}
            Some("tool") if c.get("name").is_some_and(Value::is_string) => {}
            _ => {
                return Err(
                    "tool_choice: Input tag does not match 'auto', 'any', 'tool' or 'none'".into(),
                )
            }
        }
        if obj.get("tools").is_none() {
            return Err("tool_choice: may only be specified while providing tools".into());
        }
    }
    if let Some(s) = obj.get("stop_sequences") {
        if !s.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            return Err("stop_sequences: Input should be a valid list of strings".into());
        }
    }
    if let Some(t) = obj.get("temperature") {
        if !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t)) {
            return Err("temperature: Input should be between 0 and 1".into());
        }
    }
    for k in [
        "stop",
        "n",
        "max_completion_tokens",
        "tool_calls",
        "user",
        "stream_options",
    ] {
        if obj.contains_key(k) {
            return Err(format!("{k}: Extra inputs are not permitted"));
        }
    }
    Ok(())
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().map(str::to_owned),
                Some("tool_result") => Some(format!("[tool result: {}]", text_of(&b["content"]))),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn input_tokens(body: &Value) -> u64 {
    let system = match &body["system"] {
        Value::String(s) => words(s),
        Value::Array(a) => a
            .iter()
            .map(|b| words(b["text"].as_str().unwrap_or("")))
            .sum(),
        _ => 0,
    };
    system
        + body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|x| words(&text_of(&x["content"])))
                    .sum::<u64>()
            })
            .unwrap_or(0)
}

/// What the mock answers: text blocks and at most one tool call.
struct Answer {
    text: String,
    tool: Option<(String, String, Value)>,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
}

/// A deterministic input for a tool from its JSON schema.
fn input_for(schema: &Value) -> Value {
    let mut out = Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (k, p) in props {
            let v = match p["type"].as_str() {
                Some("string") => json!(format!("mock-{k}")),
                Some("integer" | "number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => Value::Null,
            };
            out.insert(k.clone(), v);
        }
    }
    Value::Object(out)
}

fn answer(body: &Value, n: u64) -> Answer {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    let images = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .map(|b| b.iter().filter(|b| b["type"] == "image").count())
        .unwrap_or(0);
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    let choice = body["tool_choice"]["type"].as_str().unwrap_or("auto");
    let wants_tool = !tools.is_empty()
        && choice != "none"
        && !last.contains("[tool result:")
        && (choice == "any"
            || choice == "tool"
            || last.to_lowercase().contains("tool")
            || tools
                .iter()
                .any(|t| t["name"].as_str().is_some_and(|n| last.contains(n))));
    if wants_tool {
        let tool = if choice == "tool" {
            tools
                .iter()
                .find(|t| t["name"] == body["tool_choice"]["name"])
                .unwrap_or(&tools[0])
        } else {
            &tools[0]
        };
        let name = tool["name"].as_str().unwrap_or("tool").to_owned();
        return Answer {
            text: format!("I will call {name}."),
            tool: Some((
                format!("toolu_mock_{n:04}"),
                name,
                input_for(&tool["input_schema"]),
            )),
            stop_reason: "tool_use",
            stop_sequence: None,
        };
    }
    let mut text = format!("Mock Claude answer to: {last}");
    if images > 0 {
        text.push_str(&format!(
            " (with {images} image{})",
            if images == 1 { "" } else { "s" }
        ));
    }
    let mut stop_reason = "end_turn";
    let mut stop_sequence = None;
    if let Some(seqs) = body["stop_sequences"].as_array() {
        let cut = seqs
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|s| text.find(s).map(|at| (at, s)))
            .min();
        if let Some((at, s)) = cut {
            text.truncate(at);
            stop_reason = "stop_sequence";
            stop_sequence = Some(s.to_owned());
        }
    }
    let max = body["max_tokens"].as_u64().unwrap_or(u64::MAX);
    if words(&text) > max {
        text = text
            .split_whitespace()
            .take(max as usize)
            .collect::<Vec<_>>()
            .join(" ");
        stop_reason = "max_tokens";
        stop_sequence = None;
    }
    Answer {
        text,
        tool: None,
        stop_reason,
        stop_sequence,
    }
}

fn message(body: &Value, n: u64, a: &Answer) -> Value {
    let mut content = Vec::new();
    if !a.text.is_empty() {
        content.push(json!({"type": "text", "text": a.text}));
    }
    let mut out_tokens = words(&a.text);
    if let Some((id, name, input)) = &a.tool {
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        out_tokens += 10;
    }
    json!({
        "id": format!("msg_mock_{n:04}"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": a.stop_reason,
        "stop_sequence": a.stop_sequence,
        "usage": {"input_tokens": input_tokens(body), "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": out_tokens},
    })
}

/// The streaming event sequence for `a`.
fn events(body: &Value, n: u64, a: &Answer) -> Vec<Value> {
    let full = message(body, n, a);
    let mut ev = vec![json!({"type": "message_start", "message": {
        "id": full["id"], "type": "message", "role": "assistant", "model": full["model"],
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": full["usage"]["input_tokens"], "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1}}})];
    let mut index = 0;
    if !a.text.is_empty() {
        ev.push(json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}));
        ev.push(json!({"type": "ping"}));
        for w in a.text.split_inclusive(' ') {
            ev.push(json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": w}}));
        }
        ev.push(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    if let Some((id, name, input)) = &a.tool {
        ev.push(json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}));
        let s = input.to_string();
        let chars: Vec<char> = s.chars().collect();
        // An empty first delta, then pieces of a few characters, as the API sends them.
        ev.push(json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": ""}}));
        for piece in chars.chunks(7) {
            ev.push(json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece.iter().collect::<String>()}}));
        }
        ev.push(json!({"type": "content_block_stop", "index": index}));
    }
    ev.push(json!({"type": "message_delta", "delta": {"stop_reason": a.stop_reason, "stop_sequence": a.stop_sequence},
        "usage": {"output_tokens": full["usage"]["output_tokens"]}}));
    ev.push(json!({"type": "message_stop"}));
    ev
}

fn sse(events: Vec<Value>, error_after: Option<usize>, delay: Option<Duration>) -> HttpResponse {
    let mut frames: Vec<Bytes> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if error_after == Some(i) {
            let err = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
            frames.push(Bytes::from(format!("event: error\ndata: {err}\n\n")));
            break;
        }
        let name = e["type"].as_str().unwrap_or("error");
        frames.push(Bytes::from(format!("event: {name}\ndata: {e}\n\n")));
    }
    let s = stream::unfold(frames.into_iter(), move |mut it| async move {
        if let Some(d) = delay {
            actix_rt::time::sleep(d).await;
        }
        it.next().map(|f| (Ok::<_, std::io::Error>(f), it))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("request-id", "req_mock_0001"))
        .streaming(s)
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `x-api-key` and `anthropic-version` as Anthropic checks them; `Err` is (status, message).
fn check_auth(st: &AnthropicMockState, req: &HttpRequest) -> Result<(), (u16, String)> {
    match header(req, "x-api-key") {
        None => {
            let msg = if req.headers().contains_key("authorization") {
                "x-api-key header is required (an Authorization bearer token is not accepted)"
            } else {
                "x-api-key header is required"
            };
            return Err((401, msg.into()));
        }
        Some(k) if st.api_key.as_ref().is_some_and(|want| *want != k) => {
            return Err((401, "invalid x-api-key".into()))
        }
        Some(_) => {}
    }
    match header(req, "anthropic-version") {
        None => Err((400, "anthropic-version: header is required".into())),
        Some(v) if v != "2023-06-01" && v != "2023-01-01" => {
            Err((400, format!("anthropic-version: invalid version `{v}`")))
        }
        Some(_) => Ok(()),
    }
}

async fn messages(
    state: web::Data<Arc<AnthropicMockState>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let st = state.get_ref().clone();
    let n = st.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    st.requests.push(AnthropicRecorded {
        path: req.path().to_owned(),
        x_api_key: header(&req, "x-api-key"),
        anthropic_version: header(&req, "anthropic-version"),
        authorization: header(&req, "authorization"),
        body: parsed.as_ref().cloned().unwrap_or(Value::Null),
    });
    if let Err((status, m)) = check_auth(&st, &req) {
        return error(status, &m);
    }
    if !header(&req, "content-type").is_some_and(|c| c.starts_with("application/json")) {
        return invalid("content-type: expected application/json");
    }
    let body = match parsed {
        Ok(v) => v,
        Err(e) => return invalid(format!("There was an error parsing the body: {e}")),
    };
    let behaviour = st.behaviour();
    match &behaviour {
        Behaviour::Fail { status, body } => {
            let code = actix_web::http::StatusCode::from_u16(*status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            return HttpResponse::build(code)
                .content_type("application/json")
                .body(body.clone());
        }
        Behaviour::Stall { ms } => actix_rt::time::sleep(Duration::from_millis(*ms)).await,
        _ => {}
    }
    if let Err(m) = validate(&body) {
        return invalid(m);
    }
    let model = body["model"].as_str().unwrap_or("");
    if !model.starts_with("claude-") {
        return error(404, &format!("model: {model}"));
    }
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    if let Some(code) = last
        .split("mock-error:")
        .nth(1)
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse::<u16>().ok())
    {
        return error(code, &format!("mock error {code} on demand"));
    }
    let a = answer(&body, n);
    if body["stream"] == json!(true) {
        let (error_after, delay) = match behaviour {
            Behaviour::DropMidStream { after_chunks } => (Some(after_chunks), None),
            Behaviour::SlowStream { ms } => (None, Some(Duration::from_millis(ms))),
            _ => (None, None),
        };
        return sse(events(&body, n, &a), error_after, delay);
    }
    HttpResponse::Ok()
        .insert_header(("request-id", "req_mock_0001"))
        .json(message(&body, n, &a))
}

async fn models(state: web::Data<Arc<AnthropicMockState>>, req: HttpRequest) -> HttpResponse {
    if let Err((status, m)) = check_auth(&state, &req) {
        return error(status, &m);
    }
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({"type": "model", "id": m, "display_name": m, "created_at": "2025-02-19T00:00:00Z"}))
        .collect();
    HttpResponse::Ok().json(json!({
        "data": data, "has_more": false,
        "first_id": state.models.first(), "last_id": state.models.last(),
    }))
}

async fn put_behaviour(
    state: web::Data<Arc<AnthropicMockState>>,
    b: web::Json<Behaviour>,
) -> HttpResponse {
    state.set_behaviour(b.into_inner());
    HttpResponse::NoContent().finish()
}

async fn get_requests(state: web::Data<Arc<AnthropicMockState>>) -> HttpResponse {
    HttpResponse::Ok().json(state.requests())
}

async fn delete_requests(state: web::Data<Arc<AnthropicMockState>>) -> HttpResponse {
    state.clear();
    HttpResponse::NoContent().finish()
}

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/messages", web::post().to(messages))
        .route("/v1/models", web::get().to(models))
        .route("/_mock/behaviour", web::put().to(put_behaviour))
        .route("/_mock/requests", web::get().to(get_requests))
        .route("/_mock/requests", web::delete().to(delete_requests));
}

/// Run the Anthropic mock on `listener` (inside an actix System).
pub fn server(
    listener: TcpListener,
    state: Arc<AnthropicMockState>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .configure(configure)
    })
    .workers(1)
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

/// The Anthropic mock on its own thread (tests).
pub struct AnthropicMock {
    pub addr: SocketAddr,
    pub state: Arc<AnthropicMockState>,
    _server: super::runner::Running,
}

impl AnthropicMock {
    /// Start on a free port; `api_key`, when set, is the only key accepted.
    pub fn start(api_key: Option<&str>) -> std::io::Result<Self> {
        let state = Arc::new(AnthropicMockState::new(
            api_key.map(str::to_owned),
            DEFAULT_MODELS.iter().map(|s| s.to_string()).collect(),
        ));
        let st = state.clone();
        let server = super::runner::Running::start(move |l| server(l, st))?;
        Ok(AnthropicMock {
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
    fn validation_catches_openai_shapes() {
        let ok =
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(validate(&ok), Ok(()));
        let no_max = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        assert!(validate(&no_max).unwrap_err().contains("max_tokens"));
        let system_role = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]});
        assert!(validate(&system_role)
            .unwrap_err()
            .contains("top-level `system`"));
        let twice = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]});
        assert!(validate(&twice).unwrap_err().contains("alternate"));
        let orphan = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "r"}]}]});
        assert!(validate(&orphan).unwrap_err().contains("tool_use_id"));
    }

    #[test]
    fn streamed_events_rebuild_the_message() {
        let body = json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "use the tool please"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]});
        let a = answer(&body, 1);
        let full = message(&body, 1, &a);
        let ev = events(&body, 1, &a);
        let text: String = ev
            .iter()
            .filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str))
            .collect();
        let json_str: String = ev
            .iter()
            .filter_map(|e| e.pointer("/delta/partial_json").and_then(Value::as_str))
            .collect();
        assert_eq!(text, full["content"][0]["text"].as_str().unwrap());
        assert_eq!(
            serde_json::from_str::<Value>(&json_str).unwrap(),
            full["content"][1]["input"]
        );
        assert_eq!(full["content"][1]["input"], json!({"city": "mock-city"}));
        assert_eq!(full["stop_reason"], "tool_use");
    }
}
