//! The GPU backend: the weights uploaded once from the mapping ([`GpuModel`]), and
//! [`GpuBackend`], which carries out the network's operations (`model::network`)
//! by recording dispatches against device buffers, submitted when a pass ends.
//! Only what the caller asks for comes back: a greedy step reads a summary of the
//! masked logits, not the logits.
use super::context::{BindCache, Gpu, Phase};
use super::ops::{summary_floats, summary_from, Epilogue as GpuEpilogue, GpuWeight, Kv, Recorder};
use crate::decoding::filters::{Greedy, LogitFilters};
use crate::format::ModelFile;
use crate::model::backend::{
    Attention, Backend, Buf, Epilogue, Keys, Lookup, Pass, PassKind, Rows,
};
use crate::model::cpu::weights_of;
use crate::model::plan::{Desc, Layers, LinearDesc, Loader, NormDesc, TableDesc, WeightKinds};
use crate::{Error, Result};
use sotto_kernels::schemes::ActQuant;
use sotto_kernels::Weights;
use std::sync::{Arc, Mutex};

pub(crate) struct GLinear {
    w: GpuWeight,
    b: wgpu::Buffer,
}

pub(crate) struct GNorm {
    gamma: wgpu::Buffer,
    beta: wgpu::Buffer,
}

pub(crate) struct GpuWeights;

impl WeightKinds for GpuWeights {
    type Linear = GLinear;
    type Norm = GNorm;
    type Table = GpuWeight;
}

/// The network's weights on one device.
pub struct GpuModel {
    pub gpu: Gpu,
    layers: Layers<GpuWeights>,
}

struct Uploader<'a> {
    gpu: &'a Gpu,
    file: &'a ModelFile,
    /// Bytes written since the last submit: staging memory is released at a submit.
    pending: usize,
}

impl Uploader<'_> {
    /// Uploads a weight with the activation mode the CPU uses for it.
    fn weight(&mut self, t: &crate::format::TensorInfo, n: usize, k: usize) -> Result<GpuWeight> {
        let act = match weights_of(self.file, t)? {
            Weights::Packed(v) => v.act,
            _ => ActQuant::Float,
        };
        let bytes = self.file.bytes(t);
        let w = GpuWeight::upload(self.gpu, &t.name, t.etype, n, k, t.group as usize, bytes)
            .and_then(|w| w.with_act(act))
            .map_err(|m| Error::format(&t.name, m))?;
        self.pending += bytes.len();
        if self.pending > 64 << 20 {
            self.gpu.queue.submit([]);
            self.pending = 0;
        }
        Ok(w)
    }
    fn floats(&mut self, t: &crate::format::TensorInfo) -> Result<wgpu::Buffer> {
        Ok(self.gpu.upload_f32(&t.name, self.file.f32s(t)?))
    }
}

impl Loader<GpuWeights> for Uploader<'_> {
    fn linear(&mut self, d: &LinearDesc) -> Result<GLinear> {
        Ok(GLinear {
            w: self.weight(&d.w, d.n, d.k)?,
            b: self.floats(&d.b)?,
        })
    }
    fn norm(&mut self, d: &NormDesc) -> Result<GNorm> {
        Ok(GNorm {
            gamma: self.floats(&d.gamma)?,
            beta: self.floats(&d.beta)?,
        })
    }
    fn table(&mut self, d: &TableDesc) -> Result<GpuWeight> {
        self.weight(&d.t, d.rows, d.cols)
    }
}

impl GpuModel {
    /// Uploads every weight the description `plan` of `file` names; refuses what
    /// the device cannot run (so that `Device::Auto` falls back to the CPU).
    pub(crate) fn new(gpu: Gpu, file: &ModelFile, plan: &Layers<Desc>) -> Result<GpuModel> {
        // Shapes the kernels cannot hold are refused here, not at dispatch.
        super::ops::check_model(&gpu, file.config()).map_err(device_error)?;
        let mut up = Uploader {
            gpu: &gpu,
            file,
            pending: 0,
        };
        let layers = plan.map(&mut up)?;
        gpu.queue.submit([]);
        // Out of device memory shows here, as an error (`auto` then uses the CPU).
        gpu.wait();
        gpu.check().map_err(device_error)?;
        Ok(GpuModel { gpu, layers })
    }

    /// A backend for one transcription (its own scratch buffers).
    pub(crate) fn backend(&self) -> GpuBackend<'_> {
        GpuBackend {
            model: self,
            scratch: Mutex::new(Scratch::default()),
        }
    }
}

/// Activation buffers, grown on demand and kept between passes.
#[derive(Default)]
struct Scratch {
    bufs: [Option<(wgpu::Buffer, usize)>; Buf::COUNT],
    /// Token ids of a decoder step.
    ids: Option<(wgpu::Buffer, usize)>,
    /// A greedy step's token mask and logit summaries.
    mask: Option<(wgpu::Buffer, usize)>,
    summary: Option<(wgpu::Buffer, usize)>,
}

impl Scratch {
    fn all(&self) -> impl Iterator<Item = &wgpu::Buffer> {
        self.bufs
            .iter()
            .chain([&self.ids, &self.mask, &self.summary])
            .flatten()
            .map(|(b, _)| b)
    }
}

/// `slot` holding at least `bytes`, replaced (and its bind groups forgotten) when smaller.
fn ensure<'s>(
    gpu: &Gpu,
    slot: &'s mut Option<(wgpu::Buffer, usize)>,
    label: &str,
    bytes: usize,
) -> &'s wgpu::Buffer {
    if slot.as_ref().is_none_or(|(_, have)| *have < bytes) {
        if let Some((old, _)) = slot.take() {
            gpu.binds.forget(&[&old]);
        }
        *slot = Some((gpu.buffer(label, bytes.max(4) as u64), bytes.max(4)));
    }
    &slot.as_ref().expect("just set").0
}

/// Cross-attention keys and values of one window, all decoder layers:
/// layer `l`, position `j` at `(l·n_audio_ctx + j)·2d`, keys then values; f32, or
/// f16 when `half` ([`Gpu::half_kv`]).
pub struct GpuCross {
    kv: wgpu::Buffer,
    half: bool,
    binds: Arc<BindCache>,
}

impl Drop for GpuCross {
    fn drop(&mut self) {
        self.binds.forget(&[&self.kv]);
    }
}

/// One hypothesis' self-attention cache on the device, laid out as [`GpuCross`]
/// with `n_text_ctx` positions per layer. Cloning copies the buffer (beam search).
pub struct GpuCache {
    kv: wgpu::Buffer,
    half: bool,
    bytes: u64,
    len: usize,
    device: wgpu::Device,
    queue: wgpu::Queue,
    binds: Arc<BindCache>,
}

impl Drop for GpuCache {
    fn drop(&mut self) {
        self.binds.forget(&[&self.kv]);
    }
}

impl Clone for GpuCache {
    fn clone(&self) -> GpuCache {
        let kv = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kv cache"),
            size: self.bytes,
            usage: self.kv.usage(),
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&self.kv, 0, &kv, 0, self.bytes);
        self.queue.submit([enc.finish()]);
        GpuCache {
            kv,
            half: self.half,
            bytes: self.bytes,
            len: self.len,
            device: self.device.clone(),
            queue: self.queue.clone(),
            binds: self.binds.clone(),
        }
    }
}

/// [`GpuModel`] as a [`Backend`]: activations and caches stay on the device.
pub(crate) struct GpuBackend<'m> {
    model: &'m GpuModel,
    scratch: Mutex<Scratch>,
}

impl Drop for GpuBackend<'_> {
    /// The scratch buffers go with the backend: so do the bind groups naming them.
    fn drop(&mut self) {
        let s = std::mem::take(self.scratch.get_mut().unwrap_or_else(|e| e.into_inner()));
        let gone: Vec<&wgpu::Buffer> = s.all().collect();
        self.model.gpu.binds.forget(&gone);
    }
}

/// A failure of the device (out of memory, lost) as sotto's error.
pub(crate) fn device_error(message: String) -> Error {
    Error::Device(message)
}

impl<'m> Backend for GpuBackend<'m> {
    type W = GpuWeights;
    type Cross = GpuCross;
    type Cache = GpuCache;
    type Pass<'p>
        = GpuPass<'p, 'm>
    where
        Self: 'p;

    fn layers(&self) -> &Layers<GpuWeights> {
        &self.model.layers
    }

    fn pass(&self, kind: PassKind, sizes: &[(Buf, usize)]) -> Result<GpuPass<'_, 'm>> {
        let g = &self.model.gpu;
        let mut s = std::mem::take(&mut *self.scratch.lock().unwrap_or_else(|e| e.into_inner()));
        for &(b, n) in sizes {
            ensure(g, &mut s.bufs[b.index()], "activations", n * 4);
        }
        let mut rec = Recorder::new(g);
        rec.set_phase(match kind {
            PassKind::Encoder => Phase::Encoder,
            PassKind::Decoder => Phase::Decode,
        });
        Ok(GpuPass {
            backend: self,
            rec: Some(rec),
            s,
        })
    }

    fn new_cross(&self) -> GpuCross {
        let g = &self.model.gpu;
        let dims = self.dims();
        let half = g.half_kv();
        let n = dims.text_layers * dims.audio_ctx * 2 * dims.d;
        GpuCross {
            kv: g.buffer("cross kv", (n * if half { 2 } else { 4 }) as u64),
            half,
            binds: g.binds.clone(),
        }
    }

    fn new_cache(&self) -> GpuCache {
        let g = &self.model.gpu;
        let dims = self.dims();
        let half = g.half_kv();
        let n = dims.text_layers * dims.text_ctx * 2 * dims.d;
        let bytes = (n * if half { 2 } else { 4 }) as u64;
        GpuCache {
            kv: g.buffer("kv cache", bytes),
            half,
            bytes: bytes.max(4).next_multiple_of(4),
            len: 0,
            device: g.device.clone(),
            queue: g.queue.clone(),
            binds: g.binds.clone(),
        }
    }

    fn cache_len(&self, cache: &GpuCache) -> usize {
        cache.len
    }

    fn set_cache_len(&self, cache: &mut GpuCache, len: usize) {
        cache.len = len;
    }

    fn copy_cache(&self, src: &GpuCache, dst: &mut GpuCache, from: usize) {
        let dims = self.dims();
        let (from, to) = (from.min(src.len), src.len);
        let row = (2 * dims.d * if src.half { 2 } else { 4 }) as u64;
        if to > from {
            let mut enc = src.device.create_command_encoder(&Default::default());
            for li in 0..dims.text_layers {
                let at = (li * dims.text_ctx) as u64 * row + from as u64 * row;
                enc.copy_buffer_to_buffer(&src.kv, at, &dst.kv, at, (to - from) as u64 * row);
            }
            src.queue.submit([enc.finish()]);
        }
        dst.len = src.len;
    }
}

/// One pass: the recorder and the backend's scratch, returned when the pass ends.
pub(crate) struct GpuPass<'p, 'm> {
    backend: &'p GpuBackend<'m>,
    rec: Option<Recorder<'p>>,
    s: Scratch,
}

impl Drop for GpuPass<'_, '_> {
    fn drop(&mut self) {
        let s = std::mem::take(&mut self.s);
        *self
            .backend
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = s;
    }
}

impl<'p> GpuPass<'p, '_> {
    fn gpu(&self) -> &'p Gpu {
        &self.backend.model.gpu
    }
    fn rec(&mut self) -> &mut Recorder<'p> {
        self.rec.as_mut().expect("a pass records until it ends")
    }
    fn buf(&self, b: Buf) -> wgpu::Buffer {
        self.s.bufs[b.index()]
            .as_ref()
            .map(|(b, _)| b.clone())
            .expect("the network opens a pass with the buffers it uses")
    }
    fn rows(&self, r: Rows) -> (wgpu::Buffer, usize, usize) {
        (self.buf(r.buf), r.off, r.stride)
    }
    /// Submits what was recorded and waits for it.
    fn submit(&mut self) -> Result<()> {
        if let Some(rec) = self.rec.take() {
            rec.submit();
        }
        let g = self.gpu();
        g.wait();
        g.check().map_err(device_error)
    }
}

fn gpu_epilogue(epi: Epilogue) -> GpuEpilogue {
    GpuEpilogue {
        gelu: epi == Epilogue::Gelu,
        accumulate: matches!(epi, Epilogue::Add { .. }),
    }
}

macro_rules! rows {
    ($t:expr) => {
        super::ops::Rows::new(&$t.0, $t.1, $t.2)
    };
}

impl<'m> Pass<GpuBackend<'m>> for GpuPass<'_, 'm> {
    fn write_mel(&mut self, mel: &[f32]) {
        let b = self.buf(Buf::Mel);
        self.gpu()
            .queue
            .write_buffer(&b, 0, bytemuck::cast_slice(mel));
    }

    fn conv(
        &mut self,
        w: &GLinear,
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
        let (s, c) = (self.buf(src), self.buf(col));
        self.rec()
            .im2col(&s, channels, t_in, ch_stride, t_stride, stride, t_out, &c);
        self.linear(w, Rows::of(col, channels * 3), t_out, out, epi);
    }

    fn linear(&mut self, w: &GLinear, x: Rows, m: usize, y: Rows, epi: Epilogue) {
        let (x, y) = (self.rows(x), self.rows(y));
        self.rec()
            .linear(&w.w, Some(&w.b), rows!(x), m, rows!(y), gpu_epilogue(epi));
    }

    fn project(&mut self, t: &GpuWeight, x: Rows, m: usize, y: Rows) {
        let (x, y) = (self.rows(x), self.rows(y));
        self.rec().linear(
            t,
            None,
            rows!(x),
            m,
            rows!(y),
            gpu_epilogue(Epilogue::Plain),
        );
    }

    fn layer_norm(&mut self, n: &GNorm, x: Rows, rows: usize, y: Rows) {
        let d = self.backend.dims().d;
        let (x, y) = (self.rows(x), self.rows(y));
        self.rec()
            .layer_norm(&n.gamma, &n.beta, d, rows!(x), rows, rows!(y));
    }

    fn embed(&mut self, t: &GpuWeight, rows: Lookup, n: usize, y: Rows, accumulate: bool) {
        let y = self.rows(y);
        match rows {
            Lookup::Ids(ids) => {
                let g = self.gpu();
                let b = ensure(g, &mut self.s.ids, "ids", ids.len() * 4).clone();
                g.queue.write_buffer(&b, 0, bytemuck::cast_slice(ids));
                self.rec().embed(t, Some(&b), 0, n, accumulate, rows!(y));
            }
            Lookup::From(first) => {
                self.rec().embed(t, None, first, n, accumulate, rows!(y));
            }
        }
    }

    fn attention(&mut self, q: Rows, kv: Keys<GpuBackend<'m>>, a: Attention, out: Rows) {
        let dims = *self.backend.dims();
        let d = dims.d;
        let (q, out) = (self.rows(q), self.rows(out));
        let (buf, k_off, v_off, stride, half) = match kv {
            Keys::Rows { kv, v_off } => {
                (self.buf(kv.buf), kv.off, kv.off + v_off, kv.stride, false)
            }
            Keys::Cache(c, li) => {
                let base = li * dims.text_ctx * 2 * d;
                (c.kv.clone(), base, base + d, 2 * d, c.half)
            }
            Keys::Cross(c, li) => {
                let base = li * dims.audio_ctx * 2 * d;
                (c.kv.clone(), base, base + d, 2 * d, c.half)
            }
        };
        let kv = Kv {
            buf: &buf,
            k_off,
            v_off,
            stride,
            half,
        };
        self.rec().attention(
            rows!(q),
            kv,
            a.n_q,
            a.n_kv,
            a.heads,
            d / a.heads,
            a.causal_offset,
            rows!(out),
        );
    }

    fn store_cache(&mut self, cache: &mut GpuCache, layer: usize, pos: usize, kv: Rows, n: usize) {
        let dims = *self.backend.dims();
        let d = dims.d;
        let src = self.rows(kv);
        let base = layer * dims.text_ctx * 2 * d;
        let dst = super::ops::Rows::new(&cache.kv, base + pos * 2 * d, 2 * d);
        self.rec().store_rows(rows!(src), n, 2 * d, dst, cache.half);
    }

    fn store_cross(&mut self, cross: &mut GpuCross, layer: usize, kv: Rows) {
        let dims = *self.backend.dims();
        let (d, ctx) = (dims.d, dims.audio_ctx);
        let src = self.rows(kv);
        let dst = super::ops::Rows::new(&cross.kv, layer * ctx * 2 * d, 2 * d);
        self.rec()
            .store_rows(rows!(src), ctx, 2 * d, dst, cross.half);
    }

    fn finish(mut self) -> Result<()> {
        self.submit()
    }

    fn read(mut self, x: Rows, n: usize, width: usize) -> Result<Vec<Vec<f32>>> {
        if let Some(rec) = self.rec.take() {
            rec.submit();
        }
        if n == 0 {
            self.gpu().check().map_err(device_error)?;
            return Ok(Vec::new());
        }
        let b = self.buf(x.buf);
        let all = self
            .gpu()
            .try_read_f32(&b, x.off, (n - 1) * x.stride + width)
            .map_err(device_error)?;
        Ok((0..n)
            .map(|i| all[i * x.stride..i * x.stride + width].to_vec())
            .collect())
    }

    /// The logits stay on the device: logits.wgsl reduces the last row (masked by
    /// the filters' value-independent rules) and the probed row; a few hundred
    /// bytes come back, and `LogitFilters::pick` applies the timestamp mass rule.
    fn greedy(
        mut self,
        logits: Rows,
        rows: usize,
        filters: &LogitFilters,
        sampled: &[u32],
        probe: Option<u32>,
        _kernels: &sotto_kernels::Kernels,
    ) -> Result<Greedy> {
        let n_vocab = filters.n_vocab;
        let g = self.gpu();
        // The value-independent filters as a bit mask (kept tokens set).
        let mut row = vec![0f32; n_vocab];
        filters.apply_masks(&mut row, sampled);
        let mut bits = vec![0u32; n_vocab.div_ceil(32)];
        for (i, v) in row.iter().enumerate() {
            if v.is_finite() {
                bits[i / 32] |= 1 << (i % 32);
            }
        }
        let mask = ensure(g, &mut self.s.mask, "mask", bits.len() * 4).clone();
        g.queue.write_buffer(&mask, 0, bytemuck::cast_slice(&bits));
        let per = summary_floats(n_vocab);
        let summary = ensure(g, &mut self.s.summary, "summary", 2 * per * 4).clone();
        let l = self.buf(logits.buf);
        let lrow =
            |slot: usize| super::ops::Rows::new(&l, logits.off + slot * logits.stride, n_vocab);
        let split = filters.tokens.timestamp_begin as usize;
        let last = rows.saturating_sub(1);
        self.rec().summary(
            lrow(last),
            n_vocab,
            Some(&mask),
            split,
            usize::MAX,
            &summary,
            0,
        );
        if let Some(id) = probe {
            self.rec()
                .summary(lrow(0), n_vocab, None, n_vocab, id as usize, &summary, per);
        }
        if let Some(rec) = self.rec.take() {
            rec.submit();
        }
        let n_read = if probe.is_some() { 2 * per } else { per };
        let out = g.try_read_f32(&summary, 0, n_read).map_err(device_error)?;
        let (sum, _) = summary_from(&out[..per], n_vocab);
        let (token, logprob) = filters.pick(&sum);
        let probe = match probe {
            Some(id) if (id as usize) < n_vocab => {
                let (all, value) = summary_from(&out[per..], n_vocab);
                Some(value - all.lse_all())
            }
            Some(_) => Some(f32::NAN),
            None => None,
        };
        Ok(Greedy {
            token,
            logprob,
            probe,
        })
    }
}
