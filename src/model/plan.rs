//! Whisper's layers, described once: every tensor's name, shape and place in the
//! network, checked against the file's config when the model loads. Each backend
//! turns this description into its own weight handles ([`Layers::map`]): the CPU
//! into kernel views of the mapping, the GPU into uploaded buffers.
use crate::format::{ModelConfig, ModelFile, TensorInfo};
use crate::{Error, Result};

/// What a backend holds for each kind of weight.
pub(crate) trait WeightKinds {
    /// `y = x·Wᵀ + b`, `W` `[n × k]`.
    type Linear;
    /// Layer norm gamma and beta.
    type Norm;
    /// A table read by rows (embeddings, positions); the token embedding is also
    /// the output projection.
    type Table;
}

/// The dimensions the network's passes use, from the file's config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub n_mels: usize,
    pub audio_ctx: usize,
    pub text_ctx: usize,
    /// The model width (encoder and decoder alike).
    pub d: usize,
    pub audio_heads: usize,
    pub text_heads: usize,
    pub n_vocab: usize,
    pub text_layers: usize,
}

impl Dims {
    /// Mel frames per window: the conv stem halves them to `audio_ctx` positions.
    pub fn frames(&self) -> usize {
        2 * self.audio_ctx
    }
}

pub(crate) struct EncoderLayer<W: WeightKinds> {
    pub attn_norm: W::Norm,
    pub qkv: W::Linear,
    pub out: W::Linear,
    pub ffn_norm: W::Norm,
    pub ffn_up: W::Linear,
    pub ffn_down: W::Linear,
}

pub(crate) struct DecoderLayer<W: WeightKinds> {
    pub self_norm: W::Norm,
    pub self_qkv: W::Linear,
    pub self_out: W::Linear,
    pub cross_norm: W::Norm,
    pub cross_q: W::Linear,
    pub cross_kv: W::Linear,
    pub cross_out: W::Linear,
    pub ffn_norm: W::Norm,
    pub ffn_up: W::Linear,
    pub ffn_down: W::Linear,
}

/// Every weight of the network, in a backend's handles.
pub(crate) struct Layers<W: WeightKinds> {
    pub dims: Dims,
    pub conv1: W::Linear,
    pub conv2: W::Linear,
    pub enc_pos: W::Table,
    pub encoder: Vec<EncoderLayer<W>>,
    pub enc_norm: W::Norm,
    pub embedding: W::Table,
    pub dec_pos: W::Table,
    pub decoder: Vec<DecoderLayer<W>>,
    pub dec_norm: W::Norm,
}

/// A linear layer's tensors, shapes checked: `{prefix}/weight` `[n × k]` (conv
/// weights `[n × c × w]` flatten to `k = c·w`) and `{prefix}/bias` `[n]`.
#[derive(Clone, Debug)]
pub(crate) struct LinearDesc {
    pub w: TensorInfo,
    pub b: TensorInfo,
    pub n: usize,
    pub k: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct NormDesc {
    pub gamma: TensorInfo,
    pub beta: TensorInfo,
}

#[derive(Clone, Debug)]
pub(crate) struct TableDesc {
    pub t: TensorInfo,
    pub rows: usize,
    pub cols: usize,
}

/// The description itself: tensor handles of the file.
pub(crate) struct Desc;

impl WeightKinds for Desc {
    type Linear = LinearDesc;
    type Norm = NormDesc;
    type Table = TableDesc;
}

/// Turns described tensors into a backend's handles (and checks what the backend
/// needs of them: element types it can run, sizes it can hold).
pub(crate) trait Loader<W: WeightKinds> {
    fn linear(&mut self, d: &LinearDesc) -> Result<W::Linear>;
    fn norm(&mut self, d: &NormDesc) -> Result<W::Norm>;
    fn table(&mut self, d: &TableDesc) -> Result<W::Table>;
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::format("config", what()))
    }
}

impl Dims {
    pub fn of(c: &ModelConfig) -> Result<Dims> {
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
        check(c.n_vocab > 0, || "empty vocabulary".into())?;
        Ok(Dims {
            n_mels: c.n_mels as usize,
            audio_ctx: c.n_audio_ctx as usize,
            text_ctx: c.n_text_ctx as usize,
            d: da,
            audio_heads: c.n_audio_head as usize,
            text_heads: c.n_text_head as usize,
            n_vocab: c.n_vocab as usize,
            text_layers: c.n_text_layer as usize,
        })
    }
}

fn tensor(file: &ModelFile, name: &str) -> Result<TensorInfo> {
    Ok(file.tensor(name)?.clone())
}

fn expect_shape(file: &ModelFile, name: &str, shape: &[usize]) -> Result<TensorInfo> {
    let t = tensor(file, name)?;
    if t.shape != shape {
        return Err(Error::format(
            name,
            format!("shape {:?}, expected {:?}", t.shape, shape),
        ));
    }
    Ok(t)
}

fn linear(file: &ModelFile, prefix: &str, n: usize, k: usize) -> Result<LinearDesc> {
    let name = format!("{prefix}/weight");
    let w = tensor(file, &name)?;
    if w.shape.first() != Some(&n) || w.elements() != n * k {
        return Err(Error::format(
            &name,
            format!("shape {:?}, expected {n} rows of {k}", w.shape),
        ));
    }
    let b = expect_shape(file, &format!("{prefix}/bias"), &[n])?;
    Ok(LinearDesc { w, b, n, k })
}

fn norm(file: &ModelFile, prefix: &str, d: usize) -> Result<NormDesc> {
    Ok(NormDesc {
        gamma: expect_shape(file, &format!("{prefix}/gamma"), &[d])?,
        beta: expect_shape(file, &format!("{prefix}/beta"), &[d])?,
    })
}

fn table(file: &ModelFile, name: &str, rows: usize, cols: usize) -> Result<TableDesc> {
    Ok(TableDesc {
        t: expect_shape(file, name, &[rows, cols])?,
        rows,
        cols,
    })
}

impl Layers<Desc> {
    /// Reads the network's description from `file`: every tensor present with
    /// the shape the config implies. Tensor names are CTranslate2's.
    pub fn describe(file: &ModelFile) -> Result<Layers<Desc>> {
        let c = file.config();
        let dims = Dims::of(c)?;
        let (nm, d) = (dims.n_mels, dims.d);
        let conv1 = linear(file, "encoder/conv1", d, nm * 3)?;
        let conv2 = linear(file, "encoder/conv2", d, d * 3)?;
        let enc_pos = table(
            file,
            "encoder/position_encodings/encodings",
            dims.audio_ctx,
            d,
        )?;
        let mut encoder = Vec::new();
        for i in 0..c.n_audio_layer {
            let p = format!("encoder/layer_{i}");
            encoder.push(EncoderLayer {
                attn_norm: norm(file, &format!("{p}/self_attention/layer_norm"), d)?,
                qkv: linear(file, &format!("{p}/self_attention/linear_0"), 3 * d, d)?,
                out: linear(file, &format!("{p}/self_attention/linear_1"), d, d)?,
                ffn_norm: norm(file, &format!("{p}/ffn/layer_norm"), d)?,
                ffn_up: linear(file, &format!("{p}/ffn/linear_0"), 4 * d, d)?,
                ffn_down: linear(file, &format!("{p}/ffn/linear_1"), d, 4 * d)?,
            });
        }
        let enc_norm = norm(file, "encoder/layer_norm", d)?;
        let embedding = table(file, "decoder/embeddings/weight", dims.n_vocab, d)?;
        let dec_pos = table(
            file,
            "decoder/position_encodings/encodings",
            dims.text_ctx,
            d,
        )?;
        let mut decoder = Vec::new();
        for i in 0..c.n_text_layer {
            let p = format!("decoder/layer_{i}");
            decoder.push(DecoderLayer {
                self_norm: norm(file, &format!("{p}/self_attention/layer_norm"), d)?,
                self_qkv: linear(file, &format!("{p}/self_attention/linear_0"), 3 * d, d)?,
                self_out: linear(file, &format!("{p}/self_attention/linear_1"), d, d)?,
                cross_norm: norm(file, &format!("{p}/attention/layer_norm"), d)?,
                cross_q: linear(file, &format!("{p}/attention/linear_0"), d, d)?,
                cross_kv: linear(file, &format!("{p}/attention/linear_1"), 2 * d, d)?,
                cross_out: linear(file, &format!("{p}/attention/linear_2"), d, d)?,
                ffn_norm: norm(file, &format!("{p}/ffn/layer_norm"), d)?,
                ffn_up: linear(file, &format!("{p}/ffn/linear_0"), 4 * d, d)?,
                ffn_down: linear(file, &format!("{p}/ffn/linear_1"), d, 4 * d)?,
            });
        }
        Ok(Layers {
            dims,
            conv1,
            conv2,
            enc_pos,
            encoder,
            enc_norm,
            embedding,
            dec_pos,
            decoder,
            dec_norm: norm(file, "decoder/layer_norm", d)?,
        })
    }

    /// The same layers in a backend's handles, in file order.
    pub fn map<W: WeightKinds>(&self, l: &mut impl Loader<W>) -> Result<Layers<W>> {
        Ok(Layers {
            dims: self.dims,
            conv1: l.linear(&self.conv1)?,
            conv2: l.linear(&self.conv2)?,
            enc_pos: l.table(&self.enc_pos)?,
            encoder: self
                .encoder
                .iter()
                .map(|e| {
                    Ok(EncoderLayer {
                        attn_norm: l.norm(&e.attn_norm)?,
                        qkv: l.linear(&e.qkv)?,
                        out: l.linear(&e.out)?,
                        ffn_norm: l.norm(&e.ffn_norm)?,
                        ffn_up: l.linear(&e.ffn_up)?,
                        ffn_down: l.linear(&e.ffn_down)?,
                    })
                })
                .collect::<Result<_>>()?,
            enc_norm: l.norm(&self.enc_norm)?,
            embedding: l.table(&self.embedding)?,
            dec_pos: l.table(&self.dec_pos)?,
            decoder: self
                .decoder
                .iter()
                .map(|e| {
                    Ok(DecoderLayer {
                        self_norm: l.norm(&e.self_norm)?,
                        self_qkv: l.linear(&e.self_qkv)?,
                        self_out: l.linear(&e.self_out)?,
                        cross_norm: l.norm(&e.cross_norm)?,
                        cross_q: l.linear(&e.cross_q)?,
                        cross_kv: l.linear(&e.cross_kv)?,
                        cross_out: l.linear(&e.cross_out)?,
                        ffn_norm: l.norm(&e.ffn_norm)?,
                        ffn_up: l.linear(&e.ffn_up)?,
                        ffn_down: l.linear(&e.ffn_down)?,
                    })
                })
                .collect::<Result<_>>()?,
            dec_norm: l.norm(&self.dec_norm)?,
        })
    }
}
