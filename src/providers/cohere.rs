//! Cohere's v2 API: Chat (messages, tools, streaming events) and Embed, bearer auth.
//!
//! References:
//! - Chat: <https://docs.cohere.com/reference/chat>
//! - Chat streaming: <https://docs.cohere.com/v2/docs/streaming>, tool use streaming:
//!   <https://docs.cohere.com/docs/tool-use-streaming>
//! - Embed: <https://docs.cohere.com/reference/embed>
//! - Models: <https://docs.cohere.com/reference/list-models>
//! - Errors: <https://docs.cohere.com/reference/errors>

use super::chat::{ChatChunk, ChatResponse, ChunkDelta};
use super::native_common::{
    content_text, invalid_request, now_secs, provider_message, stop_sequences, upstream,
    ChunkBuilder,
};
use super::sse::{SseDecoder, SseEvent};
use super::stream::{chunk_stream, ChunkHook, HookError};
use super::{ChunkStream, Endpoint, Lease, ProviderAdapter, ProviderError, ProviderRequest};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, Default)]
pub struct CohereAdapter;

// ---------------------------------------------------------------------------------
// OpenAI chat -> Cohere v2 chat

fn user_content(content: Option<&Value>, i: usize) -> Result<Value, String> {
    match content {
        None | Some(Value::Null) => Ok(json!("")),
        Some(Value::String(s)) => Ok(json!(s)),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.push(json!({
                        "type": "text",
                        "text": p.get("text").and_then(Value::as_str).unwrap_or(""),
                    })),
                    // Cohere's vision models take the OpenAI image part as it is.
                    Some("image_url") => {
                        let url = p
                            .pointer("/image_url/url")
                            .or_else(|| p.get("image_url"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| format!("messages[{i}].content[{j}]: image_url.url is missing"))?;
                        out.push(json!({"type": "image_url", "image_url": {"url": url}}));
                    }
                    other => {
                        return Err(format!(
                            "messages[{i}].content[{j}]: content part type {} is not supported by Cohere",
                            other.unwrap_or("(missing)")
                        ))
                    }
                }
            }
            Ok(Value::Array(out))
        }
        Some(_) => Err(format!(
            "messages[{i}].content must be a string or an array"
        )),
    }
}

fn assistant_message(m: &Value, i: usize) -> Result<Value, String> {
    let mut out = json!({"role": "assistant"});
    let text = content_text(m.get("content").unwrap_or(&Value::Null));
    if let Some(calls) = m
        .get("tool_calls")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        let mut tc = Vec::with_capacity(calls.len());
        for (j, c) in calls.iter().enumerate() {
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("messages[{i}].tool_calls[{j}].id is missing"))?;
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("messages[{i}].tool_calls[{j}].function.name is missing"))?;
            let args = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            tc.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}));
        }
        out["tool_calls"] = Value::Array(tc);
        // Text written before tool calls is Cohere's tool plan.
        if !text.is_empty() {
            out["tool_plan"] = json!(text);
        }
    } else {
        out["content"] = json!(text);
    }
    Ok(out)
}

/// An OpenAI chat request as a Cohere v2 `/v2/chat` body.
pub fn to_cohere_chat(body: &Map<String, Value>, stream: bool) -> Result<Value, String> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("`messages` must be an array")?;
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err("Cohere returns a single choice: `n` must be 1".into());
    }
    let mut out_msgs = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("messages[{i}].role is missing"))?;
        out_msgs.push(match role {
            "system" | "developer" => json!({
                "role": "system",
                "content": content_text(m.get("content").unwrap_or(&Value::Null)),
            }),
            "user" => json!({"role": "user", "content": user_content(m.get("content"), i)?}),
            "assistant" => assistant_message(m, i)?,
            "tool" => json!({
                "role": "tool",
                "tool_call_id": m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("messages[{i}].tool_call_id is missing"))?,
                "content": content_text(m.get("content").unwrap_or(&Value::Null)),
            }),
            other => {
                return Err(format!(
                    "messages[{i}]: role `{other}` is not supported by Cohere"
                ))
            }
        });
    }
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let mut out = json!({"model": model, "messages": out_msgs, "stream": stream});
    if let Some(n) = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
    {
        out["max_tokens"] = json!(n);
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "p"),
        ("seed", "seed"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
    ] {
        if let Some(v) = body.get(from).filter(|v| v.is_number()) {
            out[to] = v.clone();
        }
    }
    if let Some(stop) = stop_sequences(body.get("stop")) {
        out["stop_sequences"] = Value::Array(stop);
    }
    match body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => out["response_format"] = json!({"type": "json_object"}),
        Some("json_schema") => {
            let schema = body
                .get("response_format")
                .and_then(|f| f.pointer("/json_schema/schema"))
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            out["response_format"] = json!({"type": "json_object", "json_schema": schema});
        }
        _ => {}
    }
    if let Some(tools) = body
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        let mut tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let f = t.get("function").unwrap_or(t);
                let mut func = json!({
                    "name": f.get("name").cloned().unwrap_or(Value::Null),
                    "parameters": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                });
                if let Some(d) = f.get("description") {
                    func["description"] = d.clone();
                }
                json!({"type": "function", "function": func})
            })
            .collect();
        match body.get("tool_choice") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => match s.as_str() {
                "auto" => {}
                "required" => out["tool_choice"] = json!("REQUIRED"),
                "none" => out["tool_choice"] = json!("NONE"),
                other => return Err(format!("tool_choice `{other}` is not supported")),
            },
            // Cohere cannot name the tool: offer only that one and require a call.
            Some(v) => {
                let name = v
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or("tool_choice must be auto, required, none or {\"type\":\"function\",\"function\":{\"name\":...}}")?;
                tools.retain(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name));
                if tools.is_empty() {
                    return Err(format!(
                        "tool_choice names `{name}`, which is not in `tools`"
                    ));
                }
                out["tool_choice"] = json!("REQUIRED");
            }
        }
        out["tools"] = Value::Array(tools);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Cohere -> OpenAI

/// Cohere's `finish_reason` as OpenAI's; `None` for `ERROR` (the reply failed).
pub fn finish_reason(reason: &str) -> Option<&'static str> {
    match reason {
        "COMPLETE" | "STOP_SEQUENCE" => Some("stop"),
        "MAX_TOKENS" => Some("length"),
        "TOOL_CALL" => Some("tool_calls"),
        "ERROR" | "TIMEOUT" => None,
        _ => Some("stop"),
    }
}

/// `usage.tokens` (what the model saw), else `usage.billed_units`.
fn openai_usage(u: Option<&Value>) -> Value {
    let pick = |k: &str| {
        u.and_then(|u| {
            u.pointer(&format!("/tokens/{k}"))
                .or_else(|| u.pointer(&format!("/billed_units/{k}")))
        })
        .and_then(Value::as_f64)
        .map(|f| f as u64)
        .unwrap_or(0)
    };
    let (i, o) = (pick("input_tokens"), pick("output_tokens"));
    json!({"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o})
}

/// A Cohere v2 chat response as an OpenAI chat completion (`model` is filled in later).
pub fn from_cohere_chat(v: &Value) -> Result<Value, String> {
    let msg = v.get("message").ok_or("the response has no `message`")?;
    let text: String = msg
        .get("content")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let tool_calls: Vec<Value> = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|c| {
                    let args = match c.pointer("/function/arguments") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => "{}".into(),
                    };
                    json!({
                        "id": c.get("id").and_then(Value::as_str).unwrap_or(""),
                        "type": "function",
                        "function": {
                            "name": c.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
                            "arguments": args,
                        }
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let reason = v
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("COMPLETE");
    let finish =
        finish_reason(reason).ok_or_else(|| format!("Cohere ended the reply with {reason}"))?;
    let id = v.get("id").and_then(Value::as_str).unwrap_or("cohere");
    Ok(ChatResponse::assistant(
        format!("chatcmpl-{id}"),
        now_secs(),
        String::new(),
        text,
        tool_calls,
        finish,
        openai_usage(v.get("usage")),
    )
    .to_value())
}

/// OpenAI embeddings request -> Cohere `/v2/embed`.
pub fn to_cohere_embed(body: &Map<String, Value>) -> Result<Value, String> {
    let texts: Vec<Value> = match body.get("input") {
        Some(Value::String(s)) => vec![json!(s)],
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => a.clone(),
        _ => return Err("`input` must be a non-empty string or array of strings".into()),
    };
    let mut out = json!({
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "texts": texts,
        "input_type": "search_document",
        "embedding_types": ["float"],
    });
    if let Some(d) = body.get("dimensions").and_then(Value::as_u64) {
        out["output_dimension"] = json!(d);
    }
    Ok(out)
}

/// Cohere `/v2/embed` response -> OpenAI list shape.
pub fn from_cohere_embed(v: &Value) -> Result<Value, String> {
    let vectors = v
        .pointer("/embeddings/float")
        .and_then(Value::as_array)
        .ok_or("the response has no embeddings.float")?;
    let tokens = v
        .pointer("/meta/billed_units/input_tokens")
        .and_then(Value::as_f64)
        .map(|f| f as u64)
        .unwrap_or(0);
    Ok(json!({
        "object": "list",
        "data": vectors
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": e}))
            .collect::<Vec<_>>(),
        "model": "",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

// ---------------------------------------------------------------------------------
// Streaming

/// Translates Cohere's SSE chat stream (`event: <type>` / `data: {"type": ...}`) into
/// OpenAI chunks: the [`ChunkHook`] the shared stream driver runs.
pub struct CohereStreamDecoder {
    chunks: ChunkBuilder,
    /// Cohere tool-call index -> OpenAI tool-call index.
    tools: HashMap<u64, usize>,
    ended: bool,
}

impl Default for CohereStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl CohereStreamDecoder {
    pub fn new() -> Self {
        CohereStreamDecoder {
            chunks: ChunkBuilder::new(
                format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
                String::new(),
            ),
            tools: HashMap::new(),
            ended: false,
        }
    }

    fn on_event(&mut self, ev: &Value) -> Result<Vec<ChatChunk>, String> {
        let kind = ev.get("type").and_then(Value::as_str).unwrap_or("");
        let index = ev.get("index").and_then(Value::as_u64).unwrap_or(0);
        let c = &self.chunks;
        Ok(match kind {
            "message-start" => {
                if let Some(id) = ev.get("id").and_then(Value::as_str) {
                    self.chunks.id = format!("chatcmpl-{id}");
                }
                vec![self.chunks.delta(ChunkDelta::start())]
            }
            "content-delta" => match ev
                .pointer("/delta/message/content/text")
                .and_then(Value::as_str)
            {
                Some(t) if !t.is_empty() => vec![c.delta(ChunkDelta::text(t))],
                _ => Vec::new(),
            },
            "tool-call-start" => {
                let call = ev
                    .pointer("/delta/message/tool_calls")
                    .unwrap_or(&Value::Null);
                let n = self.tools.len();
                let at = *self.tools.entry(index).or_insert(n);
                vec![self.chunks.delta(ChunkDelta::tool_calls(vec![json!({
                    "index": at,
                    "id": call.get("id").and_then(Value::as_str).unwrap_or(""),
                    "type": "function",
                    "function": {
                        "name": call.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
                        "arguments": call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or(""),
                    },
                })]))]
            }
            "tool-call-delta" => {
                let args = ev
                    .pointer("/delta/message/tool_calls/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let at = *self.tools.get(&index).ok_or_else(|| {
                    format!("cohere stream: tool-call-delta {index} before its start")
                })?;
                if args.is_empty() {
                    Vec::new()
                } else {
                    vec![c.delta(ChunkDelta::tool_calls(vec![
                        json!({"index": at, "function": {"arguments": args}}),
                    ]))]
                }
            }
            "message-end" => {
                self.ended = true;
                let reason = ev
                    .pointer("/delta/finish_reason")
                    .and_then(Value::as_str)
                    .unwrap_or("COMPLETE");
                let finish = finish_reason(reason).ok_or_else(|| {
                    let why = ev
                        .pointer("/delta/error")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    format!("cohere ended the stream with {reason} {why}")
                        .trim_end()
                        .to_owned()
                })?;
                vec![
                    c.finish(finish),
                    c.usage(openai_usage(ev.pointer("/delta/usage"))),
                ]
            }
            // content-start/end, tool-plan-delta (no OpenAI field), tool-call-end,
            // citation-start/end, debug.
            _ => Vec::new(),
        })
    }
}

impl ChunkHook<SseEvent> for CohereStreamDecoder {
    fn event(&mut self, ev: &SseEvent, out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
        if ev.data.is_empty() || ev.data == "[DONE]" {
            return Ok(());
        }
        let v: Value = serde_json::from_str(&ev.data)
            .map_err(|e| format!("cohere stream event is not JSON: {e}"))?;
        out.extend(self.on_event(&v)?);
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
        if !self.ended {
            return Err("cohere stream ended before message-end".into());
        }
        Ok(())
    }
}

impl ProviderAdapter for CohereAdapter {
    async fn build_request(
        &self,
        lease: &Lease,
        req: &ProviderRequest,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let (path, body) =
            match req.endpoint {
                Endpoint::ChatCompletions => ("/v2/chat", to_cohere_chat(&req.body, req.stream)),
                Endpoint::Embeddings => ("/v2/embed", to_cohere_embed(&req.body)),
                Endpoint::Completions => return Err(invalid_request(
                    &lease.provider,
                    "Cohere's v2 API has no legacy completions endpoint; use /v1/chat/completions",
                )),
            };
        let body = body.map_err(|m| invalid_request(&lease.provider, m))?;
        let mut b = lease
            .client
            .post(format!("{}{path}", lease.base_url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        b = b.header(
            reqwest::header::ACCEPT,
            if req.stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        );
        Ok(lease.authorize(b))
    }

    fn translate_response(
        &self,
        provider: &Arc<str>,
        req: &ProviderRequest,
        body: Bytes,
    ) -> Result<Bytes, ProviderError> {
        let endpoint = req.endpoint;
        let invalid = |message: String| ProviderError::InvalidResponse {
            provider: provider.clone(),
            message,
        };
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("Cohere answer is not JSON: {e}")))?;
        let out = match endpoint {
            Endpoint::Embeddings => from_cohere_embed(&v).map_err(invalid)?,
            _ => match from_cohere_chat(&v) {
                Ok(o) => o,
                // finish_reason ERROR: the provider failed the request.
                Err(m) if v.get("message").is_some() => {
                    return Err(upstream(provider, 502, &m, Some("cohere_error")))
                }
                Err(m) => return Err(invalid(m)),
            },
        };
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
            CohereStreamDecoder::new(),
        )
    }

    /// Cohere's `{"message": ...}` errors (400, 401, 402, 404, 429, 498, 499, 500, ...)
    /// as OpenAI-shaped errors with the same status.
    fn translate_error(&self, provider: &Arc<str>, status: u16, body: Bytes) -> ProviderError {
        let message = provider_message(&body);
        let message = if message.is_empty() {
            format!("cohere answered HTTP {status}")
        } else {
            message
        };
        upstream(provider, status, &message, None)
    }

    async fn list_models(&self, lease: &Lease) -> Result<Vec<String>, ProviderError> {
        let url = format!("{}/v1/models", lease.base_url);
        let v =
            super::fetch_model_list(self, lease, lease.authorize(lease.client.get(url))).await?;
        Ok(super::names_in(&v, "models", "name"))
    }
}

#[cfg(test)]
mod tests;
