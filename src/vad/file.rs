//! The `.svad` file: Silero VAD v6's weights as `sotto fetch silero-vad` writes them
//! (read out of the ONNX graph once, so nothing parses ONNX at run time).
//!
//! Little-endian throughout:
//! ```text
//! 0   8  magic "SOTTOVAD"
//! 8   4  u32 version = 1
//! 12  4  u32 number of tensors (= TENSORS.len())
//! 16  8  u64 file length
//! 24  8  u64 FNV-1a 64 of every byte from offset 32 to the end
//! 32     per tensor, in TENSORS order: u32 name length, name (UTF-8),
//!        u32 rank, u32 × rank dims, f32 × product(dims)
//! ```
//! The reader accepts exactly the names and shapes of [`TENSORS`], finite values, the
//! recorded length and checksum: anything else is an error naming the file.

use crate::format::fnv1a64;
use crate::{Error, Result};

pub(crate) const MAGIC: &[u8; 8] = b"SOTTOVAD";
pub(crate) const VERSION: u32 = 1;
const HEADER: usize = 32;

/// Every tensor of the network, in file order: name and shape. Convolution weights
/// are `[out, in, kernel]` (PyTorch's layout); the LSTM's input (`lstm.w`) and
/// recurrent (`lstm.r`) weights are `[4·128, 128]` in ONNX's gate order i, o, f, c,
/// `lstm.b` their two biases one after the other (ONNX's `B`).
pub const TENSORS: &[(&str, &[usize])] = &[
    ("stft.basis", &[258, 256]),
    ("conv0.weight", &[128, 129, 3]),
    ("conv0.bias", &[128]),
    ("conv1.weight", &[64, 128, 3]),
    ("conv1.bias", &[64]),
    ("conv2.weight", &[64, 64, 3]),
    ("conv2.bias", &[64]),
    ("conv3.weight", &[128, 64, 3]),
    ("conv3.bias", &[128]),
    ("lstm.w", &[512, 128]),
    ("lstm.r", &[512, 128]),
    ("lstm.b", &[1024]),
    ("out.weight", &[128]),
    ("out.bias", &[1]),
];

/// The bytes of a `.svad` file holding `tensors` (values in [`TENSORS`] order).
pub fn encode(tensors: &[Vec<f32>]) -> Result<Vec<u8>> {
    if tensors.len() != TENSORS.len() {
        return Err(Error::Invalid(format!(
            "a Silero VAD file holds {} tensors, not {}",
            TENSORS.len(),
            tensors.len()
        )));
    }
    let mut out = vec![0u8; HEADER];
    for ((name, shape), values) in TENSORS.iter().zip(tensors) {
        let n: usize = shape.iter().product();
        if values.len() != n {
            return Err(Error::Invalid(format!(
                "Silero VAD tensor {name}: {} values, shape {shape:?} needs {n}",
                values.len()
            )));
        }
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for &d in shape.iter() {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let len = out.len() as u64;
    let sum = fnv1a64(&out[HEADER..]);
    out[0..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(TENSORS.len() as u32).to_le_bytes());
    out[16..24].copy_from_slice(&len.to_le_bytes());
    out[24..32].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// The tensors of a `.svad` file's bytes, in [`TENSORS`] order; `context` names the
/// file in errors.
pub fn decode(bytes: &[u8], context: &str) -> Result<Vec<Vec<f32>>> {
    let err = |m: String| Error::format(context, m);
    if bytes.len() < HEADER {
        return Err(err(format!(
            "{} bytes: too short for a Silero VAD file",
            bytes.len()
        )));
    }
    if &bytes[0..8] != MAGIC {
        return Err(err("not a Silero VAD file (no SOTTOVAD magic)".into()));
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let version = u32_at(8);
    if version != VERSION {
        return Err(err(format!(
            "version {version}; this sotto reads version {VERSION}"
        )));
    }
    if u64_at(16) != bytes.len() as u64 {
        return Err(err(format!(
            "records {} bytes but has {} (truncated or extended)",
            u64_at(16),
            bytes.len()
        )));
    }
    if u32_at(12) as usize != TENSORS.len() {
        return Err(err(format!(
            "{} tensors; Silero VAD v6 has {}",
            u32_at(12),
            TENSORS.len()
        )));
    }
    if fnv1a64(&bytes[HEADER..]) != u64_at(24) {
        return Err(err("checksum mismatch (the file is corrupt)".into()));
    }
    let mut pos = HEADER;
    let mut take = |n: usize, what: &str| -> Result<&[u8]> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| err(format!("{what} runs past the end of the file")))?;
        let s = &bytes[pos..end];
        pos = end;
        Ok(s)
    };
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let mut tensors = Vec::with_capacity(TENSORS.len());
    for (want, shape) in TENSORS {
        let name_len = word(take(4, "a tensor name length")?);
        if name_len > 64 {
            return Err(err(format!("tensor name of {name_len} bytes")));
        }
        let name = take(name_len, "a tensor name")?;
        if name != want.as_bytes() {
            return Err(err(format!(
                "tensor '{}' where {want} belongs",
                String::from_utf8_lossy(name)
            )));
        }
        let rank = word(take(4, "a rank")?);
        if rank != shape.len() {
            return Err(err(format!(
                "{want}: rank {rank}, expected shape {shape:?}"
            )));
        }
        let dims: Vec<usize> = take(4 * rank, "dims")?.chunks_exact(4).map(word).collect();
        if dims != *shape {
            return Err(err(format!("{want}: shape {dims:?}, expected {shape:?}")));
        }
        let n: usize = shape.iter().product();
        let values: Vec<f32> = take(4 * n, want)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(err(format!("{want}[{i}] is not finite")));
        }
        tensors.push(values);
    }
    if pos != bytes.len() {
        return Err(err(format!(
            "{} bytes after the last tensor",
            bytes.len() - pos
        )));
    }
    Ok(tensors)
}
