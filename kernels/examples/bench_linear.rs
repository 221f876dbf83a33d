//! GFLOP/s of `linear` and `attention` per kernel set for Whisper's shapes,
//! plus the pool's per-call overhead.
//!
//! cargo run --release -p sotto-kernels --example bench_linear --
//!     [--threads 1,2] [--isa avx2,avx512,scalar] [--ms 300] [--gemm (encoder GEMMs only)]

use sotto_kernels::{AttentionShape, Kernels, Pool, Weights};
use std::time::{Duration, Instant};

/// Median seconds per call of `f`, run repeatedly for about `budget`.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: scratch buffers, page faults, caches
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 3 || (start.elapsed() < budget && samples.len() < 1000) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let threads: Vec<usize> = arg("--threads")
        .unwrap_or_else(|| "1,2".into())
        .split(',')
        .map(|t| t.parse().expect("--threads 1,2"))
        .collect();
    let kernels: Vec<Kernels> = match arg("--isa") {
        Some(list) => list
            .split(',')
            .map(|n| Kernels::from_name(n).unwrap())
            .collect(),
        None => Kernels::available()
            .into_iter()
            .filter(|k| k.name() != "scalar")
            .collect(),
    };
    let budget = Duration::from_millis(arg("--ms").map_or(300, |m| m.parse().unwrap()));

    let linear_shapes = [
        (1500, 384, 384),
        (1500, 384, 1536),
        (1500, 1536, 384),
        (3000, 240, 384),
        (1500, 512, 2048),
        (1500, 2048, 512),
        (5, 384, 1536),
        (32, 512, 2048),
        (1, 384, 1536),
        (1, 384, 51864),
    ];
    let mut seed = 1u32;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed as f32 / u32::MAX as f32) - 0.5
    };
    let only_gemm = std::env::args().any(|a| a == "--gemm");
    for &t in &threads {
        let pool = Pool::new(t);
        let per_call = time(budget, || {
            for _ in 0..1000 {
                pool.run(t.max(2), &|_| {});
            }
        }) / 1000.0;
        // A job whose t tasks each busy-wait 20 µs needs every thread: its
        // time beyond 20 µs is the cost of waking the workers and waiting.
        let work = Duration::from_micros(20);
        let busy = time(budget, || {
            for _ in 0..200 {
                pool.run(t, &|_| {
                    let s = Instant::now();
                    while s.elapsed() < work {}
                });
            }
        }) / 200.0;
        // The alternative to a persistent pool: spawn scoped threads per call.
        let scoped = time(budget, || {
            for _ in 0..100 {
                std::thread::scope(|s| {
                    for _ in 1..t {
                        s.spawn(|| std::hint::black_box(0));
                    }
                });
            }
        }) / 100.0;
        println!(
            "== {t} thread(s): pool.run overhead {:.2} µs/call empty, {:.2} µs with {t} × 20 µs tasks (std::thread::scope per call: {:.2} µs)",
            per_call * 1e6,
            (busy - work.as_secs_f64()) * 1e6,
            scoped * 1e6
        );
        for kern in &kernels {
            for &(m, k, n) in linear_shapes.iter().filter(|s| !only_gemm || s.0 > 1000) {
                let x: Vec<f32> = (0..m * k).map(|_| rand()).collect();
                let w: Vec<u16> = (0..n * k)
                    .map(|_| 0x3000 + (rand().abs() * 1000.0) as u16)
                    .collect();
                let w32: Vec<f32> = (0..n * k).map(|_| rand()).collect();
                let bias: Vec<f32> = (0..n).map(|_| rand()).collect();
                let mut out = vec![0.0f32; m * n];
                let flops = 2.0 * (m * k * n) as f64;
                let s16 = time(budget, || {
                    kern.linear(&pool, &x, m, k, Weights::F16(&w), n, Some(&bias), &mut out)
                });
                let s32 = time(budget, || {
                    kern.linear(
                        &pool,
                        &x,
                        m,
                        k,
                        Weights::F32(&w32),
                        n,
                        Some(&bias),
                        &mut out,
                    )
                });
                let extra = if m == 1 {
                    format!(
                        "  ({:.1} / {:.1} GB/s of weights)",
                        (n * k * 2) as f64 / s16 / 1e9,
                        (n * k * 4) as f64 / s32 / 1e9
                    )
                } else {
                    String::new()
                };
                println!(
                    "{:<14} linear m={m:<5} k={k:<5} n={n:<6} f16 {:7.1} GFLOP/s {:9.3} ms | f32 {:7.1} GFLOP/s {:9.3} ms{extra}",
                    kern.name(),
                    flops / s16 / 1e9,
                    s16 * 1e3,
                    flops / s32 / 1e9,
                    s32 * 1e3
                );
            }
            if only_gemm {
                continue;
            }
            for &(n_q, n_kv, causal) in &[
                (1500, 1500, None),
                (1, 1500, None),
                (1, 224, Some(223)),
                (100, 100, Some(0)),
            ] {
                let (heads, d) = (6, 64);
                let width = heads * d;
                let shape = AttentionShape {
                    n_q,
                    n_kv,
                    n_head: heads,
                    head_dim: d,
                    q_stride: width,
                    kv_stride: width,
                    kv_head_stride: d,
                    out_stride: width,
                    causal_offset: causal,
                };
                let q: Vec<f32> = (0..n_q * width).map(|_| rand()).collect();
                let kk: Vec<f32> = (0..n_kv * width).map(|_| rand()).collect();
                let v: Vec<f32> = (0..n_kv * width).map(|_| rand()).collect();
                let mut out = vec![0.0f32; n_q * width];
                let s = time(budget, || {
                    kern.attention(&pool, &q, &kk, &v, shape, &mut out)
                });
                let flops = 4.0 * (n_q * n_kv * d * heads) as f64;
                println!(
                    "{:<14} attention n_q={n_q:<5} n_kv={n_kv:<5} 6×64 causal={:<5} {:7.1} GFLOP/s {:9.3} ms",
                    kern.name(),
                    causal.is_some(),
                    flops / s / 1e9,
                    s * 1e3
                );
            }
        }
    }
}
