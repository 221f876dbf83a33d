//! Writes `.sotto` files (used by conversion and quantization).
use super::{ElementType, ModelConfig};
use crate::Result;
use std::path::Path;

pub struct FileWriter {
    _todo: (),
}

impl FileWriter {
    /// `vocab[id]` holds token `id`'s bytes; `mel_filters` is n_mels × 201.
    pub fn new(config: ModelConfig, vocab: Vec<Vec<u8>>, mel_filters: Vec<f32>) -> FileWriter {
        let _ = (config, vocab, mel_filters);
        FileWriter { _todo: () }
    }
    /// Adds a tensor; `data` is already in `etype`'s layout.
    pub fn add_tensor(
        &mut self,
        name: &str,
        etype: ElementType,
        shape: &[usize],
        group: u32,
        data: Vec<u8>,
    ) -> Result<()> {
        let _ = (name, etype, shape, group, data);
        unimplemented!()
    }
    /// Writes to a temporary file beside `path` and renames it into place.
    pub fn write(&self, path: &Path) -> Result<()> {
        let _ = path;
        unimplemented!()
    }
    /// The complete file as bytes (tests).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        unimplemented!()
    }
}
