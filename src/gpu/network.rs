//! The Whisper network on the device: the weights uploaded once from the mapping,
//! and [`GpuBackend`], the [`Backend`] the decoding loop drives. The layer order and
//! arithmetic follow `model::Network` (encode / cross_kv / decode) step for step.
use super::context::{BindCache, Gpu, Phase};
use super::ops::{
    check_model, summary_floats, summary_from, Epilogue, GpuWeight, Kv, Recorder, Rows,
};
use crate::decoding::filters::{Greedy, LogitFilters};
use crate::format::{ModelConfig, ModelFile, TensorInfo};
use crate::model::{Backend, Linear, Norm, Table};
use crate::{Error, Result};
use sotto_kernels::schemes::ActQuant;
use sotto_kernels::Weights;
use std::sync::{Arc, Mutex};

struct GLinear {
    w: GpuWeight,
    b: Option<wgpu::Buffer>,
}

struct GNorm {
    gamma: wgpu::Buffer,
    beta: wgpu::Buffer,
}

struct EncoderLayer {
    attn_norm: GNorm,
    qkv: GLinear,
    out: GLinear,
    ffn_norm: GNorm,
    ffn_up: GLinear,
    ffn_down: GLinear,
}

struct DecoderLayer {
    self_norm: GNorm,
    self_qkv: GLinear,
    self_out: GLinear,
    cross_norm: GNorm,
    cross_q: GLinear,
    cross_kv: GLinear,
    cross_out: GLinear,
    ffn_norm: GNorm,
    ffn_up: GLinear,
    ffn_down: GLinear,
}

/// Dimensions the passes need.
#[derive(Clone, Copy)]
struct Dims {
    n_mels: usize,
    audio_ctx: usize,
    text_ctx: usize,
    d: usize,
    audio_heads: usize,
    text_heads: usize,
    n_vocab: usize,
    text_layers: usize,
}

/// The network's weights on one device.
pub struct GpuModel {
    pub gpu: Gpu,
    dims: Dims,
    conv1: GLinear,
    conv2: GLinear,
    enc_pos: GpuWeight,
    enc_layers: Vec<EncoderLayer>,
    enc_norm: GNorm,
    embedding: GpuWeight,
    dec_pos: GpuWeight,
    dec_layers: Vec<DecoderLayer>,
    dec_norm: GNorm,
}

struct Loader<'a> {
    gpu: &'a Gpu,
    file: &'a ModelFile,
    /// Bytes written since the last submit: staging memory is released at a submit.
    pending: usize,
}

impl Loader<'_> {
    fn weight(&mut self, t: &TensorInfo, n: usize, k: usize) -> Result<GpuWeight> {
        let bytes = self.file.bytes(t);
        let w = GpuWeight::upload(self.gpu, &t.name, t.etype, n, k, t.group as usize, bytes)
            .map_err(|m| Error::format(&t.name, m))?;
        self.pending += bytes.len();
        if self.pending > 64 << 20 {
            self.gpu.queue.submit([]);
            self.pending = 0;
        }
        Ok(w)
    }
    fn floats(&mut self, t: &TensorInfo) -> Result<wgpu::Buffer> {
        Ok(self.gpu.upload_f32(&t.name, self.file.f32s(t)?))
    }
    /// The activation mode the CPU uses for this weight (`model::weights_of`).
    fn act(&self, w: Weights) -> ActQuant {
        match w {
            Weights::Packed(v) => v.act,
            _ => ActQuant::Float,
        }
    }
    fn with_act(&self, w: GpuWeight, name: &str, act: ActQuant) -> Result<GpuWeight> {
        w.with_act(act).map_err(|m| Error::format(name, m))
    }
    fn linear(&mut self, prefix: &str, n: usize, k: usize) -> Result<GLinear> {
        let l = Linear::load(self.file, prefix, n, k, true)?;
        let act = self.act(l.weights(self.file));
        let w = self.weight(&l.w, n, k)?;
        Ok(GLinear {
            w: self.with_act(w, &l.w.name, act)?,
            b: l.b.as_ref().map(|b| self.floats(b)).transpose()?,
        })
    }
    fn norm(&mut self, prefix: &str, d: usize) -> Result<GNorm> {
        let n = Norm::load(self.file, prefix, d)?;
        Ok(GNorm {
            gamma: self.floats(&n.gamma)?,
            beta: self.floats(&n.beta)?,
        })
    }
    fn table(&mut self, name: &str, rows: usize, cols: usize) -> Result<GpuWeight> {
        let t = Table::load(self.file, name, rows, cols)?;
        let act = self.act(t.weights(self.file));
        let w = self.weight(&t.t, rows, cols)?;
        self.with_act(w, name, act)
    }
}

impl GpuModel {
    /// Uploads every weight of `file` (already validated by `model::Network::new`).
    pub fn new(gpu: Gpu, file: &ModelFile) -> Result<GpuModel> {
        let c: &ModelConfig = file.config();
        let dims = Dims {
            n_mels: c.n_mels as usize,
            audio_ctx: c.n_audio_ctx as usize,
            text_ctx: c.n_text_ctx as usize,
            d: c.n_audio_state as usize,
            audio_heads: c.n_audio_head as usize,
            text_heads: c.n_text_head as usize,
            n_vocab: c.n_vocab as usize,
            text_layers: c.n_text_layer as usize,
        };
        let (nm, d) = (dims.n_mels, dims.d);
        check_model(&gpu, c).map_err(|m| Error::Invalid(format!("GPU: {m}")))?;
        let mut l = Loader {
            gpu: &gpu,
            file,
            pending: 0,
        };
        let conv1 = l.linear("encoder/conv1", d, nm * 3)?;
        let conv2 = l.linear("encoder/conv2", d, d * 3)?;
        let enc_pos = l.table("encoder/position_encodings/encodings", dims.audio_ctx, d)?;
        let mut enc_layers = Vec::new();
        for i in 0..c.n_audio_layer {
            let p = format!("encoder/layer_{i}");
            enc_layers.push(EncoderLayer {
                attn_norm: l.norm(&format!("{p}/self_attention/layer_norm"), d)?,
                qkv: l.linear(&format!("{p}/self_attention/linear_0"), 3 * d, d)?,
                out: l.linear(&format!("{p}/self_attention/linear_1"), d, d)?,
                ffn_norm: l.norm(&format!("{p}/ffn/layer_norm"), d)?,
                ffn_up: l.linear(&format!("{p}/ffn/linear_0"), 4 * d, d)?,
                ffn_down: l.linear(&format!("{p}/ffn/linear_1"), d, 4 * d)?,
            });
        }
        let enc_norm = l.norm("encoder/layer_norm", d)?;
        let embedding = l.table("decoder/embeddings/weight", dims.n_vocab, d)?;
        let dec_pos = l.table("decoder/position_encodings/encodings", dims.text_ctx, d)?;
        let mut dec_layers = Vec::new();
        for i in 0..c.n_text_layer {
            let p = format!("decoder/layer_{i}");
            dec_layers.push(DecoderLayer {
                self_norm: l.norm(&format!("{p}/self_attention/layer_norm"), d)?,
                self_qkv: l.linear(&format!("{p}/self_attention/linear_0"), 3 * d, d)?,
                self_out: l.linear(&format!("{p}/self_attention/linear_1"), d, d)?,
                cross_norm: l.norm(&format!("{p}/attention/layer_norm"), d)?,
                cross_q: l.linear(&format!("{p}/attention/linear_0"), d, d)?,
                cross_kv: l.linear(&format!("{p}/attention/linear_1"), 2 * d, d)?,
                cross_out: l.linear(&format!("{p}/attention/linear_2"), d, d)?,
                ffn_norm: l.norm(&format!("{p}/ffn/layer_norm"), d)?,
                ffn_up: l.linear(&format!("{p}/ffn/linear_0"), 4 * d, d)?,
                ffn_down: l.linear(&format!("{p}/ffn/linear_1"), d, 4 * d)?,
            });
        }
        let dec_norm = l.norm("decoder/layer_norm", d)?;
        gpu.queue.submit([]);
        // Out of device memory shows here, as an error (`auto` then uses the CPU).
        gpu.wait();
        gpu.check().map_err(device_error)?;
        Ok(GpuModel {
            gpu,
            dims,
            conv1,
            conv2,
            enc_pos,
            enc_layers,
            enc_norm,
            embedding,
            dec_pos,
            dec_layers,
            dec_norm,
        })
    }

    /// A backend for one transcription (its own scratch buffers).
    pub fn backend(&self) -> GpuBackend<'_> {
        GpuBackend {
            model: self,
            enc: Mutex::new(None),
            dec: Mutex::new(None),
        }
    }
}

/// Encoder activations, allocated on the first window.
struct EncScratch {
    mel: wgpu::Buffer,
    col1: wgpu::Buffer,
    h1: wgpu::Buffer,
    col2: wgpu::Buffer,
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    qkv: wgpu::Buffer,
    att: wgpu::Buffer,
    ffn: wgpu::Buffer,
}

/// Decoder activations for up to `n_text_ctx` new tokens.
struct DecScratch {
    ids: wgpu::Buffer,
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    qkv: wgpu::Buffer,
    att: wgpu::Buffer,
    ffn: wgpu::Buffer,
    /// Logits of a greedy step (2 rows), its token mask and summaries.
    logits: wgpu::Buffer,
    mask: wgpu::Buffer,
    summary: wgpu::Buffer,
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

impl Drop for GpuCache {
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

impl GpuCache {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// [`GpuModel`] as a [`Backend`]: activations and caches stay on the device; only
/// the wanted logits come back.
pub struct GpuBackend<'m> {
    model: &'m GpuModel,
    enc: Mutex<Option<EncScratch>>,
    dec: Mutex<Option<DecScratch>>,
}

impl GpuBackend<'_> {
    fn enc_scratch(&self) -> std::sync::MutexGuard<'_, Option<EncScratch>> {
        let mut s = self.enc.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            let g = &self.model.gpu;
            let Dims {
                n_mels: nm,
                audio_ctx: ctx,
                d,
                ..
            } = self.model.dims;
            let frames = 2 * ctx;
            *s = Some(EncScratch {
                mel: g.floats("mel", nm * frames),
                col1: g.floats("col1", frames * nm * 3),
                h1: g.floats("h1", frames * d),
                col2: g.floats("col2", ctx * d * 3),
                x: g.floats("x", ctx * d),
                h: g.floats("h", ctx * d),
                qkv: g.floats("qkv", ctx * 3 * d),
                att: g.floats("att", ctx * d),
                ffn: g.floats("ffn", ctx * 4 * d),
            });
        }
        s
    }

    fn dec_scratch(&self) -> std::sync::MutexGuard<'_, Option<DecScratch>> {
        let mut s = self.dec.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            let g = &self.model.gpu;
            let Dims {
                text_ctx: n,
                d,
                n_vocab,
                ..
            } = self.model.dims;
            *s = Some(DecScratch {
                logits: g.floats("logits", 2 * n_vocab),
                mask: g.buffer("mask", n_vocab.div_ceil(32) as u64 * 4),
                summary: g.floats("summary", 2 * summary_floats(n_vocab)),
                ids: g.buffer("ids", n as u64 * 4),
                x: g.floats("x", n * d),
                h: g.floats("h", n * d),
                qkv: g.floats("qkv", n * 3 * d),
                att: g.floats("att", n * d),
                ffn: g.floats("ffn", n * 4 * d),
            });
        }
        s
    }
}

impl Drop for GpuBackend<'_> {
    /// The scratch buffers go with the backend: so do the bind groups naming them.
    fn drop(&mut self) {
        let enc = self.enc.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        let dec = self.dec.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        let mut gone = Vec::new();
        if let Some(s) = &enc {
            gone.extend([
                &s.mel, &s.col1, &s.h1, &s.col2, &s.x, &s.h, &s.qkv, &s.att, &s.ffn,
            ]);
        }
        if let Some(s) = &dec {
            gone.extend([
                &s.ids, &s.x, &s.h, &s.qkv, &s.att, &s.ffn, &s.logits, &s.mask, &s.summary,
            ]);
        }
        self.model.gpu.binds.forget(&gone);
    }
}

/// A failure of the device (out of memory, lost) as sotto's error.
fn device_error(message: String) -> Error {
    Error::Device(message)
}

/// Rows from the start of `b`.
fn rows0(b: &wgpu::Buffer, stride: usize) -> Rows<'_> {
    Rows::new(b, 0, stride)
}

fn linear(rec: &mut Recorder, l: &GLinear, x: Rows, m: usize, y: Rows, epi: Epilogue) {
    rec.linear(&l.w, l.b.as_ref(), x, m, y, epi);
}

fn norm(rec: &mut Recorder, n: &GNorm, d: usize, x: Rows, rows: usize, y: Rows) {
    rec.layer_norm(&n.gamma, &n.beta, d, x, rows, y);
}

const GELU: Epilogue = Epilogue {
    gelu: true,
    accumulate: false,
};
const ADD: Epilogue = Epilogue {
    gelu: false,
    accumulate: true,
};
const PLAIN: Epilogue = Epilogue {
    gelu: false,
    accumulate: false,
};

impl Backend for GpuBackend<'_> {
    type Cross = GpuCross;
    type Cache = GpuCache;

    fn encode(&self, mel: &[f32]) -> Result<GpuCross> {
        let m = self.model;
        let g = &m.gpu;
        let Dims {
            n_mels: nm,
            audio_ctx: ctx,
            d,
            audio_heads: heads,
            ..
        } = m.dims;
        let frames = 2 * ctx;
        if mel.len() != nm * frames {
            return Err(Error::Invalid(format!(
                "mel window has {} values, the encoder takes {nm} × {frames}",
                mel.len()
            )));
        }
        let guard = self.enc_scratch();
        let s = guard.as_ref().expect("allocated");
        g.queue.write_buffer(&s.mel, 0, bytemuck::cast_slice(mel));
        let mut rec = Recorder::new(g);
        rec.set_phase(Phase::Encoder);
        let r = rows0;
        // conv1: mel is channel-major (ch, t) at ch·frames + t.
        rec.im2col(&s.mel, nm, frames, frames, 1, 1, frames, &s.col1);
        linear(
            &mut rec,
            &m.conv1,
            r(&s.col1, nm * 3),
            frames,
            r(&s.h1, d),
            GELU,
        );
        // conv2: h1 is time-major (t, ch) at t·d + ch.
        rec.im2col(&s.h1, d, frames, 1, d, 2, ctx, &s.col2);
        linear(&mut rec, &m.conv2, r(&s.col2, 3 * d), ctx, r(&s.x, d), GELU);
        rec.embed(&m.enc_pos, None, 0, ctx, true, r(&s.x, d));
        for l in &m.enc_layers {
            norm(&mut rec, &l.attn_norm, d, r(&s.x, d), ctx, r(&s.h, d));
            linear(&mut rec, &l.qkv, r(&s.h, d), ctx, r(&s.qkv, 3 * d), PLAIN);
            let kv = Kv {
                buf: &s.qkv,
                k_off: d,
                v_off: 2 * d,
                stride: 3 * d,
                half: false,
            };
            rec.attention(
                r(&s.qkv, 3 * d),
                kv,
                ctx,
                ctx,
                heads,
                d / heads,
                None,
                r(&s.att, d),
            );
            linear(&mut rec, &l.out, r(&s.att, d), ctx, r(&s.x, d), ADD);
            norm(&mut rec, &l.ffn_norm, d, r(&s.x, d), ctx, r(&s.h, d));
            linear(&mut rec, &l.ffn_up, r(&s.h, d), ctx, r(&s.ffn, 4 * d), GELU);
            linear(
                &mut rec,
                &l.ffn_down,
                r(&s.ffn, 4 * d),
                ctx,
                r(&s.x, d),
                ADD,
            );
        }
        norm(&mut rec, &m.enc_norm, d, r(&s.x, d), ctx, r(&s.h, d));
        let half = g.half_kv();
        let n_kv = m.dims.text_layers * ctx * 2 * d;
        let kv = g.buffer("cross kv", (n_kv * if half { 2 } else { 4 }) as u64);
        for (li, l) in m.dec_layers.iter().enumerate() {
            let y = Rows::new(&kv, li * ctx * 2 * d, 2 * d);
            if half {
                // Through the free q|k|v scratch (ctx × 3d floats), then rounded.
                linear(
                    &mut rec,
                    &l.cross_kv,
                    r(&s.h, d),
                    ctx,
                    r(&s.qkv, 2 * d),
                    PLAIN,
                );
                rec.store_rows(r(&s.qkv, 2 * d), ctx, 2 * d, y, true);
            } else {
                linear(&mut rec, &l.cross_kv, r(&s.h, d), ctx, y, PLAIN);
            }
        }
        rec.submit();
        // Wait, so that the caller's encoder timing is the encoder's.
        g.wait();
        g.check().map_err(device_error)?;
        Ok(GpuCross {
            kv,
            half,
            binds: g.binds.clone(),
        })
    }

    fn new_cache(&self) -> GpuCache {
        let g = &self.model.gpu;
        let Dims {
            text_ctx,
            d,
            text_layers,
            ..
        } = self.model.dims;
        let half = g.half_kv();
        let bytes = (text_layers * text_ctx * 2 * d * if half { 2 } else { 4 }) as u64;
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

    fn decode(
        &self,
        cross: &GpuCross,
        cache: &mut GpuCache,
        tokens: &[u32],
        want: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        let m = self.model;
        let g = &m.gpu;
        let Dims {
            text_ctx, n_vocab, ..
        } = m.dims;
        self.check(cache, tokens, want)?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        if want.len() > text_ctx {
            return Err(Error::Invalid(format!(
                "at most {text_ctx} logit rows per decode call"
            )));
        }
        let guard = self.dec_scratch();
        let s = guard.as_ref().expect("allocated");
        let mut rec = Recorder::new(g);
        rec.set_phase(Phase::Decode);
        self.record_layers(&mut rec, s, cross, cache, tokens);
        let logits = g.floats("logits", want.len() * n_vocab);
        self.record_logits(&mut rec, s, want, &logits);
        rec.submit();
        let all = g.try_read_f32(&logits, 0, want.len() * n_vocab);
        g.binds.forget(&[&logits]);
        let all = all.map_err(device_error)?;
        Ok(all.chunks_exact(n_vocab).map(|c| c.to_vec()).collect())
    }

    /// The logits stay on the device: logits.wgsl reduces the last row (masked by the
    /// filters' value-independent rules) and the probed row; a few hundred bytes come
    /// back, and `LogitFilters::pick` applies the timestamp mass rule to them.
    fn decode_greedy(
        &self,
        cross: &GpuCross,
        cache: &mut GpuCache,
        tokens: &[u32],
        filters: &LogitFilters,
        sampled: &[u32],
        probe: Option<(usize, u32)>,
    ) -> Result<Greedy> {
        let m = self.model;
        let g = &m.gpu;
        let n_vocab = m.dims.n_vocab;
        let Some(last) = tokens.len().checked_sub(1) else {
            return Err(Error::Invalid("a greedy step needs a token".into()));
        };
        let want: Vec<usize> = probe.iter().map(|p| p.0).chain([last]).collect();
        self.check(cache, tokens, &want)?;
        if filters.n_vocab != n_vocab {
            return Err(Error::Invalid(format!(
                "filters for {} tokens, the model has {n_vocab}",
                filters.n_vocab
            )));
        }
        let guard = self.dec_scratch();
        let s = guard.as_ref().expect("allocated");

        // The value-independent filters as a bit mask (kept tokens set).
        let mut row = vec![0f32; n_vocab];
        filters.apply_masks(&mut row, sampled);
        let mut bits = vec![0u32; n_vocab.div_ceil(32)];
        for (i, v) in row.iter().enumerate() {
            if v.is_finite() {
                bits[i / 32] |= 1 << (i % 32);
            }
        }
        g.queue
            .write_buffer(&s.mask, 0, bytemuck::cast_slice(&bits));

        let mut rec = Recorder::new(g);
        rec.set_phase(Phase::Decode);
        self.record_layers(&mut rec, s, cross, cache, tokens);
        self.record_logits(&mut rec, s, &want, &s.logits);
        let per = summary_floats(n_vocab);
        let lrow = |slot: usize| Rows::new(&s.logits, slot * n_vocab, n_vocab);
        let split = filters.tokens.timestamp_begin as usize;
        let (slot, ns) = (want.len() - 1, usize::MAX);
        rec.summary(lrow(slot), n_vocab, Some(&s.mask), split, ns, &s.summary, 0);
        if let Some((_, id)) = probe {
            rec.summary(
                lrow(0),
                n_vocab,
                None,
                n_vocab,
                id as usize,
                &s.summary,
                per,
            );
        }
        rec.submit();
        let out = g
            .try_read_f32(&s.summary, 0, per * want.len())
            .map_err(device_error)?;
        let (sum, _) = summary_from(&out[..per], n_vocab);
        let (token, logprob) = filters.pick(&sum);
        let probe = match probe {
            Some((_, id)) if (id as usize) < n_vocab => {
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

impl GpuBackend<'_> {
    /// The checks of a decode call; an empty `tokens` leaves the cache as it is.
    fn check(&self, cache: &GpuCache, tokens: &[u32], want: &[usize]) -> Result<()> {
        let Dims {
            text_ctx, n_vocab, ..
        } = self.model.dims;
        let n = tokens.len();
        if cache.len + n > text_ctx {
            return Err(Error::Invalid(format!(
                "decoder context of {text_ctx} tokens exceeded"
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::Invalid(format!("token id {bad} out of range")));
        }
        if let Some(&i) = want.iter().find(|&&i| i >= n) {
            return Err(Error::Invalid(format!(
                "logits wanted for position {i} of {n}"
            )));
        }
        Ok(())
    }

    /// Records the decoder layers over `tokens` (checked, non-empty) after the cache's
    /// contents and advances the cache; the last layer's output is left in `s.x`.
    fn record_layers(
        &self,
        rec: &mut Recorder,
        s: &DecScratch,
        cross: &GpuCross,
        cache: &mut GpuCache,
        tokens: &[u32],
    ) {
        let m = self.model;
        let g = &m.gpu;
        let Dims {
            audio_ctx,
            text_ctx,
            d,
            text_heads: heads,
            ..
        } = m.dims;
        let n = tokens.len();
        let past = cache.len;
        g.queue
            .write_buffer(&s.ids, 0, bytemuck::cast_slice(tokens));
        let r = rows0;
        rec.embed(&m.embedding, Some(&s.ids), 0, n, false, r(&s.x, d));
        rec.embed(&m.dec_pos, None, past, n, true, r(&s.x, d));
        for (li, l) in m.dec_layers.iter().enumerate() {
            // Causal self-attention over the cache plus the new rows.
            let base = li * text_ctx * 2 * d;
            norm(rec, &l.self_norm, d, r(&s.x, d), n, r(&s.h, d));
            linear(rec, &l.self_qkv, r(&s.h, d), n, r(&s.qkv, 3 * d), PLAIN);
            rec.store_rows(
                Rows::new(&s.qkv, d, 3 * d),
                n,
                2 * d,
                Rows::new(&cache.kv, base + past * 2 * d, 2 * d),
                cache.half,
            );
            let kv = Kv {
                buf: &cache.kv,
                k_off: base,
                v_off: base + d,
                stride: 2 * d,
                half: cache.half,
            };
            rec.attention(
                r(&s.qkv, 3 * d),
                kv,
                n,
                past + n,
                heads,
                d / heads,
                Some(past),
                r(&s.att, d),
            );
            linear(rec, &l.self_out, r(&s.att, d), n, r(&s.x, d), ADD);

            // Cross-attention over the encoded window.
            norm(rec, &l.cross_norm, d, r(&s.x, d), n, r(&s.h, d));
            linear(rec, &l.cross_q, r(&s.h, d), n, r(&s.qkv, d), PLAIN);
            let cbase = li * audio_ctx * 2 * d;
            let kv = Kv {
                buf: &cross.kv,
                k_off: cbase,
                v_off: cbase + d,
                stride: 2 * d,
                half: cross.half,
            };
            rec.attention(
                r(&s.qkv, d),
                kv,
                n,
                audio_ctx,
                heads,
                d / heads,
                None,
                r(&s.att, d),
            );
            linear(rec, &l.cross_out, r(&s.att, d), n, r(&s.x, d), ADD);

            norm(rec, &l.ffn_norm, d, r(&s.x, d), n, r(&s.h, d));
            linear(rec, &l.ffn_up, r(&s.h, d), n, r(&s.ffn, 4 * d), GELU);
            linear(rec, &l.ffn_down, r(&s.ffn, 4 * d), n, r(&s.x, d), ADD);
        }
        cache.len = past + n;
    }

    /// The final norm and the tied output projection of positions `rows` (of the
    /// last [`Self::record_layers`]) into consecutive rows of `logits`.
    fn record_logits(
        &self,
        rec: &mut Recorder,
        s: &DecScratch,
        rows: &[usize],
        logits: &wgpu::Buffer,
    ) {
        let m = self.model;
        let Dims { d, n_vocab, .. } = m.dims;
        for (slot, &i) in rows.iter().enumerate() {
            norm(
                rec,
                &m.dec_norm,
                d,
                Rows::new(&s.x, i * d, d),
                1,
                Rows::new(&s.h, slot * d, d),
            );
        }
        rec.linear(
            &m.embedding,
            None,
            rows0(&s.h, d),
            rows.len(),
            rows0(logits, n_vocab),
            PLAIN,
        );
    }
}
