//! deja's typed OpenAI `chat.completion.chunk`: what every translated stream is built
//! as before the driver frames it. The fields deja writes or reads are typed; anything
//! else a chunk carries stays in a flattened map, so a chunk read and written again
//! keeps every field (in the order: typed fields, then the rest).
//!
//! <https://platform.openai.com/docs/api-reference/chat-streaming/streaming>

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const CHUNK_OBJECT: &str = "chat.completion.chunk";

fn chunk_object() -> String {
    CHUNK_OBJECT.to_owned()
}

/// One `chat.completion.chunk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default = "chunk_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    /// Empty when the provider does not name it (the driver fills in the route's).
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Absent, `null` (on every chunk once the client asked for usage) or the usage
    /// object (the last chunk, with no choices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatChunk {
    pub fn new(id: String, created: u64, model: String, choices: Vec<ChunkChoice>) -> Self {
        ChatChunk {
            id,
            object: chunk_object(),
            created,
            model,
            choices,
            usage: None,
            extra: Map::new(),
        }
    }

    /// The usage chunk: no choices, the usage object.
    pub fn with_usage(mut self, usage: Value) -> Self {
        self.usage = Some(usage);
        self
    }

    /// The usage chunk (no choices, a usage object) rather than a content chunk.
    pub fn is_usage_only(&self) -> bool {
        self.choices.is_empty() && self.usage.as_ref().is_some_and(|u| !u.is_null())
    }
}

/// One choice of a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u64,
    #[serde(default)]
    pub delta: ChunkDelta,
    /// Always written (`null` when none).
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// Always written (`null` until the choice ends).
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChunkChoice {
    pub fn new(index: u64, delta: ChunkDelta, finish_reason: Option<&str>) -> Self {
        ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason: finish_reason.map(str::to_owned),
            extra: Map::new(),
        }
    }
}

/// What a choice adds: role (first chunk), text, tool-call pieces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool-call deltas (`index`, and `id`/`type`/`function.name` on the first piece,
    /// then `function.arguments` pieces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChunkDelta {
    /// The first delta: `{"role": "assistant", "content": ""}`.
    pub fn start() -> Self {
        ChunkDelta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Default::default()
        }
    }

    pub fn text(t: impl Into<String>) -> Self {
        ChunkDelta {
            content: Some(t.into()),
            ..Default::default()
        }
    }

    pub fn tool_calls(calls: Vec<Value>) -> Self {
        ChunkDelta {
            tool_calls: Some(calls),
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.role.is_none()
            && self.content.is_none()
            && self.tool_calls.is_none()
            && self.extra.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunks_serialise_in_openai_order_and_keep_unknown_fields() {
        let mut c = ChatChunk::new(
            "c1".into(),
            7,
            "m".into(),
            vec![ChunkChoice::new(0, ChunkDelta::start(), None)],
        );
        c.usage = Some(Value::Null);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#
        );
        let text = r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi","refusal":null},"logprobs":null,"finish_reason":null}],"system_fingerprint":"fp_1"}"#;
        let back: ChatChunk = serde_json::from_str(text).unwrap();
        assert_eq!(back.extra["system_fingerprint"], json!("fp_1"));
        assert_eq!(back.choices[0].delta.extra["refusal"], Value::Null);
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}
