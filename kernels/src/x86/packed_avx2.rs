//! AVX2 decoders and dot tiles for packed weights (see `packed/`).
//!
//! A 32-element block is decoded as four vectors of 8:
//! - 4-bit: `vpmovzxbd` of bytes 0..8 and 8..16; masking the low nibble gives
//!   elements 0..16, shifting right by 4 elements 16..32. Affine schemes:
//!   `s·(f32(c) − z)` (the subtraction is exact, one rounding in the product,
//!   as the reference). NF4: two 8-entry `vpermps` tables (`s·NF4[0..8]`,
//!   `s·NF4[8..16]`; `vpermps` reads only the low 3 index bits) blended on
//!   code bit 3, moved to the sign bit for `vblendvps`.
//! - 3-bit: vector `i` holds elements `8i + j`: bits `2i..2i+1` of byte `j`
//!   (one uniform shift) and bit `8·(j % 4) + 2i + j/4` of the high-bit word
//!   (a per-lane `vpsrlvd`).
//! - int8: `vpmovsxbd` + `vcvtdq2ps`; the row scale is applied after the dot.
//!
//! Int8 × int8: `vpmaddubsw` multiplies unsigned by signed bytes and adds
//! pairs into i16 with SATURATION. We feed it `|w|` (unsigned, ≤ 128: the
//! i8 −128 reads as the u8 128) and `sign(w)·x` (`vpsignb`; x codes are in
//! −127..=127, so the negation cannot overflow). A pair then sums to at most
//! 2·128·127 = 32512 ≤ 32767 in magnitude: never saturates, so every i16
//! is exact. `vpmaddwd` by 1 widens pairs to exact i32 lane sums. The GEMM
//! micro-kernel (m ≥ 16) does the same on the shared `w + 128` panels after
//! flipping the sign bit back. (The panels' unsigned `w + 128` fed straight to
//! `vpmaddubsw` would reach 2·255·127 = 64770 and saturate; so would
//! `x + 128` against signed w.)

use std::arch::x86_64::*;

use super::avx2::Avx2;
use crate::packed::{Kind, PackedSimd};
use crate::schemes::{ActQuant, NF4};

const INT8: u8 = 0;
const AFF4: u8 = 1;
const NF4K: u8 = 2;
const AFF3: u8 = 3;

fn code(kind: Kind) -> u8 {
    match kind {
        Kind::Int8 => INT8,
        Kind::Affine4 => AFF4,
        Kind::Nf4 => NF4K,
        Kind::Affine3 => AFF3,
    }
}

impl PackedSimd for Avx2 {
    unsafe fn dot_lowbit(
        kind: Kind,
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
    // Per x row 2 i16 + 2 i32 accumulators; with 2 panel vectors and a
    // broadcast, 3 rows fit the 16 ymm (4 spilled in the unrolled 8-step
    // block and measured ~1.2× slower).
    const LB_NR: usize = super::lowbit::LB_NR_256;
    crate::packed::gemm_lowbit_impl!(super::lowbit::gemm_avx2; 1, 2, 3);
    type Float = Avx2;
    const DOT_ROWS: usize = 2;

    unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32) {
        f16_to_f32(src, n, dst)
    }
    unsafe fn dq_absmax(codes: *const u8, n: usize, min: f32, step: f32, dst: *mut f32) {
        dq_absmax(codes, n, min, step, dst)
    }
    unsafe fn decode_row(
        kind: Kind,
        codes: *const u8,
        scales: *const f32,
        zeros: *const f32,
        group: usize,
        k: usize,
        dst: *mut f32,
    ) {
        match code(kind) {
            INT8 => decode_row::<INT8>(codes, scales, zeros, group, k, dst),
            AFF4 => decode_row::<AFF4>(codes, scales, zeros, group, k, dst),
            NF4K => decode_row::<NF4K>(codes, scales, zeros, group, k, dst),
            _ => decode_row::<AFF3>(codes, scales, zeros, group, k, dst),
        }
    }
    unsafe fn dot_tile(
        kind: Kind,
        tile: crate::operands::Tile,
        k: usize,
        group: usize,
        x: crate::operands::XRows,
        w: crate::operands::PackedRows,
        bias: *const f32,
        out: crate::operands::Out,
    ) {
        let (rows, cols) = (tile.rows, tile.cols);
        let (x, ldx) = (x.ptr, x.row_stride);
        let (codes, params) = (w.codes, w.params);
        let (out, ldo) = (out.ptr, out.row_stride);
        macro_rules! call {
            ($($r:literal)*) => {
                match (code(kind), rows) {
                    $((INT8, $r) => dot_tile::<INT8, $r>(cols, k, group, x, ldx, codes, params, bias, out, ldo),
                      (AFF4, $r) => dot_tile::<AFF4, $r>(cols, k, group, x, ldx, codes, params, bias, out, ldo),
                      (NF4K, $r) => dot_tile::<NF4K, $r>(cols, k, group, x, ldx, codes, params, bias, out, ldo),
                      (_, $r) => dot_tile::<AFF3, $r>(cols, k, group, x, ldx, codes, params, bias, out, ldo),)*
                    _ => unreachable!("dot tile rows {rows}"),
                }
            };
        }
        call!(1 2)
    }
    unsafe fn dot_i8(
        rows: usize,
        k: usize,
        x: crate::operands::I8Rows,
        w: [*const u8; 4],
        out: &mut [[i32; 4]; 4],
    ) {
        let (xq, ldx) = (x.codes, x.row_stride);
        let _xsum = x.sums;
        dot_i8(rows, k, xq, ldx, w, out)
    }
    const I8_NR: usize = I8_NR;
    const I8_MR: usize = 4;
    unsafe fn gemm_i8(
        tile: crate::operands::Tile,
        k4: usize,
        x: crate::operands::QuantRows,
        b: crate::operands::I8Panel,
        out: crate::operands::Out,
    ) {
        macro_rules! call {
            ($($r:literal)*) => {
                match tile.rows {
                    $($r => gemm_i8::<$r>(tile.cols, k4, x, b, out),)*
                    _ => unreachable!("int8 GEMM rows {}", tile.rows),
                }
            };
        }
        call!(1 2 3 4)
    }
    unsafe fn quantize_row(x: *const f32, k: usize, act: ActQuant, dst: *mut i8) -> (f32, i32) {
        quantize_row(x, k, act, dst)
    }
}

/// Columns per int8 GEMM panel for the AVX2 kernel sets: two vectors of 8
/// columns × 4 codes.
pub(crate) const I8_NR: usize = 16;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32) {
    let mut i = 0;
    while i + 8 <= n {
        _mm256_storeu_ps(
            dst.add(i),
            _mm256_cvtph_ps(_mm_loadu_si128(src.add(2 * i).cast())),
        );
        i += 8;
    }
    while i < n {
        let h = src.add(2 * i).cast::<u16>().read_unaligned();
        *dst.add(i) = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)));
        i += 1;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dq_absmax(codes: *const u8, n: usize, min: f32, step: f32, dst: *mut f32) {
    let (vmin, vstep) = (_mm256_set1_ps(min), _mm256_set1_ps(step));
    let mut i = 0;
    while i + 8 <= n {
        let c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(codes.add(i).cast())));
        // Separate multiply and add: the reference rounds the product first.
        _mm256_storeu_ps(dst.add(i), _mm256_add_ps(vmin, _mm256_mul_ps(c, vstep)));
        i += 8;
    }
    while i < n {
        *dst.add(i) = min + *codes.add(i) as f32 * step;
        i += 1;
    }
}

/// One group's decoding constants: affine `(s, z)` broadcast, NF4 the two
/// 8-entry tables, int8 unused.
type Tab = [__m256; 2];

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn table<const K: u8>(s: f32, z: f32) -> Tab {
    let s = _mm256_set1_ps(s);
    match K {
        NF4K => [
            _mm256_mul_ps(_mm256_loadu_ps(NF4.as_ptr()), s),
            _mm256_mul_ps(_mm256_loadu_ps(NF4.as_ptr().add(8)), s),
        ],
        _ => [s, _mm256_set1_ps(z)],
    }
}

/// High-bit shifts for the 3-bit decoder, vector `i`, lane `j`.
const fn int3_high(i: usize) -> [i32; 8] {
    let mut s = [0i32; 8];
    let mut j = 0;
    while j < 8 {
        s[j] = (8 * (j % 4) + 2 * i + j / 4) as i32;
        j += 1;
    }
    s
}
const INT3_HI: [[i32; 8]; 4] = [int3_high(0), int3_high(1), int3_high(2), int3_high(3)];

/// Vector `q` (elements 32b + 8q .. +8) of block `b` of a row (int8: codes,
/// unscaled, zero past `k`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn decode<const K: u8>(codes: *const u8, b: usize, q: usize, k: usize, t: &Tab) -> __m256 {
    match K {
        AFF4 | NF4K => {
            let raw = _mm256_cvtepu8_epi32(_mm_loadl_epi64(codes.add(16 * b + 8 * (q % 2)).cast()));
            let c = if q < 2 {
                raw
            } else {
                _mm256_srli_epi32::<4>(raw)
            };
            if K == AFF4 {
                let c = _mm256_and_si256(c, _mm256_set1_epi32(15));
                _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(c), t[1]), t[0])
            } else {
                let lo = _mm256_permutevar8x32_ps(t[0], c);
                let hi = _mm256_permutevar8x32_ps(t[1], c);
                _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32::<28>(c)))
            }
        }
        AFF3 => {
            let p = codes.add(12 * b);
            let v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()));
            let low = _mm256_and_si256(
                _mm256_srlv_epi32(v, _mm256_set1_epi32(2 * q as i32)),
                _mm256_set1_epi32(3),
            );
            let h = _mm256_set1_epi32(p.add(8).cast::<u32>().read_unaligned() as i32);
            let high = _mm256_and_si256(
                _mm256_srlv_epi32(h, _mm256_loadu_si256(INT3_HI[q].as_ptr().cast())),
                _mm256_set1_epi32(1),
            );
            let c = _mm256_or_si256(low, _mm256_slli_epi32::<2>(high));
            _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(c), t[1]), t[0])
        }
        _ => {
            let p = 32 * b + 8 * q;
            let bytes = if p + 8 <= k {
                codes.add(p).cast::<u64>().read_unaligned()
            } else {
                let mut tmp = [0u8; 8];
                let n = k.saturating_sub(p);
                std::ptr::copy_nonoverlapping(codes.add(p), tmp.as_mut_ptr(), n);
                u64::from_le_bytes(tmp)
            };
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bytes as i64)))
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decode_row<const K: u8>(
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
        let t = table::<K>(*scales.add(g), *zeros.add(g));
        let end = (p + group).min(kp);
        while p < end {
            for q in 0..4 {
                let v = decode::<K>(codes, p / 32, q, k, &t);
                let v = if K == INT8 { _mm256_mul_ps(v, t[0]) } else { v };
                _mm256_storeu_ps(dst.add(p + 8 * q), v);
            }
            p += 32;
        }
        g += 1;
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_tile<const K: u8, const R: usize>(
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
    // The canonical 16 lanes take two vectors per (row, column); C columns
    // per pass over k keep accumulators and decoding tables in registers
    // (measured: 4-bit with one row is faster at C = 2 than at 4).
    match (K, R) {
        (INT8, 1) => dot_tile_i8::<1, 4>(cols, k, x, ldx, codes, params, bias, out, ldo),
        (INT8, _) => dot_tile_i8::<2, 2>(cols, k, x, ldx, codes, params, bias, out, ldo),
        (_, 1) => dot_tile_c::<K, 1, 2>(cols, k, group, x, ldx, codes, params, bias, out, ldo),
        _ => dot_tile_c::<K, 2, 2>(cols, k, group, x, ldx, codes, params, bias, out, ldo),
    }
}

/// The weight-only tile for 4-bit / 3-bit codes: `C` weight rows per pass
/// over k, each 32-block decoded once and multiplied into the `R` x rows;
/// vector q of a block feeds the canonical lanes 8·(q % 2)...
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_tile_c<const K: u8, const R: usize, const C: usize>(
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
        let mut acc = [[[_mm256_setzero_ps(); 2]; C]; R];
        let mut g = 0;
        let mut p = 0;
        while p < kp {
            let t: [Tab; C] = std::array::from_fn(|i| {
                table::<K>(*params[c0 + i].0.add(g), *params[c0 + i].1.add(g))
            });
            let end = (p + group).min(kp);
            while p < end {
                for q in 0..4 {
                    let xs: [__m256; R] =
                        std::array::from_fn(|r| _mm256_loadu_ps(x.add(r * ldx + p + 8 * q)));
                    for i in 0..C {
                        let wv = decode::<K>(codes[c0 + i], p / 32, q, k, &t[i]);
                        for r in 0..R {
                            acc[r][i][q % 2] = _mm256_fmadd_ps(xs[r], wv, acc[r][i][q % 2]);
                        }
                    }
                }
                p += 32;
            }
            g += 1;
        }
        for r in 0..R {
            for i in 0..C.min(cols - c0) {
                let v = hsum(_mm256_add_ps(acc[r][i][0], acc[r][i][1]));
                let b = if bias.is_null() {
                    0.0
                } else {
                    *bias.add(c0 + i)
                };
                *out.add(r * ldo + c0 + i) = v + b;
            }
        }
        c0 += C;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// The int8 × int8 tile (see the module docs for why it never saturates).
/// Also the AVX-512 kernel set's int8 path when the CPU lacks VNNI.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_i8(
    rows: usize,
    k: usize,
    xq: *const i8,
    ldx: usize,
    w: [*const u8; 4],
    out: &mut [[i32; 4]; 4],
) {
    // Two x rows at a time: 8 accumulators + 4 weight vectors fit 16 registers.
    let mut r0 = 0;
    while r0 < rows {
        let x = xq.add(r0 * ldx);
        let res = if rows - r0 >= 2 {
            dot_i8_rows::<2>(k, x, ldx, w)
        } else {
            dot_i8_rows::<1>(k, x, ldx, w)
        };
        let take = (rows - r0).min(2);
        out[r0..r0 + take].copy_from_slice(&res[..take]);
        r0 += 2;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_i8_rows<const R: usize>(
    k: usize,
    xq: *const i8,
    ldx: usize,
    w: [*const u8; 4],
) -> [[i32; 4]; 2] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 4]; R];
    // One weight row after the other, in address order (the tile's rows are
    // consecutive): the hardware prefetchers follow one stream at about twice
    // the rate of four interleaved ones, and at m = 1 that is the whole cost.
    for c in 0..4 {
        let mut p = 0;
        while p < k {
            let wv = if p + 32 <= k {
                _mm256_loadu_si256(w[c].add(p).cast())
            } else {
                let mut tmp = [0u8; 32];
                std::ptr::copy_nonoverlapping(w[c].add(p), tmp.as_mut_ptr(), k - p);
                _mm256_loadu_si256(tmp.as_ptr().cast())
            };
            let aw = _mm256_abs_epi8(wv);
            for r in 0..R {
                let xv = _mm256_loadu_si256(xq.add(r * ldx + p).cast());
                let pairs = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv));
                acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(pairs, ones));
            }
            p += 32;
        }
    }
    let mut res = [[0i32; 4]; 2];
    for r in 0..R {
        for c in 0..4 {
            res[r][c] = hsum_i32(acc[r][c]);
        }
    }
    res
}

/// The int8 GEMM micro-kernel (`PackedSimd::gemm_i8`, NR = 16 as two
/// vectors of 8 columns × 4 codes): per 4 k-steps, two panel loads (sign bit
/// flipped back, then `|w|`) and per x row one broadcast of 4 codes.
/// `vpmaddubsw(|w|, sign(w)·x)` as in `dot_i8` (never saturates), then
/// `vpmaddwd` by 1 adds each column's two pairs into its i32 lane: the dot
/// is exact, no `Σx` correction. On Intel cores 3 of the 4 instructions per
/// vector need ports 0/1, so this runs at about 1.3× the f32 FMA kernel's
/// MAC rate (measured: 1.3× the f16 path at m = 1500).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_i8<const R: usize>(
    cols: usize,
    k4: usize,
    x: crate::operands::QuantRows,
    b: crate::operands::I8Panel,
    out: crate::operands::Out,
) {
    let (xq, ldx, sx) = (x.codes, x.row_stride, x.scales);
    let (panel, sw, bias) = (b.codes, b.scales, b.bias);
    let (out, ldo) = (out.ptr, out.row_stride);
    let flip = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let mut b = panel;
    let mut x = xq;
    for _ in 0..k4 / 4 {
        let wv: [__m256i; 2] = std::array::from_fn(|v| {
            _mm256_xor_si256(_mm256_loadu_si256(b.add(32 * v).cast()), flip)
        });
        let aw = wv.map(|w| _mm256_abs_epi8(w));
        for r in 0..R {
            let xb = _mm256_set1_epi32(x.add(r * ldx).cast::<i32>().read_unaligned());
            for v in 0..2 {
                let pairs = _mm256_maddubs_epi16(aw[v], _mm256_sign_epi8(xb, wv[v]));
                acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(pairs, ones));
            }
        }
        b = b.add(64);
        x = x.add(4);
    }
    for r in 0..R {
        gemm_i8_store(acc[r], *sx.add(r), cols, sw, bias, out.add(r * ldo));
    }
}

/// One row of an int8 GEMM tile (`I8_NR` = 16 exact dots, column `c` in lane
/// `c % 8` of vector `c / 8`) rescaled as the reference does,
/// `(s_x · s_w) · dot + b` with each step rounded (no FMA), and its first
/// `cols` values stored.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn gemm_i8_store(
    dots: [__m256i; 2],
    sx: f32,
    cols: usize,
    sw: *const f32,
    bias: *const f32,
    out: *mut f32,
) {
    let s = _mm256_set1_ps(sx);
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for v in 0..2 {
        if 8 * v >= cols {
            break;
        }
        let scale = _mm256_mul_ps(s, _mm256_loadu_ps(sw.add(8 * v)));
        let o = _mm256_add_ps(
            _mm256_mul_ps(scale, _mm256_cvtepi32_ps(dots[v])),
            _mm256_loadu_ps(bias.add(8 * v)),
        );
        let left = cols - 8 * v;
        if left >= 8 {
            _mm256_storeu_ps(out.add(8 * v), o);
        } else {
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left as i32), iota);
            _mm256_maskstore_ps(out.add(8 * v), mask, o);
        }
    }
}

/// The int8 weight-only dot tile: 8 codes per `vpmovsxbd` (straight from
/// memory; the last partial block through a zero-padded copy) and
/// `vcvtdq2ps`, one FMA per x row. The canonical 16 lanes are two accumulator
/// sets (elements p with p % 16 < 8 and ≥ 8), which also hide the FMA latency.
/// Runs to k rounded up to 32 (x is zero there, the codes read as 0); the row
/// scale is applied after the sum.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_tile_i8<const R: usize, const C: usize>(
    cols: usize,
    k: usize,
    x: *const f32,
    ldx: usize,
    codes: [*const u8; 4],
    params: [(*const f32, *const f32); 4],
    bias: *const f32,
    out: *mut f32,
    ldo: usize,
) {
    const U: usize = 2;
    let kp = k.next_multiple_of(32);
    let mut c0 = 0;
    while c0 < cols {
        let w: [*const u8; C] = std::array::from_fn(|i| codes[c0 + i]);
        let mut acc = [[[_mm256_setzero_ps(); C]; R]; U];
        let step = |acc: &mut [[__m256; C]; R], p: usize, w: [*const u8; C]| {
            let xs: [__m256; R] = std::array::from_fn(|r| _mm256_loadu_ps(x.add(r * ldx + p)));
            for i in 0..C {
                let raw = _mm_loadl_epi64(w[i].cast());
                let wv = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw));
                for r in 0..R {
                    acc[r][i] = _mm256_fmadd_ps(xs[r], wv, acc[r][i]);
                }
            }
        };
        let mut p = 0;
        while p + 8 * U <= k {
            for (u, a) in acc.iter_mut().enumerate() {
                let q = p + 8 * u;
                step(a, q, w.map(|c| c.add(q)));
            }
            p += 8 * U;
        }
        // x is zero-padded to a multiple of 32; the codes are not.
        let mut tail = [[0u8; 8]; C];
        while p < kp {
            let n = k.saturating_sub(p).min(8);
            for (t, c) in tail.iter_mut().zip(w) {
                *t = [0; 8];
                std::ptr::copy_nonoverlapping(c.wrapping_add(p), t.as_mut_ptr(), n);
            }
            step(
                &mut acc[(p / 8) % U],
                p,
                std::array::from_fn(|i| tail[i].as_ptr()),
            );
            p += 8;
        }
        for r in 0..R {
            for i in 0..C.min(cols - c0) {
                let c = c0 + i;
                let v = hsum(_mm256_add_ps(acc[0][r][i], acc[1][r][i])) * *params[c].0;
                let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
                *out.add(r * ldo + c) = v + b;
            }
        }
        c0 += C;
    }
}

/// `PackedSimd::quantize_row` (bit-identical to `quantize_activations`):
/// absmax with `vmaxps` (NaN lanes ignored, as `f32::max`), then
/// `round(x · inv)` clamped to ±127 (NaN → 0, as Rust's `as i8`). A partial
/// last block goes through zero-padded copies.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_row(
    x: *const f32,
    k: usize,
    act: ActQuant,
    dst: *mut i8,
) -> (f32, i32) {
    let load = |p: usize| {
        if p + 8 <= k {
            _mm256_loadu_ps(x.add(p))
        } else {
            let mut t = [0.0f32; 8];
            std::ptr::copy_nonoverlapping(x.add(p), t.as_mut_ptr(), k - p);
            _mm256_loadu_ps(t.as_ptr())
        }
    };
    let (s_x, inv) = match act {
        ActQuant::Float => unreachable!("quantize_row with float activations"),
        ActQuant::Static(s) => (s, 1.0 / s),
        ActQuant::Dynamic => {
            let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let mut a = _mm256_setzero_ps();
            let mut p = 0;
            while p < k {
                // max(v, a) returns a when either is NaN: NaN never enters a.
                a = _mm256_max_ps(_mm256_and_ps(load(p), abs), a);
                p += 8;
            }
            let mut l = [0.0f32; 8];
            _mm256_storeu_ps(l.as_mut_ptr(), a);
            let a = l.iter().fold(0.0f32, |a, &v| a.max(v));
            if a == 0.0 {
                (0.0, 0.0)
            } else {
                (a / 127.0, 127.0 / a)
            }
        }
    };
    let vinv = _mm256_set1_ps(inv);
    let (lo, hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    // Low byte of every dword, per 128-bit lane, then both lanes' 4 bytes together.
    let bytes = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let join = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
    let mut sum = _mm256_setzero_si256();
    let mut p = 0;
    while p < k {
        let y = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(load(p), vinv),
        );
        // y as the second operand: a NaN y passes through both.
        let y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
        let ord = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(y, y));
        let q = _mm256_and_si256(_mm256_cvtps_epi32(y), ord);
        sum = _mm256_add_epi32(sum, q);
        let b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(q, bytes), join);
        let b = _mm_cvtsi128_si64(_mm256_castsi256_si128(b)).to_le_bytes();
        let n = (k - p).min(8);
        std::ptr::copy_nonoverlapping(b.as_ptr().cast::<i8>(), dst.add(p), n);
        p += 8;
    }
    (s_x, hsum_i32(sum))
}
