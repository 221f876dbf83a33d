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
//!
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

/// The 16 NormalFloat-4 code values (bitsandbytes), with their published digits.
#[allow(clippy::excessive_precision)]
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

mod layout;
mod pack;
mod reference;

pub use layout::{default_group, layout, Layout, ALIGN, MAX_INT8_DOT_K, MAX_INT8_GROUP};
pub(crate) use pack::dequantize_row_padded;
pub use pack::{dequantize, dequantize_row, f16_bits_to_f32, f32_to_f16_bits, pack, unpack};
pub use reference::{
    int_code, linear_reference, linear_reference_pooled, lowbit_params, quantize_activations,
    NF4_I8,
};

impl Scheme {
    /// Every scheme, in element-type-code order.
    pub const ALL: [Scheme; 7] = [
        Scheme::Int8Row,
        Scheme::Int8Tensor,
        Scheme::Int4Sym,
        Scheme::Int4Asym,
        Scheme::Nf4,
        Scheme::Nf4Dq,
        Scheme::Int3,
    ];
    /// Whether the codes are i8.
    pub fn is_int8(self) -> bool {
        matches!(self, Scheme::Int8Row | Scheme::Int8Tensor)
    }
    /// Whether scales (and zeros) come per group of `group` elements along k.
    pub fn is_grouped(self) -> bool {
        !self.is_int8()
    }
    /// Whether the scheme stores a zero-point per group.
    pub fn has_zeros(self) -> bool {
        matches!(self, Scheme::Int4Asym | Scheme::Int3)
    }
    /// Largest code; codes run `0..=max_code` (int8: `−127..=127`, returns 127).
    pub fn max_code(self) -> u8 {
        match self {
            Scheme::Int8Row | Scheme::Int8Tensor => 127,
            Scheme::Int3 => 7,
            _ => 15,
        }
    }
    /// Number of scales in a [`Quantized`] for an `n × k` matrix with this group.
    pub fn n_scales(self, n: usize, k: usize, group: usize) -> Option<usize> {
        match self {
            Scheme::Int8Row => Some(n),
            Scheme::Int8Tensor => Some(1),
            _ => n.checked_mul(k.checked_add(group.checked_sub(1)?)? / group),
        }
    }
}

/// How a linear layer treats its input activations. Every scheme may quantize
/// them (int8 × int8, or the low-bit × int8 path: see `linear_reference`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActQuant {
    /// Weight-only: dequantize the weights, multiply in f32.
    Float,
    /// Per x row: `s_x = absmax / 127`, codes `round(x · 127 / absmax)` in `−127..=127`.
    Dynamic,
    /// One fixed activation scale `s_x` (calibrated `absmax / 127`); codes
    /// `round(x · (1 / s_x))` clamped to `−127..=127`.
    Static(f32),
}

/// A packed `n × k` weight borrowed from a model file: its planes located by
/// [`layout`], checked to have exactly the right lengths by [`view`].
#[derive(Clone, Copy, Debug)]
pub struct PackedWeights<'a> {
    pub scheme: Scheme,
    pub n: usize,
    pub k: usize,
    /// Elements per group along k (0 for the int8 schemes).
    pub group: usize,
    /// Plane 0 codes, plane 1 scales, plane 2 zero-points / double-quant constants
    /// (an unused plane is empty). Little-endian; no alignment is promised beyond
    /// what the caller's bytes have (a `.sotto` file: 256 from the tensor start).
    pub planes: [&'a [u8]; 3],
    pub act: ActQuant,
}

/// Checks `bytes` against the layout of (`scheme`, `n`, `k`, `group`) and splits it
/// into planes. `act` other than `Float` needs (`Static`) a finite positive
/// scale, `k ≤` [`MAX_INT8_DOT_K`] so i32 dots cannot overflow, and for the
/// grouped schemes `group ≤` [`MAX_INT8_GROUP`] so a group's dot is exact in f32.
pub fn view<'a>(
    scheme: Scheme,
    n: usize,
    k: usize,
    group: usize,
    bytes: &'a [u8],
    act: ActQuant,
) -> Result<PackedWeights<'a>, String> {
    let l = layout(scheme, n, k, group)?;
    if bytes.len() != l.total {
        return Err(format!(
            "{} bytes, but {scheme:?} {n}×{k} (group {group}) takes exactly {}",
            bytes.len(),
            l.total
        ));
    }
    match act {
        ActQuant::Float => {}
        _ if scheme.is_grouped() && group > MAX_INT8_GROUP => {
            return Err(format!(
            "{scheme:?} group {group} is too long for int8 activations (at most {MAX_INT8_GROUP})"
        ))
        }
        _ if k > MAX_INT8_DOT_K => {
            return Err(format!(
                "k = {k} is too long for int8 activations (at most {MAX_INT8_DOT_K})"
            ))
        }
        ActQuant::Static(s) if !(s.is_finite() && s > 0.0) => {
            return Err(format!(
                "static activation scale {s} is not finite and positive"
            ))
        }
        _ => {}
    }
    let planes = l.planes.map(|(off, len)| &bytes[off..off + len]);
    Ok(PackedWeights {
        scheme,
        n,
        k,
        group,
        planes,
        act,
    })
}

impl PackedWeights<'_> {
    /// Groups per row (1 for the int8 schemes).
    pub fn groups_per_row(&self) -> usize {
        if self.scheme.is_grouped() {
            self.k.div_ceil(self.group)
        } else {
            1
        }
    }
    /// Bytes between consecutive rows of plane 0.
    pub fn row_bytes(&self) -> usize {
        layout::row_bytes(self.scheme, self.k)
    }
}
