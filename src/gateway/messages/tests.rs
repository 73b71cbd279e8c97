use super::*;
use crate::providers::anthropic::to_messages_request;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// A request as the Anthropic SDK sends it (<https://docs.anthropic.com/en/api/messages>):
/// system blocks, an image, a tool round trip.
fn sdk_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are a weather bot."}, {"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/sky.png"}},
                {"type": "text", "text": "Weather where these were taken?"}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "need a tool", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "18C, sunny"}]},
                {"type": "text", "text": "And tomorrow?"}
            ]}
        ],
        "tools": [{"name": "get_weather", "description": "Current weather", "input_schema":
            {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.5,
        "top_k": 40,
        "metadata": {"user_id": "u-1"},
        "stream": true
    })
}

#[test]
fn anthropic_request_becomes_a_chat_request() {
    let out = to_chat_request(&obj(sdk_request()), true).unwrap();
    assert_eq!(
        Value::Object(out),
        json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "You are a weather bot.\nBe brief."},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/sky.png"}},
                    {"type": "text", "text": "Weather where these were taken?"}
                ]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_01", "content": "18C, sunny"},
                {"role": "user", "content": "And tomorrow?"}
            ],
            "max_tokens": 1024,
            "temperature": 0.5,
            "stop": ["\n\nHuman:"],
            "user": "u-1",
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[test]
fn both_translations_compose_back_to_the_anthropic_request() {
    // Anthropic request → OpenAI (inbound) → Anthropic (outbound adapter): what an
    // Anthropic provider receives when an Anthropic client calls deja.
    let original = sdk_request();
    let chat = to_chat_request(&obj(original.clone()), true).unwrap();
    let back = to_messages_request(&chat, 4096).unwrap();
    assert_eq!(back["system"], "You are a weather bot.\nBe brief.");
    assert_eq!(back["max_tokens"], 1024);
    assert_eq!(back["stop_sequences"], original["stop_sequences"]);
    assert_eq!(back["metadata"], original["metadata"]);
    assert_eq!(back["tools"], original["tools"]);
    assert_eq!(back["tool_choice"], original["tool_choice"]);
    let msgs = back["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["content"], original["messages"][0]["content"]);
    assert_eq!(
        msgs[1]["content"],
        json!([{"type": "text", "text": "Checking."},
               {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "Paris"}}])
    );
    assert_eq!(
        msgs[2]["content"],
        json!([{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C, sunny"},
               {"type": "text", "text": "And tomorrow?"}])
    );
}

#[test]
fn invalid_requests_name_the_field() {
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5}),
            "model",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": []}),
            "messages",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]}),
            "messages[0].content[0].source.type",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "stream",
        ),
    ];
    for (req, param) in cases {
        match to_chat_request(&obj(req.clone()), true) {
            Err(GatewayError::InvalidRequest { param: p, .. }) => {
                assert_eq!(p.as_deref(), Some(param), "{req}")
            }
            other => panic!("{req}: {:?}", other.map(Value::Object)),
        }
    }
    // count_tokens takes no max_tokens
    let r = obj(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
    assert!(to_chat_request(&r, false).is_ok());
}

#[test]
fn chat_completion_becomes_a_message() {
    let resp = json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me look.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Oslo\"}"}}]}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150, "prompt_tokens_details": {"cached_tokens": 100}}
    });
    let m = to_message(&resp, "fallback").unwrap();
    assert_eq!(
        m,
        json!({
            "id": "msg_chatcmpl-abc", "type": "message", "role": "assistant", "model": "gpt-4o-mini",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"location": "Oslo"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}
        })
    );
    let cut = json!({"id": "x", "choices": [{"message": {"content": "Once"}, "finish_reason": "length"}]});
    let m = to_message(&cut, "fallback").unwrap();
    assert_eq!(m["stop_reason"], "max_tokens");
    assert_eq!(m["model"], "fallback");
    assert!(to_message(&json!({"choices": []}), "m").is_err());
    let refused = json!({"id": "x", "choices": [{"message": {"content": null, "refusal": "I can't help with that."}, "finish_reason": "content_filter"}]});
    let m = to_message(&refused, "m").unwrap();
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "I can't help with that."}])
    );
    assert_eq!(m["stop_reason"], "refusal");
}

fn frames(chunks: &[Value]) -> String {
    let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    s.push_str("data: [DONE]\n\n");
    s
}

fn run(text: &str, cut: usize) -> (Vec<(String, Value)>, Result<(), String>, bool) {
    let mut t = StreamToAnthropic::new("requested-model");
    let mut d = SseDecoder::new();
    let mut evs = d.feed(&text.as_bytes()[..cut]);
    evs.extend(d.feed(&text.as_bytes()[cut..]));
    let mut out = Vec::new();
    let mut r = Ok(());
    for e in &evs {
        if let Err(m) = t.event(e, &mut out) {
            r = Err(m);
            break;
        }
    }
    let mut all = String::new();
    for b in &out {
        all.push_str(std::str::from_utf8(b).unwrap());
    }
    let parsed = SseDecoder::new()
        .feed(all.as_bytes())
        .into_iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(e.event.as_deref(), v["type"].as_str());
            (e.event.unwrap(), v)
        })
        .collect();
    (parsed, r, t.finished())
}

#[test]
fn openai_chunks_become_the_anthropic_event_sequence() {
    let base = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"});
    let with = |choices: Value, usage: Value| {
        let mut c = base.clone();
        c["choices"] = choices;
        c["usage"] = usage;
        c
    };
    let chunks = vec![
        with(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"content": "Let me "}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"content": "check."}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\""}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": \"Oslo\"}"}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}, "finish_reason": null}]),
            Value::Null,
        ),
        with(
            json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
            Value::Null,
        ),
        with(
            json!([]),
            json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}),
        ),
    ];
    let text = frames(&chunks);
    for cut in [0, 5, 200, text.len() / 2, text.len()] {
        let (evs, r, done) = run(&text, cut);
        assert_eq!(r, Ok(()));
        assert!(done);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let start = &evs[0].1["message"];
        assert_eq!(start["id"], "msg_chatcmpl-1");
        assert_eq!(start["model"], "gpt-4o-mini");
        assert_eq!(start["content"], json!([]));
        assert_eq!(
            evs[2].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(
            evs[3].1["delta"],
            json!({"type": "text_delta", "text": "Let me "})
        );
        assert_eq!(evs[6].1["index"], 1);
        assert_eq!(
            evs[6].1["content_block"],
            json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}})
        );
        let args: String = evs[7..9]
            .iter()
            .map(|(_, e)| e["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({"location": "Oslo"})
        );
        assert_eq!(evs[10].1["content_block"]["name"], "get_time");
        assert_eq!(evs[10].1["index"], 2);
        assert_eq!(
            evs[13].1["delta"],
            json!({"stop_reason": "tool_use", "stop_sequence": null})
        );
        assert_eq!(evs[13].1["usage"]["output_tokens"], 7);
        assert_eq!(evs[13].1["usage"]["input_tokens"], 11);
    }
}

#[test]
fn an_in_band_error_or_an_early_end_fails_the_stream() {
    let text = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\ndata: {\"error\":{\"message\":\"provider `p` stream ended before completion: reset\",\"type\":\"upstream_error\"}}\n\n";
    let (evs, r, done) = run(text, 3);
    assert_eq!(evs[0].0, "message_start");
    assert!(r.unwrap_err().contains("reset"));
    assert!(!done);
    let mut t = StreamToAnthropic::new("m");
    let mut out = Vec::new();
    assert!(t.end(&mut out).is_err());
    let e = error_event(502, "boom");
    assert_eq!(
        std::str::from_utf8(&e).unwrap(),
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n"
    );
}

#[test]
fn count_tokens_is_a_chars_over_four_estimate() {
    let body = json!({"model": "m", "system": "abcd", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "12345678"},
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]});
    let v = count_tokens(body.to_string().as_bytes()).unwrap();
    assert_eq!(v, json!({"input_tokens": 3 + TOKENS_PER_IMAGE}));
    assert!(count_tokens(b"{}").is_err());
    assert!(count_tokens(b"not json").is_err());
}
