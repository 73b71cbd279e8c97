//! The distance the index searches by, and the dot product under it (shared by the
//! HNSW graphs and the snapshot scans, so neither imports the other for it).

use hnsw_rs::prelude::{Distance, Hnsw};

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

/// One partition's HNSW graph.
pub(crate) type Graph = Hnsw<'static, f32, ClampedCosine>;
