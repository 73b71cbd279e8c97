//! The one stream driver: bytes in, frames out, for every translated stream in deja.
//!
//! A stream is a [`Framing`] (how bytes become events: [`SseDecoder`] for server-sent
//! events, [`EventStreamFraming`] for AWS event-stream frames) feeding a [`Hook`] (how
//! events become output frames). [`Pipeline`] is the synchronous core; [`drive`] runs one
//! over an async byte stream, ending it with one failure item on the first transport,
//! framing or hook error.
//!
//! Provider adapters whose wire format is not OpenAI's implement [`ChunkHook`] (events
//! in, OpenAI `chat.completion.chunk` objects out) and go through [`chunk_stream`]:
//! [`OpenAiChunks`] is the one place that applies `stream_options.include_usage`, fills
//! in the request's model when the provider does not echo it, and ends the stream with
//! `data: [DONE]`.

use super::chat::ChatChunk;
use super::sse::{SseDecoder, SseEvent};
use super::{error_chain, ChunkStream, ProviderError, ProviderRequest};
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::Arc;

/// How a byte stream splits into events.
pub trait Framing: Send + 'static {
    type Event: Send + 'static;
    /// Feed bytes; the events they complete are pushed to `out` (also when an error
    /// follows them).
    fn decode(&mut self, bytes: &[u8], out: &mut Vec<Self::Event>) -> Result<(), String>;
    /// The byte stream ended: a last event, or why the bytes left are no event.
    fn decode_end(&mut self, out: &mut Vec<Self::Event>) -> Result<(), String>;
}

impl Framing for SseDecoder {
    type Event = SseEvent;
    fn decode(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        out.extend(self.feed(bytes));
        Ok(())
    }
    fn decode_end(&mut self, out: &mut Vec<SseEvent>) -> Result<(), String> {
        out.extend(self.finish());
        Ok(())
    }
}

/// AWS event-stream framing (`application/vnd.amazon.eventstream`, Bedrock's
/// ConverseStream), decoded with `aws-smithy-eventstream`.
pub struct EventStreamFraming {
    frames: MessageFrameDecoder,
    buf: BytesMut,
}

impl Default for EventStreamFraming {
    fn default() -> Self {
        Self::new()
    }
}

impl EventStreamFraming {
    pub fn new() -> Self {
        EventStreamFraming {
            frames: MessageFrameDecoder::new(),
            buf: BytesMut::new(),
        }
    }
}

impl Framing for EventStreamFraming {
    type Event = Message;
    fn decode(&mut self, bytes: &[u8], out: &mut Vec<Message>) -> Result<(), String> {
        self.buf.extend_from_slice(bytes);
        loop {
            match self.frames.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(msg)) => out.push(msg),
                Ok(DecodedFrame::Incomplete) => return Ok(()),
                Err(e) => return Err(format!("bedrock stream framing: {e}")),
            }
        }
    }
    fn decode_end(&mut self, _out: &mut Vec<Message>) -> Result<(), String> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "bedrock stream ended inside a frame ({} bytes left)",
                self.buf.len()
            ))
        }
    }
}

/// A stateful translation of one stream's events into output frames.
pub trait Hook<E>: Send + 'static {
    type Frame: Send + 'static;
    /// What ends the stream; transport and framing errors arrive as their message.
    type Error: From<String> + Send + 'static;
    /// One event in, frames out. `Err` ends the stream with that failure.
    fn event(&mut self, ev: &E, out: &mut Vec<Self::Frame>) -> Result<(), Self::Error>;
    /// The upstream ended (not called once [`Hook::finished`]). `Err` when it ended
    /// before its terminal event.
    fn end(&mut self, out: &mut Vec<Self::Frame>) -> Result<(), Self::Error>;
    /// The terminal event was seen: nothing more is read.
    fn finished(&self) -> bool;
}

/// A framing and a hook: the synchronous core of [`drive`].
pub struct Pipeline<F: Framing, H> {
    framing: F,
    hook: H,
    events: Vec<F::Event>,
}

impl<F: Framing, H: Hook<F::Event>> Pipeline<F, H> {
    pub fn new(framing: F, hook: H) -> Self {
        Pipeline {
            framing,
            hook,
            events: Vec::new(),
        }
    }

    pub fn hook(&self) -> &H {
        &self.hook
    }

    pub fn finished(&self) -> bool {
        self.hook.finished()
    }

    fn run_events(&mut self, out: &mut Vec<H::Frame>) -> Result<(), H::Error> {
        for ev in self.events.drain(..) {
            if self.hook.finished() {
                break;
            }
            self.hook.event(&ev, out)?;
        }
        Ok(())
    }

    /// Feed bytes; frames go to `out`, also those completed before an error.
    pub fn feed_into(&mut self, bytes: &[u8], out: &mut Vec<H::Frame>) -> Result<(), H::Error> {
        let framed = self.framing.decode(bytes, &mut self.events);
        self.run_events(out)?;
        framed.map_err(H::Error::from)
    }

    /// The bytes ended: the last frames, or why the stream is incomplete.
    pub fn finish_into(&mut self, out: &mut Vec<H::Frame>) -> Result<(), H::Error> {
        if self.hook.finished() {
            return Ok(());
        }
        let framed = self.framing.decode_end(&mut self.events);
        self.run_events(out)?;
        framed.map_err(H::Error::from)?;
        if self.hook.finished() {
            Ok(())
        } else {
            self.hook.end(out)
        }
    }

    /// [`Pipeline::feed_into`] collecting the frames; the error as its message.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<H::Frame>, String>
    where
        H::Error: Display,
    {
        let mut out = Vec::new();
        self.feed_into(bytes, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// [`Pipeline::finish_into`] collecting the frames; the error as its message.
    pub fn finish(&mut self) -> Result<Vec<H::Frame>, String>
    where
        H::Error: Display,
    {
        let mut out = Vec::new();
        self.finish_into(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// Run `pipeline` over `inner`: frames become `ok(frame)`; a transport error, a framing
/// error or a hook failure becomes one last `fail(error)` item, after which the stream
/// ends. Nothing more is read once the hook has finished.
pub fn drive<S, IE, F, H, O>(
    inner: S,
    pipeline: Pipeline<F, H>,
    ok: impl Fn(H::Frame) -> O + Send + 'static,
    fail: impl Fn(H::Error) -> O + Send + 'static,
) -> BoxStream<'static, O>
where
    S: Stream<Item = Result<Bytes, IE>> + Send + 'static,
    IE: Display,
    F: Framing,
    H: Hook<F::Event>,
    O: Send + 'static,
{
    struct St<S, F: Framing, H: Hook<F::Event>> {
        inner: S,
        p: Pipeline<F, H>,
        pending: VecDeque<H::Frame>,
        failure: Option<H::Error>,
        over: bool,
    }
    let st = St {
        inner: Box::pin(inner),
        p: pipeline,
        pending: VecDeque::new(),
        failure: None,
        over: false,
    };
    futures_util::stream::unfold((st, ok, fail), |(mut st, ok, fail)| async move {
        loop {
            if let Some(b) = st.pending.pop_front() {
                let item = ok(b);
                return Some((item, (st, ok, fail)));
            }
            if let Some(e) = st.failure.take() {
                st.over = true;
                let item = fail(e);
                return Some((item, (st, ok, fail)));
            }
            if st.over || st.p.finished() {
                return None;
            }
            let mut out = Vec::new();
            let step = match st.inner.next().await {
                Some(Ok(bytes)) => st.p.feed_into(&bytes, &mut out),
                Some(Err(e)) => Err(H::Error::from(e.to_string())),
                None => {
                    st.over = true;
                    st.p.finish_into(&mut out)
                }
            };
            st.pending.extend(out);
            if let Err(e) = step {
                st.failure = Some(e);
            }
        }
    })
    .boxed()
}

/// Why a provider stream ended early.
#[derive(Debug)]
pub enum HookError {
    /// The stream broke off or carried an error event ([`ProviderError::StreamInterrupted`]).
    Interrupted(String),
    /// A provider error as it is to reach the client.
    Provider(ProviderError),
}

impl From<String> for HookError {
    fn from(m: String) -> Self {
        HookError::Interrupted(m)
    }
}

impl From<&str> for HookError {
    fn from(m: &str) -> Self {
        HookError::Interrupted(m.to_owned())
    }
}

impl Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookError::Interrupted(m) => f.write_str(m),
            HookError::Provider(e) => e.fmt(f),
        }
    }
}

impl HookError {
    fn into_provider_error(self, provider: &Arc<str>) -> ProviderError {
        match self {
            HookError::Interrupted(message) => ProviderError::StreamInterrupted {
                provider: provider.clone(),
                message,
            },
            HookError::Provider(e) => e,
        }
    }
}

/// A provider's stream events translated into OpenAI `chat.completion.chunk`s ([`ChatChunk`]).
///
/// Hooks emit every chunk without a `usage` field, and the usage chunk (`choices: []`,
/// `usage: {...}`) whenever they know the usage: [`OpenAiChunks`] decides what the client
/// asked for. They leave `model` empty when the provider does not name it.
pub trait ChunkHook<E>: Send + 'static {
    fn event(&mut self, ev: &E, out: &mut Vec<ChatChunk>) -> Result<(), HookError>;
    /// The upstream ended without [`ChunkHook::terminal`]: the last chunks, or why the
    /// reply is incomplete.
    fn end(&mut self, out: &mut Vec<ChatChunk>) -> Result<(), HookError>;
    /// The provider's terminal event was seen (stop reading). Hooks whose provider sends
    /// usage after the finish reason read to the end of the body instead.
    fn terminal(&self) -> bool {
        false
    }
}

/// The client's side of an OpenAI chunk stream, around a [`ChunkHook`]: the usage chunk
/// only when `stream_options.include_usage` asked for it (and then `"usage": null` on
/// every other chunk, as OpenAI does), the request's model where the chunk has none,
/// `data: [DONE]` last.
pub struct OpenAiChunks<H> {
    hook: H,
    include_usage: bool,
    model: String,
    chunks: Vec<ChatChunk>,
    done: bool,
}

impl<H> OpenAiChunks<H> {
    pub fn new(hook: H, include_usage: bool, model: String) -> Self {
        OpenAiChunks {
            hook,
            include_usage,
            model,
            chunks: Vec::new(),
            done: false,
        }
    }

    /// For `req`: whether the client asked for the usage chunk
    /// (`stream_options.include_usage`), and the route's model.
    pub fn for_request(hook: H, req: &ProviderRequest) -> Self {
        let include_usage = super::chat::wants_usage(&req.body);
        Self::new(hook, include_usage, req.model.clone())
    }

    pub fn inner(&self) -> &H {
        &self.hook
    }

    fn emit(&mut self, out: &mut Vec<Bytes>) {
        for mut c in self.chunks.drain(..) {
            let usage_only = c.is_usage_only();
            if usage_only && !self.include_usage {
                continue;
            }
            if self.include_usage && !usage_only {
                c.usage = Some(Value::Null);
            }
            if c.model.is_empty() {
                c.model.clone_from(&self.model);
            }
            out.push(frame(&c));
        }
    }
}

/// One SSE frame: `data: {json}\n\n`.
pub(crate) fn frame(c: &ChatChunk) -> Bytes {
    let json = serde_json::to_string(c).expect("a chunk serialises");
    Bytes::from(format!("data: {json}\n\n"))
}

pub(crate) fn done_frame() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

impl<E: 'static, H: ChunkHook<E>> Hook<E> for OpenAiChunks<H> {
    type Frame = Bytes;
    type Error = HookError;

    fn event(&mut self, ev: &E, out: &mut Vec<Bytes>) -> Result<(), HookError> {
        let r = self.hook.event(ev, &mut self.chunks);
        self.emit(out);
        r?;
        if self.hook.terminal() {
            out.push(done_frame());
            self.done = true;
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Bytes>) -> Result<(), HookError> {
        let r = self.hook.end(&mut self.chunks);
        self.emit(out);
        r?;
        out.push(done_frame());
        self.done = true;
        Ok(())
    }

    fn finished(&self) -> bool {
        self.done
    }
}

/// A provider's 2xx streamed body as OpenAI SSE chunks: `framing` splits it into events,
/// `hook` translates them; a transport, framing or hook error ends the stream with one
/// error item.
pub(crate) fn chunk_stream<F, H>(
    provider: &Arc<str>,
    req: &ProviderRequest,
    resp: reqwest::Response,
    framing: F,
    hook: H,
) -> ChunkStream
where
    F: Framing,
    H: ChunkHook<F::Event>,
{
    let body = resp
        .bytes_stream()
        .map(|r| r.map_err(|e| error_chain(&e.without_url())));
    let p = provider.clone();
    drive(
        body,
        Pipeline::new(framing, OpenAiChunks::for_request(hook, req)),
        Ok,
        move |e: HookError| Err(e.into_provider_error(&p)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::chat::{ChunkChoice, ChunkDelta};
    use crate::providers::native_common::ChunkBuilder;
    use serde_json::json;

    /// Replays fixed chunks, one per SSE event.
    struct Replay(Vec<ChatChunk>);
    impl ChunkHook<SseEvent> for Replay {
        fn event(&mut self, _ev: &SseEvent, out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
            if !self.0.is_empty() {
                out.push(self.0.remove(0));
            }
            Ok(())
        }
        fn end(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
            Ok(())
        }
    }

    fn frames(include: bool) -> Vec<String> {
        let cb = ChunkBuilder::new("x".into(), String::new());
        let chunks = vec![
            cb.delta(ChunkDelta::text("hi")),
            cb.finish("stop"),
            cb.usage(json!({"prompt_tokens": 1})),
        ];
        let mut p = Pipeline::new(
            SseDecoder::new(),
            OpenAiChunks::new(Replay(chunks), include, "m-1".into()),
        );
        let mut out = p.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\n").unwrap();
        out.extend(p.finish().unwrap());
        out.iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn usage_chunk_only_when_asked_and_model_filled_in() {
        let without = frames(false);
        assert_eq!(without.len(), 3, "{without:?}");
        assert!(without.iter().all(|f| !f.contains("usage")));
        assert!(without[0].contains("\"model\":\"m-1\""));
        assert_eq!(without[2], "data: [DONE]\n\n");
        let with = frames(true);
        assert_eq!(with.len(), 4);
        assert!(with[2].contains("\"prompt_tokens\":1"));
        assert!(with[0].contains("\"usage\":null"));
    }

    /// Ends with an error on its second event.
    struct FailSecond(usize);
    impl ChunkHook<SseEvent> for FailSecond {
        fn event(&mut self, ev: &SseEvent, out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
            self.0 += 1;
            if self.0 == 2 {
                return Err("boom".into());
            }
            let choice = ChunkChoice::new(0, ChunkDelta::text(ev.data.clone()), None);
            out.push(ChatChunk::new(
                String::new(),
                0,
                String::new(),
                vec![choice],
            ));
            Ok(())
        }
        fn end(&mut self, _out: &mut Vec<ChatChunk>) -> Result<(), HookError> {
            Err("cut short".into())
        }
    }

    #[tokio::test]
    async fn the_driver_ends_with_one_failure_after_the_frames_before_it() {
        let run = |parts: Vec<&'static str>| {
            let inner = futures_util::stream::iter(
                parts
                    .into_iter()
                    .map(|p| Ok::<_, String>(Bytes::from_static(p.as_bytes()))),
            );
            let p = Pipeline::new(
                SseDecoder::new(),
                OpenAiChunks::new(FailSecond(0), false, String::new()),
            );
            drive(inner, p, Ok, |e| Err(e.to_string())).collect::<Vec<_>>()
        };
        let items = run(vec!["data: a\n\ndata: b\n\ndata: c\n\n"]).await;
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(items[0].is_ok());
        assert_eq!(items[1], Err("boom".to_owned()));
        let items = run(vec!["data: a\n\n"]).await;
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[1], Err("cut short".to_owned()));
    }
}
