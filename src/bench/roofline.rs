//! `sotto bench --roofline`: this machine's ceilings measured with sotto's own
//! probes (sotto-kernels' `probe`), every kernel family at Whisper's shapes
//! and every stage of the loaded model against them, and the per-window and
//! per-token floors that follow.
//!
//! The roof of an operation with `ops` operations reading `bytes` is
//! `ops / max(ops / compute, bytes / bandwidth)`: compute is the f32 FMA rate
//! (f16 GEMM, weight-only packed layers, attention) or the best int8 dot rate
//! (int8 × int8, low-bit × int8), bandwidth that of the smallest cache level
//! that holds the working set (private levels count once per thread). A
//! model's operations reuse their weights only once the whole pass has gone
//! by, so their working set is at least the pass's weight bytes.
use sotto::{convert, Error, Model, Op, OpTiming, Result};
use sotto_kernels::probe::{ComputeProbe, Roof};
use sotto_kernels::schemes::{self, ActQuant, PackedWeights, Quantized, Scheme};
use sotto_kernels::{AttentionShape, Kernels, Pool, Weights};
use std::collections::HashSet;
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How long a run goes on.
#[derive(Clone, Copy, Debug)]
pub struct Effort {
    /// Repetitions per figure (the median is reported).
    pub reps: usize,
    /// Seconds each timed repetition of a compute probe / a kernel call lasts at least.
    pub min_seconds: f64,
    /// Model widths the kernel families run at.
    pub widths: &'static [usize],
    /// Row counts: a decoder step, beam rows, an encoder window.
    pub rows: &'static [usize],
    /// Encoder tokens the attention family runs at.
    pub audio_ctx: usize,
    /// Single-token decoder steps timed.
    pub tokens: usize,
    /// Measure DRAM (a working set beyond the last cache).
    pub dram: bool,
}

impl Effort {
    pub const FULL: Effort = Effort {
        reps: 5,
        min_seconds: 0.02,
        widths: &[384, 512, 768, 1280],
        rows: &[1, 5, 1500],
        audio_ctx: 1500,
        tokens: 24,
        dram: true,
    };
    /// A test's: a second or two, the same structure.
    pub const QUICK: Effort = Effort {
        reps: 1,
        min_seconds: 0.0005,
        widths: &[384],
        rows: &[1, 5, 64],
        audio_ctx: 64,
        tokens: 2,
        dram: false,
    };
}

/// Cache sizes in bytes: L1d and L2 per core, L3 shared.
#[derive(Clone, Copy, Debug)]
pub struct Caches {
    pub l1: usize,
    pub l2: usize,
    pub l3: usize,
}

impl Caches {
    /// From Linux's sysfs for cpu0, else 32 KiB / 1 MiB / 8 MiB.
    pub fn detect() -> Caches {
        let mut c = Caches {
            l1: 32 << 10,
            l2: 1 << 20,
            l3: 8 << 20,
        };
        let base = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
        for i in 0..8 {
            let dir = base.join(format!("index{i}"));
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
            let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
            else {
                continue;
            };
            let Some(bytes) = parse_size(size.trim()) else {
                continue;
            };
            match (level.trim(), kind.trim()) {
                ("1", "Data") => c.l1 = bytes,
                ("2", _) => c.l2 = bytes,
                ("3", _) => c.l3 = bytes,
                _ => {}
            }
        }
        c
    }
}

/// "48K", "2048K", "32M" → bytes.
fn parse_size(s: &str) -> Option<usize> {
    let (num, mul) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().map(|n| n * mul)
}

/// One memory level's read bandwidth.
#[derive(Clone, Debug)]
pub struct Level {
    pub name: &'static str,
    /// Bytes the level holds for `threads` threads (private levels × threads);
    /// `usize::MAX` for DRAM.
    pub capacity: usize,
    /// Bytes each thread read per pass in the probe.
    pub probe_bytes: usize,
    pub bw_1: f64,
    pub bw_n: f64,
}

impl Level {
    /// The bandwidth roof: all threads', or one thread's where that was higher.
    pub fn bw(&self) -> f64 {
        self.bw_n.max(self.bw_1)
    }
}

#[derive(Clone, Debug)]
pub struct Compute {
    pub name: &'static str,
    pub roof: Roof,
    pub rate_1: f64,
    pub rate_n: f64,
}

/// The machine's ceilings for one kernel set and thread count.
#[derive(Clone, Debug)]
pub struct Ceilings {
    pub kernels: &'static str,
    pub threads: usize,
    pub caches: Caches,
    pub compute: Vec<Compute>,
    pub levels: Vec<Level>,
}

fn measure_compute(p: ComputeProbe, one: &Pool, all: &Pool, e: &Effort) -> Compute {
    // Size the iterations so that a repetition lasts `min_seconds`.
    let probe = p.rate(one, 1000, 1);
    let iters = ((probe * e.min_seconds) / p.ops_per_iter as f64).max(1000.0) as u64;
    Compute {
        name: p.name,
        roof: p.roof,
        rate_1: p.rate(one, iters, e.reps),
        rate_n: p.rate(all, iters, e.reps),
    }
}

impl Ceilings {
    pub fn measure(kernels: &Kernels, pool: &Pool, caches: Caches, e: &Effort) -> Ceilings {
        let one = Pool::new(1);
        let n = pool.threads();
        let mut compute = vec![measure_compute(kernels.fma_probe(), &one, pool, e)];
        for &p in kernels.int8_probes() {
            compute.push(measure_compute(p, &one, pool, e));
        }
        // Working sets well inside each level (half of it); for L3 at most
        // 16 MiB per thread (what a VM reports as L3 may be more than the
        // part of it this core really gets) but past the thread's L2; DRAM
        // four times the L3 (at least 64 MiB, at most 512 MiB per thread).
        let l3_set = (caches.l3 / 2 / n).min(16 << 20).max(3 * caches.l2 / 2);
        let mut sets = vec![
            ("L1", caches.l1 * n, caches.l1 / 2),
            ("L2", caches.l2 * n, caches.l2 / 2),
            ("L3", caches.l3, l3_set),
        ];
        if e.dram {
            let dram = (4 * caches.l3 / n).clamp(64 << 20, 512 << 20);
            sets.push(("DRAM", usize::MAX, dram));
        }
        // Each repetition reads at least this much per thread.
        let min_bytes = |set: usize| set.max(if e.dram { 64 << 20 } else { 4 << 20 });
        let levels = sets
            .into_iter()
            .map(|(name, capacity, set)| Level {
                name,
                capacity,
                probe_bytes: set,
                bw_1: kernels.read_rate(&one, set, min_bytes(set), e.reps),
                bw_n: kernels.read_rate(pool, set, min_bytes(set) * n, e.reps),
            })
            .collect();
        Ceilings {
            kernels: kernels.name(),
            threads: n,
            caches,
            compute,
            levels,
        }
    }

    /// The compute roof (ops/s) for a kind of arithmetic: the best rate of
    /// its probes with all threads — or with one, where other load on the
    /// machine held all threads below that.
    pub fn compute_roof(&self, roof: Roof) -> f64 {
        self.compute
            .iter()
            .filter(|c| c.roof == roof)
            .map(|c| c.rate_n.max(c.rate_1))
            .fold(0.0, f64::max)
    }

    /// The smallest level that holds `working_set` (the last one otherwise).
    pub fn level_for(&self, working_set: f64) -> &Level {
        self.levels
            .iter()
            .find(|l| working_set <= l.capacity as f64)
            .unwrap_or_else(|| self.levels.last().expect("at least L1"))
    }

    /// The roofline time of `ops` operations of kind `roof` reading `bytes`
    /// from the level that holds `working_set`, and that level's name.
    pub fn floor(&self, roof: Roof, ops: f64, bytes: f64, working_set: f64) -> (f64, &'static str) {
        let level = self.level_for(working_set);
        let t_compute = ops / self.compute_roof(roof);
        let t_memory = bytes / level.bw();
        (t_compute.max(t_memory), level.name)
    }
}

/// One measured row: a kernel family at a shape, or a model stage.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub roof: Roof,
    /// Operations (a multiply-add counts 2) and bytes read/written per call.
    pub ops: f64,
    pub bytes: f64,
    /// Measured seconds per call (per window / token for stages).
    pub seconds: f64,
    /// Roofline seconds per call.
    pub floor_seconds: f64,
    /// The memory level of the roof, and whether compute or memory sets it.
    pub level: &'static str,
    pub compute_bound: bool,
}

impl Row {
    pub fn achieved_gops(&self) -> f64 {
        self.ops / self.seconds / 1e9
    }
    pub fn achieved_gbs(&self) -> f64 {
        self.bytes / self.seconds / 1e9
    }
    /// The roof as a rate (GOP/s); for rows without arithmetic, GB/s.
    pub fn roof_rate(&self) -> f64 {
        if self.ops > 0.0 {
            self.ops / self.floor_seconds / 1e9
        } else {
            self.bytes / self.floor_seconds / 1e9
        }
    }
    #[cfg(test)]
    pub fn achieved_rate(&self) -> f64 {
        if self.ops > 0.0 {
            self.achieved_gops()
        } else {
            self.achieved_gbs()
        }
    }
    pub fn intensity(&self) -> f64 {
        self.ops / self.bytes
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "roof": roof_name(self.roof),
            "ops": self.ops,
            "bytes": self.bytes,
            "ms": self.seconds * 1e3,
            "floor_ms": self.floor_seconds * 1e3,
            "achieved_gops": self.achieved_gops(),
            "achieved_gbs": self.achieved_gbs(),
            "roof_gops": if self.ops > 0.0 { Some(self.roof_rate()) } else { None },
            "intensity": self.intensity(),
            "level": self.level,
            "bound": if self.compute_bound { "compute" } else { "memory" },
        })
    }
}

fn roof_name(r: Roof) -> &'static str {
    match r {
        Roof::F32 => "f32",
        Roof::Int8 => "int8",
    }
}

/// Weight bytes of a kernel view (every plane of a packed weight).
pub fn weight_bytes(w: &Weights) -> usize {
    match w {
        Weights::F32(w) => 4 * w.len(),
        Weights::F16(w) => 2 * w.len(),
        Weights::Packed(p) => p.planes.iter().map(|p| p.len()).sum(),
    }
}

/// The arithmetic a linear layer with weight `w` runs on.
pub fn linear_roof(w: &Weights) -> Roof {
    match w {
        Weights::Packed(PackedWeights {
            act: ActQuant::Dynamic | ActQuant::Static(_),
            ..
        }) => Roof::Int8,
        _ => Roof::F32,
    }
}

/// (ops, bytes) of `out[m × n] = x[m × k] · wᵀ + b`.
fn linear_cost(m: usize, n: usize, k: usize, w: &Weights) -> (f64, f64) {
    let ops = 2.0 * (m * n * k) as f64;
    let bytes = weight_bytes(w) as f64 + 4.0 * (m * k + m * n + n) as f64;
    (ops, bytes)
}

/// (ops, bytes) of attention: two products over every (query, key) pair.
fn attention_cost(s: &AttentionShape, kv_f16: bool) -> (f64, f64) {
    let width = (s.n_head * s.head_dim) as f64;
    let pairs: usize = (0..s.n_q).map(|i| s.keys_for_query(i)).sum();
    let ops = 4.0 * pairs as f64 * width;
    let kv_bytes = if kv_f16 { 2.0 } else { 4.0 };
    let bytes = 8.0 * s.n_q as f64 * width + 2.0 * kv_bytes * s.n_kv as f64 * width;
    (ops, bytes)
}

/// Median seconds per call of `f`, each repetition calling it often enough to
/// last `min_seconds` (after one warm-up call that also sizes the count).
fn time_call(e: &Effort, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let calls = ((e.min_seconds / once).ceil() as usize).clamp(1, 10_000);
    let mut v: Vec<f64> = (0..e.reps.max(1))
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.elapsed().as_secs_f64() / calls as f64
        })
        .collect();
    super::median(std::mem::take(&mut v))
}

/// A small deterministic generator for weights and activations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn floats(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale)
            .collect()
    }
}

/// A kernel family: how its weights are stored and its activations taken.
#[derive(Clone, Copy)]
struct Family {
    name: &'static str,
    /// `None`: f16 weights.
    packed: Option<(Scheme, ActQuant)>,
}

const FAMILIES: [Family; 6] = [
    Family {
        name: "f16",
        packed: None,
    },
    Family {
        name: "int8×int8",
        packed: Some((Scheme::Int8Row, ActQuant::Dynamic)),
    },
    Family {
        name: "int4 w-only",
        packed: Some((Scheme::Int4Asym, ActQuant::Float)),
    },
    Family {
        name: "nf4 w-only",
        packed: Some((Scheme::Nf4, ActQuant::Float)),
    },
    Family {
        name: "int3 w-only",
        packed: Some((Scheme::Int3, ActQuant::Float)),
    },
    Family {
        name: "int4×int8",
        packed: Some((Scheme::Int4Asym, ActQuant::Dynamic)),
    },
];

/// Random weights of `family`'s format: f16 bits or packed bytes.
fn make_weights(family: Family, n: usize, k: usize, rng: &mut Rng) -> (Vec<u16>, Vec<u8>) {
    let Some((scheme, _)) = family.packed else {
        let w = rng.floats(n * k, 0.5);
        return (
            w.into_iter().map(schemes::f32_to_f16_bits).collect(),
            Vec::new(),
        );
    };
    let group = group_of(scheme);
    let max = scheme.max_code() as u64;
    let codes = (0..n * k)
        .map(|_| {
            if scheme.is_int8() {
                ((rng.next() % 255) as i32 - 127) as i8 as u8
            } else {
                (rng.next() % (max + 1)) as u8
            }
        })
        .collect();
    let n_scales = scheme.n_scales(n, k, group).unwrap_or(0);
    let scales = rng
        .floats(n_scales, 0.01)
        .into_iter()
        .map(|s| s.abs() + 1e-3)
        .collect();
    let zeros = if scheme.has_zeros() {
        rng.floats(n_scales, max as f32 / 2.0)
            .into_iter()
            .map(|z| z.abs())
            .collect()
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
    (Vec::new(), schemes::pack(&q).expect("random codes pack"))
}

fn group_of(scheme: Scheme) -> usize {
    if scheme.is_grouped() {
        schemes::default_group(scheme)
    } else {
        0
    }
}

/// Every kernel family at Whisper's widths and row counts, plus attention.
pub fn kernel_rows(kernels: &Kernels, pool: &Pool, c: &Ceilings, e: &Effort) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut rng = Rng(0x5eed_0014);
    for &d in e.widths {
        for (shape, n, k) in [("d×d", d, d), ("ffn-up", 4 * d, d)] {
            let mut out = vec![0f32; e.rows.iter().max().copied().unwrap_or(1) * n];
            let bias = rng.floats(n, 0.1);
            for family in FAMILIES {
                let (f16, packed) = make_weights(family, n, k, &mut rng);
                let w = match family.packed {
                    None => Weights::F16(&f16),
                    Some((scheme, act)) => Weights::Packed(
                        schemes::view(scheme, n, k, group_of(scheme), &packed, act)
                            .expect("packed view of random weights"),
                    ),
                };
                for &m in e.rows {
                    let x = rng.floats(m * k, 1.0);
                    let seconds = time_call(e, || {
                        kernels.linear(pool, &x, m, k, w, n, Some(&bias), &mut out);
                        black_box(&out);
                    });
                    let (ops, bytes) = linear_cost(m, n, k, &w);
                    rows.push(row(
                        c,
                        format!("{} {shape} d={d} M={m}", family.name),
                        linear_roof(&w),
                        ops,
                        bytes,
                        bytes,
                        seconds,
                    ));
                }
            }
        }
        // Attention: the encoder's self-attention over a window (f32 K/V), and
        // the decoder's cross-attention of a step's rows over it (f16 K/V).
        let heads = d / 64;
        let ctx = e.audio_ctx;
        let q = rng.floats(ctx * d, 1.0);
        let kv = rng.floats(ctx * d, 1.0);
        let kv16: Vec<u16> = kv.iter().map(|&v| schemes::f32_to_f16_bits(v)).collect();
        let mut out = vec![0f32; ctx * d];
        for &m in e.rows {
            let n_q = m.min(ctx);
            let kv_f16 = m < ctx;
            // The decoder's cross keys lie head-major (model/cpu.rs `CrossKv`),
            // the encoder's in model-wide rows.
            let (kv_stride, kv_head_stride) = if kv_f16 { (64, ctx * 64) } else { (d, 64) };
            let shape = AttentionShape {
                n_q,
                n_kv: ctx,
                n_head: heads,
                head_dim: 64,
                q_stride: d,
                kv_stride,
                kv_head_stride,
                out_stride: d,
                causal_offset: None,
            };
            let seconds = time_call(e, || {
                if kv_f16 {
                    kernels.attention_f16(pool, &q, &kv16, &kv16, shape, &mut out);
                } else {
                    kernels.attention(pool, &q, &kv, &kv, shape, &mut out);
                }
                black_box(&out);
            });
            let (ops, bytes) = attention_cost(&shape, kv_f16);
            let what = if kv_f16 { "f16 K/V" } else { "f32 K/V" };
            rows.push(row(
                c,
                format!("attention {what} d={d} M={n_q} keys={ctx}"),
                Roof::F32,
                ops,
                bytes,
                bytes,
                seconds,
            ));
        }
    }
    rows
}

fn row(
    c: &Ceilings,
    name: String,
    roof: Roof,
    ops: f64,
    bytes: f64,
    working_set: f64,
    seconds: f64,
) -> Row {
    let (floor_seconds, level) = c.floor(roof, ops, bytes, working_set);
    let compute_bound = ops / c.compute_roof(roof) >= floor_seconds * 0.999_999;
    Row {
        name,
        roof,
        ops,
        bytes,
        seconds,
        floor_seconds,
        level,
        compute_bound,
    }
}

// ------------------------------------------------------------------ model stages

/// One profiled operation, owned.
#[derive(Clone, Debug)]
struct Record {
    stage: &'static str,
    name: String,
    roof: Roof,
    ops: f64,
    bytes: f64,
    weight_bytes: f64,
    seconds: f64,
}

/// The stage an operation belongs to.
fn stage_of(t: &OpTiming) -> &'static str {
    let cross_kv = t.name.starts_with("decoder/");
    match (t.encoder, &t.op) {
        (true, Op::Linear { conv: true, .. }) => "encoder conv stem",
        (true, Op::Linear { .. }) if cross_kv => "cross K/V projection",
        (true, Op::Linear { .. }) if t.name.contains("ffn") => "encoder FFN",
        (true, Op::Linear { .. }) => "encoder attention projections",
        (true, Op::Attention { .. }) => "encoder attention",
        (true, _) => "encoder other (norms, stores)",
        (false, Op::Linear { n, .. }) if t.name.contains("embeddings") || *n > 16 * 1024 => {
            "vocab projection"
        }
        (false, Op::Linear { .. }) => "decoder GEMV (projections, FFN)",
        (false, Op::Attention { .. }) => "decoder attention",
        (false, _) => "decoder other (norms, embed, cache)",
    }
}

fn record_of(t: &OpTiming) -> Record {
    let (roof, ops, bytes, weight_bytes) = match &t.op {
        Op::Linear { m, n, k, w, .. } => {
            let (ops, bytes) = linear_cost(*m, *n, *k, w);
            (linear_roof(w), ops, bytes, weight_bytes(w) as f64)
        }
        Op::Attention { shape, kv_f16 } => {
            let (ops, bytes) = attention_cost(shape, *kv_f16);
            (Roof::F32, ops, bytes, 0.0)
        }
        Op::LayerNorm { rows, d } => (Roof::F32, 0.0, 8.0 * (rows * d) as f64, 0.0),
        Op::Embed { rows, d } => (Roof::F32, 0.0, 8.0 * (rows * d) as f64, 0.0),
        Op::StoreKv { floats } => (Roof::F32, 0.0, 6.0 * *floats as f64, 0.0),
    };
    Record {
        stage: stage_of(t),
        name: t.name.to_string(),
        roof,
        ops,
        bytes,
        weight_bytes,
        seconds: t.seconds,
    }
}

/// The loaded model's stages and floors.
pub struct ModelReport {
    pub model: String,
    pub kernels: String,
    pub stages_window: Vec<Row>,
    pub stages_token: Vec<Row>,
    pub encoder_ms: f64,
    pub encoder_floor_ms: f64,
    pub token_ms: f64,
    pub token_floor_ms: f64,
    /// Weight bytes each pass streams (the working set of its operations).
    pub encoder_weight_bytes: f64,
    pub token_weight_bytes: f64,
}

const IDLE: u8 = 0;
const ENCODE: u8 = 1;
const TOKEN: u8 = 2;

/// Per-stage rows of records from `reps` repetitions of a phase. An op's
/// working set: in a decoder step everything it reads comes round again only
/// at the next step (the step's whole traffic); in an encoder window a
/// weight comes round after all the window's weights, while activations were
/// just written by the op before.
fn stage_rows(c: &Ceilings, recs: &[Record], reps: usize, step: bool) -> (Vec<Row>, f64, f64) {
    let mut seen = HashSet::new();
    let pass_weights: f64 = recs
        .iter()
        .filter(|r| r.weight_bytes > 0.0 && seen.insert(r.name.as_str()))
        .map(|r| r.weight_bytes)
        .sum();
    let step_bytes = recs.iter().map(|r| r.bytes).sum::<f64>() / reps.max(1) as f64;
    let working_set = |r: &Record| {
        if step {
            step_bytes
        } else if r.weight_bytes > 0.0 {
            pass_weights + r.bytes - r.weight_bytes
        } else {
            r.bytes
        }
    };
    let mut order: Vec<&'static str> = Vec::new();
    for r in recs {
        if !order.contains(&r.stage) {
            order.push(r.stage);
        }
    }
    let per = reps.max(1) as f64;
    let mut floor_total = 0.0;
    let rows = order
        .into_iter()
        .map(|stage| {
            let mut rw = Row {
                name: stage.to_string(),
                roof: Roof::F32,
                ops: 0.0,
                bytes: 0.0,
                seconds: 0.0,
                floor_seconds: 0.0,
                level: "L1",
                compute_bound: true,
            };
            let mut compute_time = 0.0;
            for r in recs.iter().filter(|r| r.stage == stage) {
                let (f, level) = c.floor(r.roof, r.ops, r.bytes, working_set(r));
                rw.roof = r.roof;
                rw.ops += r.ops / per;
                rw.bytes += r.bytes / per;
                rw.seconds += r.seconds / per;
                rw.floor_seconds += f / per;
                rw.level = level;
                compute_time += r.ops / c.compute_roof(r.roof) / per;
            }
            rw.compute_bound = compute_time >= 0.5 * rw.floor_seconds;
            floor_total += rw.floor_seconds;
            rw
        })
        .collect();
    (rows, floor_total, pass_weights)
}

/// Times the model's encoder window and single-token decoder steps (no
/// profiler: the figures a transcription sees), then profiles one window and
/// the same steps op by op.
pub fn model_report(
    mut model: Model,
    path: &str,
    threads: usize,
    c: &Ceilings,
    e: &Effort,
) -> Result<ModelReport> {
    let cfg = model.config();
    let (n_mels, frames) = (cfg.n_mels as usize, 2 * cfg.n_audio_ctx as usize);
    let sot = cfg.tokens.sot;
    // The cost does not depend on the values: a smooth pattern in the log-mel range.
    let mel: Vec<f32> = (0..n_mels * frames)
        .map(|i| ((i % 97) as f32 / 97.0) - 0.5)
        .collect();
    let mut prefix = vec![sot];
    prefix.extend(400..408u32);
    let next = 1000u32;

    let run = |model: &Model, phase: Option<&AtomicU8>| -> Result<(Vec<f64>, Vec<f64>)> {
        let set = |p: u8| {
            if let Some(ph) = phase {
                ph.store(p, Ordering::Relaxed)
            }
        };
        let mut enc = Vec::new();
        let mut window = None;
        for _ in 0..e.reps.max(1) {
            set(ENCODE);
            let t = Instant::now();
            window = Some(model.encode_window(&mel, threads)?);
            enc.push(t.elapsed().as_secs_f64());
            set(IDLE);
        }
        let window = window.expect("reps ≥ 1");
        let mut state = model.decoder_state();
        model.decode_tokens(&window, &mut state, &prefix, &[], threads)?;
        let mut tok = Vec::new();
        for _ in 0..e.tokens.max(1) {
            set(TOKEN);
            let t = Instant::now();
            black_box(model.decode_tokens(&window, &mut state, &[next], &[0], threads)?);
            tok.push(t.elapsed().as_secs_f64());
            set(IDLE);
        }
        Ok((enc, tok))
    };
    // Warm-up (pool start, page faults on the mapping), then the plain timing.
    run(&model, None)?;
    let (enc, tok) = run(&model, None)?;

    let phase = Arc::new(AtomicU8::new(IDLE));
    let recs: Arc<Mutex<Vec<(u8, Record)>>> = Arc::default();
    {
        let (phase, recs) = (phase.clone(), recs.clone());
        model.set_profiler(Some(Box::new(move |t: &OpTiming| {
            let p = phase.load(Ordering::Relaxed);
            if p != IDLE {
                let mut v = recs.lock().unwrap_or_else(|e| e.into_inner());
                v.push((p, record_of(t)));
            }
        })));
    }
    run(&model, Some(&phase))?;
    model.set_profiler(None);
    let recs = std::mem::take(&mut *recs.lock().unwrap_or_else(|e| e.into_inner()));
    let of = |p: u8| -> Vec<Record> {
        recs.iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, r)| r.clone())
            .collect()
    };
    let (stages_window, enc_floor, enc_w) = stage_rows(c, &of(ENCODE), e.reps.max(1), false);
    let (stages_token, tok_floor, tok_w) = stage_rows(c, &of(TOKEN), e.tokens.max(1), true);
    Ok(ModelReport {
        model: path.to_string(),
        kernels: model.kernels().name().to_string(),
        stages_window,
        stages_token,
        encoder_ms: super::median(enc) * 1e3,
        encoder_floor_ms: enc_floor * 1e3,
        token_ms: super::median(tok) * 1e3,
        token_floor_ms: tok_floor * 1e3,
        encoder_weight_bytes: enc_w,
        token_weight_bytes: tok_w,
    })
}

// ------------------------------------------------------------------ report

pub struct Report {
    /// The 1-minute load average when the run began (Linux): other work on
    /// the cores lowers every figure, ceilings included.
    pub load_avg: Option<f64>,
    pub ceilings: Ceilings,
    pub kernels: Vec<Row>,
    pub model: Option<ModelReport>,
}

fn gb(x: f64) -> f64 {
    x / 1e9
}

fn size(bytes: usize) -> String {
    if bytes == usize::MAX {
        "-".into()
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

impl Report {
    pub fn json(&self) -> String {
        let c = &self.ceilings;
        let rows = |v: &[Row]| v.iter().map(Row::json).collect::<Vec<_>>();
        let model = self.model.as_ref().map(|m| {
            serde_json::json!({
                "model": m.model,
                "kernels": m.kernels,
                "encoder": {
                    "ms_per_window": m.encoder_ms,
                    "floor_ms_per_window": m.encoder_floor_ms,
                    "weight_bytes": m.encoder_weight_bytes,
                    "stages": rows(&m.stages_window),
                },
                "decoder": {
                    "ms_per_token": m.token_ms,
                    "floor_ms_per_token": m.token_floor_ms,
                    "weight_bytes": m.token_weight_bytes,
                    "stages": rows(&m.stages_token),
                },
            })
        });
        serde_json::json!({
            "kernels": c.kernels,
            "threads": c.threads,
            "load_avg_1m": self.load_avg,
            "caches": { "l1d": c.caches.l1, "l2": c.caches.l2, "l3": c.caches.l3 },
            "compute": c.compute.iter().map(|p| serde_json::json!({
                "name": p.name,
                "roof": roof_name(p.roof),
                "gops_1": gb(p.rate_1),
                "gops_n": gb(p.rate_n),
            })).collect::<Vec<_>>(),
            "bandwidth": c.levels.iter().map(|l| serde_json::json!({
                "level": l.name,
                "capacity": if l.capacity == usize::MAX { None } else { Some(l.capacity) },
                "probe_bytes_per_thread": l.probe_bytes,
                "gbs_1": gb(l.bw_1),
                "gbs_n": gb(l.bw_n),
            })).collect::<Vec<_>>(),
            "kernel_rows": rows(&self.kernels),
            "model": model,
        })
        .to_string()
    }

    pub fn table(&self) -> String {
        use std::fmt::Write;
        let c = &self.ceilings;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ceilings ({}; {} thread{}; caches L1d {} L2 {} per core, L3 {})",
            c.kernels,
            c.threads,
            if c.threads == 1 { "" } else { "s" },
            size(c.caches.l1),
            size(c.caches.l2),
            size(c.caches.l3)
        );
        if let Some(l) = self.load_avg {
            let _ = writeln!(
                s,
                "  load average at start {l:.2} (other work on the cores lowers every figure)"
            );
        }
        let _ = writeln!(
            s,
            "  {:<28} {:>12} {:>12}",
            "compute", "1 thread", "all threads"
        );
        for p in &c.compute {
            let _ = writeln!(
                s,
                "  {:<28} {:>7.1} GOP/s {:>7.1} GOP/s",
                format!("{} ({})", p.name, roof_name(p.roof)),
                gb(p.rate_1),
                gb(p.rate_n)
            );
        }
        let _ = writeln!(
            s,
            "  {:<28} {:>12} {:>12}",
            "read bandwidth", "1 thread", "all threads"
        );
        for l in &c.levels {
            let _ = writeln!(
                s,
                "  {:<28} {:>7.1} GB/s  {:>7.1} GB/s",
                format!("{} ({} per thread)", l.name, size(l.probe_bytes)),
                gb(l.bw_1),
                gb(l.bw_n)
            );
        }
        let header = format!(
            "  {:<44} {:>9} {:>9} {:>9} {:>9} {:>6} {:>5}  {}\n",
            "", "ms", "GOP/s", "GB/s", "roof", "% roof", "level", "bound"
        );
        let line = |s: &mut String, r: &Row| {
            let _ = writeln!(
                s,
                "  {:<44} {:>9.3} {:>9.1} {:>9.1} {:>9.1} {:>5.0}% {:>5}  {}",
                r.name,
                r.seconds * 1e3,
                r.achieved_gops(),
                r.achieved_gbs(),
                r.roof_rate(),
                100.0 * r.floor_seconds / r.seconds,
                r.level,
                if r.ops == 0.0 {
                    "memory (roof in GB/s)"
                } else if r.compute_bound {
                    "compute"
                } else {
                    "memory"
                }
            );
        };
        let _ = write!(s, "\nkernel families (per call)\n{header}");
        for r in &self.kernels {
            line(&mut s, r);
        }
        if let Some(m) = &self.model {
            let _ = write!(
                s,
                "\nmodel {} ({}), per encoder window (weights streamed {:.1} MB)\n{header}",
                m.model,
                m.kernels,
                m.encoder_weight_bytes / 1e6
            );
            for r in &m.stages_window {
                line(&mut s, r);
            }
            let _ = write!(
                s,
                "per decoded token (weights streamed {:.1} MB)\n{header}",
                m.token_weight_bytes / 1e6
            );
            for r in &m.stages_token {
                line(&mut s, r);
            }
            let _ = writeln!(
                s,
                "\nencoder  {:.1} ms/window measured, floor {:.1} ms ({:.2}× the floor)",
                m.encoder_ms,
                m.encoder_floor_ms,
                m.encoder_ms / m.encoder_floor_ms
            );
            let _ = writeln!(
                s,
                "decoder  {:.3} ms/token measured, floor {:.3} ms ({:.2}× the floor)",
                m.token_ms,
                m.token_floor_ms,
                m.token_ms / m.token_floor_ms
            );
        }
        s
    }
}

/// The whole roofline: ceilings, kernel families, and the model's stages
/// when `model` is given (name or path, resolved in `home`).
pub fn run(
    model: Option<&str>,
    home: &std::path::Path,
    load: &sotto::LoadOptions,
    threads: usize,
    e: &Effort,
) -> Result<Report> {
    let load_avg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    let model = match model {
        Some(name) => {
            let path = convert::resolve_model(home, name, &|m| eprintln!("{m}"))?;
            Some((Model::load_with(&path, load)?, path))
        }
        None => None,
    };
    let kernels = match &model {
        Some((m, _)) => *m.kernels(),
        None => match &load.kernels {
            Some(k) => Kernels::from_name(k).map_err(Error::Invalid)?,
            None => Kernels::detect(),
        },
    };
    let pool = Pool::new(threads);
    let ceilings = Ceilings::measure(&kernels, &pool, Caches::detect(), e);
    let kernel_rows = kernel_rows(&kernels, &pool, &ceilings, e);
    drop(pool);
    let model = match model {
        Some((m, path)) => Some(model_report(
            m,
            &path.display().to_string(),
            threads,
            &ceilings,
            e,
        )?),
        None => None,
    };
    Ok(Report {
        load_avg,
        ceilings,
        kernels: kernel_rows,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_rows(rows: &[Row]) {
        assert!(!rows.is_empty());
        for r in rows {
            assert!(r.seconds > 0.0, "{}: no time", r.name);
            assert!(r.floor_seconds > 0.0, "{}: no floor", r.name);
            assert!(
                r.roof_rate() > 0.0 && r.roof_rate().is_finite(),
                "{}",
                r.name
            );
            // Faster than the roof by more than timing noise would mean the
            // cost model or a probe is wrong.
            assert!(
                r.achieved_rate() <= 4.0 * r.roof_rate(),
                "{}: {} against a roof of {}",
                r.name,
                r.achieved_rate(),
                r.roof_rate()
            );
        }
    }

    #[test]
    fn quick_roofline_has_a_positive_roof_for_every_row_and_parses_as_json() {
        let e = Effort::QUICK;
        let kernels = Kernels::detect();
        let pool = Pool::new(2);
        let c = Ceilings::measure(&kernels, &pool, Caches::detect(), &e);
        assert!(c.compute_roof(Roof::F32) > 0.0 && c.compute_roof(Roof::Int8) > 0.0);
        assert_eq!(
            c.levels.iter().map(|l| l.name).collect::<Vec<_>>(),
            ["L1", "L2", "L3"]
        );
        assert!(c.levels.iter().all(|l| l.bw_1 > 0.0 && l.bw_n > 0.0));
        let rows = kernel_rows(&kernels, &pool, &c, &e);
        // 6 families × 2 shapes × 3 row counts + attention × 3, per width.
        assert_eq!(rows.len(), e.widths.len() * (6 * 2 * 3 + 3));
        check_rows(&rows);
        let report = Report {
            load_avg: None,
            ceilings: c,
            kernels: rows,
            model: None,
        };
        let v: serde_json::Value = serde_json::from_str(&report.json()).expect("valid JSON");
        assert_eq!(
            v["kernel_rows"].as_array().unwrap().len(),
            report.kernels.len()
        );
        assert!(v["kernel_rows"][0]["roof_gops"].as_f64().unwrap() > 0.0);
        assert!(report.table().contains("kernel families"));
    }

    #[test]
    fn the_level_of_a_working_set_is_the_smallest_that_holds_it() {
        let level = |name, capacity| Level {
            name,
            capacity,
            probe_bytes: 0,
            bw_1: 1.0,
            bw_n: 1.0,
        };
        let c = Ceilings {
            kernels: "test",
            threads: 2,
            caches: Caches {
                l1: 1,
                l2: 2,
                l3: 3,
            },
            compute: vec![Compute {
                name: "x",
                roof: Roof::F32,
                rate_1: 10.0,
                rate_n: 20.0,
            }],
            levels: vec![
                level("L1", 100),
                level("L2", 1000),
                level("DRAM", usize::MAX),
            ],
        };
        assert_eq!(c.level_for(100.0).name, "L1");
        assert_eq!(c.level_for(101.0).name, "L2");
        assert_eq!(c.level_for(1e12).name, "DRAM");
        // 40 ops at 20/s = 2 s against 1 byte at 1 B/s: compute-bound.
        assert_eq!(c.floor(Roof::F32, 40.0, 1.0, 1.0), (2.0, "L1"));
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("junk"), None);
    }

    #[test]
    fn stages_are_named_by_pass_and_tensor() {
        let w = [0u16; 4];
        let lin = |name, encoder, conv, n| OpTiming {
            op: Op::Linear {
                m: 1,
                n,
                k: 2,
                w: Weights::F16(&w),
                conv,
            },
            name,
            encoder,
            seconds: 1.0,
        };
        assert_eq!(
            stage_of(&lin("encoder/conv1/weight", true, true, 2)),
            "encoder conv stem"
        );
        assert_eq!(
            stage_of(&lin("encoder/layer_0/ffn/linear_0/weight", true, false, 2)),
            "encoder FFN"
        );
        assert_eq!(
            stage_of(&lin(
                "decoder/layer_0/attention/linear_1/weight",
                true,
                false,
                2
            )),
            "cross K/V projection"
        );
        assert_eq!(
            stage_of(&lin("decoder/embeddings/weight", false, false, 2)),
            "vocab projection"
        );
        assert_eq!(
            stage_of(&lin("decoder/layer_0/ffn/linear_0/weight", false, false, 2)),
            "decoder GEMV (projections, FFN)"
        );
    }
}
