//! Streaming replies: report the key's outcome when the stream ends, and turn an
//! upstream failure mid-stream into an in-band OpenAI-shaped error event.

use crate::providers::{ChunkStream, OutcomeClass, PoolState, ProviderError};
use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use serde_json::json;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// `data: {"error": {...}}` — what OpenAI's SDKs raise as an API error mid-stream.
pub fn sse_error_event(e: &ProviderError) -> Bytes {
    let body = json!({"error": {
        "message": e.to_string(),
        "type": "upstream_error",
        "param": null,
        "code": "stream_interrupted",
    }});
    Bytes::from(format!("data: {body}\n\n"))
}

struct Reporting {
    inner: ChunkStream,
    pool: Arc<PoolState>,
    key_index: usize,
    /// When the upstream call started (the outcome's latency runs to the stream's end).
    started: Instant,
    done: bool,
}

impl Stream for Reporting {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(b))),
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                tracing::warn!(error = %e, "upstream stream failed");
                let class = OutcomeClass::of(&e);
                self.pool
                    .report(self.key_index, class, self.started.elapsed());
                Poll::Ready(Some(Ok(sse_error_event(&e))))
            }
            Poll::Ready(None) => {
                self.done = true;
                self.pool.report(
                    self.key_index,
                    OutcomeClass::Success,
                    self.started.elapsed(),
                );
                Poll::Ready(None)
            }
        }
    }
}

/// Wrap a provider stream: in-band errors, outcome reported to the pool at the end.
/// Dropping it (client gone) drops the upstream response, which cancels the call.
pub(super) fn reporting(
    inner: ChunkStream,
    pool: Arc<PoolState>,
    key_index: usize,
    started: Instant,
) -> BoxStream<'static, Result<Bytes, Infallible>> {
    Reporting {
        inner,
        pool,
        key_index,
        started,
        done: false,
    }
    .boxed()
}
