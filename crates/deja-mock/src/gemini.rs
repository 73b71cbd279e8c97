//! A mock of Google's Gemini API and Vertex AI for tests, with a fake OAuth token endpoint.
//!
//! - Gemini: `POST /v1beta/models/{model}:{generateContent|streamGenerateContent|batchEmbedContents}`
//!   and `GET /v1beta/models`, authorised by `x-goog-api-key`.
//! - Vertex AI: `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{generateContent|streamGenerateContent|predict}`,
//!   authorised by `Authorization: Bearer` with a token the mock issued and that has not expired.
//! - `POST /token`: the jwt-bearer grant. It VERIFIES the assertion's RS256 signature with the
//!   test service account's public key and its claims (iss, aud, scope, lifetime, kid), and
//!   counts the token requests.
//!
//! Request bodies are checked the way Google's API checks them (unknown fields are errors,
//! roles are `user`/`model`, parts hold exactly one kind of data, schemas use the OpenAPI
//! subset). Answers are deterministic functions of the request, shaped as in
//! <https://ai.google.dev/api/generate-content>, <https://ai.google.dev/api/embeddings>,
//! <https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api>
//! and <https://developers.google.com/identity/protocols/oauth2/service-account#httprest>;
//! errors as in <https://ai.google.dev/gemini-api/docs/troubleshooting>.
//!
//! What the last user text triggers: `fail:NNN` an error with that HTTP status, `block me` a
//! blocked prompt (`promptFeedback.blockReason`), `unsafe` a `SAFETY` stop, `cut me` a
//! `MAX_TOKENS` stop, `break stream` an error event after the first streamed chunk; with
//! tools (and mode not `NONE`) a `functionCall`; after function responses, a text quoting
//! them; otherwise `Echo: <text>`.

use super::runner::Running;
use super::Recorder;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The service account the token endpoint accepts.
#[derive(Debug, Clone)]
pub struct MockServiceAccount {
    pub client_email: String,
    pub private_key_id: String,
    pub public_key_pem: String,
    pub project: String,
    pub location: String,
}

#[derive(Debug, Clone)]
pub struct GeminiRecorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub api_key: Option<String>,
    pub authorization: Option<String>,
    pub body: Value,
}

pub struct GeminiMockState {
    pub api_key: String,
    pub account: Option<MockServiceAccount>,
    /// `expires_in` of the tokens issued from now on.
    pub token_lifetime_secs: AtomicU64,
    token_requests: AtomicU64,
    issued: Mutex<HashMap<String, Instant>>,
    token_uri: OnceLock<String>,
    requests: Recorder<GeminiRecorded>,
    responses: AtomicU64,
}

impl GeminiMockState {
    /// Accepting `api_key` (Gemini) and, if given, `account`'s assertions (Vertex AI).
    pub fn new(api_key: &str, account: Option<MockServiceAccount>) -> Self {
        GeminiMockState {
            api_key: api_key.to_owned(),
            account,
            token_lifetime_secs: AtomicU64::new(3599),
            token_requests: AtomicU64::new(0),
            issued: Mutex::new(HashMap::new()),
            token_uri: OnceLock::new(),
            requests: Recorder::default(),
            responses: AtomicU64::new(0),
        }
    }

    pub fn requests(&self) -> Vec<GeminiRecorded> {
        self.requests.all()
    }

    /// Token requests whose assertion verified (a token was issued).
    pub fn tokens_issued(&self) -> u64 {
        self.issued.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// Every request to `/token`, accepted or not.
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::SeqCst)
    }
}

pub struct GeminiMock {
    pub state: Arc<GeminiMockState>,
    server: Running,
}

impl GeminiMock {
    pub fn start(api_key: &str, account: Option<MockServiceAccount>) -> std::io::Result<Self> {
        let state = Arc::new(GeminiMockState::new(api_key, account));
        let st = state.clone();
        let server = Running::start(move |listener| server(listener, st))?;
        Ok(GeminiMock { state, server })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The Gemini base URL (`.../v1beta`).
    pub fn gemini_base_url(&self) -> String {
        format!("{}/v1beta", self.server.url())
    }

    /// The Vertex AI base URL (`.../v1`).
    pub fn vertex_base_url(&self) -> String {
        format!("{}/v1", self.server.url())
    }

    /// The token endpoint, for the key file's `token_uri`.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.server.url())
    }
}

/// Serve the mock on `listener` (inside an actix System) until stopped: `deja-mock
/// --format gemini` runs it with an API key and no service account.
pub fn server(
    listener: std::net::TcpListener,
    state: Arc<GeminiMockState>,
) -> std::io::Result<actix_web::dev::Server> {
    if let Ok(addr) = listener.local_addr() {
        let _ = state.token_uri.set(format!("http://{addr}/token"));
    }
    let data = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/v1beta/models", web::get().to(list_models))
            .route("/v1beta/models/{call}", web::post().to(gemini))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{call}",
                web::post().to(vertex),
            )
            .route("/token", web::post().to(token))
    })
    .workers(2)
    .shutdown_timeout(1)
    .listen(listener)?
    .run())
}

fn google_status(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

fn google_error(code: u16, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(code)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .json(json!({"error": {"code": code, "message": message, "status": google_status(code)}}))
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn record(state: &GeminiMockState, req: &HttpRequest, body: &Value) {
    state.requests.push(GeminiRecorded {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        api_key: header(req, "x-goog-api-key"),
        authorization: header(req, "authorization"),
        body: body.clone(),
    });
}

fn check_api_key(state: &GeminiMockState, req: &HttpRequest) -> Result<(), Box<HttpResponse>> {
    match header(req, "x-goog-api-key") {
        Some(k) if k == state.api_key => Ok(()),
        Some(_) => Err(Box::new(google_error(
            400,
            "API key not valid. Please pass a valid API key.",
        ))),
        None => Err(Box::new(google_error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        ))),
    }
}

fn check_bearer(state: &GeminiMockState, req: &HttpRequest) -> Result<(), Box<HttpResponse>> {
    let deny = || {
        Box::new(google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."))
    };
    let token = header(req, "authorization")
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .ok_or_else(deny)?;
    let issued = state.issued.lock().unwrap_or_else(|e| e.into_inner());
    match issued.get(&token) {
        Some(exp) if Instant::now() < *exp => Ok(()),
        _ => Err(deny()),
    }
}

async fn list_models(state: web::Data<Arc<GeminiMockState>>, req: HttpRequest) -> HttpResponse {
    record(&state, &req, &Value::Null);
    if let Err(r) = check_api_key(&state, &req) {
        return *r;
    }
    // Two pages, as https://ai.google.dev/api/models#method:-models.list pages with nextPageToken.
    let second = req.query_string().contains("pageToken=page-2");
    if second {
        HttpResponse::Ok().json(json!({"models": [
            {"name": "models/text-embedding-004", "version": "004", "displayName": "Text Embedding 004",
             "supportedGenerationMethods": ["embedContent"]}
        ]}))
    } else {
        HttpResponse::Ok().json(json!({"models": [
            {"name": "models/gemini-2.0-flash", "version": "2.0", "displayName": "Gemini 2.0 Flash",
             "inputTokenLimit": 1048576, "outputTokenLimit": 8192,
             "supportedGenerationMethods": ["generateContent", "countTokens"]},
            {"name": "models/gemini-2.5-pro", "version": "2.5", "displayName": "Gemini 2.5 Pro",
             "supportedGenerationMethods": ["generateContent"]}
        ], "nextPageToken": "page-2"}))
    }
}

fn parse_body(body: &Bytes) -> Result<Value, Box<HttpResponse>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(google_error(
            400,
            &format!("Invalid JSON payload received. {e}"),
        ))
    })
}

async fn gemini(
    state: web::Data<Arc<GeminiMockState>>,
    req: HttpRequest,
    call: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    record(&state, &req, &body);
    if let Err(r) = check_api_key(&state, &req) {
        return *r;
    }
    let Some((model, method)) = call.split_once(':') else {
        return google_error(404, "Method not found.");
    };
    match method {
        "generateContent" => generate(&state, model, &body, false, req.query_string()),
        "streamGenerateContent" => generate(&state, model, &body, true, req.query_string()),
        "batchEmbedContents" => batch_embed(model, &body),
        _ => google_error(404, "Method not found."),
    }
}

async fn vertex(
    state: web::Data<Arc<GeminiMockState>>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: Bytes,
) -> HttpResponse {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    record(&state, &req, &body);
    if let Err(r) = check_bearer(&state, &req) {
        return *r;
    }
    let (project, location, call) = path.into_inner();
    let Some(acct) = &state.account else {
        return google_error(404, "Vertex AI is not configured on this mock.");
    };
    if project != acct.project || location != acct.location {
        return google_error(
            403,
            &format!("Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/{project}/locations/{location}' (or it may not exist)."),
        );
    }
    let Some((model, method)) = call.split_once(':') else {
        return google_error(404, "Method not found.");
    };
    match method {
        "generateContent" => generate(&state, model, &body, false, req.query_string()),
        "streamGenerateContent" => generate(&state, model, &body, true, req.query_string()),
        "predict" => vertex_predict(&body),
        _ => google_error(404, "Method not found."),
    }
}

// --- request checks -------------------------------------------------------------------

fn unknown(name: &str, at: &str) -> String {
    format!("Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field.")
}

fn only_keys(v: &Value, allowed: &[&str], at: &str) -> Result<(), String> {
    let Some(o) = v.as_object() else {
        return Err(format!("Invalid value at '{at}': expected an object"));
    };
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(unknown(k, at));
        }
    }
    Ok(())
}

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

fn check_schema(s: &Value, at: &str) -> Result<(), String> {
    only_keys(s, SCHEMA_KEYS, at)?;
    if let Some(t) = s.get("type") {
        if !t.is_string() {
            return Err(format!("Invalid value at '{at}.type': expected a string"));
        }
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        if props.is_empty() && s.get("type").and_then(Value::as_str) == Some("object") {
            return Err(format!(
                "* GenerateContentRequest.{at}.properties: should be non-empty for OBJECT type"
            ));
        }
        for (k, p) in props {
            check_schema(p, &format!("{at}.properties[{k}]"))?;
        }
    }
    if let Some(i) = s.get("items") {
        check_schema(i, &format!("{at}.items"))?;
    }
    if let Some(a) = s.get("anyOf").and_then(Value::as_array) {
        for (n, x) in a.iter().enumerate() {
            check_schema(x, &format!("{at}.anyOf[{n}]"))?;
        }
    }
    Ok(())
}

const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
];

fn check_part(p: &Value, at: &str) -> Result<(), String> {
    let mut allowed: Vec<&str> = PART_DATA.to_vec();
    allowed.extend(["thought", "thoughtSignature"]);
    only_keys(p, &allowed, at)?;
    let data: Vec<&&str> = PART_DATA.iter().filter(|k| p.get(**k).is_some()).collect();
    if data.len() != 1 {
        return Err(format!("* GenerateContentRequest.{at}.data: required oneof field 'data' must have one initialized field"));
    }
    match *data[0] {
        "text" if !p["text"].is_string() => {
            return Err(format!("Invalid value at '{at}.text'"));
        }
        "inlineData" => {
            only_keys(
                &p["inlineData"],
                &["mimeType", "data"],
                &format!("{at}.inline_data"),
            )?;
            let d = p["inlineData"]["data"].as_str().unwrap_or("");
            use base64::Engine;
            if p["inlineData"]["mimeType"].as_str().is_none()
                || base64::engine::general_purpose::STANDARD.decode(d).is_err()
            {
                return Err(format!(
                    "Invalid value at '{at}.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
                ));
            }
        }
        "fileData" => {
            only_keys(
                &p["fileData"],
                &["mimeType", "fileUri"],
                &format!("{at}.file_data"),
            )?;
        }
        "functionCall" => {
            only_keys(
                &p["functionCall"],
                &["name", "args", "id"],
                &format!("{at}.function_call"),
            )?;
            if !p["functionCall"]["name"].is_string() || !p["functionCall"]["args"].is_object() {
                return Err(format!("Invalid value at '{at}.function_call'"));
            }
        }
        "functionResponse" => {
            only_keys(
                &p["functionResponse"],
                &["name", "response", "id"],
                &format!("{at}.function_response"),
            )?;
            if !p["functionResponse"]["name"].is_string()
                || !p["functionResponse"]["response"].is_object()
            {
                return Err(format!("Invalid value at '{at}.function_response'"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Check a GenerateContentRequest as Google's API does.
pub fn check_generate_request(body: &Value) -> Result<(), String> {
    only_keys(
        body,
        &[
            "contents",
            "systemInstruction",
            "tools",
            "toolConfig",
            "generationConfig",
            "safetySettings",
            "cachedContent",
            "labels",
        ],
        "",
    )?;
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("* GenerateContentRequest.contents: contents is not specified")?;
    for (i, c) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        only_keys(c, &["role", "parts"], &at)?;
        match c.get("role").and_then(Value::as_str) {
            Some("user" | "model") => {}
            other => {
                return Err(format!(
                    "Please use a valid role: user, model. (got {other:?} at {at})"
                ))
            }
        }
        let parts = c
            .get("parts")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or(format!(
                "* GenerateContentRequest.{at}.parts: contents.parts must not be empty."
            ))?;
        for (j, p) in parts.iter().enumerate() {
            check_part(p, &format!("{at}.parts[{j}]"))?;
        }
    }
    if let Some(si) = body.get("systemInstruction") {
        only_keys(si, &["role", "parts"], "system_instruction")?;
        for (j, p) in si
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_part(p, &format!("system_instruction.parts[{j}]"))?;
        }
    }
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        only_keys(t, &["functionDeclarations"], &format!("tools[{i}]"))?;
        for (j, d) in t["functionDeclarations"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("tools[{i}].function_declarations[{j}]");
            only_keys(d, &["name", "description", "parameters"], &at)?;
            if let Some(p) = d.get("parameters") {
                check_schema(p, &format!("{at}.parameters"))?;
            }
        }
    }
    if let Some(tc) = body.get("toolConfig") {
        only_keys(tc, &["functionCallingConfig"], "tool_config")?;
        let fc = &tc["functionCallingConfig"];
        only_keys(
            fc,
            &["mode", "allowedFunctionNames"],
            "tool_config.function_calling_config",
        )?;
        if !matches!(
            fc.get("mode").and_then(Value::as_str),
            Some("AUTO" | "ANY" | "NONE") | None
        ) {
            return Err("Invalid value at 'tool_config.function_calling_config.mode'".into());
        }
    }
    if let Some(g) = body.get("generationConfig") {
        only_keys(
            g,
            &[
                "temperature",
                "topP",
                "topK",
                "maxOutputTokens",
                "stopSequences",
                "candidateCount",
                "presencePenalty",
                "frequencyPenalty",
                "seed",
                "responseMimeType",
                "responseSchema",
                "responseLogprobs",
                "logprobs",
                "thinkingConfig",
            ],
            "generation_config",
        )?;
        if let Some(s) = g.get("responseSchema") {
            check_schema(s, "generation_config.response_schema")?;
        }
    }
    Ok(())
}

// --- answers ----------------------------------------------------------------------------

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn prompt_tokens(body: &Value) -> u64 {
    let mut n = 0;
    for c in body["contents"].as_array().into_iter().flatten() {
        for p in c["parts"].as_array().into_iter().flatten() {
            n += p
                .get("text")
                .and_then(Value::as_str)
                .map(words)
                .unwrap_or(2);
        }
    }
    n
}

fn value_for(schema: &Value) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer" | "number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("object") => args_for(schema),
        _ => schema
            .get("enum")
            .and_then(|e| e.get(0))
            .cloned()
            .unwrap_or_else(|| json!("Paris")),
    }
}

/// Arguments for a declared function: each property given a value of its type.
fn args_for(params: &Value) -> Value {
    let mut out = Map::new();
    for (k, s) in params
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        out.insert(k.clone(), value_for(s));
    }
    Value::Object(out)
}

/// One reply: candidates (or none), prompt feedback, and the answer text for usage.
struct Answer {
    candidates: Vec<Value>,
    feedback: Option<Value>,
    text: String,
}

fn answer(body: &Value) -> Result<Answer, Box<HttpResponse>> {
    let contents = body["contents"].as_array().cloned().unwrap_or_default();
    let last = contents.last().cloned().unwrap_or(Value::Null);
    let parts = last["parts"].as_array().cloned().unwrap_or_default();
    let responses: Vec<&Value> = parts
        .iter()
        .filter_map(|p| p.get("functionResponse"))
        .collect();
    let text: String = parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let n = body
        .pointer("/generationConfig/candidateCount")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if let Some(code) = text
        .strip_prefix("fail:")
        .and_then(|c| c.trim().parse::<u16>().ok())
    {
        let msg = match code {
            429 => "Resource has been exhausted (e.g. check quota).",
            503 => "The model is overloaded. Please try again later.",
            _ => "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        };
        return Err(Box::new(google_error(code, msg)));
    }
    if text.contains("block me") {
        return Ok(Answer {
            candidates: Vec::new(),
            feedback: Some(json!({"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]})),
            text: String::new(),
        });
    }
    let ratings = json!([{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"}]);
    if text.contains("unsafe") {
        return Ok(Answer {
            candidates: vec![
                json!({"finishReason": "SAFETY", "index": 0, "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]}),
            ],
            feedback: None,
            text: String::new(),
        });
    }
    let mode = body
        .pointer("/toolConfig/functionCallingConfig/mode")
        .and_then(Value::as_str)
        .unwrap_or("AUTO");
    let decls: Vec<Value> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| {
            t["functionDeclarations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let (part, finish, answer_text) = if !responses.is_empty() {
        let t = format!(
            "Tool results: {}",
            responses
                .iter()
                .map(|r| r["response"].to_string())
                .collect::<Vec<_>>()
                .join("; ")
        );
        (json!({"text": t}), "STOP", t)
    } else if !decls.is_empty() && mode != "NONE" {
        let allowed = body
            .pointer("/toolConfig/functionCallingConfig/allowedFunctionNames/0")
            .and_then(Value::as_str);
        let decl = decls
            .iter()
            .find(|d| allowed.is_none_or(|a| d["name"].as_str() == Some(a)))
            .unwrap_or(&decls[0]);
        let args = args_for(&decl["parameters"]);
        (
            json!({"functionCall": {"name": decl["name"], "args": args}, "thoughtSignature": "c2lnLTE="}),
            "STOP",
            String::new(),
        )
    } else if text.contains("cut me") {
        (
            json!({"text": "Partial"}),
            "MAX_TOKENS",
            "Partial".to_owned(),
        )
    } else {
        let t = format!("Echo: {text}");
        (json!({"text": t}), "STOP", t)
    };
    let candidates = (0..n)
        .map(|i| {
            json!({"content": {"parts": [part.clone()], "role": "model"}, "finishReason": finish,
                "index": i, "safetyRatings": ratings})
        })
        .collect();
    Ok(Answer {
        candidates,
        feedback: None,
        text: answer_text,
    })
}

fn generate(
    state: &GeminiMockState,
    model: &str,
    body: &Value,
    stream: bool,
    query: &str,
) -> HttpResponse {
    if let Err(m) = check_generate_request(body) {
        return google_error(400, &m);
    }
    if stream && query != "alt=sse" {
        // Without alt=sse Google streams a JSON array, which deja does not parse.
        return google_error(400, "the mock only streams with alt=sse");
    }
    let a = match answer(body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let n = state.responses.fetch_add(1, Ordering::SeqCst) + 1;
    let prompt = prompt_tokens(body);
    let out_tokens = words(&a.text) * a.candidates.len().max(1) as u64;
    let usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": out_tokens,
        "totalTokenCount": prompt + out_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]});
    let rid = format!("mock-resp-{n}");
    if !stream {
        let mut r = json!({"candidates": a.candidates, "usageMetadata": usage, "modelVersion": model, "responseId": rid});
        if let Some(f) = a.feedback {
            r["promptFeedback"] = f;
            r.as_object_mut().map(|o| o.remove("candidates"));
        }
        return HttpResponse::Ok().json(r);
    }
    // Stream: a text answer word by word, the last chunk with finishReason and full usage;
    // anything else in one chunk.
    let mut events: Vec<Value> = Vec::new();
    let partial_usage = json!({"promptTokenCount": prompt, "totalTokenCount": prompt});
    let text_only =
        a.candidates.len() == 1 && a.candidates[0].pointer("/content/parts/0/text").is_some();
    if text_only {
        let cand = &a.candidates[0];
        let text = cand
            .pointer("/content/parts/0/text")
            .and_then(Value::as_str)
            .unwrap_or("");
        let pieces: Vec<&str> = text.split_inclusive(' ').collect();
        for (i, w) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            let mut c = json!({"content": {"parts": [{"text": w}], "role": "model"}, "index": 0});
            if last {
                c["finishReason"] = cand["finishReason"].clone();
                c["safetyRatings"] = cand["safetyRatings"].clone();
            }
            events.push(json!({"candidates": [c],
                "usageMetadata": if last { usage.clone() } else { partial_usage.clone() },
                "modelVersion": model, "responseId": rid}));
        }
    } else {
        let mut r = json!({"usageMetadata": usage, "modelVersion": model, "responseId": rid});
        if let Some(f) = a.feedback {
            r["promptFeedback"] = f;
        } else {
            r["candidates"] = Value::Array(a.candidates);
        }
        events.push(r);
    }
    let last_user = body["contents"]
        .as_array()
        .and_then(|c| c.last())
        .map(|c| c.to_string())
        .unwrap_or_default();
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        out.push_str(&format!("data: {e}\r\n\r\n"));
        if i == 0 && last_user.contains("break stream") {
            out.push_str("data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded. Please try again later.\", \"status\": \"UNAVAILABLE\"}}\r\n\r\n");
            break;
        }
    }
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .body(out)
}

fn vector_for(text: &str, dims: usize) -> Vec<f64> {
    (0..dims)
        .map(|i| ((text.len() + i * 3) % 11) as f64 / 10.0 - 0.5)
        .collect()
}

fn batch_embed(model: &str, body: &Value) -> HttpResponse {
    if let Err(m) = only_keys(body, &["requests"], "") {
        return google_error(400, &m);
    }
    let Some(reqs) = body["requests"].as_array().filter(|r| !r.is_empty()) else {
        return google_error(
            400,
            "* BatchEmbedContentsRequest.requests: requests is not specified",
        );
    };
    let mut out = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let at = format!("requests[{i}]");
        if let Err(m) = only_keys(
            r,
            &[
                "model",
                "content",
                "taskType",
                "title",
                "outputDimensionality",
            ],
            &at,
        ) {
            return google_error(400, &m);
        }
        if r["model"].as_str() != Some(&format!("models/{model}")) {
            return google_error(
                400,
                &format!(
                    "* BatchEmbedContentsRequest.{at}.model: Model must match the parent model."
                ),
            );
        }
        let text: String = r
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        let dims = r["outputDimensionality"].as_u64().unwrap_or(4) as usize;
        out.push(json!({"values": vector_for(&text, dims)}));
    }
    HttpResponse::Ok().json(json!({"embeddings": out}))
}

fn vertex_predict(body: &Value) -> HttpResponse {
    if let Err(m) = only_keys(body, &["instances", "parameters"], "") {
        return google_error(400, &m);
    }
    let Some(instances) = body["instances"].as_array().filter(|r| !r.is_empty()) else {
        return google_error(400, "instances is required");
    };
    let dims = body
        .pointer("/parameters/outputDimensionality")
        .and_then(Value::as_u64)
        .unwrap_or(4) as usize;
    let mut preds = Vec::new();
    let mut chars = 0;
    for inst in instances {
        let Some(text) = inst.get("content").and_then(Value::as_str) else {
            return google_error(400, "Each instance needs `content`.");
        };
        chars += text.len();
        preds.push(
            json!({"embeddings": {"statistics": {"truncated": false, "token_count": words(text)},
            "values": vector_for(text, dims)}}),
        );
    }
    HttpResponse::Ok()
        .json(json!({"predictions": preds, "metadata": {"billableCharacterCount": chars}}))
}

// --- OAuth ------------------------------------------------------------------------------

fn oauth_error(code: &str, desc: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": code, "error_description": desc}))
}

async fn token(state: web::Data<Arc<GeminiMockState>>, body: Bytes) -> HttpResponse {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    let Some(acct) = &state.account else {
        return oauth_error("invalid_client", "no service account configured");
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return oauth_error("invalid_grant", "Invalid JWT: malformed header.");
    };
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return oauth_error("invalid_grant", "Invalid JWT: alg must be RS256.");
    }
    if header.kid.as_deref() != Some(acct.private_key_id.as_str()) {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(acct.public_key_pem.as_bytes()) else {
        return oauth_error("invalid_client", "bad public key in the mock");
    };
    let mut val = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    val.set_audience(&[state.token_uri.get().cloned().unwrap_or_default()]);
    val.set_issuer(&[acct.client_email.as_str()]);
    val.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &val) {
        Ok(d) => d.claims,
        Err(e) => {
            return match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    oauth_error("invalid_grant", "Invalid JWT Signature.")
                }
                other => oauth_error("invalid_grant", &format!("Invalid JWT: {other:?}")),
            }
        }
    };
    let iat = claims["iat"].as_u64().unwrap_or(0);
    let exp = claims["exp"].as_u64().unwrap_or(0);
    if exp <= iat || exp - iat > 3600 {
        return oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    let scope_ok = claims["scope"].as_str().is_some_and(|s| {
        s.split(' ')
            .any(|x| x == "https://www.googleapis.com/auth/cloud-platform")
    });
    if !scope_ok {
        return oauth_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let lifetime = state.token_lifetime_secs.load(Ordering::SeqCst);
    let mut issued = state.issued.lock().unwrap_or_else(|e| e.into_inner());
    let token = format!("ya29.mock-{}", issued.len() + 1);
    issued.insert(
        token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    HttpResponse::Ok()
        .json(json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mock_rejects_what_google_rejects() {
        let ok = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        assert!(check_generate_request(&ok).is_ok());
        let bad = [
            json!({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}),
            json!({"contents": [{"role": "user", "parts": []}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": "AA=="}}]}]}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "messages": []}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"max_tokens": 3}}),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [
                {"name": "f", "parameters": {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}}}]}]}),
            json!({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "not base64!"}}]}]}),
        ];
        for b in bad {
            assert!(check_generate_request(&b).is_err(), "accepted {b}");
        }
    }
}
