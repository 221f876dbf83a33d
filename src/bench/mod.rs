//! `sotto bench`: where one transcription's time goes, on the CPU or the GPU.
//!
//! Loads the model (memory map + validation), transcribes one file once to warm
//! up (page faults on the mapping, pool start-up, allocator), then `--runs` more
//! times and reports the median of each figure over those runs. Peak RSS is the
//! process's `VmHWM` at the end, so it covers loading and every run. On a GPU
//! with timestamp queries the device time of the encoder and decoder passes is
//! reported beside the wall-clock figures.
//!
//! `--roofline` instead measures the machine's ceilings and sets every kernel
//! family and model stage against them (`roofline.rs`, plot in `plot.rs`).
use sotto::{convert, Error, Model, Options, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod fixed;
#[cfg(feature = "eval")]
mod plot;
mod roofline;

/// Audio used when `--audio` is not given, relative to the current directory
/// (the repository root in this project's layout).
const DEFAULT_AUDIO: &str = "samples/jfk.wav";

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Model name (tiny.en, base) or .sotto path
    #[arg(short, long, default_value = "tiny.en")]
    model: String,
    /// Audio file to transcribe [default: samples/jfk.wav]
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Worker threads (default: all cores)
    #[arg(short, long)]
    threads: Option<usize>,
    /// Timed runs after the warm-up; the medians are reported
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Spoken language (multilingual models); detected if absent
    #[arg(long, conflicts_with = "tokens")]
    language: Option<String>,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
    /// Time the network on fixed work instead of a transcription: one 30-s window
    /// encoded, then exactly N greedy decoder steps (end-of-text and timestamp rules
    /// ignored), so that models whose output differs (random weights) compare; no audio
    #[arg(long, value_name = "N", conflicts_with_all = ["roofline", "audio"])]
    tokens: Option<usize>,
    /// With --tokens: after the warm-up, run once per `run` line read from stdin and
    /// print that run's JSON (tools/bench-big interleaves engines run by run this way)
    #[arg(long, hide = true, requires = "tokens")]
    rounds_from_stdin: bool,
    /// Where the network runs (gpu: weights are uploaded once, timed as "upload")
    #[arg(long, value_enum, default_value = "cpu")]
    device: crate::DeviceArg,
    /// Measure this machine's ceilings (FMA, int8 dot, L1/L2/L3/DRAM read bandwidth)
    /// with sotto's probes and set every kernel family and the model's stages against them
    #[arg(long)]
    roofline: bool,
    /// With --roofline: write roofline.svg and roofline.png into DIR
    #[arg(long, value_name = "DIR", requires = "roofline")]
    plot: Option<PathBuf>,
    /// With --roofline: only the ceilings and kernel families, no model
    #[arg(long, requires = "roofline")]
    no_model: bool,
    /// With --roofline: tiny sizes and one repetition (tests; figures mean little)
    #[arg(long, hide = true, requires = "roofline")]
    quick: bool,
}

/// `sotto bench --roofline`. `font`: a TrueType file for the plot's text.
fn run_roofline(a: &BenchArgs, font: Option<&Path>) -> Result<()> {
    if a.threads == Some(0) {
        return Err(Error::Invalid("--threads must be at least 1".into()));
    }
    #[cfg(not(feature = "eval"))]
    if a.plot.is_some() {
        return Err(Error::Invalid(
            "--plot needs a build with the `eval` feature (plotters)".into(),
        ));
    }
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let effort = if a.quick {
        roofline::Effort::QUICK
    } else {
        roofline::Effort::FULL
    };
    let model = (!a.no_model).then_some(a.model.as_str());
    let report = roofline::run(
        model,
        &crate::home(),
        &crate::load_options()?,
        threads,
        &effort,
    )?;
    #[cfg(feature = "eval")]
    if let Some(dir) = &a.plot {
        for p in plot::plot(&report, dir, font)? {
            eprintln!("wrote {}", p.display());
        }
    }
    let _ = font;
    if a.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// One timed transcription.
struct Run {
    wall_ms: f64,
    mel_ms: f64,
    encoder_ms_per_window: f64,
    decode_ms_per_token: f64,
    windows: usize,
    decode_tokens: usize,
    /// Device time from the pass timestamps (GPU with timestamp queries only).
    gpu_encoder_ms_per_window: Option<f64>,
    gpu_decode_ms_per_token: Option<f64>,
}

/// The device time of the encoder and decoder passes (ns) since the last call, where
/// the model runs on a GPU that times them ([`sotto::gpu::Gpu::enable_timing`]).
fn take_gpu_times(model: &Model) -> Option<(u64, u64)> {
    #[cfg(feature = "gpu")]
    {
        let t = model.gpu()?.take_times()?;
        t.valid().then_some((t.encoder_ns, t.decode_ns))
    }
    #[cfg(not(feature = "gpu"))]
    {
        let _ = model;
        None
    }
}

/// The median of figures every run has, else `None`.
fn median_all(v: Vec<Option<f64>>) -> Option<f64> {
    v.into_iter().collect::<Option<Vec<f64>>>().map(median)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// `VmHWM` (peak resident set) of this process in bytes, where Linux reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb = line["VmHWM:".len()..].trim().trim_end_matches("kB").trim();
    kb.parse::<u64>().ok().map(|kb| kb * 1024)
}

fn audio_path(arg: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = arg {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::Invalid(format!(
                "--audio {}: no such file",
                p.display()
            )))
        };
    }
    let p = PathBuf::from(DEFAULT_AUDIO);
    if p.is_file() {
        return Ok(p);
    }
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "?".into());
    Err(Error::Invalid(format!(
        "the default audio {DEFAULT_AUDIO} is not there (relative to {cwd}); \
         run from the repository root or pass --audio FILE"
    )))
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

pub fn run(a: &BenchArgs, font: Option<&Path>) -> Result<()> {
    if a.roofline {
        return run_roofline(a, font);
    }
    if a.runs == 0 {
        return Err(Error::Invalid("--runs must be at least 1".into()));
    }
    if a.threads == Some(0) {
        return Err(Error::Invalid("--threads must be at least 1".into()));
    }
    if let Some(n) = a.tokens {
        return fixed::run(a, n);
    }
    let audio = audio_path(a.audio.as_deref())?;
    let model_path = convert::resolve_model(&crate::home(), &a.model, &|m| eprintln!("{m}"))?;

    // Load time: map + validate, repeated `runs` times (a fresh mapping each
    // time; the file is in the page cache after the first). The last model stays.
    let mut load_ms = Vec::with_capacity(a.runs);
    let mut model = None;
    for _ in 0..a.runs {
        drop(model.take());
        let t = Instant::now();
        model = Some(Model::load_with(&model_path, &crate::load_options()?)?);
        load_ms.push(ms_since(t));
    }
    let t = Instant::now();
    let model = crate::to_device(model.expect("runs ≥ 1"), a.device.into())?;
    let upload_ms = ms_since(t);
    #[cfg(feature = "gpu")]
    if let Some(g) = model.gpu() {
        g.enable_timing(true);
    }
    let load_first_ms = load_ms[0];

    let t = Instant::now();
    let samples = sotto::audio::load_audio(&audio)?;
    let audio_load_ms = ms_since(t);
    let audio_s = samples.len() as f64 / sotto::audio::SAMPLE_RATE as f64;

    let mut opts = Options::default();
    if let Some(t) = a.threads {
        opts.threads = t;
    }
    opts.language = a.language.clone();

    let transcribe = || -> Result<(Run, String)> {
        let t = Instant::now();
        let tr = model.transcribe(&samples, &opts)?;
        let wall_ms = ms_since(t);
        let tm = &tr.timings;
        let gpu = take_gpu_times(&model);
        let run = Run {
            wall_ms,
            mel_ms: tm.mel_ms,
            encoder_ms_per_window: tm.encoder_ms / tm.windows.max(1) as f64,
            decode_ms_per_token: tm.decode_ms / tm.decode_tokens.max(1) as f64,
            windows: tm.windows,
            decode_tokens: tm.decode_tokens,
            gpu_encoder_ms_per_window: gpu.map(|(e, _)| e as f64 / 1e6 / tm.windows.max(1) as f64),
            gpu_decode_ms_per_token: gpu
                .map(|(_, d)| d as f64 / 1e6 / tm.decode_tokens.max(1) as f64),
        };
        Ok((run, tr.text))
    };
    let (_, text) = transcribe()?; // warm-up, not counted
    let mut runs = Vec::with_capacity(a.runs);
    for _ in 0..a.runs {
        runs.push(transcribe()?.0);
    }

    let med = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let wall_ms = med(|r| r.wall_ms);
    let report = Report {
        model: model_path.display().to_string(),
        model_bytes: model.file().file_len(),
        audio: audio.display().to_string(),
        audio_s,
        device: model.device_name(),
        upload_ms,
        threads: opts.threads,
        runs: a.runs,
        load_ms: median(load_ms),
        load_first_ms,
        audio_load_ms,
        mel_ms: med(|r| r.mel_ms),
        encoder_ms_per_window: med(|r| r.encoder_ms_per_window),
        windows: runs[0].windows,
        decode_ms_per_token: med(|r| r.decode_ms_per_token),
        decode_tokens: runs[0].decode_tokens,
        gpu_encoder_ms_per_window: median_all(
            runs.iter().map(|r| r.gpu_encoder_ms_per_window).collect(),
        ),
        gpu_decode_ms_per_token: median_all(
            runs.iter().map(|r| r.gpu_decode_ms_per_token).collect(),
        ),
        wall_ms,
        wall_ms_runs: runs.iter().map(|r| r.wall_ms).collect(),
        rtf: wall_ms / 1e3 / audio_s,
        peak_rss_bytes: peak_rss_bytes(),
        text: text.trim().to_string(),
    };
    if a.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

struct Report {
    model: String,
    model_bytes: u64,
    audio: String,
    audio_s: f64,
    device: String,
    /// Moving the weights to the device (0 on the CPU, where they stay mapped).
    upload_ms: f64,
    threads: usize,
    runs: usize,
    load_ms: f64,
    load_first_ms: f64,
    audio_load_ms: f64,
    mel_ms: f64,
    encoder_ms_per_window: f64,
    windows: usize,
    decode_ms_per_token: f64,
    decode_tokens: usize,
    /// `None` on the CPU and on adapters without (working) timestamp queries.
    gpu_encoder_ms_per_window: Option<f64>,
    gpu_decode_ms_per_token: Option<f64>,
    wall_ms: f64,
    wall_ms_runs: Vec<f64>,
    rtf: f64,
    peak_rss_bytes: Option<u64>,
    text: String,
}

impl Report {
    fn json(&self) -> String {
        serde_json::json!({
            "model": self.model,
            "model_bytes": self.model_bytes,
            "audio": self.audio,
            "audio_s": self.audio_s,
            "device": self.device,
            "upload_ms": self.upload_ms,
            "threads": self.threads,
            "runs": self.runs,
            "load_ms": self.load_ms,
            "load_first_ms": self.load_first_ms,
            "audio_load_ms": self.audio_load_ms,
            "mel_ms": self.mel_ms,
            "encoder_ms_per_window": self.encoder_ms_per_window,
            "windows": self.windows,
            "decode_ms_per_token": self.decode_ms_per_token,
            "decode_tokens": self.decode_tokens,
            "gpu_encoder_ms_per_window": self.gpu_encoder_ms_per_window,
            "gpu_decode_ms_per_token": self.gpu_decode_ms_per_token,
            "wall_ms": self.wall_ms,
            "wall_ms_runs": self.wall_ms_runs,
            "rtf": self.rtf,
            "peak_rss_bytes": self.peak_rss_bytes,
            "text": self.text,
        })
        .to_string()
    }

    fn table(&self) -> String {
        let runs: Vec<String> = self
            .wall_ms_runs
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect();
        let rss = match self.peak_rss_bytes {
            Some(b) => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
            None => "unknown (no /proc/self/status)".into(),
        };
        let gpu = match (self.gpu_encoder_ms_per_window, self.gpu_decode_ms_per_token) {
            (Some(e), Some(d)) => format!(
                "gpu encoder  {e:.1} ms/window (device time, timestamp queries)\n\
                 gpu decoder  {d:.2} ms/token\n"
            ),
            _ if self.device.starts_with("gpu") => {
                "gpu time     not supported (no usable timestamp queries on this adapter)\n".into()
            }
            _ => String::new(),
        };
        format!(
            "model        {} ({:.1} MiB)\n\
             audio        {} ({:.2} s)\n\
             device       {}, {} threads\n\
             load         {:.1} ms (mmap + validation; first {:.1} ms)\n\
             upload       {:.1} ms (weights to the device)\n\
             audio load   {:.1} ms (decode + resample)\n\
             mel          {:.1} ms\n\
             encoder      {:.1} ms/window × {}\n\
             decoder      {:.2} ms/token × {}\n\
             {}\
             transcribe   {:.0} ms (median of {}: {} ms)\n\
             real time    {:.3}× (wall / audio)\n\
             peak RSS     {}\n\
             text         {}\n",
            self.model,
            self.model_bytes as f64 / (1 << 20) as f64,
            self.audio,
            self.audio_s,
            self.device,
            self.threads,
            self.load_ms,
            self.load_first_ms,
            self.upload_ms,
            self.audio_load_ms,
            self.mel_ms,
            self.encoder_ms_per_window,
            self.windows,
            self.decode_ms_per_token,
            self.decode_tokens,
            gpu,
            self.wall_ms,
            self.runs,
            runs.join(", "),
            self.rtf,
            rss,
            self.text
        )
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
