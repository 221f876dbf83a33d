//! Speed thresholds of the drivers: tile and chunk sizes, task splits, and
//! when an exact-integer path switches from dot tiles to a GEMM. Any value
//! here may be changed for speed alone: none of them decides an f32
//! operation order, so results stay bit-identical whatever they are (the
//! order constants live in [`crate::canonical`]). Integer paths may switch
//! freely because their dot products are exact and their float epilogue is
//! the same expression on both sides.

/// Target size of one packed weight chunk of the GEMMs (f32 panels of the
/// f16 / weight-only GEMM, byte panels of the int8 and low-bit GEMMs): the
/// chunk stays in L2 together with a few x rows while every x micro-tile
/// passes over it.
pub(crate) const CHUNK_BYTES: usize = 384 * 1024;

/// Int8 × int8 and low-bit × int8 layers with at least this many x rows use
/// the kernel set's GEMM micro-kernel (where it has one); fewer rows use
/// the dot tiles. Exact integer dots: either gives the same bits.
pub(crate) const INT8_GEMM_MIN_M: usize = 16;

/// x rows per int8 / low-bit dot tile.
pub(crate) const I8_ROWS: usize = 4;

/// Weight bytes an int8 / low-bit tile task keeps in cache while every x tile
/// passes over them (tiles used for m ≥ [`INT8_GEMM_MIN_M`] by sets without a
/// GEMM micro-kernel).
pub(crate) const I8_BLOCK_BYTES: usize = 64 * 1024;

/// Software prefetch of the M = 1 paths, which stream their operands from
/// DRAM once per decoded token and stalled on the loads (the hardware
/// prefetchers lag four or sixteen interleaved row streams): the int8 dot
/// tile reads the weight rows this many 4-row tiles ahead, ...
pub(crate) const PREFETCH_I8_TILES: usize = 2;
/// ... the 16-column low-bit tile (AVX-512 VNNI) this many tiles ahead, ...
pub(crate) const PREFETCH_LOWBIT_TILES: usize = 1;
/// ... and the decoder's attention scores and weighted sums the key / value
/// rows this many keys ahead (a head's 64 elements of each row: two lines
/// of f16). Measured with `kernels/examples/decode_ab.rs`.
pub(crate) const PREFETCH_KEYS: usize = 16;

/// x rows per task when quantizing activations for the int8 paths.
pub(crate) const QUANT_ROWS: usize = 16;

/// Floats per task of the pooled GELU.
pub(crate) const GELU_CHUNK: usize = 16 * 1024;

/// Rows per task of the pooled layer norm.
pub(crate) const LAYER_NORM_ROWS: usize = 64;

/// Task count for `groups` groups of weight rows of a dot path (small m): a
/// few tasks per thread for balance, each a long contiguous stretch of rows
/// (at least 8 groups) for the hardware prefetcher.
pub(crate) fn dot_tasks(threads: usize, groups: usize) -> usize {
    groups.min(threads * 4).min(groups.div_ceil(8)).max(1)
}
