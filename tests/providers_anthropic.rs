//! The Anthropic provider and the Anthropic-compatible API through real HTTP: the gateway
//! in front of the Anthropic Messages mock (which checks the wire format) and of the
//! OpenAI-compatible mock.

mod common;

use common::{sse_data, Harness};
use deja_mock::anthropic::AnthropicMock;
use deja_mock::Behaviour;
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "sk-ant-api03-test";
const MODEL: &str = "claude/claude-sonnet-4-5-20250929";

struct Setup {
    h: Harness,
    claude: AnthropicMock,
}

fn start_with(cache_dir: Option<&std::path::Path>) -> Setup {
    let claude = AnthropicMock::start(Some(KEY)).unwrap();
    let extra = format!(
        "[providers.claude]\nkind = \"anthropic\"\nbase_url = \"{url}\"\napi_key = \"{KEY}\"\ntimeout_secs = 5\n\
         [providers.claude-badkey]\nkind = \"anthropic\"\nbase_url = \"{url}\"\napi_key = \"sk-ant-wrong\"\ntimeout_secs = 5\ndiscover_models = false\n\
         [providers.claude-v]\nkind = \"anthropic\"\nbase_url = \"{url}\"\napi_key = \"{KEY}\"\nanthropic_version = \"2023-01-01\"\ndefault_max_tokens = 7\ndiscover_models = false\n",
        url = claude.base_url()
    );
    let h = match cache_dir {
        None => Harness::start(&extra),
        Some(d) => Harness::start_cached(&extra, d),
    };
    Setup { h, claude }
}

fn start() -> Setup {
    start_with(None)
}

fn user(model: &str, content: Value) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

async fn post(s: &Setup, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    let r =
        s.h.client
            .post(s.h.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

async fn post_json(s: &Setup, path: &str, body: &Value) -> (u16, Value) {
    let (st, _, text) = post(s, path, body).await;
    (
        st,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

fn chunks(text: &str) -> (Vec<Value>, bool) {
    let data = sse_data(text);
    let done = data.last().is_some_and(|d| d == "[DONE]");
    let v = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (v, done)
}

/// `(event name, data)` pairs of an Anthropic SSE body.
fn anthropic_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("no event name in {e}"));
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["type"], name, "event name and type agree");
            (name.to_owned(), v)
        })
        .collect()
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

// ---------------------------------------------------------------------------------------
// OpenAI clients → Anthropic provider
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn chat_is_sent_in_anthropic_format_and_answered_in_openai_format() {
    let s = start();
    let body = json!({"model": MODEL, "user": "u-7", "stop": ["never-said"], "temperature": 0.3, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is deja?"}]});
    let (st, v) = post_json(&s, "/v1/chat/completions", &body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
    assert!(v["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock Claude answer to: What is deja?"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(v["usage"]["total_tokens"], 12);

    let reqs = s.claude.state.requests();
    let r = reqs.last().unwrap();
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.x_api_key.as_deref(), Some(KEY));
    assert_eq!(r.anthropic_version.as_deref(), Some("2023-06-01"));
    assert_eq!(r.authorization, None, "no bearer token to Anthropic");
    assert_eq!(
        r.body,
        json!({"model": "claude-sonnet-4-5-20250929", "max_tokens": 4096,
            "messages": [{"role": "user", "content": "What is deja?"}],
            "system": "Be brief.", "temperature": 0.3, "stop_sequences": ["never-said"],
            "metadata": {"user_id": "u-7"}})
    );
}

#[tokio::test]
async fn configured_version_and_default_max_tokens_are_sent() {
    let s = start();
    let (st, v) = post_json(
        &s,
        "/v1/chat/completions",
        &user(
            "claude-v/claude-3-5-haiku-20241022",
            json!("count one two three four five six seven eight"),
        ),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 7);
    let r = s.claude.state.requests().pop().unwrap();
    assert_eq!(r.anthropic_version.as_deref(), Some("2023-01-01"));
    assert_eq!(r.body["max_tokens"], 7);
}

#[tokio::test]
async fn streaming_becomes_openai_chunks_with_usage() {
    let s = start();
    let mut body = user(MODEL, json!("stream me a reply"));
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (st, hd, text) = post(&s, "/v1/chat/completions", &body).await;
    assert_eq!(st, 200, "{text}");
    assert!(hd["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (cs, done) = chunks(&text);
    assert!(done, "{text}");
    assert!(cs.len() > 4);
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = cs
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(content, "Mock Claude answer to: stream me a reply");
    let finish: Vec<&str> = cs
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(finish, vec!["stop"]);
    let last = cs.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 8);
    assert_eq!(last["usage"]["prompt_tokens"], 4);
    let r = s.claude.state.requests().pop().unwrap();
    assert_eq!(r.body["stream"], true);
    assert!(r.body.get("stream_options").is_none());

    // Without include_usage: no usage chunk.
    body.as_object_mut().unwrap().remove("stream_options");
    let (_, _, text) = post(&s, "/v1/chat/completions", &body).await;
    let (cs, done) = chunks(&text);
    assert!(done);
    assert!(cs.iter().all(|c| c.get("usage").is_none()));
}

#[tokio::test]
async fn tool_calls_round_trip_json_and_stream() {
    let s = start();
    let mut body = user(MODEL, json!("Use the tool for the weather in Paris"));
    body["tools"] = weather_tool();
    body["tool_choice"] = json!("auto");
    let (st, v) = post_json(&s, "/v1/chat/completions", &body).await;
    assert_eq!(st, 200, "{v}");
    let msg = &v["choices"][0]["message"];
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(msg["content"], "I will call get_weather.");
    let call = &msg["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "mock-city"}));
    let sent = s.claude.state.requests().pop().unwrap().body;
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(sent["tool_choice"], json!({"type": "auto"}));

    // The tool result goes back as a tool_result block the mock matches to its tool_use.
    let follow = json!({"model": MODEL, "tools": weather_tool(), "messages": [
        body["messages"][0],
        msg,
        {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}
    ]});
    let (st, v) = post_json(&s, "/v1/chat/completions", &follow).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock Claude answer to: [tool result: 18C and sunny]"
    );
    let sent = s.claude.state.requests().pop().unwrap().body;
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], call["id"]);

    // Streamed: argument deltas reassemble into the same arguments.
    body["stream"] = json!(true);
    let (_, _, text) = post(&s, "/v1/chat/completions", &body).await;
    let (cs, done) = chunks(&text);
    assert!(done, "{text}");
    let calls: Vec<&Value> = cs
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("toolu_mock_"));
    assert!(calls.iter().all(|c| c["index"] == 0));
    let args: String = calls
        .iter()
        .filter_map(|c| c.pointer("/function/arguments").and_then(Value::as_str))
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock-city"})
    );
    assert!(calls.len() > 2, "arguments arrive in several deltas");
    let finish: Vec<&str> = cs
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(finish, vec!["tool_calls"]);
}

#[tokio::test]
async fn images_are_sent_as_image_blocks() {
    let s = start();
    let body = user(
        MODEL,
        json!([
            {"type": "text", "text": "Describe these"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
        ]),
    );
    let (st, v) = post_json(&s, "/v1/chat/completions", &body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock Claude answer to: Describe these (with 2 images)"
    );
    let sent = s.claude.state.requests().pop().unwrap().body;
    assert_eq!(
        sent["messages"][0]["content"],
        json!([
            {"type": "text", "text": "Describe these"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgoAAAANSUhEUg=="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
        ])
    );
    // An unsupported image type is refused by Anthropic (400), and the refusal reaches the client.
    let bad = user(
        MODEL,
        json!([{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]),
    );
    let (st, v) = post_json(&s, "/v1/chat/completions", &bad).await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("media_type"),
        "{v}"
    );
}

#[tokio::test]
async fn anthropic_errors_map_to_openai_errors_with_status() {
    let s = start();
    for (code, status, kind) in [
        (429, 429, "rate_limit_error"),
        (529, 503, "overloaded_error"),
        (500, 500, "api_error"),
        (403, 403, "permission_error"),
        (404, 404, "not_found_error"),
    ] {
        let (st, v) = post_json(
            &s,
            "/v1/chat/completions",
            &user(MODEL, json!(format!("please mock-error:{code}"))),
        )
        .await;
        assert_eq!(st, status, "{v}");
        assert_eq!(v["error"]["type"], kind);
        assert_eq!(
            v["error"]["message"],
            format!("mock error {code} on demand")
        );
    }
    // An unknown model: Anthropic's 404.
    let (st, v) = post_json(
        &s,
        "/v1/chat/completions",
        &user("claude/gpt-4o", json!("hi")),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["type"], "not_found_error");
    assert_eq!(v["error"]["message"], "model: gpt-4o");
    // A wrong key: the mock's 401 authentication_error.
    let (st, v) = post_json(
        &s,
        "/v1/chat/completions",
        &user("claude-badkey/claude-sonnet-4-5-20250929", json!("hi")),
    )
    .await;
    assert_eq!(st, 401);
    assert_eq!(v["error"]["type"], "authentication_error");
    assert_eq!(v["error"]["message"], "invalid x-api-key");
    // Requests that cannot be expressed for Anthropic are refused before the call.
    let before = s.claude.state.requests().len();
    let mut n2 = user(MODEL, json!("x"));
    n2["n"] = json!(2);
    let (st, v) = post_json(&s, "/v1/chat/completions", &n2).await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["param"], "n");
    let (st, v) = post_json(&s, "/v1/embeddings", &json!({"model": MODEL, "input": "x"})).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "unsupported_endpoint");
    assert_eq!(s.claude.state.requests().len(), before);
}

#[tokio::test]
async fn an_error_event_mid_stream_ends_the_stream_with_an_error() {
    let s = start();
    s.claude
        .state
        .set_behaviour(Behaviour::DropMidStream { after_chunks: 4 });
    let mut body = user(MODEL, json!("a long streamed answer please"));
    body["stream"] = json!(true);
    let (st, _, text) = post(&s, "/v1/chat/completions", &body).await;
    assert_eq!(st, 200);
    let data = sse_data(&text);
    assert!(!data.iter().any(|d| d == "[DONE]"), "{text}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded_error: Overloaded"),
        "{last}"
    );
    // The text before the error did arrive.
    assert!(data.len() >= 3);
}

#[tokio::test]
async fn models_are_discovered_with_the_api_key() {
    let s = start();
    let ids = common::model_ids(&s.h.client, &s.h.url("")).await;
    assert!(
        ids.iter().any(|i| i == "claude/claude-sonnet-4-5-20250929"),
        "{ids:?}"
    );
    assert!(
        ids.iter().any(|i| i == "claude/claude-3-5-haiku-20241022"),
        "{ids:?}"
    );
    // A bare Claude model name now routes to the provider that lists it.
    let (st, v) = post_json(
        &s,
        "/v1/chat/completions",
        &user("claude-3-5-haiku-20241022", json!("hello")),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock Claude answer to: hello"
    );
}

// ---------------------------------------------------------------------------------------
// Anthropic clients → deja's /anthropic API → either provider
// ---------------------------------------------------------------------------------------

fn messages_body(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn anthropic_api_served_by_the_openai_mock() {
    let s = start();
    for path in ["/anthropic/v1/messages", "/v1/messages"] {
        let mut body = messages_body("mock/mock-model", "Hi from the Anthropic SDK");
        body["system"] = json!("Be nice.");
        let (st, hd, text) = post(&s, path, &body).await;
        assert_eq!(st, 200, "{text}");
        assert_eq!(hd["x-deja-provider"], "mock");
        assert_eq!(hd["x-deja-cache"], "bypass");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert!(v["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(
            v["content"],
            json!([{"type": "text", "text": "Mock answer to: Hi from the Anthropic SDK"}])
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["input_tokens"], 7);
        assert_eq!(v["usage"]["output_tokens"], 8);
        // The OpenAI mock received an OpenAI chat request.
        let sent = s.h.mock.state.requests().pop().unwrap();
        assert_eq!(sent.path, "/v1/chat/completions");
        assert_eq!(
            sent.body["messages"],
            json!([{"role": "system", "content": "Be nice."},
                   {"role": "user", "content": "Hi from the Anthropic SDK"}])
        );
        assert_eq!(sent.body["max_tokens"], 256);
    }
}

#[tokio::test]
async fn anthropic_api_to_an_anthropic_provider_sends_the_request_as_written() {
    let s = start();
    // Fields with no OpenAI counterpart survive: cache_control on a system block,
    // top_k, metadata; only the model becomes the provider's name.
    let body = json!({"model": MODEL, "max_tokens": 64, "top_k": 5,
        "metadata": {"user_id": "u-1"},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi as written"}]}]});
    let (st, v) = post_json(&s, "/anthropic/v1/messages", &body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["type"], "message");
    let sent = s.claude.state.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5-20250929");
    assert_eq!(sent.body, expected);
}

#[tokio::test]
async fn anthropic_api_streams_the_event_sequence() {
    let s = start();
    for model in ["mock/mock-model", MODEL] {
        let mut body = messages_body(model, "stream this");
        body["stream"] = json!(true);
        let (st, hd, text) = post(&s, "/anthropic/v1/messages", &body).await;
        assert_eq!(st, 200, "{text}");
        assert!(hd["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let evs = anthropic_events(&text);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
        assert_eq!(
            names[names.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"]
        );
        let text_out: String = evs
            .iter()
            .filter_map(|(_, e)| e.pointer("/delta/text").and_then(Value::as_str))
            .collect();
        let want = if model == MODEL {
            "Mock Claude answer to: stream this"
        } else {
            "Mock answer to: stream this"
        };
        assert_eq!(text_out, want);
        let delta = &evs[evs.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert!(
            delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{delta}"
        );
    }
}

#[tokio::test]
async fn anthropic_api_tool_use_through_both_providers() {
    let s = start();
    let tools = json!([{"name": "get_weather", "description": "Weather by city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    // (b) the Anthropic mock, through two translations.
    let mut body = messages_body(MODEL, "Use the tool: weather in Oslo?");
    body["tools"] = tools.clone();
    let (st, v) = post_json(&s, "/anthropic/v1/messages", &body).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["content"][0],
        json!({"type": "text", "text": "I will call get_weather."})
    );
    let tu = &v["content"][1];
    assert_eq!(tu["type"], "tool_use");
    assert_eq!(tu["name"], "get_weather");
    assert_eq!(tu["input"], json!({"city": "mock-city"}));
    // Send the result back, as the SDK would.
    let follow = json!({"model": MODEL, "max_tokens": 100, "tools": tools, "messages": [
        body["messages"][0],
        {"role": "assistant", "content": v["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu["id"], "content": "-2C"}]}
    ]});
    let (st, v2) = post_json(&s, "/anthropic/v1/messages", &follow).await;
    assert_eq!(st, 200, "{v2}");
    assert_eq!(
        v2["content"][0]["text"],
        "Mock Claude answer to: [tool result: -2C]"
    );

    // Streamed tool use: an input_json_delta sequence that parses to the same input.
    body["stream"] = json!(true);
    let (_, _, text) = post(&s, "/anthropic/v1/messages", &body).await;
    let evs = anthropic_events(&text);
    let start = evs
        .iter()
        .find(|(n, e)| n == "content_block_start" && e["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let idx = start.1["index"].clone();
    let json_str: String = evs
        .iter()
        .filter(|(_, e)| e["index"] == idx)
        .filter_map(|(_, e)| e.pointer("/delta/partial_json").and_then(Value::as_str))
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json_str).unwrap(),
        json!({"city": "mock-city"})
    );
    assert_eq!(evs[evs.len() - 2].1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn anthropic_api_errors_are_anthropic_shaped() {
    let s = start();
    let check = |st: u16, v: &Value, status: u16, kind: &str| {
        assert_eq!(st, status, "{v}");
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    };
    // Our own validation.
    let (st, v) = post_json(
        &s,
        "/anthropic/v1/messages",
        &json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    check(st, &v, 400, "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));
    let r =
        s.h.client
            .post(s.h.url("/anthropic/v1/messages"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
    let st = r.status().as_u16();
    check(st, &r.json().await.unwrap(), 400, "invalid_request_error");
    // Unknown provider.
    let (st, v) = post_json(&s, "/v1/messages", &messages_body("nope/x", "hi")).await;
    check(st, &v, 404, "not_found_error");
    // Upstream errors from either provider.
    let (st, v) = post_json(
        &s,
        "/anthropic/v1/messages",
        &messages_body(MODEL, "mock-error:429"),
    )
    .await;
    check(st, &v, 429, "rate_limit_error");
    assert_eq!(v["error"]["message"], "mock error 429 on demand");
    s.h.mock.state.set_behaviour(Behaviour::Fail {
        status: 401,
        body: r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#.into(),
    });
    let (st, v) = post_json(&s, "/anthropic/v1/messages", &messages_body("mock/m", "hi")).await;
    check(st, &v, 401, "authentication_error");
    assert_eq!(v["error"]["message"], "Incorrect API key provided");
    s.h.mock.state.set_behaviour(Behaviour::Normal);
    // Routes under /anthropic answer Anthropic-shaped 404/405.
    let r =
        s.h.client
            .get(s.h.url("/anthropic/v1/messages"))
            .send()
            .await
            .unwrap();
    let st = r.status().as_u16();
    check(st, &r.json().await.unwrap(), 405, "invalid_request_error");
    let (st, v) = post_json(&s, "/anthropic/v1/complete", &json!({})).await;
    check(st, &v, 404, "not_found_error");
    // A failure mid-stream arrives as an `error` event.
    s.claude
        .state
        .set_behaviour(Behaviour::DropMidStream { after_chunks: 4 });
    let mut body = messages_body(MODEL, "stream and fail");
    body["stream"] = json!(true);
    let (st, _, text) = post(&s, "/anthropic/v1/messages", &body).await;
    assert_eq!(st, 200);
    let evs = anthropic_events(&text);
    let (name, last) = evs.last().unwrap();
    assert_eq!(name, "error");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"),
        "{last}"
    );
    assert!(!evs.iter().any(|(n, _)| n == "message_stop"));
}

#[tokio::test]
async fn count_tokens_estimates() {
    let s = start();
    for path in [
        "/anthropic/v1/messages/count_tokens",
        "/v1/messages/count_tokens",
    ] {
        let (st, v) = post_json(
            &s,
            path,
            &json!({"model": MODEL, "system": "12345678", "messages": [{"role": "user", "content": "abcdefgh"}]}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v, json!({"input_tokens": 4}));
    }
    let (st, v) = post_json(&s, "/v1/messages/count_tokens", &json!({"model": MODEL})).await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn the_semantic_cache_serves_the_anthropic_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_with(Some(dir.path()));
    let body = messages_body(MODEL, "How do I rotate my API keys safely?");
    let (st, hd, first) = post(&s, "/anthropic/v1/messages", &body).await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(hd["x-deja-cache"], "miss");
    let calls = s.claude.state.requests().len();
    let cache = s.h.state().gateway.cache.clone().unwrap();
    for _ in 0..300 {
        if cache
            .counters
            .stored
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (st, hd, second) = post(&s, "/anthropic/v1/messages", &body).await;
    assert_eq!(st, 200);
    assert_eq!(hd["x-deja-cache"], "hit-exact");
    assert!(hd.get("x-deja-cache-entry").is_some());
    let (a, b): (Value, Value) = (
        serde_json::from_str(&first).unwrap(),
        serde_json::from_str(&second).unwrap(),
    );
    assert_eq!(a["content"], b["content"]);
    // The same question streamed is replayed from the cache as Anthropic events.
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    let (_, hd, text) = post(&s, "/anthropic/v1/messages", &sb).await;
    assert_eq!(hd["x-deja-cache"], "hit-exact");
    let evs = anthropic_events(&text);
    let t: String = evs
        .iter()
        .filter_map(|(_, e)| e.pointer("/delta/text").and_then(Value::as_str))
        .collect();
    assert_eq!(t, a["content"][0]["text"].as_str().unwrap());
    assert_eq!(evs.last().unwrap().0, "message_stop");
    assert_eq!(
        s.claude.state.requests().len(),
        calls,
        "served without a provider call"
    );
}

#[test]
fn anthropic_api_key_in_the_environment_adds_the_provider() {
    let env: std::collections::HashMap<String, String> = [
        ("ANTHROPIC_API_KEY", "sk-ant-env"),
        ("DEJA__DISCOVERY__PROBE_OLLAMA", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut c = deja::config::load(None, &env, &Default::default()).unwrap();
    let added = deja::config::discover_providers(&mut c, &env);
    assert_eq!(added, vec!["anthropic".to_string()]);
    let p = &c.providers["anthropic"];
    assert_eq!(p.kind, deja::providers::ProviderKind::Anthropic);
    assert_eq!(
        p.effective_base_url().unwrap(),
        "https://api.anthropic.com/v1"
    );
    assert_eq!(p.api_key.as_ref().unwrap().expose(), "sk-ant-env");
    // A config naming an anthropic provider without a key is refused.
    let toml_text = "[providers.claude]\nkind = \"anthropic\"\n";
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, toml_text.as_bytes()).unwrap();
    let e = deja::config::load(Some(f.path()), &Default::default(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("providers.claude.api_key"), "{e}");
}
