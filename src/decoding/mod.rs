//! From log-mel frames to text: language detection, window-by-window decoding
//! with temperature fallback, timestamps, and long-form seeking.

pub(crate) mod compress;
pub mod filters;
pub mod output;
pub mod source;
pub(crate) mod window;
pub mod words;

use crate::audio::{HOP_LENGTH, N_FRAMES, SAMPLE_RATE};
use crate::format::ModelFile;
use crate::model::{Backend, Network};
use crate::vad::OVERSHOOT_S;
use crate::{Error, Options, Result, Segment, Task, Timings, Transcript};
use filters::LogitFilters;
use source::{MelSource, WholeMel};
use std::time::Instant;
use window::{Rng, WindowDecoder, WindowResult};

/// Seconds per timestamp token.
const TIME_PRECISION: f32 = 0.02;
/// Mel frames per encoder position (conv2 has stride 2).
const INPUT_STRIDE: usize = 2;
/// Characters a window may hold beyond `Options::max_chars_per_second` × its length
/// (a word begun just before the window, punctuation).
const MAX_CHARS_SLACK: f32 = 20.0;
/// A window shorter than this (only the audio's last can be) whose greedy text is too
/// fast for it is dropped without sampled retries: it holds a fraction of a word after
/// the previous window's last timestamp, and the retries of a loop over its padding
/// decoded ~1000 tokens (base int4 on a 99-s file: 354 tokens without its last 0.4 s,
/// 1355 with) before being dropped all the same.
const SHORT_TAIL_S: f32 = 1.0;
/// Seconds after a window's last timestamp, with no text decoded there, that a live
/// stream's buffer leaves to the next transcription rather than to one more window.
const TAIL_WITHOUT_TEXT_S: f32 = 1.0;

/// Whether a window's decode is retried at the next temperature: it asked to fall back,
/// a hotter temperature is left, and it is not a short tail too fast for its length
/// (`SHORT_TAIL_S`).
fn retry(fallback: bool, too_fast: bool, last: bool, segment_duration: f32) -> bool {
    fallback && !last && !(too_fast && segment_duration < SHORT_TAIL_S)
}

/// Text of `tokens`, special and timestamp tokens left out.
pub(crate) fn decode_text(file: &ModelFile, tokens: &[u32]) -> String {
    let eot = file.config().tokens.eot;
    let mut bytes = Vec::new();
    for &t in tokens.iter().filter(|&&t| t < eot) {
        bytes.extend_from_slice(file.token_bytes(t));
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The language token whose probability is highest for this window's encoding.
fn detect_language<B: Backend>(
    file: &ModelFile,
    backend: &B,
    cross: &B::Cross,
) -> Result<(String, u32)> {
    let c = file.config();
    let mut cache = backend.new_cache();
    let logits = backend
        .decode(cross, &mut cache, &[c.tokens.sot], &[0])?
        .pop()
        .unwrap_or_default();
    let logit = |id: u32| {
        logits
            .get(id as usize)
            .copied()
            .unwrap_or(f32::NEG_INFINITY)
    };
    c.languages
        .iter()
        .max_by(|a, b| logit(a.1).total_cmp(&logit(b.1)))
        .cloned()
        .ok_or_else(|| Error::Invalid("this model has no languages to detect".into()))
}

fn language_token(file: &ModelFile, code: &str) -> Result<u32> {
    let c = file.config();
    c.languages
        .iter()
        .find(|(l, _)| l == code)
        .map(|(_, id)| *id)
        .ok_or_else(|| {
            let known: Vec<&str> = c.languages.iter().map(|(l, _)| l.as_str()).collect();
            Error::Invalid(format!(
                "unknown language '{code}'; this model knows: {}",
                known.join(" ")
            ))
        })
}

/// Transcribes 16-kHz mono samples.
/// `file` describes the model (configuration, vocabulary, mel filters); `backend`
/// runs the network.
/// `joints`: see [`transcribe_source`].
pub(crate) fn transcribe<B: Backend>(
    file: &ModelFile,
    backend: &B,
    samples: &[f32],
    opts: &Options,
    joints: &[usize],
) -> Result<Transcript> {
    if samples.is_empty() {
        return Err(Error::Invalid("no audio samples to transcribe".into()));
    }
    if let Some(bad) = samples.iter().find(|s| !s.is_finite()) {
        return Err(Error::Invalid(format!(
            "audio contains a non-finite sample ({bad})"
        )));
    }
    let nm = file.config().n_mels as usize;
    let mut source = WholeMel::new(samples, file.mel_filters(), nm);
    transcribe_source(file, backend, &mut source, opts, &[], false, joints)
}

/// Transcribes the windows `source` gives. `prior` (text tokens) stands before the
/// first window's text as if decoded earlier (the live stream's confirmed text).
/// `whole_tail`: the window that reaches the end of the audio keeps the text after its
/// last closed segment, as a segment to the end, instead of decoding that audio again
/// in one more window (a live stream's buffer: its tail is tentative anyway, and the
/// extra window cost a whole encoder pass and invited made-up text over padding).
/// `joints` (sample offsets, ascending): where pieces of speech laid end to end meet
/// (VAD); a window whose text ends less than [`OVERSHOOT_S`] after a joint is
/// followed by one from that joint.
pub(crate) fn transcribe_source<B: Backend>(
    file: &ModelFile,
    backend: &B,
    source: &mut dyn MelSource,
    opts: &Options,
    prior: &[u32],
    whole_tail: bool,
    joints: &[usize],
) -> Result<Transcript> {
    let c = file.config().clone();
    let t = &c.tokens;
    if source.n_samples() == 0 {
        return Err(Error::Invalid("no audio samples to transcribe".into()));
    }
    let search = search_of(opts)?;
    let mut timings = Timings::default();
    let nm = c.n_mels as usize;
    let content_frames = source.content_frames();
    // A window holds the content frames from `seek` on, zero-padded (in the scaled
    // log-mel domain) to 30 s, as openai-whisper and faster-whisper feed it.
    let source = std::cell::RefCell::new(source);
    let mut window = vec![0f32; nm * N_FRAMES];
    let mut encode = |seek: usize, timings: &mut Timings| {
        source.borrow_mut().window(seek, &mut window)?;
        let t0 = Instant::now();
        let cross = backend.encode(&window);
        timings.encoder_ms += t0.elapsed().as_secs_f64() * 1e3;
        timings.windows += 1;
        cross
    };

    // Language: given, detected on the first window, or English for .en models.
    let mut first_cross = None;
    let (language, lang_token) = if !c.multilingual {
        if opts.language.as_deref().is_some_and(|l| l != "en") || opts.task == Task::Translate {
            return Err(Error::Invalid(
                "this model is English-only: it cannot take --language or --task translate".into(),
            ));
        }
        ("en".to_string(), None)
    } else if let Some(l) = &opts.language {
        (l.clone(), Some(language_token(file, l)?))
    } else {
        let cross = encode(0, &mut timings)?;
        let (l, id) = detect_language(file, backend, &cross)?;
        first_cross = Some(cross);
        (l, Some(id))
    };
    let mut sot_seq = vec![t.sot];
    if let Some(lt) = lang_token {
        sot_seq.push(lt);
        sot_seq.push(if opts.task == Task::Translate {
            t.translate
        } else {
            t.transcribe
        });
    }
    if !opts.timestamps {
        sot_seq.push(t.no_timestamps);
    }

    // `-1` in `suppress_tokens` stands for the model's non-speech symbols.
    let mut suppress: Vec<u32> = Vec::new();
    for &id in &opts.suppress_tokens {
        match id {
            -1 => suppress.extend_from_slice(&c.suppress_ids),
            id if (0..c.n_vocab as i64).contains(&id) => suppress.push(id as u32),
            id => {
                return Err(Error::Invalid(format!(
                    "suppress token {id} is not -1 or a token id below {}",
                    c.n_vocab
                )))
            }
        }
    }
    suppress.extend([
        t.transcribe,
        t.translate,
        t.sot,
        t.sot_prev,
        t.sot_lm,
        t.no_speech,
    ]);
    suppress.sort_unstable();
    suppress.dedup();
    let filters = LogitFilters {
        tokens: t.clone(),
        n_vocab: c.n_vocab as usize,
        suppress,
        suppress_begin: if opts.suppress_blank {
            c.suppress_ids_begin.clone()
        } else {
            Vec::new()
        },
        sample_begin: 0,
        timestamps: opts.timestamps,
        max_initial_timestamp: opts
            .max_initial_timestamp
            .map(|s| (s / TIME_PRECISION).round() as u32),
    };
    let mut rng = Rng::new(opts.seed);

    let mut segments: Vec<Segment> = Vec::new();
    let mut window_temperatures: Vec<f32> = Vec::new();
    // Prompt text as openai-whisper / faster-whisper encode it: a leading space.
    let encode_text = |text: &Option<String>| -> Result<Vec<u32>> {
        match text.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => Ok(file.tokenizer()?.encode(&format!(" {t}"))),
            _ => Ok(Vec::new()),
        }
    };
    let initial_prompt = encode_text(&opts.initial_prompt)?;
    let hotwords = encode_text(&opts.hotwords)?;
    let mut prefix = encode_text(&opts.prefix)?;
    let max_context = opts
        .max_context
        .unwrap_or(usize::MAX)
        .min(c.n_text_ctx as usize / 2 - 1);
    prefix.truncate(c.n_text_ctx as usize / 2 - 1);
    // The first window's forced start: `<|0.00|>` (with timestamps) and the prefix.
    let mut forced_first = Vec::new();
    if !prefix.is_empty() {
        if opts.timestamps {
            forced_first.push(t.timestamp_begin);
        }
        forced_first.extend_from_slice(&prefix);
    }
    // The first window samples after its forced start.
    let first_filters = LogitFilters {
        sample_begin: forced_first.len(),
        ..filters.clone()
    };
    let decoder_with = |filters| WindowDecoder {
        backend,
        n_ctx: c.n_text_ctx as usize,
        filters,
        sample_len: c.n_text_ctx as usize / 2,
        abort: opts.abort.as_ref(),
        search,
    };
    let decoder = decoder_with(&filters);
    let first_decoder = decoder_with(&first_filters);
    let mut all_tokens: Vec<u32> = initial_prompt.clone();
    all_tokens.extend_from_slice(prior);
    let mut prompt_reset_since = 0;
    // End of the last word timed (word timestamps' segment-edge rules).
    let mut last_speech = 0f32;
    let mut seek = 0;
    let total_s = content_frames as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
    while seek < content_frames {
        if opts.abort.as_ref().is_some_and(|a| a.is_aborted()) {
            return Err(Error::Aborted);
        }
        let seek_start = seek;
        let time_offset = (seek * HOP_LENGTH) as f32 / SAMPLE_RATE as f32;
        let segment_size = N_FRAMES.min(content_frames - seek);
        let segment_duration = (segment_size * HOP_LENGTH) as f32 / SAMPLE_RATE as f32;
        let cross = match first_cross.take() {
            Some(cross) if seek == 0 => cross,
            _ => encode(seek, &mut timings)?,
        };

        let forced: &[u32] = if seek == 0 { &forced_first } else { &[] };
        // Context: hotwords (unless a prefix is given), the initial prompt when it is
        // carried, then the latest previous text, at most `max_context` tokens.
        let mut head: Vec<u32> = Vec::new();
        if forced.is_empty() {
            head.extend_from_slice(&hotwords);
        }
        let mut since = prompt_reset_since;
        if opts.carry_initial_prompt {
            head.extend_from_slice(&initial_prompt);
            since = since.max(initial_prompt.len());
        }
        let head = &head[head.len().saturating_sub(max_context)..];
        let previous = &all_tokens[since.min(all_tokens.len())..];
        let keep = (max_context - head.len()).min(previous.len());
        let mut prompt = Vec::new();
        if !head.is_empty() || keep > 0 {
            prompt.push(t.sot_prev);
            prompt.extend_from_slice(head);
            prompt.extend_from_slice(&previous[previous.len() - keep..]);
        }
        let sot_index = prompt.len();
        prompt.extend_from_slice(&sot_seq);
        prompt.extend_from_slice(forced);

        // Temperature fallback: retry hotter while the text loops or is improbable.
        let t_dec = Instant::now();
        let mut result = WindowResult::default();
        let mut too_fast = false;
        for (i, &temp) in opts.temperatures.iter().enumerate() {
            let decoder = if seek == 0 { &first_decoder } else { &decoder };
            result = decoder.decode(&cross, &prompt, sot_index, forced, temp, &mut rng)?;
            timings.decode_tokens += result.tokens.len() + 1;
            let text = decode_text(file, &result.tokens);
            let text = text.trim();
            result.compression_ratio = compress::compression_ratio(text);
            too_fast = opts.max_chars_per_second.is_some_and(|rate| {
                text.chars().count() as f32 > rate * segment_duration + MAX_CHARS_SLACK
            });
            let improbable = result.avg_logprob < opts.logprob_threshold;
            let mut fallback = result.compression_ratio > opts.compression_ratio_threshold
                || improbable
                || too_fast;
            // Silence ends the retries only when the text is improbable too
            // (openai-whisper's rule): a confident loop over a window the model also
            // thinks may be silent is retried like any other.
            if result.no_speech_prob > opts.no_speech_threshold && improbable {
                fallback = false;
            }
            let last = i + 1 == opts.temperatures.len();
            if !retry(fallback, too_fast, last, segment_duration) {
                break;
            }
        }
        timings.decode_ms += t_dec.elapsed().as_secs_f64() * 1e3;
        window_temperatures.push(result.temperature);

        let silent = result.no_speech_prob > opts.no_speech_threshold
            && result.avg_logprob < opts.logprob_threshold;
        if silent || too_fast {
            seek += segment_size;
            report(opts, seek, total_s);
            continue;
        }

        let tokens = &result.tokens;
        let tb = t.timestamp_begin;
        let is_ts = |x: u32| x >= tb;
        let ts_time = |x: u32| (x - tb) as f32 * TIME_PRECISION + time_offset;
        let single_ending = tokens.len() >= 2
            && !is_ts(tokens[tokens.len() - 2])
            && is_ts(tokens[tokens.len() - 1]);
        let mut cuts: Vec<usize> = (1..tokens.len())
            .filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1]))
            .collect();
        let new_start = segments.len();
        // A live stream's buffer (`whole_tail`, the window reaching the audio's end): the
        // text after the last closed segment is kept (without timestamp pairs the
        // window's text is one segment already). Ending more than a second before the
        // audio does without text there is the model stopping early (it does, after a
        // pause was cut out): that audio is decoded again, from the last timestamp
        // (less is the word the buffer cuts off).
        let buffer_end = whole_tail && seek_start + segment_size >= content_frames;
        let end_s = time_offset + segment_duration;
        // Ending at `at` seconds leaves audio without text.
        let early_at = |at: f32| end_s - at >= TAIL_WITHOUT_TEXT_S;
        let early = |ts: u32| ts > tb && early_at(ts_time(ts));
        let keep_tail = buffer_end
            && !single_ending
            && cuts
                .last()
                .is_none_or(|&c| tokens[c..].iter().any(|&x| x < t.eot) || !early(tokens[c]));
        let stopped_early = buffer_end && single_ending && early(tokens[tokens.len() - 1]);
        let full_window = if stopped_early {
            (tokens[tokens.len() - 1] - tb) as usize * INPUT_STRIDE
        } else {
            segment_size
        };
        // The window's text runs to its last token: the window is done.
        let to_end = single_ending || keep_tail;
        if !cuts.is_empty() {
            if to_end {
                cuts.push(tokens.len());
            }
            let mut last = 0;
            for &cut in &cuts {
                let piece = &tokens[last..cut];
                // A kept tail has no closing timestamp: it runs to the audio's end.
                let end = match piece[piece.len() - 1] {
                    x if is_ts(x) => ts_time(x),
                    _ => end_s,
                };
                push_segment(
                    file,
                    &mut segments,
                    ts_time(piece[0]),
                    end,
                    last..cut,
                    &result,
                );
                last = cut;
            }
            if to_end {
                seek += full_window;
            } else {
                seek += (tokens[last - 1] - tb) as usize * INPUT_STRIDE;
            }
        } else {
            let mut duration = segment_duration;
            if let Some(&last_ts) = tokens.iter().rev().find(|&&x| is_ts(x)) {
                if last_ts != tb {
                    duration = (last_ts - tb) as f32 * TIME_PRECISION;
                }
            }
            push_segment(
                file,
                &mut segments,
                time_offset,
                time_offset + duration,
                0..tokens.len(),
                &result,
            );
            seek += full_window;
        }
        // A segment that starts after the audio has ended is text the model made up
        // over the zero padding of a short last window (typically the prompt repeated):
        // drop it. The rest keep their ends inside the audio, never before their start.
        let audio_end = source.borrow().n_samples() as f32 / SAMPLE_RATE as f32;
        let window: Vec<Segment> = segments.split_off(new_start);
        segments.extend(
            window
                .into_iter()
                .filter(|s| s.start < audio_end)
                .map(|mut s| {
                    s.end = s.end.min(audio_end).max(s.start);
                    s
                }),
        );
        if opts.word_timestamps && segments.len() > new_start {
            let t_words = Instant::now();
            let window = &mut segments[new_start..];
            let text: Vec<u32> = window
                .iter()
                .flat_map(|s| s.tokens.iter().copied())
                .filter(|&x| x < t.eot)
                .collect();
            if !text.is_empty() {
                let aligned = words::find_alignment(
                    file,
                    backend,
                    &cross,
                    &sot_seq,
                    &text,
                    segment_size,
                    &language,
                )?;
                last_speech = words::attach_words(window, aligned, t.eot, time_offset, last_speech);
                // The next window starts after the last word (unless this one
                // ended on a single timestamp), as openai-whisper's does. A stream
                // buffer's kept tail whose last word ends over a second before the
                // buffer does is the model stopping early with no timestamp to say
                // so (it does, at the start of a new utterance): the rest of the
                // buffer is decoded again from that word's end.
                let last_word = window
                    .iter()
                    .rev()
                    .flat_map(|s| s.words.iter().rev())
                    .map(|w| w.end)
                    .next();
                let tail_unheard = keep_tail && last_word.is_some_and(early_at);
                if !to_end || tail_unheard {
                    let last_end = last_word.or(window.last().map(|s| s.end));
                    if let Some(end) = last_end.filter(|&e| e > time_offset) {
                        let next =
                            (end as f64 * SAMPLE_RATE as f64 / HOP_LENGTH as f64).round() as usize;
                        if next > seek_start {
                            seek = next;
                        }
                    }
                }
            }
            timings.decode_ms += t_words.elapsed().as_secs_f64() * 1e3;
        }
        if let Some(f) = &opts.on_segment {
            segments[new_start..].iter().for_each(|s| f(s));
        }
        // The next prompt holds the text of the segments kept, as openai-whisper's
        // does: not the unfinished piece after the last timestamp pair (the next
        // window decodes that audio again, and seeing its text just before invites
        // the model to repeat it), nor text dropped above.
        for s in &segments[new_start..] {
            all_tokens.extend_from_slice(&s.tokens);
        }
        if !opts.condition_on_previous_text || result.temperature > 0.5 {
            prompt_reset_since = all_tokens.len();
        }
        // A window that closed its text a little past a joint (VAD) ended with the
        // piece before it: the next one starts at the joint, where the next piece's
        // padding does, not inside its first word (on six files of tools/vad_bench.py,
        // 2 to 4 word errors fewer in 1136, the same windows).
        if seek < seek_start + segment_size {
            seek = back_to_joint(seek, seek_start, joints);
        }
        report(opts, seek, total_s);
    }

    timings.mel_ms = source.borrow().mel_ms();
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<String>()
        .trim()
        .to_string();
    Ok(Transcript {
        text,
        language,
        segments,
        timings,
        window_temperatures,
    })
}

/// The next window's start `seek` (mel frames), moved back to the latest joint (sample
/// offset) at most [`OVERSHOOT_S`] before it, in whole frames and never back to the
/// window's own start `seek_start` (no progress).
fn back_to_joint(seek: usize, seek_start: usize, joints: &[usize]) -> usize {
    let back = (OVERSHOOT_S * SAMPLE_RATE as f64) as usize / HOP_LENGTH;
    joints
        .iter()
        .rev()
        .map(|&j| j / HOP_LENGTH)
        .find(|&j| j <= seek && j + back >= seek && j > seek_start)
        .unwrap_or(seek)
}

/// The beam search / best-of options, checked as openai-whisper checks them.
fn search_of(opts: &Options) -> Result<window::Search> {
    let bad = |m: String| Err(Error::Invalid(m));
    if opts.beam_size == 0 {
        return bad("beam size must be at least 1".into());
    }
    if opts.best_of == 0 {
        return bad("best-of must be at least 1".into());
    }
    let p = opts.patience;
    if !p.is_finite() || p <= 0.0 || (opts.beam_size as f32 * p).round() < 1.0 {
        return bad(format!(
            "patience {p} with beam size {} keeps no finished hypothesis",
            opts.beam_size
        ));
    }
    if let Some(a) = opts.length_penalty {
        if !(0.0..=1.0).contains(&a) {
            return bad(format!("length penalty {a} must lie between 0 and 1"));
        }
    }
    Ok(window::Search {
        beam_size: opts.beam_size,
        patience: p,
        length_penalty: opts.length_penalty,
        best_of: opts.best_of,
    })
}

fn report(opts: &Options, seek: usize, total_s: f64) {
    if let Some(p) = &opts.progress {
        let done = (seek * HOP_LENGTH) as f64 / SAMPLE_RATE as f64;
        p(done.min(total_s), total_s);
    }
}

fn push_segment(
    file: &ModelFile,
    segments: &mut Vec<Segment>,
    start: f32,
    end: f32,
    range: std::ops::Range<usize>,
    r: &WindowResult,
) {
    let tokens = &r.tokens[range.clone()];
    let text = decode_text(file, tokens);
    // openai-whisper clears instantaneous and empty segments.
    if text.trim().is_empty() || start == end {
        return;
    }
    segments.push(Segment {
        start,
        end,
        text,
        tokens: tokens.to_vec(),
        avg_logprob: r.avg_logprob,
        no_speech_prob: r.no_speech_prob,
        temperature: r.temperature,
        compression_ratio: r.compression_ratio,
        token_probs: (r.logprobs.get(range))
            .unwrap_or_default()
            .iter()
            .map(|l| l.exp())
            .collect(),
        words: Vec::new(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_tail_too_fast_for_its_length_is_not_retried() {
        // Ordinary fallback: retried while a temperature is left.
        assert!(retry(true, false, false, 0.5));
        assert!(retry(true, false, false, 30.0));
        assert!(!retry(true, false, true, 30.0));
        assert!(!retry(false, false, false, 30.0));
        // Too fast: retried in a long window, not in a short tail.
        assert!(retry(true, true, false, 30.0));
        assert!(retry(true, true, false, SHORT_TAIL_S));
        assert!(!retry(true, true, false, 0.4));
    }

    #[test]
    fn a_window_closed_just_past_a_joint_is_followed_from_the_joint() {
        let frame = HOP_LENGTH;
        // Joints (samples) at frames 1000.5, 2000 and 7171.
        let joints = [1000 * frame + 80, 2000 * frame, 7171 * frame];
        // 0.49 s past the joint at 7171: back to it.
        assert_eq!(back_to_joint(7220, 5620, &joints), 7171);
        // The latest joint within a second wins; a partial frame rounds down.
        assert_eq!(back_to_joint(1050, 0, &joints), 1000);
        assert_eq!(back_to_joint(2000, 0, &joints), 2000);
        // Over a second past every joint, or no joints (no VAD): unchanged.
        assert_eq!(back_to_joint(2101, 0, &joints), 2101);
        assert_eq!(back_to_joint(7220, 5620, &[]), 7220);
        // Never back to (or before) the window's own start: it would not progress.
        assert_eq!(back_to_joint(1050, 1000, &joints), 1050);
        assert_eq!(back_to_joint(1050, 1020, &joints), 1050);
    }
}
