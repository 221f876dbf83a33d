//! Live transcription: [`Stream`] takes PCM pieces of any size and returns confirmed and
//! tentative words as it goes, by LocalAgreement-2 (Macháček et al., whisper_streaming): the
//! buffered audio is transcribed again every `step` seconds and the longest common prefix of
//! two consecutive hypotheses is confirmed. Above `trim` seconds the buffer is cut between
//! confirmed words (at a segment end or a pause between words; nearer `max_buffer`, after the
//! last confirmed word), and the text that leaves it becomes the prompt; at a pause, which a
//! [`PauseDetector`] finds (energy, or Silero VAD), what was said is confirmed and the pause
//! is dropped from the buffer, the speech before it kept as context.

use crate::decoding::source::WholeMel;
use crate::{Error, Model, Options, Result, Transcript};
use std::borrow::Borrow;
use std::collections::VecDeque;

/// Tells speech from silence, one frame of 16-kHz samples at a time.
pub trait PauseDetector: Send {
    /// Samples per frame.
    fn frame_len(&self) -> usize;
    /// Whether `frame` (`frame_len` samples) holds speech.
    fn is_speech(&mut self, frame: &[f32]) -> bool;
}

/// Speech where a 30-ms frame's RMS level is above `threshold_db` (dBFS).
pub struct EnergyPause {
    pub threshold_db: f32,
}

impl PauseDetector for EnergyPause {
    fn frame_len(&self) -> usize {
        480
    }
    fn is_speech(&mut self, frame: &[f32]) -> bool {
        let ms = frame.iter().map(|v| v * v).sum::<f32>() / frame.len().max(1) as f32;
        10.0 * ms.max(1e-12).log10() > self.threshold_db
    }
}

/// A word with its time on the stream's timeline (seconds from the first sample), from the
/// alignment heads (`Options::word_timestamps`, which a stream always sets).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Word {
    pub start: f32,
    pub end: f32,
    pub text: String,
}

/// What one push produced: words newly confirmed (final) and the current tentative rest.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Update {
    pub confirmed: Vec<Word>,
    pub tentative: Vec<Word>,
}

/// Streaming settings; `options` are the decoding options of each transcription.
#[derive(Clone)]
#[non_exhaustive]
pub struct StreamOptions {
    /// Input sample rate (16 kHz without the `audio` feature).
    pub rate: u32,
    /// Seconds of new audio between transcriptions (more when the last transcription took
    /// longer than that).
    pub step: f32,
    /// Seconds of audio between the two hypotheses whose agreement confirms a word: a word
    /// is confirmed by the newest hypothesis made at least this much earlier (with `step`
    /// at least `agree`: the previous one).
    pub agree: f32,
    /// Buffered seconds above which the buffer is cut between confirmed words.
    pub trim: f32,
    /// Buffered seconds never exceeded (bounded memory for endless input).
    pub max_buffer: f32,
    /// Seconds of silence after speech that end an utterance.
    pub pause: f32,
    /// Wait, before the next transcription, for at least as much new audio as the last
    /// one took to transcribe, so a live stream never falls behind (its decisions then
    /// depend on the machine's speed; off: every `step` exactly, reproducibly).
    pub keep_up: bool,
    pub options: Options,
}

impl Default for StreamOptions {
    fn default() -> StreamOptions {
        StreamOptions {
            rate: 16_000,
            // Measured on 90-s test-other long-form files (tiny.en int8, 2 threads, real
            // time): every 0.4 s against the hypothesis 0.8 s older confirms a word a
            // median 1.2 s after it is said (the earlier default, every second against
            // the previous hypothesis: 1.8 s).
            step: 0.4,
            agree: 0.8,
            trim: 22.0,
            max_buffer: 28.0,
            pause: 0.8,
            keep_up: true,
            // No temperature fallback: a failed transcription is redone a step later
            // anyway, and fallbacks would cost more than real time.
            options: Options {
                temperatures: vec![0.0],
                ..Options::default()
            },
        }
    }
}

/// Seconds between two words that count as a pause where the buffer may be cut.
const PAUSE_GAP: f32 = 0.2;
/// Seconds of a pause kept in the buffer after the speech before it.
const PAUSE_PAD: f32 = 0.3;
/// A hypothesis word starting this much after the last confirmed word's start is new.
const OVERLAP: f32 = 0.1;
/// Seconds of buffer after the last confirmed word, with no new word heard, that cut the
/// buffer there.
const STALL: f32 = 2.0;
/// Seconds within which a hypothesis word with the last confirmed word's text is taken
/// for it.
const ANCHOR: f32 = 0.5;
/// Longest run of words repeated across the end of the confirmed text that is dropped.
const MAX_REPEAT: usize = 5;

/// A word of one hypothesis: on the stream's timeline, its span in buffer samples, and
/// whether it ends one of Whisper's segments.
struct HypWord {
    word: Word,
    end_sample: usize,
    start_sample: usize,
    ends_segment: bool,
}

/// A live transcription over a model held as `M`: `&Model` to borrow it, `Arc<Model>` (or
/// any other owner that lends a `Model`) for a stream that must own its model, as a C
/// caller's does.
pub struct Stream<M> {
    model: M,
    opts: StreamOptions,
    #[cfg(feature = "audio")]
    resampler: Option<crate::audio::StreamResampler>,
    detector: Box<dyn PauseDetector>,
    /// Detector input not yet a whole frame.
    frame: Vec<f32>,
    /// Speech (and the start of each pause) still to be confirmed or kept as context.
    buffer: Vec<f32>,
    /// Where buffer samples lie on the stream: (buffer index, stream sample) at the buffer's
    /// start and wherever a dropped pause joins two stretches.
    joints: Vec<(usize, u64)>,
    /// Samples received (at 16 kHz).
    received: u64,
    /// In a pause: silence is not buffered.
    paused: bool,
    since_run: usize,
    speech_since_run: bool,
    silent_samples: usize,
    /// Earlier hypotheses' unconfirmed words (what confirmation has since taken from their
    /// front removed), each with the stream sample it was made at; oldest first. Between
    /// runs the newest is the last hypothesis' pending words (`pending`).
    history: VecDeque<(u64, Vec<Word>)>,
    /// The last confirmed words: a hypothesis' words up to the last one are old
    /// ([`already_confirmed`]), and a repeat of them just after is dropped.
    tail: Vec<Word>,
    /// Confirmed words whose audio is still in the buffer: they join the prompt when it
    /// leaves.
    in_buffer: Vec<Word>,
    /// The confirmed text that has left the buffer, and its last tokens: the prompt.
    prompt_text: String,
    prompt: Vec<u32>,
    peak_buffer: usize,
    transcriptions: usize,
    windows: usize,
    /// Wall seconds the last transcription took: the next waits at least that much audio,
    /// so the stream never falls behind real time.
    last_run_s: f32,
}

const SR: f32 = crate::audio::SAMPLE_RATE as f32;

fn norm(w: &str) -> String {
    w.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// How many of a hypothesis' first words the confirmed text already holds (`tail`: its last
/// words): those up to its last word — that word found by its text near its time, else
/// every word starting before `OVERLAP` after it (by start, not end: a word at the end of
/// a buffer is often stretched to it) — and a repeat of its last words right after.
fn already_confirmed(hyp: &[HypWord], tail: &[Word]) -> usize {
    let Some(last) = tail.last() else {
        return 0;
    };
    // Word times move between hypotheses (most at the buffer's end): the word after the
    // last confirmed one can start within OVERLAP of its old start, and time alone would
    // drop it.
    let off = |w: &HypWord| (w.word.start - last.start).abs();
    let anchor = hyp
        .iter()
        .enumerate()
        .filter(|(_, w)| off(w) <= ANCHOR && norm(&w.word.text) == norm(&last.text))
        .min_by(|a, b| off(a.1).total_cmp(&off(b.1)));
    let mut done = match anchor {
        Some((k, _)) => k + 1,
        None => hyp
            .iter()
            .take_while(|w| w.word.start <= last.start + OVERLAP)
            .count(),
    };
    if hyp
        .get(done)
        .is_some_and(|w| w.word.start < last.start + 2.0)
    {
        let most = MAX_REPEAT.min(tail.len()).min(hyp.len() - done);
        if let Some(n) = (1..=most).rev().find(|&n| {
            tail[tail.len() - n..]
                .iter()
                .zip(&hyp[done..done + n])
                .all(|(a, b)| norm(&a.text) == norm(&b.word.text))
        }) {
            done += n;
        }
    }
    done
}

impl<M: Borrow<Model>> Stream<M> {
    pub fn new(model: M, opts: StreamOptions) -> Result<Stream<M>> {
        Stream::with_detector(
            model,
            opts,
            Box::new(EnergyPause {
                threshold_db: -45.0,
            }),
        )
    }

    pub fn with_detector(
        model: M,
        opts: StreamOptions,
        detector: Box<dyn PauseDetector>,
    ) -> Result<Stream<M>> {
        if !(opts.step > 0.0
            && opts.agree >= 0.0
            && opts.agree.is_finite()
            && opts.trim > 0.0
            && opts.max_buffer >= opts.trim)
        {
            return Err(Error::Invalid(
                "stream: step and trim must be positive, agree finite and not negative, \
                 max_buffer at least trim"
                    .into(),
            ));
        }
        #[cfg(feature = "audio")]
        let resampler = if opts.rate == crate::audio::SAMPLE_RATE {
            None
        } else {
            Some(
                crate::audio::StreamResampler::new(opts.rate, crate::audio::SAMPLE_RATE)
                    .map_err(Error::Invalid)?,
            )
        };
        #[cfg(not(feature = "audio"))]
        if opts.rate != crate::audio::SAMPLE_RATE {
            return Err(Error::Invalid(
                "stream: rates other than 16 kHz need the `audio` feature".into(),
            ));
        }
        Ok(Stream {
            model,
            opts,
            #[cfg(feature = "audio")]
            resampler,
            detector,
            frame: Vec::new(),
            buffer: Vec::new(),
            joints: vec![(0, 0)],
            received: 0,
            paused: false,
            since_run: 0,
            speech_since_run: false,
            silent_samples: 0,
            history: VecDeque::new(),
            tail: Vec::new(),
            in_buffer: Vec::new(),
            prompt_text: String::new(),
            prompt: Vec::new(),
            peak_buffer: 0,
            transcriptions: 0,
            windows: 0,
            last_run_s: 0.0,
        })
    }

    /// The most 16-kHz samples buffered at once so far.
    pub fn peak_buffer(&self) -> usize {
        self.peak_buffer
    }

    /// Transcriptions run so far, and the 30-s windows they encoded (one each, unless
    /// the model stopped early within a buffer).
    pub fn transcriptions(&self) -> (usize, usize) {
        (self.transcriptions, self.windows)
    }

    /// Takes `pcm` at the stream's rate; transcribes when `step` seconds have arrived.
    pub fn push(&mut self, pcm: &[f32]) -> Result<Update> {
        if let Some(bad) = pcm.iter().find(|s| !s.is_finite()) {
            return Err(Error::Invalid(format!(
                "audio contains a non-finite sample ({bad})"
            )));
        }
        #[cfg(feature = "audio")]
        let pcm: std::borrow::Cow<[f32]> = match self.resampler.as_mut() {
            Some(r) => {
                let mut out = Vec::new();
                r.push(pcm, &mut out).map_err(Error::Invalid)?;
                out.into()
            }
            None => pcm.into(),
        };
        let mut update = Update::default();
        for &v in pcm.iter() {
            self.frame.push(v);
            if self.frame.len() < self.detector.frame_len() {
                continue;
            }
            let frame = std::mem::take(&mut self.frame);
            let at = self.received;
            self.received += frame.len() as u64;
            if self.detector.is_speech(&frame) {
                self.silent_samples = 0;
                self.speech_since_run = true;
                if self.paused {
                    // Speech again: the pause (beyond its pad) was not kept.
                    self.paused = false;
                    self.joints.push((self.buffer.len(), at));
                }
            } else {
                self.silent_samples += frame.len();
                if self.paused {
                    continue;
                }
            }
            self.buffer.extend_from_slice(&frame);
            self.since_run += frame.len();
            self.peak_buffer = self.peak_buffer.max(self.buffer.len());
            if self.silent_samples as f32 >= self.opts.pause * SR {
                let speech_end = self.buffer.len() - self.silent_samples;
                if self.speech_since_run || !self.pending().is_empty() {
                    let u = self.run(Some(speech_end))?;
                    update.confirmed.extend(u.confirmed);
                    update.tentative = u.tentative;
                }
                // The speech stays as context for what follows; the pause does not.
                let keep = (speech_end + (PAUSE_PAD * SR) as usize).min(self.buffer.len());
                self.buffer.truncate(keep);
                self.joints.retain(|j| j.0 < keep.max(1));
                self.paused = true;
                self.since_run = 0;
                self.speech_since_run = false;
            } else if self.since_run as f32 >= self.step() * SR {
                let u = self.run(None)?;
                update.confirmed.extend(u.confirmed);
                update.tentative = u.tentative;
            }
        }
        Ok(update)
    }

    /// Ends the stream: everything heard is confirmed.
    pub fn finish(&mut self) -> Result<Update> {
        let mut update = Update::default();
        if !self.buffer.is_empty() && (self.speech_since_run || !self.pending().is_empty()) {
            let speech = if self.paused {
                self.buffer.len()
            } else {
                self.buffer.len().saturating_sub(self.silent_samples)
            };
            update = self.run(Some(speech))?;
        }
        self.cut(self.buffer.len())?;
        Ok(update)
    }

    /// Seconds of new audio before the next transcription.
    fn step(&self) -> f32 {
        if self.opts.keep_up {
            self.opts.step.max(self.last_run_s * 1.25)
        } else {
            self.opts.step
        }
    }

    /// The stream sample of buffer sample `i`.
    fn stream_sample(&self, i: usize) -> u64 {
        let j = self.joints.partition_point(|j| j.0 <= i).max(1) - 1;
        let (b, s) = self.joints[j];
        s + (i - b.min(i)) as u64
    }

    /// Stream seconds of buffer sample `i`.
    fn stream_time(&self, i: usize) -> f32 {
        (self.stream_sample(i) as f64 / SR as f64) as f32
    }

    /// Transcribes the buffer's first `len` samples.
    fn transcribe(&self, len: usize) -> Result<Transcript> {
        let model: &Model = self.model.borrow();
        let file = model.file();
        let nm = file.config().n_mels as usize;
        let mut source = WholeMel::new(&self.buffer[..len], file.mel_filters(), nm);
        let mut options = self.opts.options.clone();
        // Cuts fall between words, so the words need their aligned times.
        options.word_timestamps = true;
        model.transcribe_windows(&mut source, &options, &self.prompt, true)
    }

    /// The hypothesis' words, each mapped onto the stream's timeline.
    fn hypothesis(&self, t: &Transcript) -> Vec<HypWord> {
        let sample = |s: f32| ((s.max(0.0) * SR) as usize).min(self.buffer.len());
        let mut words = Vec::new();
        for s in &t.segments {
            let first = words.len();
            for w in &s.words {
                let text = w.word.trim();
                if !text.is_empty() {
                    let (a, b) = (sample(w.start), sample(w.end.max(w.start)));
                    words.push(HypWord {
                        word: Word {
                            start: self.stream_time(a),
                            end: self.stream_time(b),
                            text: text.to_string(),
                        },
                        start_sample: a,
                        end_sample: b,
                        ends_segment: false,
                    });
                }
            }
            if let Some(last) = words[first..].last_mut() {
                last.ends_segment = true;
            }
        }
        words
    }

    /// Appends `words` to the prompt: the confirmed text that has left the buffer, as
    /// tokens, its last 223 (openai-whisper's limit) kept.
    fn extend_prompt(&mut self, words: &[Word]) -> Result<()> {
        if words.is_empty() {
            return Ok(());
        }
        for w in words {
            self.prompt_text.push(' ');
            self.prompt_text.push_str(&w.text);
        }
        // Enough text for 223 tokens; cut at a space so no word is split.
        if self.prompt_text.len() > 2_000 {
            let mut at = self.prompt_text.len() - 1_500;
            while !self.prompt_text.is_char_boundary(at) {
                at += 1;
            }
            let at = self.prompt_text[at..].find(' ').map_or(at, |i| at + i);
            self.prompt_text.drain(..at);
        }
        let model: &Model = self.model.borrow();
        let mut tokens = model.file().tokenizer()?.encode(&self.prompt_text);
        tokens.drain(..tokens.len().saturating_sub(223));
        self.prompt = tokens;
        Ok(())
    }

    /// Transcribes the buffer and confirms the new words (after the confirmed text) that
    /// two hypotheses agree on, or (`flush`: the speech ended at that sample) every new word
    /// said before that end.
    fn run(&mut self, flush: Option<usize>) -> Result<Update> {
        self.since_run = 0;
        self.speech_since_run = false;
        // Whisper hallucinates into trailing silence: a flush hears only the speech and a
        // little of the pause, and words that begin in the pause are dropped.
        let len = flush.map_or(self.buffer.len(), |end| {
            (end + (PAUSE_PAD * SR) as usize).min(self.buffer.len())
        });
        let started = std::time::Instant::now();
        let t = self.transcribe(len)?;
        self.last_run_s = started.elapsed().as_secs_f32();
        self.transcriptions += 1;
        self.windows += t.timings.windows;
        let mut hyp = self.hypothesis(&t);
        if let Some(end) = flush {
            while hyp.last().is_some_and(|w| w.start_sample >= end) {
                hyp.pop();
            }
        }
        // New words: those after the confirmed text.
        let mut done = already_confirmed(&hyp, &self.tail);
        let new = &hyp[done..];
        // Nothing heard after the confirmed text while the buffer runs on: the model
        // stopped there (it does at the start of an utterance that follows a long one, for
        // as long as the buffer holds the one before), so the buffer is cut after it.
        let stalled = flush.is_none()
            && new.is_empty()
            && done > 0
            && (self.buffer.len() - hyp[done - 1].end_sample) as f32 >= STALL * SR;
        let agreed = if flush.is_some() {
            new.len()
        } else {
            // The newest hypothesis at least `agree` older; those before it are never needed.
            let lag = (self.opts.agree * SR) as u64;
            let now = self.received;
            match self.history.iter().rposition(|h| now - h.0 >= lag) {
                Some(i) => {
                    self.history.drain(..i);
                    new.iter()
                        .zip(&self.history[0].1)
                        .take_while(|(a, b)| norm(&a.word.text) == norm(&b.text))
                        .count()
                }
                None => 0,
            }
        };
        let pending: Vec<Word> = new[agreed..].iter().map(|w| w.word.clone()).collect();
        let mut update = Update {
            confirmed: new[..agreed].iter().map(|w| w.word.clone()).collect(),
            tentative: pending.clone(),
        };
        self.confirm(&update.confirmed);
        if flush.is_some() {
            self.history.clear();
        } else {
            self.history.push_back((self.received, pending));
        }
        done += agreed;

        // Above `trim` seconds (or stalled), cut after a confirmed word: the last one that
        // ends a segment or is followed by a pause, else (the buffer nearly full) the last
        // confirmed one, else (nothing confirmed) everything, confirmed as it stands.
        let seconds = self.buffer.len() as f32 / SR;
        if flush.is_none() && (seconds > self.opts.trim || stalled) {
            let boundary = |k: usize| {
                k == hyp.len()
                    || hyp[k - 1].ends_segment
                    || hyp[k].word.start - hyp[k - 1].word.end >= PAUSE_GAP
            };
            let forced = seconds > self.opts.max_buffer - self.opts.step;
            let mut cut = (1..=done).rev().find(|&k| boundary(k));
            if cut.is_none() && forced && done > 0 {
                cut = Some(done);
            }
            let at = match cut {
                // Where the next word begins, or half way into the pause before it.
                Some(k) if k < hyp.len() => {
                    let (a, b) = (hyp[k - 1].end_sample, hyp[k].start_sample);
                    a.max((a + b) / 2).min(b.max(a))
                }
                Some(k) => hyp[k - 1].end_sample,
                None if forced => {
                    let rest = self.history.pop_back().map(|h| h.1).unwrap_or_default();
                    self.history.clear();
                    self.confirm(&rest);
                    update.confirmed.extend(rest);
                    update.tentative.clear();
                    self.buffer.len()
                }
                None => return Ok(update),
            };
            self.cut(at)?;
        }
        Ok(update)
    }

    /// The last hypothesis' words after the confirmed text, not yet confirmed.
    fn pending(&self) -> &[Word] {
        self.history.back().map_or(&[], |h| &h.1)
    }

    fn confirm(&mut self, words: &[Word]) {
        // Older hypotheses lose the confirmed words from their front, or (they said
        // otherwise) everything: they can no longer agree with what follows.
        for (_, h) in self.history.iter_mut() {
            let same = h.len() >= words.len()
                && h.iter()
                    .zip(words)
                    .all(|(a, b)| norm(&a.text) == norm(&b.text));
            if same {
                h.drain(..words.len());
            } else {
                h.clear();
            }
        }
        self.tail.extend_from_slice(words);
        self.tail
            .drain(..self.tail.len().saturating_sub(MAX_REPEAT));
        self.in_buffer.extend_from_slice(words);
    }

    /// Drops the buffer's first `at` samples; the confirmed words said there join the
    /// prompt.
    fn cut(&mut self, at: usize) -> Result<()> {
        let at = at.min(self.buffer.len());
        let time = self.stream_time(at);
        let gone = self.in_buffer.iter().take_while(|w| w.start < time).count();
        let words: Vec<Word> = self.in_buffer.drain(..gone).collect();
        self.extend_prompt(&words)?;
        let start = self.stream_sample(at);
        self.buffer.drain(..at);
        let mut joints = vec![(0, start)];
        joints.extend(
            self.joints
                .iter()
                .filter(|j| j.0 > at)
                .map(|&(b, s)| (b - at, s)),
        );
        self.joints = joints;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{already_confirmed, HypWord, Word};

    fn word(text: &str, start: f32) -> Word {
        Word {
            start,
            end: start + 0.2,
            text: text.into(),
        }
    }

    /// A hypothesis word (its buffer samples do not matter here).
    fn w(text: &str, start: f32) -> HypWord {
        HypWord {
            word: word(text, start),
            start_sample: 0,
            end_sample: 0,
            ends_segment: false,
        }
    }

    #[test]
    fn the_word_after_the_last_confirmed_one_is_new_though_it_starts_close_to_it() {
        // "Thornton" was confirmed from a hypothesis that timed it late; the next one
        // times it earlier, and "made" starts 0.08 s after its old start.
        let tail = [word("Mr.", 24.31), word("Thornton", 24.77)];
        let hyp = [
            w("when", 23.5),
            w("Mr.", 24.3),
            w("Thornton", 24.6),
            w("made", 24.85),
            w("his", 25.25),
        ];
        assert_eq!(already_confirmed(&hyp, &tail), 3);
        // Without that word near its time, time decides (start up to OVERLAP after).
        let other = [w("Mr.", 24.3), w("Thornton's", 24.6), w("made", 24.85)];
        assert_eq!(already_confirmed(&other, &tail), 3);
        let far = [w("Mr.", 24.3), w("Thornton", 23.5), w("made", 24.95)];
        assert_eq!(already_confirmed(&far, &tail), 2);
    }

    #[test]
    fn a_repeat_of_the_confirmed_words_just_after_them_is_old() {
        let tail = [word("I", 3.0), word("heard", 3.4)];
        let hyp = [w("I", 5.0), w("heard", 5.5), w("him", 5.9)];
        assert_eq!(already_confirmed(&hyp, &tail), 2);
        // Nothing confirmed yet: everything is new.
        assert_eq!(already_confirmed(&hyp, &[]), 0);
    }
}
