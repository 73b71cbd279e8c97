//! Embedder benchmarks on real questions (banking77 test set).
//!
//! - `embed_per_query`: the plain `Embedder`, 32 questions one at a time vs
//!   as one batch of 32 (throughput in questions/s).
//! - `handle_concurrent`: 64 concurrent `EmbedderHandle::embed` callers, with
//!   dynamic batching (`batch_max = 32`) vs without (`batch_max = 1`).
//!
//! Before criterion runs, an interleaved A/B of both comparisons prints
//! median per-query rates (robust to load from other processes).
//!
//! Needs `scripts/fetch-model` and `../shared/data/banking77/test.csv`
//! (override with env `DEJA_BANKING77_CSV`). Run:
//! `cargo bench --bench embed`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use deja::embed::{Embedder, EmbedderConfig, EmbedderHandle};

const BATCH: usize = 32;
const CALLERS: usize = 64;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config() -> EmbedderConfig {
    let models = root().join("models");
    let cfg = EmbedderConfig {
        model_path: models.join("model.onnx"),
        tokenizer_path: models.join("tokenizer.json"),
        ort_dylib_path: Some(match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => models.join("libonnxruntime.so"),
        }),
        ..EmbedderConfig::default()
    };
    assert!(
        cfg.model_path.is_file(),
        "{} missing -- run scripts/fetch-model",
        cfg.model_path.display()
    );
    cfg
}

/// Splits one CSV record (RFC 4180 quoting) into fields.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            _ => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// The `text` column of banking77's test set.
fn questions() -> Vec<String> {
    let path = std::env::var_os("DEJA_BANKING77_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data/banking77/test.csv"));
    let data = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = data.lines();
    let header = csv_fields(lines.next().expect("empty csv"));
    let col = header
        .iter()
        .position(|h| h == "text")
        .expect("no text column");
    let qs: Vec<String> = lines
        .filter(|l| !l.is_empty())
        .map(|l| csv_fields(l).swap_remove(col))
        .collect();
    assert!(qs.len() >= 1000, "only {} questions", qs.len());
    qs
}

fn bench_embedder(c: &mut Criterion) {
    let qs = questions();
    let mut emb = Embedder::load(&config()).unwrap();
    let chunks: Vec<Vec<&str>> = qs
        .chunks_exact(BATCH)
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();

    let mut g = c.benchmark_group("embed_per_query");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(15));
    let mut i = 0;
    g.bench_function("one_at_a_time", |b| {
        b.iter(|| {
            i = (i + 1) % chunks.len();
            for q in &chunks[i] {
                std::hint::black_box(emb.embed_batch(&[q]).unwrap());
            }
        })
    });
    let mut i = 0;
    g.bench_function("batch_of_32", |b| {
        b.iter(|| {
            i = (i + 1) % chunks.len();
            std::hint::black_box(emb.embed_batch(&chunks[i]).unwrap());
        })
    });
    g.finish();
}

fn bench_handle(c: &mut Criterion) {
    let qs = questions();
    let system = actix_rt::System::new();
    let mut g = c.benchmark_group("handle_concurrent");
    g.throughput(Throughput::Elements(CALLERS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    for (name, batch_max) in [("dynamic_batching", BATCH), ("batch_max_1", 1)] {
        let cfg = EmbedderConfig {
            batch_max,
            ..config()
        };
        let handle = system
            .block_on(async { EmbedderHandle::start(cfg) })
            .unwrap();
        let mut i = 0;
        g.bench_with_input(
            BenchmarkId::new(name, format!("{CALLERS}_callers")),
            &handle,
            |b, handle| {
                b.iter(|| {
                    i = (i + CALLERS) % (qs.len() - CALLERS);
                    let calls = qs[i..i + CALLERS].iter().map(|q| handle.embed(q.clone()));
                    let out = system.block_on(futures_util::future::join_all(calls));
                    assert!(out.iter().all(Result::is_ok));
                    out
                })
            },
        );
    }
    g.finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A/B comparison with the two variants alternating round by round, so that
/// load from other processes on the machine hits both alike. Prints the
/// median per-query time of each and their ratio.
fn interleaved_summary() {
    const ROUNDS: usize = 15;
    let qs = questions();
    let mut emb = Embedder::load(&config()).unwrap();
    let (mut single, mut batch) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let chunk: Vec<&str> = qs[round * BATCH..(round + 1) * BATCH]
            .iter()
            .map(String::as_str)
            .collect();
        let t = Instant::now();
        for q in &chunk {
            std::hint::black_box(emb.embed_batch(&[q]).unwrap());
        }
        single.push(t.elapsed().as_secs_f64() / BATCH as f64);
        let t = Instant::now();
        std::hint::black_box(emb.embed_batch(&chunk).unwrap());
        batch.push(t.elapsed().as_secs_f64() / BATCH as f64);
    }
    let (s, b) = (median(single), median(batch));
    println!(
        "interleaved embedder, {ROUNDS} rounds: one-at-a-time {:.2} ms/query ({:.0} q/s), \
         batch of {BATCH} {:.2} ms/query ({:.0} q/s): batch/one = {:.2}x  [loadavg {}]",
        s * 1e3,
        1.0 / s,
        b * 1e3,
        1.0 / b,
        s / b,
        loadavg()
    );

    let system = actix_rt::System::new();
    let start = |batch_max| {
        system
            .block_on(async {
                EmbedderHandle::start(EmbedderConfig {
                    batch_max,
                    ..config()
                })
            })
            .unwrap()
    };
    let (dynamic, unbatched) = (start(BATCH), start(1));
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS / 3 {
        for (handle, times) in [(&dynamic, &mut on), (&unbatched, &mut off)] {
            let calls = qs[round * CALLERS..(round + 1) * CALLERS]
                .iter()
                .map(|q| handle.embed(q.clone()));
            let t = Instant::now();
            let out = system.block_on(futures_util::future::join_all(calls));
            assert!(out.iter().all(Result::is_ok));
            times.push(t.elapsed().as_secs_f64() / CALLERS as f64);
        }
    }
    let (a, b) = (median(on), median(off));
    println!(
        "interleaved handle, {CALLERS} concurrent callers: dynamic batching {:.0} q/s, \
         batch_max=1 {:.0} q/s: {:.2}x  [loadavg {}]",
        1.0 / a,
        1.0 / b,
        b / a,
        loadavg()
    );
}

criterion_group!(benches, bench_embedder, bench_handle);

fn main() {
    interleaved_summary();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
