//! Per-thread scratch memory, reused across calls so the hot paths neither
//! allocate nor fault in fresh pages. Pool threads are persistent, so each
//! keeps its buffer for the life of the pool.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Floats per 64-byte cache line.
pub(crate) const LINE: usize = 16;

/// Rounds `n` floats up to whole cache lines, for carving one buffer into parts.
pub(crate) fn lines(n: usize) -> usize {
    n.div_ceil(LINE) * LINE
}

/// Calls `f` with a 64-byte-aligned buffer of at least `len` floats (contents
/// unspecified). Re-entrant: a nested call gets a fresh buffer.
pub(crate) fn with<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if buf.len() < len + LINE {
        buf = vec![0.0; len + LINE];
    }
    let skip = buf.as_ptr().align_offset(64).min(LINE);
    let result = f(&mut buf[skip..skip + len]);
    SCRATCH.with(|s| {
        let mut slot = s.borrow_mut();
        if slot.len() < buf.len() {
            *slot = buf;
        }
    });
    result
}

/// Frees the calling thread's buffer (the next `with` allocates afresh).
pub(crate) fn release() {
    SCRATCH.with(|s| *s.borrow_mut() = Vec::new());
}
