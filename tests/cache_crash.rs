//! The cache across restarts of the real binary (real model, real sled, real questions
//! from banking77): kill -9 during warm-up loses no acknowledged entry and the index
//! agrees with sled; SIGTERM leaves a current graph dump that the next start reloads.

mod common;

use common::free_port;

use deja_mock::{MockProvider, MockSettings};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "crash-test-token";

/// banking77 questions (first CSV column; quoted fields may hold commas), from the
/// subset in tests/data/banking77.
fn questions(n: usize) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/banking77/test.csv");
    let text = std::fs::read_to_string(path).expect("tests/data/banking77/test.csv");
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let q = if let Some(rest) = line.strip_prefix('"') {
            rest.rsplit_once("\",")
                .map(|(q, _)| q.replace("\"\"", "\""))
        } else {
            line.rsplit_once(',').map(|(q, _)| q.to_owned())
        };
        if let Some(q) = q {
            if !out.contains(&q) {
                out.push(q);
            }
        }
        if out.len() == n {
            break;
        }
    }
    out
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(port: u16, data: &std::path::Path, mock: &str) -> Proc {
    let proc = Proc(
        Command::new(env!("CARGO_BIN_EXE_deja"))
            .args(["serve", "--port", &port.to_string()])
            .env("OPENAI_API_KEY", "sk-x")
            .env("OPENAI_BASE_URL", mock)
            .env("DEJA_DATA_DIR", data)
            .env("DEJA_ADMIN_TOKEN", TOKEN)
            .env("DEJA__DISCOVERY__PROBE_OLLAMA", "false")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = reqwest::blocking::Client::new();
    while Instant::now() < deadline {
        if client
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            return proc;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("deja did not start");
}

fn stats(port: u16) -> Value {
    reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}/admin/cache/stats"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// SIGTERM right after a warm-up: the shutdown waits for the graph dump, so the next
/// start-up reloads every point instead of re-inserting them (53-61 s against 3-4 s at
/// 100k entries, measured with the bench store).
#[test]
fn sigterm_after_warmup_leaves_a_dump_the_next_start_reloads() {
    let mock = MockProvider::start(MockSettings::default()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut proc = start(port, data.path(), &mock.base_url());
    let entries: Vec<Value> = questions(300)
        .iter()
        .map(|q| json!({"prompt": q, "response": format!("answer to {q}"), "model": "openai/gpt-4o-mini"}))
        .collect();
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}/admin/cache/entries"))
        .bearer_auth(TOKEN)
        .json(&json!({ "entries": entries }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(stats(port)["entries"], 300);
    let pid = proc.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = proc.0.wait().unwrap();
    assert!(status.success(), "exit on SIGTERM: {status:?}");

    let _proc = start(port, data.path(), &mock.base_url());
    let s = stats(port);
    assert_eq!(s["entries"], 300, "{s}");
    assert_eq!(
        (
            s["index"]["startup_points_reloaded"].as_u64(),
            s["index"]["startup_points_inserted"].as_u64()
        ),
        (Some(300), Some(0)),
        "the graph came back from the dump taken at shutdown: {s}"
    );
}

#[test]
fn kill_9_during_warmup_loses_no_acknowledged_entry() {
    let mock = MockProvider::start(MockSettings::default()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut proc = start(port, data.path(), &mock.base_url());
    let qs = questions(400);
    assert_eq!(qs.len(), 400);

    // Send batches of 20 from a thread; record what the server acknowledged.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, stop, qs) = (acked.clone(), stop.clone(), qs.clone());
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            for batch in qs.chunks(20) {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let entries: Vec<Value> = batch
                    .iter()
                    .map(|q| json!({"prompt": q, "response": format!("answer to {q}"), "model": "openai/gpt-4o-mini"}))
                    .collect();
                let r = client
                    .post(format!("http://127.0.0.1:{port}/admin/cache/entries"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"entries": entries}))
                    .send();
                let Ok(r) = r else { return };
                let Ok(v) = r.json::<Value>() else { return };
                let mut a = acked.lock().unwrap();
                for (q, res) in batch.iter().zip(v["results"].as_array().unwrap()) {
                    if let Some(id) = res["id"].as_str() {
                        a.push((q.clone(), id.to_owned()));
                    }
                }
            }
        })
    };
    // Kill once a few batches are acknowledged, with more in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    proc.0.kill().unwrap(); // SIGKILL
    proc.0.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100 && acked.len() < 400,
        "killed mid-warm-up after {} entries",
        acked.len()
    );

    let _proc = start(port, data.path(), &mock.base_url());
    let client = reqwest::blocking::Client::new();
    let stats = stats(port);
    let entries = stats["entries"].as_u64().unwrap() as usize;
    assert!(
        entries >= acked.len(),
        "{entries} entries after restart, {} acknowledged",
        acked.len()
    );
    assert_eq!(
        stats["index"]["index_points"].as_u64().unwrap() as usize,
        entries,
        "index and sled agree: {stats}"
    );
    for (q, id) in &acked {
        let r = client
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}]}))
            .send()
            .unwrap();
        assert_eq!(r.headers()["x-deja-cache"], "hit-exact", "{q}");
        assert_eq!(r.headers()["x-deja-cache-entry"].to_str().unwrap(), id);
        let v: Value = r.json().unwrap();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            format!("answer to {q}")
        );
        // And similarity search finds the same entry (the graph was rebuilt from sled).
        let found: Value = client
            .post(format!("http://127.0.0.1:{port}/admin/cache/search"))
            .bearer_auth(TOKEN)
            .json(&json!({"prompt": q, "model": "gpt-4o-mini", "k": 1}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            found["candidates"][0]["id"].as_str(),
            Some(id.as_str()),
            "{q}: {found}"
        );
    }
    assert_eq!(
        mock.state.stats().calls,
        0,
        "every acknowledged question answered from the cache"
    );
}
