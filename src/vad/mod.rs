//! Voice activity detection: Silero VAD v6 on sotto's kernels (`net.rs`), its
//! weights in a `.svad` file (`file.rs`, written by `sotto fetch silero-vad`), and
//! transcription of the speech only: faster-whisper's segmentation rules, speech
//! laid end to end (or merged into chunks of at most `max_chunk_s`), transcribed,
//! timestamps mapped back (segments across removed silence split at the joint).

pub mod file;
mod net;

pub use net::{Silero, VadState, CONTEXT, FRAME};

use crate::{Error, Options, Result, Segment, Transcript};
use sotto_kernels::{Kernels, Pool};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const RATE: f64 = 16_000.0;

impl Silero {
    /// Reads a `.svad` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Silero> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::io(&name, e))?;
        Silero::from_bytes(&bytes, &name)
    }
    /// The network from a `.svad` file's bytes; `context` names them in errors.
    pub fn from_bytes(bytes: &[u8], context: &str) -> Result<Silero> {
        Ok(Silero::from_tensors(file::decode(bytes, context)?))
    }

    /// The speech probability of every 512-sample frame of 16-kHz `samples`, from a
    /// fresh state, the end padded with zeros as faster-whisper does (a whole
    /// frame of them when the length is already a multiple of 512).
    pub fn probabilities(&self, kernels: &Kernels, pool: &Pool, samples: &[f32]) -> Vec<f32> {
        let whole = samples.len() / FRAME * FRAME;
        let mut last = samples[whole..].to_vec();
        last.resize(FRAME, 0.0);
        let mut out = Vec::with_capacity(whole / FRAME + 1);
        let mut state = VadState::default();
        self.process(kernels, pool, &mut state, &samples[..whole], &mut out);
        self.process(kernels, pool, &mut state, &last, &mut out);
        out
    }
}

/// Silero VAD as a live stream's pause detector (`Stream::with_detector`): one
/// 512-sample frame at a time with the LSTM state carried over, speech where its
/// probability reaches `threshold` and until it falls below `threshold − 0.15`
/// (faster-whisper's hysteresis) — no energy level to tune for the room's noise.
pub struct SileroPause {
    model: Arc<Silero>,
    kernels: Kernels,
    pool: Pool,
    state: VadState,
    threshold: f32,
    probs: Vec<f32>,
    speaking: bool,
}

impl SileroPause {
    pub fn new(model: Arc<Silero>, kernels: Kernels, threshold: f32) -> SileroPause {
        SileroPause {
            model,
            kernels,
            // One frame is ~26 µs of work: not worth a second thread.
            pool: Pool::new(1),
            state: VadState::default(),
            threshold,
            probs: Vec::new(),
            speaking: false,
        }
    }
}

impl crate::stream::PauseDetector for SileroPause {
    fn frame_len(&self) -> usize {
        FRAME
    }
    fn is_speech(&mut self, frame: &[f32]) -> bool {
        self.probs.clear();
        if frame.len() != FRAME {
            return false;
        }
        self.model.process(
            &self.kernels,
            &self.pool,
            &mut self.state,
            frame,
            &mut self.probs,
        );
        let p = self.probs.last().copied().unwrap_or(0.0);
        let bar = if self.speaking {
            self.threshold - 0.15
        } else {
            self.threshold
        };
        self.speaking = p >= bar;
        self.speaking
    }
}

/// How speech is found (faster-whisper's `VadOptions`, same defaults) and which
/// network finds it.
#[derive(Clone)]
#[non_exhaustive]
pub struct VadOptions {
    pub model: Arc<Silero>,
    /// A frame whose probability reaches this starts (or continues) speech.
    pub threshold: f32,
    /// Below this speech may end; `None`: `max(threshold − 0.15, 0.01)`.
    pub neg_threshold: Option<f32>,
    /// Speech segments this short or shorter are dropped.
    pub min_speech_ms: u32,
    /// Longer speech is split, at a silence of over 98 ms if there is one.
    pub max_speech_s: f32,
    /// Silence needed to end a segment.
    pub min_silence_ms: u32,
    /// Added on each side of every segment (halved between segments closer than 2×).
    pub speech_pad_ms: u32,
    /// Segments are merged into chunks of at most this many seconds, each
    /// transcribed on its own (a single longer segment is a chunk of its own).
    /// Default: no limit — all speech laid end to end and transcribed as one signal,
    /// as faster-whisper does, which measured faster than 30-s chunks (fewer windows)
    /// and with fewer word errors (tools/vad_bench.py).
    pub max_chunk_s: f32,
}

impl VadOptions {
    /// faster-whisper's defaults with `model`.
    pub fn new(model: Arc<Silero>) -> VadOptions {
        VadOptions {
            model,
            threshold: 0.5,
            neg_threshold: None,
            min_speech_ms: 0,
            max_speech_s: f32::INFINITY,
            min_silence_ms: 2000,
            speech_pad_ms: 400,
            max_chunk_s: f32::INFINITY,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Invalid(format!("VAD: {m}")));
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return bad("the threshold must lie between 0 and 1");
        }
        if self
            .neg_threshold
            .is_some_and(|n| !(0.0..=self.threshold).contains(&n))
        {
            return bad("the negative threshold must lie between 0 and the threshold");
        }
        if self.max_speech_s.is_nan() || self.max_speech_s <= 0.0 {
            return bad("the maximum speech duration must be positive");
        }
        if self.max_chunk_s.is_nan() || self.max_chunk_s <= 0.0 {
            return bad("the chunk length must be positive");
        }
        Ok(())
    }
}

/// A stretch of speech in samples, `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Speech {
    pub start: usize,
    pub end: usize,
}

/// faster-whisper's `get_speech_timestamps` over per-frame `probs` of `len` samples:
/// hysteresis between the two thresholds, segments ended by `min_silence_ms` of
/// silence, split when longer than `max_speech_s`, short ones dropped, then padded.
pub fn speech_segments(probs: &[f32], len: usize, o: &VadOptions) -> Vec<Speech> {
    let w = FRAME;
    let threshold = o.threshold;
    let neg = o
        .neg_threshold
        .unwrap_or_else(|| (threshold - 0.15).max(0.01));
    let min_speech = RATE * o.min_speech_ms as f64 / 1000.0;
    let pad = RATE * o.speech_pad_ms as f64 / 1000.0;
    let max_speech = RATE * o.max_speech_s as f64 - w as f64 - 2.0 * pad;
    let min_silence = RATE * o.min_silence_ms as f64 / 1000.0;
    let min_silence_at_max = RATE * 98.0 / 1000.0;

    let mut speeches: Vec<Speech> = Vec::new();
    let mut triggered = false;
    let mut start = 0usize;
    let (mut temp_end, mut prev_end, mut next_start) = (0usize, 0usize, 0usize);
    for (i, &p) in probs.iter().enumerate() {
        let at = w * i;
        if p >= threshold && temp_end != 0 {
            temp_end = 0;
            if next_start < prev_end {
                next_start = at;
            }
        }
        if p >= threshold && !triggered {
            triggered = true;
            start = at;
            continue;
        }
        if triggered && (at - start) as f64 > max_speech {
            if prev_end != 0 {
                speeches.push(Speech {
                    start,
                    end: prev_end,
                });
                if next_start < prev_end {
                    triggered = false;
                } else {
                    start = next_start;
                }
                (prev_end, next_start, temp_end) = (0, 0, 0);
            } else {
                speeches.push(Speech { start, end: at });
                (prev_end, next_start, temp_end) = (0, 0, 0);
                triggered = false;
                continue;
            }
        }
        if p < neg && triggered {
            if temp_end == 0 {
                temp_end = at;
            }
            if (at - temp_end) as f64 > min_silence_at_max {
                prev_end = temp_end;
            }
            if ((at - temp_end) as f64) < min_silence {
                continue;
            }
            if (temp_end - start) as f64 > min_speech {
                speeches.push(Speech {
                    start,
                    end: temp_end,
                });
            }
            (prev_end, next_start, temp_end) = (0, 0, 0);
            triggered = false;
            continue;
        }
    }
    if triggered && len.saturating_sub(start) as f64 > min_speech {
        speeches.push(Speech { start, end: len });
    }

    let pad = pad as usize;
    let n = speeches.len();
    for i in 0..n {
        if i == 0 {
            speeches[0].start = speeches[0].start.saturating_sub(pad);
        }
        if i + 1 < n {
            let gap = speeches[i + 1].start.saturating_sub(speeches[i].end);
            if gap < 2 * pad {
                speeches[i].end += gap / 2;
                speeches[i + 1].start = speeches[i + 1].start.saturating_sub(gap / 2);
            } else {
                speeches[i].end = (speeches[i].end + pad).min(len);
                speeches[i + 1].start = speeches[i + 1].start.saturating_sub(pad);
            }
        } else {
            speeches[i].end = (speeches[i].end + pad).min(len);
        }
    }
    speeches
}

/// Consecutive speech segments grouped so that each group's total length is at most
/// `max_samples` (a longer segment forms a group of its own).
pub fn chunks(speech: &[Speech], max_samples: usize) -> Vec<Vec<Speech>> {
    let mut out: Vec<Vec<Speech>> = Vec::new();
    let mut len = 0;
    for s in speech.iter().filter(|s| s.end > s.start) {
        let n = s.end - s.start;
        match out.last_mut() {
            Some(group) if len + n <= max_samples => {
                group.push(*s);
                len += n;
            }
            _ => {
                out.push(vec![*s]);
                len = n;
            }
        }
    }
    out
}

/// Where a time in a chunk (its speech laid end to end) lies: the piece that holds
/// it — the earlier one at a joint when `is_end` — and the samples into that piece.
fn locate(pieces: &[Speech], t: f32, is_end: bool) -> (usize, f64) {
    // Whole samples, so that a timestamp at a joint (0.02-s steps) lands on it exactly.
    let mut at = (t as f64 * RATE).round().max(0.0);
    for (i, p) in pieces.iter().enumerate() {
        let n = (p.end - p.start) as f64;
        if at < n || (is_end && at <= n) || i + 1 == pieces.len() {
            return (i, at.min(n));
        }
        at -= n;
    }
    (0, 0.0)
}

/// A time in a chunk on the original timeline.
fn original_time(pieces: &[Speech], t: f32, is_end: bool) -> f32 {
    let (i, at) = locate(pieces, t, is_end);
    pieces
        .get(i)
        .map_or(t, |p| ((p.start as f64 + at) / RATE) as f32)
}

/// Whisper's timestamps may run this far past a joint between pieces of speech.
pub(crate) const OVERSHOOT_S: f64 = 1.0;

/// A segment's times on the original timeline. A segment that crosses a joint by
/// less than [`OVERSHOOT_S`] is kept on one side (its end on the piece before, or
/// its start on the piece after); one that runs further into both is split at the
/// joints, its words (and tokens) shared out in proportion to its time in each
/// piece, so that no segment's span covers the silence removed in between.
fn map_segment(pieces: &[Speech], s: Segment) -> Vec<Segment> {
    if pieces.is_empty() {
        return vec![s];
    }
    let len = |i: usize| (pieces[i].end - pieces[i].start) as f64;
    let (mut i, mut a) = locate(pieces, s.start, false);
    let (mut j, mut b) = locate(pieces, s.end, true);
    if j > i && b < OVERSHOOT_S * RATE {
        j -= 1;
        b = len(j);
    }
    if j > i && len(i) - a < OVERSHOOT_S * RATE {
        i += 1;
        a = 0.0;
    }
    // Words keep their own times (mapped one by one), whatever the segment becomes.
    let mut s = s;
    for w in &mut s.words {
        w.start = original_time(pieces, w.start, false);
        w.end = original_time(pieces, w.end, true).max(w.start);
    }
    let at = |k: usize, x: f64| ((pieces[k].start as f64 + x) / RATE) as f32;
    if j <= i {
        s.start = at(i, a);
        s.end = at(j, b).max(s.start);
        return vec![s];
    }
    // (piece, from, to) in samples into the piece.
    let spans: Vec<(usize, f64, f64)> = (i..=j)
        .map(|k| {
            let from = if k == i { a } else { 0.0 };
            let to = if k == j { b } else { len(k) };
            (k, from, to.max(from))
        })
        .collect();
    let total: f64 = spans.iter().map(|(_, x, y)| y - x).sum();
    // Word starts (byte offsets): the text's start and every space before a word.
    let text = &s.text;
    let mut starts: Vec<usize> = text
        .char_indices()
        .filter(|&(k, c)| c == ' ' && k > 0 && !text[..k].ends_with(' '))
        .map(|(k, _)| k)
        .collect();
    starts.insert(0, 0);
    if total <= 0.0 || starts.len() < 2 {
        s.start = at(spans[0].0, spans[0].1);
        s.end = at(spans[spans.len() - 1].0, spans[spans.len() - 1].2).max(s.start);
        return vec![s];
    }
    // Each word goes to the piece holding its middle, by its share of the characters
    // against the pieces' shares of the time.
    let n_chars = text.chars().count().max(1) as f64;
    let mut owner = Vec::with_capacity(starts.len());
    for (w, &begin) in starts.iter().enumerate() {
        let end = starts.get(w + 1).copied().unwrap_or(text.len());
        let before = text[..begin].chars().count() as f64;
        let mid = (before + text[begin..end].chars().count() as f64 / 2.0) / n_chars * total;
        let mut acc = 0.0;
        let mut k = spans.len() - 1;
        for (n, (_, x, y)) in spans.iter().enumerate() {
            acc += y - x;
            if mid < acc {
                k = n;
                break;
            }
        }
        owner.push(k);
    }
    let n_tokens = s.tokens.len();
    let mut out = Vec::new();
    let mut w = 0;
    while w < starts.len() {
        let k = owner[w];
        let mut e = w;
        while e < starts.len() && owner[e] == k {
            e += 1;
        }
        let (begin, end) = (starts[w], starts.get(e).copied().unwrap_or(text.len()));
        let share = |b: usize| {
            ((text[..b].chars().count() as f64 / n_chars) * n_tokens as f64).round() as usize
        };
        let (t0, t1) = (share(begin), share(end).min(n_tokens));
        let (piece, from, to) = spans[k];
        let mut part = s.clone();
        part.words.clear();
        part.text = text[begin..end].to_string();
        part.tokens = s.tokens[t0.min(t1)..t1].to_vec();
        part.token_probs = s
            .token_probs
            .get(t0.min(t1)..t1)
            .map_or_else(Vec::new, <[f32]>::to_vec);
        part.start = at(piece, from);
        part.end = at(piece, to).max(part.start);
        out.push(part);
        w = e;
    }
    // Each word goes to the part whose span holds (or lies nearest to) its start.
    for w in &s.words {
        let gap = |p: &Segment| (p.start - w.start).max(w.start - p.end).max(0.0);
        if let Some(p) = out.iter_mut().min_by(|x, y| gap(x).total_cmp(&gap(y))) {
            p.words.push(w.clone());
        }
    }
    out
}

/// The first piece of a chunk after the first that the chunk's segments (times in
/// the chunk) leave out entirely. Whisper sometimes ends a window early, after the
/// speech of one piece, and the window's remainder is then skipped; the pieces from
/// here on are transcribed again as a chunk of their own. `None` when the segments
/// reach the last piece, or when there are none (nothing was heard: no retry).
fn uncovered(pieces: &[Speech], segments: &[Segment]) -> Option<usize> {
    let last_end = segments.iter().map(|s| s.end as f64).reduce(f64::max)?;
    let mut at = 0.0;
    for (k, p) in pieces.iter().enumerate() {
        let n = (p.end - p.start) as f64 / RATE;
        // Past a segment's end by more than its timestamps may overshoot.
        if k > 0 && last_end < at + (n / 2.0).min(OVERSHOOT_S) {
            return Some(k);
        }
        at += n;
    }
    None
}

/// The model without VAD on pieces of speech laid end to end, given where they meet
/// (sample offsets).
pub(crate) type Joined<'a> = dyn Fn(&[f32], &Options, &[usize]) -> Result<Transcript> + 'a;

/// Transcribes only the speech in `samples`: the caller's `transcribe` (the model
/// without VAD) runs on each chunk; segments come back on the original timeline.
pub(crate) fn transcribe(
    samples: &[f32],
    options: &Options,
    vad: &VadOptions,
    kernels: &Kernels,
    pool: &Pool,
    transcribe: &Joined,
) -> Result<Transcript> {
    vad.check()?;
    if samples.is_empty() {
        return Err(Error::Invalid("no audio samples to transcribe".into()));
    }
    if let Some(bad) = samples.iter().find(|s| !s.is_finite()) {
        return Err(Error::Invalid(format!(
            "audio contains a non-finite sample ({bad})"
        )));
    }
    let t0 = Instant::now();
    let probs = vad.model.probabilities(kernels, pool, samples);
    let speech = speech_segments(&probs, samples.len(), vad);
    let groups = chunks(&speech, (vad.max_chunk_s as f64 * RATE) as usize);
    let vad_ms = t0.elapsed().as_secs_f64() * 1e3;

    let total_s = samples.len() as f64 / RATE;
    let mut result = Transcript {
        text: String::new(),
        language: options.language.clone().unwrap_or_else(|| "en".into()),
        segments: Vec::new(),
        timings: Default::default(),
        window_temperatures: Vec::new(),
    };
    let mut opts = options.clone();
    opts.vad = None;
    let mut queue: std::collections::VecDeque<Vec<Speech>> = groups.into();
    let mut first = true;
    while let Some(pieces) = queue.pop_front() {
        let pieces: Arc<[Speech]> = pieces.into();
        let audio: Vec<f32> = pieces
            .iter()
            .flat_map(|p| samples[p.start..p.end].iter().copied())
            .collect();
        let mut o = opts.clone();
        if let Some(f) = &options.on_segment {
            let (f, pieces) = (f.clone(), pieces.clone());
            o.on_segment = Some(Arc::new(move |s: &Segment| {
                for part in map_segment(&pieces, s.clone()) {
                    f(&part)
                }
            }));
        }
        if let Some(p) = &options.progress {
            let (p, pieces) = (p.clone(), pieces.clone());
            o.progress = Some(Arc::new(move |done, _| {
                p(original_time(&pieces, done as f32, true) as f64, total_s)
            }));
        }
        let joints: Vec<usize> = pieces
            .iter()
            .scan(0, |at, p| {
                *at += p.end - p.start;
                Some(*at)
            })
            .take(pieces.len() - 1)
            .collect();
        let mut t = transcribe(&audio, &o, &joints)?;
        if let Some(k) = uncovered(&pieces, &t.segments) {
            queue.push_front(pieces[k..].to_vec());
        }
        if std::mem::take(&mut first) {
            // The first chunk's language holds for the rest.
            result.language = t.language.clone();
            opts.language = Some(t.language.clone());
        }
        for s in t.segments.drain(..) {
            result.segments.extend(map_segment(&pieces, s));
        }
        result
            .window_temperatures
            .append(&mut t.window_temperatures);
        let (a, b) = (&mut result.timings, &t.timings);
        a.mel_ms += b.mel_ms;
        a.encoder_ms += b.encoder_ms;
        a.windows += b.windows;
        a.decode_ms += b.decode_ms;
        a.decode_tokens += b.decode_tokens;
    }
    if let Some(p) = &options.progress {
        p(total_s, total_s);
    }
    result.timings.vad_ms = vad_ms;
    result.text = result
        .segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<String>()
        .trim()
        .to_string();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> VadOptions {
        let t = file::TENSORS
            .iter()
            .map(|(_, s)| vec![0.0; s.iter().product()])
            .collect();
        VadOptions::new(Arc::new(Silero::from_tensors(t)))
    }

    #[test]
    fn segments_follow_hysteresis_silence_and_padding() {
        let o = opts();
        // 0.5 s silence, 1 s speech with a 0.4-probability dip (above neg 0.35: still
        // speech), 3 s silence, 1 s speech, 1 s silence.
        let f = |s: f64| (s * 16_000.0 / 512.0).round() as usize;
        let mut p = vec![0.1f32; f(0.5)];
        p.extend(vec![0.9; f(0.5)]);
        p.extend(vec![0.4; 3]);
        p.extend(vec![0.9; f(0.5)]);
        p.extend(vec![0.1; f(3.0)]);
        p.extend(vec![0.8; f(1.0)]);
        p.extend(vec![0.1; f(1.0)]);
        let len = p.len() * 512;
        let s = speech_segments(&p, len, &o);
        assert_eq!(s.len(), 2, "{s:?}");
        let first_start = f(0.5) * 512;
        assert_eq!(s[0].start, first_start - 6400);
        let first_end = (f(0.5) * 3 + 3) * 512;
        assert_eq!(s[0].end, first_end + 6400);
        let second_start = first_end + f(3.0) * 512;
        assert_eq!(s[1].start, second_start - 6400);
        // The second segment never saw 2 s of silence: it runs to the end.
        assert_eq!(s[1].end, len);
    }

    #[test]
    fn close_segments_share_the_gap_and_chunks_stay_under_the_limit() {
        let o = opts();
        let mut p = vec![0.9f32; 40];
        p.extend(vec![0.0; 70]); // 2.24 s: ends the segment
        p.extend(vec![0.9; 40]);
        p.extend(vec![0.0; 70]);
        let len = p.len() * 512;
        let s = speech_segments(&p, len, &o);
        assert_eq!(s.len(), 2, "{s:?}");
        // 70 frames of gap (35 840 samples) are more than 2 × 6400: each side padded.
        assert_eq!(s[0].end, 40 * 512 + 6400);
        assert_eq!(s[1].start, 110 * 512 - 6400);
        let groups = chunks(&s, s[0].end - s[0].start + 10);
        assert_eq!(groups.len(), 2);
        let groups = chunks(&s, len);
        assert_eq!(groups.len(), 1);
        // Times in the chunk map back across the removed gap.
        let pieces = &groups[0];
        let n0 = (pieces[0].end - pieces[0].start) as f32 / 16_000.0;
        let t = original_time(pieces, n0 + 0.5, false);
        assert!((t - (pieces[1].start as f32 / 16_000.0 + 0.5)).abs() < 1e-4);
        assert!((original_time(pieces, n0, true) - pieces[0].end as f32 / 16_000.0).abs() < 1e-4);
        assert!(
            (original_time(pieces, n0, false) - pieces[1].start as f32 / 16_000.0).abs() < 1e-4
        );
    }

    #[test]
    fn pieces_left_out_by_a_window_ending_early_are_retried() {
        let sec = |s: f64| (s * 16_000.0) as usize;
        let pieces = [
            Speech {
                start: 0,
                end: sec(10.0),
            },
            Speech {
                start: sec(20.0),
                end: sec(22.0),
            },
            Speech {
                start: sec(40.0),
                end: sec(45.0),
            },
        ];
        let seg = |start: f32, end: f32| Segment {
            start,
            end,
            text: "x".into(),
            tokens: vec![],
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            compression_ratio: 1.0,
            token_probs: vec![],
            words: vec![],
        };
        assert_eq!(uncovered(&pieces, &[]), None);
        assert_eq!(uncovered(&pieces, &[seg(0.0, 9.5)]), Some(1));
        // An end just past a joint is overshoot, not the next piece's speech.
        assert_eq!(uncovered(&pieces, &[seg(0.0, 10.5)]), Some(1));
        assert_eq!(uncovered(&pieces, &[seg(0.0, 11.2)]), Some(2));
        assert_eq!(uncovered(&pieces, &[seg(0.0, 5.0), seg(5.0, 13.0)]), None);
    }

    #[test]
    fn a_segment_across_removed_silence_is_split_at_the_joint() {
        let sec = |s: f64| (s * 16_000.0) as usize;
        let pieces = [
            Speech {
                start: 0,
                end: sec(10.0),
            },
            Speech {
                start: sec(20.0),
                end: sec(22.0),
            },
        ];
        let seg = |start: f32, end: f32, text: &str| Segment {
            start,
            end,
            text: text.into(),
            tokens: (0..10).collect(),
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            temperature: 0.0,
            compression_ratio: 1.0,
            token_probs: vec![0.5; 10],
            words: ["one", "seven"]
                .iter()
                .zip([8.5f32, 11.2])
                .map(|(w, t)| crate::Word {
                    word: format!(" {w}"),
                    start: t,
                    end: t + 0.3,
                    probability: 0.9,
                })
                .collect(),
        };
        let text = " one two three four five six seven";
        // 2 s before the joint, 1.5 s after: split, words shared by time.
        let parts = map_segment(&pieces, seg(8.0, 11.5, text));
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!((parts[0].start, parts[0].end), (8.0, 10.0));
        assert_eq!((parts[1].start, parts[1].end), (20.0, 21.5));
        assert_eq!(format!("{}{}", parts[0].text, parts[1].text), text);
        assert_eq!(parts[0].text, " one two three four");
        let tokens: Vec<u32> = parts.iter().flat_map(|p| p.tokens.clone()).collect();
        assert_eq!(tokens, (0..10).collect::<Vec<u32>>());
        assert_eq!(parts[0].tokens.len(), parts[0].token_probs.len());
        // Words keep their own times, each on its piece, in the part holding it.
        let words = |p: &Segment| -> Vec<(String, i64)> {
            let ms = |t: f32| (t * 1000.0).round() as i64;
            p.words
                .iter()
                .map(|w| (w.word.clone(), ms(w.start)))
                .collect()
        };
        assert_eq!(words(&parts[0]), [(" one".to_string(), 8500)]);
        assert_eq!(words(&parts[1]), [(" seven".to_string(), 21200)]);
        // Half a second past the joint is overshoot: one segment, ended at the joint.
        let parts = map_segment(&pieces, seg(8.0, 10.5, text));
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].start, parts[0].end), (8.0, 10.0));
        // Inside one piece: moved, not split.
        let parts = map_segment(&pieces, seg(10.5, 11.5, text));
        assert_eq!((parts[0].start, parts[0].end, parts.len()), (20.5, 21.5, 1));
    }

    #[test]
    fn long_speech_is_split_at_the_maximum() {
        let mut o = opts();
        o.max_speech_s = 5.0;
        let p = vec![0.9f32; 600]; // 19.2 s
        let s = speech_segments(&p, p.len() * 512, &o);
        assert!(s.len() >= 3, "{s:?}");
        assert!(
            s.iter().all(|s| s.end - s.start <= 5 * 16_000 + 2 * 6400),
            "{s:?}"
        );
    }
}
