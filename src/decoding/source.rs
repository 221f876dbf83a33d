//! Where the decoding loop reads its log-mel windows: [`MelSource`]. [`WholeMel`] holds the
//! spectrogram of samples in memory (today's path, and the live stream's buffer);
//! [`FileMel`] (feature `audio`) reads a file twice, packet by packet, in constant memory.
//!
//! Whisper scales log-mel by the maximum over the whole signal (floor at max − 8), so the
//! first frame of a window depends on audio an hour later. To keep the transcript
//! byte-identical to the whole-signal path, `FileMel` makes a first pass that decodes the file
//! and computes every frame only for that maximum and the length, then a second pass that
//! decodes it again and keeps only the frames of the current window: decoding and mel twice
//! (a few seconds an hour, against minutes of network) for memory that does not grow.

use crate::audio::{self, N_FRAMES, N_SAMPLES};
use crate::Result;

/// Log-mel frames for the decoding loop, scaled as the encoder wants them.
pub trait MelSource {
    /// Frames of content (the signal without the 30-s padding): `samples / 160`.
    fn content_frames(&self) -> usize;
    /// 16-kHz samples of the signal.
    fn n_samples(&self) -> usize;
    /// Writes frames `seek .. seek + N_FRAMES` (those past the content as zeros) into `out`,
    /// `n_mels × N_FRAMES`, one row per band. `seek` never decreases between calls.
    fn window(&mut self, seek: usize, out: &mut [f32]) -> Result<()>;
    /// Time spent computing mel frames so far, milliseconds.
    fn mel_ms(&self) -> f64;
}

/// The whole spectrogram in memory.
pub struct WholeMel {
    mel: Vec<f32>,
    n_mels: usize,
    n_frames: usize,
    n_samples: usize,
    mel_ms: f64,
}

impl WholeMel {
    pub fn new(samples: &[f32], filters: &[f32], n_mels: usize) -> WholeMel {
        let t0 = std::time::Instant::now();
        let (mel, n_frames) = audio::log_mel_spectrogram(samples, N_SAMPLES, filters, n_mels);
        WholeMel {
            mel,
            n_mels,
            n_frames,
            n_samples: samples.len(),
            mel_ms: t0.elapsed().as_secs_f64() * 1e3,
        }
    }
}

impl MelSource for WholeMel {
    fn content_frames(&self) -> usize {
        self.n_frames.saturating_sub(N_FRAMES)
    }

    fn n_samples(&self) -> usize {
        self.n_samples
    }

    fn window(&mut self, seek: usize, out: &mut [f32]) -> Result<()> {
        out.fill(0.0);
        let take = N_FRAMES.min(self.content_frames().saturating_sub(seek));
        let n = self.n_frames;
        for m in 0..self.n_mels {
            out[m * N_FRAMES..m * N_FRAMES + take]
                .copy_from_slice(&self.mel[m * n + seek..m * n + seek + take]);
        }
        Ok(())
    }

    fn mel_ms(&self) -> f64 {
        self.mel_ms
    }
}

#[cfg(feature = "audio")]
pub use file::FileMel;

#[cfg(feature = "audio")]
mod file {
    use super::MelSource;
    use crate::audio::mel::{scale, FrameCursor};
    use crate::audio::{AudioReader, HOP_LENGTH, N_FFT, N_FRAMES};
    use crate::{Error, Result};
    use std::collections::VecDeque;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    /// An audio file's log-mel windows in constant memory (see the module notes).
    pub struct FileMel {
        path: PathBuf,
        filters: Vec<f32>,
        n_mels: usize,
        n_samples: usize,
        max: f32,
        reader: Option<AudioReader>,
        cursor: FrameCursor,
        ended: bool,
        /// Raw log10 frames from `first` on, `n_mels` values each.
        frames: VecDeque<Vec<f32>>,
        first: usize,
        peak_frames: usize,
        peak_samples: usize,
        mel_ms: f64,
    }

    impl FileMel {
        /// Reads the file once for its length and log-mel maximum. Errors name the file.
        pub fn open(path: &Path, filters: &[f32], n_mels: usize) -> Result<FileMel> {
            let mut mel_ms = 0.0;
            let mut reader = AudioReader::open(path)?;
            let mut cursor = FrameCursor::new(filters, n_mels);
            // Past the content the padding is silent: -10 is always among the values.
            let mut max = -10f32;
            while let Some(chunk) = reader.next_chunk()? {
                if let Some(bad) = chunk.iter().find(|s| !s.is_finite()) {
                    return Err(Error::Invalid(format!(
                        "audio contains a non-finite sample ({bad})"
                    )));
                }
                let t0 = Instant::now();
                cursor.push(chunk);
                while cursor.ready(false) {
                    max = max.max(cursor.next_frame().1);
                }
                mel_ms += t0.elapsed().as_secs_f64() * 1e3;
            }
            let n_samples = cursor.pushed();
            let t0 = Instant::now();
            // Every frame that reaches into the signal; later ones are all padding.
            while cursor.position() * HOP_LENGTH < n_samples + N_FFT / 2 {
                max = max.max(cursor.next_frame().1);
            }
            mel_ms += t0.elapsed().as_secs_f64() * 1e3;
            Ok(FileMel {
                path: path.to_path_buf(),
                filters: filters.to_vec(),
                n_mels,
                n_samples,
                max,
                reader: None,
                cursor: FrameCursor::new(filters, n_mels),
                ended: false,
                frames: VecDeque::new(),
                first: 0,
                peak_frames: 0,
                peak_samples: 0,
                mel_ms,
            })
        }

        /// The most mel frames and 16-kHz samples held at once so far (bounded: a window
        /// and a few packets, whatever the length of the file).
        pub fn peak_held(&self) -> (usize, usize) {
            (self.peak_frames, self.peak_samples)
        }

        /// Computes frames until `end` (exclusive) is held, decoding as needed.
        fn fill(&mut self, end: usize) -> Result<()> {
            if self.reader.is_none() && !self.ended {
                self.reader = Some(AudioReader::open(&self.path)?);
                self.cursor = FrameCursor::new(&self.filters, self.n_mels);
            }
            while self.first + self.frames.len() < end {
                if self.cursor.ready(self.ended) {
                    let t0 = Instant::now();
                    let (values, _) = self.cursor.next_frame();
                    self.frames.push_back(values.to_vec());
                    self.mel_ms += t0.elapsed().as_secs_f64() * 1e3;
                    continue;
                }
                let reader = self.reader.as_mut().expect("open until ended");
                match reader.next_chunk()? {
                    Some(chunk) => self.cursor.push(chunk),
                    None => {
                        self.ended = true;
                        self.reader = None;
                        if self.cursor.pushed() != self.n_samples {
                            return Err(Error::audio(
                                self.path.display().to_string(),
                                "the file changed while it was being transcribed",
                            ));
                        }
                    }
                }
                self.peak_samples = self.peak_samples.max(self.cursor.held());
            }
            self.peak_frames = self.peak_frames.max(self.frames.len());
            Ok(())
        }
    }

    impl MelSource for FileMel {
        fn content_frames(&self) -> usize {
            self.n_samples / HOP_LENGTH
        }

        fn n_samples(&self) -> usize {
            self.n_samples
        }

        fn window(&mut self, seek: usize, out: &mut [f32]) -> Result<()> {
            if seek < self.first {
                return Err(Error::Invalid(format!(
                    "log-mel window at frame {seek} requested after frame {}",
                    self.first
                )));
            }
            let drop = (seek - self.first).min(self.frames.len());
            self.frames.drain(..drop);
            self.first += drop;
            let end = (seek + N_FRAMES).min(self.content_frames());
            if end > self.first + self.frames.len() {
                self.fill(end)?;
            }
            // Frames skipped without being held (a seek past what was computed).
            while self.first < seek && !self.frames.is_empty() {
                self.frames.pop_front();
                self.first += 1;
            }
            out.fill(0.0);
            for (f, values) in self
                .frames
                .iter()
                .enumerate()
                .take(end.saturating_sub(seek))
            {
                for (m, &v) in values.iter().enumerate() {
                    out[m * N_FRAMES + f] = scale(v, self.max);
                }
            }
            Ok(())
        }

        fn mel_ms(&self) -> f64 {
            self.mel_ms
        }
    }
}
