//! `load_audio`: decoding, downmixing and resampling, and every way a file can be unusable.
//!
//! WAV inputs are written by the test itself; FLAC / MP3 / OGG-Vorbis come from tests/data/audio
//! (0.5 s of a 440 Hz sine at amplitude 0.5, made with sox: see tools/make_audio_fixtures.sh).
#![cfg(feature = "audio")]

use sotto::audio::load_audio;
use sotto::Error;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

const JFK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/jfk.wav");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/audio");

/// A fresh scratch directory per test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sotto-audio-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

enum Sample {
    Pcm16,
    Float32,
}

/// Minimal RIFF/WAVE writer: `frames[i][c]` is channel c of frame i.
fn wav_bytes(rate: u32, channels: u16, kind: Sample, frames: &[Vec<f32>]) -> Vec<u8> {
    let (format, bits): (u16, u16) = match kind {
        Sample::Pcm16 => (1, 16),
        Sample::Float32 => (3, 32),
    };
    let mut data = Vec::new();
    for frame in frames {
        assert_eq!(frame.len(), channels as usize);
        for &v in frame {
            match kind {
                Sample::Pcm16 => data.extend_from_slice(
                    &((v * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes(),
                ),
                Sample::Float32 => data.extend_from_slice(&v.to_le_bytes()),
            }
        }
    }
    let block_align = channels * bits / 8;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * block_align as u32).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

fn sine(freq: f64, rate: u32, amp: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (amp * (2.0 * PI * freq * i as f64 / rate as f64).sin()) as f32)
        .collect()
}

/// Amplitude of the `freq` component of a 16-kHz signal (one DFT bin, edges skipped).
fn amplitude_at(x: &[f32], freq: f64) -> f64 {
    let edge = x.len() / 20;
    let body = &x[edge..x.len() - edge];
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &v) in body.iter().enumerate() {
        let a = 2.0 * PI * freq * i as f64 / 16_000.0;
        re += v as f64 * a.cos();
        im -= v as f64 * a.sin();
    }
    2.0 * (re * re + im * im).sqrt() / body.len() as f64
}

/// Checks that `x` is (mostly) a 440-Hz sine of amplitude `amp` at 16 kHz, after leading and
/// trailing silence (an MP3 without gapless information keeps the encoder's delay) is cut.
fn assert_is_440(x: &[f32], amp: f64, rel_tol: f64, what: &str) {
    let first = x.iter().position(|v| v.abs() > 0.05).unwrap_or(0);
    let last = x.iter().rposition(|v| v.abs() > 0.05).unwrap_or(x.len());
    let x = &x[first..last];
    let a440 = amplitude_at(x, 440.0);
    assert!(
        (a440 - amp).abs() < rel_tol * amp,
        "{what}: 440 Hz amplitude {a440}, want {amp}"
    );
    for f in [220.0, 330.0, 660.0, 880.0, 1000.0, 3000.0, 6000.0] {
        let a = amplitude_at(x, f);
        assert!(
            a < 0.02 * amp,
            "{what}: {f} Hz amplitude {a} next to {a440}"
        );
    }
    // Zero crossings: 880 per second.
    let edge = x.len() / 20;
    let body = &x[edge..x.len() - edge];
    let crossings = body
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count() as f64;
    let per_second = crossings * 16_000.0 / body.len() as f64;
    assert!(
        (per_second - 880.0).abs() < 15.0,
        "{what}: {per_second} zero crossings per second"
    );
}

#[test]
fn jfk_is_16k_mono_unchanged() {
    let samples = load_audio(Path::new(JFK)).expect("jfk.wav");
    assert_eq!(samples.len(), 176_000);
    // 16 kHz input is not resampled: samples are exactly the PCM values / 32768.
    let bytes = std::fs::read(JFK).unwrap();
    let data_at = bytes.windows(4).position(|w| w == b"data").unwrap() + 8;
    for (i, &v) in samples.iter().enumerate().step_by(997) {
        let raw = i16::from_le_bytes([bytes[data_at + 2 * i], bytes[data_at + 2 * i + 1]]);
        assert_eq!(v, raw as f32 / 32768.0, "sample {i}");
    }
    let rms = (samples.iter().map(|v| v * v).sum::<f32>() / samples.len() as f32).sqrt();
    assert!(rms > 0.01 && samples.iter().all(|v| v.abs() <= 1.0));
}

#[test]
fn wav_44k1_stereo_is_resampled_and_downmixed() {
    let dir = scratch("44k1");
    let left = sine(440.0, 44_100, 0.5, 44_100);
    let frames: Vec<Vec<f32>> = left.iter().map(|&v| vec![v, v]).collect();
    let path = dir.join("sine_44k1_stereo.wav");
    std::fs::write(&path, wav_bytes(44_100, 2, Sample::Pcm16, &frames)).unwrap();
    let x = load_audio(&path).unwrap();
    assert_eq!(x.len(), 16_000);
    assert_is_440(&x, 0.5, 0.02, "44.1 kHz stereo");
}

#[test]
fn wav_stereo_downmix_averages_channels() {
    let dir = scratch("downmix");
    let left = sine(440.0, 16_000, 0.5, 8_000);
    let frames: Vec<Vec<f32>> = left.iter().map(|&v| vec![v, 0.0]).collect();
    let path = dir.join("left_only.wav");
    std::fs::write(&path, wav_bytes(16_000, 2, Sample::Pcm16, &frames)).unwrap();
    let x = load_audio(&path).unwrap();
    assert_eq!(x.len(), 8_000);
    for (got, l) in x.iter().zip(&left) {
        let want = ((l * 32768.0).round() / 32768.0) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    // Opposite channels cancel.
    let frames: Vec<Vec<f32>> = left.iter().map(|&v| vec![v, -v]).collect();
    let path = dir.join("cancel.wav");
    std::fs::write(&path, wav_bytes(16_000, 2, Sample::Pcm16, &frames)).unwrap();
    assert!(load_audio(&path).unwrap().iter().all(|v| v.abs() < 1e-4));
}

#[test]
fn wav_8k_is_upsampled() {
    let dir = scratch("8k");
    let frames: Vec<Vec<f32>> = sine(440.0, 8_000, 0.5, 8_000)
        .into_iter()
        .map(|v| vec![v])
        .collect();
    let path = dir.join("sine_8k.wav");
    std::fs::write(&path, wav_bytes(8_000, 1, Sample::Pcm16, &frames)).unwrap();
    let x = load_audio(&path).unwrap();
    assert_eq!(x.len(), 16_000);
    assert_is_440(&x, 0.5, 0.02, "8 kHz mono");
}

#[test]
fn wav_48k_float_six_channels() {
    let dir = scratch("48k");
    let s = sine(440.0, 48_000, 0.5, 24_000);
    let frames: Vec<Vec<f32>> = s.iter().map(|&v| vec![v; 6]).collect();
    let path = dir.join("sine_48k_f32_6ch.wav");
    std::fs::write(&path, wav_bytes(48_000, 6, Sample::Float32, &frames)).unwrap();
    let x = load_audio(&path).unwrap();
    assert_eq!(x.len(), 8_000);
    assert_is_440(&x, 0.5, 0.02, "48 kHz float 6 channels");
}

#[test]
fn compressed_fixtures_decode() {
    // (file, expected 16-kHz length, tolerance). The 44.1-kHz MP3 carries a LAME/Info tag, so the
    // encoder delay and padding are trimmed exactly; lame wrote none into the 16-kHz (MPEG-2) one,
    // which decodes to 16 whole frames of 576 (9216 samples). Symphonia 0.5 does not trim Vorbis's last block to the final
    // granule position (measured: 8043 samples, one 128-sample block at 48 kHz too many).
    let cases = [
        ("sine440_44k1_stereo.flac", 8_000, 0),
        ("sine440_48k_stereo.ogg", 8_000, 64),
        ("sine440_44k1_stereo.mp3", 8_000, 0),
        ("sine440_16k_mono.mp3", 8_000, 1_216),
    ];
    for (file, len, tol) in cases {
        let path = Path::new(FIXTURES).join(file);
        let x = load_audio(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        println!("{file}: {} samples", x.len());
        assert!(
            x.len().abs_diff(len) <= tol,
            "{file}: {} samples, want {len} ± {tol}",
            x.len()
        );
        // Lossy codecs at low bit rates do not keep the level exactly.
        assert_is_440(&x, 0.5, 0.1, file);
    }
}

/// Asserts that loading `path` fails with an audio error naming the file.
fn assert_audio_error(path: &Path) -> String {
    let err = match load_audio(path) {
        Ok(x) => panic!(
            "{}: expected an error, got {} samples",
            path.display(),
            x.len()
        ),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Audio { .. }), "{err:?}");
    let message = err.to_string();
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(message.contains(&*name), "message {message:?} lacks {name}");
    message
}

#[test]
fn missing_file_is_an_error() {
    let dir = scratch("missing");
    let msg = assert_audio_error(&dir.join("no_such_file.wav"));
    assert!(msg.contains("cannot open"), "{msg}");
    assert_audio_error(&dir); // a directory
}

#[test]
fn empty_file_is_an_error() {
    let dir = scratch("empty");
    let path = dir.join("empty.wav");
    std::fs::write(&path, b"").unwrap();
    let msg = assert_audio_error(&path);
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn random_bytes_are_an_error() {
    let dir = scratch("random");
    let mut state = 0x2545f4914f6cdd1du64;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    for name in [
        "random.wav",
        "random.bin",
        "random.flac",
        "random.ogg",
        "random",
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        assert_audio_error(&path);
    }
}

#[test]
fn truncated_wav_header_is_an_error() {
    let dir = scratch("truncated");
    let frames: Vec<Vec<f32>> = vec![vec![0.1]; 100];
    let full = wav_bytes(16_000, 1, Sample::Pcm16, &frames);
    for cut in [4, 12, 20, 30] {
        let path = dir.join(format!("truncated_{cut}.wav"));
        std::fs::write(&path, &full[..cut]).unwrap();
        assert_audio_error(&path);
    }
}

#[test]
fn wav_without_samples_is_an_error() {
    let dir = scratch("zero");
    let path = dir.join("zero_samples.wav");
    std::fs::write(&path, wav_bytes(16_000, 1, Sample::Pcm16, &[])).unwrap();
    assert_audio_error(&path);
    // Header claims data, file ends right after it.
    let mut bytes = wav_bytes(16_000, 1, Sample::Pcm16, &vec![vec![0.1]; 1000]);
    bytes.truncate(44);
    let path = dir.join("data_missing.wav");
    std::fs::write(&path, &bytes).unwrap();
    assert_audio_error(&path);
}

#[test]
fn text_named_mp3_is_an_error() {
    let dir = scratch("text");
    let path = dir.join("notes.mp3");
    let text = "This is not an MP3 file, only a few lines of text.\n".repeat(200);
    std::fs::write(&path, text).unwrap();
    assert_audio_error(&path);
}

#[test]
fn truncated_compressed_files_keep_what_decodes() {
    // Half of a FLAC file: the complete frames decode, the cut one ends the stream.
    let dir = scratch("cut");
    let bytes = std::fs::read(Path::new(FIXTURES).join("sine440_44k1_stereo.flac")).unwrap();
    let path = dir.join("half.flac");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    match load_audio(&path) {
        Ok(x) => assert!(x.len() < 8_000, "{} samples from half a file", x.len()),
        Err(e) => assert!(e.to_string().contains("half.flac"), "{e}"),
    }
}
