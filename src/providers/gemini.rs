//! Google's `generateContent` wire format, shared by the Gemini API (`x-goog-api-key`) and
//! Vertex AI (service-account OAuth token, regional endpoint).
//!
//! References:
//! - generateContent / streamGenerateContent: <https://ai.google.dev/api/generate-content>
//!   and <https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/projects.locations.publishers.models/generateContent>
//! - function calling: <https://ai.google.dev/gemini-api/docs/function-calling>
//! - embeddings: <https://ai.google.dev/api/embeddings#method:-models.batchembedcontents>,
//!   Vertex `:predict`: <https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api>
//! - models.list: <https://ai.google.dev/api/models#method:-models.list>
//! - errors: <https://ai.google.dev/gemini-api/docs/troubleshooting> (`{"error": {"code", "message", "status"}}`)
//!
//! OpenAI -> Google: `system`/`developer` messages become `systemInstruction`; `assistant`
//! becomes role `model` (its `tool_calls` become `functionCall` parts); `tool` messages become
//! `functionResponse` parts of a `user` turn (consecutive ones share a turn); image data URLs
//! become `inlineData`, other image URLs `fileData`; `tools` become `functionDeclarations`
//! (schemas reduced to the OpenAPI subset Google accepts), `tool_choice` becomes
//! `toolConfig.functionCallingConfig`; sampling options go to `generationConfig`.
//!
//! Google -> OpenAI: candidates become choices, `functionCall` parts `tool_calls` (ids are
//! generated; a `thoughtSignature` rides along in the id so that it is sent back on the next
//! turn, as Gemini's thinking models require), `finishReason` is mapped (safety-type reasons
//! and a blocked prompt become `content_filter`), `usageMetadata` becomes `usage`.

use super::chat::{ChatChunk, ChunkChoice, ChunkDelta};
use super::sse::{SseDecoder, SseEvent};
use super::stream::{chunk_stream, ChunkHook, HookError};
use super::vertex_auth::TokenSource;
use super::{
    ChunkStream, Endpoint, Lease, PoolError, ProviderAdapter, ProviderError, ProviderRequest,
};
use crate::config::{ProviderConfig, VERTEX_DEFAULT_LOCATION};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Separates a generated tool-call id from the Gemini `thoughtSignature` it carries.
const SIG_SEP: &str = "__thought__";

/// Where the requests go and how they are authorised.
#[derive(Debug, Clone)]
enum Target {
    /// `{base}/models/{model}:method`, `x-goog-api-key`.
    Gemini,
    /// `{base}/projects/{p}/locations/{l}/publishers/google/models/{model}:method`, Bearer.
    Vertex {
        project: Arc<str>,
        location: Arc<str>,
        auth: Arc<TokenSource>,
    },
}

#[derive(Debug, Clone)]
pub struct GeminiAdapter {
    target: Target,
}

impl GeminiAdapter {
    pub fn new(id: &str, cfg: &ProviderConfig) -> Result<Self, PoolError> {
        let err = |message: String| PoolError::Build {
            provider: id.to_owned(),
            message,
        };
        let Some(cfg) = cfg.vertex() else {
            return Ok(GeminiAdapter {
                target: Target::Gemini,
            });
        };
        let path = cfg.credentials_file.as_ref().ok_or_else(|| {
            err("Vertex AI needs a service-account key file: set credentials_file or GOOGLE_APPLICATION_CREDENTIALS".into())
        })?;
        let auth = TokenSource::from_file(path).map_err(|e| err(e.to_string()))?;
        let project = cfg
            .project
            .clone()
            .or_else(|| auth.project_id().map(str::to_owned))
            .ok_or_else(|| {
                err("Vertex AI needs `project` (the key file names no project_id)".into())
            })?;
        let location = cfg
            .location
            .clone()
            .unwrap_or_else(|| VERTEX_DEFAULT_LOCATION.to_owned());
        Ok(GeminiAdapter {
            target: Target::Vertex {
                project: project.into(),
                location: location.into(),
                auth: Arc::new(auth),
            },
        })
    }

    /// How many access tokens this adapter fetched (Vertex AI; 0 for Gemini).
    pub fn token_fetches(&self) -> u64 {
        match &self.target {
            Target::Gemini => 0,
            Target::Vertex { auth, .. } => auth.fetches(),
        }
    }

    /// The URL of `method` (`generateContent`, `streamGenerateContent`, ...) on `model`.
    fn method_url(&self, base: &str, model: &str, method: &str) -> String {
        match &self.target {
            Target::Gemini => format!("{base}/models/{model}:{method}"),
            Target::Vertex {
                project, location, ..
            } => format!(
                "{base}/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}"
            ),
        }
    }

    async fn authorize(
        &self,
        lease: &Lease,
        b: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(match &self.target {
            Target::Gemini => match &lease.key {
                Some(k) => b.header("x-goog-api-key", k.expose()),
                None => b,
            },
            Target::Vertex { auth, .. } => {
                let token = auth
                    .token(&lease.client, &lease.provider, lease.timeout)
                    .await?;
                b.bearer_auth(token.expose())
            }
        })
    }
}

/// A request deja cannot translate: answered as HTTP 400 without calling the provider.
#[derive(Debug)]
pub struct BadRequest {
    pub message: String,
    pub param: Option<String>,
}

fn bad(message: impl Into<String>, param: impl Into<String>) -> BadRequest {
    BadRequest {
        message: message.into(),
        param: Some(param.into()),
    }
}

fn bad_request_error(provider: &Arc<str>, e: BadRequest) -> ProviderError {
    ProviderError::Upstream {
        provider: provider.clone(),
        status: 400,
        body: Bytes::from(
            json!({"error": {"message": e.message, "type": "invalid_request_error", "param": e.param, "code": null}})
                .to_string(),
        ),
    }
}

/// Model names go into the URL path: keep them to the characters Google's names use.
fn check_model(model: &str) -> Result<&str, BadRequest> {
    let m = model.strip_prefix("models/").unwrap_or(model);
    if m.is_empty()
        || !m
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(bad(
            format!("Invalid model name `{model}` for a Google provider."),
            "model",
        ));
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// Request translation
// ---------------------------------------------------------------------------------------

/// The text of an OpenAI `content` (a string or an array of text parts).
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `data:image/png;base64,AAAA` -> (`image/png`, `AAAA`).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((
        if mime.is_empty() {
            "application/octet-stream"
        } else {
            mime
        },
        data,
    ))
}

fn mime_from_extension(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("pdf") => "application/pdf",
        Some("mp3") => "audio/mp3",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        _ => "image/jpeg",
    }
}

/// OpenAI content parts -> Google parts.
fn content_parts(content: Option<&Value>, at: &str) -> Result<Vec<Value>, BadRequest> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (j, p) in items.iter().enumerate() {
                let here = format!("{at}[{j}]");
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                match kind {
                    "text" => {
                        let t = p.get("text").and_then(Value::as_str).ok_or_else(|| {
                            bad("A text part needs a string `text`.", format!("{here}.text"))
                        })?;
                        if !t.is_empty() {
                            out.push(json!({"text": t}));
                        }
                    }
                    "image_url" => {
                        let url = p
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                bad(
                                    "An image_url part needs `image_url.url`.",
                                    format!("{here}.image_url"),
                                )
                            })?;
                        if url.starts_with("data:") {
                            let (mime, data) = parse_data_url(url).ok_or_else(|| {
                                bad(
                                    "Image data URLs must be base64 (`data:<mime>;base64,...`).",
                                    format!("{here}.image_url.url"),
                                )
                            })?;
                            out.push(json!({"inlineData": {"mimeType": mime, "data": data}}));
                        } else {
                            out.push(json!({"fileData": {"mimeType": mime_from_extension(url), "fileUri": url}}));
                        }
                    }
                    "input_audio" => {
                        let a = p.get("input_audio");
                        let data = a.and_then(|a| a.get("data")).and_then(Value::as_str);
                        let format = a.and_then(|a| a.get("format")).and_then(Value::as_str);
                        let (Some(data), Some(format)) = (data, format) else {
                            return Err(bad(
                                "An input_audio part needs `data` and `format`.",
                                format!("{here}.input_audio"),
                            ));
                        };
                        out.push(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}));
                    }
                    "file" => {
                        let fd = p
                            .get("file")
                            .and_then(|f| f.get("file_data"))
                            .and_then(Value::as_str)
                            .and_then(parse_data_url)
                            .ok_or_else(|| {
                                bad(
                                    "A file part needs `file.file_data` as a base64 data URL.",
                                    format!("{here}.file"),
                                )
                            })?;
                        out.push(json!({"inlineData": {"mimeType": fd.0, "data": fd.1}}));
                    }
                    other => {
                        return Err(bad(
                            format!(
                                "Content part type `{other}` is not supported by Google providers."
                            ),
                            format!("{here}.type"),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad(
            "`content` must be a string or an array.",
            at.to_owned(),
        )),
    }
}

/// Keys of Google's OpenAPI-subset `Schema` object that deja keeps.
const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// Reduce a JSON Schema to what Google's `Schema` accepts (unknown keys such as
/// `additionalProperties` or `$schema` are rejected by the API): drop other keys, turn
/// `["string", "null"]` types into `nullable`, `const` into a one-value `enum`.
pub fn sanitize_schema(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "type" => match v {
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types
                        .iter()
                        .filter(|t| t.as_str() != Some("null"))
                        .collect();
                    if non_null.len() < types.len() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    if let Some(t) = non_null.first() {
                        out.insert("type".into(), (*t).clone());
                    }
                }
                _ => {
                    out.insert("type".into(), v.clone());
                }
            },
            "const" => {
                out.insert("enum".into(), json!([v]));
            }
            "properties" => {
                if let Some(props) = v.as_object() {
                    let p: Map<String, Value> = props
                        .iter()
                        .map(|(name, s)| (name.clone(), sanitize_schema(s)))
                        .collect();
                    out.insert("properties".into(), Value::Object(p));
                }
            }
            "items" => {
                out.insert("items".into(), sanitize_schema(v));
            }
            "anyOf" => {
                if let Some(a) = v.as_array() {
                    out.insert(
                        "anyOf".into(),
                        Value::Array(a.iter().map(sanitize_schema).collect()),
                    );
                }
            }
            k if SCHEMA_KEYS.contains(&k) => {
                out.insert(k.to_owned(), v.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

fn function_declaration(tool: &Value, at: &str) -> Result<Value, BadRequest> {
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return Err(bad(
            "Only tools of type `function` are supported by Google providers.",
            format!("{at}.type"),
        ));
    }
    let f = tool.get("function").ok_or_else(|| {
        bad(
            "A function tool needs `function`.",
            format!("{at}.function"),
        )
    })?;
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("A function needs a `name`.", format!("{at}.function.name")))?;
    let mut decl = json!({"name": name});
    if let Some(d) = f.get("description").and_then(Value::as_str) {
        decl["description"] = json!(d);
    }
    if let Some(p) = f.get("parameters") {
        let s = sanitize_schema(p);
        // An object without properties is rejected: a function without parameters omits them.
        let empty = s
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty());
        if !empty {
            decl["parameters"] = s;
        }
    }
    Ok(decl)
}

fn tool_config(choice: &Value) -> Result<Option<Value>, BadRequest> {
    let cfg = match choice {
        Value::Null => return Ok(None),
        Value::String(s) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" => json!({"mode": "ANY"}),
            other => {
                return Err(bad(
                    format!("Unknown tool_choice `{other}`."),
                    "tool_choice",
                ))
            }
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice needs `function.name`.", "tool_choice"))?;
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => return Err(bad("Invalid tool_choice.", "tool_choice")),
    };
    Ok(Some(json!({"functionCallingConfig": cfg})))
}

fn generation_config(body: &Map<String, Value>) -> Result<Map<String, Value>, BadRequest> {
    let mut g = Map::new();
    let copy = |g: &mut Map<String, Value>, from: &str, to: &str| {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            g.insert(to.into(), v.clone());
        }
    };
    copy(&mut g, "temperature", "temperature");
    copy(&mut g, "top_p", "topP");
    copy(&mut g, "top_k", "topK");
    copy(&mut g, "max_tokens", "maxOutputTokens");
    copy(&mut g, "max_completion_tokens", "maxOutputTokens");
    copy(&mut g, "n", "candidateCount");
    copy(&mut g, "presence_penalty", "presencePenalty");
    copy(&mut g, "frequency_penalty", "frequencyPenalty");
    copy(&mut g, "seed", "seed");
    match body.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            g.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            g.insert("stopSequences".into(), Value::Array(a.clone()));
        }
        Some(_) => return Err(bad("`stop` must be a string or an array.", "stop")),
    }
    if let Some(rf) = body.get("response_format").filter(|v| !v.is_null()) {
        match rf.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                g.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                g.insert("responseMimeType".into(), json!("application/json"));
                if let Some(s) = rf.pointer("/json_schema/schema") {
                    g.insert("responseSchema".into(), sanitize_schema(s));
                }
            }
            _ => {
                return Err(bad(
                    "response_format.type must be text, json_object or json_schema.",
                    "response_format.type",
                ))
            }
        }
    }
    Ok(g)
}

/// `tool_call.function.arguments` (a JSON string) -> the `args` object.
fn parse_args(args: Option<&Value>, at: &str) -> Result<Value, BadRequest> {
    match args {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(bad(
                "Tool-call arguments must be a JSON object for Google providers.",
                at.to_owned(),
            )),
        },
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(bad(
            "Tool-call arguments must be a JSON object.",
            at.to_owned(),
        )),
    }
}

/// An OpenAI chat request -> a Google `GenerateContentRequest`.
pub fn chat_request(body: &Map<String, Value>) -> Result<Value, BadRequest> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`messages` must be an array.", "messages"))?;
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // tool_call id -> function name, for the tool messages answering them.
    let mut call_names: HashMap<String, String> = HashMap::new();
    // Whether the last content is a user turn made only of function responses.
    let mut last_is_responses = false;
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" => {
                let t = content_text(m.get("content"));
                if !t.is_empty() {
                    system.push(json!({"text": t}));
                }
                continue;
            }
            "user" => {
                let parts = content_parts(m.get("content"), &format!("{at}.content"))?;
                contents.push(json!({"role": "user", "parts": parts}));
                last_is_responses = false;
            }
            "assistant" => {
                let mut parts = content_parts(m.get("content"), &format!("{at}.content"))?;
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for (j, c) in calls.iter().enumerate() {
                        let cat = format!("{at}.tool_calls[{j}]");
                        let name = c
                            .pointer("/function/name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                bad(
                                    "A tool call needs `function.name`.",
                                    format!("{cat}.function.name"),
                                )
                            })?;
                        let args = parse_args(
                            c.pointer("/function/arguments"),
                            &format!("{cat}.function.arguments"),
                        )?;
                        let id = c.get("id").and_then(Value::as_str).unwrap_or("");
                        call_names.insert(id.to_owned(), name.to_owned());
                        let mut part = json!({"functionCall": {"name": name, "args": args}});
                        if let Some((_, sig)) = id.split_once(SIG_SEP) {
                            part["thoughtSignature"] = json!(sig);
                        }
                        parts.push(part);
                    }
                } else if let Some(fc) = m.get("function_call").filter(|v| v.is_object()) {
                    let name = fc.get("name").and_then(Value::as_str).unwrap_or("");
                    let args = parse_args(
                        fc.get("arguments"),
                        &format!("{at}.function_call.arguments"),
                    )?;
                    parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                if parts.is_empty() {
                    continue;
                }
                contents.push(json!({"role": "model", "parts": parts}));
                last_is_responses = false;
            }
            "tool" | "function" => {
                let name = if role == "tool" {
                    let id = m
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            bad(
                                "A tool message needs `tool_call_id`.",
                                format!("{at}.tool_call_id"),
                            )
                        })?;
                    call_names
                        .get(id)
                        .cloned()
                        .or_else(|| m.get("name").and_then(Value::as_str).map(str::to_owned))
                        .ok_or_else(|| {
                            bad(
                                format!(
                                    "tool_call_id `{id}` answers no earlier assistant tool call."
                                ),
                                format!("{at}.tool_call_id"),
                            )
                        })?
                } else {
                    m.get("name")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            bad("A function message needs `name`.", format!("{at}.name"))
                        })?
                };
                let text = content_text(m.get("content"));
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(other) => json!({"content": other}),
                    Err(_) => json!({"content": text}),
                };
                let part = json!({"functionResponse": {"name": name, "response": response}});
                if last_is_responses {
                    if let Some(parts) = contents
                        .last_mut()
                        .and_then(|c| c.get_mut("parts"))
                        .and_then(Value::as_array_mut)
                    {
                        parts.push(part);
                        continue;
                    }
                }
                contents.push(json!({"role": "user", "parts": [part]}));
                last_is_responses = true;
            }
            other => {
                return Err(bad(
                    format!("Unknown message role `{other}`."),
                    format!("{at}.role"),
                ))
            }
        }
    }
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        if !tools.is_empty() {
            let decls = tools
                .iter()
                .enumerate()
                .map(|(i, t)| function_declaration(t, &format!("tools[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        }
    }
    if let Some(tc) = tool_config(body.get("tool_choice").unwrap_or(&Value::Null))? {
        if out.contains_key("tools") {
            out.insert("toolConfig".into(), tc);
        }
    }
    let g = generation_config(body)?;
    if !g.is_empty() {
        out.insert("generationConfig".into(), Value::Object(g));
    }
    Ok(Value::Object(out))
}

/// OpenAI embeddings `input` -> the texts (token-id inputs are not supported).
fn embedding_inputs(body: &Map<String, Value>) -> Result<Vec<String>, BadRequest> {
    match body.get("input") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    bad(
                        "Google providers embed text only: `input` must be a string or an array of strings.",
                        format!("input[{i}]"),
                    )
                })
            })
            .collect(),
        _ => Err(bad("`input` must be a non-empty string or array of strings.", "input")),
    }
}

fn dimensions(body: &Map<String, Value>) -> Result<Option<u64>, BadRequest> {
    match body.get("dimensions") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|d| *d > 0)
            .map(Some)
            .ok_or_else(|| bad("`dimensions` must be a positive integer.", "dimensions")),
    }
}

/// Gemini `batchEmbedContents` body.
pub fn gemini_embed_request(model: &str, body: &Map<String, Value>) -> Result<Value, BadRequest> {
    let dims = dimensions(body)?;
    let requests: Vec<Value> = embedding_inputs(body)?
        .into_iter()
        .map(|t| {
            let mut r =
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": t}]}});
            if let Some(d) = dims {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    Ok(json!({"requests": requests}))
}

/// Vertex AI text-embedding `:predict` body.
pub fn vertex_embed_request(body: &Map<String, Value>) -> Result<Value, BadRequest> {
    let dims = dimensions(body)?;
    let instances: Vec<Value> = embedding_inputs(body)?
        .into_iter()
        .map(|t| json!({"content": t}))
        .collect();
    let mut out = json!({"instances": instances});
    if let Some(d) = dims {
        out["parameters"] = json!({"outputDimensionality": d});
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Response translation
// ---------------------------------------------------------------------------------------

/// Google `finishReason` -> OpenAI `finish_reason`.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_call_id(signature: Option<&str>) -> String {
    let id = format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]);
    match signature {
        Some(sig) => format!("{id}{SIG_SEP}{sig}"),
        None => id,
    }
}

/// `usageMetadata` -> OpenAI `usage`.
pub fn usage(meta: &Value) -> Value {
    let n = |k: &str| meta.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt = n("promptTokenCount") + n("toolUsePromptTokenCount");
    let completion = n("candidatesTokenCount") + n("thoughtsTokenCount");
    let total = match n("totalTokenCount") {
        0 => prompt + completion,
        t => t,
    };
    let mut u =
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total});
    if meta.get("cachedContentTokenCount").is_some() {
        u["prompt_tokens_details"] = json!({"cached_tokens": n("cachedContentTokenCount")});
    }
    if meta.get("thoughtsTokenCount").is_some() {
        u["completion_tokens_details"] = json!({"reasoning_tokens": n("thoughtsTokenCount")});
    }
    u
}

/// A candidate's parts -> (text, tool_calls); `thought` parts are left out.
fn candidate_parts(cand: &Value) -> (Option<String>, Vec<Value>) {
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for p in cand
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.get_or_insert_with(String::new).push_str(t);
        }
        if let Some(fc) = p.get("functionCall") {
            let name = fc.get("name").and_then(Value::as_str).unwrap_or("");
            let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
            calls.push(json!({
                "id": new_call_id(p.get("thoughtSignature").and_then(Value::as_str)),
                "type": "function",
                "function": {"name": name, "arguments": args.to_string()},
            }));
        }
    }
    (text, calls)
}

fn response_id(v: &Value) -> String {
    match v.get("responseId").and_then(Value::as_str) {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
    }
}

fn blocked(v: &Value) -> bool {
    v.pointer("/promptFeedback/blockReason").is_some()
}

/// A Google `GenerateContentResponse` -> an OpenAI `chat.completion`.
pub fn chat_response(v: &Value, model: &str) -> Value {
    let mut choices = Vec::new();
    for (pos, cand) in v
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let index = cand
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(pos as u64);
        let (text, calls) = candidate_parts(cand);
        let reason = cand
            .get("finishReason")
            .and_then(Value::as_str)
            .unwrap_or("STOP");
        let mut message = json!({"role": "assistant", "content": text});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls.clone());
        }
        choices.push(json!({
            "index": index,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(reason, !calls.is_empty()),
        }));
    }
    if choices.is_empty() && blocked(v) {
        choices.push(json!({
            "index": 0,
            "message": {"role": "assistant", "content": null},
            "logprobs": null,
            "finish_reason": "content_filter",
        }));
    }
    let model = v
        .get("modelVersion")
        .and_then(Value::as_str)
        .unwrap_or(model);
    let mut out = json!({
        "id": response_id(v),
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": choices,
    });
    if let Some(meta) = v.get("usageMetadata") {
        out["usage"] = usage(meta);
    }
    out
}

fn encode_vector(values: &[Value], base64_out: bool) -> Value {
    if !base64_out {
        return Value::Array(values.to_vec());
    }
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&(v.as_f64().unwrap_or(0.0) as f32).to_le_bytes());
    }
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn wants_base64(body: &Map<String, Value>) -> bool {
    body.get("encoding_format").and_then(Value::as_str) == Some("base64")
}

/// Gemini `{embeddings: [{values}]}` or Vertex `{predictions: [{embeddings: {values,
/// statistics}}]}` -> the OpenAI embedding list.
pub fn embeddings_response(v: &Value, model: &str, base64_out: bool) -> Result<Value, String> {
    let mut data = Vec::new();
    let mut tokens = 0u64;
    if let Some(list) = v.get("embeddings").and_then(Value::as_array) {
        for (i, e) in list.iter().enumerate() {
            let values = e
                .get("values")
                .and_then(Value::as_array)
                .ok_or("an embedding has no `values`")?;
            data.push(json!({"object": "embedding", "index": i, "embedding": encode_vector(values, base64_out)}));
        }
    } else if let Some(preds) = v.get("predictions").and_then(Value::as_array) {
        for (i, p) in preds.iter().enumerate() {
            let values = p
                .pointer("/embeddings/values")
                .and_then(Value::as_array)
                .ok_or("a prediction has no `embeddings.values`")?;
            tokens += p
                .pointer("/embeddings/statistics/token_count")
                .and_then(Value::as_f64)
                .unwrap_or(0.0) as u64;
            data.push(json!({"object": "embedding", "index": i, "embedding": encode_vector(values, base64_out)}));
        }
    } else {
        return Err("neither `embeddings` nor `predictions` in the response".into());
    }
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

/// A Google error body `{"error": {"code", "message", "status"}}` (or a list of them) ->
/// an OpenAI-shaped error body.
pub fn error_body(provider: &str, status: u16, body: &[u8]) -> Bytes {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let err = match &v {
        Value::Array(a) => a.first().and_then(|e| e.get("error")),
        other => other.get("error"),
    };
    let Some(err) = err.filter(|e| e.is_object()) else {
        return super::openai::openai_error_body(provider, status, Bytes::copy_from_slice(body));
    };
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let gstatus = err.get("status").and_then(Value::as_str);
    let kind = match (gstatus, status) {
        (Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE"), _) => {
            "invalid_request_error"
        }
        (Some("UNAUTHENTICATED"), _) => "authentication_error",
        (Some("PERMISSION_DENIED"), _) => "permission_error",
        (Some("NOT_FOUND"), _) => "not_found_error",
        (Some("RESOURCE_EXHAUSTED"), _) => "rate_limit_error",
        (_, 400) => "invalid_request_error",
        (_, 401) => "authentication_error",
        (_, 403) => "permission_error",
        (_, 404) => "not_found_error",
        (_, 429) => "rate_limit_error",
        _ => "api_error",
    };
    Bytes::from(
        json!({"error": {
            "message": message,
            "type": kind,
            "param": null,
            "code": gstatus,
        }})
        .to_string(),
    )
}

// ---------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------

/// Turns Google stream chunks into OpenAI `chat.completion.chunk`s.
pub struct StreamTranslator {
    id: Option<String>,
    model: String,
    created: u64,
    /// Per candidate index: role sent, tool calls so far, finished.
    candidates: HashMap<u64, (bool, usize, bool)>,
    usage: Option<Value>,
}

impl StreamTranslator {
    pub fn new(model: &str) -> Self {
        StreamTranslator {
            id: None,
            model: model.to_owned(),
            created: now_secs(),
            candidates: HashMap::new(),
            usage: None,
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatChunk {
        let id = self.id.clone().unwrap_or_default();
        ChatChunk::new(id, self.created, self.model.clone(), choices)
    }

    /// One Google chunk -> OpenAI chunks.
    pub fn push(&mut self, v: &Value) -> Vec<ChatChunk> {
        if self.id.is_none() {
            self.id = Some(response_id(v));
        }
        if let Some(m) = v.get("modelVersion").and_then(Value::as_str) {
            self.model = m.to_owned();
        }
        if let Some(meta) = v.get("usageMetadata") {
            self.usage = Some(usage(meta));
        }
        let mut choices = Vec::new();
        for (pos, cand) in v
            .get("candidates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = cand
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64);
            let (text, calls) = candidate_parts(cand);
            let st = self.candidates.entry(index).or_insert((false, 0, false));
            let mut delta = ChunkDelta::default();
            if !st.0 {
                delta.role = Some("assistant".into());
                st.0 = true;
            }
            delta.content = text.filter(|t| !t.is_empty());
            if !calls.is_empty() {
                let deltas: Vec<Value> = calls
                    .into_iter()
                    .map(|mut c| {
                        c["index"] = json!(st.1);
                        st.1 += 1;
                        c
                    })
                    .collect();
                delta.tool_calls = Some(deltas);
            }
            let finish = cand
                .get("finishReason")
                .and_then(Value::as_str)
                .map(|r| finish_reason(r, st.1 > 0));
            if finish.is_some() {
                st.2 = true;
            }
            if delta.is_empty() && finish.is_none() {
                continue;
            }
            choices.push(ChunkChoice::new(index, delta, finish));
        }
        if choices.is_empty() && blocked(v) && !self.candidates.contains_key(&0) {
            self.candidates.insert(0, (true, 0, true));
            let delta = ChunkDelta {
                role: Some("assistant".into()),
                ..Default::default()
            };
            choices.push(ChunkChoice::new(0, delta, Some("content_filter")));
        }
        if choices.is_empty() {
            return Vec::new();
        }
        vec![self.chunk(choices)]
    }

    /// Whether every candidate seen has finished (and at least one was seen).
    pub fn finished(&self) -> bool {
        !self.candidates.is_empty() && self.candidates.values().all(|c| c.2)
    }

    /// The chunk after the last Google chunk: usage (the stream driver drops it unless
    /// the client asked for it).
    pub fn finish(&mut self) -> Vec<ChatChunk> {
        let usage = self.usage.clone().unwrap_or_else(
            || json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
        );
        vec![self.chunk(Vec::new()).with_usage(usage)]
    }
}

/// Gemini's stream for the shared driver: each SSE event is one Google chunk, or an
/// `{"error": ...}` object that ends the stream with that error.
pub struct GeminiStream {
    provider: Arc<str>,
    tr: StreamTranslator,
}

impl GeminiStream {
    pub fn new(provider: &Arc<str>, model: &str) -> Self {
        GeminiStream {
            provider: provider.clone(),
            tr: StreamTranslator::new(model),
        }
    }

    #[cfg(test)]
    pub fn translator(&self) -> &StreamTranslator {
        &self.tr
    }
}

impl ChunkHook<SseEvent> for GeminiStream {
    fn event(&mut self, ev: &SseEvent, out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
        let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
            HookError::Provider(ProviderError::InvalidResponse {
                provider: self.provider.clone(),
                message: format!("stream chunk is not JSON: {e}"),
            })
        })?;
        if let Some(err) = v.get("error") {
            let status = err
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500);
            return Err(HookError::Provider(ProviderError::Upstream {
                provider: self.provider.clone(),
                status,
                body: error_body(&self.provider, status, ev.data.as_bytes()),
            }));
        }
        out.extend(self.tr.push(&v));
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
        if !self.tr.finished() {
            return Err("the stream ended before a finishReason".into());
        }
        out.extend(self.tr.finish());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The adapter
// ---------------------------------------------------------------------------------------

fn request_model(req: &ProviderRequest) -> &str {
    &req.model
}

impl ProviderAdapter for GeminiAdapter {
    async fn build_request(
        &self,
        lease: &Lease,
        req: &ProviderRequest,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let p = &lease.provider;
        let model = check_model(request_model(req)).map_err(|e| bad_request_error(p, e))?;
        let (method, body) = match req.endpoint {
            Endpoint::ChatCompletions => {
                let method = if req.stream {
                    "streamGenerateContent"
                } else {
                    "generateContent"
                };
                (method, chat_request(&req.body))
            }
            Endpoint::Embeddings => match &self.target {
                Target::Gemini => ("batchEmbedContents", gemini_embed_request(model, &req.body)),
                Target::Vertex { .. } => ("predict", vertex_embed_request(&req.body)),
            },
            Endpoint::Completions => {
                return Err(bad_request_error(
                    p,
                    BadRequest {
                        message: "Google providers serve chat, not legacy completions: use /v1/chat/completions.".into(),
                        param: None,
                    },
                ))
            }
        };
        let body = body.map_err(|e| bad_request_error(p, e))?;
        let mut url = self.method_url(&lease.base_url, model, method);
        if req.stream {
            url.push_str("?alt=sse");
        }
        let b = lease
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.authorize(lease, b).await
    }

    fn translate_response(
        &self,
        provider: &Arc<str>,
        req: &ProviderRequest,
        body: Bytes,
    ) -> Result<Bytes, ProviderError> {
        let invalid = |message: String| ProviderError::InvalidResponse {
            provider: provider.clone(),
            message,
        };
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("response is not JSON: {e}")))?;
        let model = request_model(req);
        let out = match req.endpoint {
            Endpoint::Embeddings => {
                embeddings_response(&v, model, wants_base64(&req.body)).map_err(invalid)?
            }
            _ => chat_response(&v, model),
        };
        Ok(Bytes::from(out.to_string()))
    }

    fn translate_stream(
        &self,
        provider: &Arc<str>,
        req: &ProviderRequest,
        resp: reqwest::Response,
    ) -> ChunkStream {
        let hook = GeminiStream::new(provider, request_model(req));
        chunk_stream(provider, req, resp, SseDecoder::new(), hook)
    }

    fn translate_error(&self, provider: &Arc<str>, status: u16, body: Bytes) -> ProviderError {
        ProviderError::Upstream {
            provider: provider.clone(),
            status,
            body: error_body(provider, status, &body),
        }
    }

    /// Gemini: `GET {base}/models` (paged). Vertex AI: the configured models only.
    async fn list_models(&self, lease: &Lease) -> Result<Vec<String>, ProviderError> {
        if matches!(self.target, Target::Vertex { .. }) {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..20 {
            let mut url = format!("{}/models?pageSize=1000", lease.base_url);
            if let Some(p) = &page {
                url.push_str("&pageToken=");
                url.push_str(
                    &url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>(),
                );
            }
            let b = self.authorize(lease, lease.client.get(url)).await?;
            let v = super::fetch_model_list(self, lease, b).await?;
            names.extend(
                super::names_in(&v, "models", "name")
                    .into_iter()
                    .map(|n| n.strip_prefix("models/").map(str::to_owned).unwrap_or(n)),
            );
            match v.get("nextPageToken").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => page = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests;
