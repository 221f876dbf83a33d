//! The pooled GELU and layer norm split work across threads; the split must
//! not change a single bit of the serial call's results, for every kernel set.

mod common;

use common::{scalar, simd_kernels, Rng};
use sotto_kernels::Pool;

fn all_kernels() -> Vec<sotto_kernels::Kernels> {
    let mut v = simd_kernels();
    v.push(scalar());
    v
}

#[test]
fn gelu_pooled_equals_serial_bitwise() {
    let mut rng = Rng::new(7);
    let pools = [Pool::new(1), Pool::new(2), Pool::new(3)];
    // Lengths around the chunk size and vector tails, plus extreme values.
    for &n in &[
        0usize,
        1,
        17,
        16 * 1024 - 1,
        16 * 1024 + 5,
        3 * 16 * 1024 + 31,
        100_003,
    ] {
        let mut x = rng.vec(n, 8.0);
        for (i, v) in x.iter_mut().enumerate().take(n.min(8)) {
            *v = [f32::MAX, f32::MIN, 1e-30, -1e-30, 40.0, -40.0, 0.0, -0.0][i];
        }
        for k in all_kernels() {
            let mut serial = x.clone();
            k.gelu(&mut serial);
            for pool in &pools {
                let mut pooled = x.clone();
                k.gelu_pooled(pool, &mut pooled);
                let same = serial
                    .iter()
                    .zip(&pooled)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{}: n={n} threads={}", k.isa().name(), pool.threads());
            }
        }
    }
}

#[test]
fn layer_norm_pooled_equals_serial_bitwise() {
    let mut rng = Rng::new(11);
    let pools = [Pool::new(1), Pool::new(2), Pool::new(3)];
    for &(rows, d) in &[
        (1usize, 1usize),
        (63, 7),
        (64, 384),
        (65, 384),
        (1500, 33),
        (301, 512),
    ] {
        let x = rng.vec(rows * d, 3.0);
        let g = rng.vec(d, 1.0);
        let b = rng.vec(d, 1.0);
        for k in all_kernels() {
            let mut serial = vec![0.0; rows * d];
            k.layer_norm(&x, d, &g, &b, &mut serial);
            for pool in &pools {
                let mut pooled = vec![f32::NAN; rows * d];
                k.layer_norm_pooled(pool, &x, d, &g, &b, &mut pooled);
                let same = serial
                    .iter()
                    .zip(&pooled)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{}: {rows}×{d} threads={}",
                    k.isa().name(),
                    pool.threads()
                );
            }
        }
    }
}
