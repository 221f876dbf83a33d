//! Packed weight layouts, defined once: the quantizer packs with them, the loader
//! validates with them, and every kernel (scalar, SIMD, WGSL) reads them.
//! Bit-level layouts are documented in docs/FORMAT.md.

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
