//! Packed weight layouts, defined once: the quantizer packs with them, the loader
//! validates with them, and every kernel (scalar, SIMD, WGSL) reads them.
//! Bit-level layouts are documented in docs/FORMAT.md; the binding summary:
//!
//! ## Packed layouts (binding; document them in docs/FORMAT.md)
//! A packed weight is logically `n × k` (n output rows, k inputs, row-major), groups of `G` consecutive elements along k within a row, `ng = ceil(k / G)` groups per row (the last may be short). For the 4- and 3-bit schemes G must be a multiple of 32 (32, 64, 128; nf4 block = 64). The tensor's bytes are a sequence of planes; each plane starts at a multiple of 256 bytes from the tensor start (zero padding between planes); the tensor length is exactly the end of the last plane (no trailing padding). Little-endian.
//! - `Int8Row`: plane 0 codes, `n × k` i8, row stride k. Plane 1 scales, `n` f32. value = scale[r]·code.
//! - `Int8Tensor`: plane 0 codes `n × k` i8; plane 1 one f32. value = scale·code.
//! - 4-bit (`Int4Sym`, `Int4Asym`, `Nf4`, `Nf4Dq`): plane 0 codes, row stride `rb = ceil(k/32)·16` bytes; block b (elements 32b..32b+32) of row r occupies bytes `r·rb + 16b .. +16`: byte j holds element 32b+j in its LOW nibble and element 32b+16+j in its HIGH nibble; nibbles for elements ≥ k are 0.
//!   - `Int4Sym`: plane 1 scales `n × ng` f16. value = scale·(code − 8).
//!   - `Int4Asym`: plane 1 scales `n × ng` f16; plane 2 zero-points `n × ng` f16 (float zero, may be fractional: HQQ). value = scale·(code − zero).
//!   - `Nf4`: plane 1 absmax `n × ng` f32. value = absmax·NF4[code].
//!   - `Nf4Dq`: plane 1 absmax codes `n × ng` u8; plane 2, for each chunk of 256 consecutive groups (in row-major group order over the whole tensor; the last chunk may be short), two f32: `min`, `step`; absmax = min + code·step (quantizer: min/max of the chunk's absmax, step = (max−min)/255, code = round((a−min)/step), step 0 when constant). value = absmax·NF4[code].
//! - `Int3`: plane 0 codes, row stride `rb = ceil(k/32)·12` bytes; block b of row r occupies 12 bytes: bytes 0..8 are the low 2 bits — element 32b + 8i + j (i in 0..4, j in 0..8) at bits 2i..2i+1 of byte j; bytes 8..12 are the high bit — element 32b + e (e in 0..32) at bit e/4 of byte 8 + e%4. Elements ≥ k are 0. Plane 1 scales `n × ng` f16; plane 2 zero-points `n × ng` f16. value = scale·(code − zero), code 0..=7.
//! Bits per weight (G=64): int8 8 (+32/k), int4-sym 4.25, int4 4.5, nf4 4.5, nf4-dq ≈ 4.127, int3 3.5.

/// The packed schemes. Values (before packing), per weight `w[r][c]`:
/// - `Int8Row`:    `scale[r] · code` (code i8 in −127..=127, stored as its u8 bit pattern)
/// - `Int8Tensor`: `scale[0] · code`
/// - `Int4Sym`:    `scale[r][g] · (code − 8)`, code 0..=15
/// - `Int4Asym`:   `scale[r][g] · (code − zero[r][g])`, code 0..=15, zero a float
/// - `Nf4`:        `absmax[r][g] · NF4[code]`, code 0..=15
/// - `Nf4Dq`:      as `Nf4`, the absmax values themselves stored as 8-bit codes
/// - `Int3`:       `scale[r][g] · (code − zero[r][g])`, code 0..=7
///
/// where `g = c / group` (groups run along the input dimension within a row; the last
/// group of a row may be shorter when `group` does not divide `k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Int8Row,
    Int8Tensor,
    Int4Sym,
    Int4Asym,
    Nf4,
    Nf4Dq,
    Int3,
}

/// The 16 NormalFloat-4 code values (bitsandbytes).
pub const NF4: [f32; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_430_228_233_34,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];

/// A quantized `n × k` matrix in logical order, before bit packing: what a quantizer produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    pub scheme: Scheme,
    pub n: usize,
    pub k: usize,
    /// Elements per group along `k` (int4 / int3 / nf4); ignored for int8.
    pub group: usize,
    /// One code per weight, row-major `n × k` (int8: the i8 bit pattern).
    pub codes: Vec<u8>,
    /// Int8Row: `n`; Int8Tensor: 1; grouped schemes: `n × ceil(k / group)` (nf4: the absmax).
    pub scales: Vec<f32>,
    /// Int4Asym / Int3: one zero-point per group; empty otherwise.
    pub zeros: Vec<f32>,
}
