//! `sotto stream --mic` (feature `mic`): the default input device through cpal, mixed
//! down to mono; the stream resamples the device's rate to 16 kHz.

use super::{new_stream, print};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use sotto::stream::StreamOptions;
use sotto::{Error, Result};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

fn mic_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("--mic: {what}: {e}"))
}

/// Sends each callback's samples, mixed down to mono, to the transcribing thread.
fn callback<T: Copy + 'static>(
    channels: usize,
    to_f32: fn(T) -> f32,
    tx: mpsc::Sender<Vec<f32>>,
) -> impl FnMut(&[T], &cpal::InputCallbackInfo) + Send + 'static {
    move |data: &[T], _| {
        let mono = data
            .chunks(channels)
            .map(|f| f.iter().map(|&v| to_f32(v)).sum::<f32>() / f.len() as f32)
            .collect();
        // The receiver is gone only when the program is ending.
        let _ = tx.send(mono);
    }
}

pub fn run(
    model: &sotto::Model,
    mut opts: StreamOptions,
    vad: Option<&(Arc<sotto::vad::Silero>, f32)>,
    json: bool,
) -> Result<()> {
    let host = cpal::default_host();
    let device = host.default_input_device().ok_or_else(|| {
        Error::Invalid(format!(
            "--mic: no default input device on {} (no sound card or microphone?)",
            host.id().name()
        ))
    })?;
    let name = device.name().unwrap_or_else(|_| "?".into());
    let supported = device
        .default_input_config()
        .map_err(|e| mic_error(&format!("input device {name:?} has no usable format"), e))?;
    let channels = supported.channels().max(1) as usize;
    opts.rate = supported.sample_rate().0;
    let format = supported.sample_format();
    let config: cpal::StreamConfig = supported.into();
    let (tx, rx) = mpsc::channel::<Vec<f32>>();
    let on_error = |e: cpal::StreamError| eprintln!("--mic: {e}");
    let input = match format {
        cpal::SampleFormat::F32 => device.build_input_stream(
            &config,
            callback::<f32>(channels, |v| v, tx),
            on_error,
            None,
        ),
        cpal::SampleFormat::I16 => device.build_input_stream(
            &config,
            callback::<i16>(channels, |v| v as f32 / 32768.0, tx),
            on_error,
            None,
        ),
        cpal::SampleFormat::U16 => device.build_input_stream(
            &config,
            callback::<u16>(channels, |v| (v as f32 - 32768.0) / 32768.0, tx),
            on_error,
            None,
        ),
        other => {
            return Err(Error::Invalid(format!(
                "--mic: input device {name:?} delivers {other} samples (want f32, i16 or u16)"
            )))
        }
    }
    .map_err(|e| mic_error(&format!("opening input device {name:?}"), e))?;
    input
        .play()
        .map_err(|e| mic_error(&format!("starting input device {name:?}"), e))?;
    eprintln!(
        "listening to {name:?} ({} Hz, {channels} channel(s)); Ctrl-C ends",
        opts.rate
    );
    let mut stream = new_stream(model, opts, vad)?;
    let start = Instant::now();
    while let Ok(pcm) = rx.recv() {
        print(&stream.push(&pcm)?, start.elapsed().as_secs_f64(), json)?;
    }
    print(&stream.finish()?, start.elapsed().as_secs_f64(), json)
}
