//! The embedder's limits (issue 14): lookups before bulk work, token limits,
//! dropped callers, the wait estimate. Real model (`scripts/fetch-model`).
//!
//! The `#[ignore]`d `load_report` measures memory and lookup latency of a real
//! `deja serve` process under the loads; see docs/embedder.md.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Harness;
use deja::embed::{retry_after_secs, EmbedError, EmbedderConfig, EmbedderHandle};
use futures_util::FutureExt;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config() -> EmbedderConfig {
    let models = root().join("models");
    EmbedderConfig {
        model_path: models.join("model.onnx"),
        tokenizer_path: models.join("tokenizer.json"),
        ort_dylib_path: Some(match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => models.join("libonnxruntime.so"),
        }),
        ..EmbedderConfig::default()
    }
}

/// Polls `f` once (with a waker that does nothing: the test awaits it later).
fn poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

/// Distinct English-like text of about `chars` characters (seeded).
fn prose(seed: u64, chars: usize) -> String {
    const WORDS: &[&str] = &[
        "account",
        "balance",
        "transfer",
        "card",
        "payment",
        "refund",
        "the",
        "my",
        "is",
        "was",
        "why",
        "how",
        "when",
        "bank",
        "money",
        "fee",
        "charged",
        "twice",
        "pending",
        "declined",
        "please",
        "help",
        "with",
        "a",
        "an",
        "of",
        "to",
        "and",
        "exchange",
        "rate",
        "currency",
        "top",
        "up",
        "verify",
        "identity",
        "limit",
        "cash",
        "withdrawal",
        "atm",
        "contactless",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut s = String::with_capacity(chars + 16);
    while s.len() < chars {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push_str(WORDS[(x >> 33) as usize % WORDS.len()]);
        s.push(' ');
    }
    s.truncate(chars);
    s
}

/// A lookup submitted while a long bulk request runs is answered before the
/// bulk request finishes (ordering, not wall time).
#[actix_rt::test]
async fn a_lookup_overtakes_a_running_bulk_request() {
    let handle = EmbedderHandle::start(config()).unwrap();
    // 12 texts of 256 tokens: 12 slices of 256 tokens.
    let bulk: Vec<String> = (0..12).map(|i| prose(i, 3_900)).collect();
    let h = handle.clone();
    let task = actix_rt::spawn(async move { h.embed_many(bulk).await });
    // Wait until the bulk request runs.
    while handle.stats().batches == 0 {
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    let lookup = handle.embed("how do I reset my card pin?".into()).await;
    assert!(lookup.is_ok(), "{lookup:?}");
    let slices_before_lookup = handle.stats().batches;
    assert!(
        !task.is_finished(),
        "the bulk request finished before the lookup was answered"
    );
    let vectors = task.await.unwrap().unwrap();
    assert_eq!(vectors.len(), 12);
    // The lookup ran after one or two slices, not after all twelve.
    assert!(
        slices_before_lookup <= 3,
        "{slices_before_lookup} batches ran before the lookup"
    );
    assert_eq!(handle.stats().batches, 13);
    assert_eq!(handle.pending(), 0);
}

/// Bulk results keep their order across slices and equal the plain embedder's.
#[actix_rt::test]
async fn sliced_bulk_results_keep_order() {
    let handle = EmbedderHandle::start(EmbedderConfig {
        bulk_slice_tokens: 40,
        ..config()
    })
    .unwrap();
    let texts: Vec<String> = (0..10)
        .map(|i| prose(100 + i, 60 + 30 * i as usize))
        .collect();
    let many = handle.embed_many(texts.clone()).await.unwrap();
    assert!(handle.stats().batches >= 5, "{:?}", handle.stats());
    let mut emb = deja::embed::Embedder::load(&config()).unwrap();
    for (t, v) in texts.iter().zip(&many) {
        let single = emb.embed_batch(&[t]).unwrap().remove(0);
        let diff = v
            .iter()
            .zip(&single)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-5, "{diff}");
    }
}

/// A caller that drops its future frees its room at once, and its job never runs.
#[actix_rt::test]
async fn dropped_callers_free_the_queue_and_cause_no_work() {
    let handle = EmbedderHandle::start(EmbedderConfig {
        queue_limit: 2,
        ..config()
    })
    .unwrap();
    // Keep the worker busy with bulk work.
    let bulk: Vec<String> = (0..2).map(|i| prose(i, 3_900)).collect();
    let h = handle.clone();
    let task = actix_rt::spawn(async move { h.embed_many(bulk).await });
    while handle.stats().batches == 0 {
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    // Two lookups fill the interactive queue; polled once, then dropped
    // (as a `timeout` that expired would).
    for i in 0..2 {
        assert!(handle.embed(format!("lookup {i}")).now_or_never().is_none());
    }
    // The room is free again: two more lookups (queued in the same poll) pass.
    let (a, b) = tokio::join!(
        handle.embed("kept lookup one".into()),
        handle.embed("kept lookup two".into())
    );
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(task.await.unwrap().unwrap().len(), 2);
    // The dropped lookups were never sent to a worker.
    assert_eq!(handle.stats().texts, 2 + 2);

    // The same for bulk calls: a dropped `embed_many` removes its slices.
    let before = handle.stats();
    let ids = vec![
        handle.token_ids("x").unwrap(),
        handle.token_ids("y").unwrap(),
    ];
    let pending = handle.embed_token_ids(ids);
    assert!(pending.now_or_never().is_none());
    assert_eq!(handle.pending(), 0);
    assert!(handle
        .embed_many(vec!["z".into(), "w".into()])
        .await
        .is_ok());
    assert_eq!(handle.stats().texts, before.texts + 2);
}

#[actix_rt::test]
async fn estimated_wait_grows_with_the_queue() {
    let handle = EmbedderHandle::start(config()).unwrap();
    // Measure the throughput once.
    handle.embed(prose(7, 2_000)).await.unwrap();
    assert_eq!(handle.estimated_wait(), Duration::ZERO);
    let mut futures: Vec<_> = (0..12)
        .map(|i| Box::pin(handle.embed(prose(20 + i, 3_900))))
        .collect();
    let mut waits = vec![handle.estimated_wait()];
    for f in &mut futures {
        assert!(poll_once(f.as_mut()).is_pending());
        waits.push(handle.estimated_wait());
    }
    assert!(
        waits.windows(2).all(|w| w[1] > w[0]),
        "the estimate does not grow with each queued lookup: {waits:?}"
    );
    // Queued bulk work does not delay a lookup, but does a bulk call.
    let lookup_wait = handle.estimated_wait();
    let bulk =
        Box::pin(handle.embed_token_ids(vec![handle.token_ids(&prose(99, 3_900)).unwrap(); 8]));
    let mut bulk = bulk;
    assert!(poll_once(bulk.as_mut()).is_pending());
    assert_eq!(handle.estimated_wait(), lookup_wait);
    assert!(handle.estimated_bulk_wait() > lookup_wait);
    for f in futures {
        f.await.unwrap();
    }
    assert_eq!(bulk.await.unwrap().len(), 8);
    assert_eq!(handle.estimated_wait(), Duration::ZERO);
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(999)), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
    assert_eq!(retry_after_secs(Duration::from_secs(52)), 52);
}

#[actix_rt::test]
async fn tokenize_many_stops_at_the_token_budget() {
    let handle = EmbedderHandle::start(config()).unwrap();
    let texts: Vec<String> = (0..4).map(|i| prose(i, 3_900)).collect();
    let ids = handle.tokenize_many(texts.clone(), 4 * 256).await.unwrap();
    assert!(ids.iter().all(|s| s.len() == 256));
    let err = handle.tokenize_many(texts, 4 * 256 - 1).await.unwrap_err();
    assert_eq!(err, EmbedError::TooManyTokens { limit: 1023 });
}

/// `POST /v1/embeddings` over `max_request_tokens`: a 400 naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_token_limit_is_a_400() {
    let h = Harness::start("[embedder]\nmax_request_tokens = 600\n");
    let model = "local/all-MiniLM-L6-v2";
    // Three texts of 256 tokens: 768 > 600.
    let texts: Vec<String> = (0..3).map(|i| prose(i, 3_900)).collect();
    let r = h
        .post("/v1/embeddings", json!({"model": model, "input": texts}))
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], "input");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("600 tokens"), "{msg}");
    // Two of them (512 tokens) pass.
    let r = h
        .post(
            "/v1/embeddings",
            json!({"model": model, "input": &texts[..2]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 512);
}

// ---------------------------------------------------------------------------
// Load report (ignored): memory and lookup latency of a real `deja serve`.
// ---------------------------------------------------------------------------

mod load {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    pub struct Proc(pub Child);
    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `VmRSS` and `VmHWM` (peak) of `pid`, in MB.
    pub fn rss_mb(pid: u32) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
    }

    /// Starts `bin serve` (cache on) against `mock`, with extra env; blocks
    /// (call through `block_in_place`: the blocking client owns a runtime).
    pub fn start(
        bin: &str,
        port: u16,
        data: &std::path::Path,
        mock: &str,
        env: &[(String, String)],
    ) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--port", &port.to_string()])
            .current_dir(root())
            .env("OPENAI_API_KEY", "sk-x")
            .env("OPENAI_BASE_URL", mock)
            .env("DEJA_DATA_DIR", data)
            .env("DEJA_ADMIN_TOKEN", "t")
            .env("DEJA__DISCOVERY__PROBE_OLLAMA", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Proc(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(120);
        let client = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            if client
                .get(format!("http://127.0.0.1:{port}/ready"))
                .send()
                .is_ok_and(|r| r.status() == 200)
            {
                return proc;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("deja did not start");
    }

    pub async fn chat(client: &reqwest::Client, port: u16, text: String) -> (u16, Duration) {
        let t = Instant::now();
        let r = client
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .json(&common::chat("openai/gpt-4o-mini", &text))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let _ = r.bytes().await;
        (status, t.elapsed())
    }

    pub async fn embeddings(
        client: &reqwest::Client,
        port: u16,
        texts: Vec<String>,
    ) -> (u16, Duration) {
        let t = Instant::now();
        let r = client
            .post(format!("http://127.0.0.1:{port}/v1/embeddings"))
            .json(&json!({"model": "local/all-MiniLM-L6-v2", "input": texts}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let _ = r.bytes().await;
        (status, t.elapsed())
    }

    /// RSS now, and after `secs` of idle.
    pub async fn idle(pid: u32, secs: u64) -> f64 {
        actix_rt::time::sleep(Duration::from_secs(secs)).await;
        rss_mb(pid).0
    }
}

/// Memory and lookup latency of a real `deja serve` (cache on) under the
/// loads of issue 14. Run (release, so that tokenising is not the bottleneck):
/// `cargo build --release && DEJA_BIN=target/release/deja cargo test --release
/// --test embed_limits -- --ignored --nocapture load_report`
/// Env: `DEJA_BIN` (default: this build's binary), `DEJA_LOAD_ENV` (extra
/// `K=V,K=V` for the server), `DEJA_LOAD_IDLE_SECS` (default 30),
/// `DEJA_LOAD_ONLY` (which of the scenarios 1, 2, 3 to run; default all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (minutes), not a test; see docs/embedder.md"]
async fn load_report() {
    use deja_mock::{MockProvider, MockSettings};
    use load::*;
    let bin = std::env::var("DEJA_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_deja").into());
    let extra: Vec<(String, String)> = std::env::var("DEJA_LOAD_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let idle_secs: u64 = std::env::var("DEJA_LOAD_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let only = std::env::var("DEJA_LOAD_ONLY").unwrap_or_else(|_| "123".into());
    let mock = MockProvider::start(MockSettings::default()).unwrap();
    let client = reqwest::Client::new();

    let run = |name: &str| println!("== {name}");
    // 1. 48 concurrent cache-on chats with ~4 KB prompts.
    if only.contains('1') {
        run("48 concurrent chats, 4 KB prompts");
        let data = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let p = tokio::task::block_in_place(|| {
            start(&bin, port, data.path(), &mock.base_url(), &extra)
        });
        let pid = p.0.id();
        chat(&client, port, "warm-up".into()).await;
        let base = rss_mb(pid).0;
        let t = std::time::Instant::now();
        let calls = (0..48).map(|i| chat(&client, port, prose(1_000 + i, 4_000)));
        let out = futures_util::future::join_all(calls).await;
        let ok = out.iter().filter(|(s, _)| *s == 200).count();
        let (now, peak) = rss_mb(pid);
        let after = idle(pid, idle_secs).await;
        println!(
            "chats: {ok}/48 ok in {:.1}s; RSS MB: before {base:.0}, peak {peak:.0}, at end {now:.0}, after {idle_secs}s idle {after:.0}",
            t.elapsed().as_secs_f64()
        );
    }
    // 2. One embeddings request of 256 long inputs.
    if only.contains('2') {
        run("one /v1/embeddings request, 256 x 3,900 chars");
        let data = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let p = tokio::task::block_in_place(|| {
            start(&bin, port, data.path(), &mock.base_url(), &extra)
        });
        let pid = p.0.id();
        chat(&client, port, "warm-up".into()).await;
        let base = rss_mb(pid).0;
        let texts: Vec<String> = (0..256).map(|i| prose(2_000 + i, 3_900)).collect();
        let (status, took) = embeddings(&client, port, texts).await;
        let (now, peak) = rss_mb(pid);
        let after = idle(pid, idle_secs).await;
        println!(
            "embeddings: {status} in {:.1}s; RSS MB: before {base:.0}, peak {peak:.0}, at end {now:.0}, after {idle_secs}s idle {after:.0}",
            took.as_secs_f64()
        );
    }
    // 3. Cache-on chats during one 1,024 x 3,900-char embeddings request.
    if only.contains('3') {
        run("chats during a 1,024 x 3,900-char /v1/embeddings request");
        let data = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let p = tokio::task::block_in_place(|| {
            start(&bin, port, data.path(), &mock.base_url(), &extra)
        });
        let pid = p.0.id();
        chat(&client, port, "warm-up".into()).await;
        let texts: Vec<String> = (0..1024).map(|i| prose(3_000 + i, 3_900)).collect();
        let c = client.clone();
        let bulk = tokio::spawn(async move { embeddings(&c, port, texts).await });
        // Let the request be parsed and queued.
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        let mut lat = Vec::new();
        let mut statuses = std::collections::BTreeMap::new();
        let mut i = 0;
        let max_chats: usize = std::env::var("DEJA_LOAD_CHATS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30);
        while !bulk.is_finished() && i < max_chats {
            let (s, d) = chat(
                &client,
                port,
                format!("question {i}: why was my card declined?"),
            )
            .await;
            *statuses.entry(s).or_insert(0) += 1;
            lat.push(d);
            i += 1;
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        let finished = bulk.is_finished();
        let (status, took) = if finished {
            bulk.await.unwrap()
        } else {
            bulk.abort();
            (0, Duration::ZERO)
        };
        lat.sort();
        let pct = |q: f64| {
            lat.get(((lat.len() as f64 - 1.0) * q) as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "embeddings: {status} in {:.1}s (0: still running, stopped after the chats); {} chats during it, statuses {statuses:?}, latency ms p50 {:.0} p90 {:.0} max {:.0}; peak RSS {:.0} MB",
            took.as_secs_f64(),
            lat.len(),
            pct(0.5),
            pct(0.9),
            pct(1.0),
            rss_mb(pid).1
        );
    }
}
