//! Read-only arrays on transparent huge pages, for the index snapshot.
//!
//! A search touches a few hundred points scattered over the snapshot's arrays. On
//! 4 KiB pages each of them is a TLB miss, and on a virtual machine a TLB miss is a
//! two-dimensional page walk (the guest's tables, each entry translated through the
//! host's) over memory that is cold after the embedding. A 2 MiB page covers 5,000
//! int8 codes of 384 dimensions. Linux backs a region with huge pages at fault time
//! when it is marked `MADV_HUGEPAGE` (THP mode `madvise`, this machine's setting), so
//! large arrays are copied into a 2 MiB-aligned anonymous mapping marked that way
//! before they are first written. Small arrays, other systems, and any failure of
//! `mmap` keep an ordinary heap allocation: huge pages are only ever an optimisation.

use std::ops::Deref;

/// Huge page size on x86_64 and aarch64 Linux (with 4 KiB base pages).
const HUGE: usize = 2 << 20;

/// Arrays smaller than this stay on the heap (a huge page for them would mostly be
/// waste, and a partition with a few entries has a snapshot too).
const MIN_BYTES: usize = HUGE / 2;

/// An immutable array of `T`, on huge pages when it is large enough.
pub(crate) struct Pages<T: Copy> {
    inner: Inner<T>,
}

enum Inner<T> {
    Heap(Box<[T]>),
    #[cfg(target_os = "linux")]
    Mapped(Mapping<T>),
}

impl<T: Copy> Pages<T> {
    /// A copy of `src`.
    pub(crate) fn from_slice(src: &[T]) -> Self {
        #[cfg(target_os = "linux")]
        if std::mem::size_of_val(src) >= MIN_BYTES {
            if let Some(m) = Mapping::copy_of(src) {
                return Pages {
                    inner: Inner::Mapped(m),
                };
            }
        }
        Pages {
            inner: Inner::Heap(src.into()),
        }
    }

    /// Whether the array lives in a mapping marked for huge pages (for tests).
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        !matches!(self.inner, Inner::Heap(_))
    }
}

impl<T: Copy> From<Vec<T>> for Pages<T> {
    fn from(v: Vec<T>) -> Self {
        Pages::from_slice(&v)
    }
}

impl<T: Copy> Deref for Pages<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.inner {
            Inner::Heap(b) => b,
            #[cfg(target_os = "linux")]
            Inner::Mapped(m) => m.as_slice(),
        }
    }
}

/// An anonymous mapping (memmap2) holding `len` values of `T` from a 2 MiB boundary
/// inside it, `offset` bytes from its start.
#[cfg(target_os = "linux")]
struct Mapping<T> {
    map: memmap2::MmapMut,
    offset: usize,
    len: usize,
    _values: std::marker::PhantomData<T>,
}

#[cfg(target_os = "linux")]
impl<T: Copy> Mapping<T> {
    fn copy_of(src: &[T]) -> Option<Self> {
        let bytes = std::mem::size_of_val(src);
        let rounded = bytes.checked_next_multiple_of(HUGE)?;
        // one extra huge page of address space, so that an aligned start fits inside
        let map_len = rounded.checked_add(HUGE)?;
        let mut map = memmap2::MmapOptions::new().len(map_len).map_anon().ok()?;
        let base = map.as_ptr() as usize;
        let offset = base.next_multiple_of(HUGE) - base;
        // A refusal (THP disabled) only leaves 4 KiB pages: deliberately ignored.
        let _ = map.advise_range(memmap2::Advice::HugePage, offset, rounded);
        let data = map[offset..offset + bytes].as_mut_ptr().cast::<T>();
        // SAFETY: `data` is 2 MiB-aligned (so aligned for `T`), writable, and has room
        // for `bytes`; `src` cannot overlap a mapping created just now.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), data, src.len()) };
        Some(Mapping {
            map,
            offset,
            len: src.len(),
            _values: std::marker::PhantomData,
        })
    }

    fn as_slice(&self) -> &[T] {
        let data = self.map[self.offset..].as_ptr().cast::<T>();
        // SAFETY: `copy_of` wrote `len` values of `T` at this aligned address, and the
        // mapping lives (unchanged) as long as `self`.
        unsafe { std::slice::from_raw_parts(data, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_arrays_are_mapped_and_read_back_exactly() {
        let v: Vec<u32> = (0..(MIN_BYTES / 4 + 1000) as u32).collect();
        let p = Pages::from_slice(&v);
        assert_eq!(&*p, &v[..]);
        #[cfg(target_os = "linux")]
        {
            assert!(p.is_mapped());
            assert_eq!(
                p.as_ptr() as usize % HUGE,
                0,
                "starts on a huge-page boundary"
            );
        }
    }

    #[test]
    fn small_and_empty_arrays_stay_on_the_heap() {
        let p = Pages::from(vec![1.5f32, -2.0, 3.25]);
        assert_eq!(&*p, &[1.5, -2.0, 3.25]);
        assert!(!p.is_mapped());
        let e: Pages<i8> = Pages::from_slice(&[]);
        assert!(e.is_empty());
        assert!(!e.is_mapped());
    }
}
