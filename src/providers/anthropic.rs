//! The Anthropic Messages API (<https://docs.anthropic.com/en/api/messages>): OpenAI chat
//! requests translated to `POST {base}/messages` with `x-api-key` and `anthropic-version`,
//! and the Message / streaming events / errors translated back to OpenAI format.
//!
//! The type mappings (stop reasons, error types by status) are shared with the inbound
//! Anthropic-compatible API in `crate::gateway::messages`.

use super::chat::{ChatChunk, ChatResponse, ChunkChoice, ChunkDelta};
use super::sse::{SseDecoder, SseEvent};
use super::stream::{chunk_stream, ChunkHook, HookError};
use super::{
    ChunkStream, Endpoint, Lease, NativeRequest, PoolError, ProviderAdapter, ProviderError,
    ProviderRequest,
};
use crate::config::ProviderConfig;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// `anthropic-version` sent when the provider's config names none.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// `max_tokens` when the request sets none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

#[derive(Debug, Clone)]
pub struct AnthropicAdapter {
    version: Arc<str>,
    default_max_tokens: u64,
}

impl Default for AnthropicAdapter {
    fn default() -> Self {
        AnthropicAdapter {
            version: DEFAULT_VERSION.into(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

impl AnthropicAdapter {
    /// The adapter for provider `id`; refuses an unusable `anthropic_version` or
    /// `default_max_tokens` at start-up rather than on every request.
    pub fn new(id: &str, cfg: &ProviderConfig) -> Result<Self, PoolError> {
        let err = |message: String| PoolError::Build {
            provider: id.to_owned(),
            message,
        };
        let own = cfg.anthropic().cloned().unwrap_or_default();
        let version = own.anthropic_version.as_deref().unwrap_or(DEFAULT_VERSION);
        if version.trim().is_empty() || reqwest::header::HeaderValue::from_str(version).is_err() {
            return Err(err(format!(
                "anthropic_version `{version}` is not a valid header value (e.g. \"{DEFAULT_VERSION}\")"
            )));
        }
        let default_max_tokens = own.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if default_max_tokens == 0 {
            return Err(err("default_max_tokens must be at least 1".into()));
        }
        Ok(AnthropicAdapter {
            version: version.into(),
            default_max_tokens,
        })
    }

    fn headers(&self, lease: &Lease, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let b = b.header("anthropic-version", self.version.as_ref());
        match &lease.key {
            Some(k) => b.header("x-api-key", k.expose()),
            None => b,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared type mappings
// ---------------------------------------------------------------------------------------

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's error `type` for an HTTP status
/// (<https://docs.anthropic.com/en/api/errors>).
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        s if (400..500).contains(&s) => "invalid_request_error",
        _ => "api_error",
    }
}

/// An Anthropic error body `{"type":"error","error":{"type","message"}}`.
pub fn anthropic_error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type_for_status(status), "message": message}})
}

// ---------------------------------------------------------------------------------------
// OpenAI request → Anthropic request
// ---------------------------------------------------------------------------------------

/// A request that cannot be expressed in the Anthropic format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct BadRequest {
    pub message: String,
    pub param: Option<String>,
}

fn bad(message: impl Into<String>, param: impl Into<String>) -> BadRequest {
    BadRequest {
        message: message.into(),
        param: Some(param.into()),
    }
}

/// Text of an OpenAI `content` (string or array of parts): the text parts joined.
fn openai_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `data:image/png;base64,AAAA` → (media type, data).
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

/// One OpenAI content part → one Anthropic content block.
fn part_to_block(part: &Value, at: &str) -> Result<Value, BadRequest> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        // An assistant's earlier refusal is part of the conversation as text.
        "refusal" => Ok(
            json!({"type": "text", "text": part.get("refusal").and_then(Value::as_str).unwrap_or("")}),
        ),
        "text" => {
            let text = part
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{at}.text must be a string."), format!("{at}.text")))?;
            Ok(json!({"type": "text", "text": text}))
        }
        "image_url" => {
            let url = part
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad(
                        format!("{at}.image_url.url must be a string."),
                        format!("{at}.image_url"),
                    )
                })?;
            if url.starts_with("data:") {
                let (media, data) = parse_data_url(url).ok_or_else(|| {
                    bad(
                        format!("{at}.image_url.url: only base64 data URLs (data:<type>;base64,...) are supported."),
                        format!("{at}.image_url.url"),
                    )
                })?;
                Ok(
                    json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
                )
            } else {
                Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
            }
        }
        other => Err(bad(
            format!("{at}: content part type `{other}` is not supported by Anthropic providers."),
            format!("{at}.type"),
        )),
    }
}

/// OpenAI `content` → Anthropic content blocks (a string stays a string).
fn content_blocks(content: &Value, at: &str) -> Result<Value, BadRequest> {
    match content {
        Value::String(s) => Ok(Value::String(s.clone())),
        Value::Array(parts) => Ok(Value::Array(
            parts
                .iter()
                .enumerate()
                .map(|(j, p)| part_to_block(p, &format!("{at}[{j}]")))
                .collect::<Result<_, _>>()?,
        )),
        Value::Null => Ok(Value::Array(vec![])),
        _ => Err(bad(
            format!("{at} must be a string or an array of content parts."),
            at.to_owned(),
        )),
    }
}

fn as_block_list(content: Value) -> Vec<Value> {
    match content {
        Value::String(s) if s.is_empty() => vec![],
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(a) => a,
        _ => vec![],
    }
}

/// Append a message, merging it into the previous one when the role repeats (Anthropic
/// wants user and assistant turns to alternate; tool results arrive as user turns).
fn push_message(out: &mut Vec<Value>, role: &str, content: Value) {
    if let Some(last) = out.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some(role) {
            let prev = last
                .get_mut("content")
                .map(Value::take)
                .unwrap_or(Value::Null);
            let mut blocks = as_block_list(prev);
            blocks.extend(as_block_list(content));
            last["content"] = Value::Array(blocks);
            return;
        }
    }
    out.push(json!({"role": role, "content": content}));
}

/// A client's own Anthropic Messages request for an Anthropic provider: sent as written,
/// with the route's model and, if it has none, the provider's default `max_tokens`.
/// (Its OpenAI translation in `ProviderRequest::body` still keys the cache.)
pub fn native_messages_request(
    native: &Map<String, Value>,
    model: &str,
    default_max_tokens: u64,
) -> Value {
    let mut out = native.clone();
    out.insert("model".into(), Value::String(model.to_owned()));
    out.entry("max_tokens")
        .or_insert_with(|| Value::from(default_max_tokens));
    Value::Object(out)
}

/// Translate an OpenAI chat request into an Anthropic Messages request.
pub fn to_messages_request(
    body: &Map<String, Value>,
    default_max_tokens: u64,
) -> Result<Value, BadRequest> {
    let mut out = Map::new();
    out.insert(
        "model".into(),
        body.get("model").cloned().unwrap_or(Value::Null),
    );
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("'messages' must be an array.", "messages"))?;
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => {
                let t = openai_text(content);
                if !t.is_empty() {
                    system.push(t);
                }
            }
            "user" => {
                let c = content_blocks(content, &format!("{at}.content"))?;
                push_message(&mut messages, "user", c);
            }
            "assistant" => {
                let mut blocks = as_block_list(content_blocks(content, &format!("{at}.content"))?);
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for (j, c) in calls.iter().enumerate() {
                        let at = format!("{at}.tool_calls[{j}]");
                        let f = c.get("function").unwrap_or(&Value::Null);
                        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                            bad(
                                format!("{at}.function.name must be a string."),
                                format!("{at}.function.name"),
                            )
                        })?;
                        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
                        let input: Value = if args.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(args).map_err(|e| {
                                bad(
                                    format!("{at}.function.arguments is not valid JSON: {e}"),
                                    format!("{at}.function.arguments"),
                                )
                            })?
                        };
                        let id = c.get("id").and_then(Value::as_str).unwrap_or("");
                        blocks.push(
                            json!({"type": "tool_use", "id": id, "name": name, "input": input}),
                        );
                    }
                }
                if blocks.is_empty() {
                    continue;
                }
                push_message(&mut messages, "assistant", Value::Array(blocks));
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        bad(
                            format!("{at}.tool_call_id is required for role `tool`."),
                            format!("{at}.tool_call_id"),
                        )
                    })?;
                let result = match content {
                    Value::Array(_) => content_blocks(content, &format!("{at}.content"))?,
                    other => Value::String(openai_text(other)),
                };
                push_message(
                    &mut messages,
                    "user",
                    json!([{"type": "tool_result", "tool_use_id": id, "content": result}]),
                );
            }
            other => {
                return Err(bad(
                    format!("{at}.role `{other}` is not supported by Anthropic providers."),
                    format!("{at}.role"),
                ))
            }
        }
    }
    if messages.is_empty() {
        return Err(bad(
            "Anthropic providers need at least one user or assistant message.",
            "messages",
        ));
    }
    let max_tokens = match body
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| body.get("max_tokens").filter(|v| !v.is_null()))
    {
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("'max_tokens' must be a positive integer.", "max_tokens"))?,
        None => default_max_tokens,
    };
    out.insert("max_tokens".into(), json!(max_tokens));
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    for k in ["temperature", "top_p"] {
        if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    match body.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        Some(_) => {
            return Err(bad(
                "'stop' must be a string or an array of strings.",
                "stop",
            ))
        }
    }
    if let Some(u) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    if let Some(n) = body.get("n").and_then(Value::as_u64) {
        if n > 1 {
            return Err(bad(
                "Anthropic providers answer one choice per request ('n' must be 1).",
                "n",
            ));
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let mut ts = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
            if kind != "function" {
                return Err(bad(
                    format!(
                        "tools[{i}]: tool type `{kind}` is not supported by Anthropic providers."
                    ),
                    format!("tools[{i}].type"),
                ));
            }
            let f = t.get("function").unwrap_or(&Value::Null);
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                bad(
                    format!("tools[{i}].function.name must be a string."),
                    format!("tools[{i}].function.name"),
                )
            })?;
            let mut tool = Map::new();
            tool.insert("name".into(), json!(name));
            if let Some(d) = f.get("description").and_then(Value::as_str) {
                tool.insert("description".into(), json!(d));
            }
            tool.insert(
                "input_schema".into(),
                f.get("parameters")
                    .filter(|p| p.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            );
            ts.push(Value::Object(tool));
        }
        if !ts.is_empty() {
            out.insert("tools".into(), Value::Array(ts));
        }
    }
    let mut choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            other => {
                return Err(bad(
                    format!("'tool_choice' `{other}` is not one of auto, none, required."),
                    "tool_choice",
                ))
            }
        }),
        Some(v) => {
            let name = v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("'tool_choice' names no function.", "tool_choice"))?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if body.get("parallel_tool_calls") == Some(&Value::Bool(false)) && out.contains_key("tools") {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    if let Some(c) = choice {
        if out.contains_key("tools") {
            out.insert("tool_choice".into(), c);
        }
    }
    if body.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------
// Anthropic response → OpenAI response
// ---------------------------------------------------------------------------------------

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Anthropic `usage` → OpenAI `usage` (cache reads and writes count as prompt tokens).
fn openai_usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let prompt = n("input_tokens") + n("cache_creation_input_tokens") + cached;
    let completion = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// Translate an Anthropic Message into an OpenAI `chat.completion`.
pub fn to_chat_completion(msg: &Value) -> Result<Value, String> {
    if msg.get("type").and_then(Value::as_str) != Some("message") {
        return Err("expected a Message object (type \"message\")".into());
    }
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .ok_or("Message has no content array")?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": b.get("input").unwrap_or(&json!({})).to_string(),
                },
            })),
            // thinking, redacted_thinking, server tool blocks: not part of OpenAI's message
            _ => {}
        }
    }
    let finish = finish_reason(
        msg.get("stop_reason")
            .and_then(Value::as_str)
            .unwrap_or("end_turn"),
    );
    let field = |k: &str| msg.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Ok(ChatResponse::assistant(
        field("id"),
        now_secs(),
        field("model"),
        text,
        calls,
        finish,
        openai_usage(msg.get("usage").unwrap_or(&Value::Null)),
    )
    .to_value())
}

/// An Anthropic error response → OpenAI-shaped `(status, body)`. 529 (overloaded) becomes
/// 503, which OpenAI clients and proxies understand; other statuses are kept.
pub fn to_openai_error(provider: &str, status: u16, body: &[u8]) -> (u16, Value) {
    let out_status = if status == 529 { 503 } else { status };
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let (kind, message) = match err {
        Some(e) if e.is_object() => (
            e.get("type")
                .and_then(Value::as_str)
                .unwrap_or_else(|| error_type_for_status(status))
                .to_owned(),
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        ),
        _ => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.trim().chars().take(500).collect();
            (error_type_for_status(status).to_owned(), snippet)
        }
    };
    let message = if message.is_empty() {
        format!("provider `{provider}` answered HTTP {status}")
    } else {
        message
    };
    (
        out_status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": kind}}),
    )
}

// ---------------------------------------------------------------------------------------
// Anthropic stream → OpenAI chunks
// ---------------------------------------------------------------------------------------

/// Turns the Anthropic event sequence (message_start, content_block_start/delta/stop,
/// message_delta, message_stop, ping, error) into `chat.completion.chunk` frames.
pub struct StreamToOpenAi {
    id: String,
    model: String,
    created: u64,
    /// Anthropic content block index → OpenAI tool call index.
    tools: HashMap<u64, usize>,
    usage: Map<String, Value>,
    finish: Option<&'static str>,
    started: bool,
    done: bool,
}

impl StreamToOpenAi {
    pub fn new() -> Self {
        StreamToOpenAi {
            id: String::new(),
            model: String::new(),
            created: now_secs(),
            tools: HashMap::new(),
            usage: Map::new(),
            finish: None,
            started: false,
            done: false,
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatChunk {
        ChatChunk::new(self.id.clone(), self.created, self.model.clone(), choices)
    }

    fn delta(&self, delta: ChunkDelta, finish: Option<&str>) -> ChatChunk {
        self.chunk(vec![ChunkChoice::new(0, delta, finish)])
    }

    fn merge_usage(&mut self, u: Option<&Value>) {
        if let Some(Value::Object(u)) = u {
            for (k, v) in u {
                if !v.is_null() {
                    self.usage.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

impl Default for StreamToOpenAi {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkHook<SseEvent> for StreamToOpenAi {
    fn event(&mut self, ev: &SseEvent, out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
        let v: Value = serde_json::from_str(&ev.data)
            .map_err(|e| format!("invalid JSON in a stream event: {e}"))?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                self.id = text("id");
                self.model = text("model");
                self.merge_usage(m.get("usage"));
                self.started = true;
                out.push(self.delta(ChunkDelta::start(), None));
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let b = v.get("content_block").unwrap_or(&Value::Null);
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = b
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(self.delta(ChunkDelta::text(t), None));
                        }
                    }
                    Some("tool_use") => {
                        let n = self.tools.len();
                        self.tools.insert(index, n);
                        // The input arrives as input_json_delta; a non-empty `input` here
                        // (some proxies send it whole) is passed as the arguments.
                        let args = match b.get("input") {
                            Some(Value::Object(o)) if !o.is_empty() => {
                                Value::Object(o.clone()).to_string()
                            }
                            _ => String::new(),
                        };
                        out.push(self.delta(
                            ChunkDelta::tool_calls(vec![json!({"index": n, "id": b.get("id"),
                                "type": "function",
                                "function": {"name": b.get("name"), "arguments": args}})]),
                            None,
                        ));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = v.get("delta").unwrap_or(&Value::Null);
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let t = d.get("text").and_then(Value::as_str).unwrap_or("");
                        out.push(self.delta(ChunkDelta::text(t), None));
                    }
                    Some("input_json_delta") => {
                        let p = d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                        if let Some(&n) = self.tools.get(&index) {
                            if !p.is_empty() {
                                out.push(self.delta(
                                    ChunkDelta::tool_calls(vec![
                                        json!({"index": n, "function": {"arguments": p}}),
                                    ]),
                                    None,
                                ));
                            }
                        }
                    }
                    // thinking_delta, signature_delta, citations_delta: not in OpenAI chunks
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish = Some(finish_reason(r));
                }
                self.merge_usage(v.get("usage"));
            }
            "message_stop" => {
                let finish = self.finish.unwrap_or("stop");
                out.push(self.delta(ChunkDelta::default(), Some(finish)));
                let usage = openai_usage(&Value::Object(self.usage.clone()));
                out.push(self.chunk(Vec::new()).with_usage(usage));
                self.done = true;
            }
            "error" => {
                let e = v.get("error").unwrap_or(&Value::Null);
                let t = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
                let m = e.get("message").and_then(Value::as_str).unwrap_or("");
                return Err(format!("{t}: {m}").into());
            }
            // ping and future event types
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
        Err(if self.started {
            "the stream ended before message_stop".into()
        } else {
            "the stream ended before message_start".into()
        })
    }

    fn terminal(&self) -> bool {
        self.done
    }
}

fn invalid(provider: &Arc<str>, e: BadRequest) -> ProviderError {
    ProviderError::Upstream {
        provider: provider.clone(),
        status: 400,
        body: Bytes::from(
            json!({"error": {"message": format!("provider `{provider}` (anthropic): {}", e.message),
                "type": "invalid_request_error", "param": e.param, "code": null}})
            .to_string(),
        ),
    }
}

impl ProviderAdapter for AnthropicAdapter {
    async fn build_request(
        &self,
        lease: &Lease,
        req: &ProviderRequest,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        if req.endpoint != Endpoint::ChatCompletions {
            return Err(ProviderError::Upstream {
                provider: lease.provider.clone(),
                status: 400,
                body: Bytes::from(
                    json!({"error": {"message": format!("provider `{}` (anthropic) serves chat completions only; {} is not available.", lease.provider, req.endpoint.path()),
                        "type": "invalid_request_error", "param": null, "code": "unsupported_endpoint"}})
                    .to_string(),
                ),
            });
        }
        let body = match &req.native {
            Some(NativeRequest::Anthropic(native)) => {
                native_messages_request(native, &req.model, self.default_max_tokens)
            }
            None => to_messages_request(&req.body, self.default_max_tokens)
                .map_err(|e| invalid(&lease.provider, e))?,
        };
        let body = serde_json::to_vec(&body).map_err(|e| ProviderError::InvalidResponse {
            provider: lease.provider.clone(),
            message: format!("cannot encode request: {e}"),
        })?;
        let url = format!("{}/messages", lease.base_url);
        let mut b = lease
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if req.stream {
            b = b.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        Ok(self.headers(lease, b))
    }

    fn translate_response(
        &self,
        provider: &Arc<str>,
        _req: &ProviderRequest,
        body: Bytes,
    ) -> Result<Bytes, ProviderError> {
        let invalid = |message: String| ProviderError::InvalidResponse {
            provider: provider.clone(),
            message,
        };
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("response is not JSON: {e}")))?;
        let out = to_chat_completion(&v).map_err(invalid)?;
        Ok(Bytes::from(out.to_string()))
    }

    fn translate_stream(
        &self,
        provider: &Arc<str>,
        req: &ProviderRequest,
        resp: reqwest::Response,
    ) -> ChunkStream {
        chunk_stream(
            provider,
            req,
            resp,
            SseDecoder::new(),
            StreamToOpenAi::new(),
        )
    }

    fn translate_error(&self, provider: &Arc<str>, status: u16, body: Bytes) -> ProviderError {
        let (status, body) = to_openai_error(provider, status, &body);
        ProviderError::Upstream {
            provider: provider.clone(),
            status,
            body: Bytes::from(body.to_string()),
        }
    }

    async fn list_models(&self, lease: &Lease) -> Result<Vec<String>, ProviderError> {
        let url = format!("{}/models?limit=1000", lease.base_url);
        let v = super::fetch_model_list(self, lease, self.headers(lease, lease.client.get(url)))
            .await?;
        Ok(super::names_in(&v, "data", "id"))
    }
}

#[cfg(test)]
mod tests;
