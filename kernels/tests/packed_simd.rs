//! Packed-weight `linear` of every SIMD kernel set against
//! `schemes::linear_reference`, on random and adversarial inputs.
//!
//! Tolerances:
//! - Weight-only (`ActQuant::Float`): every SIMD decoder produces exactly the
//!   reference's dequantized values (`s·(c − z)`, `s·(c − 8)`, `s·NF4[c]`: the
//!   same f32 operations), so only the summation order differs. Two f32
//!   evaluations of a k-term dot plus bias differ by at most
//!   2·γ_{k+1}·(Σ|x·w| + |b|) (Higham §3.1). Int8 weight-only applies the row scale after the
//!   dot (`s·Σx·c` instead of `Σx·(s·c)`): one more rounding per product,
//!   u·Σ|x·w|. We allow (2k + 6)·u·(Σ|x·w| + |b|) + the smallest normal.
//! - Int8 × int8 and low-bit × int8 (`Dynamic` / `Static`): the activation
//!   codes come from the reference's own quantizer, the dots are exact in i32
//!   and the float part is the reference's sequence of operations, so outputs
//!   must be bit-identical.

mod common;

use common::{simd_kernels, Rng, U};
use sotto_kernels::schemes::{
    dequantize, linear_reference, pack, view, ActQuant, PackedWeights, Quantized, Scheme,
};
use sotto_kernels::{Kernels, Pool, Weights};

const MS: [usize; 9] = [1, 2, 3, 5, 6, 15, 16, 17, 33];
const KS: [usize; 7] = [32, 33, 64, 65, 100, 384, 1536];
const NS: [usize; 5] = [1, 7, 16, 17, 65];

/// How to fill a test matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fill {
    Random,
    /// Every code 0.
    CodesZero,
    /// Every code at its maximum (int8: alternating ±127).
    CodesMax,
    /// Every row identical.
    EqualRows,
}

fn quantized(
    scheme: Scheme,
    n: usize,
    k: usize,
    group: usize,
    fill: Fill,
    scale: f32,
    rng: &mut Rng,
) -> Quantized {
    let max = scheme.max_code() as usize;
    let first_row: Vec<u8> = (0..k).map(|_| rng.below(max + 1) as u8).collect();
    let codes: Vec<u8> = (0..n * k)
        .map(|i| {
            let c = match fill {
                Fill::Random => rng.below(max + 1) as u8,
                Fill::CodesZero => 0,
                Fill::CodesMax => max as u8,
                Fill::EqualRows => first_row[i % k],
            };
            if scheme.is_int8() {
                // Signed codes −127..=127 as their bit patterns.
                let v = match fill {
                    Fill::CodesMax => {
                        if i % 2 == 0 {
                            127
                        } else {
                            -127
                        }
                    }
                    Fill::CodesZero => 0,
                    _ => c as i32 * 2 - 127,
                };
                v as i8 as u8
            } else {
                c
            }
        })
        .collect();
    let ns = scheme.n_scales(n, k, group).unwrap();
    let per_row = ns / n.max(1);
    let scales: Vec<f32> = (0..ns)
        .map(|i| {
            let base = if fill == Fill::EqualRows && scheme != Scheme::Int8Tensor {
                i % per_row.max(1)
            } else {
                i
            };
            let v = (base * 7919 % 1000) as f32 / 1000.0 + 0.25;
            scale * v
        })
        .collect();
    let zeros = if scheme.has_zeros() {
        (0..ns)
            .map(|_| {
                (rng.below(max * 4 + 1) as f32) / 4.0 + if rng.below(2) == 0 { 0.0 } else { 0.3 }
            })
            .collect()
    } else {
        Vec::new()
    };
    Quantized {
        scheme,
        n,
        k,
        group,
        codes,
        scales,
        zeros,
    }
}

fn groups_for(scheme: Scheme) -> &'static [usize] {
    if scheme.is_int8() {
        &[0]
    } else {
        &[32, 64, 128]
    }
}

/// Every scheme takes int8 activations too (int8 × int8, or low-bit × int8).
fn acts_for(_scheme: Scheme) -> Vec<ActQuant> {
    vec![ActQuant::Float, ActQuant::Dynamic, ActQuant::Static(0.02)]
}

/// Runs every SIMD kernel set on one case and compares with the reference.
#[allow(clippy::too_many_arguments)]
fn check(
    what: &str,
    w: &PackedWeights,
    x: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    kernels: &[Kernels],
    pool: &Pool,
) {
    let (n, k) = (w.n, w.k);
    let mut want = vec![f32::NAN; m * n];
    linear_reference(x, m, k, w, bias, &mut want);
    let mut wf = vec![0.0f32; n * k];
    dequantize(w, &mut wf);
    // The scalar table too: it has its own weight-only path and routing.
    let with_scalar: Vec<Kernels> = kernels.iter().copied().chain([common::scalar()]).collect();
    for kern in &with_scalar {
        let mut got = vec![f32::NAN; m * n + 3];
        kern.linear(pool, x, m, k, Weights::Packed(*w), n, bias, &mut got);
        assert!(
            got[m * n..].iter().all(|v| v.is_nan()),
            "{} {what}: wrote past m×n",
            kern.name()
        );
        for i in 0..m {
            for j in 0..n {
                let (g, e) = (got[i * n + j], want[i * n + j]);
                if w.act != ActQuant::Float {
                    assert!(
                        g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan()),
                        "{} {what} {:?} m={m} k={k} n={n} out[{i}][{j}] = {g}, reference {e} (int8 must be exact)",
                        kern.name(),
                        w.scheme
                    );
                    continue;
                }
                let abs: f64 = (0..k)
                    .map(|p| (x[i * k + p] as f64 * wf[j * k + p] as f64).abs())
                    .sum::<f64>()
                    + bias.map_or(0.0, |b| b[j].abs() as f64);
                let tol = (2 * k + 6) as f64 * U * abs + f32::MIN_POSITIVE as f64;
                assert!(
                    ((g as f64) - (e as f64)).abs() <= tol,
                    "{} {what} {:?} group {} m={m} k={k} n={n} out[{i}][{j}] = {g}, reference {e}, tol {tol}",
                    kern.name(),
                    w.scheme,
                    w.group
                );
            }
        }
    }
}

#[test]
fn random_shapes_every_scheme() {
    let kernels = simd_kernels();
    let pool = Pool::new(3);
    let mut rng = Rng::new(7);
    let mut case = 0usize;
    for scheme in Scheme::ALL {
        for &group in groups_for(scheme) {
            for &k in &KS {
                for &n in &NS {
                    case += 1;
                    let m = MS[case % MS.len()];
                    let q = quantized(scheme, n, k, group, Fill::Random, 0.05, &mut rng);
                    let bytes = pack(&q).unwrap();
                    let x = rng.vec(m * k, 1.0);
                    let bias = case.is_multiple_of(2).then(|| rng.vec(n, 1.0));
                    for act in acts_for(scheme) {
                        let w = view(scheme, n, k, group, &bytes, act).unwrap();
                        check("random", &w, &x, m, bias.as_deref(), &kernels, &pool);
                    }
                }
            }
        }
    }
}

#[test]
fn every_m_around_the_tile_edges() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let mut rng = Rng::new(11);
    for scheme in Scheme::ALL {
        let group = groups_for(scheme)[1.min(groups_for(scheme).len() - 1)];
        for &(k, n) in &[(100, 17), (65, 65), (384, 16)] {
            let q = quantized(scheme, n, k, group, Fill::Random, 0.1, &mut rng);
            let bytes = pack(&q).unwrap();
            for &m in &MS {
                let x = rng.vec(m * k, 2.0);
                let bias = rng.vec(n, 1.0);
                for act in acts_for(scheme) {
                    let w = view(scheme, n, k, group, &bytes, act).unwrap();
                    check("every m", &w, &x, m, Some(&bias), &kernels, &pool);
                }
            }
        }
    }
}

#[test]
fn adversarial_scales_and_codes() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let mut rng = Rng::new(13);
    for scheme in Scheme::ALL {
        let group = groups_for(scheme)[0];
        for fill in [
            Fill::CodesZero,
            Fill::CodesMax,
            Fill::EqualRows,
            Fill::Random,
        ] {
            for scale in [1e-8f32, 1e4] {
                for &(m, k, n) in &[(1, 65, 7), (3, 1536, 17), (17, 100, 33), (2, 33, 4)] {
                    let q = quantized(scheme, n, k, group, fill, scale, &mut rng);
                    let bytes = pack(&q).unwrap();
                    let mut x = rng.vec(m * k, 3.0);
                    // A row of zeros (dynamic activation scale 0).
                    x[..k].fill(0.0);
                    for act in acts_for(scheme) {
                        let w = view(scheme, n, k, group, &bytes, act).unwrap();
                        check(
                            &format!("{fill:?} scale {scale}"),
                            &w,
                            &x,
                            m,
                            None,
                            &kernels,
                            &pool,
                        );
                    }
                }
            }
        }
    }
}

/// Int8 × int8 at the extremes: x codes ±127 and weight codes −128 / 127 in
/// long runs of one sign — what would saturate `vpmaddubsw` if the operands
/// were fed naively (255·127·2 > 32767) — must still be exact.
#[test]
fn int8_overflow_bait() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    for scheme in [Scheme::Int8Row, Scheme::Int8Tensor] {
        for &(m, k, n) in &[
            (1, 1536, 9),
            (4, 64, 4),
            (17, 1000, 5),
            (2, 4095, 3),
            (16, 65, 65),
        ] {
            let mut q = quantized(scheme, n, k, 0, Fill::CodesMax, 0.01, &mut Rng::new(1));
            // Row patterns: all 127; all −127; alternating.
            for (i, c) in q.codes.iter_mut().enumerate() {
                let (r, p) = (i / k, i % k);
                *c = match r % 3 {
                    0 => 127u8,
                    1 => (-127i8) as u8,
                    _ => {
                        if p % 2 == 0 {
                            127
                        } else {
                            (-127i8) as u8
                        }
                    }
                };
            }
            let mut bytes = pack(&q).unwrap();
            // Hostile files may hold −128: it is in range for i8 and must be exact too.
            for r in (1..n).step_by(3) {
                bytes[r * k..(r + 1) * k].fill(0x80);
            }
            // x: ±max so every code is ±127, in runs and alternating.
            let x: Vec<f32> = (0..m * k)
                .map(|i| {
                    let (r, p) = (i / k, i % k);
                    match r % 3 {
                        0 => 5.0,
                        1 => -5.0,
                        _ => {
                            if p % 2 == 0 {
                                5.0
                            } else {
                                -5.0
                            }
                        }
                    }
                })
                .collect();
            for act in [ActQuant::Dynamic, ActQuant::Static(0.001), ActQuant::Float] {
                let w = view(scheme, n, k, 0, &bytes, act).unwrap();
                check("overflow bait", &w, &x, m, None, &kernels, &pool);
            }
        }
    }
}

/// Int8 × int8 at every k tail of the 16-byte NEON / 32-byte AVX2 steps and
/// the 8-byte `smmla` blocks, with every x-row count up to two tiles (the
/// i8mm tile pairs rows, an odd last row takes `sdot`): codes −128 / ±127
/// mixed with random ones, exact.
#[test]
fn int8_every_k_tail() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let mut rng = Rng::new(17);
    for k in 1..=72 {
        let n = 5;
        let mut q = quantized(Scheme::Int8Row, n, k, 0, Fill::Random, 0.01, &mut rng);
        for c in q.codes.iter_mut() {
            match rng.below(4) {
                0 => *c = 127,
                1 => *c = (-127i8) as u8,
                _ => {}
            }
        }
        let mut bytes = pack(&q).unwrap();
        // −128 is not a quantizer code, but a file may hold it: a whole row and
        // single bytes elsewhere.
        bytes[3 * k..4 * k].fill(0x80);
        bytes[k - 1] = 0x80;
        let m = 1 + k % 9;
        let x: Vec<f32> = (0..m * k)
            .map(|i| match i % 7 {
                0 => 3.0,
                1 => -3.0,
                _ => rng.unit() * 3.0,
            })
            .collect();
        for act in [ActQuant::Dynamic, ActQuant::Static(0.01)] {
            let w = view(Scheme::Int8Row, n, k, 0, &bytes, act).unwrap();
            check("k tail", &w, &x, m, None, &kernels, &pool);
        }
    }
}

/// A tensor's planes are 256-aligned from its start, but the start itself may
/// be anywhere (the caller's bytes): every scheme from an odd address.
#[test]
fn planes_at_an_odd_address() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let mut rng = Rng::new(19);
    for scheme in Scheme::ALL {
        let group = groups_for(scheme)[0];
        let (m, k, n) = (3, 100, 9);
        let q = quantized(scheme, n, k, group, Fill::Random, 0.1, &mut rng);
        let bytes = pack(&q).unwrap();
        let mut shifted = vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(&bytes);
        let x = rng.vec(m * k, 1.0);
        for act in acts_for(scheme) {
            let w = view(scheme, n, k, group, &shifted[1..], act).unwrap();
            check("odd address", &w, &x, m, None, &kernels, &pool);
            // m ≥ 16 takes the decode-into-panels path.
            let x = rng.vec(17 * k, 1.0);
            check("odd address", &w, &x, 17, None, &kernels, &pool);
        }
    }
}

#[test]
fn int8_kernels_are_offered_where_the_cpu_has_them() {
    #[cfg(target_arch = "x86_64")]
    {
        let has = Kernels::with_isa("avx512").is_some() && is_x86_feature_detected!("avx512vnni");
        assert_eq!(Kernels::with_isa("avx512vnni").is_some(), has);
        let has = Kernels::with_isa("avx2").is_some() && is_x86_feature_detected!("avxvnni");
        assert_eq!(Kernels::with_isa("avx2vnni").is_some(), has);
        // AMX needs the CPU's flags; whether Linux grants the tile state too
        // (not before 5.16, which may list the flags) is `.ci/run`'s check:
        // its SOTTO_KERNELS_ENSURE lists `amx` wherever the flags are.
        if Kernels::with_isa("amx").is_some() {
            assert!(Kernels::with_isa("avx512vnni").is_some());
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let flag = |f: &str| cpuinfo.split_whitespace().any(|w| w == f);
            assert!(
                flag("amx_tile") && flag("amx_int8"),
                "amx offered without the CPU flags"
            );
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        let dotprod = has!("neon") && has!("dotprod");
        assert_eq!(Kernels::with_isa("neon-dotprod").is_some(), dotprod);
        assert_eq!(
            Kernels::with_isa("neon-i8mm").is_some(),
            dotprod && has!("i8mm")
        );
    }
}

/// Int8 × int8 on the GEMM path (m ≥ 16) and the tiles, with activations the
/// quantizer must treat exactly as the reference does (NaN, ±∞, −0, huge,
/// all-zero rows) and weight rows holding −128: outputs bit-identical.
#[test]
fn int8_activation_edge_values() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let mut rng = Rng::new(23);
    for &(m, k, n) in &[(3, 37, 9), (16, 64, 70), (21, 130, 65), (40, 7, 130)] {
        let q = quantized(Scheme::Int8Row, n, k, 0, Fill::Random, 0.1, &mut rng);
        let mut bytes = pack(&q).unwrap();
        bytes[k..2 * k].fill(0x80);
        bytes[k - 1] = 0x80;
        let mut x = rng.vec(m * k, 2.0);
        // Row 0 all zero, row 1 with a NaN, row 2 with +∞ (Dynamic: s_x = ∞).
        x[..k].fill(0.0);
        x[k + k / 2] = f32::NAN;
        x[2 * k] = f32::INFINITY;
        for (i, v) in x.iter_mut().enumerate().skip(3 * k) {
            match i % 11 {
                0 => *v = -0.0,
                1 => *v = 1e30,
                2 => *v = -1e-30,
                _ => {}
            }
        }
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 3.0).collect();
        for act in [ActQuant::Dynamic, ActQuant::Static(0.01)] {
            let w = view(Scheme::Int8Row, n, k, 0, &bytes, act).unwrap();
            check("edge activations", &w, &x, m, Some(&bias), &kernels, &pool);
            check("edge activations", &w, &x, m, None, &kernels, &pool);
        }
    }
}

/// The int8 GEMM micro-kernels (m ≥ 16) at every k tail of their 4-code
/// steps and the dot tiles' 32-/64-byte blocks, every column tail of a
/// 16-/64-column panel and every row tail of a 4-/6-row tile, with −128 and
/// ±127 codes mixed in: exact.
#[test]
fn int8_gemm_every_tail() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let mut rng = Rng::new(29);
    for k in 1..=70 {
        let n = 1 + (k * 7) % 70;
        let m = 16 + k % 13;
        let q = quantized(Scheme::Int8Row, n, k, 0, Fill::Random, 0.02, &mut rng);
        let mut bytes = pack(&q).unwrap();
        // Plane 0 holds the codes, row after row; −128 only a file can hold.
        for c in bytes[..n * k].iter_mut() {
            match rng.below(5) {
                0 => *c = 127,
                1 => *c = (-127i8) as u8,
                2 => *c = 0x80,
                _ => {}
            }
        }
        let x: Vec<f32> = (0..m * k)
            .map(|i| match i % 5 {
                0 => 2.0,
                1 => -2.0,
                _ => rng.unit() * 2.0,
            })
            .collect();
        let bias = rng.vec(n, 1.0);
        for act in [ActQuant::Dynamic, ActQuant::Static(0.015)] {
            let w = view(Scheme::Int8Row, n, k, 0, &bytes, act).unwrap();
            check("gemm tail", &w, &x, m, Some(&bias), &kernels, &pool);
        }
    }
}

/// The int8 GEMM path with every product at its extreme and of one sign for
/// a whole k = 1536 row (x codes ±127, weight codes 127 / −127 / −128), where
/// a saturating 16-bit pair sum or a misplaced `Σx` correction would show,
/// over enough rows and columns for several panels and tiles per thread.
#[test]
fn int8_gemm_overflow_bait() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let (m, k, n) = (37, 1536, 70);
    for scheme in [Scheme::Int8Row, Scheme::Int8Tensor] {
        let q = quantized(scheme, n, k, 0, Fill::CodesMax, 0.01, &mut Rng::new(3));
        let mut bytes = pack(&q).unwrap();
        for (i, c) in bytes[..n * k].iter_mut().enumerate() {
            let (r, p) = (i / k, i % k);
            *c = match r % 4 {
                0 => 127u8,
                1 => (-127i8) as u8,
                2 => 0x80,
                _ => [127u8, 0x80][p % 2],
            };
        }
        let x: Vec<f32> = (0..m * k)
            .map(|i| match (i / k) % 3 {
                0 => 7.0,
                1 => -7.0,
                _ => [7.0, -7.0][i % 2],
            })
            .collect();
        for act in [ActQuant::Dynamic, ActQuant::Static(0.01)] {
            let w = view(scheme, n, k, 0, &bytes, act).unwrap();
            check("gemm overflow bait", &w, &x, m, None, &kernels, &pool);
        }
    }
}

/// The AMX int8 GEMM (32 × 32 micro-tiles made of 16-row, 16-column tiles,
/// k in steps of 64 codes) at every row count around its tile halves (and
/// below the GEMM's m, where the dot tiles serve), k around its 64-code step
/// up to a long 4096, and columns around its B tiles, with ±127 activation
/// codes and 127 / −127 / −128 weight codes mixed in: bit-identical to the
/// reference. Skipped, saying why, where AMX is not usable (unless
/// `SOTTO_KERNELS_ENSURE` lists `amx`: then that fails).
#[test]
fn amx_int8_gemm_tile_edges() {
    let Some(amx) = common::kernels_or_skip("amx") else {
        return;
    };
    let pool = Pool::new(2);
    let mut rng = Rng::new(31);
    let ms = [1, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 100];
    let ks = [1, 4, 63, 64, 65, 127, 128, 200, 384, 4096];
    let ns = [1, 15, 16, 17, 31, 32, 33, 65];
    for (case, (&m, &k)) in ms
        .iter()
        .flat_map(|m| ks.iter().map(move |k| (m, k)))
        .enumerate()
    {
        let n = ns[case % ns.len()];
        let (m, n) = if k == 4096 {
            (m.min(40), n.min(33))
        } else {
            (m, n)
        };
        let q = quantized(Scheme::Int8Row, n, k, 0, Fill::Random, 0.02, &mut rng);
        let mut bytes = pack(&q).unwrap();
        for c in bytes[..n * k].iter_mut() {
            match rng.below(4) {
                0 => *c = 127,
                1 => *c = (-127i8) as u8,
                2 => *c = 0x80,
                _ => {}
            }
        }
        // Every third element ±7 (code ±127 under Dynamic and Static(0.05)).
        let x: Vec<f32> = (0..m * k)
            .map(|i| match i % 3 {
                0 => [7.0, -7.0][(i / 3) % 2],
                _ => rng.unit() * 4.0,
            })
            .collect();
        let bias = rng.vec(n, 1.0);
        for act in [ActQuant::Dynamic, ActQuant::Static(0.05)] {
            let w = view(Scheme::Int8Row, n, k, 0, &bytes, act).unwrap();
            let b = case.is_multiple_of(2).then_some(&bias[..]);
            check("amx tile edges", &w, &x, m, b, &[amx], &pool);
        }
    }
}

/// Low-bit × int8 at the extremes: x codes ±127 in long runs against the
/// largest codes (nf4: ±127 table entries, the AVX2 sign trick's worst case;
/// int4: 15 × 127 pairs), every group size, k with group and block tails,
/// equal rows, and scales near the f32 extremes: bit-identical to the reference.
#[test]
fn lowbit_int8_bait() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let mut rng = Rng::new(29);
    for scheme in [
        Scheme::Int4Sym,
        Scheme::Int4Asym,
        Scheme::Nf4,
        Scheme::Nf4Dq,
        Scheme::Int3,
    ] {
        let max = scheme.max_code();
        for group in [32, 64, 96, 128, 1024] {
            for &(m, k, n) in &[
                (1, 1, 5),
                (1, 31, 4),
                (2, 97, 9),
                (4, 1536, 4),
                (5, 1000, 7),
                (17, 130, 6),
                (1, 2049, 3),
            ] {
                for fill in [
                    Fill::CodesMax,
                    Fill::CodesZero,
                    Fill::EqualRows,
                    Fill::Random,
                ] {
                    let mut q = quantized(scheme, n, k, group, fill, 0.01, &mut rng);
                    if fill == Fill::CodesMax {
                        // Rows alternate max code / code 0 (nf4: +127 / −127)
                        // / alternating per element.
                        for (i, c) in q.codes.iter_mut().enumerate() {
                            let (r, p) = (i / k, i % k);
                            *c = match r % 3 {
                                0 => max,
                                1 => 0,
                                _ => {
                                    if p % 2 == 0 {
                                        max
                                    } else {
                                        0
                                    }
                                }
                            };
                        }
                    }
                    let bytes = pack(&q).unwrap();
                    // x rows: all +big, all −big, alternating, random, tiny.
                    let x: Vec<f32> = (0..m * k)
                        .map(|i| {
                            let (r, p) = (i / k, i % k);
                            match r % 5 {
                                0 => 3.0,
                                1 => -3.0,
                                2 => {
                                    if p % 2 == 0 {
                                        1e30
                                    } else {
                                        -1e30
                                    }
                                }
                                3 => rng.unit(),
                                _ => rng.unit() * 1e-30,
                            }
                        })
                        .collect();
                    let bias = rng.vec(n, 1.0);
                    for act in [
                        ActQuant::Dynamic,
                        ActQuant::Static(0.01),
                        ActQuant::Static(1e-30),
                    ] {
                        let w = view(scheme, n, k, group, &bytes, act).unwrap();
                        check(
                            &format!("bait {fill:?} group {group}"),
                            &w,
                            &x,
                            m,
                            Some(&bias),
                            &kernels,
                            &pool,
                        );
                    }
                }
            }
        }
    }
}

/// The 4-bit decoder tiles that take x rows in pairs (AVX-512 VNNI: k a
/// whole number of 128s, groups of 64 or whole 128s), on every row count up
/// to two tiles' worth, column counts around their 8-column halves and the
/// 16-column tile, the largest codes against x rows of one sign (the
/// quantizer's ±127), and rows that differ in scale and sign, so a pair's
/// rows, halves or groups put in each other's place cannot come out equal.
#[test]
fn lowbit_row_pairs() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let mut rng = Rng::new(43);
    for scheme in [
        Scheme::Int4Sym,
        Scheme::Int4Asym,
        Scheme::Nf4,
        Scheme::Nf4Dq,
    ] {
        for group in [64, 128, 256] {
            for &(k, n) in &[(128, 8), (384, 9), (256, 16), (640, 23), (512, 40)] {
                for fill in [Fill::Random, Fill::CodesMax, Fill::EqualRows] {
                    let q = quantized(scheme, n, k, group, fill, 0.05, &mut rng);
                    let bytes = pack(&q).unwrap();
                    for m in 2..=9 {
                        let x: Vec<f32> = (0..m * k)
                            .map(|i| {
                                let (r, p) = (i / k, i % k);
                                match r % 4 {
                                    0 => 2.0 + rng.unit(),
                                    1 => -0.5 * (r + 1) as f32,
                                    2 => rng.unit() * (p % 7) as f32,
                                    _ => rng.unit() * 1e3,
                                }
                            })
                            .collect();
                        let bias = rng.vec(n, 1.0);
                        for act in [ActQuant::Dynamic, ActQuant::Static(0.03)] {
                            let w = view(scheme, n, k, group, &bytes, act).unwrap();
                            check(
                                &format!("pairs {fill:?} group {group}"),
                                &w,
                                &x,
                                m,
                                Some(&bias),
                                &kernels,
                                &pool,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Groups too long for an exact f32 group dot are refused with int8
/// activations (weight-only is fine).
#[test]
fn lowbit_int8_group_limit() {
    let q = quantized(
        Scheme::Int4Sym,
        2,
        4096,
        2048,
        Fill::Random,
        0.1,
        &mut Rng::new(3),
    );
    let bytes = pack(&q).unwrap();
    assert!(view(Scheme::Int4Sym, 2, 4096, 2048, &bytes, ActQuant::Float).is_ok());
    assert!(view(Scheme::Int4Sym, 2, 4096, 2048, &bytes, ActQuant::Dynamic).is_err());
}

/// The low-bit GEMM micro-kernels (m ≥ 16: every x86 set has one) on row
/// counts around their 4-/6-row tiles, columns around their 16-/64-column
/// panels, k with group and block tails, every group size, and codes at the
/// extremes against x codes of ±127 (from values the quantizer clamps, runs
/// of one sign, alternating): what would overflow an i16 pair or block sum,
/// or misplace nf4's `128·Σx`, must still come out bit-identical.
#[test]
fn lowbit_gemm_every_tail() {
    let kernels = simd_kernels();
    let pool = Pool::new(2);
    let mut rng = Rng::new(41);
    let mut case = 0usize;
    for scheme in [
        Scheme::Int4Sym,
        Scheme::Int4Asym,
        Scheme::Nf4,
        Scheme::Nf4Dq,
        Scheme::Int3,
    ] {
        let max = scheme.max_code();
        for group in [32, 64, 128, 1024] {
            for k in [1, 33, group - 1, group + 1, 2 * group + 37] {
                case += 1;
                let m = [16, 17, 23, 69][case % 4];
                let n = [1, 7, 15, 17, 33, 63, 65, 70][case % 8];
                for fill in [Fill::CodesMax, Fill::Random] {
                    let mut q = quantized(scheme, n, k, group, fill, 0.02, &mut rng);
                    if fill == Fill::CodesMax {
                        // Rows: max code (nf4 +127), code 0 (nf4 −127),
                        // alternating, random, max except code 7 (nf4's 0).
                        for (i, c) in q.codes.iter_mut().enumerate() {
                            let (r, p) = (i / k, i % k);
                            *c = match r % 5 {
                                0 => max,
                                1 => 0,
                                2 => [max, 0][p % 2],
                                3 => rng.below(max as usize + 1) as u8,
                                _ => [max, 7.min(max)][(p / 3) % 2],
                            };
                        }
                    }
                    let bytes = pack(&q).unwrap();
                    // x rows: +big, −big (both clamp under Static), alternating
                    // at the row's absmax, random, one huge value.
                    let x: Vec<f32> = (0..m * k)
                        .map(|i| {
                            let (r, p) = (i / k, i % k);
                            match r % 5 {
                                0 => 5.0,
                                1 => -5.0,
                                2 => [2.5, -2.5][p % 2],
                                3 => rng.unit() * 2.0,
                                _ => {
                                    if p == k / 2 {
                                        -1e30
                                    } else {
                                        rng.unit()
                                    }
                                }
                            }
                        })
                        .collect();
                    let bias = rng.vec(n, 1.0);
                    for act in [ActQuant::Dynamic, ActQuant::Static(0.01)] {
                        let w = view(scheme, n, k, group, &bytes, act).unwrap();
                        check(
                            &format!("lowbit gemm {fill:?} group {group}"),
                            &w,
                            &x,
                            m,
                            Some(&bias),
                            &kernels,
                            &pool,
                        );
                    }
                }
            }
        }
    }
}
