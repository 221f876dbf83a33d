//! Audio in: file decoding and resampling (feature `audio`), and the log-mel front end.

#[cfg(feature = "audio")]
mod decode;
mod fft;
pub mod mel;
#[cfg(feature = "audio")]
mod resample;

#[cfg(feature = "audio")]
pub use decode::{load_audio, AudioReader};
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
