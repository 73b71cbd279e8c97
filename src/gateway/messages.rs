//! The inbound Anthropic-compatible API (`POST /anthropic/v1/messages`, `/v1/messages`):
//! an Anthropic Messages request is translated into an OpenAI chat request, served by
//! [`super::forward`] exactly like `/v1/chat/completions` (routing, the semantic cache,
//! whatever provider), and the OpenAI reply is translated back into an Anthropic Message
//! or the Anthropic streaming event sequence.
//!
//! Reference: <https://docs.anthropic.com/en/api/messages> and
//! <https://docs.anthropic.com/en/api/messages-streaming>.

use super::{CacheControls, Gateway, GatewayError, Reply, ReplyBody};
use crate::providers::anthropic::{anthropic_error_body, stop_reason};
use crate::providers::sse::{SseDecoder, SseEvent};
use crate::providers::stream::{self, Hook, Pipeline};
use crate::providers::{Endpoint, NativeRequest, ProviderError};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn invalid(message: impl Into<String>, param: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::invalid(
            "Request body is empty; expected a JSON object.",
            None,
        ));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(GatewayError::invalid(
            "Request body must be a JSON object.",
            None,
        )),
        Err(e) => Err(GatewayError::invalid(
            format!("Request body is not valid JSON: {e}"),
            None,
        )),
    }
}

/// Text of an Anthropic `system` (string or text blocks).
fn system_text(v: &Value) -> Result<String, GatewayError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                b.get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        invalid(
                            format!("system[{i}]: expected a text block."),
                            format!("system[{i}]"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("\n")),
        Value::Null => Ok(String::new()),
        _ => Err(invalid(
            "system: expected a string or an array of text blocks.",
            "system",
        )),
    }
}

/// Anthropic image block → OpenAI `image_url` part.
fn image_part(b: &Value, at: &str) -> Result<Value, GatewayError> {
    let src = b.get("source").unwrap_or(&Value::Null);
    let url = match src.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = src.get("media_type").and_then(Value::as_str);
            let data = src.get("data").and_then(Value::as_str);
            match (media, data) {
                (Some(m), Some(d)) => format!("data:{m};base64,{d}"),
                _ => {
                    return Err(invalid(
                        format!("{at}.source: base64 images need media_type and data."),
                        format!("{at}.source"),
                    ))
                }
            }
        }
        Some("url") => src
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid(
                    format!("{at}.source.url must be a string."),
                    format!("{at}.source.url"),
                )
            })?
            .to_owned(),
        _ => {
            return Err(invalid(
                format!("{at}.source.type must be base64 or url."),
                format!("{at}.source.type"),
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// Text of a `tool_result` content (string or text blocks).
fn tool_result_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// OpenAI content from parts: one text part collapses to a plain string.
fn openai_content(parts: Vec<Value>) -> Value {
    if parts.len() == 1 && parts[0]["type"] == "text" {
        return parts[0]["text"].clone();
    }
    Value::Array(parts)
}

/// Translate an Anthropic Messages request body into an OpenAI chat request.
/// `require_max_tokens` is off for `count_tokens`, which takes no `max_tokens`.
pub fn to_chat_request(
    req: &Map<String, Value>,
    require_max_tokens: bool,
) -> Result<Map<String, Value>, GatewayError> {
    let mut out = Map::new();
    match req.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {
            out.insert("model".into(), json!(m));
        }
        _ => return Err(invalid("model: Field required (a string).", "model")),
    }
    let mut messages: Vec<Value> = Vec::new();
    if let Some(s) = req.get("system") {
        let text = system_text(s)?;
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let msgs = match req.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(invalid(
                "messages: at least one message is required.",
                "messages",
            ))
        }
        _ => return Err(invalid("messages: Field required (an array).", "messages")),
    };
    for (i, m) in msgs.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(invalid(
                format!("{at}.role: expected \"user\" or \"assistant\" (the system prompt is the top-level `system` field)."),
                format!("{at}.role"),
            ));
        }
        let blocks = match m.get("content") {
            Some(Value::String(s)) => {
                messages.push(json!({"role": role, "content": s}));
                continue;
            }
            Some(Value::Array(b)) => b,
            _ => {
                return Err(invalid(
                    format!("{at}.content: expected a string or an array of content blocks."),
                    format!("{at}.content"),
                ))
            }
        };
        let mut parts = Vec::new();
        let mut tool_calls = Vec::new();
        let mut tool_results = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let at = format!("{at}.content[{j}]");
            match b.get("type").and_then(Value::as_str).unwrap_or("") {
                "text" => {
                    let t = b.get("text").and_then(Value::as_str).ok_or_else(|| {
                        invalid(format!("{at}.text must be a string."), format!("{at}.text"))
                    })?;
                    parts.push(json!({"type": "text", "text": t}));
                }
                "image" if role == "user" => parts.push(image_part(b, &at)?),
                "tool_use" if role == "assistant" => {
                    let name = b.get("name").and_then(Value::as_str).ok_or_else(|| {
                        invalid(format!("{at}.name must be a string."), format!("{at}.name"))
                    })?;
                    tool_calls.push(json!({
                        "id": b.get("id").cloned().unwrap_or(Value::Null),
                        "type": "function",
                        "function": {"name": name, "arguments": b.get("input").unwrap_or(&json!({})).to_string()},
                    }));
                }
                "tool_result" if role == "user" => {
                    let id = b.get("tool_use_id").and_then(Value::as_str).ok_or_else(|| {
                        invalid(
                            format!("{at}.tool_use_id must be a string."),
                            format!("{at}.tool_use_id"),
                        )
                    })?;
                    let mut text = tool_result_text(b.get("content"));
                    if b.get("is_error") == Some(&Value::Bool(true)) {
                        text = format!("Error: {text}");
                    }
                    tool_results
                        .push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                }
                // Extended thinking is Anthropic-specific: earlier thinking is not resent.
                "thinking" | "redacted_thinking" if role == "assistant" => {}
                other => {
                    return Err(invalid(
                        format!("{at}: content block type `{other}` is not supported in a {role} message by deja."),
                        format!("{at}.type"),
                    ))
                }
            }
        }
        // OpenAI wants tool results right after the assistant turn that called them.
        messages.extend(tool_results);
        if role == "assistant" {
            if parts.is_empty() && tool_calls.is_empty() {
                continue;
            }
            let text: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) }});
            if !tool_calls.is_empty() {
                msg["tool_calls"] = Value::Array(tool_calls);
            }
            messages.push(msg);
        } else if !parts.is_empty() {
            messages.push(json!({"role": "user", "content": openai_content(parts)}));
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    match req.get("max_tokens") {
        Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {
            out.insert("max_tokens".into(), v.clone());
        }
        None if !require_max_tokens => {}
        None => return Err(invalid("max_tokens: Field required.", "max_tokens")),
        Some(_) => {
            return Err(invalid(
                "max_tokens: expected an integer >= 1.",
                "max_tokens",
            ))
        }
    }
    for k in ["temperature", "top_p"] {
        if let Some(v) = req.get(k).filter(|v| !v.is_null()) {
            if !v.is_number() {
                return Err(invalid(format!("{k}: expected a number."), k));
            }
            out.insert(k.into(), v.clone());
        }
    }
    match req.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            if !a.is_empty() {
                out.insert("stop".into(), Value::Array(a.clone()));
            }
        }
        Some(_) => {
            return Err(invalid(
                "stop_sequences: expected an array of strings.",
                "stop_sequences",
            ))
        }
    }
    if let Some(u) = req
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), json!(u));
    }
    if let Some(tools) = req.get("tools") {
        let tools = tools
            .as_array()
            .ok_or_else(|| invalid("tools: expected an array.", "tools"))?;
        let mut ts = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("custom");
            if kind != "custom" {
                return Err(invalid(
                    format!("tools[{i}]: server tool `{kind}` is not supported by deja; only client tools (name, description, input_schema)."),
                    format!("tools[{i}].type"),
                ));
            }
            let name = t.get("name").and_then(Value::as_str).ok_or_else(|| {
                invalid(
                    format!("tools[{i}].name must be a string."),
                    format!("tools[{i}].name"),
                )
            })?;
            let mut f = Map::new();
            f.insert("name".into(), json!(name));
            if let Some(d) = t.get("description").and_then(Value::as_str) {
                f.insert("description".into(), json!(d));
            }
            f.insert(
                "parameters".into(),
                t.get("input_schema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            );
            ts.push(json!({"type": "function", "function": f}));
        }
        if !ts.is_empty() {
            out.insert("tools".into(), Value::Array(ts));
        }
    }
    if let Some(c) = req.get("tool_choice").filter(|c| !c.is_null()) {
        let choice = match c.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                let name = c.get("name").and_then(Value::as_str).ok_or_else(|| {
                    invalid("tool_choice.name must be a string.", "tool_choice.name")
                })?;
                json!({"type": "function", "function": {"name": name}})
            }
            _ => {
                return Err(invalid(
                    "tool_choice.type must be auto, any, tool or none.",
                    "tool_choice.type",
                ))
            }
        };
        if out.contains_key("tools") {
            out.insert("tool_choice".into(), choice);
            if c.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
                out.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
        }
    }
    match req.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), Value::Bool(true));
            // Anthropic's message_delta reports usage: ask every provider for it.
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => return Err(invalid("stream: expected a boolean.", "stream")),
    }
    Ok(out)
}

/// An OpenAI `chat.completion` → an Anthropic Message.
pub fn to_message(resp: &Value, fallback_model: &str) -> Result<Value, String> {
    let choice = resp
        .pointer("/choices/0")
        .ok_or("the provider's reply has no choices")?;
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    // A refusal (OpenAI's `refusal` field) is the text of Anthropic's `refusal` stop.
    let text = msg
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .or_else(|| msg.get("refusal").and_then(Value::as_str));
    if let Some(t) = text.filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for c in calls {
            content.push(tool_use_block(c));
        }
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let u = resp.get("usage").unwrap_or(&Value::Null);
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(json!({
        "id": message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model").and_then(Value::as_str).unwrap_or(fallback_model),
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": usage(n("prompt_tokens"), n("completion_tokens"), u.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0)),
    }))
}

fn usage(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "output_tokens": completion,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

fn message_id(id: Option<&Value>) -> String {
    match id.and_then(Value::as_str) {
        Some(s) if s.starts_with("msg_") => s.to_owned(),
        Some(s) if !s.is_empty() => format!("msg_{s}"),
        _ => format!("msg_deja_{}", uuid::Uuid::new_v4().simple()),
    }
}

fn tool_use_block(c: &Value) -> Value {
    let args = c
        .pointer("/function/arguments")
        .and_then(Value::as_str)
        .unwrap_or("");
    let input = parse_arguments(args);
    json!({
        "type": "tool_use",
        "id": c.get("id").and_then(Value::as_str).map_or_else(|| format!("toolu_deja_{}", uuid::Uuid::new_v4().simple()), str::to_owned),
        "name": c.pointer("/function/name").cloned().unwrap_or(Value::Null),
        "input": input,
    })
}

/// Tool arguments as the object Anthropic's `input` must be; empty or invalid JSON
/// (a model's mistake) becomes `{}` and is logged.
fn parse_arguments(args: &str) -> Value {
    if args.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            tracing::warn!("tool call arguments are not a JSON object; sent as {{}}");
            json!({})
        }
    }
}

/// One Anthropic SSE event.
fn event(v: &Value) -> Bytes {
    let name = v.get("type").and_then(Value::as_str).unwrap_or("error");
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

/// An in-band Anthropic `error` event (what the Anthropic SDKs raise mid-stream).
pub fn error_event(status: u16, message: &str) -> Bytes {
    event(&anthropic_error_body(status, message))
}

/// OpenAI `chat.completion.chunk` frames → the Anthropic event sequence.
pub struct StreamToAnthropic {
    model: String,
    started: bool,
    /// The open content block: (index, is text).
    open: Option<(usize, bool)>,
    next_block: usize,
    /// OpenAI tool call index → content block index.
    tools: BTreeMap<u64, usize>,
    finish: Option<String>,
    usage: Option<Value>,
    done: bool,
}

impl StreamToAnthropic {
    pub fn new(model: &str) -> Self {
        StreamToAnthropic {
            model: model.to_owned(),
            started: false,
            open: None,
            next_block: 0,
            tools: BTreeMap::new(),
            finish: None,
            usage: None,
            done: false,
        }
    }

    fn start(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let model = chunk
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(&self.model)
            .to_owned();
        out.push(event(&json!({"type": "message_start", "message": {
            "id": message_id(chunk.get("id")), "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage(0, 0, 0),
        }})));
        out.push(event(&json!({"type": "ping"})));
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some((i, _)) = self.open.take() {
            out.push(event(&json!({"type": "content_block_stop", "index": i})));
        }
    }

    fn finish_message(&mut self, out: &mut Vec<Bytes>) {
        self.start(&Value::Null, out);
        self.close(out);
        let u = self.usage.take().unwrap_or(Value::Null);
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        let cached = u
            .pointer("/prompt_tokens_details/cached_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let finish = self.finish.as_deref().unwrap_or("stop");
        out.push(event(&json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason(finish), "stop_sequence": null},
            "usage": usage(n("prompt_tokens"), n("completion_tokens"), cached)})));
        out.push(event(&json!({"type": "message_stop"})));
        self.done = true;
    }
}

impl Hook<SseEvent> for StreamToAnthropic {
    type Frame = Bytes;
    type Error = String;

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), String> {
        if ev.data.trim() == "[DONE]" {
            self.finish_message(out);
            return Ok(());
        }
        let v: Value = serde_json::from_str(&ev.data)
            .map_err(|e| format!("invalid JSON in a stream chunk: {e}"))?;
        if let Some(e) = v.get("error") {
            let m = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            return Err(m.to_owned());
        }
        self.start(&v, out);
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = v.pointer("/choices/0") else {
            return Ok(());
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        let text = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .or_else(|| delta.get("refusal").and_then(Value::as_str));
        if let Some(t) = text {
            if !t.is_empty() {
                if !matches!(self.open, Some((_, true))) {
                    self.close(out);
                    let i = self.next_block;
                    self.next_block += 1;
                    self.open = Some((i, true));
                    out.push(event(&json!({"type": "content_block_start", "index": i,
                        "content_block": {"type": "text", "text": ""}})));
                }
                let i = self.open.map_or(0, |o| o.0);
                out.push(event(&json!({"type": "content_block_delta", "index": i,
                    "delta": {"type": "text_delta", "text": t}})));
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0);
                if !self.tools.contains_key(&idx) {
                    self.close(out);
                    let i = self.next_block;
                    self.next_block += 1;
                    self.tools.insert(idx, i);
                    self.open = Some((i, false));
                    let id = c.get("id").and_then(Value::as_str).map_or_else(
                        || format!("toolu_deja_{}", uuid::Uuid::new_v4().simple()),
                        str::to_owned,
                    );
                    out.push(event(&json!({"type": "content_block_start", "index": i,
                        "content_block": {"type": "tool_use", "id": id,
                            "name": c.pointer("/function/name").cloned().unwrap_or(json!("")),
                            "input": {}}})));
                }
                let block = self.tools.get(&idx).copied().unwrap_or(0);
                if self.open.map(|o| o.0) != Some(block) {
                    return Err(
                        "tool call deltas arrived interleaved; the Anthropic event sequence cannot express that".into(),
                    );
                }
                if let Some(a) = c.pointer("/function/arguments").and_then(Value::as_str) {
                    if !a.is_empty() {
                        out.push(event(
                            &json!({"type": "content_block_delta", "index": block,
                            "delta": {"type": "input_json_delta", "partial_json": a}}),
                        ));
                    }
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_owned());
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Bytes>) -> Result<(), String> {
        // A provider that ends without `[DONE]` but with a finish reason completed.
        if self.finish.is_some() {
            self.finish_message(out);
            Ok(())
        } else {
            Err("the stream ended before completion".into())
        }
    }

    fn finished(&self) -> bool {
        self.done
    }
}

/// Serve an Anthropic Messages request through [`super::forward_parsed`].
pub async fn serve(
    gw: &Gateway,
    body: &[u8],
    controls: &CacheControls,
) -> Result<Reply, GatewayError> {
    let req = parse_object(body)?;
    let chat = to_chat_request(&req, true)?;
    let model = chat
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    // Straight to the parsed form: no serialising to bytes for `forward` to parse again.
    let mut chat = super::validate_request(Endpoint::ChatCompletions, chat)?;
    // An Anthropic provider is sent the request as written (see AnthropicAdapter).
    chat.native = Some(NativeRequest::Anthropic(req));
    let mut reply = super::forward_parsed(gw, chat, controls).await?;
    reply.body = match reply.body {
        ReplyBody::Json(b) => {
            let v: Value = serde_json::from_slice(&b).map_err(|e| {
                GatewayError::Provider(ProviderError::InvalidResponse {
                    provider: reply.provider.clone(),
                    message: format!("reply is not JSON: {e}"),
                })
            })?;
            let m = to_message(&v, &model).map_err(|message| {
                GatewayError::Provider(ProviderError::InvalidResponse {
                    provider: reply.provider.clone(),
                    message,
                })
            })?;
            ReplyBody::Json(Bytes::from(m.to_string()))
        }
        ReplyBody::Stream(s) => {
            let pipeline = Pipeline::new(SseDecoder::new(), StreamToAnthropic::new(&model));
            ReplyBody::Stream(stream::drive(s, pipeline, Ok, |m| Ok(error_event(502, &m))))
        }
    };
    Ok(reply)
}

/// Characters per token of the `count_tokens` estimate.
const CHARS_PER_TOKEN: usize = 4;
/// Tokens counted per image (Anthropic: about width × height / 750; ~1.15 megapixels,
/// the size images are scaled to, is ~1600 tokens).
const TOKENS_PER_IMAGE: usize = 1600;

/// `POST /v1/messages/count_tokens`: an estimate, not Claude's tokenizer — one token per
/// 4 characters of text (system, messages, tool inputs and results, tool definitions),
/// rounded up, plus 1600 per image. Validates the request like `messages`.
pub fn count_tokens(body: &[u8]) -> Result<Value, GatewayError> {
    let req = parse_object(body)?;
    let chat = to_chat_request(&req, false)?;
    let mut chars = 0usize;
    let mut images = 0usize;
    for m in chat
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match m.get("content") {
            Some(Value::String(s)) => chars += s.chars().count(),
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        chars += t.chars().count();
                    } else if p.get("image_url").is_some() {
                        images += 1;
                    }
                }
            }
            _ => {}
        }
        for c in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            chars += c.to_string().chars().count();
        }
    }
    if let Some(t) = chat.get("tools") {
        chars += t.to_string().chars().count();
    }
    let n = chars.div_ceil(CHARS_PER_TOKEN) + images * TOKENS_PER_IMAGE;
    Ok(json!({"input_tokens": n}))
}

#[cfg(test)]
mod tests;
