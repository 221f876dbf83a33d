//! One decoder token's memory traffic at M = 1 on random weights (every
//! layer's projections and FFN, the cross-attention over 1500 f16 keys, the
//! vocabulary projection; Whisper-small's shapes by default), each part's
//! median time and read rate over `tokens` passes. Run two builds' copies
//! alternately for an A/B on a shared machine.
//!
//! cargo run --release -p sotto-kernels --example decode_ab --
//!     [d_model] [layers] [scheme int8|int4] [threads] [tokens]
use sotto_kernels::schemes::{pack, view, ActQuant, Quantized, Scheme};
use sotto_kernels::{AttentionShape, Kernels, Pool, Weights};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let a = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let d: usize = a(1, "768").parse().unwrap();
    let layers: usize = a(2, "12").parse().unwrap();
    let scheme = if a(3, "int8") == "int4" {
        Scheme::Int4Sym
    } else {
        Scheme::Int8Row
    };
    let threads: usize = a(4, "2").parse().unwrap();
    let tokens: usize = a(5, "30").parse().unwrap();
    let kern = Kernels::detect();
    let pool = Pool::new(threads);
    let mut seed = 7u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let g = if scheme.is_int8() { 0 } else { 64 };
    let mut mk = |n: usize, k: usize| {
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
            scheme,
            n,
            k,
            group: g,
            codes,
            scales: (0..ns).map(|i| 0.01 + (i % 7) as f32 * 0.001).collect(),
            zeros: Vec::new(),
        };
        (n, k, pack(&q).unwrap())
    };
    // Per layer: self qkv, self out, cross q, cross out, fc1, fc2.
    let mut mats = Vec::new();
    for _ in 0..layers {
        for (n, k) in [(3 * d, d), (d, d), (d, d), (d, d), (4 * d, d), (d, 4 * d)] {
            mats.push(mk(n, k));
        }
    }
    let vocab = mk(51865, d);
    let kv: Vec<Vec<u16>> = (0..2 * layers)
        .map(|_| {
            (0..1500 * d)
                .map(|_| 0x3000 + (next() % 1000) as u16)
                .collect()
        })
        .collect();
    let x: Vec<f32> = (0..4 * d)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let mut out = vec![0f32; 51865];
    let heads = d / 64;
    let shape = AttentionShape {
        n_q: 1,
        n_kv: 1500,
        n_head: heads,
        head_dim: 64,
        q_stride: d,
        // Head-major, as the model keeps its cross keys.
        kv_stride: 64,
        kv_head_stride: 1500 * 64,
        out_stride: d,
        causal_offset: None,
    };
    let lin = |(n, k, b): &(usize, usize, Vec<u8>), out: &mut [f32]| {
        let w = view(scheme, *n, *k, g, b, ActQuant::Dynamic).unwrap();
        kern.linear(&pool, &x, 1, *k, Weights::Packed(w), *n, None, out);
    };
    // Per part: gemv, attention, vocab.
    let mut times = vec![Vec::new(); 3];
    for t in 0..tokens + 1 {
        {
            let s = Instant::now();
            for m in &mats {
                lin(m, &mut out);
            }
            let t1 = s.elapsed().as_secs_f64();
            let s = Instant::now();
            for l in 0..layers {
                kern.attention_f16(&pool, &x, &kv[2 * l], &kv[2 * l + 1], shape, &mut out);
            }
            let t2 = s.elapsed().as_secs_f64();
            let s = Instant::now();
            lin(&vocab, &mut out);
            let t3 = s.elapsed().as_secs_f64();
            if t > 0 {
                times[0].push(t1);
                times[1].push(t2);
                times[2].push(t3);
            }
        }
    }
    let wbytes: usize = mats.iter().map(|m| m.2.len()).sum();
    println!(
        "d={d} layers={layers} {scheme:?} threads={threads} {} set; weights {:.1} MB, K/V {:.1} MB, vocab {:.1} MB; medians ms (GB/s)",
        kern.name(),
        wbytes as f64 / 1e6,
        (layers * 2 * 1500 * d * 2) as f64 / 1e6,
        vocab.2.len() as f64 / 1e6
    );
    let bytes = [wbytes, layers * 2 * 1500 * d * 2, vocab.2.len()];
    {
        let mut line = String::new();
        let mut tot = 0.0;
        for (p, v) in times.iter_mut().enumerate() {
            v.sort_by(f64::total_cmp);
            let m = v[v.len() / 2];
            tot += m;
            line += &format!(
                "  {} {:.2} ({:.1})",
                ["gemv", "attn", "vocab"][p],
                m * 1e3,
                bytes[p] as f64 / m / 1e9
            );
        }
        println!("{line}  total {:.2}", tot * 1e3);
    }
}
