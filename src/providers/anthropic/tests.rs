use super::*;
use crate::providers::stream::{Hook, OpenAiChunks};

/// The Anthropic hook as the stream driver runs it.
fn to_openai(include_usage: bool) -> OpenAiChunks<StreamToOpenAi> {
    OpenAiChunks::new(StreamToOpenAi::new(), include_usage, String::new())
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn chat_request_becomes_a_messages_request() {
    let req = obj(json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these images, and what is the weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}
            ]},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "3C"}]},
            {"role": "user", "content": "Thanks; which is warmer?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "max_completion_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "user-42",
        "seed": 7,
        "stream": true,
        "stream_options": {"include_usage": true}
    }));
    let out = to_messages_request(&req, 4096).unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 300,
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these images, and what is the weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "3C"}]},
                    {"type": "text", "text": "Thanks; which is warmer?"}
                ]}
            ],
            "system": "You are terse.\n\nAnswer in English.",
            "temperature": 0.2,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "user-42"},
            "tools": [{"name": "get_weather", "description": "Weather by city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "stream": true
        })
    );
}

#[test]
fn max_tokens_defaults_and_tool_choice_variants() {
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    let mut r = obj(base.clone());
    let out = to_messages_request(&r, 1234).unwrap();
    assert_eq!(out["max_tokens"], 1234);
    assert_eq!(
        out["tools"][0]["input_schema"],
        json!({"type": "object", "properties": {}})
    );
    assert!(out.get("tool_choice").is_none());
    for (choice, want) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ] {
        r.insert("tool_choice".into(), choice);
        r.insert("max_tokens".into(), json!(9));
        let out = to_messages_request(&r, 1234).unwrap();
        assert_eq!(out["tool_choice"], want);
        assert_eq!(out["max_tokens"], 9);
    }
}

#[test]
fn untranslatable_requests_are_400s_naming_the_field() {
    let cases = [
        (
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
            "n",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"model": "m", "messages": [{"role": "system", "content": "only a system prompt"}]}),
            "messages",
        ),
        (
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
    ];
    for (req, param) in cases {
        let e = to_messages_request(&obj(req.clone()), 10).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(param), "{req}: {e}");
    }
    let provider: Arc<str> = "claude".into();
    let e = invalid(
        &provider,
        to_messages_request(
            &obj(json!({"model": "m", "n": 3, "messages": [{"role": "user", "content": "x"}]})),
            1,
        )
        .unwrap_err(),
    );
    match e {
        ProviderError::Upstream { status, body, .. } => {
            assert_eq!(status, 400);
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert_eq!(v["error"]["param"], "n");
        }
        other => panic!("{other:?}"),
    }
}

/// Shape from the Messages API reference, tool use example:
/// <https://docs.anthropic.com/en/api/messages> and
/// <https://docs.anthropic.com/en/docs/build-with-claude/tool-use>.
const TOOL_USE_MESSAGE: &str = r#"{
  "id": "msg_01Aq9w938a90dw8q",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [
    {"type": "text", "text": "I'll check the weather in San Francisco for you."},
    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
     "input": {"location": "San Francisco, CA", "unit": "celsius"}}
  ],
  "stop_reason": "tool_use",
  "stop_sequence": null,
  "usage": {"input_tokens": 472, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 120, "output_tokens": 89}
}"#;

#[test]
fn message_becomes_a_chat_completion() {
    let v: Value = serde_json::from_str(TOOL_USE_MESSAGE).unwrap();
    let c = to_chat_completion(&v).unwrap();
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["id"], "msg_01Aq9w938a90dw8q");
    assert_eq!(c["model"], "claude-sonnet-4-5-20250929");
    let m = &c["choices"][0]["message"];
    assert_eq!(
        m["content"],
        "I'll check the weather in San Francisco for you."
    );
    assert_eq!(m["tool_calls"][0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(m["tool_calls"][0]["type"], "function");
    assert_eq!(m["tool_calls"][0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(
        m["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(c["usage"]["prompt_tokens"], 472 + 10 + 120);
    assert_eq!(c["usage"]["completion_tokens"], 89);
    assert_eq!(c["usage"]["total_tokens"], 472 + 10 + 120 + 89);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 120);

    // A plain text reply cut by max_tokens.
    let v = json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "Once upon"}],
        "stop_reason": "max_tokens", "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 2}});
    let c = to_chat_completion(&v).unwrap();
    assert_eq!(c["choices"][0]["message"]["content"], "Once upon");
    assert!(c["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    assert!(to_chat_completion(&json!({"type": "error"})).is_err());
}

#[test]
fn stop_reasons_map_both_ways() {
    for (anthropic, openai) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        assert_eq!(finish_reason(anthropic), openai);
    }
    assert_eq!(stop_reason("stop"), "end_turn");
    assert_eq!(stop_reason("length"), "max_tokens");
    assert_eq!(stop_reason("tool_calls"), "tool_use");
    assert_eq!(stop_reason("content_filter"), "refusal");
}

/// Error bodies from <https://docs.anthropic.com/en/api/errors>.
#[test]
fn errors_become_openai_shaped_with_their_status() {
    let cases = [
        (
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#,
            400,
            "invalid_request_error",
        ),
        (
            401,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            401,
            "authentication_error",
        ),
        (
            403,
            r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#,
            403,
            "permission_error",
        ),
        (
            404,
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#,
            404,
            "not_found_error",
        ),
        (
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
            429,
            "rate_limit_error",
        ),
        (
            500,
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
            500,
            "api_error",
        ),
        (
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            503,
            "overloaded_error",
        ),
        (502, "<html>Bad Gateway</html>", 502, "api_error"),
    ];
    for (status, body, want_status, want_type) in cases {
        let (s, v) = to_openai_error("claude", status, body.as_bytes());
        assert_eq!(s, want_status, "{body}");
        assert_eq!(v["error"]["type"], want_type, "{body}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(!msg.is_empty());
        if body.starts_with('{') {
            let want: Value = serde_json::from_str(body).unwrap();
            assert_eq!(msg, want["error"]["message"].as_str().unwrap());
        } else {
            assert!(msg.contains("Bad Gateway"), "{msg}");
        }
    }
    let (_, v) = to_openai_error("claude", 500, b"");
    assert!(v["error"]["message"].as_str().unwrap().contains("HTTP 500"));
}

/// The event sequence of a streamed tool use, after the example in
/// <https://docs.anthropic.com/en/api/messages-streaming> ("Streaming request with tool use").
const TOOL_STREAM: &str = "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: ping
data: {\"type\": \"ping\"}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\", let's check the weather.\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisc\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"o, CA\\\"}\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":1}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

fn run(
    t: &mut OpenAiChunks<StreamToOpenAi>,
    text: &str,
    cut: usize,
) -> (Vec<Value>, bool, Result<(), String>) {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    let mut evs = d.feed(&text.as_bytes()[..cut]);
    evs.extend(d.feed(&text.as_bytes()[cut..]));
    let mut r = Ok(());
    for e in &evs {
        if let Err(m) = t.event(e, &mut out) {
            r = Err(m.to_string());
            break;
        }
    }
    let frames: Vec<String> = out
        .iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect();
    let done = frames.last().is_some_and(|f| f == "data: [DONE]\n\n");
    let chunks = frames
        .iter()
        .filter_map(|f| f.strip_prefix("data: "))
        .filter(|f| !f.starts_with("[DONE]"))
        .map(|f| serde_json::from_str(f.trim()).unwrap())
        .collect();
    (chunks, done, r)
}

#[test]
fn streamed_tool_use_becomes_openai_chunks() {
    for cut in [0, 17, 400, TOOL_STREAM.len() / 2, TOOL_STREAM.len()] {
        let mut t = to_openai(true);
        let (chunks, done, r) = run(&mut t, TOOL_STREAM, cut);
        assert!(r.is_ok() && done && t.finished());
        assert!(chunks
            .iter()
            .all(|c| c["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U"
                && c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks
            .iter()
            .filter_map(|c| {
                c.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(text, "Okay, let's check the weather.");
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
            .collect();
        assert_eq!(calls[0]["index"], 0);
        assert_eq!(calls[0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        let args: String = calls
            .iter()
            .filter_map(|c| c.pointer("/function/arguments").and_then(Value::as_str))
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"location": "San Francisco, CA"})
        );
        let finish: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c.pointer("/choices/0/finish_reason"))
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finish, vec![&json!("tool_calls")]);
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["prompt_tokens"], 472);
        assert_eq!(last["usage"]["completion_tokens"], 89);
        assert_eq!(last["usage"]["total_tokens"], 561);
    }
    // Without include_usage: no usage chunk, no usage field.
    let mut t = to_openai(false);
    let (chunks, done, _) = run(&mut t, TOOL_STREAM, 0);
    assert!(done);
    assert!(chunks
        .iter()
        .all(|c| c.get("usage").is_none() && !c["choices"].as_array().unwrap().is_empty()));
}

#[test]
fn an_error_event_or_an_early_end_interrupts_the_stream() {
    // Mid-stream error, as documented in the streaming reference.
    let text = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\nevent: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n";
    let mut t = to_openai(false);
    let (chunks, done, r) = run(&mut t, text, 10);
    assert_eq!(chunks.len(), 1);
    assert!(!done);
    assert_eq!(r, Err("overloaded_error: Overloaded".into()));
    let mut out = Vec::new();
    assert!(t.end(&mut out).is_err());
}

#[test]
fn config_is_checked_when_the_adapter_is_built() {
    let mut cfg = ProviderConfig::new(crate::providers::ProviderKind::Anthropic);
    let a = AnthropicAdapter::new("claude", &cfg).unwrap();
    assert_eq!(&*a.version, DEFAULT_VERSION);
    assert_eq!(a.default_max_tokens, DEFAULT_MAX_TOKENS);
    let set = |cfg: &mut ProviderConfig, version: Option<&str>, max: Option<u64>| {
        cfg.settings = crate::config::ProviderSettings::Anthropic(crate::config::AnthropicConfig {
            anthropic_version: version.map(str::to_owned),
            default_max_tokens: max,
        });
    };
    set(&mut cfg, None, Some(0));
    let e = AnthropicAdapter::new("claude", &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("claude") && e.contains("default_max_tokens"),
        "{e}"
    );
    set(&mut cfg, Some("2023-06-01\n"), Some(10));
    let e = AnthropicAdapter::new("claude", &cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("anthropic_version"), "{e}");
}

#[test]
fn assistant_refusal_parts_are_sent_as_text() {
    let req = obj(json!({"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
        {"role": "user", "content": "ok"}]}));
    let out = to_messages_request(&req, 5).unwrap();
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "text", "text": "I can't help with that."}])
    );
}

#[test]
fn a_native_request_keeps_its_fields_and_gets_the_route_model() {
    let native = obj(json!({"model": "claude/alias", "top_k": 3,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "x"}]}));
    let out = native_messages_request(&native, "claude-real", 99);
    let mut expected = Value::Object(native.clone());
    expected["model"] = json!("claude-real");
    expected["max_tokens"] = json!(99);
    assert_eq!(out, expected);
    // The model keeps its place; a max_tokens the client set is kept.
    assert_eq!(out.as_object().unwrap().keys().next().unwrap(), "model");
    let mut with_max = native.clone();
    with_max.insert("max_tokens".into(), json!(5));
    assert_eq!(
        native_messages_request(&with_max, "m", 99)["max_tokens"],
        json!(5)
    );
}
