//! Helpers shared by the adapters whose wire format is not OpenAI's (Bedrock, Cohere):
//! OpenAI-shaped errors, chunk building, and the model name on a complete reply.

use super::chat::{ChatChunk, ChunkChoice, ChunkDelta};
use super::{ProviderError, ProviderReply, ProviderRequest};
use bytes::Bytes;
use serde_json::{json, Value};
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

/// Builds [`ChatChunk`]s for one streamed reply (the stream
/// driver, [`super::stream::OpenAiChunks`], frames them).
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

    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatChunk {
        ChatChunk::new(self.id.clone(), self.created, self.model.clone(), choices)
    }

    pub fn delta(&self, delta: ChunkDelta) -> ChatChunk {
        self.chunk(vec![ChunkChoice::new(0, delta, None)])
    }

    pub fn finish(&self, reason: &str) -> ChatChunk {
        self.chunk(vec![ChunkChoice::new(
            0,
            ChunkDelta::default(),
            Some(reason),
        )])
    }

    /// The usage chunk OpenAI sends last when asked (`choices: []`).
    pub fn usage(&self, usage: Value) -> ChatChunk {
        self.chunk(Vec::new()).with_usage(usage)
    }
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

/// The model name in a complete reply, which neither Bedrock nor Cohere echo (streams
/// get theirs from [`super::stream::OpenAiChunks`]).
pub(crate) fn finish_reply(reply: ProviderReply, req: &ProviderRequest) -> ProviderReply {
    match reply {
        ProviderReply::Complete { status, body } => {
            let model = Value::String(req.model.clone());
            let body = match serde_json::from_slice::<Value>(&body) {
                Ok(mut v) => {
                    set_model(&mut v, &model);
                    Bytes::from(v.to_string())
                }
                Err(_) => body,
            };
            ProviderReply::Complete { status, body }
        }
        stream @ ProviderReply::Stream { .. } => stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
