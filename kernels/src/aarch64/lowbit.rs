//! NEON low-bit × int8 tiles (`PackedSimd::dot_lowbit`): R x rows × 4 weight
//! rows. Each 32-element block is unpacked in registers into two int8x16 of
//! codes in element order (codes ≤ 15 are valid signed bytes; nf4 looks its
//! `NF4_I8` values up with `tbl`):
//! - 4-bit: the block's 16 bytes masked to the low nibble (elements 0..16)
//!   and shifted right by 4 (elements 16..32).
//! - 3-bit: the 8 low-bit bytes and the same shifted by 2, 4, 6, paired and
//!   masked to 2 bits (element 8i + j in byte 8i + j); the high-bit word
//!   duplicated to every 32-bit lane gives byte e = byte e % 4, and `cmtst`
//!   against bit e / 4 adds 4.
//!
//! Products: `sdot` with FEAT_DotProd, else `smull` / `smull2` + `sadalp`
//! (|x·u| ≤ 127·127 fits i16). Per group the four columns' i32 lanes are
//! summed with two `addp` rounds and the float part runs 4 columns wide in
//! the reference's order (no fused multiply-add).
//!
//! m ≥ 16 (`gemm_dot`, `gemm_neon`): the driver unpacks each panel of 16
//! weight rows once into `[kp/4][16][4]` integer-code bytes (nf4's
//! `NF4_I8 + 128` flipped back to signed here); per 4 k-steps a row's 4 x
//! codes, repeated in every lane, meet 4 panel vectors (4 columns each) in
//! `sdot` (6 rows) or `smull` + `sadalp` (3 rows: two accumulators per 4
//! columns); the i32 tile is flushed into the float part at every group end.

use std::arch::aarch64::*;

use super::dotprod::sdot;
use crate::packed::{Kind, LowbitTile};
use crate::schemes::NF4_I8;

const AFF4: u8 = 1;
const NF4K: u8 = 2;
const AFF3: u8 = 3;

/// Runs the tile for `kind`, with `sdot` when `DOT`.
///
/// # Safety
/// The CPU has NEON (+ dotprod when `DOT`); `t` as `PackedSimd::dot_lowbit`
/// requires.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot_lowbit<const DOT: bool>(
    kind: Kind,
    rows: usize,
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    macro_rules! call {
        ($($r:literal)*) => {
            match (kind, rows, DOT) {
                $((Kind::Affine4, $r, false) => tile_neon::<AFF4, $r>(cols, k, group, t, out, ldo),
                  (Kind::Nf4, $r, false) => tile_neon::<NF4K, $r>(cols, k, group, t, out, ldo),
                  (Kind::Affine3, $r, false) => tile_neon::<AFF3, $r>(cols, k, group, t, out, ldo),
                  (Kind::Affine4, $r, true) => tile_dot::<AFF4, $r>(cols, k, group, t, out, ldo),
                  (Kind::Nf4, $r, true) => tile_dot::<NF4K, $r>(cols, k, group, t, out, ldo),
                  (Kind::Affine3, $r, true) => tile_dot::<AFF3, $r>(cols, k, group, t, out, ldo),)*
                _ => unreachable!("low-bit tile {kind:?} rows {rows}"),
            }
        };
    }
    call!(1 2 3 4)
}

/// Block `b`'s 32 integer codes in element order.
#[inline(always)]
unsafe fn unpack<const K: u8>(codes: *const u8, b: usize) -> [int8x16_t; 2] {
    if K == AFF3 {
        let blk = codes.add(12 * b);
        let l = vld1_u8(blk);
        let h = blk.add(8).cast::<u32>().read_unaligned();
        let three = vdupq_n_u8(3);
        let lo = vandq_u8(vcombine_u8(l, vshr_n_u8::<2>(l)), three);
        let hi = vandq_u8(vcombine_u8(vshr_n_u8::<4>(l), vshr_n_u8::<6>(l)), three);
        let spread = vreinterpretq_u8_u32(vdupq_n_u32(h));
        let m0: [u8; 16] = [1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8];
        let m1: [u8; 16] = [
            16, 16, 16, 16, 32, 32, 32, 32, 64, 64, 64, 64, 128, 128, 128, 128,
        ];
        let four = vdupq_n_u8(4);
        let h0 = vandq_u8(vtstq_u8(spread, vld1q_u8(m0.as_ptr())), four);
        let h1 = vandq_u8(vtstq_u8(spread, vld1q_u8(m1.as_ptr())), four);
        [
            vreinterpretq_s8_u8(vorrq_u8(lo, h0)),
            vreinterpretq_s8_u8(vorrq_u8(hi, h1)),
        ]
    } else {
        let v = vld1q_u8(codes.add(16 * b));
        let lo = vandq_u8(v, vdupq_n_u8(15));
        let hi = vshrq_n_u8::<4>(v);
        if K == NF4K {
            let tab = vld1q_s8(NF4_I8.as_ptr());
            [vqtbl1q_s8(tab, lo), vqtbl1q_s8(tab, hi)]
        } else {
            [vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)]
        }
    }
}

/// `acc += Σ` of the byte products, pairwise into i32 lanes (plain NEON).
#[inline(always)]
unsafe fn mac_neon(acc: int32x4_t, x: int8x16_t, w: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(x), vget_low_s8(w));
    vpadalq_s16(vpadalq_s16(acc, lo), vmull_high_s8(x, w))
}

/// Group g's `(s, z)` of the tile's 4 columns (group-major, padded).
#[inline(always)]
unsafe fn params4(t: &LowbitTile, g: usize) -> (float32x4_t, float32x4_t) {
    (vld1q_f32(t.ps.add(4 * g)), vld1q_f32(t.pz.add(4 * g)))
}

macro_rules! tile_body {
    ($mac:ident, $cols:ident, $k:ident, $group:ident, $t:ident, $out:ident, $ldo:ident) => {{
        let ng = $k.div_ceil($group);
        let nb = $k.div_ceil(32);
        let gb = $group / 32;
        let codes: [*const u8; 4] = std::array::from_fn(|c| $t.codes.add(c.min($cols - 1) * $t.rb));
        let mut facc = [vdupq_n_f32(0.0); R];
        for g in 0..ng {
            let mut acc = [[vdupq_n_s32(0); 4]; R];
            for b in g * gb..((g + 1) * gb).min(nb) {
                let xv: [[int8x16_t; 2]; R] = std::array::from_fn(|r| {
                    let p = $t.xq.add(r * $t.ldx + 32 * b);
                    [vld1q_s8(p), vld1q_s8(p.add(16))]
                });
                for c in 0..4 {
                    let u = unpack::<K>(codes[c], b);
                    for r in 0..R {
                        acc[r][c] = $mac(acc[r][c], xv[r][0], u[0]);
                        acc[r][c] = $mac(acc[r][c], xv[r][1], u[1]);
                    }
                }
            }
            let (s, z) = params4(&$t, g);
            for r in 0..R {
                let sxg = *$t.xsg.add(r * ng + g);
                let a = &acc[r];
                let d = vpaddq_s32(vpaddq_s32(a[0], a[1]), vpaddq_s32(a[2], a[3]));
                let d = vcvtq_f32_s32(d);
                let v = vmulq_f32(s, vsubq_f32(d, vmulq_f32(z, vdupq_n_f32(sxg as f32))));
                facc[r] = vaddq_f32(facc[r], v);
            }
        }
        let bias = vld1q_f32($t.bias);
        for r in 0..R {
            let y = vaddq_f32(vmulq_f32(vdupq_n_f32(*$t.sx.add(r)), facc[r]), bias);
            let mut v = [0.0f32; 4];
            vst1q_f32(v.as_mut_ptr(), y);
            for (c, &y) in v.iter().enumerate().take($cols) {
                *$out.add(r * $ldo + c) = y;
            }
        }
    }};
}

#[target_feature(enable = "neon")]
unsafe fn tile_neon<const K: u8, const R: usize>(
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    tile_body!(mac_neon, cols, k, group, t, out, ldo)
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_dot<const K: u8, const R: usize>(
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    tile_body!(sdot, cols, k, group, t, out, ldo)
}

/// Columns per low-bit GEMM panel (`PackedSimd::gemm_lowbit`): four q
/// registers of 4 columns × 4 codes.
pub(crate) const LB_NR: usize = 16;

/// The float part of one group for every tile row (the reference's
/// expression, 4 columns per vector, no fused multiply-add).
#[inline(always)]
unsafe fn group_float16<const R: usize>(
    f: &mut [[float32x4_t; 4]; R],
    d: &[[int32x4_t; 4]; R],
    t: &LowbitTile,
    ng: usize,
    g: usize,
) {
    let s: [float32x4_t; 4] = std::array::from_fn(|v| vld1q_f32(t.ps.add(LB_NR * g + 4 * v)));
    let z: [float32x4_t; 4] = std::array::from_fn(|v| vld1q_f32(t.pz.add(LB_NR * g + 4 * v)));
    for r in 0..R {
        let sxf = vdupq_n_f32(*t.xsg.add(r * ng + g) as f32);
        for v in 0..4 {
            let dv = vcvtq_f32_s32(d[r][v]);
            let u = vmulq_f32(s[v], vsubq_f32(dv, vmulq_f32(z[v], sxf)));
            f[r][v] = vaddq_f32(f[r][v], u);
        }
    }
}

/// `out[r][c] = sx[r] · f + bias[c]` for `c < cols`.
#[inline(always)]
unsafe fn store16<const R: usize>(
    f: &[[float32x4_t; 4]; R],
    cols: usize,
    t: &LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    for (r, fr) in f.iter().enumerate() {
        let sx = vdupq_n_f32(*t.sx.add(r));
        for v in 0..4 {
            if 4 * v >= cols {
                break;
            }
            let y = vaddq_f32(vmulq_f32(sx, fr[v]), vld1q_f32(t.bias.add(4 * v)));
            let o = out.add(r * ldo + 4 * v);
            if cols - 4 * v >= 4 {
                vst1q_f32(o, y);
            } else {
                let mut tmp = [0.0f32; 4];
                vst1q_f32(tmp.as_mut_ptr(), y);
                for (c, &y) in tmp.iter().enumerate().take(cols - 4 * v) {
                    *o.add(c) = y;
                }
            }
        }
    }
}

/// The panel's 4 vectors at `b`: integer codes as signed bytes. nf4's
/// `NF4_I8 + 128` gets its sign bit flipped back (`flip` = 0x80, else 0), so
/// every dot here is the exact signed one and needs no `128·Σx` correction.
#[inline(always)]
unsafe fn panel4(b: *const u8, flip: uint8x16_t) -> [int8x16_t; 4] {
    std::array::from_fn(|v| vreinterpretq_s8_u8(veorq_u8(vld1q_u8(b.add(16 * v)), flip)))
}

/// x row `r`'s 4 codes at `x`, repeated in every 32-bit lane.
#[inline(always)]
unsafe fn x4(x: *const i8) -> int8x16_t {
    vreinterpretq_s8_s32(vdupq_n_s32(x.cast::<i32>().read_unaligned()))
}

/// The `sdot` low-bit GEMM micro-kernel (NR = 16, `R` ≤ 6: 24 accumulators,
/// 4 panel vectors and 1 x vector of the 32 registers): per 4 k-steps one
/// `sdot` per row and 4 columns, adding each column's 4 products into its
/// lane (|u·x| ≤ 127·127, exact).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon,dotprod")]
pub(crate) unsafe fn gemm_dot<const R: usize>(
    nf4: bool,
    cols: usize,
    kp: usize,
    group: usize,
    t: LowbitTile,
    panel: *const u8,
    out: crate::operands::Out,
) {
    let (out, ldo) = (out.ptr, out.row_stride);
    let ng = kp.div_ceil(group);
    let steps = kp / 4;
    let gs = group / 4;
    let flip = vdupq_n_u8(if nf4 { 0x80 } else { 0 });
    let mut f = [[vdupq_n_f32(0.0); 4]; R];
    for g in 0..ng {
        let mut acc = [[vdupq_n_s32(0); 4]; R];
        let mut b = panel.add(g * group * LB_NR);
        let mut x = t.xq.add(g * group);
        for _ in g * gs..((g + 1) * gs).min(steps) {
            let wv = panel4(b, flip);
            for r in 0..R {
                let xb = x4(x.add(r * t.ldx));
                for v in 0..4 {
                    acc[r][v] = sdot(acc[r][v], wv[v], xb);
                }
            }
            b = b.add(4 * LB_NR);
            x = x.add(4);
        }
        group_float16(&mut f, &acc, &t, ng, g);
    }
    store16(&f, cols, &t, out, ldo)
}

/// The plain NEON low-bit GEMM micro-kernel (NR = 16, `R` ≤ 3): `smull` /
/// `smull2` multiply a panel vector's columns 0, 1 / 2, 3 by the row's 4
/// codes (|u·x| ≤ 127·127 fits i16 exactly), `sadalp` adds product pairs
/// into two i32 lanes per column; `addp` joins them at the group end. Two
/// accumulators per 4 columns: 24 for 3 rows, + 4 panel vectors + 1 x.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn gemm_neon<const R: usize>(
    nf4: bool,
    cols: usize,
    kp: usize,
    group: usize,
    t: LowbitTile,
    panel: *const u8,
    out: crate::operands::Out,
) {
    let (out, ldo) = (out.ptr, out.row_stride);
    let ng = kp.div_ceil(group);
    let steps = kp / 4;
    let gs = group / 4;
    let flip = vdupq_n_u8(if nf4 { 0x80 } else { 0 });
    let mut f = [[vdupq_n_f32(0.0); 4]; R];
    for g in 0..ng {
        let mut lo = [[vdupq_n_s32(0); 4]; R];
        let mut hi = [[vdupq_n_s32(0); 4]; R];
        let mut b = panel.add(g * group * LB_NR);
        let mut x = t.xq.add(g * group);
        for _ in g * gs..((g + 1) * gs).min(steps) {
            let wv = panel4(b, flip);
            for r in 0..R {
                let xb = x4(x.add(r * t.ldx));
                for v in 0..4 {
                    let pl = vmull_s8(vget_low_s8(wv[v]), vget_low_s8(xb));
                    lo[r][v] = vpadalq_s16(lo[r][v], pl);
                    hi[r][v] = vpadalq_s16(hi[r][v], vmull_high_s8(wv[v], xb));
                }
            }
            b = b.add(4 * LB_NR);
            x = x.add(4);
        }
        let d: [[int32x4_t; 4]; R] =
            std::array::from_fn(|r| std::array::from_fn(|v| vpaddq_s32(lo[r][v], hi[r][v])));
        group_float16(&mut f, &d, &t, ng, g);
    }
    store16(&f, cols, &t, out, ldo)
}
