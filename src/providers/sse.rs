//! Server-sent events: the one SSE parser in deja. [`SseDecoder`] splits SSE bytes fed
//! in any split into events (every provider stream and the inbound Anthropic API go
//! through it, by way of [`super::stream`]).
//!
//! Line endings follow the SSE specification (`\r\n`, `\n` or a lone `\r`, also split
//! across reads); a leading byte-order mark is ignored.
//! <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>

/// One SSE event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Splits SSE bytes into events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the current event, line endings normalised to `\n`.
    buf: Vec<u8>,
    /// Where the search for `\n\n` resumes (everything before has none).
    scanned: usize,
    /// The last byte fed was `\r`: a `\n` right after it ends no further line.
    after_cr: bool,
    /// Past the start of the stream (where a byte-order mark is skipped).
    started: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; returns the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.reserve(bytes.len());
        for &b in bytes {
            match b {
                b'\r' => {
                    self.buf.push(b'\n');
                    self.after_cr = true;
                }
                b'\n' if self.after_cr => self.after_cr = false,
                _ => {
                    self.after_cr = false;
                    self.buf.push(b);
                }
            }
        }
        let mut out = Vec::new();
        if !self.started {
            // A byte-order mark may open the stream, itself split across reads.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            } else if BOM.starts_with(&self.buf) {
                return out;
            }
            self.started = true;
        }
        while let Some(pos) = self.buf[self.scanned..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|p| p + self.scanned)
        {
            if let Some(ev) = parse_event(&self.buf[..pos]) {
                out.push(ev);
            }
            self.buf.drain(..pos + 2);
            self.scanned = 0;
        }
        self.scanned = self.buf.len().saturating_sub(1);
        out
    }

    /// The upstream ended: a last event not followed by a blank line, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let raw = std::mem::take(&mut self.buf);
        self.scanned = 0;
        parse_event(&raw)
    }
}

fn parse_event(raw: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(raw);
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.split('\n') {
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

    #[test]
    fn lone_carriage_returns_end_lines_and_a_bom_is_skipped() {
        let text = "\u{feff}data: a\r\rdata: b\r\n\r\ndata: c\n\n";
        for cut in 0..text.len() {
            let mut d = SseDecoder::new();
            let mut evs = d.feed(&text.as_bytes()[..cut]);
            evs.extend(d.feed(&text.as_bytes()[cut..]));
            let data: Vec<String> = evs.into_iter().map(|e| e.data).collect();
            assert_eq!(data, ["a", "b", "c"], "cut at {cut}");
        }
    }
}
