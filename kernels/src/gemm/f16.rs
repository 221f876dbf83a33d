//! `linear` for f32 and f16 weights, shared by every SIMD instruction set:
//! `out[m × n] = x[m × k] · wᵀ + bias`, `w` row-major `[n × k]`.
//!
//! Two paths, on either side of [`CHAIN_MIN_M`] (which fixes the f32 order):
//!
//! * **GEMM** (m ≥ `CHAIN_MIN_M`): the shared loop nest (`driver.rs`); the
//!   packer converts (f16 → f32) and transposes `NR` weight rows into a
//!   `[k][NR]` panel (`Simd::pack_b`), the micro-kernel (`Simd::kernel`)
//!   reads x in place (its row stride is an operand, so A needs no packing).
//! * **Dot** (m < `CHAIN_MIN_M`: decoding, incl. the m = 1 GEMV): no
//!   packing; tiles of up to 4 x-rows × 4 weight rows accumulate along k in
//!   the canonical 16 lanes (see `scalar.rs`), converting f16 weights in
//!   registers. Each weight row is streamed from memory once, which is what
//!   bounds the vocabulary projection (m = 1, n = 51864).

use super::driver::{gemm, split, Plan};
use crate::canonical::CHAIN_MIN_M;
use crate::operands::{Lhs, Out, Panel, Tile, WeightRows, XRows};
use crate::simd::{Init, Simd};
use crate::sync_ptr::{SharedConst, SharedMut};
use crate::{scratch, tuning, Pool, Weights};

/// Raw view of the weights: base pointer, element size, f16 flag.
#[derive(Clone, Copy)]
struct RawWeights {
    ptr: SharedConst<u8>,
    elem: usize,
    f16: bool,
}

impl RawWeights {
    fn new(w: Weights) -> RawWeights {
        let (ptr, elem, f16) = match w {
            Weights::F32(w) => (w.as_ptr().cast(), 4, false),
            Weights::F16(w) => (w.as_ptr().cast(), 2, true),
            // `Kernels::linear` routes packed weights to the table's `linear_packed`.
            Weights::Packed(_) => unreachable!("packed weights reach gemm::linear"),
        };
        RawWeights {
            ptr: SharedConst::new(ptr),
            elem,
            f16,
        }
    }
    /// Pointer to row `j` of a `[n × k]` matrix.
    fn row(self, j: usize, k: usize) -> *const u8 {
        // Safety (of later use): callers pass j < n.
        self.ptr.get().wrapping_add(j * k * self.elem)
    }
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
    let w = RawWeights::new(w);
    if m < CHAIN_MIN_M {
        linear_dot::<I>(pool, x, m, k, w, n, bias, out)
    } else {
        let plan = F16Gemm::<I> {
            x: SharedConst::new(x.as_ptr()),
            k,
            n,
            w,
            bias,
            out: SharedMut::new(out),
            isa: std::marker::PhantomData,
        };
        gemm(pool, &plan, m, n)
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
    // Groups of 4 weight rows; x rows in as few tiles as the ISA allows, of
    // even size (m = 5 at 4 rows a tile is 3 + 2, not 4 + 1: one FMA chain
    // alone waits on its latency).
    let groups = n.div_ceil(4);
    let tile_rows = m.div_ceil(m.div_ceil(I::DOT_ROWS));
    let tasks = tuning::dot_tasks(pool.threads(), groups);
    let out = SharedMut::new(out);
    let bias = SharedConst::opt(bias);
    pool.run(tasks, &|t| {
        let (g0, g1) = split(groups, tasks, t);
        for g in g0..g1 {
            let j = g * 4;
            let cols = (n - j).min(4);
            let rows: [*const u8; 4] =
                std::array::from_fn(|c| w.row(j + if c < cols { c } else { 0 }, k));
            let b = if bias.get().is_null() {
                bias.get()
            } else {
                bias.get().wrapping_add(j)
            };
            for r0 in (0..m).step_by(tile_rows) {
                // Safety: rows r0..r0+tile_rows ∩ 0..m of x, weight rows j..j+cols
                // of w and output columns j..j+cols (owned by this task) are in bounds.
                unsafe {
                    I::dot_tile(
                        Tile {
                            rows: (m - r0).min(tile_rows),
                            cols,
                        },
                        k,
                        XRows {
                            ptr: x.as_ptr().add(r0 * k),
                            row_stride: k,
                        },
                        WeightRows { rows, f16: w.f16 },
                        b,
                        Out {
                            ptr: out.get().add(r0 * n + j),
                            row_stride: n,
                        },
                    )
                }
            }
        }
    });
}

/// The f32 / f16 GEMM: panels converted and transposed by `pack_b`.
struct F16Gemm<'a, I> {
    x: SharedConst<f32>,
    k: usize,
    n: usize,
    w: RawWeights,
    bias: Option<&'a [f32]>,
    out: SharedMut<f32>,
    isa: std::marker::PhantomData<I>,
}

/// The bias of output columns `j..j + cols` as a micro-kernel start:
/// `NR ≤ 32` floats, zero past `cols`.
pub(super) fn bias_init(bias: Option<&[f32]>, j: usize, cols: usize, b: &mut [f32; 32]) -> Init {
    match bias {
        Some(bias) => {
            b[..cols].copy_from_slice(&bias[j..j + cols]);
            Init::Bias(b.as_ptr())
        }
        None => Init::Zero,
    }
}

impl<I: Simd> Plan for F16Gemm<'_, I> {
    const MR: usize = I::MR;
    const NR: usize = I::NR;
    type Scratch<'s> = &'s mut [f32];

    fn panel_bytes(&self) -> usize {
        self.k * I::NR * 4
    }
    fn with_scratch<R>(
        &self,
        chunk_panels: usize,
        body: impl for<'s> FnOnce(&mut &'s mut [f32]) -> R,
    ) -> R {
        scratch::with(chunk_panels * I::NR * self.k, |mut buf| body(&mut buf))
    }
    fn pack(&self, s: &mut &mut [f32], slot: usize, j: usize, cols: usize) {
        let k = self.k;
        // Safety: rows j..j+cols of w exist; the slot holds k·NR floats.
        unsafe {
            I::pack_b(
                self.w.row(j, k),
                self.w.f16,
                k,
                cols,
                k,
                s.as_mut_ptr().add(slot * I::NR * k),
            )
        }
    }
    fn tile(&self, s: &&mut [f32], slot: usize, i: usize, rows: usize, j: usize, cols: usize) {
        let k = self.k;
        let mut b = [0.0f32; 32];
        let init = bias_init(self.bias, j, cols, &mut b);
        // Safety: x rows i..i+rows (k floats each), the packed panel (k·NR
        // floats) and output rows i..i+rows × columns j..j+cols (owned by
        // this task) are in bounds.
        unsafe {
            I::kernel(
                Tile { rows, cols },
                k,
                Lhs {
                    ptr: self.x.get().add(i * k),
                    row_stride: k,
                    k_stride: 1,
                },
                Panel {
                    ptr: s.as_ptr().add(slot * I::NR * k),
                    k_stride: I::NR,
                },
                Out {
                    ptr: self.out.get().add(i * self.n + j),
                    row_stride: self.n,
                },
                init,
            )
        }
    }
}
