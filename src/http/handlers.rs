//! Thin handlers: extract, call one gateway function, map the result.

use super::body::read_body;
use super::error::ApiError;
use super::middleware::RouteInfo;
use super::AppState;
use crate::gateway::{self, CacheControls, CacheStatus, Reply, ReplyBody};
use crate::providers::Endpoint;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::time::Instant;

pub const X_DEJA_PROVIDER: HeaderName = HeaderName::from_static("x-deja-provider");
pub const X_DEJA_MODEL: HeaderName = HeaderName::from_static("x-deja-model");
pub const X_DEJA_OVERHEAD_US: HeaderName = HeaderName::from_static("x-deja-overhead-us");
pub const X_DEJA_CACHE: HeaderName = HeaderName::from_static("x-deja-cache");
pub const X_DEJA_CACHE_SIMILARITY: HeaderName = HeaderName::from_static("x-deja-cache-similarity");
pub const X_DEJA_CACHE_ENTRY: HeaderName = HeaderName::from_static("x-deja-cache-entry");
pub const X_DEJA_CACHE_REFUSED: HeaderName = HeaderName::from_static("x-deja-cache-refused");
pub const X_DEJA_CACHE_BYPASS_REASON: HeaderName =
    HeaderName::from_static("x-deja-cache-bypass-reason");
pub const X_DEJA_EMBED_US: HeaderName = HeaderName::from_static("x-deja-embed-us");

/// The request's cache controls from its headers (every occurrence of each).
pub(super) fn cache_controls(req: &HttpRequest) -> Result<CacheControls, gateway::GatewayError> {
    CacheControls::from_headers(
        req.headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes())),
    )
}

async fn forward(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    endpoint: Endpoint,
) -> Result<HttpResponse, ApiError> {
    let start = Instant::now();
    let controls = cache_controls(&req)?;
    let body = read_body(&req, payload, &state).await?;
    let reply = gateway::forward(&state.gateway, endpoint, &body, &controls).await?;
    Ok(respond(reply, start))
}

pub async fn chat_completions(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    forward(state, req, payload, Endpoint::ChatCompletions).await
}

pub async fn completions(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    forward(state, req, payload, Endpoint::Completions).await
}

pub async fn embeddings(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    forward(state, req, payload, Endpoint::Embeddings).await
}

pub async fn models(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(gateway::list_models(&state.gateway))
}

/// `GET /metrics`; with `metrics.require_token`, only for the admin token.
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if state.gateway.config.metrics.require_token {
        super::admin::authorize(&req)?;
    }
    Ok(HttpResponse::Ok()
        .content_type(crate::telemetry::metrics::CONTENT_TYPE)
        .body(gateway::admin::metrics(&state.gateway)))
}

/// `/metrics` on the main port: 404 when `metrics.listen` moves it elsewhere.
pub async fn metrics_on_main_port(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if !state.gateway.config.metrics.listen.is_empty() {
        return not_found(req).await;
    }
    metrics(state, req).await
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let providers = state.gateway.providers().count();
    if state.gateway.is_ready() {
        HttpResponse::Ok().json(json!({"status": "ready", "providers": providers}))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "1"))
            .json(json!({"status": "starting", "providers": providers}))
    }
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

/// Map a gateway reply to the HTTP response, with deja's headers.
pub(super) fn respond(reply: Reply, start: Instant) -> HttpResponse {
    let overhead = start.elapsed().saturating_sub(reply.upstream).as_micros();
    let status = actix_web::http::StatusCode::from_u16(reply.status)
        .unwrap_or(actix_web::http::StatusCode::OK);
    let mut b = HttpResponse::build(status);
    if let Ok(v) = HeaderValue::from_str(&reply.provider) {
        b.insert_header((X_DEJA_PROVIDER, v));
    }
    if let Ok(v) = HeaderValue::from_str(&reply.model) {
        b.insert_header((X_DEJA_MODEL, v));
    }
    b.insert_header((X_DEJA_OVERHEAD_US, overhead.to_string()));
    let c = &reply.cache;
    b.insert_header((X_DEJA_CACHE, c.status.as_str()));
    if let Some(s) = c.similarity {
        b.insert_header((X_DEJA_CACHE_SIMILARITY, format!("{s:.4}")));
    }
    if let Some(id) = c
        .entry
        .filter(|_| matches!(c.status, CacheStatus::HitExact | CacheStatus::HitSemantic))
    {
        b.insert_header((X_DEJA_CACHE_ENTRY, id.to_string()));
    }
    if let Some(r) = &c.refused {
        if let Ok(v) = HeaderValue::from_str(r) {
            b.insert_header((X_DEJA_CACHE_REFUSED, v));
        }
    }
    if let Some(r) = c.bypass_reason {
        b.insert_header((X_DEJA_CACHE_BYPASS_REASON, r.as_str()));
    }
    if c.coalesced {
        b.insert_header(("x-deja-cache-coalesced", "true"));
    }
    if let Some(e) = c.embed {
        b.insert_header((X_DEJA_EMBED_US, e.as_micros().to_string()));
    }
    let info = RouteInfo {
        provider: reply.provider,
        model: reply.model,
    };
    let mut res = match reply.body {
        ReplyBody::Json(bytes) => b.content_type("application/json").body(bytes),
        ReplyBody::Stream(s) => b
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(s),
    };
    res.extensions_mut().insert(info);
    res
}
