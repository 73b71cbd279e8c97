//! In-memory vector index: one `hnsw_rs` graph per partition.
//!
//! Points are never removed from a graph; the store's live set decides what a
//! search may return (tombstones are filtered out) and a partition with too
//! many tombstones is rebuilt off to the side and swapped in.

use super::{CacheError, HnswConfig};
use hnsw_rs::prelude::{Distance, Hnsw};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Cosine distance `1 - dot(a, b)` for unit vectors, clamped to `[0, 2]`.
///
/// Unlike `DistDot`/`DistCosine` of `anndists` it never asserts: rounding that
/// pushes `dot` above 1, NaN, or mismatched lengths give a valid distance
/// (`hnsw_rs` itself asserts distances are >= 0).
#[derive(Debug, Default, Clone, Copy)]
pub struct ClampedCosine;

impl Distance<f32> for ClampedCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        if va.len() != vb.len() {
            return 2.0;
        }
        let d = 1.0 - dot(va, vb);
        if d.is_nan() {
            2.0
        } else {
            d.clamp(0.0, 2.0)
        }
    }
}

/// Dot product; uses AVX2+FMA code generation when the CPU has it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports avx2 and fma, checked just above.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_portable(a, b)
}

#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

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

pub(crate) type Graph = Hnsw<'static, f32, ClampedCosine>;

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

/// The graph of one partition.
pub(crate) struct PartIndex {
    pub(crate) name: Arc<str>,
    graph: RwLock<Arc<Graph>>,
    /// Live entries of this partition (maintained by the store).
    pub(crate) live: AtomicUsize,
    /// `Some` while a rebuild of this partition is in flight: inserts made
    /// meanwhile are recorded here and replayed into the new graph. The mutex
    /// also serialises inserts against the swap.
    pending: Mutex<Option<Rows>>,
}

impl PartIndex {
    fn graph(&self) -> Arc<Graph> {
        self.graph.read().clone()
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
                Arc::new(PartIndex {
                    name: k.clone(),
                    graph: RwLock::new(Arc::new(new_graph(&self.params, 64))),
                    live: AtomicUsize::new(0),
                    pending: Mutex::new(None),
                })
            })
            .clone()
    }

    pub(crate) fn parts(&self) -> Vec<Arc<PartIndex>> {
        self.parts.read().values().cloned().collect()
    }

    /// Installs prebuilt graphs (start-up). Replaces existing partitions.
    pub(crate) fn install(&self, name: &str, graph: Graph, live: usize) -> Arc<PartIndex> {
        let p = Arc::new(PartIndex {
            name: Arc::from(name),
            graph: RwLock::new(Arc::new(graph)),
            live: AtomicUsize::new(live),
            pending: Mutex::new(None),
        });
        self.parts.write().insert(p.name.clone(), p.clone());
        p
    }

    /// Adds unit vectors to a partition's graph (the caller validated them).
    pub(crate) fn insert(&self, part: &PartIndex, rows: &[(u64, Vec<f32>)]) {
        let mut pending = part.pending.lock();
        let g = part.graph();
        insert_rows(&g, rows.iter().map(|(id, v)| (*id, v.as_slice())));
        if let Some(p) = pending.as_mut() {
            p.extend(rows.iter().cloned());
        }
    }

    /// Top hits of `query` in `part`, best first, keeping only those `keep`
    /// accepts. Over-fetches and widens the search until `k` accepted hits are
    /// found or the whole graph has been asked for.
    pub(crate) fn search(
        &self,
        part: &PartIndex,
        query: &[f32],
        k: usize,
        keep: impl Fn(&mut Vec<RawHit>),
    ) -> Vec<RawHit> {
        if k == 0 {
            return Vec::new();
        }
        let g = part.graph();
        let n = g.get_nb_point();
        if n == 0 {
            return Vec::new();
        }
        let mut fetch = (k * 2).max(k + 8).min(n);
        loop {
            let ef = self.ef_search.load(Ordering::Relaxed).max(fetch);
            let mut hits: Vec<RawHit> = g
                .search(query, fetch, ef)
                .into_iter()
                .map(|nb| RawHit {
                    id: nb.d_id as u64,
                    similarity: (1.0 - nb.distance).clamp(-1.0, 1.0),
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
        std::mem::replace(&mut *part.graph.write(), Arc::new(graph))
    }

    /// Abandons a rebuild (error path).
    pub(crate) fn cancel_rebuild(&self, parts: &[Arc<PartIndex>]) {
        for p in parts {
            *p.pending.lock() = None;
        }
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
