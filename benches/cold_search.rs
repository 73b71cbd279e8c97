//! How much slower an index search is right after an embedding than when repeated at
//! once: the cost of memory gone cold while the serving thread waited for the model.
//!
//! banking77's training questions are embedded and stored (real model, real sled in a
//! temporary directory); then for each test question an embedder thread computes its
//! vector while this thread waits, as a worker waits on the serving path, and this thread
//! searches the index (ef 48, k 5: the lookup's first pass) twice: right after the
//! embedding ("after embedding") and again at once ("repeated"). `MODE=idle` adds 5 ms
//! of idle before the first search. Needs `scripts/fetch-model` and the full banking77
//! set (env `DEJA_BANKING77_DIR`, by default `../shared/data/banking77`).
//!
//! `cargo bench --bench cold_search` (`DEJA_BENCH_QUERIES=N`, default 1500)

mod common;

use deja::cache::{CacheConfig, CacheStore, ExactKey, NewEntry};
use deja::embed::{Embedder, EmbedderConfig};
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

const PARTITION: &str = "bench";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn summary(v: &mut [u128]) -> String {
    v.sort_unstable();
    let mean = v.iter().sum::<u128>() / v.len().max(1) as u128;
    format!(
        "p50 {:>4} µs  p90 {:>4} µs  mean {:>4} µs",
        v[v.len() / 2],
        v[v.len() * 9 / 10],
        mean
    )
}

fn main() {
    let idle = std::env::var("MODE").is_ok_and(|m| m == "idle");
    let queries: usize = std::env::var("DEJA_BENCH_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    // DEJA_BANKING77_DIR, by default ../shared/data/banking77
    let train = common::banking77("train.csv").expect("read banking77 train.csv");
    let test = common::banking77("test.csv").expect("read banking77 test.csv");
    let cfg = EmbedderConfig {
        model_path: root().join("models/model.onnx"),
        tokenizer_path: root().join("models/tokenizer.json"),
        ..EmbedderConfig::default()
    };
    let mut embedder = Embedder::load(&cfg).expect("load the model (scripts/fetch-model)");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = CacheStore::open(
        dir.path(),
        CacheConfig {
            max_entries: u64::MAX,
            max_bytes: u64::MAX,
            ..CacheConfig::default()
        },
    )
    .expect("open store");
    let mut w = store.take_writer().expect("a new store's writer");
    let started = Instant::now();
    for (b, chunk) in train.chunks(32).enumerate() {
        let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let vectors = embedder.embed_batch(&texts).expect("embed");
        let batch = vectors
            .into_iter()
            .zip(chunk)
            .enumerate()
            .map(|(i, (vector, text))| {
                let mut key = [0u8; 32];
                key[..8].copy_from_slice(&((b * 32 + i) as u64).to_le_bytes());
                NewEntry {
                    partition: PARTITION.into(),
                    namespace: "default".into(),
                    model: "bench".into(),
                    prompt_text: text.clone(),
                    exact_key: ExactKey(key),
                    vector,
                    response: serde_json::json!({"answer": text}),
                    ttl_secs: None,
                }
            })
            .collect();
        store.insert_batch(&mut w, batch, 1).expect("insert");
    }
    println!(
        "stored {} questions in {:.1} s; {} searches, mode {}",
        train.len(),
        started.elapsed().as_secs_f64(),
        queries.min(test.len()),
        if idle { "idle (+5 ms)" } else { "default" }
    );

    // the embedder thread answers one question at a time, like the embedder actor
    let (ask, questions) = sync_channel::<String>(0);
    let (reply, vectors) = sync_channel::<Vec<f32>>(0);
    let worker = std::thread::spawn(move || {
        for q in questions {
            let v = embedder.embed_batch(&[q.as_str()]).expect("embed");
            if idle {
                std::thread::sleep(Duration::from_millis(5));
            }
            if reply
                .send(v.into_iter().next().unwrap_or_default())
                .is_err()
            {
                break;
            }
        }
    });
    let (mut cold, mut hot) = (Vec::new(), Vec::new());
    for q in test.iter().take(queries) {
        ask.send(q.clone()).expect("embedder thread");
        let v = vectors.recv().expect("embedder thread");
        let t = Instant::now();
        let first = store
            .search_ef(&v, PARTITION, 5, 1, Some(48))
            .expect("search");
        cold.push(t.elapsed().as_micros());
        let t = Instant::now();
        let again = store
            .search_ef(&v, PARTITION, 5, 1, Some(48))
            .expect("search");
        hot.push(t.elapsed().as_micros());
        assert_eq!(
            first.iter().map(|c| c.id).collect::<Vec<_>>(),
            again.iter().map(|c| c.id).collect::<Vec<_>>(),
            "the same search must find the same entries"
        );
    }
    drop(ask);
    let _ = worker.join();
    println!("search after embedding: {}", summary(&mut cold));
    println!("same search repeated:   {}", summary(&mut hot));
}
