//! The Anthropic-compatible routes (`/anthropic/v1/messages`, `/v1/messages` and their
//! `count_tokens`): thin handlers over `gateway::messages`, with errors in Anthropic's
//! shape `{"type":"error","error":{"type","message"}}`, which the Anthropic SDKs parse.

use super::body::read_body;
use super::error::ApiError;
use super::handlers::respond;
use super::AppState;
use crate::gateway::{self, CacheControls, GatewayError};
use crate::providers::anthropic::anthropic_error_body;
use crate::providers::ProviderError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::Value;
use std::time::Instant;

/// Any [`ApiError`], answered in Anthropic's error shape with the same status.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AnthropicError(#[from] pub ApiError);

impl From<GatewayError> for AnthropicError {
    fn from(e: GatewayError) -> Self {
        AnthropicError(ApiError::Gateway(e))
    }
}

impl AnthropicError {
    fn message(&self) -> String {
        // A provider's error body is OpenAI-shaped by now: keep its message.
        if let ApiError::Gateway(GatewayError::Provider(ProviderError::Upstream { body, .. })) =
            &self.0
        {
            if let Some(m) = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
            {
                return m;
            }
        }
        self.0.to_string()
    }
}

impl ResponseError for AnthropicError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let openai = self.0.error_response();
        let mut b = HttpResponse::build(status);
        if let Some(v) = openai.headers().get("retry-after") {
            b.insert_header(("retry-after", v.clone()));
        }
        b.content_type("application/json")
            .body(anthropic_error_body(status.as_u16(), &self.message()).to_string())
    }
}

fn controls(req: &HttpRequest) -> Result<CacheControls, AnthropicError> {
    Ok(super::handlers::cache_controls(req)?)
}

/// `POST /anthropic/v1/messages`, `POST /v1/messages`.
pub async fn messages(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AnthropicError> {
    let start = Instant::now();
    let controls = controls(&req)?;
    let body = read_body(&req, payload, &state).await?;
    let reply = gateway::messages::serve(&state.gateway, &body, &controls).await?;
    Ok(respond(reply, start))
}

/// `POST /anthropic/v1/messages/count_tokens`, `POST /v1/messages/count_tokens`.
pub async fn count_tokens(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AnthropicError> {
    let body = read_body(&req, payload, &state).await?;
    Ok(HttpResponse::Ok().json(gateway::messages::count_tokens(&body)?))
}

/// 404/405 under `/anthropic`, in Anthropic's shape.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, AnthropicError> {
    Err(AnthropicError(ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    }))
}

pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, AnthropicError> {
    Err(AnthropicError(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    }))
}
