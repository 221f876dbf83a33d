//! `sotto eval`: word error rate, size and speed of a model under each
//! quantization scheme, on one or more evaluation sets.
//!
//! - [`normalize`]: English text normaliser (mirrors `tools/wer.py`);
//! - [`wer`]: word-level Levenshtein with S/D/I counts, corpus aggregation;
//! - [`manifest`]: `manifest.tsv` sets, bad lines and missing files counted;
//! - [`schemes`]: scheme names → quantizer options, quantized files cached;
//! - [`report`]: Markdown table, JSON (rewritten as results come in), plot;
//! - [`cli`]: the `sotto eval` arguments and entry point.
//!
//! Corpus WER is total (S + D + I) / total reference words. Speed is measured
//! on `Model::transcribe` only (audio decoding and model loading excluded).
pub mod cli;
pub mod manifest;
pub mod normalize;
pub mod pareto;
pub mod report;
pub mod rss;
pub mod schemes;
pub mod wer;

use crate::{Model, Options, Result};
use manifest::{EvalSet, Problem, ProblemKind};
use schemes::EvalScheme;
use std::path::PathBuf;
use std::time::Instant;
use wer::Counts;

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// A known model name (`tiny.en`) or a `.sotto` path.
    pub model: String,
    pub sets: Vec<PathBuf>,
    pub schemes: Vec<EvalScheme>,
    pub threads: usize,
    /// Evaluate only the first N utterances of each set.
    pub limit: Option<usize>,
    /// Audio for static activation scales (`int8-static`).
    pub calibrate: Option<PathBuf>,
    /// Quantize again even when the cache holds the scheme's file.
    pub requantize: bool,
    /// Rewritten with everything known so far after every utterance (at most
    /// once a second) and after every scheme × set.
    pub json: Option<PathBuf>,
    /// Show a progress bar (stderr, only when it is a terminal).
    pub progress: bool,
    /// Kernel set and device of every model evaluated.
    pub load: crate::LoadOptions,
    /// The model cache (`sotto_home`): models by name and quantized schemes.
    pub home: PathBuf,
}

/// One utterance's result.
#[derive(Clone, Debug)]
pub struct UtteranceResult {
    pub file: String,
    pub reference: String,
    pub hypothesis: String,
    /// The normalised texts that were aligned.
    pub reference_norm: String,
    pub hypothesis_norm: String,
    pub counts: Counts,
    pub audio_s: f64,
    /// Wall time of `Model::transcribe`.
    pub seconds: f64,
    /// Per decoded window, the temperature kept (above 0: the window fell back).
    pub window_temperatures: Vec<f32>,
}

/// How a scheme × set went.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Evaluated (possibly still running when a partial report is written).
    Ok,
    /// Not attempted, with the reason (e.g. no calibration audio).
    Skipped(String),
    /// Quantizing or loading the model failed.
    Failed(String),
}

/// One scheme on one set.
#[derive(Clone, Debug)]
pub struct Row {
    pub scheme: String,
    pub set: String,
    pub status: Status,
    pub file: Option<PathBuf>,
    pub file_bytes: u64,
    pub counts: Counts,
    pub audio_s: f64,
    pub process_s: f64,
    pub encoder_ms: f64,
    pub windows: usize,
    pub decode_ms: f64,
    pub decode_tokens: usize,
    /// High-water mark of resident memory during this scheme × set.
    pub peak_rss: Option<u64>,
    pub utterances: Vec<UtteranceResult>,
    /// Utterances whose transcription failed: (file, error).
    pub failed: Vec<(String, String)>,
}

impl Row {
    fn new(scheme: &str, set: &str, status: Status) -> Row {
        Row {
            scheme: scheme.into(),
            set: set.into(),
            status,
            file: None,
            file_bytes: 0,
            counts: Counts::default(),
            audio_s: 0.0,
            process_s: 0.0,
            encoder_ms: 0.0,
            windows: 0,
            decode_ms: 0.0,
            decode_tokens: 0,
            peak_rss: None,
            utterances: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Real-time factor: processing seconds per second of audio.
    pub fn rtf(&self) -> f64 {
        self.process_s / self.audio_s.max(1e-9)
    }

    pub fn encoder_ms_per_window(&self) -> f64 {
        self.encoder_ms / self.windows.max(1) as f64
    }

    /// Decoded windows over every utterance done.
    pub fn decoded_windows(&self) -> usize {
        self.utterances
            .iter()
            .map(|u| u.window_temperatures.len())
            .sum()
    }

    /// Windows that fell back, per temperature kept (ascending; 0 left out).
    pub fn fallbacks(&self) -> Vec<(f32, usize)> {
        let mut by_t: Vec<(f32, usize)> = Vec::new();
        for &t in self.utterances.iter().flat_map(|u| &u.window_temperatures) {
            if t <= 0.0 {
                continue;
            }
            match by_t.iter_mut().find(|(x, _)| *x == t) {
                Some((_, n)) => *n += 1,
                None => by_t.push((t, 1)),
            }
        }
        by_t.sort_by(|a, b| a.0.total_cmp(&b.0));
        by_t
    }

    /// The fallbacks as `N (t:n, ...)`, e.g. `3 (0.2:2, 1.0:1)`; `0` when none.
    pub fn fallback_summary(&self) -> String {
        let f = self.fallbacks();
        let total: usize = f.iter().map(|x| x.1).sum();
        if total == 0 {
            return "0".into();
        }
        let parts: Vec<String> = f.iter().map(|(t, n)| format!("{t:.1}:{n}")).collect();
        format!("{total} ({})", parts.join(", "))
    }

    pub fn decode_ms_per_token(&self) -> f64 {
        self.decode_ms / self.decode_tokens.max(1) as f64
    }
}

/// A set as evaluated: its name, folder, size and skipped entries.
#[derive(Clone, Debug)]
pub struct SetInfo {
    pub name: String,
    pub dir: PathBuf,
    /// Utterances evaluated per scheme (after `--limit`).
    pub utterances: usize,
    pub problems: Vec<Problem>,
}

impl SetInfo {
    pub fn skipped(&self, kind: ProblemKind) -> usize {
        self.problems.iter().filter(|p| p.kind == kind).count()
    }
}

/// Everything `sotto eval` found out.
#[derive(Clone, Debug)]
pub struct Report {
    pub model: String,
    pub model_path: PathBuf,
    /// 4 bytes × all tensor elements of the model.
    pub f32_bytes: u64,
    pub threads: usize,
    pub kernels: String,
    /// `Err` when the peak-RSS high-water mark could not be reset.
    pub rss_reset: std::result::Result<(), String>,
    pub sets: Vec<SetInfo>,
    pub rows: Vec<Row>,
    pub finished: bool,
}

/// A short model name for cache files: the known name, or the file stem.
fn model_name(arg: &str) -> String {
    let p = std::path::Path::new(arg);
    if p.is_file() {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        return stem;
    }
    arg.to_string()
}

/// Runs the evaluation. `log` gets messages for stderr (skipped inputs, cache
/// activity); per-scheme failures become rows, not errors. Fails only when the
/// model or a set's manifest cannot be read at all, or the JSON cannot be written.
pub fn run(cfg: &EvalConfig, log: &dyn Fn(&str)) -> Result<Report> {
    let model_path = crate::convert::resolve_model(&cfg.home, &cfg.model, log)?;
    let source = crate::format::ModelFile::open(&model_path)?;
    let f32_bytes = 4 * source
        .tensors()
        .iter()
        .map(|t| t.elements() as u64)
        .sum::<u64>();
    drop(source);

    let mut sets = Vec::new();
    let mut utterances = Vec::new();
    for dir in &cfg.sets {
        let set = EvalSet::load(dir)?;
        for p in &set.problems {
            log(&format!(
                "{}: line {}: {}: {}",
                set.name,
                p.line,
                p.kind.name(),
                p.message
            ));
        }
        let mut utts = set.utterances;
        if let Some(n) = cfg.limit {
            utts.truncate(n);
        }
        sets.push(SetInfo {
            name: set.name,
            dir: set.dir,
            utterances: utts.len(),
            problems: set.problems,
        });
        utterances.push(utts);
    }

    let kernels = match &cfg.load.kernels {
        Some(name) => sotto_kernels::Kernels::from_name(name)
            .map(|k| k.name().to_string())
            .unwrap_or_else(|e| e),
        None => sotto_kernels::Kernels::detect().name().to_string(),
    };
    let mut report = Report {
        model: model_name(&cfg.model),
        model_path: model_path.clone(),
        f32_bytes,
        threads: cfg.threads,
        kernels,
        rss_reset: rss::reset_peak(),
        sets,
        rows: Vec::new(),
        finished: false,
    };
    if let Err(e) = &report.rss_reset {
        log(&format!("{e}: peak RSS is the process's peak so far"));
    }

    let total: usize = utterances.iter().map(Vec::len).sum::<usize>() * cfg.schemes.len();
    let bar = indicatif::ProgressBar::new(total as u64);
    if !cfg.progress {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:24} [{bar:30}] {pos}/{len} utterances ({elapsed} elapsed, {eta} left)",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let say = |m: &str| bar.suspend(|| log(m));
    let mut json_writer = report::JsonWriter::new(cfg.json.clone());

    for scheme in &cfg.schemes {
        bar.set_message(format!("{} (preparing)", scheme.name));
        let prepared = prepare(cfg, &report, scheme, &say);
        let (path, model) = match prepared {
            Ok(pm) => pm,
            Err(status) => {
                if let Status::Skipped(r) | Status::Failed(r) = &status {
                    say(&format!("{}: {r}", scheme.name));
                }
                for (set, utts) in report.sets.iter().zip(&utterances) {
                    bar.inc(utts.len() as u64);
                    report
                        .rows
                        .push(Row::new(scheme.name, &set.name, status.clone()));
                }
                json_writer.write(&report, true)?;
                continue;
            }
        };
        let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut options = Options {
            threads: cfg.threads.max(1),
            ..Options::default()
        };
        if model.config().multilingual {
            options.language = Some("en".into());
        }
        for (s, utts) in utterances.iter().enumerate() {
            let set_name = report.sets[s].name.clone();
            bar.set_message(format!("{} / {}", scheme.name, set_name));
            // The model stays mapped between sets: the peak then restarts from
            // the current resident size, which includes the touched weights.
            if report.rss_reset.is_ok() && s > 0 {
                rss::reset_peak().ok();
            }
            let mut row = Row::new(scheme.name, &set_name, Status::Ok);
            row.file = Some(path.clone());
            row.file_bytes = file_bytes;
            report.rows.push(row);
            let row_index = report.rows.len() - 1;
            for utt in utts {
                let result = evaluate_one(&model, &options, utt);
                bar.inc(1);
                match result {
                    Ok((r, timings)) => {
                        let row = &mut report.rows[row_index];
                        row.counts += r.counts;
                        row.audio_s += r.audio_s;
                        row.process_s += r.seconds;
                        row.encoder_ms += timings.encoder_ms;
                        row.windows += timings.windows;
                        row.decode_ms += timings.decode_ms;
                        row.decode_tokens += timings.decode_tokens;
                        row.peak_rss = rss::peak_bytes();
                        row.utterances.push(r);
                    }
                    Err(Failure::Transcribe(e)) => {
                        say(&format!(
                            "{} / {set_name}: {}: transcription failed: {e}",
                            scheme.name, utt.file
                        ));
                        report.rows[row_index]
                            .failed
                            .push((utt.file.clone(), e.to_string()));
                    }
                    Err(Failure::Decode(e)) => {
                        let set = &mut report.sets[s];
                        // Reported once; later schemes skip it quietly.
                        if !set
                            .problems
                            .iter()
                            .any(|p| p.file.as_ref() == Some(&utt.file))
                        {
                            say(&format!(
                                "{}: {}: undecodable, skipped: {e}",
                                set.name, utt.file
                            ));
                            set.problems.push(Problem {
                                line: 0,
                                file: Some(utt.file.clone()),
                                kind: ProblemKind::Undecodable,
                                message: e.to_string(),
                            });
                        }
                    }
                }
                json_writer.write(&report, false)?;
            }
            let row = &mut report.rows[row_index];
            row.peak_rss = rss::peak_bytes();
            // One line per scheme × set: the only progress a log file gets.
            say(&format!(
                "{} / {}: WER {:.2}% over {} utterances, RTF {:.3}",
                row.scheme,
                row.set,
                100.0 * row.counts.wer(),
                row.utterances.len(),
                row.rtf()
            ));
            json_writer.write(&report, true)?;
        }
        drop(model);
    }
    bar.finish_and_clear();
    // Files that failed to decode are not counted as utterances of the set.
    for set in &mut report.sets {
        set.utterances -= set.skipped(ProblemKind::Undecodable).min(set.utterances);
    }
    report.finished = true;
    json_writer.write(&report, true)?;
    Ok(report)
}

/// The scheme's model, quantized (once, cached) if needed, loaded. Resets the
/// peak-RSS mark after quantizing, so the scheme's peak covers loading and
/// transcribing only.
fn prepare(
    cfg: &EvalConfig,
    report: &Report,
    scheme: &EvalScheme,
    log: &dyn Fn(&str),
) -> std::result::Result<(PathBuf, Model), Status> {
    let opts = schemes::quantize_options(scheme, cfg.calibrate.as_deref(), cfg.threads)
        .map_err(Status::Skipped)?;
    let path = match opts {
        None => report.model_path.clone(),
        Some(opts) => schemes::scheme_file(
            &cfg.home,
            &report.model_path,
            &report.model,
            scheme,
            &opts,
            cfg.requantize,
            log,
            &|_, _| {},
        )
        .map_err(|e| Status::Failed(format!("quantizing failed: {e}")))?,
    };
    if report.rss_reset.is_ok() {
        rss::reset_peak().ok();
    }
    let model = Model::load_with(&path, &cfg.load)
        .map_err(|e| Status::Failed(format!("loading failed: {e}")))?;
    Ok((path, model))
}

enum Failure {
    Decode(crate::Error),
    Transcribe(crate::Error),
}

/// Decodes and transcribes one file and scores it.
fn evaluate_one(
    model: &Model,
    options: &Options,
    utt: &manifest::Utterance,
) -> std::result::Result<(UtteranceResult, crate::Timings), Failure> {
    let samples = crate::audio::load_audio(&utt.path).map_err(Failure::Decode)?;
    let audio_s = samples.len() as f64 / crate::audio::SAMPLE_RATE as f64;
    let t0 = Instant::now();
    let tr = model
        .transcribe(&samples, options)
        .map_err(Failure::Transcribe)?;
    let seconds = t0.elapsed().as_secs_f64();
    let hypothesis = tr.text.trim().to_string();
    let scored = wer::score(&utt.reference, &hypothesis);
    Ok((
        UtteranceResult {
            file: utt.file.clone(),
            reference: utt.reference.clone(),
            hypothesis,
            reference_norm: scored.reference,
            hypothesis_norm: scored.hypothesis,
            counts: scored.counts,
            audio_s,
            seconds,
            window_temperatures: tr.window_temperatures,
        },
        tr.timings,
    ))
}
