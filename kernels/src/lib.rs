//! sotto's CPU kernels. The ISA is chosen once ([`Kernels::detect`] or
//! [`Kernels::from_name`]); callers pass the resulting table down. The crate reads no
//! environment variable.
//!
//! Conventions: matrices are row-major; a linear layer's weight `w` is `[n × k]`
//! (one row per output, the input dimension contiguous), as stored in `.sotto` files.
//!
//! Layout of the crate:
//! - [`scalar`]: the reference — simple, obviously correct, and the fallback on
//!   CPUs without a SIMD path.
//! - `canonical.rs`: the constants that fix the f32 operation order every
//!   kernel set follows bit for bit; `tuning.rs`: the drivers' speed
//!   thresholds, kept apart so that tuning can never change a result.
//! - `gemm/`: the one GEMM loop nest (`gemm/driver.rs`) and a packer +
//!   micro-kernel plan per weight family (f16, weight-only packed, int8 ×
//!   int8, low-bit × int8); `packed/`: the packed-weight routing, small-m
//!   tiles and activation quantization; `attention.rs`: attention. All are
//!   ISA-independent drivers written once against the `Simd` / `PackedSimd`
//!   traits; micro-kernel operands are the typed views of `operands.rs`.
//! - `sync_ptr.rs`: the raw-pointer wrappers that cross into pool tasks (the
//!   crate's only `unsafe impl Send/Sync` besides the pool's job slot).
//! - `x86/avx2.rs`, `x86/avx512.rs`, `aarch64/neon.rs`: one file per
//!   instruction set with the micro-kernels, packing routines and element-wise
//!   kernels; `packed_*.rs` / `x86/avxvnni.rs` / `aarch64/dotprod.rs` /
//!   `aarch64/i8mm.rs` the packed-weight decoders and int8 × int8 kernels.
//! - `dispatch.rs`: the table of function pointers, chosen once per process.

#[cfg(target_arch = "aarch64")]
mod aarch64;
// The shared SIMD drivers have users on x86-64 and aarch64 only.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
mod attention;
pub mod canonical;
mod dispatch;
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
mod gemm;
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
mod operands;
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
mod packed;
pub mod pool;
pub mod probe;
pub mod scalar;
pub mod schemes;
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
mod scratch;
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
mod simd;
mod sync_ptr;
mod tuning;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use dispatch::Isa;
pub use pool::Pool;

/// The argument checks of [`Kernels::layer_norm`] and its pooled form.
fn check_layer_norm(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &[f32]) {
    assert!(d > 0, "layer_norm: d must be positive");
    assert!(
        x.len().is_multiple_of(d),
        "layer_norm: x length {} is not a multiple of d={d}",
        x.len()
    );
    assert!(
        gamma.len() >= d && beta.len() >= d,
        "layer_norm: gamma/beta shorter than d={d}"
    );
    assert!(out.len() >= x.len(), "layer_norm: out shorter than x");
}

/// Frees the calling thread's kernel scratch memory. The encoder's attention
/// keeps a head-major copy of K and V there (2 · n_ctx · d floats: 4.6 MB
/// for tiny, 6.1 MB for base), reused window after window; a caller about
/// to spend a while decoding can give it back and pay one re-allocation per
/// window instead of keeping it resident.
pub fn release_thread_scratch() {
    scratch::release()
}

/// A weight matrix borrowed straight from the model file.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    /// Raw IEEE half bits.
    F16(&'a [u16]),
    /// A packed quantized matrix (see [`schemes`]); carries its own `n`, `k`.
    Packed(schemes::PackedWeights<'a>),
}

impl Weights<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) => w.len(),
            Weights::Packed(p) => p.n * p.k,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Shape of a multi-head attention call. Head `h` of a row is the `head_dim`
/// floats starting at `h * head_dim`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub n_q: usize,
    pub n_kv: usize,
    pub n_head: usize,
    pub head_dim: usize,
    /// Floats between consecutive rows of q / k and v / out.
    pub q_stride: usize,
    pub kv_stride: usize,
    /// Elements from head h's part of a K (and V) row to head h + 1's:
    /// `head_dim` where a row holds every head side by side; for K/V stored
    /// head-major (each head's rows contiguous, `kv_stride = head_dim`) the
    /// length of a head's block. A decoder step streams every key of every
    /// head from memory, and a head's slice of each model-wide row is a
    /// strided read the prefetchers follow at half the rate of a contiguous one.
    pub kv_head_stride: usize,
    pub out_stride: usize,
    /// `Some(o)`: query `i` sees keys `0..=i + o` (decoder self-attention).
    pub causal_offset: Option<usize>,
}

impl AttentionShape {
    /// How many keys query row `i` attends to.
    pub fn keys_for_query(&self, i: usize) -> usize {
        match self.causal_offset {
            Some(o) => (i + o + 1).min(self.n_kv),
            None => self.n_kv,
        }
    }
}

/// The kernel table for one instruction set. Obtainable only on a CPU that
/// supports that instruction set, so calling through it is always safe.
#[derive(Clone, Copy)]
pub struct Kernels {
    table: &'static dispatch::Table,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Kernels").field(&self.name()).finish()
    }
}

impl PartialEq for Kernels {
    fn eq(&self, other: &Kernels) -> bool {
        self.isa() == other.isa()
    }
}

impl Kernels {
    /// The best kernels this CPU supports.
    pub fn detect() -> Kernels {
        Kernels::available()
            .pop()
            .expect("the scalar kernels are always available")
    }
    /// The kernels for `name` (a short name such as `avx2` or `neon-dotprod`, or a full [`Kernels::name`]),
    /// with an error saying why when the name is unknown or this CPU lacks it.
    pub fn from_name(name: &str) -> Result<Kernels, String> {
        let isa = Isa::parse(name).ok_or_else(|| {
            format!(
                "{name:?} is not a kernel set; known: {}",
                Isa::ALL.map(|i| i.short_name()).join(", ")
            )
        })?;
        Kernels::for_isa(isa).ok_or_else(|| {
            format!(
                "kernel set {name:?}: this CPU lacks {} (available: {})",
                isa.requirements(),
                Kernels::available()
                    .iter()
                    .map(|k| k.isa().short_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
    /// The kernels for `name` if it is known and this CPU supports it.
    pub fn with_isa(name: &str) -> Option<Kernels> {
        Kernels::for_isa(Isa::parse(name)?)
    }
    /// The kernels for `isa` if this CPU supports it.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        dispatch::table(isa).map(|table| Kernels { table })
    }
    /// Every kernel set this CPU supports, worst (scalar) first.
    pub fn available() -> Vec<Kernels> {
        Isa::ALL
            .iter()
            .filter_map(|&i| Kernels::for_isa(i))
            .collect()
    }
    /// e.g. "x86-avx2-fma", "aarch64-neon-dotprod", "scalar".
    pub fn name(&self) -> &'static str {
        self.table.isa.name()
    }
    pub fn isa(&self) -> Isa {
        self.table.isa
    }
    /// `out[m × n] = x[m × k] · wᵀ + bias`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &self,
        pool: &Pool,
        x: &[f32],
        m: usize,
        k: usize,
        w: Weights,
        n: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        assert!(
            x.len() >= m * k,
            "linear: x has {} floats, need {m}×{k}",
            x.len()
        );
        assert!(
            w.len() >= n * k,
            "linear: w has {} elements, need {n}×{k}",
            w.len()
        );
        assert!(
            out.len() >= m * n,
            "linear: out has {} floats, need {m}×{n}",
            out.len()
        );
        if let Some(b) = bias {
            assert!(
                b.len() >= n,
                "linear: bias has {} floats, need {n}",
                b.len()
            );
        }
        if m == 0 || n == 0 {
            return;
        }
        let out = &mut out[..m * n];
        if k == 0 {
            for row in out.chunks_exact_mut(n) {
                match bias {
                    Some(b) => row.copy_from_slice(&b[..n]),
                    None => row.fill(0.0),
                }
            }
            return;
        }
        let (x, bias) = (&x[..m * k], bias.map(|b| &b[..n]));
        match w {
            Weights::Packed(p) => {
                assert!(
                    p.n == n && p.k == k,
                    "linear: packed weight is {}×{}, call wants {n}×{k}",
                    p.n,
                    p.k
                );
                (self.table.linear_packed)(pool, x, m, k, p, n, bias, out)
            }
            w => (self.table.linear)(pool, x, m, k, w, n, bias, out),
        }
    }
    /// Row-wise layer norm (eps 1e-5) of `x[rows × d]` into `out`.
    pub fn layer_norm(&self, x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
        check_layer_norm(x, d, gamma, beta, out);
        (self.table.layer_norm)(x, d, &gamma[..d], &beta[..d], &mut out[..x.len()])
    }
    /// GELU, erf form, in place.
    pub fn gelu(&self, x: &mut [f32]) {
        (self.table.gelu)(x)
    }
    /// [`Kernels::gelu`] split across the pool in chunks of whole vectors, so
    /// the results equal the serial call's bit for bit (the encoder's FFN
    /// activations are millions of elements: serially they idled the pool).
    pub fn gelu_pooled(&self, pool: &Pool, x: &mut [f32]) {
        const CHUNK: usize = tuning::GELU_CHUNK;
        let n = x.len();
        let tasks = n.div_ceil(CHUNK);
        if tasks <= 1 || pool.threads() == 1 {
            return self.gelu(x);
        }
        let p = sync_ptr::SharedMut::new(x);
        let gelu = self.table.gelu;
        pool.run(tasks, &|t| {
            let (a, b) = (t * CHUNK, ((t + 1) * CHUNK).min(n));
            // Safety: chunks are disjoint and inside x, which outlives the job.
            gelu(unsafe { std::slice::from_raw_parts_mut(p.get().add(a), b - a) })
        });
    }
    /// [`Kernels::layer_norm`] with the rows split across the pool (rows are
    /// independent, so the results equal the serial call's).
    #[allow(clippy::too_many_arguments)]
    pub fn layer_norm_pooled(
        &self,
        pool: &Pool,
        x: &[f32],
        d: usize,
        gamma: &[f32],
        beta: &[f32],
        out: &mut [f32],
    ) {
        const ROWS: usize = tuning::LAYER_NORM_ROWS;
        let rows = x.len().checked_div(d).unwrap_or(0);
        let tasks = rows.div_ceil(ROWS);
        if tasks <= 1 || pool.threads() == 1 {
            return self.layer_norm(x, d, gamma, beta, out);
        }
        // The serial call's checks, once, on the whole arguments.
        check_layer_norm(x, d, gamma, beta, out);
        let p = sync_ptr::SharedMut::new(out);
        let norm = self.table.layer_norm;
        pool.run(tasks, &|t| {
            let (a, b) = (t * ROWS * d, ((t + 1) * ROWS).min(rows) * d);
            // Safety: disjoint row ranges of out, which outlives the job.
            let o = unsafe { std::slice::from_raw_parts_mut(p.get().add(a), b - a) };
            norm(&x[a..b], d, &gamma[..d], &beta[..d], o)
        });
    }
    /// Scaled dot-product attention (scale 1/sqrt(head_dim)) for every head.
    /// Every kernel set gives bit-identical results (see `scalar::attention`).
    pub fn attention(
        &self,
        pool: &Pool,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: AttentionShape,
        out: &mut [f32],
    ) {
        if check_attention(q, k.len(), v.len(), shape, out) {
            (self.table.attention)(pool, q, k, v, shape, out)
        }
    }
    /// [`Kernels::attention`] with K and V as f16 bits (the decoder's caches),
    /// converted in registers; the same result as converting them first.
    pub fn attention_f16(
        &self,
        pool: &Pool,
        q: &[f32],
        k: &[u16],
        v: &[u16],
        shape: AttentionShape,
        out: &mut [f32],
    ) {
        if check_attention(q, k.len(), v.len(), shape, out) {
            (self.table.attention_f16)(pool, q, k, v, shape, out)
        }
    }
    /// The f32 multiply-add probe written with this set's instructions
    /// (the roof of f16 / f32 GEMMs, weight-only packed layers and attention).
    pub fn fma_probe(&self) -> probe::ComputeProbe {
        self.table.probes.fma
    }
    /// A probe per int8 dot instruction this set's int8 × int8 and low-bit ×
    /// int8 kernels use, the main one first.
    pub fn int8_probes(&self) -> &'static [probe::ComputeProbe] {
        self.table.probes.int8
    }
    /// Read bandwidth (bytes/s) with every thread of `pool` reading its own
    /// `bytes_per_thread`, repeated until each repetition has read at least
    /// `min_bytes`; the median of `reps` (see [`probe`]).
    pub fn read_rate(
        &self,
        pool: &Pool,
        bytes_per_thread: usize,
        min_bytes: usize,
        reps: usize,
    ) -> f64 {
        probe::read_rate(self.table.probes, pool, bytes_per_thread, min_bytes, reps)
    }
    #[cfg(test)]
    pub(crate) fn probes(&self) -> &'static probe::Probes {
        self.table.probes
    }
    /// A row's maximum and `Σ e^(x − max)` (see [`scalar::max_exp_sum`] for
    /// the order every set follows): `max + ln(sum)` is the row's
    /// log-sum-exp, e.g. for a log-softmax over a row of logits.
    pub fn max_exp_sum(&self, x: &[f32]) -> (f32, f64) {
        (self.table.max_exp_sum)(x)
    }
    /// Half bits to f32.
    pub fn f16_to_f32(&self, src: &[u16], dst: &mut [f32]) {
        assert!(dst.len() >= src.len(), "f16_to_f32: dst shorter than src");
        (self.table.f16_to_f32)(src, &mut dst[..src.len()])
    }
}

/// Checks attention's argument sizes; false when there is nothing to compute
/// (out is then zeroed where defined).
fn check_attention(
    q: &[f32],
    k_len: usize,
    v_len: usize,
    s: AttentionShape,
    out: &mut [f32],
) -> bool {
    if s.n_q == 0 || s.n_head == 0 || s.head_dim == 0 {
        return false;
    }
    let width = s.n_head * s.head_dim;
    assert!(
        s.q_stride >= width && s.out_stride >= width,
        "attention: q/out stride shorter than n_head×head_dim"
    );
    let need_q = (s.n_q - 1) * s.q_stride + width;
    let need_out = (s.n_q - 1) * s.out_stride + width;
    assert!(
        q.len() >= need_q,
        "attention: q has {} floats, need {need_q}",
        q.len()
    );
    assert!(
        out.len() >= need_out,
        "attention: out has {} floats, need {need_out}",
        out.len()
    );
    if s.n_kv == 0 {
        // Nothing to attend to: define the result as zero.
        for i in 0..s.n_q {
            out[i * s.out_stride..i * s.out_stride + width].fill(0.0);
        }
        return false;
    }
    // Rows and heads may be laid out either way round (see `kv_head_stride`);
    // every element read must lie inside k and v, computed without overflow.
    let need_kv = (s.n_kv - 1)
        .checked_mul(s.kv_stride)
        .and_then(|r| (s.n_head - 1).checked_mul(s.kv_head_stride)?.checked_add(r))
        .and_then(|e| e.checked_add(s.head_dim))
        .expect("attention: K/V extent overflows");
    assert!(
        k_len >= need_kv && v_len >= need_kv,
        "attention: k/v have {k_len}/{v_len} elements, need {need_kv}"
    );
    true
}
