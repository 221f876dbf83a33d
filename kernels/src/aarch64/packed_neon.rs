//! NEON decoders and dot tiles for packed weights (see `packed/`), and the
//! plain-NEON int8 × int8 tile.
//!
//! Weight-only decoding goes through a per-group table `T[c]` of the
//! dequantized value of every code (`s·(c − z)` or `s·NF4[c]`, computed
//! exactly as the reference computes it, so decoded weights are the
//! reference's bit for bit). The 16 f32 entries are stored as four byte
//! planes (`ld4`: plane j holds byte j of every entry), so one `tbl`
//! (`vqtbl1q_u8`) per plane looks up byte j of 16 codes at once, and two
//! levels of `zip` reassemble the bytes into 16 f32:
//! - 4-bit: the block's 16 bytes; `& 0xf` gives the codes of elements 0..16,
//!   `>> 4` those of 16..32.
//! - 3-bit: byte `e % 8` of the low-bit bytes holds element `e`'s two low bits
//!   at `2·(e / 8)`; its high bit is bit `e / 4` of high byte `e % 4` — with
//!   the 4 high bytes repeated across the vector that is one per-lane shift
//!   (`ushl` by a negative amount).
//! - int8: `sxtl` twice + `scvtf`; the row scale is applied after the dot.
//!
//! Int8 × int8 (plain NEON): `smull` / `smlal2` multiply signed bytes into
//! i16 lanes, two products per lane: x codes lie in −127..=127 and weight
//! codes in −128..=127, so a product is at most 127·128 = 16256 and a sum of
//! two 32512 ≤ 32767 in magnitude — exact. `sadalp` then adds lane pairs into
//! the i32 accumulators (exact; they wrap only past i32, which `view` rules
//! out with k ≤ MAX_INT8_DOT_K).

use std::arch::aarch64::*;

use super::neon::{f16_to_f32_impl, hsum16, Neon};
use crate::packed::{Kind, PackedSimd};
use crate::schemes::NF4;

pub(crate) const INT8: u8 = 0;
pub(crate) const AFF4: u8 = 1;
pub(crate) const NF4K: u8 = 2;
pub(crate) const AFF3: u8 = 3;

pub(crate) fn code(kind: Kind) -> u8 {
    match kind {
        Kind::Int8 => INT8,
        Kind::Affine4 => AFF4,
        Kind::Nf4 => NF4K,
        Kind::Affine3 => AFF3,
    }
}

/// The weight-only part of `PackedSimd`, identical for every NEON kernel set
/// (they differ only in `dot_i8`).
macro_rules! weight_only_impl {
    () => {
        type Float = $crate::aarch64::neon::Neon;
        const DOT_ROWS: usize = 4;

        unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32) {
            $crate::aarch64::packed_neon::f16_to_f32(src, n, dst)
        }
        unsafe fn dq_absmax(codes: *const u8, n: usize, min: f32, step: f32, dst: *mut f32) {
            $crate::aarch64::packed_neon::dq_absmax(codes, n, min, step, dst)
        }
        unsafe fn decode_row(
            kind: $crate::packed::Kind,
            codes: *const u8,
            scales: *const f32,
            zeros: *const f32,
            group: usize,
            k: usize,
            dst: *mut f32,
        ) {
            $crate::aarch64::packed_neon::decode_row(kind, codes, scales, zeros, group, k, dst)
        }
        unsafe fn dot_tile(
            kind: $crate::packed::Kind,
            tile: $crate::operands::Tile,
            k: usize,
            group: usize,
            x: $crate::operands::XRows,
            w: $crate::operands::PackedRows,
            bias: *const f32,
            out: $crate::operands::Out,
        ) {
            let (rows, cols) = (tile.rows, tile.cols);
            let (x, ldx) = (x.ptr, x.row_stride);
            let (codes, params) = (w.codes, w.params);
            let (out, ldo) = (out.ptr, out.row_stride);
            $crate::aarch64::packed_neon::dot_tile(
                kind, rows, cols, k, group, x, ldx, codes, params, bias, out, ldo,
            )
        }
    };
}
pub(crate) use weight_only_impl;

impl PackedSimd for Neon {
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
        super::lowbit::dot_lowbit::<false>(kind, rows, cols, k, group, t, out, ldo)
    }
    const LB_NR: usize = super::lowbit::LB_NR;
    crate::packed::gemm_lowbit_impl!(super::lowbit::gemm_neon; 1, 2, 3);

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

/// `dst[i] = f16(src[2i..2i+2])` for `i < n`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32) {
    if (src as usize).is_multiple_of(2) {
        f16_to_f32_impl(src.cast(), n, dst)
    } else {
        // Plane bytes carry no alignment promise: copy odd-addressed halves.
        let mut i = 0;
        while i < n {
            let nn = (n - i).min(64);
            let mut tmp = [0u16; 64];
            std::ptr::copy_nonoverlapping(src.add(2 * i), tmp.as_mut_ptr().cast::<u8>(), 2 * nn);
            f16_to_f32_impl(tmp.as_ptr(), nn, dst.add(i));
            i += nn;
        }
    }
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn dq_absmax(codes: *const u8, n: usize, min: f32, step: f32, dst: *mut f32) {
    let vmin = vdupq_n_f32(min);
    let mut i = 0;
    while i + 8 <= n {
        let c = vmovl_u8(vld1_u8(codes.add(i)));
        for (h, c) in [vget_low_u16(c), vget_high_u16(c)].into_iter().enumerate() {
            let c = vcvtq_f32_u32(vmovl_u16(c));
            // Separate multiply and add: the reference rounds the product first.
            vst1q_f32(dst.add(i + 4 * h), vaddq_f32(vmin, vmulq_n_f32(c, step)));
        }
        i += 8;
    }
    while i < n {
        *dst.add(i) = min + *codes.add(i) as f32 * step;
        i += 1;
    }
}

/// One group's decoding table as four byte planes (unused for int8).
type Tab = uint8x16x4_t;

#[target_feature(enable = "neon")]
#[inline]
unsafe fn table<const K: u8>(s: f32, z: f32) -> Tab {
    const IOTA: [f32; 4] = [0.0, 1.0, 2.0, 3.0];
    let mut e = [0.0f32; 16];
    for i in 0..4 {
        let v = if K == NF4K {
            // s·NF4[c], as the reference.
            vmulq_n_f32(vld1q_f32(NF4.as_ptr().add(4 * i)), s)
        } else {
            // s·(c − z), as the reference (the subtraction is exact for
            // Int4Sym; one rounding each otherwise, in the same order).
            let c = vaddq_f32(vld1q_f32(IOTA.as_ptr()), vdupq_n_f32(4.0 * i as f32));
            vmulq_n_f32(vsubq_f32(c, vdupq_n_f32(z)), s)
        };
        vst1q_f32(e.as_mut_ptr().add(4 * i), v);
    }
    vld4q_u8(e.as_ptr().cast())
}

/// The table entries of 16 codes (each < 16) as four f32 vectors.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn lookup(t: &Tab, c: uint8x16_t) -> [float32x4_t; 4] {
    let (p0, p1) = (vqtbl1q_u8(t.0, c), vqtbl1q_u8(t.1, c));
    let (p2, p3) = (vqtbl1q_u8(t.2, c), vqtbl1q_u8(t.3, c));
    // u16 lane i of a: bytes (p0[i], p1[i]); of b: (p2[i], p3[i]).
    let (a_lo, a_hi) = (
        vreinterpretq_u16_u8(vzip1q_u8(p0, p1)),
        vreinterpretq_u16_u8(vzip2q_u8(p0, p1)),
    );
    let (b_lo, b_hi) = (
        vreinterpretq_u16_u8(vzip1q_u8(p2, p3)),
        vreinterpretq_u16_u8(vzip2q_u8(p2, p3)),
    );
    [
        vreinterpretq_f32_u16(vzip1q_u16(a_lo, b_lo)),
        vreinterpretq_f32_u16(vzip2q_u16(a_lo, b_lo)),
        vreinterpretq_f32_u16(vzip1q_u16(a_hi, b_hi)),
        vreinterpretq_f32_u16(vzip2q_u16(a_hi, b_hi)),
    ]
}

/// Per-lane right shifts (negative left shifts) of the 3-bit high bits:
/// element `e` of the half `t` needs `e / 4`.
const INT3_SHIFT: [[i8; 16]; 2] = {
    let mut s = [[0i8; 16]; 2];
    let mut e = 0;
    while e < 32 {
        s[e / 16][e % 16] = -((e / 4) as i8);
        e += 1;
    }
    s
};

/// The codes of block `b` of a 4- or 3-bit row: elements 0..16 and 16..32.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn block_codes<const K: u8>(codes: *const u8, b: usize) -> [uint8x16_t; 2] {
    if K == AFF3 {
        let p = codes.add(12 * b);
        let low = vld1_u8(p);
        let three = vdup_n_u8(3);
        let high = vreinterpretq_u8_u32(vdupq_n_u32(p.add(8).cast::<u32>().read_unaligned()));
        let one = vdupq_n_u8(1);
        let hi_bit = |t: usize| {
            let h = vshlq_u8(high, vld1q_s8(INT3_SHIFT[t].as_ptr()));
            vshlq_n_u8::<2>(vandq_u8(h, one))
        };
        [
            vorrq_u8(
                vcombine_u8(vand_u8(low, three), vand_u8(vshr_n_u8::<2>(low), three)),
                hi_bit(0),
            ),
            vorrq_u8(
                vcombine_u8(vand_u8(vshr_n_u8::<4>(low), three), vshr_n_u8::<6>(low)),
                hi_bit(1),
            ),
        ]
    } else {
        let v = vld1q_u8(codes.add(16 * b));
        [vandq_u8(v, vdupq_n_u8(15)), vshrq_n_u8::<4>(v)]
    }
}

/// Block `b` (elements 32b..32b+32) of a row as 8 vectors (int8: codes,
/// unscaled, zero past `k`).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn decode_block<const K: u8>(
    codes: *const u8,
    b: usize,
    k: usize,
    t: &Tab,
) -> [float32x4_t; 8] {
    if K == INT8 {
        let p = 32 * b;
        let mut tmp = [0u8; 32];
        let src = if p + 32 <= k {
            codes.add(p)
        } else {
            std::ptr::copy_nonoverlapping(codes.add(p), tmp.as_mut_ptr(), k - p);
            tmp.as_ptr()
        };
        let mut out = [vdupq_n_f32(0.0); 8];
        for h in 0..2 {
            let v = vld1q_s8(src.add(16 * h).cast());
            let (lo, hi) = (vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v));
            out[4 * h] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
            out[4 * h + 1] = vcvtq_f32_s32(vmovl_high_s16(lo));
            out[4 * h + 2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
            out[4 * h + 3] = vcvtq_f32_s32(vmovl_high_s16(hi));
        }
        return out;
    }
    let [c0, c1] = block_codes::<K>(codes, b);
    let (l0, l1) = (lookup(t, c0), lookup(t, c1));
    [l0[0], l0[1], l0[2], l0[3], l1[0], l1[1], l1[2], l1[3]]
}

#[target_feature(enable = "neon")]
pub(crate) unsafe fn decode_row(
    kind: Kind,
    codes: *const u8,
    scales: *const f32,
    zeros: *const f32,
    group: usize,
    k: usize,
    dst: *mut f32,
) {
    match code(kind) {
        INT8 => decode_row_k::<INT8>(codes, scales, zeros, group, k, dst),
        AFF4 => decode_row_k::<AFF4>(codes, scales, zeros, group, k, dst),
        NF4K => decode_row_k::<NF4K>(codes, scales, zeros, group, k, dst),
        _ => decode_row_k::<AFF3>(codes, scales, zeros, group, k, dst),
    }
}

#[target_feature(enable = "neon")]
unsafe fn decode_row_k<const K: u8>(
    codes: *const u8,
    scales: *const f32,
    zeros: *const f32,
    group: usize,
    k: usize,
    dst: *mut f32,
) {
    let kp = k.next_multiple_of(32);
    let mut g = 0;
    let mut p = 0;
    while p < kp {
        let (s, z) = (*scales.add(g), *zeros.add(g));
        let t = if K == INT8 {
            std::mem::zeroed()
        } else {
            table::<K>(s, z)
        };
        let end = (p + group).min(kp);
        while p < end {
            let v = decode_block::<K>(codes, p / 32, k, &t);
            for q in 0..8 {
                let v = if K == INT8 {
                    vmulq_n_f32(v[q], s)
                } else {
                    v[q]
                };
                vst1q_f32(dst.add(p + 4 * q), v);
            }
            p += 32;
        }
        g += 1;
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_tile(
    kind: Kind,
    rows: usize,
    cols: usize,
    k: usize,
    group: usize,
    x: *const f32,
    ldx: usize,
    codes: [*const u8; 4],
    params: [(*const f32, *const f32); 4],
    bias: *const f32,
    out: *mut f32,
    ldo: usize,
) {
    // Columns per pass: R × C × 4 accumulators stay at 16 registers.
    macro_rules! call {
        ($($r:literal $c:literal)*) => {
            match (code(kind), rows) {
                $((INT8, $r) => dot_tile_k::<INT8, $r, $c>(cols, k, group, x, ldx, codes, params, bias, out, ldo),
                  (AFF4, $r) => dot_tile_k::<AFF4, $r, $c>(cols, k, group, x, ldx, codes, params, bias, out, ldo),
                  (NF4K, $r) => dot_tile_k::<NF4K, $r, $c>(cols, k, group, x, ldx, codes, params, bias, out, ldo),
                  (_, $r) => dot_tile_k::<AFF3, $r, $c>(cols, k, group, x, ldx, codes, params, bias, out, ldo),)*
                _ => unreachable!("dot tile rows {rows}"),
            }
        };
    }
    call!(1 4 2 2 3 1 4 1)
}

/// Weight-only dot tile: each weight block is decoded once (one row at a
/// time, 8 vectors) and multiplied into every x row of the tile, in the
/// canonical 16 lanes (four registers per (row, column); vector q of a block
/// feeds lanes 4·(q % 4)). `C` weight rows per pass over k keep the
/// accumulators at 16 registers.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn dot_tile_k<const K: u8, const R: usize, const C: usize>(
    cols: usize,
    k: usize,
    group: usize,
    x: *const f32,
    ldx: usize,
    codes: [*const u8; 4],
    params: [(*const f32, *const f32); 4],
    bias: *const f32,
    out: *mut f32,
    ldo: usize,
) {
    let kp = k.next_multiple_of(32);
    let mut c0 = 0;
    while c0 < cols {
        let mut acc = [[[vdupq_n_f32(0.0); 4]; C]; R];
        let mut g = 0;
        let mut p = 0;
        while p < kp {
            let t: [Tab; C] = std::array::from_fn(|i| {
                if K == INT8 {
                    std::mem::zeroed()
                } else {
                    table::<K>(*params[c0 + i].0.add(g), *params[c0 + i].1.add(g))
                }
            });
            let end = (p + group).min(kp);
            while p < end {
                for i in 0..C {
                    let wv = decode_block::<K>(codes[c0 + i], p / 32, k, &t[i]);
                    for r in 0..R {
                        let xr = x.add(r * ldx + p);
                        for q in 0..8 {
                            let a = &mut acc[r][i][q % 4];
                            *a = vfmaq_f32(*a, vld1q_f32(xr.add(4 * q)), wv[q]);
                        }
                    }
                }
                p += 32;
            }
            g += 1;
        }
        for r in 0..R {
            for i in 0..C.min(cols - c0) {
                let c = c0 + i;
                let mut v = hsum16(acc[r][i]);
                if K == INT8 {
                    v *= *params[c].0;
                }
                let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
                *out.add(r * ldo + c) = v + b;
            }
        }
        c0 += C;
    }
}

/// 16 bytes of weight row `w` from `p` (zero past `k`: only `k` are readable).
#[target_feature(enable = "neon")]
#[inline]
pub(crate) unsafe fn load_w16(w: *const u8, p: usize, k: usize) -> int8x16_t {
    if p + 16 <= k {
        vld1q_s8(w.add(p).cast())
    } else {
        let mut tmp = [0i8; 16];
        std::ptr::copy_nonoverlapping(w.add(p).cast::<i8>(), tmp.as_mut_ptr(), k - p);
        vld1q_s8(tmp.as_ptr())
    }
}

/// The plain-NEON int8 × int8 tile: R x rows × 4 weight rows (see the module
/// docs for why the i16 products never overflow).
#[target_feature(enable = "neon")]
unsafe fn dot_i8<const R: usize>(
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
                let prod = vmull_s8(vget_low_s8(xv), vget_low_s8(wv[c]));
                let prod = vmlal_high_s8(prod, xv, wv[c]);
                acc[r][c] = vpadalq_s16(acc[r][c], prod);
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
