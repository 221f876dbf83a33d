//! The crate's only raw pointers that cross into pool tasks.
//!
//! A pool job's closure must be `Sync`, and raw pointers are neither `Send`
//! nor `Sync`. The drivers hand their tasks pointers into slices the caller
//! borrows for the whole job (`Pool::run` returns only when every task has
//! finished), so the pointers never outlive their data. The two wrappers
//! below state the two ways tasks use such a pointer; every other struct
//! that carries one across tasks holds one of these, so this file holds every
//! `unsafe impl Send/Sync` of the kernels (the pool's own job slot aside).
//!
//! Both are read through a method (`get`), so that a closure captures the
//! whole wrapper, not its raw field (edition-2021 closures capture fields).

/// A read-only pointer into data that outlives the pool job.
#[derive(Clone, Copy)]
pub(crate) struct SharedConst<T>(*const T);

// Safety: the pointee is only read while the job runs and outlives the job
// (the drivers borrow it for the duration of `Pool::run`); reading shared
// data from several threads is sound when nobody writes it, which the
// borrow (a `&[T]` at the driver) guarantees.
unsafe impl<T: Sync> Send for SharedConst<T> {}
// Safety: as for `Send`: shared, read-only access.
unsafe impl<T: Sync> Sync for SharedConst<T> {}

impl<T> SharedConst<T> {
    pub(crate) fn new(ptr: *const T) -> SharedConst<T> {
        SharedConst(ptr)
    }
    /// `Some`'s slice start, or null.
    pub(crate) fn opt(s: Option<&[T]>) -> SharedConst<T> {
        SharedConst(s.map_or(std::ptr::null(), |s| s.as_ptr()))
    }
    pub(crate) fn get(self) -> *const T {
        self.0
    }
}

/// A pointer into a buffer whose disjoint elements pool tasks write.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(*mut T);

// Safety: the buffer is borrowed mutably by the driver for the whole job, so
// no one else touches it; every user writes (or reads back) only the
// elements its task owns (disjoint ranges per task, stated at each use), so
// no two threads access the same element.
unsafe impl<T: Send> Send for SharedMut<T> {}
// Safety: as for `Send`: tasks share the pointer, never an element.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn new(s: &mut [T]) -> SharedMut<T> {
        SharedMut(s.as_mut_ptr())
    }
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
