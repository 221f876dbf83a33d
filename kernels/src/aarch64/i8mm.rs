//! NEON with the int8 matrix-multiply extension (FEAT_I8MM): the int8 × int8
//! tile uses `smmla`, which multiplies a 2 × 8 block of signed bytes (x rows
//! r, r+1) by the transpose of another (weight rows c, c+1) and adds the
//! 2 × 2 result, row-major, into an i32 accumulator: `[r·c, r·c+1, r+1·c,
//! r+1·c+1]`. Sixteen bytes of k per step are two such blocks. Products and
//! sums are exact (the accumulators wrap only past i32, which `view` rules
//! out). A last, unpaired x row uses the `sdot` tile (every i8mm CPU this
//! set is offered on also has dotprod: `Isa::NeonI8mm` requires both).
//!
//! `vmmlaq_s32` is unstable in Rust 1.95 / 1.96, so `smmla` is inline asm in
//! a function compiled with the `i8mm` target feature.

use std::arch::aarch64::*;
use std::arch::asm;

use super::packed_neon::{load_w16, weight_only_impl};
use super::{dotprod, neon};
use crate::dispatch::{Isa, Table};
use crate::packed::PackedSimd;

pub(crate) static TABLE: Table = Table {
    isa: Isa::NeonI8mm,
    linear: neon::linear,
    linear_packed: crate::packed::linear::<NeonI8mm>,
    layer_norm: neon::layer_norm,
    gelu: neon::gelu,
    attention: neon::attention,
    attention_f16: neon::attention_f16,
    f16_to_f32: neon::f16_to_f32,
    max_exp_sum: crate::scalar::max_exp_sum,
    probes: &super::probe::I8MM,
};

pub(crate) struct NeonI8mm;

impl PackedSimd for NeonI8mm {
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
        let pairs = rows / 2;
        match pairs {
            0 => {}
            1 => dot_i8_pairs::<1>(k, xq, ldx, w, out),
            2 => dot_i8_pairs::<2>(k, xq, ldx, w, out),
            _ => unreachable!("int8 tile rows {rows}"),
        }
        if rows % 2 == 1 {
            let r = rows - 1;
            let mut last = [[0i32; 4]; 4];
            dotprod::dot_i8::<1>(k, xq.add(r * ldx), ldx, w, &mut last);
            out[r] = last[0];
        }
    }
}

/// `acc += a (2 × 8) · bᵀ (b: 2 × 8)`, signed bytes, i32 2 × 2 row-major.
#[target_feature(enable = "neon,i8mm")]
#[inline]
pub(crate) unsafe fn smmla(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    asm!(
        "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack, preserves_flags)
    );
    acc
}

/// Bytes 0..8 of `a` then of `b`, and bytes 8..16 of `a` then of `b`: the two
/// 2 × 8 blocks of rows (a, b) in one 16-byte step.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn blocks(a: int8x16_t, b: int8x16_t) -> [int8x16_t; 2] {
    let (a, b) = (vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b));
    [
        vreinterpretq_s8_s64(vzip1q_s64(a, b)),
        vreinterpretq_s8_s64(vzip2q_s64(a, b)),
    ]
}

/// P pairs of x rows × 4 weight rows: per pair two 2 × 2 accumulators
/// (weight rows 0–1 and 2–3).
#[target_feature(enable = "neon,i8mm")]
unsafe fn dot_i8_pairs<const P: usize>(
    k: usize,
    xq: *const i8,
    ldx: usize,
    w: [*const u8; 4],
    out: &mut [[i32; 4]; 4],
) {
    let mut acc = [[vdupq_n_s32(0); 2]; P];
    let mut p = 0;
    while p < k {
        let wv: [int8x16_t; 4] = std::array::from_fn(|c| load_w16(w[c], p, k));
        let wb = [blocks(wv[0], wv[1]), blocks(wv[2], wv[3])];
        for i in 0..P {
            // x rows are zero-padded to a multiple of 64: 16 bytes are readable.
            let x0 = vld1q_s8(xq.add(2 * i * ldx + p));
            let x1 = vld1q_s8(xq.add((2 * i + 1) * ldx + p));
            let xb = blocks(x0, x1);
            for cp in 0..2 {
                for h in 0..2 {
                    acc[i][cp] = smmla(acc[i][cp], xb[h], wb[cp][h]);
                }
            }
        }
        p += 16;
    }
    for i in 0..P {
        for cp in 0..2 {
            let mut v = [0i32; 4];
            vst1q_s32(v.as_mut_ptr(), acc[i][cp]);
            out[2 * i][2 * cp] = v[0];
            out[2 * i][2 * cp + 1] = v[1];
            out[2 * i + 1][2 * cp] = v[2];
            out[2 * i + 1][2 * cp + 1] = v[3];
        }
    }
}
