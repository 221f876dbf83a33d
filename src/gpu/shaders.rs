//! The WGSL sources (one file per kernel family under `shaders/`) and the binding
//! table every kernel of a family shares. The only preprocessing is concatenation:
//! `common.wgsl` goes in front of every shader, `weights.wgsl` (the packed layouts)
//! in front of those that read weights; the scheme is the pipeline constant `SCHEME`.
//!
//! Variants ([`GpuFeatures`]) are concatenations too: with subgroups
//! `<family>_subgroup.wgsl` is appended, adding an entry point
//! ([`Shader::subgroup_entry`]) the device picks in place of the plain one. With
//! shader-f16 the decoder keeps its cross-attention K/V and KV cache in f16 (as the
//! CPU backend does): the `half` family stores rows as f16 and `attention_f16` is
//! `attention.wgsl` reading them, its key/value element type set by a one-line
//! prelude (`alias kv_t = f16;`). Weights stay `array<u32>` in every variant
//! (`unpack2x16float` needs no device feature; naga 30 rejects
//! `bitcast<vec2<f16>>(u32)`).

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const WEIGHTS: &str = include_str!("../../shaders/weights.wgsl");

/// Optional device features the shaders can use. A module is compiled for the
/// features its family uses ([`Shader::variant`]), so pipelines of different variants
/// never share a cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GpuFeatures {
    /// `wgpu::Features::SUBGROUP`: the matvec row sums by subgroup shuffles.
    pub subgroups: bool,
    /// `wgpu::Features::SHADER_F16`: the decoder's K/V caches in f16.
    pub f16: bool,
}

impl GpuFeatures {
    pub const NONE: GpuFeatures = GpuFeatures {
        subgroups: false,
        f16: false,
    };
    pub const ALL: GpuFeatures = GpuFeatures {
        subgroups: true,
        f16: true,
    };

    /// `none`, `f16`, `subgroups`, `all` (the `SOTTO_GPU_FEATURES` values).
    pub fn parse(s: &str) -> Option<GpuFeatures> {
        Some(match s.trim() {
            "none" => GpuFeatures::NONE,
            "f16" => GpuFeatures {
                subgroups: false,
                f16: true,
            },
            "subgroups" => GpuFeatures {
                subgroups: true,
                f16: false,
            },
            "all" => GpuFeatures::ALL,
            _ => return None,
        })
    }

    /// Features in both.
    pub fn and(self, o: GpuFeatures) -> GpuFeatures {
        GpuFeatures {
            subgroups: self.subgroups && o.subgroups,
            f16: self.f16 && o.f16,
        }
    }

    /// Features in either.
    pub fn or(self, o: GpuFeatures) -> GpuFeatures {
        GpuFeatures {
            subgroups: self.subgroups || o.subgroups,
            f16: self.f16 || o.f16,
        }
    }

    /// Whether every feature of `o` is in `self`.
    pub fn covers(self, o: GpuFeatures) -> bool {
        self.and(o) == o
    }
}

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
    AttentionF16,
    Half,
}

impl Shader {
    pub const ALL: [Shader; 12] = [
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
        Shader::AttentionF16,
        Shader::Half,
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
            Shader::AttentionF16 => "attention_f16",
            Shader::Half => "half",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Shader::Matvec => include_str!("../../shaders/matvec.wgsl"),
            Shader::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Shader::Norm => include_str!("../../shaders/norm.wgsl"),
            Shader::Attention | Shader::AttentionF16 => {
                include_str!("../../shaders/attention.wgsl")
            }
            Shader::Conv => include_str!("../../shaders/conv.wgsl"),
            Shader::Elementwise => include_str!("../../shaders/elementwise.wgsl"),
            Shader::Embedding => include_str!("../../shaders/embedding.wgsl"),
            Shader::Logits => include_str!("../../shaders/logits.wgsl"),
            Shader::Int8 => include_str!("../../shaders/int8.wgsl"),
            Shader::Quant => include_str!("../../shaders/quant.wgsl"),
            Shader::Half => include_str!("../../shaders/half.wgsl"),
        }
    }

    /// Declarations a family sharing another's file sets (after `common.wgsl`).
    fn prelude(self) -> &'static str {
        match self {
            Shader::Attention => "alias kv_t = f32;\n",
            Shader::AttentionF16 => "alias kv_t = f16;\n",
            _ => "",
        }
    }

    /// The features without which the family does not compile (the caller picks it
    /// only on a device that has them: [`crate::gpu::Gpu::half_kv`]).
    pub fn requires(self) -> GpuFeatures {
        GpuFeatures {
            subgroups: false,
            f16: matches!(self, Shader::AttentionF16 | Shader::Half),
        }
    }

    /// Whether the shader reads packed weights (and takes the `SCHEME` constant).
    pub fn reads_weights(self) -> bool {
        matches!(
            self,
            Shader::Matvec | Shader::Matmul | Shader::Embedding | Shader::Int8
        )
    }

    /// The features this family has a variant for.
    pub fn uses(self) -> GpuFeatures {
        GpuFeatures {
            // Only where the sums keep the plain kernel's order: a layer norm summed by
            // subgroupAdd flipped a near-tie token of a low-bit tiny.en against the CPU.
            subgroups: matches!(self, Shader::Matvec),
            f16: self.requires().f16,
        }
    }

    /// The variant compiled when the device offers `features` (with what the family
    /// requires in any case).
    pub fn variant(self, features: GpuFeatures) -> GpuFeatures {
        self.uses().and(features).or(self.requires())
    }

    /// The entry point that replaces `entry` in the subgroup variant.
    pub fn subgroup_entry(self, entry: &'static str) -> Option<&'static str> {
        match (self, entry) {
            (Shader::Matvec, "main") => Some("main_sg"),
            _ => None,
        }
    }

    fn subgroup_body(self) -> &'static str {
        match self {
            Shader::Matvec => include_str!("../../shaders/matvec_subgroup.wgsl"),
            _ => "",
        }
    }

    /// The complete WGSL module, plain (but for what the family requires).
    pub fn source(self) -> String {
        self.source_for(GpuFeatures::NONE)
    }

    /// The complete WGSL module of [`Shader::variant`]`(features)`.
    pub fn source_for(self, features: GpuFeatures) -> String {
        let v = self.variant(features);
        let mut s = String::new();
        if v.f16 {
            s.push_str("enable f16;\n");
        }
        s.push_str(COMMON);
        s.push_str(self.prelude());
        if self.reads_weights() {
            s.push_str(WEIGHTS);
        }
        s.push_str(self.body());
        if v.subgroups {
            s.push_str(self.subgroup_body());
        }
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
            Shader::Attention | Shader::AttentionF16 => &[Uniform, Read, Read, ReadWrite],
            // P, X, Y
            Shader::Conv | Shader::Elementwise | Shader::Half => &[Uniform, Read, ReadWrite],
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
            Shader::Attention | Shader::AttentionF16 => &["main", "flash"],
            Shader::Int8 => &["main", "lowbit"],
            Shader::Half => &["store_half"],
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
