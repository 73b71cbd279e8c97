//! AWS Bedrock: the Converse and ConverseStream APIs (chat, tools, images), Titan text
//! embeddings through InvokeModel, SigV4 signing with the `aws-sigv4` crate and the binary
//! event-stream framing of ConverseStream decoded with `aws-smithy-eventstream`.
//!
//! References:
//! - Converse: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>
//! - ConverseStream: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>
//! - Stream events: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStreamOutput.html>
//! - Titan embeddings V2: <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>
//! - SigV4: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>
//!
//! `list_models` asks ListFoundationModels (signed, on the control-plane host
//! `bedrock.{region}.amazonaws.com`; with a custom `base_url`, on that same base) for the
//! models invocable on demand, and adds the configured `models` (inference profiles such
//! as `us.anthropic...` are not in that list: configure them).
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListFoundationModels.html>

use super::chat::{ChatChunk, ChatResponse, ChunkDelta};
use super::native_common::{
    content_text, finish_reply, invalid_request, now_secs, parse_data_url, provider_message,
    stop_sequences, upstream, ChunkBuilder,
};
use super::stream::{chunk_stream, ChunkHook, EventStreamFraming, HookError};
use super::{
    ChunkStream, Endpoint, Lease, PoolError, ProviderAdapter, ProviderError, ProviderReply,
    ProviderRequest,
};
use crate::config::{ProviderConfig, Secret};
use aws_smithy_types::event_stream::Message;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

/// How many Titan calls one embeddings request runs at once.
const EMBED_CONCURRENCY: usize = 8;

/// The SigV4 service name Bedrock Runtime signs with.
pub const SIGNING_SERVICE: &str = "bedrock";

/// Static AWS credentials.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request: {0}")]
pub struct SigningError(String);

/// SigV4-sign a request with `aws-sigv4` (headers mode, double-encoded canonical path
/// as every service but S3 expects) and return the headers to add: `authorization`,
/// `x-amz-date` and, with a session token, `x-amz-security-token`. `url` must already be
/// percent-encoded as it is sent; `headers` are the ones to sign besides `host` (taken
/// from `url` unless given).
#[allow(clippy::too_many_arguments)]
pub fn sign_headers(
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, SigningError> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(
            creds.access_key_id.expose(),
            creds.secret_access_key.expose(),
            creds.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "deja-config",
        )
        .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SigningError(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SigningError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SigningError(e.to_string()))?
        .into_parts();
    let (out, _query) = instructions.into_parts();
    Ok(out
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

/// A model id as a URI path segment, encoded the way the AWS SDKs do (RFC 3986
/// unreserved characters kept, everything else `%XX`: `:` becomes `%3A`, `/` in
/// inference-profile ARNs `%2F`).
pub fn encode_model_id(id: &str) -> String {
    let mut s = String::with_capacity(id.len() * 3);
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[derive(Debug, Clone)]
pub struct BedrockAdapter {
    region: Arc<str>,
    creds: Arc<AwsCredentials>,
    models: Arc<[String]>,
}

impl BedrockAdapter {
    pub fn new(id: &str, cfg: &ProviderConfig) -> Result<Self, PoolError> {
        let b = cfg.bedrock().cloned().unwrap_or_default();
        b.validate().map_err(|(field, message)| PoolError::Build {
            provider: id.to_owned(),
            message: format!("{field}: {message}"),
        })?;
        let (Some(region), Some(access_key_id), Some(secret_access_key)) =
            (b.region, b.aws_access_key_id, b.aws_secret_access_key)
        else {
            return Err(PoolError::Build {
                provider: id.to_owned(),
                message: "missing region or credentials".into(),
            });
        };
        Ok(BedrockAdapter {
            region: region.into(),
            creds: Arc::new(AwsCredentials {
                access_key_id,
                secret_access_key,
                session_token: b.aws_session_token,
            }),
            models: cfg.models.clone().into(),
        })
    }

    /// A signed JSON POST to `{base}/model/{model}/{action}`.
    fn signed_post(
        &self,
        lease: &Lease,
        model: &str,
        action: &str,
        body: Vec<u8>,
        accept: &str,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let url = format!(
            "{}/model/{}/{action}",
            lease.base_url,
            encode_model_id(model)
        );
        let content_type = "application/json";
        let signed = sign_headers(
            &self.creds,
            &self.region,
            SIGNING_SERVICE,
            "POST",
            &url,
            &[("content-type", content_type), ("accept", accept)],
            &body,
            SystemTime::now(),
        )
        .map_err(|e| invalid_request(&lease.provider, e.to_string()))?;
        let mut b = lease
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::ACCEPT, accept);
        for (name, value) in signed {
            b = b.header(name, value);
        }
        Ok(b.body(body))
    }

    /// Send one signed request; a non-2xx answer becomes an OpenAI-shaped error using
    /// Bedrock's `x-amzn-ErrorType` header.
    async fn execute(
        &self,
        provider: &Arc<str>,
        lease: &Lease,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let resp = builder
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(provider, e, lease.timeout))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(':').next().unwrap_or(s).to_owned());
        let body = resp.bytes().await.unwrap_or_default();
        Err(bedrock_error(
            provider,
            status,
            error_type.as_deref(),
            &body,
        ))
    }

    /// The shared driver's counterpart for Bedrock: needs the response headers for errors,
    /// one InvokeModel call per embedding input, and the request for the final touches.
    pub(crate) async fn send(
        &self,
        provider: &Arc<str>,
        lease: &Lease,
        req: &ProviderRequest,
    ) -> Result<ProviderReply, ProviderError> {
        let timeout = lease.timeout;
        let fut = async {
            match req.endpoint {
                Endpoint::Embeddings => self.embed(provider, lease, req).await,
                Endpoint::ChatCompletions | Endpoint::Completions => {
                    let builder = self.build_request(lease, req).await?;
                    let resp = self.execute(provider, lease, builder).await?;
                    let status = resp.status().as_u16();
                    if req.stream {
                        return Ok(ProviderReply::Stream {
                            stream: self.translate_stream(provider, req, resp),
                        });
                    }
                    let body = resp
                        .bytes()
                        .await
                        .map_err(|e| ProviderError::from_reqwest(provider, e, timeout))?;
                    let body = self.translate_response(provider, req, body)?;
                    Ok(ProviderReply::Complete { status, body })
                }
            }
        };
        let reply = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ProviderError::Timeout {
                    provider: provider.clone(),
                    secs: timeout.as_secs_f64(),
                })
            }
        };
        Ok(finish_reply(reply, req))
    }

    /// `/v1/embeddings` through Titan: one InvokeModel call per input (Titan embeds one
    /// text per call), a few at a time.
    async fn embed(
        &self,
        provider: &Arc<str>,
        lease: &Lease,
        req: &ProviderRequest,
    ) -> Result<ProviderReply, ProviderError> {
        let model = model_of(provider, req)?;
        let inputs = embedding_inputs(&req.body).map_err(|m| invalid_request(provider, m))?;
        let calls = inputs.iter().map(|text| async move {
            let body = titan_request(text, &req.body);
            let builder = self.signed_post(lease, model, "invoke", body, "application/json")?;
            let resp = self.execute(provider, lease, builder).await?;
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| ProviderError::from_reqwest(provider, e, lease.timeout))?;
            parse_titan(&bytes).map_err(|message| ProviderError::InvalidResponse {
                provider: provider.clone(),
                message,
            })
        });
        // In order, at most EMBED_CONCURRENCY calls in flight.
        let results: Vec<(Value, u64)> = futures_util::stream::iter(calls)
            .buffered(EMBED_CONCURRENCY)
            .try_collect()
            .await?;
        let body = embeddings_list(model, results);
        Ok(ProviderReply::Complete {
            status: 200,
            body: Bytes::from(body.to_string()),
        })
    }
}

fn model_of<'a>(provider: &Arc<str>, req: &'a ProviderRequest) -> Result<&'a str, ProviderError> {
    Some(req.model.as_str())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid_request(provider, "`model` is required"))
}

/// The AWS exception name for a status, when Bedrock's header is missing.
fn default_error_type(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        s if s >= 500 => "InternalServerException",
        _ => "BedrockError",
    }
}

/// Bedrock's `{"message": ...}` error (with its exception name from `x-amzn-ErrorType`)
/// as an OpenAI-shaped error with the same status.
/// <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_Errors>
pub fn bedrock_error(
    provider: &Arc<str>,
    status: u16,
    error_type: Option<&str>,
    body: &[u8],
) -> ProviderError {
    let kind = error_type
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| default_error_type(status));
    let message = provider_message(body);
    let message = if message.is_empty() {
        format!("bedrock answered HTTP {status} ({kind})")
    } else {
        message
    };
    upstream(provider, status, &message, Some(kind))
}

/// Bedrock's control plane (ListFoundationModels) for a runtime base URL:
/// `bedrock-runtime.{region}` becomes `bedrock.{region}`; any other base (a proxy, a
/// mock) is used as it is.
pub fn control_plane_url(runtime_base: &str) -> String {
    runtime_base.replacen("://bedrock-runtime.", "://bedrock.", 1)
}

/// The ids in a ListFoundationModels answer that can be invoked on demand.
fn foundation_model_ids(v: &Value) -> Vec<String> {
    v.get("modelSummaries")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|m| {
                    m.get("inferenceTypesSupported")
                        .and_then(Value::as_array)
                        .is_none_or(|t| t.iter().any(|x| x == "ON_DEMAND"))
                })
                .filter_map(|m| m.get("modelId").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// OpenAI chat -> Converse

fn image_block(url: &str, where_: &str) -> Result<Value, String> {
    let (mime, data) = parse_data_url(url).ok_or_else(|| {
        format!("{where_}: Bedrock takes images inline only (a base64 `data:` URL)")
    })?;
    let format = match mime {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(format!(
                "{where_}: image type `{other}` is not supported by Bedrock"
            ))
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

fn user_blocks(content: Option<&Value>, i: usize) -> Result<Vec<Value>, String> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                let where_ = format!("messages[{i}].content[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = p.get("text").and_then(Value::as_str).unwrap_or("");
                        if !t.is_empty() {
                            out.push(json!({"text": t}));
                        }
                    }
                    Some("image_url") => {
                        let url = p
                            .pointer("/image_url/url")
                            .or_else(|| p.get("image_url"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| format!("{where_}: image_url.url is missing"))?;
                        out.push(image_block(url, &where_)?);
                    }
                    other => {
                        return Err(format!(
                            "{where_}: content part type {} is not supported by Bedrock",
                            other.unwrap_or("(missing)")
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(format!(
            "messages[{i}].content must be a string or an array"
        )),
    }
}

fn assistant_blocks(m: &Value, i: usize) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let text = content_text(m.get("content").unwrap_or(&Value::Null));
    if !text.is_empty() {
        out.push(json!({"text": text}));
    }
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        for (j, c) in calls.iter().enumerate() {
            let where_ = format!("messages[{i}].tool_calls[{j}]");
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{where_}.id is missing"))?;
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{where_}.function.name is missing"))?;
            let args = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("");
            let input: Value = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args)
                    .map_err(|e| format!("{where_}.function.arguments is not JSON: {e}"))?
            };
            out.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
        }
    }
    Ok(out)
}

fn tool_result_block(m: &Value, i: usize) -> Result<Value, String> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("messages[{i}].tool_call_id is missing"))?;
    let text = content_text(m.get("content").unwrap_or(&Value::Null));
    Ok(json!({"toolResult": {"toolUseId": id, "content": [{"text": text}]}}))
}

fn push_turn(out: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match out.last_mut() {
        // Converse wants user and assistant turns to alternate: merge neighbours
        // (several tool results after one assistant turn become one user turn).
        Some((r, b)) if *r == role => b.extend(blocks),
        _ => out.push((role, blocks)),
    }
}

fn tool_config(
    body: &Map<String, Value>,
    history_has_tools: bool,
) -> Result<Option<Value>, String> {
    let Some(tools) = body
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    let mut specs = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        if t.get("type").and_then(Value::as_str).unwrap_or("function") != "function" {
            return Err(format!(
                "tools[{i}]: only function tools are supported by Bedrock"
            ));
        }
        let f = t.get("function").unwrap_or(t);
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("tools[{i}].function.name is missing"))?;
        let schema = f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        let mut spec = json!({"name": name, "inputSchema": {"json": schema}});
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            spec["description"] = json!(d);
        }
        specs.push(json!({"toolSpec": spec}));
    }
    let mut cfg = json!({"tools": specs});
    match body.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => match s.as_str() {
            "auto" => cfg["toolChoice"] = json!({"auto": {}}),
            "required" => cfg["toolChoice"] = json!({"any": {}}),
            // Converse has no "none": leave the tools out, unless the history uses them
            // (Bedrock then requires toolConfig), in which case the model decides.
            "none" if history_has_tools => {}
            "none" => return Ok(None),
            other => return Err(format!("tool_choice `{other}` is not supported")),
        },
        Some(v) => {
            let name = v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or("tool_choice must be auto, required, none or {\"type\":\"function\",\"function\":{\"name\":...}}")?;
            cfg["toolChoice"] = json!({"tool": {"name": name}});
        }
    }
    Ok(Some(cfg))
}

/// An OpenAI chat request as a Converse request body (the model goes in the URL).
pub fn to_converse(body: &Map<String, Value>) -> Result<Value, String> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("`messages` must be an array")?;
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err("Bedrock returns a single choice: `n` must be 1".into());
    }
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut history_has_tools = false;
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("messages[{i}].role is missing"))?;
        match role {
            "system" | "developer" => {
                let t = content_text(m.get("content").unwrap_or(&Value::Null));
                if !t.is_empty() {
                    system.push(json!({"text": t}));
                }
            }
            "user" => push_turn(&mut turns, "user", user_blocks(m.get("content"), i)?),
            "assistant" => {
                let blocks = assistant_blocks(m, i)?;
                history_has_tools |= blocks.iter().any(|b| b.get("toolUse").is_some());
                push_turn(&mut turns, "assistant", blocks)
            }
            "tool" => {
                history_has_tools = true;
                push_turn(&mut turns, "user", vec![tool_result_block(m, i)?])
            }
            other => {
                return Err(format!(
                    "messages[{i}]: role `{other}` is not supported by Bedrock"
                ))
            }
        }
    }
    if turns.is_empty() {
        return Err("Bedrock needs at least one user message".into());
    }
    let mut out = json!({
        "messages": turns
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect::<Vec<_>>()
    });
    if !system.is_empty() {
        out["system"] = Value::Array(system);
    }
    let mut inference = Map::new();
    if let Some(n) = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
    {
        inference.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = body.get("top_p").and_then(Value::as_f64) {
        inference.insert("topP".into(), json!(p));
    }
    if let Some(stop) = stop_sequences(body.get("stop")) {
        inference.insert("stopSequences".into(), Value::Array(stop));
    }
    if !inference.is_empty() {
        out["inferenceConfig"] = Value::Object(inference);
    }
    if let Some(tc) = tool_config(body, history_has_tools)? {
        out["toolConfig"] = tc;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Converse -> OpenAI

/// Bedrock's `stopReason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence, malformed_* and anything new
        _ => "stop",
    }
}

fn openai_usage(u: Option<&Value>) -> Value {
    let get = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_u64);
    let (i, o) = (
        get("inputTokens").unwrap_or(0),
        get("outputTokens").unwrap_or(0),
    );
    json!({
        "prompt_tokens": i,
        "completion_tokens": o,
        "total_tokens": get("totalTokens").unwrap_or(i + o),
    })
}

fn new_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// A Converse response as an OpenAI chat completion (`model` is filled in later).
pub fn from_converse(v: &Value) -> Result<Value, String> {
    let blocks = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or("the response has no output.message.content")?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tu) = b.get("toolUse") {
            let input = tu.get("input").cloned().unwrap_or_else(|| json!({}));
            tool_calls.push(json!({
                "id": tu.get("toolUseId").and_then(Value::as_str).unwrap_or(""),
                "type": "function",
                "function": {
                    "name": tu.get("name").and_then(Value::as_str).unwrap_or(""),
                    "arguments": input.to_string(),
                }
            }));
        }
    }
    let stop = v
        .get("stopReason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    Ok(ChatResponse::assistant(
        new_id(),
        now_secs(),
        String::new(),
        text,
        tool_calls,
        finish_reason(stop),
        openai_usage(v.get("usage")),
    )
    .to_value())
}

// ---------------------------------------------------------------------------------
// Titan embeddings

fn embedding_inputs(body: &Map<String, Value>) -> Result<Vec<String>, String> {
    match body.get("input") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    "Titan embeds text: `input` must be a string or an array of strings".to_owned()
                })
            })
            .collect(),
        _ => Err("`input` must be a non-empty string or array of strings".into()),
    }
}

/// The Titan Text Embeddings V2 request for one input.
/// <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>
fn titan_request(text: &str, body: &Map<String, Value>) -> Vec<u8> {
    let mut r = json!({"inputText": text});
    if let Some(d) = body.get("dimensions").and_then(Value::as_u64) {
        r["dimensions"] = json!(d);
    }
    r.to_string().into_bytes()
}

/// `{"embedding": [...], "inputTextTokenCount": n}`.
fn parse_titan(bytes: &[u8]) -> Result<(Value, u64), String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("Titan answer is not JSON: {e}"))?;
    let emb = v
        .get("embedding")
        .filter(|e| e.is_array())
        .cloned()
        .ok_or("Titan answer has no `embedding` array")?;
    Ok((
        emb,
        v.get("inputTextTokenCount")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    ))
}

fn embeddings_list(model: &str, results: Vec<(Value, u64)>) -> Value {
    let tokens: u64 = results.iter().map(|(_, n)| n).sum();
    json!({
        "object": "list",
        "data": results
            .into_iter()
            .enumerate()
            .map(|(i, (e, _))| json!({"object": "embedding", "index": i, "embedding": e}))
            .collect::<Vec<_>>(),
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

// ---------------------------------------------------------------------------------
// ConverseStream

fn header_str(msg: &Message, name: &str) -> Option<String> {
    msg.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str().to_owned())
}

/// Translates ConverseStream's event-stream messages into OpenAI chunks: the
/// [`ChunkHook`] the shared stream driver runs over [`EventStreamFraming`].
pub struct ConverseStreamDecoder {
    chunks: ChunkBuilder,
    /// Bedrock content-block index -> OpenAI tool-call index.
    tools: HashMap<u64, usize>,
    stopped: bool,
}

impl Default for ConverseStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConverseStreamDecoder {
    pub fn new() -> Self {
        ConverseStreamDecoder {
            chunks: ChunkBuilder::new(new_id(), String::new()),
            tools: HashMap::new(),
            stopped: false,
        }
    }

    fn on_message(&mut self, msg: &Message) -> Result<Vec<ChatChunk>, String> {
        let kind = header_str(msg, ":message-type").unwrap_or_else(|| "event".into());
        let payload: Value = if msg.payload().is_empty() {
            json!({})
        } else {
            serde_json::from_slice(msg.payload())
                .map_err(|e| format!("bedrock stream event is not JSON: {e}"))?
        };
        match kind.as_str() {
            "event" => {}
            "exception" => {
                let name = header_str(msg, ":exception-type").unwrap_or_else(|| "exception".into());
                let text = payload.get("message").and_then(Value::as_str).unwrap_or("");
                return Err(format!("bedrock stream {name}: {text}"));
            }
            _ => {
                let code = header_str(msg, ":error-code").unwrap_or_else(|| kind.clone());
                let text = header_str(msg, ":error-message").unwrap_or_default();
                return Err(format!("bedrock stream error {code}: {text}"));
            }
        }
        let event = header_str(msg, ":event-type").unwrap_or_default();
        let c = &self.chunks;
        Ok(match event.as_str() {
            "messageStart" => vec![c.delta(ChunkDelta::start())],
            "contentBlockStart" => {
                let Some(tu) = payload.pointer("/start/toolUse") else {
                    return Ok(Vec::new());
                };
                let block = payload
                    .get("contentBlockIndex")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let index = self.tools.len();
                self.tools.insert(block, index);
                vec![c.delta(ChunkDelta::tool_calls(vec![json!({
                    "index": index,
                    "id": tu.get("toolUseId").and_then(Value::as_str).unwrap_or(""),
                    "type": "function",
                    "function": {"name": tu.get("name").and_then(Value::as_str).unwrap_or(""), "arguments": ""},
                })]))]
            }
            "contentBlockDelta" => {
                let block = payload
                    .get("contentBlockIndex")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if let Some(t) = payload.pointer("/delta/text").and_then(Value::as_str) {
                    vec![c.delta(ChunkDelta::text(t))]
                } else if let Some(input) = payload
                    .pointer("/delta/toolUse/input")
                    .and_then(Value::as_str)
                {
                    let index = *self.tools.get(&block).ok_or_else(|| {
                        format!("bedrock stream: tool input for block {block} before its start")
                    })?;
                    vec![c.delta(ChunkDelta::tool_calls(vec![
                        json!({"index": index, "function": {"arguments": input}}),
                    ]))]
                } else {
                    Vec::new() // reasoning content and other deltas have no OpenAI field
                }
            }
            "messageStop" => {
                self.stopped = true;
                let stop = payload
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                vec![c.finish(finish_reason(stop))]
            }
            "metadata" => vec![c.usage(openai_usage(payload.get("usage")))],
            // contentBlockStop and events added later carry nothing to translate.
            _ => Vec::new(),
        })
    }
}

impl ChunkHook<Message> for ConverseStreamDecoder {
    fn event(&mut self, msg: &Message, out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
        out.extend(self.on_message(msg)?);
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
        if !self.stopped {
            return Err("bedrock stream ended before messageStop".into());
        }
        Ok(())
    }
}

impl ProviderAdapter for BedrockAdapter {
    async fn build_request(
        &self,
        lease: &Lease,
        req: &ProviderRequest,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let model = model_of(&lease.provider, req)?;
        match req.endpoint {
            Endpoint::ChatCompletions => {
                let body =
                    to_converse(&req.body).map_err(|m| invalid_request(&lease.provider, m))?;
                let (action, accept) = if req.stream {
                    ("converse-stream", "application/vnd.amazon.eventstream")
                } else {
                    ("converse", "application/json")
                };
                self.signed_post(lease, model, action, body.to_string().into_bytes(), accept)
            }
            Endpoint::Embeddings => {
                let inputs =
                    embedding_inputs(&req.body).map_err(|m| invalid_request(&lease.provider, m))?;
                match inputs.as_slice() {
                    [one] => self.signed_post(
                        lease,
                        model,
                        "invoke",
                        titan_request(one, &req.body),
                        "application/json",
                    ),
                    _ => Err(invalid_request(
                        &lease.provider,
                        "one request embeds one input (the driver sends one call per input)",
                    )),
                }
            }
            Endpoint::Completions => Err(invalid_request(
                &lease.provider,
                "Bedrock has no legacy completions endpoint; use /v1/chat/completions",
            )),
        }
    }

    fn translate_response(
        &self,
        provider: &Arc<str>,
        req: &ProviderRequest,
        body: Bytes,
    ) -> Result<Bytes, ProviderError> {
        let endpoint = req.endpoint;
        let invalid = |message: String| ProviderError::InvalidResponse {
            provider: provider.clone(),
            message,
        };
        let out = match endpoint {
            Endpoint::Embeddings => embeddings_list("", vec![parse_titan(&body).map_err(invalid)?]),
            _ => {
                let v: Value = serde_json::from_slice(&body)
                    .map_err(|e| invalid(format!("Converse answer is not JSON: {e}")))?;
                from_converse(&v).map_err(invalid)?
            }
        };
        Ok(Bytes::from(out.to_string()))
    }

    fn translate_stream(
        &self,
        provider: &Arc<str>,
        req: &ProviderRequest,
        resp: reqwest::Response,
    ) -> ChunkStream {
        chunk_stream(
            provider,
            req,
            resp,
            EventStreamFraming::new(),
            ConverseStreamDecoder::new(),
        )
    }

    fn translate_error(&self, provider: &Arc<str>, status: u16, body: Bytes) -> ProviderError {
        bedrock_error(provider, status, None, &body)
    }

    async fn list_models(&self, lease: &Lease) -> Result<Vec<String>, ProviderError> {
        let url = format!(
            "{}/foundation-models?byInferenceType=ON_DEMAND",
            control_plane_url(&lease.base_url)
        );
        let accept = "application/json";
        let signed = sign_headers(
            &self.creds,
            &self.region,
            SIGNING_SERVICE,
            "GET",
            &url,
            &[("accept", accept)],
            b"",
            SystemTime::now(),
        )
        .map_err(|e| invalid_request(&lease.provider, e.to_string()))?;
        let mut b = lease
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, accept)
            .timeout(lease.timeout.min(std::time::Duration::from_secs(10)));
        for (name, value) in signed {
            b = b.header(name, value);
        }
        let resp = self.execute(&lease.provider, lease, b).await?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::from_reqwest(&lease.provider, e, lease.timeout))?;
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| ProviderError::InvalidResponse {
                provider: lease.provider.clone(),
                message: format!("model list is not JSON: {e}"),
            })?;
        let mut models = foundation_model_ids(&v);
        for m in self.models.iter() {
            if !models.contains(m) {
                models.push(m.clone());
            }
        }
        Ok(models)
    }
}

#[cfg(test)]
mod tests;
