//! Helpers shared by the adapters whose wire format is not OpenAI's (Bedrock, Cohere):
//! OpenAI-shaped errors, chunk building, a decoder-driven stream, and the last touches
//! on a reply that need the request (`model`, `stream_options.include_usage`).

use super::{error_chain, ChunkStream, ProviderError, ProviderReply, ProviderRequest};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// OpenAI's error `type` for an HTTP status.
pub(crate) fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        // The model timed out (408, Bedrock's ModelTimeoutException) or failed (424,
        // ModelErrorException): the provider's side, like a 5xx.
        408 | 424 => "upstream_error",
        s if s >= 500 => "upstream_error",
        _ => "invalid_request_error",
    }
}

/// An OpenAI-shaped error body.
pub(crate) fn openai_error_json(status: u16, message: &str, code: Option<&str>) -> Bytes {
    Bytes::from(
        json!({"error": {
            "message": message,
            "type": error_type_for_status(status),
            "param": null,
            "code": code,
        }})
        .to_string(),
    )
}

/// A provider error with an OpenAI-shaped body.
pub(crate) fn upstream(
    provider: &Arc<str>,
    status: u16,
    message: &str,
    code: Option<&str>,
) -> ProviderError {
    ProviderError::Upstream {
        provider: provider.clone(),
        status,
        body: openai_error_json(status, message, code),
    }
}

/// The request cannot be expressed in the provider's format (HTTP 400 to the client).
pub(crate) fn invalid_request(provider: &Arc<str>, message: impl AsRef<str>) -> ProviderError {
    upstream(
        provider,
        400,
        message.as_ref(),
        Some("unsupported_for_provider"),
    )
}

/// The `{"message": ...}` text of a provider error body (Bedrock and Cohere both use
/// it), or the raw text cut to 500 characters.
pub(crate) fn provider_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(m) = v
            .get("message")
            .or_else(|| v.get("Message"))
            .and_then(Value::as_str)
        {
            return m.to_owned();
        }
    }
    String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(500)
        .collect()
}

/// Text of an OpenAI `content` value: a string, or the text parts of an array.
pub(crate) fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `data:<mime>;base64,<data>` split into the MIME type and the base64 text.
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((mime, data))
}

/// `stop` as a list of strings (OpenAI allows a string or an array).
pub(crate) fn stop_sequences(v: Option<&Value>) -> Option<Vec<Value>> {
    match v {
        Some(Value::String(s)) => Some(vec![Value::String(s.clone())]),
        Some(Value::Array(a)) if !a.is_empty() => Some(a.clone()),
        _ => None,
    }
}

/// Builds OpenAI `chat.completion.chunk` SSE frames for one streamed reply.
#[derive(Debug, Clone)]
pub(crate) struct ChunkBuilder {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl ChunkBuilder {
    pub fn new(id: String, model: String) -> Self {
        ChunkBuilder {
            id,
            created: now_secs(),
            model,
        }
    }

    fn frame(&self, choices: Value, usage: Option<Value>) -> Bytes {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(u) = usage {
            c["usage"] = u;
        }
        Bytes::from(format!("data: {c}\n\n"))
    }

    pub fn delta(&self, delta: Value) -> Bytes {
        self.frame(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]),
            None,
        )
    }

    pub fn finish(&self, reason: &str) -> Bytes {
        self.frame(
            json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason}]),
            None,
        )
    }

    /// The usage chunk OpenAI sends last when asked (`choices: []`).
    pub fn usage(&self, usage: Value) -> Bytes {
        self.frame(json!([]), Some(usage))
    }
}

pub(crate) fn done_frame() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// Turns a provider's streamed body into OpenAI SSE frames, piece by piece.
pub(crate) trait StreamDecoder: Send + 'static {
    /// Feed the next bytes of the body; return the frames they complete.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Bytes>, String>;
    /// The body ended: the last frames (`[DONE]`), or why the reply is incomplete.
    fn finish(&mut self) -> Result<Vec<Bytes>, String>;
}

struct DecodeState<D> {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: D,
    out: VecDeque<Result<Bytes, ProviderError>>,
    ended: bool,
    provider: Arc<str>,
}

/// Run `decoder` over `resp`'s body; a transport or decoding error ends the stream with
/// [`ProviderError::StreamInterrupted`].
pub(crate) fn decode_stream<D: StreamDecoder>(
    provider: &Arc<str>,
    resp: reqwest::Response,
    decoder: D,
) -> ChunkStream {
    let st = DecodeState {
        body: resp.bytes_stream().boxed(),
        decoder,
        out: VecDeque::new(),
        ended: false,
        provider: provider.clone(),
    };
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(item) = st.out.pop_front() {
                return Some((item, st));
            }
            if st.ended {
                return None;
            }
            let interrupted = |provider: &Arc<str>, message: String| {
                Err(ProviderError::StreamInterrupted {
                    provider: provider.clone(),
                    message,
                })
            };
            let step = match st.body.next().await {
                Some(Ok(b)) => st.decoder.feed(&b),
                Some(Err(e)) => {
                    st.ended = true;
                    Err(error_chain(&e.without_url()))
                }
                None => {
                    st.ended = true;
                    st.decoder.finish()
                }
            };
            match step {
                Ok(frames) => st.out.extend(frames.into_iter().map(Ok)),
                Err(m) => {
                    st.ended = true;
                    st.out.push_back(interrupted(&st.provider, m));
                }
            }
        }
    })
    .boxed()
}

fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn set_model(v: &mut Value, model: &Value) {
    if let Some(o) = v.as_object_mut() {
        let missing = o
            .get("model")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if missing {
            o.insert("model".into(), model.clone());
        }
    }
}

/// What the adapters cannot know from the provider's response alone: the model name
/// (neither Bedrock nor Cohere echo it) and whether the client asked for the usage chunk.
pub(crate) fn finish_reply(reply: ProviderReply, req: &ProviderRequest) -> ProviderReply {
    let model = req.body.get("model").cloned().unwrap_or(Value::Null);
    match reply {
        ProviderReply::Complete { status, body } => {
            let body = match serde_json::from_slice::<Value>(&body) {
                Ok(mut v) => {
                    set_model(&mut v, &model);
                    Bytes::from(v.to_string())
                }
                Err(_) => body,
            };
            ProviderReply::Complete { status, body }
        }
        ProviderReply::Stream { stream } => {
            let usage = include_usage(&req.body);
            let stream = stream
                .filter_map(move |item| {
                    let out = match item {
                        Ok(frame) => rewrite_frame(frame, &model, usage).map(Ok),
                        Err(e) => Some(Err(e)),
                    };
                    std::future::ready(out)
                })
                .boxed();
            ProviderReply::Stream { stream }
        }
    }
}

fn rewrite_frame(frame: Bytes, model: &Value, include_usage: bool) -> Option<Bytes> {
    let Some(payload) = frame
        .strip_prefix(b"data: ")
        .and_then(|p| p.strip_suffix(b"\n\n"))
    else {
        return Some(frame);
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(payload) else {
        return Some(frame); // `[DONE]`
    };
    let usage_only = v
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
        && v.get("usage").is_some_and(|u| !u.is_null());
    if usage_only && !include_usage {
        return None;
    }
    if include_usage && !usage_only {
        v["usage"] = Value::Null;
    }
    set_model(&mut v, model);
    Some(Bytes::from(format!("data: {v}\n\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Endpoint;

    fn req(include: bool) -> ProviderRequest {
        let mut body = Map::new();
        body.insert("model".into(), json!("m-1"));
        body.insert("stream".into(), json!(true));
        if include {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        ProviderRequest {
            endpoint: Endpoint::ChatCompletions,
            body,
            stream: true,
        }
    }

    async fn frames(include: bool) -> Vec<String> {
        let cb = ChunkBuilder::new("x".into(), String::new());
        let items = vec![
            Ok(cb.delta(json!({"content": "hi"}))),
            Ok(cb.finish("stop")),
            Ok(cb.usage(json!({"prompt_tokens": 1}))),
            Ok(done_frame()),
        ];
        let reply = ProviderReply::Stream {
            stream: futures_util::stream::iter(items).boxed(),
        };
        let ProviderReply::Stream { stream } = finish_reply(reply, &req(include)) else {
            panic!("stream expected");
        };
        stream
            .map(|r| String::from_utf8(r.unwrap().to_vec()).unwrap())
            .collect()
            .await
    }

    #[tokio::test]
    async fn usage_chunk_only_when_asked_and_model_filled_in() {
        let without = frames(false).await;
        assert_eq!(without.len(), 3, "{without:?}");
        assert!(without.iter().all(|f| !f.contains("usage")));
        assert!(without[0].contains("\"model\":\"m-1\""));
        assert_eq!(without[2], "data: [DONE]\n\n");
        let with = frames(true).await;
        assert_eq!(with.len(), 4);
        assert!(with[2].contains("\"prompt_tokens\":1"));
        assert!(with[0].contains("\"usage\":null"));
    }

    #[test]
    fn data_urls_split_into_mime_and_data() {
        assert_eq!(
            parse_data_url("data:image/png;base64,iVBOR"),
            Some(("image/png", "iVBOR"))
        );
        assert_eq!(parse_data_url("https://x/y.png"), None);
        assert_eq!(parse_data_url("data:text/plain,hello"), None);
    }

    #[test]
    fn provider_messages_are_extracted() {
        assert_eq!(provider_message(br#"{"message":"bad"}"#), "bad");
        assert_eq!(provider_message(b"plain text"), "plain text");
    }
}
