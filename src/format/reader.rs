//! Memory-maps a `.sotto` file and validates it before anything reads a tensor.
use super::{ModelConfig, TensorInfo};
use crate::{Error, Result};
use std::path::Path;

/// A validated, memory-mapped model file. Tensor bytes are borrowed from the mapping.
pub struct ModelFile {
    _todo: (),
}

impl ModelFile {
    /// Maps and validates `path`.
    pub fn open(path: &Path) -> Result<ModelFile> {
        let _ = path;
        Err(Error::Invalid("format reader not implemented".into()))
    }
    /// Validates an in-memory file (tests, crafted inputs).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<ModelFile> {
        let _ = bytes;
        Err(Error::Invalid("format reader not implemented".into()))
    }
    pub fn config(&self) -> &ModelConfig {
        unimplemented!()
    }
    pub fn tensors(&self) -> &[TensorInfo] {
        unimplemented!()
    }
    /// The directory entry named `name`, or an error naming it.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        Err(Error::format("", format!("missing tensor {name}")))
    }
    /// The tensor's raw bytes (validated to lie inside the file at open).
    pub fn bytes(&self, t: &TensorInfo) -> &[u8] {
        let _ = t;
        unimplemented!()
    }
    /// The tensor's data as f32; error unless it is stored as F32.
    pub fn f32s(&self, t: &TensorInfo) -> Result<&[f32]> {
        let _ = t;
        unimplemented!()
    }
    /// The tensor's data as raw f16 bits; error unless it is stored as F16.
    pub fn f16s(&self, t: &TensorInfo) -> Result<&[u16]> {
        let _ = t;
        unimplemented!()
    }
    /// The bytes of token `id` (empty for special tokens without text or ids out of range).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let _ = id;
        unimplemented!()
    }
    /// Mel filter bank, `n_mels` rows of `n_fft/2 + 1 = 201` weights.
    pub fn mel_filters(&self) -> &[f32] {
        unimplemented!()
    }
    /// Recomputes every tensor checksum.
    pub fn verify_checksums(&self) -> Result<()> {
        unimplemented!()
    }
    pub fn file_len(&self) -> u64 {
        unimplemented!()
    }
}
