//! The constant-memory file path (`Model::transcribe_file`, `decoding::source::FileMel`):
//! the same log-mel windows and the same transcript as the whole-file path, with a
//! bounded number of frames and samples held whatever the length of the file.
mod common;

use common::{jfk, model_path};
use sotto::audio::{load_audio, mel_filter_bank, N_FRAMES};
use sotto::decoding::source::{FileMel, MelSource, WholeMel};
use sotto::{Model, Options};
use std::path::{Path, PathBuf};

/// Writes 16-bit PCM WAV: `channels` interleaved, at `rate`.
fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|&v| ((v.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2 * channels as u32).to_le_bytes());
    wav.extend_from_slice(&(2 * channels).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).unwrap();
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sotto-incremental-{}-{name}", std::process::id()))
}

/// jfk `times` over at 16 kHz mono.
fn jfk_times(times: usize) -> Vec<f32> {
    let one = load_audio(&jfk()).unwrap();
    one.iter()
        .cycle()
        .take(one.len() * times)
        .copied()
        .collect()
}

/// jfk three times over as 48-kHz stereo (the channels differ): 33 s, two windows,
/// through the downmix and the stateful resampler.
fn stereo_48k(path: &Path) {
    let mono = jfk_times(3);
    let mut inter = Vec::with_capacity(mono.len() * 6);
    for &v in &mono {
        for _ in 0..3 {
            inter.push(v);
            inter.push(v * 0.5);
        }
    }
    write_wav(path, 48_000, 2, &inter);
}

fn windows_match(path: &Path, seeks: &[usize]) -> (usize, usize) {
    let filters = mel_filter_bank(80);
    let samples = load_audio(path).unwrap();
    let mut whole = WholeMel::new(&samples, &filters, 80);
    let mut file = FileMel::open(path, &filters, 80).unwrap();
    assert_eq!(file.n_samples(), samples.len());
    assert_eq!(file.content_frames(), whole.content_frames());
    let (mut a, mut b) = (vec![0f32; 80 * N_FRAMES], vec![0f32; 80 * N_FRAMES]);
    for &seek in seeks {
        whole.window(seek, &mut a).unwrap();
        file.window(seek, &mut b).unwrap();
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{}: window at frame {seek} differs", path.display());
    }
    assert!(file.window(seeks[seeks.len() - 1] - 1, &mut b).is_err());
    file.peak_held()
}

#[test]
fn file_windows_are_bit_identical_and_memory_is_bounded() {
    let (short, long) = (temp("short.wav"), temp("long.wav"));
    stereo_48k(&short);
    // 0, odd seeks as the decoding loop makes them, past the end of the content.
    let seeks = [0, 1, 2_345, 3_000, 3_100];
    let (frames, samples) = windows_match(&short, &seeks);
    assert!(frames <= N_FRAMES, "{frames} frames held");

    // 20 × jfk (220 s): the windows of a long file, and no more held than for the short one.
    write_wav(&long, 16_000, 1, &jfk_times(20));
    let seeks: Vec<usize> = (0..8).map(|i| i * 2_750 + i % 3).collect();
    let (long_frames, long_samples) = windows_match(&long, &seeks);
    assert!(long_frames <= N_FRAMES, "{long_frames} frames held");
    // A few packets and the resampler's pieces, not the file (3.5 M samples).
    assert!(
        long_samples <= 16 * 400 + 16_384 && samples <= 16 * 400 + 16_384,
        "samples held: {samples} (33 s), {long_samples} (220 s)"
    );
    let _ = std::fs::remove_file(short);
    let _ = std::fs::remove_file(long);
}

#[test]
fn transcribe_file_equals_the_whole_file_path() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let mut o = Options::default();
    o.threads = 2;
    let short = temp("model.wav");
    stereo_48k(&short);
    for path in [jfk(), short.clone()] {
        let whole = model.transcribe(&load_audio(&path).unwrap(), &o).unwrap();
        let file = model.transcribe_file(&path, &o).unwrap();
        assert!(!whole.text.is_empty());
        assert_eq!(file.text, whole.text, "{}", path.display());
        assert_eq!(file.segments, whole.segments, "{}", path.display());
        assert_eq!(file.window_temperatures, whole.window_temperatures);
    }
    let _ = std::fs::remove_file(short);
}
