//! The AArch64 probes' inner loops (see `probe.rs`). Each `run` is a safe
//! wrapper: its `Probes` are reachable only through a table that
//! `dispatch::table` hands out on a CPU with the features its
//! `#[target_feature]` names.

use std::arch::aarch64::*;
use std::hint::black_box;

use super::dotprod::sdot;
use super::i8mm::smmla;
use crate::probe::{ComputeProbe, Probes, Roof};

/// Independent chains: 32 vector registers, FMA / `sdot` latency 3–4 cycles
/// on up to 4 pipes, so 24 chains (plus operands) keep them all busy.
const CHAINS: usize = 24;

fn fold(acc: &[uint32x4_t]) -> u64 {
    let mut s = 0u32;
    for a in acc {
        let mut lanes = [0u32; 4];
        // Safety: 4 lanes into 16 bytes of `lanes`; NEON is baseline on AArch64.
        unsafe { vst1q_u32(lanes.as_mut_ptr(), *a) };
        s = lanes.iter().fold(s, |s, &l| s.wrapping_add(l));
    }
    s as u64
}

#[target_feature(enable = "neon")]
unsafe fn fma(iters: u64) -> u64 {
    let mut acc = [vdupq_n_f32(0.0); CHAINS];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = vdupq_n_f32(i as f32 * 1e-3);
    }
    let m = vdupq_n_f32(black_box(0.999));
    let c = vdupq_n_f32(black_box(1e-4));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = vfmaq_f32(*a, m, c);
        }
    }
    fold(&acc.map(|a| vreinterpretq_u32_f32(a)))
}

/// Bytes the plain-NEON int8 loop reads its operand from (L1-resident).
static INT8_SRC: [u8; 16 * CHAINS] = {
    let mut b = [0u8; 16 * CHAINS];
    let mut i = 0;
    while i < b.len() {
        b[i] = (i * 37 % 251) as u8;
        i += 1;
    }
    b
};

/// Plain NEON's int8 dot: `smull` + `smlal2` (i8 × i8 → i16) and `sadalp`
/// (pairs → i32), as the NEON int8 tile issues them per 16 byte products.
/// The operand is loaded through a pointer the compiler cannot see through.
#[target_feature(enable = "neon")]
unsafe fn smull(iters: u64) -> u64 {
    let mut acc = [vdupq_n_s32(0); CHAINS];
    let w = vdupq_n_s8(black_box(3));
    for _ in 0..iters {
        let src = black_box(INT8_SRC.as_ptr());
        for (c, a) in acc.iter_mut().enumerate() {
            let x = vld1q_s8(src.add(16 * c).cast());
            let p = vmlal_high_s8(vmull_s8(vget_low_s8(x), vget_low_s8(w)), x, w);
            *a = vpadalq_s16(*a, p);
        }
    }
    fold(&acc.map(|a| vreinterpretq_u32_s32(a)))
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn sdot_loop(iters: u64) -> u64 {
    let mut acc = [vdupq_n_s32(0); CHAINS];
    let x = vdupq_n_s8(black_box(5));
    let w = vdupq_n_s8(black_box(3));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = sdot(*a, x, w);
        }
    }
    fold(&acc.map(|a| vreinterpretq_u32_s32(a)))
}

#[target_feature(enable = "neon,i8mm")]
unsafe fn smmla_loop(iters: u64) -> u64 {
    let mut acc = [vdupq_n_s32(0); CHAINS];
    let x = vdupq_n_s8(black_box(5));
    let w = vdupq_n_s8(black_box(3));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = smmla(*a, x, w);
        }
    }
    fold(&acc.map(|a| vreinterpretq_u32_s32(a)))
}

/// Reads with 32 16-byte loads per 512-byte step into 8 `add` chains.
#[target_feature(enable = "neon")]
unsafe fn read(buf: &[u8], passes: usize) -> u64 {
    let mut acc = [vdupq_n_u32(0); 8];
    for _ in 0..passes {
        let buf = black_box(buf);
        for step in buf.chunks_exact(512) {
            let p = step.as_ptr();
            for q in 0..4 {
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = vaddq_u32(*a, vld1q_u32(p.add(128 * q + 16 * c).cast()));
                }
            }
        }
    }
    fold(&acc)
}

// Safe entries (see the module docs).
fn run_fma(iters: u64) -> u64 {
    unsafe { fma(iters) }
}
fn run_smull(iters: u64) -> u64 {
    unsafe { smull(iters) }
}
fn run_sdot(iters: u64) -> u64 {
    unsafe { sdot_loop(iters) }
}
fn run_smmla(iters: u64) -> u64 {
    unsafe { smmla_loop(iters) }
}
fn run_read(buf: &[u8], passes: usize) -> u64 {
    unsafe { read(buf, passes) }
}

const FMA: ComputeProbe = ComputeProbe {
    name: "fmla v.4s",
    roof: Roof::F32,
    ops_per_iter: (CHAINS * 4 * 2) as u64,
    run: run_fma,
};
const SDOT: ComputeProbe = ComputeProbe {
    name: "sdot v.4s",
    roof: Roof::Int8,
    ops_per_iter: (CHAINS * 16 * 2) as u64,
    run: run_sdot,
};

pub(crate) static NEON: Probes = Probes {
    fma: FMA,
    int8: &[ComputeProbe {
        name: "smull+smlal2+sadalp",
        roof: Roof::Int8,
        ops_per_iter: (CHAINS * 16 * 2) as u64,
        run: run_smull,
    }],
    read: run_read,
};

pub(crate) static DOTPROD: Probes = Probes {
    fma: FMA,
    int8: &[SDOT],
    read: run_read,
};

/// `smmla` multiplies a 2 × 8 by an 8 × 2 block: 32 products per instruction.
pub(crate) static I8MM: Probes = Probes {
    fma: FMA,
    int8: &[
        ComputeProbe {
            name: "smmla v.4s",
            roof: Roof::Int8,
            ops_per_iter: (CHAINS * 32 * 2) as u64,
            run: run_smmla,
        },
        SDOT,
    ],
    read: run_read,
};
