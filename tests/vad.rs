//! Silero VAD v6 on sotto's kernels: per-frame probabilities against onnxruntime
//! (tools/ref_vad.py, faster-whisper's own session) on real speech and on a file made
//! of speech, silence and noise, on every kernel set; faster-whisper's segments; no
//! words transcribed in the silence and noise with `Options::vad`; hostile `.svad` and
//! ONNX input rejected. Needs python3 with faster-whisper and onnxruntime (`.ci/run`
//! installs them and fetches silero-vad).

mod common;

use sotto::vad::{self, Silero, VadOptions};
use sotto::{Model, Options};
use sotto_kernels::{Kernels, Pool};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn silero_path() -> PathBuf {
    sotto::convert::fetch_silero_vad(&common::home(), &|m| eprintln!("{m}"))
        .unwrap_or_else(|e| panic!("cannot fetch silero-vad: {e}"))
}

fn load(path: &Path) -> Vec<f32> {
    sotto::audio::load_audio(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write_wav(path: &Path, samples: &[f32]) {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|&s| ((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&16_000u32.to_le_bytes());
    b.extend_from_slice(&32_000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    std::fs::write(path, b).unwrap();
}

/// Low-level brown noise with 50-Hz hum and its harmonics, like a quiet room
/// through a cheap recorder; deterministic.
fn room_noise(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut brown = 0f32;
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let white = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            brown = 0.995 * brown + 0.02 * white;
            let t = i as f32 / 16_000.0;
            let hum = 0.004 * (2.0 * std::f32::consts::PI * 50.0 * t).sin()
                + 0.002 * (2.0 * std::f32::consts::PI * 150.0 * t).sin();
            0.15 * brown + hum
        })
        .collect()
}

/// The generated file: (samples, where the speech is in seconds).
fn speech_silence_noise() -> (Vec<f32>, Vec<(f32, f32)>) {
    let jfk = load(&common::jfk());
    let other = load(&common::repo_path(
        "eval/librispeech/test-other/1688-142285-0003.wav",
    ));
    let mut audio = vec![0f32; 3 * 16_000];
    let mut speech = Vec::new();
    for (i, piece) in [&jfk, &other].into_iter().enumerate() {
        let start = audio.len();
        audio.extend_from_slice(piece);
        speech.push((start as f32 / 16_000.0, audio.len() as f32 / 16_000.0));
        audio.extend(room_noise(7 * 16_000, i as u64 + 1));
        audio.extend(vec![0f32; 4 * 16_000]);
    }
    // What a 16-bit WAV holds, so that both sides see the same samples.
    let audio = audio
        .iter()
        .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) / 32768.0)
        .collect();
    (audio, speech)
}

struct Reference {
    probs: Vec<f32>,
    segments: Vec<(usize, usize)>,
}

fn reference(files: &[&Path]) -> Vec<Reference> {
    let mut args = vec!["tools/ref_vad.py".to_string()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let out = common::python(&args);
    let lines: Vec<&str> = out.lines().collect();
    let refs: Vec<Reference> = lines
        .chunks(4)
        .map(|c| {
            assert!(
                c.len() >= 3 && c[0].starts_with("p "),
                "ref_vad.py output: {c:?}"
            );
            let probs = c[1]
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            let v: Vec<usize> = c[2][1..]
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect();
            let segments = v.chunks(2).map(|p| (p[0], p[1])).collect();
            Reference { probs, segments }
        })
        .collect();
    assert_eq!(refs.len(), files.len());
    refs
}

#[test]
fn probabilities_match_onnxruntime_on_every_kernel_set() {
    let silero = Silero::load(silero_path()).unwrap();
    let tmp = std::env::temp_dir().join(format!("sotto-vad-{}.wav", std::process::id()));
    let (generated, _) = speech_silence_noise();
    write_wav(&tmp, &generated);
    let files: Vec<PathBuf> = vec![
        common::jfk(),
        common::repo_path("eval/librispeech/test-other/1688-142285-0000.wav"),
        common::repo_path("eval/librispeech/test-other/3331-159605-0008.wav"),
        tmp.clone(),
    ];
    let refs = reference(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    let audios: Vec<Vec<f32>> = files.iter().map(|p| load(p)).collect();
    let _ = std::fs::remove_file(&tmp);
    let pool = Pool::new(2);
    let options = VadOptions::new(Arc::new(Silero::load(silero_path()).unwrap()));
    let mut first: Option<Vec<Vec<f32>>> = None;
    for kernels in Kernels::available() {
        let mut worst = 0f32;
        let mut all = Vec::new();
        for ((path, r), audio) in files.iter().zip(&refs).zip(&audios) {
            let p = silero.probabilities(&kernels, &pool, audio);
            assert_eq!(p.len(), r.probs.len(), "{}: frames", path.display());
            let d = p
                .iter()
                .zip(&r.probs)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            worst = worst.max(d);
            assert!(
                d < 1e-3,
                "{} on {}: max |Δp| {d} against onnxruntime",
                path.display(),
                kernels.name()
            );
            let segments: Vec<(usize, usize)> = vad::speech_segments(&p, audio.len(), &options)
                .iter()
                .map(|s| (s.start, s.end))
                .collect();
            assert_eq!(
                segments,
                r.segments,
                "{}: segments differ from faster-whisper's",
                path.display()
            );
            all.push(p);
        }
        eprintln!("{}: max |Δp| vs onnxruntime {worst:.2e}", kernels.name());
        match &first {
            None => first = Some(all),
            Some(f) => {
                let d = f
                    .iter()
                    .flatten()
                    .zip(all.iter().flatten())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                eprintln!("  max |Δp| vs scalar {d:.2e}");
            }
        }
    }
    // The generated file has speech where it was put and none elsewhere.
    assert!(
        refs[3].segments.len() == 2,
        "faster-whisper's segments of the generated file: {:?}",
        refs[3].segments
    );
}

#[test]
fn no_words_in_silence_or_noise_and_times_on_the_original_timeline() {
    let (audio, speech) = speech_silence_noise();
    let model = Model::load(common::model_path("tiny.en")).unwrap();
    let mut o = Options::default();
    o.threads = 2;
    let vad = VadOptions::new(Arc::new(Silero::load(silero_path()).unwrap()));
    o.vad = Some(vad);
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = heard.clone();
    o.on_segment = Some(Arc::new(move |s: &sotto::Segment| {
        h.lock().unwrap().push((s.start, s.end))
    }));
    let t = model.transcribe(&audio, &o).unwrap();
    assert!(t.timings.vad_ms > 0.0);
    assert!(!t.segments.is_empty());
    for s in &t.segments {
        // Inside a stretch of speech (with VAD's 0.4-s padding and a little slack).
        let inside = speech
            .iter()
            .any(|&(a, b)| s.start >= a - 0.6 && s.end <= b + 0.6);
        assert!(
            inside,
            "segment {s:?} lies outside the speech at {speech:?}"
        );
    }
    assert!(t.segments[0].start >= speech[0].0 - 0.6 && t.segments[0].start < speech[0].0 + 1.0);
    let last = t.segments.last().unwrap();
    assert!(last.start >= speech[1].0 - 0.6, "{last:?}");
    let got: Vec<(f32, f32)> = t.segments.iter().map(|s| (s.start, s.end)).collect();
    assert_eq!(*heard.lock().unwrap(), got, "on_segment hears mapped times");
    let want = common::words(&format!(
        "{} I really liked that account of himself better than anything else he said",
        common::JFK
    ));
    let errors = common::word_errors(&want, &common::words(&t.text));
    assert!(
        errors <= 3,
        "{errors} word errors in '{}' against {want:?}",
        t.text
    );
}

#[test]
fn bad_options_and_audio_are_errors() {
    let model = Model::load(common::model_path("tiny.en")).unwrap();
    let silero = Arc::new(Silero::load(silero_path()).unwrap());
    let mut o = Options::default();
    o.vad = Some(VadOptions::new(silero.clone()));
    assert!(model.transcribe(&[], &o).is_err());
    assert!(model.transcribe(&[0.0, f32::NAN, 0.0], &o).is_err());
    for (threshold, neg) in [(1.5, None), (f32::NAN, None), (0.5, Some(0.7))] {
        let mut v = VadOptions::new(silero.clone());
        v.threshold = threshold;
        v.neg_threshold = neg;
        o.vad = Some(v);
        assert!(model.transcribe(&[0.0; 16_000], &o).is_err());
    }
    // Silence only: nothing to transcribe, no error.
    o.vad = Some(VadOptions::new(silero));
    let t = model.transcribe(&vec![0.0; 5 * 16_000], &o).unwrap();
    assert!(t.segments.is_empty() && t.text.is_empty(), "{t:?}");
}

#[test]
fn hostile_svad_files_are_errors() {
    let good = std::fs::read(silero_path()).unwrap();
    assert!(Silero::from_bytes(&good, "good").is_ok());
    for cut in [0, 7, 31, 32, 33, 100, good.len() / 2, good.len() - 1] {
        let e = Silero::from_bytes(&good[..cut], "cut").err();
        assert!(e.is_some(), "truncated at {cut} accepted");
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(Silero::from_bytes(&longer, "longer").is_err());
    for pos in [0, 9, 13, 17, 25, 40, 1000, good.len() - 3] {
        let mut b = good.clone();
        b[pos] ^= 0x40;
        assert!(Silero::from_bytes(&b, "flipped").is_err(), "flip at {pos}");
    }
    // Well-formed files with the wrong contents: shapes, counts, values.
    let tensors: Vec<Vec<f32>> = vad::file::TENSORS
        .iter()
        .map(|(_, s)| vec![0.5; s.iter().product()])
        .collect();
    assert!(Silero::from_bytes(&vad::file::encode(&tensors).unwrap(), "ok").is_ok());
    let mut short = tensors.clone();
    short[3].pop();
    assert!(vad::file::encode(&short).is_err());
    assert!(vad::file::encode(&tensors[1..]).is_err());
    let mut nan = tensors.clone();
    nan[5][7] = f32::NAN;
    let e = Silero::from_bytes(&vad::file::encode(&nan).unwrap(), "nan").err();
    assert!(format!("{e:?}").contains("not finite"), "{e:?}");
    assert!(Silero::load("/nonexistent/silero.svad").is_err());
}

#[test]
fn hostile_onnx_files_are_errors() {
    let dir = common::python(&[
        "-c",
        "import faster_whisper.utils as u; print(u.get_assets_path())",
    ]);
    let onnx = std::fs::read(Path::new(dir.trim()).join("silero_vad_v6.onnx")).unwrap();
    let onnx_tensors = sotto::convert::onnx::silero_vad_tensors;
    // The graph's weights make a valid .svad file.
    let tensors = onnx_tensors(&onnx).unwrap();
    let bytes = vad::file::encode(&tensors).unwrap();
    assert!(Silero::from_bytes(&bytes, "from onnx").is_ok());
    for i in 1..10 {
        let cut = onnx.len() * i / 10;
        assert!(onnx_tensors(&onnx[..cut]).is_err(), "cut at {cut} accepted");
    }
    assert!(onnx_tensors(&[]).is_err());
    assert!(onnx_tensors(b"not an onnx file at all").is_err());
    let mut state = 7u64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 56) as u8
        })
        .collect();
    assert!(onnx_tensors(&garbage).is_err());
    // Another graph: an operator renamed.
    let at = onnx.windows(6).position(|w| w == b"\x22\x04LSTM").unwrap();
    let mut other = onnx.clone();
    other[at + 5] = b'N';
    let e = onnx_tensors(&other).err();
    assert!(format!("{e:?}").contains("not Silero VAD v6"), "{e:?}");
    // Flipped bytes anywhere: an error or weights, never a panic.
    for k in 0..200 {
        let mut b = onnx.clone();
        let pos = (k * 7919 * 13) % b.len();
        b[pos] ^= 0xa5;
        let _ = onnx_tensors(&b);
    }
}

#[test]
fn cli_vad_transcribes_jfk() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["transcribe", "--vad", "-t", "2", "--device", "cpu"])
        .arg(common::jfk())
        .env("SOTTO_HOME", common::home())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = common::word_errors(&common::words(common::JFK), &common::words(&text));
    assert!(errors <= 1, "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["transcribe", "--vad-threshold", "0.3"])
        .arg(common::jfk())
        .output()
        .unwrap();
    assert!(!out.status.success(), "--vad-threshold without --vad");
}
