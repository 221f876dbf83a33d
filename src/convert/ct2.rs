//! Reader for CTranslate2's `model.bin` (version 6) and its conversion to `.sotto`.
//!
//! Layout (little-endian): u32 version; u16 length + spec name (NUL-terminated);
//! u32 revision; u32 variable count; per variable: u16 length + name
//! (NUL-terminated), u8 rank, rank × u32 dims, u8 dtype, u32 byte count, data;
//! then u32 alias count and per alias two length-prefixed names (alias, target).
use super::sink::{json_heads, json_ids, Sink};
use super::vocab::Vocabulary;
use crate::format::{FileWriter, ModelConfig};
use crate::{Error, Result};
use std::collections::{BTreeSet, HashMap};

/// CTranslate2's `DataType` enum, in its declaration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ct2Type {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Type {
    fn from_code(c: u8) -> Option<Ct2Type> {
        use Ct2Type::*;
        Some(match c {
            0 => F32,
            1 => I8,
            2 => I16,
            3 => I32,
            4 => F16,
            5 => Bf16,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Ct2Type::I8 => 1,
            Ct2Type::I16 | Ct2Type::F16 | Ct2Type::Bf16 => 2,
            Ct2Type::F32 | Ct2Type::I32 => 4,
        }
    }
    fn is_float(self) -> bool {
        matches!(self, Ct2Type::F32 | Ct2Type::F16 | Ct2Type::Bf16)
    }
}

/// One variable of a `model.bin`, borrowing its data.
#[derive(Debug)]
pub struct Ct2Variable<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: Ct2Type,
    pub data: &'a [u8],
}

impl Ct2Variable<'_> {
    /// The value of a scalar (rank-0) variable as an integer.
    pub fn scalar(&self) -> Option<i64> {
        if !self.shape.is_empty() {
            return None;
        }
        let d = self.data;
        Some(match self.dtype {
            Ct2Type::I8 => d[0] as i8 as i64,
            Ct2Type::I16 => i16::from_le_bytes([d[0], d[1]]) as i64,
            Ct2Type::I32 => i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64,
            Ct2Type::F32 => f32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64,
            Ct2Type::F16 => half::f16::from_le_bytes([d[0], d[1]]).to_f32() as i64,
            Ct2Type::Bf16 => half::bf16::from_le_bytes([d[0], d[1]]).to_f32() as i64,
        })
    }

    /// The elements as f32.
    fn to_f32(&self) -> Vec<f32> {
        let d = self.data;
        match self.dtype {
            Ct2Type::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Ct2Type::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Ct2Type::Bf16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A parsed `model.bin`.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub spec: String,
    pub revision: u32,
    pub variables: Vec<Ct2Variable<'a>>,
    /// (alias, target) pairs: `alias` names the same data as `target`.
    pub aliases: Vec<(String, String)>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| {
            Error::Convert(format!(
                "model.bin: truncated at byte {} (wanted {n} more of {})",
                self.pos,
                self.b.len()
            ))
        })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| {
            Error::Convert(format!("model.bin: name at byte {} is not UTF-8", self.pos))
        })
    }
}

/// Parses a CTranslate2 `model.bin` of version 6.
pub fn parse_model_bin(bytes: &[u8]) -> Result<Ct2Model<'_>> {
    let mut r = Reader { b: bytes, pos: 0 };
    let version = r.u32()?;
    if version != 6 {
        return Err(Error::Convert(format!(
            "model.bin: CTranslate2 format version {version}, only version 6 is supported"
        )));
    }
    let spec = r.string()?;
    let revision = r.u32()?;
    let n = r.u32()? as usize;
    let mut variables = Vec::with_capacity(n.min(bytes.len() / 8));
    for _ in 0..n {
        let name = r.string()?;
        let rank = r.u8()? as usize;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(r.u32()? as usize);
        }
        let code = r.u8()?;
        let dtype = Ct2Type::from_code(code).ok_or_else(|| {
            Error::Convert(format!("model.bin: {name}: unknown data type {code}"))
        })?;
        let len = r.u32()? as usize;
        let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if elements.and_then(|e| e.checked_mul(dtype.size())) != Some(len) {
            return Err(Error::Convert(format!(
                "model.bin: {name}: {len} bytes do not match shape {shape:?} of {dtype:?}"
            )));
        }
        let data = r.take(len)?;
        variables.push(Ct2Variable {
            name,
            shape,
            dtype,
            data,
        });
    }
    let mut aliases = Vec::new();
    if r.pos < bytes.len() {
        let n = r.u32()?;
        for _ in 0..n {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.push((alias, target));
        }
    }
    Ok(Ct2Model {
        spec,
        revision,
        variables,
        aliases,
    })
}

fn conv_err(m: impl Into<String>) -> Error {
    Error::Convert(m.into())
}

/// How CTranslate2 int8 weights become `.sotto` tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Int8Policy {
    /// Codes kept, scales inverted: sotto's `int8` element type.
    Direct,
    /// Dequantized to f32 (a conversion that quantizes again).
    Dequantize,
}

/// Where the vocabulary of a CTranslate2 model comes from.
pub(crate) enum Ct2Vocab<'a> {
    TokenizerJson(&'a str),
    /// `vocabulary.json` or `vocabulary.txt`, parsed into texts by id.
    List(Vec<String>, &'a str),
}

/// Converts a CTranslate2 Whisper model into a `.sotto` writer: tensors of rank
/// ≥ 2 stay f16 (names unchanged), 1-D tensors become f32, scalars go into the
/// config; the aliased output projection is not stored (it is the embedding).
pub fn convert_ct2(
    model_bin: &[u8],
    config_json: &str,
    tokenizer_json: &str,
) -> Result<FileWriter> {
    let sink = read(
        model_bin,
        config_json,
        Ct2Vocab::TokenizerJson(tokenizer_json),
        "model.bin",
        false,
        Int8Policy::Direct,
    )?;
    if !sink.packed_as_stored.is_empty() {
        return Err(conv_err(
            "model.bin: int8 weights; `sotto fetch` expects a float model (use `sotto convert`)",
        ));
    }
    Ok(sink.writer)
}

/// A variable's values as f32: float types as stored; int8/int16 divided by the
/// `{name}_scale` variable (CTranslate2 stores `scale` with `code = round(w · scale)`,
/// one per row or one for the tensor).
fn dequantized(v: &Ct2Variable, scale: Option<&Ct2Variable>, ctx: &str) -> Result<Vec<f32>> {
    if v.dtype.is_float() {
        return Ok(v.to_f32());
    }
    let scale = scale.ok_or_else(|| {
        conv_err(format!(
            "{ctx}: {}: {:?} weights without a {}_scale",
            v.name, v.dtype, v.name
        ))
    })?;
    if !scale.dtype.is_float() {
        return Err(conv_err(format!("{ctx}: {}_scale is not float", v.name)));
    }
    let s = scale.to_f32();
    let rows = v.shape.first().copied().unwrap_or(1);
    let per_row = match s.len() {
        1 => false,
        n if n == rows => true,
        n => {
            return Err(conv_err(format!(
                "{ctx}: {}_scale has {n} values for {rows} rows",
                v.name
            )))
        }
    };
    let k = (v.data.len() / v.dtype.size())
        .checked_div(rows)
        .unwrap_or(0);
    let codes: Vec<f32> = match v.dtype {
        Ct2Type::I8 => v.data.iter().map(|&b| b as i8 as f32).collect(),
        Ct2Type::I16 => v
            .data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
            .collect(),
        t => {
            return Err(conv_err(format!(
                "{ctx}: {}: {t:?} weights are not supported",
                v.name
            )))
        }
    };
    Ok(codes
        .iter()
        .enumerate()
        .map(|(i, &c)| c / s[if per_row && k > 0 { i / k } else { 0 }])
        .collect())
}

/// Reads a CTranslate2 Whisper model into a sink. `wide` keeps rank ≥ 2 floats in
/// f32 (the output is quantized next).
pub(crate) fn read(
    model_bin: &[u8],
    config_json: &str,
    vocab: Ct2Vocab,
    ctx: &str,
    wide: bool,
    int8: Int8Policy,
) -> Result<Sink> {
    let model = parse_model_bin(model_bin).map_err(|e| match e {
        Error::Convert(m) => Error::Convert(m.replacen("model.bin", ctx, 1)),
        e => e,
    })?;
    if model.spec != "WhisperSpec" {
        return Err(conv_err(format!(
            "{ctx} holds a {}, not a WhisperSpec",
            model.spec
        )));
    }
    let vars: HashMap<&str, &Ct2Variable> = model
        .variables
        .iter()
        .map(|v| (v.name.as_str(), v))
        .collect();
    let shape = |name: &str, rank: usize| -> Result<&[usize]> {
        let v = vars
            .get(name)
            .ok_or_else(|| conv_err(format!("{ctx} has no variable {name}")))?;
        if v.shape.len() != rank {
            return Err(conv_err(format!(
                "{ctx}: {name}: shape {:?}, expected rank {rank}",
                v.shape
            )));
        }
        Ok(&v.shape)
    };
    let scalar = |name: &str| -> Result<u32> {
        vars.get(name)
            .and_then(|v| v.scalar())
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| conv_err(format!("{ctx} has no integer scalar {name}")))
    };
    let layers = |prefix: &str| -> Result<u32> {
        let found: BTreeSet<u32> = model
            .variables
            .iter()
            .filter_map(|v| v.name.strip_prefix(prefix))
            .filter_map(|rest| rest.split('/').next()?.parse().ok())
            .collect();
        let n = found.len() as u32;
        if n == 0 || found.iter().next_back() != Some(&(n - 1)) {
            return Err(conv_err(format!(
                "{ctx}: {prefix}N layers are not numbered 0..{n}"
            )));
        }
        Ok(n)
    };
    let conv1 = shape("encoder/conv1/weight", 3)?;
    let enc_pos = shape("encoder/position_encodings/encodings", 2)?;
    let dec_pos = shape("decoder/position_encodings/encodings", 2)?;
    let emb = shape("decoder/embeddings/weight", 2)?;
    let dim =
        |v: usize| u32::try_from(v).map_err(|_| conv_err(format!("{ctx}: dimension over u32")));

    let cfg: serde_json::Value =
        serde_json::from_str(config_json).map_err(|e| conv_err(format!("config.json: {e}")))?;

    let n_vocab = dim(emb[0])?;
    let vocab = match vocab {
        Ct2Vocab::TokenizerJson(j) => Vocabulary::from_tokenizer_json(j, n_vocab)?,
        Ct2Vocab::List(texts, vctx) => Vocabulary::from_token_list(&texts, n_vocab, vctx)?,
    };
    let multilingual = n_vocab >= 51865;
    let config = ModelConfig {
        n_mels: dim(conv1[1])?,
        n_audio_ctx: dim(enc_pos[0])?,
        n_audio_state: dim(conv1[0])?,
        n_audio_head: scalar("encoder/num_heads")?,
        n_audio_layer: layers("encoder/layer_")?,
        n_text_ctx: dim(dec_pos[0])?,
        n_text_state: dim(emb[1])?,
        n_text_head: scalar("decoder/num_heads")?,
        n_text_layer: layers("decoder/layer_")?,
        n_vocab,
        multilingual,
        tokens: vocab.special.clone(),
        suppress_ids: json_ids(&cfg, "suppress_ids", "config.json")?,
        suppress_ids_begin: json_ids(&cfg, "suppress_ids_begin", "config.json")?,
        alignment_heads: json_heads(&cfg, "alignment_heads", "config.json")?,
        languages: if multilingual {
            vocab.languages.clone()
        } else {
            Vec::new()
        },
        activations: Default::default(),
    };

    let mel = crate::audio::mel_filter_bank(config.n_mels as usize);
    let mut sink = Sink::new(config, vocab.tokens, mel, wide);
    let aliased: BTreeSet<&str> = model.aliases.iter().map(|(a, _)| a.as_str()).collect();
    for v in &model.variables {
        if v.shape.is_empty() || aliased.contains(v.name.as_str()) || v.name.ends_with("_scale") {
            continue; // scalars live in the config; aliases share their target; scales go with their weight
        }
        let scale = vars.get(format!("{}_scale", v.name).as_str()).copied();
        // Int8 codes with one scale per row map onto sotto's int8 as they are
        // (w = code / ct2_scale = code · (1 / ct2_scale)), for the tensors sotto's
        // quantizer would pack (linear layers, the embedding).
        let packable = crate::quantize::is_quantizable_name(&v.name, v.shape.len());
        if v.dtype == Ct2Type::I8 && int8 == Int8Policy::Direct && packable {
            if let Some(s) = scale.filter(|s| s.dtype.is_float() && s.shape == [v.shape[0]]) {
                let inv: Vec<f32> = s.to_f32().iter().map(|&x| 1.0 / x).collect();
                let codes_ok = v.data.iter().all(|&b| b != 0x80);
                if codes_ok && inv.iter().all(|x| x.is_finite()) {
                    sink.int8_rows(&v.name, &v.shape, v.data.to_vec(), inv)?;
                    continue;
                }
            }
        }
        let values = dequantized(v, scale, ctx)?;
        sink.float(&v.name, &v.shape, &values, v.dtype.is_float())?;
    }
    Ok(sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(out: &mut Vec<u8>, name: &str, shape: &[u32], dtype: u8, data: &[u8]) {
        let n = format!("{name}\0");
        out.extend_from_slice(&(n.len() as u16).to_le_bytes());
        out.extend_from_slice(n.as_bytes());
        out.push(shape.len() as u8);
        for d in shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.push(dtype);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }

    #[test]
    fn parses_variables_and_aliases() {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        b.extend_from_slice(&12u16.to_le_bytes());
        b.extend_from_slice(b"WhisperSpec\0");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        var(&mut b, "encoder/num_heads", &[], 2, &6i16.to_le_bytes());
        var(&mut b, "w", &[2, 1], 4, &[0, 0x3c, 0, 0xc0]);
        b.extend_from_slice(&1u32.to_le_bytes());
        for s in ["p\0", "w\0"] {
            b.extend_from_slice(&(s.len() as u16).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        let m = parse_model_bin(&b).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.revision, 3);
        assert_eq!(m.variables[0].scalar(), Some(6));
        assert_eq!(m.variables[1].to_f32(), vec![1.0, -2.0]);
        assert_eq!(m.aliases, vec![("p".to_string(), "w".to_string())]);
        // Every truncation is an error, never a panic.
        for cut in 0..b.len() - 1 {
            let _ = parse_model_bin(&b[..cut]);
        }
        assert!(parse_model_bin(&b[..b.len() - 5]).is_err());
    }
}
