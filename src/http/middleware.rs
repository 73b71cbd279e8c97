//! Request id propagation and the request log.
//!
//! The log line is written once the response body is done (fully handed to the
//! connection, or dropped when the client went away), from a task spawned at that
//! point: it then carries the whole duration of streamed replies, and formatting it
//! never delays the bytes the client waits for.

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use std::pin::Pin;
use std::task::{Context, Poll};
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
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    super::busy_poll::touch();
    let id = incoming_id(&req).unwrap_or_else(|| {
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is a valid header")
    });
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).await?;
    super::busy_poll::touch();
    res.headers_mut().insert(X_REQUEST_ID, id.clone());
    let log = RequestLog {
        start,
        request_id: id,
        method: res.request().method().as_str().to_owned(),
        route: res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into()),
        status: res.status().as_u16(),
        info: res.response().extensions().get::<RouteInfo>().cloned(),
    };
    Ok(res.map_body(move |_, body| LoggedBody {
        body: BoxBody::new(body),
        log: Some(log),
    }))
}

/// The fields of one request's log line.
struct RequestLog {
    start: Instant,
    request_id: HeaderValue,
    method: String,
    route: String,
    status: u16,
    info: Option<RouteInfo>,
}

impl RequestLog {
    fn emit(self, latency_us: u64, completed: bool) {
        let request_id = self.request_id.to_str().unwrap_or("-");
        let (method, route, status) = (self.method, self.route, self.status);
        match self.info {
            Some(i) => tracing::info!(
                request_id,
                method,
                route,
                status,
                latency_us,
                completed,
                provider = %i.provider,
                model = %crate::telemetry::clip(&i.model, crate::telemetry::MAX_CLIENT_FIELD_BYTES),
                "request"
            ),
            None => {
                tracing::info!(request_id, method, route, status, latency_us, completed, "request")
            }
        }
    }
}

/// A response body that logs its request when it ends.
struct LoggedBody {
    body: BoxBody,
    /// Taken when the body ends (`completed`) or is dropped before (client gone).
    log: Option<RequestLog>,
}

impl LoggedBody {
    fn finish(&mut self, completed: bool) {
        let Some(log) = self.log.take() else { return };
        let latency_us = log.start.elapsed().as_micros() as u64;
        // Inside a worker: after the current task (which still has to write the last
        // bytes) yields. Elsewhere (tests driving a service directly): now.
        if actix_rt::Arbiter::try_current().is_some() {
            actix_rt::spawn(async move { log.emit(latency_us, completed) });
        } else {
            log.emit(latency_us, completed);
        }
    }
}

impl MessageBody for LoggedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.body).poll_next(cx);
        match &r {
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => this.finish(false),
            _ => {}
        }
        r
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        self.finish(false);
    }
}
