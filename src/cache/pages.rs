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

/// An anonymous mapping owning `len` values of `T` from a 2 MiB boundary.
#[cfg(target_os = "linux")]
struct Mapping<T> {
    /// Start of the mapping (as returned by `mmap`) and its length, for `munmap`.
    base: *mut libc::c_void,
    map_len: usize,
    data: *const T,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value and never written after
// construction, so sharing or moving it across threads is like sharing a `Box<[T]>`.
#[cfg(target_os = "linux")]
unsafe impl<T: Send> Send for Mapping<T> {}
#[cfg(target_os = "linux")]
unsafe impl<T: Sync> Sync for Mapping<T> {}

#[cfg(target_os = "linux")]
impl<T: Copy> Mapping<T> {
    fn copy_of(src: &[T]) -> Option<Self> {
        let bytes = std::mem::size_of_val(src);
        let rounded = bytes.checked_next_multiple_of(HUGE)?;
        // one extra huge page of address space, so that an aligned start fits inside
        let map_len = rounded.checked_add(HUGE)?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let offset = (base as usize).next_multiple_of(HUGE) - base as usize;
        // SAFETY: `offset + rounded <= map_len`, so the range is inside the mapping.
        let start = unsafe { base.cast::<u8>().add(offset) };
        // SAFETY: advice on a range of our own mapping; a refusal (THP disabled) only
        // leaves 4 KiB pages, so the result is deliberately ignored.
        unsafe { libc::madvise(start.cast(), rounded, libc::MADV_HUGEPAGE) };
        let data = start.cast::<T>();
        // SAFETY: `start` is 2 MiB-aligned (so aligned for `T`), writable, and has room
        // for `bytes`; `src` cannot overlap a mapping created just now.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), data, src.len()) };
        Some(Mapping {
            base,
            map_len,
            data,
            len: src.len(),
        })
    }

    fn as_slice(&self) -> &[T] {
        // SAFETY: `data` points at `len` initialised values that live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

#[cfg(target_os = "linux")]
impl<T> Drop for Mapping<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `copy_of`; no reference into it
        // outlives `self` (`as_slice` borrows `self`).
        unsafe { libc::munmap(self.base, self.map_len) };
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
