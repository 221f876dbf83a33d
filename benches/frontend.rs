//! The log-mel front end on one 30-s window (`cargo bench --bench frontend`): 480 000
//! samples of jfk.wav repeated, 80 mels, one thread. Was a wall-clock assertion in
//! tests/mel_reference.rs; a speed is measured here, not asserted in a test.
use criterion::{criterion_group, criterion_main, Criterion};
use sotto::audio::{log_mel_spectrogram, mel_filter_bank, N_SAMPLES};
use std::hint::black_box;

fn bench_frontend(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/jfk.wav");
    let speech = sotto::audio::load_audio(std::path::Path::new(path)).expect("samples/jfk.wav");
    let samples: Vec<f32> = speech.iter().cycle().take(N_SAMPLES).copied().collect();
    let filters = mel_filter_bank(80);
    c.bench_function("log_mel_30s_80", |b| {
        b.iter(|| log_mel_spectrogram(black_box(&samples), 0, &filters, 80))
    });
}

criterion_group!(benches, bench_frontend);
criterion_main!(benches);
