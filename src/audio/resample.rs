//! Sample-rate conversion of a mono signal with rubato, whole or streamed in pieces.
//!
//! Rates with a small ratio once reduced by their gcd (44.1 kHz → 16 kHz is 441:160, 48 kHz is 3:1,
//! 8 kHz is 1:2) use rubato's synchronous FFT resampler: exact ratio, a steep anti-aliasing filter,
//! and fast. Odd rates whose reduced ratio would need huge FFTs fall back to the windowed-sinc
//! resampler (256 taps, Blackman-Harris², cubic interpolation between 128× oversampled points).
//! Either way the resampler's delay is removed and the output is cut to `round(n · to / from)`
//! samples, so timestamps line up with the input (to within one output sample: the FFT resampler's
//! filter leaves a sub-sample offset, up to 0.7 samples = 44 µs at 11.025 kHz).

use rubato::{
    calculate_cutoff, FftFixedInOut, SincFixedIn, SincInterpolationParameters,
    SincInterpolationType, VecResampler, WindowFunction,
};

/// Input frames per resampler call.
const CHUNK: usize = 1024;
/// Largest reduced input rate handled by the FFT resampler (its FFT length is a multiple of it).
const MAX_FFT_RATIO_TERM: usize = 4096;
/// Output samples held back until [`StreamResampler::finish`], which may cut the end to the
/// exact length (the resampler can run a few samples ahead of `n · to / from`).
const HOLD_BACK: usize = 32;

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resamples `samples` from `from` Hz to `to` Hz. Errors are rubato's, as text.
#[cfg(test)]
pub(crate) fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    let mut r = StreamResampler::new(from, to)?;
    let mut out = Vec::new();
    r.push(samples, &mut out)?;
    r.finish(&mut out)?;
    Ok(out)
}

/// A resampler fed in pieces of any size: the same calls into rubato, in the same order, as one
/// call of [`resample`] on the whole signal, so its output is bit-identical to it whatever the
/// piece sizes (`streamed_equals_whole` checks this).
pub struct StreamResampler {
    /// `None` when the rates are equal (samples pass through).
    inner: Option<Box<dyn VecResampler<f32>>>,
    from: u32,
    to: u32,
    /// Input not yet consumed (less than one resampler chunk).
    pending: Vec<f32>,
    /// Output samples still to drop from the front (the resampler's delay).
    delay: usize,
    delay_left: usize,
    /// Output produced but held back (at most `HOLD_BACK` between calls).
    held: Vec<f32>,
    /// Input samples pushed, output samples produced (delay included) and given out.
    n_in: u64,
    n_out: u64,
    n_given: u64,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Result<StreamResampler, String> {
        if from == 0 || to == 0 {
            return Err(format!("invalid sample rate {from} Hz → {to} Hz"));
        }
        let (from_us, to_us) = (from as usize, to as usize);
        let g = gcd(from_us, to_us);
        let (inner, delay): (Option<Box<dyn VecResampler<f32>>>, usize) = if from == to {
            (None, 0)
        } else if from_us / g <= MAX_FFT_RATIO_TERM && to_us / g <= MAX_FFT_RATIO_TERM {
            let r =
                FftFixedInOut::<f32>::new(from_us, to_us, CHUNK, 1).map_err(|e| e.to_string())?;
            let delay = rubato::Resampler::output_delay(&r);
            (Some(Box::new(r)), delay)
        } else {
            let sinc_len = 256;
            let window = WindowFunction::BlackmanHarris2;
            let params = SincInterpolationParameters {
                sinc_len,
                f_cutoff: calculate_cutoff(sinc_len, window),
                interpolation: SincInterpolationType::Cubic,
                oversampling_factor: 128,
                window,
            };
            let r = SincFixedIn::<f32>::new(to as f64 / from as f64, 1.0, params, CHUNK, 1)
                .map_err(|e| e.to_string())?;
            // rubato's sinc resampler starts its read position half a filter early, so its first
            // output already lines up with the first input sample (measured: within 0.6 output
            // samples); its `output_delay()` figure must not be trimmed. `odd_rate_uses_sinc_path`
            // checks this.
            (Some(Box::new(r)), 0)
        };
        Ok(StreamResampler {
            inner,
            from,
            to,
            pending: Vec::new(),
            delay,
            delay_left: delay,
            held: Vec::new(),
            n_in: 0,
            n_out: 0,
            n_given: 0,
        })
    }

    /// Output length for the input so far: `round(n · to / from)`.
    fn expected(&self) -> u64 {
        ((self.n_in as u128 * self.to as u128 + self.from as u128 / 2) / self.from as u128) as u64
    }

    fn take(&mut self, produced: &[f32]) {
        self.n_out += produced.len() as u64;
        let skip = self.delay_left.min(produced.len());
        self.delay_left -= skip;
        self.held.extend_from_slice(&produced[skip..]);
    }

    /// Resamples `input`, appending the output that is final to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        self.n_in += input.len() as u64;
        let Some(r) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            self.n_given += input.len() as u64;
            return Ok(());
        };
        self.pending.extend_from_slice(input);
        let mut pos = 0;
        let mut produced = Vec::new();
        loop {
            let need = r.input_frames_next();
            if pos + need > self.pending.len() {
                break;
            }
            let chunk = r
                .process(&[self.pending[pos..pos + need].to_vec()], None)
                .map_err(|e| e.to_string())?;
            produced.extend_from_slice(&chunk[0]);
            pos += need;
        }
        self.pending.drain(..pos);
        self.take(&produced);
        let give = self.held.len().saturating_sub(HOLD_BACK);
        out.extend(self.held.drain(..give));
        self.n_given += give as u64;
        Ok(())
    }

    /// Flushes the resampler: appends the rest, so that the whole output is exactly
    /// `round(n · to / from)` samples long.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), String> {
        let expected = self.expected();
        if let Some(r) = self.inner.as_mut() {
            let mut produced = Vec::new();
            if !self.pending.is_empty() {
                let chunk = r
                    .process_partial(Some(&[std::mem::take(&mut self.pending)]), None)
                    .map_err(|e| e.to_string())?;
                produced.extend_from_slice(&chunk[0]);
            }
            // Push the delayed tail out with silence; each call yields at least one output
            // frame, the cap only guards against a resampler that stops producing.
            let mut flushes = 0;
            while self.n_out + (produced.len() as u64) < expected + self.delay as u64
                && flushes < 64
            {
                let chunk = r.process_partial(None, None).map_err(|e| e.to_string())?;
                if chunk[0].is_empty() {
                    break;
                }
                produced.extend_from_slice(&chunk[0]);
                flushes += 1;
            }
            self.take(&produced);
        }
        let want = expected.saturating_sub(self.n_given) as usize;
        self.held.resize(want, 0.0);
        out.append(&mut self.held);
        self.n_given += want as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((2.0 * std::f64::consts::PI * freq as f64 * i as f64 / rate as f64).sin() * 0.5)
                    as f32
            })
            .collect()
    }

    /// Smallest max-deviation from the ideal 16-kHz sine over sub-sample shifts in [-1, 1]
    /// (the FFT resampler leaves an offset below one output sample), ignoring `edge` samples at
    /// both ends. Returns (error, shift).
    fn best_fit(got: &[f32], freq: f64, edge: usize) -> (f32, f64) {
        let mut best = (f32::MAX, 0.0);
        for step in -20..=20 {
            let shift = step as f64 / 20.0;
            let err = got[edge..got.len() - edge]
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let t = (i + edge) as f64 - shift;
                    let want = (2.0 * std::f64::consts::PI * freq * t / 16_000.0).sin() * 0.5;
                    (*v as f64 - want).abs() as f32
                })
                .fold(0.0, f32::max);
            if err < best.0 {
                best = (err, shift);
            }
        }
        best
    }

    #[test]
    fn common_rates_keep_length_and_phase() {
        for from in [
            8_000u32, 11_025, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000,
        ] {
            let n = from as usize; // one second
            let out = resample(&sine(440.0, from, n), from, 16_000).unwrap();
            assert_eq!(out.len(), 16_000, "{from} Hz");
            let (err, shift) = best_fit(&out, 440.0, 200);
            assert!(err < 5e-3, "{from} Hz: max error {err} (shift {shift})");
        }
    }

    #[test]
    fn odd_rate_uses_sinc_path() {
        let from = 44_101; // reduced ratio 44101:16000 → sinc resampler
        let out = resample(&sine(440.0, from, 44_101), from, 16_000).unwrap();
        assert_eq!(out.len(), 16_000);
        let (err, shift) = best_fit(&out, 440.0, 400);
        assert!(err < 5e-3, "max error {err} (shift {shift})");
    }

    #[test]
    fn removes_content_above_nyquist() {
        // 10 kHz at 48 kHz cannot exist at 16 kHz: it must be filtered, not aliased to 6 kHz.
        let out = resample(&sine(10_000.0, 48_000, 48_000), 48_000, 16_000).unwrap();
        let rms = (out[500..15_500].iter().map(|v| v * v).sum::<f32>() / 15_000.0).sqrt();
        assert!(rms < 1e-3, "aliased energy, rms {rms}");
    }

    #[test]
    fn streamed_equals_whole() {
        for from in [8_000u32, 44_100, 48_000, 44_101, 16_000] {
            let input = sine(440.0, from, 3 * from as usize + 777);
            let whole = resample(&input, from, 16_000).unwrap();
            let mut r = StreamResampler::new(from, 16_000).unwrap();
            let mut out = Vec::new();
            let mut pos = 0;
            let mut size = 1;
            while pos < input.len() {
                let end = (pos + size).min(input.len());
                r.push(&input[pos..end], &mut out).unwrap();
                pos = end;
                size = size * 7 % 5003 + 1;
            }
            r.finish(&mut out).unwrap();
            assert_eq!(out.len(), whole.len(), "{from} Hz");
            assert!(
                out.iter()
                    .zip(&whole)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{from} Hz: streamed output differs"
            );
        }
    }

    #[test]
    fn trivial_cases() {
        assert_eq!(resample(&[], 44_100, 16_000).unwrap(), Vec::<f32>::new());
        assert_eq!(
            resample(&[0.5, 0.25], 16_000, 16_000).unwrap(),
            vec![0.5, 0.25]
        );
        assert_eq!(resample(&[0.1; 3], 44_100, 16_000).unwrap().len(), 1);
        assert!(resample(&[0.1], 0, 16_000).is_err());
    }
}
