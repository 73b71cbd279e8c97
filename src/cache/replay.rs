//! Streams and stored responses: replay a stored (non-streaming) response as SSE chunks,
//! and assemble a streamed response into the non-streaming body the cache stores.

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// Whether a complete response may be stored: every choice finished normally (`stop`,
/// `tool_calls`, `function_call`), or, with `allow_truncated`, for any reason.
pub fn is_cacheable(response: &Value, allow_truncated: bool) -> bool {
    let Some(choices) = response.get("choices").and_then(Value::as_array) else {
        return false;
    };
    !choices.is_empty()
        && choices
            .iter()
            .all(|c| match c.get("finish_reason").and_then(Value::as_str) {
                Some("stop" | "tool_calls" | "function_call") => true,
                Some(_) => allow_truncated,
                None => false,
            })
}

fn frame(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// SSE frames replaying `response` (a `chat.completion` or `text_completion` body),
/// ending with `[DONE]`; a usage chunk when `include_usage`.
pub fn to_sse(response: &Value, include_usage: bool) -> Vec<Bytes> {
    let chat = response.get("object").and_then(Value::as_str) != Some("text_completion");
    let mut base = Map::new();
    for k in [
        "id",
        "created",
        "model",
        "system_fingerprint",
        "service_tier",
    ] {
        if let Some(v) = response.get(k) {
            base.insert(k.into(), v.clone());
        }
    }
    base.insert(
        "object".into(),
        json!(if chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        }),
    );
    let with = |choices: Value| {
        let mut c = base.clone();
        c.insert("choices".into(), choices);
        if include_usage {
            c.insert("usage".into(), Value::Null);
        }
        Value::Object(c)
    };
    let mut frames = Vec::new();
    let choices = response
        .get("choices")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(i));
        let logprobs = choice.get("logprobs").cloned().unwrap_or(Value::Null);
        if chat {
            let msg = choice.get("message").cloned().unwrap_or(json!({}));
            let mut delta = Map::new();
            delta.insert(
                "role".into(),
                msg.get("role").cloned().unwrap_or(json!("assistant")),
            );
            delta.insert(
                "content".into(),
                msg.get("content").cloned().unwrap_or(Value::Null),
            );
            if let Some(r) = msg.get("refusal").filter(|r| !r.is_null()) {
                delta.insert("refusal".into(), r.clone());
            }
            if let Some(tc) = msg.get("tool_calls").and_then(Value::as_array) {
                let indexed: Vec<Value> = tc
                    .iter()
                    .enumerate()
                    .map(|(j, t)| {
                        let mut t = t.clone();
                        t["index"] = json!(j);
                        t
                    })
                    .collect();
                delta.insert("tool_calls".into(), Value::Array(indexed));
            }
            frames.push(frame(&with(json!([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": null}]))));
            frames.push(frame(&with(json!([{"index": index, "delta": {}, "logprobs": null, "finish_reason": choice.get("finish_reason")}]))));
        } else {
            frames.push(frame(&with(json!([{"index": index, "text": choice.get("text"), "logprobs": logprobs, "finish_reason": null}]))));
            frames.push(frame(&with(json!([{"index": index, "text": "", "logprobs": null, "finish_reason": choice.get("finish_reason")}]))));
        }
    }
    if include_usage {
        let mut c = base.clone();
        c.insert("choices".into(), json!([]));
        c.insert(
            "usage".into(),
            response.get("usage").cloned().unwrap_or(Value::Null),
        );
        frames.push(frame(&Value::Object(c)));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

#[derive(Default)]
struct ChoiceAcc {
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    text: Option<String>,
    tool_calls: Vec<Map<String, Value>>,
    finish_reason: Option<Value>,
    logprobs: Vec<Value>,
}

/// Rebuilds the non-streaming body from SSE bytes fed in any split.
#[derive(Default)]
pub struct SseAssembler {
    buf: Vec<u8>,
    base: Map<String, Value>,
    choices: std::collections::BTreeMap<u64, ChoiceAcc>,
    usage: Option<Value>,
    done: bool,
    broken: bool,
    chat: bool,
}

impl SseAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(bytes);
        while let Some(pos) = find_event_end(&self.buf) {
            let event: Vec<u8> = self.buf.drain(..pos.0).collect();
            self.buf.drain(..pos.1);
            self.event(&event);
        }
        if self.buf.len() > 16 * 1024 * 1024 {
            self.broken = true;
        }
    }

    fn event(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let data: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect::<Vec<_>>()
            .join("\n");
        if data.is_empty() {
            return;
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            self.broken = true;
            return;
        };
        if v.get("error").is_some() {
            self.broken = true;
            return;
        }
        if self.base.is_empty() {
            self.chat = v.get("object").and_then(Value::as_str) == Some("chat.completion.chunk");
            for k in [
                "id",
                "created",
                "model",
                "system_fingerprint",
                "service_tier",
            ] {
                if let Some(x) = v.get(k) {
                    self.base.insert(k.into(), x.clone());
                }
            }
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        for c in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let acc = self.choices.entry(idx).or_default();
            if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
                acc.finish_reason = Some(f.clone());
            }
            if let Some(lp) = c.pointer("/logprobs/content").and_then(Value::as_array) {
                acc.logprobs.extend(lp.iter().cloned());
            }
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                acc.text.get_or_insert_with(String::new).push_str(t);
            }
            let Some(d) = c.get("delta") else { continue };
            if let Some(r) = d.get("role") {
                acc.role = Some(r.clone());
            }
            if let Some(t) = d.get("content").and_then(Value::as_str) {
                acc.content.get_or_insert_with(String::new).push_str(t);
            }
            if let Some(t) = d.get("refusal").and_then(Value::as_str) {
                acc.refusal.get_or_insert_with(String::new).push_str(t);
            }
            for tc in d
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let i = tc.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                while acc.tool_calls.len() <= i {
                    acc.tool_calls.push(Map::new());
                }
                let slot = &mut acc.tool_calls[i];
                for k in ["id", "type"] {
                    if let Some(x) = tc.get(k) {
                        slot.insert(k.into(), x.clone());
                    }
                }
                if let Some(f) = tc.get("function") {
                    let func = slot
                        .entry("function")
                        .or_insert_with(|| json!({"name": "", "arguments": ""}));
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        func["name"] = json!(format!("{}{n}", func["name"].as_str().unwrap_or("")));
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        func["arguments"] =
                            json!(format!("{}{a}", func["arguments"].as_str().unwrap_or("")));
                    }
                }
            }
        }
    }

    /// The assembled body, if the stream completed (`[DONE]` seen, no error event).
    pub fn finish(self) -> Option<Value> {
        if !self.done || self.broken || self.choices.is_empty() {
            return None;
        }
        let mut out = self.base;
        out.insert(
            "object".into(),
            json!(if self.chat {
                "chat.completion"
            } else {
                "text_completion"
            }),
        );
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, c)| {
                let logprobs = if c.logprobs.is_empty() { Value::Null } else { json!({"content": c.logprobs}) };
                if self.chat {
                    let mut msg = Map::new();
                    msg.insert("role".into(), c.role.unwrap_or(json!("assistant")));
                    msg.insert("content".into(), c.content.map_or(Value::Null, Value::String));
                    if let Some(r) = c.refusal {
                        msg.insert("refusal".into(), json!(r));
                    }
                    if !c.tool_calls.is_empty() {
                        msg.insert("tool_calls".into(), Value::Array(c.tool_calls.into_iter().map(Value::Object).collect()));
                    }
                    json!({"index": index, "message": msg, "logprobs": logprobs, "finish_reason": c.finish_reason})
                } else {
                    json!({"index": index, "text": c.text.unwrap_or_default(), "logprobs": logprobs, "finish_reason": c.finish_reason})
                }
            })
            .collect();
        out.insert("choices".into(), Value::Array(choices));
        if let Some(u) = self.usage {
            out.insert("usage".into(), u);
        }
        Some(Value::Object(out))
    }
}

/// End of the first SSE event: (event length, separator length).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if i + 3 < buf.len() && &buf[i..i + 4] == b"\r\n\r\n" {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_body() -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "m",
            "system_fingerprint": "fp",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}, "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        })
    }

    #[test]
    fn replay_then_assemble_round_trips() {
        let body = chat_body();
        let frames = to_sse(&body, true);
        let mut a = SseAssembler::new();
        // Feed in awkward splits.
        let all: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        for piece in all.chunks(7) {
            a.feed(piece);
        }
        let back = a.finish().unwrap();
        let mut expected = body.clone();
        expected["choices"][0]["message"]["tool_calls"][0]["index"] = json!(0);
        assert_eq!(back["choices"][0]["message"]["content"], "Hello there");
        assert_eq!(
            back["choices"][0]["message"]["tool_calls"][0]["function"],
            expected["choices"][0]["message"]["tool_calls"][0]["function"]
        );
        assert_eq!(back["usage"], body["usage"]);
        assert_eq!(back["object"], "chat.completion");
        assert_eq!(back["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn usage_only_when_asked() {
        let frames = to_sse(&chat_body(), false);
        assert!(frames
            .iter()
            .all(|f| !String::from_utf8_lossy(f).contains("\"usage\"")));
        assert!(String::from_utf8_lossy(frames.last().unwrap()).contains("[DONE]"));
    }

    #[test]
    fn incomplete_or_errored_streams_are_not_assembled() {
        let frames = to_sse(&chat_body(), false);
        let mut a = SseAssembler::new();
        for f in &frames[..frames.len() - 1] {
            a.feed(f);
        }
        assert!(a.finish().is_none(), "no [DONE]");
        let mut b = SseAssembler::new();
        b.feed(&frames[0]);
        b.feed(b"data: {\"error\": {\"message\": \"x\"}}\n\n");
        b.feed(b"data: [DONE]\n\n");
        assert!(b.finish().is_none());
    }

    #[test]
    fn argument_deltas_concatenate() {
        let mut a = SseAssembler::new();
        for d in [
            json!({"object": "chat.completion.chunk", "id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "get", "arguments": ""}}]}}]}),
            json!({"object": "chat.completion.chunk", "id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}}]}),
            json!({"object": "chat.completion.chunk", "id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\":1}"}}]}, "finish_reason": "tool_calls"}]}),
        ] {
            a.feed(format!("data: {d}\r\n\r\n").as_bytes());
        }
        a.feed(b"data: [DONE]\r\n\r\n");
        let v = a.finish().unwrap();
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":1}"
        );
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn cacheability_by_finish_reason() {
        assert!(is_cacheable(&chat_body(), false));
        let mut cut = chat_body();
        cut["choices"][0]["finish_reason"] = json!("length");
        assert!(!is_cacheable(&cut, false));
        assert!(is_cacheable(&cut, true));
        assert!(!is_cacheable(&json!({"choices": []}), true));
    }
}
