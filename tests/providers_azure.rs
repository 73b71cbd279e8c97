//! Azure OpenAI through real HTTP: client -> deja -> mock Azure resource (src/mock/azure.rs),
//! which checks the deployment path, the api-version query and the api-key / bearer header.

mod common;

use common::{chat, sse_data, Harness};
use deja::http::Spawned;
use deja_mock::azure::AzureMock;
use serde_json::{json, Value};

struct Setup {
    mock: AzureMock,
    gw: Option<Spawned>,
    client: reqwest::Client,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(g) = self.gw.take() {
            g.stop();
        }
    }
}

impl Setup {
    fn start(extra: &str) -> Self {
        let mock = AzureMock::start(
            "az-key",
            Some("entra-token"),
            &[
                ("my-4o-mini", "gpt-4o-mini"),
                ("emb-small", "text-embedding-3-small"),
            ],
        )
        .unwrap();
        let toml_text = format!(
            r#"
[providers.az]
kind = "azure"
base_url = "{ep}"
api_key = "az-key"
timeout_secs = 5
deployments = {{ "gpt-4o-mini" = "my-4o-mini", "text-embedding-3-small" = "emb-small" }}

[providers.azbearer]
kind = "azure"
base_url = "{ep}/"
api_key = "entra-token"
auth = "bearer"
api_version = "2025-01-01-preview"
timeout_secs = 5
deployments = {{ "gpt-4o-mini" = "my-4o-mini" }}
{extra}
"#,
            ep = mock.endpoint()
        );
        let gw = Harness::gateway(&toml_text, None);
        Setup {
            mock,
            gw: Some(gw),
            client: reqwest::Client::new(),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_goes_to_the_mapped_deployment_with_api_key_and_version() {
    let s = Setup::start("");
    let r = s
        .post("/v1/chat/completions", chat("az/gpt-4o-mini", "hi there"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-deja-provider"], "az");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: hi there");
    assert_eq!(v["model"], "gpt-4o-mini");
    // Azure's extra fields pass through.
    assert_eq!(
        v["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"],
        false
    );
    let rec = s.mock.state.requests();
    let last = rec.last().unwrap();
    assert_eq!(last.deployment, "my-4o-mini");
    assert_eq!(last.operation, "chat/completions");
    assert_eq!(last.query, "api-version=2024-10-21");
    assert_eq!(last.api_key.as_deref(), Some("az-key"));
    assert_eq!(last.authorization, None);
    assert_eq!(last.body["messages"][0]["content"], "hi there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_auth_and_configured_api_version() {
    let s = Setup::start("");
    let r = s
        .post("/v1/chat/completions", chat("azbearer/gpt-4o-mini", "yo"))
        .await;
    assert_eq!(r.status(), 200);
    let rec = s.mock.state.requests();
    let last = rec.last().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer entra-token"));
    assert_eq!(last.api_key, None);
    assert_eq!(last.query, "api-version=2025-01-01-preview");
    assert_eq!(last.deployment, "my-4o-mini");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_passes_azure_chunks_and_usage() {
    let s = Setup::start("");
    let mut body = chat("az/gpt-4o-mini", "stream me please");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = s.post("/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    // The prompt-filter event with empty choices comes first, as Azure sends it.
    assert_eq!(chunks[0]["choices"], json!([]));
    assert!(chunks[0]["prompt_filter_results"].is_array());
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Echo: stream me please");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 15);
    let rec = s.mock.state.requests();
    assert_eq!(rec.last().unwrap().body["stream"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_come_back_as_tool_calls() {
    let s = Setup::start("");
    let mut body = chat("az/gpt-4o-mini", "weather?");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let v: Value = s
        .post("/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_use_the_embeddings_path() {
    let s = Setup::start("");
    let r = s
        .post(
            "/v1/embeddings",
            json!({"model": "az/text-embedding-3-small", "input": ["abc", "de"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["embedding"][0], 2.0); // the mock's first value: the text's length
    let rec = s.mock.state.requests();
    let last = rec.last().unwrap();
    assert_eq!(last.deployment, "emb-small");
    assert_eq!(last.operation, "embeddings");
}

// Error payloads from https://learn.microsoft.com/en-us/azure/ai-services/openai/concepts/content-filter
// and the REST reference's error responses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_errors_keep_their_status_and_code() {
    let s = Setup::start(
        r#"
[providers.azbad]
kind = "azure"
base_url = "http://127.0.0.1:9"
api_key = "wrong"
timeout_secs = 5
"#,
    );
    // Content filter: 400 with code content_filter and a type added.
    let r = s
        .post(
            "/v1/chat/completions",
            chat("az/gpt-4o-mini", "please filter me"),
        )
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "content_filter");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(
        v["error"]["innererror"]["code"],
        "ResponsibleAIPolicyViolation"
    );
    // An unmapped model is used as the deployment name; the mock has no such deployment.
    let r = s.post("/v1/chat/completions", chat("az/gpt-4o", "x")).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "DeploymentNotFound");
    assert_eq!(s.mock.state.requests().last().unwrap().deployment, "gpt-4o");
    // Unreachable resource -> 502 with deja's code.
    let r = s
        .post("/v1/chat/completions", chat("azbad/gpt-4o", "x"))
        .await;
    assert_eq!(r.status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_and_unknown_api_version() {
    let mock = AzureMock::start("az-key", None, &[("d", "gpt-4o-mini")]).unwrap();
    let toml_text = format!(
        r#"
[providers.k]
kind = "azure"
base_url = "{ep}"
api_key = "not-the-key"
timeout_secs = 5
[providers.v]
kind = "azure"
base_url = "{ep}"
api_key = "az-key"
api_version = "1999-01-01"
timeout_secs = 5
"#,
        ep = mock.endpoint()
    );
    let gw = Harness::gateway(&toml_text, None);
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&chat("k/d", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Access denied"));
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&chat("v/d", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        mock.state.requests().last().unwrap().query,
        "api-version=1999-01-01"
    );
    gw.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_the_mapped_deployments() {
    let s = Setup::start("");
    let ids = common::model_ids(&s.client, &s.url("")).await;
    assert!(ids.contains(&"az/gpt-4o-mini".to_owned()), "{ids:?}");
    assert!(
        ids.contains(&"az/text-embedding-3-small".to_owned()),
        "{ids:?}"
    );
    assert!(ids.contains(&"azbearer/gpt-4o-mini".to_owned()), "{ids:?}");
}
