//! The Whisper network, written once against the kernel table: encoder, decoder,
//! attention and the decoder's KV cache. Weights stay in the mapped file.

mod backend;
mod weights;

pub use backend::{Backend, Cpu};

use crate::format::{ModelConfig, ModelFile};
use crate::{Error, Result};
use half::f16;
use half::slice::HalfFloatSliceExt;
use sotto_kernels::{AttentionShape, Kernels, Pool};
pub use weights::{Linear, Norm, Table};

struct EncoderLayer {
    attn_norm: Norm,
    qkv: Linear,
    out: Linear,
    ffn_norm: Norm,
    ffn_up: Linear,
    ffn_down: Linear,
}

struct DecoderLayer {
    self_norm: Norm,
    self_qkv: Linear,
    self_out: Linear,
    cross_norm: Norm,
    cross_q: Linear,
    cross_kv: Linear,
    cross_out: Linear,
    ffn_norm: Norm,
    ffn_up: Linear,
    ffn_down: Linear,
}

/// Sees the input rows of every linear layer: `(weight tensor name, rows × k floats)`.
/// Used to calibrate static activation scales (`sotto quantize --activations static`).
pub type LinearObserver = Box<dyn Fn(&str, &[f32]) + Send + Sync>;

/// The network's weights: handles into the mapped file, checked at load.
pub struct Network {
    pub file: ModelFile,
    observer: Option<LinearObserver>,
    conv1: Linear,
    conv2: Linear,
    enc_pos: Table,
    enc_layers: Vec<EncoderLayer>,
    enc_norm: Norm,
    embedding: Table,
    dec_pos: Table,
    dec_layers: Vec<DecoderLayer>,
    dec_norm: Norm,
}

/// Cross-attention keys and values of one encoded window, per decoder layer:
/// `[n_audio_ctx × 2d]`, keys in the first `d` columns. Stored as f16: every
/// decoded token reads all of them (as many bytes as the weights in f32),
/// and attention converts them in registers.
pub struct CrossKv {
    kv: Vec<Vec<f16>>,
    n_ctx: usize,
}

/// The decoder's self-attention cache for one hypothesis, f16 like [`CrossKv`].
/// Cloning forks it (beam search).
#[derive(Clone)]
pub struct KvCache {
    k: Vec<Vec<f16>>,
    v: Vec<Vec<f16>>,
    len: usize,
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::format("config", what()))
    }
}

impl Network {
    pub fn new(file: ModelFile) -> Result<Network> {
        let c = file.config().clone();
        let (da, dt) = (c.n_audio_state as usize, c.n_text_state as usize);
        check(
            da > 0 && dt > 0 && c.n_audio_head > 0 && c.n_text_head > 0,
            || "zero dimensions".into(),
        )?;
        check(
            da % c.n_audio_head as usize == 0 && dt % c.n_text_head as usize == 0,
            || "heads do not divide the state".into(),
        )?;
        check(
            c.n_audio_ctx > 0 && c.n_text_ctx >= 8 && c.n_mels > 0,
            || "bad context sizes".into(),
        )?;
        check(da == dt, || "encoder and decoder widths differ".into())?;
        let nm = c.n_mels as usize;
        let conv1 = Linear::load(&file, "encoder/conv1", da, nm * 3, true)?;
        let conv2 = Linear::load(&file, "encoder/conv2", da, da * 3, true)?;
        let enc_pos = Table::load(
            &file,
            "encoder/position_encodings/encodings",
            c.n_audio_ctx as usize,
            da,
        )?;
        let mut enc_layers = Vec::new();
        for i in 0..c.n_audio_layer {
            let p = format!("encoder/layer_{i}");
            enc_layers.push(EncoderLayer {
                attn_norm: Norm::load(&file, &format!("{p}/self_attention/layer_norm"), da)?,
                qkv: Linear::load(
                    &file,
                    &format!("{p}/self_attention/linear_0"),
                    3 * da,
                    da,
                    true,
                )?,
                out: Linear::load(&file, &format!("{p}/self_attention/linear_1"), da, da, true)?,
                ffn_norm: Norm::load(&file, &format!("{p}/ffn/layer_norm"), da)?,
                ffn_up: Linear::load(&file, &format!("{p}/ffn/linear_0"), 4 * da, da, true)?,
                ffn_down: Linear::load(&file, &format!("{p}/ffn/linear_1"), da, 4 * da, true)?,
            });
        }
        let enc_norm = Norm::load(&file, "encoder/layer_norm", da)?;
        let embedding = Table::load(&file, "decoder/embeddings/weight", c.n_vocab as usize, dt)?;
        let dec_pos = Table::load(
            &file,
            "decoder/position_encodings/encodings",
            c.n_text_ctx as usize,
            dt,
        )?;
        let mut dec_layers = Vec::new();
        for i in 0..c.n_text_layer {
            let p = format!("decoder/layer_{i}");
            dec_layers.push(DecoderLayer {
                self_norm: Norm::load(&file, &format!("{p}/self_attention/layer_norm"), dt)?,
                self_qkv: Linear::load(
                    &file,
                    &format!("{p}/self_attention/linear_0"),
                    3 * dt,
                    dt,
                    true,
                )?,
                self_out: Linear::load(
                    &file,
                    &format!("{p}/self_attention/linear_1"),
                    dt,
                    dt,
                    true,
                )?,
                cross_norm: Norm::load(&file, &format!("{p}/attention/layer_norm"), dt)?,
                cross_q: Linear::load(&file, &format!("{p}/attention/linear_0"), dt, dt, true)?,
                cross_kv: Linear::load(
                    &file,
                    &format!("{p}/attention/linear_1"),
                    2 * dt,
                    da,
                    true,
                )?,
                cross_out: Linear::load(&file, &format!("{p}/attention/linear_2"), dt, dt, true)?,
                ffn_norm: Norm::load(&file, &format!("{p}/ffn/layer_norm"), dt)?,
                ffn_up: Linear::load(&file, &format!("{p}/ffn/linear_0"), 4 * dt, dt, true)?,
                ffn_down: Linear::load(&file, &format!("{p}/ffn/linear_1"), dt, 4 * dt, true)?,
            });
        }
        let dec_norm = Norm::load(&file, "decoder/layer_norm", dt)?;
        Ok(Network {
            file,
            observer: None,
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

    pub fn config(&self) -> &ModelConfig {
        self.file.config()
    }

    /// Installs (or with `None` removes) an observer of every linear layer's input.
    pub fn set_observer(&mut self, observer: Option<LinearObserver>) {
        self.observer = observer;
    }

    fn linear(&self, k: &Kernels, pool: &Pool, l: &Linear, x: &[f32], m: usize, out: &mut [f32]) {
        debug_assert_eq!(x.len(), m * l.k);
        if let Some(observe) = &self.observer {
            observe(&l.w.name, &x[..m * l.k]);
        }
        k.linear(
            pool,
            x,
            m,
            l.k,
            l.weights(&self.file),
            l.n,
            l.bias(&self.file),
            &mut out[..m * l.n],
        );
    }

    fn norm(&self, k: &Kernels, n: &Norm, x: &[f32], out: &mut [f32]) {
        let (g, b) = n.params(&self.file);
        k.layer_norm(x, g.len(), g, b, out);
    }

    /// [`Network::norm`] with rows split across the pool (encoder: 1500 rows).
    fn norm_pooled(&self, k: &Kernels, pool: &Pool, n: &Norm, x: &[f32], out: &mut [f32]) {
        let (g, b) = n.params(&self.file);
        k.layer_norm_pooled(pool, x, g.len(), g, b, out);
    }

    /// Encodes one window of `n_mels × 2·n_audio_ctx` log-mel frames into
    /// `n_audio_ctx × d` states.
    pub fn encode(&self, k: &Kernels, pool: &Pool, mel: &[f32]) -> Vec<f32> {
        let c = self.config();
        let (nm, ctx, d) = (
            c.n_mels as usize,
            c.n_audio_ctx as usize,
            c.n_audio_state as usize,
        );
        let frames = 2 * ctx;
        assert_eq!(
            mel.len(),
            nm * frames,
            "mel window must be n_mels × 2·n_audio_ctx"
        );

        // conv1 (kernel 3, stride 1, pad 1) as im2col + linear: column c·3 + j holds mel[c][t + j − 1].
        let mut col = vec![0f32; frames * nm * 3];
        for t in 0..frames {
            let row = &mut col[t * nm * 3..(t + 1) * nm * 3];
            for ch in 0..nm {
                for j in 0..3 {
                    let src = t + j;
                    if (1..=frames).contains(&src) {
                        row[ch * 3 + j] = mel[ch * frames + src - 1];
                    }
                }
            }
        }
        let mut h1 = vec![0f32; frames * d];
        self.linear(k, pool, &self.conv1, &col, frames, &mut h1);
        k.gelu_pooled(pool, &mut h1);

        // conv2 (kernel 3, stride 2, pad 1): column c·3 + j holds h1[2t + j − 1][c].
        let mut col = vec![0f32; ctx * d * 3];
        for t in 0..ctx {
            let row = &mut col[t * d * 3..(t + 1) * d * 3];
            for j in 0..3 {
                let src = 2 * t + j;
                if (1..=frames).contains(&src) {
                    let h = &h1[(src - 1) * d..src * d];
                    for ch in 0..d {
                        row[ch * 3 + j] = h[ch];
                    }
                }
            }
        }
        drop(h1);
        let mut x = vec![0f32; ctx * d];
        self.linear(k, pool, &self.conv2, &col, ctx, &mut x);
        drop(col);
        k.gelu_pooled(pool, &mut x);
        for t in 0..ctx {
            self.enc_pos
                .add_row(&self.file, t, &mut x[t * d..(t + 1) * d]);
        }

        let heads = c.n_audio_head as usize;
        // Two buffers besides the residual stream x: `h` (ctx × d) and `wide`
        // (ctx × 4d), which holds q|k|v, then the attention projection, then
        // the FFN's hidden layer — each dead before the next is written. This
        // keeps the encoder's working set (and the heap it leaves behind) at
        // 6d floats per frame instead of 10d.
        let mut h = vec![0f32; ctx * d];
        let mut wide = vec![0f32; ctx * 4 * d];
        for l in &self.enc_layers {
            self.norm_pooled(k, pool, &l.attn_norm, &x, &mut h);
            let qkv = &mut wide[..ctx * 3 * d];
            self.linear(k, pool, &l.qkv, &h, ctx, qkv);
            let shape = AttentionShape {
                n_q: ctx,
                n_kv: ctx,
                n_head: heads,
                head_dim: d / heads,
                q_stride: 3 * d,
                kv_stride: 3 * d,
                out_stride: d,
                causal_offset: None,
            };
            // h (the normed input) is dead once q, k, v exist: it takes the heads' output.
            k.attention(pool, qkv, &qkv[d..], &qkv[2 * d..], shape, &mut h);
            let proj = &mut wide[..ctx * d];
            self.linear(k, pool, &l.out, &h, ctx, proj);
            add(&mut x, proj);
            self.norm_pooled(k, pool, &l.ffn_norm, &x, &mut h);
            self.linear(k, pool, &l.ffn_up, &h, ctx, &mut wide);
            k.gelu_pooled(pool, &mut wide);
            self.linear(k, pool, &l.ffn_down, &wide, ctx, &mut h);
            add(&mut x, &h);
        }
        self.norm_pooled(k, pool, &self.enc_norm, &x, &mut h);
        h
    }

    /// Projects the encoder output to every decoder layer's cross-attention keys and values.
    pub fn cross_kv(&self, k: &Kernels, pool: &Pool, enc: &[f32]) -> CrossKv {
        let c = self.config();
        let (ctx, d) = (c.n_audio_ctx as usize, c.n_text_state as usize);
        let mut out = vec![0f32; ctx * 2 * d];
        let kv = self
            .dec_layers
            .iter()
            .map(|l| {
                self.linear(k, pool, &l.cross_kv, enc, ctx, &mut out);
                let mut half = vec![f16::ZERO; ctx * 2 * d];
                half.convert_from_f32_slice(&out);
                half
            })
            .collect();
        CrossKv { kv, n_ctx: ctx }
    }

    pub fn new_cache(&self) -> KvCache {
        let c = self.config();
        let size = c.n_text_ctx as usize * c.n_text_state as usize;
        let n = self.dec_layers.len();
        KvCache {
            k: vec![vec![f16::ZERO; size]; n],
            v: vec![vec![f16::ZERO; size]; n],
            len: 0,
        }
    }

    /// Runs `tokens` through the decoder after the `cache.len()` tokens already in
    /// `cache`, appending to it, and returns the logits (`n_vocab` each) of the new
    /// positions listed in `want` (indices into `tokens`).
    pub fn decode(
        &self,
        k: &Kernels,
        pool: &Pool,
        cross: &CrossKv,
        cache: &mut KvCache,
        tokens: &[u32],
        want: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        let c = self.config();
        let (d, heads, n_vocab) = (
            c.n_text_state as usize,
            c.n_text_head as usize,
            c.n_vocab as usize,
        );
        let n = tokens.len();
        let past = cache.len;
        if past + n > c.n_text_ctx as usize {
            return Err(Error::Invalid(format!(
                "decoder context of {} tokens exceeded",
                c.n_text_ctx
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::Invalid(format!("token id {bad} out of range")));
        }
        let mut x = vec![0f32; n * d];
        for (i, &t) in tokens.iter().enumerate() {
            let row = &mut x[i * d..(i + 1) * d];
            self.embedding.add_row(&self.file, t as usize, row);
            self.dec_pos.add_row(&self.file, past + i, row);
        }
        let mut h = vec![0f32; n * d];
        let mut qkv = vec![0f32; n * 3 * d];
        let mut att = vec![0f32; n * d];
        let mut ffn = vec![0f32; n * 4 * d];
        for (li, l) in self.dec_layers.iter().enumerate() {
            // Causal self-attention over the cache plus the new rows.
            self.norm(k, &l.self_norm, &x, &mut h);
            self.linear(k, pool, &l.self_qkv, &h, n, &mut qkv);
            let (kc, vc) = (&mut cache.k[li], &mut cache.v[li]);
            for i in 0..n {
                let row = &qkv[i * 3 * d..(i + 1) * 3 * d];
                kc[(past + i) * d..(past + i + 1) * d].convert_from_f32_slice(&row[d..2 * d]);
                vc[(past + i) * d..(past + i + 1) * d].convert_from_f32_slice(&row[2 * d..]);
            }
            let shape = AttentionShape {
                n_q: n,
                n_kv: past + n,
                n_head: heads,
                head_dim: d / heads,
                q_stride: 3 * d,
                kv_stride: d,
                out_stride: d,
                causal_offset: Some(past),
            };
            k.attention_f16(
                pool,
                &qkv,
                kc[..(past + n) * d].reinterpret_cast(),
                vc[..(past + n) * d].reinterpret_cast(),
                shape,
                &mut att,
            );
            self.linear(k, pool, &l.self_out, &att, n, &mut h);
            add(&mut x, &h);

            // Cross-attention over the encoded window.
            self.norm(k, &l.cross_norm, &x, &mut h);
            let q = &mut qkv[..n * d];
            self.linear(k, pool, &l.cross_q, &h, n, q);
            let kv: &[u16] = cross.kv[li].reinterpret_cast();
            let shape = AttentionShape {
                n_q: n,
                n_kv: cross.n_ctx,
                n_head: heads,
                head_dim: d / heads,
                q_stride: d,
                kv_stride: 2 * d,
                out_stride: d,
                causal_offset: None,
            };
            k.attention_f16(pool, q, kv, &kv[d..], shape, &mut att);
            self.linear(k, pool, &l.cross_out, &att, n, &mut h);
            add(&mut x, &h);

            self.norm(k, &l.ffn_norm, &x, &mut h);
            self.linear(k, pool, &l.ffn_up, &h, n, &mut ffn);
            k.gelu(&mut ffn);
            self.linear(k, pool, &l.ffn_down, &ffn, n, &mut h);
            add(&mut x, &h);
        }
        cache.len = past + n;

        // Final norm and the tied output projection, only for the rows asked for.
        let mut out = Vec::with_capacity(want.len());
        let mut normed = vec![0f32; d];
        let emb = self.embedding.weights(&self.file);
        for &i in want {
            if i >= n {
                return Err(Error::Invalid(format!(
                    "logits wanted for position {i} of {n}"
                )));
            }
            self.norm(k, &self.dec_norm, &x[i * d..(i + 1) * d], &mut normed);
            if let Some(observe) = &self.observer {
                observe(&self.embedding.t.name, &normed);
            }
            let mut logits = vec![0f32; n_vocab];
            k.linear(pool, &normed, 1, d, emb, n_vocab, None, &mut logits);
            out.push(logits);
        }
        Ok(out)
    }
}

/// Returns the encoder's freed buffers to the OS. Once glibc's mmap threshold
/// has adapted to them, freed multi-megabyte blocks stay in the heap and
/// would count in the resident set for the whole decoding of the window
/// (about 10 MB for tiny.en, a sixth of its int8 peak).
pub(crate) fn release_freed_heap() {
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

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}
