//! Cache index benchmark: start-up rebuild time, memory per entry, search
//! latency (p50/p99) and recall@1 against brute force, at N entries (100k by
//! default), plus criterion timings of search and exact lookup.
//!
//! ```text
//! cargo bench --bench cache_index
//! DEJA_BENCH_N=20000 cargo bench --bench cache_index          # smaller
//! DEJA_BENCH_VECTORS=emb.f32 cargo bench --bench cache_index  # real embeddings
//! DEJA_BENCH_DATA=uniform cargo bench --bench cache_index     # random unit vectors
//! DEJA_BENCH_EF=16,32,64,128 ...  # ef_search values to report
//! DEJA_BENCH_M=16 DEJA_BENCH_EFC=100 ...  # graph parameters
//! ```
//!
//! `DEJA_BENCH_VECTORS` is raw little-endian f32 rows of 384; the first N rows
//! are stored and the next rows (or, if too few, stored rows with noise) are
//! queries. Without it, vectors are synthetic: clustered (default) or uniform.

use criterion::Criterion;
use deja::cache::{dot, CacheConfig, CacheStore, ExactKey, NewEntry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::time::{Duration, Instant};

const DIMS: usize = 384;
const CHILD_ENV: &str = "DEJA_BENCH_CHILD_OPEN";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config() -> CacheConfig {
    let mut c = CacheConfig {
        max_entries: u64::MAX,
        max_bytes: u64::MAX,
        // child "rebuild" mode: ignore the graph dump
        index_dump: std::env::var("DEJA_BENCH_CHILD_NODUMP").is_err(),
        ..CacheConfig::default()
    };
    c.hnsw.max_nb_connection = env_usize("DEJA_BENCH_M", c.hnsw.max_nb_connection);
    c.hnsw.ef_construction = env_usize("DEJA_BENCH_EFC", c.hnsw.ef_construction);
    c
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// Approximately normal noise (sum of uniforms).
fn noise(rng: &mut StdRng) -> f32 {
    (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * 0.5
}

type Gen = Box<dyn FnMut(&mut StdRng) -> Vec<f32>>;

struct Data {
    name: String,
    base: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
}

fn load_data(n: usize, nq: usize) -> Data {
    let mut rng = StdRng::seed_from_u64(42);
    if let Ok(path) = std::env::var("DEJA_BENCH_VECTORS") {
        let bytes = std::fs::read(&path).expect("read DEJA_BENCH_VECTORS");
        let mut rows: Vec<Vec<f32>> = bytes
            .chunks_exact(DIMS * 4)
            .map(|r| {
                let mut v: Vec<f32> = r
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                normalize(&mut v);
                v
            })
            .collect();
        let n = n.min(rows.len());
        let mut queries = rows.split_off(n);
        queries.truncate(nq);
        while queries.len() < nq {
            let mut q = rows[rng.random_range(0..n)].clone();
            q.iter_mut().for_each(|x| *x += 0.02 * noise(&mut rng));
            normalize(&mut q);
            queries.push(q);
        }
        return Data {
            name: format!("file {path}"),
            base: rows,
            queries,
        };
    }
    let kind = std::env::var("DEJA_BENCH_DATA").unwrap_or_else(|_| "clustered".into());
    let mut gen: Gen = if kind == "uniform" {
        Box::new(|rng: &mut StdRng| {
            let mut v: Vec<f32> = (0..DIMS).map(|_| noise(rng)).collect();
            normalize(&mut v);
            v
        })
    } else {
        // 2000 topics; each vector = topic centre + noise, like embeddings of
        // prompts that cluster by subject.
        let centres: Vec<Vec<f32>> = (0..2000)
            .map(|_| {
                let mut v: Vec<f32> = (0..DIMS).map(|_| noise(&mut rng)).collect();
                normalize(&mut v);
                v
            })
            .collect();
        Box::new(move |rng: &mut StdRng| {
            let c = &centres[rng.random_range(0..centres.len())];
            let mut v: Vec<f32> = c.iter().map(|x| x + 0.06 * noise(rng)).collect();
            normalize(&mut v);
            v
        })
    };
    let base = (0..n).map(|_| gen(&mut rng)).collect();
    let queries = (0..nq).map(|_| gen(&mut rng)).collect();
    Data {
        name: format!("synthetic {kind}"),
        base,
        queries,
    }
}

fn entry(i: usize, v: &[f32]) -> NewEntry {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&(i as u64).to_le_bytes());
    NewEntry {
        partition: "gpt-4o-mini|t=0|default".into(),
        namespace: "default".into(),
        model: "gpt-4o-mini".into(),
        prompt_text: format!("user: how do I do thing number {i} in a typical way?"),
        exact_key: ExactKey(k),
        vector: v.to_vec(),
        response: serde_json::json!({
            "id": format!("chatcmpl-{i}"), "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
              "content": "A typical answer of a few sentences. ".repeat(8)}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 70, "total_tokens": 90}
        }),
        ttl_secs: None,
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|x| x.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Child mode: open the store in a fresh process, print timing and memory.
fn child_open(dir: &str) {
    let before = rss_kib();
    let t = Instant::now();
    let store = CacheStore::open(dir, config()).expect("open");
    let secs = t.elapsed().as_secs_f64();
    let after = rss_kib();
    let st = store.stats();
    println!(
        "CHILD entries={} open_s={secs:.3} rss_before_kib={before} rss_after_kib={after} reloaded={} inserted={}",
        store.len(),
        st.startup_points_reloaded,
        st.startup_points_inserted
    );
    // do not dump again at drop
    std::process::exit(0);
}

/// First CSV column of each data line (handles `"..."` quoting with `""`).
fn csv_first_column(line: &str) -> Option<String> {
    if let Some(rest) = line.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    out.push('"');
                } else {
                    return Some(out);
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        line.rsplit_once(',').map(|(t, _)| t.to_string())
    }
}

/// Generator mode (`DEJA_BENCH_GEN_VECTORS=out.f32`): embeds the real
/// questions of banking77 (`DEJA_BENCH_BANKING77` dir, train+test `text`
/// column) and clinc150 (`DEJA_BENCH_CLINC150` = data_full.json, all splits;
/// both by default under `../shared/data` next to the repository)
/// with the project's embedder (`models/`), deduplicated and shuffled. The
/// last `DEJA_BENCH_QUERIES` (2000) real questions are held out as queries;
/// the others are stored, then topped up to `DEJA_BENCH_N` (100k) rows with
/// perturbed copies: `normalise(0.7 a + 0.3 b)` for random real questions
/// a, b. `DEJA_BENCH_GEN_REAL` caps the number of real questions embedded. Output: `N` stored rows then the query rows, raw LE f32 x 384.
fn gen_vectors(out: &str) {
    use deja::embed::{Embedder, EmbedderConfig};
    let n = env_usize("DEJA_BENCH_N", 100_000);
    let nq = env_usize("DEJA_BENCH_QUERIES", 2_000);
    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");
    let b77 =
        std::env::var("DEJA_BENCH_BANKING77").unwrap_or_else(|_| format!("{shared}/banking77"));
    let clinc = std::env::var("DEJA_BENCH_CLINC150")
        .unwrap_or_else(|_| format!("{shared}/clinc150/data_full.json"));
    let mut texts: Vec<String> = Vec::new();
    for f in ["train.csv", "test.csv"] {
        let s = std::fs::read_to_string(format!("{b77}/{f}")).expect("read banking77");
        texts.extend(s.lines().skip(1).filter_map(csv_first_column));
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&clinc).expect("read clinc150"))
            .expect("clinc150 json");
    for (_, rows) in j.as_object().expect("clinc150 object") {
        for r in rows.as_array().into_iter().flatten() {
            if let Some(t) = r.get(0).and_then(|t| t.as_str()) {
                texts.push(t.to_string());
            }
        }
    }
    texts.sort();
    texts.dedup();
    let mut rng = StdRng::seed_from_u64(7);
    for i in (1..texts.len()).rev() {
        texts.swap(i, rng.random_range(0..=i));
    }
    println!("gen: {} distinct real questions", texts.len());
    // Embedding runs at ~15 questions/s on the loaded 2-core VM: cap it.
    texts.truncate(env_usize("DEJA_BENCH_GEN_REAL", usize::MAX));
    println!("gen: embedding {} of them", texts.len());
    let cfg = EmbedderConfig {
        intra_op_threads: 2,
        ..EmbedderConfig::default()
    };
    let mut emb = Embedder::load(&cfg).expect("load embedder (models/)");
    let t = Instant::now();
    let mut real: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(64) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        real.extend(emb.embed_batch(&refs).expect("embed"));
        if real.len() % 6400 == 0 {
            println!(
                "gen: {} embedded in {:.0} s",
                real.len(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    let queries = real.split_off(real.len() - nq);
    let mut base = real;
    let n_real = base.len();
    while base.len() < n {
        let a = &base[rng.random_range(0..n_real)];
        let b = &base[rng.random_range(0..n_real)];
        let mut v: Vec<f32> = a.iter().zip(b).map(|(x, y)| 0.7 * x + 0.3 * y).collect();
        normalize(&mut v);
        base.push(v);
    }
    base.truncate(n);
    let mut bytes = Vec::with_capacity((n + nq) * DIMS * 4);
    for v in base.iter().chain(&queries) {
        assert_eq!(v.len(), DIMS);
        v.iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    }
    std::fs::write(out, bytes).expect("write vectors");
    println!(
        "gen: wrote {out}: {n} stored rows ({n_real} real + {} perturbed) then {nq} held-out real queries, in {:.0} s",
        n - n_real,
        t.elapsed().as_secs_f64()
    );
}

/// The store directory (a temporary one or `DEJA_BENCH_STORE`).
struct BenchDir<'a>(&'a std::path::Path);

impl BenchDir<'_> {
    fn path(&self) -> &std::path::Path {
        self.0
    }
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child_open(&dir);
        return;
    }
    if let Ok(out) = std::env::var("DEJA_BENCH_GEN_VECTORS") {
        gen_vectors(&out);
        return;
    }
    let n = env_usize("DEJA_BENCH_N", 100_000);
    let nq = env_usize("DEJA_BENCH_QUERIES", 10_000);
    let n_recall = env_usize("DEJA_BENCH_RECALL_QUERIES", 1_000).min(nq);
    let efs: Vec<usize> = std::env::var("DEJA_BENCH_EF")
        .unwrap_or_else(|_| "16,32,64,128".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cfg = config();
    println!(
        "== cache_index bench: N={n} dims={DIMS} queries={nq} m={} ef_construction={} threads={}",
        cfg.hnsw.max_nb_connection,
        cfg.hnsw.ef_construction,
        rayon::current_num_threads()
    );
    let data = load_data(n, nq);
    let n = data.base.len();
    println!("data: {} ({n} rows)", data.name);

    // DEJA_BENCH_STORE=path keeps the filled store there and reuses it on the next run
    // (filling 100k entries at M 24 takes minutes); otherwise a temporary directory.
    let tmp = tempfile::tempdir().expect("tempdir");
    let kept = std::env::var("DEJA_BENCH_STORE")
        .ok()
        .map(std::path::PathBuf::from);
    let reuse = kept
        .as_ref()
        .is_some_and(|d| d.join("index").join("manifest.json").exists());
    let dir_path = kept.unwrap_or_else(|| tmp.path().to_path_buf());
    let dir = BenchDir(&dir_path);
    // 1. fill through the normal insert path (batches of 1000, flushed)
    if reuse {
        println!("insert: reusing the store in {}", dir_path.display());
    } else {
        let store = CacheStore::open(dir.path(), config()).expect("open");
        let mut w = store.take_writer().expect("a new store's writer");
        let t = Instant::now();
        for (b, chunk) in data.base.chunks(1000).enumerate() {
            let batch = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| entry(b * 1000 + i, v))
                .collect();
            store.insert_batch(&mut w, batch, 1).expect("insert");
        }
        let s = t.elapsed().as_secs_f64();
        let st = store.stats();
        println!(
            "insert: {n} entries in {s:.2} s ({:.0}/s, batches of 1000 with flush); sled bytes accounted {:.1} MiB ({} B/entry)",
            n as f64 / s,
            st.bytes as f64 / 1048576.0,
            st.bytes / n as u64
        );
    }
    // (the store was dropped = graceful close: the graph was dumped)
    let dump_bytes: u64 = std::fs::read_dir(dir.path().join("index"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "dump: {:.1} MiB on disk ({} B/entry); load average {}",
        dump_bytes as f64 / 1048576.0,
        dump_bytes / n as u64,
        loadavg()
    );
    // 2. start-up in a fresh process (time + memory): from the dump, and
    //    (DEJA_BENCH_REBUILD=1) ignoring it = full rebuild from sled
    let mut modes = vec![("reload dump", false)];
    if std::env::var("DEJA_BENCH_REBUILD").is_ok() {
        modes.push(("full rebuild", true));
    }
    for (mode, nodump) in modes {
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
        cmd.env(CHILD_ENV, dir.path());
        if nodump {
            cmd.env("DEJA_BENCH_CHILD_NODUMP", "1");
        }
        let out = cmd.output().expect("child");
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("CHILD"))
            .map(str::to_string)
            .unwrap_or_default();
        let field = |k: &str| -> f64 {
            line.split_whitespace()
                .find_map(|f| {
                    f.strip_prefix(&format!("{k}="))
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(f64::NAN)
        };
        let rss = field("rss_after_kib") - field("rss_before_kib");
        println!(
            "startup ({mode}): open of {} entries: {:.2} s (points reloaded {}, inserted {}); RSS +{:.0} MiB = {:.0} bytes/entry (graph + vectors + sled cache); load average {}",
            field("entries"),
            field("open_s"),
            field("reloaded"),
            field("inserted"),
            rss / 1024.0,
            rss * 1024.0 / n as f64,
            loadavg()
        );
    }

    // 3. search latency and recall in this process
    let store = CacheStore::open(dir.path(), config()).expect("open");
    let part = "gpt-4o-mini|t=0|default";
    let truth: Vec<(usize, f32)> = data.queries[..n_recall]
        .par_iter()
        .map(|q| {
            data.base
                .iter()
                .enumerate()
                .map(|(i, v)| (i, dot(q, v)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, 0.0))
        })
        .collect();
    // ids are assigned in insertion order; map id -> row through get()
    let id_to_row = |id: u64| -> usize {
        let e = store.get(id, 1).expect("get").expect("live");
        u64::from_le_bytes(e.exact_key.0[..8].try_into().unwrap()) as usize
    };
    for &ef in &efs {
        store.set_ef_search(ef);
        let mut lat = Vec::with_capacity(nq);
        let mut top: Vec<u64> = Vec::with_capacity(nq);
        for q in &data.queries {
            let t = Instant::now();
            let r = store.search(q, part, 1, 1).expect("search");
            lat.push(t.elapsed());
            top.push(r.first().map(|c| c.id).unwrap_or(u64::MAX));
        }
        let (mut hits, mut near, mut near_hits) = (0, 0, 0);
        let threshold = store.config().similarity_threshold;
        for (i, (row, sim)) in truth.iter().enumerate() {
            let got = id_to_row(top[i]);
            // ties (same similarity) count as found
            let found = got == *row || (dot(&data.queries[i], &data.base[got]) - sim).abs() < 1e-6;
            hits += usize::from(found);
            // queries whose nearest entry is above the similarity threshold: the ones
            // a cache lookup can serve
            if *sim >= threshold {
                near += 1;
                near_hits += usize::from(found);
            }
        }
        println!(
            "  ef_search={ef}: recall@1 among queries whose nearest is >= the threshold {threshold}: {:.4} ({near_hits}/{near})",
            near_hits as f64 / near.max(1) as f64
        );
        lat.sort();
        let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
        println!(
            "search k=1 ef_search={ef}: recall@1={:.4} ({hits}/{n_recall}) p50={:?} p99={:?} mean={:?} max={:?}; load average {}",
            hits as f64 / n_recall as f64,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            mean,
            lat[lat.len() - 1],
            loadavg()
        );
    }

    // 4. criterion timings at the default ef_search
    store.set_ef_search(store.config().hnsw.ef_search);
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    let mut i = 0;
    c.bench_function(&format!("search_k5_n{n}"), |b| {
        b.iter(|| {
            i = (i + 1) % data.queries.len();
            store.search(&data.queries[i], part, 5, 1).expect("search")
        })
    });
    let mut j = 0u64;
    c.bench_function(&format!("get_exact_n{n}"), |b| {
        b.iter(|| {
            j = (j + 7919) % n as u64;
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&j.to_le_bytes());
            store.get_exact(&ExactKey(k), 1).expect("get")
        })
    });
    c.final_summary();
    println!("load average at end: {}", loadavg());
}
