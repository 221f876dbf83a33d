//! AVX-512 decoders and dot tiles for packed weights (see `packed/`).
//!
//! Decoding a 32-element block, per group a 16-entry f32 table `T` in one
//! register holds the dequantized value of every code (`s·(c − z)` or
//! `s·NF4[c]`, computed exactly as the reference computes it), and
//! `vpermps` (which reads only the low 4 bits of each index lane) looks the
//! codes up:
//! - 4-bit: `vpmovzxbd` of the block's 16 bytes gives elements 0..16 in the
//!   low nibbles (no mask needed: `vpermps` ignores the high bits) and, shifted
//!   right by 4, elements 16..32.
//! - 3-bit: the 8 low-bit bytes, duplicated and zero-extended, lane `l` of
//!   half `t` holding byte `l % 8`; a per-lane `vpsrlvd` by `2·(2t + l/8)`
//!   brings element `16t + l`'s two low bits to bits 0..1. The high-bit
//!   word, broadcast, is rotated per lane (`vprorvd`) so that element's bit
//!   lands on bit 2; one `vpternlogd` merges the two (bit 3 is left as
//!   garbage, so the 8-entry table is stored twice).
//! - int8: `vpmovsxbd` + `vcvtdq2ps`; the row scale is applied after the dot.
//!
//! Int8 × int8 with VNNI: `vpdpbusd` multiplies unsigned by signed bytes, so
//! the weight codes are made unsigned by flipping their sign bit (w + 128)
//! and the dot is corrected by `128·Σx` (x's row sums, computed once per
//! call). Every product and the 4-product lane sums are exact; the i32
//! accumulators wrap only if the true sum leaves i32, which `view` rules out
//! (k ≤ MAX_INT8_DOT_K) — with wrapping arithmetic the final value is exact.
//! Without VNNI the AVX2 int8 tile is used.

use std::arch::x86_64::*;

use super::avx512::{hsum16, Avx512};
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

/// AVX-512 with VNNI for the int8 × int8 path (its own kernel set).
pub(crate) struct Avx512Vnni;

macro_rules! common_impl {
    () => {
        type Float = Avx512;
        const DOT_ROWS: usize = 4;
        unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32) {
            f16_to_f32(src, n, dst)
        }
        unsafe fn group_major(
            src: crate::packed::lowbit::ParamRows,
            cols: usize,
            ng: usize,
            nc: usize,
            dst: *mut f32,
        ) {
            if nc.is_multiple_of(16) {
                group_major16(src, cols, ng, nc, dst)
            } else {
                crate::packed::lowbit::group_major_rows::<Self>(src, cols, ng, nc, dst)
            }
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
            dot_tile_any(
                kind, rows, cols, k, group, x, ldx, codes, params, bias, out, ldo,
            )
        }
        unsafe fn quantize_row(x: *const f32, k: usize, act: ActQuant, dst: *mut i8) -> (f32, i32) {
            quantize_row(x, k, act, dst)
        }
    };
}

impl PackedSimd for Avx512 {
    common_impl!();
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
    // Without VNNI, AVX2's low-bit GEMM (as for int8 below).
    const LB_NR: usize = <super::avx2::Avx2 as PackedSimd>::LB_NR;
    const LB_MR: usize = <super::avx2::Avx2 as PackedSimd>::LB_MR;
    unsafe fn gemm_lowbit(
        nf4: bool,
        tile: crate::operands::Tile,
        kp: usize,
        group: usize,
        t: crate::packed::LowbitTile,
        panel: *const u8,
        out: crate::operands::Out,
    ) {
        <super::avx2::Avx2 as PackedSimd>::gemm_lowbit(nf4, tile, kp, group, t, panel, out)
    }
    unsafe fn dot_i8(
        rows: usize,
        k: usize,
        x: crate::operands::I8Rows,
        w: [*const u8; 4],
        out: &mut [[i32; 4]; 4],
    ) {
        let (xq, ldx) = (x.codes, x.row_stride);
        let xsum = x.sums;
        super::packed_avx2::dot_i8(rows, k, xq, ldx, w, out);
        let _ = xsum;
    }
    // Without VNNI the AVX2 maddubs GEMM micro-kernel still beats the dot
    // tiles at m ≥ 16 (AVX-512 CPUs without VNNI: Skylake-X class).
    const I8_NR: usize = <super::avx2::Avx2 as PackedSimd>::I8_NR;
    const I8_MR: usize = <super::avx2::Avx2 as PackedSimd>::I8_MR;
    unsafe fn gemm_i8(
        tile: crate::operands::Tile,
        k4: usize,
        x: crate::operands::QuantRows,
        b: crate::operands::I8Panel,
        out: crate::operands::Out,
    ) {
        <super::avx2::Avx2 as PackedSimd>::gemm_i8(tile, k4, x, b, out)
    }
}

impl PackedSimd for Avx512Vnni {
    common_impl!();
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
        super::lowbit::dot_lowbit::<true>(kind, rows, cols, k, group, t, out, ldo)
    }
    fn lowbit_shape(kind: Kind, group: usize) -> (usize, crate::packed::quant::XOrder) {
        super::lowbit::vnni_shape(kind, group)
    }
    const LB_NR: usize = 64;
    crate::packed::gemm_lowbit_impl!(super::lowbit::gemm_vnni; 1, 2, 3, 4, 5, 6);
    unsafe fn dot_i8(
        rows: usize,
        k: usize,
        x: crate::operands::I8Rows,
        w: [*const u8; 4],
        out: &mut [[i32; 4]; 4],
    ) {
        let (xq, ldx) = (x.codes, x.row_stride);
        let xsum = x.sums;
        match rows {
            1 => dot_i8_vnni::<1, _>(k, xq, ldx, xsum, w, out),
            2 => dot_i8_vnni::<2, _>(k, xq, ldx, xsum, w, out),
            3 => dot_i8_vnni::<3, _>(k, xq, ldx, xsum, w, out),
            4 => dot_i8_vnni::<4, _>(k, xq, ldx, xsum, w, out),
            _ => unreachable!("int8 tile rows {rows}"),
        }
    }
    const I8_WIDE_ROWS: usize = 6;
    unsafe fn dot_i8_wide(
        rows: usize,
        k: usize,
        x: crate::operands::I8Rows,
        w: [*const u8; 4],
        out: &mut [[i32; 4]; 8],
    ) {
        let (xq, ldx) = (x.codes, x.row_stride);
        let xsum = x.sums;
        match rows {
            1 => dot_i8_vnni::<1, _>(k, xq, ldx, xsum, w, out),
            2 => dot_i8_vnni::<2, _>(k, xq, ldx, xsum, w, out),
            3 => dot_i8_vnni::<3, _>(k, xq, ldx, xsum, w, out),
            4 => dot_i8_vnni::<4, _>(k, xq, ldx, xsum, w, out),
            5 => dot_i8_vnni::<5, _>(k, xq, ldx, xsum, w, out),
            6 => dot_i8_vnni::<6, _>(k, xq, ldx, xsum, w, out),
            _ => unreachable!("int8 wide tile rows {rows}"),
        }
    }
    const I8_NR: usize = 64;
    const I8_MR: usize = 6;
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
                    $($r => gemm_i8_vnni::<$r>(tile.cols, k4, x, b, out),)*
                    _ => unreachable!("int8 GEMM rows {}", tile.rows),
                }
            };
        }
        call!(1 2 3 4 5 6)
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn dot_tile_any(
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
    call!(1 2 3 4)
}

/// Mask of the first `n` (≤ 16) lanes.
#[inline]
pub(crate) fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32) {
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        let v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src.add(2 * i).cast()));
        _mm512_mask_storeu_ps(dst.add(i), m, v);
        i += 16;
    }
}

/// `PackedSimd::group_major` for `nc` a multiple of 16: per 16 rows × 16
/// groups, masked loads (`vcvtph2ps` for half floats) and a 16 × 16
/// transpose.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn group_major16(
    src: crate::packed::lowbit::ParamRows,
    cols: usize,
    ng: usize,
    nc: usize,
    dst: *mut f32,
) {
    for c0 in (0..nc).step_by(16) {
        for g0 in (0..ng).step_by(16) {
            let m = lanes(ng - g0);
            let r: [__m512; 16] = std::array::from_fn(|i| {
                let e = (c0 + i).min(cols - 1) * src.stride + g0;
                if src.half {
                    _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src.ptr.add(2 * e).cast()))
                } else {
                    _mm512_maskz_loadu_ps(m, src.ptr.add(4 * e).cast())
                }
            });
            let t = super::avx512::transpose16(r);
            for (gi, v) in t.iter().enumerate().take(ng - g0) {
                _mm512_storeu_ps(dst.add((g0 + gi) * nc + c0), *v);
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn dq_absmax(codes: *const u8, n: usize, min: f32, step: f32, dst: *mut f32) {
    let (vmin, vstep) = (_mm512_set1_ps(min), _mm512_set1_ps(step));
    let mut i = 0;
    while i < n {
        let m = lanes(n - i);
        let c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(
            m,
            codes.add(i).cast(),
        )));
        // Separate multiply and add: the reference rounds the product first.
        _mm512_mask_storeu_ps(dst.add(i), m, _mm512_add_ps(vmin, _mm512_mul_ps(c, vstep)));
        i += 16;
    }
}

const IOTA16: [f32; 16] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
];
const IOTA8X2: [f32; 16] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0,
];

/// Per-lane shifts for the 3-bit decoder (see the module docs): half `t`, lane
/// `l` is element `e = 16t + l = 8i + j` (`i = 2t + l/8`, `j = l % 8`); its low
/// bits sit at bit `2i` of byte `j`, its high bit at bit `8·(j % 4) + 2i + j/4`
/// of the high-bit word.
const fn int3_shifts(t: usize, high: bool) -> [i32; 16] {
    let mut s = [0i32; 16];
    let mut l = 0;
    while l < 16 {
        let (i, j) = (2 * t + l / 8, l % 8);
        s[l] = if high {
            // Rotate right so the bit lands on bit 2.
            ((8 * (j % 4) + 2 * i + j / 4 + 30) % 32) as i32
        } else {
            (2 * i) as i32
        };
        l += 1;
    }
    s
}
const INT3_LO: [[i32; 16]; 2] = [int3_shifts(0, false), int3_shifts(1, false)];
const INT3_HI: [[i32; 16]; 2] = [int3_shifts(0, true), int3_shifts(1, true)];

/// The group's value table (int8: the scale, broadcast).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
unsafe fn table<const K: u8>(s: f32, z: f32) -> __m512 {
    let s = _mm512_set1_ps(s);
    match K {
        // (c − z) is exact; one rounding in the product, as the reference.
        AFF4 => _mm512_mul_ps(
            _mm512_sub_ps(_mm512_loadu_ps(IOTA16.as_ptr()), _mm512_set1_ps(z)),
            s,
        ),
        AFF3 => _mm512_mul_ps(
            _mm512_sub_ps(_mm512_loadu_ps(IOTA8X2.as_ptr()), _mm512_set1_ps(z)),
            s,
        ),
        NF4K => _mm512_mul_ps(_mm512_loadu_ps(NF4.as_ptr()), s),
        _ => s,
    }
}

/// Block `b` (elements 32b..32b+32) of a row: two vectors of values (int8:
/// of codes, unscaled, zero past `k`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
unsafe fn decode<const K: u8>(codes: *const u8, b: usize, k: usize, t: __m512) -> [__m512; 2] {
    match K {
        AFF4 | NF4K => {
            let raw = _mm512_cvtepu8_epi32(_mm_loadu_si128(codes.add(16 * b).cast()));
            [
                _mm512_permutexvar_ps(raw, t),
                _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(raw), t),
            ]
        }
        AFF3 => {
            let p = codes.add(12 * b);
            let lo = p.cast::<u64>().read_unaligned();
            let hi = p.add(8).cast::<u32>().read_unaligned();
            let v = _mm512_cvtepu8_epi32(_mm_set1_epi64x(lo as i64));
            let h = _mm512_set1_epi32(hi as i32);
            let three = _mm512_set1_epi32(3);
            std::array::from_fn(|half| {
                let low = _mm512_srlv_epi32(v, _mm512_loadu_si512(INT3_LO[half].as_ptr().cast()));
                let high = _mm512_rorv_epi32(h, _mm512_loadu_si512(INT3_HI[half].as_ptr().cast()));
                // (low & 3) | (high & !3): bits 0..1 from low, bit 2 from high.
                let idx = _mm512_ternarylogic_epi32::<0xE4>(low, high, three);
                _mm512_permutexvar_ps(idx, t)
            })
        }
        _ => {
            let p = 32 * b;
            let (m0, m1) = (lanes(k.saturating_sub(p)), lanes(k.saturating_sub(p + 16)));
            let load = |m: __mmask16, q: *const u8| {
                _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, q.cast())))
            };
            [load(m0, codes.add(p)), load(m1, codes.add(p + 16))]
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
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
            let [a, b] = decode::<K>(codes, p / 32, k, t);
            let (a, b) = if K == INT8 {
                (_mm512_mul_ps(a, t), _mm512_mul_ps(b, t))
            } else {
                (a, b)
            };
            _mm512_storeu_ps(dst.add(p), a);
            _mm512_storeu_ps(dst.add(p + 16), b);
            p += 32;
        }
        g += 1;
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
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
    if K == INT8 {
        return dot_tile_i8::<R>(cols, k, x, ldx, codes, params, bias, out, ldo);
    }
    let kp = k.next_multiple_of(32);
    let mut acc = [[_mm512_setzero_ps(); 4]; R];
    let mut g = 0;
    let mut p = 0;
    while p < kp {
        let t: [__m512; 4] = std::array::from_fn(|c| {
            if K == INT8 {
                _mm512_setzero_ps()
            } else {
                table::<K>(*params[c].0.add(g), *params[c].1.add(g))
            }
        });
        let end = (p + group).min(kp);
        while p < end {
            let xs: [[__m512; 2]; R] = std::array::from_fn(|r| {
                [
                    _mm512_loadu_ps(x.add(r * ldx + p)),
                    _mm512_loadu_ps(x.add(r * ldx + p + 16)),
                ]
            });
            for c in 0..4 {
                let [w0, w1] = decode::<K>(codes[c], p / 32, k, t[c]);
                for r in 0..R {
                    acc[r][c] = _mm512_fmadd_ps(xs[r][0], w0, acc[r][c]);
                    acc[r][c] = _mm512_fmadd_ps(xs[r][1], w1, acc[r][c]);
                }
            }
            p += 32;
        }
        g += 1;
    }
    for r in 0..R {
        for c in 0..cols {
            let mut v = hsum16(acc[r][c]);
            if K == INT8 {
                v *= *params[c].0;
            }
            let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
            *out.add(r * ldo + c) = v + b;
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn dot_i8_vnni<const R: usize, const O: usize>(
    k: usize,
    xq: *const i8,
    ldx: usize,
    xsum: *const i32,
    w: [*const u8; 4],
    out: &mut [[i32; 4]; O],
) {
    let flip = _mm512_set1_epi8(-128);
    let mut acc = [[_mm512_setzero_si512(); 4]; R];
    let ahead = crate::tuning::PREFETCH_I8_TILES * 4 * k;
    // One weight row after the other: the tile's rows are consecutive in
    // memory, so its bytes are read in address order, which the hardware
    // prefetchers follow (four interleaved rows they followed at half the
    // rate). Each weight vector still meets every x row at once.
    for c in 0..4 {
        let mut p = 0;
        while p < k {
            let m: __mmask64 = if k - p >= 64 {
                !0
            } else {
                (1u64 << (k - p)) - 1
            };
            if ahead > 0 {
                _mm_prefetch::<_MM_HINT_T0>(w[c].wrapping_add(p + ahead).cast());
            }
            // w + 128 as unsigned bytes; masked-off lanes become 128 but meet x = 0.
            let wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w[c].add(p).cast()), flip);
            for r in 0..R {
                let xv = _mm512_loadu_si512(xq.add(r * ldx + p).cast());
                acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], wv, xv);
            }
            p += 64;
        }
    }
    for r in 0..R {
        let corr = _mm_set1_epi32((*xsum.add(r)).wrapping_mul(128));
        let dots = _mm_sub_epi32(hsum4_epi32(acc[r]), corr);
        _mm_storeu_si128(out[r].as_mut_ptr().cast(), dots);
    }
}

/// The lane sums of four i32 vectors as one `[Σa, Σb, Σc, Σd]` (wrapping):
/// pairs interleaved and added, then the 128-bit quarters, about a third of
/// the instructions of four separate reductions (which, at the decoder's k
/// of a few 64-code steps, cost more than the dots themselves).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
#[inline]
unsafe fn hsum4_epi32(v: [__m512i; 4]) -> __m128i {
    // Per 128-bit quarter: [a0+a2, b0+b2, a1+a3, b1+b3], the same of c, d.
    let ab = _mm512_add_epi32(
        _mm512_unpacklo_epi32(v[0], v[1]),
        _mm512_unpackhi_epi32(v[0], v[1]),
    );
    let cd = _mm512_add_epi32(
        _mm512_unpacklo_epi32(v[2], v[3]),
        _mm512_unpackhi_epi32(v[2], v[3]),
    );
    // Per quarter: [a, b, c, d] partial sums.
    let abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    let half = _mm256_add_epi32(
        _mm512_castsi512_si256(abcd),
        _mm512_extracti64x4_epi64::<1>(abcd),
    );
    _mm_add_epi32(
        _mm256_castsi256_si128(half),
        _mm256_extracti128_si256::<1>(half),
    )
}

/// The int8 GEMM micro-kernel (`PackedSimd::gemm_i8`, NR = 64 as four
/// vectors): per 4 k-steps, four panel loads and, per x row, one broadcast of
/// 4 codes meeting all four in `vpdpbusd` (panel bytes unsigned, x signed).
/// The panel's `w + 128` adds `128·Σx` to every dot, removed per row.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
unsafe fn gemm_i8_vnni<const R: usize>(
    cols: usize,
    k4: usize,
    x: crate::operands::QuantRows,
    b: crate::operands::I8Panel,
    out: crate::operands::Out,
) {
    let (xq, ldx, sx) = (x.codes, x.row_stride, x.scales);
    let xsum = x.sums;
    let (panel, sw, bias) = (b.codes, b.scales, b.bias);
    let (out, ldo) = (out.ptr, out.row_stride);
    let mut acc = [[_mm512_setzero_si512(); 4]; R];
    let mut b = panel;
    let mut x = xq;
    for _ in 0..k4 / 4 {
        let wv: [__m512i; 4] = std::array::from_fn(|v| _mm512_loadu_si512(b.add(64 * v).cast()));
        for r in 0..R {
            let xb = _mm512_set1_epi32(x.add(r * ldx).cast::<i32>().read_unaligned());
            for v in 0..4 {
                acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], wv[v], xb);
            }
        }
        b = b.add(256);
        x = x.add(4);
    }
    let sws: [__m512; 4] = std::array::from_fn(|v| _mm512_loadu_ps(sw.add(16 * v)));
    let bs: [__m512; 4] = std::array::from_fn(|v| _mm512_loadu_ps(bias.add(16 * v)));
    for r in 0..R {
        let corr = _mm512_set1_epi32((*xsum.add(r)).wrapping_mul(128));
        let s = _mm512_set1_ps(*sx.add(r));
        for v in 0..4 {
            if 16 * v >= cols {
                break;
            }
            let dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][v], corr));
            // (s_x · s_w) · dot + b, each rounded: no FMA, as the reference.
            let o = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(s, sws[v]), dot), bs[v]);
            _mm512_mask_storeu_ps(out.add(r * ldo + 16 * v), lanes(cols - 16 * v), o);
        }
    }
}

/// `PackedSimd::quantize_row` (bit-identical to `quantize_activations`):
/// absmax with `vmaxps` (NaN lanes ignored, as `f32::max`), then
/// `round(x · inv)` clamped to ±127 (NaN → 0, as Rust's `as i8`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn quantize_row(x: *const f32, k: usize, act: ActQuant, dst: *mut i8) -> (f32, i32) {
    let (s_x, inv) = match act {
        ActQuant::Float => unreachable!("quantize_row with float activations"),
        ActQuant::Static(s) => (s, 1.0 / s),
        ActQuant::Dynamic => {
            let mut a = _mm512_setzero_ps();
            let mut p = 0;
            while p < k {
                let v = _mm512_maskz_loadu_ps(lanes(k - p), x.add(p));
                // max(v, a) returns a when either is NaN: NaN never enters a.
                a = _mm512_max_ps(_mm512_abs_ps(v), a);
                p += 16;
            }
            let a = _mm512_reduce_max_ps(a);
            if a == 0.0 {
                (0.0, 0.0)
            } else {
                (a / 127.0, 127.0 / a)
            }
        }
    };
    let vinv = _mm512_set1_ps(inv);
    let (lo, hi) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
    let mut sum = _mm512_setzero_si512();
    let mut p = 0;
    while p < k {
        let m = lanes(k - p);
        let y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x.add(p)), vinv);
        let y = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
        // y as the second operand: a NaN y passes through both.
        let y = _mm512_min_ps(hi, _mm512_max_ps(lo, y));
        let ord = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(y, y);
        let q = _mm512_maskz_cvtps_epi32(ord, y);
        sum = _mm512_add_epi32(sum, q);
        _mm_mask_storeu_epi8(dst.add(p), m, _mm512_cvtepi32_epi8(q));
        p += 16;
    }
    (s_x, _mm512_reduce_add_epi32(sum))
}

/// The int8 weight-only dot tile: 16 codes per `vpmovsxbd` (straight from
/// memory; masked only past k) and `vcvtdq2ps`, one FMA per x row into the
/// canonical 16 lanes, to k rounded up to 32 (x is zero there, the codes read
/// as 0). The row scale is applied after the sum.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
unsafe fn dot_tile_i8<const R: usize>(
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
    let mut acc = [[[_mm512_setzero_ps(); 4]; R]; 1];
    let step = |acc: &mut [[__m512; 4]; R], p: usize, m: __mmask16| {
        let xs: [__m512; R] = std::array::from_fn(|r| _mm512_loadu_ps(x.add(r * ldx + p)));
        for c in 0..4 {
            let raw = if m == 0xffff {
                _mm_loadu_si128(codes[c].add(p).cast())
            } else {
                _mm_maskz_loadu_epi8(m, codes[c].wrapping_add(p).cast())
            };
            let wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(raw));
            for r in 0..R {
                acc[r][c] = _mm512_fmadd_ps(xs[r], wv, acc[r][c]);
            }
        }
    };
    let mut p = 0;
    while p + 16 <= k {
        step(&mut acc[0], p, 0xffff);
        p += 16;
    }
    let kp = k.next_multiple_of(32);
    while p < kp {
        step(&mut acc[0], p, lanes(k.saturating_sub(p)));
        p += 16;
    }
    for r in 0..R {
        for c in 0..cols {
            let mut sum = acc[0][r][c];
            for a in &acc[1..] {
                sum = _mm512_add_ps(sum, a[r][c]);
            }
            let v = hsum16(sum) * *params[c].0;
            let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
            *out.add(r * ldo + c) = v + b;
        }
    }
}
