//! [`CacheStore`]: sled persistence + per-partition HNSW graphs.
//!
//! sled trees:
//! - `entries`: id (u64 big-endian) -> entry record (binary layout below)
//! - `exact`: exact key (32 bytes) -> id
//! - `hits`: id -> hits (u64 LE) ++ last_hit_ms (u64 LE); absent = never hit
//! - `meta`: counter name -> u64 LE (evictions, expirations, rebuilds)
//!
//! Entry record (v1), all integers little-endian:
//! `u8 version=1 | u32 dims | dims x f32 | u64 created_ms | u64 expires_ms
//! (u64::MAX = never) | [u8;32] exact key | str partition | str namespace |
//! str model | str prompt_text | response JSON (rest of the record)`, where
//! `str` is `u32 len ++ utf-8 bytes`. The vector and partition come first so
//! start-up can index without touching the rest.
//!
//! The LRU/FIFO order lives in memory (a `BTreeSet<(order_ms, id)>` rebuilt
//! at start-up from `entries` and `hits`), so hits cost one small sled write.

use super::index::{self, PartIndex, RawHit, Rows, VectorIndex};
use super::{
    CacheConfig, CacheError, CacheResult, CacheStats, Cached, Candidate, Entry, EntryFilter,
    EntrySummary, EvictionPolicy, ExactKey, IndexState, ListPage, NewEntry, RebuildReport,
    SweepReport,
};
use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const VERSION: u8 = 1;
/// Bytes accounted per entry on top of its record: id key, exact-tree row,
/// hits row.
const ROW_OVERHEAD: u64 = 8 + (32 + 8) + (8 + 16);
const NEVER: u64 = u64::MAX;
const META_EVICTIONS: &[u8] = b"evictions";
const META_EXPIRATIONS: &[u8] = b"expirations";
const META_REBUILDS: &[u8] = b"rebuilds";
/// Random id of this sled database, written at creation; graph dumps carry
/// it so that a dump is never applied to another database.
const META_DB_ID: &[u8] = b"db_id";

/// In-memory facts about a live entry.
struct LiveMeta {
    part: Arc<PartIndex>,
    exact: ExactKey,
    expires_ms: Option<u64>,
    bytes: u64,
    /// Current key in the eviction order (`Writer::order`).
    order: u64,
}

impl LiveMeta {
    fn alive(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|e| e > now_ms)
    }
}

/// The write side of one [`CacheStore`]: the state only its writer touches (the
/// eviction order), handed out once by [`CacheStore::take_writer`] and passed to every
/// write method. Its owner (the [`super::CacheWriter`] actor in the gateway) is what
/// serialises the store's writes; no lock does it a second time.
pub struct Writer {
    /// Which store this is the writer of.
    store: u64,
    /// (order_ms, id): first = evicted first.
    order: BTreeSet<(u64, u64)>,
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal {
    Deleted,
    Expired,
    Evicted,
}

/// The cache's storage and index. Share it as `Arc<CacheStore>`.
pub struct CacheStore {
    cfg: CacheConfig,
    db: sled::Db,
    entries: sled::Tree,
    exact: sled::Tree,
    hits: sled::Tree,
    meta: sled::Tree,
    index: VectorIndex,
    live: RwLock<HashMap<u64, LiveMeta>>,
    /// Exact key -> live entry id, kept with `live` by the writer: an exact-key
    /// lookup that misses (most requests) never reads sled.
    exact_ids: RwLock<HashMap<[u8; 32], u64>>,
    id: u64,
    /// The writer until [`CacheStore::take_writer`] hands it out (once).
    unclaimed_writer: Mutex<Option<Writer>>,
    /// Hits noted on the serving path and not yet applied: id -> (count, last hit ms).
    /// Serving a hit only takes this lock; the writer applies them (LRU order, the
    /// `hits` tree) on its timer and before anything that evicts, and reads add them,
    /// so no hit ever has to wake the writer's thread.
    pending_hits: Mutex<HashMap<u64, (u64, u64)>>,
    bytes: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    rebuilds: AtomicU64,
    /// (unix ms when finished, duration ms)
    last_rebuild: Mutex<Option<(u64, u64)>>,
    rebuilding: AtomicBool,
    startup_ms: u64,
    startup_reloaded: u64,
    startup_inserted: u64,
    /// `<data dir>/index`: graph dumps.
    dump_dir: std::path::PathBuf,
    db_id: String,
}

impl Drop for CacheStore {
    /// Graceful close: dumps the graphs that changed (see
    /// [`CacheStore::persist_index`]) so that the next `open` is fast.
    fn drop(&mut self) {
        if let Err(e) = self.persist_index(false) {
            tracing::warn!(error = %e, "cannot dump the cache index at close");
        }
    }
}

impl std::fmt::Debug for CacheStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStore")
            .field("entries", &self.live.read().len())
            .finish_non_exhaustive()
    }
}

fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn corrupt(key: impl std::fmt::Display, reason: &str) -> CacheError {
    CacheError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

fn key_id(k: &[u8]) -> CacheResult<u64> {
    let b: [u8; 8] = k
        .try_into()
        .map_err(|_| corrupt(format!("{k:?}"), "entry key is not 8 bytes"))?;
    Ok(u64::from_be_bytes(b))
}

fn tx_err(e: TransactionError<()>) -> CacheError {
    match e {
        TransactionError::Storage(e) => CacheError::Storage(e),
        TransactionError::Abort(()) => {
            CacheError::Storage(sled::Error::Unsupported("cache transaction aborted".into()))
        }
    }
}

fn read_u64(tree: &sled::Tree, key: &[u8]) -> CacheResult<u64> {
    Ok(tree
        .get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

fn decode_hits(v: &[u8]) -> (u64, Option<u64>) {
    if v.len() != 16 {
        return (0, None);
    }
    let hits = u64::from_le_bytes(v[..8].try_into().unwrap_or_default());
    let last = u64::from_le_bytes(v[8..].try_into().unwrap_or_default());
    (hits, Some(last))
}

// ---------------------------------------------------------------- codec

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode(
    e: &NewEntry,
    unit: &[f32],
    response: &[u8],
    created_ms: u64,
    expires: Option<u64>,
) -> Vec<u8> {
    let strs = e.partition.len() + e.namespace.len() + e.model.len() + e.prompt_text.len();
    let mut out = Vec::with_capacity(1 + 4 + unit.len() * 4 + 16 + 32 + 16 + strs + response.len());
    out.push(VERSION);
    out.extend_from_slice(&(unit.len() as u32).to_le_bytes());
    for x in unit {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend_from_slice(&created_ms.to_le_bytes());
    out.extend_from_slice(&expires.unwrap_or(NEVER).to_le_bytes());
    out.extend_from_slice(&e.exact_key.0);
    put_str(&mut out, &e.partition);
    put_str(&mut out, &e.namespace);
    put_str(&mut out, &e.model);
    put_str(&mut out, &e.prompt_text);
    out.extend_from_slice(response);
    out
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// The decoded record; `vector` is filled only when asked for, `response`
/// is left raw.
struct Record<'a> {
    vector: Option<Vec<f32>>,
    dims: usize,
    created_ms: u64,
    expires_ms: Option<u64>,
    exact: ExactKey,
    partition: &'a str,
    namespace: &'a str,
    model: &'a str,
    prompt_text: &'a str,
    response: &'a [u8],
}

fn decode(id: u64, v: &[u8], with_vector: bool) -> CacheResult<Record<'_>> {
    let bad = |what: &str| corrupt(id, what);
    let mut r = Reader { b: v };
    if r.take(1) != Some(&[VERSION][..]) {
        return Err(bad("unknown record version"));
    }
    let dims = r.u32().ok_or_else(|| bad("truncated dims"))? as usize;
    let raw = r.take(dims * 4).ok_or_else(|| bad("truncated vector"))?;
    let vector = with_vector.then(|| {
        raw.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    });
    let created_ms = r.u64().ok_or_else(|| bad("truncated created_ms"))?;
    let expires = r.u64().ok_or_else(|| bad("truncated expires_ms"))?;
    let exact: [u8; 32] = r
        .take(32)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("truncated exact key"))?;
    let partition = r.str().ok_or_else(|| bad("bad partition"))?;
    let namespace = r.str().ok_or_else(|| bad("bad namespace"))?;
    let model = r.str().ok_or_else(|| bad("bad model"))?;
    let prompt_text = r.str().ok_or_else(|| bad("bad prompt_text"))?;
    Ok(Record {
        vector,
        dims,
        created_ms,
        expires_ms: (expires != NEVER).then_some(expires),
        exact: ExactKey(exact),
        partition,
        namespace,
        model,
        prompt_text,
        response: r.b,
    })
}

impl Record<'_> {
    fn summary(&self, id: u64, hits: (u64, Option<u64>), size: u64) -> EntrySummary {
        EntrySummary {
            id,
            partition: self.partition.to_string(),
            namespace: self.namespace.to_string(),
            model: self.model.to_string(),
            prompt_text: self.prompt_text.to_string(),
            exact_key: self.exact,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            hits: hits.0,
            last_hit_ms: hits.1,
            size_bytes: size,
        }
    }

    fn matches(&self, f: &EntryFilter) -> bool {
        f.model.as_deref().is_none_or(|m| m == self.model)
            && f.namespace.as_deref().is_none_or(|n| n == self.namespace)
            && f.partition.as_deref().is_none_or(|p| p == self.partition)
            && f.text
                .as_deref()
                .is_none_or(|t| self.prompt_text.to_lowercase().contains(&t.to_lowercase()))
    }
}

/// Checks a reloaded graph against the live rows of its partition: every
/// graph point that is live in sled must carry exactly sled's vector, and
/// appear once. Points not live in sled are tombstones. Returns the indices
/// of the rows the graph lacks (entries stored after the dump).
fn reconcile(g: &index::Graph, rows: &Rows) -> Result<Vec<usize>, &'static str> {
    let pos: HashMap<u64, usize> = rows.iter().enumerate().map(|(i, r)| (r.0, i)).collect();
    let mut seen = vec![false; rows.len()];
    let mut bad = None;
    index::for_each_point(g, |id, v| {
        if bad.is_some() {
            return;
        }
        if let Some(&i) = pos.get(&id) {
            if seen[i] {
                bad = Some("entry twice in the graph");
            } else if rows[i].1.len() != v.len()
                || rows[i]
                    .1
                    .iter()
                    .zip(v)
                    .any(|(a, b)| a.to_bits() != b.to_bits())
            {
                bad = Some("graph vector differs from sled");
            }
            seen[i] = true;
        }
    });
    match bad {
        Some(why) => Err(why),
        None => Ok((0..rows.len()).filter(|&i| !seen[i]).collect()),
    }
}

// ---------------------------------------------------------------- store

impl CacheStore {
    /// Opens (or creates) the database in `dir` and builds the index from it.
    ///
    /// Records whose vector does not have `cfg.dimensions` components (the
    /// embedding model changed) or that cannot be decoded are deleted, so
    /// that every stored entry is searchable.
    pub fn open(dir: impl AsRef<Path>, cfg: CacheConfig) -> CacheResult<Self> {
        cfg.validate()?;
        let t0 = Instant::now();
        let db = sled::Config::new().path(dir.as_ref()).open()?;
        let entries = db.open_tree("entries")?;
        let exact = db.open_tree("exact")?;
        let hits = db.open_tree("hits")?;
        let meta = db.open_tree("meta")?;
        let db_id = match meta.get(META_DB_ID)? {
            Some(v) => String::from_utf8_lossy(&v).into_owned(),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                meta.insert(META_DB_ID, id.as_bytes())?;
                id
            }
        };
        let dump_dir = dir.as_ref().join("index");

        let mut hit_map: HashMap<u64, (u64, Option<u64>)> = HashMap::new();
        for kv in hits.iter() {
            let (k, v) = kv?;
            if let Ok(id) = key_id(&k) {
                hit_map.insert(id, decode_hits(&v));
            }
        }

        struct Loaded {
            id: u64,
            partition: Arc<str>,
            exact: ExactKey,
            created_ms: u64,
            expires_ms: Option<u64>,
            bytes: u64,
        }
        let mut loaded = Vec::new();
        let mut groups: HashMap<Arc<str>, Rows> = HashMap::new();
        let mut bad_keys = Vec::new();
        for kv in entries.iter() {
            let (k, v) = kv?;
            let id = match key_id(&k) {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(error = %e, "dropping cache record with a bad key");
                    bad_keys.push(k);
                    continue;
                }
            };
            let rec = match decode(id, &v, true) {
                Ok(r) if r.dims == cfg.dimensions => r,
                Ok(r) => {
                    tracing::warn!(
                        id,
                        dims = r.dims,
                        "dropping cache entry of other dimensions"
                    );
                    bad_keys.push(k);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dropping undecodable cache entry");
                    bad_keys.push(k);
                    continue;
                }
            };
            let partition: Arc<str> = match groups.get_key_value(rec.partition) {
                Some((name, _)) => name.clone(),
                None => Arc::from(rec.partition),
            };
            loaded.push(Loaded {
                id,
                partition: partition.clone(),
                exact: rec.exact,
                created_ms: rec.created_ms,
                expires_ms: rec.expires_ms,
                bytes: v.len() as u64 + ROW_OVERHEAD,
            });
            groups
                .entry(partition)
                .or_default()
                .push((id, rec.vector.unwrap_or_default()));
        }
        for k in &bad_keys {
            entries.remove(k)?;
        }

        let index = VectorIndex::new(cfg.hnsw.clone());
        let params = cfg.hnsw.clone();
        let manifest = if cfg.index_dump {
            index::read_manifest(&dump_dir).filter(|m| {
                let ok = m.db_id == db_id
                    && m.dimensions == cfg.dimensions
                    && m.max_nb_connection == params.max_nb_connection
                    && m.ef_construction == params.ef_construction;
                if !ok {
                    tracing::info!(
                        "cache index dump is for another database or parameters; rebuilding"
                    );
                }
                ok
            })
        } else {
            None
        };
        let dumps: HashMap<&str, &index::DumpedPart> = manifest
            .iter()
            .flat_map(|m| m.parts.iter().map(|p| (p.partition.as_str(), p)))
            .collect();
        let built: Vec<(Arc<str>, index::Graph, usize, usize, bool)> = groups
            .into_par_iter()
            .map(|(name, rows)| {
                let n = rows.len();
                if let Some(d) = dumps.get(&*name) {
                    match index::load_dump(&dump_dir, d) {
                        Ok(g) => match reconcile(&g, &rows) {
                            Ok(missing) => {
                                let reloaded = g.get_nb_point();
                                let tail: Rows = missing.iter().map(|&i| rows[i].clone()).collect();
                                index::insert_all(&g, &tail);
                                tracing::info!(
                                    partition = %name,
                                    reloaded,
                                    inserted = tail.len(),
                                    tombstones = (reloaded + tail.len()).saturating_sub(n),
                                    "cache index loaded from dump"
                                );
                                return (name, g, n, reloaded, !tail.is_empty());
                            }
                            Err(why) => tracing::warn!(
                                partition = %name,
                                why,
                                "cache index dump disagrees with sled; rebuilding"
                            ),
                        },
                        Err(e) => tracing::warn!(
                            partition = %name,
                            error = %e,
                            "cannot load cache index dump; rebuilding"
                        ),
                    }
                }
                (name, index::build_graph(&params, &rows), n, 0, true)
            })
            .collect();
        let (mut startup_reloaded, mut startup_inserted) = (0u64, 0u64);
        for (name, graph, n, reloaded, dirty) in built {
            startup_inserted += (graph.get_nb_point() - reloaded) as u64;
            startup_reloaded += reloaded as u64;
            index.install(&name, graph, n, dirty);
        }

        let mut live = HashMap::with_capacity(loaded.len());
        let mut exact_ids = HashMap::with_capacity(loaded.len());
        let mut order = BTreeSet::new();
        let mut total_bytes = 0;
        for l in loaded {
            let part = index
                .part(&l.partition)
                .ok_or_else(|| corrupt(l.id, "partition vanished during load"))?;
            let last_hit = hit_map.get(&l.id).and_then(|h| h.1);
            let order_ms = match cfg.eviction {
                EvictionPolicy::Lru => last_hit.unwrap_or(l.created_ms),
                EvictionPolicy::Fifo => l.created_ms,
            };
            order.insert((order_ms, l.id));
            total_bytes += l.bytes;
            exact_ids.insert(l.exact.0, l.id);
            live.insert(
                l.id,
                LiveMeta {
                    part,
                    exact: l.exact,
                    expires_ms: l.expires_ms,
                    bytes: l.bytes,
                    order: order_ms,
                },
            );
        }

        let id = NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed);
        let store = Self {
            evictions: AtomicU64::new(read_u64(&meta, META_EVICTIONS)?),
            expirations: AtomicU64::new(read_u64(&meta, META_EXPIRATIONS)?),
            rebuilds: AtomicU64::new(read_u64(&meta, META_REBUILDS)?),
            cfg,
            db,
            entries,
            exact,
            hits,
            meta,
            index,
            live: RwLock::new(live),
            exact_ids: RwLock::new(exact_ids),
            id,
            unclaimed_writer: Mutex::new(Some(Writer { store: id, order })),
            pending_hits: Mutex::new(HashMap::new()),
            bytes: AtomicU64::new(total_bytes),
            last_rebuild: Mutex::new(None),
            rebuilding: AtomicBool::new(false),
            startup_ms: 0,
            startup_reloaded,
            startup_inserted,
            dump_dir,
            db_id,
        };
        let startup_ms = t0.elapsed().as_millis() as u64;
        tracing::info!(
            entries = store.live.read().len(),
            startup_ms,
            startup_reloaded,
            startup_inserted,
            "semantic cache loaded"
        );
        let mut store = store;
        store.startup_ms = startup_ms;
        Ok(store)
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    /// Changes `ef_search` at run time (search width; higher = better recall,
    /// slower).
    pub fn set_ef_search(&self, ef: usize) {
        self.index.set_ef_search(ef);
    }

    /// Number of live (not deleted) entries, expired-but-unswept included.
    pub fn len(&self) -> usize {
        self.live.read().len()
    }

    /// Whether there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // ------------------------------------------------------------ reads

    /// The entry `id` if it is live and not expired at `now_ms`, with an
    /// empty `vector` (see [`CacheStore::get_with_vector`]).
    pub fn get(&self, id: u64, now_ms: u64) -> CacheResult<Option<Entry>> {
        self.get_inner(id, now_ms, false)
    }

    /// Like [`CacheStore::get`], with the stored unit vector.
    pub fn get_with_vector(&self, id: u64, now_ms: u64) -> CacheResult<Option<Entry>> {
        self.get_inner(id, now_ms, true)
    }

    /// The stored record of `id` if it is live at `now_ms`.
    fn live_record(&self, id: u64, now_ms: u64) -> CacheResult<Option<sled::IVec>> {
        if !self.is_live(id, now_ms) {
            return Ok(None);
        }
        Ok(self.entries.get(id_key(id))?)
    }

    fn get_inner(&self, id: u64, now_ms: u64, with_vector: bool) -> CacheResult<Option<Entry>> {
        let Some(v) = self.live_record(id, now_ms)? else {
            return Ok(None);
        };
        let rec = decode(id, &v, with_vector)?;
        let hits = self.hit_counts(id)?;
        let response = serde_json::from_slice(rec.response)
            .map_err(|e| corrupt(id, &format!("response JSON: {e}")))?;
        Ok(Some(Entry {
            id,
            partition: rec.partition.to_string(),
            namespace: rec.namespace.to_string(),
            model: rec.model.to_string(),
            prompt_text: rec.prompt_text.to_string(),
            exact_key: rec.exact,
            vector: rec.vector.unwrap_or_default(),
            response,
            created_ms: rec.created_ms,
            expires_ms: rec.expires_ms,
            hits: hits.0,
            last_hit_ms: hits.1,
            size_bytes: v.len() as u64 + ROW_OVERHEAD,
        }))
    }

    /// What serving the live entry `id` needs ([`Cached`]): no JSON parse, no
    /// hit-counter read.
    pub fn get_cached(&self, id: u64, now_ms: u64) -> CacheResult<Option<Cached>> {
        let Some(v) = self.live_record(id, now_ms)? else {
            return Ok(None);
        };
        let rec = decode(id, &v, false)?;
        Ok(Some(Cached {
            id,
            namespace: rec.namespace.to_string(),
            model: rec.model.to_string(),
            prompt_text: rec.prompt_text.to_string(),
            response: bytes::Bytes::copy_from_slice(rec.response),
        }))
    }

    /// The id stored under `key`, from the in-memory map (no sled read).
    fn exact_id(&self, key: &ExactKey) -> Option<u64> {
        self.exact_ids.read().get(&key.0).copied()
    }

    /// [`CacheStore::get_cached`] of the live entry stored under `key`.
    pub fn get_exact_cached(&self, key: &ExactKey, now_ms: u64) -> CacheResult<Option<Cached>> {
        match self.exact_id(key) {
            Some(id) => self.get_cached(id, now_ms),
            None => Ok(None),
        }
    }

    /// The live entry stored under `key` (expired = absent), with an empty
    /// `vector`.
    pub fn get_exact(&self, key: &ExactKey, now_ms: u64) -> CacheResult<Option<Entry>> {
        match self.exact_id(key) {
            Some(id) => self.get(id, now_ms),
            None => Ok(None),
        }
    }

    /// The `k` most similar live entries of `partition`, best first.
    /// `vector` must have `dimensions` finite components (it is normalised).
    pub fn search(
        &self,
        vector: &[f32],
        partition: &str,
        k: usize,
        now_ms: u64,
    ) -> CacheResult<Vec<Candidate>> {
        self.search_ef(vector, partition, k, now_ms, None)
    }

    /// [`CacheStore::search`] with the search width `ef` instead of `ef_search`.
    pub fn search_ef(
        &self,
        vector: &[f32],
        partition: &str,
        k: usize,
        now_ms: u64,
        ef: Option<usize>,
    ) -> CacheResult<Vec<Candidate>> {
        let query = index::normalized(vector, self.cfg.dimensions)?;
        let Some(part) = self.index.part(partition) else {
            return Ok(Vec::new());
        };
        let hits = self
            .index
            .search(&part, &query, k, ef, |hits: &mut Vec<RawHit>| {
                let live = self.live.read();
                hits.retain(|h| {
                    live.get(&h.id)
                        .is_some_and(|m| m.alive(now_ms) && *m.part.name == *partition)
                });
            });
        Ok(hits
            .into_iter()
            .map(|h| Candidate {
                id: h.id,
                similarity: h.similarity,
            })
            .collect())
    }

    /// A page of live entries matching `filter`, in id (= insertion) order,
    /// starting after the id `after`. `limit` is at least 1.
    pub fn list(
        &self,
        filter: &EntryFilter,
        after: Option<u64>,
        limit: usize,
        now_ms: u64,
    ) -> CacheResult<ListPage> {
        let limit = limit.max(1);
        let start = match after {
            Some(u64::MAX) => {
                return Ok(ListPage {
                    items: Vec::new(),
                    next_cursor: None,
                })
            }
            Some(a) => a + 1,
            None => 0,
        };
        let mut items = Vec::new();
        let mut more = false;
        for kv in self.entries.range(id_key(start)..) {
            let (k, v) = kv?;
            let id = key_id(&k)?;
            if !self.is_live(id, now_ms) {
                continue;
            }
            let rec = decode(id, &v, false)?;
            if !rec.matches(filter) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(rec.summary(id, self.hit_counts(id)?, v.len() as u64 + ROW_OVERHEAD));
        }
        let next_cursor = if more {
            items.last().map(|e: &EntrySummary| e.id)
        } else {
            None
        };
        Ok(ListPage { items, next_cursor })
    }

    /// All live entries, in id order (for JSONL export). Entries removed
    /// while iterating may or may not appear.
    pub fn export(&self, now_ms: u64) -> impl Iterator<Item = CacheResult<Entry>> + '_ {
        self.entries.iter().filter_map(move |kv| {
            let id = match kv.map_err(CacheError::from).and_then(|(k, _)| key_id(&k)) {
                Ok(id) => id,
                Err(e) => return Some(Err(e)),
            };
            self.get_with_vector(id, now_ms).transpose()
        })
    }

    /// Counters for the admin API.
    /// The store's writer, once: `None` when it was already taken.
    pub fn take_writer(&self) -> Option<Writer> {
        self.unclaimed_writer.lock().take()
    }

    fn check_writer(&self, w: &Writer) -> CacheResult<()> {
        if w.store == self.id {
            Ok(())
        } else {
            Err(CacheError::ForeignWriter)
        }
    }

    /// Whether entries may be stored in `partition`: it exists, or there is room for
    /// one more under `max_partitions`.
    pub fn admits_partition(&self, partition: &str) -> bool {
        self.index.part(partition).is_some() || self.index.len() < self.cfg.max_partitions
    }

    pub fn stats(&self) -> CacheStats {
        let parts = self.index.parts();
        let index_points: usize = parts.iter().map(|p| p.points()).sum();
        let tombstones: usize = parts.iter().map(|p| p.tombstones()).sum();
        let last = *self.last_rebuild.lock();
        CacheStats {
            entries: self.live.read().len() as u64,
            bytes: self.bytes.load(Ordering::Relaxed),
            partitions: parts.len() as u64,
            index_points: index_points as u64,
            tombstones: tombstones as u64,
            evictions: self.evictions.load(Ordering::Relaxed),
            expirations: self.expirations.load(Ordering::Relaxed),
            rebuilds: self.rebuilds.load(Ordering::Relaxed),
            last_rebuild_unix_ms: last.map(|l| l.0),
            last_rebuild_duration_ms: last.map(|l| l.1),
            startup_ms: self.startup_ms,
            startup_points_reloaded: self.startup_reloaded,
            startup_points_inserted: self.startup_inserted,
            index_state: if self.rebuilding.load(Ordering::Relaxed) {
                IndexState::Rebuilding
            } else {
                IndexState::Ready
            },
        }
    }

    fn is_live(&self, id: u64, now_ms: u64) -> bool {
        self.live.read().get(&id).is_some_and(|m| m.alive(now_ms))
    }

    /// (hits, last hit ms) as stored in the `hits` tree.
    fn stored_hits(&self, id: u64) -> CacheResult<(u64, Option<u64>)> {
        Ok(self
            .hits
            .get(id_key(id))?
            .map(|v| decode_hits(&v))
            .unwrap_or((0, None)))
    }

    /// (hits, last hit ms) as stored plus any not yet applied.
    fn hit_counts(&self, id: u64) -> CacheResult<(u64, Option<u64>)> {
        let (hits, last) = self.stored_hits(id)?;
        Ok(match self.pending_hits.lock().get(&id) {
            Some(&(n, at)) => (hits + n, Some(last.map_or(at, |l| l.max(at)))),
            None => (hits, last),
        })
    }

    // ------------------------------------------------------------ writes

    /// Stores a batch atomically: all entries or none (a bad vector rejects
    /// the whole batch). The batch is flushed to disk before the index is
    /// updated and before this returns. An entry whose exact key is already
    /// stored replaces the older entry. Limits are enforced afterwards, which
    /// may evict older entries (or, for a batch larger than the limits, some
    /// of the batch itself).
    pub fn insert_batch(
        &self,
        w: &mut Writer,
        batch: Vec<NewEntry>,
        now_ms: u64,
    ) -> CacheResult<Vec<u64>> {
        self.check_writer(w)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        struct Prepared {
            partition: String,
            exact: ExactKey,
            unit: Vec<f32>,
            expires: Option<u64>,
            record: Vec<u8>,
        }
        let prepared = batch
            .into_iter()
            .map(|e| {
                let unit = index::normalized(&e.vector, self.cfg.dimensions)?;
                let response = serde_json::to_vec(&e.response)?;
                let expires = e
                    .ttl_secs
                    .or(self.cfg.default_ttl_secs)
                    .map(|s| now_ms.saturating_add(s.saturating_mul(1000)));
                let record = encode(&e, &unit, &response, now_ms, expires);
                Ok(Prepared {
                    partition: e.partition,
                    exact: e.exact_key,
                    unit,
                    expires,
                    record,
                })
            })
            .collect::<CacheResult<Vec<_>>>()?;

        let mut new_parts: Vec<&str> = prepared
            .iter()
            .map(|p| p.partition.as_str())
            .filter(|name| self.index.part(name).is_none())
            .collect();
        new_parts.sort_unstable();
        new_parts.dedup();
        if !new_parts.is_empty() && self.index.len() + new_parts.len() > self.cfg.max_partitions {
            return Err(CacheError::PartitionLimit {
                max: self.cfg.max_partitions,
            });
        }
        self.apply_hits_locked(w)?;
        let ids = prepared
            .iter()
            .map(|_| self.db.generate_id())
            .collect::<sled::Result<Vec<u64>>>()?;

        // Older live entries with the same exact key are replaced.
        let mut replaced = Vec::new();
        {
            let exact_ids = self.exact_ids.read();
            for p in &prepared {
                if let Some(&old) = exact_ids.get(&p.exact.0) {
                    if !replaced.contains(&old) {
                        replaced.push(old);
                    }
                }
            }
        }

        (&self.entries, &self.exact, &self.hits)
            .transaction(|(te, tx, th)| {
                for old in &replaced {
                    te.remove(&id_key(*old))?;
                    th.remove(&id_key(*old))?;
                }
                for (id, p) in ids.iter().zip(&prepared) {
                    te.insert(&id_key(*id), p.record.as_slice())?;
                    tx.insert(&p.exact.0, &id_key(*id))?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(tx_err)?;
        self.db.flush()?;

        self.forget_locked(w, &replaced);
        let mut by_part: HashMap<&str, Rows> = HashMap::new();
        {
            let mut live = self.live.write();
            let mut exact_ids = self.exact_ids.write();
            for (id, p) in ids.iter().zip(&prepared) {
                exact_ids.insert(p.exact.0, *id);
                let part = self.index.part_or_create(&p.partition);
                let bytes = p.record.len() as u64 + ROW_OVERHEAD;
                part.live.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(bytes, Ordering::Relaxed);
                w.order.insert((now_ms, *id));
                live.insert(
                    *id,
                    LiveMeta {
                        part,
                        exact: p.exact,
                        expires_ms: p.expires,
                        bytes,
                        order: now_ms,
                    },
                );
                by_part
                    .entry(&p.partition)
                    .or_default()
                    .push((*id, p.unit.clone()));
            }
        }
        for (name, rows) in by_part {
            let part = self.index.part_or_create(name);
            self.index.insert(&part, &rows);
        }
        self.enforce_limits_locked(w)?;
        Ok(ids)
    }

    /// Deletes a live entry (flushed before returning).
    pub fn delete(&self, w: &mut Writer, id: u64) -> CacheResult<()> {
        self.check_writer(w)?;
        self.apply_hits_locked(w)?;
        if !self.live.read().contains_key(&id) {
            return Err(CacheError::NotFound(id));
        }
        self.remove_locked(w, &[id], Removal::Deleted)?;
        self.db.flush()?;
        Ok(())
    }

    /// Deletes every live entry matching `filter` (an empty filter matches
    /// all); returns how many. Flushed before returning.
    pub fn delete_where(&self, w: &mut Writer, filter: &EntryFilter) -> CacheResult<u64> {
        self.check_writer(w)?;
        self.apply_hits_locked(w)?;
        let mut victims = Vec::new();
        for kv in self.entries.iter() {
            let (k, v) = kv?;
            let id = key_id(&k)?;
            if !self.live.read().contains_key(&id) {
                continue;
            }
            if decode(id, &v, false)?.matches(filter) {
                victims.push(id);
            }
        }
        let n = self.remove_locked(w, &victims, Removal::Deleted)?;
        self.db.flush()?;
        Ok(n)
    }

    /// Counts a hit on a live entry now (not flushed). Returns whether it exists.
    pub fn record_hit(&self, w: &mut Writer, id: u64, now_ms: u64) -> CacheResult<bool> {
        self.check_writer(w)?;
        self.apply_hits_locked(w)?;
        self.apply_hit_locked(w, id, 1, now_ms)
    }

    /// Notes a hit for the writer to apply later ([`CacheStore::apply_hits`]): the
    /// serving path's way, a short lock and no I/O. Reads count it at once.
    pub fn note_hit(&self, id: u64, now_ms: u64) {
        let mut p = self.pending_hits.lock();
        let e = p.entry(id).or_insert((0, now_ms));
        e.0 += 1;
        e.1 = e.1.max(now_ms);
    }

    /// Applies the noted hits (LRU order and the `hits` tree); the writer's job.
    pub fn apply_hits(&self, w: &mut Writer) -> CacheResult<()> {
        self.check_writer(w)?;
        self.apply_hits_locked(w)
    }

    fn apply_hits_locked(&self, w: &mut Writer) -> CacheResult<()> {
        let pending = std::mem::take(&mut *self.pending_hits.lock());
        for (id, (n, at)) in pending {
            self.apply_hit_locked(w, id, n, at)?;
        }
        Ok(())
    }

    /// `n` hits on `id`, the last at `now_ms`; `false` when it is not live.
    fn apply_hit_locked(&self, w: &mut Writer, id: u64, n: u64, now_ms: u64) -> CacheResult<bool> {
        {
            let mut live = self.live.write();
            let Some(m) = live.get_mut(&id) else {
                return Ok(false);
            };
            if self.cfg.eviction == EvictionPolicy::Lru && now_ms > m.order {
                w.order.remove(&(m.order, id));
                m.order = now_ms;
                w.order.insert((now_ms, id));
            }
        }
        let (hits, last) = self.stored_hits(id)?;
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&(hits + n).to_le_bytes());
        v[8..].copy_from_slice(&last.map_or(now_ms, |l| l.max(now_ms)).to_le_bytes());
        self.hits.insert(id_key(id), &v)?;
        Ok(true)
    }

    /// Removes entries expired at `now_ms`, then evicts down to the limits.
    pub fn sweep(&self, w: &mut Writer, now_ms: u64) -> CacheResult<SweepReport> {
        self.check_writer(w)?;
        self.apply_hits_locked(w)?;
        let expired: Vec<u64> = self
            .live
            .read()
            .iter()
            .filter(|(_, m)| !m.alive(now_ms))
            .map(|(id, _)| *id)
            .collect();
        let expired = self.remove_locked(w, &expired, Removal::Expired)?;
        let evicted = self.enforce_limits_locked(w)?;
        Ok(SweepReport { expired, evicted })
    }

    /// Whether some partition has more tombstones than
    /// `rebuild_tombstone_ratio` of its graph.
    pub fn needs_rebuild(&self) -> bool {
        !self.rebuild_targets().is_empty()
    }

    fn rebuild_targets(&self) -> Vec<Arc<PartIndex>> {
        let ratio = self.cfg.rebuild_tombstone_ratio;
        self.index
            .parts()
            .into_iter()
            .filter(|p| {
                let t = p.tombstones();
                t > 0 && t as f64 > ratio * p.points() as f64
            })
            .collect()
    }

    /// Rebuilds the graphs of the partitions that need it (all when `force`)
    /// from sled, off to the side, and swaps them in. Inserts may go on
    /// meanwhile (they are replayed into the new graphs); searches keep using
    /// the old graphs until the swap. Returns `None` when nothing was done
    /// (nothing to rebuild, or another rebuild is running).
    pub fn rebuild(&self, force: bool) -> CacheResult<Option<RebuildReport>> {
        if self.rebuilding.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reset = Reset(&self.rebuilding);
        let targets = if force {
            self.index.parts()
        } else {
            self.rebuild_targets()
        };
        if targets.is_empty() {
            return Ok(None);
        }
        let t0 = Instant::now();
        // From here on, inserts into the targets are also recorded for the
        // new graphs; whatever was inserted before is visible in sled.
        self.index.begin_rebuild(&targets);
        let rows = match self.scan_partitions(&targets) {
            Ok(r) => r,
            Err(e) => {
                self.index.cancel_rebuild(&targets);
                return Err(e);
            }
        };
        let params = self.index.params().clone();
        let built: Vec<(Arc<PartIndex>, index::Graph, HashSet<u64>)> = targets
            .into_par_iter()
            .map(|part| {
                let rows = rows.get(&part.name).map(Vec::as_slice).unwrap_or(&[]);
                let ids = rows.iter().map(|r| r.0).collect();
                (part.clone(), index::build_graph(&params, rows), ids)
            })
            .collect();
        let mut points = 0;
        let n_parts = built.len() as u64;
        let mut old = Vec::with_capacity(built.len());
        for (part, graph, ids) in built {
            old.push(
                self.index
                    .finish_rebuild(&part, graph, &ids, |id| self.live.read().contains_key(&id)),
            );
            points += part.points() as u64;
        }
        old.into_iter().for_each(index::retire_graph);
        let duration_ms = t0.elapsed().as_millis() as u64;
        let n = self.rebuilds.fetch_add(1, Ordering::Relaxed) + 1;
        self.meta.insert(META_REBUILDS, &n.to_le_bytes())?;
        *self.last_rebuild.lock() = Some((super::now_ms(), duration_ms));
        tracing::info!(
            partitions = n_parts,
            points,
            duration_ms,
            "cache index rebuilt"
        );
        Ok(Some(RebuildReport {
            partitions: n_parts,
            points,
            duration_ms,
        }))
    }

    /// Flushes sled (e.g. at shutdown).
    pub fn flush(&self) -> CacheResult<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Dumps the graphs that changed since their last dump (all with
    /// `force`) to `<data dir>/index/` so that the next `open` reloads them
    /// instead of rebuilding. sled is flushed first. Returns how many
    /// partitions were written (0 when nothing changed or `index_dump` is
    /// off). Inserts into a partition wait while its graph is written
    /// (about 1 s per 100k points); searches do not.
    pub fn persist_index(&self, force: bool) -> CacheResult<usize> {
        if !self.cfg.index_dump || !(force || self.index.dirty()) {
            return Ok(0);
        }
        self.db.flush()?;
        let t0 = Instant::now();
        let r = self
            .index
            .dump(&self.dump_dir, &self.db_id, self.cfg.dimensions, force)
            .map_err(|e| {
                CacheError::Storage(sled::Error::Io(std::io::Error::other(format!(
                    "cache index dump: {e}"
                ))))
            })?;
        tracing::info!(
            written = r.written,
            kept = r.kept,
            points = r.points,
            duration_ms = t0.elapsed().as_millis() as u64,
            "cache index dumped"
        );
        Ok(r.written)
    }

    /// Live rows of the given partitions, read from sled.
    fn scan_partitions(&self, parts: &[Arc<PartIndex>]) -> CacheResult<HashMap<Arc<str>, Rows>> {
        let names: HashSet<&str> = parts.iter().map(|p| &*p.name).collect();
        let mut out: HashMap<Arc<str>, Rows> = HashMap::new();
        for kv in self.entries.iter() {
            let (k, v) = kv?;
            let id = key_id(&k)?;
            let Some(part) = self.live.read().get(&id).map(|m| m.part.clone()) else {
                continue;
            };
            if !names.contains(&*part.name) {
                continue;
            }
            let rec = decode(id, &v, true)?;
            out.entry(part.name.clone())
                .or_default()
                .push((id, rec.vector.unwrap_or_default()));
        }
        Ok(out)
    }

    /// Drops entries from the in-memory state (they become tombstones).
    fn forget_locked(&self, w: &mut Writer, ids: &[u64]) -> Vec<(u64, LiveMeta)> {
        let mut live = self.live.write();
        let gone: Vec<(u64, LiveMeta)> = ids
            .iter()
            .filter_map(|id| live.remove(id).map(|m| (*id, m)))
            .collect();
        let mut exact_ids = self.exact_ids.write();
        for (id, m) in &gone {
            if exact_ids.get(&m.exact.0) == Some(id) {
                exact_ids.remove(&m.exact.0);
            }
        }
        drop(exact_ids);
        drop(live);
        for (id, m) in &gone {
            w.order.remove(&(m.order, *id));
            self.bytes.fetch_sub(m.bytes, Ordering::Relaxed);
            m.part.live.fetch_sub(1, Ordering::Relaxed);
        }
        gone
    }

    /// Removes live entries from memory, then from sled (one transaction).
    /// Returns how many were live. Not flushed.
    fn remove_locked(&self, w: &mut Writer, ids: &[u64], why: Removal) -> CacheResult<u64> {
        let gone = self.forget_locked(w, ids);
        if gone.is_empty() {
            return Ok(0);
        }
        let n = gone.len() as u64;
        let counter = match why {
            Removal::Deleted => None,
            Removal::Expired => Some((META_EXPIRATIONS, &self.expirations)),
            Removal::Evicted => Some((META_EVICTIONS, &self.evictions)),
        };
        let counter = counter.map(|(k, c)| (k, c.fetch_add(n, Ordering::Relaxed) + n));
        (&self.entries, &self.exact, &self.hits, &self.meta)
            .transaction(|(te, tx, th, tm)| {
                for (id, m) in &gone {
                    let key = id_key(*id);
                    te.remove(&key)?;
                    th.remove(&key)?;
                    if tx.get(m.exact.0)?.as_deref() == Some(&key[..]) {
                        tx.remove(&m.exact.0)?;
                    }
                }
                if let Some((k, v)) = counter {
                    tm.insert(k, &v.to_le_bytes())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(tx_err)?;
        Ok(n)
    }

    /// Evicts in eviction order until within `max_entries` and `max_bytes`.
    fn enforce_limits_locked(&self, w: &mut Writer) -> CacheResult<u64> {
        let victims = {
            let live = self.live.read();
            let mut n = live.len() as u64;
            let mut bytes = self.bytes.load(Ordering::Relaxed);
            let mut victims = Vec::new();
            for (_, id) in &w.order {
                if n <= self.cfg.max_entries && bytes <= self.cfg.max_bytes {
                    break;
                }
                victims.push(*id);
                n -= 1;
                bytes = bytes.saturating_sub(live.get(id).map_or(0, |m| m.bytes));
            }
            victims
        };
        self.remove_locked(w, &victims, Removal::Evicted)
    }
}
