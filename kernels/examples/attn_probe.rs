//! Attention at Whisper shapes next to the f16 GEMM, one process, min of runs
//! (robust to a shared machine): the encoder's self-attention (1500 × 1500,
//! 6 × 64 with the model's fused-QKV strides) and one decoder step's
//! cross-attention (1 × 1500) with f32 and f16 K/V.
//!
//! cargo run --release -p sotto-kernels --example attn_probe -- [isa] [threads] [runs]
use sotto_kernels::{AttentionShape, Kernels, Pool, Weights};
use std::time::Instant;

/// Fastest of `reps` timed calls (after one warm-up), in seconds.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let isa = arg(1).unwrap_or_else(|| "avx512".into());
    let threads: usize = arg(2).map_or(1, |t| t.parse().expect("threads"));
    let reps: usize = arg(3).map_or(5, |t| t.parse().expect("runs"));
    let kern = Kernels::from_name(&isa).expect("kernel set");
    let pool = Pool::new(threads);
    let mut seed = 1u32;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed as f32 / u32::MAX as f32) - 0.5
    };
    let (n, heads, d) = (1500usize, 6usize, 64usize);
    let width = heads * d;
    let qkv: Vec<f32> = (0..n * 3 * width).map(|_| rand() * 4.0).collect();
    let mut out = vec![0f32; n * width];
    let shape = AttentionShape {
        n_q: n,
        n_kv: n,
        n_head: heads,
        head_dim: d,
        q_stride: 3 * width,
        kv_stride: 3 * width,
        kv_head_stride: d,
        out_stride: width,
        causal_offset: None,
    };
    let (k, v) = (&qkv[width..], &qkv[2 * width..]);
    let ta = time(reps, || kern.attention(&pool, &qkv, k, v, shape, &mut out));
    let x: Vec<f32> = (0..n * 384).map(|_| rand()).collect();
    let w: Vec<u16> = (0..1536 * 384)
        .map(|_| 0x3000 + (rand().abs() * 1000.0) as u16)
        .collect();
    let mut o = vec![0f32; n * 1536];
    let tg = time(reps, || {
        kern.linear(&pool, &x, n, 384, Weights::F16(&w), 1536, None, &mut o)
    });
    println!(
        "{isa} t{threads}: encoder attention {:.2} ms = {:.1} GFLOP/s; f16 GEMM 1500×384×1536 {:.1} GFLOP/s",
        ta * 1e3,
        4.0 * (n * n * width) as f64 / ta / 1e9,
        2.0 * (n * 384 * 1536) as f64 / tg / 1e9
    );
    let cross = AttentionShape {
        n_q: 1,
        q_stride: width,
        kv_stride: 2 * width,
        ..shape
    };
    let kv: Vec<f32> = (0..n * 2 * width).map(|_| rand()).collect();
    let kv16: Vec<u16> = kv
        .iter()
        .map(|&x| sotto_kernels::schemes::f32_to_f16_bits(x))
        .collect();
    let t32 = time(reps * 50, || {
        kern.attention(&pool, &qkv, &kv, &kv[width..], cross, &mut out)
    });
    let t16 = time(reps * 50, || {
        kern.attention_f16(&pool, &qkv, &kv16, &kv16[width..], cross, &mut out)
    });
    println!(
        "  decoder cross step (1 × 1500): f32 K/V {:.1} µs, f16 K/V {:.1} µs",
        t32 * 1e6,
        t16 * 1e6
    );
}
