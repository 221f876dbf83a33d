//! The operands of the micro-kernels and dot tiles, grouped by what they are, so that
//! a call names every pointer and stride by role: swapping two strides or two
//! pointers of different operands does not compile (each lives in its own
//! struct, set by field name), where the kernels used to take 8–12 raw
//! pointers and `usize`s in a row.
//!
//! These are plain views: building one is safe, the kernels that read or
//! write through them are `unsafe` and state the extents they need.

/// How many rows and columns of a micro-tile are valid (`rows ≤ MR`,
/// `cols ≤ NR` of the kernel).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    pub rows: usize,
    pub cols: usize,
}

/// The f32 left operand of a float micro-kernel: element `(r, p)` (row `r`
/// of the tile, step `p` along k) at `ptr + r·row_stride + p·k_stride`.
/// x rows read in place have `k_stride` 1; attention's transposed
/// probabilities have `row_stride` 1.
#[derive(Clone, Copy)]
pub(crate) struct Lhs {
    pub ptr: *const f32,
    pub row_stride: usize,
    pub k_stride: usize,
}

/// The f32 right operand of a float micro-kernel, packed or read in place:
/// step `p` along k is `NR` readable floats at `ptr + p·k_stride`.
#[derive(Clone, Copy)]
pub(crate) struct Panel {
    pub ptr: *const f32,
    pub k_stride: usize,
}

/// An f32 output tile: element `(r, c)` at `ptr + r·row_stride + c`; only
/// the tile's valid columns are written.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub ptr: *mut f32,
    pub row_stride: usize,
}

/// f32 x rows read by a dot tile: row `r` at `ptr + r·row_stride`.
#[derive(Clone, Copy)]
pub(crate) struct XRows {
    pub ptr: *const f32,
    pub row_stride: usize,
}

/// The four weight rows a float dot tile reads in place (f16 bits if `f16`,
/// else f32); all four readable (a valid row repeated past the tile's
/// columns).
#[derive(Clone, Copy)]
pub(crate) struct WeightRows {
    pub rows: [*const u8; 4],
    pub f16: bool,
}

/// The four packed weight rows a weight-only dot tile decodes: each row's
/// codes in plane 0 and its per-group `(scales, zero-points)` as f32; all
/// four readable (a valid row repeated past the tile's columns).
#[derive(Clone, Copy)]
pub(crate) struct PackedRows {
    pub codes: [*const u8; 4],
    pub params: [(*const f32, *const f32); 4],
}

/// Int8-quantized x rows for an int8 dot tile: row `r`'s codes at
/// `codes + r·row_stride`, its code sum at `sums + r`.
#[derive(Clone, Copy)]
pub(crate) struct I8Rows {
    pub codes: *const i8,
    pub row_stride: usize,
    pub sums: *const i32,
}

/// Int8-quantized x rows for the int8 × int8 GEMM: row `r`'s codes at
/// `codes + r·row_stride`, its code sum at `sums + r` and its scale at
/// `scales + r`.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // int8 GEMMs: x86 only
pub(crate) struct QuantRows {
    pub codes: *const i8,
    pub row_stride: usize,
    pub sums: *const i32,
    pub scales: *const f32,
}

/// One packed int8 weight panel with its columns' parameters: `codes` is
/// `[k4/4][NR][4]` bytes (sign bit flipped), `scales` and `bias` `NR`
/// floats each (zero past the valid columns).
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // int8 GEMMs: x86 only
pub(crate) struct I8Panel {
    pub codes: *const u8,
    pub scales: *const f32,
    pub bias: *const f32,
}
