//! Audio in: file decoding and resampling (feature `audio`), and the log-mel front end.

#[cfg(feature = "audio")]
mod decode;
mod fft;
pub mod mel;
#[cfg(feature = "audio")]
mod resample;

#[cfg(feature = "audio")]
pub use decode::{load_audio, load_audio_bytes, AudioReader};
pub use mel::{log_mel_spectrogram, mel_filter_bank};
#[cfg(feature = "audio")]
pub use resample::StreamResampler;

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;
pub const HOP_LENGTH: usize = 160;
/// Samples in one 30-second window.
pub const N_SAMPLES: usize = 480_000;
/// Mel frames in one 30-second window.
pub const N_FRAMES: usize = 3000;

/// Raw 16-kHz mono signed 16-bit little-endian samples (`sotto transcribe --raw`) as f32.
pub fn samples_from_s16le(bytes: &[u8], name: &str) -> crate::Result<Vec<f32>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) {
        return Err(crate::Error::audio(
            name.to_string(),
            format!(
                "raw s16le audio needs a positive, even number of bytes, got {}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect())
}
