//! AArch64 kernels: one file per instruction set.
//!
//! - `neon.rs`: Advanced SIMD (NEON), the baseline of every AArch64 CPU —
//!   the float GEMM / attention / element-wise kernels behind the shared
//!   drivers, used by all three kernel sets.
//! - `packed_neon.rs`: packed-weight decoders (weight-only) and the plain
//!   NEON int8 × int8 tile (`smull` / `smlal` + `sadalp`).
//! - `dotprod.rs`: the int8 × int8 tile with `sdot` (FEAT_DotProd).
//! - `i8mm.rs`: the int8 × int8 tile with `smmla` (FEAT_I8MM).
//! - `lowbit.rs`: 4- / 3-bit × int8 tiles and GEMM micro-kernels (`smull` +
//!   `sadalp`, or `sdot`).
//!
//! The f16 conversion, `sdot` and `smmla` intrinsics are unstable in Rust
//! 1.95 / 1.96, so those three instructions are written as inline `asm!`
//! inside functions compiled for the feature they need.
//!
//! Loops over register arrays index them (`acc[r][c]`) rather than iterate:
//! with constant bounds they unroll into plain register code, and the
//! indices read like the maths.
#![allow(clippy::needless_range_loop)]

pub(crate) mod dotprod;
pub(crate) mod i8mm;
pub(crate) mod lowbit;
pub(crate) mod neon;
pub(crate) mod packed_neon;
pub(crate) mod probe;
