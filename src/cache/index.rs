//! In-memory vector index: one `hnsw_rs` graph per partition.
//!
//! Points are never removed from a graph; the store's live set decides what a
//! search may return (tombstones are filtered out) and a partition with too
//! many tombstones is rebuilt off to the side and swapped in.

pub(crate) use super::distance::Graph;
pub use super::distance::{dot, ClampedCosine};
use super::snapshot::{self, Snapshot};
use super::{CacheError, HnswConfig};
use hnsw_rs::prelude::{AnnT, Hnsw, HnswIo};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Checks length and finiteness and returns the unit-length copy.
pub(crate) fn normalized(v: &[f32], dims: usize) -> Result<Vec<f32>, CacheError> {
    if v.len() != dims {
        return Err(CacheError::DimensionMismatch {
            expected: dims,
            got: v.len(),
        });
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(CacheError::InvalidVector("non-finite component"));
    }
    let norm = v
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt();
    if norm.is_nan() || norm <= 1e-12 || !norm.is_finite() {
        return Err(CacheError::InvalidVector("zero or overflowing norm"));
    }
    Ok(v.iter().map(|&x| (x as f64 / norm) as f32).collect())
}

/// `(id, unit vector)` rows.
pub(crate) type Rows = Vec<(u64, Vec<f32>)>;

/// Creates an empty graph sized for `hint` points.
pub(crate) fn new_graph(p: &HnswConfig, hint: usize) -> Graph {
    Hnsw::new(
        p.max_nb_connection,
        hint.max(16),
        16,
        p.ef_construction,
        ClampedCosine,
    )
}

/// Builds a graph from `(id, vector)` rows, in parallel when large.
pub(crate) fn build_graph(p: &HnswConfig, rows: &[(u64, Vec<f32>)]) -> Graph {
    let g = new_graph(p, rows.len());
    insert_rows(&g, rows.iter().map(|(id, v)| (*id, v.as_slice())));
    g
}

/// Inserts `(id, unit vector)` rows into `g` (in parallel when many).
pub(crate) fn insert_all(g: &Graph, rows: &[(u64, Vec<f32>)]) {
    insert_rows(g, rows.iter().map(|(id, v)| (*id, v.as_slice())));
}

fn insert_rows<'a>(g: &Graph, rows: impl Iterator<Item = (u64, &'a [f32])>) {
    let rows: Vec<(&[f32], usize)> = rows.map(|(id, v)| (v, id as usize)).collect();
    if rows.len() >= 256 {
        g.parallel_insert_slice(&rows);
    } else {
        for r in rows {
            g.insert_slice(r);
        }
    }
}

/// What searches read: a flat copy of the graph plus the points inserted since.
pub(crate) struct View {
    snapshot: Arc<Snapshot>,
    recent: Vec<(u64, Arc<[f32]>)>,
}

impl View {
    fn of(g: &Graph) -> Arc<Self> {
        Arc::new(View {
            snapshot: Arc::new(Snapshot::of(g)),
            recent: Vec::new(),
        })
    }

    /// The recent list is scanned exactly on every search: past this many points a
    /// new snapshot is taken (at 100k entries, every ~3k inserts).
    fn recent_limit(&self) -> usize {
        (self.snapshot.len() / 32).max(256)
    }
}

/// The graph of one partition.
pub(crate) struct PartIndex {
    pub(crate) name: Arc<str>,
    /// Owned by the writer: inserts, dumps, rebuilds.
    graph: RwLock<Arc<Graph>>,
    /// Read by searches; replaced by the writer after each change.
    view: RwLock<Arc<View>>,
    /// Live entries of this partition (maintained by the store).
    pub(crate) live: AtomicUsize,
    /// `Some` while a rebuild of this partition is in flight: inserts made
    /// meanwhile are recorded here and replayed into the new graph. The mutex
    /// also serialises inserts against the swap.
    pending: Mutex<Option<Rows>>,
    /// The graph changed since it was last dumped (or was never dumped).
    dirty: AtomicBool,
}

impl PartIndex {
    fn new(name: Arc<str>, graph: Graph, live: usize, dirty: bool) -> Self {
        PartIndex {
            name,
            view: RwLock::new(View::of(&graph)),
            graph: RwLock::new(Arc::new(graph)),
            live: AtomicUsize::new(live),
            pending: Mutex::new(None),
            dirty: AtomicBool::new(dirty),
        }
    }

    fn graph(&self) -> Arc<Graph> {
        self.graph.read().clone()
    }

    fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    pub(crate) fn points(&self) -> usize {
        self.graph().get_nb_point()
    }

    pub(crate) fn tombstones(&self) -> usize {
        self.points()
            .saturating_sub(self.live.load(Ordering::Relaxed))
    }
}

/// All partitions' graphs.
pub(crate) struct VectorIndex {
    params: HnswConfig,
    /// Current `ef_search` (tunable at run time).
    ef_search: AtomicUsize,
    parts: RwLock<HashMap<Arc<str>, Arc<PartIndex>>>,
}

/// What a search asks for before filtering.
pub(crate) struct RawHit {
    pub(crate) id: u64,
    pub(crate) similarity: f32,
}

impl VectorIndex {
    pub(crate) fn new(params: HnswConfig) -> Self {
        Self {
            ef_search: AtomicUsize::new(params.ef_search),
            params,
            parts: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn params(&self) -> &HnswConfig {
        &self.params
    }

    pub(crate) fn set_ef_search(&self, ef: usize) {
        self.ef_search.store(ef.max(1), Ordering::Relaxed);
    }

    pub(crate) fn part(&self, name: &str) -> Option<Arc<PartIndex>> {
        self.parts.read().get(name).cloned()
    }

    pub(crate) fn part_or_create(&self, name: &str) -> Arc<PartIndex> {
        if let Some(p) = self.part(name) {
            return p;
        }
        let mut parts = self.parts.write();
        parts
            .entry(Arc::from(name))
            .or_insert_with_key(|k| {
                Arc::new(PartIndex::new(
                    k.clone(),
                    new_graph(&self.params, 64),
                    0,
                    true,
                ))
            })
            .clone()
    }

    /// How many partitions exist.
    pub(crate) fn len(&self) -> usize {
        self.parts.read().len()
    }

    pub(crate) fn parts(&self) -> Vec<Arc<PartIndex>> {
        self.parts.read().values().cloned().collect()
    }

    /// Installs prebuilt graphs (start-up). Replaces existing partitions.
    /// `dirty`: the graph differs from its dump (or has none).
    pub(crate) fn install(
        &self,
        name: &str,
        graph: Graph,
        live: usize,
        dirty: bool,
    ) -> Arc<PartIndex> {
        let p = Arc::new(PartIndex::new(Arc::from(name), graph, live, dirty));
        self.parts.write().insert(p.name.clone(), p.clone());
        p
    }

    /// Adds unit vectors to a partition's graph (the caller validated them).
    pub(crate) fn insert(&self, part: &PartIndex, rows: &[(u64, Vec<f32>)]) {
        let mut pending = part.pending.lock();
        let g = part.graph();
        insert_rows(&g, rows.iter().map(|(id, v)| (*id, v.as_slice())));
        part.dirty.store(true, Ordering::Relaxed);
        if let Some(p) = pending.as_mut() {
            p.extend(rows.iter().cloned());
        }
        let old = part.view();
        let view = if old.recent.len() + rows.len() > old.recent_limit() {
            View::of(&g)
        } else {
            let mut recent = old.recent.clone();
            recent.extend(rows.iter().map(|(id, v)| (*id, Arc::from(v.as_slice()))));
            Arc::new(View {
                snapshot: old.snapshot.clone(),
                recent,
            })
        };
        *part.view.write() = view;
    }

    /// Top hits of `query` in `part`, best first, keeping only those `keep`
    /// accepts. Over-fetches and widens the search until `k` accepted hits are
    /// found or the whole graph has been asked for. `ef` overrides the configured
    /// search width (`None`: `ef_search`).
    pub(crate) fn search(
        &self,
        part: &PartIndex,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        keep: impl Fn(&mut Vec<RawHit>),
    ) -> Vec<RawHit> {
        if k == 0 {
            return Vec::new();
        }
        let view = part.view();
        let n = view.snapshot.len() + view.recent.len();
        if n == 0 {
            return Vec::new();
        }
        let mut fetch = (k * 2).max(k + 8).min(n);
        loop {
            let ef = ef
                .unwrap_or_else(|| self.ef_search.load(Ordering::Relaxed))
                .max(fetch);
            let mut found = view.snapshot.search(query, fetch, ef);
            if !view.recent.is_empty() {
                found.extend(snapshot::scan(&view.recent, query, fetch));
                found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
                let mut seen = HashSet::with_capacity(found.len());
                found.retain(|h| seen.insert(h.id));
            }
            let mut hits: Vec<RawHit> = found
                .into_iter()
                .map(|h| RawHit {
                    id: h.id,
                    similarity: h.similarity,
                })
                .collect();
            keep(&mut hits);
            if hits.len() >= k || fetch >= n {
                hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
                hits.truncate(k);
                return hits;
            }
            fetch = (fetch * 4).min(n);
        }
    }

    /// Marks partitions as rebuilding so that inserts from now on are also
    /// recorded for the new graph.
    pub(crate) fn begin_rebuild(&self, parts: &[Arc<PartIndex>]) {
        for p in parts {
            *p.pending.lock() = Some(Vec::new());
        }
    }

    /// Swaps in `graph` (built from the rows with ids `built`), first replaying
    /// the inserts recorded since `begin_rebuild`. Returns the old graph so the
    /// caller can drop it off the read path.
    pub(crate) fn finish_rebuild(
        &self,
        part: &PartIndex,
        graph: Graph,
        built: &HashSet<u64>,
        still_live: impl Fn(u64) -> bool,
    ) -> Arc<Graph> {
        let mut pending = part.pending.lock();
        let replay = pending.take().unwrap_or_default();
        let replay: Vec<&(u64, Vec<f32>)> = replay
            .iter()
            .filter(|(id, _)| !built.contains(id) && still_live(*id))
            .collect();
        insert_rows(&graph, replay.iter().map(|(id, v)| (*id, v.as_slice())));
        part.dirty.store(true, Ordering::Relaxed);
        *part.view.write() = View::of(&graph);
        std::mem::replace(&mut *part.graph.write(), Arc::new(graph))
    }

    /// Abandons a rebuild (error path).
    pub(crate) fn cancel_rebuild(&self, parts: &[Arc<PartIndex>]) {
        for p in parts {
            *p.pending.lock() = None;
        }
    }
}

// ------------------------------------------------------------ persistence
//
// Graph dumps live in `<data dir>/index/`: per partition the two files of
// `hnsw_rs`'s `file_dump` (`<base>.hnsw.graph`, `<base>.hnsw.data`) and one
// `manifest.json` naming them, written last (temp file + fsync + rename).
// A dump is only ever a hint: at start-up it is checked (sled database id,
// dimensions, M / ef_construction, file lengths and checksums) and then
// reconciled with sled point by point (see `CacheStore::open`).

/// Manifest format version.
const MANIFEST_VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";

/// `<data dir>/index/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) version: u32,
    /// Random id of the sled database the dumps were taken from.
    pub(crate) db_id: String,
    pub(crate) dimensions: usize,
    pub(crate) max_nb_connection: usize,
    pub(crate) ef_construction: usize,
    pub(crate) parts: Vec<DumpedPart>,
}

/// One partition's dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DumpedPart {
    pub(crate) partition: String,
    pub(crate) basename: String,
    /// Graph points (live + tombstones) at dump time.
    pub(crate) points: usize,
    /// Highest entry id in the graph.
    pub(crate) max_id: u64,
    pub(crate) graph_len: u64,
    pub(crate) graph_sum: u64,
    pub(crate) data_len: u64,
    pub(crate) data_sum: u64,
    pub(crate) dumped_unix_ms: u64,
}

/// What one [`VectorIndex::dump`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DumpReport {
    /// Partitions written now.
    pub(crate) written: usize,
    /// Partitions whose previous dump was still current.
    pub(crate) kept: usize,
    pub(crate) points: usize,
}

/// Length and a fast 64-bit checksum (not cryptographic: it catches torn
/// and truncated files, not tampering) of a file.
fn file_sum(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut len, mut h) = (0u64, 0x9E37_79B9_7F4A_7C15u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let mut words = chunk.chunks_exact(8);
        for w in &mut words {
            let x = u64::from_le_bytes(w.try_into().unwrap_or_default());
            h = (h ^ x).wrapping_mul(0x0100_0000_01B3).rotate_left(29);
        }
        for &b in words.remainder() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01B3);
        }
        len += n as u64;
    }
    Ok((len, h ^ len))
}

fn fsync(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Reads and parses the manifest; `None` when absent or unreadable.
pub(crate) fn read_manifest(dir: &Path) -> Option<Manifest> {
    let bytes = match std::fs::read(dir.join(MANIFEST)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read cache index manifest; rebuilding");
            return None;
        }
    };
    match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(m) if m.version == MANIFEST_VERSION => Some(m),
        Ok(m) => {
            tracing::warn!(
                version = m.version,
                "unknown cache index manifest version; rebuilding"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "corrupt cache index manifest; rebuilding");
            None
        }
    }
}

fn graph_path(dir: &Path, base: &str) -> PathBuf {
    dir.join(format!("{base}.hnsw.graph"))
}

fn data_path(dir: &Path, base: &str) -> PathBuf {
    dir.join(format!("{base}.hnsw.data"))
}

/// Loads a dumped graph after checking its files against the manifest.
/// `hnsw_rs` asserts on malformed input, so the load runs under
/// `catch_unwind`: a bad dump is an `Err`, never a crash.
pub(crate) fn load_dump(dir: &Path, d: &DumpedPart) -> std::io::Result<Graph> {
    for (path, len, sum) in [
        (graph_path(dir, &d.basename), d.graph_len, d.graph_sum),
        (data_path(dir, &d.basename), d.data_len, d.data_sum),
    ] {
        if file_sum(&path)? != (len, sum) {
            return Err(io_err(format!(
                "{} does not match the manifest",
                path.display()
            )));
        }
    }
    let dir = dir.to_path_buf();
    let base = d.basename.clone();
    let loaded = std::panic::catch_unwind(move || {
        // `load_hnsw` ties the graph's lifetime to the `HnswIo` (needed when
        // points are mmapped). Without mmap every point owns its vector, so
        // the `HnswIo` (a path, a name and a counter: ~100 bytes) is leaked
        // once per loaded partition to get a `'static` graph.
        let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&dir, &base)));
        io.load_hnsw::<f32, ClampedCosine>()
    });
    let mut g = match loaded {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => return Err(io_err(e)),
        Err(_) => return Err(io_err("hnsw_rs panicked while loading the dump")),
    };
    if g.get_nb_point() != d.points {
        return Err(io_err(format!(
            "dump has {} points, manifest says {}",
            g.get_nb_point(),
            d.points
        )));
    }
    g.set_searching_mode(false);
    Ok(g)
}

/// Calls `f(id, vector)` for every point of `g` (tombstones included).
pub(crate) fn for_each_point(g: &Graph, mut f: impl FnMut(u64, &[f32])) {
    for p in g.get_point_indexation() {
        f(p.get_origin_id() as u64, p.get_v());
    }
}

impl VectorIndex {
    /// Dumps the graphs that changed since their last dump (all with
    /// `force`) into `dir` and rewrites the manifest. Partitions being
    /// rebuilt keep their previous dump. Each partition's insert lock is held
    /// while its graph is written (inserts into that partition wait; searches
    /// do not). Serialised: concurrent callers wait for each other.
    pub(crate) fn dump(
        &self,
        dir: &Path,
        db_id: &str,
        dimensions: usize,
        force: bool,
    ) -> std::io::Result<DumpReport> {
        static DUMP_LOCK: Mutex<()> = Mutex::new(());
        let _serial = DUMP_LOCK.lock();
        std::fs::create_dir_all(dir)?;
        let old = read_manifest(dir).filter(|m| {
            m.db_id == db_id
                && m.dimensions == dimensions
                && m.max_nb_connection == self.params.max_nb_connection
                && m.ef_construction == self.params.ef_construction
        });
        let old_parts: HashMap<&str, &DumpedPart> = old
            .iter()
            .flat_map(|m| m.parts.iter().map(|p| (p.partition.as_str(), p)))
            .collect();
        let mut report = DumpReport::default();
        let mut parts = Vec::new();
        let stamp = super::now_ms();
        for (i, part) in self.parts().into_iter().enumerate() {
            let pending = part.pending.lock();
            let prev = old_parts.get(&*part.name).copied();
            if pending.is_some() || !(force || part.dirty.load(Ordering::Relaxed)) {
                if let Some(p) = prev {
                    parts.push(p.clone());
                    report.kept += 1;
                }
                continue;
            }
            let g = part.graph();
            let points = g.get_nb_point();
            if points == 0 {
                part.dirty.store(false, Ordering::Relaxed);
                continue;
            }
            let mut max_id = 0;
            for_each_point(&g, |id, _| max_id = max_id.max(id));
            let base = format!("p{i}-{stamp}");
            // hnsw_rs panics (rather than erring) when it cannot create the files, e.g.
            // the directory vanished or the disk is read-only: contain it
            let written =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.file_dump(dir, &base)))
                    .map_err(|_| io_err(format!("hnsw_rs panicked writing {}", dir.display())))?
                    .map_err(io_err)?;
            if written != base {
                return Err(io_err(format!("hnsw_rs dumped to {written}, not {base}")));
            }
            let (gp, dp) = (graph_path(dir, &base), data_path(dir, &base));
            fsync(&gp)?;
            fsync(&dp)?;
            let (graph_len, graph_sum) = file_sum(&gp)?;
            let (data_len, data_sum) = file_sum(&dp)?;
            part.dirty.store(false, Ordering::Relaxed);
            drop(pending);
            report.written += 1;
            report.points += points;
            parts.push(DumpedPart {
                partition: part.name.to_string(),
                basename: base,
                points,
                max_id,
                graph_len,
                graph_sum,
                data_len,
                data_sum,
                dumped_unix_ms: stamp,
            });
        }
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            db_id: db_id.to_string(),
            dimensions,
            max_nb_connection: self.params.max_nb_connection,
            ef_construction: self.params.ef_construction,
            parts,
        };
        let tmp = dir.join(format!("{MANIFEST}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&manifest).map_err(io_err)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(MANIFEST))?;
        std::fs::File::open(dir)?.sync_all()?;
        // Remove dump files no longer referenced.
        let keep: HashSet<String> = manifest
            .parts
            .iter()
            .flat_map(|p| {
                [
                    format!("{}.hnsw.graph", p.basename),
                    format!("{}.hnsw.data", p.basename),
                ]
            })
            .collect();
        for e in std::fs::read_dir(dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dump = name.ends_with(".hnsw.graph") || name.ends_with(".hnsw.data");
            if is_dump && !keep.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(report)
    }

    /// Whether some partition changed since its last dump.
    pub(crate) fn dirty(&self) -> bool {
        self.parts().iter().any(|p| p.dirty.load(Ordering::Relaxed))
    }
}

/// Drops an old graph on the calling thread once no reader holds it any more
/// (dropping a large graph takes a while; readers should not pay for it).
pub(crate) fn retire_graph(g: Arc<Graph>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while Arc::strong_count(&g) > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    drop(g);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnsw_rs::prelude::Distance;

    #[test]
    fn clamped_cosine_never_negative_or_nan() {
        let v = vec![0.57735026f32; 3];
        let d = ClampedCosine.eval(&v, &v);
        assert!((0.0..=1e-6).contains(&d));
        assert_eq!(ClampedCosine.eval(&[f32::NAN], &[1.0]), 2.0);
        assert_eq!(ClampedCosine.eval(&[1.0, 0.0], &[1.0]), 2.0);
        assert_eq!(ClampedCosine.eval(&[2.0], &[2.0]), 0.0);
    }

    #[test]
    fn a_dump_that_cannot_be_written_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let index = VectorIndex::new(HnswConfig::default());
        let part = index.part_or_create("p");
        index.insert(&part, &[(1, normalized(&[1.0, 0.0, 0.0], 3).unwrap())]);
        // occupy the names the next 5 s of dumps would write as directories
        let now = super::super::now_ms();
        for ms in now..now + 5000 {
            std::fs::create_dir(dir.path().join(format!("p0-{ms}.hnsw.graph"))).unwrap();
        }
        let r = index.dump(dir.path(), "db", 3, true);
        assert!(r.is_err(), "{r:?}");
        assert!(
            read_manifest(dir.path()).is_none(),
            "no manifest for a failed dump"
        );
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..389).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..389).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (*x as f64) * (*y as f64))
            .sum();
        assert!((dot(&a, &b) as f64 - naive).abs() < 1e-3);
    }

    #[test]
    fn normalized_rejects_bad_vectors() {
        assert!(matches!(
            normalized(&[1.0, 2.0], 3),
            Err(CacheError::DimensionMismatch {
                expected: 3,
                got: 2
            })
        ));
        assert!(matches!(
            normalized(&[1.0, f32::NAN], 2),
            Err(CacheError::InvalidVector(_))
        ));
        assert!(matches!(
            normalized(&[0.0, 0.0], 2),
            Err(CacheError::InvalidVector(_))
        ));
        let n = normalized(&[3.0, 4.0], 2).unwrap();
        assert!((n[0] - 0.6).abs() < 1e-6 && (n[1] - 0.8).abs() < 1e-6);
    }
}
