//! `attention` of every SIMD kernel set against the scalar reference.
//!
//! Tolerance: a score q·k·scale is a sum of head_dim products, off by at
//! most γ_d·A with A = scale·Σ|q_p·k_p| ≤ the largest such sum in the row;
//! a softmax weight then has relative error ≤ 2·γ_d·A (its own score and,
//! through the maximum and the sum, the others') plus a few ulps for exp and
//! n_kv·u for the normalising sum; the output, a convex combination of V
//! rows summed over n_kv terms, adds n_kv·u·max|v|. Both implementations
//! have such errors, so we allow twice: 2·max|v|·(2·d·u·A + (2·n_kv + 16)·u).

mod common;

use common::{scalar, simd_kernels, Rng, U};
use sotto_kernels::{AttentionShape, Pool};

#[allow(clippy::too_many_arguments)]
fn check(
    rng: &mut Rng,
    n_q: usize,
    n_kv: usize,
    n_head: usize,
    d: usize,
    causal: Option<usize>,
    magnitude: f32,
    pool: &Pool,
) {
    let width = n_head * d;
    let (q_stride, kv_stride, out_stride) = (
        width + rng.below(3),
        width + rng.below(5),
        width + rng.below(2),
    );
    let shape = AttentionShape {
        n_q,
        n_kv,
        n_head,
        head_dim: d,
        q_stride,
        kv_stride,
        out_stride,
        causal_offset: causal,
    };
    let q = rng.vec(n_q * q_stride, magnitude);
    let k = rng.vec(n_kv * kv_stride, magnitude);
    let v = rng.vec(n_kv * kv_stride, 1.0);
    let mut want = vec![f32::NAN; n_q * out_stride];
    scalar().attention(pool, &q, &k, &v, shape, &mut want);
    let scale = 1.0 / (d as f64).sqrt();
    for kern in simd_kernels() {
        let mut got = vec![f32::NAN; n_q * out_stride];
        kern.attention(pool, &q, &k, &v, shape, &mut got);
        for i in 0..n_q {
            for h in 0..n_head {
                let visible = shape.keys_for_query(i);
                let a = (0..visible)
                    .map(|j| {
                        (0..d)
                            .map(|p| {
                                (q[i * q_stride + h * d + p] as f64
                                    * k[j * kv_stride + h * d + p] as f64)
                                    .abs()
                            })
                            .sum::<f64>()
                    })
                    .fold(0.0, f64::max)
                    * scale;
                let vmax = (0..visible)
                    .flat_map(|j| (0..d).map(move |p| (j, p)))
                    .fold(0.0f64, |m, (j, p)| {
                        m.max(v[j * kv_stride + h * d + p].abs() as f64)
                    });
                let tol = 2.0 * vmax * (2.0 * d as f64 * U * a + (2 * n_kv + 16) as f64 * U);
                for p in 0..d {
                    let o = i * out_stride + h * d + p;
                    assert!(
                        ((got[o] - want[o]) as f64).abs() <= tol,
                        "{} n_q={n_q} n_kv={n_kv} heads={n_head} d={d} causal={causal:?} mag={magnitude} at q{i} h{h} c{p}: got {}, want {}, tol {tol}",
                        kern.name(),
                        got[o],
                        want[o]
                    );
                }
                // Padding between rows is left alone.
                let padding = &got[i * out_stride + width..(i + 1) * out_stride];
                assert!(
                    padding.iter().all(|v| v.is_nan()),
                    "{} wrote into row padding",
                    kern.name()
                );
            }
        }
    }
}

#[test]
fn attention_small_and_odd_shapes() {
    let pool = Pool::new(3);
    let mut rng = Rng::new(20);
    for &n_q in &[1usize, 2, 7, 8, 9, 33, 97] {
        for &n_kv in &[1usize, 2, 17, 65, 150] {
            for &d in &[1usize, 3, 16, 31, 64, 65] {
                let n_head = 1 + (n_q + n_kv + d) % 3;
                check(&mut rng, n_q, n_kv, n_head, d, None, 1.0, &pool);
                check(&mut rng, n_q, n_kv, n_head, d, Some(0), 1.0, &pool);
                check(
                    &mut rng,
                    n_q,
                    n_kv,
                    n_head,
                    d,
                    Some(n_kv.saturating_sub(n_q)),
                    1.0,
                    &pool,
                );
            }
        }
    }
}

#[test]
fn attention_decoder_like() {
    let pool = Pool::new(2);
    let mut rng = Rng::new(21);
    // Self-attention over a growing cache (one new query), cross-attention
    // over 1500 encoder frames, a prompt of several tokens.
    check(&mut rng, 1, 37, 6, 64, Some(36), 1.0, &pool);
    check(&mut rng, 1, 1500, 6, 64, None, 1.0, &pool);
    check(&mut rng, 5, 5, 8, 64, Some(0), 1.0, &pool);
    check(&mut rng, 12, 20, 6, 64, Some(8), 1.0, &pool);
}

#[test]
fn attention_encoder_like_and_large_scores() {
    let pool = Pool::new(2);
    let mut rng = Rng::new(22);
    check(&mut rng, 300, 300, 2, 64, None, 1.0, &pool);
    // Large scores (|q·k|/8 up to ~1e3): max subtraction keeps exp finite.
    check(&mut rng, 100, 120, 2, 64, None, 30.0, &pool);
    check(&mut rng, 3, 120, 2, 64, None, 30.0, &pool);
    check(&mut rng, 100, 100, 1, 64, Some(0), 30.0, &pool);
}

#[test]
fn attention_n_kv_zero_gives_zeros() {
    let pool = Pool::new(2);
    for kern in sotto_kernels::Kernels::available() {
        let shape = AttentionShape {
            n_q: 2,
            n_kv: 0,
            n_head: 1,
            head_dim: 4,
            q_stride: 4,
            kv_stride: 4,
            out_stride: 4,
            causal_offset: None,
        };
        let mut out = vec![1.0; 8];
        kern.attention(&pool, &[0.5; 8], &[], &[], shape, &mut out);
        assert_eq!(out, [0.0; 8], "{}", kern.name());
    }
}
