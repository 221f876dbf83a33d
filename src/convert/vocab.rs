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

impl Vocabulary {
    pub(crate) fn from_tokenizer_json(json: &str, n_vocab: u32) -> Result<Vocabulary> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        let n = n_vocab as usize;
        let mut tokens = vec![Vec::new(); n];
        let byte_of = unicode_to_byte();
        let vocab = v
            .pointer("/model/vocab")
            .and_then(|x| x.as_object())
            .ok_or_else(|| err("no model.vocab object"))?;
        for (text, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| err(format!("{text:?}: id is not a number")))?;
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
        let added = v
            .get("added_tokens")
            .and_then(|x| x.as_array())
            .ok_or_else(|| err("no added_tokens list"))?;
        let mut by_text: HashMap<String, u32> = HashMap::new();
        let mut added_ids: Vec<(u32, String)> = Vec::new();
        for a in added {
            let id = a.get("id").and_then(|x| x.as_u64());
            let text = a.get("content").and_then(|x| x.as_str());
            let (Some(id), Some(text)) = (id, text) else {
                return Err(err("an added token lacks id or content"));
            };
            if id >= n_vocab as u64 {
                continue;
            }
            tokens[id as usize] = text.as_bytes().to_vec();
            by_text.insert(text.to_string(), id as u32);
            added_ids.push((id as u32, text.to_string()));
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
            return Err(err("no room for timestamp tokens after <|notimestamps|>"));
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
