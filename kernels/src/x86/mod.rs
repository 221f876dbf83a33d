//! x86-64 kernels: one file per instruction set.
//!
//! Loops over register arrays index them (`acc[r][c]`) rather than iterate:
//! with constant bounds they unroll into plain register code, and the
//! indices read like the maths.
#![allow(clippy::needless_range_loop)]

pub(crate) mod amx;
pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod avxvnni;
pub(crate) mod packed_avx2;
pub(crate) mod packed_avx512;
pub(crate) mod probe;

// The polynomial constants are shared with the NEON kernels.
pub(crate) use crate::simd::{ERFC_POLY, EXP_MAX, EXP_MIN, EXP_POLY, LN2_HI, LN2_LO};
pub(crate) mod lowbit;
