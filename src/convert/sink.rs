//! What every source reader shares: float decoding, the tensors written under
//! CTranslate2's names (the names the model plan reads), and the assembly of
//! checkpoints that store OpenAI's layer structure with separate q/k/v
//! projections (Hugging Face, whisper.cpp) into sotto's fused ones.
use crate::format::{ElementType, FileWriter, ModelConfig};
use crate::quantize::Activations;
use crate::{Error, Result};

/// Floating-point element types the sources store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FloatType {
    F32,
    F16,
    Bf16,
}

impl FloatType {
    pub(crate) fn size(self) -> usize {
        match self {
            FloatType::F32 => 4,
            FloatType::F16 | FloatType::Bf16 => 2,
        }
    }
}

/// Little-endian `bytes` of type `t` as f32 (exact for every type).
pub(crate) fn floats(t: FloatType, bytes: &[u8]) -> Vec<f32> {
    match t {
        FloatType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        FloatType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        FloatType::Bf16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

/// One tensor read from a source: its shape, its values, and whether those values
/// are the source's own (float storage) or reconstructed from quantized blocks.
pub(crate) struct SourceTensor {
    pub shape: Vec<usize>,
    /// Empty when `q4` holds the tensor.
    pub values: Vec<f32>,
    pub exact: bool,
    /// ggml q4_0 blocks kept as they are: `scale · (code − 8)` in groups of 32
    /// along each row — exactly sotto's `int4-sym` with group 32.
    pub q4: Option<Q4>,
}

/// Codes (one per element, row-major) and one scale per 32-element group.
pub(crate) struct Q4 {
    pub codes: Vec<u8>,
    pub scales: Vec<f32>,
}

/// The `.sotto` tensors of a conversion, in CTranslate2's names.
pub(crate) struct Sink {
    pub writer: FileWriter,
    /// Rank ≥ 2 tensors in f32 rather than f16: the file is an intermediate that
    /// `quantize` reads next, so no value is rounded twice.
    wide: bool,
    /// Tensors packed straight from the source's codes (CTranslate2 int8 as
    /// sotto int8, ggml q4_0 as int4-sym).
    pub packed_as_stored: Vec<String>,
    /// Whether any tensor was reconstructed from quantized blocks.
    pub dequantized: bool,
}

impl Sink {
    pub(crate) fn new(config: ModelConfig, vocab: Vec<Vec<u8>>, mel: Vec<f32>, wide: bool) -> Sink {
        Sink {
            writer: FileWriter::new(config, vocab, mel),
            wide,
            packed_as_stored: Vec::new(),
            dequantized: false,
        }
    }

    /// Rank ≥ 2: f16 (f32 when wide or when the values came from quantized blocks,
    /// which are quantized again); rank 1: f32, as `fetch` writes them.
    pub(crate) fn float(
        &mut self,
        name: &str,
        shape: &[usize],
        v: &[f32],
        exact: bool,
    ) -> Result<()> {
        if !exact {
            self.dequantized = true;
        }
        if shape.len() == 1 || self.wide || !exact {
            let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            self.writer
                .add_tensor(name, ElementType::F32, shape, 0, data)
        } else {
            let data = v
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect();
            self.writer
                .add_tensor(name, ElementType::F16, shape, 0, data)
        }
    }

    pub(crate) fn tensor(&mut self, name: &str, t: &SourceTensor) -> Result<()> {
        match &t.q4 {
            Some(q) => self.packed(
                name,
                &t.shape,
                crate::format::Scheme::Int4Sym,
                32,
                q.codes.clone(),
                q.scales.clone(),
            ),
            None => self.float(name, &t.shape, &t.values, t.exact),
        }
    }

    /// An `n × k` int8 matrix with one scale per row (`w = scale · code`), stored
    /// as sotto's `int8` element type without requantization.
    pub(crate) fn int8_rows(
        &mut self,
        name: &str,
        shape: &[usize],
        codes: Vec<u8>,
        scales: Vec<f32>,
    ) -> Result<()> {
        self.packed(
            name,
            shape,
            crate::format::Scheme::Int8Row,
            0,
            codes,
            scales,
        )
    }

    /// A tensor already quantized in one of sotto's layouts, packed as it is.
    fn packed(
        &mut self,
        name: &str,
        shape: &[usize],
        scheme: crate::format::Scheme,
        group: usize,
        codes: Vec<u8>,
        scales: Vec<f32>,
    ) -> Result<()> {
        let (n, k) = crate::format::packed_dims(shape);
        let q = sotto_kernels::schemes::Quantized {
            scheme,
            n,
            k,
            group,
            codes,
            scales,
            zeros: Vec::new(),
        };
        let data =
            crate::quantize::store_pack(&q).map_err(|m| Error::Convert(format!("{name}: {m}")))?;
        self.writer.add_tensor(
            name,
            ElementType::from_scheme(scheme),
            shape,
            group as u32,
            data,
        )?;
        self.packed_as_stored.push(name.to_string());
        Ok(())
    }

    /// Records the activation mode of the tensors packed as the source stored them.
    pub(crate) fn finish_int8(&mut self, activations: Activations) -> Result<()> {
        if self.packed_as_stored.is_empty() {
            return Ok(());
        }
        crate::quantize::store_set_activations(
            &mut self.writer,
            activations,
            &self.packed_as_stored,
        )
    }
}

/// Where a checkpoint with OpenAI's layer structure keeps each tensor. `{i}` in a
/// layer prefix is the layer number; module names are joined with `.`.
pub(crate) struct Naming {
    pub conv: &'static str,
    pub enc_pos: &'static str,
    pub enc_layer: &'static str,
    pub enc_norm: &'static str,
    pub embed: &'static str,
    pub dec_pos: &'static str,
    pub dec_layer: &'static str,
    pub dec_norm: &'static str,
    pub self_attn: &'static str,
    pub self_norm: &'static str,
    pub cross_attn: &'static str,
    pub cross_norm: &'static str,
    /// q, k, v, out projections inside an attention module.
    pub proj: [&'static str; 4],
    pub fc1: &'static str,
    pub fc2: &'static str,
    pub ffn_norm: &'static str,
}

/// Hugging Face transformers' `WhisperForConditionalGeneration`.
pub(crate) const HF_NAMES: Naming = Naming {
    conv: "model.encoder.conv",
    enc_pos: "model.encoder.embed_positions.weight",
    enc_layer: "model.encoder.layers.{i}",
    enc_norm: "model.encoder.layer_norm",
    embed: "model.decoder.embed_tokens.weight",
    dec_pos: "model.decoder.embed_positions.weight",
    dec_layer: "model.decoder.layers.{i}",
    dec_norm: "model.decoder.layer_norm",
    self_attn: "self_attn",
    self_norm: "self_attn_layer_norm",
    cross_attn: "encoder_attn",
    cross_norm: "encoder_attn_layer_norm",
    proj: ["q_proj", "k_proj", "v_proj", "out_proj"],
    fc1: "fc1",
    fc2: "fc2",
    ffn_norm: "final_layer_norm",
};

/// OpenAI's own names, which whisper.cpp keeps.
pub(crate) const OPENAI_NAMES: Naming = Naming {
    conv: "encoder.conv",
    enc_pos: "encoder.positional_embedding",
    enc_layer: "encoder.blocks.{i}",
    enc_norm: "encoder.ln_post",
    embed: "decoder.token_embedding.weight",
    dec_pos: "decoder.positional_embedding",
    dec_layer: "decoder.blocks.{i}",
    dec_norm: "decoder.ln",
    self_attn: "attn",
    self_norm: "attn_ln",
    cross_attn: "cross_attn",
    cross_norm: "cross_attn_ln",
    proj: ["query", "key", "value", "out"],
    fc1: "mlp.0",
    fc2: "mlp.2",
    ffn_norm: "mlp_ln",
};

/// A checkpoint's tensors by source name.
pub(crate) trait TensorSource {
    /// The file the tensors come from, for errors.
    fn file(&self) -> &str;
    /// The tensor `name`, or `None` when the checkpoint lacks it.
    fn get(&mut self, name: &str) -> Result<Option<SourceTensor>>;
}

fn fetch(src: &mut dyn TensorSource, name: &str, shape: &[usize]) -> Result<SourceTensor> {
    let t = src
        .get(name)?
        .ok_or_else(|| Error::Convert(format!("{}: tensor {name} is missing", src.file())))?;
    // A [n, 1] bias (whisper.cpp's conv biases) is the [n] vector.
    let squeezed: Vec<usize> =
        if t.shape.len() > shape.len() && t.shape[shape.len()..].iter().all(|&d| d == 1) {
            t.shape[..shape.len()].to_vec()
        } else {
            t.shape.clone()
        };
    if squeezed != shape {
        return Err(Error::Convert(format!(
            "{}: tensor {name} has shape {:?}, the config implies {shape:?}",
            src.file(),
            t.shape
        )));
    }
    Ok(SourceTensor {
        shape: shape.to_vec(),
        ..t
    })
}

/// Writes every tensor of an OpenAI-structured checkpoint under CTranslate2's
/// names, fusing self-attention q|k|v and cross-attention k|v (the key projection
/// has no bias: zeros are stored), with every shape checked against `c`.
pub(crate) fn assemble(
    src: &mut dyn TensorSource,
    names: &Naming,
    c: &ModelConfig,
    sink: &mut Sink,
) -> Result<()> {
    let d = c.n_audio_state as usize;
    let dt = c.n_text_state as usize;
    if d != dt {
        return Err(Error::Convert(format!(
            "{}: encoder width {d} differs from decoder width {dt}",
            src.file()
        )));
    }
    let nm = c.n_mels as usize;
    for (i, k) in [(1, nm), (2, d)] {
        let p = format!("{}{i}", names.conv);
        let w = fetch(src, &format!("{p}.weight"), &[d, k, 3])?;
        sink.tensor(&format!("encoder/conv{i}/weight"), &w)?;
        let b = fetch(src, &format!("{p}.bias"), &[d])?;
        sink.tensor(&format!("encoder/conv{i}/bias"), &b)?;
    }
    let pos = fetch(src, names.enc_pos, &[c.n_audio_ctx as usize, d])?;
    sink.tensor("encoder/position_encodings/encodings", &pos)?;

    let linear = |src: &mut dyn TensorSource,
                  sink: &mut Sink,
                  from: &str,
                  to: &str,
                  n: usize,
                  k: usize|
     -> Result<()> {
        let w = fetch(src, &format!("{from}.weight"), &[n, k])?;
        sink.tensor(&format!("{to}/weight"), &w)?;
        let b = fetch(src, &format!("{from}.bias"), &[n])?;
        sink.tensor(&format!("{to}/bias"), &b)
    };
    let norm = |src: &mut dyn TensorSource, sink: &mut Sink, from: &str, to: &str| -> Result<()> {
        let g = fetch(src, &format!("{from}.weight"), &[d])?;
        sink.tensor(&format!("{to}/gamma"), &g)?;
        let b = fetch(src, &format!("{from}.bias"), &[d])?;
        sink.tensor(&format!("{to}/beta"), &b)
    };
    // Fused projections: weights stacked by rows, biases concatenated, the key's zero.
    let fused = |src: &mut dyn TensorSource,
                 sink: &mut Sink,
                 module: &str,
                 parts: &[usize],
                 to: &str|
     -> Result<()> {
        let (mut w, mut b, mut exact) = (Vec::new(), Vec::new(), true);
        let mut q4: Option<Q4> = None;
        let mut floats_seen = false;
        for &part in parts {
            let from = format!("{module}.{}", names.proj[part]);
            let t = fetch(src, &format!("{from}.weight"), &[d, d])?;
            exact &= t.exact;
            match t.q4 {
                Some(q) => {
                    let acc = q4.get_or_insert(Q4 {
                        codes: Vec::new(),
                        scales: Vec::new(),
                    });
                    acc.codes.extend_from_slice(&q.codes);
                    acc.scales.extend_from_slice(&q.scales);
                }
                None => {
                    floats_seen = true;
                    w.extend_from_slice(&t.values);
                }
            }
            if part == 1 {
                if let Some(kb) = src.get(&format!("{from}.bias"))? {
                    if kb.values.iter().any(|&v| v != 0.0) {
                        return Err(Error::Convert(format!(
                            "{}: {from}.bias is not zero; Whisper's key projections have no bias",
                            src.file()
                        )));
                    }
                }
                b.extend(std::iter::repeat_n(0.0, d));
            } else {
                b.extend_from_slice(&fetch(src, &format!("{from}.bias"), &[d])?.values);
            }
        }
        let n = parts.len() * d;
        match q4 {
            Some(q) if !floats_seen => sink.tensor(
                &format!("{to}/weight"),
                &SourceTensor {
                    shape: vec![n, d],
                    values: Vec::new(),
                    exact: true,
                    q4: Some(q),
                },
            )?,
            Some(_) => {
                return Err(Error::Convert(format!(
                    "{}: {module}: q4_0 and float projections cannot be fused",
                    src.file()
                )))
            }
            None => sink.float(&format!("{to}/weight"), &[n, d], &w, exact)?,
        }
        sink.float(&format!("{to}/bias"), &[n], &b, true)
    };

    // The blocks encoder and decoder layers share, in the order the file holds them.
    let self_attention =
        |src: &mut dyn TensorSource, sink: &mut Sink, from: &str, to: &str| -> Result<()> {
            let attn = format!("{from}.{}", names.self_attn);
            norm(
                src,
                sink,
                &format!("{from}.{}", names.self_norm),
                &format!("{to}/self_attention/layer_norm"),
            )?;
            fused(
                src,
                sink,
                &attn,
                &[0, 1, 2],
                &format!("{to}/self_attention/linear_0"),
            )?;
            linear(
                src,
                sink,
                &format!("{attn}.{}", names.proj[3]),
                &format!("{to}/self_attention/linear_1"),
                d,
                d,
            )?;
            Ok(())
        };
    let ffn = |src: &mut dyn TensorSource, sink: &mut Sink, from: &str, to: &str| -> Result<()> {
        norm(
            src,
            sink,
            &format!("{from}.{}", names.ffn_norm),
            &format!("{to}/ffn/layer_norm"),
        )?;
        linear(
            src,
            sink,
            &format!("{from}.{}", names.fc1),
            &format!("{to}/ffn/linear_0"),
            4 * d,
            d,
        )?;
        linear(
            src,
            sink,
            &format!("{from}.{}", names.fc2),
            &format!("{to}/ffn/linear_1"),
            d,
            4 * d,
        )?;
        Ok(())
    };

    for i in 0..c.n_audio_layer {
        let from = names.enc_layer.replace("{i}", &i.to_string());
        let to = format!("encoder/layer_{i}");
        self_attention(src, sink, &from, &to)?;
        ffn(src, sink, &from, &to)?;
    }
    norm(src, sink, names.enc_norm, "encoder/layer_norm")?;

    let emb = fetch(src, names.embed, &[c.n_vocab as usize, d])?;
    sink.tensor("decoder/embeddings/weight", &emb)?;
    let pos = fetch(src, names.dec_pos, &[c.n_text_ctx as usize, d])?;
    sink.tensor("decoder/position_encodings/encodings", &pos)?;
    for i in 0..c.n_text_layer {
        let from = names.dec_layer.replace("{i}", &i.to_string());
        let to = format!("decoder/layer_{i}");
        let cross = format!("{from}.{}", names.cross_attn);
        self_attention(src, sink, &from, &to)?;
        norm(
            src,
            sink,
            &format!("{from}.{}", names.cross_norm),
            &format!("{to}/attention/layer_norm"),
        )?;
        linear(
            src,
            sink,
            &format!("{cross}.{}", names.proj[0]),
            &format!("{to}/attention/linear_0"),
            d,
            d,
        )?;
        fused(
            src,
            sink,
            &cross,
            &[1, 2],
            &format!("{to}/attention/linear_1"),
        )?;
        linear(
            src,
            sink,
            &format!("{cross}.{}", names.proj[3]),
            &format!("{to}/attention/linear_2"),
            d,
            d,
        )?;
        ffn(src, sink, &from, &to)?;
    }
    norm(src, sink, names.dec_norm, "decoder/layer_norm")
}

/// `json[key]` as a list of token ids (absent: empty).
pub(crate) fn json_ids(json: &serde_json::Value, key: &str, ctx: &str) -> Result<Vec<u32>> {
    match json.get(key) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => v
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
                    .collect::<Option<Vec<u32>>>()
            })
            .ok_or_else(|| Error::Convert(format!("{ctx}: {key} is not a list of token ids"))),
    }
}

/// `json[key]` as (decoder layer, head) pairs (absent: empty).
pub(crate) fn json_heads(
    json: &serde_json::Value,
    key: &str,
    ctx: &str,
) -> Result<Vec<(u32, u32)>> {
    match json.get(key) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => v
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|p| {
                        let p = p.as_array()?;
                        let l = u32::try_from(p.first()?.as_u64()?).ok()?;
                        let h = u32::try_from(p.get(1)?.as_u64()?).ok()?;
                        (p.len() == 2).then_some((l, h))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                Error::Convert(format!("{ctx}: {key} is not a list of [layer, head] pairs"))
            }),
    }
}
