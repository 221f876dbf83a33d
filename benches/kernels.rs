//! Kernel benchmarks: every weight scheme × every kernel set this CPU has, at
//! Whisper's shapes (tiny: d = 384, FFN 1536; base: d = 512, FFN 2048), for one
//! row (a decoder step, M = 1) and for a whole encoder window (M = 1500).
//!
//! Reading the output:
//! - `linear` throughput is in "elements" = floating-point operations (2·M·N·K),
//!   so criterion's `Gelem/s` reads as GFLOP/s.
//! - Each `linear` id ends in `wB…`: the weight bytes one call reads (codes,
//!   scales, zero-points). For M = 1, GB/s = wB / time — the figure that bounds a
//!   decoder step.
//! - Threads: `SOTTO_BENCH_THREADS` (default: all cores). The id says how many.
//!
//! Whole file: `cargo bench --bench kernels` (a few minutes). One slice:
//! `cargo bench --bench kernels -- 'linear_m1/x86-avx512'`.
//!
//! To keep the run short some combinations are left out: the scalar reference is
//! measured at M = 1 on the FFN-up shapes only (it takes seconds per call at
//! M = 1500), and the VNNI tables (AVX2 VNNI, AVX-512 VNNI) are measured on
//! the int8-activation schemes only (their other kernels are AVX2's and
//! AVX-512's).
//!
//! Int8 × int8 against f16 on every x86 kernel set (criterion filters are
//! regular expressions):
//! `cargo bench --bench kernels -- 'linear_m1(500)?/x86-[^/]*/(f16|int8-row-dyn)/'`.
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use sotto_kernels::schemes::{self, ActQuant, Quantized, Scheme};
use sotto_kernels::{AttentionShape, Isa, Kernels, Pool, Weights};
use std::hint::black_box;
use std::time::Duration;

/// A small deterministic generator (xorshift64*): benchmarks need varied data,
/// not good randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    fn floats(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// A weight format as the model files hold it.
#[derive(Clone, Copy)]
enum Format {
    F16,
    Packed(Scheme, ActQuant),
}

impl Format {
    fn all() -> Vec<Format> {
        let mut v = vec![Format::F16];
        for s in Scheme::ALL {
            // Every scheme also with int8 activations (int8 × int8, low-bit × int8).
            v.push(Format::Packed(s, ActQuant::Float));
            v.push(Format::Packed(s, ActQuant::Dynamic));
        }
        v
    }
    fn name(self) -> String {
        match self {
            Format::F16 => "f16".into(),
            Format::Packed(s, act) => {
                let base = match s {
                    Scheme::Int8Row => "int8-row",
                    Scheme::Int8Tensor => "int8-tensor",
                    Scheme::Int4Sym => "int4-sym",
                    Scheme::Int4Asym => "int4",
                    Scheme::Nf4 => "nf4",
                    Scheme::Nf4Dq => "nf4-dq",
                    Scheme::Int3 => "int3",
                };
                match act {
                    ActQuant::Float => base.into(),
                    _ => format!("{base}-dyn"),
                }
            }
        }
    }
    fn int8_activations(self) -> bool {
        matches!(self, Format::Packed(_, ActQuant::Dynamic))
    }
}

/// One `n × k` weight in `format`, with random codes and plausible scales
/// (Whisper's weights are mostly within ±0.5).
enum Store {
    F16(Vec<u16>),
    Packed(Vec<u8>),
}

impl Store {
    fn new(format: Format, n: usize, k: usize, rng: &mut Rng) -> Store {
        let Format::Packed(scheme, _) = format else {
            return Store::F16(
                rng.floats(n * k, -0.5, 0.5)
                    .into_iter()
                    .map(schemes::f32_to_f16_bits)
                    .collect(),
            );
        };
        let group = group_of(scheme);
        let max = scheme.max_code() as u64;
        let codes = (0..n * k)
            .map(|_| {
                if scheme.is_int8() {
                    // −127..=127 as the i8 bit pattern.
                    ((rng.next() % 255) as i32 - 127) as i8 as u8
                } else {
                    (rng.next() % (max + 1)) as u8
                }
            })
            .collect();
        let n_scales = scheme.n_scales(n, k, group).expect("valid shape");
        let scales = rng.floats(n_scales, 1e-3, 2e-2);
        let zeros = if scheme.has_zeros() {
            rng.floats(n_scales, 0.0, max as f32)
        } else {
            Vec::new()
        };
        let q = Quantized {
            scheme,
            n,
            k,
            group,
            codes,
            scales,
            zeros,
        };
        Store::Packed(schemes::pack(&q).expect("random codes pack"))
    }

    /// Bytes one call reads from the weight.
    fn bytes(&self) -> usize {
        match self {
            Store::F16(w) => 2 * w.len(),
            Store::Packed(b) => b.len(),
        }
    }

    fn weights(&self, format: Format, n: usize, k: usize) -> Weights<'_> {
        match (self, format) {
            (Store::Packed(b), Format::Packed(scheme, act)) => Weights::Packed(
                schemes::view(scheme, n, k, group_of(scheme), b, act).expect("packed view"),
            ),
            (Store::F16(w), _) => Weights::F16(w),
            _ => unreachable!("store made for this format"),
        }
    }
}

fn group_of(scheme: Scheme) -> usize {
    if scheme.is_grouped() {
        schemes::default_group(scheme)
    } else {
        0
    }
}

fn threads() -> usize {
    std::env::var("SOTTO_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Whether (`isa`, `format`) runs code already measured under another ISA
/// (the amx set differs from avx512vnni only in the int8 × int8 GEMM).
fn measured_elsewhere(isa: Isa, format: Format) -> bool {
    let int8_x_int8 = matches!(
        format,
        Format::Packed(Scheme::Int8Row | Scheme::Int8Tensor, ActQuant::Dynamic)
    );
    match isa {
        Isa::Avx2Vnni | Isa::Avx512Vnni => !format.int8_activations(),
        Isa::Avx512Amx => !int8_x_int8,
        _ => false,
    }
}

/// Linear-layer shapes (n outputs, k inputs): FFN up and FFN down of tiny and base.
const SHAPES: [(&str, usize, usize); 4] = [
    ("tiny-ffn-up", 1536, 384),
    ("tiny-ffn-down", 384, 1536),
    ("base-ffn-up", 2048, 512),
    ("base-ffn-down", 512, 2048),
];

fn bench_linear(c: &mut Criterion) {
    let t = threads();
    let pool = Pool::new(t);
    let mut rng = Rng(0x5eed_0001);
    for m in [1usize, 1500] {
        let mut g = c.benchmark_group(format!("linear_m{m}"));
        g.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(10);
        if m > 1 {
            // Tens of milliseconds per call: the same iteration count per sample.
            g.sampling_mode(SamplingMode::Flat);
        }
        for (label, n, k) in SHAPES {
            let x = rng.floats(m * k, -1.0, 1.0);
            let bias = rng.floats(n, -0.1, 0.1);
            let mut out = vec![0f32; m * n];
            for format in Format::all() {
                let store = Store::new(format, n, k, &mut rng);
                let w = store.weights(format, n, k);
                g.throughput(Throughput::Elements((2 * m * n * k) as u64));
                for kern in Kernels::available() {
                    let isa = kern.isa();
                    if measured_elsewhere(isa, format)
                        || (isa == Isa::Scalar && (m > 1 || !label.ends_with("up")))
                    {
                        continue;
                    }
                    let id = format!(
                        "{}/{}/{label}_n{n}_k{k}_t{t}_wB{}",
                        kern.name(),
                        format.name(),
                        store.bytes()
                    );
                    g.bench_function(id, |b| {
                        b.iter(|| {
                            kern.linear(&pool, black_box(&x), m, k, w, n, Some(&bias), &mut out);
                            black_box(&out);
                        })
                    });
                }
            }
        }
        g.finish();
    }
}

/// Attention at Whisper's shapes: the encoder's self-attention over a window and
/// one decoder step's cross-attention over it, with f32 and (as the decoder
/// stores them) f16 K/V (FLOPs: 4·n_q·n_kv·d). For context, the f16 GEMM's
/// rate is `linear_m1500/<isa>/f16/...` in the same run.
fn bench_attention(c: &mut Criterion) {
    let t = threads();
    let pool = Pool::new(t);
    let mut rng = Rng(0x5eed_0002);
    let mut g = c.benchmark_group("attention");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat);
    // (label, n_q, n_kv, heads, d)
    let cases = [
        ("tiny-encoder-self", 1500, 1500, 6, 384),
        ("tiny-decoder-cross", 1, 1500, 6, 384),
        ("base-encoder-self", 1500, 1500, 8, 512),
        ("base-decoder-cross", 1, 1500, 8, 512),
    ];
    for (label, n_q, n_kv, heads, d) in cases {
        let q = rng.floats(n_q * d, -1.0, 1.0);
        let kv = rng.floats(n_kv * 2 * d, -1.0, 1.0);
        let kv16: Vec<u16> = kv.iter().map(|&x| schemes::f32_to_f16_bits(x)).collect();
        let mut out = vec![0f32; n_q * d];
        let shape = AttentionShape {
            n_q,
            n_kv,
            n_head: heads,
            head_dim: d / heads,
            q_stride: d,
            kv_stride: 2 * d,
            kv_head_stride: d / heads,
            out_stride: d,
            causal_offset: None,
        };
        g.throughput(Throughput::Elements((4 * n_q * n_kv * d) as u64));
        for kern in Kernels::available() {
            if matches!(kern.isa(), Isa::Avx2Vnni | Isa::Avx512Vnni | Isa::Avx512Amx)
                || (kern.isa() == Isa::Scalar && n_q > 1)
            {
                continue; // AVX2's / AVX-512's code again; the scalar encoder case takes seconds
            }
            g.bench_function(format!("{}/{label}_t{t}", kern.name()), |b| {
                b.iter(|| {
                    kern.attention(&pool, black_box(&q), &kv, &kv[d..], shape, &mut out);
                    black_box(&out);
                })
            });
            if n_q == 1 {
                // The decoder keeps its cross K/V as f16: half the bytes per step.
                let kv16 = &kv16;
                g.bench_function(format!("{}/{label}-f16kv_t{t}", kern.name()), |b| {
                    b.iter(|| {
                        kern.attention_f16(&pool, black_box(&q), kv16, &kv16[d..], shape, &mut out);
                        black_box(&out);
                    })
                });
            }
        }
    }
    g.finish();
}

/// Layer norm and GELU over an encoder window of tiny (1500 × 384, 1500 × 1536).
fn bench_elementwise(c: &mut Criterion) {
    let mut rng = Rng(0x5eed_0003);
    let mut g = c.benchmark_group("elementwise");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    let (rows, d) = (1500, 384);
    let x = rng.floats(rows * d, -2.0, 2.0);
    let gamma = rng.floats(d, 0.5, 1.5);
    let beta = rng.floats(d, -0.1, 0.1);
    let mut out = vec![0f32; rows * d];
    let act = rng.floats(rows * 4 * d, -3.0, 3.0);
    for kern in Kernels::available() {
        if matches!(kern.isa(), Isa::Avx2Vnni | Isa::Avx512Vnni | Isa::Avx512Amx) {
            continue; // AVX2's / AVX-512's code
        }
        g.throughput(Throughput::Elements((rows * d) as u64));
        g.bench_function(format!("{}/layer_norm_{rows}x{d}", kern.name()), |b| {
            b.iter(|| {
                kern.layer_norm(black_box(&x), d, &gamma, &beta, &mut out);
                black_box(&out);
            })
        });
        g.throughput(Throughput::Elements((rows * 4 * d) as u64));
        g.bench_function(format!("{}/gelu_{rows}x{}", kern.name(), 4 * d), |b| {
            // A fresh copy of the input per call (not timed): GELU works in place.
            b.iter_batched_ref(
                || act.clone(),
                |buf| kern.gelu(black_box(buf)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_linear, bench_attention, bench_elementwise);
criterion_main!(benches);
