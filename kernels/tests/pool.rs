//! The thread pool: exact thread count, nesting, concurrency, panics.

use sotto_kernels::Pool;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};

fn is_send_sync<T: Send + Sync>() {}

#[test]
fn pool_is_send_sync() {
    is_send_sync::<Pool>();
}

#[test]
fn exactly_n_threads_work() {
    for n in [1, 2, 3, 4, 7] {
        let pool = Pool::new(n);
        assert_eq!(pool.threads(), n);
        // n tasks that all wait for each other can only finish if n distinct
        // threads run them at once.
        let barrier = Barrier::new(n);
        let ids = Mutex::new(HashSet::new());
        pool.run(n, &|_| {
            ids.lock().unwrap().insert(std::thread::current().id());
            barrier.wait();
        });
        assert_eq!(ids.lock().unwrap().len(), n);
    }
    assert_eq!(Pool::new(0).threads(), 1);
}

#[test]
fn every_task_runs_once() {
    let pool = Pool::new(4);
    for n_tasks in [0, 1, 2, 3, 5, 100, 1000] {
        let hits: Vec<AtomicUsize> = (0..n_tasks).map(|_| AtomicUsize::new(0)).collect();
        pool.run(n_tasks, &|i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }
    // Many quick jobs in a row: the epoch protocol must not lose or repeat any.
    let total = AtomicUsize::new(0);
    for _ in 0..20_000 {
        pool.run(3, &|i| {
            total.fetch_add(i + 1, Ordering::Relaxed);
        });
    }
    assert_eq!(total.load(Ordering::Relaxed), 20_000 * 6);
}

#[test]
fn nested_run_executes_inline() {
    let pool = Pool::new(3);
    let total = AtomicUsize::new(0);
    pool.run(6, &|_| {
        pool.run(5, &|j| {
            total.fetch_add(j, Ordering::Relaxed);
        });
    });
    assert_eq!(total.load(Ordering::Relaxed), 6 * 10);
}

#[test]
fn concurrent_runs_from_two_threads() {
    let pool = Pool::new(3);
    let total = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..2000 {
                    pool.run(4, &|i| {
                        total.fetch_add(i, Ordering::Relaxed);
                    });
                }
            });
        }
    });
    assert_eq!(total.load(Ordering::Relaxed), 2 * 2000 * 6);
}

#[test]
fn a_task_panic_reaches_the_caller_and_the_pool_survives() {
    let pool = Pool::new(3);
    for bad in [0, 7] {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(16, &|i| {
                if i == bad {
                    panic!("task {i} fails");
                }
            })
        }));
        assert!(r.is_err());
    }
    let count = AtomicUsize::new(0);
    pool.run(10, &|_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(count.load(Ordering::Relaxed), 10);
}

#[test]
fn idle_workers_wake_up_after_sleeping() {
    let pool = Pool::new(2);
    let count = AtomicUsize::new(0);
    pool.run(4, &|_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    let barrier = Barrier::new(2);
    pool.run(2, &|_| {
        barrier.wait();
        count.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(count.load(Ordering::Relaxed), 6);
}
