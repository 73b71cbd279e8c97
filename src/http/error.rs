//! The HTTP edge of every error: one exhaustive status match, OpenAI-shaped bodies.

use crate::gateway::GatewayError;
use crate::providers::ProviderError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("Request body exceeds the limit of {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    #[error("Could not read the request body: {0}")]
    BodyRead(String),
    #[error("The request body did not arrive within {secs} s (server.body_timeout_secs).")]
    BodyTimeout { secs: u64 },
    #[error("Too many request bodies are being received at once; retry shortly.")]
    BodiesBusy,
    #[error("{}", unsupported_media_type(.0.as_deref()))]
    UnsupportedMediaType(Option<String>),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    BadQuery(String),
    #[error("No route for {method} {path}. See the README for deja's endpoints.")]
    RouteNotFound { method: String, path: String },
    #[error("Method {method} is not allowed on {path}.")]
    MethodNotAllowed { method: String, path: String },
}

fn unsupported_media_type(got: Option<&str>) -> String {
    match got {
        Some(g) => format!("Content-Type must be application/json, got `{g}`."),
        None => "Content-Type must be application/json; the request has none.".into(),
    }
}

impl ApiError {
    /// OpenAI's `type` field.
    fn kind(&self) -> &'static str {
        match self.status_code().as_u16() {
            401 => "authentication_error",
            404 => "not_found_error",
            413 | 400 | 405 | 408 | 415 => "invalid_request_error",
            503 => "overloaded_error",
            _ => "api_error",
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            ApiError::Gateway(GatewayError::ModelNotFound(_)) => Some("model_not_found"),
            ApiError::PayloadTooLarge { .. } => Some("payload_too_large"),
            ApiError::BodyTimeout { .. } => Some("body_timeout"),
            ApiError::UnsupportedMediaType(_) => Some("unsupported_media_type"),
            ApiError::Gateway(GatewayError::Provider(ProviderError::Timeout { .. })) => {
                Some("upstream_timeout")
            }
            ApiError::Gateway(GatewayError::Provider(ProviderError::Unreachable { .. })) => {
                Some("upstream_unreachable")
            }
            _ => None,
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::Gateway(GatewayError::InvalidRequest { param, .. }) => param.as_deref(),
            ApiError::Gateway(GatewayError::ModelNotFound(_)) => Some("model"),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let code = match self {
            ApiError::Gateway(e) => match e {
                GatewayError::InvalidRequest { .. } => 400,
                GatewayError::ModelNotFound(_) => 404,
                GatewayError::Provider(p) => match p {
                    ProviderError::Unreachable { .. } => 502,
                    ProviderError::Timeout { .. } => 504,
                    ProviderError::Upstream { status, .. } => *status,
                    ProviderError::InvalidResponse { .. } => 502,
                    ProviderError::StreamInterrupted { .. } => 502,
                },
                GatewayError::Overloaded { .. } => 503,
                GatewayError::Cache(_) => 500,
                GatewayError::LocalEmbedder(_) => 500,
                GatewayError::CacheDisabled => 404,
                GatewayError::EntryNotFound(_) => 404,
            },
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::BodyRead(_) => 400,
            ApiError::BodyTimeout { .. } => 408,
            ApiError::BodiesBusy => 503,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Unauthorized(_) => 401,
            ApiError::BadQuery(_) => 400,
            ApiError::RouteNotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY)
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // The provider's own error body is already OpenAI-shaped: pass it on unchanged.
        if let ApiError::Gateway(GatewayError::Provider(ProviderError::Upstream { body, .. })) =
            self
        {
            return HttpResponse::build(status)
                .content_type("application/json")
                .body(body.clone());
        }
        let body = json!({"error": {
            "message": self.to_string(),
            "type": self.kind(),
            "param": self.param(),
            "code": self.code(),
        }});
        let mut b = HttpResponse::build(status);
        if let ApiError::Gateway(GatewayError::Overloaded {
            retry_after_secs, ..
        }) = self
        {
            b.insert_header(("retry-after", retry_after_secs.to_string()));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            b.insert_header(("retry-after", "1"));
        }
        b.content_type("application/json").body(body.to_string())
    }
}
