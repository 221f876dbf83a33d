//! AVX-512 (F, BW, VL) kernels, with FMA and F16C: 16 f32 lanes, 32 vector
//! registers, mask registers for every tail.
//!
//! Micro-kernel: 12 rows × 32 columns (2 vectors) = 24 accumulators + 2 B
//! vectors; each k step does 2 loads, 12 broadcasts (folded into the FMAs as
//! memory operands) and 24 FMAs, so it is FMA-bound, not load-bound.

use std::arch::x86_64::*;

use super::{ERFC_POLY, EXP_MAX, EXP_MIN, EXP_POLY, LN2_HI, LN2_LO};
use crate::attention::{self, Kv};
use crate::dispatch::{Isa, Table};
use crate::operands::{Lhs, Out, Panel, Tile};
use crate::simd::{Init, Simd};
use crate::{gemm, AttentionShape, Pool, Weights};

pub(crate) static TABLE: Table = Table {
    isa: Isa::Avx512,
    linear,
    linear_packed: crate::packed::linear::<Avx512>,
    layer_norm,
    gelu,
    attention,
    attention_f16,
    f16_to_f32,
    max_exp_sum,
    probes: &super::probe::AVX512,
};

/// AVX-512 with VNNI: the same kernels, but int8 × int8 layers use `vpdpbusd`.
pub(crate) static VNNI_TABLE: Table = Table {
    isa: Isa::Avx512Vnni,
    linear,
    linear_packed: crate::packed::linear::<super::packed_avx512::Avx512Vnni>,
    layer_norm,
    gelu,
    attention,
    attention_f16,
    f16_to_f32,
    max_exp_sum,
    probes: &super::probe::AVX512_VNNI,
};

/// AVX-512 VNNI with AMX: the same kernels, but the int8 × int8 GEMM uses
/// tile `tdpbsud` (`x86/amx.rs`).
pub(crate) static AMX_TABLE: Table = Table {
    isa: Isa::Avx512Amx,
    linear,
    linear_packed: crate::packed::linear::<super::amx::Avx512Amx>,
    layer_norm,
    gelu,
    attention,
    attention_f16,
    f16_to_f32,
    max_exp_sum,
    probes: &super::probe::AVX512_AMX,
};

// The table's entries: safe because `dispatch::table` hands TABLE out only
// on a CPU with avx512f/bw/vl, fma and f16c.

#[allow(clippy::too_many_arguments)]
fn linear(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: Weights,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    gemm::linear::<Avx512>(pool, x, m, k, w, n, bias, out)
}
fn attention(pool: &Pool, q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, out: &mut [f32]) {
    attention::attention::<Avx512>(pool, q, Kv::F32(k), Kv::F32(v), s, out)
}
fn attention_f16(pool: &Pool, q: &[f32], k: &[u16], v: &[u16], s: AttentionShape, out: &mut [f32]) {
    attention::attention::<Avx512>(pool, q, Kv::F16(k), Kv::F16(v), s, out)
}
fn layer_norm(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
    // Safety: CPU support checked by dispatch; lengths checked by lib.rs.
    unsafe { layer_norm_impl(x, d, gamma, beta, out) }
}
fn gelu(x: &mut [f32]) {
    // Safety: CPU support checked by dispatch.
    unsafe { gelu_impl(x) }
}
fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    // Safety: CPU support checked by dispatch; dst.len() == src.len().
    unsafe { f16_to_f32_impl(src, dst) }
}
fn max_exp_sum(x: &[f32]) -> (f32, f64) {
    // Safety: CPU support checked by dispatch.
    unsafe { max_exp_sum_impl(x) }
}

pub(crate) struct Avx512;

const MR: usize = 12;
const NR: usize = 32;

impl Simd for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;
    const QB: usize = 96;
    const DOT_ROWS: usize = 8;

    unsafe fn pack_b(src: *const u8, f16: bool, ld: usize, rows: usize, k: usize, dst: *mut f32) {
        pack_b(src, f16, ld, rows, k, dst)
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
        call!(1 2 3 4 5 6 7 8 9 10 11 12)
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
        macro_rules! call {
            ($($r:literal)*) => {
                match (rows, f16) {
                    $(($r, true) => dot_tile::<$r, true>(cols, k, x, ldx, w, bias, out, ldo),
                      ($r, false) => dot_tile::<$r, false>(cols, k, x, ldx, w, bias, out, ldo),)*
                    _ => unreachable!("dot tile rows {rows}"),
                }
            };
        }
        call!(1 2 3 4 5 6 7 8)
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
    unsafe fn dots_multi(
        q: *const f32,
        ldq: usize,
        nq: usize,
        k: *const u8,
        f16: bool,
        ldk: usize,
        n: usize,
        d: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        macro_rules! call {
            ($($r:literal)*) => {
                match (nq, f16) {
                    $(($r, true) => dots_multi::<true, $r>(q, ldq, k, ldk, n, d, out, ldo),
                      ($r, false) => dots_multi::<false, $r>(q, ldq, k, ldk, n, d, out, ldo),)*
                    _ => for i in 0..nq {
                        Self::dots(q.add(i * ldq), k, f16, ldk, n, d, out.add(i * ldo));
                    },
                }
            };
        }
        call!(2 3 4 5 6 7)
    }
    unsafe fn weighted_sum_multi(
        w: *const f32,
        ldw: usize,
        nq: usize,
        v: *const u8,
        f16: bool,
        ldv: usize,
        n: usize,
        d: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        macro_rules! call {
            ($($r:literal)*) => {
                match (nq, f16) {
                    $(($r, true) => weighted_sum_multi::<true, $r>(w, ldw, v, ldv, n, d, out, ldo),
                      ($r, false) => weighted_sum_multi::<false, $r>(w, ldw, v, ldv, n, d, out, ldo),)*
                    _ => for i in 0..nq {
                        Self::weighted_sum(w.add(i * ldw), v, f16, ldv, n, d, out.add(i * ldo));
                    },
                }
            };
        }
        call!(2 3 4 5 6 7)
    }
    unsafe fn cvt_f16(src: *const u16, n: usize, dst: *mut f32) {
        f16_to_f32_impl(
            std::slice::from_raw_parts(src, n),
            std::slice::from_raw_parts_mut(dst, n),
        )
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

/// Mask of the first `n` (≤ 16) lanes.
#[inline]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// Loads `n ≤ 16` elements (f16 bits if `F16`) as f32, zero beyond.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
unsafe fn load_w<const F16: bool>(p: *const u8, mask: __mmask16) -> __m512 {
    if F16 {
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p.cast()))
    } else {
        _mm512_maskz_loadu_ps(mask, p.cast())
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn kernel<const R: usize>(cols: usize, k: usize, a: Lhs, b: Panel, c: Out, init: Init) {
    let (a, a_rs, a_ps) = (a.ptr, a.row_stride, a.k_stride);
    let (b, ldb) = (b.ptr, b.k_stride);
    let (c, ldc) = (c.ptr, c.row_stride);
    // Accumulators for MR rows; only the first R are used (and allocated
    // to registers: the rest are dead code for this R).
    let (mut lo, mut hi) = ([_mm512_setzero_ps(); MR], [_mm512_setzero_ps(); MR]);
    if let Init::Bias(bias) = init {
        let (b0, b1) = (_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16)));
        lo = [b0; MR];
        hi = [b1; MR];
    }
    // Rows of A through four base pointers, row 3g + o at base_g + o·a_rs:
    // four independent increments per k step rather than one chain of
    // dependent adds through all twelve rows (which limits the loop to one
    // row per cycle). The rows are spelled out so the loop body is fully
    // unrolled whatever LLVM's unrolling heuristics decide.
    let mut base: [*const f32; 4] = std::array::from_fn(|g| a.wrapping_add(3 * g * a_rs));
    #[allow(clippy::pointers_in_nomem_asm_block)] // the asm only passes the value through
    for p in &mut base {
        // Hide how the bases relate, or LLVM rebuilds the chain from one.
        std::arch::asm!("/* {0} */", inout(reg) * p, options(pure, nomem, nostack));
    }
    let mut bp = b;
    for _ in 0..k {
        let b0 = _mm512_loadu_ps(bp);
        let b1 = _mm512_loadu_ps(bp.add(16));
        macro_rules! row {
            ($($r:literal $g:literal $o:literal),*) => {$(
                if $r < R {
                    let av = _mm512_set1_ps(*base[$g].add($o * a_rs));
                    lo[$r] = _mm512_fmadd_ps(av, b0, lo[$r]);
                    hi[$r] = _mm512_fmadd_ps(av, b1, hi[$r]);
                }
            )*};
        }
        row!(0 0 0, 1 0 1, 2 0 2, 3 1 0, 4 1 1, 5 1 2, 6 2 0, 7 2 1, 8 2 2, 9 3 0, 10 3 1, 11 3 2);
        for p in &mut base {
            *p = p.wrapping_add(a_ps);
        }
        bp = bp.add(ldb);
    }
    let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
    for r in 0..R {
        _mm512_mask_storeu_ps(c.add(r * ldc), m0, lo[r]);
        _mm512_mask_storeu_ps(c.add(r * ldc + 16), m1, hi[r]);
    }
}

/// Transposes 16 vectors (rows) into 16 vectors (columns): 4 shuffle stages.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
pub(crate) unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // 1: interleave row pairs' 32-bit elements within each 128-bit lane.
    let a: [__m512; 16] = std::array::from_fn(|i| {
        let (x, y) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(x, y)
        } else {
            _mm512_unpackhi_ps(x, y)
        }
    });
    // 2: interleave 64-bit pairs: b[4i + c] holds, in lane L, rows 4i..4i+4
    //    of column 4L + c.
    let b: [__m512; 16] = std::array::from_fn(|j| {
        let (i, c) = (j / 4, j % 4);
        let (x, y) = (
            _mm512_castps_pd(a[4 * i + c / 2]),
            _mm512_castps_pd(a[4 * i + 2 + c / 2]),
        );
        _mm512_castpd_ps(if c % 2 == 0 {
            _mm512_unpacklo_pd(x, y)
        } else {
            _mm512_unpackhi_pd(x, y)
        })
    });
    // 3 + 4: a 4 × 4 transpose of 128-bit lanes for each c.
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let (b0, b1, b2, b3) = (b[c], b[4 + c], b[8 + c], b[12 + c]);
        let c0 = _mm512_shuffle_f32x4::<0x44>(b0, b1);
        let c1 = _mm512_shuffle_f32x4::<0xee>(b0, b1);
        let c2 = _mm512_shuffle_f32x4::<0x44>(b2, b3);
        let c3 = _mm512_shuffle_f32x4::<0xee>(b2, b3);
        out[c] = _mm512_shuffle_f32x4::<0x88>(c0, c2);
        out[4 + c] = _mm512_shuffle_f32x4::<0xdd>(c0, c2);
        out[8 + c] = _mm512_shuffle_f32x4::<0x88>(c1, c3);
        out[12 + c] = _mm512_shuffle_f32x4::<0xdd>(c1, c3);
    }
    out
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn pack_b(src: *const u8, f16: bool, ld: usize, rows: usize, k: usize, dst: *mut f32) {
    if f16 {
        pack_b_typed::<true>(src, ld, rows, k, dst)
    } else {
        pack_b_typed::<false>(src, ld, rows, k, dst)
    }
}

/// 16 × 16 blocks: load 16 rows' next 16 elements, transpose, store 16
/// panel rows (each 16 of the panel's 32 columns).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn pack_b_typed<const F16: bool>(
    src: *const u8,
    ld: usize,
    rows: usize,
    k: usize,
    dst: *mut f32,
) {
    let elem = if F16 { 2 } else { 4 };
    for g in 0..NR / 16 {
        let valid = rows.saturating_sub(16 * g).min(16);
        let mut p = 0;
        while p < k {
            let kk = (k - p).min(16);
            let mask = lanes(kk);
            let r: [__m512; 16] = std::array::from_fn(|i| {
                if i < valid {
                    load_w::<F16>(src.add(((16 * g + i) * ld + p) * elem), mask)
                } else {
                    _mm512_setzero_ps()
                }
            });
            let t = transpose16(r);
            for (i, v) in t.iter().enumerate().take(kk) {
                _mm512_storeu_ps(dst.add((p + i) * NR + 16 * g), *v);
            }
            p += 16;
        }
    }
}

/// The canonical reduction of 16 lanes (see `scalar::reduce`): lane i + i+8,
/// then i + i+4, i + i+2, i + i+1.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
pub(crate) unsafe fn hsum16(v: __m512) -> f32 {
    let s = _mm256_add_ps(
        _mm512_castps512_ps256(v),
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
    );
    let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn dot_tile<const R: usize, const F16: bool>(
    cols: usize,
    k: usize,
    x: *const f32,
    ldx: usize,
    w: [*const u8; 4],
    bias: *const f32,
    out: *mut f32,
    ldo: usize,
) {
    let elem = if F16 { 2 } else { 4 };
    // One weight row after the other, its bytes in address order (the tile's
    // rows are consecutive): four interleaved row streams left the hardware
    // prefetchers at a third of the DRAM rate on the vocabulary projection at
    // m = 1, and two still made beam search's m = 5 steps slower than one.
    // The R rows' FMA chains interleave (R ≥ 4 hides the FMA latency); each
    // runs along k in the canonical order.
    for c in 0..cols {
        let mut acc = [_mm512_setzero_ps(); R];
        let mut p = 0;
        while p < k {
            let mask = lanes(k - p);
            let wv = load_w::<F16>(w[c].add(p * elem), mask);
            for (r, a) in acc.iter_mut().enumerate() {
                let xv = _mm512_maskz_loadu_ps(mask, x.add(r * ldx + p));
                *a = _mm512_fmadd_ps(xv, wv, *a);
            }
            p += 16;
        }
        let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
        for (r, a) in acc.iter().enumerate() {
            *out.add(r * ldo + c) = hsum16(*a) + b;
        }
    }
}

/// The canonical fold of sixteen lane sums (`scalar::dot16`): lanes `i` and
/// `i + 8`, then `i + 4`, `i + 2`, `i + 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
unsafe fn fold16(v: __m512) -> f32 {
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let s = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
    let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// [`fold16`] of sixteen vectors at once: lane `j` of the result is
/// `fold16(v[j])`, bit for bit — each step adds the same lane pairs as
/// `fold16` (lanes i and i + 8, then i + 4, i + 2, i + 1), two vectors'
/// halves (then quarters, pairs, lanes) brought side by side by a shuffle,
/// so one add serves several keys: 15 adds and 30 shuffles instead of 16 ×
/// 4 adds and 4 extracts.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
unsafe fn fold16x16(v: &[__m512; 16]) -> __m512 {
    // Step s pairs vectors so that, after the last, lane 4c + e holds the
    // sum of input 4e + c; feeding input 4e + c with v[4c + e] puts v[j]'s
    // sum in lane j.
    let inp: [__m512; 16] = std::array::from_fn(|i| v[4 * (i % 4) + i / 4]);
    // Lanes i + (i + 8): halves of inputs 2m | 2m + 1.
    let p: [__m512; 8] = std::array::from_fn(|m| {
        let (a, b) = (inp[2 * m], inp[2 * m + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(a, b),
            _mm512_shuffle_f32x4::<0xEE>(a, b),
        )
    });
    // + (i + 4): quarters of inputs 4n .. 4n + 4.
    let r: [__m512; 4] = std::array::from_fn(|n| {
        let (a, b) = (p[2 * n], p[2 * n + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(a, b),
            _mm512_shuffle_f32x4::<0xDD>(a, b),
        )
    });
    // + (i + 2): quarter c holds inputs 8u + c and 8u + 4 + c, two lanes each.
    let t: [__m512; 2] = std::array::from_fn(|u| {
        let (a, b) = (_mm512_castps_pd(r[2 * u]), _mm512_castps_pd(r[2 * u + 1]));
        _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
        )
    });
    // + (i + 1): quarter c holds inputs c, 4 + c, 8 + c, 12 + c.
    _mm512_add_ps(
        _mm512_shuffle_ps::<0x88>(t[0], t[1]),
        _mm512_shuffle_ps::<0xDD>(t[0], t[1]),
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn dots<const F16: bool>(
    q: *const f32,
    k: *const u8,
    ldk: usize,
    n: usize,
    d: usize,
    out: *mut f32,
) {
    let elem = if F16 { 2 } else { 4 };
    let ahead = crate::tuning::PREFETCH_KEYS;
    let mut j = 0;
    // Sixteen keys at a time, their lane sums folded together.
    while j + 16 <= n {
        let mut acc = [_mm512_setzero_ps(); 16];
        let mut p = 0;
        while p < d {
            let mask = lanes(d - p);
            if ahead > 0 && (p * elem) % 64 == 0 {
                for t in 0..16 {
                    let r = k.wrapping_add(((j + t + ahead) * ldk + p) * elem);
                    _mm_prefetch::<_MM_HINT_T0>(r.cast());
                }
            }
            let qv = _mm512_maskz_loadu_ps(mask, q.add(p));
            for (t, a) in acc.iter_mut().enumerate() {
                let kv = load_w::<F16>(k.add(((j + t) * ldk + p) * elem), mask);
                *a = _mm512_fmadd_ps(qv, kv, *a);
            }
            p += 16;
        }
        _mm512_storeu_ps(out.add(j), fold16x16(&acc));
        j += 16;
    }
    while j < n {
        let jj = (n - j).min(4);
        let mut acc = [_mm512_setzero_ps(); 4];
        if ahead > 0 {
            for t in 0..4 {
                let r = k.wrapping_add((j + t + ahead) * ldk * elem);
                let mut b = 0;
                while b < d * elem {
                    _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(b).cast());
                    b += 64;
                }
            }
        }
        let mut p = 0;
        while p < d {
            let mask = lanes(d - p);
            let qv = _mm512_maskz_loadu_ps(mask, q.add(p));
            for (t, a) in acc.iter_mut().enumerate().take(jj) {
                let kv = load_w::<F16>(k.add(((j + t) * ldk + p) * elem), mask);
                *a = _mm512_fmadd_ps(qv, kv, *a);
            }
            p += 16;
        }
        for (t, a) in acc.iter().enumerate().take(jj) {
            *out.add(j + t) = fold16(*a);
        }
        j += 4;
    }
}

/// [`dots`] for `Q` queries: each key vector is loaded (converted) once and
/// used by every query; each (query, key) accumulator takes the same FMAs in
/// the same order as in `dots`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn dots_multi<const F16: bool, const Q: usize>(
    q: *const f32,
    ldq: usize,
    k: *const u8,
    ldk: usize,
    n: usize,
    d: usize,
    out: *mut f32,
    ldo: usize,
) {
    let elem = if F16 { 2 } else { 4 };
    let mut j = 0;
    while j < n {
        let jj = (n - j).min(4);
        let mut acc = [[_mm512_setzero_ps(); 4]; Q];
        let mut p = 0;
        while p < d {
            let mask = lanes(d - p);
            let kv: [__m512; 4] = std::array::from_fn(|t| {
                if t < jj {
                    load_w::<F16>(k.add(((j + t) * ldk + p) * elem), mask)
                } else {
                    _mm512_setzero_ps()
                }
            });
            // All four accumulators every time (a missing key's are zero and
            // not stored): fixed trip counts keep them in registers.
            for (i, a) in acc.iter_mut().enumerate() {
                let qv = _mm512_maskz_loadu_ps(mask, q.add(i * ldq + p));
                for t in 0..4 {
                    a[t] = _mm512_fmadd_ps(qv, kv[t], a[t]);
                }
            }
            p += 16;
        }
        for (i, a) in acc.iter().enumerate() {
            for (t, v) in a.iter().enumerate().take(jj) {
                *out.add(i * ldo + j + t) = fold16(*v);
            }
        }
        j += 4;
    }
}

/// [`weighted_sum`] for `Q` weight rows: each value vector is loaded
/// (converted) once; each query's column chains are as in `weighted_sum`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn weighted_sum_multi<const F16: bool, const Q: usize>(
    w: *const f32,
    ldw: usize,
    v: *const u8,
    ldv: usize,
    n: usize,
    d: usize,
    out: *mut f32,
    ldo: usize,
) {
    let elem = if F16 { 2 } else { 4 };
    let mut c0 = 0;
    while c0 < d {
        let masks: [__mmask16; 4] = std::array::from_fn(|t| lanes(d.saturating_sub(c0 + 16 * t)));
        let mut acc = [[_mm512_setzero_ps(); 4]; Q];
        for j in 0..n {
            let row = v.add((j * ldv + c0) * elem);
            let x: [__m512; 4] = std::array::from_fn(|t| {
                if masks[t] != 0 {
                    load_w::<F16>(row.add(16 * t * elem), masks[t])
                } else {
                    _mm512_setzero_ps()
                }
            });
            for (i, a) in acc.iter_mut().enumerate() {
                let wj = _mm512_set1_ps(*w.add(i * ldw + j));
                for t in 0..4 {
                    if masks[t] != 0 {
                        a[t] = _mm512_fmadd_ps(wj, x[t], a[t]);
                    }
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            for t in 0..4 {
                _mm512_mask_storeu_ps(out.add(i * ldo + c0 + 16 * t), masks[t], a[t]);
            }
        }
        c0 += 64;
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn weighted_sum<const F16: bool>(
    w: *const f32,
    v: *const u8,
    ldv: usize,
    n: usize,
    d: usize,
    out: *mut f32,
) {
    let elem = if F16 { 2 } else { 4 };
    // Four vectors (64 columns, a Whisper head) per pass over the rows.
    let mut c0 = 0;
    while c0 < d {
        let masks: [__mmask16; 4] = std::array::from_fn(|t| lanes(d.saturating_sub(c0 + 16 * t)));
        let mut acc = [_mm512_setzero_ps(); 4];
        let ahead = crate::tuning::PREFETCH_KEYS;
        let span = (d - c0).min(64) * elem;
        for j in 0..n {
            let wj = _mm512_set1_ps(*w.add(j));
            let row = v.add((j * ldv + c0) * elem);
            if ahead > 0 {
                let r = row.wrapping_add(ahead * ldv * elem);
                let mut b = 0;
                while b < span {
                    _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(b).cast());
                    b += 64;
                }
            }
            for t in 0..4 {
                if masks[t] != 0 {
                    let x = load_w::<F16>(row.add(16 * t * elem), masks[t]);
                    acc[t] = _mm512_fmadd_ps(wj, x, acc[t]);
                }
            }
        }
        for t in 0..4 {
            _mm512_mask_storeu_ps(out.add(c0 + 16 * t), masks[t], acc[t]);
        }
        c0 += 64;
    }
}

/// Softmax weights `exp(x)`, flushed to zero where `x < EXP_MIN` (or NaN):
/// they would only add subnormal products.
///
/// A softmax argument is a score minus the maximum of its scores, times a
/// positive scale: ≤ 0, −∞ or NaN. So on every kept lane (EXP_MIN ≤ x ≤ 0)
/// [`exp`]'s clamps are identities and are left out here, with the same
/// value; the flush is the final `vscalefps`'s zero mask.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
unsafe fn weight(x: __m512, keep: __mmask16) -> __m512 {
    let keep = keep & _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_set1_ps(EXP_MIN));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let r2 = _mm512_mul_ps(r, r);
    let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    _mm512_maskz_scalef_ps(keep, e, n)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn scale(x: *mut f32, n: usize, alpha: f32) {
    let a = _mm512_set1_ps(alpha);
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        _mm512_mask_storeu_ps(
            x.add(i),
            m,
            _mm512_mul_ps(a, _mm512_maskz_loadu_ps(m, x.add(i))),
        );
        i += 16;
    }
}

/// e^x, relative error ~2 ulp on [EXP_MIN, EXP_MAX] (inputs clamped to it):
/// x = n·ln2 + r, e^r by the Cephes polynomial, 2ⁿ from exponent bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
unsafe fn exp(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(EXP_MIN)),
        _mm512_set1_ps(EXP_MAX),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let r2 = _mm512_mul_ps(r, r);
    let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    // e·2ⁿ in one instruction: n is an integer in [−126, 127], so this is
    // the product with 2ⁿ built from exponent bits, rounded the same way.
    _mm512_scalef_ps(e, n)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn softmax_row(x: *mut f32, n: usize, scale: f32) -> f32 {
    let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x.add(i)));
        i += 16;
    }
    let max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    let s = _mm512_set1_ps(scale);
    let mut sum = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        let arg = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x.add(i)), max), s);
        let e = weight(arg, m);
        _mm512_mask_storeu_ps(x.add(i), m, e);
        sum = _mm512_add_ps(sum, e);
        i += 16;
    }
    fold16(sum)
}

/// Column groups (16 columns each) one pass of [`softmax_cols`] holds.
const SOFTMAX_GROUPS: usize = 6;

/// Row by row across up to [`SOFTMAX_GROUPS`] column groups at once: each row
/// is read as contiguous vectors (the attention block's `ld` is 96, six
/// groups, so one pass covers the block), and rows every column sees (all of
/// them unless causal) need no visibility mask. Per column the operations
/// and their order are those of a column-by-column pass.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn softmax_cols(
    st: *mut f32,
    ld: usize,
    rows: usize,
    cols: usize,
    first_visible: usize,
    scale: f32,
    sums: *mut f32,
) {
    let mut c0 = 0;
    while c0 < cols {
        let groups = (cols - c0).div_ceil(16).min(SOFTMAX_GROUPS);
        macro_rules! call {
            ($($g:literal)*) => {
                match groups {
                    $($g => softmax_groups::<$g>(st.add(c0), ld, rows, cols - c0, first_visible + c0, scale, sums.add(c0)),)*
                    _ => unreachable!("softmax groups {groups}"),
                }
            };
        }
        call!(1 2 3 4 5 6);
        c0 += 16 * SOFTMAX_GROUPS;
    }
}

/// [`softmax_cols`] over `G` groups of 16 columns (`cols` > 16·(G − 1)).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn softmax_groups<const G: usize>(
    st: *mut f32,
    ld: usize,
    rows: usize,
    cols: usize,
    first_visible: usize,
    scale: f32,
    sums: *mut f32,
) {
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // Column c sees row j iff first_visible + c > j: rows below `first` are
    // seen by every column. Clamped to keep the i32 range.
    let first = first_visible.min(rows + 1);
    let all = first.min(rows);
    let cm: [__mmask16; G] = std::array::from_fn(|g| lanes(cols.saturating_sub(16 * g)));
    let limit: [__m512i; G] =
        std::array::from_fn(|g| _mm512_add_epi32(iota, _mm512_set1_epi32((first + 16 * g) as i32)));
    let mut vmax = [_mm512_set1_ps(f32::NEG_INFINITY); G];
    for j in 0..all {
        let row = st.add(j * ld);
        for g in 0..G {
            vmax[g] = _mm512_max_ps(vmax[g], _mm512_loadu_ps(row.add(16 * g)));
        }
    }
    for j in all..rows {
        let row = st.add(j * ld);
        let jv = _mm512_set1_epi32(j as i32);
        for g in 0..G {
            let vis = _mm512_cmpgt_epi32_mask(limit[g], jv);
            vmax[g] = _mm512_mask_max_ps(vmax[g], vis, vmax[g], _mm512_loadu_ps(row.add(16 * g)));
        }
    }
    let s = _mm512_set1_ps(scale);
    let mut sum = [_mm512_setzero_ps(); G];
    for j in 0..rows {
        let row = st.add(j * ld);
        let jv = _mm512_set1_epi32(j as i32);
        for g in 0..G {
            let vis = if j < all {
                cm[g]
            } else {
                cm[g] & _mm512_cmpgt_epi32_mask(limit[g], jv)
            };
            let p = row.add(16 * g);
            let e = weight(
                _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(p), vmax[g]), s),
                vis,
            );
            _mm512_mask_storeu_ps(p, cm[g], e);
            sum[g] = _mm512_add_ps(sum[g], e);
        }
    }
    for g in 0..G {
        _mm512_mask_storeu_ps(sums.add(16 * g), cm[g], sum[g]);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn layer_norm_impl(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
    let inv_d = 1.0 / d as f32;
    for (row, out_row) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let (xp, op) = (row.as_ptr(), out_row.as_mut_ptr());
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < d {
            acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(lanes(d - i), xp.add(i)));
            i += 16;
        }
        let mean = _mm512_set1_ps(hsum16(acc) * inv_d);
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < d {
            let m = lanes(d - i);
            let c = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, xp.add(i)), mean);
            acc = _mm512_fmadd_ps(c, c, acc);
            i += 16;
        }
        let inv_std = _mm512_set1_ps(1.0 / (hsum16(acc) * inv_d + 1e-5).sqrt());
        let mut i = 0;
        while i < d {
            let m = lanes(d - i);
            let c = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, xp.add(i)), mean);
            let g = _mm512_maskz_loadu_ps(m, gamma.as_ptr().add(i));
            let b = _mm512_maskz_loadu_ps(m, beta.as_ptr().add(i));
            _mm512_mask_storeu_ps(
                op.add(i),
                m,
                _mm512_fmadd_ps(_mm512_mul_ps(c, inv_std), g, b),
            );
            i += 16;
        }
    }
}

/// GELU on one vector; the formula of `scalar::gelu_one`, in f32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
unsafe fn gelu_vec(x: __m512) -> __m512 {
    let z = _mm512_mul_ps(
        _mm512_abs_ps(x),
        _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2),
    );
    let one = _mm512_set1_ps(1.0);
    let t = _mm512_div_ps(one, _mm512_fmadd_ps(z, _mm512_set1_ps(0.5), one));
    let mut q = _mm512_set1_ps(ERFC_POLY[0]);
    for &c in &ERFC_POLY[1..] {
        q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(c));
    }
    // e^(−z²) with z² = x²/2 from an exact product (FMA gives the low
    // part): rounding z first would cost a relative error of 2·u·z².
    let xs = _mm512_min_ps(_mm512_abs_ps(x), _mm512_set1_ps(16.0));
    let hi = _mm512_mul_ps(xs, xs);
    let lo = _mm512_fmsub_ps(xs, xs, hi);
    let half = _mm512_set1_ps(0.5);
    let arg = _mm512_fnmadd_ps(half, lo, _mm512_fnmadd_ps(half, hi, q));
    let half_erfc = _mm512_mul_ps(_mm512_mul_ps(half, t), exp(arg));
    let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
    let phi = _mm512_mask_blend_ps(negative, _mm512_sub_ps(one, half_erfc), half_erfc);
    _mm512_mul_ps(x, phi)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn gelu_impl(x: &mut [f32]) {
    let (p, n) = (x.as_mut_ptr(), x.len());
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        _mm512_mask_storeu_ps(p.add(i), m, gelu_vec(_mm512_maskz_loadu_ps(m, p.add(i))));
        i += 16;
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn f16_to_f32_impl(src: &[u16], dst: &mut [f32]) {
    let n = src.len();
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        let v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src.as_ptr().add(i).cast()));
        _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), m, v);
        i += 16;
    }
}

/// `scalar::max_exp_sum`: the sixteen f64 lane sums in two zmm (lanes 0–7
/// and 8–15 of each 16 elements).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn max_exp_sum_impl(x: &[f32]) -> (f32, f64) {
    let (p, n) = (x.as_ptr(), x.len());
    let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        // max(a, b) gives b when a is NaN: NaN elements are skipped.
        vmax = _mm512_mask_max_ps(vmax, m, _mm512_maskz_loadu_ps(m, p.add(i)), vmax);
        i += 16;
    }
    let max = _mm512_reduce_max_ps(vmax);
    if max == f32::NEG_INFINITY {
        return (max, 0.0);
    }
    let vm = _mm512_set1_ps(max);
    let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        let e = weight(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p.add(i)), vm), m);
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        let upper = _mm512_extracti64x4_epi64::<1>(_mm512_castps_si512(e));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castsi256_ps(upper)));
        i += 16;
    }
    let mut a = [0.0f64; 16];
    _mm512_storeu_pd(a.as_mut_ptr(), lo);
    _mm512_storeu_pd(a.as_mut_ptr().add(8), hi);
    (max, crate::scalar::fold16_f64(a))
}
