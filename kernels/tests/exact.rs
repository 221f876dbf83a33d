//! Every kernel set computes the float kernels in one canonical order of
//! floating-point operations, so their outputs are bit-identical to the scalar
//! reference's (see "Canonical order" in `scalar.rs`). This is what keeps
//! transcripts independent of the CPU: with int8 activations a last-bit
//! difference in an f32 kernel can move an activation across an int8 rounding
//! boundary, and that step grows through the layers.
//!
//! NaN results must be NaN in both (payloads may differ); everything else,
//! including the sign of zero, must match bit for bit.

mod common;

use common::{f32_to_f16_bits, scalar, Rng};
use sotto_kernels::schemes::{pack, view, ActQuant, Quantized, Scheme};
use sotto_kernels::{Kernels, Pool, Weights};

/// Every kernel set this CPU has, the scalar reference included.
fn all() -> Vec<Kernels> {
    Kernels::available()
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Asserts `got` equals `want` bit for bit, naming the first difference.
fn assert_same(what: &str, kern: Kernels, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    let diffs = got
        .iter()
        .zip(want)
        .filter(|(g, w)| !same(**g, **w))
        .count();
    if let Some(i) = (0..got.len()).find(|&i| !same(got[i], want[i])) {
        panic!(
            "{} {what}: [{i}] = {:e} ({:#010x}), scalar {:e} ({:#010x}); {diffs} of {} differ",
            kern.name(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits(),
            got.len()
        );
    }
}

/// Random values of mixed magnitudes with some adversarial ones mixed in.
fn values(rng: &mut Rng, n: usize, scale: f32, adversarial: bool) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if adversarial && rng.below(16) == 0 {
                [0.0, -0.0, 1e-30, -1e-38, 3e4, -3e4, 1e-7, 6.5e4][rng.below(8)]
            } else {
                rng.unit() * scale * if rng.below(8) == 0 { 30.0 } else { 1.0 }
            }
        })
        .collect()
}

const DS: [usize; 14] = [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 384, 385, 1536];

#[test]
fn layer_norm_is_bit_identical() {
    let mut rng = Rng::new(11);
    for &d in &DS {
        for (case, &(scale, adv)) in [(1.0, false), (40.0, true), (1e-3, false)]
            .iter()
            .enumerate()
        {
            let rows = 3;
            let mut x = values(&mut rng, rows * d, scale, adv);
            if case == 0 {
                // A constant row (variance exactly zero) and an all-(-0) row.
                x[..d].fill(0.75);
                x[d..2 * d].fill(-0.0);
            }
            let gamma = values(&mut rng, d, 1.5, false);
            let beta = values(&mut rng, d, 0.5, false);
            let mut want = vec![0.0; rows * d];
            scalar().layer_norm(&x, d, &gamma, &beta, &mut want);
            for kern in all() {
                let mut got = vec![f32::NAN; rows * d];
                kern.layer_norm(&x, d, &gamma, &beta, &mut got);
                assert_same(&format!("layer_norm d={d} case {case}"), kern, &got, &want);
            }
        }
    }
}

#[test]
fn gelu_is_bit_identical() {
    let mut rng = Rng::new(12);
    let mut x: Vec<f32> = (0..20_000).map(|_| rng.unit() * 12.0).collect();
    x.extend((0..2_000).map(|i| (i as f32 - 1000.0) * 0.001));
    x.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        1e-40,
        -1e-40,
        f32::MIN_POSITIVE,
        5.0,
        -5.0,
        9.0,
        -9.0,
        -13.0,
        -14.0,
        -16.0,
        -20.0,
        100.0,
        -100.0,
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ]);
    for len in [x.len(), 1, 7, 13, 17] {
        let x = &x[x.len() - len..];
        let mut want = x.to_vec();
        scalar().gelu(&mut want);
        for kern in all() {
            let mut got = x.to_vec();
            kern.gelu(&mut got);
            assert_same(&format!("gelu len {len}"), kern, &got, &want);
        }
    }
}

#[test]
fn f16_to_f32_is_bit_identical() {
    let src: Vec<u16> = (0..=u16::MAX).collect();
    let mut want = vec![0.0; src.len()];
    scalar().f16_to_f32(&src, &mut want);
    for kern in all() {
        for len in [src.len(), 1, 9, 17] {
            let mut got = vec![f32::NAN; len];
            kern.f16_to_f32(&src[..len], &mut got);
            assert_same("f16_to_f32", kern, &got, &want[..len]);
        }
    }
}

const MS: [usize; 11] = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 33];
const KS: [usize; 9] = [1, 7, 16, 17, 32, 33, 100, 384, 1536];
const NS: [usize; 6] = [1, 3, 16, 17, 33, 65];

#[test]
fn float_linear_is_bit_identical() {
    let mut rng = Rng::new(13);
    let pools = [Pool::new(1), Pool::new(3)];
    let mut case = 0usize;
    for &k in &KS {
        for &n in &NS {
            for &m in &MS {
                case += 1;
                let adv = case.is_multiple_of(3);
                let mut x = values(&mut rng, m * k, 1.0, adv);
                if case % 4 == 1 {
                    x[..k].fill(-0.0);
                }
                let w32 = values(&mut rng, n * k, 0.5, adv);
                let w16: Vec<u16> = w32.iter().map(|&v| f32_to_f16_bits(v)).collect();
                let bias = (case.is_multiple_of(2)).then(|| values(&mut rng, n, 1.0, false));
                let pool = &pools[case % 2];
                for f16 in [false, true] {
                    let w = if f16 {
                        Weights::F16(&w16)
                    } else {
                        Weights::F32(&w32)
                    };
                    let mut want = vec![f32::NAN; m * n];
                    scalar().linear(pool, &x, m, k, w, n, bias.as_deref(), &mut want);
                    for kern in all() {
                        let mut got = vec![f32::NAN; m * n];
                        kern.linear(pool, &x, m, k, w, n, bias.as_deref(), &mut got);
                        let what = format!("linear f16={f16} m={m} k={k} n={n}");
                        assert_same(&what, kern, &got, &want);
                    }
                }
            }
        }
    }
}

fn quantized(scheme: Scheme, n: usize, k: usize, group: usize, rng: &mut Rng) -> Quantized {
    let max = scheme.max_code() as usize;
    let codes = (0..n * k)
        .map(|_| {
            let c = rng.below(max + 1);
            if scheme.is_int8() {
                (c as i32 * 2 - 127) as i8 as u8
            } else {
                c as u8
            }
        })
        .collect();
    let ns = scheme.n_scales(n, k, group).unwrap();
    let scales = (0..ns).map(|_| 0.01 + rng.unit().abs() * 0.05).collect();
    let zeros = if scheme.has_zeros() {
        (0..ns)
            .map(|_| rng.below(max * 4 + 1) as f32 / 4.0)
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

#[test]
fn packed_linear_is_bit_identical() {
    let mut rng = Rng::new(14);
    let pool = Pool::new(2);
    let mut case = 0usize;
    for scheme in Scheme::ALL {
        let group = if scheme.is_int8() { 0 } else { 64 };
        for &k in &[32, 33, 64, 100, 384] {
            for &n in &[1, 5, 17, 33] {
                case += 1;
                let q = quantized(scheme, n, k, group, &mut rng);
                let bytes = pack(&q).unwrap();
                let acts: &[ActQuant] = if scheme.is_int8() {
                    &[ActQuant::Float, ActQuant::Dynamic]
                } else {
                    &[ActQuant::Float]
                };
                for &act in acts {
                    let w = view(scheme, n, k, group, &bytes, act).unwrap();
                    for &m in &[1, 2, 3, 5, 16, 19] {
                        let mut x = values(&mut rng, m * k, 1.0, case.is_multiple_of(3));
                        if case % 4 == 1 {
                            // A row of −0: the sign of a zero sum is part of the order.
                            x[..k].fill(-0.0);
                        }
                        let bias =
                            (case.is_multiple_of(2)).then(|| values(&mut rng, n, 1.0, false));
                        let mut want = vec![f32::NAN; m * n];
                        let wp = Weights::Packed(w);
                        scalar().linear(&pool, &x, m, k, wp, n, bias.as_deref(), &mut want);
                        for kern in all() {
                            let mut got = vec![f32::NAN; m * n];
                            kern.linear(&pool, &x, m, k, wp, n, bias.as_deref(), &mut got);
                            let what = format!("{scheme:?} {act:?} m={m} k={k} n={n}");
                            assert_same(&what, kern, &got, &want);
                        }
                    }
                }
            }
        }
    }
}
