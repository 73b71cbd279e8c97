//! `deja warmup FILE` end to end: the real binary against a fake admin server (a tiny std
//! TcpListener HTTP/1.1 server that records what it receives and answers per the contract),
//! on real files in a tempdir.

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "s3cret";

/// One request the fake server received.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    auth: Option<String>,
    /// `x-deja-cache-namespace` and `x-deja-cache-ttl`, when sent.
    cache_headers: (Option<String>, Option<String>),
    body: Value,
    /// Whether the server answered 200 (i.e. acknowledged it).
    acked: bool,
}

#[derive(Default)]
struct Behaviour {
    /// Answer the next request with 503 + Retry-After: 1.
    busy_once: AtomicBool,
    /// After this many 200 answers, stop answering (drop connections) until cleared.
    die_after: Mutex<Option<usize>>,
    dead: AtomicBool,
    /// Any batch containing this prompt gets a 500.
    explode_on: Mutex<Option<String>>,
    /// Entries with this prompt come back `"status": "failed"`.
    reject_prompt: Mutex<Option<String>>,
}

struct Fake {
    url: String,
    log: Arc<Mutex<Vec<Req>>>,
    b: Arc<Behaviour>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<Req>>> = Arc::default();
        let b: Arc<Behaviour> = Arc::default();
        let (log2, b2) = (log.clone(), b.clone());
        std::thread::spawn(move || {
            // Cache contents, across requests: prompts already inserted.
            let seen: Mutex<HashSet<String>> = Mutex::default();
            let acked = AtomicUsize::new(0);
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                handle(stream, &log2, &b2, &seen, &acked);
            }
        });
        Fake { url, log, b }
    }

    fn acked(&self) -> Vec<Req> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.acked)
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    /// Prompts of the entries of every acknowledged admin request, in order.
    fn acked_prompts(&self) -> Vec<String> {
        self.acked()
            .iter()
            .flat_map(|r| entries(r).iter().map(prompt_of).collect::<Vec<_>>())
            .collect()
    }
}

fn entries(r: &Req) -> &Vec<Value> {
    r.body["entries"].as_array().expect("entries array")
}

fn prompt_of(e: &Value) -> String {
    e["prompt"].as_str().unwrap_or_default().to_string()
}

fn read_request(stream: &mut TcpStream) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((path, headers, body))
}

fn respond(stream: &mut TcpStream, status: u16, extra: &[(&str, String)], body: &Value) {
    let body = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

fn openai_error(message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

fn handle(
    mut stream: TcpStream,
    log: &Mutex<Vec<Req>>,
    b: &Behaviour,
    seen: &Mutex<HashSet<String>>,
    acked: &AtomicUsize,
) {
    let Some((path, headers, body)) = read_request(&mut stream) else {
        return;
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut req = Req {
        path: path.clone(),
        auth: headers.get("authorization").cloned(),
        cache_headers: (
            headers.get("x-deja-cache-namespace").cloned(),
            headers.get("x-deja-cache-ttl").cloned(),
        ),
        body: body.clone(),
        acked: false,
    };
    let answer = |req: &mut Req, stream: &mut TcpStream, status, extra: &[(&str, String)], v| {
        req.acked = status == 200;
        log.lock().unwrap().push(req.clone());
        respond(stream, status, extra, &v);
    };
    if b.dead.load(Ordering::SeqCst) {
        // A dying server: the request was read, never answered.
        log.lock().unwrap().push(req);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    if req.auth.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return answer(
            &mut req,
            &mut stream,
            401,
            &[],
            openai_error("bad token", "authentication_error"),
        );
    }
    if b.busy_once.swap(false, Ordering::SeqCst) {
        return answer(
            &mut req,
            &mut stream,
            503,
            &[("retry-after", "1".into())],
            openai_error("embedder overloaded", "overloaded"),
        );
    }
    if path == "/v1/chat/completions" {
        let prompt = body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let hit = !seen.lock().unwrap().insert(prompt.clone());
        let cache = if prompt.starts_with("nocache") {
            "bypass"
        } else if hit {
            "hit-exact"
        } else {
            "miss"
        };
        return answer(
            &mut req,
            &mut stream,
            200,
            &[("x-deja-cache", cache.into())],
            json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}),
        );
    }
    if path != "/admin/cache/entries" {
        return answer(
            &mut req,
            &mut stream,
            404,
            &[],
            openai_error("no route", "not_found"),
        );
    }
    let Some(list) = body["entries"].as_array() else {
        return answer(
            &mut req,
            &mut stream,
            400,
            &[],
            openai_error("no entries", "invalid_request_error"),
        );
    };
    let prompts: Vec<String> = list.iter().map(prompt_of).collect();
    if prompts.iter().any(|p| p == "poison") {
        return answer(
            &mut req,
            &mut stream,
            400,
            &[],
            openai_error(
                "entries[0].prompt: poison is not allowed",
                "invalid_request_error",
            ),
        );
    }
    if let Some(bad) = b.explode_on.lock().unwrap().as_ref() {
        if prompts.contains(bad) {
            return answer(
                &mut req,
                &mut stream,
                500,
                &[],
                openai_error("store exploded", "server_error"),
            );
        }
    }
    let reject = b.reject_prompt.lock().unwrap().clone();
    let mut results = Vec::new();
    let (mut inserted, mut skipped, mut ids) = (0, 0, Vec::new());
    for (i, p) in prompts.iter().enumerate() {
        if reject.as_ref() == Some(p) {
            results
                .push(json!({"index": i, "status": "failed", "id": null, "error": "cannot embed"}));
        } else if seen.lock().unwrap().insert(p.clone()) {
            inserted += 1;
            ids.push(format!("{i}"));
            results.push(
                json!({"index": i, "status": "inserted", "id": format!("{i}"), "error": null}),
            );
        } else {
            skipped += 1;
            results.push(json!({"index": i, "status": "duplicate", "id": "0", "error": null}));
        }
    }
    answer(
        &mut req,
        &mut stream,
        200,
        &[],
        json!({"inserted": inserted, "skipped": skipped, "ids": ids, "results": results}),
    );
    let n = acked.fetch_add(1, Ordering::SeqCst) + 1;
    if b.die_after.lock().unwrap().is_some_and(|d| n >= d) {
        b.dead.store(true, Ordering::SeqCst);
    }
}

fn deja(fake: &Fake, file: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deja"));
    c.env_remove("DEJA_ADMIN_TOKEN")
        .arg("warmup")
        .arg(file)
        .args([
            "--url",
            &fake.url,
            "--no-progress",
            "--retry-backoff-ms",
            "10",
        ])
        .args(extra);
    c.output().unwrap()
}

/// Run with `--json-summary`; returns the exit code, the summary and stderr.
fn run_json(fake: &Fake, file: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["--json-summary"];
    args.extend_from_slice(extra);
    let out = deja(fake, file, &args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON summary ({e}); stdout: {}; stderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), summary, stderr)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn jsonl_rows(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"prompt\":\"question {i}\",\"response\":\"answer {i}\"}}\n"))
        .collect()
}

fn lines_of(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["line"].as_u64().unwrap())
        .collect()
}

#[test]
fn jsonl_malformed_lines_are_reported_and_good_rows_sent_after_a_503() {
    let dir = tempfile::tempdir().unwrap();
    let text = concat!(
        "{\"prompt\":\"q1\",\"response\":\"a1\"}\n",
        "{\"prompt\":\"q2\",\"response\":\"a2\",\"model\":\"other/m\",\"namespace\":\"ns2\",\"ttl_secs\":60,\"params\":{\"temperature\":0}}\n",
        "{\"prompt\":\"q3\",\n",
        "\n",
        "{\"prompt\":\"\",\"response\":\"x\"}\n",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"q6\"}],\"response\":{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"a6\"},\"finish_reason\":\"stop\"}]}}\n",
        "{\"prompt\":\"q7\",\"response\":42}\n",
        "{\"prompt\":\"q8\",\"response\":\"a8\"}\n",
        "{\"prompt\":\"q9\",\"response\":\"a9\"}",
    );
    let file = write(dir.path(), "rows.jsonl", text);
    let fake = Fake::start();
    fake.b.busy_once.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let (code, sum, stderr) = run_json(
        &fake,
        &file,
        &[
            "--token",
            TOKEN,
            "--model",
            "openai/gpt-4o-mini",
            "--namespace",
            "ns",
            "--batch-size",
            "3",
        ],
    );
    assert_eq!(code, 0, "{sum:#}\n{stderr}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "Retry-After was not honoured"
    );
    assert_eq!(lines_of(&sum["malformed_rows"]), vec![3, 5, 7]);
    assert_eq!(sum["malformed"], 3);
    assert_eq!(sum["inserted"], 5);
    assert_eq!(sum["failed"], 0);
    assert_eq!(sum["rows_read"], 8);
    assert_eq!(sum["complete"], true);

    // The 503'd batch was re-sent as is; every good row arrived once.
    let all = fake.all();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(!all[0].acked);
    assert_eq!(all[0].body, all[1].body);
    let acked = fake.acked();
    let entries: Vec<&Value> = acked.iter().flat_map(entries).collect();
    assert_eq!(entries.len(), 5);
    assert_eq!(
        *entries[0],
        json!({"prompt":"q1","response":"a1","model":"openai/gpt-4o-mini","namespace":"ns"})
    );
    assert_eq!(
        *entries[1],
        json!({"prompt":"q2","response":"a2","model":"other/m","namespace":"ns2","ttl_secs":60,"params":{"temperature":0}})
    );
    assert_eq!(entries[2]["messages"][0]["content"], "q6");
    assert_eq!(
        entries[2]["response"]["choices"][0]["message"]["content"],
        "a6"
    );
    assert_eq!(
        entries.iter().map(|e| prompt_of(e)).collect::<Vec<_>>(),
        vec!["q1", "q2", "", "q8", "q9"]
    );
    assert!(acked
        .iter()
        .all(|r| r.auth.as_deref() == Some("Bearer s3cret")));

    // The state file sits next to the input and says it is all done.
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("rows.jsonl.deja-warmup.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["rows_done"], 8);
    assert_eq!(state["complete"], true);

    // Again with --restart (token from the environment): everything is a duplicate.
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .env("DEJA_ADMIN_TOKEN", TOKEN)
        .args(["warmup", file.to_str().unwrap(), "--url", &fake.url])
        .args([
            "--model",
            "openai/gpt-4o-mini",
            "--restart",
            "--no-progress",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(duplicates 5, already cached 0)"), "{text}");
    assert!(text.contains("line 3:"), "{text}");

    // And with resume (the default): nothing is sent.
    let before = fake.all().len();
    let (code, sum, stderr) = run_json(&fake, &file, &["--token", TOKEN, "--model", "m"]);
    assert_eq!(code, 0);
    assert!(stderr.contains("nothing to send"), "{stderr}");
    assert_eq!(sum["sent_this_run"], 0);
    assert_eq!(fake.all().len(), before);
}

#[test]
fn bad_token_stops_with_exit_code_3_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rows.jsonl", &jsonl_rows(5));
    let fake = Fake::start();
    let (code, sum, stderr) = run_json(&fake, &file, &["--token", "wrong", "--model", "m"]);
    assert_eq!(code, 3, "{sum:#}");
    assert!(stderr.contains("unauthorised"), "{stderr}");
    assert_eq!(sum["rows_read"], 0);
    assert_eq!(fake.all().len(), 1, "401 must not be retried");
    // Then with the right token: everything goes.
    let (code, sum, _) = run_json(&fake, &file, &["--token", TOKEN, "--model", "m"]);
    assert_eq!(code, 0);
    assert_eq!(sum["inserted"], 5);
}

#[test]
fn unreachable_server_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rows.jsonl", &jsonl_rows(2));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .args([
            "warmup",
            file.to_str().unwrap(),
            "--model",
            "m",
            "--no-progress",
        ])
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--retry-backoff-ms", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));

    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .args(["warmup", "/nonexistent/rows.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // An unwritable state file is reported before anything is sent.
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .args(["warmup", file.to_str().unwrap(), "--model", "m"])
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--state-file", "/nonexistent/dir/state.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state-file"));

    // A CSV without the prompt column: a usage error naming the flag.
    let csv = write(dir.path(), "x.csv", "a,b\n1,2\n");
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .args(["warmup", csv.to_str().unwrap(), "--model", "m"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prompt-col"));
}

#[test]
fn csv_column_mapping_with_multiline_quoted_fields() {
    let dir = tempfile::tempdir().unwrap();
    let text = "id,instruction,category,answer\n\
                1,\"how do I\ncancel?\",ORDER,\"Step 1: log in.\nStep 2: \"\"Cancel\"\".\"\n\
                2,,ORDER,no prompt here\n\
                3,plain question,ACCOUNT,\"a, b and c\"\n\
                4,\"multi\n\nline\",X,\"r4\"\n";
    let file = write(dir.path(), "support.csv", text);
    let fake = Fake::start();
    let (code, sum, stderr) = run_json(
        &fake,
        &file,
        &[
            "--token",
            TOKEN,
            "--prompt-col",
            "instruction",
            "--response-col",
            "answer",
            "--model",
            "openai/gpt-4o-mini",
        ],
    );
    assert_eq!(code, 0, "{sum:#} {stderr}");
    // Row 1 spans lines 2-4, so the row without a prompt starts on line 5.
    assert_eq!(lines_of(&sum["malformed_rows"]), vec![5]);
    assert!(sum["malformed_rows"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("empty prompt"));
    let entries: Vec<Value> = fake
        .acked()
        .iter()
        .flat_map(|r| entries(r).clone())
        .collect();
    assert_eq!(
        entries,
        vec![
            json!({"prompt":"how do I\ncancel?","response":"Step 1: log in.\nStep 2: \"Cancel\".","model":"openai/gpt-4o-mini"}),
            json!({"prompt":"plain question","response":"a, b and c","model":"openai/gpt-4o-mini"}),
            json!({"prompt":"multi\n\nline","response":"r4","model":"openai/gpt-4o-mini"}),
        ]
    );
}

#[test]
fn bitext_customer_support_first_200_rows() {
    // 320 records: --limit 200 leaves the file incomplete.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bitext/customer_support.csv");
    // The expected rows, read independently with the csv crate.
    let mut rdr = csv::Reader::from_path(&data).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let (ci, cr) = (col("instruction"), col("response"));
    let expected: Vec<(String, String)> = rdr
        .records()
        .take(200)
        .map(|r| {
            let r = r.unwrap();
            (r[ci].to_string(), r[cr].to_string())
        })
        .collect();
    assert!(expected.iter().any(|(_, r)| r.contains('\n')));

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("bitext.state.json");
    let fake = Fake::start();
    let (code, sum, stderr) = run_json(
        &fake,
        &data,
        &[
            "--token",
            TOKEN,
            "--prompt-col",
            "instruction",
            "--response-col",
            "response",
            "--model",
            "openai/gpt-4o-mini",
            "--limit",
            "200",
            "--state-file",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{sum:#} {stderr}");
    assert_eq!(sum["rows_read"], 200);
    assert_eq!(sum["malformed"], 0);
    assert_eq!(sum["complete"], false);
    assert_eq!(
        sum["inserted"].as_u64().unwrap() + sum["duplicates"].as_u64().unwrap(),
        200
    );
    let got: Vec<(String, String)> = fake
        .acked()
        .iter()
        .flat_map(|r| entries(r).clone())
        .map(|e| {
            assert_eq!(e["model"], "openai/gpt-4o-mini");
            (prompt_of(&e), e["response"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(got.len(), 200);
    assert_eq!(got, expected);
    assert_eq!(fake.acked().len(), 4, "64-row batches");
    // The dataset is not touched: no state file next to it.
    assert!(!data
        .with_file_name("customer_support.csv.deja-warmup.json")
        .exists());
}

#[test]
fn resume_after_the_server_dies_sends_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rows.jsonl", &jsonl_rows(23));
    let fake = Fake::start();
    *fake.b.die_after.lock().unwrap() = Some(2);
    let args = ["--token", TOKEN, "--model", "m", "--batch-size", "5"];
    let (code, sum, stderr) = run_json(&fake, &file, &args);
    assert_eq!(code, 3, "{sum:#} {stderr}");
    assert_eq!(sum["rows_read"], 10);
    assert!(sum["fatal"].as_str().unwrap().contains("unreachable"));
    let first_acked = fake.acked_prompts();
    assert_eq!(first_acked.len(), 10);
    let unacked_before = fake.all().len() - fake.acked().len();
    assert!(
        unacked_before >= 1,
        "the third batch was sent, never answered"
    );

    // The server comes back: the second run starts after the acknowledged rows.
    fake.b.dead.store(false, Ordering::SeqCst);
    *fake.b.die_after.lock().unwrap() = None;
    let (code, sum, stderr) = run_json(&fake, &file, &args);
    assert_eq!(code, 0, "{sum:#} {stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    assert_eq!(sum["resumed_from"], 10);
    assert_eq!(sum["sent_this_run"], 13);
    assert_eq!(sum["inserted"], 23);
    assert_eq!(sum["duplicates"], 0);
    let all_acked = fake.acked_prompts();
    let second: Vec<&String> = all_acked[first_acked.len()..].iter().collect();
    assert!(
        second.iter().all(|p| !first_acked.contains(p)),
        "acknowledged rows re-sent"
    );
    let mut sorted = all_acked.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 23);
    assert_eq!(all_acked.len(), 23, "every row acknowledged exactly once");
}

#[test]
fn limit_then_resume_sends_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rows.jsonl", &jsonl_rows(12));
    let fake = Fake::start();
    let (code, sum, _) = run_json(
        &fake,
        &file,
        &[
            "--token",
            TOKEN,
            "--model",
            "m",
            "--batch-size",
            "4",
            "--limit",
            "7",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(sum["rows_read"], 7);
    assert_eq!(sum["complete"], false);
    let (code, sum, _) = run_json(&fake, &file, &["--token", TOKEN, "--model", "m"]);
    assert_eq!(code, 0);
    assert_eq!(sum["rows_read"], 12);
    assert_eq!(sum["inserted"], 12);
    assert_eq!(sum["sent_this_run"], 5);
    let prompts = fake.acked_prompts();
    assert_eq!(
        prompts,
        (0..12).map(|i| format!("question {i}")).collect::<Vec<_>>()
    );
}

#[test]
fn failed_rows_exit_1_with_grouped_reasons_and_are_resent_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "rows.jsonl", &jsonl_rows(9));
    let fake = Fake::start();
    *fake.b.explode_on.lock().unwrap() = Some("question 4".into());
    *fake.b.reject_prompt.lock().unwrap() = Some("question 7".into());
    let args = ["--token", TOKEN, "--model", "m", "--batch-size", "3"];
    let (code, sum, _) = run_json(&fake, &file, &args);
    assert_eq!(code, 1, "{sum:#}");
    assert_eq!(sum["failed"], 4);
    assert_eq!(sum["inserted"], 5);
    assert_eq!(sum["complete"], true);
    let failures = sum["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(failures[0]["count"], 3);
    assert!(failures[0]["reason"]
        .as_str()
        .unwrap()
        .contains("HTTP 500: store exploded"));
    assert_eq!(failures[0]["lines"], json!([4, 5, 6]));
    assert_eq!(failures[1]["reason"], "cannot embed");
    assert_eq!(failures[1]["lines"], json!([8]));
    // The 500 batch was retried (1 + 3 retries).
    let exploded = fake.all().iter().filter(|r| !r.acked).count();
    assert_eq!(exploded, 4);

    // Fixed server: the next run re-sends only the failed rows.
    *fake.b.explode_on.lock().unwrap() = None;
    *fake.b.reject_prompt.lock().unwrap() = None;
    let before = fake.acked_prompts().len();
    let (code, sum, _) = run_json(&fake, &file, &args);
    assert_eq!(code, 0, "{sum:#}");
    assert_eq!(sum["failed"], 0);
    assert_eq!(sum["inserted"], 9);
    let resent = &fake.acked_prompts()[before..];
    assert_eq!(
        resent,
        ["question 3", "question 4", "question 5", "question 7"]
    );
}

#[test]
fn through_gateway_sends_chat_completions_and_counts_cache_hits() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"prompt\":\"hello\"}\n{\"prompt\":\"world\",\"params\":{\"temperature\":0}}\n{\"prompt\":\"hello\"}\n{\"nope\":1}\n{\"prompt\":\"again\",\"model\":\"x/y\"}\n";
    let file = write(dir.path(), "prompts.jsonl", text);
    let fake = Fake::start();
    let (code, sum, stderr) = run_json(
        &fake,
        &file,
        &[
            "--through-gateway",
            "--token",
            TOKEN,
            "--model",
            "openai/gpt-4o-mini",
            "--concurrency",
            "1",
        ],
    );
    assert_eq!(code, 0, "{sum:#} {stderr}");
    assert_eq!(sum["mode"], "gateway");
    assert_eq!(sum["inserted"], 3);
    assert_eq!(sum["cached"], 1);
    assert_eq!(sum["skipped"], 1);
    assert_eq!(lines_of(&sum["malformed_rows"]), vec![4]);
    let reqs = fake.acked();
    assert_eq!(reqs.len(), 4);
    assert!(reqs.iter().all(|r| r.path == "/v1/chat/completions"));
    assert_eq!(
        reqs[1].body,
        json!({"temperature": 0, "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "world"}]})
    );
    assert_eq!(reqs[3].body["model"], "x/y");
    assert!(reqs.iter().all(|r| r.cache_headers == (None, None)));
}

#[test]
fn through_gateway_sends_namespace_and_ttl_as_cache_headers() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "{\"prompt\":\"a\"}\n{\"prompt\":\"b\",\"namespace\":\"tenant-b\",\"ttl_secs\":60}\n";
    let file = write(dir.path(), "prompts.jsonl", text);
    let fake = Fake::start();
    let (code, sum, stderr) = run_json(
        &fake,
        &file,
        &[
            "--through-gateway",
            "--token",
            TOKEN,
            "--model",
            "m",
            "--namespace",
            "tenant-a",
            "--ttl-secs",
            "3600",
            "--concurrency",
            "1",
        ],
    );
    assert_eq!(code, 0, "{sum:#} {stderr}");
    let reqs = fake.acked();
    assert_eq!(
        reqs[0].cache_headers,
        (Some("tenant-a".into()), Some("3600".into())),
        "the command-line defaults"
    );
    assert_eq!(
        reqs[1].cache_headers,
        (Some("tenant-b".into()), Some("60".into())),
        "the row's own values"
    );
    assert!(!stderr.contains("not sent"), "{stderr}");
}

#[test]
fn a_400_batch_is_bisected_so_only_the_bad_entry_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = jsonl_rows(7);
    text.push_str("{\"prompt\":\"poison\",\"response\":\"x\"}\n");
    text.push_str(&jsonl_rows(1).replace("question 0", "question 8"));
    let file = write(dir.path(), "rows.jsonl", &text);
    let fake = Fake::start();
    let (code, sum, _) = run_json(&fake, &file, &["--token", TOKEN, "--model", "m"]);
    assert_eq!(code, 1, "{sum:#}");
    assert_eq!(sum["inserted"], 8);
    assert_eq!(sum["failed"], 1);
    assert_eq!(
        sum["failures"],
        json!([{"reason": "HTTP 400: entries[0].prompt: poison is not allowed", "count": 1, "lines": [8]}])
    );
}

#[test]
fn through_gateway_with_concurrency_sends_each_prompt_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut text: String = (0..20)
        .map(|i| format!("{{\"prompt\":\"p{i}\"}}\n"))
        .collect();
    text.push_str("{\"prompt\":\"nocache please\"}\n");
    let file = write(dir.path(), "prompts.jsonl", &text);
    let fake = Fake::start();
    let (code, sum, stderr) = run_json(
        &fake,
        &file,
        &[
            "--through-gateway",
            "--token",
            TOKEN,
            "--model",
            "m",
            "--concurrency",
            "4",
            "--batch-size",
            "8",
        ],
    );
    assert_eq!(code, 0, "{sum:#} {stderr}");
    assert_eq!(sum["inserted"], 20);
    assert_eq!(sum["bypassed"], 1);
    assert_eq!(sum["cached"], 0);
    let mut got: Vec<String> = fake
        .acked()
        .iter()
        .map(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    want.push("nocache please".into());
    want.sort();
    assert_eq!(got, want);
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("prompts.jsonl.deja-warmup.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["target"]["mode"], "gateway");
    assert_eq!(state["rows_done"], 21);
}
