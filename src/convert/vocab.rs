//! Vocabulary from a Hugging Face `tokenizer.json` (GPT-2 byte-level BPE): token
//! id → raw bytes, the special token ids and the language tokens.
use crate::format::SpecialTokens;
use crate::{Error, Result};
use std::collections::HashMap;

pub(crate) struct Vocabulary {
    /// `tokens[id]`: the token's bytes; special tokens hold their text (`<|en|>`).
    pub(crate) tokens: Vec<Vec<u8>>,
    pub(crate) special: SpecialTokens,
    pub(crate) languages: Vec<(String, u32)>,
}

/// GPT-2's byte-to-character map, inverted: byte-level BPE writes byte `b` as
/// itself when it is a printable Latin-1 character (`!`..=`~`, `¡`..=`¬`,
/// `®`..=`ÿ`), and the remaining 68 bytes, in increasing order, as U+0100, U+0101, ...
fn unicode_to_byte() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut next = 0u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(255 + next).unwrap_or('\u{FFFD}')
        };
        map.insert(c, b);
    }
    map
}

/// Whisper's text for timestamp `i` (20 ms steps): `<|0.00|>`, `<|0.02|>`, ...
fn timestamp_text(i: u32) -> String {
    let cs = i * 2;
    format!("<|{}.{:02}|>", cs / 100, cs % 100)
}

fn err(m: impl Into<String>) -> Error {
    Error::Convert(format!("tokenizer.json: {}", m.into()))
}

/// Whisper's language codes in token order (`<|en|>` = sot + 1, ...): the order of
/// `LANGUAGES` in openai/whisper's `whisper/tokenizer.py`; large-v3 appended `yue`.
/// Needed only for whisper.cpp files, which hold no special token texts.
pub(crate) const LANGUAGE_CODES: [&str; 100] = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

/// Timestamp tokens `<|0.00|>` … `<|30.00|>`.
const TIMESTAMPS: u32 = 1501;

impl Vocabulary {
    pub(crate) fn from_tokenizer_json(json: &str, n_vocab: u32) -> Result<Vocabulary> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        let vocab = v
            .pointer("/model/vocab")
            .and_then(|x| x.as_object())
            .ok_or_else(|| err("no model.vocab object"))?;
        let mut base = Vec::with_capacity(vocab.len());
        for (text, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| err(format!("{text:?}: id is not a number")))?;
            base.push((id, text.as_str()));
        }
        let added = v
            .get("added_tokens")
            .and_then(|x| x.as_array())
            .ok_or_else(|| err("no added_tokens list"))?;
        let mut specials = Vec::with_capacity(added.len());
        for a in added {
            let id = a.get("id").and_then(|x| x.as_u64());
            let text = a.get("content").and_then(|x| x.as_str());
            let (Some(id), Some(text)) = (id, text) else {
                return Err(err("an added token lacks id or content"));
            };
            specials.push((id, text));
        }
        Self::build(&base, &specials, n_vocab, "tokenizer.json")
    }

    /// CTranslate2's `vocabulary.json` (a JSON list) or `vocabulary.txt` (one token
    /// a line): token texts by id, special tokens written `<|...|>`.
    pub(crate) fn from_token_list(texts: &[String], n_vocab: u32, ctx: &str) -> Result<Vocabulary> {
        let (mut base, mut specials) = (Vec::new(), Vec::new());
        for (id, t) in texts.iter().enumerate() {
            let entry = (id as u64, t.as_str());
            if t.starts_with("<|") && t.ends_with("|>") {
                specials.push(entry);
            } else {
                base.push(entry);
            }
        }
        Self::build(&base, &specials, n_vocab, ctx)
    }

    /// A whisper.cpp file's vocabulary: raw bytes of the text tokens (ids 0 .. eot − 1);
    /// the special tokens follow in Whisper's fixed order, so their ids come from the
    /// count of text tokens and `n_vocab` (as whisper.cpp derives them):
    /// eot, sot, one token per language, translate, transcribe, startoflm,
    /// startofprev, nospeech, notimestamps, then 1501 timestamps.
    pub(crate) fn from_ggml(words: Vec<Vec<u8>>, n_vocab: u32, ctx: &str) -> Result<Vocabulary> {
        let eot = words.len() as u32;
        let fixed = 8 + TIMESTAMPS;
        let languages = n_vocab
            .checked_sub(eot + fixed)
            .filter(|&l| (l as usize) <= LANGUAGE_CODES.len())
            .ok_or_else(|| {
                Error::Convert(format!(
                    "{ctx}: {eot} text tokens and n_vocab {n_vocab} leave no room for Whisper's special tokens \
                     (expected n_vocab = text tokens + {fixed} + 99 or 100 languages)"
                ))
            })?;
        let mut tokens = words;
        let mut specials: Vec<(u64, String)> = Vec::new();
        let mut push = |tokens: &mut Vec<Vec<u8>>, text: String| {
            specials.push((tokens.len() as u64, text.clone()));
            tokens.push(text.into_bytes());
        };
        push(&mut tokens, "<|endoftext|>".into());
        push(&mut tokens, "<|startoftranscript|>".into());
        for code in &LANGUAGE_CODES[..languages as usize] {
            push(&mut tokens, format!("<|{code}|>"));
        }
        for t in [
            "<|translate|>",
            "<|transcribe|>",
            "<|startoflm|>",
            "<|startofprev|>",
            "<|nospeech|>",
            "<|notimestamps|>",
        ] {
            push(&mut tokens, t.into());
        }
        Self::build_bytes(tokens, &specials, n_vocab, ctx)
    }

    /// From byte-level BPE texts (`base`, id → GPT-2 characters) and special tokens.
    fn build(
        base: &[(u64, &str)],
        specials: &[(u64, &str)],
        n_vocab: u32,
        ctx: &str,
    ) -> Result<Vocabulary> {
        let n = n_vocab as usize;
        let mut tokens = vec![Vec::new(); n];
        let byte_of = unicode_to_byte();
        for &(id, text) in base {
            if let Some(slot) = tokens.get_mut(id as usize) {
                let mut bytes = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match byte_of.get(&c) {
                        Some(&b) => bytes.push(b),
                        // Not byte-level: keep the character's UTF-8.
                        None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                *slot = bytes;
            }
        }
        let specials: Vec<(u64, String)> =
            specials.iter().map(|&(i, t)| (i, t.to_string())).collect();
        Self::build_bytes(tokens, &specials, n_vocab, ctx)
    }

    fn build_bytes(
        mut tokens: Vec<Vec<u8>>,
        specials: &[(u64, String)],
        n_vocab: u32,
        ctx: &str,
    ) -> Result<Vocabulary> {
        let err = |m: String| Error::Convert(format!("{ctx}: {m}"));
        tokens.resize(tokens.len().max(n_vocab as usize), Vec::new());
        let mut by_text: HashMap<&str, u32> = HashMap::new();
        let mut added_ids: Vec<(u32, &str)> = Vec::new();
        for (id, text) in specials {
            if *id >= n_vocab as u64 {
                continue;
            }
            tokens[*id as usize] = text.as_bytes().to_vec();
            by_text.insert(text, *id as u32);
            added_ids.push((*id as u32, text));
        }
        let find = |names: &[&str]| -> Result<u32> {
            names
                .iter()
                .find_map(|t| by_text.get(*t).copied())
                .ok_or_else(|| err(format!("no special token {}", names.join(" or "))))
        };
        let no_timestamps = find(&["<|notimestamps|>"])?;
        let special = SpecialTokens {
            eot: find(&["<|endoftext|>"])?,
            sot: find(&["<|startoftranscript|>"])?,
            sot_prev: find(&["<|startofprev|>"])?,
            sot_lm: find(&["<|startoflm|>"])?,
            no_speech: find(&["<|nospeech|>", "<|nocaptions|>"])?,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            transcribe: find(&["<|transcribe|>"])?,
            translate: find(&["<|translate|>"])?,
        };
        if special.timestamp_begin >= n_vocab {
            return Err(err(
                "no room for timestamp tokens after <|notimestamps|>".into()
            ));
        }
        if let Some(&id) = by_text.get("<|0.00|>") {
            if id != special.timestamp_begin {
                return Err(err(format!(
                    "<|0.00|> is id {id}, expected <|notimestamps|> + 1 = {}",
                    special.timestamp_begin
                )));
            }
        }
        // tokenizer.json of some .en models stops at <|notimestamps|>: the
        // timestamp tokens fill the rest of the embedding.
        for id in special.timestamp_begin..n_vocab {
            let slot = &mut tokens[id as usize];
            if slot.is_empty() {
                *slot = timestamp_text(id - special.timestamp_begin).into_bytes();
            }
        }
        added_ids.sort();
        let languages = added_ids
            .iter()
            .filter(|(id, _)| *id > special.sot && *id < special.translate)
            .filter_map(|(id, text)| {
                let code = text.strip_prefix("<|")?.strip_suffix("|>")?;
                let ok =
                    (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase());
                ok.then(|| (code.to_string(), *id))
            })
            .collect();
        tokens.truncate(n_vocab as usize);
        Ok(Vocabulary {
            tokens,
            special,
            languages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection() {
        let m = unicode_to_byte();
        assert_eq!(m.len(), 256);
        assert_eq!(m[&'Ġ'], b' ');
        assert_eq!(m[&'Ċ'], b'\n');
        assert_eq!(m[&'a'], b'a');
        assert_eq!(m[&'\u{100}'], 0);
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_text(0), "<|0.00|>");
        assert_eq!(timestamp_text(1), "<|0.02|>");
        assert_eq!(timestamp_text(1500), "<|30.00|>");
    }
}
