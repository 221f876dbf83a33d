//! `sotto convert`: a model in the form users have it — a CTranslate2 directory
//! (faster-whisper), a Hugging Face directory or a whisper.cpp ggml file — into a
//! `.sotto` file, optionally quantized in the same step.
use super::ct2::{self, Ct2Vocab, Int8Policy};
use super::sink::Sink;
use super::{ggml, hf};
use crate::format::ModelFile;
use crate::quantize::{self, Activations, Method, QuantizeOptions, Scheme};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// The kinds of checkpoint `convert_model` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory with `model.bin` (CTranslate2, faster-whisper's layout).
    CTranslate2,
    /// A directory with `model.safetensors` or `model.safetensors.index.json`.
    HuggingFace,
    /// A whisper.cpp `ggml-*.bin` file.
    Ggml,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::CTranslate2 => "CTranslate2",
            SourceKind::HuggingFace => "Hugging Face",
            SourceKind::Ggml => "whisper.cpp ggml",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Quantize while converting (the options of `sotto quantize`).
    pub quantize: Option<QuantizeOptions>,
}

/// What a conversion did.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    pub source: SourceKind,
    /// The packed scheme of the output (`None`: f16 weights).
    pub scheme: Option<&'static str>,
    /// Tensors packed from the source's own codes (CTranslate2 int8, ggml q4_0).
    pub packed_as_stored: usize,
}

/// Whether `opts` ask for exactly what CTranslate2 int8 weights already are.
fn int8_as_stored(q: &QuantizeOptions) -> bool {
    q.scheme == Scheme::Int8Row
        && q.method == Method::Rtn
        && q.keep.is_empty()
        && q.activations != Activations::Static
}

/// Whether `opts` ask for exactly what ggml q4_0 blocks already are.
fn q4_0_as_stored(q: &QuantizeOptions) -> bool {
    q.scheme == Scheme::Int4Sym
        && q.group == 32
        && q.method == Method::Rtn
        && q.keep.is_empty()
        && q.activations != Activations::Static
}

/// Which of the three sources `src` is, from what is there (not from its name).
pub fn detect(src: &Path) -> Result<SourceKind> {
    let what = "expected a CTranslate2 directory (model.bin), a Hugging Face directory \
                (model.safetensors or model.safetensors.index.json) or a whisper.cpp ggml .bin file";
    if src.is_dir() {
        if src.join("model.bin").is_file() {
            return Ok(SourceKind::CTranslate2);
        }
        if hf::is_hf_dir(src) {
            return Ok(SourceKind::HuggingFace);
        }
        return Err(Error::Convert(format!(
            "{}: not a model directory sotto can convert: {what}",
            src.display()
        )));
    }
    let mut magic = [0u8; 4];
    let f = std::fs::File::open(src).map_err(|e| Error::io(src.display().to_string(), e))?;
    use std::io::Read;
    let n = f
        .take(4)
        .read(&mut magic)
        .map_err(|e| Error::io(src.display().to_string(), e))?;
    if n == 4 {
        match &magic {
            m if u32::from_le_bytes(*m) == ggml::MAGIC => return Ok(SourceKind::Ggml),
            b"GGUF" => {
                return Err(Error::Convert(format!(
                    "{}: a GGUF file; sotto reads whisper.cpp's ggml .bin files",
                    src.display()
                )))
            }
            _ => {}
        }
    }
    let hint = if src.extension().is_some_and(|e| e == "safetensors") {
        " (give the directory that holds it, with config.json and tokenizer.json)"
    } else {
        ""
    };
    Err(Error::Convert(format!(
        "{}: not a model sotto can convert{hint}: {what}",
        src.display()
    )))
}

fn read_json_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))
}

fn map(path: &Path) -> Result<memmap2::Mmap> {
    let ctx = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| Error::io(&ctx, e))?;
    // SAFETY: a read-only mapping of a file this process does not change.
    unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(&ctx, e))
}

fn read_ct2_dir(dir: &Path, wide: bool, int8: Int8Policy) -> Result<Sink> {
    let bin = dir.join("model.bin");
    let bytes = map(&bin)?;
    let config = read_json_text(&dir.join("config.json"))?;
    let tok = dir.join("tokenizer.json");
    let vj = dir.join("vocabulary.json");
    let vt = dir.join("vocabulary.txt");
    let (tokenizer, list, vctx);
    let vocab = if tok.is_file() {
        tokenizer = read_json_text(&tok)?;
        Ct2Vocab::TokenizerJson(&tokenizer)
    } else if vj.is_file() {
        vctx = vj.display().to_string();
        list = serde_json::from_str::<Vec<String>>(&read_json_text(&vj)?)
            .map_err(|e| Error::Convert(format!("{vctx}: not a JSON list of strings: {e}")))?;
        Ct2Vocab::List(list, &vctx)
    } else if vt.is_file() {
        vctx = vt.display().to_string();
        list = read_json_text(&vt)?.lines().map(String::from).collect();
        Ct2Vocab::List(list, &vctx)
    } else {
        return Err(Error::Convert(format!(
            "{}: no tokenizer.json, vocabulary.json or vocabulary.txt",
            dir.display()
        )));
    };
    ct2::read(
        &bytes,
        &config,
        vocab,
        &bin.display().to_string(),
        wide,
        int8,
    )
}

/// Removes a file when dropped (the intermediate of a conversion).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Converts the checkpoint at `src` into the `.sotto` file `out`. The output
/// appears whole or not at all: the converted model is written beside `out`
/// under a temporary name, opened and checked against the model plan, then
/// renamed (or quantized into `out`, which is written atomically too).
pub fn convert_model(
    src: &Path,
    out: &Path,
    opts: &ConvertOptions,
    log: &dyn Fn(&str),
    progress: &dyn Fn(usize, usize),
) -> Result<ConvertReport> {
    let kind = detect(src)?;
    if let Some(q) = &opts.quantize {
        quantize::check_options(q)?;
    }
    let direct_ok = opts.quantize.as_ref().is_none_or(int8_as_stored);
    // Quantizing next: keep f32 so no weight is rounded twice (a CTranslate2 int8
    // model mapped as stored keeps its float tensors f16).
    let wide = opts.quantize.is_some() && !(kind == SourceKind::CTranslate2 && direct_ok);
    let int8 = if direct_ok {
        Int8Policy::Direct
    } else {
        Int8Policy::Dequantize
    };
    let sctx = src.display().to_string();
    let mut default_q = None;
    let mut sink = match kind {
        SourceKind::CTranslate2 => read_ct2_dir(src, wide, int8)?,
        SourceKind::HuggingFace => hf::read(src, wide)?,
        SourceKind::Ggml => {
            let bytes = map(src)?;
            let keep_q4_0 = opts.quantize.as_ref().is_none_or(q4_0_as_stored);
            let (sink, info) = ggml::read(&bytes, &sctx, wide && !keep_q4_0, keep_q4_0)?;
            if info.quantized == ["q4_0"] && keep_q4_0 {
                log(&format!(
                    "{sctx}: q4_0 blocks kept as sotto int4-sym, group 32 (the same values)"
                ));
            } else if !info.quantized.is_empty() {
                // ggml blocks (32 weights, one f16 scale) are not a sotto layout.
                let scheme = match &opts.quantize {
                    Some(q) => q.scheme,
                    // q4_1 (scale and offset) as int4 with a zero-point; 5/8-bit as int8.
                    None if info.quantized == ["q4_1"] => Scheme::Int4Asym,
                    None => Scheme::Int8Row,
                };
                log(&format!(
                    "{sctx}: {} weights dequantized to f32, then packed as {}{}",
                    info.quantized.join(" and "),
                    quantize::scheme_name(scheme),
                    if opts.quantize.is_none() {
                        " (choose with --scheme)"
                    } else {
                        ""
                    }
                ));
                if opts.quantize.is_none() {
                    default_q = Some(QuantizeOptions {
                        scheme,
                        ..QuantizeOptions::default()
                    });
                }
            }
            sink
        }
    };
    let direct = sink.packed_as_stored.len();
    let mut quant = opts.quantize.clone().or(default_q);
    if direct > 0 {
        let acts = quant.as_ref().map_or(Activations::None, |q| q.activations);
        sink.finish_int8(acts)?;
        log(&format!(
            "{sctx}: {direct} quantized tensors packed as stored, not quantized again"
        ));
        // The packed tensors are already what was asked for.
        quant = None;
    }

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", out.display())))?;
    let tmp = TempFile(dir.join(format!(
        ".{}.convert-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    )));
    sink.writer.write(&tmp.0)?;
    drop(sink);
    let file = ModelFile::open(&tmp.0)?;
    // Every tensor the network reads, with the shape the config implies.
    crate::model::plan::Layers::describe(&file)
        .map_err(|e| Error::Convert(format!("{sctx}: converted model does not load: {e}")))?;
    let scheme = match &quant {
        Some(q) => {
            quantize::quantize_model(&file, out, q, progress)?;
            Some(quantize::scheme_name(quantize::effective_scheme(q)))
        }
        None => {
            drop(file);
            std::fs::rename(&tmp.0, out).map_err(|e| Error::io(out.display().to_string(), e))?;
            (direct > 0).then_some(if kind == SourceKind::Ggml {
                "int4-sym"
            } else {
                "int8"
            })
        }
    };
    Ok(ConvertReport {
        source: kind,
        scheme,
        packed_as_stored: direct,
    })
}
