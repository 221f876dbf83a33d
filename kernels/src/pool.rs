//! A persistent thread pool: `-t N` means exactly N threads do the work — the
//! thread that calls [`Pool::run`] plus `N − 1` workers started once.
//!
//! One `run` is one *job*. The caller publishes the job (a borrowed closure and
//! a task count), bumps an epoch counter and works on the tasks itself; tasks
//! are handed out by an atomic counter. Every worker joins every job, even when
//! no task is left for it, and the caller returns only once each worker has
//! left the job — so the borrowed closure cannot be used after `run` returns,
//! and a worker can never see a stale job.
//!
//! Latency: the decoder issues ~50 jobs per token, so waking sleeping threads
//! through the kernel on every job (tens of µs) would dominate. Workers spin
//! for a short while after each job before they block on a condition
//! variable; the caller also spins before blocking while it waits for them.
//!
//! Re-entrancy: a `run` from inside a task (of any pool) executes its tasks
//! inline on the calling thread; concurrent `run`s from different threads are
//! serialised by a mutex. Neither can deadlock.

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker (and a waiting caller) spins before blocking.
const SPIN: Duration = Duration::from_micros(200);

type Task<'a> = &'a (dyn Fn(usize) + Sync);

thread_local! {
    /// True while this thread executes tasks of some pool (workers: always).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

struct Shared {
    /// Bumped once per job (under `sleep`'s lock) to publish it.
    epoch: AtomicUsize,
    shutdown: AtomicBool,
    /// The current job's closure, lifetime erased. Written only by the thread
    /// holding `run_lock`, and only while every worker is outside a job.
    job: UnsafeCell<Option<Task<'static>>>,
    n_tasks: AtomicUsize,
    next: AtomicUsize,
    /// Workers that have not yet left the current job.
    pending: AtomicUsize,
    panicked: AtomicBool,
    /// Number of workers blocked on `wake`.
    sleep: Mutex<usize>,
    wake: Condvar,
    /// Whether the caller is blocked on `done_cv`.
    done: Mutex<bool>,
    done_cv: Condvar,
}

// Safety: `job` is the only non-Sync field; the epoch protocol above makes its
// writes (caller, no worker inside a job) and reads (workers, after seeing the
// new epoch with Acquire) never overlap. The closure itself is `Sync`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

pub struct Pool {
    threads: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises whole `run` calls from different threads.
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
            epoch: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            n_tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
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
    /// A panic in a task is re-raised here once every thread has left the job.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        if self.workers.is_empty() || n_tasks == 1 || IN_TASK.with(|t| t.get()) {
            return run_inline(n_tasks, f);
        }
        let _serial = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // Safety: we hold `run_lock` and the previous job finished with every
        // worker out of it (`pending` reached 0), so no worker reads `job`
        // until the epoch bump below; the lifetime is erased only until this
        // function returns, which is after every worker has left the job.
        unsafe {
            *s.job.get() = Some(std::mem::transmute::<Task<'_>, Task<'static>>(f));
        }
        s.n_tasks.store(n_tasks, Ordering::Relaxed);
        s.next.store(0, Ordering::Relaxed);
        s.panicked.store(false, Ordering::Relaxed);
        s.pending.store(self.workers.len(), Ordering::Relaxed);
        {
            let sleepers = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
            s.epoch.fetch_add(1, Ordering::Release);
            if *sleepers > 0 {
                s.wake.notify_all();
            }
        }

        let mine = catch_unwind(AssertUnwindSafe(|| with_in_task(|| drain(s, f))));
        if mine.is_err() {
            // Stop handing out tasks; the workers still have to leave.
            s.next.store(n_tasks, Ordering::Relaxed);
        }
        wait_workers(s);
        // Safety: every worker has left the job.
        unsafe { *s.job.get() = None };
        if let Err(payload) = mine {
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
            s.epoch.fetch_add(1, Ordering::Release);
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

/// Takes tasks from the shared counter until none is left.
fn drain(s: &Shared, f: Task<'_>) {
    let n = s.n_tasks.load(Ordering::Relaxed);
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return;
        }
        f(i);
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

/// Caller side: waits until every worker has left the current job.
fn wait_workers(s: &Shared) {
    let start = Instant::now();
    let mut spins = 0u32;
    while s.pending.load(Ordering::Acquire) != 0 {
        spins += 1;
        backoff(spins);
        if spins % 64 == 0 && start.elapsed() > SPIN {
            let mut waiting = s.done.lock().unwrap_or_else(|e| e.into_inner());
            *waiting = true;
            while s.pending.load(Ordering::Acquire) != 0 {
                waiting = s.done_cv.wait(waiting).unwrap_or_else(|e| e.into_inner());
            }
            *waiting = false;
            return;
        }
    }
}

fn worker(s: &Shared) {
    IN_TASK.with(|t| t.set(true));
    let mut seen = 0usize;
    loop {
        seen = wait_epoch(s, seen);
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        // Safety: the epoch was published (Release) after `job` was written, and
        // the caller does not touch `job` again until `pending` reaches 0.
        let job = unsafe { *s.job.get() };
        if let Some(f) = job {
            if catch_unwind(AssertUnwindSafe(|| drain(s, f))).is_err() {
                s.panicked.store(true, Ordering::Relaxed);
                s.next.store(usize::MAX / 2, Ordering::Relaxed);
            }
        }
        if s.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Last one out: wake the caller if it stopped spinning. Taking the
            // lock orders this after the caller's check-then-wait.
            let waiting = s.done.lock().unwrap_or_else(|e| e.into_inner());
            if *waiting {
                s.done_cv.notify_one();
            }
        }
    }
}

/// Worker side: returns the next epoch after `seen`, spinning first, then blocking.
fn wait_epoch(s: &Shared, seen: usize) -> usize {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let e = s.epoch.load(Ordering::Acquire);
        if e != seen {
            return e;
        }
        spins += 1;
        backoff(spins);
        if spins % 64 == 0 && start.elapsed() > SPIN {
            break;
        }
    }
    let mut sleepers = s.sleep.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let e = s.epoch.load(Ordering::Acquire);
        if e != seen {
            return e;
        }
        *sleepers += 1;
        sleepers = s.wake.wait(sleepers).unwrap_or_else(|e| e.into_inner());
        *sleepers -= 1;
    }
}
