//! Logging through `tracing`: human-readable by default, JSON on request; written by a
//! background thread so request handling never blocks on stderr, in batches so that a
//! log line does not wake that thread once per request ([`batch`]).

pub mod batch;
mod line;

use crate::config::{LogFormat, TelemetryConfig};
use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Keep the guard alive until exit (it flushes the log).
pub fn init(cfg: &TelemetryConfig) -> batch::BatchGuard {
    let (writer, guard) = batch::batched(std::io::stderr());
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
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
