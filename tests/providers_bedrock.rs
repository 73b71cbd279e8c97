//! AWS Bedrock through real HTTP: client -> gateway -> mock Bedrock Runtime, which
//! verifies each request's SigV4 signature and the Converse / InvokeModel shapes.

mod common;

use common::{config_from, sse_data};
use deja::http::Spawned;
use deja_mock::bedrock::{BedrockMock, BedrockMockSettings};
use serde_json::{json, Value};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

struct Setup {
    mock: BedrockMock,
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

fn provider_toml(base_url: &str, credentials: &str) -> String {
    format!(
        r#"
[providers.bedrock]
kind = "bedrock"
base_url = "{base_url}"
region = "us-east-1"
models = ["{MODEL}", "amazon.titan-embed-text-v2:0"]
timeout_secs = 5
{credentials}
"#
    )
}

fn start_with(credentials: &str) -> Setup {
    let mock = BedrockMock::start(BedrockMockSettings::default()).unwrap();
    let gw = common::Harness::gateway(&provider_toml(&mock.base_url(), credentials), None);
    Setup {
        mock,
        gw: Some(gw),
        client: reqwest::Client::new(),
    }
}

fn start() -> Setup {
    start_with(&format!(
        "aws_access_key_id = \"AKIDEXAMPLE\"\naws_secret_access_key = \"{SECRET}\""
    ))
}

impl Setup {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let url = format!("{}{path}", self.gw.as_ref().unwrap().url());
        self.client.post(url).json(&body).send().await.unwrap()
    }
}

fn chat(content: &str) -> Value {
    json!({"model": format!("bedrock/{MODEL}"), "messages": [{"role": "user", "content": content}]})
}

fn stream_text(text: &str) -> (String, Vec<Value>) {
    let chunks: Vec<Value> = sse_data(text)
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    (content, chunks)
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_is_signed_translated_and_answered() {
    let s = start();
    let resp = s
        .post(
            "/v1/chat/completions",
            json!({
                "model": format!("bedrock/{MODEL}"),
                "messages": [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "Hello Bedrock"}
                ],
                "max_tokens": 64, "temperature": 0.3
            }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL);
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock answer to: Hello Bedrock"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 5);

    let reqs = s.mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    // The model id is URL-encoded in the path (':' -> %3A) and was signed that way.
    assert_eq!(
        r.raw_path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(r.model_id, MODEL);
    assert!(r.headers["authorization"].starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    assert!(r.headers["authorization"].contains("/us-east-1/bedrock/aws4_request"));
    assert!(r.headers.contains_key("x-amz-date"));
    assert_eq!(
        r.body,
        json!({
            "messages": [{"role": "user", "content": [{"text": "Hello Bedrock"}]}],
            "system": [{"text": "Answer briefly."}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.3}
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_tokens_stop_maps_to_length() {
    let s = start();
    let mut body = chat("one two three four five six");
    body["max_tokens"] = json!(2);
    let v: Value = s
        .post("/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Mock answer");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_decodes_event_stream_frames() {
    let s = start();
    let mut body = chat("Stream this please");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = s.post("/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let (content, chunks) = stream_text(&text);
    assert_eq!(content, "Mock answer to: Stream this please");
    assert!(chunks
        .iter()
        .all(|c| c["model"] == MODEL && c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/finish_reason")
                .filter(|f| !f.is_null())
        })
        .collect();
    assert_eq!(finish, vec![&json!("stop")]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 6);
    let r = &s.mock.requests()[0];
    assert!(r.raw_path.ends_with("/converse-stream"));
    assert_eq!(r.headers["accept"], "application/vnd.amazon.eventstream");

    // Without include_usage there is no usage chunk.
    let mut body = chat("Stream this please");
    body["stream"] = json!(true);
    let text = s
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("usage"), "{text}");
}

fn tools_body(content: &str) -> Value {
    json!({
        "model": format!("bedrock/{MODEL}"),
        "messages": [{"role": "user", "content": content}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
        }}],
        "tool_choice": "required"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_and_tool_results_round_trip() {
    let s = start();
    let v: Value = s
        .post("/v1/chat/completions", tools_body("Weather in Paris?"))
        .await
        .json()
        .await
        .unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"query": "Weather in Paris?"}));
    let sent = &s.mock.requests()[0].body;
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"],
        json!(["query"])
    );

    // Second turn: the assistant's tool call and the tool's answer go back to Bedrock.
    let mut body = tools_body("Weather in Paris?");
    body["tool_choice"] = json!("auto");
    let msgs = body["messages"].as_array_mut().unwrap();
    msgs.push(json!({"role": "assistant", "content": null, "tool_calls": [call.clone()]}));
    msgs.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}));
    let v: Value = s
        .post("/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mock answer from tool result: 18C and sunny"
    );
    let sent = &s.mock.requests()[1].body;
    assert_eq!(sent["messages"][1]["content"][0]["toolUse"]["input"], args);
    assert_eq!(
        sent["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        call["id"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_tool_calls_arrive_as_openai_deltas() {
    let s = start();
    let mut body = tools_body("Weather in Rome?");
    body["stream"] = json!(true);
    let text = s
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let (_, chunks) = stream_text(&text);
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    assert_eq!(deltas[0]["id"], "tooluse_stream_1");
    assert_eq!(deltas[0]["function"]["name"], "get_weather");
    let args: String = deltas
        .iter()
        .filter_map(|d| d.pointer("/function/arguments").and_then(Value::as_str))
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"query": "Weather in Rome?"})
    );
    assert!(deltas.iter().all(|d| d["index"] == 0));
    assert!(text.contains("\"finish_reason\":\"tool_calls\""));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn images_go_inline_as_bytes() {
    let s = start();
    let body = json!({
        "model": format!("bedrock/{MODEL}"),
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}]
    });
    let resp = s.post("/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    let sent = &s.mock.requests()[0].body;
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
    // A remote URL cannot be sent to Bedrock: refused before any call.
    let body = json!({
        "model": format!("bedrock/{MODEL}"),
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]
    });
    let resp = s.post("/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("data:"));
    assert_eq!(s.mock.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_call_titan_once_per_input() {
    let s = start();
    let resp = s
        .post(
            "/v1/embeddings",
            json!({"model": "bedrock/amazon.titan-embed-text-v2:0", "input": ["first text", "the second text"], "dimensions": 256}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "amazon.titan-embed-text-v2:0");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 256);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    let mut reqs = s.mock.requests();
    reqs.sort_by(|a, b| {
        a.body["inputText"]
            .as_str()
            .cmp(&b.body["inputText"].as_str())
    });
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].raw_path,
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    );
    assert_eq!(
        reqs[0].body,
        json!({"inputText": "first text", "dimensions": 256})
    );
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    (status, v["error"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn bedrock_errors_keep_their_status() {
    let s = start();
    for (exception, status, kind) in [
        ("ThrottlingException", 429, "rate_limit_error"),
        ("AccessDeniedException", 403, "permission_error"),
        ("ModelTimeoutException", 408, "upstream_error"),
        ("ServiceUnavailableException", 503, "upstream_error"),
    ] {
        let (got, err) = error_of(
            s.post("/v1/chat/completions", chat(&format!("ERROR {exception}")))
                .await,
        )
        .await;
        assert_eq!(got, status, "{exception}");
        assert_eq!(err["code"], exception);
        assert_eq!(err["type"], kind);
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    // Unknown model: Bedrock's ResourceNotFoundException, 404.
    let body = json!({"model": "bedrock/missing-model-v1:0", "messages": [{"role": "user", "content": "x"}]});
    let (status, err) = error_of(s.post("/v1/chat/completions", body).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("ResourceNotFoundException"))
    );
    // No legacy completions on Bedrock: refused before any call.
    let before = s.mock.requests().len();
    let body = json!({"model": format!("bedrock/{MODEL}"), "prompt": "Say hi"});
    let (status, err) = error_of(s.post("/v1/completions", body).await).await;
    assert_eq!(status, 400);
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("chat/completions"));
    assert_eq!(s.mock.requests().len(), before);
    // A Titan input Bedrock refuses: ValidationException, 400.
    let body =
        json!({"model": "bedrock/amazon.titan-embed-text-v2:0", "input": "x", "dimensions": 100});
    let (status, err) = error_of(s.post("/v1/embeddings", body).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("ValidationException"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_refused_by_the_signature_check() {
    let s = start_with(
        "aws_access_key_id = \"AKIDEXAMPLE\"\naws_secret_access_key = \"not-the-secret\"",
    );
    let (status, err) = error_of(s.post("/v1/chat/completions", chat("hi")).await).await;
    assert_eq!(status, 403);
    assert_eq!(err["code"], "InvalidSignatureException");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("The request signature we calculated does not match"));
    // An unknown key id is refused too.
    let s = start_with(&format!(
        "aws_access_key_id = \"AKIAOTHER\"\naws_secret_access_key = \"{SECRET}\""
    ));
    let (status, err) = error_of(s.post("/v1/chat/completions", chat("hi")).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (403, Some("UnrecognizedClientException"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_tokens_are_sent_and_signed() {
    let s = start_with(&format!(
        "aws_access_key_id = \"AKIDEXAMPLE\"\naws_secret_access_key = \"{SECRET}\"\naws_session_token = \"FQoGZXIvYXdzEXAMPLE\""
    ));
    let resp = s.post("/v1/chat/completions", chat("hi")).await;
    assert_eq!(resp.status(), 200);
    let r = &s.mock.requests()[0];
    assert_eq!(r.headers["x-amz-security-token"], "FQoGZXIvYXdzEXAMPLE");
    assert!(r.headers["authorization"].contains("x-amz-security-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_exception_reaches_the_client_in_band() {
    let s = start();
    let mut body = chat("please STREAM_ERROR now");
    body["stream"] = json!(true);
    let text = s
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&text);
    assert!(!text.contains("[DONE]"), "{text}");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("modelStreamErrorException"));
    let (content, _) = stream_text(
        &data[..data.len() - 1]
            .iter()
            .map(|d| format!("data: {d}\n\n"))
            .collect::<String>(),
    );
    assert_eq!(content, "Mock answer ");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_and_region_come_from_the_aws_environment() {
    let mock = BedrockMock::start(BedrockMockSettings::default()).unwrap();
    let toml = format!(
        "[providers.bedrock]\nkind = \"bedrock\"\nbase_url = \"{}\"\nmodels = [\"{MODEL}\"]\ntimeout_secs = 5\n",
        mock.base_url()
    );
    let cfg = config_from(
        &toml,
        &[
            ("DEJA__CACHE__ENABLED", "false"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
    );
    let gw = deja::http::spawn(cfg).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&chat("from env"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    gw.stop();
    assert_eq!(status, 200);
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn a_bedrock_provider_without_credentials_is_a_config_error() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut f,
        b"[providers.bedrock]\nkind = \"bedrock\"\nregion = \"us-east-1\"\n",
    )
    .unwrap();
    let err =
        deja::config::load(Some(f.path()), &Default::default(), &Default::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("providers.bedrock.aws_access_key_id") && msg.contains("AWS_ACCESS_KEY_ID"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn models_are_discovered_with_a_signed_list_foundation_models() {
    let mock = BedrockMock::start(BedrockMockSettings::default()).unwrap();
    let toml = format!(
        "[providers.bedrock]\nkind = \"bedrock\"\nbase_url = \"{}\"\nregion = \"us-east-1\"\n\
         aws_access_key_id = \"AKIDEXAMPLE\"\naws_secret_access_key = \"{SECRET}\"\n\
         models = [\"us.anthropic.claude-3-7-sonnet-20250219-v1:0\"]\ntimeout_secs = 5\n",
        mock.base_url()
    );
    let gw = common::Harness::gateway(&toml, None);
    let client = reqwest::Client::new();
    let ids = common::model_ids(&client, &gw.url()).await;
    // On-demand models from the signed list, plus the configured inference profile;
    // the profile-only foundation model is left out.
    assert!(ids.contains(&format!("bedrock/{MODEL}")), "{ids:?}");
    assert!(
        ids.contains(&"bedrock/amazon.titan-embed-text-v2:0".to_owned()),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"bedrock/us.anthropic.claude-3-7-sonnet-20250219-v1:0".to_owned()),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&"bedrock/anthropic.claude-3-7-sonnet-20250219-v1:0".to_owned()),
        "{ids:?}"
    );
    // A discovered model routes by its bare name.
    let resp = client
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "bare name"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    gw.stop();
    assert_eq!(status, 200);
}
