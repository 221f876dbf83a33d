//! `max_exp_sum` (a row's maximum and `Σ e^(x − max)`, the log-softmax of a
//! beam hypothesis' logits) of every SIMD kernel set against the scalar
//! reference, bit for bit, on random and adversarial rows; and the
//! reference's accuracy against an f64 evaluation.

mod common;

use common::{scalar, simd_kernels, Rng, U};

/// The rows every test uses: random lengths (all tails), Whisper's
/// vocabulary, and rows built to break a careless kernel.
fn rows() -> Vec<Vec<f32>> {
    let mut rng = Rng::new(0x5eed_50f7);
    let mut rows = Vec::new();
    for n in (0..70).chain([255, 256, 257, 1501, 51864, 51865]) {
        for scale in [1.0f32, 10.0, 60.0] {
            rows.push(rng.vec(n, scale));
        }
    }
    let ninf = f32::NEG_INFINITY;
    // All −∞ (a fully masked row), −∞ around one finite value, at each tail.
    for n in [1usize, 7, 16, 17, 33] {
        rows.push(vec![ninf; n]);
        for at in [0, n / 2, n - 1] {
            let mut r = vec![ninf; n];
            r[at] = 3.5;
            rows.push(r);
        }
    }
    // Masked stretches inside random logits, as the timestamp rules leave them.
    let mut r = rng.vec(51864, 20.0);
    r[..50257].iter_mut().for_each(|v| *v = ninf);
    rows.push(r);
    let mut r = rng.vec(4000, 20.0);
    r[1000..3000].iter_mut().for_each(|v| *v = ninf);
    rows.push(r);
    // Terms either side of the flush to zero: differences around −87.3.
    let mut r: Vec<f32> = (0..100).map(|i| -87.0 - 0.01 * i as f32).collect();
    r.push(0.0);
    rows.push(r);
    // NaN elements are skipped by the maximum and flushed in the sum.
    let mut r = rng.vec(40, 5.0);
    r[3] = f32::NAN;
    r[17] = f32::NAN;
    rows.push(r);
    rows.push(vec![f32::NAN; 20]);
    // +∞ as the maximum; huge and tiny magnitudes; all equal; one element.
    let mut r = rng.vec(33, 5.0);
    r[20] = f32::INFINITY;
    rows.push(r);
    rows.push(vec![1e30, -1e30, 3e38, -3e38, 1e-30, 0.0, -0.0, 5.0]);
    rows.push(vec![2.5; 100]);
    rows.push(vec![-7.0]);
    rows
}

#[test]
fn every_set_matches_the_scalar_reference_bit_for_bit() {
    let s = scalar();
    let sets = simd_kernels();
    for row in rows() {
        let (m0, s0) = s.max_exp_sum(&row);
        for k in &sets {
            let (m, sum) = k.max_exp_sum(&row);
            // The maximum as a number (a zero maximum's sign is unspecified).
            assert!(m == m0, "{}: max {m} vs {m0} (n = {})", k.name(), row.len());
            assert_eq!(
                sum.to_bits(),
                s0.to_bits(),
                "{}: sum {sum} vs {s0} (n = {})",
                k.name(),
                row.len()
            );
        }
    }
}

#[test]
fn reference_matches_f64_log_sum_exp() {
    let s = scalar();
    for row in rows() {
        let (m, sum) = s.max_exp_sum(&row);
        let finite: Vec<f64> = row
            .iter()
            .filter(|v| !v.is_nan())
            .map(|&v| v as f64)
            .collect();
        let want_max = finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if want_max == f64::NEG_INFINITY {
            assert_eq!((m, sum), (f32::NEG_INFINITY, 0.0), "empty / all −∞ row");
            continue;
        }
        assert_eq!(m as f64, want_max);
        if want_max.is_infinite() {
            // +∞: every difference is NaN or −∞, so nothing is summed.
            assert_eq!(sum, 0.0);
            continue;
        }
        // Each term e^(x − max) with x − max rounded to f32 (relative error
        // ≤ |x − max|·u in the exponent), exp within 4 ulp; terms below
        // EXP_MIN (< 1e-38 each) are dropped; the f64 sum adds n·2⁻⁵³.
        let mut want = 0.0f64;
        let mut err = 0.0f64;
        for &x in finite.iter().filter(|x| x.is_finite()) {
            let d = x - want_max;
            want += d.exp();
            err += d.exp() * (4.0 + d.abs()) * U + 1e-38;
        }
        err += want * finite.len() as f64 * f64::EPSILON;
        assert!(
            (sum - want).abs() <= err,
            "n = {}: sum {sum} vs {want} (allowed {err})",
            row.len()
        );
    }
}

#[test]
fn known_values() {
    let s = scalar();
    assert_eq!(s.max_exp_sum(&[]), (f32::NEG_INFINITY, 0.0));
    assert_eq!(s.max_exp_sum(&[0.0, 0.0]), (0.0, 2.0));
    let (m, sum) = s.max_exp_sum(&[1.0, 1.0 + std::f32::consts::LN_2]);
    assert_eq!(m, 1.0 + std::f32::consts::LN_2);
    assert!((sum - 1.5).abs() < 1e-6, "{sum}");
}
