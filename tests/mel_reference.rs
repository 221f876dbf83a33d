//! The log-mel front end against faster-whisper's pure-numpy `FeatureExtractor`
//! (run through `tools/ref_mel.py`), on the 11-second JFK clip.
//!
//! Correspondence: faster-whisper's `FeatureExtractor.__call__(waveform, padding)` appends `padding`
//! zeros, takes a centred STFT with reflect padding (n_fft/2 each side, `np.fft.rfft`, periodic Hann
//! `np.hanning(401)[:-1]`), and drops the last frame (`stft[..., :-1]`) — the same as openai-whisper's
//! `log_mel_spectrogram(audio, padding)`. Its default `padding=160` is what faster-whisper's transcriber
//! uses (it then pads the features per 30-s window itself); openai-whisper and sotto's transcriber use
//! `padding = N_SAMPLES` (480 000). Both are checked, with the same `padding` on both sides, and
//! `n_frames = (len + padding) / 160` must agree exactly.
//!
//! Needs python3 with faster_whisper (CI installs it). If it is missing the test FAILS: run `.ci/run`
//! or `pip install faster-whisper`.

use sotto::audio::{log_mel_spectrogram, mel_filter_bank, N_SAMPLES};
use std::path::{Path, PathBuf};
use std::process::Command;

const JFK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/jfk.wav");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/ref_mel.py");

/// Reads a 16-bit PCM mono WAV without the `audio` feature: samples / 32768, as the decoder does.
fn read_wav_i16(path: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..(pos + 8 + size).min(bytes.len())];
        if id == b"fmt " {
            let format = u16::from_le_bytes([body[0], body[1]]);
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            let bits = u16::from_le_bytes([body[14], body[15]]);
            assert_eq!((format, channels, rate, bits), (1, 1, 16_000, 16), "{path}");
        }
        if id == b"data" {
            return body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
                .collect();
        }
        pos += 8 + size + (size & 1);
    }
    panic!("{path}: no data chunk");
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sotto-mel-ref-{}-{}.f32",
        std::process::id(),
        name.replace(' ', "-")
    ))
}

/// Runs tools/ref_mel.py with `args` and returns (values, rows, cols).
fn reference(args: &[&str], name: &str) -> (Vec<f32>, usize, usize) {
    let out = temp_path(name);
    let result = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 ({e}): the mel reference test needs python3 with faster_whisper \
                 — run `.ci/run` or `pip install faster-whisper`"
            )
        });
    assert!(
        result.status.success(),
        "tools/ref_mel.py failed (needs python3 with faster_whisper — run `.ci/run` or \
         `pip install faster-whisper`):\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    let shape: Vec<usize> = stdout
        .split_whitespace()
        .skip_while(|w| *w != "shape")
        .skip(1)
        .map(|w| w.parse().expect("shape"))
        .collect();
    assert_eq!(shape.len(), 2, "unexpected ref_mel.py output: {stdout}");
    let bytes = std::fs::read(&out).expect("reference output");
    let _ = std::fs::remove_file(&out);
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values.len(), shape[0] * shape[1]);
    (values, shape[0], shape[1])
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn filter_bank_matches_faster_whisper() {
    for n_mels in [80usize, 128] {
        let mels = n_mels.to_string();
        let (want, rows, cols) = reference(&["--filters", "--n-mels", &mels], "filters");
        assert_eq!((rows, cols), (n_mels, 201));
        let got = mel_filter_bank(n_mels);
        let diff = max_abs_diff(&got, &want);
        println!("filter bank n_mels={n_mels}: max abs diff {diff:e}");
        assert!(
            diff <= 1e-6,
            "n_mels {n_mels}: filter bank differs by {diff}"
        );
    }
}

fn check_mel(samples: &[f32], max_samples: Option<usize>, padding: usize, name: &str) {
    let samples = match max_samples {
        Some(k) => &samples[..k.min(samples.len())],
        None => samples,
    };
    let pad = padding.to_string();
    let mut args = vec![JFK, "--padding", pad.as_str()];
    let k;
    if let Some(m) = max_samples {
        k = m.to_string();
        args.extend(["--max-samples", k.as_str()]);
    }
    let (want, rows, cols) = reference(&args, name);
    let filters = mel_filter_bank(80);
    let (got, n_frames) = log_mel_spectrogram(samples, padding, &filters, 80);
    assert_eq!(rows, 80);
    assert_eq!(n_frames, cols, "{name}: frame count");
    assert_eq!(n_frames, (samples.len() + padding) / 160);
    let diff = max_abs_diff(&got, &want);
    println!("{name}: {n_frames} frames, max abs diff {diff:e}");
    assert!(diff <= 1e-3, "{name}: log-mel differs by {diff}");
}

#[test]
fn jfk_matches_faster_whisper_default_padding() {
    assert!(Path::new(JFK).exists(), "{JFK} missing");
    let samples = read_wav_i16(JFK);
    assert_eq!(samples.len(), 176_000);
    check_mel(&samples, None, 160, "jfk padding 160");
}

#[test]
fn jfk_matches_faster_whisper_30s_padding() {
    let samples = read_wav_i16(JFK);
    check_mel(&samples, None, N_SAMPLES, "jfk padding 480000");
}

#[test]
fn short_inputs_match_faster_whisper() {
    let samples = read_wav_i16(JFK);
    // 170 samples, no padding: one frame whose 200-sample reflect pads reflect more than once.
    check_mel(&samples, Some(170), 0, "170 samples");
    // A second of speech with no padding (the last partial hop is dropped).
    check_mel(&samples[..], Some(16_123), 0, "16123 samples");
    // Half a window of samples, then 30-s padding.
    check_mel(&samples, Some(200), N_SAMPLES, "200 samples + 30 s padding");
}

/// 30 s of speech (no padding) gives one window of 3000 frames × 80 mels, every value finite and
/// within the (max − 8 + 4) / 4 … max range the floor allows, and the same result twice. Its speed
/// is measured by `cargo bench --bench frontend`, not asserted here.
#[test]
fn mel_of_30s_is_one_window() {
    let speech = read_wav_i16(JFK);
    let samples: Vec<f32> = speech.iter().cycle().take(N_SAMPLES).copied().collect();
    let filters = mel_filter_bank(80);
    let (mel, n) = log_mel_spectrogram(&samples, 0, &filters, 80);
    assert_eq!(n, 3000);
    assert_eq!(mel.len(), 80 * 3000);
    assert!(mel.iter().all(|v| v.is_finite()));
    let max = mel.iter().copied().fold(f32::MIN, f32::max);
    let min = mel.iter().copied().fold(f32::MAX, f32::min);
    assert!(min >= max - 2.0 - 1e-6, "floor: min {min}, max {max}");
    let (again, _) = log_mel_spectrogram(&samples, 0, &filters, 80);
    assert!(
        mel.iter()
            .zip(&again)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "deterministic"
    );
}
