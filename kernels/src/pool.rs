//! A persistent thread pool: `-t N` means exactly N threads do the work — the
//! thread that calls [`Pool::run`] plus `N − 1` workers started once.
//!
//! One `run` is one *job*. The caller publishes the job (a borrowed closure and
//! a task count) by moving a shared `state` word to a new epoch, then works on
//! the tasks itself; tasks are handed out by an atomic counter.
//!
//! `state` packs `epoch << 32 | closed << 31 | active`. A worker joins a job
//! only by incrementing `active` with a compare-and-swap that also checks the
//! epoch and that the job is still open; it reads the closure only after
//! joining. The caller waits until every task has completed, then closes the
//! job with a CAS that succeeds only while `active` is 0. So the borrowed
//! closure is never touched after `run` returns, and a worker that was
//! descheduled while the job ran (common when the machine is busy) does not
//! hold the caller up: it finds the job closed and goes back to waiting.
//!
//! Latency: the decoder issues ~50 jobs per token, so waking sleeping threads
//! through the kernel on every job (tens of µs) would dominate. Workers spin
//! for a short while after each job (pausing, then yielding the core so an
//! oversubscribed pool still progresses) before they block on a condition
//! variable.
//!
//! Re-entrancy: a `run` from inside a task (of any pool) executes its tasks
//! inline on the calling thread; so does a `run` from another thread while
//! the pool is busy with a job (callers sharing a pool never wait for each
//! other, and at most callers + N − 1 threads are runnable). Neither can
//! deadlock.

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before blocking.
const SPIN: Duration = Duration::from_micros(200);

const CLOSED: u64 = 1 << 31;
const ACTIVE: u64 = CLOSED - 1;

fn epoch_of(state: u64) -> u64 {
    state >> 32
}

/// The state word that opens (or, with `CLOSED`, just announces) the epoch
/// after the one in `state`, wrapping after 2³² jobs.
fn next_epoch(state: u64) -> u64 {
    ((epoch_of(state) + 1) & 0xffff_ffff) << 32
}

type Task<'a> = &'a (dyn Fn(usize) + Sync);

thread_local! {
    /// True while this thread executes tasks of some pool (workers: always).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

struct Shared {
    /// `epoch << 32 | closed << 31 | active workers`; see the module docs.
    state: AtomicU64,
    shutdown: AtomicBool,
    /// The current job's closure, lifetime erased. Written only by the thread
    /// holding `run_lock`, and only while the previous job is closed.
    job: UnsafeCell<Option<Task<'static>>>,
    n_tasks: AtomicUsize,
    next: AtomicUsize,
    completed: AtomicUsize,
    panicked: AtomicBool,
    /// Number of workers blocked on `wake`.
    sleep: Mutex<usize>,
    wake: Condvar,
    /// Whether the caller is blocked on `done_cv`.
    done: Mutex<bool>,
    done_cv: Condvar,
}

// Safety: `job` is the only non-Sync field. It is written by the caller while
// the job is closed (no worker can join) and read by workers only after they
// joined the open job, which the caller cannot close until they leave.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

pub struct Pool {
    threads: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Held by the `run` whose job the workers serve; others run inline.
    run_lock: Mutex<()>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Pool {
    /// A pool of exactly `threads` threads (at least 1): the caller of `run`
    /// plus `threads − 1` workers started now.
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: AtomicU64::new(CLOSED),
            shutdown: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            n_tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleep: Mutex::new(0),
            wake: Condvar::new(),
            done: Mutex::new(false),
            done_cv: Condvar::new(),
        });
        let workers = (1..threads)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("sotto-pool-{i}"))
                    .spawn(move || worker(&shared))
                    .expect("spawning a pool thread")
            })
            .collect();
        Pool {
            threads,
            shared,
            workers,
            run_lock: Mutex::new(()),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(i)` for every `i in 0..n_tasks` across the pool; returns when all are done.
    /// A panic in a task is re-raised here once the job is over.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        if self.workers.is_empty() || n_tasks == 1 || IN_TASK.with(|t| t.get()) {
            return run_inline(n_tasks, f);
        }
        // A caller that finds the pool busy with another caller's job runs its
        // own tasks on its own thread rather than queueing: waking a queued
        // caller costs tens of µs per job (~50 jobs per decoded token), which
        // made 4 callers sharing a 2-thread pool ~15 % slower than 4 private
        // pools. The tasks' results do not depend on which thread runs them.
        let _serial = match self.run_lock.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return run_inline(n_tasks, f),
        };
        let s = &*self.shared;
        // Safety: we hold `run_lock` and the previous job is closed, so no
        // worker reads `job` until the state store below opens this one; the
        // lifetime is erased only until this function returns, after the job
        // is closed again with no worker in it.
        unsafe {
            *s.job.get() = Some(std::mem::transmute::<Task<'_>, Task<'static>>(f));
        }
        s.n_tasks.store(n_tasks, Ordering::Relaxed);
        s.next.store(0, Ordering::Relaxed);
        s.completed.store(0, Ordering::Relaxed);
        s.panicked.store(false, Ordering::Relaxed);
        {
            let sleepers = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
            s.state.store(
                next_epoch(s.state.load(Ordering::Relaxed)),
                Ordering::Release,
            );
            if *sleepers > 0 {
                s.wake.notify_all();
            }
        }

        let mine = with_in_task(|| drain(s, f));
        wait_and_close(s, n_tasks);
        // Safety: the job is closed with no worker in it.
        unsafe { *s.job.get() = None };
        if let Some(payload) = mine {
            resume_unwind(payload);
        }
        if s.panicked.load(Ordering::Relaxed) {
            panic!("a sotto pool task panicked");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        {
            let _sleepers = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
            s.shutdown.store(true, Ordering::Release);
            s.state.store(
                next_epoch(s.state.load(Ordering::Relaxed)) | CLOSED,
                Ordering::Release,
            );
            s.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn run_inline(n_tasks: usize, f: Task<'_>) {
    with_in_task(|| (0..n_tasks).for_each(f))
}

/// Runs `body` with `IN_TASK` set, restoring the previous value even on unwind.
fn with_in_task<R>(body: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_TASK.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(IN_TASK.with(|t| t.replace(true)));
    body()
}

/// Takes tasks from the shared counter until none is left, counting each as
/// completed even if it panics (so the job still ends). Returns the first
/// panic's payload.
fn drain(s: &Shared, f: Task<'_>) -> Option<Box<dyn std::any::Any + Send>> {
    let n = s.n_tasks.load(Ordering::Relaxed);
    let mut first_panic = None;
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return first_panic;
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(i))) {
            s.panicked.store(true, Ordering::Relaxed);
            first_panic.get_or_insert(payload);
        }
        if s.completed.fetch_add(1, Ordering::Release) + 1 == n {
            notify_caller(s);
        }
    }
}

fn notify_caller(s: &Shared) {
    // Taking the lock orders this after the caller's check-then-wait.
    let waiting = s.done.lock().unwrap_or_else(|e| e.into_inner());
    if *waiting {
        s.done_cv.notify_one();
    }
}

/// One step of a spin-wait: a CPU pause at first, then yielding the core, so
/// that a pool with more threads than free cores still makes progress (a
/// descheduled worker gets to run instead of the spinners burning its slot).
fn backoff(spins: u32) {
    if spins < 256 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Caller side: waits for every task to complete, then closes the job once
/// no worker is inside it.
fn wait_and_close(s: &Shared, n_tasks: usize) {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let state = s.state.load(Ordering::Acquire);
        if s.completed.load(Ordering::Acquire) == n_tasks
            && state & ACTIVE == 0
            && s.state
                .compare_exchange(state, state | CLOSED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        spins += 1;
        backoff(spins);
        if spins.is_multiple_of(64) && start.elapsed() > SPIN {
            // Block, re-checking on every notification (a task completing,
            // a worker leaving) and at least every millisecond.
            let mut waiting = s.done.lock().unwrap_or_else(|e| e.into_inner());
            *waiting = true;
            let ready = || {
                s.completed.load(Ordering::Acquire) == n_tasks
                    && s.state.load(Ordering::Acquire) & ACTIVE == 0
            };
            if !ready() {
                waiting = s
                    .done_cv
                    .wait_timeout(waiting, Duration::from_millis(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *waiting = false;
        }
    }
}

fn worker(s: &Shared) {
    IN_TASK.with(|t| t.set(true));
    let mut seen = 0u64;
    loop {
        seen = wait_epoch(s, seen);
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        if !join(s, seen) {
            continue; // closed before we got here
        }
        // Safety: we joined the open job, published (Release) after `job`
        // was written; the caller cannot close it until we leave.
        if let Some(f) = unsafe { *s.job.get() } {
            drain(s, f);
        }
        if s.state.fetch_sub(1, Ordering::Release) & ACTIVE == 1 {
            notify_caller(s);
        }
    }
}

/// Enters the job of `epoch` if it is still open.
fn join(s: &Shared, epoch: u64) -> bool {
    let mut state = s.state.load(Ordering::Acquire);
    loop {
        if epoch_of(state) != epoch || state & CLOSED != 0 {
            return false;
        }
        match s
            .state
            .compare_exchange_weak(state, state + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return true,
            Err(now) => state = now,
        }
    }
}

/// Worker side: returns the next epoch after `seen`, spinning first, then blocking.
fn wait_epoch(s: &Shared, seen: u64) -> u64 {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let e = epoch_of(s.state.load(Ordering::Acquire));
        if e != seen {
            return e;
        }
        spins += 1;
        backoff(spins);
        if spins.is_multiple_of(64) && start.elapsed() > SPIN {
            break;
        }
    }
    let mut sleepers = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let e = epoch_of(s.state.load(Ordering::Acquire));
        if e != seen {
            return e;
        }
        *sleepers += 1;
        sleepers = s.wake.wait(sleepers).unwrap_or_else(|e| e.into_inner());
        *sleepers -= 1;
    }
}
