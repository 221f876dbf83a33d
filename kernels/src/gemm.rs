//! The `linear` driver shared by every SIMD instruction set:
//! `out[m × n] = x[m × k] · wᵀ + bias`, `w` row-major `[n × k]`.
//!
//! Two paths:
//!
//! * **Packed** (m ≥ [`DOT_MAX_M`]), the BLIS loop nest (Van Zee & van de
//!   Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality",
//!   2015) without packing A:
//!   1. the weight rows (= output columns) are split into contiguous ranges,
//!      one pool task each, so every thread reads a disjoint part of `w`;
//!   2. a task walks its range in *chunks* of `nb` rows sized so the packed
//!      chunk (`nb × k` f32, ~[`CHUNK_BYTES`]) stays in L2;
//!   3. the chunk is converted (f16 → f32) and transposed into panels of `NR`
//!      rows (`pack_b`), `[k][NR]` each — the weights are read from memory
//!      once per call;
//!   4. for every `MR` rows of x (which stay in L1/L2 while they are reused by
//!      every panel of the chunk) and every panel, the micro-kernel keeps an
//!      `MR × NR` tile of the output in registers across the whole of k and
//!      writes it once. x is read in place: its row stride is a kernel
//!      argument, so A needs no packing.
//!
//! * **Dot** (m < [`DOT_MAX_M`]: decoding, incl. the m = 1 GEMV): no packing;
//!   tiles of up to 4 x-rows × 4 weight rows accumulate along k in the
//!   canonical 16 lanes (see `scalar.rs`), converting f16 weights in registers. Each weight row is streamed from memory once,
//!   which is what bounds the vocabulary projection (m = 1, n = 51864).

use crate::scalar::SharedOut;
use crate::simd::{Init, Simd};
use crate::{scratch, Pool, Weights};

/// Below this many rows of x the dot path wins: packing a weight panel only
/// pays off when it is reused by enough rows. Measured (f16, k=512, n=2048,
/// one thread): the dot path is ahead up to m = 12 and level at 16 on both
/// AVX2 and AVX-512; the packed path is ~40% ahead at m = 32.
pub(crate) const DOT_MAX_M: usize = 16;

/// Target size of one packed weight chunk (in L2 together with a few x rows).
const CHUNK_BYTES: usize = 384 * 1024;

/// Raw view of the weights: base pointer, element size, f16 flag.
#[derive(Clone, Copy)]
struct RawWeights {
    ptr: *const u8,
    elem: usize,
    f16: bool,
}
// Safety: read-only view of a borrowed slice that outlives every task.
unsafe impl Send for RawWeights {}
unsafe impl Sync for RawWeights {}

impl RawWeights {
    fn new(w: Weights) -> RawWeights {
        match w {
            Weights::F32(w) => RawWeights {
                ptr: w.as_ptr().cast(),
                elem: 4,
                f16: false,
            },
            Weights::F16(w) => RawWeights {
                ptr: w.as_ptr().cast(),
                elem: 2,
                f16: true,
            },
            // `Kernels::linear` routes packed weights to the table's `linear_packed`.
            Weights::Packed(_) => unreachable!("packed weights reach gemm::linear"),
        }
    }
    /// Pointer to row `j` of a `[n × k]` matrix.
    fn row(self, j: usize, k: usize) -> *const u8 {
        // Safety (of later use): callers pass j < n.
        self.ptr.wrapping_add(j * k * self.elem)
    }
}

/// Splits `0..units` into `parts` contiguous ranges differing by at most one.
pub(crate) fn split(units: usize, parts: usize, i: usize) -> (usize, usize) {
    let (q, r) = (units / parts, units % parts);
    let start = i * q + i.min(r);
    (start, start + q + usize::from(i < r))
}

/// Runs a GEMM's tasks on the pool: the `panels` weight panels are split over
/// up to 2 × threads tasks, and the `m` x rows too (in micro-tiles of `mr`)
/// when there are fewer panels than threads (narrow outputs) and enough rows.
/// `task(p0, p1, i0, i1)` computes panels `p0..p1` for x rows `i0..i1`.
pub(crate) fn run_tiled(
    pool: &Pool,
    panels: usize,
    m: usize,
    mr: usize,
    task: &(dyn Fn(usize, usize, usize, usize) + Sync),
) {
    let threads = pool.threads();
    let n_parts = panels.min(threads * 2);
    let m_parts = if n_parts >= threads {
        1
    } else {
        (threads / n_parts).min(m.div_ceil(4 * mr)).max(1)
    };
    pool.run(n_parts * m_parts, &|t| {
        let (p0, p1) = split(panels, n_parts, t / m_parts);
        let (i0, i1) = split(m.div_ceil(mr), m_parts, t % m_parts);
        task(p0, p1, i0 * mr, (i1 * mr).min(m))
    });
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn linear<I: Simd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: Weights,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    if m < DOT_MAX_M {
        linear_dot::<I>(pool, x, m, k, RawWeights::new(w), n, bias, out)
    } else {
        linear_packed::<I>(pool, x, m, k, RawWeights::new(w), n, bias, out)
    }
}

#[allow(clippy::too_many_arguments)]
fn linear_dot<I: Simd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: RawWeights,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    // Groups of 4 weight rows; a few tasks per thread for balance, but each a
    // long contiguous stretch of rows for the hardware prefetcher.
    let groups = n.div_ceil(4);
    let tasks = groups
        .min(pool.threads() * 4)
        .min(groups.div_ceil(8))
        .max(1);
    let out = SharedOut(out.as_mut_ptr());
    let bias = bias.map_or(std::ptr::null(), |b| b.as_ptr());
    let bias = SharedOut(bias as *mut f32);
    pool.run(tasks, &|t| {
        let (g0, g1) = split(groups, tasks, t);
        for g in g0..g1 {
            let j = g * 4;
            let cols = (n - j).min(4);
            let rows: [*const u8; 4] =
                std::array::from_fn(|c| w.row(j + if c < cols { c } else { 0 }, k));
            let b = if bias.ptr().is_null() {
                bias.ptr()
            } else {
                bias.ptr().wrapping_add(j)
            };
            for r0 in (0..m).step_by(4) {
                // Safety: rows r0..r0+4 ∩ 0..m of x, weight rows j..j+cols of w
                // and output columns j..j+cols (owned by this task) are in bounds.
                unsafe {
                    I::dot_tile(
                        (m - r0).min(4),
                        cols,
                        k,
                        x.as_ptr().add(r0 * k),
                        k,
                        rows,
                        w.f16,
                        b,
                        out.ptr().add(r0 * n + j),
                        n,
                    )
                }
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
fn linear_packed<I: Simd>(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: RawWeights,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (mr, nr) = (I::MR, I::NR);
    let panels = n.div_ceil(nr);
    // Panels per chunk: the packed chunk stays around CHUNK_BYTES.
    let chunk_panels = (CHUNK_BYTES / (k * nr * 4)).clamp(1, panels);
    let out = SharedOut(out.as_mut_ptr());
    run_tiled(pool, panels, m, mr, &|p0, p1, i0, i1| {
        scratch::with(chunk_panels * nr * k, |packed| {
            for c0 in (p0..p1).step_by(chunk_panels) {
                let c1 = (c0 + chunk_panels).min(p1);
                for p in c0..c1 {
                    let j = p * nr;
                    // Safety: rows j..j+rows of w exist; the panel buffer
                    // holds k·NR floats.
                    unsafe {
                        I::pack_b(
                            w.row(j, k),
                            w.f16,
                            k,
                            (n - j).min(nr),
                            k,
                            packed.as_mut_ptr().add((p - c0) * nr * k),
                        )
                    }
                }
                for i in (i0..i1).step_by(mr) {
                    let rows = (i1 - i).min(mr);
                    for p in c0..c1 {
                        let j = p * nr;
                        let cols = (n - j).min(nr);
                        let mut b = [0.0f32; 32];
                        let init = match bias {
                            Some(bias) => {
                                b[..cols].copy_from_slice(&bias[j..j + cols]);
                                Init::Bias(b.as_ptr())
                            }
                            None => Init::Zero,
                        };
                        // Safety: x rows i..i+rows, the packed panel (k·NR
                        // floats) and output rows i..i+rows × columns
                        // j..j+cols (owned by this task) are in bounds.
                        unsafe {
                            I::kernel(
                                rows,
                                cols,
                                k,
                                x.as_ptr().add(i * k),
                                k,
                                1,
                                packed.as_ptr().add((p - c0) * nr * k),
                                nr,
                                out.ptr().add(i * n + j),
                                n,
                                init,
                            )
                        }
                    }
                }
            }
        })
    });
}
