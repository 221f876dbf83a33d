//! Encoder self-attention's FLOP rate against the f16 GEMM's, measured
//! interleaved (one round times every case once, the medians over rounds are
//! reported), so that a shared, noisy machine slows both alike.
//!
//! `cargo run --release --example attention_rate -- [THREADS] [ROUNDS] [KERNELS]`
//! (defaults 2, 15, the best set this CPU has; KERNELS as `SOTTO_KERNELS`). Shapes: tiny (d = 384, 6 heads) and base (d = 512,
//! 8 heads) over a 1500-frame window; the GEMMs are the encoder's d×d and
//! FFN-up projections at M = 1500 with f16 weights. Attention FLOPs are
//! 4·n_q·n_kv·d (Q·Kᵀ and P·V), a GEMM's 2·M·N·K.
use sotto_kernels::schemes;
use sotto_kernels::{AttentionShape, Kernels, Pool, Weights};
use std::hint::black_box;
use std::time::Instant;

struct Rng(u64);

impl Rng {
    fn floats(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                let u = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32;
                2.0 * u / (1u64 << 24) as f32 - 1.0
            })
            .collect()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(2, |a| a.parse().expect("THREADS"));
    let rounds: usize = args.next().map_or(15, |a| a.parse().expect("ROUNDS"));
    let kernels = match args.next() {
        Some(name) => Kernels::from_name(&name).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        }),
        None => Kernels::detect(),
    };
    let pool = Pool::new(threads);
    let mut rng = Rng(0x5eed_0a77);
    let ctx = 1500;
    println!("{} threads, {rounds} rounds, {}", threads, kernels.name());
    for d in [384usize, 512] {
        let heads = d / 64;
        let q = rng.floats(ctx * d);
        let kv = rng.floats(ctx * 2 * d);
        let mut out = vec![0f32; ctx * 4 * d];
        let shape = AttentionShape {
            n_q: ctx,
            n_kv: ctx,
            n_head: heads,
            head_dim: 64,
            q_stride: d,
            kv_stride: 2 * d,
            kv_head_stride: 64,
            out_stride: d,
            causal_offset: None,
        };
        let w_dd: Vec<u16> = rng
            .floats(d * d)
            .into_iter()
            .map(schemes::f32_to_f16_bits)
            .collect();
        let w_up: Vec<u16> = rng
            .floats(4 * d * d)
            .into_iter()
            .map(schemes::f32_to_f16_bits)
            .collect();
        let bias = rng.floats(4 * d);
        let x = rng.floats(ctx * d);
        let (mut t_att, mut t_dd, mut t_up) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds + 1 {
            let t = Instant::now();
            kernels.attention(
                &pool,
                black_box(&q),
                &kv,
                &kv[d..],
                shape,
                &mut out[..ctx * d],
            );
            let a = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let w = Weights::F16(&w_dd);
            kernels.linear(&pool, black_box(&x), ctx, d, w, d, Some(&bias), &mut out);
            let b = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let w = Weights::F16(&w_up);
            kernels.linear(
                &pool,
                black_box(&x),
                ctx,
                d,
                w,
                4 * d,
                Some(&bias),
                &mut out,
            );
            let c = t.elapsed().as_secs_f64();
            black_box(&out);
            if round > 0 {
                // Round 0 warms caches, the pool and the scratch buffers.
                t_att.push(a);
                t_dd.push(b);
                t_up.push(c);
            }
        }
        let (a, b, c) = (median(t_att), median(t_dd), median(t_up));
        let rate = |flops: usize, s: f64| flops as f64 / s / 1e9;
        let ra = rate(4 * ctx * ctx * d, a);
        let rb = rate(2 * ctx * d * d, b);
        let rc = rate(2 * ctx * 4 * d * d, c);
        println!(
            "d={d}: attention {:.2} ms {ra:.1} GFLOP/s | f16 d×d {:.2} ms {rb:.1} | \
             f16 ffn-up {:.2} ms {rc:.1} | attention / f16 GEMM: {:.0}% (d×d) {:.0}% (ffn-up)",
            a * 1e3,
            b * 1e3,
            c * 1e3,
            100.0 * ra / rb,
            100.0 * ra / rc,
        );
    }
}
