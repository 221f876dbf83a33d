//! Whisper's repetition detector: the gzip/zlib compression ratio of a window's text.
//! The core library takes no compression dependency, so this sizes the DEFLATE
//! stream zlib would produce for short text: greedy LZ77 over a 32 KiB window,
//! priced with the fixed Huffman code (what zlib picks for inputs this small).
//! A repetition loop compresses many times over; ordinary speech does not.

const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
const WINDOW: usize = 32 * 1024;

/// Bits of the fixed-Huffman literal/length code for symbol `s` (RFC 1951 §3.2.6).
fn litlen_bits(s: usize) -> usize {
    match s {
        0..=143 => 8,
        144..=255 => 9,
        256..=279 => 7,
        _ => 8,
    }
}

/// (symbol, extra bits) of a match length 3..=258.
fn length_code(len: usize) -> (usize, usize) {
    const BASE: [usize; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const EXTRA: [usize; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    let i = BASE.iter().rposition(|&b| b <= len).unwrap_or(0);
    (257 + i, EXTRA[i])
}

/// Extra bits of a match distance 1..=32768 (each distance code costs 5 bits more).
fn distance_extra(dist: usize) -> usize {
    if dist <= 4 {
        0
    } else {
        (usize::BITS - 1 - (dist - 1).leading_zeros()) as usize - 1
    }
}

/// Estimated size in bytes of the zlib stream for `data`.
pub fn deflate_size(data: &[u8]) -> usize {
    let mut bits = 3; // block header
    let mut head: std::collections::HashMap<[u8; 3], Vec<usize>> = std::collections::HashMap::new();
    let mut i = 0;
    while i < data.len() {
        let mut best = (0, 0);
        if i + MIN_MATCH <= data.len() {
            let key = [data[i], data[i + 1], data[i + 2]];
            if let Some(cands) = head.get(&key) {
                for &p in cands.iter().rev().take(128) {
                    if i - p > WINDOW {
                        break;
                    }
                    let len = data[p..]
                        .iter()
                        .zip(&data[i..])
                        .take(MAX_MATCH)
                        .take_while(|(a, b)| a == b)
                        .count();
                    if len > best.0 {
                        best = (len, i - p);
                    }
                }
            }
        }
        let step = if best.0 >= MIN_MATCH {
            let (sym, extra) = length_code(best.0);
            bits += litlen_bits(sym) + extra + 5 + distance_extra(best.1);
            best.0
        } else {
            bits += litlen_bits(data[i] as usize);
            1
        };
        for j in i..i + step {
            if j + MIN_MATCH <= data.len() {
                head.entry([data[j], data[j + 1], data[j + 2]])
                    .or_default()
                    .push(j);
            }
        }
        i += step;
    }
    bits += litlen_bits(256); // end of block
    2 + bits.div_ceil(8) + 4 // zlib header, data, adler32
}

/// `len(text) / len(zlib(text))`, as openai-whisper computes it.
pub fn compression_ratio(text: &str) -> f32 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    bytes.len() as f32 / deflate_size(bytes) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_loops_exceed_the_threshold_and_speech_does_not() {
        let speech = " And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
        assert!(
            compression_ratio(speech) < 2.4,
            "{}",
            compression_ratio(speech)
        );
        let looped = " I don't know. ".repeat(20);
        assert!(
            compression_ratio(&looped) > 2.4,
            "{}",
            compression_ratio(&looped)
        );
    }

    #[test]
    fn sizes_are_close_to_zlib() {
        // zlib.compress(b"hello hello hello hello") is 17 bytes; b"abc" is 11 bytes.
        assert_eq!(deflate_size(b"abc"), 11);
        let n = deflate_size(b"hello hello hello hello");
        assert!((15..=19).contains(&n), "{n}");
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn code_tables() {
        assert_eq!(length_code(3), (257, 0));
        assert_eq!(length_code(258), (285, 0));
        assert_eq!(length_code(11), (265, 1));
        assert_eq!(distance_extra(1), 0);
        assert_eq!(distance_extra(5), 1);
        assert_eq!(distance_extra(32768), 13);
    }
}
