//! Encoding and validation of the config and vocabulary sections.
use super::layout::{
    CONFIG_ACT_MASK, CONFIG_ACT_SHIFT, CONFIG_FIXED_LEN, CONFIG_FLAG_MULTILINGUAL,
};
use super::{ActivationMode, ModelConfig, SpecialTokens};
use crate::{Error, Result};

/// Little-endian cursor over untrusted bytes: every read is bounds-checked.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    }
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Serialises `c` as the v1 config section.
pub(crate) fn encode_config(c: &ModelConfig) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for v in [
        c.n_mels,
        c.n_audio_ctx,
        c.n_audio_state,
        c.n_audio_head,
        c.n_audio_layer,
        c.n_text_ctx,
        c.n_text_state,
        c.n_text_head,
        c.n_text_layer,
        c.n_vocab,
    ] {
        put_u32(&mut out, v);
    }
    let act = match c.activations {
        ActivationMode::None => 0,
        ActivationMode::Dynamic => 1,
        ActivationMode::Static => 2,
    };
    let multilingual = if c.multilingual {
        CONFIG_FLAG_MULTILINGUAL
    } else {
        0
    };
    put_u32(&mut out, multilingual | act << CONFIG_ACT_SHIFT);
    let t = &c.tokens;
    for v in [
        t.eot,
        t.sot,
        t.sot_prev,
        t.sot_lm,
        t.no_speech,
        t.no_timestamps,
        t.timestamp_begin,
        t.transcribe,
        t.translate,
    ] {
        put_u32(&mut out, v);
    }
    debug_assert_eq!(out.len(), CONFIG_FIXED_LEN);
    for list in [&c.suppress_ids, &c.suppress_ids_begin] {
        put_u32(&mut out, list.len() as u32);
        for &id in list.iter() {
            put_u32(&mut out, id);
        }
    }
    put_u32(&mut out, c.alignment_heads.len() as u32);
    for &(layer, head) in &c.alignment_heads {
        put_u32(&mut out, layer);
        put_u32(&mut out, head);
    }
    put_u32(&mut out, c.languages.len() as u32);
    for (code, id) in &c.languages {
        out.push(code.len() as u8);
        out.extend_from_slice(code.as_bytes());
        put_u32(&mut out, *id);
    }
    out
}

/// Parses the config section; `ctx` names the file for errors.
pub(crate) fn decode_config(bytes: &[u8], ctx: &str) -> Result<ModelConfig> {
    let err = |m: String| Error::format(ctx, format!("config section: {m}"));
    let short = || err(format!("truncated ({} bytes)", bytes.len()));
    let mut r = Cursor::new(bytes);
    let mut d = [0u32; 10];
    for v in d.iter_mut() {
        *v = r.u32().ok_or_else(short)?;
    }
    let flags = r.u32().ok_or_else(short)?;
    if flags & !(CONFIG_FLAG_MULTILINGUAL | CONFIG_ACT_MASK) != 0 {
        return Err(err(format!("unknown flag bits {flags:#x}")));
    }
    let activations = match (flags & CONFIG_ACT_MASK) >> CONFIG_ACT_SHIFT {
        0 => ActivationMode::None,
        1 => ActivationMode::Dynamic,
        2 => ActivationMode::Static,
        m => return Err(err(format!("unknown activation mode {m}"))),
    };
    let mut s = [0u32; 9];
    for v in s.iter_mut() {
        *v = r.u32().ok_or_else(short)?;
    }
    let mut lists = [Vec::new(), Vec::new()];
    for (list, what) in lists.iter_mut().zip(["suppress_ids", "suppress_ids_begin"]) {
        let n = r.u32().ok_or_else(short)? as usize;
        if n > r.remaining() / 4 {
            return Err(err(format!("{what}: {n} ids do not fit in the section")));
        }
        *list = (0..n).map(|_| r.u32().unwrap_or(0)).collect();
    }
    let n = r.u32().ok_or_else(short)? as usize;
    if n > r.remaining() / 8 {
        return Err(err(format!(
            "alignment_heads: {n} pairs do not fit in the section"
        )));
    }
    let alignment_heads = (0..n)
        .map(|_| (r.u32().unwrap_or(0), r.u32().unwrap_or(0)))
        .collect();
    let n = r.u32().ok_or_else(short)? as usize;
    // Each language needs at least 1 + 1 + 4 bytes.
    if n > r.remaining() / 6 {
        return Err(err(format!("{n} languages do not fit in the section")));
    }
    let mut languages = Vec::with_capacity(n);
    for i in 0..n {
        let len = r.u8().ok_or_else(short)? as usize;
        let code = r.take(len).ok_or_else(short)?;
        let code = std::str::from_utf8(code)
            .map_err(|_| err(format!("language {i}: code is not UTF-8")))?;
        let id = r.u32().ok_or_else(short)?;
        languages.push((code.to_string(), id));
    }
    if r.remaining() != 0 {
        return Err(err(format!(
            "{} unexpected bytes after the last field",
            r.remaining()
        )));
    }
    let [suppress_ids, suppress_ids_begin] = lists;
    let c = ModelConfig {
        n_mels: d[0],
        n_audio_ctx: d[1],
        n_audio_state: d[2],
        n_audio_head: d[3],
        n_audio_layer: d[4],
        n_text_ctx: d[5],
        n_text_state: d[6],
        n_text_head: d[7],
        n_text_layer: d[8],
        n_vocab: d[9],
        multilingual: flags & CONFIG_FLAG_MULTILINGUAL != 0,
        tokens: SpecialTokens {
            eot: s[0],
            sot: s[1],
            sot_prev: s[2],
            sot_lm: s[3],
            no_speech: s[4],
            no_timestamps: s[5],
            timestamp_begin: s[6],
            transcribe: s[7],
            translate: s[8],
        },
        suppress_ids,
        suppress_ids_begin,
        alignment_heads,
        languages,
        activations,
    };
    validate_config(&c, ctx)?;
    Ok(c)
}

/// The sanity rules both the writer and the loader enforce.
pub(crate) fn validate_config(c: &ModelConfig, ctx: &str) -> Result<()> {
    let err = |m: String| Err(Error::format(ctx, format!("config: {m}")));
    let dims = [
        ("n_mels", c.n_mels),
        ("n_audio_ctx", c.n_audio_ctx),
        ("n_audio_state", c.n_audio_state),
        ("n_audio_head", c.n_audio_head),
        ("n_audio_layer", c.n_audio_layer),
        ("n_text_ctx", c.n_text_ctx),
        ("n_text_state", c.n_text_state),
        ("n_text_head", c.n_text_head),
        ("n_text_layer", c.n_text_layer),
        ("n_vocab", c.n_vocab),
    ];
    for (name, v) in dims {
        if v == 0 {
            return err(format!("{name} is 0"));
        }
    }
    if !c.n_audio_state.is_multiple_of(c.n_audio_head) {
        return err(format!(
            "n_audio_head {} does not divide n_audio_state {}",
            c.n_audio_head, c.n_audio_state
        ));
    }
    if !c.n_text_state.is_multiple_of(c.n_text_head) {
        return err(format!(
            "n_text_head {} does not divide n_text_state {}",
            c.n_text_head, c.n_text_state
        ));
    }
    let t = &c.tokens;
    let specials = [
        ("eot", t.eot),
        ("sot", t.sot),
        ("sot_prev", t.sot_prev),
        ("sot_lm", t.sot_lm),
        ("no_speech", t.no_speech),
        ("no_timestamps", t.no_timestamps),
        ("timestamp_begin", t.timestamp_begin),
        ("transcribe", t.transcribe),
        ("translate", t.translate),
    ];
    for (name, id) in specials {
        if id >= c.n_vocab {
            return err(format!("{name} id {id} >= n_vocab {}", c.n_vocab));
        }
    }
    for (what, list) in [
        ("suppress_ids", &c.suppress_ids),
        ("suppress_ids_begin", &c.suppress_ids_begin),
    ] {
        if let Some(id) = list.iter().find(|&&id| id >= c.n_vocab) {
            return err(format!("{what}: id {id} >= n_vocab {}", c.n_vocab));
        }
    }
    for &(layer, head) in &c.alignment_heads {
        if layer >= c.n_text_layer || head >= c.n_text_head {
            return err(format!(
                "alignment head ({layer}, {head}) outside {} layers × {} heads",
                c.n_text_layer, c.n_text_head
            ));
        }
    }
    for (code, id) in &c.languages {
        if code.is_empty() || code.len() > 255 || !code.bytes().all(|b| b.is_ascii_graphic()) {
            return err(format!(
                "language code {code:?} is not 1-255 ASCII characters"
            ));
        }
        if *id >= c.n_vocab {
            return err(format!("language {code}: id {id} >= n_vocab {}", c.n_vocab));
        }
    }
    if c.suppress_ids.len() > u32::MAX as usize
        || c.suppress_ids_begin.len() > u32::MAX as usize
        || c.alignment_heads.len() > u32::MAX as usize
        || c.languages.len() > u32::MAX as usize
    {
        return err("a list is longer than u32::MAX".into());
    }
    Ok(())
}

/// Serialises the vocabulary section: count, count + 1 offsets, byte blob.
pub(crate) fn encode_vocab(vocab: &[Vec<u8>], ctx: &str) -> Result<Vec<u8>> {
    let total: usize = vocab.iter().map(|t| t.len()).sum();
    if total > u32::MAX as usize || vocab.len() >= u32::MAX as usize {
        return Err(Error::format(ctx, "vocabulary larger than 4 GiB"));
    }
    let mut out = Vec::with_capacity(4 + 4 * (vocab.len() + 1) + total);
    put_u32(&mut out, vocab.len() as u32);
    let mut off = 0u32;
    put_u32(&mut out, 0);
    for t in vocab {
        off += t.len() as u32;
        put_u32(&mut out, off);
    }
    for t in vocab {
        out.extend_from_slice(t);
    }
    Ok(out)
}

/// Where the parts of a validated vocabulary section lie, relative to the section.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VocabLayout {
    pub(crate) count: u32,
    /// Start of the (count + 1) u32 offsets.
    pub(crate) offsets: usize,
    /// Start of the byte blob.
    pub(crate) blob: usize,
}

/// Checks the vocabulary section: count, monotonic offsets, blob length.
pub(crate) fn decode_vocab(bytes: &[u8], n_vocab: u32, ctx: &str) -> Result<VocabLayout> {
    let err = |m: String| Error::format(ctx, format!("vocabulary section: {m}"));
    let mut r = Cursor::new(bytes);
    let count = r
        .u32()
        .ok_or_else(|| err(format!("truncated ({} bytes)", bytes.len())))?;
    if count != n_vocab {
        return Err(err(format!("{count} tokens but n_vocab is {n_vocab}")));
    }
    let n_off = count as usize + 1;
    if n_off > r.remaining() / 4 {
        return Err(err(format!(
            "{count} token offsets do not fit in {} bytes",
            bytes.len()
        )));
    }
    let offsets = r.pos();
    let blob = offsets + 4 * n_off;
    let blob_len = bytes.len() - blob;
    let mut prev = 0u32;
    for i in 0..n_off {
        let v = r.u32().unwrap_or(u32::MAX);
        if (i == 0 && v != 0) || v < prev {
            return Err(err(format!("token offset {i} ({v}) out of order")));
        }
        prev = v;
    }
    if prev as usize != blob_len {
        return Err(err(format!(
            "token bytes end at {prev} but the blob holds {blob_len} bytes"
        )));
    }
    Ok(VocabLayout {
        count,
        offsets,
        blob,
    })
}
