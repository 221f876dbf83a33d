//! The library API as an embedding program uses it: segments as they are
//! decoded, aborting from another thread, concurrent callers sharing one model,
//! the step-by-step API, and a failed device change that keeps the model.
mod common;

use common::{jfk, model_path};
use sotto::{Abort, Device, Error, LoadOptions, Model, Options};
use std::sync::{Arc, Mutex};

fn opts() -> Options {
    let mut o = Options::default();
    o.threads = 2;
    o
}

/// jfk four times over: 44 s, two windows.
fn long_audio() -> Vec<f32> {
    let one = sotto::audio::load_audio(&jfk()).unwrap();
    one.iter().cycle().take(one.len() * 4).copied().collect()
}

#[test]
fn segments_are_reported_as_they_are_decoded() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut o = opts();
    o.on_segment = Some(Arc::new(move |s: &sotto::Segment| {
        sink.lock().unwrap().push(s.clone())
    }));
    let t = model.transcribe(&long_audio(), &o).unwrap();
    assert!(t.segments.len() >= 2, "{:?}", t.segments);
    assert_eq!(*seen.lock().unwrap(), t.segments);
}

#[test]
fn an_aborted_transcription_stops_with_an_error() {
    let model = Arc::new(Model::load(model_path("tiny.en")).unwrap());
    let audio = long_audio();

    // Aborted before it starts.
    let abort = Abort::new();
    abort.abort();
    let mut o = opts();
    o.abort = Some(abort);
    assert!(matches!(model.transcribe(&audio, &o), Err(Error::Aborted)));

    // Aborted from another thread when the first segment arrives: no later
    // segment is reported.
    let abort = Abort::new();
    let count = Arc::new(Mutex::new(0usize));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx = Mutex::new(tx);
    let c = count.clone();
    let mut o = opts();
    o.abort = Some(abort.clone());
    o.on_segment = Some(Arc::new(move |_: &sotto::Segment| {
        *c.lock().unwrap() += 1;
        let _ = tx.lock().unwrap().send(());
        // Give the aborting thread time to act before decoding goes on.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }));
    let aborter = std::thread::spawn(move || {
        rx.recv().unwrap();
        abort.abort();
    });
    let r = model.transcribe(&audio, &o);
    aborter.join().unwrap();
    assert!(matches!(r, Err(Error::Aborted)), "{r:?}");
    let full = model.transcribe(&audio, &opts()).unwrap();
    assert!(*count.lock().unwrap() < full.segments.len());
}

#[test]
fn concurrent_callers_share_the_model_and_agree() {
    let model = Arc::new(Model::load(model_path("tiny.en")).unwrap());
    let audio = Arc::new(sotto::audio::load_audio(&jfk()).unwrap());
    let alone = model.transcribe(&audio, &opts()).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (m, a) = (model.clone(), audio.clone());
            std::thread::spawn(move || m.transcribe(&a, &opts()).unwrap())
        })
        .collect();
    for h in handles {
        let t = h.join().unwrap();
        assert_eq!(t.segments, alone.segments);
    }
}

#[test]
fn steps_give_the_transcripts_logits() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let c = model.config().clone();
    let mel = vec![-0.5f32; c.n_mels as usize * 2 * c.n_audio_ctx as usize];
    let window = model.encode_window(&mel, 2).unwrap();
    let mut state = model.decoder_state();
    let prompt = [c.tokens.sot, c.tokens.no_timestamps];
    let rows = model
        .decode_tokens(&window, &mut state, &prompt, &[0, 1], 2)
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.len() == c.n_vocab as usize));
    // One token at a time gives the same last row as the prompt at once.
    let mut one = model.decoder_state();
    model
        .decode_tokens(&window, &mut one, &prompt[..1], &[], 2)
        .unwrap();
    let last = model
        .decode_tokens(&window, &mut one, &prompt[1..], &[0], 2)
        .unwrap();
    assert_eq!(last[0], rows[1]);
    // Bad input is an error, not a panic.
    let err = model.decode_tokens(&window, &mut state, &[u32::MAX], &[0], 2);
    assert!(err.is_err());
    let err = model.encode_window(&mel[1..], 2);
    assert!(err.is_err());
}

#[test]
fn load_options_choose_the_kernels_and_reject_unknown_ones() {
    let path = model_path("tiny.en");
    let m = Model::load_with(&path, &LoadOptions::default().kernels("scalar")).unwrap();
    assert_eq!(m.kernels().name(), "scalar");
    let err = Model::load_with(&path, &LoadOptions::default().kernels("bogus"))
        .err()
        .expect("an unknown kernel set is an error");
    assert!(err.to_string().contains("bogus"), "{err}");
}

#[test]
fn a_failed_device_change_keeps_the_model() {
    let mut model = Model::load(model_path("tiny.en")).unwrap();
    let before = model.device_name();
    // Without the `gpu` feature or without an adapter this fails; with one it
    // succeeds. Either way the model keeps working.
    match model.set_device(Device::Gpu) {
        Ok(()) => assert!(model.device_name().starts_with("gpu:")),
        Err(_) => assert_eq!(model.device_name(), before),
    }
    model.set_device(Device::Cpu).unwrap();
    assert_eq!(model.device_name(), before);
    let t = model
        .transcribe(&sotto::audio::load_audio(&jfk()).unwrap(), &opts())
        .unwrap();
    assert!(t.text.contains("ask not"), "{}", t.text);
}
