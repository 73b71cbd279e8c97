use super::*;
use crate::providers::stream::{OpenAiChunks, Pipeline};

/// The Cohere hook as the stream driver runs it, usage chunk included.
fn decoder() -> Pipeline<SseDecoder, OpenAiChunks<CohereStreamDecoder>> {
    Pipeline::new(
        SseDecoder::new(),
        OpenAiChunks::new(CohereStreamDecoder::new(), true, String::new()),
    )
}

fn body(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

// Request shape: https://docs.cohere.com/reference/chat
#[test]
fn chat_becomes_a_cohere_v2_request() {
    let out = to_cohere_chat(
        &body(json!({
            "model": "command-a-03-2025",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "I will look it up.", "tool_calls": [
                    {"id": "weather_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "weather_1", "content": "18C"},
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "now", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
            "max_completion_tokens": 50, "top_p": 0.8, "temperature": 0.2, "stop": ["END"], "seed": 7,
        })),
        true,
    )
    .unwrap();
    assert_eq!(
        out,
        json!({
            "model": "command-a-03-2025",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "tool_calls": [
                    {"id": "weather_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                ], "tool_plan": "I will look it up."},
                {"role": "tool", "tool_call_id": "weather_1", "content": "18C"},
            ],
            "stream": true,
            "max_tokens": 50,
            "temperature": 0.2,
            "p": 0.8,
            "seed": 7,
            "stop_sequences": ["END"],
            "tool_choice": "REQUIRED",
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}, "description": "now"}}],
        })
    );
}

#[test]
fn a_named_tool_choice_keeps_only_that_tool() {
    let out = to_cohere_chat(
        &body(json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}],
            "tool_choice": {"type": "function", "function": {"name": "b"}},
        })),
        false,
    )
    .unwrap();
    assert_eq!(out["tools"].as_array().unwrap().len(), 1);
    assert_eq!(out["tools"][0]["function"]["name"], "b");
    assert_eq!(out["tool_choice"], "REQUIRED");
    let err = to_cohere_chat(
        &body(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "a"}}],
            "tool_choice": {"type": "function", "function": {"name": "zzz"}}}),
        ),
        false,
    )
    .unwrap_err();
    assert!(err.contains("zzz"));
}

#[test]
fn bad_requests_are_refused() {
    assert!(to_cohere_chat(
        &body(json!({"messages": [{"role": "tool", "content": "x"}]})),
        false
    )
    .unwrap_err()
    .contains("tool_call_id"));
    assert!(to_cohere_chat(
        &body(json!({"messages": [{"role": "function", "content": "x"}]})),
        false
    )
    .is_err());
    assert!(to_cohere_embed(&body(json!({"input": [1, 2]}))).is_err());
}

// Response shape: https://docs.cohere.com/reference/chat (200 response example)
#[test]
fn cohere_response_becomes_a_chat_completion() {
    let v = json!({
        "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "LLMs are neural networks."}]},
        "usage": {"billed_units": {"input_tokens": 17, "output_tokens": 6}, "tokens": {"input_tokens": 215, "output_tokens": 6}}
    });
    let out = from_cohere_chat(&v).unwrap();
    assert_eq!(out["id"], "chatcmpl-c14c80c3-18eb-4519-9460-6c92edd8cfb4");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "LLMs are neural networks."
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 215, "completion_tokens": 6, "total_tokens": 221})
    );
}

// https://docs.cohere.com/docs/tool-use-overview (tool call response)
#[test]
fn tool_call_response_becomes_tool_calls() {
    let v = json!({
        "id": "x",
        "finish_reason": "TOOL_CALL",
        "message": {
            "role": "assistant",
            "tool_plan": "I will search the weather for Toronto.",
            "tool_calls": [{"id": "get_weather_1byjy32y4hvq", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Toronto\"}"}}]
        },
        "usage": {"billed_units": {"input_tokens": 37, "output_tokens": 28}, "tokens": {"input_tokens": 913, "output_tokens": 81}}
    });
    let out = from_cohere_chat(&v).unwrap();
    let m = &out["choices"][0]["message"];
    assert_eq!(m["content"], Value::Null);
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"location\":\"Toronto\"}"
    );
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn finish_reasons_map() {
    assert_eq!(finish_reason("COMPLETE"), Some("stop"));
    assert_eq!(finish_reason("STOP_SEQUENCE"), Some("stop"));
    assert_eq!(finish_reason("MAX_TOKENS"), Some("length"));
    assert_eq!(finish_reason("TOOL_CALL"), Some("tool_calls"));
    assert_eq!(finish_reason("ERROR"), None);
}

// https://docs.cohere.com/reference/embed
#[test]
fn embeddings_translate_both_ways() {
    let req = to_cohere_embed(&body(
        json!({"model": "embed-v4.0", "input": ["a", "b"], "dimensions": 256}),
    ))
    .unwrap();
    assert_eq!(
        req,
        json!({"model": "embed-v4.0", "texts": ["a", "b"], "input_type": "search_document",
            "embedding_types": ["float"], "output_dimension": 256})
    );
    let out = from_cohere_embed(&json!({
        "id": "da6e531f", "embeddings": {"float": [[0.016, -0.008], [0.1, 0.2]]},
        "texts": ["a", "b"], "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
        "response_type": "embeddings_by_type"
    }))
    .unwrap();
    assert_eq!(out["data"][1]["embedding"], json!([0.1, 0.2]));
    assert_eq!(out["usage"]["prompt_tokens"], 2);
}

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

fn chunks(frames: &[Bytes]) -> Vec<Value> {
    frames
        .iter()
        .filter_map(|f| {
            serde_json::from_str(
                std::str::from_utf8(f)
                    .unwrap()
                    .strip_prefix("data: ")?
                    .trim_end(),
            )
            .ok()
        })
        .collect()
}

// Event sequence: https://docs.cohere.com/v2/docs/streaming and
// https://docs.cohere.com/docs/tool-use-streaming
#[test]
fn stream_events_become_chunks_split_anywhere() {
    let text = sse(&[
        json!({"id": "29f14a5a", "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
        json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will check."}}}),
        json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "get_weather_nsz5zm3w56q3", "type": "function", "function": {"name": "get_weather", "arguments": ""}}}}}),
        json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{\n    \"location\": \""}}}}}),
        json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "Toronto\"\n}"}}}}}),
        json!({"type": "tool-call-end", "index": 0}),
        json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hi"}}}}),
        json!({"type": "content-end", "index": 0}),
        json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {"billed_units": {"input_tokens": 37, "output_tokens": 28}, "tokens": {"input_tokens": 913, "output_tokens": 81}}}}),
    ]);
    for split in [1usize, 13, text.len()] {
        let mut d = decoder();
        let mut out = Vec::new();
        for piece in text.as_bytes().chunks(split) {
            out.extend(d.feed(piece).unwrap());
        }
        out.extend(d.finish().unwrap());
        let c = chunks(&out);
        assert_eq!(c[0]["id"], "chatcmpl-29f14a5a");
        assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
        let tc = &c[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(tc["id"], "get_weather_nsz5zm3w56q3");
        assert_eq!(tc["function"]["name"], "get_weather");
        let args: String = c[2..4]
            .iter()
            .map(|x| {
                x["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"location": "Toronto"})
        );
        assert_eq!(c[4]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(c[5]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c[6]["usage"]["prompt_tokens"], 913);
        assert_eq!(out.last().unwrap().as_ref(), b"data: [DONE]\n\n");
    }
}

#[test]
fn error_finish_and_truncation_interrupt_the_stream() {
    let mut d = decoder();
    let err = d
        .feed(sse(&[json!({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal"}})]).as_bytes())
        .unwrap_err();
    assert!(err.contains("ERROR"), "{err}");
    let mut d = decoder();
    d.feed(sse(&[json!({"type": "message-start", "id": "x"})]).as_bytes())
        .unwrap();
    assert!(d.finish().is_err());
}

#[test]
fn errors_keep_the_status_and_message() {
    let p: Arc<str> = "cohere".into();
    let ProviderError::Upstream { status, body, .. } = CohereAdapter.translate_error(
        &p,
        401,
        Bytes::from_static(br#"{"message":"invalid api token"}"#),
    ) else {
        panic!()
    };
    assert_eq!(status, 401);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["message"], "invalid api token");
    assert_eq!(v["error"]["type"], "authentication_error");
}
