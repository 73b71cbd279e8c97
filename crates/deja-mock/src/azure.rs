//! A mock Azure OpenAI resource for tests: it serves
//! `POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}` only for
//! its known deployments, only with a supported `api-version` query parameter, and only with
//! the right `api-key` header (or `Authorization: Bearer` token), answering as Azure does:
//! OpenAI bodies plus `prompt_filter_results` / `content_filter_results`, and Azure's error
//! bodies (content filter, unknown deployment, bad key, unknown api-version).
//!
//! Shapes follow <https://learn.microsoft.com/en-us/azure/ai-services/openai/reference> and
//! <https://learn.microsoft.com/en-us/azure/ai-services/openai/concepts/content-filter>.

use super::runner::Running;
use super::Recorder;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// API versions the mock accepts (GA and preview data-plane versions).
pub const API_VERSIONS: &[&str] = &[
    "2024-06-01",
    "2024-10-21",
    "2025-01-01-preview",
    "2025-04-01-preview",
];

/// A request as the mock saw it.
#[derive(Debug, Clone)]
pub struct AzureRecorded {
    pub deployment: String,
    pub operation: String,
    pub query: String,
    pub api_key: Option<String>,
    pub authorization: Option<String>,
    pub body: Value,
}

pub struct AzureMockState {
    /// Accepted `api-key` value.
    pub api_key: String,
    /// Accepted bearer token, if any.
    pub bearer: Option<String>,
    /// Deployment name -> the model it runs.
    pub deployments: BTreeMap<String, String>,
    requests: Recorder<AzureRecorded>,
}

impl AzureMockState {
    /// Accepting `api_key` (and `bearer`, if given) for `deployments` (name, model).
    pub fn new(api_key: &str, bearer: Option<&str>, deployments: &[(&str, &str)]) -> Self {
        AzureMockState {
            api_key: api_key.to_owned(),
            bearer: bearer.map(str::to_owned),
            deployments: deployments
                .iter()
                .map(|(d, m)| (d.to_string(), m.to_string()))
                .collect(),
            requests: Recorder::default(),
        }
    }

    pub fn requests(&self) -> Vec<AzureRecorded> {
        self.requests.all()
    }
}

pub struct AzureMock {
    pub state: Arc<AzureMockState>,
    server: Running,
}

impl AzureMock {
    pub fn start(
        api_key: &str,
        bearer: Option<&str>,
        deployments: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        let state = Arc::new(AzureMockState::new(api_key, bearer, deployments));
        let st = state.clone();
        let server = Running::start(move |listener| server(listener, st))?;
        Ok(AzureMock { state, server })
    }

    /// The resource endpoint, as `AZURE_OPENAI_ENDPOINT` gives it.
    pub fn endpoint(&self) -> String {
        self.server.url()
    }
}

/// Serve the mock on `listener` (inside an actix System) until stopped: `deja-mock
/// --format azure` runs it.
pub fn server(
    listener: std::net::TcpListener,
    state: Arc<AzureMockState>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/openai/deployments/{deployment}/{operation:.*}",
            web::post().to(handle),
        )
    })
    .workers(1)
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

fn azure_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({"error": {"code": code, "message": message}}))
}

fn safe_filters() -> Value {
    json!({
        "hate": {"filtered": false, "severity": "safe"},
        "self_harm": {"filtered": false, "severity": "safe"},
        "sexual": {"filtered": false, "severity": "safe"},
        "violence": {"filtered": false, "severity": "safe"}
    })
}

fn last_user_text(body: &Value) -> String {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

async fn handle(
    state: web::Data<Arc<AzureMockState>>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: Bytes,
) -> HttpResponse {
    let (deployment, operation) = path.into_inner();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return azure_error(400, "invalid_request", &format!("Invalid JSON: {e}")),
    };
    state.requests.push(AzureRecorded {
        deployment: deployment.clone(),
        operation: operation.clone(),
        query: req.query_string().to_owned(),
        api_key: header("api-key"),
        authorization: header("authorization"),
        body: body.clone(),
    });
    // Azure answers an unknown or missing api-version with a bare 404.
    let version = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.into_owned());
    if !version
        .as_deref()
        .is_some_and(|v| API_VERSIONS.contains(&v))
    {
        return azure_error(404, "404", "Resource not found");
    }
    let key_ok = header("api-key").as_deref() == Some(state.api_key.as_str());
    let bearer_ok = state.bearer.as_ref().is_some_and(|t| {
        header("authorization").as_deref() == Some(format!("Bearer {t}").as_str())
    });
    if !key_ok && !bearer_ok {
        return azure_error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.");
    }
    let Some(model) = state.deployments.get(&deployment).cloned() else {
        return azure_error(404, "DeploymentNotFound", "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.");
    };
    match operation.as_str() {
        "chat/completions" => chat(&body, &model),
        "embeddings" => embeddings(&body, &model),
        "completions" => {
            let prompt = body.get("prompt").and_then(Value::as_str).unwrap_or("");
            HttpResponse::Ok().json(json!({
                "id": "cmpl-azure-1", "object": "text_completion", "created": 1_700_000_000, "model": model,
                "choices": [{"text": format!("Echo: {prompt}"), "index": 0, "logprobs": null, "finish_reason": "stop",
                    "content_filter_results": safe_filters()}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
            }))
        }
        _ => azure_error(404, "404", "Resource not found"),
    }
}

fn chat(body: &Value, model: &str) -> HttpResponse {
    let text = last_user_text(body);
    if text.contains("filter me") {
        // https://learn.microsoft.com/en-us/azure/ai-services/openai/concepts/content-filter
        return HttpResponse::BadRequest().json(json!({"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
            "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                "hate": {"filtered": false, "severity": "safe"},
                "self_harm": {"filtered": false, "severity": "safe"},
                "sexual": {"filtered": false, "severity": "safe"},
                "violence": {"filtered": true, "severity": "high"}}}
        }}));
    }
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty());
    let after_tool = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("tool");
    let call = tools
        .filter(|_| !after_tool && body.get("tool_choice").and_then(Value::as_str) != Some("none"))
        .and_then(|t| t[0].pointer("/function/name").and_then(Value::as_str))
        .map(|name| json!([{"id": "call_azure_1", "type": "function", "function": {"name": name, "arguments": "{\"city\":\"Paris\"}"}}]));
    let (content, finish) = match (&call, text.contains("cut me")) {
        (Some(_), _) => (Value::Null, "tool_calls"),
        (None, true) => (json!("Partial"), "length"),
        (None, false) => (json!(format!("Echo: {text}")), "stop"),
    };
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    if !stream {
        let mut message = json!({"role": "assistant", "content": content});
        if let Some(c) = &call {
            message["tool_calls"] = c.clone();
        }
        return HttpResponse::Ok().json(json!({
            "id": "chatcmpl-AZ1", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "system_fingerprint": "fp_azure",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": safe_filters()}],
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": null, "message": message,
                "content_filter_results": safe_filters()}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
        }));
    }
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    // Azure's first streamed event carries only the prompt filter results.
    let mut events = vec![
        json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": safe_filters()}]}),
    ];
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-AZ2", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "system_fingerprint": "fp_azure",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null,
                "content_filter_results": {}}]})
    };
    events.push(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    ));
    match (&call, content.as_str()) {
        (Some(c), _) => events.push(chunk(json!({"tool_calls": [{"index": 0, "id": c[0]["id"], "type": "function",
            "function": {"name": c[0]["function"]["name"], "arguments": c[0]["function"]["arguments"]}}]}), Value::Null)),
        (None, Some(t)) => {
            for w in t.split_inclusive(' ') {
                events.push(chunk(json!({"content": w}), Value::Null));
            }
        }
        _ => {}
    }
    events.push(chunk(json!({}), json!(finish)));
    if include_usage {
        events.push(json!({"id": "chatcmpl-AZ2", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}}));
    }
    let mut out = String::new();
    for e in events {
        out.push_str(&format!("data: {e}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .body(out)
}

fn embeddings(body: &Value, model: &str) -> HttpResponse {
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        _ => return azure_error(400, "invalid_request", "'input' is required"),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"object": "embedding", "index": i, "embedding": [s.len() as f64, 0.5, -0.25]}))
        .collect();
    HttpResponse::Ok().json(json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": inputs.len(), "total_tokens": inputs.len()}}))
}
