//! Cohere v2 through real HTTP: client -> gateway -> mock Cohere API, which checks the
//! bearer key and the v2 request shapes.

mod common;

use common::sse_data;
use deja::http::Spawned;
use deja_mock::cohere::{CohereMock, CohereMockSettings};
use serde_json::{json, Value};

const MODEL: &str = "command-a-03-2025";

struct Setup {
    mock: CohereMock,
    gw: Option<Spawned>,
    client: reqwest::Client,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(gw) = self.gw.take() {
            gw.stop();
        }
    }
}

fn start_with_key(key: &str) -> Setup {
    let mock = CohereMock::start(CohereMockSettings::default()).unwrap();
    let toml = format!(
        "[providers.cohere]\nkind = \"cohere\"\nbase_url = \"{}\"\napi_key = \"{key}\"\ntimeout_secs = 5\n",
        mock.base_url()
    );
    let gw = common::Harness::gateway(&toml, None);
    Setup {
        mock,
        gw: Some(gw),
        client: reqwest::Client::new(),
    }
}

fn start() -> Setup {
    start_with_key("co-test-key")
}

impl Setup {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let url = format!("{}{path}", self.gw.as_ref().unwrap().url());
        self.client.post(url).json(&body).send().await.unwrap()
    }
}

fn chat(content: &str) -> Value {
    json!({"model": format!("cohere/{MODEL}"), "messages": [{"role": "user", "content": content}]})
}

fn chunks(text: &str) -> Vec<Value> {
    sse_data(text)
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_is_translated_and_answered() {
    let s = start();
    let resp = s
        .post(
            "/v1/chat/completions",
            json!({
                "model": format!("cohere/{MODEL}"),
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello Cohere"}],
                "top_p": 0.9, "stop": "END", "max_tokens": 100
            }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], MODEL);
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock answer to: Hello Cohere"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // usage.tokens (what the model saw) wins over billed_units.
    assert_eq!(v["usage"]["prompt_tokens"], 204);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    let r = &s.mock.requests()[0];
    assert_eq!(r.path, "/v2/chat");
    assert_eq!(r.authorization.as_deref(), Some("Bearer co-test-key"));
    assert_eq!(
        r.body,
        json!({
            "model": MODEL,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello Cohere"}],
            "stream": false, "max_tokens": 100, "p": 0.9, "stop_sequences": ["END"]
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_translates_cohere_events() {
    let s = start();
    let mut body = chat("Stream it");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = s
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let c = chunks(&text);
    let content: String = c
        .iter()
        .filter_map(|x| {
            x.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(content, "Mock answer to: Stream it");
    assert!(c.iter().all(|x| x["model"] == MODEL));
    assert_eq!(c[0]["id"], "chatcmpl-c14c80c3-18eb-4519-9460-6c92edd8cfb4");
    assert!(text.contains("\"finish_reason\":\"stop\""));
    assert_eq!(c.last().unwrap()["usage"]["completion_tokens"], 5);
    assert_eq!(s.mock.requests()[0].body["stream"], true);
}

fn tools_body(content: &str) -> Value {
    json!({
        "model": format!("cohere/{MODEL}"),
        "messages": [{"role": "user", "content": content}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_round_trip() {
    let s = start();
    let v: Value = s
        .post("/v1/chat/completions", tools_body("Weather in Toronto?"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = v["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"query": "Weather in Toronto?"}));

    let mut body = tools_body("Weather in Toronto?");
    let msgs = body["messages"].as_array_mut().unwrap();
    msgs.push(json!({"role": "assistant", "content": null, "tool_calls": [call.clone()]}));
    msgs.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "-2C, snow"}));
    let v: Value = s
        .post("/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock answer from tool result: -2C, snow"
    );
    let sent = &s.mock.requests()[1].body;
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], call["id"]);
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": call["id"], "content": "-2C, snow"})
    );

    // Streamed tool calls.
    let mut body = tools_body("Weather in Oslo?");
    body["stream"] = json!(true);
    let text = s
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let c = chunks(&text);
    let deltas: Vec<&Value> = c
        .iter()
        .filter_map(|x| x.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    assert!(deltas[0]["id"]
        .as_str()
        .unwrap()
        .starts_with("get_weather_"));
    let args: String = deltas
        .iter()
        .filter_map(|d| d.pointer("/function/arguments").and_then(Value::as_str))
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"query": "Weather in Oslo?"})
    );
    assert!(text.contains("\"finish_reason\":\"tool_calls\""));

    // tool_choice "none" reaches Cohere as NONE and the model answers in text.
    let mut body = tools_body("No tools please");
    body["tool_choice"] = json!("none");
    let v: Value = s
        .post("/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock answer to: No tools please"
    );
    assert_eq!(
        s.mock.requests().last().unwrap().body["tool_choice"],
        "NONE"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_use_v2_embed() {
    let s = start();
    let resp = s
        .post(
            "/v1/embeddings",
            json!({"model": "cohere/embed-v4.0", "input": ["alpha beta", "gamma"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "embed-v4.0");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 1536);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let r = &s.mock.requests()[0];
    assert_eq!(r.path, "/v2/embed");
    assert_eq!(
        r.body,
        json!({"model": "embed-v4.0", "texts": ["alpha beta", "gamma"], "input_type": "search_document", "embedding_types": ["float"]})
    );
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    (status, v["error"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_keep_their_status() {
    let s = start();
    let (status, err) = error_of(s.post("/v1/chat/completions", chat("ERROR 429")).await).await;
    assert_eq!(status, 429);
    assert_eq!(err["type"], "rate_limit_error");
    assert!(err["message"].as_str().unwrap().contains("Trial key"));
    let (status, _) = error_of(s.post("/v1/chat/completions", chat("ERROR 500")).await).await;
    assert_eq!(status, 500);
    let body =
        json!({"model": "cohere/command-nope", "messages": [{"role": "user", "content": "x"}]});
    let (status, err) = error_of(s.post("/v1/chat/completions", body).await).await;
    assert_eq!(status, 404);
    assert!(err["message"].as_str().unwrap().contains("command-nope"));

    // No legacy completions on Cohere v2.
    let body = json!({"model": format!("cohere/{MODEL}"), "prompt": "Say hi"});
    let (status, err) = error_of(s.post("/v1/completions", body).await).await;
    assert_eq!(status, 400);
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("chat/completions"));

    // A wrong key: Cohere's 401 reaches the client as a 401.
    let s = start_with_key("co-wrong");
    let (status, err) = error_of(s.post("/v1/chat/completions", chat("hi")).await).await;
    assert_eq!(status, 401);
    assert_eq!(err["message"], "invalid api token");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_ending_in_error_is_reported_in_band() {
    let s = start();
    let mut body = chat("STREAM_ERROR now");
    body["stream"] = json!(true);
    let text = s
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("[DONE]"), "{text}");
    let data = sse_data(&text);
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(last["error"]["message"].as_str().unwrap().contains("ERROR"));
}

#[tokio::test(flavor = "multi_thread")]
async fn models_are_discovered_from_v1_models() {
    let s = start();
    let ids = common::model_ids(&s.client, &s.gw.as_ref().unwrap().url()).await;
    assert!(ids.contains(&format!("cohere/{MODEL}")), "{ids:?}");
    assert!(ids.contains(&"cohere/embed-v4.0".to_owned()), "{ids:?}");
}

#[test]
fn co_api_key_alone_configures_cohere() {
    // What `deja serve` does with no provider configured.
    let mut cfg = common::config_from("", &[]);
    let env = [("CO_API_KEY".to_owned(), "co-from-env".to_owned())]
        .into_iter()
        .collect();
    assert_eq!(
        deja::config::discover_providers(&mut cfg, &env),
        vec!["cohere"]
    );
    let p = &cfg.providers["cohere"];
    assert_eq!(p.kind, deja::providers::ProviderKind::Cohere);
    assert_eq!(
        p.effective_base_url().as_deref(),
        Some("https://api.cohere.com")
    );
    assert_eq!(p.all_keys()[0].key.expose(), "co-from-env");
}
