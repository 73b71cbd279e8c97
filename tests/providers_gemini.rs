//! Google Gemini and Vertex AI through real HTTP: client -> deja -> mock Google
//! (src/mock/gemini.rs), which checks paths, the x-goog-api-key header or the Bearer token
//! it issued, and the body shape; its token endpoint verifies the service-account JWT.

mod common;

use base64::Engine;
use common::{chat, sse_data, Harness};
use deja::http::Spawned;
use deja_mock::gemini::{GeminiMock, MockServiceAccount};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

const KEY_FILE: &str = include_str!("fixtures/vertex-test-service-account.json");
const PUBLIC_KEY: &str = include_str!("fixtures/vertex-test-service-account.pub.pem");
const UNRELATED_PUBLIC_KEY: &str = include_str!("fixtures/unrelated-test.pub.pem");
const PROJECT: &str = "deja-test-project";
const LOCATION: &str = "europe-west4";

struct Setup {
    mock: GeminiMock,
    gw: Option<Spawned>,
    client: reqwest::Client,
    _key_file: tempfile::NamedTempFile,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(g) = self.gw.take() {
            g.stop();
        }
    }
}

fn account(public_key_pem: &str) -> MockServiceAccount {
    MockServiceAccount {
        client_email: "deja-test@deja-test-project.iam.gserviceaccount.com".into(),
        private_key_id: "0123456789abcdef-test-only".into(),
        public_key_pem: public_key_pem.into(),
        project: PROJECT.into(),
        location: LOCATION.into(),
    }
}

/// The test key file with its `token_uri` pointing at the mock.
fn key_file(token_uri: &str) -> tempfile::NamedTempFile {
    let mut v: Value = serde_json::from_str(KEY_FILE).unwrap();
    v["token_uri"] = json!(token_uri);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(v.to_string().as_bytes()).unwrap();
    f
}

impl Setup {
    fn start() -> Self {
        Self::start_with(PUBLIC_KEY)
    }

    fn start_with(public_key_pem: &str) -> Self {
        let mock = GeminiMock::start("g-key", Some(account(public_key_pem))).unwrap();
        let kf = key_file(&mock.token_uri());
        let toml_text = format!(
            r#"
[providers.gem]
kind = "gemini"
base_url = "{gemini}"
api_key = "g-key"
timeout_secs = 5

[providers.gembad]
kind = "gemini"
base_url = "{gemini}"
api_key = "not-the-key"
discover_models = false
timeout_secs = 5

[providers.vx]
kind = "vertex"
base_url = "{vertex}"
location = "{LOCATION}"
credentials_file = "{path}"
models = ["gemini-2.0-flash", "text-embedding-005"]
timeout_secs = 5
"#,
            gemini = mock.gemini_base_url(),
            vertex = mock.vertex_base_url(),
            path = kf.path().display(),
        );
        let gw = Harness::gateway(&toml_text, None);
        Setup {
            mock,
            gw: Some(gw),
            client: reqwest::Client::new(),
            _key_file: kf,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.gw.as_ref().unwrap().url(), path)
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn chat_json(&self, body: Value) -> (u16, Value) {
        let r = self.post("/v1/chat/completions", body).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn stream(&self, mut body: Value) -> Vec<String> {
        body["stream"] = json!(true);
        let r = self.post("/v1/chat/completions", body).await;
        assert_eq!(r.status(), 200);
        sse_data(&r.text().await.unwrap())
    }
}

fn chunks(data: &[String]) -> Vec<Value> {
    data.iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The mock's embedding of a text of `len` bytes: ((len + 3i) % 11) / 10 - 0.5.
fn mock_vector(len: usize, dims: usize) -> Vec<f64> {
    (0..dims)
        .map(|i| ((len + i * 3) % 11) as f64 / 10.0 - 0.5)
        .collect()
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "additionalProperties": false,
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_chat_with_system_and_image() {
    let s = Setup::start();
    let body = json!({"model": "gem/gemini-2.0-flash", "temperature": 0.3, "max_tokens": 64,
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "describe this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}
    ]});
    let (status, v) = s.chat_json(body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: describe this");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["model"], "gemini-2.0-flash");
    // Mock usage: prompt = 2 words + 2 for the image, completion = 3 words.
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})
    );
    let rec = s.mock.state.requests();
    let r = rec.last().unwrap();
    assert_eq!(r.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(r.api_key.as_deref(), Some("g-key"));
    assert_eq!(r.authorization, None);
    assert_eq!(
        r.body["systemInstruction"]["parts"][0]["text"],
        "You are terse."
    );
    assert_eq!(
        r.body["contents"][0]["parts"][1]["inlineData"],
        json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(
        r.body["generationConfig"],
        json!({"temperature": 0.3, "maxOutputTokens": 64})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_streaming_with_usage() {
    let s = Setup::start();
    let mut body = chat("gem/gemini-2.0-flash", "hello there friend");
    body["stream_options"] = json!({"include_usage": true});
    let data = s.stream(body).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let cs = chunks(&data);
    assert!(cs.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(cs[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Echo: hello there friend");
    let finishes: Vec<&Value> = cs
        .iter()
        .filter_map(|c| c["choices"][0].get("finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, vec![&json!("stop")]);
    let last = cs.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
    );
    let rec = s.mock.state.requests();
    let r = rec.last().unwrap();
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    );
    assert_eq!(r.query, "alt=sse");
    // Without include_usage there is no usage chunk.
    let cs = chunks(&s.stream(chat("gem/gemini-2.0-flash", "again")).await);
    assert!(cs
        .iter()
        .all(|c| c.get("usage").is_none() && !c["choices"].as_array().unwrap().is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_tool_call_round_trip() {
    let s = Setup::start();
    let mut body = chat("gem/gemini-2.0-flash", "weather in Paris?");
    body["tools"] = weather_tools();
    body["tool_choice"] = json!("required");
    let (status, v) = s.chat_json(body.clone()).await;
    assert_eq!(status, 200, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "days": 1}));
    let rec = s.mock.state.requests();
    let sent = &rec.last().unwrap().body;
    assert_eq!(
        sent["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert!(sent["tools"][0]["functionDeclarations"][0]["parameters"]
        .get("additionalProperties")
        .is_none());

    // Second turn: the tool result goes back as a functionResponse, with the signature.
    let mut msgs = body["messages"].as_array().unwrap().clone();
    msgs.push(choice["message"].clone());
    msgs.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"temp_c\": 18}"}));
    body["messages"] = json!(msgs);
    body["tool_choice"] = json!("auto");
    let (status, v) = s.chat_json(body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Tool results: {\"temp_c\":18}"
    );
    let rec = s.mock.state.requests();
    let sent = &rec.last().unwrap().body;
    assert_eq!(sent["contents"][1]["role"], "model");
    assert_eq!(
        sent["contents"][1]["parts"][0]["thoughtSignature"],
        "c2lnLTE="
    );
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"temp_c": 18}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_streamed_tool_call() {
    let s = Setup::start();
    let mut body = chat("gem/gemini-2.0-flash", "weather?");
    body["tools"] = weather_tools();
    let cs = chunks(&s.stream(body).await);
    let tc = cs
        .iter()
        .find_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .unwrap();
    assert_eq!(tc[0]["index"], 0);
    assert_eq!(tc[0]["function"]["name"], "get_weather");
    assert!(tc[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(
        cs.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_finish_reasons_and_safety() {
    let s = Setup::start();
    let (_, v) = s.chat_json(chat("gem/gemini-2.0-flash", "block me")).await;
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    let (_, v) = s
        .chat_json(chat("gem/gemini-2.0-flash", "something unsafe"))
        .await;
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    let (_, v) = s
        .chat_json(chat("gem/gemini-2.0-flash", "cut me short"))
        .await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["choices"][0]["message"]["content"], "Partial");
    let mut body = chat("gem/gemini-2.0-flash", "two please");
    body["n"] = json!(2);
    let (_, v) = s.chat_json(body).await;
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert_eq!(v["choices"][1]["index"], 1);
    // A blocked prompt while streaming.
    let cs = chunks(&s.stream(chat("gem/gemini-2.0-flash", "block me")).await);
    assert_eq!(cs[0]["choices"][0]["finish_reason"], "content_filter");
}

// Error shapes: https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_errors_map_to_openai_errors() {
    let s = Setup::start();
    let (status, v) = s.chat_json(chat("gem/gemini-2.0-flash", "fail:429")).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "RESOURCE_EXHAUSTED");
    let (status, v) = s.chat_json(chat("gem/gemini-2.0-flash", "fail:503")).await;
    assert_eq!(status, 503);
    assert_eq!(v["error"]["code"], "UNAVAILABLE");
    let (status, v) = s.chat_json(chat("gembad/gemini-2.0-flash", "hi")).await;
    assert_eq!(status, 400);
    assert_eq!(
        v["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // deja refuses what it cannot translate, without calling Google.
    let before = s.mock.state.requests().len();
    let body = json!({"model": "gem/gemini-2.0-flash", "messages": [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "nope", "content": "r"}]});
    let (status, v) = s.chat_json(body).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "messages[1].tool_call_id");
    assert_eq!(s.mock.state.requests().len(), before);
    // An error event mid-stream arrives in-band.
    let data = s
        .stream(chat("gem/gemini-2.0-flash", "break stream now"))
        .await;
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"].as_str().unwrap().contains("503"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_embeddings_float_and_base64() {
    let s = Setup::start();
    let r = s
        .post(
            "/v1/embeddings",
            json!({"model": "gem/text-embedding-004", "input": ["a", "bbb"], "dimensions": 3}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-004");
    assert_eq!(v["data"][1]["embedding"], json!(mock_vector(3, 3)));
    let rec = s.mock.state.requests();
    let r = rec.last().unwrap();
    assert_eq!(
        r.path,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(r.body["requests"][1]["outputDimensionality"], 3);
    let v: Value = s
        .post("/v1/embeddings", json!({"model": "gem/text-embedding-004", "input": "bbb", "dimensions": 3, "encoding_format": "base64"}))
        .await
        .json()
        .await
        .unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = raw
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let expected: Vec<f32> = mock_vector(3, 3).into_iter().map(|x| x as f32).collect();
    assert_eq!(floats, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_models_are_discovered_across_pages() {
    let s = Setup::start();
    let ids = common::model_ids(&s.client, &s.url("")).await;
    for m in [
        "gem/gemini-2.0-flash",
        "gem/gemini-2.5-pro",
        "gem/text-embedding-004",
        "vx/gemini-2.0-flash",
    ] {
        assert!(ids.contains(&m.to_owned()), "{m} missing from {ids:?}");
    }
    let list_calls: Vec<String> = s
        .mock
        .state
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.query)
        .collect();
    assert!(
        list_calls.iter().any(|q| q.contains("pageToken=page-2")),
        "{list_calls:?}"
    );
}

// --- Vertex AI ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_chat_uses_the_regional_path_and_a_cached_token() {
    let s = Setup::start();
    for i in 0..3 {
        let (status, v) = s
            .chat_json(chat("vx/gemini-2.0-flash", &format!("hello {i}")))
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            format!("Echo: hello {i}")
        );
    }
    let rec = s.mock.state.requests();
    let r = rec.last().unwrap();
    assert_eq!(
        r.path,
        "/v1/projects/deja-test-project/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(r.authorization.as_deref(), Some("Bearer ya29.mock-1"));
    assert_eq!(r.api_key, None);
    // One token for all three requests.
    assert_eq!(s.mock.state.token_requests(), 1);
    assert_eq!(s.mock.state.tokens_issued(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_concurrent_requests_fetch_one_token() {
    let s = Setup::start();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = s.client.clone();
        let url = s.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .json(&chat("vx/gemini-2.0-flash", &format!("q{i}")))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(s.mock.state.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_token_is_refreshed_near_expiry() {
    let s = Setup::start();
    // Tokens living 2 s past deja's 300 s refresh margin: reused at once, refreshed after 2 s.
    s.mock
        .state
        .token_lifetime_secs
        .store(302, Ordering::SeqCst);
    let (st, _) = s.chat_json(chat("vx/gemini-2.0-flash", "one")).await;
    assert_eq!(st, 200);
    let (st, _) = s.chat_json(chat("vx/gemini-2.0-flash", "two")).await;
    assert_eq!(st, 200);
    assert_eq!(s.mock.state.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (st, _) = s.chat_json(chat("vx/gemini-2.0-flash", "three")).await;
    assert_eq!(st, 200);
    assert_eq!(s.mock.state.token_requests(), 2);
    let rec = s.mock.state.requests();
    assert_eq!(
        rec.last().unwrap().authorization.as_deref(),
        Some("Bearer ya29.mock-2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_refuses_an_assertion_signed_by_another_key() {
    let s = Setup::start_with(UNRELATED_PUBLIC_KEY);
    let (status, v) = s.chat_json(chat("vx/gemini-2.0-flash", "hi")).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "token_exchange_failed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid JWT Signature"),
        "{v}"
    );
    assert_eq!(s.mock.state.tokens_issued(), 0);
    // No generateContent call was made without a token.
    assert!(s
        .mock
        .state
        .requests()
        .iter()
        .all(|r| !r.path.contains(":generateContent")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_streaming_tools_and_embeddings() {
    let s = Setup::start();
    let mut body = chat("vx/gemini-2.0-flash", "stream it");
    body["stream_options"] = json!({"include_usage": true});
    let cs = chunks(&s.stream(body).await);
    let text: String = cs
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Echo: stream it");
    assert_eq!(cs.last().unwrap()["usage"]["completion_tokens"], 3);
    let rec = s.mock.state.requests();
    assert!(rec
        .last()
        .unwrap()
        .path
        .ends_with("gemini-2.0-flash:streamGenerateContent"));

    let mut body = chat("vx/gemini-2.0-flash", "weather?");
    body["tools"] = weather_tools();
    body["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    let (_, v) = s.chat_json(body).await;
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let rec = s.mock.state.requests();
    assert_eq!(
        rec.last().unwrap().body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"],
        json!(["get_weather"])
    );

    let r = s
        .post(
            "/v1/embeddings",
            json!({"model": "vx/text-embedding-005", "input": ["one two three", "four"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    let rec = s.mock.state.requests();
    let r = rec.last().unwrap();
    assert!(
        r.path
            .ends_with("/publishers/google/models/text-embedding-005:predict"),
        "{}",
        r.path
    );
    assert_eq!(
        r.body,
        json!({"instances": [{"content": "one two three"}, {"content": "four"}]})
    );
    // The same token served everything.
    assert_eq!(s.mock.state.token_requests(), 1);
}

#[test]
fn vertex_without_credentials_is_a_start_error() {
    let toml_text = r#"
[providers.vx]
kind = "vertex"
project = "p"
credentials_file = "/nonexistent/key.json"
"#;
    let cfg = common::config_from(toml_text, &[("DEJA__CACHE__ENABLED", "false")]);
    assert_eq!(
        cfg.providers["vx"].effective_base_url().as_deref(),
        Some("https://us-central1-aiplatform.googleapis.com/v1")
    );
    let err = match deja::http::spawn(cfg) {
        Ok(g) => {
            g.stop();
            panic!("a Vertex provider without a readable key file must not start")
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("/nonexistent/key.json"), "{err}");
}

#[test]
fn config_defaults_for_google_kinds() {
    let cfg = common::config_from(
        "[providers.g]\nkind = \"gemini\"\napi_key = \"k\"\n[providers.a]\nkind = \"azure\"\nresource = \"myres\"\napi_key = \"k\"\n[providers.v]\nkind = \"vertex\"\nlocation = \"global\"\n",
        &[("DEJA__CACHE__ENABLED", "false")],
    );
    assert_eq!(
        cfg.providers["g"].effective_base_url().as_deref(),
        Some("https://generativelanguage.googleapis.com/v1beta")
    );
    assert_eq!(
        cfg.providers["a"].effective_base_url().as_deref(),
        Some("https://myres.openai.azure.com")
    );
    assert_eq!(
        cfg.providers["v"].effective_base_url().as_deref(),
        Some("https://aiplatform.googleapis.com/v1")
    );
}
