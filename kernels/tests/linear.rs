//! `linear` of every SIMD kernel set against the scalar reference.
//!
//! Tolerance: each output is a sum of k products (+ bias) evaluated in f32 in
//! some order (with or without FMA). Any such evaluation differs from the
//! exact value by at most γ_{k+1}·(Σ|x_p·w_p| + |b|), γ_n = n·u/(1 − n·u)
//! (Higham, Accuracy and Stability, §3.1). Two evaluations therefore differ
//! by at most twice that; we allow 2·(k+2)·u·(Σ|x·w| + |b|) plus the
//! smallest normal, since products of subnormal halves may flush differently.

mod common;

use common::{f32_to_f16_bits, scalar, simd_kernels, Rng, U};
use sotto_kernels::{Pool, Weights};

const SIZES: [usize; 13] = [1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 65, 255, 257];

struct Case {
    m: usize,
    k: usize,
    n: usize,
    x: Vec<f32>,
    w16: Vec<u16>,
    w32: Vec<f32>,
    bias: Option<Vec<f32>>,
}

fn check(case: &Case, f16: bool, pool: &Pool) {
    let Case { m, k, n, .. } = *case;
    let w = if f16 {
        Weights::F16(&case.w16)
    } else {
        Weights::F32(&case.w32)
    };
    let wf: Vec<f32> = if f16 {
        case.w16
            .iter()
            .map(|&h| sotto_kernels::scalar::f16_bits_to_f32(h))
            .collect()
    } else {
        case.w32.clone()
    };
    let bias = case.bias.as_deref();
    let mut want = vec![f32::NAN; m * n];
    scalar().linear(pool, &case.x, m, k, w, n, bias, &mut want);
    for kern in simd_kernels() {
        let mut got = vec![f32::NAN; m * n + 3];
        kern.linear(pool, &case.x, m, k, w, n, bias, &mut got);
        assert!(
            got[m * n..].iter().all(|v| v.is_nan()),
            "{}: wrote past m×n",
            kern.name()
        );
        for i in 0..m {
            for j in 0..n {
                let abs: f64 = (0..k)
                    .map(|p| (case.x[i * k + p] as f64 * wf[j * k + p] as f64).abs())
                    .sum::<f64>()
                    + bias.map_or(0.0, |b| b[j].abs() as f64);
                let tol = 2.0 * (k + 2) as f64 * U * abs + f32::MIN_POSITIVE as f64;
                let (g, e) = (got[i * n + j], want[i * n + j]);
                assert!(
                    ((g - e) as f64).abs() <= tol,
                    "{} m={m} k={k} n={n} f16={f16} bias={} at ({i},{j}): got {g}, want {e}, tol {tol}",
                    kern.name(),
                    bias.is_some()
                );
            }
        }
    }
}

fn random_case(rng: &mut Rng, m: usize, k: usize, n: usize, with_bias: bool) -> Case {
    let x = rng.vec(m * k, 1.0);
    let w32 = rng.vec(n * k, 0.5);
    let w16 = w32.iter().map(|&v| f32_to_f16_bits(v)).collect();
    let bias = with_bias.then(|| rng.vec(n, 1.0));
    Case {
        m,
        k,
        n,
        x,
        w16,
        w32,
        bias,
    }
}

#[test]
fn linear_matches_scalar_on_tile_edges() {
    let pool = Pool::new(3);
    let mut rng = Rng::new(1);
    let mut count = 0;
    for &m in &SIZES {
        for &k in &SIZES {
            for &n in &SIZES {
                // Keep the scalar reference affordable on the largest cubes.
                if m * k * n > 2_000_000 {
                    continue;
                }
                count += 1;
                let case = random_case(&mut rng, m, k, n, count % 2 == 0);
                check(&case, count % 3 != 0, &pool);
            }
        }
    }
}

#[test]
fn linear_whisper_like_shapes() {
    let pool = Pool::new(2);
    let mut rng = Rng::new(2);
    for &(m, k, n) in &[
        (1, 384, 1000),
        (3, 384, 515),
        (8, 240, 384),
        (100, 384, 96),
        (40, 1536, 40),
        (13, 64, 70),
    ] {
        for f16 in [false, true] {
            let case = random_case(&mut rng, m, k, n, true);
            check(&case, f16, &pool);
        }
    }
}

#[test]
fn linear_extreme_values() {
    let pool = Pool::new(2);
    let mut rng = Rng::new(3);
    // Halves at the ends of the range: ±65504, the smallest normals and
    // subnormals, zeros, mixed with ordinary values; x with zeros and
    // large values.
    let special: [u16; 10] = [
        0x7bff, 0xfbff, 0x0400, 0x8400, 0x0001, 0x8001, 0x03ff, 0x0000, 0x8000, 0x3c00,
    ];
    for &(m, k, n) in &[
        (1, 17, 9),
        (2, 33, 31),
        (9, 65, 33),
        (20, 31, 65),
        (1, 300, 7),
    ] {
        let x: Vec<f32> = (0..m * k)
            .map(|i| match i % 5 {
                0 => 0.0,
                1 => 1e4 * rng.unit(),
                _ => rng.unit(),
            })
            .collect();
        let w16: Vec<u16> = (0..n * k)
            .map(|_| special[rng.below(special.len())])
            .collect();
        let w32 = w16
            .iter()
            .map(|&h| sotto_kernels::scalar::f16_bits_to_f32(h))
            .collect();
        for bias in [None, Some(rng.vec(n, 1e3))] {
            let case = Case {
                m,
                k,
                n,
                x: x.clone(),
                w16: w16.clone(),
                w32: Vec::clone(&w32),
                bias,
            };
            check(&case, true, &pool);
            check(&case, false, &pool);
        }
    }
}

#[test]
fn linear_zero_sizes() {
    let pool = Pool::new(2);
    for kern in sotto_kernels::Kernels::available() {
        let mut out = vec![7.0f32; 6];
        kern.linear(
            &pool,
            &[],
            2,
            0,
            Weights::F32(&[]),
            3,
            Some(&[1.0, 2.0, 3.0]),
            &mut out,
        );
        assert_eq!(out, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0], "{}", kern.name());
        kern.linear(
            &pool,
            &[],
            0,
            4,
            Weights::F32(&[0.0; 12]),
            3,
            None,
            &mut out,
        );
        kern.linear(&pool, &[1.0; 8], 2, 4, Weights::F16(&[]), 0, None, &mut out);
    }
}

#[test]
fn linear_is_thread_count_independent() {
    // Every thread count splits the work differently but must give the same
    // bits: each output is summed by one thread in a fixed order.
    let mut rng = Rng::new(4);
    let case = random_case(&mut rng, 50, 129, 333, true);
    for kern in simd_kernels() {
        let mut first: Option<Vec<f32>> = None;
        for threads in [1, 2, 3, 5] {
            let pool = Pool::new(threads);
            let mut out = vec![0.0; 50 * 333];
            kern.linear(
                &pool,
                &case.x,
                50,
                129,
                Weights::F16(&case.w16),
                333,
                case.bias.as_deref(),
                &mut out,
            );
            match &first {
                None => first = Some(out),
                Some(f) => assert_eq!(f, &out, "{} threads={threads}", kern.name()),
            }
        }
    }
}
