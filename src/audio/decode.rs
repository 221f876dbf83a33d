//! Decodes WAV / FLAC / MP3 / OGG-Vorbis to 16 kHz mono f32.
use crate::Result;
use std::path::Path;

/// Reads any supported audio file, downmixes to mono and resamples to 16 kHz.
pub fn load_audio(path: &Path) -> Result<Vec<f32>> {
    let _ = path;
    unimplemented!()
}
