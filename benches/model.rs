//! Whole-network benchmarks on the real tiny.en: one encoder window (30 s of
//! audio: conv stem, 4 blocks, cross-attention K/V) and one decoder step (one
//! token after a 24-token prefix, logits included).
//!
//! Needs `$SOTTO_HOME/tiny.en.sotto` (`sotto fetch tiny.en`); also measures
//! `$SOTTO_HOME/tiny.en-int8.sotto` when present (`sotto quantize tiny.en
//! $SOTTO_HOME/tiny.en-int8.sotto --scheme int8 --activations dynamic`). A missing
//! model is reported and skipped. Kernels: `SOTTO_KERNELS` or the best detected;
//! threads: `SOTTO_BENCH_THREADS` or all cores.
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode};
use sotto::Model;
use std::hint::black_box;
use std::time::Duration;

fn threads() -> usize {
    std::env::var("SOTTO_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn bench_model(c: &mut Criterion) {
    let home = sotto::convert::sotto_home(std::env::var_os("SOTTO_HOME"), std::env::var_os("HOME"));
    let t = threads();
    for name in ["tiny.en", "tiny.en-int8"] {
        let path = home.join(format!("{name}.sotto"));
        if !path.is_file() {
            println!("skipping {name}: {} not found", path.display());
            continue;
        }
        let load = match std::env::var("SOTTO_KERNELS") {
            Ok(k) if !k.is_empty() => sotto::LoadOptions::default().kernels(k),
            _ => sotto::LoadOptions::default(),
        };
        let model = match Model::load_with(&path, &load) {
            Ok(m) => m,
            Err(e) => {
                println!("skipping {name}: {e}");
                continue;
            }
        };
        let kern = model.kernels();
        let cfg = model.config();
        let (n_mels, frames) = (cfg.n_mels as usize, 2 * cfg.n_audio_ctx as usize);
        // The encoder's cost does not depend on the values; a smooth pattern in
        // the log-mel range keeps the arithmetic ordinary (no denormals, no NaN).
        let mel: Vec<f32> = (0..n_mels * frames)
            .map(|i| ((i % 97) as f32 / 97.0) - 0.5)
            .collect();

        let mut g = c.benchmark_group(format!("{name}/{}_t{t}", kern.name()));
        g.warm_up_time(Duration::from_millis(500))
            // About one second per encoder window: ten samples of one call each.
            .measurement_time(Duration::from_secs(10))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat);
        g.bench_function("encoder_window", |b| {
            b.iter(|| {
                black_box(
                    model
                        .encode_window(black_box(&mel), t)
                        .expect("window encodes"),
                )
            })
        });

        let cross = model.encode_window(&mel, t).expect("window encodes");
        let mut prefix = vec![cfg.tokens.sot];
        prefix.extend(400..423u32);
        let mut cache = model.decoder_state();
        model
            .decode_tokens(&cross, &mut cache, &prefix, &[], t)
            .expect("prefix decodes");
        g.sampling_mode(SamplingMode::Auto)
            .measurement_time(Duration::from_secs(2));
        g.bench_function("decoder_step", |b| {
            b.iter_batched_ref(
                || cache.clone(),
                |cache| {
                    model
                        .decode_tokens(&cross, cache, black_box(&[1000]), &[0], t)
                        .expect("step decodes")
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench_model);
criterion_main!(benches);
