//! Request id propagation and the request log.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use std::time::Instant;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the client's `x-request-id` when it is sane, else a new UUID.
#[derive(Clone, Debug)]
pub struct RequestId(pub HeaderValue);

/// What the handler learnt about the request, for the log line.
#[derive(Clone, Debug)]
pub struct RouteInfo {
    pub provider: std::sync::Arc<str>,
    pub model: String,
}

fn incoming_id(req: &ServiceRequest) -> Option<HeaderValue> {
    let v = req.headers().get(&X_REQUEST_ID)?;
    let s = v.to_str().ok()?;
    let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| v.clone())
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let id = incoming_id(&req).unwrap_or_else(|| {
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is a valid header")
    });
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).await?;
    res.headers_mut().insert(X_REQUEST_ID, id.clone());
    let status = res.status().as_u16();
    let latency_us = start.elapsed().as_micros() as u64;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let method = res.request().method().as_str().to_owned();
    let info = res.response().extensions().get::<RouteInfo>().cloned();
    let request_id = id.to_str().unwrap_or("-");
    match info {
        Some(i) => tracing::info!(
            request_id,
            method,
            route,
            status,
            latency_us,
            provider = %i.provider,
            model = %i.model,
            "request"
        ),
        None => tracing::info!(request_id, method, route, status, latency_us, "request"),
    }
    Ok(res)
}
