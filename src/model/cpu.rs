//! The CPU backend: weights as kernel views of the mapped file, resolved once at
//! load (packed layouts located, static activation scales read); activations in
//! host buffers owned by each pass; every operation a call into sotto-kernels
//! through the caller's worker pool.
use super::backend::{Attention, Backend, Buf, Epilogue, Keys, Lookup, Pass, PassKind, Rows};
use super::plan::{Desc, Layers, LinearDesc, Loader, NormDesc, TableDesc, WeightKinds};
use crate::format::TensorInfo;
use crate::format::{act_scale_name, packed_dims, ActivationMode, ElementType, ModelFile};
use crate::{Error, Result};
use half::f16;
use half::slice::HalfFloatSliceExt;
use sotto_kernels::schemes::{self, ActQuant};
use sotto_kernels::{AttentionShape, Kernels, Pool, Weights};
use std::sync::Arc;
use std::time::Instant;

/// Sees the input rows of every linear layer: `(weight tensor name, rows × k floats)`.
/// Used to calibrate static activation scales (`sotto quantize --activations static`).
pub type LinearObserver = Box<dyn Fn(&str, &[f32]) + Send + Sync>;

/// Receives every CPU operation's wall time, as it ends (`sotto bench --roofline`
/// turns them into per-stage rates). Without one the backend reads no clock.
pub type OpProfiler = Box<dyn Fn(&OpTiming) + Send + Sync>;

/// What one timed CPU operation did.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    /// `out[m × n] = x[m × k] · wᵀ (+ b)`, its epilogue (GELU, residual add)
    /// included; a convolution is its im2col plus this linear.
    Linear {
        m: usize,
        n: usize,
        k: usize,
        w: Weights<'a>,
        conv: bool,
    },
    Attention {
        shape: AttentionShape,
        /// K and V are f16 (the decoder's caches), else f32.
        kv_f16: bool,
    },
    LayerNorm {
        rows: usize,
        d: usize,
    },
    /// Token and position embedding rows added into the residual.
    Embed {
        rows: usize,
        d: usize,
    },
    /// Rows of K/V rounded to f16 into the self-attention cache or cross K/V.
    StoreKv {
        floats: usize,
    },
}

/// One operation's time (`name`: its weight tensor, `""` for attention and stores).
#[derive(Clone, Copy, Debug)]
pub struct OpTiming<'a> {
    pub op: Op<'a>,
    pub name: &'a str,
    /// Part of an encoder pass (else a decoder pass).
    pub encoder: bool,
    pub seconds: f64,
}

/// A linear layer as the kernels take it.
pub(crate) struct CpuLinear {
    name: Box<str>,
    w: Weights<'static>,
    b: &'static [f32],
    n: usize,
    k: usize,
}

pub(crate) struct CpuNorm {
    gamma: &'static [f32],
    beta: &'static [f32],
}

pub(crate) struct CpuTable {
    name: Box<str>,
    w: Weights<'static>,
    rows: usize,
    cols: usize,
}

pub(crate) struct CpuWeights;

impl WeightKinds for CpuWeights {
    type Linear = CpuLinear;
    type Norm = CpuNorm;
    type Table = CpuTable;
}

/// The network's weights as views of the mapping.
pub(crate) struct CpuModel {
    // Declared first so that it is dropped before the file its views point into.
    layers: Layers<CpuWeights>,
    /// Keeps the mapping (or the owned bytes) alive as long as the views.
    _file: Arc<ModelFile>,
}

/// The kernel view of a weight tensor: f32 / f16 slices of the mapping, or a
/// packed view (every packed layer takes the file's activation mode; static ones
/// their `<prefix>/act_scale`).
pub(crate) fn weights_of<'a>(file: &'a ModelFile, t: &TensorInfo) -> Result<Weights<'a>> {
    let scheme = match t.etype {
        ElementType::F32 => return Ok(Weights::F32(file.f32s(t)?)),
        ElementType::F16 => return Ok(Weights::F16(file.f16s(t)?)),
        other => other.scheme().ok_or_else(|| {
            Error::format(
                &t.name,
                format!("element type {} is not supported", other.name()),
            )
        })?,
    };
    let act = match file.config().activations {
        ActivationMode::None => ActQuant::Float,
        ActivationMode::Dynamic => ActQuant::Dynamic,
        ActivationMode::Static => {
            let name = act_scale_name(&t.name).ok_or_else(|| {
                Error::format(&t.name, "static activations need a `/weight` name")
            })?;
            let s = file.f32s(file.tensor(&name)?)?;
            ActQuant::Static(s.first().copied().unwrap_or(0.0))
        }
    };
    let (n, k) = packed_dims(&t.shape);
    let view = schemes::view(scheme, n, k, t.group as usize, file.bytes(t), act)
        .map_err(|m| Error::format(&t.name, m))?;
    Ok(Weights::Packed(view))
}

/// Resolves views with the lifetime of the file's bytes, which [`CpuModel`] keeps.
struct Resolver<'f> {
    file: &'f ModelFile,
}

// Safety (for the three extensions below): the views borrow the bytes of a
// `ModelFile` held in an `Arc` by the `CpuModel` that owns them: a memory map or
// a heap buffer, whose address does not change when the `ModelFile` moves and
// which is freed only when the last `Arc` goes, after the views (field order).
// The views never leave the crate with the `'static` lifetime.
fn extend_weights(w: Weights<'_>) -> Weights<'static> {
    unsafe { std::mem::transmute::<Weights<'_>, Weights<'static>>(w) }
}
fn extend_floats(x: &[f32]) -> &'static [f32] {
    unsafe { std::mem::transmute::<&[f32], &'static [f32]>(x) }
}

impl Loader<CpuWeights> for Resolver<'_> {
    fn linear(&mut self, d: &LinearDesc) -> Result<CpuLinear> {
        Ok(CpuLinear {
            name: d.w.name.as_str().into(),
            w: extend_weights(weights_of(self.file, &d.w)?),
            b: extend_floats(self.file.f32s(&d.b)?),
            n: d.n,
            k: d.k,
        })
    }
    fn norm(&mut self, d: &NormDesc) -> Result<CpuNorm> {
        Ok(CpuNorm {
            gamma: extend_floats(self.file.f32s(&d.gamma)?),
            beta: extend_floats(self.file.f32s(&d.beta)?),
        })
    }
    fn table(&mut self, d: &TableDesc) -> Result<CpuTable> {
        Ok(CpuTable {
            name: d.t.name.as_str().into(),
            w: extend_weights(weights_of(self.file, &d.t)?),
            rows: d.rows,
            cols: d.cols,
        })
    }
}

impl CpuModel {
    pub fn new(file: Arc<ModelFile>, plan: &Layers<Desc>) -> Result<CpuModel> {
        let layers = plan.map(&mut Resolver { file: &file })?;
        Ok(CpuModel {
            layers,
            _file: file,
        })
    }
}

/// The CPU backend of one call: the model's views, a kernel set, a worker pool
/// and, for calibration, an observer of every linear layer's input.
pub(crate) struct Cpu<'a> {
    pub model: &'a CpuModel,
    pub kernels: &'a Kernels,
    pub pool: &'a Pool,
    pub observer: Option<&'a LinearObserver>,
    pub profiler: Option<&'a OpProfiler>,
}

/// Cross-attention keys and values of one encoded window, per decoder layer,
/// head-major: keys `[heads][n_audio_ctx][d / heads]`, then the values the
/// same. Stored as f16: every decoded token reads all of them (as many bytes
/// as the weights in f32), and attention converts them in registers; each
/// head's block contiguous, so that read streams (`AttentionShape::kv_head_stride`).
pub(crate) struct CrossKv {
    kv: Vec<Vec<f16>>,
}

/// A self-attention cache row block in its own anonymous mapping: the cache is sized for
/// the whole text context, but only the rows a hypothesis reaches are ever written, and
/// the kernel maps a page only when it is first written (`vec![f16::ZERO; n]` writes them
/// all: 42 MiB per hypothesis on medium, whether it decodes 5 tokens or 400; and the
/// heap would hand back dirty memory that calloc must clear).
pub(crate) struct ZeroedF16 {
    map: memmap2::MmapMut,
    n: usize,
}

impl ZeroedF16 {
    fn new(n: usize) -> ZeroedF16 {
        let bytes = (n * std::mem::size_of::<f16>()).max(1);
        let map = memmap2::MmapMut::map_anon(bytes)
            .unwrap_or_else(|e| panic!("mapping {bytes} bytes for a decoder cache: {e}"));
        ZeroedF16 { map, n }
    }
}

impl std::ops::Deref for ZeroedF16 {
    type Target = [f16];
    fn deref(&self) -> &[f16] {
        // SAFETY: the mapping holds at least n f16s, page-aligned, zero-initialised
        // (0.0) and only ever written through `deref_mut`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr() as *const f16, self.n) }
    }
}

impl std::ops::DerefMut for ZeroedF16 {
    fn deref_mut(&mut self) -> &mut [f16] {
        // SAFETY: as in `deref`, borrowed uniquely.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr() as *mut f16, self.n) }
    }
}

impl Clone for ZeroedF16 {
    fn clone(&self) -> ZeroedF16 {
        let mut c = ZeroedF16::new(self.n);
        c.copy_from_slice(self);
        c
    }
}

/// The decoder's self-attention cache for one hypothesis, f16 like [`CrossKv`].
/// Cloning forks it (beam search).
#[derive(Clone)]
pub(crate) struct KvCache {
    k: Vec<ZeroedF16>,
    v: Vec<ZeroedF16>,
    len: usize,
}

impl<'a> Backend for Cpu<'a> {
    type W = CpuWeights;
    type Cross = CrossKv;
    type Cache = KvCache;
    type Pass<'p>
        = CpuPass<'p, 'a>
    where
        Self: 'p;

    fn layers(&self) -> &Layers<CpuWeights> {
        &self.model.layers
    }

    fn pass(&self, kind: PassKind, sizes: &[(Buf, usize)]) -> Result<CpuPass<'_, 'a>> {
        let mut bufs: [Vec<f32>; Buf::COUNT] = Default::default();
        for &(b, n) in sizes {
            bufs[b.index()] = vec![0f32; n];
        }
        Ok(CpuPass {
            cpu: self,
            kind,
            bufs,
        })
    }

    fn new_cross(&self) -> CrossKv {
        let dims = self.dims();
        let size = dims.audio_ctx * 2 * dims.d;
        CrossKv {
            kv: (0..dims.text_layers)
                .map(|_| vec![f16::ZERO; size])
                .collect(),
        }
    }

    fn new_cache(&self) -> KvCache {
        let dims = self.dims();
        let size = dims.text_ctx * dims.d;
        KvCache {
            k: (0..dims.text_layers)
                .map(|_| ZeroedF16::new(size))
                .collect(),
            v: (0..dims.text_layers)
                .map(|_| ZeroedF16::new(size))
                .collect(),
            len: 0,
        }
    }

    fn host_kernels(&self) -> &Kernels {
        self.kernels
    }

    fn cache_len(&self, cache: &KvCache) -> usize {
        cache.len
    }

    fn set_cache_len(&self, cache: &mut KvCache, len: usize) {
        cache.len = len;
    }

    fn copy_cache(&self, src: &KvCache, dst: &mut KvCache, from: usize) {
        let d = self.dims().d;
        let rows = from.min(src.len) * d..src.len * d;
        for (s, t) in src
            .k
            .iter()
            .chain(&src.v)
            .zip(dst.k.iter_mut().chain(&mut dst.v))
        {
            t[rows.clone()].copy_from_slice(&s[rows.clone()]);
        }
        dst.len = src.len;
    }
}

/// One pass on the CPU: its buffers, indexed by [`Buf`].
pub(crate) struct CpuPass<'p, 'a> {
    cpu: &'p Cpu<'a>,
    kind: PassKind,
    bufs: [Vec<f32>; Buf::COUNT],
}

impl CpuPass<'_, '_> {
    fn rows(&self, r: Rows, n: usize, width: usize) -> &[f32] {
        let b = &self.bufs[r.buf.index()];
        debug_assert!(r.stride == width || n <= 1, "CPU rows are dense");
        &b[r.off..r.off + n * width]
    }

    /// Takes `buf` out of the pass, so that it can be written while others are read.
    fn take(&mut self, buf: Buf) -> Vec<f32> {
        std::mem::take(&mut self.bufs[buf.index()])
    }

    fn put(&mut self, buf: Buf, v: Vec<f32>) {
        self.bufs[buf.index()] = v;
    }

    /// A start time when a profiler listens.
    fn clock(&self) -> Option<Instant> {
        self.cpu.profiler.map(|_| Instant::now())
    }

    fn record(&self, start: Option<Instant>, op: Op, name: &str) {
        if let (Some(p), Some(t)) = (self.cpu.profiler, start) {
            p(&OpTiming {
                op,
                name,
                encoder: self.kind == PassKind::Encoder,
                seconds: t.elapsed().as_secs_f64(),
            });
        }
    }

    fn linear_op(l: &CpuLinear, m: usize, conv: bool) -> Op<'static> {
        Op::Linear {
            m,
            n: l.n,
            k: l.k,
            w: l.w,
            conv,
        }
    }

    fn observe(&self, name: &str, x: &[f32]) {
        if let Some(observe) = self.cpu.observer {
            observe(name, x);
        }
    }

    /// [`Pass::linear`] without its timing (the convolution times its own).
    fn linear_untimed(&mut self, l: &CpuLinear, x: Rows, m: usize, y: Rows, epi: Epilogue) {
        match epi {
            Epilogue::Add { spare } => {
                let mut t = self.take(spare);
                self.matmul(l, x, m, &mut t);
                let mut out = self.take(y.buf);
                let dst = &mut out[y.off..y.off + m * l.n];
                dst.iter_mut().zip(&t[..m * l.n]).for_each(|(a, b)| *a += b);
                self.put(y.buf, out);
                self.put(spare, t);
            }
            _ => {
                let mut out = self.take(y.buf);
                self.matmul(l, x, m, &mut out[y.off..]);
                if epi == Epilogue::Gelu {
                    let c = self.cpu;
                    c.kernels
                        .gelu_pooled(c.pool, &mut out[y.off..y.off + m * l.n]);
                }
                self.put(y.buf, out);
            }
        }
    }

    /// `out[m × l.n] = x · Wᵀ + b` with `x` read from `x`.
    fn matmul(&self, l: &CpuLinear, x: Rows, m: usize, out: &mut [f32]) {
        let x = self.rows(x, m, l.k);
        self.observe(&l.name, x);
        let c = self.cpu;
        c.kernels
            .linear(c.pool, x, m, l.k, l.w, l.n, Some(l.b), &mut out[..m * l.n]);
    }
}

impl<'a> Pass<Cpu<'a>> for CpuPass<'_, 'a> {
    fn write_mel(&mut self, mel: &[f32]) {
        self.bufs[Buf::Mel.index()][..mel.len()].copy_from_slice(mel);
    }

    fn release(&mut self, buf: Buf) {
        self.bufs[buf.index()] = Vec::new();
    }

    fn conv(
        &mut self,
        w: &CpuLinear,
        src: Buf,
        channels: usize,
        t_in: usize,
        (ch_stride, t_stride): (usize, usize),
        stride: usize,
        t_out: usize,
        col: Buf,
        out: Rows,
        epi: Epilogue,
    ) {
        let start = self.clock();
        // im2col: column ch·3 + j of row t holds src(ch, stride·t + j − 1), 0 outside.
        let mut c = self.take(col);
        let s = &self.bufs[src.index()];
        let width = channels * 3;
        // Strided iterators, not indexing: a bounds check per element made this
        // single-threaded copy ~2 % of base's encoder.
        debug_assert!(c.len() >= t_out * width);
        debug_assert!(
            channels == 0 || s.len() > (channels - 1) * ch_stride + (t_in - 1) * t_stride
        );
        for (t, row) in c.chunks_exact_mut(width).take(t_out).enumerate() {
            for j in 0..3 {
                let dst = row[j..].iter_mut().step_by(3);
                let at = stride * t + j;
                if (1..=t_in).contains(&at) {
                    let from = s[(at - 1) * t_stride..].iter().step_by(ch_stride);
                    dst.zip(from).for_each(|(d, &v)| *d = v);
                } else {
                    dst.for_each(|d| *d = 0.0);
                }
            }
        }
        self.put(col, c);
        self.linear_untimed(w, Rows::of(col, width), t_out, out, epi);
        self.record(start, Self::linear_op(w, t_out, true), &w.name);
    }

    fn linear(&mut self, l: &CpuLinear, x: Rows, m: usize, y: Rows, epi: Epilogue) {
        let start = self.clock();
        self.linear_untimed(l, x, m, y, epi);
        self.record(start, Self::linear_op(l, m, false), &l.name);
    }

    fn project(&mut self, t: &CpuTable, x: Rows, m: usize, y: Rows) {
        let start = self.clock();
        let mut out = self.take(y.buf);
        let xs = self.rows(x, m, t.cols);
        self.observe(&t.name, xs);
        let c = self.cpu;
        let dst = &mut out[y.off..y.off + m * t.rows];
        c.kernels
            .linear(c.pool, xs, m, t.cols, t.w, t.rows, None, dst);
        self.put(y.buf, out);
        let op = Op::Linear {
            m,
            n: t.rows,
            k: t.cols,
            w: t.w,
            conv: false,
        };
        self.record(start, op, &t.name);
    }

    fn layer_norm(&mut self, n: &CpuNorm, x: Rows, rows: usize, y: Rows) {
        let start = self.clock();
        let d = n.gamma.len();
        let mut out = self.take(y.buf);
        let xs = self.rows(x, rows, d);
        let c = self.cpu;
        let dst = &mut out[y.off..y.off + rows * d];
        c.kernels
            .layer_norm_pooled(c.pool, xs, d, n.gamma, n.beta, dst);
        self.put(y.buf, out);
        self.record(start, Op::LayerNorm { rows, d }, "");
    }

    fn embed(&mut self, t: &CpuTable, rows: Lookup, n: usize, y: Rows, accumulate: bool) {
        let start = self.clock();
        let c = t.cols;
        let out = &mut self.bufs[y.buf.index()];
        let mut packed_row = Vec::new();
        for i in 0..n {
            let r = match rows {
                Lookup::Ids(ids) => ids[i] as usize,
                Lookup::From(first) => first + i,
            };
            let dst = &mut out[y.off + i * y.stride..y.off + i * y.stride + c];
            if !accumulate {
                dst.fill(0.0);
            }
            match t.w {
                Weights::F32(w) => dst
                    .iter_mut()
                    .zip(&w[r * c..(r + 1) * c])
                    .for_each(|(o, x)| *o += x),
                Weights::F16(w) => dst
                    .iter_mut()
                    .zip(&w[r * c..(r + 1) * c])
                    .for_each(|(o, &x)| *o += f16::from_bits(x).to_f32()),
                Weights::Packed(p) => {
                    packed_row.resize(c, 0.0);
                    schemes::dequantize_row(&p, r, &mut packed_row);
                    dst.iter_mut().zip(&packed_row).for_each(|(o, x)| *o += x);
                }
            }
        }
        self.record(start, Op::Embed { rows: n, d: c }, &t.name);
    }

    fn attention(&mut self, q: Rows, kv: Keys<Cpu<'a>>, a: Attention, out: Rows) {
        let start = self.clock();
        let d = self.cpu.dims().d;
        let mut o = self.take(out.buf);
        let qs = &self.bufs[q.buf.index()][q.off..];
        let dst = &mut o[out.off..];
        let dh = d / a.heads;
        // Rows of every head side by side (`kv_stride` apart), unless told.
        let shape = |kv_stride| AttentionShape {
            n_q: a.n_q,
            n_kv: a.n_kv,
            n_head: a.heads,
            head_dim: dh,
            q_stride: q.stride,
            kv_stride,
            kv_head_stride: dh,
            out_stride: out.stride,
            causal_offset: a.causal_offset,
        };
        let c = self.cpu;
        let (shape, kv_f16) = match kv {
            Keys::Rows { kv, v_off } => {
                let ks = &self.bufs[kv.buf.index()][kv.off..];
                let s = shape(kv.stride);
                c.kernels.attention(c.pool, qs, ks, &ks[v_off..], s, dst);
                (s, false)
            }
            Keys::Cache(cache, li) => {
                let n = a.n_kv * d;
                let ks = cache.k[li][..n].reinterpret_cast();
                let vs = cache.v[li][..n].reinterpret_cast();
                c.kernels.attention_f16(c.pool, qs, ks, vs, shape(d), dst);
                (shape(d), true)
            }
            Keys::Cross(cross, li) => {
                let kv: &[u16] = cross.kv[li].reinterpret_cast();
                let ctx = kv.len() / (2 * d);
                let s = AttentionShape {
                    kv_head_stride: ctx * dh,
                    ..shape(dh)
                };
                c.kernels
                    .attention_f16(c.pool, qs, kv, &kv[ctx * d..], s, dst);
                (s, true)
            }
        };
        self.put(out.buf, o);
        self.record(start, Op::Attention { shape, kv_f16 }, "");
    }

    fn store_cache(&mut self, cache: &mut KvCache, layer: usize, pos: usize, kv: Rows, n: usize) {
        let start = self.clock();
        let d = self.cpu.dims().d;
        let src = &self.bufs[kv.buf.index()];
        let (kc, vc) = (&mut cache.k[layer], &mut cache.v[layer]);
        for i in 0..n {
            let row = &src[kv.off + i * kv.stride..kv.off + i * kv.stride + 2 * d];
            kc[(pos + i) * d..(pos + i + 1) * d].convert_from_f32_slice(&row[..d]);
            vc[(pos + i) * d..(pos + i + 1) * d].convert_from_f32_slice(&row[d..]);
        }
        self.record(start, Op::StoreKv { floats: 2 * n * d }, "");
    }

    fn store_cross(&mut self, cross: &mut CrossKv, layer: usize, kv: Rows) {
        let start = self.clock();
        let dims = self.cpu.dims();
        let (d, heads) = (dims.d, dims.text_heads);
        let dh = d / heads;
        let dst = &mut cross.kv[layer];
        let ctx = dst.len() / (2 * d);
        let src = &self.bufs[kv.buf.index()][kv.off..kv.off + dst.len()];
        // Row j's columns [K | V], head h's dh of each, to block (K/V, h) row j.
        for (j, row) in src.chunks_exact(2 * d).enumerate() {
            for (c, part) in row.chunks_exact(dh).enumerate() {
                let at = (c * ctx + j) * dh;
                dst[at..at + dh].convert_from_f32_slice(part);
            }
        }
        let floats = dst.len();
        self.record(start, Op::StoreKv { floats }, "");
    }

    fn cross_weights(
        &mut self,
        q: Rows,
        cross: &CrossKv,
        layer: usize,
        head: usize,
        n_q: usize,
        keys: usize,
        out: Rows,
    ) -> Result<()> {
        let dims = self.cpu.dims();
        let (d, heads) = (dims.d, dims.text_heads);
        let dh = d / heads;
        let kv = &cross.kv[layer];
        let ctx = kv.len() / (2 * d);
        if head >= heads || keys > ctx {
            return Err(crate::Error::Invalid(format!(
                "cross-attention head {head} of {heads}, {keys} keys: out of range"
            )));
        }
        let scale = 1.0 / (dh as f32).sqrt();
        // The head's keys as f32, once for all query rows.
        let k: Vec<f32> = kv[head * ctx * dh..][..keys * dh]
            .iter()
            .map(|x| x.to_f32())
            .collect();
        let mut o = self.take(out.buf);
        let qs = &self.bufs[q.buf.index()];
        for i in 0..n_q {
            let qi = &qs[q.off + i * q.stride + head * dh..][..dh];
            let row = &mut o[out.off + i * out.stride..][..keys];
            for (j, r) in row.iter_mut().enumerate() {
                let kj = &k[j * dh..(j + 1) * dh];
                *r = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for r in row.iter_mut() {
                *r = (*r - max).exp();
                sum += *r;
            }
            row.iter_mut().for_each(|r| *r /= sum);
        }
        self.put(out.buf, o);
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let encoder = self.kind == PassKind::Encoder;
        drop(self);
        if encoder {
            // The encoder's buffers are large and freed now: return them (and the
            // kernels' attention scratch) before decoding the window.
            sotto_kernels::release_thread_scratch();
            release_freed_heap();
        }
        Ok(())
    }

    fn read(self, x: Rows, n: usize, width: usize) -> Result<Vec<Vec<f32>>> {
        let b = &self.bufs[x.buf.index()];
        let rows = (0..n)
            .map(|i| b[x.off + i * x.stride..x.off + i * x.stride + width].to_vec())
            .collect();
        self.finish()?;
        Ok(rows)
    }
}

/// Returns the encoder's freed buffers to the OS. Once glibc's mmap threshold
/// has adapted to them, freed multi-megabyte blocks stay in the heap and
/// would count in the resident set for the whole decoding of the window
/// (about 10 MB for tiny.en, a sixth of its int8 peak).
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // Safety: glibc's malloc_trim only gives back memory that is free.
        unsafe {
            malloc_trim(0);
        }
    }
}
