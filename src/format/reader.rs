//! Memory-maps a `.sotto` file and validates it before anything reads a tensor.
//!
//! Everything in the header, config, vocabulary, directory and mel sections is
//! checked at open (header checksum included), so accessors never fail on
//! offsets; tensor checksums are checked on demand by [`ModelFile::verify_checksums`].
use super::config::{decode_config, decode_vocab, VocabLayout};
use super::layout::*;
use super::{ElementType, ModelConfig, TensorInfo, ALIGN};
use crate::{Error, Result};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// 256 bytes aligned to 256: the unit of an owned (non-mapped) file buffer, so
/// tensors in it have the same alignment as in a page-aligned mapping.
#[derive(Clone, Copy)]
#[repr(C, align(256))]
struct Block([u8; 256]);

// Safety: `Block` is a plain byte array (size 256 = alignment, no padding), for
// which every bit pattern is valid and all-zero is a valid value.
unsafe impl bytemuck::Zeroable for Block {}
// Safety: see above; `Copy + 'static`, `repr(C)`, no padding, no pointers.
unsafe impl bytemuck::Pod for Block {}

/// The file's bytes: a read-only mapping, or an aligned copy for in-memory files.
enum Storage {
    Mapped(memmap2::Mmap),
    Owned { blocks: Vec<Block>, len: usize },
}

impl Storage {
    fn owned(bytes: &[u8]) -> Storage {
        let mut blocks = vec![Block([0; 256]); bytes.len().div_ceil(256)];
        bytemuck::cast_slice_mut::<Block, u8>(&mut blocks)[..bytes.len()].copy_from_slice(bytes);
        Storage::Owned {
            blocks,
            len: bytes.len(),
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned { blocks, len } => &bytemuck::cast_slice::<Block, u8>(blocks)[..*len],
        }
    }
}

/// A validated, memory-mapped model file. Tensor bytes are borrowed from the mapping.
pub struct ModelFile {
    data: Storage,
    path: Option<PathBuf>,
    /// How errors name this file: its path, or `<memory>`.
    ctx: String,
    config: ModelConfig,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    /// Absolute position of the vocabulary section and its layout.
    vocab_pos: usize,
    vocab: VocabLayout,
    mel: Range<usize>,
    /// Built on first use (prompts, hotwords): the merges are derived from the vocabulary.
    tokenizer: std::sync::OnceLock<std::result::Result<crate::tokenizer::Tokenizer, String>>,
}

impl std::fmt::Debug for ModelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFile")
            .field("file", &self.ctx)
            .field("len", &self.file_len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl ModelFile {
    /// Maps and validates `path`.
    pub fn open(path: &Path) -> Result<ModelFile> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| Error::io(&name, e))?;
        let len = file.metadata().map_err(|e| Error::io(&name, e))?.len();
        if len == 0 {
            return Err(Error::format(&name, "empty file"));
        }
        // Safety: the mapping is read-only and the file is opened read-only. Like
        // every mmap user we rely on nobody truncating or rewriting the file while
        // it is mapped (the writer replaces files by rename, which keeps an open
        // mapping valid).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&name, e))?;
        Self::validate(Storage::Mapped(map), Some(path.to_path_buf()), name)
    }

    /// Validates an in-memory file (tests, crafted inputs).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<ModelFile> {
        Self::validate(Storage::owned(&bytes), None, "<memory>".into())
    }

    /// The path this file was opened from (`None` for [`ModelFile::from_bytes`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The directory entry named `name`, or an error naming it.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::format(&self.ctx, format!("missing tensor {name}")))
    }

    /// The tensor's raw bytes (validated to lie inside the file at open). An entry
    /// that did not come from this file and lies outside it gives an empty slice.
    pub fn bytes(&self, t: &TensorInfo) -> &[u8] {
        let data = self.data.bytes();
        let (Ok(start), Ok(len)) = (usize::try_from(t.offset), usize::try_from(t.len)) else {
            return &[];
        };
        start
            .checked_add(len)
            .and_then(|end| data.get(start..end))
            .unwrap_or(&[])
    }

    /// The tensor's data as f32; error unless it is stored as F32.
    pub fn f32s(&self, t: &TensorInfo) -> Result<&[f32]> {
        self.typed(t, ElementType::F32)
    }

    /// The tensor's data as raw f16 bits; error unless it is stored as F16.
    pub fn f16s(&self, t: &TensorInfo) -> Result<&[u16]> {
        self.typed(t, ElementType::F16)
    }

    fn typed<T: bytemuck::Pod>(&self, t: &TensorInfo, want: ElementType) -> Result<&[T]> {
        let ctx = || format!("{}: tensor {}", self.ctx, t.name);
        if t.etype != want {
            return Err(Error::format(
                ctx(),
                format!("stored as {}, not {}", t.etype.name(), want.name()),
            ));
        }
        let bytes = self.bytes(t);
        if bytes.len() as u64 != t.len || t.len != t.elements() as u64 * size_of::<T>() as u64 {
            return Err(Error::format(ctx(), "entry does not describe this file"));
        }
        bytemuck::try_cast_slice(bytes)
            .map_err(|e| Error::format(ctx(), format!("cannot view as {}: {e}", want.name())))
    }

    /// The bytes of token `id` (empty for special tokens without text or ids out of range).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        if id >= self.vocab.count {
            return &[];
        }
        let data = self.data.bytes();
        let at = |i: usize| -> Option<usize> {
            let p = self.vocab_pos + self.vocab.offsets + 4 * i;
            let b = data.get(p..p + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let (Some(start), Some(end)) = (at(id as usize), at(id as usize + 1)) else {
            return &[];
        };
        let base = self.vocab_pos + self.vocab.blob;
        data.get(base + start..base + end).unwrap_or(&[])
    }

    /// The byte-level BPE encoder of this file's vocabulary (built once, on first use).
    pub fn tokenizer(&self) -> Result<&crate::tokenizer::Tokenizer> {
        self.tokenizer
            .get_or_init(|| crate::tokenizer::Tokenizer::from_file(self).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::format(&self.ctx, e.clone()))
    }

    /// Mel filter bank, `n_mels` rows of `n_fft/2 + 1 = 201` weights.
    pub fn mel_filters(&self) -> &[f32] {
        // The range is 256-aligned and a multiple of 4 long (checked at open).
        self.data
            .bytes()
            .get(self.mel.clone())
            .and_then(|b| bytemuck::try_cast_slice(b).ok())
            .unwrap_or(&[])
    }

    /// Recomputes every tensor checksum (in parallel); the error names the first
    /// tensor whose bytes do not match its directory entry.
    pub fn verify_checksums(&self) -> Result<()> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 16);
        let bad: Vec<Option<usize>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    s.spawn(move || {
                        (k..self.tensors.len()).step_by(threads).find(|&i| {
                            let t = &self.tensors[i];
                            super::fnv1a64(self.bytes(t)) != t.checksum
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Some(0)))
                .collect()
        });
        match bad.into_iter().flatten().min() {
            None => Ok(()),
            Some(i) => {
                let t = &self.tensors[i];
                Err(Error::format(
                    format!("{}: tensor {}", self.ctx, t.name),
                    format!(
                        "checksum mismatch (directory {:#018x}, data {:#018x}): the file is corrupt",
                        t.checksum,
                        super::fnv1a64(self.bytes(t))
                    ),
                ))
            }
        }
    }

    pub fn file_len(&self) -> u64 {
        self.data.bytes().len() as u64
    }

    /// Total bytes of tensor data (without padding).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.len).sum()
    }

    fn validate(data: Storage, path: Option<PathBuf>, ctx: String) -> Result<ModelFile> {
        let bytes = data.bytes();
        let h = parse_header(bytes, &ctx)?;
        let section = |r: &Range<usize>| &bytes[r.clone()];
        let sum = header_checksum(
            &bytes[..HEADER_LEN],
            [
                section(&h.config),
                section(&h.vocab),
                section(&h.dir),
                section(&h.mel),
            ],
        );
        if sum != h.checksum {
            return Err(Error::format(
                &ctx,
                format!(
                    "header checksum mismatch (stored {:#018x}, computed {sum:#018x}): \
                     the header, config, vocabulary, directory or mel section is corrupt",
                    h.checksum
                ),
            ));
        }
        let config = decode_config(section(&h.config), &ctx)?;
        let vocab = decode_vocab(section(&h.vocab), config.n_vocab, &ctx)?;
        let want_mel = (config.n_mels as usize).saturating_mul(MEL_BINS * 4);
        if h.mel.len() != want_mel {
            return Err(Error::format(
                &ctx,
                format!(
                    "mel section holds {} bytes, expected n_mels {} × {MEL_BINS} f32 = {want_mel}",
                    h.mel.len(),
                    config.n_mels
                ),
            ));
        }
        let tensors = parse_directory(section(&h.dir), h.n_tensors, bytes.len() as u64, &ctx)?;
        let mut index = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if index.insert(t.name.clone(), i).is_some() {
                return Err(Error::format(
                    format!("{ctx}: tensor {}", t.name),
                    "duplicate tensor name",
                ));
            }
        }
        check_overlaps(&h, &tensors, &ctx)?;
        check_act_scales(bytes, &config, &tensors, &index, &ctx)?;
        Ok(ModelFile {
            vocab_pos: h.vocab.start,
            mel: h.mel.clone(),
            data,
            path,
            ctx,
            config,
            tensors,
            index,
            vocab,
            tokenizer: std::sync::OnceLock::new(),
        })
    }
}

/// The header's fields, with section ranges already checked to lie in the file.
struct Header {
    config: Range<usize>,
    vocab: Range<usize>,
    dir: Range<usize>,
    mel: Range<usize>,
    n_tensors: u32,
    checksum: u64,
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn parse_header(bytes: &[u8], ctx: &str) -> Result<Header> {
    let err = |m: String| Err(Error::format(ctx, m));
    if bytes.is_empty() {
        return err("empty file".into());
    }
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] {
        return err("not a .sotto file (wrong magic)".into());
    }
    if bytes.len() < HEADER_LEN {
        return err(format!(
            "truncated: {} bytes, the header alone needs {HEADER_LEN}",
            bytes.len()
        ));
    }
    let version = read_u32(bytes, H_VERSION);
    if version != VERSION {
        return err(format!(
            "unsupported format version {version} (this build reads version {VERSION})"
        ));
    }
    let header_len = read_u32(bytes, H_HEADER_LEN);
    if header_len as usize != HEADER_LEN {
        return err(format!(
            "header length {header_len}, version {VERSION} headers are {HEADER_LEN} bytes"
        ));
    }
    let file_len = read_u64(bytes, H_FILE_LEN);
    let actual = bytes.len() as u64;
    if file_len > actual {
        return err(format!(
            "truncated: the header says {file_len} bytes, the file has {actual}"
        ));
    }
    if file_len < actual {
        return err(format!(
            "{} unexpected bytes after the end recorded in the header ({file_len})",
            actual - file_len
        ));
    }
    let flags = read_u32(bytes, H_FLAGS);
    if flags != 0 {
        return err(format!("unknown header flags {flags:#x}"));
    }
    let section = |at: usize, what: &str| -> Result<Range<usize>> {
        let off = read_u64(bytes, at);
        let len = read_u64(bytes, at + 8);
        match off.checked_add(len) {
            Some(end) if off >= HEADER_LEN as u64 && end <= actual => {
                Ok(off as usize..end as usize)
            }
            _ => Err(Error::format(
                ctx,
                format!("{what} section (offset {off}, {len} bytes) lies outside the {actual}-byte file"),
            )),
        }
    };
    let h = Header {
        config: section(H_CONFIG, "config")?,
        vocab: section(H_VOCAB, "vocabulary")?,
        dir: section(H_DIR, "directory")?,
        mel: section(H_MEL, "mel")?,
        n_tensors: read_u32(bytes, H_N_TENSORS),
        checksum: read_u64(bytes, H_CHECKSUM),
    };
    if !(h.mel.start as u64).is_multiple_of(ALIGN) {
        return err(format!(
            "mel section offset {} is not a multiple of {ALIGN}",
            h.mel.start
        ));
    }
    Ok(h)
}

fn parse_directory(dir: &[u8], n: u32, file_len: u64, ctx: &str) -> Result<Vec<TensorInfo>> {
    use super::config::Cursor;
    let n = n as usize;
    if n > dir.len() / MIN_DIR_ENTRY {
        return Err(Error::format(
            ctx,
            format!("directory: {n} tensors cannot fit in {} bytes", dir.len()),
        ));
    }
    let mut r = Cursor::new(dir);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let short = || {
            Error::format(
                ctx,
                format!("directory: entry {i} runs past the end of the section"),
            )
        };
        let name_len = r.u16().ok_or_else(short)? as usize;
        let name = r.take(name_len).ok_or_else(short)?;
        let name = std::str::from_utf8(name)
            .map_err(|_| Error::format(ctx, format!("directory: entry {i}: name is not UTF-8")))?
            .to_string();
        let tctx = format!("{ctx}: tensor {name}");
        let terr = |m: String| Error::format(&tctx, m);
        if name.is_empty() {
            return Err(Error::format(
                ctx,
                format!("directory: entry {i} has an empty name"),
            ));
        }
        let code = r.u32().ok_or_else(short)?;
        let rank = r.u32().ok_or_else(short)? as usize;
        if rank == 0 || rank > MAX_RANK {
            return Err(terr(format!("rank {rank}, must be 1 to {MAX_RANK}")));
        }
        let mut shape = Vec::with_capacity(rank);
        let mut elements: u64 = 1;
        for _ in 0..rank {
            let d = r.u64().ok_or_else(short)?;
            if d == 0 {
                return Err(terr("shape has a zero dimension".into()));
            }
            // No tensor can have more elements than the file has bits.
            elements = elements
                .checked_mul(d)
                .filter(|&e| e <= file_len.saturating_mul(8))
                .ok_or_else(|| terr("shape is larger than the file".into()))?;
            shape.push(d as usize);
        }
        let group = r.u32().ok_or_else(short)?;
        let offset = r.u64().ok_or_else(short)?;
        let len = r.u64().ok_or_else(short)?;
        let checksum = r.u64().ok_or_else(short)?;
        let etype = ElementType::from_code(code)
            .ok_or_else(|| terr(format!("unknown element type code {code}")))?;
        match offset.checked_add(len) {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(terr(format!(
                    "data (offset {offset}, {len} bytes) lies outside the {file_len}-byte file"
                )))
            }
        }
        if !offset.is_multiple_of(ALIGN) {
            return Err(terr(format!(
                "offset {offset} is not a multiple of {ALIGN}"
            )));
        }
        check_tensor_size(etype, &shape, group, len).map_err(terr)?;
        out.push(TensorInfo {
            name,
            etype,
            shape,
            group,
            offset,
            len,
            checksum,
        });
    }
    if r.remaining() != 0 {
        return Err(Error::format(
            ctx,
            format!(
                "directory: {} unexpected bytes after entry {n}",
                r.remaining()
            ),
        ));
    }
    Ok(out)
}

/// The exact byte length `etype` with `shape` and `group` takes: f32 / f16 from the
/// element count (group 0), packed schemes from their plane layout (the shape
/// flattened to `n × k`, see [`super::packed_dims`]). Shared with the writer.
pub(crate) fn check_tensor_size(
    etype: ElementType,
    shape: &[usize],
    group: u32,
    len: u64,
) -> std::result::Result<(), String> {
    let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let Some(scheme) = etype.scheme() else {
        let size = if etype == ElementType::F32 { 4 } else { 2 };
        if group != 0 {
            return Err(format!(
                "group {group} given for {}, which takes none (0)",
                etype.name()
            ));
        }
        let want = elements.and_then(|e| e.checked_mul(size));
        if want.map(|w| w as u64) != Some(len) {
            return Err(format!(
                "{len} bytes, but shape {shape:?} of {} needs {}",
                etype.name(),
                want.map_or("more than usize".into(), |w| w.to_string())
            ));
        }
        return Ok(());
    };
    let (n, k) = super::packed_dims(shape);
    if elements.is_none() {
        return Err(format!("shape {shape:?} is too large"));
    }
    let l = sotto_kernels::schemes::layout(scheme, n, k, group as usize)
        .map_err(|m| format!("{}: {m}", etype.name()))?;
    if l.total as u64 != len {
        return Err(format!(
            "{len} bytes, but {} {n}×{k} with group {group} takes exactly {}",
            etype.name(),
            l.total
        ));
    }
    Ok(())
}

/// Static-activation files carry a finite, positive F32 `[1]` scale
/// `<prefix>/act_scale` for every int8 `<prefix>/weight`.
fn check_act_scales(
    bytes: &[u8],
    config: &ModelConfig,
    tensors: &[TensorInfo],
    index: &HashMap<String, usize>,
    ctx: &str,
) -> Result<()> {
    if config.activations != super::ActivationMode::Static {
        return Ok(());
    }
    for t in tensors {
        if t.etype.scheme().is_none() {
            continue;
        }
        let Some(name) = super::act_scale_name(&t.name) else {
            continue;
        };
        let err = |m: String| {
            Err(Error::format(
                format!("{ctx}: tensor {}", t.name),
                format!("static activations: {m}"),
            ))
        };
        let Some(&i) = index.get(&name) else {
            return err(format!("no activation scale tensor {name}"));
        };
        let s = &tensors[i];
        if s.etype != ElementType::F32 || s.shape != [1] {
            return err(format!(
                "{name} is {} {:?}, expected f32 [1]",
                s.etype.name(),
                s.shape
            ));
        }
        let at = s.offset as usize;
        let v = f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if !(v.is_finite() && v > 0.0) {
            return err(format!("{name} = {v} is not finite and positive"));
        }
    }
    Ok(())
}

/// Sections and tensors must not share bytes.
fn check_overlaps(h: &Header, tensors: &[TensorInfo], ctx: &str) -> Result<()> {
    let mut ranges: Vec<(u64, u64, String)> = vec![
        (0, HEADER_LEN as u64, "header".into()),
        (
            h.config.start as u64,
            h.config.end as u64,
            "config section".into(),
        ),
        (
            h.vocab.start as u64,
            h.vocab.end as u64,
            "vocabulary section".into(),
        ),
        (h.dir.start as u64, h.dir.end as u64, "directory".into()),
        (h.mel.start as u64, h.mel.end as u64, "mel section".into()),
    ];
    ranges.extend(
        tensors
            .iter()
            .map(|t| (t.offset, t.offset + t.len, format!("tensor {}", t.name))),
    );
    ranges.retain(|r| r.1 > r.0);
    ranges.sort_by_key(|r| (r.0, r.1));
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(Error::format(
                ctx,
                format!(
                    "{} (bytes {}..{}) overlaps {} (bytes {}..{})",
                    w[1].2, w[1].0, w[1].1, w[0].2, w[0].0, w[0].1
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_file_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ModelFile>();
    }

    #[test]
    fn owned_storage_is_aligned() {
        let s = Storage::owned(&[1, 2, 3]);
        assert_eq!(s.bytes(), &[1, 2, 3]);
        assert_eq!(s.bytes().as_ptr() as usize % 256, 0);
    }
}
