//! Text → token ids: GPT-2's byte-level BPE, as Hugging Face `tokenizers` runs
//! Whisper's `tokenizer.json` (pre-tokenizer regex, then merges by rank).
//!
//! The merges are not stored: in Whisper's vocabularies (GPT-2's and the
//! multilingual one) token `256 + i` is the result of merge `i`, so a token's merge
//! is the pair that BPE over its own bytes, with the earlier merges only, leaves
//! (checked against both tokenizer.json files: all 50 000 merges agree). The file's
//! byte vocabulary is therefore enough, and files converted from vocabulary lists or
//! ggml work too. A vocabulary that is not built this way is refused.
mod unicode;

use crate::format::ModelFile;
use crate::{Error, Result};
use std::collections::HashMap;

/// Byte-level BPE over a model's vocabulary.
#[derive(Debug)]
pub struct Tokenizer {
    /// The token of each single byte.
    byte_token: [u32; 256],
    /// (left, right) → merged token; a lower id is an earlier (preferred) merge.
    merges: HashMap<(u32, u32), u32>,
}

impl Tokenizer {
    /// Derives the merges from `file`'s vocabulary (text tokens: ids below `<|endoftext|>`).
    pub fn from_file(file: &ModelFile) -> Result<Tokenizer> {
        let eot = file.config().tokens.eot;
        Self::from_tokens((0..eot).map(|id| file.token_bytes(id)))
    }

    /// `tokens[id]` = the bytes of text token `id`, in merge order.
    pub fn from_tokens<'a>(tokens: impl Iterator<Item = &'a [u8]>) -> Result<Tokenizer> {
        let err = |m: String| Error::Invalid(format!("vocabulary is not byte-level BPE: {m}"));
        let mut t = Tokenizer {
            byte_token: [u32::MAX; 256],
            merges: HashMap::new(),
        };
        for (id, bytes) in tokens.enumerate() {
            let id = id as u32;
            match bytes.len() {
                0 => {}
                1 => {
                    let slot = &mut t.byte_token[bytes[0] as usize];
                    if *slot == u32::MAX {
                        *slot = id;
                    }
                }
                _ => {
                    if bytes.iter().any(|&b| t.byte_token[b as usize] == u32::MAX) {
                        return Err(err(format!(
                            "token {id} uses a byte no earlier token holds"
                        )));
                    }
                    let parts = t.bpe(bytes);
                    let [a, b] = parts[..] else {
                        return Err(err(format!(
                            "token {id} ({:?}) is not one merge of earlier tokens",
                            String::from_utf8_lossy(bytes)
                        )));
                    };
                    t.merges.entry((a, b)).or_insert(id);
                }
            }
        }
        if let Some(b) = t.byte_token.iter().position(|&t| t == u32::MAX) {
            return Err(err(format!("no token for byte {b:#04x}")));
        }
        Ok(t)
    }

    /// The ids `tokenizers` gives for `text` (no special tokens added or parsed).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for piece in pretokenize(text) {
            out.extend(self.bpe(piece.as_bytes()));
        }
        out
    }

    /// Merges the pair with the earliest merge, leftmost first, until none applies.
    fn bpe(&self, bytes: &[u8]) -> Vec<u32> {
        let mut parts: Vec<u32> = bytes.iter().map(|&b| self.byte_token[b as usize]).collect();
        while parts.len() > 1 {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| self.merges.get(&(w[0], w[1])).map(|&m| (m, i)))
                .min();
            let Some((merged, i)) = best else { break };
            parts[i] = merged;
            parts.remove(i + 1);
        }
        parts
    }
}

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_table(&unicode::LETTERS, c)
}

fn is_number(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_table(&unicode::NUMBERS, c)
}

/// The GPT-2 pre-tokenizer, matched by hand (leftmost alternative first, as the
/// backtracking regex engine does):
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
/// `\s` is Unicode White_Space, which is what `char::is_whitespace` tests.
fn pretokenize(s: &str) -> Vec<&str> {
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let n = cs.len();
    let at = |i: usize| if i < n { cs[i].0 } else { s.len() };
    let other = |c: char| !c.is_whitespace() && !is_letter(c) && !is_number(c);
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = cs[i].1;
        let next = |k: usize| cs.get(i + k).map(|x| x.1);
        let mut end = None;
        if c == '\'' {
            end = match (next(1), next(2)) {
                (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => {
                    Some(i + 3)
                }
                (Some('s' | 't' | 'm' | 'd'), _) => Some(i + 2),
                _ => None,
            };
        }
        if end.is_none() {
            let j = if c == ' ' { i + 1 } else { i };
            for class in [is_letter as fn(char) -> bool, is_number, other] {
                if j < n && class(cs[j].1) {
                    let mut k = j;
                    while k < n && class(cs[k].1) {
                        k += 1;
                    }
                    end = Some(k);
                    break;
                }
            }
        }
        let end = end.unwrap_or_else(|| {
            // Whitespace: a run followed by text leaves its last character to it.
            let mut k = i;
            while k < n && cs[k].1.is_whitespace() {
                k += 1;
            }
            if k < n && k - i >= 2 {
                k - 1
            } else {
                k.max(i + 1)
            }
        });
        out.push(&s[at(i)..at(end)]);
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretokenizer_pieces() {
        assert_eq!(
            pretokenize("Hello world's  3.5 ok!!  \n"),
            ["Hello", " world", "'s", " ", " 3", ".", "5", " ok", "!!", "  \n"]
        );
        assert_eq!(pretokenize("a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(pretokenize("  !x"), [" ", " !", "x"]);
        assert_eq!(pretokenize("it'S we're"), ["it", "'", "S", " we", "'re"]);
    }

    #[test]
    fn tables_classify() {
        assert!(is_letter('é') && is_letter('中') && is_letter('ß'));
        assert!(is_number('٣') && is_number('½') && !is_letter('½'));
        assert!(!is_letter('😀') && !is_number('😀'));
    }

    #[test]
    fn merges_follow_ids() {
        // bytes a b c as tokens 0..2 is not enough: every byte needs a token.
        let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        toks.push(b"ab".to_vec());
        toks.push(b"abc".to_vec());
        toks.push(b"bc".to_vec());
        let t = Tokenizer::from_tokens(toks.iter().map(|v| v.as_slice())).unwrap();
        assert_eq!(t.encode("abc"), [257]);
        assert_eq!(t.encode("xbc"), [b'x' as u32, 258]);
        let bad = [b"ab".as_slice()];
        assert!(Tokenizer::from_tokens(bad.into_iter()).is_err());
    }
}
