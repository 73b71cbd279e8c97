//! Sending batches: the [`Sender`] trait and its two HTTP implementations (admin API and
//! through-the-gateway), with the retry rules of the contract.

use super::reader::Row;
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What happened to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Inserted,
    /// Admin mode: the server already had this entry.
    Duplicate,
    /// Gateway mode: answered from the cache (`x-deja-cache: hit-exact|hit-semantic`).
    Cached,
    /// Gateway mode: answered (200) but not cached (`x-deja-cache: bypass`).
    Bypassed,
    Failed(String),
}

/// An error that stops the run (nothing more can be sent): unreachable, unauthorised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// Sends one batch and returns one outcome per row, in order. `Err` stops the run; the
/// batch is then not acknowledged (and will be re-sent by the next run).
pub trait Sender {
    fn send(&mut self, rows: &[Row]) -> Result<Vec<Outcome>, Fatal>;
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after a connection error or a 5xx (other than 503 + Retry-After).
    pub retries: u32,
    /// First backoff; doubled on each retry.
    pub backoff: Duration,
    /// How many 503 + Retry-After answers to wait out for one request.
    pub busy_waits: u32,
    /// Cap on one Retry-After wait.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            backoff: Duration::from_millis(500),
            busy_waits: 20,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// One HTTP exchange's classification, shared by both senders.
enum Attempt<T> {
    Done(T),
    /// Wait this long and try again (counts against `busy_waits`).
    Busy(Duration, String),
    /// Back off and try again (counts against `retries`).
    Retry(String),
    /// Not retryable: the rows fail with this reason.
    Reject(String),
    /// Connection-level failure: retry, then give up on the whole run.
    Unreachable(String),
}

fn with_retries<T>(
    policy: &RetryPolicy,
    mut attempt: impl FnMut() -> Result<Attempt<T>, Fatal>,
    on_unreachable: impl Fn(String) -> Fatal,
) -> Result<Result<T, String>, Fatal> {
    let (mut retries, mut busy) = (0u32, 0u32);
    loop {
        match attempt() {
            Ok(Attempt::Done(t)) => return Ok(Ok(t)),
            Ok(Attempt::Reject(why)) => return Ok(Err(why)),
            Ok(Attempt::Busy(wait, why)) => {
                busy += 1;
                if busy > policy.busy_waits {
                    return Ok(Err(format!("{why} (gave up after {} waits)", busy - 1)));
                }
                std::thread::sleep(wait.min(policy.max_retry_after));
            }
            Ok(Attempt::Retry(why)) => {
                if retries >= policy.retries {
                    return Ok(Err(format!("{why} (after {} retries)", retries)));
                }
                std::thread::sleep(policy.backoff * 2u32.saturating_pow(retries));
                retries += 1;
            }
            Err(fatal) => return Err(fatal),
            Ok(Attempt::Unreachable(why)) => {
                if retries >= policy.retries {
                    return Err(on_unreachable(why));
                }
                std::thread::sleep(policy.backoff * 2u32.saturating_pow(retries));
                retries += 1;
            }
        }
    }
}

/// An error and its sources on one line (reqwest's Display hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The `error.message` of an OpenAI-shaped error body, else the start of the body.
fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(m) = v.pointer("/error/message").and_then(Value::as_str) {
            return m.to_string();
        }
    }
    let t = body.trim();
    if t.chars().count() > 200 {
        format!("{}…", t.chars().take(200).collect::<String>())
    } else {
        t.to_string()
    }
}

/// Classify a non-200 answer.
fn classify_error<T>(resp: Response, what: &str) -> Result<Attempt<T>, Fatal> {
    let status = resp.status();
    let wait = retry_after(&resp);
    let msg = error_message(&resp.text().unwrap_or_default());
    let why = if msg.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {msg}", status.as_u16())
    };
    Ok(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(Fatal(format!(
                "unauthorised ({why}); check --token / DEJA_ADMIN_TOKEN"
            )))
        }
        StatusCode::NOT_FOUND if what == "admin" => {
            return Err(Fatal(format!(
                "no admin endpoint ({why}); is this a deja server with the admin API?"
            )))
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS if wait.is_some() => {
            Attempt::Busy(wait.unwrap_or_default(), why)
        }
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => Attempt::Retry(why),
        _ => Attempt::Reject(why),
    })
}

pub fn http_client(timeout: Duration) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("deja-warmup/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// `POST {url}/admin/cache/entries`, one batch per request.
pub struct AdminSender {
    pub client: Client,
    pub url: String,
    pub token: Option<String>,
    pub policy: RetryPolicy,
}

#[derive(Deserialize)]
struct AdminAnswer {
    #[serde(default)]
    inserted: Option<u64>,
    #[serde(default)]
    skipped: Option<u64>,
    #[serde(default)]
    results: Option<Vec<AdminResult>>,
}

#[derive(Deserialize)]
struct AdminResult {
    index: usize,
    status: String,
    #[serde(default)]
    error: Option<String>,
}

/// Turn a 200 answer into per-row outcomes.
fn admin_outcomes(body: &str, n: usize) -> Result<Vec<Outcome>, String> {
    let a: AdminAnswer =
        serde_json::from_str(body).map_err(|e| format!("unexpected answer from server: {e}"))?;
    if let Some(results) = a.results.filter(|r| r.len() == n) {
        let mut out = vec![None; n];
        for r in results {
            let o = match r.status.as_str() {
                "inserted" => Outcome::Inserted,
                "duplicate" => Outcome::Duplicate,
                _ => Outcome::Failed(
                    r.error
                        .filter(|e| !e.is_empty())
                        .unwrap_or_else(|| format!("server said {:?}", r.status)),
                ),
            };
            match out.get_mut(r.index) {
                Some(slot) => *slot = Some(o),
                None => return Err(format!("answer has result index {} of {n}", r.index)),
            }
        }
        return out
            .into_iter()
            .map(|o| o.ok_or_else(|| "answer lacks a result for some rows".to_string()))
            .collect();
    }
    // No per-row results: fall back on the totals if they account for every row.
    match (a.inserted, a.skipped) {
        (Some(i), Some(s)) if (i + s) as usize == n => Ok((0..n)
            .map(|k| {
                if (k as u64) < i {
                    Outcome::Inserted
                } else {
                    Outcome::Duplicate
                }
            })
            .collect()),
        _ => Err("answer does not account for every row".into()),
    }
}

impl Sender for AdminSender {
    /// A 400 for a batch of several rows is bisected, so that one entry the server refuses
    /// fails alone instead of taking its whole batch with it.
    fn send(&mut self, rows: &[Row]) -> Result<Vec<Outcome>, Fatal> {
        let endpoint = format!("{}/admin/cache/entries", self.url.trim_end_matches('/'));
        let body = json!({ "entries": rows.iter().map(|r| &r.entry).collect::<Vec<_>>() });
        let n = rows.len();
        let res = with_retries(
            &self.policy,
            || {
                let mut req = self.client.post(&endpoint).json(&body);
                if let Some(t) = &self.token {
                    req = req.bearer_auth(t);
                }
                let resp = match req.send() {
                    Ok(r) => r,
                    Err(e) => return Ok(Attempt::Unreachable(error_chain(&e))),
                };
                match resp.status() {
                    StatusCode::OK => {
                        let text = match resp.text() {
                            Ok(t) => t,
                            Err(e) => return Ok(Attempt::Retry(error_chain(&e))),
                        };
                        Ok(match admin_outcomes(&text, n) {
                            Ok(o) => Attempt::Done(Some(o)),
                            Err(why) => Attempt::Reject(why),
                        })
                    }
                    StatusCode::BAD_REQUEST if n > 1 => Ok(Attempt::Done(None)),
                    _ => classify_error(resp, "admin"),
                }
            },
            |why| Fatal(format!("server unreachable at {endpoint}: {why}")),
        )?;
        match res {
            Ok(Some(outcomes)) => Ok(outcomes),
            Ok(None) => {
                let (a, b) = rows.split_at(n / 2);
                let mut out = self.send(a)?;
                out.extend(self.send(b)?);
                Ok(out)
            }
            Err(why) => Ok(vec![Outcome::Failed(why); n]),
        }
    }
}

/// `POST {url}/v1/chat/completions`, one request per row, `concurrency` at a time.
pub struct GatewaySender {
    pub client: Client,
    pub url: String,
    pub token: Option<String>,
    pub policy: RetryPolicy,
    pub concurrency: usize,
}

impl GatewaySender {
    fn send_one(&self, endpoint: &str, row: &Row) -> Result<Outcome, Fatal> {
        let e = &row.entry;
        let messages = match (&e.messages, &e.prompt) {
            (Some(m), _) => Value::Array(m.clone()),
            (None, p) => json!([{"role": "user", "content": p.clone().unwrap_or_default()}]),
        };
        let mut body = serde_json::Map::new();
        // Sampling params first so that model/messages cannot be overridden by them.
        if let Some(p) = &e.params {
            body.extend(p.clone());
        }
        body.insert("model".into(), Value::String(e.model.clone()));
        body.insert("messages".into(), messages);
        body.remove("stream");
        let body = Value::Object(body);
        let res = with_retries(
            &self.policy,
            || {
                let mut req = self.client.post(endpoint).json(&body);
                if let Some(t) = &self.token {
                    req = req.bearer_auth(t);
                }
                // the row's namespace and TTL travel as the gateway's cache controls
                if let Some(ns) = &e.namespace {
                    req = req.header("x-deja-cache-namespace", ns);
                }
                if let Some(ttl) = e.ttl_secs {
                    req = req.header("x-deja-cache-ttl", ttl.to_string());
                }
                let resp = match req.send() {
                    Ok(r) => r,
                    Err(e) => return Ok(Attempt::Unreachable(error_chain(&e))),
                };
                if resp.status() == StatusCode::OK {
                    let cache = resp
                        .headers()
                        .get("x-deja-cache")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    // Drain the body so the connection can be reused.
                    let _ = resp.bytes();
                    return Ok(Attempt::Done(if cache.starts_with("hit") {
                        Outcome::Cached
                    } else if cache == "bypass" {
                        Outcome::Bypassed
                    } else {
                        Outcome::Inserted
                    }));
                }
                classify_error(resp, "gateway")
            },
            |why| Fatal(format!("gateway unreachable at {endpoint}: {why}")),
        )?;
        Ok(res.unwrap_or_else(Outcome::Failed))
    }
}

impl Sender for GatewaySender {
    fn send(&mut self, rows: &[Row]) -> Result<Vec<Outcome>, Fatal> {
        let endpoint = format!("{}/v1/chat/completions", self.url.trim_end_matches('/'));
        let next = AtomicUsize::new(0);
        let out: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; rows.len()]);
        let fatal: Mutex<Option<Fatal>> = Mutex::new(None);
        let this = &*self;
        std::thread::scope(|s| {
            for _ in 0..this.concurrency.clamp(1, rows.len().max(1)) {
                s.spawn(|| loop {
                    if fatal.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(row) = rows.get(i) else { return };
                    match this.send_one(&endpoint, row) {
                        Ok(o) => out.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(o),
                        Err(f) => {
                            fatal
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(f);
                            return;
                        }
                    }
                });
            }
        });
        if let Some(f) = fatal.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(f);
        }
        Ok(out
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Failed("not sent".into())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_outcomes_per_row_results() {
        let body = r#"{"inserted":1,"skipped":1,"ids":["1"],"results":[
            {"index":1,"status":"duplicate","id":"9","error":null},
            {"index":0,"status":"inserted","id":"1","error":null},
            {"index":2,"status":"failed","id":null,"error":"embedder exploded"}]}"#;
        assert_eq!(
            admin_outcomes(body, 3).unwrap(),
            vec![
                Outcome::Inserted,
                Outcome::Duplicate,
                Outcome::Failed("embedder exploded".into())
            ]
        );
    }

    #[test]
    fn admin_outcomes_fall_back_on_totals_and_reject_garbage() {
        assert_eq!(
            admin_outcomes(r#"{"inserted":1,"skipped":1}"#, 2).unwrap(),
            vec![Outcome::Inserted, Outcome::Duplicate]
        );
        assert!(admin_outcomes(r#"{"inserted":1,"skipped":0}"#, 2).is_err());
        assert!(admin_outcomes("<html>", 2).is_err());
    }

    #[test]
    fn error_message_prefers_openai_shape() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"bad body","type":"invalid_request_error","param":null,"code":null}}"#
            ),
            "bad body"
        );
        assert_eq!(error_message(" plain "), "plain");
    }

    #[test]
    fn retries_then_gives_up_with_the_reason() {
        let policy = RetryPolicy {
            retries: 2,
            backoff: Duration::from_millis(1),
            busy_waits: 1,
            max_retry_after: Duration::from_millis(1),
        };
        let mut calls = 0;
        let r: Result<Result<(), String>, Fatal> = with_retries(
            &policy,
            || {
                calls += 1;
                Ok(Attempt::Retry("HTTP 500".into()))
            },
            Fatal,
        );
        assert_eq!(calls, 3);
        assert!(r.unwrap().unwrap_err().contains("HTTP 500"));

        let mut calls = 0;
        let r = with_retries(
            &policy,
            || {
                calls += 1;
                Ok(if calls == 1 {
                    Attempt::Busy(Duration::from_secs(5), "busy".into())
                } else {
                    Attempt::Done(7)
                })
            },
            Fatal,
        );
        assert_eq!(r, Ok(Ok(7)));

        let r: Result<Result<(), String>, Fatal> = with_retries(
            &policy,
            || Ok(Attempt::Unreachable("refused".into())),
            |w| Fatal(format!("unreachable: {w}")),
        );
        assert_eq!(r, Err(Fatal("unreachable: refused".into())));
    }
}
