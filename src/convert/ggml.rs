//! whisper.cpp's legacy ggml model files (`ggml-*.bin`), as `whisper_model_load`
//! reads them (little-endian i32 unless stated): magic `0x67676d6c`; n_vocab,
//! n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
//! n_text_state, n_text_head, n_text_layer, n_mels, ftype; mel filters (n_mel,
//! n_fft, n_mel × n_fft f32); vocabulary (count, then per token a u32 length and
//! its bytes: the text tokens, ids 0 .. eot − 1); tensors until the end of the
//! file (n_dims, name length, ggml type, dims innermost first, name, data).
//! Tensor names are OpenAI's.
use super::sink::{self, floats, FloatType, Sink, SourceTensor, TensorSource, Q4};
use super::vocab::Vocabulary;
use crate::format::ModelConfig;
use crate::{Error, Result};
use std::collections::HashMap;

pub(crate) const MAGIC: u32 = 0x6767_6d6c;

/// ggml tensor types whisper.cpp files use, with their block size and bytes per
/// block (ggml's `type_traits`): every quantized type packs 32 elements per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
}

impl GgmlType {
    fn from_code(c: i32) -> Option<GgmlType> {
        Some(match c {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            _ => return None,
        })
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "f32",
            GgmlType::F16 => "f16",
            GgmlType::Q4_0 => "q4_0",
            GgmlType::Q4_1 => "q4_1",
            GgmlType::Q5_0 => "q5_0",
            GgmlType::Q5_1 => "q5_1",
            GgmlType::Q8_0 => "q8_0",
        }
    }
    /// (elements, bytes) per block.
    fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
        }
    }
    pub(crate) fn is_quantized(self) -> bool {
        !matches!(self, GgmlType::F32 | GgmlType::F16)
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantizes whole blocks as ggml's `dequantize_row_*` do (value = d · code
/// (− 8 / − 16 for the symmetric 4/5-bit types) (+ m for the `_1` types);
/// 4-bit: element j in byte j's low nibble, j + 16 in its high nibble; 5-bit: the
/// fifth bits in a u32, bit j for element j and bit j + 16 for element j + 16).
pub(crate) fn dequantize(t: GgmlType, data: &[u8]) -> Vec<f32> {
    let (_, bb) = t.block();
    let mut out = Vec::with_capacity(data.len() / bb * 32);
    for b in data.chunks_exact(bb) {
        let d = f16_at(b, 0);
        let mut block = [0f32; 32];
        match t {
            GgmlType::Q8_0 => {
                for (j, v) in block.iter_mut().enumerate() {
                    *v = b[2 + j] as i8 as f32 * d;
                }
            }
            GgmlType::Q4_0 | GgmlType::Q4_1 => {
                let (m, qs) = if t == GgmlType::Q4_1 {
                    (f16_at(b, 2), &b[4..20])
                } else {
                    (0.0, &b[2..18])
                };
                let off = if t == GgmlType::Q4_0 { 8 } else { 0 };
                for j in 0..16 {
                    block[j] = ((qs[j] & 0x0f) as i32 - off) as f32 * d + m;
                    block[j + 16] = ((qs[j] >> 4) as i32 - off) as f32 * d + m;
                }
            }
            GgmlType::Q5_0 | GgmlType::Q5_1 => {
                let (m, rest) = if t == GgmlType::Q5_1 {
                    (f16_at(b, 2), &b[4..])
                } else {
                    (0.0, &b[2..])
                };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..20];
                let off = if t == GgmlType::Q5_0 { 16 } else { 0 };
                for j in 0..16 {
                    let h0 = ((qh >> j) & 1) << 4;
                    let h1 = ((qh >> (j + 16)) & 1) << 4;
                    block[j] = (((qs[j] & 0x0f) as u32 | h0) as i32 - off) as f32 * d + m;
                    block[j + 16] = (((qs[j] >> 4) as u32 | h1) as i32 - off) as f32 * d + m;
                }
            }
            GgmlType::F32 | GgmlType::F16 => unreachable!("float types are not block-quantized"),
        }
        out.extend_from_slice(&block);
    }
    out
}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
    ctx: &'a str,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|e| self.b.get(self.pos..e))
            .ok_or_else(|| {
                Error::Convert(format!(
                    "{}: truncated: {what} at byte {} needs {n} bytes, the file has {}",
                    self.ctx,
                    self.pos,
                    self.b.len()
                ))
            })?;
        self.pos += n;
        Ok(s)
    }
    fn i32(&mut self, what: &str) -> Result<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn count(&mut self, what: &str) -> Result<usize> {
        let v = self.i32(what)?;
        usize::try_from(v)
            .map_err(|_| Error::Convert(format!("{}: {what} is negative ({v})", self.ctx)))
    }
}

struct GgmlTensors<'a> {
    ctx: String,
    tensors: HashMap<String, (GgmlType, Vec<usize>, &'a [u8])>,
    /// Keep q4_0 blocks as sotto int4-sym (group 32) instead of dequantizing.
    keep_q4_0: bool,
}

/// q4_0 blocks as codes and scales (element j in byte j's low nibble, j + 16 in
/// its high nibble; value d · (code − 8)).
fn q4_0_codes(data: &[u8]) -> Q4 {
    let blocks = data.len() / 18;
    let mut q = Q4 {
        codes: Vec::with_capacity(blocks * 32),
        scales: Vec::with_capacity(blocks),
    };
    for b in data.chunks_exact(18) {
        q.scales.push(f16_at(b, 0));
        q.codes.extend(b[2..18].iter().map(|&x| x & 0x0f));
        q.codes.extend(b[2..18].iter().map(|&x| x >> 4));
    }
    q
}

impl TensorSource for GgmlTensors<'_> {
    fn file(&self) -> &str {
        &self.ctx
    }
    fn get(&mut self, name: &str) -> Result<Option<SourceTensor>> {
        let Some((t, shape, data)) = self.tensors.get(name) else {
            return Ok(None);
        };
        if *t == GgmlType::Q4_0 && self.keep_q4_0 && shape.len() == 2 {
            return Ok(Some(SourceTensor {
                shape: shape.clone(),
                values: Vec::new(),
                exact: true,
                q4: Some(q4_0_codes(data)),
            }));
        }
        let (values, exact) = match t {
            GgmlType::F32 => (floats(FloatType::F32, data), true),
            GgmlType::F16 => (floats(FloatType::F16, data), true),
            q => (dequantize(*q, data), false),
        };
        Ok(Some(SourceTensor {
            shape: shape.clone(),
            values,
            exact,
            q4: None,
        }))
    }
}

/// What a ggml file held beside its tensors.
pub(crate) struct GgmlInfo {
    /// The quantized ggml types of its tensors (empty for an f16/f32 file).
    pub quantized: Vec<&'static str>,
}

/// Reads a whisper.cpp ggml file's bytes into a sink.
/// `keep_q4_0`: a file whose only quantized type is q4_0 keeps its blocks as
/// sotto int4-sym with group 32 (the same values), nothing dequantized.
pub(crate) fn read(
    bytes: &[u8],
    ctx: &str,
    wide: bool,
    keep_q4_0: bool,
) -> Result<(Sink, GgmlInfo)> {
    let err = |m: String| Error::Convert(format!("{ctx}: {m}"));
    let mut r = Cur {
        b: bytes,
        pos: 0,
        ctx,
    };
    let magic = r.i32("magic")? as u32;
    if magic != MAGIC {
        return Err(err(format!("magic {magic:#x} is not ggml's {MAGIC:#x}")));
    }
    let mut h = [0u32; 10];
    let names = [
        "n_vocab",
        "n_audio_ctx",
        "n_audio_state",
        "n_audio_head",
        "n_audio_layer",
        "n_text_ctx",
        "n_text_state",
        "n_text_head",
        "n_text_layer",
        "n_mels",
    ];
    for (v, name) in h.iter_mut().zip(names) {
        let x = r.i32(name)?;
        *v = u32::try_from(x)
            .ok()
            .filter(|&x| x > 0)
            .ok_or_else(|| err(format!("hparams: {name} = {x}")))?;
    }
    let _ftype = r.i32("ftype")?;
    let (n_mel, n_fft) = (r.count("mel filter rows")?, r.count("mel filter columns")?);
    if n_mel != h[9] as usize || n_fft != 201 {
        return Err(err(format!(
            "mel filters are {n_mel} × {n_fft}, expected n_mels {} × 201",
            h[9]
        )));
    }
    let mel = floats(FloatType::F32, r.take(n_mel * n_fft * 4, "mel filters")?);
    let n_words = r.count("vocabulary size")?;
    if n_words > h[0] as usize {
        return Err(err(format!(
            "{n_words} vocabulary entries but n_vocab is {}",
            h[0]
        )));
    }
    // Each token takes at least its 4-byte length: a hostile count allocates nothing.
    let mut words = Vec::with_capacity(n_words.min(r.b.len().saturating_sub(r.pos) / 4));
    for i in 0..n_words {
        let len = r.count("token length")?;
        words.push(r.take(len, &format!("token {i}"))?.to_vec());
    }
    let n_vocab = h[0];
    let vocab = Vocabulary::from_ggml(words, n_vocab, ctx)?;

    let mut tensors = HashMap::new();
    let mut quantized: Vec<&'static str> = Vec::new();
    while r.pos < bytes.len() {
        let at = r.pos;
        let n_dims = r.count("tensor rank")?;
        let name_len = r.count("tensor name length")?;
        let code = r.i32("tensor type")?;
        if !(1..=4).contains(&n_dims) || name_len == 0 || name_len > 4096 {
            return Err(err(format!(
                "tensor at byte {at}: rank {n_dims}, name length {name_len}"
            )));
        }
        let mut ne = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            let d = r.count("tensor dimension")?;
            if d == 0 {
                return Err(err(format!("tensor at byte {at}: a dimension is 0")));
            }
            ne.push(d);
        }
        let name = String::from_utf8(r.take(name_len, "tensor name")?.to_vec())
            .map_err(|_| err(format!("tensor at byte {at}: name is not UTF-8")))?;
        let t = GgmlType::from_code(code)
            .ok_or_else(|| err(format!("tensor {name}: unsupported ggml type {code}")))?;
        let elements = ne.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let (per, bb) = t.block();
        if ne[0] % per != 0 {
            return Err(err(format!(
                "tensor {name}: rows of {} are not whole {} blocks",
                ne[0],
                t.name()
            )));
        }
        let len = elements
            .and_then(|e| (e / per).checked_mul(bb))
            .ok_or_else(|| err(format!("tensor {name}: shape {ne:?} overflows")))?;
        let data = r.take(len, &format!("tensor {name}"))?;
        if t.is_quantized() && !quantized.contains(&t.name()) {
            quantized.push(t.name());
        }
        let shape: Vec<usize> = ne.into_iter().rev().collect();
        if tensors.insert(name.clone(), (t, shape, data)).is_some() {
            return Err(err(format!("tensor {name} appears twice")));
        }
    }

    let multilingual = n_vocab >= 51865;
    let sp = vocab.special.clone();
    // whisper.cpp derives these at run time; as Whisper's decoding does: the
    // non-speech tokens and the special tokens other than eot are suppressed, and
    // " " and eot at the start of a segment.
    let mut suppress = non_speech_tokens(&vocab.tokens[..sp.eot as usize]);
    suppress.extend([
        sp.sot,
        sp.translate,
        sp.transcribe,
        sp.sot_lm,
        sp.sot_prev,
        sp.no_speech,
    ]);
    suppress.sort_unstable();
    suppress.dedup();
    let space = vocab
        .tokens
        .iter()
        .position(|t| t == b" ")
        .map(|i| i as u32);
    let config = ModelConfig {
        n_mels: h[9],
        n_audio_ctx: h[1],
        n_audio_state: h[2],
        n_audio_head: h[3],
        n_audio_layer: h[4],
        n_text_ctx: h[5],
        n_text_state: h[6],
        n_text_head: h[7],
        n_text_layer: h[8],
        n_vocab,
        multilingual,
        tokens: sp.clone(),
        suppress_ids: suppress,
        suppress_ids_begin: space.into_iter().chain([sp.eot]).collect(),
        // Not stored in ggml files (whisper.cpp keeps a table per model name).
        alignment_heads: Vec::new(),
        languages: if multilingual {
            vocab.languages.clone()
        } else {
            Vec::new()
        },
        activations: Default::default(),
    };
    crate::format::validate_config(&config, ctx)?;
    let mut src = GgmlTensors {
        ctx: ctx.to_string(),
        tensors,
        keep_q4_0: keep_q4_0 && quantized == ["q4_0"],
    };
    let mut sink = Sink::new(config.clone(), vocab.tokens, mel, wide);
    sink::assemble(&mut src, &sink::OPENAI_NAMES, &config, &mut sink)?;
    Ok((sink, GgmlInfo { quantized }))
}

/// Whisper's `non_speech_tokens` (openai/whisper `tokenizer.py`): symbols and
/// bracket runs, alone or after a space, that are one token; the first token of
/// the musical symbols; and the first tokens of " -" and " '". The BPE encoding
/// of such short strings is taken as: the one token whose bytes equal the
/// string, or (first token) the longest token that starts it.
fn non_speech_tokens(tokens: &[Vec<u8>]) -> Vec<u32> {
    let by_bytes: HashMap<&[u8], u32> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.is_empty())
        .map(|(i, t)| (t.as_slice(), i as u32))
        .collect();
    let first = |s: &[u8]| -> Option<u32> {
        (1..=s.len())
            .rev()
            .find_map(|n| by_bytes.get(&s[..n]).copied())
    };
    let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』"
        .chars()
        .map(String::from)
        .collect();
    symbols.extend(
        "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪"
            .split(' ')
            .map(String::from),
    );
    let misc: Vec<String> = "♩♪♫♬♭♮♯".chars().map(String::from).collect();
    let mut out: Vec<u32> = [" -", " '"]
        .iter()
        .filter_map(|s| first(s.as_bytes()))
        .collect();
    for s in &symbols {
        for v in [s.clone(), format!(" {s}")] {
            if let Some(&id) = by_bytes.get(v.as_bytes()) {
                out.push(id);
            }
        }
    }
    for s in &misc {
        for v in [s.clone(), format!(" {s}")] {
            if let Some(id) = first(v.as_bytes()) {
                out.push(id);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_dequantize_as_ggml_defines_them() {
        let d = half::f16::from_f32(0.5).to_le_bytes();
        let m = half::f16::from_f32(-1.0).to_le_bytes();
        // q8_0: codes as i8 times d.
        let mut q8 = d.to_vec();
        q8.extend((0..32).map(|j| (j as i8 - 16) as u8));
        let v = dequantize(GgmlType::Q8_0, &q8);
        assert_eq!(v[0], -8.0);
        assert_eq!(v[31], 7.5);
        // q4_0: byte j = element j (low) | element j + 16 (high), minus 8.
        let mut q4 = d.to_vec();
        q4.extend((0..16).map(|j| (j as u8) | (15 - j as u8) << 4));
        let v = dequantize(GgmlType::Q4_0, &q4);
        assert_eq!((v[0], v[1], v[16], v[31]), (-4.0, -3.5, 3.5, -4.0));
        // q4_1: d · code + m.
        let mut q41 = d.to_vec();
        q41.extend_from_slice(&m);
        q41.extend(std::iter::repeat_n(0x31u8, 16));
        let v = dequantize(GgmlType::Q4_1, &q41);
        assert_eq!((v[0], v[16]), (-0.5, 0.5));
        // q5_0: the fifth bit of element j is bit j of qh; minus 16.
        let mut q50 = d.to_vec();
        q50.extend_from_slice(&(1u32 | 1 << 16).to_le_bytes());
        q50.extend(std::iter::repeat_n(0u8, 16));
        let v = dequantize(GgmlType::Q5_0, &q50);
        assert_eq!((v[0], v[1], v[16], v[17]), (0.0, -8.0, 0.0, -8.0));
        // q5_1: d · code + m, no offset.
        let mut q51 = d.to_vec();
        q51.extend_from_slice(&m);
        q51.extend_from_slice(&(1u32 << 31).to_le_bytes());
        q51.extend(std::iter::repeat_n(0xffu8, 16));
        let v = dequantize(GgmlType::Q5_1, &q51);
        assert_eq!((v[0], v[31]), (6.5, 14.5));
    }
}
