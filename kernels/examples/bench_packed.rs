//! GOP/s and effective GB/s of weight bytes of `linear` with packed weights,
//! per scheme × kernel set, for Whisper's shapes (f16 alongside as the baseline).
//!
//! cargo run --release -p sotto-kernels --example bench_packed --
//!     [--threads 1] [--isa avx2,avx2vnni,avx512,avx512vnni,amx] [--ms 300] [--group 64] [--m 1] [--min]
//!     [--rows R] (the decoder's shapes with R rows, as beam search's hypotheses)
//!     [--only Int4Sym+dyn-act,Nf4+dyn-act] (variants by name; f16 always runs)

use sotto_kernels::schemes::{pack, view, ActQuant, Quantized, Scheme};
use sotto_kernels::{Kernels, Pool, Weights};
use std::time::{Duration, Instant};

/// Median seconds per call of `f`, run repeatedly for about `budget`.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 3 || (start.elapsed() < budget && samples.len() < 1000) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    // --min: the fastest run, steadier than the median on a shared machine.
    if std::env::args().any(|a| a == "--min") {
        samples[0]
    } else {
        samples[samples.len() / 2]
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let threads: usize = arg("--threads").map_or(1, |t| t.parse().unwrap());
    let group: usize = arg("--group").map_or(64, |t| t.parse().unwrap());
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
    // (m, k, n): the encoder's projections and FFN up / down for tiny and base
    // at a window's 1500 rows; the decoder's at m = 1.
    let shapes = [
        (1500, 384, 384),
        (1500, 384, 1536),
        (1500, 1536, 384),
        (1500, 512, 512),
        (1500, 512, 2048),
        (1500, 2048, 512),
        (1, 384, 1536),
        (1, 384, 51864),
        (1, 512, 2048),
    ];
    let mut seed = 1u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pool = Pool::new(threads);
    println!(
        "threads {threads}, group {group}; GOP/s (2·m·k·n / time) and GB/s of weight bytes read"
    );
    let only_m: Option<usize> = arg("--m").map(|m| m.parse().unwrap());
    // --rows R: the decoder's shapes with R rows (beam search's hypotheses).
    let rows: usize = arg("--rows").map_or(1, |r| r.parse().unwrap());
    let shapes = shapes.map(|(m, k, n)| (if m == 1 { rows } else { m }, k, n));
    for &(m, k, n) in shapes.iter().filter(|s| only_m.is_none_or(|m| s.0 == m)) {
        let x: Vec<f32> = (0..m * k)
            .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let bias: Vec<f32> = (0..n).map(|_| 0.1).collect();
        let mut out = vec![0.0f32; m * n];
        let ops = 2.0 * (m * k * n) as f64;
        let mut variants: Vec<(String, Scheme, ActQuant)> = Vec::new();
        for s in Scheme::ALL {
            variants.push((format!("{s:?}"), s, ActQuant::Float));
            variants.push((format!("{s:?}+dyn-act"), s, ActQuant::Dynamic));
        }
        if let Some(only) = arg("--only") {
            variants.retain(|v| only.split(',').any(|o| o == v.0));
        }
        for kern in &kernels {
            let w16: Vec<u16> = (0..n * k)
                .map(|_| 0x3000 + (next() % 1000) as u16)
                .collect();
            let s = time(budget, || {
                kern.linear(
                    &pool,
                    &x,
                    m,
                    k,
                    Weights::F16(&w16),
                    n,
                    Some(&bias),
                    &mut out,
                )
            });
            println!(
                "{:<16} m={m:<5} k={k:<4} n={n:<6} {:<18} {:7.1} GOP/s {:7.1} GB/s {:9.3} ms",
                kern.name(),
                "f16",
                ops / s / 1e9,
                (n * k * 2) as f64 / s / 1e9,
                s * 1e3
            );
            for (name, scheme, act) in &variants {
                let g = if scheme.is_int8() { 0 } else { group };
                let max = scheme.max_code() as u64;
                let codes: Vec<u8> = (0..n * k)
                    .map(|_| {
                        if scheme.is_int8() {
                            ((next() % 255) as i32 - 127) as i8 as u8
                        } else {
                            (next() % (max + 1)) as u8
                        }
                    })
                    .collect();
                let ns = scheme.n_scales(n, k, g).unwrap();
                let q = Quantized {
                    scheme: *scheme,
                    n,
                    k,
                    group: g,
                    codes,
                    scales: (0..ns).map(|i| 0.01 + (i % 7) as f32 * 0.001).collect(),
                    zeros: if scheme.has_zeros() {
                        (0..ns).map(|i| (i % 8) as f32 + 0.5).collect()
                    } else {
                        Vec::new()
                    },
                };
                let bytes = pack(&q).unwrap();
                let w = view(*scheme, n, k, g, &bytes, *act).unwrap();
                let s = time(budget, || {
                    kern.linear(
                        &pool,
                        &x,
                        m,
                        k,
                        Weights::Packed(w),
                        n,
                        Some(&bias),
                        &mut out,
                    )
                });
                println!(
                    "{:<16} m={m:<5} k={k:<4} n={n:<6} {:<18} {:7.1} GOP/s {:7.1} GB/s {:9.3} ms",
                    kern.name(),
                    name,
                    ops / s / 1e9,
                    bytes.len() as f64 / s / 1e9,
                    s * 1e3
                );
            }
        }
    }
}
