//! A mock AWS Bedrock Runtime that checks what a real one checks: the SigV4 signature
//! (recomputed by [`crate::sigv4`] from the known test credentials and the request as it
//! arrived, independently of deja's adapter; a mismatch is AWS's 403
//! `InvalidSignatureException`), the Converse / InvokeModel body shapes, and answers with recorded-style
//! payloads; ConverseStream answers in real binary event-stream frames.
//!
//! On demand, driven by the last user text: `ERROR <ExceptionName>` answers that AWS error
//! (with its status and `x-amzn-ErrorType`), `STREAM_ERROR` breaks a stream with a
//! `modelStreamErrorException` frame; when tools are offered and the last turn is the
//! user's, the model calls the chosen (or first) tool.
//!
//! References: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>,
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-troubleshooting.html>.

use super::Recorder;
use crate::sigv4;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The service name in Bedrock Runtime's SigV4 credential scope.
pub const SIGNING_SERVICE: &str = "bedrock";

/// The credentials and region the mock accepts.
#[derive(Debug, Clone)]
pub struct BedrockMockSettings {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

impl Default for BedrockMockSettings {
    /// AWS's documentation example credentials.
    fn default() -> Self {
        BedrockMockSettings {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
        }
    }
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct BedrockRecorded {
    /// The path as sent (still percent-encoded).
    pub raw_path: String,
    /// The model id, decoded.
    pub model_id: String,
    pub action: String,
    /// Lower-cased header names.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

pub struct BedrockMockState {
    settings: BedrockMockSettings,
    requests: Recorder<BedrockRecorded>,
}

impl BedrockMockState {
    pub fn requests(&self) -> Vec<BedrockRecorded> {
        self.requests.all()
    }
}

/// `(exception, status)` pairs Bedrock Runtime documents for Converse.
const EXCEPTIONS: &[(&str, u16)] = &[
    ("ValidationException", 400),
    ("AccessDeniedException", 403),
    ("ResourceNotFoundException", 404),
    ("ModelTimeoutException", 408),
    ("ModelErrorException", 424),
    ("ThrottlingException", 429),
    ("ModelNotReadyException", 429),
    ("InternalServerException", 500),
    ("ServiceUnavailableException", 503),
];

/// An AWS JSON error: status, `x-amzn-ErrorType` (with the suffix AWS appends), and
/// `{"message": ...}`.
fn aws_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code)
        .insert_header((
            "x-amzn-ErrorType",
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        ))
        .insert_header(("x-amzn-RequestId", "9f3c1d2e-0000-4000-8000-mock"))
        .json(json!({"message": message}))
}

fn validation(message: impl AsRef<str>) -> HttpResponse {
    aws_error(400, "ValidationException", message.as_ref())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `20150830T123600Z` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || !s.is_char_boundary(8) {
        return None;
    }
    let (d, t) = (s.get(0..8)?, s.get(9..15)?);
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &d[0..4],
        &d[4..6],
        &d[6..8],
        &t[0..2],
        &t[2..4],
        &t[4..6]
    );
    let dt =
        aws_smithy_types::DateTime::from_str(&rfc, aws_smithy_types::date_time::Format::DateTime)
            .ok()?;
    SystemTime::try_from(dt).ok()
}

/// Recompute the request's SigV4 signature and compare it with the one it carries; the
/// refusal to send when they differ (or the header is malformed).
fn signature_refusal(
    st: &BedrockMockState,
    req: &HttpRequest,
    body: &[u8],
) -> Option<HttpResponse> {
    let forbidden = |kind: &str, message: &str| Some(aws_error(403, kind, message));
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return forbidden(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    };
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return forbidden(
            "IncompleteSignatureException",
            "Unsupported signing algorithm",
        );
    };
    let mut parts: BTreeMap<&str, &str> = BTreeMap::new();
    for p in rest.split(", ") {
        if let Some((k, v)) = p.split_once('=') {
            parts.insert(k, v);
        }
    }
    let (Some(credential), Some(signed), Some(_sig)) = (
        parts.get("Credential"),
        parts.get("SignedHeaders"),
        parts.get("Signature"),
    ) else {
        return forbidden(
            "IncompleteSignatureException",
            "Authorization header requires Credential, SignedHeaders and Signature",
        );
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, _date, region, service, "aws4_request"] = scope.as_slice() else {
        return forbidden("IncompleteSignatureException", "Credential is malformed");
    };
    if *key_id != st.settings.access_key_id {
        return forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    }
    if *region != st.settings.region {
        return forbidden(
            "InvalidSignatureException",
            &format!("Credential should be scoped to a valid region, not '{region}'."),
        );
    }
    if *service != SIGNING_SERVICE {
        return forbidden(
            "InvalidSignatureException",
            &format!("Credential should be scoped to correct service: '{SIGNING_SERVICE}'."),
        );
    }
    let Some(time) = header("x-amz-date").and_then(parse_amz_date) else {
        return forbidden(
            "IncompleteSignatureException",
            "Missing or malformed X-Amz-Date",
        );
    };
    let skew = SystemTime::now()
        .duration_since(time)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or(Duration::ZERO);
    if skew > Duration::from_secs(300) {
        return forbidden("InvalidSignatureException", "Signature expired");
    }
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"host") {
        return forbidden(
            "InvalidSignatureException",
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
        );
    }
    let mut signed_headers = Vec::with_capacity(names.len());
    for n in &names {
        match header(n) {
            Some(v) => signed_headers.push((*n, v)),
            None => {
                return forbidden(
                    "InvalidSignatureException",
                    &format!("Signed header {n} is missing"),
                )
            }
        }
    }
    let host = header("host").unwrap_or_default();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("http://{host}{path_and_query}");
    let creds = sigv4::Credentials {
        access_key_id: &st.settings.access_key_id,
        secret_access_key: &st.settings.secret_access_key,
        session_token: header("x-amz-security-token"),
    };
    let received = sigv4::Received {
        method: req.method().as_str(),
        url: &url,
        signed_headers: &signed_headers,
        body,
    };
    let expected =
        sigv4::expected_authorization(creds, region, SIGNING_SERVICE, time, received).ok();
    if expected.as_deref() != Some(auth) {
        return forbidden(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        );
    }
    None
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Check a Converse body the way Bedrock's validation does (the parts deja uses).
fn check_converse(body: &Value) -> Result<(), String> {
    let obj = body
        .as_object()
        .ok_or("Malformed input request: expected an object")?;
    const KEYS: &[&str] = &[
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
    ];
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!(
            "Malformed input request: extraneous key [{k}] is not permitted"
        ));
    }
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("A conversation must start with a user message.")?;
    let mut uses_tools = false;
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(if i == 0 {
                "A conversation must start with a user message. Try again with a conversation that starts with a user message.".into()
            } else {
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.".into()
            });
        }
        let content = m
            .get("content")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                format!("The content field in the Message object at messages.{i} is empty.")
            })?;
        for b in content {
            let b = b
                .as_object()
                .filter(|b| b.len() == 1)
                .ok_or("A ContentBlock must set exactly one member")?;
            let (kind, v) = b.iter().next().ok_or("empty ContentBlock")?;
            match kind.as_str() {
                "text" => {
                    if v.as_str().is_none_or(|t| t.trim().is_empty()) {
                        return Err(format!("The text field in the ContentBlock object at messages.{i}.content is blank."));
                    }
                }
                "image" => {
                    let fmt = v.get("format").and_then(Value::as_str).unwrap_or("");
                    if !["png", "jpeg", "gif", "webp"].contains(&fmt) {
                        return Err(format!("Invalid image format {fmt}"));
                    }
                    let data = v
                        .pointer("/source/bytes")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
                    if data.is_empty() || !data.chars().all(b64) {
                        return Err("Invalid image bytes: expected base64".into());
                    }
                }
                "toolUse" => {
                    uses_tools = true;
                    if role != "assistant"
                        || v.get("toolUseId").and_then(Value::as_str).is_none()
                        || v.get("name").and_then(Value::as_str).is_none()
                        || !v.get("input").is_some_and(Value::is_object)
                    {
                        return Err("Malformed toolUse block".into());
                    }
                }
                "toolResult" => {
                    uses_tools = true;
                    if role != "user"
                        || v.get("toolUseId").and_then(Value::as_str).is_none()
                        || !v.get("content").is_some_and(Value::is_array)
                    {
                        return Err("Malformed toolResult block".into());
                    }
                }
                other => return Err(format!("Unsupported content block {other}")),
            }
        }
    }
    if let Some(sys) = obj.get("system") {
        let ok = sys.as_array().is_some_and(|a| {
            a.iter()
                .all(|s| s.get("text").and_then(Value::as_str).is_some())
        });
        if !ok {
            return Err("Malformed system: expected [{\"text\": ...}]".into());
        }
    }
    if let Some(ic) = obj.get("inferenceConfig") {
        let ic = ic.as_object().ok_or("Malformed inferenceConfig")?;
        if let Some(k) = ic
            .keys()
            .find(|k| !["maxTokens", "temperature", "topP", "stopSequences"].contains(&k.as_str()))
        {
            return Err(format!(
                "Malformed input request: extraneous key [{k}] is not permitted"
            ));
        }
    }
    match obj.get("toolConfig") {
        None if uses_tools => {
            return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".into())
        }
        None => {}
        Some(tc) => {
            let tools = tc.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()).ok_or("toolConfig.tools must not be empty")?;
            for t in tools {
                let spec = t.get("toolSpec").ok_or("Malformed tool: expected toolSpec")?;
                if spec.get("name").and_then(Value::as_str).is_none() || !spec.pointer("/inputSchema/json").is_some_and(Value::is_object) {
                    return Err("Malformed toolSpec: name and inputSchema.json are required".into());
                }
            }
            if let Some(choice) = tc.get("toolChoice") {
                let ok = choice.get("auto").is_some() || choice.get("any").is_some() || choice.pointer("/tool/name").is_some();
                if !ok {
                    return Err("Malformed toolChoice".into());
                }
            }
        }
    }
    Ok(())
}

/// What the mock model does with a checked Converse request.
struct Reply {
    text: String,
    tool: Option<(String, Value)>,
    stop: &'static str,
    input_tokens: u64,
}

fn block_texts(blocks: &[Value]) -> Vec<String> {
    blocks
        .iter()
        .filter_map(|b| {
            b.get("text")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    b.pointer("/toolResult/content")
                        .and_then(Value::as_array)
                        .map(|c| {
                            c.iter()
                                .filter_map(|x| x.get("text").and_then(Value::as_str))
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                })
        })
        .collect()
}

fn plan(body: &Value) -> Reply {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let last = messages
        .last()
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let input_tokens = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flat_map(|c| block_texts(c))
        .map(|t| words(&t))
        .sum::<u64>()
        + body
            .get("system")
            .and_then(Value::as_array)
            .map(|s| block_texts(s).iter().map(|t| words(t)).sum())
            .unwrap_or(0);
    let last_text = block_texts(&last).join(" ");
    let answered_tool = last.iter().any(|b| b.get("toolResult").is_some());
    if let Some(tc) = body.get("toolConfig").filter(|_| !answered_tool) {
        let name = tc
            .pointer("/toolChoice/tool/name")
            .or_else(|| tc.pointer("/tools/0/toolSpec/name"))
            .and_then(Value::as_str)
            .unwrap_or("tool")
            .to_owned();
        return Reply {
            text: String::new(),
            tool: Some((name, json!({"query": last_text}))),
            stop: "tool_use",
            input_tokens,
        };
    }
    let text = if answered_tool {
        format!("Mock answer from tool result: {last_text}")
    } else {
        format!("Mock answer to: {last_text}")
    };
    let limit = body
        .pointer("/inferenceConfig/maxTokens")
        .and_then(Value::as_u64);
    let (text, stop) = match limit {
        Some(n) if words(&text) > n => (
            text.split_whitespace()
                .take(n as usize)
                .collect::<Vec<_>>()
                .join(" "),
            "max_tokens",
        ),
        _ => (text, "end_turn"),
    };
    Reply {
        text,
        tool: None,
        stop,
        input_tokens,
    }
}

fn last_user_text(body: &Value) -> String {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .map(|c| block_texts(c).join(" "))
        .unwrap_or_default()
}

/// Recorded-style Converse answer:
/// <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_ResponseSyntax>
fn converse_response(r: &Reply) -> Value {
    let mut content = Vec::new();
    if !r.text.is_empty() {
        content.push(json!({"text": r.text}));
    }
    if let Some((name, input)) = &r.tool {
        content.push(json!({"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": name, "input": input}}));
    }
    let out = if r.tool.is_some() { 12 } else { words(&r.text) };
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": r.stop,
        "usage": {"inputTokens": r.input_tokens, "outputTokens": out, "totalTokens": r.input_tokens + out},
        "metrics": {"latencyMs": 321}
    })
}

fn event_frame(event_type: &str, payload: &Value) -> Bytes {
    let msg = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    let mut out = Vec::new();
    // Writing a well-formed message into a Vec cannot fail.
    let _ = aws_smithy_eventstream::frame::write_message_to(&msg, &mut out);
    Bytes::from(out)
}

fn exception_frame(exception: &str, message: &str) -> Bytes {
    let msg = Message::new(Bytes::from(json!({"message": message}).to_string()))
        .add_header(Header::new(
            ":exception-type",
            HeaderValue::String(exception.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("exception".into()),
        ));
    let mut out = Vec::new();
    let _ = aws_smithy_eventstream::frame::write_message_to(&msg, &mut out);
    Bytes::from(out)
}

/// ConverseStream events in real event-stream frames, as Bedrock sends them (each
/// payload padded with a `p` field):
/// <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStreamOutput.html>
fn converse_stream_frames(r: &Reply, break_stream: bool) -> Vec<Bytes> {
    let mut f = vec![event_frame(
        "messageStart",
        &json!({"p": "abcdefghijk", "role": "assistant"}),
    )];
    let mut block = 0;
    if !r.text.is_empty() {
        for (i, w) in r.text.split_inclusive(' ').enumerate() {
            f.push(event_frame(
                "contentBlockDelta",
                &json!({"p": "abcd", "contentBlockIndex": block, "delta": {"text": w}}),
            ));
            if break_stream && i == 1 {
                f.push(exception_frame(
                    "modelStreamErrorException",
                    "The model stream failed mid-way (mock).",
                ));
                return f;
            }
        }
        f.push(event_frame(
            "contentBlockStop",
            &json!({"p": "ab", "contentBlockIndex": block}),
        ));
        block += 1;
    }
    if let Some((name, input)) = &r.tool {
        f.push(event_frame(
            "contentBlockStart",
            &json!({"p": "abc", "contentBlockIndex": block, "start": {"toolUse": {"toolUseId": "tooluse_stream_1", "name": name}}}),
        ));
        let s = input.to_string();
        let mid = s
            .char_indices()
            .nth(s.chars().count() / 2)
            .map(|(i, _)| i)
            .unwrap_or(0);
        for part in [&s[..mid], &s[mid..]] {
            f.push(event_frame("contentBlockDelta", &json!({"p": "a", "contentBlockIndex": block, "delta": {"toolUse": {"input": part}}})));
        }
        f.push(event_frame(
            "contentBlockStop",
            &json!({"p": "ab", "contentBlockIndex": block}),
        ));
    }
    f.push(event_frame(
        "messageStop",
        &json!({"p": "abcdef", "stopReason": r.stop}),
    ));
    let out = if r.tool.is_some() { 12 } else { words(&r.text) };
    f.push(event_frame(
        "metadata",
        &json!({"p": "abc", "usage": {"inputTokens": r.input_tokens, "outputTokens": out, "totalTokens": r.input_tokens + out}, "metrics": {"latencyMs": 287}}),
    ));
    f
}

fn titan_embedding(text: &str, dims: usize) -> Vec<f32> {
    (0..dims as u64)
        .map(|d| {
            let mut h: u64 = 0xcbf29ce484222325 ^ d;
            for b in text.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100000001b3);
            }
            ((h % 2000) as f32 / 1000.0) - 1.0
        })
        .collect()
}

/// Titan Text Embeddings V2 InvokeModel.
fn titan(model: &str, body: &Value) -> HttpResponse {
    if !model.starts_with("amazon.titan-embed") {
        return validation(format!(
            "The provided model identifier is invalid: {model} is not an embedding model"
        ));
    }
    let Some(obj) = body.as_object() else {
        return validation("Malformed input request: expected an object");
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["inputText", "dimensions", "normalize", "embeddingTypes"].contains(&k.as_str()))
    {
        return validation(format!("Malformed input request: #: extraneous key [{k}] is not permitted, please reformat your input and try again."));
    }
    let Some(text) = obj
        .get("inputText")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return validation("Malformed input request: #: required key [inputText] not found, please reformat your input and try again.");
    };
    let dims = match obj.get("dimensions").and_then(Value::as_u64) {
        None => 1024,
        Some(d @ (256 | 512 | 1024)) => d as usize,
        Some(d) => {
            return validation(format!(
                "Malformed input request: #/dimensions: {d} is not a valid enum value"
            ))
        }
    };
    HttpResponse::Ok().json(json!({
        "embedding": titan_embedding(text, dims),
        "inputTextTokenCount": words(text),
    }))
}

/// ListFoundationModels (control plane), recorded-style:
/// <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListFoundationModels.html>
fn foundation_models(query: &str) -> HttpResponse {
    let summary = |id: &str, name: &str, output: &str, inference: &[&str]| {
        json!({
            "modelArn": format!("arn:aws:bedrock:us-east-1::foundation-model/{id}"),
            "modelId": id,
            "modelName": name,
            "providerName": id.split('.').next().unwrap_or(""),
            "inputModalities": ["TEXT"],
            "outputModalities": [output],
            "responseStreamingSupported": output == "TEXT",
            "customizationsSupported": [],
            "inferenceTypesSupported": inference,
            "modelLifecycle": {"status": "ACTIVE"}
        })
    };
    let all = vec![
        summary(
            "anthropic.claude-3-haiku-20240307-v1:0",
            "Claude 3 Haiku",
            "TEXT",
            &["ON_DEMAND"],
        ),
        summary(
            "amazon.titan-embed-text-v2:0",
            "Titan Text Embeddings V2",
            "EMBEDDING",
            &["ON_DEMAND"],
        ),
        summary(
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            "Claude 3.7 Sonnet",
            "TEXT",
            &["INFERENCE_PROFILE"],
        ),
    ];
    let on_demand = query.split('&').any(|p| p == "byInferenceType=ON_DEMAND");
    let models: Vec<Value> = all
        .into_iter()
        .filter(|m| {
            !on_demand
                || m["inferenceTypesSupported"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == "ON_DEMAND"))
        })
        .collect();
    HttpResponse::Ok().json(json!({"modelSummaries": models}))
}

async fn handle(
    state: web::Data<Arc<BedrockMockState>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let st = state.get_ref();
    let raw_path = req.uri().path().to_owned();
    if raw_path == "/foundation-models" && req.method() == actix_web::http::Method::GET {
        if let Some(refusal) = signature_refusal(st, &req, &body) {
            return refusal;
        }
        return foundation_models(req.query_string());
    }
    let Some((enc_model, action)) = raw_path
        .strip_prefix("/model/")
        .and_then(|p| p.rsplit_once('/'))
    else {
        return aws_error(404, "UnknownOperationException", "Unknown operation");
    };
    if req.method() != actix_web::http::Method::POST {
        return aws_error(404, "UnknownOperationException", "Unknown operation");
    }
    if let Some(refusal) = signature_refusal(st, &req, &body) {
        return refusal;
    }
    let Some(model_id) = percent_decode(enc_model) else {
        return validation("Malformed model identifier");
    };
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return validation("Content-Type must be application/json");
    }
    let json_body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return validation(format!("Malformed input request: {e}")),
    };
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    st.requests.push(BedrockRecorded {
        raw_path: raw_path.clone(),
        model_id: model_id.clone(),
        action: action.to_owned(),
        headers,
        body: json_body.clone(),
    });
    if action == "invoke" {
        return titan(&model_id, &json_body);
    }
    if action != "converse" && action != "converse-stream" {
        return aws_error(404, "UnknownOperationException", "Unknown operation");
    }
    if model_id.starts_with("amazon.titan-embed") || model_id.contains("missing") {
        return aws_error(
            404,
            "ResourceNotFoundException",
            "Model not found or not supported by Converse.",
        );
    }
    if let Err(m) = check_converse(&json_body) {
        return validation(m);
    }
    let last = last_user_text(&json_body);
    if let Some(kind) = last.strip_prefix("ERROR ").map(str::trim) {
        let status = EXCEPTIONS
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| *s)
            .unwrap_or(500);
        let message = match kind {
            "ThrottlingException" => "Too many requests, please wait before trying again.",
            "AccessDeniedException" => {
                "You don't have access to the model with the specified model ID."
            }
            "ModelTimeoutException" => {
                "Model has timed out in processing the request. Try your request again."
            }
            "ServiceUnavailableException" => "Bedrock is unable to process your request.",
            _ => "The mock was asked to fail.",
        };
        return aws_error(status, kind, message);
    }
    let reply = plan(&json_body);
    if action == "converse" {
        return HttpResponse::Ok()
            .insert_header(("x-amzn-RequestId", "0c4b3d5e-0000-4000-8000-mock"))
            .json(converse_response(&reply));
    }
    let frames = converse_stream_frames(&reply, last.contains("STREAM_ERROR"));
    HttpResponse::Ok()
        .content_type("application/vnd.amazon.eventstream")
        .insert_header(("x-amzn-RequestId", "0c4b3d5e-0000-4000-8000-mock"))
        .streaming(futures_util::stream::iter(
            frames.into_iter().map(Ok::<_, std::io::Error>),
        ))
}

/// Run the mock on `listener` inside the current actix System (`deja-mock
/// --format bedrock`).
pub fn server(
    listener: TcpListener,
    state: Arc<BedrockMockState>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .default_service(web::to(handle))
    })
    .workers(1)
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

impl BedrockMockState {
    pub fn new(settings: BedrockMockSettings) -> Self {
        BedrockMockState {
            settings,
            requests: Recorder::default(),
        }
    }
}

/// A mock Bedrock Runtime on its own thread; `base_url()` goes in the provider config.
pub struct BedrockMock {
    pub addr: SocketAddr,
    pub state: Arc<BedrockMockState>,
    _server: super::runner::Running,
}

impl BedrockMock {
    pub fn start(settings: BedrockMockSettings) -> std::io::Result<Self> {
        let state = Arc::new(BedrockMockState::new(settings));
        let st = state.clone();
        let server = super::runner::Running::start(move |l| server(l, st))?;
        Ok(BedrockMock {
            addr: server.addr,
            state,
            _server: server,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<BedrockRecorded> {
        self.state.requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_440_938_160
        );
        assert!(parse_amz_date("2015-08-30").is_none());
    }

    #[test]
    fn converse_checks_catch_what_bedrock_refuses() {
        let ok = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
        check_converse(&ok).unwrap();
        for (bad, needle) in [
            (
                json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}], "model": "x"}),
                "extraneous key [model]",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}),
                "start with a user",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]}),
                "alternate",
            ),
            (
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                "empty",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "a", "content": []}}]}]}),
                "toolConfig",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "inferenceConfig": {"max_tokens": 3}}),
                "extraneous key [max_tokens]",
            ),
        ] {
            let err = check_converse(&bad).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3A0").as_deref(), Some("a:0"));
        assert_eq!(percent_decode("a%3"), None);
    }
}
