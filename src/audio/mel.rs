//! Whisper's log-mel spectrogram: 16 kHz audio, 80 mel bins (128 for large-v3), a 30-s window
//! (480 000 samples) giving 3000 frames.
//!
//! The numerics follow openai-whisper's `log_mel_spectrogram` and faster-whisper's numpy
//! `FeatureExtractor`, which agree: the signal is `samples` followed by `padding` zeros; a centred STFT
//! (reflect padding of `N_FFT/2` on each side, periodic Hann window of 400, hop 160) gives
//! `1 + len/160` frames, and the last one is dropped, so `n_frames = len / 160` (integer division);
//! power spectrum `|X|²`, mel projection, clamp at 1e-10, log10, floor at the global max − 8,
//! then `(x + 4) / 4`.
//!
//! Short signals: numpy's reflect padding fails only on an empty array; for signals shorter than the
//! pad it reflects repeatedly (a whole-sample symmetric extension with period `2·(len − 1)`), which is
//! what [`reflect_index`] does. A signal of fewer than 160 samples (padding included) has no frame
//! left after the last one is dropped: the result is then empty (`n_frames = 0`), never a panic.

use super::fft::{Complex, RealFft};
use super::{HOP_LENGTH, N_FFT};

/// Number of frequency bins of one STFT frame (`N_FFT/2 + 1` = 201).
pub const N_FREQS: usize = N_FFT / 2 + 1;

/// Sample rate the filter bank is built for.
const FILTER_SAMPLE_RATE: f64 = 16_000.0;

/// Slaney-style mel filter bank, `n_mels` rows of `N_FFT/2 + 1` weights (16 kHz).
///
/// Same arithmetic as librosa's `filters.mel(sr=16000, n_fft=400, n_mels, htk=False, norm="slaney")`
/// as written out in faster-whisper's `get_mel_filters`: f64 throughout, rounded to f32 at the end.
/// Mel points are spaced evenly from 0 to the mel value of 8 kHz; below 1 kHz the mel scale is
/// linear (200/3 Hz per mel), above it logarithmic (a factor of 6.4 per 27 mels); each triangle is
/// scaled by `2 / (f_right − f_left)` so every band has roughly constant energy.
pub fn mel_filter_bank(n_mels: usize) -> Vec<f32> {
    if n_mels == 0 {
        return Vec::new();
    }
    // Bin centre frequencies, as numpy's rfftfreq computes them: k · (1 / (n · d)).
    let d = 1.0 / FILTER_SAMPLE_RATE;
    let bin_step = 1.0 / (N_FFT as f64 * d);
    let fft_freqs: Vec<f64> = (0..N_FREQS).map(|k| k as f64 * bin_step).collect();

    // n_mels + 2 mel points spaced evenly as numpy's linspace does (start + i·step, exact end point).
    let min_mel = 0.0;
    let max_mel = 45.245640471924965; // hz_to_mel(8000) on the Slaney scale
    let points = n_mels + 2;
    let step = (max_mel - min_mel) / (points - 1) as f64;
    let mut mels: Vec<f64> = (0..points).map(|i| i as f64 * step + min_mel).collect();
    mels[points - 1] = max_mel;

    // Mel → Hz.
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let log_step = 6.4f64.ln() / 27.0;
    let freqs: Vec<f64> = mels
        .iter()
        .map(|&m| {
            if m >= min_log_mel {
                min_log_hz * (log_step * (m - min_log_mel)).exp()
            } else {
                f_sp * m
            }
        })
        .collect();

    let mut bank = vec![0f32; n_mels * N_FREQS];
    for i in 0..n_mels {
        let below = freqs[i + 1] - freqs[i];
        let above = freqs[i + 2] - freqs[i + 1];
        let enorm = 2.0 / (freqs[i + 2] - freqs[i]);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = -(freqs[i] - f) / below;
            let upper = (freqs[i + 2] - f) / above;
            let w = lower.min(upper).max(0.0);
            bank[i * N_FREQS + k] = (w * enorm) as f32;
        }
    }
    bank
}

/// Periodic Hann window of length `N_FFT`, computed as numpy's `hanning(N_FFT + 1)[:-1]` in f64 and
/// rounded to f32 like the reference.
fn hann_window() -> Vec<f32> {
    let m = (N_FFT + 1) as f64;
    (0..N_FFT)
        .map(|j| {
            let n = (2 * j) as f64 + 1.0 - m; // numpy: n = arange(1 - M, M, 2)
            (0.5 + 0.5 * (std::f64::consts::PI * n / (m - 1.0)).cos()) as f32
        })
        .collect()
}

/// Maps an index of the reflect-padded signal (which may be negative or past the end) to an index
/// of a signal of length `len > 0`, reflecting as often as needed (numpy's `pad(mode="reflect")`).
fn reflect_index(i: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let m = i.rem_euclid(period);
    if m < len as isize {
        m as usize
    } else {
        (period - m) as usize
    }
}

/// Log-mel spectrogram of `samples` (16 kHz mono) followed by `padding` zero samples.
/// Returns `n_mels × n_frames` (row-major, one row per mel band) and `n_frames`,
/// scaled as Whisper expects: log10, floor at max − 8, then (x + 4) / 4.
///
/// `n_frames = (samples.len() + padding) / 160`; with 30 s of audio and `padding = N_SAMPLES` that is
/// 6000 frames. An input of fewer than 160 samples (padding included) gives `(vec![], 0)`.
///
/// # Panics
/// If `filters.len() != n_mels * (N_FFT/2 + 1)`: the filter bank comes from a model file whose loader
/// checks its shape, so a mismatch is a bug in the caller.
pub fn log_mel_spectrogram(
    samples: &[f32],
    padding: usize,
    filters: &[f32],
    n_mels: usize,
) -> (Vec<f32>, usize) {
    assert_eq!(
        filters.len(),
        n_mels * N_FREQS,
        "mel filter bank must hold n_mels × {N_FREQS} weights"
    );
    let len = samples.len() + padding;
    let n_frames = len / HOP_LENGTH;
    if n_frames == 0 || n_mels == 0 {
        return (Vec::new(), n_frames);
    }

    let mut frames = MelFrames::new(filters, n_mels);
    // The zero-padded signal, sample by sample (reflect padding at both ends).
    let signal = |i: isize| -> f32 {
        let idx = if i >= 0 && (i as usize) < len {
            i as usize
        } else {
            reflect_index(i, len)
        };
        samples.get(idx).copied().unwrap_or(0.0)
    };

    let mut out = vec![0f32; n_mels * n_frames];
    let mut frame = [0f32; N_FFT];
    let mut column = vec![0f32; n_mels];
    let mut max = f32::NEG_INFINITY;
    let half = N_FFT / 2;
    for f in 0..n_frames {
        // Frame f covers padded positions [160 f, 160 f + 400), i.e. signal indices from 160 f − 200.
        let start = (f * HOP_LENGTH) as isize - half as isize;
        if start >= 0 && start as usize + N_FFT <= samples.len() {
            frame.copy_from_slice(&samples[start as usize..start as usize + N_FFT]);
        } else {
            for (t, v) in frame.iter_mut().enumerate() {
                *v = signal(start + t as isize);
            }
        }
        max = max.max(frames.compute(&frame, &mut column));
        for (m, &v) in column.iter().enumerate() {
            out[m * n_frames + f] = v;
        }
    }

    for v in out.iter_mut() {
        *v = scale(*v, max);
    }
    (out, n_frames)
}

/// Whisper's scaling of a log10 mel value given the maximum over the whole signal:
/// floor at max − 8, then (x + 4) / 4.
pub fn scale(v: f32, max: f32) -> f32 {
    (v.max(max - 8.0) + 4.0) / 4.0
}

/// The log10 mel values of one STFT frame at a time (before [`scale`]): the arithmetic of
/// [`log_mel_spectrogram`], shared by the whole-signal and the incremental front ends.
pub struct MelFrames {
    filters: Vec<f32>,
    /// Each filter row's non-zero span (first bin, length), so a frame costs ~2·N_FREQS
    /// multiply-adds instead of `n_mels · N_FREQS`.
    rows: Vec<(usize, usize)>,
    window: Vec<f32>,
    fft: RealFft,
    packed: Vec<Complex>,
    scratch: Vec<Complex>,
    spectrum: Vec<Complex>,
    power: [f64; N_FREQS],
}

impl MelFrames {
    /// # Panics
    /// If `filters.len() != n_mels * (N_FFT/2 + 1)` (see [`log_mel_spectrogram`]).
    pub fn new(filters: &[f32], n_mels: usize) -> MelFrames {
        assert_eq!(
            filters.len(),
            n_mels * N_FREQS,
            "mel filter bank must hold n_mels × {N_FREQS} weights"
        );
        let rows = (0..n_mels)
            .map(|m| {
                let row = &filters[m * N_FREQS..(m + 1) * N_FREQS];
                match row.iter().position(|&w| w != 0.0) {
                    Some(first) => {
                        let last = row.iter().rposition(|&w| w != 0.0).unwrap_or(first);
                        (first, last + 1 - first)
                    }
                    None => (0, 0),
                }
            })
            .collect();
        let half = N_FFT / 2;
        MelFrames {
            filters: filters.to_vec(),
            rows,
            window: hann_window(),
            fft: RealFft::new(N_FFT),
            packed: vec![Complex::default(); half],
            scratch: vec![Complex::default(); half],
            spectrum: vec![Complex::default(); N_FREQS],
            power: [0f64; N_FREQS],
        }
    }

    pub fn n_mels(&self) -> usize {
        self.rows.len()
    }

    /// Writes the `n_mels` log10 mel values of `frame` (400 samples, unwindowed) to `out`
    /// and returns their maximum.
    pub fn compute(&mut self, frame: &[f32; N_FFT], out: &mut [f32]) -> f32 {
        let out = &mut out[..self.rows.len()];
        if frame.iter().all(|&v| v == 0.0) {
            // All-zero frame: every mel value clamps to 1e-10, log10 = -10.
            out.fill(-10.0);
            return -10.0;
        }
        // Window in f32 (as the reference does), then transform in f64.
        let w = &self.window;
        for (j, p) in self.packed.iter_mut().enumerate() {
            *p = Complex::new(
                (frame[2 * j] * w[2 * j]) as f64,
                (frame[2 * j + 1] * w[2 * j + 1]) as f64,
            );
        }
        self.fft
            .process_packed(&mut self.packed, &mut self.scratch, &mut self.spectrum);
        for (p, s) in self.power.iter_mut().zip(&self.spectrum) {
            *p = s.norm_sqr();
        }
        let mut max = f32::NEG_INFINITY;
        for (m, (o, &(first, n))) in out.iter_mut().zip(&self.rows).enumerate() {
            let weights = &self.filters[m * N_FREQS + first..m * N_FREQS + first + n];
            let mut acc = 0f64;
            for (w, p) in weights.iter().zip(&self.power[first..]) {
                acc += *w as f64 * p;
            }
            *o = acc.max(1e-10).log10() as f32;
            max = max.max(*o);
        }
        max
    }
}

/// The log-mel frames of a signal that arrives in pieces, frame after frame, holding only the
/// samples the next frame needs (plus the first 200, which the reflect padding of the first
/// frames reads). Frame `f`'s values are bit-identical to column `f` of
/// [`log_mel_spectrogram`] on the whole signal followed by at least 200 samples of padding
/// (before scaling).
pub struct FrameCursor {
    mel: MelFrames,
    /// The first `N_FFT/2 + 1` samples (reflected into the first frames).
    head: Vec<f32>,
    /// Samples from absolute index `base` on.
    buf: Vec<f32>,
    base: usize,
    pushed: usize,
    next: usize,
    frame: [f32; N_FFT],
    column: Vec<f32>,
}

impl FrameCursor {
    pub fn new(filters: &[f32], n_mels: usize) -> FrameCursor {
        FrameCursor {
            mel: MelFrames::new(filters, n_mels),
            head: Vec::new(),
            buf: Vec::new(),
            base: 0,
            pushed: 0,
            next: 0,
            frame: [0f32; N_FFT],
            column: vec![0f32; n_mels],
        }
    }

    pub fn push(&mut self, samples: &[f32]) {
        let want = (N_FFT / 2 + 1).saturating_sub(self.head.len());
        self.head
            .extend_from_slice(&samples[..want.min(samples.len())]);
        self.buf.extend_from_slice(samples);
        self.pushed += samples.len();
    }

    /// Samples pushed so far.
    pub fn pushed(&self) -> usize {
        self.pushed
    }

    /// Index of the next frame [`FrameCursor::next_frame`] computes.
    pub fn position(&self) -> usize {
        self.next
    }

    /// Samples held (the head excluded).
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Whether the next frame's samples have all arrived; with `ended` (no more samples will
    /// come: the rest is zero padding) always.
    pub fn ready(&self, ended: bool) -> bool {
        // Frame 0 also reflects sample 200 into its start.
        ended || self.pushed >= (self.next * HOP_LENGTH + N_FFT / 2).max(N_FFT / 2 + 1)
    }

    /// Computes the next frame (samples not pushed count as zeros): its `n_mels` log10 values
    /// and their maximum.
    pub fn next_frame(&mut self) -> (&[f32], f32) {
        let start = (self.next * HOP_LENGTH) as isize - (N_FFT / 2) as isize;
        for (t, v) in self.frame.iter_mut().enumerate() {
            let i = start + t as isize;
            *v = if i < 0 {
                self.head.get((-i) as usize).copied().unwrap_or(0.0)
            } else if (i as usize) < self.pushed {
                self.buf[i as usize - self.base]
            } else {
                0.0
            };
        }
        let max = self.mel.compute(&self.frame, &mut self.column);
        self.next += 1;
        // Samples before the next frame's start are no longer needed; drop them in batches.
        let keep_from = (self.next * HOP_LENGTH).saturating_sub(N_FFT / 2);
        let drop = keep_from.saturating_sub(self.base).min(self.buf.len());
        if drop >= 16 * N_FFT {
            self.buf.drain(..drop);
            self.base += drop;
        }
        (&self.column, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_bank_shape_and_rows() {
        for n_mels in [80, 128] {
            let bank = mel_filter_bank(n_mels);
            assert_eq!(bank.len(), n_mels * N_FREQS);
            for m in 0..n_mels {
                let row = &bank[m * N_FREQS..(m + 1) * N_FREQS];
                assert!(row.iter().all(|&w| w >= 0.0 && w.is_finite()));
                // Every band catches at least one bin and is a single triangle: non-zero weights
                // form one contiguous run.
                let nz: Vec<usize> = (0..N_FREQS).filter(|&k| row[k] != 0.0).collect();
                assert!(!nz.is_empty(), "n_mels {n_mels}: band {m} is empty");
                assert_eq!(
                    nz.len(),
                    nz[nz.len() - 1] - nz[0] + 1,
                    "band {m} not contiguous"
                );
                // Slaney normalisation: the triangle's area over Hz is 1, so the sum of its samples
                // at 40 Hz spacing is about 1/40: within 10 % for the wide upper bands, loosely for
                // the narrow low bands (128 mels: 0.0124 to 0.0417, sampled by only 1–2 bins).
                let sum: f32 = row.iter().sum();
                assert!(sum > 0.01 && sum < 0.045, "band {m} sum {sum}");
                if m >= n_mels / 2 {
                    assert!((sum * 40.0 - 1.0).abs() < 0.1, "band {m} sum {sum}");
                }
            }
            // The top band's last bin is below Nyquist (mel range ends at 8 kHz = bin 200).
            assert_eq!(bank[(n_mels - 1) * N_FREQS + 200], 0.0);
        }
        assert!(mel_filter_bank(0).is_empty());
    }

    #[test]
    fn filter_bank_known_values() {
        // Band 0 peaks at bin 1 (40 Hz, mel point 1 ≈ 36.9 Hz): weight = (1 − (40 − 36.9)/36.9)·2/73.8.
        let bank = mel_filter_bank(80);
        let f1 = 200.0 / 3.0 * (45.245640471924965 / 81.0);
        let want = (f1 * 2.0 - 40.0) / f1 * (2.0 / (2.0 * f1));
        assert!(
            (bank[1] as f64 - want).abs() < 1e-7,
            "{} vs {want}",
            bank[1]
        );
        assert_eq!(bank[0], 0.0);
    }

    #[test]
    fn window_is_periodic_hann() {
        let w = hann_window();
        assert_eq!(w.len(), N_FFT);
        assert_eq!(w[0], 0.0);
        assert_eq!(w[N_FFT / 2], 1.0);
        for j in 1..N_FFT {
            assert!((w[j] - w[N_FFT - j]).abs() < 1e-7);
        }
    }

    #[test]
    fn reflect_matches_numpy() {
        // np.pad(np.arange(5), 12, mode="reflect")
        let want = [
            4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0,
        ];
        let got: Vec<usize> = (-12..17).map(|i| reflect_index(i, 5)).collect();
        assert_eq!(got, want);
        assert_eq!(reflect_index(-3, 1), 0);
    }

    #[test]
    fn empty_and_short_inputs() {
        let bank = mel_filter_bank(80);
        assert_eq!(log_mel_spectrogram(&[], 0, &bank, 80), (vec![], 0));
        assert_eq!(log_mel_spectrogram(&[0.5; 100], 0, &bank, 80), (vec![], 0));
        assert_eq!(log_mel_spectrogram(&[0.5; 159], 0, &bank, 80), (vec![], 0));
        // 160 samples: one frame, whose window reaches past both ends (reflected twice).
        let (mel, n) = log_mel_spectrogram(&[0.25; 160], 0, &bank, 80);
        assert_eq!(n, 1);
        assert_eq!(mel.len(), 80);
        assert!(mel.iter().all(|v| v.is_finite()));
        // Only padding: all frames silent, log10(1e-10) = -10, scaled (-10 + 4) / 4.
        let (mel, n) = log_mel_spectrogram(&[], 480, &bank, 80);
        assert_eq!(n, 3);
        assert!(mel.iter().all(|&v| v == -1.5));
        // 1 sample + padding: works, 3 frames.
        let (_, n) = log_mel_spectrogram(&[1.0], 479, &bank, 80);
        assert_eq!(n, 3);
    }

    #[test]
    fn sine_peaks_in_the_right_band() {
        let bank = mel_filter_bank(80);
        // A 1 kHz sine: energy lands in the band whose centre is nearest 1 kHz (mel 15 → band 25).
        let samples: Vec<f32> = (0..16000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin())
            .collect();
        let (mel, n) = log_mel_spectrogram(&samples, 0, &bank, 80);
        assert_eq!(n, 100);
        let f = 50;
        let best = (0..80)
            .max_by(|&a, &b| mel[a * n + f].total_cmp(&mel[b * n + f]))
            .unwrap();
        let centre_hz = |b: usize| {
            let mel = 45.245640471924965 * (b + 1) as f64 / 81.0;
            if mel >= 15.0 {
                1000.0 * ((6.4f64).ln() / 27.0 * (mel - 15.0)).exp()
            } else {
                mel * 200.0 / 3.0
            }
        };
        assert!(
            (centre_hz(best) - 1000.0).abs() < 60.0,
            "peak band {best} at {} Hz",
            centre_hz(best)
        );
        let max = mel.iter().cloned().fold(f32::MIN, f32::max);
        let min = mel.iter().cloned().fold(f32::MAX, f32::min);
        assert!(
            (max - min - 2.0).abs() < 1e-6,
            "floor is max − 8 before scaling"
        );
    }
}
