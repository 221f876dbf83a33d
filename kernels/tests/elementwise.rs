//! f16 conversion, layer norm and GELU of every SIMD kernel set against the
//! scalar reference.

mod common;

use common::{scalar, simd_kernels, Rng, U};
use sotto_kernels::scalar::{f16_bits_to_f32, gelu_one, layer_norm_f64};
use sotto_kernels::Kernels;

#[test]
fn scalar_f16_known_values() {
    assert_eq!(f16_bits_to_f32(0x3c00), 1.0);
    assert_eq!(f16_bits_to_f32(0xc000), -2.0);
    assert_eq!(f16_bits_to_f32(0x7bff), 65504.0);
    assert_eq!(f16_bits_to_f32(0x0400), 2f32.powi(-14));
    assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_bits_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
    assert_eq!(f16_bits_to_f32(0x7c00), f32::INFINITY);
    assert_eq!(f16_bits_to_f32(0xfc00), f32::NEG_INFINITY);
    assert_eq!(f16_bits_to_f32(0x8000).to_bits(), 0x8000_0000);
    assert!(f16_bits_to_f32(0x7c01).is_nan());
    assert!(f16_bits_to_f32(0xfe00).is_nan());
}

/// All 65536 bit patterns, bit-exact (NaN must stay NaN; both sides quiet it).
#[test]
fn f16_all_bit_patterns() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let mut want = vec![0.0f32; all.len()];
    scalar().f16_to_f32(&all, &mut want);
    for kern in simd_kernels() {
        // Odd offsets and lengths exercise the tails.
        for (start, len) in [(0, all.len()), (1, 65535), (3, 29), (5, 1), (7, 0)] {
            let src = &all[start..start + len];
            let mut got = vec![0.0f32; len + 1];
            got[len] = 123.0;
            kern.f16_to_f32(src, &mut got[..len]);
            assert_eq!(got[len], 123.0, "{} wrote past the end", kern.name());
            for (i, (&g, &h)) in got[..len].iter().zip(src).enumerate() {
                let e = want[h as usize];
                assert!(
                    g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan()),
                    "{}: half {h:#06x} (index {i}) gave {:#x}, want {:#x}",
                    kern.name(),
                    g.to_bits(),
                    e.to_bits()
                );
            }
        }
    }
}

/// Every kernel set (the scalar one included: all compute the same canonical
/// f32 order) against `layer_norm_f64`.
///
/// Tolerance: the reference computes mean and variance in f64; the kernels
/// in f32 (two passes). The f32 mean is off by at most d·u·max|x|,
/// the variance's relative error is O(d·u), so each output differs by at
/// most ~ (d+8)·u·|γ|·(max|x| + |x−μ|)/σ plus a rounding of β; we allow 4×.
#[test]
fn layer_norm_matches_scalar() {
    let mut rng = Rng::new(10);
    for &d in &[1usize, 2, 7, 15, 16, 17, 33, 64, 384, 385, 1280] {
        for &(offset, spread) in &[(0.0f32, 1.0f32), (100.0, 1.0), (0.0, 1e-3), (-5.0, 30.0)] {
            let rows = 3;
            let x: Vec<f32> = (0..rows * d)
                .map(|_| offset + spread * rng.unit())
                .collect();
            let gamma = rng.vec(d, 2.0);
            let beta = rng.vec(d, 1.0);
            let mut want = vec![0.0; rows * d];
            layer_norm_f64(&x, d, &gamma, &beta, &mut want);
            for kern in Kernels::available() {
                let mut got = vec![f32::NAN; rows * d + 1];
                kern.layer_norm(&x, d, &gamma, &beta, &mut got);
                assert!(got[rows * d].is_nan(), "{} wrote past the end", kern.name());
                for r in 0..rows {
                    let row = &x[r * d..(r + 1) * d];
                    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
                    let var =
                        row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
                    let sigma = (var + 1e-5).sqrt();
                    let max = row.iter().fold(0.0f64, |a, &v| a.max((v as f64).abs()));
                    for p in 0..d {
                        let i = r * d + p;
                        let tol = 4.0
                            * (d + 8) as f64
                            * U
                            * gamma[p].abs() as f64
                            * (max + (x[i] as f64 - mean).abs())
                            / sigma
                            + 4.0 * U * (beta[p].abs() as f64 + want[i].abs() as f64);
                        assert!(
                            ((got[i] - want[i]) as f64).abs() <= tol,
                            "{} d={d} offset={offset} spread={spread} [{r},{p}]: got {}, want {}, tol {tol}",
                            kern.name(),
                            got[i],
                            want[i]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn scalar_gelu_known_values() {
    // GELU(x) = x·Φ(x), values from the normal CDF.
    for &(x, want) in &[
        (0.0f32, 0.0f64),
        (1.0, 0.841_344_746_068_542_9),
        (-1.0, -0.158_655_253_931_457_05),
        (3.0, 2.995_950_305_905_11),
        (-3.0, -0.004_049_694_094_890_287),
        (-6.0, -5.919_525_870_226_207e-9),
    ] {
        let got = gelu_one(x) as f64;
        assert!(
            (got - want).abs() <= 2e-7 * want.abs() + 1e-30,
            "gelu({x}) = {got}, want {want}"
        );
    }
}

/// Every kernel set against `gelu_one` (f64).
///
/// Tolerance: the kernels evaluate the reference's formula in f32. The
/// exponent argument −z² + Q(t) is rounded to f32, a relative error of up to
/// z²·u in e^(…), which stays below 1e-6 for |x| ≤ 5.5; beyond that
/// |GELU(x)| < 1e-7·|x| and an absolute 1e-12 covers it.
#[test]
fn gelu_matches_scalar() {
    let mut rng = Rng::new(11);
    let mut x: Vec<f32> = (0..10_000).map(|i| (i as f32 - 5000.0) / 500.0).collect();
    x.extend(rng.vec(1003, 4.0));
    x.extend([
        0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 30.0, -30.0, 1e4, -1e4, 1e30, -1e30,
    ]);
    let want: Vec<f32> = x.iter().map(|&v| gelu_one(v)).collect();
    for kern in Kernels::available() {
        for len in [x.len(), x.len() - 1, 7, 1, 0] {
            let mut got = x[..len].to_vec();
            kern.gelu(&mut got);
            for i in 0..len {
                let (g, e) = (got[i] as f64, want[i] as f64);
                assert!(
                    (g - e).abs() <= 1e-6 * e.abs() + 1e-12,
                    "{}: gelu({}) = {g}, want {e}",
                    kern.name(),
                    x[i]
                );
            }
        }
        let mut nan = [f32::NAN];
        kern.gelu(&mut nan);
        assert!(nan[0].is_nan());
    }
}
