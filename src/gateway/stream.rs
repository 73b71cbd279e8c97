//! Streaming replies: report the key's outcome when the stream ends, and turn an
//! upstream failure mid-stream into an in-band OpenAI-shaped error event.

use crate::providers::{ChunkStream, PoolState, ProviderError};
use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use serde_json::json;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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
                self.pool.record(self.key_index, e.counts_against_key());
                Poll::Ready(Some(Ok(sse_error_event(&e))))
            }
            Poll::Ready(None) => {
                self.done = true;
                self.pool.record(self.key_index, false);
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
) -> BoxStream<'static, Result<Bytes, Infallible>> {
    Reporting {
        inner,
        pool,
        key_index,
        done: false,
    }
    .boxed()
}
