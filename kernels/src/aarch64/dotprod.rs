//! NEON with the dot-product extension (FEAT_DotProd): the int8 × int8 tile
//! uses `sdot`, which adds the four signed byte products of each 32-bit lane
//! into that lane of an i32 accumulator — every product and sum is exact (the
//! accumulators wrap only past i32, which `view` rules out). Everything else
//! is the plain NEON kernel set's.
//!
//! `vdotq_s32` is unstable in Rust 1.95 / 1.96, so `sdot` is inline asm in a
//! function compiled with the `dotprod` target feature.

use std::arch::aarch64::*;
use std::arch::asm;

use super::neon;
use super::packed_neon::{load_w16, weight_only_impl};
use crate::dispatch::{Isa, Table};
use crate::packed::PackedSimd;

pub(crate) static TABLE: Table = Table {
    isa: Isa::NeonDotprod,
    linear: neon::linear,
    linear_packed: crate::packed::linear::<NeonDotprod>,
    layer_norm: neon::layer_norm,
    gelu: neon::gelu,
    attention: neon::attention,
    attention_f16: neon::attention_f16,
    f16_to_f32: neon::f16_to_f32,
    max_exp_sum: crate::scalar::max_exp_sum,
    probes: &super::probe::DOTPROD,
};

pub(crate) struct NeonDotprod;

impl PackedSimd for NeonDotprod {
    weight_only_impl!();

    unsafe fn dot_lowbit(
        kind: crate::packed::Kind,
        tile: crate::operands::Tile,
        k: usize,
        group: usize,
        t: crate::packed::LowbitTile,
        out: crate::operands::Out,
    ) {
        let (rows, cols) = (tile.rows, tile.cols);
        let (out, ldo) = (out.ptr, out.row_stride);
        super::lowbit::dot_lowbit::<true>(kind, rows, cols, k, group, t, out, ldo)
    }
    const LB_NR: usize = super::lowbit::LB_NR;
    crate::packed::gemm_lowbit_impl!(super::lowbit::gemm_dot; 1, 2, 3, 4, 5, 6);

    unsafe fn dot_i8(
        rows: usize,
        k: usize,
        x: crate::operands::I8Rows,
        w: [*const u8; 4],
        out: &mut [[i32; 4]; 4],
    ) {
        let (xq, ldx) = (x.codes, x.row_stride);
        let _xsum = x.sums;
        match rows {
            1 => dot_i8::<1>(k, xq, ldx, w, out),
            2 => dot_i8::<2>(k, xq, ldx, w, out),
            3 => dot_i8::<3>(k, xq, ldx, w, out),
            4 => dot_i8::<4>(k, xq, ldx, w, out),
            _ => unreachable!("int8 tile rows {rows}"),
        }
    }
}

/// `acc[i] += Σ_{j<4} a[4i + j] · b[4i + j]` (signed bytes).
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(crate) unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    asm!(
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack, preserves_flags)
    );
    acc
}

/// R x rows × 4 weight rows with `sdot`, 16 bytes per step. Also the i8mm
/// kernel set's tile for a last, unpaired x row.
#[target_feature(enable = "neon,dotprod")]
pub(crate) unsafe fn dot_i8<const R: usize>(
    k: usize,
    xq: *const i8,
    ldx: usize,
    w: [*const u8; 4],
    out: &mut [[i32; 4]; 4],
) {
    let mut acc = [[vdupq_n_s32(0); 4]; R];
    let mut p = 0;
    while p < k {
        let wv: [int8x16_t; 4] = std::array::from_fn(|c| load_w16(w[c], p, k));
        for r in 0..R {
            // x rows are zero-padded to a multiple of 64: 16 bytes are readable.
            let xv = vld1q_s8(xq.add(r * ldx + p));
            for c in 0..4 {
                acc[r][c] = sdot(acc[r][c], xv, wv[c]);
            }
        }
        p += 16;
    }
    for r in 0..R {
        for c in 0..4 {
            out[r][c] = vaddvq_s32(acc[r][c]);
        }
    }
}
