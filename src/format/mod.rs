//! The `.sotto` file format, version 1 (see docs/FORMAT.md): types shared by the
//! writer, the loader and the model.

mod config;
mod layout;
mod reader;
mod writer;

#[cfg(feature = "convert")]
pub(crate) use config::validate_config;
pub use reader::ModelFile;
pub use sotto_kernels::schemes::Scheme;
pub use writer::FileWriter;

/// Every tensor's data starts at a multiple of this many bytes, so SIMD loads and
/// GPU buffers can use the mapping in place.
pub const ALIGN: u64 = 256;

/// How a tensor's elements are stored. The numeric codes are the on-disk values;
/// packed schemes are reserved here and written by `sotto quantize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ElementType {
    F32 = 0,
    F16 = 1,
    /// Symmetric int8, one f32 scale per output row.
    Int8Row = 2,
    /// Symmetric int8, one f32 scale for the whole tensor.
    Int8Tensor = 3,
    /// 4-bit groups along the input dimension with an f16 scale.
    Int4Sym = 4,
    /// 4-bit groups with f16 scale and zero-point.
    Int4Asym = 5,
    /// NormalFloat-4, absmax per block of 64.
    Nf4 = 6,
    /// NormalFloat-4 with double-quantized (8-bit) block absmax.
    Nf4Dq = 7,
    /// 3-bit groups, asymmetric, densely packed.
    Int3 = 8,
}

impl ElementType {
    pub fn from_code(code: u32) -> Option<ElementType> {
        use ElementType::*;
        Some(match code {
            0 => F32,
            1 => F16,
            2 => Int8Row,
            3 => Int8Tensor,
            4 => Int4Sym,
            5 => Int4Asym,
            6 => Nf4,
            7 => Nf4Dq,
            8 => Int3,
            _ => return None,
        })
    }
    /// The element type that stores `scheme`.
    pub fn from_scheme(scheme: Scheme) -> ElementType {
        match scheme {
            Scheme::Int8Row => ElementType::Int8Row,
            Scheme::Int8Tensor => ElementType::Int8Tensor,
            Scheme::Int4Sym => ElementType::Int4Sym,
            Scheme::Int4Asym => ElementType::Int4Asym,
            Scheme::Nf4 => ElementType::Nf4,
            Scheme::Nf4Dq => ElementType::Nf4Dq,
            Scheme::Int3 => ElementType::Int3,
        }
    }
    /// The packed scheme of this type; `None` for f32 / f16.
    pub fn scheme(self) -> Option<Scheme> {
        Some(match self {
            ElementType::F32 | ElementType::F16 => return None,
            ElementType::Int8Row => Scheme::Int8Row,
            ElementType::Int8Tensor => Scheme::Int8Tensor,
            ElementType::Int4Sym => Scheme::Int4Sym,
            ElementType::Int4Asym => Scheme::Int4Asym,
            ElementType::Nf4 => Scheme::Nf4,
            ElementType::Nf4Dq => Scheme::Nf4Dq,
            ElementType::Int3 => Scheme::Int3,
        })
    }
    pub fn name(self) -> &'static str {
        use ElementType::*;
        match self {
            F32 => "f32",
            F16 => "f16",
            Int8Row => "int8",
            Int8Tensor => "int8-tensor",
            Int4Sym => "int4-sym",
            Int4Asym => "int4",
            Nf4 => "nf4",
            Nf4Dq => "nf4-dq",
            Int3 => "int3",
        }
    }
}

/// How the runtime treats activations entering quantized linear layers
/// (file-wide; every packed scheme: int8 × int8, or 4- / 3-bit × int8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ActivationMode {
    /// Weight-only: dequantize, multiply in f32.
    #[default]
    None,
    /// int8 activations, scale from each row's absmax at run time.
    Dynamic,
    /// int8 activations with a fixed scale per layer: F32 tensor `<prefix>/act_scale`, shape [1].
    Static,
}

impl ActivationMode {
    pub fn name(self) -> &'static str {
        match self {
            ActivationMode::None => "none",
            ActivationMode::Dynamic => "dynamic",
            ActivationMode::Static => "static",
        }
    }
}

/// The static activation scale tensor of the linear layer whose weight is `weight`:
/// `encoder/layer_0/ffn/linear_0/weight` → `encoder/layer_0/ffn/linear_0/act_scale`.
pub fn act_scale_name(weight: &str) -> Option<String> {
    weight
        .strip_suffix("/weight")
        .map(|prefix| format!("{prefix}/act_scale"))
}

/// A packed tensor's logical matrix: `n` = product of the leading dimensions,
/// `k` = the last (rank 1: one row).
pub fn packed_dims(shape: &[usize]) -> (usize, usize) {
    match shape.split_last() {
        Some((&k, lead)) => (lead.iter().product(), k),
        None => (0, 0),
    }
}

/// Token ids with a fixed role in Whisper's decoding.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SpecialTokens {
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub sot_lm: u32,
    pub no_speech: u32,
    pub no_timestamps: u32,
    /// `<|0.00|>`; timestamp i (in 20 ms steps) is `timestamp_begin + i`.
    pub timestamp_begin: u32,
    pub transcribe: u32,
    pub translate: u32,
}

/// Everything the runtime needs to know about the network and its vocabulary.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ModelConfig {
    pub n_mels: u32,
    pub n_audio_ctx: u32,
    pub n_audio_state: u32,
    pub n_audio_head: u32,
    pub n_audio_layer: u32,
    pub n_text_ctx: u32,
    pub n_text_state: u32,
    pub n_text_head: u32,
    pub n_text_layer: u32,
    pub n_vocab: u32,
    pub multilingual: bool,
    pub tokens: SpecialTokens,
    pub suppress_ids: Vec<u32>,
    pub suppress_ids_begin: Vec<u32>,
    /// (decoder layer, head) pairs whose cross-attention follows the audio.
    pub alignment_heads: Vec<(u32, u32)>,
    /// Language code ("en", "de", ...) and its token id; empty for English-only models.
    pub languages: Vec<(String, u32)>,
    /// Activation quantization of the int8 linear layers.
    pub activations: ActivationMode,
}

/// One entry of the tensor directory, validated by the loader.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub etype: ElementType,
    /// Row-major; the last dimension is contiguous (the input dimension of a linear layer).
    pub shape: Vec<usize>,
    /// Scheme parameter: group / block size for packed schemes, 0 otherwise.
    pub group: u32,
    /// Byte offset from the start of the file; a multiple of [`ALIGN`].
    pub offset: u64,
    pub len: u64,
    /// FNV-1a 64 of the tensor's bytes.
    pub checksum: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// 64-bit FNV-1a: a checksum that needs no dependency.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
