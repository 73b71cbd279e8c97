//! Semantic cache: HNSW index in memory, entries persisted in sled.
//!
//! This module is the storage and vector-index layer only (no HTTP, no
//! embedding model):
//!
//! - [`CacheStore`] is a plain struct. sled is the source of truth; an
//!   in-memory `hnsw_rs` graph per *partition* indexes the vectors. Reads
//!   (`get`, `get_exact`, `search`, `list`, `stats`) take `&self` and run
//!   concurrently from any thread; mutations are serialised by an internal
//!   writer lock and are meant to be driven by one writer, the actor below.
//! - [`CacheWriter`] is the actix actor that owns mutations (insert batches,
//!   deletes, periodic expiry/eviction sweep and index rebuilds, applying the
//!   hits that the serving path notes in memory without messaging it).
//!   [`CacheHandle`] bundles the shared `Arc<CacheStore>` (reads go
//!   straight to it) and the writer's address.
//!
//! # Durability rule
//!
//! `insert_batch` writes the whole batch to sled in one multi-tree
//! transaction and then calls `Db::flush` (fsync) **before** it touches the
//! in-memory index and before it returns `Ok`. An acknowledged batch therefore
//! survives `kill -9`, and since the index is only ever (re)built from sled
//! or reloaded from a dump that is then reconciled with sled (see below), no
//! index entry can point at a missing sled entry. Explicit deletes
//! (`delete`, `delete_where`) are flushed too. Expiry/eviction removals and hit
//! counters are not flushed individually (sled flushes every 500 ms): after a
//! crash an evicted or expired entry may come back and is removed again by the
//! next sweep, and a few recent hits may be lost (noted hits are applied every
//! 250 ms).
//!
//! # Deletion
//!
//! `hnsw_rs` has no delete. Removed entries leave a tombstone in their
//! partition's graph (search filters them out against the live set) and a
//! partition whose tombstones exceed `rebuild_tombstone_ratio` of its graph is
//! rebuilt from sled off to the side and swapped in (an `Arc` swap; readers are
//! never blocked for longer than that swap).
//!
//! # Graph dumps
//!
//! With `index_dump` (default) the graphs are dumped to `<data dir>/index/`
//! (`hnsw_rs` `file_dump` + a `manifest.json`) at graceful close, after
//! rebuilds and every `index_dump_interval_secs` when changed. `open`
//! reloads a dump only if its manifest matches the database id, dimensions
//! and graph parameters and its files match their checksums, then checks
//! every reloaded point against sled (same vector, or a tombstone when no
//! longer live) and inserts the live entries the dump lacks. Anything that
//! does not match makes that partition rebuild from sled.

mod actor;
mod distance;
mod index;
pub mod key;
mod pages;
pub mod replay;
mod snapshot;
mod store;
pub mod verify;

pub use actor::{
    CacheHandle, CacheWriter, Delete, DeleteWhere, Insert, Persist, Rebuild, Sweep,
    HIT_APPLY_INTERVAL,
};
pub use index::{dot, ClampedCosine};
pub use store::{CacheStore, Writer};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Cache configuration (`[cache]` section). The data directory is resolved by
/// the caller and passed to [`CacheStore::open`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Whether the cache is used at all (checked by the caller).
    pub enabled: bool,
    /// Embedding dimensions; every vector must have exactly this length.
    pub dimensions: usize,
    /// Maximum number of live entries; beyond it entries are evicted.
    pub max_entries: u64,
    /// Maximum accounted bytes of live entries; beyond it entries are evicted.
    pub max_bytes: u64,
    /// Default time to live for new entries; `None` = never expire.
    pub default_ttl_secs: Option<u64>,
    /// Which entries go first when over a limit.
    pub eviction: EvictionPolicy,
    /// Rebuild a partition's graph when tombstones / graph points exceeds this.
    pub rebuild_tombstone_ratio: f64,
    /// Period of the expiry + eviction + rebuild sweep of [`CacheWriter`].
    pub sweep_interval_secs: u64,
    /// HNSW parameters.
    pub hnsw: HnswConfig,
    /// Cosine similarity at or above which the nearest entry is a candidate
    /// (per request: `x-deja-cache-threshold`). Chosen from measurements: docs/cache.md.
    pub similarity_threshold: f32,
    /// Candidates considered per lookup (a paraphrase ranked second may be the
    /// right entry when the first is refused).
    pub top_k: usize,
    /// Also store responses cut short (`finish_reason` `length`, `content_filter`).
    pub store_truncated: bool,
    /// Embed questions with their misspelt words corrected (stored entries and lookups
    /// alike), so a typo does not push a paraphrase below the threshold.
    pub respell: bool,
    /// Dump the HNSW graphs to `<data dir>/index/` (at graceful shutdown,
    /// after rebuilds and every `index_dump_interval_secs` when changed) and
    /// reload them at start-up instead of rebuilding. The dump is reconciled
    /// with sled at load; sled stays the source of truth.
    pub index_dump: bool,
    /// Period of the background dump of changed graphs (0 = only at
    /// shutdown and after rebuilds).
    pub index_dump_interval_secs: u64,
    /// Most partitions (model route x namespace x parameters) the cache keeps. A
    /// request that would open one more is answered without the cache (`bypass`,
    /// reason `partition-limit`, counted), so spraying parameter values (a new `seed`
    /// each request) cannot grow memory or the index without bound.
    pub max_partitions: usize,
    /// When the embedder cannot give a lookup its embedding within
    /// `max_embed_wait_ms` (queue full or too long): `bypass` sends the request
    /// upstream uncached (`x-deja-cache: bypass`, reason `embedder-overloaded`);
    /// `reject` answers 503 with a `Retry-After` from the embedder's real queue.
    pub on_overload: OnOverload,
    /// Longest a lookup waits for its embedding before `on_overload` applies.
    pub max_embed_wait_ms: u64,
}

/// What a lookup does when the embedder is too busy to answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnOverload {
    /// Go upstream without the cache (the cache is an optimisation).
    #[default]
    Bypass,
    /// Answer 503 with `Retry-After`.
    Reject,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dimensions: 384,
            max_entries: 100_000,
            max_bytes: 1 << 30,
            default_ttl_secs: None,
            eviction: EvictionPolicy::Lru,
            rebuild_tombstone_ratio: 0.2,
            sweep_interval_secs: 30,
            hnsw: HnswConfig::default(),
            similarity_threshold: 0.75,
            top_k: 5,
            store_truncated: false,
            respell: true,
            index_dump: true,
            index_dump_interval_secs: 300,
            max_partitions: 1000,
            on_overload: OnOverload::Bypass,
            max_embed_wait_ms: 1000,
        }
    }
}

impl CacheConfig {
    /// Checks the values that would otherwise make the index misbehave.
    pub fn validate(&self) -> Result<(), CacheError> {
        let bad = |m: &str| Err(CacheError::Config(m.to_string()));
        if self.dimensions == 0 || self.dimensions > 65_536 {
            return bad("dimensions must be in 1..=65536");
        }
        if !(2..=256).contains(&self.hnsw.max_nb_connection) {
            return bad("hnsw.max_nb_connection must be in 2..=256");
        }
        if self.hnsw.ef_construction == 0
            || self.hnsw.ef_search == 0
            || self.hnsw.ef_search_fast == 0
        {
            return bad("hnsw.ef_construction, hnsw.ef_search and hnsw.ef_search_fast must be > 0");
        }
        if !(self.rebuild_tombstone_ratio > 0.0 && self.rebuild_tombstone_ratio <= 1.0) {
            return bad("rebuild_tombstone_ratio must be in (0, 1]");
        }
        if !(self.similarity_threshold > 0.0 && self.similarity_threshold <= 1.0) {
            return bad("similarity_threshold must be in (0, 1]");
        }
        if self.top_k == 0 || self.top_k > 100 {
            return bad("top_k must be in 1..=100");
        }
        if self.sweep_interval_secs == 0 {
            return bad("sweep_interval_secs must be > 0");
        }
        if self.max_partitions == 0 {
            return bad("max_partitions must be >= 1");
        }
        if self.max_embed_wait_ms == 0 {
            return bad("max_embed_wait_ms must be >= 1");
        }
        Ok(())
    }
}

/// Eviction order when a limit is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EvictionPolicy {
    /// Least recently hit first (never-hit entries count from their creation).
    #[default]
    Lru,
    /// Oldest created first; hits do not matter.
    Fifo,
}

/// HNSW graph parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HnswConfig {
    /// Links per node and layer (layer 0 keeps twice as many). "M".
    pub max_nb_connection: usize,
    /// Candidate list width while building.
    pub ef_construction: usize,
    /// Candidate list width while searching (raised to k when k is larger).
    pub ef_search: usize,
    /// Width of the serving path's first search. A lookup that finds an entry to
    /// serve stops there; one that does not searches again at `ef_search` before it
    /// is a miss, so a narrow first pass costs recall only where a miss pays a
    /// provider call anyway. Equal to `ef_search`: one pass.
    pub ef_search_fast: usize,
}

impl Default for HnswConfig {
    fn default() -> Self {
        // See benches/RESULTS-cache.md (100k real-question embeddings):
        // M 24 / ef_construction 160 / ef_search 128 gives recall@1 0.995
        // (M 12 / 40 only 0.964). The graph costs ~5x more to build, which
        // start-up no longer pays when it reloads the graph dump; a full
        // rebuild (no dump, or tombstones) of 100k takes minutes. On 1000 real
        // banking77 questions M 12 / 40 missed the identical vector for 7 at k=1.
        Self {
            max_nb_connection: 24,
            ef_construction: 160,
            ef_search: 128,
            ef_search_fast: 48,
        }
    }
}

/// Errors of the cache storage layer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// sled failed (I/O, corruption reported by sled, ...).
    #[error("cache storage error: {0}")]
    Storage(#[from] sled::Error),
    /// A vector does not have `dimensions` components.
    #[error("vector has {got} dimensions, expected {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    /// A vector has NaN/infinite components or is all zeros.
    #[error("invalid vector: {0}")]
    InvalidVector(&'static str),
    /// No live entry with that id.
    #[error("cache entry {0} not found")]
    NotFound(u64),
    /// A stored record could not be decoded.
    #[error("corrupt cache record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The response body could not be serialised.
    #[error("cannot encode response: {0}")]
    Encode(#[from] serde_json::Error),
    /// Invalid configuration.
    #[error("invalid cache config: {0}")]
    Config(String),
    /// Storing would open a partition beyond `max_partitions`.
    #[error("the cache holds its maximum of {max} partitions (cache.max_partitions)")]
    PartitionLimit { max: usize },
    /// The store's writer was already handed out.
    #[error("the cache store's writer is already taken")]
    WriterTaken,
    /// A write method was given another store's [`Writer`].
    #[error("this writer belongs to another cache store")]
    ForeignWriter,
    /// The writer actor is gone (mailbox closed).
    #[error("cache writer unavailable")]
    WriterGone,
}

/// Result alias of this module.
pub type CacheResult<T> = Result<T, CacheError>;

/// Hash of the normalised request, computed by the caller.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExactKey(pub [u8; 32]);

impl ExactKey {
    /// Lower-case hex rendering (64 chars).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex chars (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for ExactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExactKey({})", self.to_hex())
    }
}

impl fmt::Display for ExactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ExactKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ExactKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ExactKey::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex chars"))
    }
}

/// An entry to insert (the id, timestamps and counters are assigned by the
/// store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    /// Opaque similarity scope (model route + sampling params + namespace).
    pub partition: String,
    pub namespace: String,
    pub model: String,
    /// The text that was embedded.
    pub prompt_text: String,
    pub exact_key: ExactKey,
    /// `dimensions` finite components; re-normalised to unit length on insert.
    pub vector: Vec<f32>,
    /// The non-streaming OpenAI response body.
    pub response: serde_json::Value,
    /// Overrides `default_ttl_secs` for this entry (`Some(0)` = already expired
    /// is not useful; use `None` for the default).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A stored entry.
///
/// `vector` is only filled by [`CacheStore::get_with_vector`] and
/// [`CacheStore::export`]; `get` / `get_exact` leave it empty (the hot
/// exact-hit path does not need it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "id_string")]
    pub id: u64,
    pub partition: String,
    pub namespace: String,
    pub model: String,
    pub prompt_text: String,
    pub exact_key: ExactKey,
    pub vector: Vec<f32>,
    pub response: serde_json::Value,
    pub created_ms: u64,
    pub expires_ms: Option<u64>,
    pub hits: u64,
    pub last_hit_ms: Option<u64>,
    /// Accounted bytes (counts against `max_bytes`).
    pub size_bytes: u64,
}

/// What serving an entry needs: its text (to judge it against a request) and its
/// stored response exactly as stored, unparsed (a non-streaming hit sends these
/// bytes as they are). Read without the hit counters or the vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    pub id: u64,
    pub namespace: String,
    pub model: String,
    pub prompt_text: String,
    /// The stored OpenAI response body (JSON).
    pub response: bytes::Bytes,
}

/// An entry without its vector and response (for listings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntrySummary {
    #[serde(with = "id_string")]
    pub id: u64,
    pub partition: String,
    pub namespace: String,
    pub model: String,
    pub prompt_text: String,
    pub exact_key: ExactKey,
    pub created_ms: u64,
    pub expires_ms: Option<u64>,
    pub hits: u64,
    pub last_hit_ms: Option<u64>,
    pub size_bytes: u64,
}

/// A vector-search hit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    #[serde(with = "id_string")]
    pub id: u64,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// Selects entries for `list` / `delete_where`. All set fields must match;
/// an all-`None` filter matches everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntryFilter {
    pub model: Option<String>,
    pub namespace: Option<String>,
    pub partition: Option<String>,
    /// Case-insensitive substring of `prompt_text`.
    pub text: Option<String>,
}

/// One page of [`CacheStore::list`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListPage {
    pub items: Vec<EntrySummary>,
    /// Pass as `after` to get the next page; `None` at the end.
    #[serde(with = "opt_id_string")]
    pub next_cursor: Option<u64>,
}

/// Whether the vector index is serving from a settled graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexState {
    Ready,
    Rebuilding,
}

/// Counters for the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
    pub partitions: u64,
    /// Points in the HNSW graphs (live + tombstones).
    pub index_points: u64,
    pub tombstones: u64,
    /// Persistent counters (survive restarts).
    pub evictions: u64,
    pub expirations: u64,
    pub rebuilds: u64,
    pub last_rebuild_unix_ms: Option<u64>,
    pub last_rebuild_duration_ms: Option<u64>,
    /// Time `open` spent loading sled and building the graphs.
    pub startup_ms: u64,
    /// Graph points `open` reloaded from dumps (instead of inserting).
    pub startup_points_reloaded: u64,
    /// Graph points `open` inserted (no usable dump, or entries newer than it).
    pub startup_points_inserted: u64,
    pub index_state: IndexState,
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub expired: u64,
    pub evicted: u64,
}

/// What one rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    pub partitions: u64,
    pub points: u64,
    pub duration_ms: u64,
}

/// Wall clock in unix milliseconds (the store itself takes `now_ms`
/// arguments so tests can inject time).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

mod id_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

mod opt_id_string {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(id: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.collect_str(id),
            None => s.serialize_none(),
        }
    }
}
