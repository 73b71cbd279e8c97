//! `deja warmup FILE`: fill the semantic cache from a JSONL or CSV file of prompt/response
//! pairs, through the admin API (`POST /admin/cache/entries`) or, with `--through-gateway`,
//! by sending each prompt as a real chat completion so the providers answer.
//!
//! Layout: [`reader`] turns the input into rows (malformed rows keep their line numbers),
//! [`state`] is the resumable progress (sidecar state file), [`client`] the thin HTTP
//! senders behind the [`client::Sender`] trait, and [`process`] the loop tying them
//! together, which tests drive with a fake sender.

pub mod client;
pub mod display;
pub mod reader;
pub mod state;

use client::{Fatal, Outcome, Sender};
use reader::{Format, Malformed, Reader, ReaderOptions, Row};
use serde::Serialize;
use state::{FailedRow, Loaded, MalformedRow, Progress, Target, MAX_MALFORMED_KEPT};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Stop the run after this many consecutive batches in which every row failed.
pub const MAX_FAILED_BATCHES: usize = 5;

/// Exit code: rows failed (the server answered, but not every row went in).
pub const EXIT_FAILED_ROWS: i32 = 1;
/// Exit code: bad arguments or unreadable input.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the server was unreachable or refused the token; the run stopped.
pub const EXIT_FATAL: i32 = 3;

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "\
Progress is saved after every batch the server acknowledges; run the same command again to \
resume after a crash (acknowledged rows are not re-sent, failed rows are).

Exit codes: 0 every row processed (duplicates and malformed rows included); 1 some rows \
failed; 2 bad arguments or unreadable input; 3 server unreachable or token refused.")]
pub struct WarmupArgs {
    /// Input file: JSONL (`{"prompt"|"messages", "response", "model"?, "namespace"?,
    /// "ttl_secs"?, "params"?}` per line) or CSV with a header row.
    pub file: PathBuf,
    /// The deja server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Admin token, sent as `Authorization: Bearer` (with --through-gateway: the gateway key).
    #[arg(long, env = "DEJA_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Model for rows that do not name one (required if rows lack it).
    #[arg(long)]
    pub model: Option<String>,
    /// Namespace for rows that do not name one.
    #[arg(long)]
    pub namespace: Option<String>,
    /// TTL for rows that do not give one.
    #[arg(long)]
    pub ttl_secs: Option<u64>,
    /// Entries per admin request (and rows per acknowledged step with --through-gateway).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
    /// Input format; `auto` picks CSV for `*.csv`, JSONL otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// CSV column holding the prompt (default `prompt`).
    #[arg(long)]
    pub prompt_col: Option<String>,
    /// CSV column holding the response (default `response`).
    #[arg(long)]
    pub response_col: Option<String>,
    /// CSV column holding the model (default `model`, if present).
    #[arg(long)]
    pub model_col: Option<String>,
    /// Only the first N rows of the file (good or malformed, counted from the start of the
    /// file, so a resumed run with the same limit does not go further).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Send each prompt as a real `POST /v1/chat/completions` so providers answer.
    #[arg(long)]
    pub through_gateway: bool,
    /// Requests in flight with --through-gateway.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Skip the rows a matching state file says are done (the default).
    #[arg(long, conflicts_with = "restart")]
    pub resume: bool,
    /// Ignore (and overwrite) the state file; start from the first row.
    #[arg(long)]
    pub restart: bool,
    /// State file (default `FILE.deja-warmup.json` next to the input).
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// No progress bar (also off when stderr is not a terminal: a line every few seconds
    /// instead).
    #[arg(long)]
    pub no_progress: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json_summary: bool,
    /// Per-request timeout.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// First retry backoff (doubled on each retry); for tests.
    #[arg(long, default_value_t = 500, hide = true)]
    pub retry_backoff_ms: u64,
}

/// `deja warmup`: runs, prints the summary and exits with the documented code.
pub fn run(args: WarmupArgs) -> anyhow::Result<()> {
    match execute(&args) {
        Ok(summary) => {
            if args.json_summary {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.to_text());
            }
            if let Some(f) = &summary.fatal {
                eprintln!("error: {f}");
            }
            if summary.exit_code != 0 {
                std::process::exit(summary.exit_code);
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(EXIT_USAGE);
        }
    }
}

/// Everything but printing and exiting.
pub fn execute(args: &WarmupArgs) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let input = std::path::absolute(&args.file)
        .map_err(|e| anyhow::anyhow!("bad path {}: {e}", args.file.display()))?;
    let fingerprint = state::Fingerprint::of(&input)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", input.display()))?;
    let format = args.format.resolve(&input);
    let mode = if args.through_gateway {
        "gateway"
    } else {
        "admin"
    };
    let opts = ReaderOptions {
        default_model: args.model.clone(),
        default_namespace: args.namespace.clone(),
        default_ttl_secs: args.ttl_secs,
        require_response: !args.through_gateway,
        prompt_col: args.prompt_col.clone(),
        response_col: args.response_col.clone(),
        model_col: args.model_col.clone(),
    };
    let mut reader = Reader::open(&input, format, opts)?;

    let state_path = args
        .state_file
        .clone()
        .unwrap_or_else(|| Progress::default_path(&input));
    let target = Target {
        mode: mode.to_string(),
        url: args.url.trim_end_matches('/').to_string(),
    };
    let fresh = Progress::new(input.clone(), fingerprint.clone(), target);
    let (mut progress, loaded) = if args.restart {
        (fresh, Loaded::Fresh)
    } else {
        Progress::load_or_new(&state_path, fresh)
    };
    match &loaded {
        Loaded::Resumed if progress.complete && progress.failed.is_empty() => eprintln!(
            "{} says all {} rows are done: nothing to send (--restart sends them again)",
            state_path.display(),
            progress.rows_done
        ),
        Loaded::Resumed => eprintln!(
            "resuming from {}: {} rows done{}",
            state_path.display(),
            progress.rows_done,
            if progress.failed.is_empty() {
                String::new()
            } else {
                format!(", {} failed rows to re-send", progress.failed.len())
            }
        ),
        Loaded::Mismatch(why) => {
            eprintln!("ignoring {}: {why}; starting over", state_path.display())
        }
        Loaded::Fresh => {}
    }

    // Fail now, not after the first batch, if the state file cannot be written.
    progress.save(&state_path).map_err(|e| {
        anyhow::anyhow!(
            "cannot write state file {}: {e} (pass --state-file)",
            state_path.display()
        )
    })?;

    let client = client::http_client(Duration::from_secs(args.timeout_secs))?;
    let policy = client::RetryPolicy {
        backoff: Duration::from_millis(args.retry_backoff_ms),
        ..Default::default()
    };
    let mut sender: Box<dyn Sender> = if args.through_gateway {
        Box::new(client::GatewaySender {
            client,
            url: args.url.clone(),
            token: args.token.clone(),
            policy,
            concurrency: args.concurrency as usize,
        })
    } else {
        Box::new(client::AdminSender {
            client,
            url: args.url.clone(),
            token: args.token.clone(),
            policy,
        })
    };

    let mut ticker = display::Ticker::new(
        fingerprint.size,
        progress.rows_done,
        !args.no_progress,
        Duration::from_secs(5),
    );
    let settings = Settings {
        batch_size: args.batch_size as usize,
        limit: args.limit,
        state_path: Some(state_path.clone()),
    };
    let result = process(
        &mut reader,
        sender.as_mut(),
        &mut progress,
        &settings,
        &mut |p, bytes| ticker.update(p, bytes),
    );
    ticker.finish();
    let result = result?;
    Ok(Summary::new(
        &progress,
        &result,
        &state_path,
        started.elapsed(),
        matches!(loaded, Loaded::Resumed),
    ))
}

/// Knobs of [`process`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_size: usize,
    pub limit: Option<u64>,
    /// Where to save progress after each acknowledged batch (`None`: do not save).
    pub state_path: Option<PathBuf>,
}

/// What one call of [`process`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunResult {
    /// Records skipped because the state file said they were done.
    pub resumed_from: u64,
    /// Rows sent and acknowledged in this run.
    pub sent: u64,
    /// Records processed (sent or malformed) in this run.
    pub processed: u64,
    /// Why the run stopped early (unreachable, unauthorised).
    pub fatal: Option<String>,
}

/// Read rows, send them in batches, record progress after each acknowledged batch.
/// `on_progress` is called after each batch with the state and the bytes read so far.
pub fn process(
    reader: &mut Reader,
    sender: &mut dyn Sender,
    progress: &mut Progress,
    settings: &Settings,
    on_progress: &mut dyn FnMut(&Progress, u64),
) -> anyhow::Result<RunResult> {
    let resume_upto = progress.rows_done;
    let mut retry: HashSet<u64> = progress.failed.iter().map(|f| f.index).collect();
    let mut result = RunResult {
        resumed_from: resume_upto.min(settings.limit.unwrap_or(u64::MAX)),
        ..Default::default()
    };
    let mut batch: Vec<Row> = Vec::with_capacity(settings.batch_size);
    let mut malformed: Vec<Malformed> = Vec::new();
    // Records below this index have been read and are done, in `batch` or in `malformed`.
    let mut read_upto = resume_upto;
    let mut last_line = progress.last_line;
    let mut eof = false;
    let mut failed_streak = 0;
    loop {
        let Some(rec) = reader.next_record()? else {
            eof = true;
            break;
        };
        let (index, line) = match &rec {
            Ok(r) => (r.index, r.line),
            Err(m) => (m.index, m.line),
        };
        if settings.limit.is_some_and(|l| index >= l) {
            break;
        }
        if index < resume_upto {
            // Done in an earlier run, unless it failed there: then send it again.
            if let Ok(row) = rec {
                if retry.contains(&row.index) {
                    batch.push(row);
                }
            }
        } else {
            read_upto = index + 1;
            last_line = line;
            match rec {
                Ok(row) => batch.push(row),
                Err(m) => malformed.push(m),
            }
        }
        if batch.len() >= settings.batch_size {
            let failed_before = progress.failed.len();
            let n = batch.len();
            if let Err(Fatal(why)) = flush(
                sender,
                progress,
                &mut batch,
                &mut malformed,
                &mut retry,
                (read_upto, last_line),
                &mut result,
            ) {
                result.fatal = Some(why);
                return Ok(result);
            }
            save(progress, settings)?;
            on_progress(progress, reader.bytes_read());
            // A server that fails every row of batch after batch is not worth grinding
            // through the whole file with: stop (the failed rows are re-sent next run).
            if progress.failed.len() >= failed_before + n {
                failed_streak += 1;
                if failed_streak >= MAX_FAILED_BATCHES {
                    let why = progress.failed.last().map(|f| f.reason.clone());
                    result.fatal = Some(format!(
                        "{MAX_FAILED_BATCHES} batches in a row failed entirely (last: {}); stopping",
                        why.unwrap_or_default()
                    ));
                    return Ok(result);
                }
            } else {
                failed_streak = 0;
            }
        }
    }
    if let Err(Fatal(why)) = flush(
        sender,
        progress,
        &mut batch,
        &mut malformed,
        &mut retry,
        (read_upto, last_line),
        &mut result,
    ) {
        result.fatal = Some(why);
        return Ok(result);
    }
    // Once every record is done, a later run with a smaller --limit does not undo that.
    progress.complete |= eof;
    save(progress, settings)?;
    on_progress(progress, reader.bytes_read());
    Ok(result)
}

fn save(progress: &mut Progress, settings: &Settings) -> anyhow::Result<()> {
    if let Some(path) = &settings.state_path {
        progress
            .save(path)
            .map_err(|e| anyhow::anyhow!("cannot write state file {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Send `batch`; on acknowledgement, fold the outcomes and the malformed rows read since the
/// last batch into `progress` and advance `rows_done` to `upto`.
fn flush(
    sender: &mut dyn Sender,
    progress: &mut Progress,
    batch: &mut Vec<Row>,
    malformed: &mut Vec<Malformed>,
    retry: &mut HashSet<u64>,
    (upto, last_line): (u64, u64),
    result: &mut RunResult,
) -> Result<(), Fatal> {
    let outcomes = if batch.is_empty() {
        Vec::new()
    } else {
        sender.send(batch)?
    };
    if outcomes.len() != batch.len() {
        return Err(Fatal(format!(
            "sender returned {} outcomes for {} rows",
            outcomes.len(),
            batch.len()
        )));
    }
    let c = &mut progress.counters;
    for (row, outcome) in batch.iter().zip(outcomes) {
        if retry.remove(&row.index) {
            progress.failed.retain(|f| f.index != row.index);
        } else {
            result.processed += 1;
        }
        result.sent += 1;
        c.sent += 1;
        match outcome {
            Outcome::Inserted => c.inserted += 1,
            Outcome::Duplicate => c.duplicates += 1,
            Outcome::Cached => c.cached += 1,
            Outcome::Bypassed => c.bypassed += 1,
            Outcome::Failed(reason) => progress.failed.push(FailedRow {
                index: row.index,
                line: row.line,
                reason,
            }),
        }
    }
    for m in malformed.drain(..) {
        c.malformed += 1;
        result.processed += 1;
        if progress.malformed.len() < MAX_MALFORMED_KEPT {
            progress.malformed.push(MalformedRow {
                line: m.line,
                reason: m.reason,
            });
        }
    }
    if upto > progress.rows_done {
        progress.rows_done = upto;
        progress.last_line = last_line;
    }
    c.read = progress.rows_done;
    batch.clear();
    Ok(())
}

/// Failed rows with the same reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailureGroup {
    pub reason: String,
    pub count: u64,
    /// The first few line numbers.
    pub lines: Vec<u64>,
}

/// The end-of-run report (`--json-summary` prints it as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub input: PathBuf,
    pub state_file: PathBuf,
    pub mode: String,
    pub url: String,
    /// Every row of the input has been processed (not stopped by --limit or an error).
    pub complete: bool,
    pub resumed: bool,
    /// Rows skipped because an earlier run had done them.
    pub resumed_from: u64,
    /// Rows read (good and malformed) from the start of the file, over all runs.
    pub rows_read: u64,
    /// Rows sent and acknowledged by this run.
    pub sent_this_run: u64,
    pub inserted: u64,
    /// `duplicates + cached`.
    pub skipped: u64,
    pub duplicates: u64,
    pub cached: u64,
    /// Gateway mode: answered but not cached (`x-deja-cache: bypass`); not a failure.
    pub bypassed: u64,
    pub failed: u64,
    pub failures: Vec<FailureGroup>,
    pub malformed: u64,
    /// Line numbers and reasons (the first 1000).
    pub malformed_rows: Vec<MalformedRow>,
    pub elapsed_secs: f64,
    /// Rows processed by this run per second.
    pub rate_rows_per_sec: f64,
    pub fatal: Option<String>,
    pub exit_code: i32,
}

const FIRST_LINES: usize = 10;

impl Summary {
    pub fn new(
        p: &Progress,
        r: &RunResult,
        state_file: &Path,
        elapsed: Duration,
        resumed: bool,
    ) -> Summary {
        let mut groups: BTreeMap<&str, FailureGroup> = BTreeMap::new();
        for f in &p.failed {
            let g = groups.entry(&f.reason).or_insert_with(|| FailureGroup {
                reason: f.reason.clone(),
                count: 0,
                lines: Vec::new(),
            });
            g.count += 1;
            if g.lines.len() < FIRST_LINES {
                g.lines.push(f.line);
            }
        }
        let mut failures: Vec<FailureGroup> = groups.into_values().collect();
        failures.sort_by_key(|g| std::cmp::Reverse(g.count));
        for g in &mut failures {
            g.lines.sort_unstable();
        }
        let secs = elapsed.as_secs_f64();
        let exit_code = if r.fatal.is_some() {
            EXIT_FATAL
        } else if !p.failed.is_empty() {
            EXIT_FAILED_ROWS
        } else {
            0
        };
        let c = &p.counters;
        Summary {
            input: p.input.clone(),
            state_file: state_file.to_path_buf(),
            mode: p.target.mode.clone(),
            url: p.target.url.clone(),
            complete: p.complete,
            resumed,
            resumed_from: r.resumed_from,
            rows_read: p.rows_done,
            sent_this_run: r.sent,
            inserted: c.inserted,
            skipped: c.duplicates + c.cached,
            duplicates: c.duplicates,
            cached: c.cached,
            bypassed: c.bypassed,
            failed: p.failed_count(),
            failures,
            malformed: c.malformed,
            malformed_rows: p.malformed.clone(),
            elapsed_secs: (secs * 1000.0).round() / 1000.0,
            rate_rows_per_sec: if secs > 0.0 {
                ((r.processed as f64 / secs) * 10.0).round() / 10.0
            } else {
                0.0
            },
            fatal: r.fatal.clone(),
            exit_code,
        }
    }

    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let how = if self.mode == "gateway" {
            "through the gateway at"
        } else {
            "admin API at"
        };
        let _ = writeln!(
            s,
            "deja warmup: {} -> {how} {}",
            self.input.display(),
            self.url
        );
        let resumed = if self.resumed {
            format!(" (resumed: {} already done)", self.resumed_from)
        } else {
            String::new()
        };
        let state = if self.fatal.is_some() {
            "stopped"
        } else if self.complete {
            "complete"
        } else {
            "partial (--limit)"
        };
        let _ = writeln!(s, "  rows read   {:>8}{resumed}, {state}", self.rows_read);
        let _ = writeln!(s, "  inserted    {:>8}", self.inserted);
        let _ = writeln!(
            s,
            "  skipped     {:>8} (duplicates {}, already cached {})",
            self.skipped, self.duplicates, self.cached
        );
        if self.bypassed > 0 {
            let _ = writeln!(
                s,
                "  bypassed    {:>8} (answered but not cached: x-deja-cache: bypass)",
                self.bypassed
            );
        }
        let _ = writeln!(s, "  failed      {:>8}", self.failed);
        for g in &self.failures {
            let _ = writeln!(
                s,
                "    {} row(s): {} (lines {}{})",
                g.count,
                g.reason,
                join(&g.lines),
                if g.count as usize > g.lines.len() {
                    ", ..."
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(s, "  malformed   {:>8}", self.malformed);
        for m in self.malformed_rows.iter().take(20) {
            let _ = writeln!(s, "    line {}: {}", m.line, m.reason);
        }
        if self.malformed > 20 {
            let _ = writeln!(s, "    ... ({} more)", self.malformed - 20);
        }
        let _ = writeln!(
            s,
            "  elapsed {:.1}s, {:.1} rows/s; sent this run {}; state file {}",
            self.elapsed_secs,
            self.rate_rows_per_sec,
            self.sent_this_run,
            self.state_file.display()
        );
        if let Some(f) = &self.fatal {
            let _ = writeln!(s, "  STOPPED: {f}");
        }
        s
    }
}

fn join(lines: &[u64]) -> String {
    lines
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
