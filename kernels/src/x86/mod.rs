//! x86-64 kernels: one file per instruction set.
//!
//! Loops over register arrays index them (`acc[r][c]`) rather than iterate:
//! with constant bounds they unroll into plain register code, and the
//! indices read like the maths.
#![allow(clippy::needless_range_loop)]
// Published coefficients keep their published digits.
#![allow(clippy::excessive_precision)]

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod packed_avx2;
pub(crate) mod packed_avx512;

/// The Cephes `expf` minimax polynomial for e^r on |r| ≤ ln2/2:
/// e^r ≈ 1 + r + r²·P(r), P's coefficients highest first.
pub(crate) const EXP_POLY: [f32; 6] = [
    1.987_569_150_0e-4,
    1.398_199_950_7e-3,
    8.333_451_907_3e-3,
    4.166_579_589_4e-2,
    1.666_666_545_9e-1,
    5.000_000_120_1e-1,
];
/// ln 2 split so that n·LN2_HI is exact for |n| < 2⁹ (Cody & Waite).
pub(crate) const LN2_HI: f32 = 0.693_359_375;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// exp's input is clamped to this range: e^x stays a normal f32 and 2ⁿ
/// can be built from its exponent bits (−126 ≤ n ≤ 127).
pub(crate) const EXP_MIN: f32 = -87.336_55;
pub(crate) const EXP_MAX: f32 = 88.0;

/// erfc's Chebyshev fit (see `scalar::erfc_nonneg`), highest power first:
/// erfc(z) ≈ t·exp(−z² + Q(t)), t = 1/(1 + z/2).
pub(crate) const ERFC_POLY: [f32; 10] = [
    0.170_872_77,
    -0.822_152_23,
    1.488_515_87,
    -1.135_203_98,
    0.278_868_07,
    -0.186_288_06,
    0.096_784_18,
    0.374_091_96,
    1.000_023_68,
    -1.265_512_23,
];
