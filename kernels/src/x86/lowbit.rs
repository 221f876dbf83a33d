//! x86 low-bit × int8 tiles (`PackedSimd::dot_lowbit`): 4- and 3-bit weight
//! codes meet int8 activation codes in integer multiply-adds.
//!
//! Each 32-element block is unpacked in registers into 32 byte codes in
//! element order (one ymm):
//! - 4-bit: the block's 16 bytes in both 128-bit lanes, the upper lane shifted
//!   right by 4, masked to nibbles (byte j: element j low, 16 + j high).
//! - 3-bit: the 8 low-bit bytes broadcast to four qwords shifted by 0, 2, 4, 6
//!   (`vpsrlvq`), masked to 2 bits, give element 8i + j's low bits in byte
//!   8i + j; the high-bit word broadcast, `vpshufb`-spread so byte e holds
//!   byte e % 4, tested against bit e / 4, adds 4.
//! - nf4: the 4-bit codes index a 16-byte table with `vpshufb`.
//!
//! Products: VNNI `vpdpbusd` takes the codes as the unsigned operand (nf4:
//! the table biased by +128, the bias removed as `128·Σx` per group). AVX2
//! `vpmaddubsw` + `vpmaddwd`: unsigned codes ≤ 15 times |x| ≤ 127 keep the
//! pair sums ≤ 3810, far from i16 saturation; nf4's signed table uses
//! `|u|` × `sign(x, u)`, pair sums ≤ 2·127·127 = 32258 < 32767.
//! Per group the 4 columns' i32 sums are reduced into one xmm and the float
//! part is done 4 columns wide in the reference's order (no FMA).
//!
//! VNNI: one x row × 16 weight rows (3-bit: two blocks' low-bit qwords
//! broadcast to a vector's halves and shifted per lane, the high bits spread
//! by dword broadcast and tested into a mask that adds 4; element order).
//! 4-bit, groups of 64 or of whole 128s: four blocks' 64 bytes are one load,
//! masked into their low nibbles and shifted-and-masked into their high ones
//! (`XOrder::Nibbles128`, the order the driver gives x too): two `vpdpbusd`
//! per 128 weights per row, 3 unpacking ops where 64 at a time took 4. With
//! groups of 64 the 256-bit halves hold the two groups, and one tree
//! (`reduce16x2`) sums both. Other groups, and blocks after the last whole
//! 128: two blocks' 32 bytes broadcast into both 256-bit halves, the upper
//! half shifted by 4 and masked (`XOrder::Halves64`); one `vpdpbusd` per 64
//! weights per row; group 32 splits each 64 into two groups by 128-bit lane
//! with masked `vpdpbusd`s. Per group the 16 accumulators are
//! transposed-and-summed (`vpunpck*`, `vshufi64x2`: 15 steps of 3 ops) into
//! one vector of 16 column dots, and the float part runs 16 columns wide on
//! group-major parameters (`PackedSimd::group_major`). Several x rows (beam
//! search's hypotheses, best-of samples) go in pairs where k is a whole
//! number of 128s (`tile8x2_vnni`): each weight row is unpacked once for
//! both, 8 columns × 2 rows at a time, the odd row through the one-row tile.
//!
//! m ≥ 16: the driver unpacks each panel of NR weight rows once into
//! `[kp/4][NR][4]` integer-code bytes; the micro-kernels are the int8 GEMMs'
//! shapes, their i32 tile flushed into the float part at every group end:
//! - AVX-512 VNNI (`gemm_vnni`): 6 x rows × 64 columns in `vpdpbusd`.
//! - AVX-VNNI (`gemm_avxvnni`): 6 × 16 (two ymm), VEX `vpdpbusd`.
//! - AVX2, and AVX-512 without VNNI (`gemm_avx2`): 3 × 16, `vpmaddubsw`;
//!   affine codes accumulate a 32-k block in i16 before `vpmaddwd` widens
//!   it (exactness argued at the kernel), nf4 uses the sign trick per step.
//!
//! NR = 16 for the 256-bit sets: 16 columns are two ymm of 8 dword lanes, and
//! with MR rows the tile (MR·2 accumulators + 2 panel vectors + 1 broadcast)
//! fits the 16 ymm registers as in the int8 GEMMs; 32 columns would leave
//! room for only 2 x rows (3 with AVX2's i16 accumulators: 1), doubling the
//! panel loads per product.

use std::arch::x86_64::*;

use crate::packed::quant::XOrder;
use crate::packed::{Kind, LowbitTile};
use crate::schemes::NF4_I8;

const AFF4: u8 = 1;
const NF4K: u8 = 2;
const AFF3: u8 = 3;

/// Runs the tile for `kind`, with VNNI products when `VNNI`.
///
/// # Safety
/// The CPU has AVX2 + FMA (+ AVX-512 VL/VNNI when `VNNI`); `t` as
/// `PackedSimd::dot_lowbit` requires.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot_lowbit<const VNNI: bool>(
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
            match (kind, rows) {
                $((Kind::Affine4, $r) => tile::<VNNI, AFF4, $r>(cols, k, group, t, out, ldo),
                  (Kind::Nf4, $r) => tile::<VNNI, NF4K, $r>(cols, k, group, t, out, ldo),
                  (Kind::Affine3, $r) => tile::<VNNI, AFF3, $r>(cols, k, group, t, out, ldo),)*
                _ => unreachable!("low-bit tile {kind:?} rows {rows}"),
            }
        };
    }
    call!(1 2 3 4)
}

#[allow(clippy::too_many_arguments)]
unsafe fn tile<const VNNI: bool, const K: u8, const R: usize>(
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    let ng = k.div_ceil(group);
    if VNNI && pairs::<K>(k, group) {
        // Two x rows share each unpacked weight row (`tile8x2_vnni`).
        for r in (0..R - R % 2).step_by(2) {
            for c0 in (0..cols).step_by(8) {
                tile8x2_vnni::<K>(c0, cols, k, group, t.row(r, ng), out.add(r * ldo), ldo)
            }
        }
        if R % 2 == 1 {
            let r = R - 1;
            tile16_vnni::<K>(cols, k, group, t.row(r, ng), out.add(r * ldo))
        }
    } else if VNNI && wide(K, group) {
        for r in 0..R {
            tile16_vnni::<K>(cols, k, group, t.row(r, ng), out.add(r * ldo))
        }
    } else if VNNI {
        tile_vnni::<K, R>(cols, k, group, t, out, ldo)
    } else {
        tile_avx2::<K, R>(cols, k, group, t, out, ldo)
    }
}

/// Whether the VNNI set takes the 16-column tile (groups that whole 64s or
/// halves of one fit).
fn wide(_k: u8, group: usize) -> bool {
    group == 32 || group.is_multiple_of(64)
}

/// `PackedSimd::lowbit_shape` of the VNNI set.
pub(crate) fn vnni_shape(kind: Kind, group: usize) -> (usize, XOrder) {
    let k = match kind {
        Kind::Affine3 => AFF3,
        _ => AFF4,
    };
    if !wide(k, group) {
        (4, XOrder::Element)
    } else if k == AFF3 {
        (16, XOrder::Element)
    } else if nibbles128(group) {
        (16, XOrder::Nibbles128)
    } else {
        (16, XOrder::Halves64)
    }
}

/// Whether rows of x go in pairs through `tile8x2_vnni`: 4-bit, groups of 64
/// or of whole 128s, and k a whole number of 128s (no 64-weight tail).
fn pairs<const K: u8>(k: usize, group: usize) -> bool {
    K != AFF3 && nibbles128(group) && k.div_ceil(32).is_multiple_of(4)
}

/// Whether the 4-bit 16-column tile takes 128 weights (four blocks) per
/// load: groups of 64 (two per 128, split by 256-bit half) or of whole 128s.
fn nibbles128(group: usize) -> bool {
    group == 64 || group.is_multiple_of(128)
}

/// Block `b`'s 32 codes in element order (nf4: the 4-bit indices).
#[inline(always)]
unsafe fn unpack<const K: u8>(codes: *const u8, b: usize) -> __m256i {
    if K == AFF3 {
        let blk = codes.add(12 * b);
        let low = blk.cast::<i64>().read_unaligned();
        let high = blk.add(8).cast::<i32>().read_unaligned();
        let l = _mm256_and_si256(
            _mm256_srlv_epi64(_mm256_set1_epi64x(low), _mm256_setr_epi64x(0, 2, 4, 6)),
            _mm256_set1_epi8(3),
        );
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(high),
            _mm256_setr_epi8(
                0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3,
                0, 1, 2, 3,
            ),
        );
        let bit = _mm256_setr_epi8(
            1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 32, 32, 32, 32, 64, 64,
            64, 64, -128, -128, -128, -128,
        );
        let h = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        _mm256_or_si256(l, _mm256_and_si256(h, _mm256_set1_epi8(4)))
    } else {
        let v = _mm_loadu_si128(codes.add(16 * b).cast());
        let both = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(v), _mm_srli_epi16::<4>(v));
        _mm256_and_si256(both, _mm256_set1_epi8(15))
    }
}

/// The tile's 4 weight rows, padding columns repeating the last.
#[inline(always)]
unsafe fn rows4(t: &LowbitTile, cols: usize) -> [*const u8; 4] {
    std::array::from_fn(|c| t.codes.add(c.min(cols - 1) * t.rb))
}

/// Group g's `(s, z)` of the tile's 4 columns (group-major, padded).
#[inline(always)]
unsafe fn params4(t: &LowbitTile, g: usize) -> (__m128, __m128) {
    (_mm_loadu_ps(t.ps.add(4 * g)), _mm_loadu_ps(t.pz.add(4 * g)))
}

/// Sums of four i32×8 vectors: lane c = Σ a[c].
#[inline(always)]
unsafe fn reduce4(a: [__m256i; 4]) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// The float part of one group for one x row (the reference's expression).
#[inline(always)]
unsafe fn group_float(acc: __m128, d: __m128i, sxg: i32, s: __m128, z: __m128) -> __m128 {
    let d = _mm_cvtepi32_ps(d);
    let t = _mm_mul_ps(s, _mm_sub_ps(d, _mm_mul_ps(z, _mm_set1_ps(sxg as f32))));
    _mm_add_ps(acc, t)
}

/// `out[r][c] = sx[r] · acc + bias[c]` for `c < cols`.
#[inline(always)]
unsafe fn store<const R: usize>(
    acc: [__m128; R],
    cols: usize,
    t: &LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    let b = _mm_loadu_ps(t.bias);
    for (r, a) in acc.iter().enumerate() {
        let y = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(*t.sx.add(r)), *a), b);
        let mut v = [0.0f32; 4];
        _mm_storeu_ps(v.as_mut_ptr(), y);
        for (c, &y) in v.iter().enumerate().take(cols) {
            *out.add(r * ldo + c) = y;
        }
    }
}

/// A 16-byte table in both lanes.
#[inline(always)]
unsafe fn table(bias: i8) -> __m256i {
    let t: [i8; 16] = std::array::from_fn(|i| NF4_I8[i].wrapping_add(bias));
    _mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr().cast()))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const K: u8, const R: usize>(
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    let ng = k.div_ceil(group);
    let nb = k.div_ceil(32);
    let gb = group / 32;
    let ones = _mm256_set1_epi16(1);
    let tab = table(0);
    let mut facc = [_mm_setzero_ps(); R];
    for g in 0..ng {
        let mut acc = [[_mm256_setzero_si256(); 4]; R];
        for b in g * gb..((g + 1) * gb).min(nb) {
            let xv: [__m256i; R] =
                std::array::from_fn(|r| _mm256_loadu_si256(t.xq.add(r * t.ldx + 32 * b).cast()));
            let codes = rows4(&t, cols);
            for c in 0..4 {
                let u = unpack::<K>(codes[c], b);
                if K == NF4K {
                    let u = _mm256_shuffle_epi8(tab, u);
                    let au = _mm256_abs_epi8(u);
                    for r in 0..R {
                        let p = _mm256_maddubs_epi16(au, _mm256_sign_epi8(xv[r], u));
                        acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(p, ones));
                    }
                } else {
                    for r in 0..R {
                        let p = _mm256_maddubs_epi16(u, xv[r]);
                        acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(p, ones));
                    }
                }
            }
        }
        let (s, z) = params4(&t, g);
        for r in 0..R {
            let d = reduce4(acc[r]);
            facc[r] = group_float(facc[r], d, *t.xsg.add(r * ng + g), s, z);
        }
    }
    store(facc, cols, &t, out, ldo)
}

#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
unsafe fn tile_vnni<const K: u8, const R: usize>(
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    let ng = k.div_ceil(group);
    let nb = k.div_ceil(32);
    let gb = group / 32;
    let tab = table(-128);
    let mut facc = [_mm_setzero_ps(); R];
    for g in 0..ng {
        let mut acc = [[_mm256_setzero_si256(); 4]; R];
        for b in g * gb..((g + 1) * gb).min(nb) {
            let xv: [__m256i; R] =
                std::array::from_fn(|r| _mm256_loadu_si256(t.xq.add(r * t.ldx + 32 * b).cast()));
            let codes = rows4(&t, cols);
            for c in 0..4 {
                let mut u = unpack::<K>(codes[c], b);
                if K == NF4K {
                    // NF4_I8 + 128 as unsigned bytes.
                    u = _mm256_shuffle_epi8(tab, u);
                }
                for r in 0..R {
                    acc[r][c] = _mm256_dpbusd_epi32(acc[r][c], u, xv[r]);
                }
            }
        }
        let (s, z) = params4(&t, g);
        for r in 0..R {
            let sxg = *t.xsg.add(r * ng + g);
            let mut d = reduce4(acc[r]);
            if K == NF4K {
                d = _mm_sub_epi32(d, _mm_set1_epi32(sxg.wrapping_mul(128)));
            }
            facc[r] = group_float(facc[r], d, sxg, s, z);
        }
    }
    store(facc, cols, &t, out, ldo)
}

/// `Σ a[c]` into lane c of one vector (a transposing tree of adds: the two
/// halves' sums of `reduce16x2`, added).
#[inline(always)]
unsafe fn reduce16(a: &[__m512i; 16]) -> __m512i {
    let (x, y) = reduce16x2(a);
    _mm512_add_epi32(x, y)
}

/// Two groups' sums from accumulators holding group A in dword lanes 0..8
/// and group B in 8..16: lane c of the first result = Σ a[c]'s lanes 0..8,
/// of the second Σ lanes 8..16 (reduce16's tree less its last add).
#[inline(always)]
unsafe fn reduce16x2(a: &[__m512i; 16]) -> (__m512i, __m512i) {
    let (lo, hi) = a.split_at(8);
    halves(
        reduce8(lo.try_into().unwrap()),
        reduce8(hi.try_into().unwrap()),
    )
}

/// The first three levels of the transposing tree over 8 accumulators:
/// `[cols 0..4 A, cols 0..4 B, cols 4..8 A, cols 4..8 B]` (A: dword lanes
/// 0..8 of each accumulator summed, B: lanes 8..16).
#[inline(always)]
unsafe fn reduce8(a: &[__m512i; 8]) -> __m512i {
    let l1: [__m512i; 4] = std::array::from_fn(|i| {
        let (x, y) = (a[2 * i], a[2 * i + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y))
    });
    // 128-bit lane L: columns 4i..4i+4's sums over lane L (A: L < 2).
    let l2: [__m512i; 2] = std::array::from_fn(|i| {
        let (x, y) = (l1[2 * i], l1[2 * i + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y))
    });
    _mm512_add_epi32(
        _mm512_shuffle_i64x2::<0x88>(l2[0], l2[1]),
        _mm512_shuffle_i64x2::<0xdd>(l2[0], l2[1]),
    )
}

/// Two `reduce8` results `x`, `y` → (all of x's A then y's A, x's B then y's B).
#[inline(always)]
unsafe fn halves(x: __m512i, y: __m512i) -> (__m512i, __m512i) {
    (
        _mm512_shuffle_i64x2::<0x88>(x, y),
        _mm512_shuffle_i64x2::<0xdd>(x, y),
    )
}

/// Weights `128h..128h + 128` of a 4-bit row (blocks 4h..4h + 4, all
/// present) in `XOrder::Nibbles128`'s order: the 64 bytes' low nibbles, then
/// their high nibbles (nf4: through the table).
#[inline(always)]
unsafe fn unpack128<const K: u8>(codes: *const u8, h: usize) -> (__m512i, __m512i) {
    let v = _mm512_loadu_si512(codes.add(64 * h).cast());
    let m = _mm512_set1_epi8(15);
    let (lo, hi) = (
        _mm512_and_si512(v, m),
        _mm512_and_si512(_mm512_srli_epi16::<4>(v), m),
    );
    if K == NF4K {
        let t: [i8; 16] = std::array::from_fn(|i| NF4_I8[i].wrapping_add(-128));
        let tab = _mm512_broadcast_i32x4(_mm_loadu_si128(t.as_ptr().cast()));
        (_mm512_shuffle_epi8(tab, lo), _mm512_shuffle_epi8(tab, hi))
    } else {
        (lo, hi)
    }
}

/// Weights `64h..64h + 64` of row `codes` (blocks 2h, 2h + 1): 4-bit in the
/// permuted order, 3-bit in element order; `half`: only block 2h exists (the
/// row's last), the other half 0.
#[inline(always)]
unsafe fn unpack64<const K: u8>(codes: *const u8, h: usize, half: bool) -> __m512i {
    if K == AFF3 {
        // Qword lane 4b + i holds block b's low-bit bytes >> 2i: element
        // 32b + 8i + j's two bits in byte j; dword lanes of half b hold its
        // high-bit word, so byte e sees byte e % 4, tested against bit e / 4.
        let b0 = codes.add(24 * h);
        let (l0, h0) = (
            b0.cast::<i64>().read_unaligned(),
            b0.add(8).cast::<i32>().read_unaligned(),
        );
        let (l1, h1) = if half {
            (0, 0)
        } else {
            (
                b0.add(12).cast::<i64>().read_unaligned(),
                b0.add(20).cast::<i32>().read_unaligned(),
            )
        };
        let low = _mm512_mask_blend_epi64(0xf0, _mm512_set1_epi64(l0), _mm512_set1_epi64(l1));
        let low = _mm512_and_si512(
            _mm512_srlv_epi64(low, _mm512_setr_epi64(0, 2, 4, 6, 0, 2, 4, 6)),
            _mm512_set1_epi8(3),
        );
        let high = _mm512_mask_blend_epi32(0xff00, _mm512_set1_epi32(h0), _mm512_set1_epi32(h1));
        let bits: [u8; 64] = std::array::from_fn(|e| 1u8 << ((e % 32) / 4));
        let m = _mm512_test_epi8_mask(high, _mm512_loadu_si512(bits.as_ptr().cast()));
        return _mm512_mask_add_epi8(low, m, low, _mm512_set1_epi8(4));
    }
    let off = 32 * h;
    let v = if half {
        let lo = _mm256_castsi128_si256(_mm_loadu_si128(codes.add(off).cast()));
        _mm512_broadcast_i64x4(_mm256_inserti128_si256::<1>(lo, _mm_setzero_si128()))
    } else {
        _mm512_broadcast_i64x4(_mm256_loadu_si256(codes.add(off).cast()))
    };
    let v = _mm512_and_si512(
        _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)),
        _mm512_set1_epi8(15),
    );
    if K == NF4K {
        let t: [i8; 16] = std::array::from_fn(|i| NF4_I8[i].wrapping_add(-128));
        let tab = _mm512_broadcast_i32x4(_mm_loadu_si128(t.as_ptr().cast()));
        _mm512_shuffle_epi8(tab, v)
    } else {
        v
    }
}

/// One x row × 16 weight rows (module docs).
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile16_vnni<const K: u8>(
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
) {
    let ng = k.div_ceil(group);
    let nb = k.div_ceil(32);
    let rows: [*const u8; 16] = std::array::from_fn(|c| t.codes.add(c.min(cols - 1) * t.rb));
    let mut facc = _mm512_setzero_ps();
    // The tile `PREFETCH_LOWBIT_TILES` on, fetched in address order (its
    // rows are contiguous, as this tile's): per step of 64 weights this
    // tile reads 16 · `step` bytes, spread over all its rows, so the fetch
    // takes the next 16 · `step` bytes of that stream. A sequential stream
    // is what the prefetchers follow; line h of each of 16 rows is not (it
    // streamed int4 from DRAM at about half the rate). Spread over the loop:
    // a burst of prefetches stalls the load queue.
    let ahead = 16 * t.rb * crate::tuning::PREFETCH_LOWBIT_TILES;
    let step = if K == AFF3 { 24 } else { 32 };
    let fetch = |h: usize| {
        if ahead > 0 {
            let p = t.codes.wrapping_add(ahead + 16 * step * h);
            for i in 0..16 * step / 64 {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64 * i).cast());
            }
        }
    };
    let mut float = |g: usize, mut d: __m512i| {
        let sxg = *t.xsg.add(g);
        if K == NF4K {
            d = _mm512_sub_epi32(d, _mm512_set1_epi32(sxg.wrapping_mul(128)));
        }
        let (s, z) = (
            _mm512_loadu_ps(t.ps.add(16 * g)),
            _mm512_loadu_ps(t.pz.add(16 * g)),
        );
        let d = _mm512_cvtepi32_ps(d);
        let v = _mm512_mul_ps(
            s,
            _mm512_sub_ps(d, _mm512_mul_ps(z, _mm512_set1_ps(sxg as f32))),
        );
        facc = _mm512_add_ps(facc, v);
    };
    if group == 32 {
        // Each 64 holds groups 2h and 2h + 1: 4-bit (permuted) in 128-bit
        // lanes 0, 2 and 1, 3; 3-bit in the 256-bit halves.
        let a_lanes: __mmask16 = if K == AFF3 { 0x00ff } else { 0x0f0f };
        for h in 0..nb.div_ceil(2) {
            fetch(h);
            let half = 2 * h + 1 == nb;
            let x = _mm512_loadu_si512(t.xq.add(64 * h).cast());
            let mut a = [_mm512_setzero_si512(); 16];
            let mut b = [_mm512_setzero_si512(); 16];
            for c in 0..16 {
                let w = unpack64::<K>(rows[c], h, half);
                a[c] = _mm512_maskz_dpbusd_epi32(a_lanes, a[c], w, x);
                b[c] = _mm512_maskz_dpbusd_epi32(!a_lanes, b[c], w, x);
            }
            float(2 * h, reduce16(&a));
            if !half {
                float(2 * h + 1, reduce16(&b));
            }
        }
    } else {
        // 64 weights (two blocks, `XOrder::Halves64` / 3-bit) per row per step.
        let step64 = |h: usize, a: &mut [__m512i; 16]| {
            fetch(h);
            let half = 2 * h + 1 == nb;
            let x = _mm512_loadu_si512(t.xq.add(64 * h).cast());
            for c in 0..16 {
                let w = unpack64::<K>(rows[c], h, half);
                a[c] = _mm512_dpbusd_epi32(a[c], w, x);
            }
        };
        // 4-bit: 128 weights (four whole blocks) per row per step while
        // they last, `XOrder::Nibbles128`; the rest in 64s as above.
        let whole = if K != AFF3 && nibbles128(group) {
            nb / 4
        } else {
            0
        };
        let step128 = |h: usize, a: &mut [__m512i; 16]| {
            fetch(2 * h);
            fetch(2 * h + 1);
            let xl = _mm512_loadu_si512(t.xq.add(128 * h).cast());
            let xh = _mm512_loadu_si512(t.xq.add(128 * h + 64).cast());
            for c in 0..16 {
                let (lo, hi) = unpack128::<K>(rows[c], h);
                a[c] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a[c], lo, xl), hi, xh);
            }
        };
        if group == 64 && whole > 0 {
            // Each 128 holds groups 2h (dword lanes 0..8) and 2h + 1 (8..16).
            for h in 0..whole {
                let mut a = [_mm512_setzero_si512(); 16];
                step128(h, &mut a);
                let (da, db) = reduce16x2(&a);
                float(2 * h, da);
                float(2 * h + 1, db);
            }
            for h in 2 * whole..nb.div_ceil(2) {
                let mut a = [_mm512_setzero_si512(); 16];
                step64(h, &mut a);
                float(h, reduce16(&a));
            }
        } else {
            // Groups of whole 128s (`whole` steps of 128, then 64s) or of 64s.
            let (per, unit) = if whole > 0 {
                (group / 128, 128)
            } else {
                (group / 64, 64)
            };
            for g in 0..ng {
                let mut a = [_mm512_setzero_si512(); 16];
                if unit == 128 {
                    for h in g * per..((g + 1) * per).min(whole) {
                        step128(h, &mut a);
                    }
                    if g + 1 == ng {
                        for h in 2 * whole..nb.div_ceil(2) {
                            step64(h, &mut a);
                        }
                    }
                } else {
                    for h in g * per..((g + 1) * per).min(nb.div_ceil(2)) {
                        step64(h, &mut a);
                    }
                }
                float(g, reduce16(&a));
            }
        }
    }
    let y = _mm512_add_ps(
        _mm512_mul_ps(_mm512_set1_ps(*t.sx), facc),
        _mm512_loadu_ps(t.bias),
    );
    let m: __mmask16 = if cols >= 16 { !0 } else { (1u16 << cols) - 1 };
    _mm512_mask_storeu_ps(out, m, y);
}

/// Two x rows × weight rows `c0..c0 + 8` of the 16-column tile (`pairs`):
/// each weight row's 128 codes are unpacked once for both x rows, 8
/// columns × 2 rows of accumulators. Per group `reduce8` (`reduce16x2`'s
/// tree over 8 inputs) leaves `[cols 0..4 A, 0..4 B, 4..8 A, 4..8 B]` per row
/// (A, B: the 256-bit halves); `halves` puts both rows' group A, and both
/// rows' group B, into one vector: lanes 0..8 row 0, 8..16 row 1, so the
/// float part runs on 8 columns × 2 rows with the same operations per
/// element as `tile16_vnni`.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile8x2_vnni<const K: u8>(
    c0: usize,
    cols: usize,
    k: usize,
    group: usize,
    t: LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    let ng = k.div_ceil(group);
    let steps = k.div_ceil(128);
    let rows: [*const u8; 8] = std::array::from_fn(|c| t.codes.add((c0 + c).min(cols - 1) * t.rb));
    // As tile16_vnni's prefetch: this half's 8 rows are contiguous, and per
    // step it reads 8 · 64 bytes of them; fetch as many of the next tile's.
    let ahead = 16 * t.rb * crate::tuning::PREFETCH_LOWBIT_TILES;
    let base = t.codes.wrapping_add(c0 * t.rb + ahead);
    let (x0, x1) = (t.xq, t.xq.add(t.ldx));
    let (g0, g1) = (t.xsg, t.xsg.add(ng));
    let mut facc = _mm512_setzero_ps();
    let both = |a: i32, b: i32| _mm512_inserti64x4::<1>(_mm512_set1_epi32(a), _mm256_set1_epi32(b));
    let mut float = |g: usize, mut d: __m512i| {
        let sxg = both(*g0.add(g), *g1.add(g));
        if K == NF4K {
            d = _mm512_sub_epi32(d, _mm512_slli_epi32::<7>(sxg));
        }
        let (s, z) = (eight(t.ps.add(16 * g + c0)), eight(t.pz.add(16 * g + c0)));
        let d = _mm512_cvtepi32_ps(d);
        let v = _mm512_mul_ps(
            s,
            _mm512_sub_ps(d, _mm512_mul_ps(z, _mm512_cvtepi32_ps(sxg))),
        );
        facc = _mm512_add_ps(facc, v);
    };
    let step = |h: usize, a: &mut [[__m512i; 8]; 2]| {
        if ahead > 0 {
            for i in 0..8 {
                _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(512 * h + 64 * i).cast());
            }
        }
        let xl = [
            _mm512_loadu_si512(x0.add(128 * h).cast()),
            _mm512_loadu_si512(x1.add(128 * h).cast()),
        ];
        let xh = [
            _mm512_loadu_si512(x0.add(128 * h + 64).cast()),
            _mm512_loadu_si512(x1.add(128 * h + 64).cast()),
        ];
        for c in 0..8 {
            let (lo, hi) = unpack128::<K>(rows[c], h);
            for r in 0..2 {
                a[r][c] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a[r][c], lo, xl[r]), hi, xh[r]);
            }
        }
    };
    // Both rows' sums of group A (lanes 0..8 of each accumulator) and of B.
    let reduce = |a: &[[__m512i; 8]; 2]| halves(reduce8(&a[0]), reduce8(&a[1]));
    if group == 64 {
        for h in 0..steps {
            let mut a = [[_mm512_setzero_si512(); 8]; 2];
            step(h, &mut a);
            let (da, db) = reduce(&a);
            float(2 * h, da);
            float(2 * h + 1, db);
        }
    } else {
        let per = group / 128;
        for g in 0..ng {
            let mut a = [[_mm512_setzero_si512(); 8]; 2];
            for h in g * per..((g + 1) * per).min(steps) {
                step(h, &mut a);
            }
            let (da, db) = reduce(&a);
            float(g, _mm512_add_epi32(da, db));
        }
    }
    let sx = _mm512_castsi512_ps(both(
        (*t.sx).to_bits() as i32,
        (*t.sx.add(1)).to_bits() as i32,
    ));
    let y = _mm512_add_ps(_mm512_mul_ps(sx, facc), eight(t.bias.add(c0)));
    let m = ((1u16 << (cols - c0).min(8)) - 1) as u8;
    _mm256_mask_storeu_ps(out.add(c0), m, _mm512_castps512_ps256(y));
    let upper = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(y));
    _mm256_mask_storeu_ps(out.add(ldo + c0), m, _mm256_castpd_ps(upper));
}

/// 8 floats in both 256-bit halves.
#[inline(always)]
unsafe fn eight(p: *const f32) -> __m512 {
    _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))))
}

/// The low-bit GEMM micro-kernel (`PackedSimd::gemm_lowbit`, NR = 64 as four
/// vectors, `R` ≤ 6 x rows): per 4 k-steps four panel loads and per x row one
/// broadcast of 4 codes into `vpdpbusd`, i32 accumulators cleared per group;
/// at each group's end the float part, 64 columns wide per row.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn gemm_vnni<const R: usize>(
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
    let mut f = [[_mm512_setzero_ps(); 4]; R];
    for g in 0..ng {
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        let mut b = panel.add(g * gs * 256);
        let mut x = t.xq.add(g * group);
        for _ in g * gs..((g + 1) * gs).min(steps) {
            let wv: [__m512i; 4] =
                std::array::from_fn(|v| _mm512_loadu_si512(b.add(64 * v).cast()));
            for r in 0..R {
                let xb = _mm512_set1_epi32(x.add(r * t.ldx).cast::<i32>().read_unaligned());
                for v in 0..4 {
                    acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], wv[v], xb);
                }
            }
            b = b.add(256);
            x = x.add(4);
        }
        let s: [__m512; 4] = std::array::from_fn(|v| _mm512_loadu_ps(t.ps.add(64 * g + 16 * v)));
        let z: [__m512; 4] = std::array::from_fn(|v| _mm512_loadu_ps(t.pz.add(64 * g + 16 * v)));
        for r in 0..R {
            let sxg = *t.xsg.add(r * ng + g);
            let corr = _mm512_set1_epi32(if nf4 { sxg.wrapping_mul(128) } else { 0 });
            let sxf = _mm512_set1_ps(sxg as f32);
            for v in 0..4 {
                let d = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][v], corr));
                let u = _mm512_mul_ps(s[v], _mm512_sub_ps(d, _mm512_mul_ps(z[v], sxf)));
                f[r][v] = _mm512_add_ps(f[r][v], u);
            }
        }
    }
    for r in 0..R {
        let sx = _mm512_set1_ps(*t.sx.add(r));
        for v in 0..4 {
            if 16 * v >= cols {
                break;
            }
            let y = _mm512_add_ps(
                _mm512_mul_ps(sx, f[r][v]),
                _mm512_loadu_ps(t.bias.add(16 * v)),
            );
            let left = cols - 16 * v;
            let m: __mmask16 = if left >= 16 { !0 } else { (1u16 << left) - 1 };
            _mm512_mask_storeu_ps(out.add(r * ldo + 16 * v), m, y);
        }
    }
}

/// Columns per low-bit GEMM panel of the 256-bit sets (AVX2, AVX-512 without
/// VNNI, AVX-VNNI): two ymm of 8 columns × 4 codes, as their int8 GEMM.
pub(crate) const LB_NR_256: usize = 16;

/// The float part of one group for a 256-bit tile row (`gemm_vnni`'s, 8
/// columns per vector): `f += s · (f32(d) − z · f32(sxg))`, no FMA.
#[inline(always)]
unsafe fn group_float8(
    f: &mut [__m256; 2],
    d: [__m256i; 2],
    sxg: i32,
    s: &[__m256; 2],
    z: &[__m256; 2],
) {
    let sxf = _mm256_set1_ps(sxg as f32);
    for v in 0..2 {
        let d = _mm256_cvtepi32_ps(d[v]);
        let u = _mm256_mul_ps(s[v], _mm256_sub_ps(d, _mm256_mul_ps(z[v], sxf)));
        f[v] = _mm256_add_ps(f[v], u);
    }
}

/// `out[r][c] = sx[r] · f + bias[c]` for `c < cols` (16-column tile rows).
#[inline(always)]
unsafe fn store16<const R: usize>(
    f: &[[__m256; 2]; R],
    cols: usize,
    t: &LowbitTile,
    out: *mut f32,
    ldo: usize,
) {
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (r, fr) in f.iter().enumerate() {
        let sx = _mm256_set1_ps(*t.sx.add(r));
        for v in 0..2 {
            if 8 * v >= cols {
                break;
            }
            let y = _mm256_add_ps(_mm256_mul_ps(sx, fr[v]), _mm256_loadu_ps(t.bias.add(8 * v)));
            let o = out.add(r * ldo + 8 * v);
            let left = cols - 8 * v;
            if left >= 8 {
                _mm256_storeu_ps(o, y);
            } else {
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left as i32), iota);
                _mm256_maskstore_ps(o, mask, y);
            }
        }
    }
}

/// Group g's `(s, z)` of a 16-column panel (`[ng][16]`).
#[inline(always)]
unsafe fn params16(t: &LowbitTile, g: usize) -> ([__m256; 2], [__m256; 2]) {
    (
        std::array::from_fn(|v| _mm256_loadu_ps(t.ps.add(LB_NR_256 * g + 8 * v))),
        std::array::from_fn(|v| _mm256_loadu_ps(t.pz.add(LB_NR_256 * g + 8 * v))),
    )
}

/// The AVX-VNNI low-bit GEMM micro-kernel (`PackedSimd::gemm_lowbit`, NR =
/// 16, `R` ≤ 6 x rows): `gemm_vnni` on ymm, as the set's int8 GEMM (12
/// accumulators + 2 panel vectors + 1 broadcast of 4 x codes per row and 4
/// k-steps); the i32 tile flushed into the float part at every group end.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
pub(crate) unsafe fn gemm_avxvnni<const R: usize>(
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
    let mut f = [[_mm256_setzero_ps(); 2]; R];
    for g in 0..ng {
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        let mut b = panel.add(g * gs * 4 * LB_NR_256);
        let mut x = t.xq.add(g * group);
        for _ in g * gs..((g + 1) * gs).min(steps) {
            let wv: [__m256i; 2] =
                std::array::from_fn(|v| _mm256_loadu_si256(b.add(32 * v).cast()));
            for r in 0..R {
                let xb = _mm256_set1_epi32(x.add(r * t.ldx).cast::<i32>().read_unaligned());
                for v in 0..2 {
                    acc[r][v] = _mm256_dpbusd_avx_epi32(acc[r][v], wv[v], xb);
                }
            }
            b = b.add(4 * LB_NR_256);
            x = x.add(4);
        }
        let (s, z) = params16(&t, g);
        for r in 0..R {
            let sxg = *t.xsg.add(r * ng + g);
            // nf4's panel holds NF4_I8 + 128: take 128·Σx off.
            let corr = _mm256_set1_epi32(if nf4 { sxg.wrapping_mul(128) } else { 0 });
            let d = acc[r].map(|a| _mm256_sub_epi32(a, corr));
            group_float8(&mut f[r], d, sxg, &s, &z);
        }
    }
    store16(&f, cols, &t, out, ldo)
}

/// The AVX2 low-bit GEMM micro-kernel (`PackedSimd::gemm_lowbit` without
/// VNNI, NR = 16, `R` ≤ 3 x rows); the panel as `gemm_avxvnni`'s, integer
/// products by `vpmaddubsw` (unsigned × signed bytes, adjacent pairs summed
/// into i16 with saturation), made exact as follows.
///
/// - Affine codes (u ≤ 15 for 4-bit, ≤ 7 for 3-bit) are the unsigned
///   operand, x codes (|x| ≤ 127, the quantizer clamps) the signed one: a
///   pair is at most 2·15·127 = 3810 in magnitude, so 8 steps (32 k, one
///   block: group ends and kp fall on blocks) sum to ≤ 30480 < 32767 in plain
///   i16 adds, then `vpmaddwd` by 1 widens the block into i32. Two ops per
///   32 products instead of three.
/// - nf4: the panel's `NF4_I8 + 128` would reach 2·255·127 and saturate.
///   Flipping the sign bit back gives the signed table t (|t| ≤ 127), fed as
///   `|t|` against `sign(x, t)` (`vpsignb`: x negated where t < 0, zeroed
///   where t = 0; |x| ≤ 127 so the negation is exact): each product is
///   `t·x`, a pair ≤ 2·127·127 = 32258 < 32767, widened every step. The dot
///   is then the exact signed one: no `128·Σx` correction.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn gemm_avx2<const R: usize>(
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
    let blocks = kp / 32;
    let gb = group / 32;
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(-128);
    let mut f = [[_mm256_setzero_ps(); 2]; R];
    for g in 0..ng {
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        let mut b = panel.add(g * group * LB_NR_256);
        let mut x = t.xq.add(g * group);
        for _ in g * gb..((g + 1) * gb).min(blocks) {
            if nf4 {
                for _ in 0..8 {
                    let wv: [__m256i; 2] = std::array::from_fn(|v| {
                        _mm256_xor_si256(_mm256_loadu_si256(b.add(32 * v).cast()), flip)
                    });
                    let aw = wv.map(|w| _mm256_abs_epi8(w));
                    for r in 0..R {
                        let xb = _mm256_set1_epi32(x.add(r * t.ldx).cast::<i32>().read_unaligned());
                        for v in 0..2 {
                            let p = _mm256_maddubs_epi16(aw[v], _mm256_sign_epi8(xb, wv[v]));
                            acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(p, ones));
                        }
                    }
                    b = b.add(4 * LB_NR_256);
                    x = x.add(4);
                }
            } else {
                let mut a16 = [[_mm256_setzero_si256(); 2]; R];
                for _ in 0..8 {
                    let wv: [__m256i; 2] =
                        std::array::from_fn(|v| _mm256_loadu_si256(b.add(32 * v).cast()));
                    for r in 0..R {
                        let xb = _mm256_set1_epi32(x.add(r * t.ldx).cast::<i32>().read_unaligned());
                        for v in 0..2 {
                            let p = _mm256_maddubs_epi16(wv[v], xb);
                            a16[r][v] = _mm256_add_epi16(a16[r][v], p);
                        }
                    }
                    b = b.add(4 * LB_NR_256);
                    x = x.add(4);
                }
                for r in 0..R {
                    for v in 0..2 {
                        acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(a16[r][v], ones));
                    }
                }
            }
        }
        let (s, z) = params16(&t, g);
        for r in 0..R {
            group_float8(&mut f[r], acc[r], *t.xsg.add(r * ng + g), &s, &z);
        }
    }
    store16(&f, cols, &t, out, ldo)
}
