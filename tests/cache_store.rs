//! CacheStore against a real sled database in a temp dir.

use deja::cache::{
    dot, CacheConfig, CacheError, CacheHandle, CacheStore, Entry, EntryFilter, EvictionPolicy,
    ExactKey, IndexState, NewEntry, Writer,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const DIMS: usize = 32;

fn cfg() -> CacheConfig {
    let mut c = CacheConfig {
        dimensions: DIMS,
        ..CacheConfig::default()
    };
    // Small graphs in tests: ask for the whole graph so results equal brute force.
    c.hnsw.ef_search = 1000;
    c
}

/// Open the store in `dir` again after dropping it: sled's background flusher can hold
/// the directory's lock for a moment after the last handle is dropped (seen on a loaded
/// machine), so a refused lock is retried for up to two seconds.
fn reopen(dir: &std::path::Path, c: CacheConfig) -> CacheStore {
    for _ in 0..100 {
        match CacheStore::open(dir, c.clone()) {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    panic!("the store in {} stayed locked", dir.display())
}

fn unit(rng: &mut StdRng, dims: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn key(n: u64) -> ExactKey {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&n.to_le_bytes());
    k[31] = 0xAB;
    ExactKey(k)
}

fn entry(partition: &str, n: u64, vector: Vec<f32>) -> NewEntry {
    NewEntry {
        partition: partition.to_string(),
        namespace: "ns".to_string(),
        model: "gpt-test".to_string(),
        prompt_text: format!("Prompt number {n}"),
        exact_key: key(n),
        vector,
        response: serde_json::json!({"id": format!("chatcmpl-{n}"), "choices": [{"message": {"content": format!("answer {n}")}}]}),
        ttl_secs: None,
    }
}

/// Top-k ids by exact cosine among `rows`.
fn brute_force(rows: &[(u64, Vec<f32>)], q: &[f32], k: usize) -> Vec<u64> {
    let mut s: Vec<(f32, u64)> = rows.iter().map(|(id, v)| (dot(v, q), *id)).collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.into_iter().take(k).map(|x| x.1).collect()
}

/// Inserts `n` random entries into `partition` (one batch), returns (id, vector).
fn fill(
    store: &CacheStore,
    w: &mut Writer,
    rng: &mut StdRng,
    partition: &str,
    first: u64,
    n: u64,
    now: u64,
) -> Vec<(u64, Vec<f32>)> {
    let batch: Vec<NewEntry> = (first..first + n)
        .map(|i| entry(partition, i, unit(rng, DIMS)))
        .collect();
    let vecs: Vec<Vec<f32>> = batch.iter().map(|e| e.vector.clone()).collect();
    let ids = store.insert_batch(w, batch, now).unwrap();
    ids.into_iter().zip(vecs).collect()
}

#[test]
fn insert_search_get() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let rows = fill(&store, &mut w, &mut rng, "p", 0, 300, 1_000);
    assert_eq!(store.len(), 300);
    for (id, v) in rows.iter().step_by(7) {
        let hits = store.search(v, "p", 3, 1_000).unwrap();
        assert_eq!(hits[0].id, *id);
        assert!(hits[0].similarity > 0.999 && hits[0].similarity <= 1.0);
        assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        assert_eq!(
            hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            brute_force(&rows, v, 3)
        );
    }
    let (id, v) = &rows[5];
    let e = store.get(*id, 1_000).unwrap().unwrap();
    assert_eq!(e.id, *id);
    assert_eq!(e.partition, "p");
    assert_eq!(e.prompt_text, "Prompt number 5");
    assert_eq!(e.exact_key, key(5));
    assert_eq!(e.response["choices"][0]["message"]["content"], "answer 5");
    assert_eq!(e.created_ms, 1_000);
    assert_eq!(e.expires_ms, None);
    assert_eq!((e.hits, e.last_hit_ms), (0, None));
    // `get` leaves the vector out (hot path); `get_with_vector` has it.
    assert!(e.vector.is_empty());
    let ev = store.get_with_vector(*id, 1_000).unwrap().unwrap();
    assert_eq!(ev.vector.len(), DIMS);
    assert!(ev.vector.iter().zip(v).all(|(a, b)| (a - b).abs() < 1e-5));
    assert_eq!(
        Entry {
            vector: Vec::new(),
            ..ev
        },
        e
    );
    assert!(e.size_bytes > (DIMS * 4) as u64);
    // ids render as strings in JSON
    let j = serde_json::to_value(&e).unwrap();
    assert_eq!(j["id"], serde_json::Value::String(id.to_string()));
    assert_eq!(j["exact_key"].as_str().unwrap().len(), 64);
    assert!(store.get(u64::MAX - 1, 1_000).unwrap().is_none());
    let s = store.stats();
    assert_eq!((s.entries, s.index_points, s.tombstones), (300, 300, 0));
    assert_eq!(s.index_state, IndexState::Ready);
}

#[test]
fn partitions_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let a = fill(&store, &mut w, &mut rng, "route-a|t=0|ns", 0, 100, 1);
    let b = fill(&store, &mut w, &mut rng, "route-b|t=0|ns", 1000, 20, 1);
    let a_ids: HashSet<u64> = a.iter().map(|r| r.0).collect();
    let b_ids: HashSet<u64> = b.iter().map(|r| r.0).collect();
    // An A vector queried in B returns only B entries, and vice versa.
    for (_, v) in a.iter().take(20) {
        let hits = store.search(v, "route-b|t=0|ns", 50, 1).unwrap();
        assert_eq!(hits.len(), 20);
        assert!(hits.iter().all(|h| b_ids.contains(&h.id)));
    }
    for (id, v) in &b {
        let hits = store.search(v, "route-a|t=0|ns", 5, 1).unwrap();
        assert!(hits.iter().all(|h| a_ids.contains(&h.id) && h.id != *id));
    }
    // identical vector in both partitions
    let v = unit(&mut rng, DIMS);
    let ia = store
        .insert_batch(&mut w, vec![entry("route-a|t=0|ns", 5000, v.clone())], 1)
        .unwrap()[0];
    let ib = store
        .insert_batch(&mut w, vec![entry("route-b|t=0|ns", 5001, v.clone())], 1)
        .unwrap()[0];
    assert_eq!(store.search(&v, "route-a|t=0|ns", 1, 1).unwrap()[0].id, ia);
    assert_eq!(store.search(&v, "route-b|t=0|ns", 1, 1).unwrap()[0].id, ib);
    assert!(store.search(&v, "nope", 5, 1).unwrap().is_empty());
}

#[test]
fn exact_lookup_and_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let rows = fill(&store, &mut w, &mut rng, "p", 0, 10, 1);
    let e = store.get_exact(&key(4), 1).unwrap().unwrap();
    assert_eq!(e.id, rows[4].0);
    assert!(store.get_exact(&key(99), 1).unwrap().is_none());
    // Same exact key again: the new entry replaces the old one.
    let v = unit(&mut rng, DIMS);
    let new_id = store
        .insert_batch(&mut w, vec![entry("p", 4, v.clone())], 2)
        .unwrap()[0];
    assert_eq!(store.get_exact(&key(4), 2).unwrap().unwrap().id, new_id);
    assert!(store.get(rows[4].0, 2).unwrap().is_none());
    assert_eq!(store.len(), 10);
    let hits = store.search(&rows[4].1, "p", 10, 2).unwrap();
    assert!(hits.iter().all(|h| h.id != rows[4].0));
    // Deleting an entry frees its exact key; reopening finds the others by theirs.
    store.delete(&mut w, rows[5].0).unwrap();
    assert!(store.get_exact(&key(5), 2).unwrap().is_none());
    drop(store);
    let store = reopen(dir.path(), cfg());
    assert_eq!(store.get_exact(&key(4), 3).unwrap().unwrap().id, new_id);
    assert_eq!(store.get_exact(&key(6), 3).unwrap().unwrap().id, rows[6].0);
    assert!(store.get_exact(&key(5), 3).unwrap().is_none());
}

#[test]
fn ttl_expiry_with_injected_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg();
    c.default_ttl_secs = Some(10);
    let store = CacheStore::open(dir.path(), c).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let t0 = 1_000_000;
    let rows = fill(&store, &mut w, &mut rng, "p", 0, 5, t0);
    let mut forever = entry("p", 100, unit(&mut rng, DIMS));
    forever.ttl_secs = Some(3600);
    let long_id = store
        .insert_batch(&mut w, vec![forever.clone()], t0)
        .unwrap()[0];

    let (id, v) = &rows[0];
    assert_eq!(
        store.get(*id, t0).unwrap().unwrap().expires_ms,
        Some(t0 + 10_000)
    );
    assert!(store.get_exact(&key(0), t0 + 9_999).unwrap().is_some());
    assert_eq!(store.search(v, "p", 1, t0 + 9_999).unwrap()[0].id, *id);
    // Expired = absent, even before a sweep.
    let later = t0 + 10_000;
    assert!(store.get_exact(&key(0), later).unwrap().is_none());
    assert!(store.get(*id, later).unwrap().is_none());
    let hits = store.search(v, "p", 6, later).unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![long_id]);
    assert!(store
        .list(&EntryFilter::default(), None, 10, later)
        .unwrap()
        .items
        .iter()
        .all(|e| e.id == long_id));

    let r = store.sweep(&mut w, later).unwrap();
    assert_eq!((r.expired, r.evicted), (5, 0));
    assert_eq!(store.len(), 1);
    let s = store.stats();
    assert_eq!((s.expirations, s.tombstones), (5, 5));
    assert!(store.get(long_id, later).unwrap().is_some());
    drop(store);
    // expirations counter and removal persist
    let store = reopen(dir.path(), cfg());
    assert_eq!(store.len(), 1);
    assert_eq!(store.stats().expirations, 5);
}

#[test]
fn deletion_is_final_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let rows;
    {
        let store = CacheStore::open(dir.path(), cfg()).unwrap();
        let mut w = store.take_writer().unwrap();
        rows = fill(&store, &mut w, &mut rng, "p", 0, 50, 1);
        store.delete(&mut w, rows[0].0).unwrap();
        assert!(matches!(
            store.delete(&mut w, rows[0].0),
            Err(CacheError::NotFound(_))
        ));
        assert!(store.get(rows[0].0, 1).unwrap().is_none());
        assert!(store.get_exact(&key(0), 1).unwrap().is_none());
        let hits = store.search(&rows[0].1, "p", 50, 1).unwrap();
        assert_eq!(hits.len(), 49);
        assert!(hits.iter().all(|h| h.id != rows[0].0));
        let n = store
            .delete_where(
                &mut w,
                &EntryFilter {
                    text: Some("PROMPT NUMBER 1".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        // 1, 10..=19
        assert_eq!(n, 11);
        assert_eq!(store.len(), 38);
    }
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    assert_eq!(store.len(), 38);
    assert!(store.get(rows[0].0, 1).unwrap().is_none());
    assert!(store.get(rows[15].0, 1).unwrap().is_none());
    assert!(store.get(rows[20].0, 1).unwrap().is_some());
    let hits = store.search(&rows[0].1, "p", 50, 1).unwrap();
    assert_eq!(hits.len(), 38);
    let gone: HashSet<u64> = [0usize, 1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        .iter()
        .map(|&i| rows[i].0)
        .collect();
    assert!(hits.iter().all(|h| !gone.contains(&h.id)));
    // The graph was reloaded from the dump taken at close: the deleted
    // entries are tombstones there (filtered out above) until the writer's
    // next sweep rebuilds the partition (12/50 > rebuild_tombstone_ratio).
    assert_eq!(store.stats().startup_points_reloaded, 50);
    assert_eq!(store.stats().tombstones, 12);
    assert!(store.needs_rebuild());
    store.rebuild(false).unwrap().unwrap();
    assert_eq!(store.stats().tombstones, 0);
    assert_eq!(store.search(&rows[0].1, "p", 50, 1).unwrap().len(), 38);
}

#[test]
fn eviction_by_count_respects_lru() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg();
    c.max_entries = 5;
    let store = CacheStore::open(dir.path(), c).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(6);
    let ids: Vec<u64> = (0..5)
        .map(|i| fill(&store, &mut w, &mut rng, "p", i, 1, 100 + i)[0].0)
        .collect();
    assert!(store.record_hit(&mut w, ids[0], 200).unwrap());
    assert!(!store.record_hit(&mut w, u64::MAX - 3, 200).unwrap());
    fill(&store, &mut w, &mut rng, "p", 10, 1, 300);
    assert_eq!(store.len(), 5);
    // ids[1] is the least recently used (ids[0] was hit at 200)
    assert!(store.get(ids[1], 300).unwrap().is_none());
    let e0 = store.get(ids[0], 300).unwrap().unwrap();
    assert_eq!((e0.hits, e0.last_hit_ms), (1, Some(200)));
    fill(&store, &mut w, &mut rng, "p", 11, 2, 400);
    assert!(store.get(ids[2], 400).unwrap().is_none());
    assert!(store.get(ids[3], 400).unwrap().is_none());
    assert!(store.get(ids[0], 400).unwrap().is_some());
    assert_eq!(store.stats().evictions, 3);
    // LRU order survives a restart (hits are persisted)
    drop(store);
    let mut c = cfg();
    c.max_entries = 4;
    let store = reopen(dir.path(), c);
    let mut w = store.take_writer().unwrap();
    assert_eq!(store.sweep(&mut w, 500).unwrap().evicted, 1);
    assert!(store.get(ids[4], 500).unwrap().is_none());
    assert!(store.get(ids[0], 500).unwrap().is_some());
}

#[test]
fn noted_hits_count_at_once_steer_lru_and_persist_once_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg();
    c.max_entries = 3;
    let store = CacheStore::open(dir.path(), c.clone()).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(61);
    let ids: Vec<u64> = (0..3)
        .map(|i| fill(&store, &mut w, &mut rng, "p", i, 1, 100 + i)[0].0)
        .collect();
    store.note_hit(ids[0], 200);
    store.note_hit(ids[0], 150);
    store.note_hit(ids[1], 210);
    store.note_hit(u64::MAX - 3, 200);
    // visible to reads before the writer applies them
    let e0 = store.get(ids[0], 300).unwrap().unwrap();
    assert_eq!((e0.hits, e0.last_hit_ms), (2, Some(200)));
    // an insert applies them before evicting: ids[2] is now the least recently used
    fill(&store, &mut w, &mut rng, "p", 10, 1, 300);
    assert!(store.get(ids[2], 300).unwrap().is_none());
    assert!(store.get(ids[0], 300).unwrap().is_some());
    store.note_hit(ids[1], 400);
    store.apply_hits(&mut w).unwrap();
    drop(store);
    let store = reopen(dir.path(), c);
    let e1 = store.get(ids[1], 500).unwrap().unwrap();
    assert_eq!((e1.hits, e1.last_hit_ms), (2, Some(400)));
    assert_eq!(store.get(ids[0], 500).unwrap().unwrap().hits, 2);
}

#[test]
fn fifo_ignores_hits() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg();
    c.max_entries = 3;
    c.eviction = EvictionPolicy::Fifo;
    let store = CacheStore::open(dir.path(), c).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let ids: Vec<u64> = (0..3)
        .map(|i| fill(&store, &mut w, &mut rng, "p", i, 1, 100 + i)[0].0)
        .collect();
    store.record_hit(&mut w, ids[0], 200).unwrap();
    fill(&store, &mut w, &mut rng, "p", 10, 1, 300);
    assert!(store.get(ids[0], 300).unwrap().is_none());
    assert!(store.get(ids[1], 300).unwrap().is_some());
}

#[test]
fn eviction_by_bytes_respects_lru() {
    let mut rng = StdRng::seed_from_u64(8);
    // Measure one entry's accounted size (all test entries have the same size
    // give or take a digit).
    let probe = tempfile::tempdir().unwrap();
    let size = {
        let s = CacheStore::open(probe.path(), cfg()).unwrap();
        let mut w = s.take_writer().unwrap();
        let id = fill(&s, &mut w, &mut rng, "p", 10, 1, 1)[0].0;
        s.get(id, 1).unwrap().unwrap().size_bytes
    };
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg();
    c.max_bytes = size * 3 + size / 2;
    let store = CacheStore::open(dir.path(), c).unwrap();
    let mut w = store.take_writer().unwrap();
    let ids: Vec<u64> = (10..13)
        .map(|i| fill(&store, &mut w, &mut rng, "p", i, 1, i)[0].0)
        .collect();
    assert_eq!(store.len(), 3);
    store.record_hit(&mut w, ids[0], 50).unwrap();
    fill(&store, &mut w, &mut rng, "p", 14, 1, 60);
    assert_eq!(store.len(), 3);
    assert!(store.stats().bytes <= size * 3 + size / 2);
    assert!(store.get(ids[0], 60).unwrap().is_some());
    assert!(store.get(ids[1], 60).unwrap().is_none());
    assert_eq!(store.stats().evictions, 1);
}

#[test]
fn restart_gives_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let queries: Vec<Vec<f32>> = (0..20).map(|_| unit(&mut rng, DIMS)).collect();
    let (rows, before) = {
        let store = CacheStore::open(dir.path(), cfg()).unwrap();
        let mut w = store.take_writer().unwrap();
        let mut rows = fill(&store, &mut w, &mut rng, "p", 0, 400, 1);
        rows.extend(fill(&store, &mut w, &mut rng, "q", 1000, 50, 1));
        let before: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| {
                let r = store.search(q, "p", 5, 1).unwrap();
                r.into_iter().map(|c| c.id).collect()
            })
            .collect();
        (rows, before)
    };
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let mut w = store.take_writer().unwrap();
    assert_eq!(store.len(), 450);
    let p_rows: Vec<(u64, Vec<f32>)> = rows[..400].to_vec();
    for (q, b) in queries.iter().zip(&before) {
        let after: Vec<u64> = store
            .search(q, "p", 5, 1)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(&after, b);
        assert_eq!(after, brute_force(&p_rows, q, 5));
    }
    // Ids keep increasing after a restart.
    let max_old = rows.iter().map(|r| r.0).max().unwrap();
    let new = fill(&store, &mut w, &mut rng, "p", 5000, 1, 2)[0].0;
    assert!(new > max_old);
}

// ------------------------------------------------------------ graph dumps

/// Search results of `queries` in `part` equal brute force over `rows`.
fn assert_exact_results(
    store: &CacheStore,
    part: &str,
    rows: &[(u64, Vec<f32>)],
    queries: &[Vec<f32>],
) {
    for q in queries {
        let got: Vec<u64> = store
            .search(q, part, 5, 1)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(got, brute_force(rows, q, 5));
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn graceful_reopen_reloads_the_dumped_graph() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    let queries: Vec<Vec<f32>> = (0..20).map(|_| unit(&mut rng, DIMS)).collect();
    let (p_rows, q_rows) = {
        let store = CacheStore::open(dir.path(), cfg()).unwrap();
        let mut w = store.take_writer().unwrap();
        let p = fill(&store, &mut w, &mut rng, "p", 0, 400, 1);
        let q = fill(&store, &mut w, &mut rng, "q", 1000, 50, 1);
        assert_eq!(store.stats().startup_points_inserted, 0);
        (p, q)
    }; // drop = graceful close: dumps the graphs
    assert!(dir.path().join("index/manifest.json").exists());
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let s = store.stats();
    assert_eq!(
        (s.startup_points_reloaded, s.startup_points_inserted),
        (450, 0)
    );
    assert_eq!((s.entries, s.index_points, s.tombstones), (450, 450, 0));
    assert_exact_results(&store, "p", &p_rows, &queries);
    assert_exact_results(&store, "q", &q_rows, &queries);
    // Nothing changed: closing again keeps the dump; a third open reloads too.
    drop(store);
    let store = reopen(dir.path(), cfg());
    assert_eq!(store.stats().startup_points_reloaded, 450);
    // With index_dump off the dump is ignored.
    drop(store);
    let off = CacheConfig {
        index_dump: false,
        ..cfg()
    };
    let store = reopen(dir.path(), off);
    let s = store.stats();
    assert_eq!(
        (s.startup_points_reloaded, s.startup_points_inserted),
        (0, 450)
    );
    assert_exact_results(&store, "p", &p_rows, &queries);
}

/// A dump older than sled (as after `kill -9`): entries stored after it are
/// inserted at open, entries deleted after it are tombstones.
#[test]
fn stale_dump_is_reconciled_with_sled() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(22);
    let queries: Vec<Vec<f32>> = (0..30).map(|_| unit(&mut rng, DIMS)).collect();
    let live_rows = {
        let store = CacheStore::open(dir.path(), cfg()).unwrap();
        let mut w = store.take_writer().unwrap();
        let mut rows = fill(&store, &mut w, &mut rng, "p", 0, 300, 1);
        assert_eq!(store.persist_index(false).unwrap(), 1);
        copy_dir(&dir.path().join("index"), saved.path());
        // after the dump: 100 more entries, 60 deletions, one replacement
        rows.extend(fill(&store, &mut w, &mut rng, "p", 300, 100, 2));
        for (id, _) in rows.drain(..60) {
            store.delete(&mut w, id).unwrap();
        }
        let replaced = rows.iter().position(|r| r.0 == rows[0].0).unwrap();
        rows.remove(replaced);
        rows.extend(fill(&store, &mut w, &mut rng, "p", 60, 1, 3)); // same exact key as entry 60
        rows
    };
    // Put the old dump back, as if the process died before dumping again.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    copy_dir(saved.path(), &dir.path().join("index"));
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let s = store.stats();
    assert_eq!(s.entries, live_rows.len() as u64);
    assert_eq!(s.startup_points_reloaded, 300);
    assert_eq!(s.startup_points_inserted, 101);
    assert_eq!(s.tombstones, 300 + 101 - live_rows.len() as u64);
    assert_exact_results(&store, "p", &live_rows, &queries);
    for (id, v) in live_rows.iter().step_by(11) {
        assert_eq!(store.search(v, "p", 1, 1).unwrap()[0].id, *id);
    }
}

#[test]
fn corrupt_or_foreign_dump_falls_back_to_a_rebuild() {
    let mut rng = StdRng::seed_from_u64(23);
    let queries: Vec<Vec<f32>> = (0..20).map(|_| unit(&mut rng, DIMS)).collect();
    let dir = tempfile::tempdir().unwrap();
    let rows = {
        let store = CacheStore::open(dir.path(), cfg()).unwrap();
        let mut w = store.take_writer().unwrap();
        fill(&store, &mut w, &mut rng, "p", 0, 200, 1)
    };
    let index = dir.path().join("index");
    // 1. flip a byte in the graph file
    let graph = std::fs::read_dir(&index)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".hnsw.graph"))
        .unwrap();
    let mut bytes = std::fs::read(&graph).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&graph, &bytes).unwrap();
    {
        let store = CacheStore::open(dir.path(), cfg()).unwrap();
        let s = store.stats();
        assert_eq!(
            (s.startup_points_reloaded, s.startup_points_inserted),
            (0, 200)
        );
        assert_exact_results(&store, "p", &rows, &queries);
    } // rewrites a good dump at close
      // 2. truncated data file and a garbage manifest never crash
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    assert_eq!(store.stats().startup_points_reloaded, 200);
    drop(store);
    std::fs::write(index.join("manifest.json"), b"{not json").unwrap();
    let store = reopen(dir.path(), cfg());
    assert_eq!(store.stats().startup_points_inserted, 200);
    assert_exact_results(&store, "p", &rows, &queries);
    drop(store);
    // 3. another database's dump (same partition name, other vectors)
    let other = tempfile::tempdir().unwrap();
    let other_rows = {
        let store = CacheStore::open(other.path(), cfg()).unwrap();
        let mut w = store.take_writer().unwrap();
        fill(&store, &mut w, &mut rng, "p", 0, 200, 1)
    };
    std::fs::remove_dir_all(&index).unwrap();
    copy_dir(&other.path().join("index"), &index);
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    assert_eq!(store.stats().startup_points_reloaded, 0);
    assert_exact_results(&store, "p", &rows, &queries);
    assert_ne!(rows[0].1, other_rows[0].1);
}

#[test]
fn rebuild_after_tombstones_keeps_results_right() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(10);
    let rows = fill(&store, &mut w, &mut rng, "p", 0, 600, 1);
    let other = fill(&store, &mut w, &mut rng, "other", 10_000, 10, 1);
    assert!(!store.needs_rebuild());
    for (id, _) in rows.iter().step_by(2) {
        store.delete(&mut w, *id).unwrap();
    }
    let s = store.stats();
    assert_eq!((s.entries, s.tombstones), (310, 300));
    assert!(store.needs_rebuild());
    let report = store.rebuild(false).unwrap().unwrap();
    // only the partition with tombstones is rebuilt
    assert_eq!((report.partitions, report.points), (1, 300));
    let s = store.stats();
    assert_eq!((s.entries, s.index_points, s.tombstones), (310, 310, 0));
    assert_eq!(s.rebuilds, 1);
    assert!(s.last_rebuild_duration_ms.is_some());
    assert!(!store.needs_rebuild());
    assert!(store.rebuild(false).unwrap().is_none());

    let live: Vec<(u64, Vec<f32>)> = rows.iter().skip(1).step_by(2).cloned().collect();
    for (_, v) in rows.iter().take(60) {
        let got: Vec<u64> = store
            .search(v, "p", 4, 1)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(got, brute_force(&live, v, 4));
    }
    assert_eq!(
        store.search(&other[3].1, "other", 1, 1).unwrap()[0].id,
        other[3].0
    );
}

#[test]
fn inserts_during_rebuild_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CacheStore::open(dir.path(), cfg()).unwrap());
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    fill(&store, &mut w, &mut rng, "p", 0, 3000, 1);
    let done = Arc::new(AtomicBool::new(false));
    let rebuilder = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let r = store.rebuild(true);
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    let mut added = Vec::new();
    let mut i = 10_000;
    while !done.load(Ordering::SeqCst) || added.len() < 10 {
        added.extend(fill(&store, &mut w, &mut rng, "p", i, 5, 2));
        i += 5;
    }
    assert!(rebuilder.join().unwrap().unwrap().is_some());
    for (id, v) in &added {
        assert_eq!(store.search(v, "p", 1, 2).unwrap()[0].id, *id);
    }
    let s = store.stats();
    assert_eq!(s.index_points, s.entries);
    assert_eq!(s.index_state, IndexState::Ready);
}

#[test]
fn concurrent_readers_while_writer_inserts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CacheStore::open(dir.path(), cfg()).unwrap());
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(12);
    let base = Arc::new(fill(&store, &mut w, &mut rng, "p", 0, 200, 1));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (store, base, stop, reads) =
                (store.clone(), base.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let (id, v) = &base[i % base.len()];
                    let hits = store.search(v, "p", 1, 1).unwrap();
                    assert_eq!(hits[0].id, *id);
                    let e = store.get_exact(&key((i % base.len()) as u64), 1).unwrap();
                    assert_eq!(e.unwrap().id, *id);
                    reads.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                }
            })
        })
        .collect();
    let mut added = Vec::new();
    for b in 0..20 {
        added.extend(fill(&store, &mut w, &mut rng, "p", 1000 + b * 50, 50, 1));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(store.len(), 1200);
    for (id, v) in added.iter().step_by(10) {
        assert_eq!(store.search(v, "p", 1, 1).unwrap()[0].id, *id);
    }
}

#[test]
fn bad_vectors_are_rejected_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(13);
    let good = entry("p", 1, unit(&mut rng, DIMS));
    let mut nan = entry("p", 2, unit(&mut rng, DIMS));
    nan.vector[3] = f32::NAN;
    let err = store
        .insert_batch(&mut w, vec![good.clone(), nan], 1)
        .unwrap_err();
    assert!(matches!(err, CacheError::InvalidVector(_)));
    // the whole batch was rejected
    assert_eq!(store.len(), 0);
    let mut inf = entry("p", 3, unit(&mut rng, DIMS));
    inf.vector[0] = f32::INFINITY;
    assert!(matches!(
        store.insert_batch(&mut w, vec![inf], 1),
        Err(CacheError::InvalidVector(_))
    ));
    let zero = entry("p", 4, vec![0.0; DIMS]);
    assert!(matches!(
        store.insert_batch(&mut w, vec![zero], 1),
        Err(CacheError::InvalidVector(_))
    ));
    let short = entry("p", 5, vec![0.5; DIMS - 1]);
    assert!(matches!(
        store.insert_batch(&mut w, vec![short], 1),
        Err(CacheError::DimensionMismatch {
            expected: DIMS,
            got: 31
        })
    ));
    store.insert_batch(&mut w, vec![good.clone()], 1).unwrap();
    assert!(matches!(
        store.search(&[f32::NAN; DIMS], "p", 1, 1),
        Err(CacheError::InvalidVector(_))
    ));
    assert!(matches!(
        store.search(&[0.1; DIMS + 1], "p", 1, 1),
        Err(CacheError::DimensionMismatch { .. })
    ));
    assert_eq!(store.search(&good.vector, "p", 1, 1).unwrap().len(), 1);
    assert!(store.search(&good.vector, "p", 0, 1).unwrap().is_empty());
}

#[test]
fn self_dot_above_one_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(14);
    // Find unit vectors whose f32 dot with themselves rounds above 1.
    let mut over = Vec::new();
    for _ in 0..20_000 {
        let v: Vec<f32> = (0..DIMS).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let n = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        let u: Vec<f32> = v.iter().map(|&x| (x as f64 / n) as f32).collect();
        if dot(&u, &u) > 1.0 {
            over.push(u);
            if over.len() == 30 {
                break;
            }
        }
    }
    assert!(!over.is_empty(), "no vector with self-dot > 1 found");
    let batch: Vec<NewEntry> = over
        .iter()
        .enumerate()
        .map(|(i, v)| entry("p", i as u64, v.clone()))
        .collect();
    let ids = store.insert_batch(&mut w, batch, 1).unwrap();
    for (id, v) in ids.iter().zip(&over) {
        let hits = store.search(v, "p", 3, 1).unwrap();
        assert_eq!(hits[0].id, *id);
        assert!(hits[0].similarity <= 1.0 && hits[0].similarity > 0.9999);
    }
}

#[test]
fn list_export_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(15);
    let batch: Vec<NewEntry> = (0..25)
        .map(|i| {
            let mut e = entry("p", i, unit(&mut rng, DIMS));
            e.model = if i % 3 == 0 { "a" } else { "b" }.to_string();
            e.namespace = if i < 10 { "team1" } else { "team2" }.to_string();
            e
        })
        .collect();
    let ids = store.insert_batch(&mut w, batch, 1).unwrap();
    let f = EntryFilter {
        model: Some("a".into()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(&f, cursor, 2, 1).unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<u64> = ids.iter().step_by(3).copied().collect();
    assert_eq!(seen, expected);
    let f2 = EntryFilter {
        namespace: Some("team1".into()),
        text: Some("number 1".into()),
        ..Default::default()
    };
    let page = store.list(&f2, None, 100, 1).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].prompt_text, "Prompt number 1");
    assert_eq!(page.next_cursor, None);

    let exported: Vec<_> = store.export(1).collect::<Result<_, _>>().unwrap();
    assert_eq!(exported.len(), 25);
    let line = serde_json::to_string(&exported[0]).unwrap();
    let back: deja::cache::Entry = serde_json::from_str(&line).unwrap();
    assert_eq!(back, exported[0]);

    assert_eq!(store.delete_where(&mut w, &f).unwrap(), 9);
    assert_eq!(store.export(1).count(), 16);
    assert_eq!(store.list(&f, None, 10, 1).unwrap().items.len(), 0);
}

#[test]
fn config_defaults_and_strictness() {
    let c: CacheConfig = toml::from_str("").unwrap();
    assert_eq!(c, CacheConfig::default());
    assert_eq!(c.dimensions, 384);
    assert_eq!(c.eviction, EvictionPolicy::Lru);
    let c: CacheConfig =
        toml::from_str("eviction = \"fifo\"\ndefault_ttl_secs = 60\n[hnsw]\nef_search = 99\n")
            .unwrap();
    assert_eq!(c.eviction, EvictionPolicy::Fifo);
    assert_eq!(c.default_ttl_secs, Some(60));
    assert_eq!(c.hnsw.ef_search, 99);
    assert!(toml::from_str::<CacheConfig>("dimension = 3").is_err());
    let bad = CacheConfig {
        dimensions: 0,
        ..CacheConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        CacheStore::open(dir.path(), bad),
        Err(CacheError::Config(_))
    ));
}

#[test]
fn reopen_with_other_dimensions_drops_old_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(16);
    {
        let store = CacheStore::open(dir.path(), cfg()).unwrap();
        let mut w = store.take_writer().unwrap();
        fill(&store, &mut w, &mut rng, "p", 0, 10, 1);
    }
    let mut c = cfg();
    c.dimensions = 16;
    let store = CacheStore::open(dir.path(), c).unwrap();
    let mut w = store.take_writer().unwrap();
    assert_eq!(store.len(), 0);
    assert!(store.get_exact(&key(1), 1).unwrap().is_none());
    let v: Vec<f32> = unit(&mut rng, 16);
    let id = store
        .insert_batch(&mut w, vec![entry("p", 1, v.clone())], 2)
        .unwrap()[0];
    assert_eq!(store.search(&v, "p", 1, 2).unwrap()[0].id, id);
}

#[test]
fn actor_handle_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CacheStore::open(dir.path(), cfg()).unwrap());
    let now = Arc::new(AtomicU64::new(1_000));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    actix::System::new().block_on(async move {
        let h = CacheHandle::start_with_clock(store, clock).unwrap();
        let mut rng = StdRng::seed_from_u64(17);
        let batch: Vec<NewEntry> = (0..40)
            .map(|i| entry("p", i, unit(&mut rng, DIMS)))
            .collect();
        let v0 = batch[0].vector.clone();
        let ids = h.insert(batch).await.unwrap();
        assert_eq!(ids.len(), 40);
        assert_eq!(h.search(&v0, "p", 1).unwrap()[0].id, ids[0]);
        h.record_hit(ids[0]);
        now.store(2_000, Ordering::SeqCst);
        h.record_hit(ids[0]);
        // noted hits count at once, and the sweep applies them
        let e = h.get(ids[0]).unwrap().unwrap();
        assert_eq!((e.hits, e.last_hit_ms), (2, Some(2_000)));
        h.sweep().await.unwrap();
        let e = h.get(ids[0]).unwrap().unwrap();
        assert_eq!((e.hits, e.last_hit_ms), (2, Some(2_000)));
        h.delete(ids[0]).await.unwrap();
        assert!(matches!(
            h.delete(ids[0]).await,
            Err(CacheError::NotFound(_))
        ));
        let n = h
            .delete_where(EntryFilter {
                text: Some("number 3".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        // "number 3" matches 3 and 30..=39
        assert_eq!(n, 11);
        let r = h.rebuild(true).await.unwrap().unwrap();
        assert_eq!(r.points, h.store.len() as u64);
        assert!(h.get_exact(&key(1)).unwrap().is_some());
    });
}

// ------------------------------------------------------------ kill -9

const CHILD_ENV: &str = "DEJA_CACHE_CRASH_CHILD_DIR";

/// Not a test on its own: the body of the child process of
/// `acknowledged_batch_survives_kill_9`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = CacheStore::open(&dir, cfg()).unwrap();
    let mut w = store.take_writer().unwrap();
    let mut rng = StdRng::seed_from_u64(18);
    let rows = fill(&store, &mut w, &mut rng, "p", 0, 500, 1);
    let ids: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
    println!("ACK {}", ids.join(","));
    // keep writing unacknowledged work until killed
    let mut i = 1000;
    loop {
        let _ = store.record_hit(&mut w, rows[0].0, 5);
        let _ = fill(&store, &mut w, &mut rng, "p", i, 5, 2);
        i += 5;
    }
}

#[test]
fn acknowledged_batch_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut acked: Vec<u64> = Vec::new();
    for line in out.lines() {
        let line = line.unwrap();
        // libtest may print "test crash_child ... " before it on the same line
        if let Some((_, ids)) = line.split_once("ACK ") {
            acked = ids.split(',').map(|s| s.parse().unwrap()).collect();
            break;
        }
    }
    assert_eq!(acked.len(), 500);
    std::thread::sleep(std::time::Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = CacheStore::open(dir.path(), cfg()).unwrap();
    assert!(store.len() >= 500);
    for id in &acked {
        let e = store
            .get_with_vector(*id, 1)
            .unwrap()
            .expect("acknowledged entry lost");
        assert_eq!(store.search(&e.vector, "p", 1, 1).unwrap()[0].id, *id);
    }
    // every index entry resolves to a stored entry
    let s = store.stats();
    assert_eq!(s.index_points, s.entries);
    let e = store.get_with_vector(acked[0], 1).unwrap().unwrap();
    for c in store.search(&e.vector, "p", 50, 1).unwrap() {
        assert!(store.get(c.id, 1).unwrap().is_some());
    }
}
