//! AVX2 with AVX-VNNI: the AVX2 packed-weight kernels, except that int8 ×
//! int8 dots use the VEX-encoded `vpdpbusd` on ymm (`_mm256_dpbusd_avx_epi32`,
//! target feature `avxvnni`). As with AVX-512 VNNI, the weight codes are made
//! unsigned by flipping their sign bit (w + 128) and each dot is corrected by
//! `128·Σx`; every product and 4-product lane sum is exact, and the wrapping
//! i32 accumulators give the exact dot because `view` bounds k
//! (`MAX_INT8_DOT_K`).

use std::arch::x86_64::*;

use super::avx2::Avx2;
use super::packed_avx2::{gemm_i8_store, I8_NR};
use crate::packed::{Kind, PackedSimd};
use crate::schemes::ActQuant;

/// AVX2 + AVX-VNNI for the int8 × int8 path (its own kernel set).
pub(crate) struct Avx2Vnni;

impl PackedSimd for Avx2Vnni {
    type Float = Avx2;
    const DOT_ROWS: usize = <Avx2 as PackedSimd>::DOT_ROWS;

    // Low-bit × int8, m < 16: AVX2's tiles.
    unsafe fn dot_lowbit(
        kind: Kind,
        tile: crate::operands::Tile,
        k: usize,
        group: usize,
        t: crate::packed::LowbitTile,
        out: crate::operands::Out,
    ) {
        <Avx2 as PackedSimd>::dot_lowbit(kind, tile, k, group, t, out)
    }
    const LB_NR: usize = super::lowbit::LB_NR_256;
    crate::packed::gemm_lowbit_impl!(super::lowbit::gemm_avxvnni; 1, 2, 3, 4, 5, 6);

    unsafe fn f16_to_f32(src: *const u8, n: usize, dst: *mut f32) {
        <Avx2 as PackedSimd>::f16_to_f32(src, n, dst)
    }
    unsafe fn dq_absmax(codes: *const u8, n: usize, min: f32, step: f32, dst: *mut f32) {
        <Avx2 as PackedSimd>::dq_absmax(codes, n, min, step, dst)
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
        <Avx2 as PackedSimd>::decode_row(kind, codes, scales, zeros, group, k, dst)
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
        <Avx2 as PackedSimd>::dot_tile(kind, tile, k, group, x, w, bias, out)
    }
    unsafe fn quantize_row(x: *const f32, k: usize, act: ActQuant, dst: *mut i8) -> (f32, i32) {
        <Avx2 as PackedSimd>::quantize_row(x, k, act, dst)
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
        // Two x rows at a time: 8 accumulators + 4 weight vectors; a single
        // row takes two accumulator sets along k to cover vpdpbusd's latency.
        let mut r0 = 0;
        while r0 < rows {
            let take = (rows - r0).min(2);
            let (x, s) = (xq.add(r0 * ldx), xsum.add(r0));
            let res = if take == 2 {
                dot_i8::<2, 1>(k, x, ldx, s, w)
            } else {
                dot_i8::<1, 2>(k, x, ldx, s, w)
            };
            out[r0..r0 + take].copy_from_slice(&res[..take]);
            r0 += 2;
        }
    }

    const I8_NR: usize = I8_NR;
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
                    $($r => gemm_i8::<$r>(tile.cols, k4, x, b, out),)*
                    _ => unreachable!("int8 GEMM rows {}", tile.rows),
                }
            };
        }
        call!(1 2 3 4 5 6)
    }
}

/// `R` x rows × 4 weight rows of exact dots; `U` accumulator sets along k.
/// x rows are zero-padded to a multiple of 64, weight rows are not: a partial
/// last block goes through a zero-padded copy (its padding becomes 128 after
/// the flip but meets x = 0).
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn dot_i8<const R: usize, const U: usize>(
    k: usize,
    xq: *const i8,
    ldx: usize,
    xsum: *const i32,
    w: [*const u8; 4],
) -> [[i32; 4]; 2] {
    let flip = _mm256_set1_epi8(-128);
    let mut acc = [[[_mm256_setzero_si256(); 4]; R]; U];
    // Weight row c's 32 codes at `w` (its position p) into every x row's
    // accumulator of set u.
    let step = |acc: &mut [[[__m256i; 4]; R]; U], u: usize, c: usize, p: usize, w: *const u8| {
        let wv = _mm256_xor_si256(_mm256_loadu_si256(w.cast()), flip);
        for r in 0..R {
            let xv = _mm256_loadu_si256(xq.add(r * ldx + p).cast());
            acc[u][r][c] = _mm256_dpbusd_avx_epi32(acc[u][r][c], wv, xv);
        }
    };
    // One weight row after the other, in address order (the tile's rows are
    // consecutive): the hardware prefetchers follow one stream at about twice
    // the rate of four interleaved ones, and at m = 1 that is the whole cost.
    for c in 0..4 {
        let mut p = 0;
        while p + 32 * U <= k {
            for u in 0..U {
                let q = p + 32 * u;
                step(&mut acc, u, c, q, w[c].add(q));
            }
            p += 32 * U;
        }
        if p + 32 <= k {
            step(&mut acc, 0, c, p, w[c].add(p));
            p += 32;
        }
        if p < k {
            let mut tail = [0u8; 32];
            std::ptr::copy_nonoverlapping(w[c].add(p), tail.as_mut_ptr(), k - p);
            step(&mut acc, 0, c, p, tail.as_ptr());
        }
    }
    let mut res = [[0i32; 4]; 2];
    for r in 0..R {
        let corr = (*xsum.add(r)).wrapping_mul(128);
        for c in 0..4 {
            let mut sum = acc[0][r][c];
            for a in &acc[1..] {
                sum = _mm256_add_epi32(sum, a[r][c]);
            }
            res[r][c] = hsum_i32(sum).wrapping_sub(corr);
        }
    }
    res
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// The int8 GEMM micro-kernel (`PackedSimd::gemm_i8`, NR = 16 as two vectors
/// of 8 columns × 4 codes, MR = 6: 12 accumulators + 2 panel vectors + 1
/// broadcast): per 4 k-steps, two panel loads and, per x row, one broadcast
/// of 4 codes meeting both in `vpdpbusd` (panel bytes unsigned, x signed).
/// The panel's `w + 128` adds `128·Σx` to every dot, removed per row.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemm_i8<const R: usize>(
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
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    let mut b = panel;
    let mut x = xq;
    for _ in 0..k4 / 4 {
        let wv: [__m256i; 2] = std::array::from_fn(|v| _mm256_loadu_si256(b.add(32 * v).cast()));
        for r in 0..R {
            let xb = _mm256_set1_epi32(x.add(r * ldx).cast::<i32>().read_unaligned());
            for v in 0..2 {
                acc[r][v] = _mm256_dpbusd_avx_epi32(acc[r][v], wv[v], xb);
            }
        }
        b = b.add(64);
        x = x.add(4);
    }
    for r in 0..R {
        let corr = _mm256_set1_epi32((*xsum.add(r)).wrapping_mul(128));
        let dots = acc[r].map(|a| _mm256_sub_epi32(a, corr));
        gemm_i8_store(dots, *sx.add(r), cols, sw, bias, out.add(r * ldo));
    }
}
