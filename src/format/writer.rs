//! Writes `.sotto` files (used by conversion and quantization).
use super::config::{encode_config, encode_vocab, put_u32, validate_config};
use super::layout::*;
use super::{fnv1a64, ElementType, ModelConfig, ALIGN};
use crate::{Error, Result};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

struct PendingTensor {
    name: String,
    etype: ElementType,
    shape: Vec<usize>,
    group: u32,
    data: Vec<u8>,
    checksum: u64,
}

/// Collects a model's config, vocabulary, mel filters and tensors, then writes
/// them as one `.sotto` v1 file. Tensors are written in the order they were added.
pub struct FileWriter {
    config: ModelConfig,
    vocab: Vec<Vec<u8>>,
    mel_filters: Vec<f32>,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
}

/// The metadata sections and where every part of the file goes.
struct Plan {
    header: Vec<u8>,
    config: Vec<u8>,
    vocab: Vec<u8>,
    dir: Vec<u8>,
    mel: Vec<u8>,
    /// Padding written after the directory so the mel section is aligned.
    mel_offset: u64,
    tensor_offsets: Vec<u64>,
    file_len: u64,
}

impl FileWriter {
    /// `vocab[id]` holds token `id`'s bytes; `mel_filters` is n_mels × 201.
    pub fn new(config: ModelConfig, vocab: Vec<Vec<u8>>, mel_filters: Vec<f32>) -> FileWriter {
        FileWriter {
            config,
            vocab,
            mel_filters,
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Sets the file's activation mode. `Static` needs an F32 `[1]` tensor
    /// [`super::act_scale_name`] for every int8 weight (checked when the file is read).
    pub fn set_activations(&mut self, mode: super::ActivationMode) {
        self.config.activations = mode;
    }

    /// Replaces the mel filter bank (n_mels × 201).
    pub fn set_mel_filters(&mut self, mel_filters: Vec<f32>) {
        self.mel_filters = mel_filters;
    }

    /// Names of the tensors added so far, in order.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|t| t.name.as_str())
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
        let err = |m: String| Err(Error::format(format!("tensor {name}"), m));
        if name.is_empty() || name.len() > u16::MAX as usize {
            return err("name must be 1 to 65535 bytes".into());
        }
        if self.names.contains(name) {
            return err("duplicate tensor name".into());
        }
        if shape.is_empty() || shape.len() > MAX_RANK || shape.contains(&0) {
            return err(format!(
                "shape {shape:?}: rank must be 1 to {MAX_RANK} with no zero dimension"
            ));
        }
        if let Err(m) = super::reader::check_tensor_size(etype, shape, group, data.len() as u64) {
            return err(m);
        }
        self.names.insert(name.to_string());
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            etype,
            shape: shape.to_vec(),
            group,
            checksum: fnv1a64(&data),
            data,
        });
        Ok(())
    }

    /// `ctx` names the destination in errors.
    fn plan(&self, ctx: &str) -> Result<Plan> {
        validate_config(&self.config, ctx)?;
        if self.vocab.len() != self.config.n_vocab as usize {
            return Err(Error::format(
                ctx,
                format!(
                    "{} vocabulary entries but n_vocab is {}",
                    self.vocab.len(),
                    self.config.n_vocab
                ),
            ));
        }
        let want_mel = self.config.n_mels as usize * MEL_BINS;
        if self.mel_filters.len() != want_mel {
            return Err(Error::format(
                ctx,
                format!(
                    "{} mel filter weights, expected n_mels {} × {MEL_BINS} = {want_mel}",
                    self.mel_filters.len(),
                    self.config.n_mels
                ),
            ));
        }
        if self.config.activations == super::ActivationMode::Static {
            for t in &self.tensors {
                let Some(name) = t
                    .etype
                    .scheme()
                    .and_then(|_| super::act_scale_name(&t.name))
                else {
                    continue;
                };
                let ok = self.tensors.iter().any(|s| {
                    s.name == name
                        && s.etype == ElementType::F32
                        && s.shape == [1]
                        && s.data.get(..4).is_some_and(|b| {
                            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                            v.is_finite() && v > 0.0
                        })
                });
                if !ok {
                    return Err(Error::format(
                        ctx,
                        format!(
                            "static activations: tensor {} needs a finite positive f32 [1] {name}",
                            t.name
                        ),
                    ));
                }
            }
        }
        let config = encode_config(&self.config);
        let vocab = encode_vocab(&self.vocab, ctx)?;
        let mel: Vec<u8> = self
            .mel_filters
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();

        // Sizes first: the directory's length does not depend on the offsets in it.
        let dir_len: usize = self
            .tensors
            .iter()
            .map(|t| 2 + t.name.len() + 4 + 4 + 8 * t.shape.len() + 4 + 24)
            .sum();
        let config_offset = HEADER_LEN as u64;
        let vocab_offset = config_offset + config.len() as u64;
        let dir_offset = vocab_offset + vocab.len() as u64;
        let too_big = || Error::format(ctx, "file larger than u64");
        let mel_offset = align_up(dir_offset + dir_len as u64).ok_or_else(too_big)?;
        let mut end = mel_offset + mel.len() as u64;
        let mut tensor_offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let off = align_up(end).ok_or_else(too_big)?;
            tensor_offsets.push(off);
            end = off.checked_add(t.data.len() as u64).ok_or_else(too_big)?;
        }
        let file_len = end;

        let mut dir = Vec::with_capacity(dir_len);
        for (t, &off) in self.tensors.iter().zip(&tensor_offsets) {
            dir.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
            dir.extend_from_slice(t.name.as_bytes());
            put_u32(&mut dir, t.etype as u32);
            put_u32(&mut dir, t.shape.len() as u32);
            for &d in &t.shape {
                dir.extend_from_slice(&(d as u64).to_le_bytes());
            }
            put_u32(&mut dir, t.group);
            dir.extend_from_slice(&off.to_le_bytes());
            dir.extend_from_slice(&(t.data.len() as u64).to_le_bytes());
            dir.extend_from_slice(&t.checksum.to_le_bytes());
        }
        debug_assert_eq!(dir.len(), dir_len);

        let mut header = vec![0u8; HEADER_LEN];
        let put = |h: &mut Vec<u8>, at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
        put(&mut header, 0, &MAGIC);
        put(&mut header, H_VERSION, &VERSION.to_le_bytes());
        put(
            &mut header,
            H_HEADER_LEN,
            &(HEADER_LEN as u32).to_le_bytes(),
        );
        put(&mut header, H_FILE_LEN, &file_len.to_le_bytes());
        for (at, off, len) in [
            (H_CONFIG, config_offset, config.len()),
            (H_VOCAB, vocab_offset, vocab.len()),
            (H_DIR, dir_offset, dir.len()),
            (H_MEL, mel_offset, mel.len()),
        ] {
            put(&mut header, at, &off.to_le_bytes());
            put(&mut header, at + 8, &(len as u64).to_le_bytes());
        }
        let n_tensors = u32::try_from(self.tensors.len())
            .map_err(|_| Error::format(ctx, "more than u32::MAX tensors"))?;
        put(&mut header, H_N_TENSORS, &n_tensors.to_le_bytes());
        put(&mut header, H_FLAGS, &0u32.to_le_bytes());
        let sum = header_checksum(&header, [&config, &vocab, &dir, &mel]);
        put(&mut header, H_CHECKSUM, &sum.to_le_bytes());
        Ok(Plan {
            header,
            config,
            vocab,
            dir,
            mel,
            mel_offset,
            tensor_offsets,
            file_len,
        })
    }

    /// Streams the file to `out`; returns the number of bytes written.
    fn write_to(&self, plan: &Plan, out: &mut impl Write) -> std::io::Result<u64> {
        let mut pos = 0u64;
        let zeros = [0u8; ALIGN as usize];
        let mut put = |out: &mut dyn Write, b: &[u8], at: u64| -> std::io::Result<()> {
            debug_assert!(at >= pos && at - pos < ALIGN);
            out.write_all(&zeros[..(at - pos) as usize])?;
            out.write_all(b)?;
            pos = at + b.len() as u64;
            Ok(())
        };
        put(out, &plan.header, 0)?;
        put(out, &plan.config, HEADER_LEN as u64)?;
        let vocab_at = HEADER_LEN as u64 + plan.config.len() as u64;
        put(out, &plan.vocab, vocab_at)?;
        put(out, &plan.dir, vocab_at + plan.vocab.len() as u64)?;
        put(out, &plan.mel, plan.mel_offset)?;
        for (t, &off) in self.tensors.iter().zip(&plan.tensor_offsets) {
            put(out, &t.data, off)?;
        }
        Ok(pos)
    }

    /// Writes to a temporary file beside `path` and renames it into place, so
    /// `path` is either the old file or the complete new one, never a partial one.
    pub fn write(&self, path: &Path) -> Result<()> {
        let name = path.display().to_string();
        let plan = self.plan(&name)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{name}: not a file path")))?
            .to_string_lossy();
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{file_name}.{}.{n}.tmp", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            let file = std::fs::File::create(&tmp)?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            let written = self.write_to(&plan, &mut w)?;
            debug_assert_eq!(written, plan.file_len);
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(name, e));
        }
        Ok(())
    }

    /// The complete file as bytes (tests).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let plan = self.plan("<memory>")?;
        let mut out = Vec::with_capacity(plan.file_len as usize);
        self.write_to(&plan, &mut out)
            .map_err(|e| Error::io("<memory>", e))?;
        Ok(out)
    }
}
