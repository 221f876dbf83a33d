//! Sample-rate conversion of a whole mono signal with rubato.
//!
//! Rates with a small ratio once reduced by their gcd (44.1 kHz → 16 kHz is 441:160, 48 kHz is 3:1,
//! 8 kHz is 1:2) use rubato's synchronous FFT resampler: exact ratio, a steep anti-aliasing filter,
//! and fast. Odd rates whose reduced ratio would need huge FFTs fall back to the windowed-sinc
//! resampler (256 taps, Blackman-Harris², cubic interpolation between 128× oversampled points).
//! Either way the resampler's delay is removed and the output is cut to `round(n · to / from)`
//! samples, so timestamps line up with the input (to within one output sample: the FFT resampler's
//! filter leaves a sub-sample offset, up to 0.7 samples = 44 µs at 11.025 kHz).

use rubato::{
    calculate_cutoff, FftFixedInOut, Resampler, SincFixedIn, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// Input frames per resampler call.
const CHUNK: usize = 1024;
/// Largest reduced input rate handled by the FFT resampler (its FFT length is a multiple of it).
const MAX_FFT_RATIO_TERM: usize = 4096;

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resamples `samples` from `from` Hz to `to` Hz. Errors are rubato's, as text.
pub(crate) fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    if from == 0 || to == 0 {
        return Err(format!("invalid sample rate {from} Hz → {to} Hz"));
    }
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let (from_us, to_us) = (from as usize, to as usize);
    let expected =
        ((samples.len() as u128 * to as u128 + from as u128 / 2) / from as u128) as usize;
    let g = gcd(from_us, to_us);
    if from_us / g <= MAX_FFT_RATIO_TERM && to_us / g <= MAX_FFT_RATIO_TERM {
        let resampler =
            FftFixedInOut::<f32>::new(from_us, to_us, CHUNK, 1).map_err(|e| e.to_string())?;
        drive(resampler, samples, expected, true)
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
        let resampler = SincFixedIn::<f32>::new(to as f64 / from as f64, 1.0, params, CHUNK, 1)
            .map_err(|e| e.to_string())?;
        // rubato's sinc resampler starts its read position half a filter early, so its first output
        // already lines up with the first input sample (measured: within 0.6 output samples); its
        // `output_delay()` figure must not be trimmed. `odd_rate_uses_sinc_path` checks this.
        drive(resampler, samples, expected, false)
    }
}

/// Feeds the whole signal through `resampler`, flushes it, and (if `trim_delay`) drops the
/// resampler's reported delay from the front.
fn drive(
    mut resampler: impl Resampler<f32>,
    samples: &[f32],
    expected: usize,
    trim_delay: bool,
) -> Result<Vec<f32>, String> {
    let delay = if trim_delay {
        resampler.output_delay()
    } else {
        0
    };
    let mut out: Vec<f32> = Vec::with_capacity(expected + delay + 2 * CHUNK);
    let mut pos = 0;
    loop {
        let need = resampler.input_frames_next();
        if pos + need > samples.len() {
            break;
        }
        let chunk = resampler
            .process(&[&samples[pos..pos + need]], None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&chunk[0]);
        pos += need;
    }
    if pos < samples.len() {
        let chunk = resampler
            .process_partial(Some(&[&samples[pos..]]), None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&chunk[0]);
    }
    // Push the delayed tail out with silence; each call yields at least one output frame, the cap
    // only guards against a resampler that stops producing.
    let mut flushes = 0;
    while out.len() < expected + delay && flushes < 64 {
        let chunk = resampler
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| e.to_string())?;
        if chunk[0].is_empty() {
            break;
        }
        out.extend_from_slice(&chunk[0]);
        flushes += 1;
    }
    out.drain(..delay.min(out.len()));
    out.resize(expected, 0.0);
    Ok(out)
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
