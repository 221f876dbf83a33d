//! The machine's ceilings, measured with the instructions a kernel set uses:
//! peak f32 FMA rate, peak int8 dot rate per int8 instruction, and read
//! bandwidth for a working set of a given size (the caller sizes it from the
//! cache hierarchy; this crate reads no system files). A roofline compares
//! the kernels against these.
//!
//! Each kernel set's [`Probes`] sit in its dispatch table beside its kernels;
//! the inner loops live next to that set's kernels (`x86/probe.rs`,
//! `aarch64/probe.rs`), the scalar fallback here. The loops are honest: every
//! accumulator chain is independent (enough of them to hide the instruction's
//! latency), each result is kept alive with `black_box`, and operands that
//! the compiler could hoist are read through a pointer it cannot see through.
//! Rates are medians of several repetitions.
//!
//! Extension point: a new instruction (e.g. AMX `tdpbssd` tiles for an AMX
//! kernel set) is one more [`ComputeProbe`] in that set's `int8` list, with
//! `ops_per_iter` counting its multiply-adds as 2 operations each.
use crate::Pool;
use std::hint::black_box;
use std::time::Instant;

/// What a compute probe measures, i.e. which roof it sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Roof {
    /// f32 fused (or separate) multiply-adds: the f16 / f32 GEMM, weight-only
    /// packed layers and attention.
    F32,
    /// int8 dot products: int8 × int8 and low-bit × int8 layers.
    Int8,
}

/// One timed inner loop: `run(iters)` performs `iters · ops_per_iter`
/// operations (a multiply-add counts 2) and returns a value derived from all
/// of them.
#[derive(Clone, Copy)]
pub struct ComputeProbe {
    /// The instruction, as a reader of the table knows it (`vfmadd231ps zmm`).
    pub name: &'static str,
    pub roof: Roof,
    pub ops_per_iter: u64,
    /// Safe: handed out only through a table this CPU supports.
    pub(crate) run: fn(u64) -> u64,
}

impl std::fmt::Debug for ComputeProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeProbe")
            .field("name", &self.name)
            .field("roof", &self.roof)
            .finish()
    }
}

/// A kernel set's probes.
pub(crate) struct Probes {
    pub fma: ComputeProbe,
    /// The int8 instructions the set's int8 × int8 and low-bit × int8 kernels use.
    pub int8: &'static [ComputeProbe],
    /// Reads `bytes` (a multiple of [`READ_ALIGN`]) `passes` times; returns the
    /// wrapping sum of its little-endian 32-bit words over all passes (so
    /// every set's loop can be checked against the scalar one).
    pub read: fn(&[u8], usize) -> u64,
}

/// Working sets are rounded down to this (every read loop's step).
pub const READ_ALIGN: usize = 512;

/// Times `job` `reps` times (after one untimed warm-up) and returns the median seconds.
fn median_seconds(reps: usize, mut job: impl FnMut()) -> f64 {
    job();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            job();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    let m = t.len() / 2;
    if t.len() % 2 == 1 {
        t[m]
    } else {
        (t[m - 1] + t[m]) / 2.0
    }
}

impl ComputeProbe {
    /// Operations per second with every thread of `pool` running `iters`
    /// iterations (median of `reps` jobs). A one-thread pool runs on the caller.
    pub fn rate(&self, pool: &Pool, iters: u64, reps: usize) -> f64 {
        let threads = pool.threads();
        let run = self.run;
        let s = median_seconds(reps, || {
            if threads == 1 {
                black_box(run(black_box(iters)));
            } else {
                pool.run(threads, &|_| {
                    black_box(run(black_box(iters)));
                });
            }
        });
        (threads as u64 * iters * self.ops_per_iter) as f64 / s
    }
}

/// Read bandwidth in bytes per second: each thread of `pool` reads its own
/// `bytes_per_thread` (rounded down to [`READ_ALIGN`], at least one step)
/// enough times to read `min_bytes` per repetition; median of `reps`.
pub(crate) fn read_rate(
    probes: &Probes,
    pool: &Pool,
    bytes_per_thread: usize,
    min_bytes: usize,
    reps: usize,
) -> f64 {
    let threads = pool.threads();
    let per = (bytes_per_thread / READ_ALIGN).max(1) * READ_ALIGN;
    // Distinct non-zero bytes, so no page stays the shared zero page.
    let buf: Vec<u8> = (0..per * threads).map(|i| (i % 251) as u8 + 1).collect();
    let passes = min_bytes.div_ceil(per * threads).max(1);
    let read = probes.read;
    let s = median_seconds(reps, || {
        if threads == 1 {
            black_box(read(black_box(&buf[..]), passes));
        } else {
            pool.run(threads, &|t| {
                black_box(read(black_box(&buf[t * per..(t + 1) * per]), passes));
            });
        }
    });
    (per * threads * passes) as f64 / s
}

// ---- The scalar fallback (and the reference shape of every probe). ----

/// Independent chains in the scalar loops.
const SCALAR_CHAINS: usize = 8;

/// `a · b + c` as two operations (the scalar reference multiplies, then adds).
fn scalar_fma(iters: u64) -> u64 {
    let mut acc = [0f32; SCALAR_CHAINS];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = i as f32 * 0.001;
    }
    let (m, c) = (black_box(0.999_f32), black_box(1e-4_f32));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = *a * m + c;
        }
    }
    acc.iter().map(|a| a.to_bits() as u64).sum()
}

/// Products of signed bytes summed into i32, as the scalar int8 dot does.
fn scalar_int8(iters: u64) -> u64 {
    let x: [i8; 64] = std::array::from_fn(|i| (i as i8).wrapping_mul(37));
    let w: [i8; 64] = std::array::from_fn(|i| (i as i8).wrapping_mul(11) ^ 0x55);
    let mut acc = [0i32; SCALAR_CHAINS];
    for _ in 0..iters {
        // Opaque each time round: the sums cannot be computed once and scaled.
        let (x, w) = (black_box(&x), black_box(&w));
        for j in (0..64).step_by(SCALAR_CHAINS) {
            for (c, a) in acc.iter_mut().enumerate() {
                *a = a.wrapping_add(x[j + c] as i32 * w[j + c] as i32);
            }
        }
    }
    acc.iter().map(|&a| a as u32 as u64).sum()
}

fn scalar_read(buf: &[u8], passes: usize) -> u64 {
    let mut acc = [0u32; SCALAR_CHAINS];
    for _ in 0..passes {
        let buf = black_box(buf);
        for chunk in buf.chunks_exact(4 * SCALAR_CHAINS) {
            for (c, a) in acc.iter_mut().enumerate() {
                let word = u32::from_le_bytes(chunk[4 * c..4 * c + 4].try_into().unwrap());
                *a = a.wrapping_add(word);
            }
        }
    }
    acc.iter().fold(0u32, |s, &a| s.wrapping_add(a)) as u64
}

pub(crate) static SCALAR: Probes = Probes {
    fma: ComputeProbe {
        name: "scalar f32 mul+add",
        roof: Roof::F32,
        ops_per_iter: 2 * SCALAR_CHAINS as u64,
        run: scalar_fma,
    },
    int8: &[ComputeProbe {
        name: "scalar i8·i8→i32",
        roof: Roof::Int8,
        ops_per_iter: 2 * 64,
        run: scalar_int8,
    }],
    read: scalar_read,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Isa, Kernels};

    #[test]
    fn every_read_loop_sums_what_the_scalar_one_sums() {
        let buf: Vec<u8> = (0..3 * READ_ALIGN).map(|i| (i * 7 % 253) as u8).collect();
        let want = scalar_read(&buf, 3);
        assert_eq!(want, (scalar_read(&buf, 1) * 3) & 0xffff_ffff);
        for k in Kernels::available() {
            assert_eq!((k.probes().read)(&buf, 3), want, "{}", k.name());
        }
    }

    #[test]
    fn every_probe_measures_a_positive_rate() {
        let pool = Pool::new(1);
        for k in Kernels::available() {
            let p = k.probes();
            assert!(p.fma.rate(&pool, 100, 1) > 0.0, "{}", k.name());
            assert_eq!(p.fma.roof, Roof::F32);
            assert!(!p.int8.is_empty(), "{}: no int8 probe", k.name());
            for i in p.int8 {
                assert_eq!(i.roof, Roof::Int8, "{}", i.name);
                assert!(i.rate(&pool, 100, 1) > 0.0, "{}", i.name);
            }
            assert!(read_rate(p, &pool, 4096, 1 << 16, 1) > 0.0);
        }
        assert!(Kernels::for_isa(Isa::Scalar).is_some());
    }

    #[test]
    fn the_scalar_int8_probe_depends_on_its_iterations() {
        assert_ne!(scalar_int8(2), scalar_int8(3));
    }
}
