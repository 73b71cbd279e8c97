//! Progress display: an indicatif bar over the input's bytes when stderr is a terminal,
//! otherwise (or with `--no-progress`) a short line on stderr every few seconds.

use super::state::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Ticker {
    bar: Option<ProgressBar>,
    total_bytes: u64,
    started: Instant,
    /// Rows done before this run (resumed).
    start_rows: u64,
    /// Bytes and time of the first update, for the ETA (skipping resumed rows is fast and
    /// would skew it).
    first: Option<(u64, Instant)>,
    last_line: Instant,
    every: Duration,
}

impl Ticker {
    /// `bar`: use a progress bar if stderr is a terminal.
    pub fn new(total_bytes: u64, start_rows: u64, bar: bool, every: Duration) -> Ticker {
        let bar = (bar && std::io::stderr().is_terminal()).then(|| {
            let pb = ProgressBar::with_draw_target(
                Some(total_bytes),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.enable_steady_tick(Duration::from_millis(250));
            pb
        });
        Ticker {
            bar,
            total_bytes,
            started: Instant::now(),
            start_rows,
            first: None,
            last_line: Instant::now(),
            every,
        }
    }

    pub fn update(&mut self, p: &Progress, bytes: u64) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = p.rows_done.saturating_sub(self.start_rows) as f64 / secs;
        let (b0, t0) = *self.first.get_or_insert((bytes, Instant::now()));
        let dt = t0.elapsed().as_secs_f64();
        let byte_rate = if dt > 0.5 {
            bytes.saturating_sub(b0) as f64 / dt
        } else {
            0.0
        };
        let eta = if byte_rate > 0.0 {
            let left = self.total_bytes.saturating_sub(bytes) as f64 / byte_rate;
            format_secs(left)
        } else {
            "?".into()
        };
        let c = &p.counters;
        let msg = format!(
            "{} rows, {:.0} rows/s, ETA {eta} | ins {} skip {} fail {} bad {}",
            p.rows_done,
            rate,
            c.inserted,
            c.duplicates + c.cached,
            p.failed.len(),
            c.malformed
        );
        match &self.bar {
            Some(pb) => {
                pb.set_position(bytes.min(self.total_bytes));
                pb.set_message(msg);
            }
            None => {
                if self.last_line.elapsed() >= self.every {
                    self.last_line = Instant::now();
                    let pct = if self.total_bytes > 0 {
                        bytes as f64 * 100.0 / self.total_bytes as f64
                    } else {
                        100.0
                    };
                    eprintln!("warmup: {pct:.0}% {msg}");
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
    }
}

fn format_secs(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
