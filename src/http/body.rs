//! Request bodies: every JSON route reads its body through [`read_body`].
//!
//! A body is refused unless its `Content-Type` is JSON (415: a browser's cross-site
//! "simple" POST can only send `text/plain`, form types or none, so it cannot spend
//! deja's provider keys). It is read under three bounds:
//! - `server.max_body_bytes`: a larger body is 413, as soon as it is declared or exceeded;
//! - `server.body_timeout_secs`: the whole body must arrive within it (408), so a client
//!   trickling bytes cannot hold a connection and its buffer indefinitely;
//! - `server.max_pending_body_bytes`: bytes held by every body still being received, all
//!   connections together; past it a body is refused with 503 and `Retry-After`.
//!
//! Nothing is allocated from the client's `Content-Length`: the buffer grows with the
//! bytes that actually arrived.

use super::error::ApiError;
use super::AppState;
use actix_web::dev::Payload;
use actix_web::mime;
use actix_web::{web, HttpMessage, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Bytes held by bodies still being received, across all workers.
#[derive(Debug, Default)]
pub struct PendingBodies {
    held: AtomicUsize,
}

impl PendingBodies {
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// The share of [`PendingBodies`] one body holds; given back when dropped.
struct Held<'a> {
    pending: &'a PendingBodies,
    n: usize,
}

impl Held<'_> {
    /// Count `more` bytes, unless that passes `cap` for all bodies together.
    fn grow(&mut self, more: usize, cap: usize) -> bool {
        let ok = self
            .pending
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur + more <= cap).then_some(cur + more)
            })
            .is_ok();
        if ok {
            self.n += more;
        }
        ok
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.pending.held.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// The limits a body is read under (from `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
    pub max_pending_bytes: usize,
}

/// Whether `req` declares a JSON body: `application/json` or `application/*+json`,
/// parameters (charset) allowed.
fn is_json(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(m)) => {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        }
        _ => false,
    }
}

/// Read the whole body of a JSON request under `limits`.
pub async fn read_json(
    req: &HttpRequest,
    payload: &mut Payload,
    limits: BodyLimits,
    pending: &PendingBodies,
) -> Result<Bytes, ApiError> {
    if !is_json(req) {
        let got = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return Err(ApiError::UnsupportedMediaType(
            got.map(|g| crate::telemetry::clip(&g, 64).into_owned()),
        ));
    }
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = limits.max_bytes;
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut held = Held { pending, n: 0 };
    let mut buf = BytesMut::new();
    let read = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::BodyRead(e.to_string()))?;
            if buf.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            if !held.grow(chunk.len(), limits.max_pending_bytes) {
                return Err(ApiError::BodiesBusy);
            }
            // The first chunk is usually the whole body: take it without copying.
            if buf.is_empty() && chunk.len() == declared.unwrap_or(0) {
                return Ok(chunk);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(std::mem::take(&mut buf).freeze())
    };
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::BodyTimeout {
            secs: limits.timeout.as_secs(),
        }),
    }
}

/// Read a JSON route's body under the gateway's `[server]` limits.
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Bytes, ApiError> {
    let mut payload = payload.into_inner();
    read_json(
        req,
        &mut payload,
        state.body_limits(),
        &state.pending_bodies,
    )
    .await
}
