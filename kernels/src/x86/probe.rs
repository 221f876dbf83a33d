//! The x86-64 probes' inner loops (see `probe.rs`): FMA and int8 dot chains
//! and read loops per instruction set. Each `run` is a safe wrapper: its
//! `Probes` are reachable only through a table `dispatch::table` handed out
//! on a CPU with the features named in its `#[target_feature]`.

use std::arch::x86_64::*;
use std::hint::black_box;

use crate::probe::{ComputeProbe, Probes, Roof};

/// Independent accumulator chains: FMA and `vpdpbusd` have a latency of 4–5
/// cycles on two ports, so ≥ 10 chains keep both busy; AVX2 has 16 ymm
/// registers (12 chains + operands), AVX-512 32 zmm.
const CHAINS_256: usize = 12;
const CHAINS_512: usize = 16;

fn fold(words: &[i32]) -> u64 {
    words.iter().fold(0u32, |s, &w| s.wrapping_add(w as u32)) as u64
}

#[target_feature(enable = "avx2,fma")]
unsafe fn fma256(iters: u64) -> u64 {
    let mut acc = [_mm256_setzero_ps(); CHAINS_256];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm256_set1_ps(i as f32 * 1e-3);
    }
    let m = _mm256_set1_ps(black_box(0.999));
    let c = _mm256_set1_ps(black_box(1e-4));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let mut s = _mm256_setzero_ps();
    for a in acc {
        s = _mm256_add_ps(s, a);
    }
    let mut out = [0i32; 8];
    _mm256_storeu_si256(out.as_mut_ptr().cast(), _mm256_castps_si256(s));
    fold(&out)
}

#[target_feature(enable = "avx512f,fma")]
unsafe fn fma512(iters: u64) -> u64 {
    let mut acc = [_mm512_setzero_ps(); CHAINS_512];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm512_set1_ps(i as f32 * 1e-3);
    }
    let m = _mm512_set1_ps(black_box(0.999));
    let c = _mm512_set1_ps(black_box(1e-4));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    let mut s = _mm512_setzero_ps();
    for a in acc {
        s = _mm512_add_ps(s, a);
    }
    let mut out = [0i32; 16];
    _mm512_storeu_si512(out.as_mut_ptr().cast(), _mm512_castps_si512(s));
    fold(&out)
}

/// Bytes the int8 loops read their varying operand from (L1-resident).
static INT8_SRC: [u8; 64 * CHAINS_512] = {
    let mut b = [0u8; 64 * CHAINS_512];
    let mut i = 0;
    while i < b.len() {
        b[i] = (i * 37 % 251) as u8;
        i += 1;
    }
    b
};

fn fold256(acc: &[__m256i]) -> u64 {
    let mut out = vec![0i32; 8 * acc.len()];
    for (i, a) in acc.iter().enumerate() {
        // Safety: 8 i32 per register, written into out's own 32 bytes.
        unsafe { _mm256_storeu_si256(out[8 * i..].as_mut_ptr().cast(), *a) };
    }
    fold(&out)
}

/// AVX2's int8 dot: `vpmaddubsw` (u8 × i8 pairs → i16), `vpmaddwd` with
/// ones (→ i32), `vpaddd` — the three instructions the AVX2 int8 tiles issue
/// per 32 byte products. The unsigned operand is loaded each time, from a
/// pointer the compiler cannot see through, as the kernels load x.
#[target_feature(enable = "avx2")]
unsafe fn maddubs256(iters: u64) -> u64 {
    let mut acc = [_mm256_setzero_si256(); CHAINS_256];
    let w = _mm256_set1_epi8(black_box(3));
    let ones = _mm256_set1_epi16(1);
    for _ in 0..iters {
        let src = black_box(INT8_SRC.as_ptr());
        for (c, a) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_si256(src.add(32 * c).cast());
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones));
        }
    }
    fold256(&acc)
}

/// VEX `vpdpbusd` on ymm (AVX-VNNI).
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn vnni256_vex(iters: u64) -> u64 {
    let mut acc = [_mm256_setzero_si256(); CHAINS_256];
    let x = _mm256_set1_epi8(black_box(5));
    let w = _mm256_set1_epi8(black_box(3));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_dpbusd_avx_epi32(*a, x, w);
        }
    }
    fold256(&acc)
}

/// EVEX `vpdpbusd` on ymm (AVX-512 VNNI + VL), as the low-bit tiles use it.
#[target_feature(enable = "avx512f,avx512vl,avx512vnni")]
unsafe fn vnni256_evex(iters: u64) -> u64 {
    let mut acc = [_mm256_setzero_si256(); CHAINS_512];
    let x = _mm256_set1_epi8(black_box(5));
    let w = _mm256_set1_epi8(black_box(3));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_dpbusd_epi32(*a, x, w);
        }
    }
    fold256(&acc)
}

/// `vpdpbusd` on zmm (AVX-512 VNNI).
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni512(iters: u64) -> u64 {
    let mut acc = [_mm512_setzero_si512(); CHAINS_512];
    let x = _mm512_set1_epi8(black_box(5));
    let w = _mm512_set1_epi8(black_box(3));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_dpbusd_epi32(*a, x, w);
        }
    }
    let mut out = [0i32; 16 * CHAINS_512];
    for (i, a) in acc.iter().enumerate() {
        _mm512_storeu_si512(out[16 * i..].as_mut_ptr().cast(), *a);
    }
    fold(&out)
}

/// Reads with 16 ymm loads per 512-byte step into 8 `vpaddd` chains.
#[target_feature(enable = "avx2")]
unsafe fn read256(buf: &[u8], passes: usize) -> u64 {
    let mut acc = [_mm256_setzero_si256(); 8];
    for _ in 0..passes {
        let buf = black_box(buf);
        for step in buf.chunks_exact(512) {
            let p = step.as_ptr();
            for h in 0..2 {
                for (c, a) in acc.iter_mut().enumerate() {
                    let v = _mm256_loadu_si256(p.add(256 * h + 32 * c).cast());
                    *a = _mm256_add_epi32(*a, v);
                }
            }
        }
    }
    fold256(&acc)
}

/// Reads with 8 zmm loads per 512-byte step into 8 `vpaddd` chains.
#[target_feature(enable = "avx512f")]
unsafe fn read512(buf: &[u8], passes: usize) -> u64 {
    let mut acc = [_mm512_setzero_si512(); 8];
    for _ in 0..passes {
        let buf = black_box(buf);
        for step in buf.chunks_exact(512) {
            let p = step.as_ptr();
            for (c, a) in acc.iter_mut().enumerate() {
                *a = _mm512_add_epi32(*a, _mm512_loadu_si512(p.add(64 * c).cast()));
            }
        }
    }
    let mut out = [0i32; 16 * 8];
    for (i, a) in acc.iter().enumerate() {
        _mm512_storeu_si512(out[16 * i..].as_mut_ptr().cast(), *a);
    }
    fold(&out)
}

// Safe entries (see the module docs).
fn run_fma256(iters: u64) -> u64 {
    unsafe { fma256(iters) }
}
fn run_fma512(iters: u64) -> u64 {
    unsafe { fma512(iters) }
}
fn run_maddubs256(iters: u64) -> u64 {
    unsafe { maddubs256(iters) }
}
fn run_vnni256_vex(iters: u64) -> u64 {
    unsafe { vnni256_vex(iters) }
}
fn run_vnni256_evex(iters: u64) -> u64 {
    unsafe { vnni256_evex(iters) }
}
fn run_vnni512(iters: u64) -> u64 {
    unsafe { vnni512(iters) }
}
fn run_read256(buf: &[u8], passes: usize) -> u64 {
    unsafe { read256(buf, passes) }
}
fn run_read512(buf: &[u8], passes: usize) -> u64 {
    unsafe { read512(buf, passes) }
}

const FMA256: ComputeProbe = ComputeProbe {
    name: "vfmadd231ps ymm",
    roof: Roof::F32,
    ops_per_iter: (CHAINS_256 * 8 * 2) as u64,
    run: run_fma256,
};
const FMA512: ComputeProbe = ComputeProbe {
    name: "vfmadd231ps zmm",
    roof: Roof::F32,
    ops_per_iter: (CHAINS_512 * 16 * 2) as u64,
    run: run_fma512,
};
const MADDUBS256: ComputeProbe = ComputeProbe {
    name: "vpmaddubsw+vpmaddwd ymm",
    roof: Roof::Int8,
    ops_per_iter: (CHAINS_256 * 32 * 2) as u64,
    run: run_maddubs256,
};

/// AVX2 (+ FMA, F16C).
pub(crate) static AVX2: Probes = Probes {
    fma: FMA256,
    int8: &[MADDUBS256],
    read: run_read256,
};

/// AVX2 with AVX-VNNI.
pub(crate) static AVX2_VNNI: Probes = Probes {
    fma: FMA256,
    int8: &[ComputeProbe {
        name: "vpdpbusd ymm (VEX)",
        roof: Roof::Int8,
        ops_per_iter: (CHAINS_256 * 32 * 2) as u64,
        run: run_vnni256_vex,
    }],
    read: run_read256,
};

/// AVX-512 without VNNI: its int8 kernels are AVX2's.
pub(crate) static AVX512: Probes = Probes {
    fma: FMA512,
    int8: &[MADDUBS256],
    read: run_read512,
};

const VNNI512: ComputeProbe = ComputeProbe {
    name: "vpdpbusd zmm",
    roof: Roof::Int8,
    ops_per_iter: (CHAINS_512 * 64 * 2) as u64,
    run: run_vnni512,
};
const VNNI256_EVEX: ComputeProbe = ComputeProbe {
    name: "vpdpbusd ymm (EVEX)",
    roof: Roof::Int8,
    ops_per_iter: (CHAINS_512 * 32 * 2) as u64,
    run: run_vnni256_evex,
};

/// AVX-512 with VNNI: zmm `vpdpbusd` in the int8 and low-bit GEMMs, ymm in
/// some low-bit dot tiles.
pub(crate) static AVX512_VNNI: Probes = Probes {
    fma: FMA512,
    int8: &[VNNI512, VNNI256_EVEX],
    read: run_read512,
};

/// AVX-512 VNNI with AMX: tile `tdpbsud` in the int8 × int8 GEMM, the VNNI
/// instructions everywhere else.
pub(crate) static AVX512_AMX: Probes = Probes {
    fma: FMA512,
    int8: &[
        ComputeProbe {
            name: "tdpbsud (AMX tiles)",
            roof: Roof::Int8,
            ops_per_iter: 4 * 16 * 16 * 64 * 2,
            run: super::amx::probe_tdpbsud,
        },
        VNNI512,
        VNNI256_EVEX,
    ],
    read: run_read512,
};
