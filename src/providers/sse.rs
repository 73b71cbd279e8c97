//! Server-sent events: a decoder for SSE bytes fed in any split, and a driver that runs a
//! stateful event translator over a byte stream (one wire format's events in, another's
//! frames out). Used by the Anthropic adapter (Anthropic events → OpenAI chunks) and by the
//! inbound Anthropic API (OpenAI chunks → Anthropic events).

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use std::collections::VecDeque;
use std::fmt::Display;

/// One SSE event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Splits SSE bytes into events; `\r\n` line endings are accepted.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; returns the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf
            .extend(bytes.iter().copied().filter(|&b| b != b'\r'));
        let mut out = Vec::new();
        while let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let raw: Vec<u8> = self.buf.drain(..pos + 2).collect();
            if let Some(ev) = parse_event(&raw[..pos]) {
                out.push(ev);
            }
        }
        out
    }

    /// The upstream ended: a last event not followed by a blank line, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let raw = std::mem::take(&mut self.buf);
        parse_event(&raw)
    }
}

fn parse_event(raw: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(raw);
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(SseEvent {
        event,
        data: data.join("\n"),
    })
}

/// A stateful translation of one SSE dialect into another.
pub trait SseTranslator: Send + 'static {
    /// One event in, frames out. `Err(message)` ends the stream with that failure.
    fn event(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), String>;
    /// The upstream ended. `Err(message)` when it ended before its terminal event.
    fn end(&mut self, out: &mut Vec<Bytes>) -> Result<(), String>;
    /// The terminal event was seen: nothing more is read.
    fn finished(&self) -> bool;
}

/// Run `t` over `inner`: frames become `ok(frame)`, a transport error or a translation
/// failure becomes one last `fail(message)` item, after which the stream ends.
pub fn translate<S, IE, T, O>(
    inner: S,
    t: T,
    ok: impl Fn(Bytes) -> O + Send + 'static,
    fail: impl Fn(String) -> O + Send + 'static,
) -> BoxStream<'static, O>
where
    S: Stream<Item = Result<Bytes, IE>> + Send + 'static,
    IE: Display,
    T: SseTranslator,
    O: Send + 'static,
{
    struct St<S, T> {
        inner: S,
        dec: SseDecoder,
        t: T,
        pending: VecDeque<Bytes>,
        failure: Option<String>,
        over: bool,
    }
    let st = St {
        inner: Box::pin(inner),
        dec: SseDecoder::new(),
        t,
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
            if let Some(m) = st.failure.take() {
                st.over = true;
                let item = fail(m);
                return Some((item, (st, ok, fail)));
            }
            if st.over || st.t.finished() {
                return None;
            }
            let mut out = Vec::new();
            match st.inner.next().await {
                Some(Ok(bytes)) => {
                    for ev in st.dec.feed(&bytes) {
                        if st.t.finished() {
                            break;
                        }
                        if let Err(m) = st.t.event(&ev, &mut out) {
                            st.failure = Some(m);
                            break;
                        }
                    }
                }
                Some(Err(e)) => st.failure = Some(e.to_string()),
                None => {
                    st.over = true;
                    let last = st.dec.finish();
                    let r = match last {
                        Some(ev) if !st.t.finished() => st.t.event(&ev, &mut out),
                        _ => Ok(()),
                    };
                    if let Err(m) = r.and_then(|()| {
                        if st.t.finished() {
                            Ok(())
                        } else {
                            st.t.end(&mut out)
                        }
                    }) {
                        st.failure = Some(m);
                    }
                }
            }
            st.pending.extend(out);
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_reassemble() {
        let text = "event: a\ndata: {\"x\":1}\n\n: comment\n\nevent: b\r\ndata: line1\r\ndata: line2\r\n\r\ndata: tail";
        for cut in 0..text.len() {
            let mut d = SseDecoder::new();
            let mut evs = d.feed(&text.as_bytes()[..cut]);
            evs.extend(d.feed(&text.as_bytes()[cut..]));
            evs.extend(d.finish());
            assert_eq!(
                evs,
                vec![
                    SseEvent {
                        event: Some("a".into()),
                        data: "{\"x\":1}".into()
                    },
                    SseEvent {
                        event: Some("b".into()),
                        data: "line1\nline2".into()
                    },
                    SseEvent {
                        event: None,
                        data: "tail".into()
                    },
                ],
                "cut at {cut}"
            );
        }
    }
}
