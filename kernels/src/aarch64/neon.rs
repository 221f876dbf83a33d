//! NEON (AArch64 Advanced SIMD) kernels: 4 f32 lanes, 32 vector registers, no
//! masked loads or stores (tails go through a small zero-padded copy).
//!
//! Micro-kernel: 6 rows × 16 columns (4 vectors) = 24 accumulators + 4 B
//! vectors + 1 broadcast (`ld1r`) = 29 of the 32 registers; each k step does
//! 4 loads, 6 broadcasts and 24 FMAs.
//!
//! f16 → f32 is `fcvtl`, part of base AArch64 Advanced SIMD (FEAT_FP16 is
//! only needed for half-precision arithmetic), written as inline asm because
//! the `vcvt_f32_f16` intrinsic and its `float16x4_t` type are unstable. With
//! the FPCR as Linux leaves it (no flush-to-zero, no default NaN) it is exact,
//! keeps subnormals, and quiets NaNs keeping their payload, as the reference.

use std::arch::aarch64::*;
use std::arch::asm;

use crate::attention::{self, Kv};
use crate::dispatch::{Isa, Table};
use crate::operands::{Lhs, Out, Panel, Tile};
use crate::simd::{Init, Simd};
use crate::simd::{ERFC_POLY, EXP_MAX, EXP_MIN, EXP_POLY, LN2_HI, LN2_LO};
use crate::{gemm, AttentionShape, Pool, Weights};

pub(crate) static TABLE: Table = Table {
    isa: Isa::Neon,
    linear,
    linear_packed: crate::packed::linear::<Neon>,
    layer_norm,
    gelu,
    attention,
    attention_f16,
    f16_to_f32,
    // The scalar reference (a NEON loop would be faster; the result is the same).
    max_exp_sum: crate::scalar::max_exp_sum,
    probes: &super::probe::NEON,
};

// The table's entries (shared by the dotprod and i8mm tables): safe because
// `dispatch::table` hands the tables out only on a CPU with NEON.

#[allow(clippy::too_many_arguments)]
pub(crate) fn linear(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: Weights,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    gemm::linear::<Neon>(pool, x, m, k, w, n, bias, out)
}
pub(crate) fn attention(
    pool: &Pool,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttentionShape,
    out: &mut [f32],
) {
    attention::attention::<Neon>(pool, q, Kv::F32(k), Kv::F32(v), s, out)
}
pub(crate) fn attention_f16(
    pool: &Pool,
    q: &[f32],
    k: &[u16],
    v: &[u16],
    s: AttentionShape,
    out: &mut [f32],
) {
    attention::attention::<Neon>(pool, q, Kv::F16(k), Kv::F16(v), s, out)
}
pub(crate) fn layer_norm(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
    // Safety: CPU support checked by dispatch; lengths checked by lib.rs.
    unsafe { layer_norm_impl(x, d, gamma, beta, out) }
}
pub(crate) fn gelu(x: &mut [f32]) {
    // Safety: CPU support checked by dispatch.
    unsafe { gelu_impl(x) }
}
pub(crate) fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    // Safety: CPU support checked by dispatch; dst.len() == src.len().
    unsafe { f16_to_f32_impl(src.as_ptr(), src.len(), dst.as_mut_ptr()) }
}

pub(crate) struct Neon;

const MR: usize = 6;
const NR: usize = 16;

impl Simd for Neon {
    const MR: usize = MR;
    const NR: usize = NR;
    const QB: usize = 48;

    unsafe fn pack_b(src: *const u8, f16: bool, ld: usize, rows: usize, k: usize, dst: *mut f32) {
        if f16 {
            pack_b::<true>(src, ld, rows, k, dst)
        } else {
            pack_b::<false>(src, ld, rows, k, dst)
        }
    }
    unsafe fn kernel(tile: Tile, k: usize, a: Lhs, b: Panel, c: Out, init: Init) {
        macro_rules! call {
            ($($r:literal)*) => {
                match tile.rows {
                    $($r => kernel::<$r>(tile.cols, k, a, b, c, init),)*
                    _ => unreachable!("micro-kernel rows {}", tile.rows),
                }
            };
        }
        call!(1 2 3 4 5 6)
    }
    unsafe fn dot_tile(
        tile: crate::operands::Tile,
        k: usize,
        x: crate::operands::XRows,
        w: crate::operands::WeightRows,
        bias: *const f32,
        out: crate::operands::Out,
    ) {
        let (rows, cols) = (tile.rows, tile.cols);
        let (x, ldx) = (x.ptr, x.row_stride);
        let (w, f16) = (w.rows, w.f16);
        let (out, ldo) = (out.ptr, out.row_stride);
        // One x row at a time: the canonical 16 lanes take four registers
        // per (row, column), so 4 columns fill 16 accumulators.
        for r in 0..rows {
            let (x, out) = (x.add(r * ldx), out.add(r * ldo));
            if f16 {
                dot_tile::<true>(cols, k, x, w, bias, out)
            } else {
                dot_tile::<false>(cols, k, x, w, bias, out)
            }
        }
    }
    unsafe fn dots(
        q: *const f32,
        k: *const u8,
        f16: bool,
        ldk: usize,
        n: usize,
        d: usize,
        out: *mut f32,
    ) {
        if f16 {
            dots::<true>(q, k, ldk, n, d, out)
        } else {
            dots::<false>(q, k, ldk, n, d, out)
        }
    }
    unsafe fn weighted_sum(
        w: *const f32,
        v: *const u8,
        f16: bool,
        ldv: usize,
        n: usize,
        d: usize,
        out: *mut f32,
    ) {
        if f16 {
            weighted_sum::<true>(w, v, ldv, n, d, out)
        } else {
            weighted_sum::<false>(w, v, ldv, n, d, out)
        }
    }
    unsafe fn cvt_f16(src: *const u16, n: usize, dst: *mut f32) {
        f16_to_f32_impl(src, n, dst)
    }
    unsafe fn scale(x: *mut f32, n: usize, alpha: f32) {
        scale(x, n, alpha)
    }
    unsafe fn softmax_row(x: *mut f32, n: usize, scale: f32) -> f32 {
        softmax_row(x, n, scale)
    }
    unsafe fn softmax_cols(
        s: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
        first_visible: usize,
        scale: f32,
        sums: *mut f32,
    ) {
        softmax_cols(s, ld, rows, cols, first_visible, scale, sums)
    }
}

/// Lane mask: all ones in the first `n` of 4 lanes.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn lanes(n: usize) -> uint32x4_t {
    const IOTA: [u32; 4] = [0, 1, 2, 3];
    vcltq_u32(vld1q_u32(IOTA.as_ptr()), vdupq_n_u32(n.min(4) as u32))
}

/// Loads `n` f32 (all 4 if `n ≥ 4`; zero beyond).
#[target_feature(enable = "neon")]
#[inline]
pub(crate) unsafe fn load_n(p: *const f32, n: usize) -> float32x4_t {
    if n >= 4 {
        vld1q_f32(p)
    } else {
        let mut tmp = [0.0f32; 4];
        std::ptr::copy_nonoverlapping(p, tmp.as_mut_ptr(), n);
        vld1q_f32(tmp.as_ptr())
    }
}

/// Stores the first `n` lanes (all 4 if `n ≥ 4`).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn store_n(p: *mut f32, n: usize, v: float32x4_t) {
    if n >= 4 {
        vst1q_f32(p, v)
    } else {
        let mut tmp = [0.0f32; 4];
        vst1q_f32(tmp.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(tmp.as_ptr(), p, n);
    }
}

/// Four halves (raw bits) to f32: `fcvtl` (see the module docs).
#[target_feature(enable = "neon")]
#[inline]
pub(crate) unsafe fn cvt_f16x4(h: uint16x4_t) -> float32x4_t {
    let r: float32x4_t;
    asm!(
        "fcvtl {r:v}.4s, {h:v}.4h",
        r = out(vreg) r,
        h = in(vreg) h,
        options(pure, nomem, nostack, preserves_flags)
    );
    r
}

/// Loads `n` halves (all 4 if `n ≥ 4`; zero beyond) as f32.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) unsafe fn load_f16(p: *const u16, n: usize) -> float32x4_t {
    if n >= 4 {
        cvt_f16x4(vld1_u16(p))
    } else {
        let mut tmp = [0u16; 4];
        std::ptr::copy_nonoverlapping(p, tmp.as_mut_ptr(), n);
        cvt_f16x4(vld1_u16(tmp.as_ptr()))
    }
}

/// Loads `n` elements (f16 bits if `F16`, else f32) as f32, zero beyond.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn load_w<const F16: bool>(p: *const u8, n: usize) -> float32x4_t {
    if F16 {
        load_f16(p.cast(), n)
    } else {
        load_n(p.cast(), n)
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn kernel<const R: usize>(cols: usize, k: usize, a: Lhs, b: Panel, c: Out, init: Init) {
    let (a, a_rs, a_ps) = (a.ptr, a.row_stride, a.k_stride);
    let (b, ldb) = (b.ptr, b.k_stride);
    let (c, ldc) = (c.ptr, c.row_stride);
    // Accumulators for MR rows; only the first R are used.
    let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
    if let Init::Bias(bias) = init {
        let bv: [float32x4_t; 4] = std::array::from_fn(|t| vld1q_f32(bias.add(4 * t)));
        acc = [bv; MR];
    }
    // Rows of A through two base pointers (row 3g + o at base_g + o·a_rs),
    // hidden from LLVM so it does not rebuild one chain of dependent adds
    // through all the rows (as the x86 kernels do).
    let mut base: [*const f32; 2] = std::array::from_fn(|g| a.wrapping_add(3 * g * a_rs));
    #[allow(clippy::pointers_in_nomem_asm_block)] // the asm only passes the value through
    for p in &mut base {
        asm!(
            "/* {0} */",
            inout(reg) * p,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    let mut bp = b;
    for _ in 0..k {
        let bv: [float32x4_t; 4] = std::array::from_fn(|t| vld1q_f32(bp.add(4 * t)));
        macro_rules! row {
            ($($r:literal $g:literal $o:literal),*) => {$(
                if $r < R {
                    let av = vld1q_dup_f32(base[$g].add($o * a_rs));
                    for t in 0..4 {
                        acc[$r][t] = vfmaq_f32(acc[$r][t], av, bv[t]);
                    }
                }
            )*};
        }
        row!(0 0 0, 1 0 1, 2 0 2, 3 1 0, 4 1 1, 5 1 2);
        for p in &mut base {
            *p = p.wrapping_add(a_ps);
        }
        bp = bp.add(ldb);
    }
    for r in 0..R {
        for t in 0..4 {
            let w = cols.saturating_sub(4 * t);
            if w > 0 {
                store_n(c.add(r * ldc + 4 * t), w, acc[r][t]);
            }
        }
    }
}

/// Transposes 4 vectors (rows) into 4 vectors (columns).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn transpose4(r: [float32x4_t; 4]) -> [float32x4_t; 4] {
    // [a0 b0 a2 b2], [a1 b1 a3 b3], [c0 d0 c2 d2], [c1 d1 c3 d3].
    let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
    let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
    let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
    let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
    [
        vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
        vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
        vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
    ]
}

/// 4 × 4 blocks: load 4 rows' next 4 elements, transpose, store 4 panel rows
/// (each 4 of the panel's 16 columns).
#[target_feature(enable = "neon")]
unsafe fn pack_b<const F16: bool>(src: *const u8, ld: usize, rows: usize, k: usize, dst: *mut f32) {
    let elem = if F16 { 2 } else { 4 };
    for g in 0..NR / 4 {
        let valid = rows.saturating_sub(4 * g).min(4);
        let mut p = 0;
        while p < k {
            let kk = (k - p).min(4);
            let r: [float32x4_t; 4] = std::array::from_fn(|i| {
                if i < valid {
                    load_w::<F16>(src.add(((4 * g + i) * ld + p) * elem), kk)
                } else {
                    vdupq_n_f32(0.0)
                }
            });
            let t = transpose4(r);
            for (i, v) in t.iter().enumerate().take(kk) {
                vst1q_f32(dst.add((p + i) * NR + 4 * g), *v);
            }
            p += 4;
        }
    }
}

/// The canonical reduction of 16 lanes held in four registers (see
/// `scalar::reduce`): lane i + i+8, then i + i+4, i + i+2, i + i+1.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) unsafe fn hsum16(v: [float32x4_t; 4]) -> f32 {
    let s4 = vaddq_f32(vaddq_f32(v[0], v[2]), vaddq_f32(v[1], v[3]));
    let s2 = vadd_f32(vget_low_f32(s4), vget_high_f32(s4));
    vget_lane_f32::<0>(s2) + vget_lane_f32::<1>(s2)
}

/// Loads `n` elements (f16 bits if `F16`) into 16 lanes, zero beyond; `p`
/// need not be valid for lanes ≥ `n`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn load16<const F16: bool>(p: *const u8, n: usize) -> [float32x4_t; 4] {
    let elem = if F16 { 2 } else { 4 };
    std::array::from_fn(|q| match n.saturating_sub(4 * q) {
        0 => vdupq_n_f32(0.0),
        m => load_w::<F16>(p.wrapping_add(4 * q * elem), m),
    })
}

/// One x row against four weight rows in the canonical order: 16 lanes (four
/// registers) per column, the tail zero-padded.
#[target_feature(enable = "neon")]
unsafe fn dot_tile<const F16: bool>(
    cols: usize,
    k: usize,
    x: *const f32,
    w: [*const u8; 4],
    bias: *const f32,
    out: *mut f32,
) {
    let elem = if F16 { 2 } else { 4 };
    let mut acc = [[vdupq_n_f32(0.0); 4]; 4];
    let mut p = 0;
    while p < k {
        let xv = load16::<false>(x.add(p).cast(), k - p);
        for c in 0..4 {
            let wv = load16::<F16>(w[c].add(p * elem), k - p);
            for q in 0..4 {
                acc[c][q] = vfmaq_f32(acc[c][q], xv[q], wv[q]);
            }
        }
        p += 16;
    }
    for c in 0..cols {
        let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
        *out.add(c) = hsum16(acc[c]) + b;
    }
}

/// The canonical fold of sixteen lane sums held as four vectors (lanes
/// 0..4, 4..8, 8..12, 12..16; see `scalar::dot16`): lanes `i` and `i + 8`,
/// then `i + 4`, `i + 2`, `i + 1`. (`vaddvq` pairs neighbours instead.)
#[target_feature(enable = "neon")]
#[inline]
unsafe fn fold16(a: [float32x4_t; 4]) -> f32 {
    let t = vaddq_f32(vaddq_f32(a[0], a[2]), vaddq_f32(a[1], a[3]));
    let h = vadd_f32(vget_low_f32(t), vget_high_f32(t));
    vget_lane_f32::<0>(h) + vget_lane_f32::<1>(h)
}

#[target_feature(enable = "neon")]
unsafe fn dots<const F16: bool>(
    q: *const f32,
    k: *const u8,
    ldk: usize,
    n: usize,
    d: usize,
    out: *mut f32,
) {
    let elem = if F16 { 2 } else { 4 };
    let mut j = 0;
    while j < n {
        let jj = (n - j).min(2);
        let mut acc = [[vdupq_n_f32(0.0); 4]; 2];
        let mut p = 0;
        while p < d {
            for v in 0..4 {
                let (at, nn) = (p + 4 * v, d.saturating_sub(p + 4 * v));
                let qv = if nn > 0 {
                    load_n(q.add(at), nn)
                } else {
                    vdupq_n_f32(0.0)
                };
                for (t, a) in acc.iter_mut().enumerate().take(jj) {
                    let kv = if nn > 0 {
                        load_w::<F16>(k.add(((j + t) * ldk + at) * elem), nn)
                    } else {
                        vdupq_n_f32(0.0)
                    };
                    a[v] = vfmaq_f32(a[v], qv, kv);
                }
            }
            p += 16;
        }
        for (t, a) in acc.iter().enumerate().take(jj) {
            *out.add(j + t) = fold16(*a);
        }
        j += 2;
    }
}

#[target_feature(enable = "neon")]
unsafe fn weighted_sum<const F16: bool>(
    w: *const f32,
    v: *const u8,
    ldv: usize,
    n: usize,
    d: usize,
    out: *mut f32,
) {
    let elem = if F16 { 2 } else { 4 };
    // Eight vectors (32 columns) per pass over the rows.
    let mut c0 = 0;
    while c0 < d {
        let widths: [usize; 8] = std::array::from_fn(|t| d.saturating_sub(c0 + 4 * t).min(4));
        let mut acc = [vdupq_n_f32(0.0); 8];
        for j in 0..n {
            let wj = vdupq_n_f32(*w.add(j));
            let row = v.add((j * ldv + c0) * elem);
            for t in 0..8 {
                if widths[t] > 0 {
                    let x = load_w::<F16>(row.add(4 * t * elem), widths[t]);
                    acc[t] = vfmaq_f32(acc[t], wj, x);
                }
            }
        }
        for t in 0..8 {
            if widths[t] > 0 {
                store_n(out.add(c0 + 4 * t), widths[t], acc[t]);
            }
        }
        c0 += 32;
    }
}

/// Softmax weights `exp(x)` in the lanes of `keep`, flushed to zero where
/// `x < EXP_MIN` (or NaN): they would only add subnormal products.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn weight(x: float32x4_t, keep: uint32x4_t) -> float32x4_t {
    let keep = vandq_u32(keep, vcgeq_f32(x, vdupq_n_f32(EXP_MIN)));
    vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(exp(x)), keep))
}

#[target_feature(enable = "neon")]
unsafe fn scale(x: *mut f32, n: usize, alpha: f32) {
    let mut i = 0;
    while i < n {
        let nn = n - i;
        store_n(x.add(i), nn, vmulq_n_f32(load_n(x.add(i), nn), alpha));
        i += 4;
    }
}

/// e^x, relative error ~2 ulp on [EXP_MIN, EXP_MAX] (inputs clamped to it):
/// x = n·ln2 + r, e^r by the Cephes polynomial, 2ⁿ from exponent bits.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn exp(x: float32x4_t) -> float32x4_t {
    let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(EXP_MIN)), vdupq_n_f32(EXP_MAX));
    // Round to nearest, ties to even (as the x86 kernels).
    let n = vrndnq_f32(vmulq_n_f32(x, std::f32::consts::LOG2_E));
    let r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
    let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
    let mut p = vdupq_n_f32(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        p = vfmaq_f32(vdupq_n_f32(c), p, r);
    }
    let r2 = vmulq_f32(r, r);
    let e = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0));
    let pow2n = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(
        vcvtq_s32_f32(n),
        vdupq_n_s32(127),
    )));
    vmulq_f32(e, pow2n)
}

#[target_feature(enable = "neon")]
unsafe fn softmax_row(x: *mut f32, n: usize, scale: f32) -> f32 {
    let ninf = vdupq_n_f32(f32::NEG_INFINITY);
    let mut vmax = ninf;
    let mut i = 0;
    while i < n {
        let nn = n - i;
        let v = vbslq_f32(lanes(nn), load_n(x.add(i), nn), ninf);
        vmax = vmaxq_f32(vmax, v);
        i += 4;
    }
    let max = vdupq_n_f32(vmaxvq_f32(vmax));
    // The canonical sixteen lane sums, four vectors.
    let mut sum = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i < n {
        let nn = n - i;
        let e = weight(
            vmulq_n_f32(vsubq_f32(load_n(x.add(i), nn), max), scale),
            lanes(nn),
        );
        store_n(x.add(i), nn, e);
        let v = (i / 4) % 4;
        sum[v] = vaddq_f32(sum[v], e);
        i += 4;
    }
    fold16(sum)
}

#[target_feature(enable = "neon")]
unsafe fn softmax_cols(
    st: *mut f32,
    ld: usize,
    rows: usize,
    cols: usize,
    first_visible: usize,
    scale: f32,
    sums: *mut f32,
) {
    const IOTA: [u32; 4] = [0, 1, 2, 3];
    let iota = vld1q_u32(IOTA.as_ptr());
    // Column c sees row j iff first_visible + c > j; clamp to keep u32 range.
    let first = first_visible.min(rows + 1) as u32;
    let ninf = vdupq_n_f32(f32::NEG_INFINITY);
    let mut c0 = 0;
    while c0 < cols {
        let cm = lanes(cols - c0);
        let limit = vaddq_u32(iota, vdupq_n_u32(first + c0 as u32));
        let visible = |j: usize| vandq_u32(cm, vcgtq_u32(limit, vdupq_n_u32(j as u32)));
        let mut vmax = ninf;
        for j in 0..rows {
            let v = vbslq_f32(visible(j), vld1q_f32(st.add(j * ld + c0)), ninf);
            vmax = vmaxq_f32(vmax, v);
        }
        let mut sum = vdupq_n_f32(0.0);
        for j in 0..rows {
            // `ld` is a multiple of 4, so the whole vector is inside the row;
            // lanes past `cols` are written back unchanged.
            let p = st.add(j * ld + c0);
            let s = vld1q_f32(p);
            let e = weight(vmulq_n_f32(vsubq_f32(s, vmax), scale), visible(j));
            vst1q_f32(p, vbslq_f32(cm, e, s));
            sum = vaddq_f32(sum, e);
        }
        store_n(sums.add(c0), cols - c0, sum);
        c0 += 4;
    }
}

#[target_feature(enable = "neon")]
unsafe fn layer_norm_impl(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
    // The canonical order (see `scalar::layer_norm`): 16 lanes in four registers.
    let inv_d = 1.0 / d as f32;
    for (row, out_row) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let (xp, op) = (row.as_ptr(), out_row.as_mut_ptr());
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i < d {
            let v = load16::<false>(xp.add(i).cast(), d - i);
            for q in 0..4 {
                acc[q] = vaddq_f32(acc[q], v[q]);
            }
            i += 16;
        }
        let mean = vdupq_n_f32(hsum16(acc) * inv_d);
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i < d {
            let nn = d - i;
            let v = load16::<false>(xp.add(i).cast(), nn);
            for q in 0..4 {
                let c = vsubq_f32(v[q], mean);
                let m = lanes(nn.saturating_sub(4 * q));
                let c = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(c), m));
                acc[q] = vfmaq_f32(acc[q], c, c);
            }
            i += 16;
        }
        let inv_std = 1.0 / (hsum16(acc) * inv_d + 1e-5).sqrt();
        let mut i = 0;
        while i < d {
            let nn = d - i;
            let c = vsubq_f32(load_n(xp.add(i), nn), mean);
            let g = load_n(gamma.as_ptr().add(i), nn);
            let b = load_n(beta.as_ptr().add(i), nn);
            store_n(op.add(i), nn, vfmaq_f32(b, vmulq_n_f32(c, inv_std), g));
            i += 4;
        }
    }
}

/// GELU on one vector; the formula of `scalar::gelu_one`, in f32.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn gelu_vec(x: float32x4_t) -> float32x4_t {
    let abs = vabsq_f32(x);
    let z = vmulq_n_f32(abs, std::f32::consts::FRAC_1_SQRT_2);
    let one = vdupq_n_f32(1.0);
    let half = vdupq_n_f32(0.5);
    let t = vdivq_f32(one, vfmaq_f32(one, z, half));
    let mut q = vdupq_n_f32(ERFC_POLY[0]);
    for &c in &ERFC_POLY[1..] {
        q = vfmaq_f32(vdupq_n_f32(c), q, t);
    }
    // e^(−z²) with z² = x²/2 from an exact product (FMA gives the low
    // part): rounding z first would cost a relative error of 2·u·z².
    let xs = vminq_f32(abs, vdupq_n_f32(16.0));
    let hi = vmulq_f32(xs, xs);
    let lo = vfmaq_f32(vnegq_f32(hi), xs, xs);
    let arg = vfmsq_f32(vfmsq_f32(q, half, hi), half, lo);
    let half_erfc = vmulq_f32(vmulq_f32(half, t), exp(arg));
    let negative = vcltzq_f32(x);
    let phi = vbslq_f32(negative, half_erfc, vsubq_f32(one, half_erfc));
    vmulq_f32(x, phi)
}

#[target_feature(enable = "neon")]
unsafe fn gelu_impl(x: &mut [f32]) {
    let (p, n) = (x.as_mut_ptr(), x.len());
    let mut i = 0;
    while i < n {
        let nn = n - i;
        store_n(p.add(i), nn, gelu_vec(load_n(p.add(i), nn)));
        i += 4;
    }
}

/// `dst[i] = f32(src[i])` for `i < n`, eight halves per step.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn f16_to_f32_impl(src: *const u16, n: usize, dst: *mut f32) {
    let mut i = 0;
    while i + 8 <= n {
        let h = vld1q_u16(src.add(i));
        vst1q_f32(dst.add(i), cvt_f16x4(vget_low_u16(h)));
        vst1q_f32(dst.add(i + 4), cvt_f16x4(vget_high_u16(h)));
        i += 8;
    }
    while i < n {
        let nn = n - i;
        store_n(dst.add(i), nn, load_f16(src.add(i), nn));
        i += 4;
    }
}
