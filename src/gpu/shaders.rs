//! The WGSL sources (one file per kernel family under `shaders/`) and the binding
//! table every kernel of a family shares. The only preprocessing is concatenation:
//! `common.wgsl` goes in front of every shader, `weights.wgsl` (the packed layouts)
//! in front of those that read weights; the scheme is the pipeline constant `SCHEME`.

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const WEIGHTS: &str = include_str!("../../shaders/weights.wgsl");

/// How a binding is used; binding 0 is always the uniform parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

use Slot::{Read, ReadWrite, Uniform};

/// A kernel family: one `.wgsl` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Matvec,
    Matmul,
    Norm,
    Attention,
    Conv,
    Elementwise,
    Embedding,
    Logits,
    Int8,
    Quant,
}

impl Shader {
    pub const ALL: [Shader; 10] = [
        Shader::Matvec,
        Shader::Matmul,
        Shader::Norm,
        Shader::Attention,
        Shader::Conv,
        Shader::Elementwise,
        Shader::Embedding,
        Shader::Logits,
        Shader::Int8,
        Shader::Quant,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shader::Matvec => "matvec",
            Shader::Matmul => "matmul",
            Shader::Norm => "norm",
            Shader::Attention => "attention",
            Shader::Conv => "conv",
            Shader::Elementwise => "elementwise",
            Shader::Embedding => "embedding",
            Shader::Logits => "logits",
            Shader::Int8 => "int8",
            Shader::Quant => "quant",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Shader::Matvec => include_str!("../../shaders/matvec.wgsl"),
            Shader::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Shader::Norm => include_str!("../../shaders/norm.wgsl"),
            Shader::Attention => include_str!("../../shaders/attention.wgsl"),
            Shader::Conv => include_str!("../../shaders/conv.wgsl"),
            Shader::Elementwise => include_str!("../../shaders/elementwise.wgsl"),
            Shader::Embedding => include_str!("../../shaders/embedding.wgsl"),
            Shader::Logits => include_str!("../../shaders/logits.wgsl"),
            Shader::Int8 => include_str!("../../shaders/int8.wgsl"),
            Shader::Quant => include_str!("../../shaders/quant.wgsl"),
        }
    }

    /// Whether the shader reads packed weights (and takes the `SCHEME` constant).
    pub fn reads_weights(self) -> bool {
        matches!(
            self,
            Shader::Matvec | Shader::Matmul | Shader::Embedding | Shader::Int8
        )
    }

    /// The complete WGSL module.
    pub fn source(self) -> String {
        let mut s = String::from(COMMON);
        if self.reads_weights() {
            s.push_str(WEIGHTS);
        }
        s.push_str(self.body());
        s
    }

    /// Bindings of group 0, in order (documented at the top of each `.wgsl`).
    pub fn slots(self) -> &'static [Slot] {
        match self {
            // P, W, X, B, Y
            Shader::Matvec | Shader::Matmul => &[Uniform, Read, Read, Read, ReadWrite],
            // P, X, gamma, beta, Y
            Shader::Norm => &[Uniform, Read, Read, Read, ReadWrite],
            // P, Q, KV, O
            Shader::Attention => &[Uniform, Read, Read, ReadWrite],
            // P, X, Y
            Shader::Conv | Shader::Elementwise => &[Uniform, Read, ReadWrite],
            // P, W, IDS, Y
            Shader::Embedding => &[Uniform, Read, Read, ReadWrite],
            // P, L, M, O
            Shader::Logits => &[Uniform, Read, Read, ReadWrite],
            // P, W, XQ, XS, B, Y
            Shader::Int8 => &[Uniform, Read, Read, Read, Read, ReadWrite],
            // P, X, XQ, XS
            Shader::Quant => &[Uniform, Read, ReadWrite, ReadWrite],
        }
    }

    /// The compute entry points of the file.
    pub fn entry_points(self) -> &'static [&'static str] {
        match self {
            Shader::Conv => &["im2col"],
            Shader::Elementwise => &["copy_rows", "gelu_rows"],
            Shader::Logits => &["summary"],
            Shader::Quant => &["quantize"],
            Shader::Attention => &["main", "flash"],
            _ => &["main"],
        }
    }
}

/// Longest key sequence and head width the attention kernel holds (attention.wgsl).
pub const ATTENTION_MAX_KV: usize = 3072;
pub const ATTENTION_MAX_HEAD_DIM: usize = 256;
/// Head width of the tiled attention kernel (attention.wgsl `flash`), and the fewest
/// queries it is used for (below, the per-query kernel spreads keys over threads).
pub const FLASH_HEAD_DIM: usize = 64;
pub const FLASH_MIN_Q: usize = 16;
/// Output columns and rows of a matmul workgroup (matmul.wgsl CT, RT).
pub const MATMUL_COLS: usize = 128;
pub const MATMUL_ROWS: usize = 32;
/// x rows per int8 × int8 workgroup (int8.wgsl RQ).
pub const INT8_ROWS: usize = 16;
/// Most x rows the matvec kernel takes (matvec.wgsl MAXM); more go to matmul.
pub const MATVEC_MAX_M: usize = 8;
/// Logits per workgroup of the greedy summary (logits.wgsl `chunk`).
pub const SUMMARY_CHUNK: usize = 4096;
/// Weight rows per matvec workgroup (matvec.wgsl ROWS).
pub const MATVEC_ROWS: usize = 16;
