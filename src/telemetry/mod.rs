//! Logging through `tracing`: human-readable by default, JSON on request; written by a
//! background thread so request handling never blocks on stderr, in batches so that a
//! log line does not wake that thread once per request ([`batch`]).

pub mod batch;
mod line;
pub mod metrics;

use crate::config::{LogFormat, TelemetryConfig};
use std::borrow::Cow;
use tracing_subscriber::EnvFilter;

/// Longest text from a client (a model name, a header value) written into a log line or
/// echoed in an error message, in bytes; longer text is cut by [`clip`] with a marker.
pub const MAX_CLIENT_FIELD_BYTES: usize = 256;

/// `s` cut to at most `max` bytes (at a character boundary), followed by the marker
/// `…[+N bytes]` naming how much was cut; `s` itself when it fits.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…[+{} bytes]", &s[..end], s.len() - end))
}

/// The log filter: `RUST_LOG`, else `log_level`. hnsw_rs logs at INFO for every index
/// it creates or loads (one per cache partition); unless the filter is DEBUG or more
/// verbose, or names hnsw_rs itself, those lines are kept to warnings.
fn filter(rust_log: Option<String>, log_level: &str) -> EnvFilter {
    let directives = rust_log
        .filter(|v| EnvFilter::try_new(v).is_ok())
        .unwrap_or_else(|| log_level.to_owned());
    let base = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let verbose = base
        .max_level_hint()
        .is_some_and(|l| l >= tracing::level_filters::LevelFilter::DEBUG);
    if verbose || directives.contains("hnsw_rs") {
        return base;
    }
    base.add_directive("hnsw_rs=warn".parse().expect("a valid directive"))
}

/// Install the global subscriber. Keep the guard alive until exit (it flushes the log).
pub fn init(cfg: &TelemetryConfig) -> batch::BatchGuard {
    let (writer, guard) = batch::batched(std::io::stderr());
    let filter = filter(std::env::var("RUST_LOG").ok(), &cfg.log_level);
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(terminal);
    let res = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Colours for a terminal; the plain line (files, pipes, journald) written directly.
        LogFormat::Text if terminal => builder.try_init(),
        LogFormat::Text => builder.event_format(line::TextLine).try_init(),
    };
    if let Err(e) = res {
        eprintln!("logging already initialised: {e}");
    }
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_text_and_marks_cuts_at_char_boundaries() {
        assert_eq!(clip("gpt-4o", 256), "gpt-4o");
        let long = "é".repeat(200); // 400 bytes
        let c = clip(&long, 255);
        assert!(c.starts_with(&"é".repeat(127)));
        assert!(c.ends_with("…[+146 bytes]"), "{c}");
        assert!(c.len() < 300);
    }

    #[test]
    fn hnsw_chatter_is_kept_to_warnings_unless_asked_for() {
        let quiet = filter(None, "info").to_string();
        assert!(quiet.contains("hnsw_rs=warn"), "{quiet}");
        assert!(!filter(None, "debug").to_string().contains("hnsw_rs=warn"));
        let asked = filter(Some("info,hnsw_rs=info".into()), "info").to_string();
        assert!(!asked.contains("hnsw_rs=warn"), "{asked}");
        let env_wins = filter(Some("warn".into()), "debug").to_string();
        assert!(env_wins.contains("hnsw_rs=warn"), "{env_wins}");
    }
}
