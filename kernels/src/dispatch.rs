//! The table of kernel function pointers, one per instruction set, and the
//! run-time feature detection that decides which tables this CPU may use.
//!
//! Safety by construction: the SIMD tables are private statics handed out only
//! by [`table`], which checks the CPU first. Their entries are safe functions
//! that call `#[target_feature]` code, relying on that check.

use crate::{scalar, AttentionShape, Pool, Weights};

/// An instruction set with its own kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// AVX2 plus AVX-VNNI (VEX `vpdpbusd` on ymm) for int8 × int8 layers:
    /// Intel from Alder Lake / Sapphire Rapids; AMD Zen 4 lacks it.
    Avx2Vnni,
    /// x86-64 AVX-512 F/BW/VL (+ FMA, F16C).
    Avx512,
    /// AVX-512 plus VNNI (`vpdpbusd`) for int8 × int8 layers.
    Avx512Vnni,
    /// AVX-512 VNNI plus AMX tiles (`tdpbsud`) for the int8 × int8 GEMM:
    /// Intel from Sapphire Rapids, where Linux grants the tile state.
    Avx512Amx,
    /// AArch64 Advanced SIMD (NEON).
    Neon,
    /// NEON plus the dot-product extension (`sdot`) for int8 × int8 layers.
    NeonDotprod,
    /// NEON, dotprod and the int8 matrix multiply (`smmla`) for int8 × int8 layers.
    NeonI8mm,
}

impl Isa {
    /// Every ISA, worst first.
    pub const ALL: [Isa; 9] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx2Vnni,
        Isa::Avx512,
        Isa::Avx512Vnni,
        Isa::Avx512Amx,
        Isa::Neon,
        Isa::NeonDotprod,
        Isa::NeonI8mm,
    ];

    /// The name used in logs and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "x86-avx2-fma",
            Isa::Avx2Vnni => "x86-avx2-vnni",
            Isa::Avx512 => "x86-avx512",
            Isa::Avx512Vnni => "x86-avx512-vnni",
            Isa::Avx512Amx => "x86-avx512-amx",
            Isa::Neon => "aarch64-neon",
            Isa::NeonDotprod => "aarch64-neon-dotprod",
            Isa::NeonI8mm => "aarch64-neon-i8mm",
        }
    }
    /// The name `SOTTO_KERNELS` takes.
    pub fn short_name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx2Vnni => "avx2vnni",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Avx512Amx => "amx",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "neon-dotprod",
            Isa::NeonI8mm => "neon-i8mm",
        }
    }
    /// The CPU features this ISA needs, for error messages.
    pub fn requirements(self) -> &'static str {
        match self {
            Isa::Scalar => "nothing",
            Isa::Avx2 => "x86-64 avx2+fma+f16c",
            Isa::Avx2Vnni => "x86-64 avx2+fma+f16c+avxvnni",
            Isa::Avx512 => "x86-64 avx512f+avx512bw+avx512vl+fma+f16c",
            Isa::Avx512Vnni => "x86-64 avx512f+avx512bw+avx512vl+avx512vnni+fma+f16c",
            Isa::Avx512Amx => {
                "x86-64 avx512f+avx512bw+avx512vl+avx512vnni+fma+f16c+amx-tile+amx-int8 \
                 and Linux's permission for the tile state"
            }
            Isa::Neon => "aarch64 neon",
            Isa::NeonDotprod => "aarch64 neon+dotprod",
            Isa::NeonI8mm => "aarch64 neon+dotprod+i8mm",
        }
    }
    /// Accepts the short or the full name, case-insensitively.
    pub fn parse(name: &str) -> Option<Isa> {
        let name = name.trim().to_ascii_lowercase();
        Isa::ALL
            .into_iter()
            .find(|i| i.short_name() == name || i.name() == name)
    }
    /// Whether this CPU can run the ISA.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Vnni => Isa::Avx2.supported() && is_x86_feature_detected!("avxvnni"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Isa::Avx512.supported() && is_x86_feature_detected!("avx512vnni"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Amx => Isa::Avx512Vnni.supported() && crate::x86::amx::usable(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => {
                Isa::Neon.supported() && std::arch::is_aarch64_feature_detected!("dotprod")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::NeonI8mm => {
                Isa::NeonDotprod.supported() && std::arch::is_aarch64_feature_detected!("i8mm")
            }
            _ => false,
        }
    }
}

pub(crate) type LinearFn =
    fn(&Pool, &[f32], usize, usize, Weights, usize, Option<&[f32]>, &mut [f32]);
/// `linear` for packed weights: `n` and `k` equal the weight's own.
pub(crate) type PackedLinearFn = fn(
    &Pool,
    &[f32],
    usize,
    usize,
    crate::schemes::PackedWeights,
    usize,
    Option<&[f32]>,
    &mut [f32],
);
pub(crate) type LayerNormFn = fn(&[f32], usize, &[f32], &[f32], &mut [f32]);
pub(crate) type AttentionFn = fn(&Pool, &[f32], &[f32], &[f32], AttentionShape, &mut [f32]);
pub(crate) type AttentionF16Fn = fn(&Pool, &[f32], &[u16], &[u16], AttentionShape, &mut [f32]);

/// One instruction set's kernels. The public wrappers in `lib.rs` check
/// argument sizes before calling through.
pub(crate) struct Table {
    pub isa: Isa,
    /// Never sees packed weights (those go to `linear_packed`).
    pub linear: LinearFn,
    pub linear_packed: PackedLinearFn,
    pub layer_norm: LayerNormFn,
    pub gelu: fn(&mut [f32]),
    pub attention: AttentionFn,
    pub attention_f16: AttentionF16Fn,
    pub f16_to_f32: fn(&[u16], &mut [f32]),
    /// `scalar::max_exp_sum`.
    pub max_exp_sum: fn(&[f32]) -> (f32, f64),
    /// The ceilings' probes, written with this set's instructions.
    pub probes: &'static crate::probe::Probes,
}

static SCALAR: Table = Table {
    isa: Isa::Scalar,
    linear: scalar::linear,
    linear_packed: scalar::linear_packed,
    layer_norm: scalar::layer_norm,
    gelu: scalar::gelu,
    attention: scalar::attention,
    attention_f16: scalar::attention_f16,
    f16_to_f32: scalar::f16_to_f32,
    max_exp_sum: scalar::max_exp_sum,
    probes: &crate::probe::SCALAR,
};

/// The table for `isa`, if this CPU supports it.
pub(crate) fn table(isa: Isa) -> Option<&'static Table> {
    if !isa.supported() {
        return None;
    }
    match isa {
        Isa::Scalar => Some(&SCALAR),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(&crate::x86::avx2::TABLE),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Vnni => Some(&crate::x86::avx2::VNNI_TABLE),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(&crate::x86::avx512::TABLE),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => Some(&crate::x86::avx512::VNNI_TABLE),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Amx => Some(&crate::x86::avx512::AMX_TABLE),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(&crate::aarch64::neon::TABLE),
        #[cfg(target_arch = "aarch64")]
        Isa::NeonDotprod => Some(&crate::aarch64::dotprod::TABLE),
        #[cfg(target_arch = "aarch64")]
        Isa::NeonI8mm => Some(&crate::aarch64::i8mm::TABLE),
        _ => None,
    }
}
