//! Byte positions of the `.sotto` v1 header and the sizes the writer and the
//! loader agree on. docs/FORMAT.md is the prose version of this file.

/// First eight bytes of every `.sotto` file.
pub(crate) const MAGIC: [u8; 8] = *b"SOTTOMDL";
/// The one version this build reads and writes.
pub(crate) const VERSION: u32 = 1;
/// Size of the fixed header at offset 0.
pub(crate) const HEADER_LEN: usize = 128;

// Field offsets inside the header (all little-endian).
pub(crate) const H_VERSION: usize = 8; // u32
pub(crate) const H_HEADER_LEN: usize = 12; // u32
pub(crate) const H_FILE_LEN: usize = 16; // u64
pub(crate) const H_CONFIG: usize = 24; // u64 offset, u64 length
pub(crate) const H_VOCAB: usize = 40; // u64 offset, u64 length
pub(crate) const H_DIR: usize = 56; // u64 offset, u64 length
pub(crate) const H_MEL: usize = 72; // u64 offset, u64 length
pub(crate) const H_N_TENSORS: usize = 88; // u32
pub(crate) const H_FLAGS: usize = 92; // u32, must be 0 in v1
pub(crate) const H_CHECKSUM: usize = 96; // u64

/// Mel filter bank row length: n_fft / 2 + 1 for n_fft = 400.
pub(crate) const MEL_BINS: usize = 201;
/// Highest tensor rank the format allows.
pub(crate) const MAX_RANK: usize = 4;
/// Smallest possible directory entry: name length (2), a 1-byte name, element
/// type (4), rank (4), one dimension (8), group (4), offset, length, checksum (24).
pub(crate) const MIN_DIR_ENTRY: usize = 2 + 1 + 4 + 4 + 8 + 4 + 24;
/// Config flag bit: the model is multilingual.
pub(crate) const CONFIG_FLAG_MULTILINGUAL: u32 = 1;
/// Config flag bits 1–2: activation mode (0 none, 1 dynamic, 2 static; 3 invalid).
pub(crate) const CONFIG_ACT_SHIFT: u32 = 1;
pub(crate) const CONFIG_ACT_MASK: u32 = 0b11 << CONFIG_ACT_SHIFT;
/// Bytes of the fixed part of the config section (10 dims, flags, 9 special ids).
pub(crate) const CONFIG_FIXED_LEN: usize = 20 * 4;

/// Incremental FNV-1a 64; `Fnv::new().update(b).finish() == fnv1a64(b)`.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// The bytes that the header checksum covers, in order: the header with its
/// checksum field zeroed, then the config, vocabulary, directory and mel sections.
pub(crate) fn header_checksum(header: &[u8], sections: [&[u8]; 4]) -> u64 {
    let mut h = Fnv::new();
    h.update(&header[..H_CHECKSUM]);
    h.update(&[0u8; 8]);
    h.update(&header[H_CHECKSUM + 8..HEADER_LEN]);
    for s in sections {
        h.update(s);
    }
    h.finish()
}

/// Rounds `x` up to a multiple of [`super::ALIGN`].
pub(crate) fn align_up(x: u64) -> Option<u64> {
    let a = super::ALIGN;
    x.checked_add(a - 1).map(|v| v / a * a)
}
