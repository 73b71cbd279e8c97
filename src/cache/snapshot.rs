//! A read-optimised copy of one partition's HNSW graph, used by every search.
//!
//! `hnsw_rs` builds and persists the graph; searching it directly costs an `Arc`
//! clone, a lock and a heap allocation per visited point, which put p99 at ~3 ms for
//! 100k entries. A [`Snapshot`] copies the graph once into flat arrays (vectors
//! contiguous, neighbour lists as CSR over dense `u32` indices) and searches it with
//! the textbook HNSW procedure (greedy descent through the upper layers, beam search
//! of width `ef` on layer 0) with no allocation but the result heaps and a reused
//! visited-marks buffer. The walk scores int8 copies of the vectors; the `ef` points it
//! ends with are re-scored with the f32 vectors, which give the order and the
//! similarities returned.
//!
//! Points inserted after the copy was taken wait in a small "recent" list that is
//! scanned exactly; when that list grows past a fraction of the snapshot the owner
//! takes a new snapshot (see `PartIndex`).

use super::distance::{dot, Graph};
use super::pages::Pages;
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// A frozen copy of a graph.
pub(crate) struct Snapshot {
    dims: usize,
    /// Dense index -> entry id.
    ids: Vec<u64>,
    /// `ids.len() * dims` unit-vector components (exact scores for the final ranking).
    vectors: Pages<f32>,
    /// The same vectors as int8 codes, `vector ≈ code * scale`: the graph walk scores
    /// these (a quarter of the memory traffic), the best `ef` are re-scored exactly.
    codes: Pages<i8>,
    scales: Pages<f32>,
    /// Layer 0 neighbours of point `i`: `links0[offsets0[i]..offsets0[i + 1]]`.
    offsets0: Pages<u32>,
    links0: Pages<u32>,
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
    /// Visited marks, one bit per point, reused across searches: at 100k points the
    /// whole set is 12.5 KB, so clearing it per search is cheaper than the cold cache
    /// lines a word-sized mark per point would cost on every visit.
    static VISITED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl Snapshot {
    pub(crate) fn empty(dims: usize) -> Self {
        Snapshot {
            dims,
            ids: Vec::new(),
            vectors: Pages::from_slice(&[]),
            codes: Pages::from_slice(&[]),
            scales: Pages::from_slice(&[]),
            offsets0: Pages::from_slice(&[0]),
            links0: Pages::from_slice(&[]),
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
        let total0: usize = keep
            .iter()
            .map(|p| p.get_neighborhood_id().first().map_or(0, Vec::len))
            .sum();
        let mut ids = Vec::with_capacity(n);
        let mut vectors = Vec::with_capacity(n * dims);
        let mut offsets0 = Vec::with_capacity(n + 1);
        let mut links0 = Vec::with_capacity(total0);
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
        let mut codes = vec![0i8; vectors.len()];
        let mut scales = Vec::with_capacity(n);
        for (v, c) in vectors.chunks(dims).zip(codes.chunks_mut(dims)) {
            scales.push(quantize(v, c));
        }
        Snapshot {
            dims,
            ids,
            vectors: vectors.into(),
            codes: codes.into(),
            scales: scales.into(),
            offsets0: offsets0.into(),
            links0: links0.into(),
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

    /// Hint the CPU to start loading point `i`'s int8 code (no effect on correctness).
    #[inline(always)]
    fn prefetch(&self, i: u32) {
        let start = i as usize * self.dims;
        if let Some(c) = self.codes.get(start..start + self.dims) {
            prefetch_lines(c);
        }
    }

    /// Hint the CPU to start loading point `i`'s f32 vector.
    #[inline(always)]
    fn prefetch_vector(&self, i: u32) {
        let start = i as usize * self.dims;
        if let Some(v) = self.vectors.get(start..start + self.dims) {
            prefetch_lines(v);
        }
    }

    fn sim(&self, q: &[f32], i: u32) -> f32 {
        dot(q, self.vector(i))
    }

    /// Approximate similarity from the int8 codes (query codes `qc`, scale `qs`).
    fn approx(&self, qc: &[i8], qs: f32, i: u32) -> f32 {
        let s = i as usize * self.dims;
        dot_i8(qc, &self.codes[s..s + self.dims]) as f32 * qs * self.scales[i as usize]
    }

    /// Approximate `k` nearest by similarity, best first, searching layer 0 with a
    /// beam of `ef` (at least `k`).
    pub(crate) fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<Scored> {
        let n = self.len();
        if n == 0 || k == 0 || q.len() != self.dims {
            return Vec::new();
        }
        let ef = ef.max(k);
        let mut qc = vec![0i8; self.dims];
        let qs = quantize(q, &mut qc);
        // greedy descent through the upper layers
        let mut cur = self.entry;
        let mut cur_sim = self.approx(&qc, qs, cur);
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                if let Some(nbs) = layer.get(&cur) {
                    // start every neighbour's load before scoring the first (as below)
                    for &nb in nbs.iter() {
                        self.prefetch(nb);
                    }
                    for &nb in nbs.iter() {
                        let s = self.approx(&qc, qs, nb);
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
            let mut marks = cell.borrow_mut();
            marks.clear();
            marks.resize(n.div_ceil(64), 0);
            // marks `i` visited; false when it already was
            let mut visit = |i: u32| {
                let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
                let fresh = marks[word] & bit == 0;
                marks[word] |= bit;
                fresh
            };
            // candidates: best first; results: worst first (bounded by ef)
            let mut candidates = BinaryHeap::with_capacity(ef * 2);
            let mut results: BinaryHeap<Reverse<Near>> = BinaryHeap::with_capacity(ef + 1);
            visit(cur);
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
                    if nf == fresh.len() || !visit(nb) {
                        continue;
                    }
                    fresh[nf] = nb;
                    nf += 1;
                    self.prefetch(nb);
                }
                for &nb in &fresh[..nf] {
                    let s = self.approx(&qc, qs, nb);
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
            // Re-score the best of the beam exactly: the order and the similarities
            // reported are f32. The int8 scores are within ~1e-3 of the exact ones, so
            // the true top k are among the best `rerank_width(k)` approximate ones; the
            // rest of the beam is not read again (on a cold cache each f32 vector costs
            // two dozen cache misses).
            let mut beam: Vec<Near> = results.into_iter().map(|Reverse(n)| n).collect();
            beam.sort_unstable_by(|a, b| b.cmp(a));
            beam.truncate(rerank_width(k));
            for n in &beam {
                self.prefetch_vector(n.1);
            }
            let mut out: Vec<Scored> = beam
                .into_iter()
                .map(|Near(_, i)| Scored {
                    similarity: self.sim(q, i).clamp(-1.0, 1.0),
                    id: self.ids[i as usize],
                })
                .collect();
            out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            out.truncate(k);
            out
        })
    }
}

/// Prefetch every cache line of `s` (a hint: no effect on correctness).
#[inline(always)]
fn prefetch_lines<T>(s: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = s.as_ptr() as *const i8;
        for offset in (0..std::mem::size_of_val(s)).step_by(64) {
            // SAFETY: `offset` is inside the slice, so the address is in bounds;
            // prefetch never faults and SSE is part of the x86_64 baseline.
            unsafe {
                std::arch::x86_64::_mm_prefetch(p.add(offset), std::arch::x86_64::_MM_HINT_T0)
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = s;
}

/// How many of the beam's best (by int8 score) are re-scored in f32 for a top `k`.
fn rerank_width(k: usize) -> usize {
    (2 * k).max(k + 16)
}

/// Symmetric int8 codes of `v` into `out` (same length); returns the scale, so that
/// `v[i] ≈ out[i] as f32 * scale`.
fn quantize(v: &[f32], out: &mut [i8]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max <= 0.0 || !max.is_finite() {
        out.iter_mut().for_each(|c| *c = 0);
        return 0.0;
    }
    let scale = max / 127.0;
    for (c, x) in out.iter_mut().zip(v) {
        *c = (x / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// Integer dot product of two code vectors; AVX2 code generation when the CPU has it.
#[inline]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports avx2, checked just above.
            return unsafe { dot_i8_avx2(a, b) };
        }
    }
    dot_i8_portable(a, b)
}

/// 16 codes per step: widened to i16, multiplied and pair-summed into i32 (`vpmaddwd`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n <= len of both slices: the 16-byte loads stay in bounds.
        let (va, vb) = unsafe {
            (
                _mm_loadu_si128(a.as_ptr().add(i) as *const __m128i),
                _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i),
            )
        };
        let prod = _mm256_madd_epi16(_mm256_cvtepi8_epi16(va), _mm256_cvtepi8_epi16(vb));
        acc = _mm256_add_epi32(acc, prod);
        i += 16;
    }
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 bytes, the size of one __m256i.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc) };
    lanes.iter().sum::<i32>() + dot_i8_portable(&a[i..n], &b[i..n])
}

#[inline(always)]
fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    // i16 products summed in i32 lanes: |127 * 127| * 2 fits an i16 pair sum in i32,
    // and 16 lanes keep the loop vectorisable
    const LANES: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0i32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    let tail: i32 = ra
        .iter()
        .zip(rb)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    acc.iter().sum::<i32>() + tail
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
    fn int8_codes_track_the_exact_dot_product() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..50 {
            let a = unit(&mut rng, 384);
            let b = unit(&mut rng, 384);
            let (mut ca, mut cb) = (vec![0i8; 384], vec![0i8; 384]);
            let (sa, sb) = (quantize(&a, &mut ca), quantize(&b, &mut cb));
            let approx = dot_i8(&ca, &cb) as f32 * sa * sb;
            assert!(
                (approx - dot(&a, &b)).abs() < 0.01,
                "{approx} vs {}",
                dot(&a, &b)
            );
            assert_eq!(dot_i8(&ca, &cb), dot_i8_portable(&ca, &cb));
        }
        let mut z = vec![1i8; 4];
        assert_eq!(quantize(&[0.0; 4], &mut z), 0.0);
        assert_eq!(z, vec![0; 4]);
        assert_eq!(dot_i8(&[127; 33], &[-127; 33]), -127 * 127 * 33);
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
