//! deja's typed OpenAI chat replies: `chat.completion.chunk` (what every translated
//! stream is built as before the driver frames it) and `chat.completion` (what the
//! single-choice translations build). The fields deja writes or reads are typed;
//! anything else stays in a flattened map, so a value read and written again keeps every
//! field (in the order: typed fields, then the rest).
//!
//! <https://platform.openai.com/docs/api-reference/chat-streaming/streaming>,
//! <https://platform.openai.com/docs/api-reference/chat/object>

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const CHUNK_OBJECT: &str = "chat.completion.chunk";

/// Whether a streamed chat request asks for the final usage chunk
/// (`stream_options.include_usage`): read here for both the stream driver and the
/// cache's replay of a hit.
pub fn wants_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

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

fn completion_object() -> String {
    "chat.completion".to_owned()
}

/// One `chat.completion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub id: String,
    #[serde(default = "completion_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ResponseChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a `chat.completion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseChoice {
    #[serde(default)]
    pub index: u64,
    pub message: ResponseMessage,
    #[serde(default)]
    pub logprobs: Option<Value>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The assistant message of a choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    pub role: String,
    /// `null` when the reply is tool calls only.
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatResponse {
    /// A one-choice reply from a provider that answers with one message: its text
    /// (`content: null` when there is none and there are tool calls), its tool calls,
    /// why it ended and its usage.
    pub fn assistant(
        id: String,
        created: u64,
        model: String,
        text: String,
        tool_calls: Vec<Value>,
        finish_reason: &str,
        usage: Value,
    ) -> Self {
        let content = if text.is_empty() && !tool_calls.is_empty() {
            None
        } else {
            Some(text)
        };
        let message = ResponseMessage {
            role: "assistant".into(),
            content,
            refusal: None,
            tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
            extra: Map::new(),
        };
        ChatResponse {
            id,
            object: completion_object(),
            created,
            model,
            choices: vec![ResponseChoice {
                index: 0,
                message,
                logprobs: None,
                finish_reason: Some(finish_reason.to_owned()),
                extra: Map::new(),
            }],
            usage: Some(usage),
            extra: Map::new(),
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a chat.completion serialises")
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

    #[test]
    fn a_one_message_reply_has_openais_shape() {
        let call =
            json!({"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}});
        let r = ChatResponse::assistant(
            "c1".into(),
            5,
            "m".into(),
            String::new(),
            vec![call.clone()],
            "tool_calls",
            json!({"prompt_tokens": 1}),
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":"c1","object":"chat.completion","created":5,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1}}"#
        );
        let text_only = ChatResponse::assistant(
            "c".into(),
            0,
            "m".into(),
            String::new(),
            vec![],
            "stop",
            json!({}),
        );
        assert_eq!(text_only.to_value()["choices"][0]["message"]["content"], "");
        assert!(text_only.to_value()["choices"][0]["message"]
            .get("tool_calls")
            .is_none());
    }
}
