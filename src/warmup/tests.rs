//! `process` driven by a fake sender: batching, malformed rows, failures, resume.

use super::*;
use std::io::Cursor;

/// Records every batch; answers from a script (`None`: all inserted).
#[derive(Default)]
struct FakeSender {
    batches: Vec<Vec<u64>>,
    /// Fail fatally on this call (0-based).
    die_on: Option<usize>,
    /// Rows (by index) that come back failed.
    fail_rows: HashSet<u64>,
    /// Rows (by index) that come back as duplicates.
    dup_rows: HashSet<u64>,
}

impl Sender for FakeSender {
    fn send(&mut self, rows: &[Row]) -> Result<Vec<Outcome>, Fatal> {
        if self.die_on == Some(self.batches.len()) {
            self.die_on = None;
            return Err(Fatal("connection refused".into()));
        }
        self.batches.push(rows.iter().map(|r| r.index).collect());
        Ok(rows
            .iter()
            .map(|r| {
                if self.fail_rows.contains(&r.index) {
                    Outcome::Failed("HTTP 500: boom".into())
                } else if self.dup_rows.contains(&r.index) {
                    Outcome::Duplicate
                } else {
                    Outcome::Inserted
                }
            })
            .collect())
    }
}

fn jsonl(n: u64, bad: &[u64]) -> String {
    (0..n)
        .map(|i| {
            if bad.contains(&i) {
                "{oops\n".to_string()
            } else {
                format!("{{\"prompt\":\"p{i}\",\"response\":\"r{i}\",\"model\":\"m\"}}\n")
            }
        })
        .collect()
}

fn reader(text: &str) -> Reader {
    Reader::from_reader(
        Box::new(Cursor::new(text.to_string())),
        Format::Jsonl,
        ReaderOptions::default(),
    )
    .unwrap()
}

fn fresh() -> Progress {
    Progress::new(
        "/in.jsonl".into(),
        state::Fingerprint {
            size: 0,
            mtime_ns: 0,
            head_sha256: String::new(),
        },
        Target {
            mode: "admin".into(),
            url: "u".into(),
        },
    )
}

fn settings(batch_size: usize, limit: Option<u64>) -> Settings {
    Settings {
        batch_size,
        limit,
        state_path: None,
    }
}

#[test]
fn batches_and_counts() {
    let text = jsonl(10, &[3, 7]);
    let mut s = FakeSender {
        dup_rows: [0, 1].into(),
        ..Default::default()
    };
    let mut p = fresh();
    let r = process(
        &mut reader(&text),
        &mut s,
        &mut p,
        &settings(3, None),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(s.batches, vec![vec![0, 1, 2], vec![4, 5, 6], vec![8, 9]]);
    assert_eq!(r.sent, 8);
    assert_eq!(r.processed, 10);
    assert!(r.fatal.is_none());
    assert!(p.complete);
    assert_eq!(p.rows_done, 10);
    assert_eq!(p.counters.inserted, 6);
    assert_eq!(p.counters.duplicates, 2);
    assert_eq!(p.counters.malformed, 2);
    assert_eq!(
        p.malformed.iter().map(|m| m.line).collect::<Vec<_>>(),
        vec![4, 8]
    );
    let sum = Summary::new(&p, &r, Path::new("st"), Duration::from_secs(1), false);
    assert_eq!(sum.exit_code, 0);
    assert_eq!(sum.skipped, 2);
}

#[test]
fn fatal_stops_without_acknowledging_and_resume_resends_only_that_batch() {
    let text = jsonl(10, &[]);
    let mut s = FakeSender {
        die_on: Some(2),
        ..Default::default()
    };
    let mut p = fresh();
    let r = process(
        &mut reader(&text),
        &mut s,
        &mut p,
        &settings(3, None),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(r.fatal.as_deref(), Some("connection refused"));
    assert_eq!(p.rows_done, 6);
    assert!(!p.complete);
    let sum = Summary::new(&p, &r, Path::new("st"), Duration::from_secs(1), false);
    assert_eq!(sum.exit_code, EXIT_FATAL);

    // Second run on the saved progress: starts at row 6.
    let r = process(
        &mut reader(&text),
        &mut s,
        &mut p,
        &settings(3, None),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(r.fatal.is_none());
    assert_eq!(r.resumed_from, 6);
    assert_eq!(
        s.batches,
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]
    );
    assert_eq!(p.counters.inserted, 10);
    assert!(p.complete);
}

#[test]
fn limit_then_resume() {
    let text = jsonl(10, &[1]);
    let mut s = FakeSender::default();
    let mut p = fresh();
    let r = process(
        &mut reader(&text),
        &mut s,
        &mut p,
        &settings(4, Some(5)),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(s.batches, vec![vec![0, 2, 3, 4]]);
    assert_eq!(r.processed, 5);
    assert_eq!(p.rows_done, 5);
    assert!(!p.complete);
    // Same limit again: nothing more.
    process(
        &mut reader(&text),
        &mut s,
        &mut p,
        &settings(4, Some(5)),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(s.batches.len(), 1);
    // No limit: the rest, once.
    process(
        &mut reader(&text),
        &mut s,
        &mut p,
        &settings(4, None),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(s.batches, vec![vec![0, 2, 3, 4], vec![5, 6, 7, 8], vec![9]]);
    assert_eq!(p.counters.malformed, 1);
    assert_eq!(p.counters.inserted, 9);
}

#[test]
fn failed_rows_are_reported_and_resent_by_the_next_run() {
    let text = jsonl(6, &[]);
    let mut s = FakeSender {
        fail_rows: [1, 4].into(),
        ..Default::default()
    };
    let mut p = fresh();
    let r = process(
        &mut reader(&text),
        &mut s,
        &mut p,
        &settings(2, None),
        &mut |_, _| {},
    )
    .unwrap();
    let sum = Summary::new(&p, &r, Path::new("st"), Duration::from_secs(1), false);
    assert_eq!(sum.failed, 2);
    assert_eq!(sum.exit_code, EXIT_FAILED_ROWS);
    assert_eq!(
        sum.failures,
        vec![FailureGroup {
            reason: "HTTP 500: boom".into(),
            count: 2,
            lines: vec![2, 5]
        }]
    );
    // The server recovers: the next run re-sends only the failed rows.
    s.fail_rows.clear();
    let r = process(
        &mut reader(&text),
        &mut s,
        &mut p,
        &settings(2, None),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(s.batches.last().unwrap(), &vec![1, 4]);
    assert_eq!(s.batches.len(), 4);
    let sum = Summary::new(&p, &r, Path::new("st"), Duration::from_secs(1), true);
    assert_eq!(sum.failed, 0);
    assert_eq!(sum.inserted, 6);
    assert_eq!(sum.exit_code, 0);
}

#[test]
fn a_server_failing_every_batch_stops_the_run() {
    let text = jsonl(40, &[]);
    let mut s = FakeSender {
        fail_rows: (0..40).collect(),
        ..Default::default()
    };
    let mut p = fresh();
    let r = process(
        &mut reader(&text),
        &mut s,
        &mut p,
        &settings(2, None),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(s.batches.len(), MAX_FAILED_BATCHES);
    assert!(r.fatal.unwrap().contains("in a row failed entirely"));
    assert_eq!(p.rows_done, 2 * MAX_FAILED_BATCHES as u64);
    assert_eq!(p.failed.len(), 2 * MAX_FAILED_BATCHES);
    assert!(!p.complete);
}
