//! What makes two requests answerable by the same reply.
//!
//! - The **partition** must match exactly before similarity counts: the model route, the
//!   namespace, the endpoint, every parameter but the conversation itself (temperature,
//!   top_p, max_tokens, n, stop, seed, tools, tool_choice, response_format, logprobs and any
//!   field deja does not know), the system prompt, and any non-text content (images, audio).
//! - The **text** is what is embedded: the conversation after the system prompt, with roles
//!   when there is more than one turn.
//! - The **exact key** hashes the partition and the normalised conversation, so an
//!   identical repeat is answered without embedding.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Fields that do not change what the answer is.
const NOT_IN_PARTITION: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
];

/// A request's cache identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// Hex digest; similarity only counts inside one partition.
    pub partition: String,
    /// Hash of partition + normalised conversation.
    pub exact: [u8; 32],
    /// The text embedded for similarity.
    pub text: String,
    /// The last user turn: what the false-hit verifier compares.
    pub query: String,
    /// Number of non-system turns.
    pub turns: usize,
}

/// The cache identity of a chat (`messages`) or legacy completion (`prompt`) request.
/// `None` when the request has nothing cacheable (no text at all).
pub fn cache_key(
    route: &str,
    namespace: &str,
    endpoint: &str,
    body: &Map<String, Value>,
) -> Option<CacheKey> {
    let mut system = Vec::new();
    let mut turns: Vec<(String, String)> = Vec::new();
    let mut media = Vec::new();
    if let Some(msgs) = body.get("messages").and_then(Value::as_array) {
        for m in msgs {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            let mut text = m
                .get("content")
                .map(|c| content_text(c, &mut media))
                .unwrap_or_default();
            // Tool calls and tool results are part of what the next answer depends on.
            for extra in ["tool_calls", "function_call", "tool_call_id", "name"] {
                if let Some(v) = m.get(extra) {
                    text.push_str(&format!(" [{extra}: {}]", canonical(v)));
                }
            }
            if role == "system" || role == "developer" {
                system.push(normalise(&text));
            } else {
                turns.push((role.to_owned(), text));
            }
        }
    } else if let Some(p) = body.get("prompt") {
        turns.push(("user".into(), content_text(p, &mut media)));
    }
    if turns.iter().all(|(_, t)| t.trim().is_empty()) {
        return None;
    }

    let mut params = Map::new();
    for (k, v) in body {
        if !NOT_IN_PARTITION.contains(&k.as_str()) {
            params.insert(k.clone(), v.clone());
        }
    }
    let mut h = Sha256::new();
    for part in [
        route,
        namespace,
        endpoint,
        &canonical(&Value::Object(params)),
        &system.join("\n"),
        &media.join("\n"),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let partition = hex::encode(&h.finalize()[..16]);

    let mut e = Sha256::new();
    e.update(partition.as_bytes());
    for (role, text) in &turns {
        e.update([0u8]);
        e.update(role.as_bytes());
        e.update([1u8]);
        e.update(normalise(text).as_bytes());
    }
    let exact: [u8; 32] = e.finalize().into();

    let query = turns
        .iter()
        .rev()
        .find(|(r, _)| r == "user")
        .or(turns.last())
        .map(|(_, t)| collapse_ws(t))
        .unwrap_or_default();
    let text = if turns.len() == 1 {
        collapse_ws(&turns[0].1)
    } else {
        turns
            .iter()
            .map(|(r, t)| format!("{r}: {}", collapse_ws(t)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Some(CacheKey {
        partition,
        exact,
        text,
        query,
        turns: turns.len(),
    })
}

/// Text of a message's content; non-text parts (images, audio, files) go to `media` so
/// they land in the partition: only identical media can share an answer.
fn content_text(c: &Value, media: &mut Vec<String>) -> String {
    match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text") | None, Some(t)) => out.push(t.to_owned()),
                    (Some("text"), None) => {}
                    _ => media.push(canonical(p)),
                }
            }
            out.join("\n")
        }
        Value::Null => String::new(),
        other => canonical(other),
    }
}

/// Case, spacing and trailing punctuation never change the answer.
pub fn normalise(s: &str) -> String {
    collapse_ws(s)
        .to_lowercase()
        .trim_end_matches(['?', '!', '.', ' '])
        .to_owned()
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// JSON with object keys sorted, so field order never splits a partition.
pub fn canonical(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    write(&m[*k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    write(v, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(v: Value) -> CacheKey {
        cache_key("p/m", "", "chat", v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn identical_up_to_case_spacing_and_field_order() {
        let a = key(
            json!({"model": "x", "temperature": 0, "messages": [{"role": "user", "content": "How do I reset my password?"}]}),
        );
        let b = key(
            json!({"messages": [{"content": "  how do I reset   my password", "role": "user"}], "temperature": 0, "model": "x", "stream": true, "user": "u2"}),
        );
        assert_eq!(a.exact, b.exact);
        assert_eq!(a.partition, b.partition);
        assert_eq!(a.text, "How do I reset my password?");
        assert_eq!(a.query, a.text);
    }

    #[test]
    fn parameters_system_prompt_namespace_route_and_media_split_partitions() {
        let base = json!({"messages": [{"role": "user", "content": "hi"}]});
        let p = key(base.clone()).partition;
        for changed in [
            json!({"temperature": 0.7, "messages": [{"role": "user", "content": "hi"}]}),
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
            json!({"tools": [], "messages": [{"role": "user", "content": "hi"}]}),
            json!({"some_new_param": 1, "messages": [{"role": "user", "content": "hi"}]}),
            json!({"messages": [{"role": "system", "content": "Answer in French"}, {"role": "user", "content": "hi"}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]}),
        ] {
            assert_ne!(key(changed.clone()).partition, p, "{changed}");
        }
        let o = base.as_object().unwrap();
        assert_ne!(
            cache_key("p/m", "tenant-a", "chat", o).unwrap().partition,
            p
        );
        assert_ne!(cache_key("p/other", "", "chat", o).unwrap().partition, p);
    }

    #[test]
    fn conversation_with_roles_is_embedded_and_last_user_turn_is_the_query() {
        let k = key(json!({"messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "I have a Visa card"},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Can I pay abroad?"}
        ]}));
        assert_eq!(k.turns, 3);
        assert_eq!(
            k.text,
            "user: I have a Visa card\nassistant: Noted.\nuser: Can I pay abroad?"
        );
        assert_eq!(k.query, "Can I pay abroad?");
        assert!(!k.text.contains("be nice"));
        let other_history = key(json!({"messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "I have a Mastercard"},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Can I pay abroad?"}
        ]}));
        assert_ne!(k.exact, other_history.exact);
    }

    #[test]
    fn legacy_prompt_and_empty_requests() {
        let k = cache_key(
            "p/m",
            "",
            "completions",
            json!({"prompt": "Say hi"}).as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(k.text, "Say hi");
        assert!(cache_key(
            "p/m",
            "",
            "chat",
            json!({"messages": [{"role": "user", "content": "  "}]})
                .as_object()
                .unwrap()
        )
        .is_none());
    }
}
