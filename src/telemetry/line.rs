//! The human-readable log line, written straight into the line buffer.
//!
//! Same layout as tracing-subscriber's default (`Full`, no target) without colours:
//! `2026-12-07T03:14:35.764079Z  INFO request request_id="…" status=200 model=gpt-4o`.
//! That formatter runs every field name and separator through its styling types even
//! with colours off and formats the date from scratch for each event: with one request
//! log line per request, ~13k of the ~140k instructions deja spent on a proxied request
//! (callgrind). Here the date and time to the second are formatted once a second per
//! thread, and fields are written directly. Every value has control characters escaped
//! (the default formatter escapes only the message), so no field can forge a log line
//! or send terminal escapes.

use std::cell::RefCell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The plain-text event format (see the module docs).
pub struct TextLine;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_timestamp(&mut w, SystemTime::now())?;
        write!(w, " {:>5} ", event.metadata().level().as_str())?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                w.write_str(span.name())?;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(w, "{{{fields}}}")?;
                    }
                }
                w.write_str(": ")?;
            }
        }
        let mut fields = Fields {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_char('\n')
    }
}

/// Writes `name=value` pairs, the message first and bare, like the default visitor.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl<'w> Fields<'_, 'w> {
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.write(field, |w| Escaped::new(w).write_fmt(value));
    }

    /// A string value in double quotes, as `{:?}` writes plain text, without `str`'s
    /// Debug walk over every character.
    fn quoted(&mut self, field: &Field, value: &str) {
        self.write(field, |w| {
            w.write_char('"')?;
            let mut e = Escaped::new(&mut *w);
            e.quotes = true;
            e.write_str(value)?;
            w.write_char('"')
        });
    }

    /// `name=` (nothing for the message), then the value.
    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'w>) -> fmt::Result) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.w.write_char(' ')?;
            }
            let name = field.name();
            if name != "message" {
                self.w.write_str(name.strip_prefix("r#").unwrap_or(name))?;
                self.w.write_char('=')?;
            }
            value(self.w)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, format_args!("{value}"));
        } else {
            self.quoted(field, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, format_args!("{value}"));
    }

    /// The error, then its causes as `name.sources=[...]` (the default format's way).
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, format_args!("{value}"));
        let mut source = value.source();
        if source.is_none() || self.result.is_err() {
            return;
        }
        self.result = (|| {
            write!(self.w, " {}.sources=[", field.name())?;
            let mut first = true;
            while let Some(e) = source {
                if !std::mem::take(&mut first) {
                    self.w.write_str(", ")?;
                }
                write!(Escaped::new(&mut *self.w), "{e}")?;
                source = e.source();
            }
            self.w.write_char(']')
        })();
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

/// Passes text on with control characters written as escapes (`\n`, `\u{1b}`, ...),
/// and with `quotes`, also `"` and `\` (for a value inside double quotes).
struct Escaped<'a, W: Write> {
    w: &'a mut W,
    quotes: bool,
}

impl<'a, W: Write> Escaped<'a, W> {
    fn new(w: &'a mut W) -> Self {
        Escaped { w, quotes: false }
    }
}

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let quotes = self.quotes;
        let mut rest = s;
        while let Some(i) = rest.find(|c: char| c.is_control() || quotes && (c == '"' || c == '\\'))
        {
            self.w.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            for e in c.escape_default() {
                self.w.write_char(e)?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.w.write_str(rest)
    }
}

thread_local! {
    /// The second last formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber's `SystemTime` writes it.
fn write_timestamp(w: &mut impl Write, now: SystemTime) -> fmt::Result {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    SECOND.with(|s| {
        let mut s = s.borrow_mut();
        if s.0 != secs {
            s.1.clear();
            let _ = write_date_time(&mut s.1, secs);
            s.0 = secs;
        }
        write!(w, "{}.{:06}Z", s.1, d.subsec_micros())
    })
}

fn write_date_time(w: &mut impl Write, secs: u64) -> fmt::Result {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    write!(
        w,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stamp(secs: u64, micros: u32) -> String {
        let mut s = String::new();
        let t = UNIX_EPOCH + Duration::new(secs, micros * 1000);
        write_timestamp(&mut s, t).unwrap();
        s
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        assert_eq!(stamp(0, 0), "1970-01-01T00:00:00.000000Z");
        // A leap day, the last second of a day and of a year.
        assert_eq!(stamp(951_868_799, 1), "2000-02-29T23:59:59.000001Z");
        assert_eq!(stamp(1_798_761_599, 999_999), "2026-12-31T23:59:59.999999Z");
        assert_eq!(stamp(1_798_761_600, 0), "2027-01-01T00:00:00.000000Z");
        // The per-thread cache must not hand an earlier second's date to a later one.
        assert_eq!(stamp(1_796_613_275, 764_079), "2026-12-07T03:14:35.764079Z");
        assert_eq!(stamp(1_796_613_276, 5), "2026-12-07T03:14:36.000005Z");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut s = String::new();
        write!(Escaped::new(&mut s), "a\nb\x1b[31mc\u{85}d é \"q\" \\").unwrap();
        assert_eq!(s, "a\\nb\\u{1b}[31mc\\u{85}d é \"q\" \\");
        let mut q = String::new();
        let mut w = Escaped::new(&mut q);
        w.quotes = true;
        write!(w, "say \"hi\" \\ \t").unwrap();
        assert_eq!(q, r#"say \"hi\" \\ \t"#);
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "wrapped: {}", self.0)
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn event_line_matches_the_default_layout_and_escapes_values() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .event_format(TextLine)
            .finish();
        tracing::subscriber::with_default(sub, || {
            let model = "gpt\n2026-01-01T00:00:00Z  INFO forged";
            let span = tracing::info_span!("job", n = 3);
            let _g = span.enter();
            tracing::warn!(request_id = "r-1", status = 200u16, ok = true, model = %model, "request");
            let inner = std::io::Error::other("disk\nfull");
            let outer = Wrapped(std::io::Error::other(Wrapped(inner)));
            tracing::error!(
                error = &outer as &(dyn std::error::Error + 'static),
                "failed"
            );
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let (ts, rest) = lines[0].split_at(27);
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{out}");
        assert_eq!(
            rest,
            "  WARN job{n=3}: request request_id=\"r-1\" status=200 ok=true \
             model=gpt\\n2026-01-01T00:00:00Z  INFO forged"
        );
        assert_eq!(
            &lines[1][27..],
            " ERROR job{n=3}: failed error=wrapped: wrapped: disk\\nfull \
             error.sources=[wrapped: disk\\nfull, disk\\nfull]"
        );
    }
}
