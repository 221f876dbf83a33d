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
//!
//! The contract with the WGSL is written here once: each family's bindings
//! ([`Shader::bindings`]: name, use, element type or parameter struct), its
//! parameter struct (a `#[repr(C)]` Pod type per WGSL struct, same name and
//! members: [`Params`]), and the constants both sides use ([`Shader::constants`]:
//! tile and workgroup sizes as pipeline `override`s, array bounds as generated
//! `const`s). tests/gpu.rs `shader_contract_matches_rust` reflects every module
//! with naga and compares.

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
        for c in self.constants() {
            if c.pass == Pass::Const {
                s.push_str(&format!("const {}: u32 = {}u;\n", c.name, c.value));
            }
        }
        if self.reads_weights() {
            s.push_str(WEIGHTS);
        }
        s.push_str(self.body());
        if v.subgroups {
            s.push_str(self.subgroup_body());
        }
        s
    }

    /// The constants this family shares with the Rust side, each defined once, here:
    /// pipeline constants for its `override` declarations (no WGSL default: a
    /// pipeline without one fails to build), and generated `const` lines
    /// ([`Pass::Const`]) where WGSL needs a const-expression: the sizes of
    /// per-invocation arrays (WGSL allows override-sized arrays in workgroup memory
    /// only).
    pub fn constants(self) -> &'static [Constant] {
        const fn over(name: &'static str, value: usize) -> Constant {
            Constant {
                name,
                value: value as u32,
                pass: Pass::Override,
            }
        }
        const fn fixed(name: &'static str, value: usize) -> Constant {
            Constant {
                name,
                value: value as u32,
                pass: Pass::Const,
            }
        }
        const MATVEC: &[Constant] = &[fixed("MAXM", MATVEC_MAX_M), over("ROWS", MATVEC_ROWS)];
        const MATMUL: &[Constant] = &[fixed("RT", MATMUL_ROWS), over("WGM", MATMUL_THREADS)];
        const INT8: &[Constant] = &[fixed("RQ", INT8_ROWS), over("WG", INT8_COLS)];
        const ATTENTION: &[Constant] = &[
            fixed("HD", FLASH_HEAD_DIM),
            over("QB", FLASH_QUERIES),
            over("MAX_KV", ATTENTION_MAX_KV),
            over("MAX_HEAD_DIM", ATTENTION_MAX_HEAD_DIM),
        ];
        const ELEMENTWISE: &[Constant] = &[over("WG", ELEMENTWISE_GROUP)];
        const EMBEDDING: &[Constant] = &[over("WG", EMBED_GROUP)];
        match self {
            Shader::Matvec => MATVEC,
            Shader::Matmul => MATMUL,
            Shader::Int8 => INT8,
            Shader::Attention | Shader::AttentionF16 => ATTENTION,
            Shader::Conv | Shader::Elementwise | Shader::Half => ELEMENTWISE,
            Shader::Embedding => EMBEDDING,
            Shader::Norm | Shader::Logits | Shader::Quant => &[],
        }
    }

    /// The `override`s set per pipeline by the operation (in [`crate::gpu::Gpu::kernel`]'s
    /// `constants`), besides the family's [`Shader::constants`].
    pub fn call_overrides(self) -> &'static [&'static str] {
        match self {
            Shader::Int8 => &["SCHEME", "DOT4"],
            s if s.reads_weights() => &["SCHEME"],
            _ => &[],
        }
    }

    /// The parameter struct of binding 0.
    pub fn params(self) -> Option<&'static StructLayout> {
        match self.bindings().first()?.ty {
            Ty::Struct(l) => Some(l),
            Ty::Array(_) => None,
        }
    }

    /// The bindings of group 0, in binding order (documented at the top of each
    /// `.wgsl`); binding 0 is always the uniform parameters. The WGSL declarations
    /// are checked against these (tests/gpu.rs `shader_contract_matches_rust`).
    pub fn bindings(self) -> &'static [Binding] {
        const fn params(l: &'static StructLayout) -> Binding {
            Binding {
                name: "P",
                slot: Uniform,
                ty: Ty::Struct(l),
            }
        }
        const fn read(name: &'static str, e: Elem) -> Binding {
            Binding {
                name,
                slot: Read,
                ty: Ty::Array(e),
            }
        }
        const fn write(name: &'static str, e: Elem) -> Binding {
            Binding {
                name,
                slot: ReadWrite,
                ty: Ty::Array(e),
            }
        }
        const LINEAR: &[Binding] = &[
            params(&LinearParams::LAYOUT),
            read("W", U32),
            read("X", F32),
            read("B", F32),
            write("Y", F32),
        ];
        const NORM: &[Binding] = &[
            params(&NormParams::LAYOUT),
            read("X", F32),
            read("G", F32),
            read("Bt", F32),
            write("Y", F32),
        ];
        const ATTENTION: &[Binding] = &[
            params(&AttentionParams::LAYOUT),
            read("Q", F32),
            read("KV", F32),
            write("O", F32),
        ];
        const ATTENTION_F16: &[Binding] = &[
            params(&AttentionParams::LAYOUT),
            read("Q", F32),
            read("KV", F16),
            write("O", F32),
        ];
        const CONV: &[Binding] = &[params(&ConvParams::LAYOUT), read("X", F32), write("Y", F32)];
        const ELEMENTWISE: &[Binding] =
            &[params(&RowsParams::LAYOUT), read("X", F32), write("Y", F32)];
        const HALF: &[Binding] = &[params(&RowsParams::LAYOUT), read("X", F32), write("Y", F16)];
        const EMBEDDING: &[Binding] = &[
            params(&EmbedParams::LAYOUT),
            read("W", U32),
            read("IDS", U32),
            write("Y", F32),
        ];
        const LOGITS: &[Binding] = &[
            params(&SummaryParams::LAYOUT),
            read("L", F32),
            read("M", U32),
            write("O", F32),
        ];
        const INT8: &[Binding] = &[
            params(&Int8Params::LAYOUT),
            read("W", U32),
            read("XQ", U32),
            read("XS", F32),
            read("B", F32),
            write("Y", F32),
        ];
        const QUANT: &[Binding] = &[
            params(&QuantParams::LAYOUT),
            read("X", F32),
            write("XQ", U32),
            write("XS", F32),
        ];
        match self {
            Shader::Matvec | Shader::Matmul => LINEAR,
            Shader::Norm => NORM,
            Shader::Attention => ATTENTION,
            Shader::AttentionF16 => ATTENTION_F16,
            Shader::Conv => CONV,
            Shader::Elementwise => ELEMENTWISE,
            Shader::Half => HALF,
            Shader::Embedding => EMBEDDING,
            Shader::Logits => LOGITS,
            Shader::Int8 => INT8,
            Shader::Quant => QUANT,
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

/// How a [`Constant`] reaches the WGSL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// A pipeline constant for the module's `override NAME: u32;`.
    Override,
    /// A generated `const NAME: u32 = …u;` line in front of the body.
    Const,
}

/// A `u32` constant a family's WGSL and the Rust side share (tile sizes, workgroup
/// sizes, array bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Constant {
    pub name: &'static str,
    pub value: u32,
    pub pass: Pass,
}

/// Longest key sequence and head width the per-query attention kernel holds
/// (attention.wgsl `main`: its workgroup arrays, overrides `MAX_KV`, `MAX_HEAD_DIM`).
pub const ATTENTION_MAX_KV: usize = 3072;
pub const ATTENTION_MAX_HEAD_DIM: usize = 256;
/// Head width of the tiled attention kernel (attention.wgsl `flash`, const `HD`),
/// queries per workgroup (override `QB`, its workgroup size), and the fewest
/// queries it is used for (below, the per-query kernel spreads keys over threads).
pub const FLASH_HEAD_DIM: usize = 64;
pub const FLASH_QUERIES: usize = 64;
pub const FLASH_MIN_Q: usize = 16;
/// Invocations of a matmul workgroup (matmul.wgsl override `WGM`), each owning 4
/// output columns, and the x rows of its tile (const `RT`).
pub const MATMUL_THREADS: usize = 32;
pub const MATMUL_COLS: usize = 4 * MATMUL_THREADS;
pub const MATMUL_ROWS: usize = 32;
/// x rows (int8.wgsl const `RQ`) and weight rows (override `WG`, one per invocation)
/// per int8 × int8 workgroup.
pub const INT8_ROWS: usize = 16;
pub const INT8_COLS: usize = 64;
/// Most x rows the matvec kernel takes (matvec.wgsl const `MAXM`); more go to matmul.
pub const MATVEC_MAX_M: usize = 8;
/// Weight rows per matvec workgroup (matvec.wgsl override `ROWS`).
pub const MATVEC_ROWS: usize = 16;
/// Logits per workgroup of the greedy summary (logits.wgsl `P.chunk`).
pub const SUMMARY_CHUNK: usize = 4096;
/// Elements per workgroup of conv.wgsl, elementwise.wgsl and half.wgsl (override `WG`).
pub const ELEMENTWISE_GROUP: usize = 256;
/// Groups of 4 elements per workgroup of embedding.wgsl (override `WG`).
pub const EMBED_GROUP: usize = 64;

/// How a binding is used; binding 0 is always the uniform parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

use Slot::{Read, ReadWrite, Uniform};

/// Element type of a storage array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    U32,
}

use Elem::{F16, F32, U32};

/// What a binding holds.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    /// A parameter struct (the uniform).
    Struct(&'static StructLayout),
    /// A runtime-sized array.
    Array(Elem),
}

/// One binding of group 0: its WGSL name, use and type.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub name: &'static str,
    pub slot: Slot,
    pub ty: Ty,
}

/// The type of a parameter struct member.
#[derive(Clone, Copy, Debug)]
pub enum FieldType {
    U32,
    F32,
    Struct(&'static StructLayout),
}

/// A member of a parameter struct as the Rust side lays it out.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
    pub ty: FieldType,
}

/// A `#[repr(C)]` parameter struct: the WGSL struct of the same name must have the
/// same members at the same offsets, and the same size.
#[derive(Debug)]
pub struct StructLayout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [Field],
}

/// A type the Rust side writes into a shader's uniform parameters.
pub trait Params: bytemuck::Pod {
    const LAYOUT: StructLayout;
}

/// A type a parameter struct member may have.
pub trait Member {
    const TYPE: FieldType;
}

impl Member for u32 {
    const TYPE: FieldType = FieldType::U32;
}

impl Member for f32 {
    const TYPE: FieldType = FieldType::F32;
}

/// Declares a parameter struct: `#[repr(C)]`, Pod (no padding: every byte is a
/// member), with its [`StructLayout`] taken from the compiler (`offset_of!`,
/// `size_of`).
macro_rules! params {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
        }

        impl Params for $name {
            const LAYOUT: StructLayout = StructLayout {
                name: stringify!($name),
                size: std::mem::size_of::<$name>(),
                fields: &[$(Field {
                    name: stringify!($f),
                    offset: std::mem::offset_of!($name, $f),
                    size: std::mem::size_of::<$t>(),
                    ty: <$t as Member>::TYPE,
                },)*],
            };
        }

        impl Member for $name {
            const TYPE: FieldType = FieldType::Struct(&<$name as Params>::LAYOUT);
        }
    };
}

params! {
    /// weights.wgsl: where the planes of one weight tensor (or chunk) are.
    WeightLayout {
        /// Inputs per row.
        k: u32,
        /// Elements per group along k (0: int8, f16, f32).
        group: u32,
        /// Groups per row.
        ng: u32,
        /// Bytes per row of plane 0.
        row_bytes: u32,
        /// Byte offset of plane 1 (scales / absmax).
        p1: u32,
        /// Byte offset of plane 2 (zero-points / double-quant constants).
        p2: u32,
        pad0: u32,
        pad1: u32,
    }
}

params! {
    /// matvec.wgsl, matmul.wgsl: `y = x · wᵀ (+ b)` with the epilogue `flags`
    /// (bit 0 bias, bit 1 GELU, bit 2 accumulate).
    LinearParams {
        w: WeightLayout,
        m: u32,
        n: u32,
        x_off: u32,
        x_stride: u32,
        y_off: u32,
        y_stride: u32,
        flags: u32,
        pad: u32,
    }
}

params! {
    /// int8.wgsl: weights × int8 x codes (x rows at `i·kw` words of XQ).
    Int8Params {
        w: WeightLayout,
        m: u32,
        n: u32,
        kw: u32,
        y_off: u32,
        y_stride: u32,
        flags: u32,
        pad0: u32,
        pad1: u32,
    }
}

params! {
    /// quant.wgsl: x rows to int8 codes (mode 0 dynamic, 1 static with `scale`).
    QuantParams {
        k: u32,
        kw: u32,
        rows: u32,
        x_off: u32,
        x_stride: u32,
        mode: u32,
        scale: f32,
        pad0: u32,
    }
}

params! {
    /// norm.wgsl: layer norm of `rows` rows of `d` floats.
    NormParams {
        d: u32,
        rows: u32,
        x_off: u32,
        x_stride: u32,
        y_off: u32,
        y_stride: u32,
        pad0: u32,
        pad1: u32,
    }
}

params! {
    /// attention.wgsl (both kernels, both element types).
    AttentionParams {
        n_q: u32,
        n_kv: u32,
        n_head: u32,
        head_dim: u32,
        q_off: u32,
        q_stride: u32,
        k_off: u32,
        v_off: u32,
        kv_stride: u32,
        o_off: u32,
        o_stride: u32,
        /// 1: query i sees keys 0 ..= i + causal_offset.
        causal: u32,
        causal_offset: u32,
        scale: f32,
        pad0: u32,
        pad1: u32,
    }
}

params! {
    /// conv.wgsl: im2col of a kernel-3, padding-1 convolution.
    ConvParams {
        channels: u32,
        t_in: u32,
        t_out: u32,
        stride: u32,
        x_off: u32,
        ch_stride: u32,
        t_stride: u32,
        pad0: u32,
    }
}

params! {
    /// common.wgsl, for elementwise.wgsl and half.wgsl: strided rows.
    RowsParams {
        rows: u32,
        width: u32,
        x_off: u32,
        x_stride: u32,
        y_off: u32,
        y_stride: u32,
        pad0: u32,
        pad1: u32,
    }
}

params! {
    /// embedding.wgsl: rows of a (chunk of a) weight table into activations.
    EmbedParams {
        w: WeightLayout,
        rows: u32,
        first: u32,
        use_ids: u32,
        accumulate: u32,
        y_off: u32,
        y_stride: u32,
        row0: u32,
        n_rows: u32,
    }
}

params! {
    /// logits.wgsl: the greedy summary of one row of logits.
    SummaryParams {
        n: u32,
        split: u32,
        l_off: u32,
        chunk: u32,
        o_off: u32,
        use_mask: u32,
        probe: u32,
        groups: u32,
    }
}

/// Bytes of one dispatch's parameters in the uniform buffer: each binds this much
/// at its own dynamic offset, so it holds the largest parameter struct.
pub const PARAM_BYTES: usize = {
    let all = [
        LinearParams::LAYOUT.size,
        Int8Params::LAYOUT.size,
        QuantParams::LAYOUT.size,
        NormParams::LAYOUT.size,
        AttentionParams::LAYOUT.size,
        ConvParams::LAYOUT.size,
        RowsParams::LAYOUT.size,
        EmbedParams::LAYOUT.size,
        SummaryParams::LAYOUT.size,
    ];
    let mut max = 0;
    let mut i = 0;
    while i < all.len() {
        if all[i] > max {
            max = all[i];
        }
        i += 1;
    }
    max
};
