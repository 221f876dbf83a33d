//! AVX2 kernels, with FMA and F16C: 8 f32 lanes, 16 vector registers, no
//! mask registers (tails use `maskload`/`maskstore` for f32 and a small
//! zero-padded copy for f16).
//!
//! Micro-kernel: 6 rows × 16 columns (2 vectors) = 12 accumulators + 2 B
//! vectors + 1 broadcast = 15 of the 16 registers.

use std::arch::x86_64::*;

use super::{ERFC_POLY, EXP_MAX, EXP_MIN, EXP_POLY, LN2_HI, LN2_LO};
use crate::attention::{self, Kv};
use crate::dispatch::{Isa, Table};
use crate::operands::{Lhs, Out, Panel, Tile};
use crate::simd::{Init, Simd};
use crate::{gemm, AttentionShape, Pool, Weights};

pub(crate) static TABLE: Table = Table {
    isa: Isa::Avx2,
    linear,
    linear_packed: crate::packed::linear::<Avx2>,
    layer_norm,
    gelu,
    attention,
    attention_f16,
    f16_to_f32,
    max_exp_sum,
    probes: &super::probe::AVX2,
};

/// AVX2 with AVX-VNNI: the same kernels, but int8 × int8 layers use the
/// VEX-encoded `vpdpbusd`.
pub(crate) static VNNI_TABLE: Table = Table {
    isa: Isa::Avx2Vnni,
    linear,
    linear_packed: crate::packed::linear::<super::avxvnni::Avx2Vnni>,
    layer_norm,
    gelu,
    attention,
    attention_f16,
    f16_to_f32,
    max_exp_sum,
    probes: &super::probe::AVX2_VNNI,
};

// The table's entries: safe because `dispatch::table` hands TABLE out only
// on a CPU with avx2, fma and f16c (VNNI_TABLE: and avxvnni).

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
    gemm::linear::<Avx2>(pool, x, m, k, w, n, bias, out)
}
fn attention(pool: &Pool, q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, out: &mut [f32]) {
    attention::attention::<Avx2>(pool, q, Kv::F32(k), Kv::F32(v), s, out)
}
fn attention_f16(pool: &Pool, q: &[f32], k: &[u16], v: &[u16], s: AttentionShape, out: &mut [f32]) {
    attention::attention::<Avx2>(pool, q, Kv::F16(k), Kv::F16(v), s, out)
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

pub(crate) struct Avx2;

const MR: usize = 6;
const NR: usize = 16;

impl Simd for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;
    const QB: usize = 48;

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
        // The canonical 16 lanes take two vectors per (row, column); one
        // weight row per pass over k, so its bytes are read in address order
        // (the tile's rows are consecutive): interleaved row streams left the
        // hardware prefetchers at a third of the DRAM rate at m = 1.
        let mut r = 0;
        while r < rows {
            let (x, out) = (x.add(r * ldx), out.add(r * ldo));
            match (rows - r >= 2, f16) {
                (true, true) => dot_tile::<2, 1, true>(cols, k, x, ldx, w, bias, out, ldo),
                (true, false) => dot_tile::<2, 1, false>(cols, k, x, ldx, w, bias, out, ldo),
                (false, true) => dot_tile::<1, 1, true>(cols, k, x, ldx, w, bias, out, ldo),
                (false, false) => dot_tile::<1, 1, false>(cols, k, x, ldx, w, bias, out, ldo),
            }
            r += 2;
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

/// Lane mask (all ones in the first `n` of 8 lanes) for maskload/maskstore.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn lanes(n: usize) -> __m256i {
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), iota)
}

/// Loads `n ≤ 8` f32 (zero beyond).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_n(p: *const f32, n: usize) -> __m256 {
    if n >= 8 {
        _mm256_loadu_ps(p)
    } else {
        _mm256_maskload_ps(p, lanes(n))
    }
}

/// Stores the first `n ≤ 8` lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn store_n(p: *mut f32, n: usize, v: __m256) {
    if n >= 8 {
        _mm256_storeu_ps(p, v)
    } else {
        _mm256_maskstore_ps(p, lanes(n), v)
    }
}

/// Loads `n ≤ 8` elements (f16 bits if `F16`) as f32, zero beyond.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_w<const F16: bool>(p: *const u8, n: usize) -> __m256 {
    if !F16 {
        return load_n(p.cast(), n);
    }
    if n >= 8 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    } else {
        let mut tmp = [0u16; 8];
        std::ptr::copy_nonoverlapping(p.cast::<u16>(), tmp.as_mut_ptr(), n);
        _mm256_cvtph_ps(_mm_loadu_si128(tmp.as_ptr().cast()))
    }
}

/// Horizontal sum, lanes `i + 4`, then `i + 2`, `i + 1` (the tail of the
/// canonical fold, `scalar::dot16`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The canonical reduction of 16 lanes held as `a` (lanes 0..8) and `b`
/// (8..16): lane i + i+8, then `hsum`'s i + i+4, i + i+2, i + i+1.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum16(a: __m256, b: __m256) -> f32 {
    hsum(_mm256_add_ps(a, b))
}

/// Loads `n` elements (f16 bits if `F16`) from `p` into 16 lanes, zero
/// beyond; `p` need not be valid for lanes ≥ `n`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load16<const F16: bool>(p: *const u8, n: usize) -> [__m256; 2] {
    let elem = if F16 { 2 } else { 4 };
    let hi = if n > 8 {
        load_w::<F16>(p.wrapping_add(8 * elem), n - 8)
    } else {
        _mm256_setzero_ps()
    };
    [load_w::<F16>(p, n.min(8)), hi]
}

/// Horizontal maximum.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hmax(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kernel<const R: usize>(cols: usize, k: usize, a: Lhs, b: Panel, c: Out, init: Init) {
    let (a, a_rs, a_ps) = (a.ptr, a.row_stride, a.k_stride);
    let (b, ldb) = (b.ptr, b.k_stride);
    let (c, ldc) = (c.ptr, c.row_stride);
    // Accumulators for MR rows; only the first R are used.
    let (mut lo, mut hi) = ([_mm256_setzero_ps(); MR], [_mm256_setzero_ps(); MR]);
    if let Init::Bias(bias) = init {
        let (b0, b1) = (_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8)));
        lo = [b0; MR];
        hi = [b1; MR];
    }
    // Rows of A through two base pointers (row 3g + o at base_g + o·a_rs),
    // hidden from LLVM so it does not rebuild one chain of dependent adds
    // through all the rows (see the AVX-512 kernel).
    let mut base: [*const f32; 2] = std::array::from_fn(|g| a.wrapping_add(3 * g * a_rs));
    #[allow(clippy::pointers_in_nomem_asm_block)] // the asm only passes the value through
    for p in &mut base {
        std::arch::asm!("/* {0} */", inout(reg) * p, options(pure, nomem, nostack));
    }
    let mut bp = b;
    for _ in 0..k {
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        macro_rules! row {
            ($($r:literal $g:literal $o:literal),*) => {$(
                if $r < R {
                    let av = _mm256_broadcast_ss(&*base[$g].add($o * a_rs));
                    lo[$r] = _mm256_fmadd_ps(av, b0, lo[$r]);
                    hi[$r] = _mm256_fmadd_ps(av, b1, hi[$r]);
                }
            )*};
        }
        row!(0 0 0, 1 0 1, 2 0 2, 3 1 0, 4 1 1, 5 1 2);
        for p in &mut base {
            *p = p.wrapping_add(a_ps);
        }
        bp = bp.add(ldb);
    }
    if cols == NR {
        for r in 0..R {
            _mm256_storeu_ps(c.add(r * ldc), lo[r]);
            _mm256_storeu_ps(c.add(r * ldc + 8), hi[r]);
        }
    } else {
        let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(8)));
        for r in 0..R {
            _mm256_maskstore_ps(c.add(r * ldc), m0, lo[r]);
            _mm256_maskstore_ps(c.add(r * ldc + 8), m1, hi[r]);
        }
    }
}

/// Transposes 8 vectors (rows) into 8 vectors (columns).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // 1: interleave row pairs within 128-bit lanes.
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (x, y) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(x, y)
        } else {
            _mm256_unpackhi_ps(x, y)
        }
    });
    // 2: u[4h + c] holds, in lane L, rows 4h..4h+4 of column 4L + c.
    let u: [__m256; 8] = std::array::from_fn(|j| {
        let (h, c) = (j / 4, j % 4);
        let (x, y) = (t[4 * h + c / 2], t[4 * h + 2 + c / 2]);
        if c % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(x, y)
        } else {
            _mm256_shuffle_ps::<0xee>(x, y)
        }
    });
    // 3: join the row halves per lane.
    std::array::from_fn(|j| {
        let (l, c) = (j / 4, j % 4);
        if l == 0 {
            _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c])
        } else {
            _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c])
        }
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack_b(src: *const u8, f16: bool, ld: usize, rows: usize, k: usize, dst: *mut f32) {
    if f16 {
        pack_b_typed::<true>(src, ld, rows, k, dst)
    } else {
        pack_b_typed::<false>(src, ld, rows, k, dst)
    }
}

/// 8 × 8 blocks: load 8 rows' next 8 elements, transpose, store 8 panel
/// rows (each 8 of the panel's 16 columns).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack_b_typed<const F16: bool>(
    src: *const u8,
    ld: usize,
    rows: usize,
    k: usize,
    dst: *mut f32,
) {
    let elem = if F16 { 2 } else { 4 };
    for g in 0..NR / 8 {
        let valid = rows.saturating_sub(8 * g).min(8);
        let mut p = 0;
        while p < k {
            let kk = (k - p).min(8);
            let r: [__m256; 8] = std::array::from_fn(|i| {
                if i < valid {
                    load_w::<F16>(src.add(((8 * g + i) * ld + p) * elem), kk)
                } else {
                    _mm256_setzero_ps()
                }
            });
            let t = transpose8(r);
            for (i, v) in t.iter().enumerate().take(kk) {
                _mm256_storeu_ps(dst.add((p + i) * NR + 8 * g), *v);
            }
            p += 8;
        }
    }
}

/// `R` x rows against four weight rows in the canonical order: 16 lanes (two
/// vectors) per (row, column), the tail zero-padded; `C` columns per pass
/// over k.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_tile<const R: usize, const C: usize, const F16: bool>(
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
    let mut c0 = 0;
    while c0 < cols {
        let mut acc = [[[_mm256_setzero_ps(); 2]; C]; R];
        let mut p = 0;
        while p + 16 <= k {
            let xs: [[__m256; 2]; R] = std::array::from_fn(|r| {
                let xr = x.add(r * ldx + p);
                [_mm256_loadu_ps(xr), _mm256_loadu_ps(xr.add(8))]
            });
            for i in 0..C {
                let wp = w[c0 + i].add(p * elem);
                let (w0, w1) = (load_w::<F16>(wp, 8), load_w::<F16>(wp.add(8 * elem), 8));
                for r in 0..R {
                    acc[r][i][0] = _mm256_fmadd_ps(xs[r][0], w0, acc[r][i][0]);
                    acc[r][i][1] = _mm256_fmadd_ps(xs[r][1], w1, acc[r][i][1]);
                }
            }
            p += 16;
        }
        if p < k {
            let xs: [[__m256; 2]; R] =
                std::array::from_fn(|r| load16::<false>(x.add(r * ldx + p).cast(), k - p));
            for i in 0..C {
                let wv = load16::<F16>(w[c0 + i].add(p * elem), k - p);
                for r in 0..R {
                    acc[r][i][0] = _mm256_fmadd_ps(xs[r][0], wv[0], acc[r][i][0]);
                    acc[r][i][1] = _mm256_fmadd_ps(xs[r][1], wv[1], acc[r][i][1]);
                }
            }
        }
        for r in 0..R {
            for i in 0..C.min(cols - c0) {
                let b = if bias.is_null() {
                    0.0
                } else {
                    *bias.add(c0 + i)
                };
                *out.add(r * ldo + c0 + i) = hsum16(acc[r][i][0], acc[r][i][1]) + b;
            }
        }
        c0 += C;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
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
        let jj = (n - j).min(4);
        // Lanes 0..8 and 8..16 of the canonical sixteen lane sums.
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        let mut p = 0;
        while p < d {
            for h in 0..2 {
                let (at, nn) = (p + 8 * h, d.saturating_sub(p + 8 * h));
                let qv = load_n(q.wrapping_add(at), nn);
                for (t, a) in acc.iter_mut().enumerate().take(jj) {
                    let kv = load_w::<F16>(k.wrapping_add(((j + t) * ldk + at) * elem), nn);
                    a[h] = _mm256_fmadd_ps(qv, kv, a[h]);
                }
            }
            p += 16;
        }
        for (t, a) in acc.iter().enumerate().take(jj) {
            *out.add(j + t) = hsum(_mm256_add_ps(a[0], a[1]));
        }
        j += 4;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_sum<const F16: bool>(
    w: *const f32,
    v: *const u8,
    ldv: usize,
    n: usize,
    d: usize,
    out: *mut f32,
) {
    let elem = if F16 { 2 } else { 4 };
    // Four vectors (32 columns) per pass over the rows.
    let mut c0 = 0;
    while c0 < d {
        let widths: [usize; 4] = std::array::from_fn(|t| d.saturating_sub(c0 + 8 * t).min(8));
        let mut acc = [_mm256_setzero_ps(); 4];
        for j in 0..n {
            let wj = _mm256_set1_ps(*w.add(j));
            let row = v.add((j * ldv + c0) * elem);
            for t in 0..4 {
                if widths[t] > 0 {
                    let x = load_w::<F16>(row.add(8 * t * elem), widths[t]);
                    acc[t] = _mm256_fmadd_ps(wj, x, acc[t]);
                }
            }
        }
        for t in 0..4 {
            if widths[t] > 0 {
                store_n(out.add(c0 + 8 * t), widths[t], acc[t]);
            }
        }
        c0 += 32;
    }
}

/// Softmax weights `exp(x)` in the lanes of `keep`, flushed to zero where
/// `x < EXP_MIN` (or NaN): they would only add subnormal products.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
///
/// A softmax argument is a score minus the maximum of its scores, times a
/// positive scale: ≤ 0, −∞ or NaN. So on every kept lane (EXP_MIN ≤ x ≤ 0)
/// [`exp`]'s clamps are identities and are left out here, with the same
/// value; other lanes are cleared by the mask whatever they hold.
unsafe fn weight(x: __m256, keep: __m256) -> __m256 {
    let keep = _mm256_and_ps(
        keep,
        _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_set1_ps(EXP_MIN)),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let r2 = _mm256_mul_ps(r, r);
    let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    )));
    _mm256_and_ps(_mm256_mul_ps(e, pow2n), keep)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale(x: *mut f32, n: usize, alpha: f32) {
    let a = _mm256_set1_ps(alpha);
    let mut i = 0;
    while i < n {
        let nn = n - i;
        store_n(x.add(i), nn, _mm256_mul_ps(a, load_n(x.add(i), nn)));
        i += 8;
    }
}

/// e^x, relative error ~2 ulp on [EXP_MIN, EXP_MAX] (inputs clamped to it):
/// x = n·ln2 + r, e^r by the Cephes polynomial, 2ⁿ from exponent bits.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn exp(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(EXP_MIN)),
        _mm256_set1_ps(EXP_MAX),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let r2 = _mm256_mul_ps(r, r);
    let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    )));
    _mm256_mul_ps(e, pow2n)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn softmax_row(x: *mut f32, n: usize, scale: f32) -> f32 {
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut vmax = ninf;
    let mut i = 0;
    while i < n {
        let nn = n - i;
        let v = load_n(x.add(i), nn);
        let v = _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(lanes(nn)));
        vmax = _mm256_max_ps(vmax, v);
        i += 8;
    }
    let max = _mm256_set1_ps(hmax(vmax));
    let s = _mm256_set1_ps(scale);
    // Lanes 0..8 and 8..16 of the canonical sixteen lane sums.
    let mut sum = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    while i < n {
        let nn = n - i;
        let arg = _mm256_mul_ps(_mm256_sub_ps(load_n(x.add(i), nn), max), s);
        let e = weight(arg, _mm256_castsi256_ps(lanes(nn)));
        store_n(x.add(i), nn, e);
        let h = (i / 8) % 2;
        sum[h] = _mm256_add_ps(sum[h], e);
        i += 8;
    }
    hsum(_mm256_add_ps(sum[0], sum[1]))
}

/// Column groups (8 columns each) one pass of [`softmax_cols`] holds.
const SOFTMAX_GROUPS: usize = 6;

/// Row by row across up to [`SOFTMAX_GROUPS`] column groups at once: each row
/// is read as contiguous vectors (the attention block's `ld` is 48, six
/// groups), and rows every column sees (all of them unless causal) need no
/// visibility mask. Per column the operations and their order are those of
/// a column-by-column pass.
#[target_feature(enable = "avx2,fma,f16c")]
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
        let groups = (cols - c0).div_ceil(8).min(SOFTMAX_GROUPS);
        macro_rules! call {
            ($($g:literal)*) => {
                match groups {
                    $($g => softmax_groups::<$g>(st.add(c0), ld, rows, cols - c0, first_visible + c0, scale, sums.add(c0)),)*
                    _ => unreachable!("softmax groups {groups}"),
                }
            };
        }
        call!(1 2 3 4 5 6);
        c0 += 8 * SOFTMAX_GROUPS;
    }
}

/// [`softmax_cols`] over `G` groups of 8 columns (`cols` > 8·(G − 1)).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn softmax_groups<const G: usize>(
    st: *mut f32,
    ld: usize,
    rows: usize,
    cols: usize,
    first_visible: usize,
    scale: f32,
    sums: *mut f32,
) {
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // Column c sees row j iff first_visible + c > j: rows below `first` are
    // seen by every column. Clamped to keep the i32 range.
    let first = first_visible.min(rows + 1);
    let all = first.min(rows);
    let cm: [__m256i; G] = std::array::from_fn(|g| lanes(cols.saturating_sub(8 * g)));
    let limit: [__m256i; G] =
        std::array::from_fn(|g| _mm256_add_epi32(iota, _mm256_set1_epi32((first + 8 * g) as i32)));
    let visible = |g: usize, jv: __m256i| {
        _mm256_castsi256_ps(_mm256_and_si256(cm[g], _mm256_cmpgt_epi32(limit[g], jv)))
    };
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut vmax = [ninf; G];
    for j in 0..all {
        let row = st.add(j * ld);
        for g in 0..G {
            vmax[g] = _mm256_max_ps(vmax[g], _mm256_loadu_ps(row.add(8 * g)));
        }
    }
    for j in all..rows {
        let row = st.add(j * ld);
        let jv = _mm256_set1_epi32(j as i32);
        for g in 0..G {
            let v = _mm256_blendv_ps(ninf, _mm256_loadu_ps(row.add(8 * g)), visible(g, jv));
            vmax[g] = _mm256_max_ps(vmax[g], v);
        }
    }
    let s = _mm256_set1_ps(scale);
    let mut sum = [_mm256_setzero_ps(); G];
    for j in 0..rows {
        let row = st.add(j * ld);
        let jv = _mm256_set1_epi32(j as i32);
        for g in 0..G {
            let vis = if j < all {
                _mm256_castsi256_ps(cm[g])
            } else {
                visible(g, jv)
            };
            let p = row.add(8 * g);
            let e = weight(
                _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(p), vmax[g]), s),
                vis,
            );
            _mm256_maskstore_ps(p, cm[g], e);
            sum[g] = _mm256_add_ps(sum[g], e);
        }
    }
    for g in 0..G {
        _mm256_maskstore_ps(sums.add(8 * g), cm[g], sum[g]);
    }
}

/// The canonical layer norm (see `scalar::layer_norm`): 16 lanes in two vectors.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn layer_norm_impl(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
    let inv_d = 1.0 / d as f32;
    for (row, out_row) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let (xp, op) = (row.as_ptr(), out_row.as_mut_ptr());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i < d {
            let v = load16::<false>(xp.add(i).cast(), d - i);
            acc[0] = _mm256_add_ps(acc[0], v[0]);
            acc[1] = _mm256_add_ps(acc[1], v[1]);
            i += 16;
        }
        let mean = _mm256_set1_ps(hsum16(acc[0], acc[1]) * inv_d);
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i < d {
            let nn = d - i;
            let v = load16::<false>(xp.add(i).cast(), nn);
            for h in 0..2 {
                let c = _mm256_and_ps(
                    _mm256_sub_ps(v[h], mean),
                    _mm256_castsi256_ps(lanes(nn.saturating_sub(8 * h))),
                );
                acc[h] = _mm256_fmadd_ps(c, c, acc[h]);
            }
            i += 16;
        }
        let inv_std = _mm256_set1_ps(1.0 / (hsum16(acc[0], acc[1]) * inv_d + 1e-5).sqrt());
        let mut i = 0;
        while i < d {
            let nn = d - i;
            let c = _mm256_sub_ps(load_n(xp.add(i), nn), mean);
            let g = load_n(gamma.as_ptr().add(i), nn);
            let b = load_n(beta.as_ptr().add(i), nn);
            store_n(
                op.add(i),
                nn,
                _mm256_fmadd_ps(_mm256_mul_ps(c, inv_std), g, b),
            );
            i += 8;
        }
    }
}

/// GELU on one vector; the formula of `scalar::gelu_one`, in f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn gelu_vec(x: __m256) -> __m256 {
    let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
    let z = _mm256_mul_ps(abs, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let one = _mm256_set1_ps(1.0);
    let t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(0.5), one));
    let mut q = _mm256_set1_ps(ERFC_POLY[0]);
    for &c in &ERFC_POLY[1..] {
        q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(c));
    }
    // e^(−z²) with z² = x²/2 from an exact product (FMA gives the low
    // part): rounding z first would cost a relative error of 2·u·z².
    let xs = _mm256_min_ps(abs, _mm256_set1_ps(16.0));
    let hi = _mm256_mul_ps(xs, xs);
    let lo = _mm256_fmsub_ps(xs, xs, hi);
    let half = _mm256_set1_ps(0.5);
    let arg = _mm256_fnmadd_ps(half, lo, _mm256_fnmadd_ps(half, hi, q));
    let half_erfc = _mm256_mul_ps(_mm256_mul_ps(half, t), exp(arg));
    let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
    let phi = _mm256_blendv_ps(_mm256_sub_ps(one, half_erfc), half_erfc, negative);
    _mm256_mul_ps(x, phi)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gelu_impl(x: &mut [f32]) {
    let (p, n) = (x.as_mut_ptr(), x.len());
    let mut i = 0;
    while i < n {
        let nn = n - i;
        store_n(p.add(i), nn, gelu_vec(load_n(p.add(i), nn)));
        i += 8;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_to_f32_impl(src: &[u16], dst: &mut [f32]) {
    let n = src.len();
    let mut i = 0;
    while i < n {
        let nn = n - i;
        store_n(
            dst.as_mut_ptr().add(i),
            nn,
            load_w::<true>(src.as_ptr().add(i).cast(), nn),
        );
        i += 8;
    }
}

/// `scalar::max_exp_sum`: the sixteen f64 lane sums in four ymm (lanes
/// 0–3, 4–7, 8–11, 12–15 of each 16 elements).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn max_exp_sum_impl(x: &[f32]) -> (f32, f64) {
    let (p, n) = (x.as_ptr(), x.len());
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut vmax = ninf;
    let mut i = 0;
    while i < n {
        let nn = n - i;
        let v = _mm256_blendv_ps(ninf, load_n(p.add(i), nn), _mm256_castsi256_ps(lanes(nn)));
        // max(a, b) gives b when a is NaN: NaN elements are skipped.
        vmax = _mm256_max_ps(v, vmax);
        i += 8;
    }
    let max = hmax(vmax);
    if max == f32::NEG_INFINITY {
        return (max, 0.0);
    }
    let vm = _mm256_set1_ps(max);
    let mut acc = [_mm256_setzero_pd(); 4];
    let mut i = 0;
    while i < n {
        for half in 0..2 {
            let nn = (n - i).saturating_sub(8 * half);
            let at = p.add(i + 8 * half);
            let e = if nn == 0 {
                _mm256_setzero_ps()
            } else {
                let keep = _mm256_castsi256_ps(lanes(nn));
                weight(_mm256_sub_ps(load_n(at, nn), vm), keep)
            };
            let (a, b) = (
                &mut acc[2 * half],
                _mm256_cvtps_pd(_mm256_castps256_ps128(e)),
            );
            *a = _mm256_add_pd(*a, b);
            let c = &mut acc[2 * half + 1];
            *c = _mm256_add_pd(*c, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
        }
        i += 16;
    }
    let mut a = [0.0f64; 16];
    for (j, v) in acc.iter().enumerate() {
        _mm256_storeu_pd(a.as_mut_ptr().add(4 * j), *v);
    }
    (max, crate::scalar::fold16_f64(a))
}
