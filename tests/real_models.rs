//! End-to-end checks on the real Whisper weights (fetched once into $SOTTO_HOME).
//! Each slow check runs once.
mod common;

use common::*;
use sotto::{Model, Options, Task};

fn transcribe(model: &Model, path: &std::path::Path, opts: &Options) -> sotto::Transcript {
    let samples = sotto::audio::load_audio(path).expect("audio");
    model.transcribe(&samples, opts).expect("transcribe")
}

fn opts() -> Options {
    {
        let mut o = Options::default();
        o.threads = 2;
        o
    }
}

#[test]
fn tiny_en_transcribes_jfk() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let t = transcribe(&model, &jfk(), &opts());
    assert_eq!(words(&t.text), words(JFK), "got: {}", t.text);
    assert_eq!(t.language, "en");
    assert!(!t.segments.is_empty());
    let mut last = 0.0;
    for s in &t.segments {
        assert!(
            s.start >= last && s.end >= s.start && s.end <= 11.0 + 1e-3,
            "{:?}",
            t.segments
        );
        last = s.end;
    }
}

#[test]
fn tiny_en_without_timestamps_is_one_segment() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let t = transcribe(&model, &jfk(), &{
        let mut o = opts();
        o.timestamps = false;
        o
    });
    assert_eq!(words(&t.text), words(JFK), "got: {}", t.text);
    assert_eq!(t.segments.len(), 1);
}

#[test]
fn base_detects_english_and_transcribes_jfk() {
    let model = Model::load(model_path("base")).unwrap();
    let t = transcribe(&model, &jfk(), &opts());
    assert_eq!(t.language, "en");
    assert_eq!(words(&t.text), words(JFK), "got: {}", t.text);
    // Translating English speech to English keeps the words; an unknown language is an error.
    let tr = transcribe(&model, &jfk(), &{
        let mut o = opts();
        o.task = Task::Translate;
        o.language = Some("en".into());
        o
    });
    let errors = word_errors(&words(JFK), &words(&tr.text));
    assert!(errors <= 3, "translate: {}", tr.text);
    let samples = sotto::audio::load_audio(&jfk()).unwrap();
    let err = model
        .transcribe(&samples, &{
            let mut o = opts();
            o.language = Some("xx".into());
            o
        })
        .unwrap_err();
    assert!(err.to_string().contains("unknown language 'xx'"), "{err}");
}

#[test]
fn encoder_matches_ctranslate2() {
    let dir = std::env::temp_dir().join(format!("sotto-enc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("jfk");
    python(&[
        "tools/ref_encoder.py",
        "tiny.en",
        jfk().to_str().unwrap(),
        prefix.to_str().unwrap(),
    ]);
    let mel = read_f32(&prefix.with_extension("mel.f32"));
    let reference = read_f32(&prefix.with_extension("enc.f32"));
    let model = Model::load(model_path("tiny.en")).unwrap();
    let enc = model.encoder_output(&mel, 2).unwrap();
    assert_eq!(enc.len(), reference.len());
    let diffs: Vec<f32> = enc
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let max = diffs.iter().cloned().fold(0.0, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    eprintln!("encoder vs CTranslate2: max abs diff {max:.2e}, mean {mean:.2e}");
    assert!(max <= 2e-2 && mean <= 2e-3, "max {max}, mean {mean}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_minutes_of_speech_are_transcribed_completely() {
    let dir = std::env::temp_dir().join(format!("sotto-long-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("long.wav");
    python(&[
        "tools/make_longform.py",
        wav.to_str().unwrap(),
        "--seconds",
        "120",
    ]);
    let reference = std::fs::read_to_string(wav.with_extension("txt")).unwrap();
    let model = Model::load(model_path("tiny.en")).unwrap();
    let samples = sotto::audio::load_audio(&wav).unwrap();
    let duration = samples.len() as f32 / 16_000.0;
    assert!(duration >= 120.0);
    let t = model.transcribe(&samples, &opts()).unwrap();
    let (r, h) = (words(&reference), words(&t.text));
    let wer = word_errors(&r, &h) as f32 / r.len() as f32;
    eprintln!(
        "long-form: {} windows, {} ref words, {} hyp words, WER {:.3}",
        t.timings.windows,
        r.len(),
        h.len(),
        wer
    );
    // Dropped or repeated sentences would move the word count and the WER far off.
    assert!(
        (h.len() as f32 - r.len() as f32).abs() / (r.len() as f32) < 0.1,
        "{} vs {} words",
        h.len(),
        r.len()
    );
    assert!(wer < 0.2, "WER {wer}: {}", t.text);
    let mut last = 0.0;
    for s in &t.segments {
        assert!(
            s.start >= last - 1e-3 && s.end >= s.start && s.end <= duration + 1e-3,
            "non-monotonic: {:?}",
            s
        );
        last = s.end;
    }
    // The last words of the reference are there.
    let tail: Vec<_> = r[r.len() - 5..].to_vec();
    assert!(
        h.windows(5).any(|w| word_errors(&tail, w) <= 1),
        "ending missing: {}",
        t.text
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn model_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
    let model = std::sync::Arc::new(Model::load(model_path("tiny.en")).unwrap());
    let samples = std::sync::Arc::new(sotto::audio::load_audio(&jfk()).unwrap());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (m, s) = (model.clone(), samples.clone());
            std::thread::spawn(move || {
                m.transcribe(&s, &{
                    let mut o = Options::default();
                    o.threads = 1;
                    o.timestamps = false;
                    o
                })
                .unwrap()
                .text
            })
        })
        .collect();
    let texts: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(texts[0], texts[1]);
    assert_eq!(words(&texts[0]), words(JFK));
}
