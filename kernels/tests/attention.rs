//! `attention` / `attention_f16` of every kernel set.
//!
//! Bit-exactness: every SIMD set follows the canonical operation order that
//! `scalar::attention` spells out, so outputs must equal the scalar ones bit
//! for bit (f32 and f16 K/V, every shape, causal or not).
//!
//! Accuracy: the scalar (= every) result against an f64 evaluation of the
//! same formula. A score q·k·scale is a sum of head_dim products, off by at
//! most γ_d·A with A = scale·Σ|q_p·k_p| ≤ the largest such sum in the row;
//! a softmax weight then has relative error ≤ 2·γ_d·A (its own score and,
//! through the maximum and the sum, the others') plus a few ulps for exp and
//! n_kv·u for the normalising sum; the output, a convex combination of V
//! rows summed over n_kv terms, adds n_kv·u·max|v|. We allow twice that:
//! 2·max|v|·(2·d·u·A + (2·n_kv + 16)·u).

mod common;

use common::{f32_to_f16_bits, scalar, simd_kernels, Rng, U};
use sotto_kernels::scalar::f16_bits_to_f32;
use sotto_kernels::{AttentionShape, Kernels, Pool};

fn shape_of(
    rng: &mut Rng,
    n_q: usize,
    n_kv: usize,
    n_head: usize,
    d: usize,
    causal: Option<usize>,
) -> AttentionShape {
    let width = n_head * d;
    // Half the shapes keep K/V head-major (each head's rows contiguous, as the
    // decoder's cross-attention keys), the others heads side by side in a row.
    let (kv_stride, kv_head_stride) = if rng.below(2) == 0 {
        (width + rng.below(5), d)
    } else {
        let stride = d + rng.below(3);
        (stride, n_kv * stride + rng.below(4))
    };
    AttentionShape {
        n_q,
        n_kv,
        n_head,
        head_dim: d,
        q_stride: width + rng.below(3),
        kv_stride,
        kv_head_stride,
        out_stride: width + rng.below(2),
        causal_offset: causal,
    }
}

/// Elements K (and V) must hold for `s`.
fn kv_len(s: &AttentionShape) -> usize {
    (s.n_kv - 1) * s.kv_stride + (s.n_head - 1) * s.kv_head_stride + s.head_dim
}

/// Asserts `got == want` bit for bit (NaN-filled padding included).
fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    for (o, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: element {o}: got {g:e} ({:#010x}), scalar {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// Runs every kernel set on one problem (f32 and f16 K/V), checks bitwise
/// equality with the scalar reference and the reference's accuracy.
fn check_data(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    pool: &Pool,
    check_accuracy: bool,
) {
    let s = shape;
    let (n_q, d, width) = (s.n_q, s.head_dim, s.n_head * s.head_dim);
    let label = format!(
        "n_q={n_q} n_kv={} heads={} d={d} causal={:?}",
        s.n_kv, s.n_head, s.causal_offset
    );
    let mut want = vec![f32::NAN; n_q * s.out_stride];
    scalar().attention(pool, q, k, v, shape, &mut want);
    for kern in simd_kernels() {
        let mut got = vec![f32::NAN; n_q * s.out_stride];
        kern.attention(pool, q, k, v, shape, &mut got);
        assert_bits(&got, &want, &format!("{} f32 {label}", kern.name()));
    }
    // f16 K/V: the same as converting them first, on every kernel set.
    let (k16, v16): (Vec<u16>, Vec<u16>) = (
        k.iter().map(|&x| f32_to_f16_bits(x)).collect(),
        v.iter().map(|&x| f32_to_f16_bits(x)).collect(),
    );
    let widen = |x: &[u16]| x.iter().map(|&h| f16_bits_to_f32(h)).collect::<Vec<_>>();
    let mut want16 = vec![f32::NAN; n_q * s.out_stride];
    scalar().attention(pool, q, &widen(&k16), &widen(&v16), shape, &mut want16);
    for kern in Kernels::available() {
        let mut got = vec![f32::NAN; n_q * s.out_stride];
        kern.attention_f16(pool, q, &k16, &v16, shape, &mut got);
        assert_bits(&got, &want16, &format!("{} f16 {label}", kern.name()));
    }
    if !check_accuracy {
        return;
    }
    let scale = 1.0 / (d as f64).sqrt();
    for i in 0..n_q {
        for h in 0..s.n_head {
            let visible = s.keys_for_query(i);
            let qk = |j: usize, abs: bool| {
                (0..d)
                    .map(|p| {
                        let x = q[i * s.q_stride + h * d + p] as f64
                            * k[j * s.kv_stride + h * s.kv_head_stride + p] as f64;
                        if abs {
                            x.abs()
                        } else {
                            x
                        }
                    })
                    .sum::<f64>()
                    * scale
            };
            let scores: Vec<f64> = (0..visible).map(|j| qk(j, false)).collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let a = (0..visible).map(|j| qk(j, true)).fold(0.0, f64::max);
            let vmax = (0..visible)
                .flat_map(|j| (0..d).map(move |p| (j, p)))
                .fold(0.0f64, |m, (j, p)| {
                    m.max(v[j * s.kv_stride + h * s.kv_head_stride + p].abs() as f64)
                });
            let tol = 2.0 * vmax * (2.0 * d as f64 * U * a + (2 * s.n_kv + 16) as f64 * U);
            for p in 0..d {
                let exact = (0..visible)
                    .map(|j| e[j] * v[j * s.kv_stride + h * s.kv_head_stride + p] as f64)
                    .sum::<f64>()
                    / sum;
                let o = i * s.out_stride + h * d + p;
                assert!(
                    (want[o] as f64 - exact).abs() <= tol,
                    "{label} at q{i} h{h} c{p}: got {}, exact {exact}, tol {tol}",
                    want[o]
                );
            }
        }
        let padding = &want[i * s.out_stride + width..(i + 1) * s.out_stride];
        assert!(
            padding.iter().all(|v| v.is_nan()),
            "{label}: wrote into row padding"
        );
    }
}

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
    let shape = shape_of(rng, n_q, n_kv, n_head, d, causal);
    let q = rng.vec(n_q * shape.q_stride, magnitude);
    let k = rng.vec(kv_len(&shape), magnitude);
    let v = rng.vec(kv_len(&shape), 1.0);
    check_data(&q, &k, &v, shape, pool, true);
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
            kv_head_stride: 4,
            out_stride: 4,
            causal_offset: None,
        };
        let mut out = vec![1.0; 8];
        kern.attention(&pool, &[0.5; 8], &[], &[], shape, &mut out);
        assert_eq!(out, [0.0; 8], "{}", kern.name());
    }
}

#[test]
fn attention_adversarial_bit_exact() {
    let pool = Pool::new(2);
    let mut rng = Rng::new(23);
    // Scores spanning hundreds of e-folds: most weights flush to zero, the
    // rest are tiny; one key dominates (the score max sits at one key).
    for &(n_q, n_kv, d, causal) in &[
        (1usize, 1usize, 1usize, None),
        (1, 300, 64, None),
        (3, 40, 17, Some(37)),
        (9, 1, 5, Some(0)),
        (40, 70, 33, Some(3)),
        (100, 150, 64, None),
    ] {
        let shape = shape_of(&mut rng, n_q, n_kv, 2, d, causal);
        let q = rng.vec(n_q * shape.q_stride, 40.0);
        let mut k = rng.vec(kv_len(&shape), 40.0);
        k[0] = 1e4;
        // V: huge, tiny (subnormal) and mixed-sign values.
        let v: Vec<f32> = (0..kv_len(&shape))
            .map(|i| match i % 4 {
                0 => rng.unit() * 6e4,
                1 => rng.unit() * 1e-40,
                2 => rng.unit() * 3e-6,
                _ => rng.unit(),
            })
            .collect();
        check_data(&q, &k, &v, shape, &pool, false);
        // All scores equal (q = 0): uniform weights, exact ties in the max.
        let zeros = vec![0.0; q.len()];
        check_data(&zeros, &k, &v, shape, &pool, true);
    }
}

#[test]
fn attention_whisper_shapes_bit_exact() {
    let pool = Pool::new(2);
    let mut rng = Rng::new(24);
    // The decoder's cross-attention and a self-attention step over a cache,
    // and an encoder-like block count with tiny's head layout.
    for &(n_q, n_kv, heads, causal) in &[
        (1usize, 1500usize, 6usize, None),
        (4, 1500, 8, None),
        (1, 120, 6, Some(119)),
        (200, 300, 6, None),
    ] {
        let shape = shape_of(&mut rng, n_q, n_kv, heads, 64, causal);
        let q = rng.vec(n_q * shape.q_stride, 3.0);
        let k = rng.vec(kv_len(&shape), 3.0);
        let v = rng.vec(kv_len(&shape), 1.0);
        check_data(&q, &k, &v, shape, &pool, false);
    }
}

#[test]
fn attention_f16_n_kv_zero_gives_zeros() {
    let pool = Pool::new(2);
    for kern in Kernels::available() {
        let shape = AttentionShape {
            n_q: 9,
            n_kv: 0,
            n_head: 1,
            head_dim: 4,
            q_stride: 4,
            kv_stride: 4,
            kv_head_stride: 4,
            out_stride: 4,
            causal_offset: None,
        };
        let mut out = vec![1.0; 36];
        kern.attention_f16(&pool, &[0.5; 36], &[], &[], shape, &mut out);
        assert_eq!(out, [0.0; 36], "{}", kern.name());
    }
}

#[test]
fn attention_one_query_around_the_key_blocks() {
    // One query (the decoder's scores: 16-key blocks with their lane sums
    // folded together, then 4-key tiles) at key counts around the block
    // edges, head sizes with and without a partial 16-lane tail, and large
    // scores next to small ones.
    let pool = Pool::new(2);
    let mut rng = Rng::new(29);
    for &n_kv in &[15usize, 16, 17, 31, 32, 33, 47, 48, 49, 100] {
        for &d in &[1usize, 16, 40, 64, 80] {
            check(&mut rng, 1, n_kv, 3, d, None, 1.0, &pool);
            check(&mut rng, 1, n_kv, 2, d, Some(n_kv - 1), 30.0, &pool);
        }
    }
}
