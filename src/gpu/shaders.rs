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
}

impl Shader {
    pub const ALL: [Shader; 7] = [
        Shader::Matvec,
        Shader::Matmul,
        Shader::Norm,
        Shader::Attention,
        Shader::Conv,
        Shader::Elementwise,
        Shader::Embedding,
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
        }
    }

    /// Whether the shader reads packed weights (and takes the `SCHEME` constant).
    pub fn reads_weights(self) -> bool {
        matches!(self, Shader::Matvec | Shader::Matmul | Shader::Embedding)
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
        }
    }

    /// The compute entry points of the file.
    pub fn entry_points(self) -> &'static [&'static str] {
        match self {
            Shader::Conv => &["im2col"],
            Shader::Elementwise => &["copy_rows", "gelu_rows"],
            _ => &["main"],
        }
    }
}

/// Longest key sequence and head width the attention kernel holds (attention.wgsl).
pub const ATTENTION_MAX_KV: usize = 3072;
pub const ATTENTION_MAX_HEAD_DIM: usize = 256;
/// Most x rows the matvec kernel takes (matvec.wgsl MAXM); more go to matmul.
pub const MATVEC_MAX_M: usize = 8;
/// Weight rows per matvec workgroup (matvec.wgsl ROWS).
pub const MATVEC_ROWS: usize = 16;
