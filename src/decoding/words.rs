//! Word-level timestamps, as openai-whisper's `timing.py` and faster-whisper
//! compute them: one extra decoder pass over the window's text tokens returns
//! the cross-attention probabilities of the model's alignment heads; they are
//! standardised over the tokens, median-filtered along time, averaged over the
//! heads, and a dynamic time warping of the tokens against the audio positions
//! gives each token its first position. Tokens are grouped into words (at
//! spaces, or at whole characters for languages written without them),
//! punctuation is merged into its neighbours, and the heuristics for long words
//! and segment edges are applied.
use crate::format::ModelFile;
use crate::model::{Backend, Network};
use crate::{Result, Segment, Word};

/// Encoder positions per second (conv2's stride 2 over 100 mel frames per second).
const POSITIONS_PER_SECOND: f32 = 50.0;
/// Median filter width over time (openai-whisper's `medfilt_width`).
const MEDIAN_WIDTH: usize = 7;
/// Joined to the following word (openai-whisper's `prepend_punctuations`).
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// Joined to the preceding word (openai-whisper's `append_punctuations`).
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";
/// Python's `string.punctuation`.
const ASCII_PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// Languages written without spaces between words: split at characters.
const NO_SPACE_LANGUAGES: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];
const SENTENCE_END_MARKS: &str = ".。!！?？";

/// A word's timing before it is attached to its segment (times in the window).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Timing {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f32,
    pub end: f32,
    pub probability: f32,
}

impl Timing {
    pub fn new(word: &str, tokens: Vec<u32>, start: f32, end: f32, probability: f32) -> Timing {
        Timing {
            word: word.into(),
            tokens,
            start,
            end,
            probability,
        }
    }
}

/// The alignment heads of the model: the file's, or openai-whisper's default
/// (every head of the second half of the decoder layers) when it lists none.
pub(crate) fn alignment_heads(file: &ModelFile) -> Vec<(usize, usize)> {
    let c = file.config();
    if !c.alignment_heads.is_empty() {
        return c
            .alignment_heads
            .iter()
            .map(|&(l, h)| (l as usize, h as usize))
            .collect();
    }
    let (layers, heads) = (c.n_text_layer as usize, c.n_text_head as usize);
    (layers / 2..layers)
        .flat_map(|l| (0..heads).map(move |h| (l, h)))
        .collect()
}

/// Python's `needle in haystack` for strings (a substring test; "" is in every string).
fn within(needle: &str, haystack: &str) -> bool {
    haystack.contains(needle)
}

/// In place: each column of `rows × cols` standardised over the rows
/// (population standard deviation).
pub fn standardize(w: &mut [f32], rows: usize, cols: usize) {
    // Row by row into per-column sums (each column still adds its rows in
    // order, so the same bits as a column-at-a-time loop, without its strides).
    let mut mean = vec![-0.0f32; cols];
    for row in w.chunks(cols).take(rows) {
        mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x);
    }
    mean.iter_mut().for_each(|m| *m /= rows as f32);
    let mut var = vec![-0.0f32; cols];
    for row in w.chunks(cols).take(rows) {
        for ((v, &x), &m) in var.iter_mut().zip(row).zip(&mean) {
            *v += (x - m).powi(2);
        }
    }
    let std: Vec<f32> = var.iter().map(|&v| (v / rows as f32).sqrt()).collect();
    for row in w.chunks_mut(cols).take(rows) {
        for ((x, &m), &s) in row.iter_mut().zip(&mean).zip(&std) {
            *x = if s > 0.0 { (*x - m) / s } else { 0.0 };
        }
    }
}

/// Each row's median over a window of `width` (odd) centred on each column,
/// the row reflected at its ends (numpy's `reflect`); rows no longer than half
/// the width are left as they are.
pub fn median_filter(row: &[f32], width: usize) -> Vec<f32> {
    let n = row.len();
    let half = width / 2;
    if n <= half || half == 0 {
        return row.to_vec();
    }
    let reflect = |i: isize| -> usize {
        let last = n as isize - 1;
        let mut i = i;
        if i < 0 {
            i = -i;
        }
        if i > last {
            i = 2 * last - i;
        }
        i.clamp(0, last) as usize
    };
    let padded: Vec<f32> = (-(half as isize)..(n + half) as isize)
        .map(|i| row[reflect(i)])
        .collect();
    if width == 7 {
        return median7(&padded, n);
    }
    let mut win = vec![0f32; width];
    padded
        .windows(width)
        .map(|w| {
            win.copy_from_slice(w);
            win.sort_by(f32::total_cmp);
            win[half]
        })
        .collect()
}

/// A sorting network for seven values (Knuth, TAOCP 5.3.4: 16 comparators).
const SORT7: [(usize, usize); 16] = [
    (0, 6),
    (2, 3),
    (4, 5),
    (0, 2),
    (1, 4),
    (3, 6),
    (0, 1),
    (2, 5),
    (3, 4),
    (1, 2),
    (4, 6),
    (2, 3),
    (4, 5),
    (1, 2),
    (3, 4),
    (5, 6),
];

/// The width-7 median filter of a reflected-padded row: the seven shifted
/// copies go through [`SORT7`] as whole vectors (element-wise min / max, which
/// the compiler vectorises) and the middle one is the median of every window —
/// the word pass ran one small sort per position, per head and token.
fn median7(padded: &[f32], n: usize) -> Vec<f32> {
    let mut v: [Vec<f32>; 7] = std::array::from_fn(|k| padded[k..k + n].to_vec());
    for &(a, b) in &SORT7 {
        let (lo, hi) = v.split_at_mut(b);
        for (x, y) in lo[a].iter_mut().zip(hi[0].iter_mut()) {
            let (small, large) = (x.min(*y), x.max(*y));
            *x = small;
            *y = large;
        }
    }
    std::mem::take(&mut v[3])
}

/// Dynamic time warping of `cost` (`rows × cols`, lower is better) from
/// (0, 0) to (rows − 1, cols − 1), each step down, right or diagonal; ties
/// prefer a step right, then down (openai-whisper's `dtw_cpu`). Returns the
/// path's (row, column) pairs in order.
pub fn dtw(cost: &[f32], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    let w = cols + 1;
    let mut acc = vec![f32::INFINITY; (rows + 1) * w];
    // 0: diagonal, 1: from the row above, 2: from the column to the left.
    let mut trace = vec![2u8; (rows + 1) * w];
    acc[0] = 0.0;
    for j in 1..=cols {
        for i in 1..=rows {
            let c0 = acc[(i - 1) * w + j - 1];
            let c1 = acc[(i - 1) * w + j];
            let c2 = acc[i * w + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[i * w + j] = cost[(i - 1) * cols + j - 1] + c;
            trace[i * w + j] = t;
        }
    }
    let (mut i, mut j) = (rows, cols);
    let mut path = Vec::with_capacity(rows + cols);
    while i > 0 || j > 0 {
        path.push((i.wrapping_sub(1), j.wrapping_sub(1)));
        let t = if i == 0 {
            2
        } else if j == 0 {
            1
        } else {
            trace[i * w + j]
        };
        match t {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    // The first pair of a path that starts with a step along an edge has a
    // coordinate of -1 (as openai's); keep only pairs inside the matrix.
    path.retain(|&(i, j)| i < rows && j < cols);
    path
}

/// Tokens grouped at whole characters: a group ends at the first token after
/// which the bytes so far are valid UTF-8 (openai-whisper's `split_tokens_on_unicode`).
fn split_on_unicode(file: &ModelFile, tokens: &[u32]) -> Vec<(String, Vec<u32>)> {
    let mut out = Vec::new();
    let (mut bytes, mut group) = (Vec::new(), Vec::new());
    for &t in tokens {
        bytes.extend_from_slice(file.token_bytes(t));
        group.push(t);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            out.push((s.to_string(), std::mem::take(&mut group)));
            bytes.clear();
        }
    }
    if !group.is_empty() {
        out.push((String::from_utf8_lossy(&bytes).into_owned(), group));
    }
    out
}

/// Text tokens grouped into words: for `language`s written with spaces, a word
/// starts at a piece that begins with a space or is punctuation
/// (openai-whisper's `split_tokens_on_spaces`); otherwise at every character.
pub(crate) fn split_words(
    file: &ModelFile,
    tokens: &[u32],
    language: &str,
) -> Vec<(String, Vec<u32>)> {
    let pieces = split_on_unicode(file, tokens);
    if NO_SPACE_LANGUAGES.contains(&language) {
        return pieces;
    }
    let mut words: Vec<(String, Vec<u32>)> = Vec::new();
    for (piece, toks) in pieces {
        let starts = piece.starts_with(' ') || within(piece.trim(), ASCII_PUNCTUATION);
        match words.last_mut() {
            Some(last) if !starts => {
                last.0.push_str(&piece);
                last.1.extend(toks);
            }
            _ => words.push((piece, toks)),
        }
    }
    words
}

/// Punctuation joined to its neighbour (openai-whisper's `merge_punctuations`):
/// opening marks to the following word, closing marks to the preceding one.
/// A merged-away entry keeps its place with no text and no tokens.
pub fn merge_punctuations(a: &mut [Timing], prepend: &str, append: &str) {
    if a.len() >= 2 {
        let mut j = a.len() - 1;
        for i in (0..a.len() - 1).rev() {
            if a[i].word.starts_with(' ') && within(a[i].word.trim(), prepend) {
                let word = std::mem::take(&mut a[i].word);
                let tokens = std::mem::take(&mut a[i].tokens);
                a[j].word = word + &a[j].word;
                a[j].tokens.splice(0..0, tokens);
            } else {
                j = i;
            }
        }
    }
    let mut i = 0;
    for j in 1..a.len() {
        if !a[i].word.ends_with(' ') && within(&a[j].word, append) {
            let word = std::mem::take(&mut a[j].word);
            let tokens = std::mem::take(&mut a[j].tokens);
            a[i].word.push_str(&word);
            a[i].tokens.extend(tokens);
        } else {
            i = j;
        }
    }
}

/// The words of `text` (one window's text tokens, at least one) timed against
/// the window `cross` encodes, whose audio fills its first `frames` mel frames.
/// Times are seconds from the window's start.
pub(crate) fn find_alignment<B: Backend>(
    file: &ModelFile,
    backend: &B,
    cross: &B::Cross,
    sot_seq: &[u32],
    text: &[u32],
    frames: usize,
    language: &str,
) -> Result<Vec<Timing>> {
    let t = &file.config().tokens;
    let heads = alignment_heads(file);
    let audio_ctx = file.config().n_audio_ctx as usize;
    let keys = (frames / 2).clamp(1, audio_ctx);
    let mut tokens = sot_seq.to_vec();
    tokens.push(t.no_timestamps);
    let offset = tokens.len() - 1;
    tokens.extend_from_slice(text);
    tokens.push(t.eot);
    let n = tokens.len();
    // The logits predicting each text token.
    let want: Vec<usize> = (offset..offset + text.len()).collect();
    let (logits, mut weights) = backend.cross_weights(cross, &tokens, &want, &heads, keys)?;
    let eot = t.eot as usize;
    let kernels = backend.host_kernels();
    let probs: Vec<f32> = logits
        .iter()
        .zip(text)
        .map(|(row, &tok)| {
            let row = &row[..eot.min(row.len())];
            // One SIMD pass over the text vocabulary per token.
            let (max, sum) = kernels.max_exp_sum(row);
            row.get(tok as usize)
                .map_or(0.0, |&x| ((x - max).exp() as f64 / sum) as f32)
        })
        .collect();

    // Standardise each head over the tokens, filter along time, average the heads.
    let rows = n - offset - 1; // no-timestamps row + text rows (eot's row left out)
    let mut matrix = vec![0f32; rows * keys];
    for head in weights.chunks_mut(n * keys) {
        standardize(head, n, keys);
        for (r, out) in matrix.chunks_mut(keys).enumerate() {
            let row = &head[(offset + r) * keys..(offset + r + 1) * keys];
            for (o, x) in out.iter_mut().zip(median_filter(row, MEDIAN_WIDTH)) {
                *o += x;
            }
        }
    }
    let scale = -1.0 / heads.len().max(1) as f32;
    matrix.iter_mut().for_each(|x| *x *= scale);
    let path = dtw(&matrix, rows, keys);

    // The time each row is first reached.
    let mut jump_times = Vec::with_capacity(rows);
    let mut last = usize::MAX;
    for &(i, j) in &path {
        if i != last {
            jump_times.push(j as f32 / POSITIONS_PER_SECOND);
            last = i;
        }
    }
    let words = split_words(file, text, language);
    let mut out = Vec::with_capacity(words.len());
    let mut at = 0;
    for (word, toks) in words {
        let end_at = at + toks.len();
        let (Some(&start), Some(&end)) = (jump_times.get(at), jump_times.get(end_at)) else {
            break;
        };
        let p = &probs[at..end_at.min(probs.len())];
        let probability = p.iter().sum::<f32>() / p.len().max(1) as f32;
        out.push(Timing {
            word,
            tokens: toks,
            start,
            end,
            probability,
        });
        at = end_at;
    }
    Ok(out)
}

/// Median of `x` (numpy's: the mean of the two middle values of an even count).
pub fn median(mut x: Vec<f32>) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    x.sort_by(f32::total_cmp);
    let m = x.len() / 2;
    if x.len() % 2 == 1 {
        x[m]
    } else {
        (x[m - 1] + x[m]) / 2.0
    }
}

fn round2(x: f32) -> f32 {
    ((x as f64 * 100.0).round() / 100.0) as f32
}

/// Words for `segments` (one window's, starting at `time_offset` seconds), timed
/// from `alignment` of their text tokens; adjusts segment edges as
/// openai-whisper / faster-whisper do and returns the new last speech time.
pub(crate) fn attach_words(
    segments: &mut [Segment],
    mut alignment: Vec<Timing>,
    eot: u32,
    time_offset: f32,
    mut last_speech: f32,
) -> f32 {
    let durations: Vec<f32> = alignment
        .iter()
        .map(|w| w.end - w.start)
        .filter(|&d| d != 0.0)
        .collect();
    let any = !durations.is_empty();
    let median_duration = median(durations).min(0.7);
    let max_duration = median_duration * 2.0;
    // Long words at sentence boundaries are truncated.
    if any {
        for i in 1..alignment.len() {
            if alignment[i].end - alignment[i].start > max_duration {
                if within(&alignment[i].word, SENTENCE_END_MARKS) {
                    alignment[i].end = alignment[i].start + max_duration;
                } else if within(&alignment[i - 1].word, SENTENCE_END_MARKS) {
                    alignment[i].start = alignment[i].end - max_duration;
                }
            }
        }
    }
    merge_punctuations(&mut alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);

    let mut index = 0;
    for seg in segments.iter_mut() {
        let n_text = seg.tokens.iter().filter(|&&t| t < eot).count();
        let mut saved = 0;
        let mut words: Vec<Word> = Vec::new();
        while index < alignment.len() && saved < n_text {
            let t = &alignment[index];
            if !t.word.is_empty() {
                words.push(Word {
                    word: t.word.clone(),
                    start: round2(time_offset + t.start),
                    end: round2(time_offset + t.end),
                    probability: t.probability,
                });
            }
            saved += t.tokens.len();
            index += 1;
        }
        if let Some(first_end) = words.first().map(|w| w.end) {
            // The first and second word after a pause are no longer than twice
            // the median word duration.
            let long_first = words[0].end - words[0].start > max_duration
                || (words.len() > 1 && words[1].end - words[0].start > max_duration * 2.0);
            if first_end - last_speech > median_duration * 4.0 && long_first {
                if words.len() > 1 && words[1].end - words[1].start > max_duration {
                    let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
                    words[0].end = boundary;
                    words[1].start = boundary;
                }
                words[0].start = (words[0].end - max_duration).max(0.0);
            }
            // The segment's own start when the first word is too long.
            if seg.start < words[0].end && seg.start - 0.5 > words[0].start {
                words[0].start = (words[0].end - median_duration).min(seg.start).max(0.0);
            } else {
                seg.start = words[0].start;
            }
            // The segment's own end when the last word is too long.
            let last = words.len() - 1;
            if seg.end > words[last].start && seg.end + 0.5 < words[last].end {
                words[last].end = (words[last].start + median_duration).max(seg.end);
            } else {
                seg.end = words[last].end;
            }
            last_speech = seg.end;
        }
        seg.words = words;
    }
    last_speech
}
