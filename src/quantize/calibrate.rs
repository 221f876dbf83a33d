//! Static activation calibration: run the float model on a few audio files and record
//! the absolute maximum of every linear layer's input. The runtime's fixed int8
//! activation scale of a layer is then `absmax / 127`.
use crate::format::ModelFile;
use crate::{Error, Options, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const AUDIO_EXTENSIONS: &[&str] = &["wav", "flac", "mp3", "ogg"];

/// The audio files directly inside `dir`, sorted by name.
pub(crate) fn audio_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let name = dir.display().to_string();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(&name, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "--calibrate {name}: no audio files ({}) in this directory",
            AUDIO_EXTENSIONS.join(", ")
        )));
    }
    Ok(files)
}

/// Per linear weight name, the largest |input| seen over the first 30 s of every
/// audio file in `dir` (encoder on the window, greedy decoding of its transcript).
/// `log` hears about each file.
pub(crate) fn activation_absmax(
    input: &ModelFile,
    dir: &Path,
    threads: usize,
    log: &dyn Fn(&str),
) -> Result<BTreeMap<String, f32>> {
    let files = audio_files(dir)?;
    let path = input.path().ok_or_else(|| {
        Error::Invalid("static calibration needs the input model as a file on disk".into())
    })?;
    let mut model = crate::Model::from_file(ModelFile::open(path)?)?;
    let seen: Arc<Mutex<HashMap<String, f32>>> = Arc::default();
    let rec = seen.clone();
    model.set_observer(Some(Box::new(move |name: &str, x: &[f32]| {
        let m = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut map = rec.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry(name.to_string()).or_insert(0.0);
        *e = e.max(m);
    })));
    let opts = Options {
        threads,
        temperatures: vec![0.0],
        condition_on_previous_text: false,
        ..Options::default()
    };
    for f in &files {
        log(&format!("calibrating on {}", f.display()));
        let mut samples = crate::audio::load_audio(f)?;
        samples.truncate(crate::audio::N_SAMPLES);
        if samples.is_empty() {
            continue;
        }
        model.transcribe(&samples, &opts)?;
    }
    drop(model);
    let map = seen.lock().unwrap_or_else(|e| e.into_inner());
    Ok(map.iter().map(|(k, v)| (k.clone(), *v)).collect())
}
