//! The `.sotto` v1 writer and loader: round trips, every rejection the loader
//! promises (checked against the byte layout in docs/FORMAT.md, which these
//! tests re-implement independently), a fuzz loop, and the real tiny.en model.
#[cfg(feature = "convert")]
mod common;

use sotto::format::{
    act_scale_name, fnv1a64, ActivationMode, ElementType, FileWriter, ModelConfig, ModelFile,
    SpecialTokens,
};
use sotto_kernels::schemes::{self, ActQuant, Quantized, Scheme};

// ---- docs/FORMAT.md, re-implemented for crafting files ----------------------

const HEADER_LEN: usize = 128;
const H_VERSION: usize = 8;
const H_CONFIG: usize = 24;
const H_VOCAB: usize = 40;
const H_DIR: usize = 56;
const H_MEL: usize = 72;
const H_N_TENSORS: usize = 88;
const H_CHECKSUM: usize = 96;

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn section(b: &[u8], at: usize) -> std::ops::Range<usize> {
    let off = get_u64(b, at) as usize;
    off..off + get_u64(b, at + 8) as usize
}

/// Recomputes the header checksum the way FORMAT.md describes it.
fn reseal(b: &mut [u8]) {
    let mut covered = b[..HEADER_LEN].to_vec();
    covered[H_CHECKSUM..H_CHECKSUM + 8].fill(0);
    for at in [H_CONFIG, H_VOCAB, H_DIR, H_MEL] {
        covered.extend_from_slice(&b[section(b, at)]);
    }
    let sum = fnv1a64(&covered);
    set_u64(b, H_CHECKSUM, sum);
}

/// Byte positions of one directory entry's fields.
#[derive(Debug)]
struct Entry {
    name: usize,
    name_len: usize,
    etype: usize,
    rank: usize,
    dims: usize,
    group: usize,
    offset: usize,
    len: usize,
    checksum: usize,
}

fn entries(b: &[u8]) -> Vec<Entry> {
    let mut p = section(b, H_DIR).start;
    let n = get_u32(b, H_N_TENSORS);
    (0..n)
        .map(|_| {
            let name_len = u16::from_le_bytes([b[p], b[p + 1]]) as usize;
            let name = p + 2;
            let etype = name + name_len;
            let rank = etype + 4;
            let dims = rank + 4;
            let group = dims + 8 * get_u32(b, rank) as usize;
            let e = Entry {
                name,
                name_len,
                etype,
                rank,
                dims,
                group,
                offset: group + 4,
                len: group + 12,
                checksum: group + 20,
            };
            p = group + 28;
            e
        })
        .collect()
}

// ---- a small valid file ------------------------------------------------------

fn small_config() -> ModelConfig {
    ModelConfig {
        n_mels: 2,
        n_audio_ctx: 4,
        n_audio_state: 8,
        n_audio_head: 2,
        n_audio_layer: 1,
        n_text_ctx: 4,
        n_text_state: 8,
        n_text_head: 2,
        n_text_layer: 1,
        n_vocab: 7,
        multilingual: true,
        tokens: SpecialTokens {
            eot: 0,
            sot: 1,
            sot_prev: 2,
            sot_lm: 3,
            no_speech: 4,
            no_timestamps: 5,
            timestamp_begin: 6,
            transcribe: 3,
            translate: 2,
        },
        suppress_ids: vec![1, 2, 6],
        suppress_ids_begin: vec![0],
        alignment_heads: vec![(0, 1), (0, 0)],
        languages: vec![("en".into(), 4), ("haw".into(), 5)],
        activations: ActivationMode::None,
    }
}

fn small_vocab() -> Vec<Vec<u8>> {
    vec![
        b"<|endoftext|>".to_vec(),
        b" hello".to_vec(),
        vec![],
        vec![0xff, 0x00, 0xc3],
        b"<|en|>".to_vec(),
        b"x".to_vec(),
        b"<|0.00|>".to_vec(),
    ]
}

fn small_mel() -> Vec<f32> {
    (0..2 * 201).map(|i| i as f32 * 0.25 - 3.0).collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn small_writer() -> FileWriter {
    let mut w = FileWriter::new(small_config(), small_vocab(), small_mel());
    let f16: Vec<u8> = (0..6u16).flat_map(|i| (0x3c00 + i).to_le_bytes()).collect();
    w.add_tensor("enc.w", ElementType::F16, &[3, 2], 0, f16)
        .unwrap();
    w.add_tensor(
        "enc.b",
        ElementType::F32,
        &[3],
        0,
        f32_bytes(&[1.0, -2.0, 3.5]),
    )
    .unwrap();
    let big: Vec<f32> = (0..16).map(|i| i as f32).collect();
    w.add_tensor("dec.x", ElementType::F32, &[2, 2, 2, 2], 0, f32_bytes(&big))
        .unwrap();
    w
}

fn small_file() -> Vec<u8> {
    small_writer().to_bytes().unwrap()
}

/// Opens `b` expecting a format error whose text contains every word in `want`.
fn rejects(b: Vec<u8>, want: &[&str]) {
    match ModelFile::from_bytes(b) {
        Ok(_) => panic!("accepted a file that should fail with {want:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                matches!(e, sotto::Error::Format { .. }),
                "not a format error: {msg}"
            );
            for w in want {
                assert!(msg.contains(w), "error {msg:?} lacks {w:?}");
            }
        }
    }
}

// ---- round trips ---------------------------------------------------------------

#[test]
fn round_trip_in_memory() {
    let f = ModelFile::from_bytes(small_file()).unwrap();
    assert_eq!(f.config(), &small_config());
    for (id, t) in small_vocab().iter().enumerate() {
        assert_eq!(f.token_bytes(id as u32), &t[..]);
    }
    assert_eq!(f.token_bytes(7), b"");
    assert_eq!(f.token_bytes(u32::MAX), b"");
    assert_eq!(f.mel_filters(), &small_mel()[..]);
    assert_eq!(f.mel_filters().as_ptr() as usize % 256, 0);
    assert!(f.path().is_none());

    let names: Vec<&str> = f.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["enc.w", "enc.b", "dec.x"]);
    let w = f.tensor("enc.w").unwrap();
    assert_eq!(
        (w.etype, w.shape.clone(), w.group),
        (ElementType::F16, vec![3, 2], 0)
    );
    assert_eq!(
        f.f16s(w).unwrap(),
        &[0x3c00, 0x3c01, 0x3c02, 0x3c03, 0x3c04, 0x3c05]
    );
    let b = f.tensor("enc.b").unwrap();
    assert_eq!(f.f32s(b).unwrap(), &[1.0, -2.0, 3.5]);
    let x = f.tensor("dec.x").unwrap();
    assert_eq!(x.shape, vec![2, 2, 2, 2]);
    assert_eq!(f.f32s(x).unwrap()[15], 15.0);
    for t in f.tensors() {
        assert_eq!(t.offset % 256, 0);
        assert_eq!(f.bytes(t).as_ptr() as usize % 256, 0);
        assert_eq!(fnv1a64(f.bytes(t)), t.checksum);
    }
    assert!(f.f32s(w).unwrap_err().to_string().contains("enc.w"));
    assert!(f.f16s(b).is_err());
    let missing = f.tensor("no/such/tensor").unwrap_err().to_string();
    assert!(
        missing.contains("missing tensor no/such/tensor"),
        "{missing}"
    );
    f.verify_checksums().unwrap();
    assert_eq!(f.file_len(), small_file().len() as u64);
}

#[test]
fn round_trip_through_a_mapped_file_and_atomic_replace() {
    let dir = std::env::temp_dir().join(format!("sotto-format-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.sotto");
    std::fs::write(&path, b"old broken contents").unwrap();
    small_writer().write(&path).unwrap();
    let f = ModelFile::open(&path).unwrap();
    assert_eq!(f.path(), Some(path.as_path()));
    assert_eq!(f.config(), &small_config());
    assert_eq!(
        f.f32s(f.tensor("enc.b").unwrap()).unwrap(),
        &[1.0, -2.0, 3.5]
    );
    f.verify_checksums().unwrap();
    // Only the final file is left behind: no temporary files.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 1);
    // A writer that fails validation leaves the existing file untouched.
    let mut bad = small_config();
    bad.n_vocab = 99;
    assert!(FileWriter::new(bad, small_vocab(), small_mel())
        .write(&path)
        .is_err());
    assert!(ModelFile::open(&path).is_ok());
    // Writing into a missing directory fails cleanly.
    assert!(small_writer().write(&dir.join("nope/m.sotto")).is_err());
    std::fs::write(dir.join("empty.sotto"), b"").unwrap();
    let e = ModelFile::open(&dir.join("empty.sotto"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty file") && e.contains("empty.sotto"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_file_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ModelFile>();
}

// ---- rejections ----------------------------------------------------------------

#[test]
fn rejects_empty_wrong_magic_and_version() {
    rejects(vec![], &["empty file"]);
    let mut b = small_file();
    b[0] = b'X';
    rejects(b, &["wrong magic"]);
    rejects(b"RIFF....WAVEfmt ".to_vec(), &["wrong magic"]);
    let mut b = small_file();
    set_u32(&mut b, H_VERSION, 2);
    rejects(b, &["unsupported format version 2"]);
}

#[test]
fn rejects_truncated_files() {
    let b = small_file();
    for cut in [
        1,
        5,
        8,
        64,
        127,
        128,
        200,
        1000,
        b.len() / 2,
        b.len() - 257,
        b.len() - 1,
    ] {
        rejects(b[..cut].to_vec(), &["truncated"]);
    }
    let mut longer = b.clone();
    longer.push(0);
    rejects(longer, &["unexpected bytes"]);
}

#[test]
fn rejects_any_flipped_metadata_bit() {
    let b = small_file();
    let dir = section(&b, H_DIR);
    let mel = section(&b, H_MEL);
    let cfg = section(&b, H_CONFIG);
    let vocab = section(&b, H_VOCAB);
    for at in [
        H_N_TENSORS,
        H_CHECKSUM + 3,
        110,
        cfg.start + 5,
        cfg.end - 1,
        vocab.start + 9,
        vocab.end - 1,
        dir.start + 3,
        dir.end - 2,
        mel.start + 100,
    ] {
        for bit in [0, 7] {
            let mut c = b.clone();
            c[at] ^= 1 << bit;
            rejects(c, &["header checksum mismatch"]);
        }
    }
}

#[test]
fn rejects_tensor_outside_the_file() {
    let mut b = small_file();
    let e = &entries(&b)[1];
    let len = b.len() as u64;
    set_u64(&mut b, e.offset, len);
    reseal(&mut b);
    rejects(b.clone(), &["tensor enc.b", "outside"]);
    // Offsets and lengths that overflow u64 are errors, not panics.
    set_u64(&mut b, e.offset, u64::MAX - 255);
    set_u64(&mut b, e.len, 512);
    reseal(&mut b);
    rejects(b.clone(), &["tensor enc.b"]);
    // Section bounds are checked before the checksum.
    let mut b = small_file();
    set_u64(&mut b, H_VOCAB, u64::MAX);
    rejects(b, &["vocabulary section", "outside"]);
    let mut b = small_file();
    let len = b.len() as u64;
    set_u64(&mut b, H_DIR + 8, len);
    rejects(b, &["directory section", "outside"]);
}

#[test]
fn rejects_overlapping_and_misaligned_tensors() {
    let b0 = small_file();
    let es = entries(&b0);
    let mut b = b0.clone();
    let first = get_u64(&b, es[0].offset);
    set_u64(&mut b, es[1].offset, first);
    reseal(&mut b);
    rejects(b, &["overlaps", "enc.w", "enc.b"]);

    let mut b = b0.clone();
    let mel = section(&b, H_MEL).start as u64;
    set_u64(&mut b, es[1].offset, mel);
    reseal(&mut b);
    rejects(b, &["overlaps", "mel section"]);

    let mut b = b0.clone();
    let off = get_u64(&b, es[1].offset);
    set_u64(&mut b, es[1].offset, off + 4);
    reseal(&mut b);
    rejects(b, &["tensor enc.b", "not a multiple of 256"]);
}

#[test]
fn rejects_shape_and_length_mismatch() {
    let b0 = small_file();
    let es = entries(&b0);
    let mut b = b0.clone();
    set_u64(&mut b, es[0].dims, 4); // [4, 2] f16 needs 16 bytes, has 12
    reseal(&mut b);
    rejects(b, &["tensor enc.w", "needs 16"]);

    let mut b = b0.clone();
    set_u64(&mut b, es[0].len, 14);
    reseal(&mut b);
    rejects(b, &["tensor enc.w", "14 bytes"]);

    let mut b = b0.clone();
    set_u64(&mut b, es[0].dims, 0);
    reseal(&mut b);
    rejects(b, &["tensor enc.w", "zero dimension"]);

    let mut b = b0.clone();
    set_u64(&mut b, es[2].dims, u64::MAX);
    reseal(&mut b);
    rejects(b, &["tensor dec.x", "larger than the file"]);

    let mut b = b0.clone();
    set_u32(&mut b, es[1].rank, 0);
    reseal(&mut b);
    rejects(b, &["tensor enc.b", "rank 0"]);

    let mut b = b0.clone();
    set_u32(&mut b, es[1].group, 64);
    reseal(&mut b);
    rejects(b, &["tensor enc.b", "group 64"]);
}

#[test]
fn rejects_unknown_and_packed_element_types() {
    let b0 = small_file();
    let es = entries(&b0);
    let mut b = b0.clone();
    set_u32(&mut b, es[0].etype, 99);
    reseal(&mut b);
    rejects(b, &["tensor enc.w", "unknown element type code 99"]);
    // f16 bytes relabelled as a packed scheme: the group (0) or the length is wrong.
    for code in 2..=8u32 {
        let mut b = b0.clone();
        set_u32(&mut b, es[0].etype, code);
        reseal(&mut b);
        let want = if code <= 3 {
            "takes exactly"
        } else {
            "multiple of 32"
        };
        rejects(b, &["tensor enc.w", want]);
    }
    // F32 data declared as F16: length no longer matches.
    let mut b = b0.clone();
    set_u32(&mut b, es[1].etype, 1);
    reseal(&mut b);
    rejects(b, &["tensor enc.b", "needs 6"]);
}

#[test]
fn rejects_duplicate_names() {
    let mut b = small_file();
    let es = entries(&b);
    assert_eq!(es[0].name_len, es[1].name_len);
    let name0 = b[es[0].name..es[0].name + es[0].name_len].to_vec();
    b[es[1].name..es[1].name + es[1].name_len].copy_from_slice(&name0);
    reseal(&mut b);
    rejects(b, &["tensor enc.w", "duplicate tensor name"]);
}

#[test]
fn rejects_huge_counts_without_allocating() {
    let mut b = small_file();
    set_u32(&mut b, H_N_TENSORS, u32::MAX);
    reseal(&mut b);
    rejects(b, &["4294967295 tensors cannot fit"]);

    let cfg = section(&small_file(), H_CONFIG).start;
    let mut b = small_file();
    set_u32(&mut b, cfg + 80, u32::MAX); // suppress_ids count
    reseal(&mut b);
    rejects(b, &["config", "suppress_ids"]);

    let vocab = section(&small_file(), H_VOCAB).start;
    let mut b = small_file();
    set_u32(&mut b, vocab, u32::MAX);
    reseal(&mut b);
    rejects(b, &["vocabulary", "n_vocab is 7"]);
}

#[test]
fn rejects_insane_config_and_vocabulary() {
    let cfg = section(&small_file(), H_CONFIG).start;
    let mut b = small_file();
    set_u32(&mut b, cfg + 12, 3); // n_audio_head 3 does not divide 8
    reseal(&mut b);
    rejects(b, &["n_audio_head 3 does not divide n_audio_state 8"]);

    let mut b = small_file();
    set_u32(&mut b, cfg, 0);
    reseal(&mut b);
    rejects(b, &["n_mels is 0"]);

    let mut b = small_file();
    set_u32(&mut b, cfg + 44, 7); // eot = n_vocab
    reseal(&mut b);
    rejects(b, &["eot id 7 >= n_vocab 7"]);

    let mut b = small_file();
    set_u32(&mut b, cfg, 3); // n_mels 3, but 2 × 201 filters stored
    reseal(&mut b);
    rejects(b, &["mel section", "n_mels 3"]);

    // A token offset beyond the blob.
    let vocab = section(&small_file(), H_VOCAB).start;
    let mut b = small_file();
    set_u32(&mut b, vocab + 4 + 4 * 3, 1000);
    reseal(&mut b);
    rejects(b, &["vocabulary section", "out of order"]);
}

#[test]
fn writer_rejects_bad_input() {
    let mut w = small_writer();
    let e = w
        .add_tensor("enc.b", ElementType::F32, &[1], 0, vec![0; 4])
        .unwrap_err();
    assert!(e.to_string().contains("duplicate"), "{e}");
    assert!(w
        .add_tensor("y", ElementType::F32, &[2], 0, vec![0; 4])
        .is_err());
    assert!(w
        .add_tensor("y", ElementType::F16, &[2, 0], 0, vec![])
        .is_err());
    assert!(w
        .add_tensor("y", ElementType::F16, &[1, 1, 1, 1, 1], 0, vec![0; 2])
        .is_err());
    assert!(w
        .add_tensor("", ElementType::F16, &[1], 0, vec![0; 2])
        .is_err());
    assert!(w
        .add_tensor("y", ElementType::F16, &[1], 32, vec![0; 2])
        .is_err());
    assert!(w
        .add_tensor("y", ElementType::F16, &[1], 0, vec![0; 2])
        .is_ok());

    let short_vocab = FileWriter::new(small_config(), vec![vec![]; 3], small_mel());
    assert!(short_vocab
        .to_bytes()
        .unwrap_err()
        .to_string()
        .contains("n_vocab"));
    let short_mel = FileWriter::new(small_config(), small_vocab(), vec![0.0; 10]);
    assert!(short_mel
        .to_bytes()
        .unwrap_err()
        .to_string()
        .contains("mel"));
    let mut c = small_config();
    c.alignment_heads.push((1, 0));
    let bad_heads = FileWriter::new(c, small_vocab(), small_mel());
    assert!(bad_heads
        .to_bytes()
        .unwrap_err()
        .to_string()
        .contains("alignment head"));
}

#[test]
fn verify_checksums_names_the_corrupt_tensor() {
    let mut b = small_file();
    let es = entries(&b);
    let off = get_u64(&b, es[2].offset) as usize;
    b[off + 17] ^= 0x10;
    let f = ModelFile::from_bytes(b).expect("tensor data is not covered by the header checksum");
    let e = f.verify_checksums().unwrap_err().to_string();
    assert!(
        e.contains("tensor dec.x") && e.contains("checksum mismatch"),
        "{e}"
    );
    let _ = es[2].checksum;
}

/// Random bit flips, byte overwrites and truncations, with and without a fixed-up
/// header checksum (so the deeper checks run too): open must never panic, and a
/// file that opens must be safe to read in full.
#[test]
fn fuzz_corrupted_files_never_panic() {
    let base = small_file();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut opened = 0;
    let mut kinds = std::collections::BTreeMap::new();
    for i in 0..2000 {
        let mut b = base.clone();
        let meta_end = section(&b, H_DIR).end;
        match i % 4 {
            0 => {
                let cut = (next() as usize) % b.len();
                b.truncate(cut);
            }
            _ => {
                for _ in 0..1 + next() % 4 {
                    // Mostly aim at the metadata, where the structure is.
                    let at = if next() % 4 == 0 {
                        (next() as usize) % b.len()
                    } else {
                        (next() as usize) % meta_end
                    };
                    if next() % 2 == 0 {
                        b[at] ^= 1 << (next() % 8);
                    } else {
                        b[at] = next() as u8;
                    }
                }
            }
        }
        if i % 2 == 1 && b.len() >= HEADER_LEN {
            // reseal needs in-range sections; skip the fix-up when they are not.
            let ok = [H_CONFIG, H_VOCAB, H_DIR, H_MEL].iter().all(|&at| {
                let off = get_u64(&b, at);
                let len = get_u64(&b, at + 8);
                off.checked_add(len).is_some_and(|e| e <= b.len() as u64)
            });
            if ok {
                reseal(&mut b);
            }
        }
        let opened_file = ModelFile::from_bytes(b);
        if let Err(e) = &opened_file {
            // Group messages by their wording (numbers and names removed).
            let msg = e.to_string();
            let kind: String = msg
                .split(": ")
                .last()
                .unwrap_or("")
                .chars()
                .filter(|c| c.is_alphabetic() || *c == ' ')
                .take(30)
                .collect();
            *kinds.entry(kind).or_insert(0) += 1;
        }
        if let Ok(f) = opened_file {
            opened += 1;
            let c = f.config();
            for id in 0..c.n_vocab + 2 {
                let _ = f.token_bytes(id);
            }
            assert_eq!(f.mel_filters().len(), c.n_mels as usize * 201);
            for t in f.tensors() {
                assert_eq!(f.bytes(t).len() as u64, t.len);
                let _ = f.f32s(t);
                let _ = f.f16s(t);
            }
            let _ = f.verify_checksums();
        }
    }
    eprintln!("{opened} opened; rejections: {kinds:#?}");
    // Flips in tensor data and padding leave the file openable.
    assert!(opened > 0);
    // The resealed mutations get past the checksum into the structural checks.
    assert!(kinds.len() >= 8, "only {} kinds of rejection", kinds.len());
}

// ---- the real tiny.en model ------------------------------------------------------

/// Fetches (or reuses) `$SOTTO_HOME/tiny.en.sotto` and checks it against facts
/// verified with the Python `tokenizers` package and the CTranslate2 model.bin.
#[cfg(feature = "convert")]
#[test]
fn real_tiny_en_conversion() {
    let path = sotto::convert::fetch(&common::home(), "tiny.en", &|m| eprintln!("{m}")).unwrap();
    let f = ModelFile::open(&path).unwrap();
    let c = f.config();
    assert_eq!(
        (
            c.n_mels,
            c.n_audio_ctx,
            c.n_audio_state,
            c.n_audio_head,
            c.n_audio_layer
        ),
        (80, 1500, 384, 6, 4)
    );
    assert_eq!(
        (c.n_text_ctx, c.n_text_state, c.n_text_head, c.n_text_layer),
        (448, 384, 6, 4)
    );
    assert_eq!(c.n_vocab, 51864);
    assert!(!c.multilingual);
    assert!(c.languages.is_empty());
    let t = &c.tokens;
    assert_eq!(
        (t.eot, t.sot, t.no_timestamps, t.timestamp_begin),
        (50256, 50257, 50362, 50363)
    );
    assert_eq!(
        (t.translate, t.transcribe, t.sot_lm, t.sot_prev, t.no_speech),
        (50357, 50358, 50359, 50360, 50361)
    );
    assert_eq!(c.suppress_ids.len(), 90);
    assert_eq!(c.suppress_ids_begin, vec![220, 50256]);
    assert_eq!(c.alignment_heads.len(), 8);
    assert_eq!(c.alignment_heads[0], (1, 0));

    assert_eq!(f.token_bytes(50363), b"<|0.00|>");
    assert_eq!(f.token_bytes(51863), b"<|30.00|>");
    assert_eq!(f.token_bytes(50256), b"<|endoftext|>");
    assert_eq!(f.token_bytes(50362), b"<|notimestamps|>");
    assert_eq!(f.token_bytes(764), b" .");
    assert_eq!(f.token_bytes(11), b",");
    assert_eq!(f.token_bytes(3399), b" Americans");
    assert_eq!(f.token_bytes(40304), " café".as_bytes());
    // " ü" is split inside its UTF-8 sequence: raw bytes, not text.
    assert_eq!(f.token_bytes(6184), b" \xc3");
    assert_eq!(f.token_bytes(120), b"\xbc");

    // 148 variables: 9 scalars go into the config, 139 float tensors are stored;
    // the aliased decoder/projection/weight is not.
    assert_eq!(f.tensors().len(), 139);
    assert!(f.tensor("decoder/projection/weight").is_err());
    let emb = f.tensor("decoder/embeddings/weight").unwrap();
    assert_eq!(
        (emb.etype, emb.shape.clone()),
        (ElementType::F16, vec![51864, 384])
    );
    let conv = f.tensor("encoder/conv1/weight").unwrap();
    assert_eq!(conv.shape, vec![384, 80, 3]);
    let qkv = f
        .tensor("encoder/layer_0/self_attention/linear_0/weight")
        .unwrap();
    assert_eq!(
        (qkv.etype, qkv.shape.clone()),
        (ElementType::F16, vec![1152, 384])
    );
    let bias = f
        .tensor("encoder/layer_0/self_attention/linear_0/bias")
        .unwrap();
    assert_eq!(bias.etype, ElementType::F32);
    // Whisper's key projection has no bias: the k third of the fused bias is zero.
    let b = f.f32s(bias).unwrap();
    assert!(b[384..768].iter().all(|&x| x == 0.0));
    assert!(b[..384].iter().any(|&x| x != 0.0));
    let gamma = f
        .f32s(f.tensor("decoder/layer_norm/gamma").unwrap())
        .unwrap();
    assert!(gamma.iter().all(|x| x.is_finite()) && gamma.iter().any(|&x| x != 0.0));
    assert_eq!(f.mel_filters().len(), 80 * 201);
    assert!(f.mel_filters().iter().any(|&x| x > 0.0));
    f.verify_checksums().unwrap();
}

/// Checks a converted base model when one is already in the cache (it is not
/// fetched here: 145 MB; `.ci/run` fetches it, so under CI a missing one fails).
#[cfg(feature = "convert")]
#[test]
fn real_base_if_cached() {
    let path = sotto::convert::cached_path(&common::home(), "base").expect("base is a known model");
    if !path.is_file() {
        common::skip_or_fail(&format!(
            "{} not present (sotto fetch base)",
            path.display()
        ));
        return;
    }
    let f = ModelFile::open(&path).unwrap();
    let c = f.config();
    assert_eq!(
        (c.n_audio_state, c.n_audio_layer, c.n_audio_head),
        (512, 6, 8)
    );
    assert_eq!((c.n_text_state, c.n_text_layer, c.n_text_head), (512, 6, 8));
    assert_eq!(c.n_vocab, 51865);
    assert!(c.multilingual);
    let t = &c.tokens;
    assert_eq!(
        (
            t.eot,
            t.sot,
            t.no_speech,
            t.no_timestamps,
            t.timestamp_begin
        ),
        (50257, 50258, 50362, 50363, 50364)
    );
    assert_eq!(c.languages.len(), 99);
    assert_eq!(c.languages[0], ("en".to_string(), 50259));
    assert_eq!(c.languages.last().unwrap(), &("su".to_string(), 50357));
    assert_eq!(f.token_bytes(764), b" use");
    assert_eq!(f.token_bytes(2425), b" Hello");
    assert_eq!(f.token_bytes(50364), b"<|0.00|>");
    assert_eq!(f.tensors().len(), 203);
}

// ---- packed tensors ------------------------------------------------------------

/// A deterministic quantized `n × k` matrix (codes and scales from a counter).
fn quantized(scheme: Scheme, n: usize, k: usize, group: usize) -> Quantized {
    let ns = scheme.n_scales(n, k, group).unwrap();
    let codes = (0..n * k)
        .map(|i| {
            if scheme.is_int8() {
                (i * 37 % 255) as i32 - 127 // −127..=127
            } else {
                (i * 7 % (scheme.max_code() as usize + 1)) as i32
            }
        })
        .map(|c| c as i8 as u8)
        .collect();
    Quantized {
        scheme,
        n,
        k,
        group,
        codes,
        scales: (0..ns).map(|i| 0.01 + i as f32 * 0.001).collect(),
        zeros: if scheme.has_zeros() {
            (0..ns).map(|i| (i % 8) as f32 + 0.5).collect()
        } else {
            vec![]
        },
    }
}

/// The small file plus one packed `3 × 70` tensor `dec.q/weight` in `scheme`.
fn packed_writer(scheme: Scheme, mode: ActivationMode) -> (FileWriter, Vec<u8>) {
    let g = schemes::default_group(scheme);
    let data = schemes::pack(&quantized(scheme, 3, 70, g)).unwrap();
    let mut w = small_writer();
    w.set_activations(mode);
    w.add_tensor(
        "dec.q/weight",
        ElementType::from_scheme(scheme),
        &[3, 70],
        g as u32,
        data.clone(),
    )
    .unwrap();
    if mode == ActivationMode::Static {
        w.add_tensor(
            "dec.q/act_scale",
            ElementType::F32,
            &[1],
            0,
            f32_bytes(&[0.02]),
        )
        .unwrap();
    }
    (w, data)
}

#[test]
fn element_types_map_to_schemes() {
    for s in Scheme::ALL {
        let e = ElementType::from_scheme(s);
        assert_eq!(e.scheme(), Some(s));
        assert_eq!(ElementType::from_code(e as u32), Some(e));
    }
    assert_eq!(ElementType::F32.scheme(), None);
    assert_eq!(ElementType::F16.scheme(), None);
    assert_eq!(
        act_scale_name("encoder/layer_0/ffn/linear_1/weight").as_deref(),
        Some("encoder/layer_0/ffn/linear_1/act_scale")
    );
}

#[test]
fn packed_tensors_round_trip() {
    for s in Scheme::ALL {
        for mode in [
            ActivationMode::None,
            ActivationMode::Dynamic,
            ActivationMode::Static,
        ] {
            let (w, data) = packed_writer(s, mode);
            let f = ModelFile::from_bytes(w.to_bytes().unwrap()).unwrap();
            assert_eq!(f.config().activations, mode);
            let t = f.tensor("dec.q/weight").unwrap();
            assert_eq!(t.etype.scheme(), Some(s));
            assert_eq!(f.bytes(t), &data[..]);
            assert_eq!(f.bytes(t).as_ptr() as usize % 256, 0);
            f.verify_checksums().unwrap();
            let g = t.group as usize;
            let v = schemes::view(s, 3, 70, g, f.bytes(t), ActQuant::Float).unwrap();
            let back = schemes::unpack(s, 3, 70, g, f.bytes(t)).unwrap();
            assert_eq!(back.codes, quantized(s, 3, 70, g).codes);
            assert_eq!(v.n * v.k, 210);
            // f32 / f16 accessors refuse packed data.
            assert!(f.f32s(t).is_err() && f.f16s(t).is_err());
        }
    }
    // Leading dimensions flatten: a [2, 3, 64] int4 tensor is a 6 × 64 matrix.
    let mut w = small_writer();
    let data = schemes::pack(&quantized(Scheme::Int4Asym, 6, 64, 32)).unwrap();
    w.add_tensor("conv", ElementType::Int4Asym, &[2, 3, 64], 32, data.clone())
        .unwrap();
    let f = ModelFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.bytes(f.tensor("conv").unwrap()), &data[..]);
}

/// Index of `dec.q/weight` in the directory of a `packed_writer` file.
const Q: usize = 3;

#[test]
fn rejects_inconsistent_packed_tensors() {
    for s in Scheme::ALL {
        let b0 = packed_writer(s, ActivationMode::None).0.to_bytes().unwrap();
        let es = entries(&b0);
        let len = get_u64(&b0, es[Q].len);

        // One byte short (the data still lies inside the file).
        let mut b = b0.clone();
        set_u64(&mut b, es[Q].len, len - 1);
        reseal(&mut b);
        rejects(b, &["tensor dec.q/weight", "takes exactly"]);

        // A different k: same bytes, wrong layout.
        let mut b = b0.clone();
        set_u64(&mut b, es[Q].dims + 8, 200);
        reseal(&mut b);
        rejects(b, &["tensor dec.q/weight", "takes exactly"]);

        // Groups: int8 takes 0; the others a positive multiple of 32.
        let bad_groups: &[u32] = if s.is_int8() { &[32] } else { &[0, 16, 48] };
        for &g in bad_groups {
            let mut b = b0.clone();
            set_u32(&mut b, es[Q].group, g);
            reseal(&mut b);
            rejects(b, &["tensor dec.q/weight", &format!("{g}")]);
        }
        // Another valid group changes the scale planes: the length no longer fits
        // (nf4-dq's u8 plane 1 grows inside its 256-byte padding: not detectable).
        if !s.is_int8() && s != Scheme::Nf4Dq {
            let mut b = b0.clone();
            set_u32(&mut b, es[Q].group, 32);
            reseal(&mut b);
            rejects(b, &["tensor dec.q/weight", "takes exactly"]);
        }
    }
    // Same codes, different scale planes: relabelling one 4-bit scheme as another.
    let pairs = [
        (Scheme::Int4Sym, ElementType::Int4Asym), // missing zero-point plane
        (Scheme::Int4Asym, ElementType::Int4Sym), // extra plane
        (Scheme::Int4Sym, ElementType::Nf4),      // f16 vs f32 scales
        (Scheme::Nf4, ElementType::Nf4Dq),        // f32 absmax vs u8 codes + constants
        (Scheme::Int8Row, ElementType::Int8Tensor),
    ];
    for (s, other) in pairs {
        let b0 = packed_writer(s, ActivationMode::None).0.to_bytes().unwrap();
        let es = entries(&b0);
        let mut b = b0.clone();
        set_u32(&mut b, es[Q].etype, other as u32);
        reseal(&mut b);
        rejects(b, &["tensor dec.q/weight", "takes exactly"]);
    }
}

#[test]
fn writer_rejects_inconsistent_packed_data() {
    let data = schemes::pack(&quantized(Scheme::Int4Asym, 3, 70, 64)).unwrap();
    let mut w = small_writer();
    let add = |w: &mut FileWriter, e, shape: &[usize], g, d: Vec<u8>| {
        w.add_tensor("p", e, shape, g, d)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let mut short = data.clone();
    short.pop();
    assert!(add(&mut w, ElementType::Int4Asym, &[3, 70], 64, short)
        .unwrap_err()
        .contains("takes exactly"));
    assert!(
        add(&mut w, ElementType::Int4Asym, &[3, 70], 48, data.clone())
            .unwrap_err()
            .contains("multiple of 32")
    );
    assert!(add(&mut w, ElementType::Int4Sym, &[3, 70], 64, data.clone()).is_err());
    assert!(add(&mut w, ElementType::Int4Asym, &[3, 300], 64, data.clone()).is_err());
    add(&mut w, ElementType::Int4Asym, &[3, 70], 64, data).unwrap();
}

#[test]
fn static_activations_need_a_scale_per_packed_layer() {
    // Writer: Static without the scale tensor is refused.
    let (mut w, _) = packed_writer(Scheme::Int8Row, ActivationMode::Dynamic);
    w.set_activations(ActivationMode::Static);
    let e = w.to_bytes().unwrap_err().to_string();
    assert!(e.contains("dec.q/act_scale"), "{e}");

    // Loader: a Dynamic file relabelled Static (config flags bits 1–2 = 2).
    let b0 = packed_writer(Scheme::Int8Row, ActivationMode::Dynamic)
        .0
        .to_bytes()
        .unwrap();
    let cfg = section(&b0, H_CONFIG).start;
    let flags = get_u32(&b0, cfg + 40);
    assert_eq!(flags, 1 | 1 << 1, "multilingual + dynamic");
    let mut b = b0.clone();
    set_u32(&mut b, cfg + 40, 1 | 2 << 1);
    reseal(&mut b);
    rejects(
        b,
        &["dec.q/weight", "no activation scale tensor dec.q/act_scale"],
    );
    // Mode 3 does not exist.
    let mut b = b0.clone();
    set_u32(&mut b, cfg + 40, 1 | 3 << 1);
    reseal(&mut b);
    rejects(b, &["activation mode 3"]);

    // A valid static file, then its scale made zero / NaN / the wrong shape.
    let b0 = packed_writer(Scheme::Int8Tensor, ActivationMode::Static)
        .0
        .to_bytes()
        .unwrap();
    let f = ModelFile::from_bytes(b0.clone()).unwrap();
    assert_eq!(f.config().activations, ActivationMode::Static);
    let es = entries(&b0);
    let at = get_u64(&b0, es[Q + 1].offset) as usize;
    for bad in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        let mut b = b0.clone();
        b[at..at + 4].copy_from_slice(&bad.to_le_bytes());
        // Tensor data is not under the header checksum.
        rejects(b, &["dec.q/act_scale", "finite and positive"]);
    }
    // Low-bit tensors need their scale too (the low-bit × int8 kernels use it).
    let (w, _) = packed_writer(Scheme::Int4Sym, ActivationMode::Static);
    assert!(ModelFile::from_bytes(w.to_bytes().unwrap()).is_ok());
    let (mut w, _) = packed_writer(Scheme::Int4Sym, ActivationMode::Dynamic);
    w.set_activations(ActivationMode::Static);
    let e = w.to_bytes().unwrap_err().to_string();
    assert!(e.contains("dec.q/act_scale"), "{e}");
}
