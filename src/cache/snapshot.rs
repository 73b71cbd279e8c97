//! A read-optimised copy of one partition's HNSW graph, used by every search.
//!
//! `hnsw_rs` builds and persists the graph; searching it directly costs an `Arc`
//! clone, a lock and a heap allocation per visited point, which put p99 at ~3 ms for
//! 100k entries. A [`Snapshot`] copies the graph once into flat arrays (vectors
//! contiguous, neighbour lists as CSR over dense `u32` indices) and searches it with
//! the textbook HNSW procedure (greedy descent through the upper layers, beam search
//! of width `ef` on layer 0) with no allocation but the result heaps and a reused
//! visited-marks buffer.
//!
//! Points inserted after the copy was taken wait in a small "recent" list that is
//! scanned exactly; when that list grows past a fraction of the snapshot the owner
//! takes a new snapshot (see `PartIndex`).

use super::index::{dot, Graph};
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// A frozen copy of a graph.
pub(crate) struct Snapshot {
    dims: usize,
    /// Dense index -> entry id.
    ids: Vec<u64>,
    /// `ids.len() * dims` unit-vector components.
    vectors: Vec<f32>,
    /// Layer 0 neighbours of point `i`: `links0[offsets0[i]..offsets0[i + 1]]`.
    offsets0: Vec<u32>,
    links0: Vec<u32>,
    /// Upper layers (index 0 = layer 1): neighbours of the points present there.
    upper: Vec<HashMap<u32, Box<[u32]>>>,
    /// Entry point (a point of the top layer).
    entry: u32,
}

/// A hit: similarity (dot product of unit vectors) and entry id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored {
    pub(crate) similarity: f32,
    pub(crate) id: u64,
}

/// Max-heap order on similarity (NaN-free: vectors are validated unit vectors).
#[derive(Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

thread_local! {
    /// Visited marks (a generation number per point), reused across searches.
    static VISITED: RefCell<(u32, Vec<u32>)> = const { RefCell::new((0, Vec::new())) };
}

impl Snapshot {
    pub(crate) fn empty(dims: usize) -> Self {
        Snapshot {
            dims,
            ids: Vec::new(),
            vectors: Vec::new(),
            offsets0: vec![0],
            links0: Vec::new(),
            upper: Vec::new(),
            entry: 0,
        }
    }

    /// Copies `g` (every point, tombstones included: the caller filters hits).
    pub(crate) fn of(g: &Graph) -> Self {
        // hnsw_rs's point iterator unwraps the entry point: never iterate an empty graph
        if g.get_nb_point() == 0 {
            return Self::empty(0);
        }
        let points: Vec<_> = g.get_point_indexation().into_iter().collect();
        let Some(dims) = points.first().map(|p| p.get_v().len()) else {
            return Self::empty(0);
        };
        let mut dense: HashMap<usize, u32> = HashMap::with_capacity(points.len());
        let mut keep = Vec::with_capacity(points.len());
        for p in &points {
            // a vector of the wrong length (impossible through the store) is skipped
            if p.get_v().len() != dims {
                continue;
            }
            let next = keep.len() as u32;
            if let std::collections::hash_map::Entry::Vacant(e) = dense.entry(p.get_origin_id()) {
                e.insert(next);
                keep.push(p.clone());
            }
        }
        let n = keep.len();
        let mut ids = Vec::with_capacity(n);
        let mut vectors = Vec::with_capacity(n * dims);
        let mut offsets0 = Vec::with_capacity(n + 1);
        let mut links0 = Vec::with_capacity(n * 24);
        let mut upper: Vec<HashMap<u32, Box<[u32]>>> = Vec::new();
        let (mut entry, mut entry_level) = (0u32, 0usize);
        offsets0.push(0);
        for (i, p) in keep.iter().enumerate() {
            ids.push(p.get_origin_id() as u64);
            vectors.extend_from_slice(p.get_v());
            let level = p.get_point_id().0 as usize;
            if i == 0 || level > entry_level {
                (entry, entry_level) = (i as u32, level);
            }
            for (layer, nbs) in p.get_neighborhood_id().iter().enumerate() {
                let mapped = nbs.iter().filter_map(|nb| dense.get(&nb.d_id).copied());
                if layer == 0 {
                    links0.extend(mapped);
                } else {
                    if upper.len() < layer {
                        upper.resize_with(layer, HashMap::new);
                    }
                    upper[layer - 1].insert(i as u32, mapped.collect());
                }
            }
            offsets0.push(links0.len() as u32);
        }
        Snapshot {
            dims,
            ids,
            vectors,
            offsets0,
            links0,
            upper,
            entry,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    fn vector(&self, i: u32) -> &[f32] {
        let s = i as usize * self.dims;
        &self.vectors[s..s + self.dims]
    }

    /// Hint the CPU to start loading point `i`'s vector (no effect on correctness).
    #[inline(always)]
    fn prefetch(&self, i: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let start = i as usize * self.dims;
            if let Some(v) = self.vectors.get(start..start + self.dims) {
                // 64-byte lines; the first 8 cover 128 of the 384 floats, the rest
                // stream in behind the hardware prefetcher
                for line in v.chunks(16).take(8) {
                    // SAFETY: prefetch is a hint on an address inside `self.vectors`;
                    // it never faults and SSE is part of the x86_64 baseline.
                    unsafe {
                        std::arch::x86_64::_mm_prefetch(
                            line.as_ptr() as *const i8,
                            std::arch::x86_64::_MM_HINT_T0,
                        )
                    };
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    fn sim(&self, q: &[f32], i: u32) -> f32 {
        dot(q, self.vector(i))
    }

    /// Approximate `k` nearest by similarity, best first, searching layer 0 with a
    /// beam of `ef` (at least `k`).
    pub(crate) fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<Scored> {
        let n = self.len();
        if n == 0 || k == 0 || q.len() != self.dims {
            return Vec::new();
        }
        let ef = ef.max(k);
        // greedy descent through the upper layers
        let mut cur = self.entry;
        let mut cur_sim = self.sim(q, cur);
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                if let Some(nbs) = layer.get(&cur) {
                    for &nb in nbs.iter() {
                        let s = self.sim(q, nb);
                        if s > cur_sim {
                            (cur, cur_sim) = (nb, s);
                            moved = true;
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        VISITED.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (gen, marks) = &mut *guard;
            if marks.len() < n {
                marks.resize(n, 0);
            }
            *gen = gen.wrapping_add(1);
            if *gen == 0 {
                marks.iter_mut().for_each(|m| *m = 0);
                *gen = 1;
            }
            let gen = *gen;
            // candidates: best first; results: worst first (bounded by ef)
            let mut candidates = BinaryHeap::with_capacity(ef * 2);
            let mut results: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef + 1);
            marks[cur as usize] = gen;
            candidates.push(Near(cur_sim, cur));
            results.push(Reverse(Near(cur_sim, cur)));
            while let Some(Near(s, c)) = candidates.pop() {
                let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0 .0);
                if s < worst && results.len() >= ef {
                    break;
                }
                let (a, b) = (
                    self.offsets0[c as usize] as usize,
                    self.offsets0[c as usize + 1] as usize,
                );
                // mark and prefetch the unvisited neighbours first, then score them: the
                // vector loads overlap instead of each one stalling in turn
                let mut fresh = [0u32; 128];
                let mut nf = 0;
                for &nb in &self.links0[a..b] {
                    let m = &mut marks[nb as usize];
                    if *m == gen || nf == fresh.len() {
                        continue;
                    }
                    *m = gen;
                    fresh[nf] = nb;
                    nf += 1;
                    self.prefetch(nb);
                }
                for &nb in &fresh[..nf] {
                    let s = self.sim(q, nb);
                    let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0 .0);
                    if results.len() < ef || s > worst {
                        candidates.push(Near(s, nb));
                        results.push(Reverse(Near(s, nb)));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
            let mut out: Vec<Scored> = results
                .into_iter()
                .map(|Reverse(Near(s, i))| Scored {
                    similarity: s.clamp(-1.0, 1.0),
                    id: self.ids[i as usize],
                })
                .collect();
            out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            out.truncate(k);
            out
        })
    }
}

/// Exact top `k` of `rows` by similarity to `q` (the points not yet in a snapshot).
pub(crate) fn scan(rows: &[(u64, Arc<[f32]>)], q: &[f32], k: usize) -> Vec<Scored> {
    if k == 0 {
        return Vec::new();
    }
    let mut top: BinaryHeap<Reverse<(Near, u64)>> = BinaryHeap::with_capacity(k + 1);
    for (i, (id, v)) in rows.iter().enumerate() {
        if v.len() != q.len() {
            continue;
        }
        top.push(Reverse((Near(dot(q, v), i as u32), *id)));
        if top.len() > k {
            top.pop();
        }
    }
    let mut out: Vec<Scored> = top
        .into_iter()
        .map(|Reverse((Near(s, _), id))| Scored {
            similarity: s.clamp(-1.0, 1.0),
            id,
        })
        .collect();
    out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::{build_graph, normalized};
    use crate::cache::HnswConfig;
    use rand::{Rng, SeedableRng};

    fn unit(rng: &mut rand::rngs::StdRng, dims: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0..1.0)).collect();
        normalized(&v, dims).unwrap()
    }

    fn exact(rows: &[(u64, Vec<f32>)], q: &[f32], k: usize) -> Vec<u64> {
        let mut s: Vec<(f32, u64)> = rows.iter().map(|(id, v)| (dot(q, v), *id)).collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        s.into_iter().take(k).map(|(_, id)| id).collect()
    }

    #[test]
    fn snapshot_search_finds_the_true_neighbours() {
        let dims = 32;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let rows: Vec<(u64, Vec<f32>)> = (0..3000u64)
            .map(|i| (i * 3 + 1, unit(&mut rng, dims)))
            .collect();
        let params = HnswConfig::default();
        let g = build_graph(&params, &rows);
        let snap = Snapshot::of(&g);
        assert_eq!(snap.len(), rows.len());
        assert!(!snap.upper.is_empty(), "3000 points reach an upper layer");
        let (mut hit1, mut hit5) = (0, 0);
        for _ in 0..200 {
            let q = unit(&mut rng, dims);
            let want = exact(&rows, &q, 5);
            let got: Vec<u64> = snap.search(&q, 5, 128).iter().map(|s| s.id).collect();
            hit1 += usize::from(got.first() == want.first());
            hit5 += want.iter().filter(|id| got.contains(id)).count();
        }
        assert!(hit1 >= 194, "recall@1 {hit1}/200");
        assert!(hit5 >= 960, "recall@5 {hit5}/1000");
    }

    #[test]
    fn stored_vectors_are_their_own_nearest() {
        let dims = 16;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let rows: Vec<(u64, Vec<f32>)> = (0..500u64).map(|i| (i, unit(&mut rng, dims))).collect();
        let snap = Snapshot::of(&build_graph(&HnswConfig::default(), &rows));
        for (id, v) in rows.iter().step_by(7) {
            let hits = snap.search(v, 1, 64);
            assert_eq!(hits[0].id, *id);
            assert!(hits[0].similarity > 0.9999);
        }
    }

    #[test]
    fn degenerate_inputs_give_no_hits() {
        let snap = Snapshot::empty(8);
        assert!(snap.search(&[0.0; 8], 3, 16).is_empty());
        let empty = Snapshot::of(&crate::cache::index::new_graph(&HnswConfig::default(), 16));
        assert_eq!(empty.len(), 0);
        assert!(empty.search(&[0.0; 8], 3, 16).is_empty());
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let rows: Vec<(u64, Vec<f32>)> = (0..50u64).map(|i| (i, unit(&mut rng, 8))).collect();
        let snap = Snapshot::of(&build_graph(&HnswConfig::default(), &rows));
        assert!(snap.search(&[0.5; 7], 3, 16).is_empty(), "wrong length");
        assert!(snap.search(&rows[0].1, 0, 16).is_empty());
        assert_eq!(snap.search(&rows[0].1, 100, 16).len(), 50);
    }

    #[test]
    fn scan_is_exact_and_ordered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let rows: Vec<(u64, Vec<f32>)> = (0..300u64).map(|i| (i, unit(&mut rng, 12))).collect();
        let arcs: Vec<(u64, Arc<[f32]>)> = rows
            .iter()
            .map(|(i, v)| (*i, Arc::from(v.as_slice())))
            .collect();
        let q = unit(&mut rng, 12);
        let got: Vec<u64> = scan(&arcs, &q, 7).iter().map(|s| s.id).collect();
        assert_eq!(got, exact(&rows, &q, 7));
        assert!(scan(&arcs, &q, 0).is_empty());
    }
}
