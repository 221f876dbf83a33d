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

/// Transcribes the first 30 s of every audio file in `dir` with `input` (greedy,
/// no conditioning) while `observer` sees every linear layer's input. `what`
/// names the calibration in errors; `log` hears about each file.
fn transcribe_observed(
    input: &ModelFile,
    dir: &Path,
    what: &str,
    observer: crate::model::LinearObserver,
    threads: usize,
    log: &dyn Fn(&str),
) -> Result<()> {
    let files = audio_files(dir)?;
    let path = input
        .path()
        .ok_or_else(|| Error::Invalid(format!("{what} needs the input model as a file on disk")))?;
    let mut model = crate::Model::from_file(ModelFile::open(path)?)?;
    model.set_observer(Some(observer));
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
    Ok(())
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
    let seen: Arc<Mutex<HashMap<String, f32>>> = Arc::default();
    let rec = seen.clone();
    let observer = Box::new(move |name: &str, x: &[f32]| {
        let m = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut map = rec.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry(name.to_string()).or_insert(0.0);
        *e = e.max(m);
    });
    transcribe_observed(input, dir, "static calibration", observer, threads, log)?;
    let map = seen.lock().unwrap_or_else(|e| e.into_inner());
    Ok(map.iter().map(|(k, v)| (k.clone(), *v)).collect())
}

/// The sum of `xᵀx` over every calibration input of one linear layer: GPTQ's
/// Hessian up to a constant factor (which it does not depend on).
pub(crate) struct InputGram {
    pub k: usize,
    /// `k × k`, row-major.
    pub xtx: Vec<f32>,
    /// Input rows seen.
    pub rows: usize,
    /// Per input channel, `Σ |x|` and `max |x|` over every input row (encoder
    /// blocks not subsampled): AWQ's and SmoothQuant's activation statistics.
    pub abs_sum: Vec<f64>,
    pub abs_max: Vec<f32>,
    /// Rows in `abs_sum`.
    pub abs_rows: usize,
}

/// Adds `xᵀx` of the `rows × k` block `x` into `acc` (the f32 GEMM for big blocks).
fn accumulate_gram(
    kernels: &sotto_kernels::Kernels,
    pool: &sotto_kernels::Pool,
    acc: &mut InputGram,
    x: &[f32],
) {
    let k = acc.k;
    let rows = x.len() / k;
    for r in x.chunks_exact(k) {
        for ((s, m), &v) in acc.abs_sum.iter_mut().zip(acc.abs_max.iter_mut()).zip(r) {
            *s += v.abs() as f64;
            *m = m.max(v.abs());
        }
    }
    acc.abs_rows += rows;
    if rows >= 256 {
        // Encoder blocks (1500 positions a window): neighbouring positions are much
        // alike, and every 4th keeps the cost of the sums near that of the forward
        // pass.
        let sub: Vec<f32> = x
            .chunks_exact(k)
            .step_by(ENCODER_ROW_STRIDE)
            .flatten()
            .copied()
            .collect();
        return accumulate_rows(kernels, pool, acc, &sub);
    }
    accumulate_rows(kernels, pool, acc, x);
}

/// Rows of an encoder-sized input block that go into the sums: one in this many.
const ENCODER_ROW_STRIDE: usize = 4;

fn accumulate_rows(
    kernels: &sotto_kernels::Kernels,
    pool: &sotto_kernels::Pool,
    acc: &mut InputGram,
    x: &[f32],
) {
    let k = acc.k;
    let rows = x.len() / k;
    acc.rows += rows;
    if rows < 16 {
        for r in x.chunks_exact(k) {
            for (i, &xi) in r.iter().enumerate() {
                if xi == 0.0 {
                    continue;
                }
                for (o, &xj) in acc.xtx[i * k..(i + 1) * k].iter_mut().zip(r) {
                    *o += xi * xj;
                }
            }
        }
        return;
    }
    // xᵀ (k × rows) times its own transpose: `linear` computes a · bᵀ.
    let mut xt = vec![0f32; k * rows];
    for (r, row) in x.chunks_exact(k).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            xt[i * rows + r] = v;
        }
    }
    let mut out = vec![0f32; k * k];
    kernels.linear(
        pool,
        &xt,
        k,
        rows,
        sotto_kernels::Weights::F32(&xt),
        k,
        None,
        &mut out,
    );
    for (a, b) in acc.xtx.iter_mut().zip(&out) {
        *a += b;
    }
}

/// Per weight name in `wanted` (name, input width k), `Σ xᵀx` of the layer's inputs
/// over the first 30 s of every audio file in `dir` (encoder on the window, greedy
/// decoding of its transcript; the tied embedding through its use as the output
/// projection). `log` hears about each file.
pub(crate) fn input_grams(
    input: &ModelFile,
    dir: &Path,
    wanted: &[(String, usize)],
    threads: usize,
    log: &dyn Fn(&str),
) -> Result<BTreeMap<String, InputGram>> {
    let grams: Arc<Mutex<HashMap<String, InputGram>>> = Arc::new(Mutex::new(
        wanted
            .iter()
            .map(|(name, k)| {
                (
                    name.clone(),
                    InputGram {
                        k: *k,
                        xtx: vec![0f32; k * k],
                        rows: 0,
                        abs_sum: vec![0f64; *k],
                        abs_max: vec![0f32; *k],
                        abs_rows: 0,
                    },
                )
            })
            .collect(),
    ));
    let rec = grams.clone();
    let kernels = sotto_kernels::Kernels::detect();
    // The observer runs between the model's own parallel steps; a second pool's
    // idle workers would compete with the model's, so the sums run on this thread.
    let pool = sotto_kernels::Pool::new(1);
    let observer = Box::new(move |name: &str, x: &[f32]| {
        let mut map = rec.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(acc) = map.get_mut(name) {
            if acc.k > 0 && x.len().is_multiple_of(acc.k) {
                accumulate_gram(&kernels, &pool, acc, x);
            }
        }
    });
    transcribe_observed(input, dir, "GPTQ calibration", observer, threads, log)?;
    let mut map = grams.lock().unwrap_or_else(|e| e.into_inner());
    Ok(std::mem::take(&mut *map).into_iter().collect())
}
