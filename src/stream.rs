//! Live transcription: [`Stream`] takes PCM pieces of any size and returns confirmed and
//! tentative words as it goes, by LocalAgreement-2 (Macháček et al., whisper_streaming): the
//! buffered audio is transcribed again every `step` seconds and the longest common prefix of
//! two consecutive hypotheses is confirmed. The buffer is cut at the end of a segment whose
//! words are all confirmed (their tokens become the prompt), cut outright at `max_buffer`
//! seconds, and emptied at a pause, which a [`PauseDetector`] finds (energy now; a voice
//! activity model can implement the same trait).

use crate::decoding::source::WholeMel;
use crate::{Error, Model, Options, Result, Transcript};
use std::borrow::Borrow;

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

/// A word with its time on the stream's timeline (seconds from the first sample); times are
/// interpolated within a segment by character position.
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
    /// Seconds of new audio between transcriptions.
    pub step: f32,
    /// Buffered seconds above which the buffer is cut at a confirmed segment end.
    pub trim: f32,
    /// Buffered seconds never exceeded (bounded memory for endless input).
    pub max_buffer: f32,
    /// Seconds of silence after speech that end an utterance.
    pub pause: f32,
    pub options: Options,
}

impl Default for StreamOptions {
    fn default() -> StreamOptions {
        StreamOptions {
            rate: 16_000,
            step: 1.0,
            trim: 15.0,
            max_buffer: 25.0,
            pause: 0.8,
            options: Options::default(),
        }
    }
}

struct Hyp {
    words: Vec<Word>,
    /// For each segment: index one past its last word, its end (buffer time), its tokens.
    segments: Vec<(usize, f32, Vec<u32>)>,
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
    buffer: Vec<f32>,
    /// Stream time of `buffer[0]`, samples.
    buffer_start: u64,
    since_run: usize,
    speech_since_run: bool,
    silent_samples: usize,
    previous: Vec<Word>,
    /// Words of the buffer's hypotheses already confirmed.
    committed: usize,
    prompt: Vec<u32>,
    peak_buffer: usize,
}

const SR: f32 = crate::audio::SAMPLE_RATE as f32;

fn norm(w: &str) -> String {
    w.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
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
        if !(opts.step > 0.0 && opts.trim > 0.0 && opts.max_buffer >= opts.trim) {
            return Err(Error::Invalid(
                "stream: step and trim must be positive, max_buffer at least trim".into(),
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
            buffer_start: 0,
            since_run: 0,
            speech_since_run: false,
            silent_samples: 0,
            previous: Vec::new(),
            committed: 0,
            prompt: Vec::new(),
            peak_buffer: 0,
        })
    }

    /// The most 16-kHz samples buffered at once so far.
    pub fn peak_buffer(&self) -> usize {
        self.peak_buffer
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
            if self.detector.is_speech(&frame) {
                self.silent_samples = 0;
                self.speech_since_run = true;
            } else {
                self.silent_samples += frame.len();
            }
            self.buffer.extend_from_slice(&frame);
            self.since_run += frame.len();
            self.peak_buffer = self.peak_buffer.max(self.buffer.len());
            let paused = self.silent_samples as f32 >= self.opts.pause * SR;
            if paused && !self.buffer.is_empty() {
                if self.speech_since_run || self.committed < self.previous.len() {
                    let u = self.run(true)?;
                    update.confirmed.extend(u.confirmed);
                    update.tentative = u.tentative;
                }
                // Silence is dropped, not buffered.
                self.buffer_start += self.buffer.len() as u64;
                self.buffer.clear();
                self.previous.clear();
                self.committed = 0;
                self.since_run = 0;
                self.speech_since_run = false;
            } else if self.since_run as f32 >= self.opts.step * SR {
                let u = self.run(false)?;
                update.confirmed.extend(u.confirmed);
                update.tentative = u.tentative;
            }
        }
        Ok(update)
    }

    /// Ends the stream: everything heard is confirmed.
    pub fn finish(&mut self) -> Result<Update> {
        let mut update = Update::default();
        if !self.buffer.is_empty()
            && (self.speech_since_run || self.committed < self.previous.len())
        {
            update = self.run(true)?;
        }
        self.buffer.clear();
        Ok(update)
    }

    fn transcribe(&self) -> Result<Transcript> {
        let model: &Model = self.model.borrow();
        let file = model.file();
        let nm = file.config().n_mels as usize;
        let mut source = WholeMel::new(&self.buffer, file.mel_filters(), nm);
        model.transcribe_source(&mut source, &self.opts.options, &self.prompt)
    }

    fn hypothesis(&self, t: &Transcript) -> Hyp {
        let offset = self.buffer_start as f32 / SR;
        let mut words = Vec::new();
        let mut segments = Vec::new();
        for s in &t.segments {
            let len = s.text.chars().count().max(1) as f32;
            let mut pos = 0usize;
            for w in s.text.split_inclusive(char::is_whitespace) {
                let n = w.chars().count();
                if !w.trim().is_empty() {
                    let at = |p: usize| s.start + (s.end - s.start) * p as f32 / len + offset;
                    words.push(Word {
                        start: at(pos),
                        end: at(pos + n),
                        text: w.trim().to_string(),
                    });
                }
                pos += n;
            }
            segments.push((words.len(), s.end, s.tokens.clone()));
        }
        Hyp { words, segments }
    }

    fn run(&mut self, all: bool) -> Result<Update> {
        self.since_run = 0;
        self.speech_since_run = false;
        let t = self.transcribe()?;
        let hyp = self.hypothesis(&t);
        let agreed = hyp
            .words
            .iter()
            .zip(&self.previous)
            .take_while(|(a, b)| norm(&a.text) == norm(&b.text))
            .count();
        let upto = if all { hyp.words.len() } else { agreed };
        let mut update = Update::default();
        if upto > self.committed {
            update.confirmed = hyp.words[self.committed..upto].to_vec();
            self.committed = upto;
        }
        update.tentative = hyp.words[self.committed.min(hyp.words.len())..].to_vec();
        self.previous = hyp.words.clone();

        // Cut the buffer after the last segment whose words are all confirmed (not the
        // last segment: its end is where the model stopped, not a pause).
        let seconds = self.buffer.len() as f32 / SR;
        if all {
            // The caller empties the buffer; all of it becomes the prompt.
            for seg in &hyp.segments {
                self.prompt.extend_from_slice(&seg.2);
            }
            let keep = self.prompt.len().saturating_sub(223);
            self.prompt.drain(..keep);
        } else if seconds > self.opts.trim {
            let cut = hyp.segments[..hyp.segments.len().saturating_sub(1)]
                .iter()
                .rposition(|s| s.0 <= self.committed);
            let forced = seconds > self.opts.max_buffer - self.opts.step;
            let cut = match cut {
                Some(i) => Some(i),
                None if forced => {
                    update
                        .confirmed
                        .extend(hyp.words[self.committed..].iter().cloned());
                    update.tentative.clear();
                    self.committed = hyp.words.len();
                    hyp.segments.len().checked_sub(1)
                }
                None => None,
            };
            let (words, end) = match cut {
                Some(i) => (hyp.segments[i].0, hyp.segments[i].1),
                None if forced => (hyp.words.len(), seconds),
                None => return Ok(update),
            };
            for s in &hyp.segments[..cut.map_or(0, |i| i + 1)] {
                self.prompt.extend_from_slice(&s.2);
            }
            let keep = self.prompt.len().saturating_sub(223);
            self.prompt.drain(..keep);
            let samples = ((end.max(0.0) * SR) as usize).min(self.buffer.len());
            self.buffer.drain(..samples);
            self.buffer_start += samples as u64;
            self.previous.drain(..words.min(self.previous.len()));
            self.committed = self.committed.saturating_sub(words);
        }
        Ok(update)
    }
}
