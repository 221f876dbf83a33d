//! The canonical f32 operation order: the constants that decide *which* f32
//! operations a kernel performs and in what order, and so decide its result
//! bits. The scalar reference (`scalar.rs`, `schemes::linear_reference`)
//! follows them, and every SIMD kernel set must follow them bit for bit
//! (`tests/exact.rs`, `tests/packed_simd.rs`): transcripts are the same on
//! every CPU because of them.
//!
//! Nothing here may be changed to make a kernel faster. Speed knobs — tile
//! sizes, chunk sizes, task splits, when an exact-integer path switches from
//! tiles to a GEMM — live in `tuning.rs`, apart from these, so that
//! tuning a driver can never change the reference. Changing a constant here
//! changes every kernel set's output (and the transcripts pinned by the
//! consistency tests) at once.

/// Partial sums per row reduction: element `p` goes into lane `p % 16`, the
/// row zero-padded to a multiple of 16, then `scalar::reduce`'s fixed
/// pairwise tree. AVX-512 holds the lanes in one zmm, AVX2 in two ymm, NEON
/// in four q registers.
pub const LANES: usize = 16;

/// The f32 `linear` (f32 / f16 and weight-only packed weights) with at least
/// this many rows of x accumulates each output as one FMA chain over k
/// starting at its bias (the GEMM micro-kernels' register tiles span all of
/// k); with fewer rows, as [`LANES`] partial sums reduced, then the bias
/// added (the dot tiles). The value was chosen where the GEMM starts to pay
/// (f16, k = 512, n = 2048: dot tiles ahead up to m = 12, level at 16), but
/// it is part of the result: both sides of it must be computed the same way
/// by every kernel set.
pub const CHAIN_MIN_M: usize = 16;

/// Weight-only packed layers with fewer than [`CHAIN_MIN_M`] rows sum the
/// lanes over k rounded up to this (x zero-padded, the weights' padding codes
/// decoded as stored): the block size of the packed formats.
pub const PACKED_DOT_PAD: usize = 32;

/// Attention with fewer queries than this (the decoder) takes scores and the
/// softmax sum as `scalar::dot16` / `scalar::sum16` lane sums; with more,
/// scores as one FMA chain over the head dimension and the sum in key order.
pub const ATTENTION_DOT_MAX_Q: usize = 8;
