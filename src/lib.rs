//! sotto: Whisper speech-to-text from a memory-mapped `.sotto` file.
pub mod audio;
#[cfg(feature = "convert")]
pub mod convert;
pub mod decoding;
pub mod error;
pub mod format;
pub mod model;

pub use error::{Error, Result};
