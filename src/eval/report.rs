//! `sotto eval` output: a Markdown table, a JSON file with every utterance
//! (rewritten atomically as results come in), and a plot of WER against model
//! size per set (SVG and PNG, via plotters).

use super::manifest::ProblemKind;
use super::{Report, Row, Status};
use crate::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MB: f64 = 1e6;

fn wer_pct(row: &Row) -> f64 {
    100.0 * row.counts.wer()
}

/// The results as a Markdown table, followed by notes on skipped inputs.
pub fn markdown(report: &Report) -> String {
    let mut s = format!(
        "model {} ({}), f32 size {:.1} MB, {} threads, kernels {}\n\n",
        report.model,
        report.model_path.display(),
        report.f32_bytes as f64 / MB,
        report.threads,
        report.kernels
    );
    s.push_str("| scheme | set | utts | WER % | S | D | I | ref words | size MB | % of f32 | RTF | encoder ms/window | decode ms/token | peak RSS MB | windows | fell back (temperature:windows) |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in &report.rows {
        match &r.status {
            Status::Ok => {
                let c = &r.counts;
                s.push_str(&format!(
                    "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {:.1} | {:.1} | {:.3} | {:.1} | {:.2} | {} | {} | {} |\n",
                    r.scheme,
                    r.set,
                    r.utterances.len(),
                    wer_pct(r),
                    c.sub,
                    c.del,
                    c.ins,
                    c.ref_words,
                    r.file_bytes as f64 / MB,
                    100.0 * r.file_bytes as f64 / report.f32_bytes.max(1) as f64,
                    r.rtf(),
                    r.encoder_ms_per_window(),
                    r.decode_ms_per_token(),
                    r.peak_rss
                        .map(|b| format!("{:.0}", b as f64 / MB))
                        .unwrap_or_else(|| "?".into()),
                    r.decoded_windows(),
                    r.fallback_summary(),
                ));
            }
            Status::Skipped(why) | Status::Failed(why) => {
                let what = if matches!(r.status, Status::Skipped(_)) {
                    "skipped"
                } else {
                    "failed"
                };
                s.push_str(&format!(
                    "| {} | {} | – | {what}: {} | | | | | | | | | | | | |\n",
                    r.scheme,
                    r.set,
                    why.replace('|', "/")
                ));
            }
        }
    }
    let mut notes = Vec::new();
    for set in &report.sets {
        let counts: Vec<String> = [
            ProblemKind::BadLine,
            ProblemKind::MissingFile,
            ProblemKind::Undecodable,
        ]
        .iter()
        .filter(|k| set.skipped(**k) > 0)
        .map(|k| format!("{} {}", set.skipped(*k), k.name()))
        .collect();
        if !counts.is_empty() {
            notes.push(format!("{}: skipped {}", set.name, counts.join(", ")));
        }
    }
    for r in &report.rows {
        if !r.failed.is_empty() {
            notes.push(format!(
                "{} / {}: {} utterances failed to transcribe",
                r.scheme,
                r.set,
                r.failed.len()
            ));
        }
    }
    if let Err(e) = &report.rss_reset {
        notes.push(format!(
            "{e}: peak RSS is the process's peak up to that row"
        ));
    }
    if !notes.is_empty() {
        s.push('\n');
        for n in notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}

fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// The whole report as JSON (per-utterance results included).
pub fn to_json(report: &Report) -> Value {
    let sets: Vec<Value> = report
        .sets
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "dir": s.dir.display().to_string(),
                "utterances": s.utterances,
                "skipped": {
                    "bad_lines": s.skipped(ProblemKind::BadLine),
                    "missing_files": s.skipped(ProblemKind::MissingFile),
                    "undecodable_files": s.skipped(ProblemKind::Undecodable),
                },
                "problems": s.problems.iter().map(|p| json!({
                    "line": p.line,
                    "file": p.file,
                    "kind": p.kind.name(),
                    "message": p.message,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let rows: Vec<Value> = report
        .rows
        .iter()
        .map(|r| {
            let (status, reason) = match &r.status {
                Status::Ok => ("ok", None),
                Status::Skipped(w) => ("skipped", Some(w.as_str())),
                Status::Failed(w) => ("failed", Some(w.as_str())),
            };
            let c = &r.counts;
            json!({
                "scheme": r.scheme,
                "set": r.set,
                "status": status,
                "reason": reason,
                "file": r.file.as_ref().map(|p| p.display().to_string()),
                "file_bytes": r.file_bytes,
                "percent_of_f32": 100.0 * r.file_bytes as f64 / report.f32_bytes.max(1) as f64,
                "wer": finite(c.wer()),
                "substitutions": c.sub,
                "deletions": c.del,
                "insertions": c.ins,
                "ref_words": c.ref_words,
                "utterances_done": r.utterances.len(),
                "audio_s": r.audio_s,
                "process_s": r.process_s,
                "rtf": finite(r.rtf()),
                "encoder_ms_per_window": r.encoder_ms_per_window(),
                "windows": r.windows,
                "decode_ms_per_token": r.decode_ms_per_token(),
                "decode_tokens": r.decode_tokens,
                "decoded_windows": r.decoded_windows(),
                "fallback_windows": r.fallbacks().iter().map(|(t, n)| json!({"temperature": t, "windows": n})).collect::<Vec<_>>(),
                "peak_rss_bytes": r.peak_rss,
                "failed": r.failed.iter().map(|(f, e)| json!({"file": f, "error": e})).collect::<Vec<_>>(),
                "utterances": r.utterances.iter().map(|u| json!({
                    "file": u.file,
                    "reference": u.reference,
                    "hypothesis": u.hypothesis,
                    "reference_normalized": u.reference_norm,
                    "hypothesis_normalized": u.hypothesis_norm,
                    "substitutions": u.counts.sub,
                    "deletions": u.counts.del,
                    "insertions": u.counts.ins,
                    "ref_words": u.counts.ref_words,
                    "wer": finite(u.counts.wer()),
                    "audio_s": u.audio_s,
                    "seconds": u.seconds,
                    "window_temperatures": u.window_temperatures,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "model": report.model,
        "model_path": report.model_path.display().to_string(),
        "f32_bytes": report.f32_bytes,
        "threads": report.threads,
        "kernels": report.kernels,
        "peak_rss_reset": report.rss_reset.as_ref().err(),
        "finished": report.finished,
        "wer_definition": "corpus: total (S + D + I) / total reference words; null when there are no reference words but some insertions",
        "sets": sets,
        "results": rows,
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader
/// (or a crash) never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display().to_string(), e))
}

/// Rewrites the JSON report: on demand, or at most once a second.
pub struct JsonWriter {
    path: Option<PathBuf>,
    last: Option<Instant>,
}

impl JsonWriter {
    pub fn new(path: Option<PathBuf>) -> JsonWriter {
        JsonWriter { path, last: None }
    }

    /// Writes now if `force` or a second has passed since the last write.
    pub fn write(&mut self, report: &Report, force: bool) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !force
            && self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(&to_json(report))
            .map_err(|e| Error::Invalid(format!("JSON report: {e}")))?;
        write_atomic(path, text.as_bytes())?;
        self.last = Some(Instant::now());
        Ok(())
    }
}

// ------------------------------------------------------------------ plot

/// Font files tried for the PNG's text, after the one the caller names
/// (the CLI: `$SOTTO_FONT`).
/// Debian/Ubuntu: package `fonts-dejavu-core`.
const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The family name plots use once [`register_font`] succeeded.
pub const FONT: &str = "sans-serif";

/// Registers a TrueType font with plotters once (it renders text itself, with
/// ab_glyph, so it needs a font file); `Err` says which files were tried.
pub fn register_font(font: Option<&Path>) -> std::result::Result<(), String> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let first = font.map(|p| p.display().to_string());
        let candidates: Vec<&str> = first.iter().map(String::as_str).chain(FONT_FILES.iter().copied()).collect();
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FONT, plotters::style::FontStyle::Normal, bytes)
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no usable TrueType font for the plot (set SOTTO_FONT=FILE.ttf or install fonts-dejavu-core); tried {}",
            candidates.join(", ")
        ))
    })
    .clone()
}

/// A point of the plot: (size MB, WER %, scheme).
type Point = (f64, f64, String);

fn plot_points(report: &Report) -> Vec<(String, Vec<Point>)> {
    report
        .sets
        .iter()
        .map(|set| {
            let pts = report
                .rows
                .iter()
                .filter(|r| r.set == set.name && r.status == Status::Ok && r.counts.ref_words > 0)
                .map(|r| (r.file_bytes as f64 / MB, wer_pct(r), r.scheme.clone()))
                .collect();
            (set.name.clone(), pts)
        })
        .collect()
}

/// Draws WER against model size, one colour per set, one labelled point per
/// scheme, into `dir/wer_vs_size.svg` and `.png`; returns the files written.
/// `font`: a TrueType file tried before the usual system fonts.
pub fn plot(report: &Report, dir: &Path, font: Option<&Path>) -> Result<Vec<PathBuf>> {
    register_font(font).map_err(Error::Invalid)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let series = plot_points(report);
    let svg = dir.join("wer_vs_size.svg");
    let png = dir.join("wer_vs_size.png");
    let title = format!("{}: WER vs model size", report.model);
    let f32_mb = report.f32_bytes as f64 / MB;
    {
        let root = plotters::prelude::SVGBackend::new(&svg, (900, 600));
        draw(root, &title, &series, f32_mb)
            .map_err(|e| Error::Invalid(format!("{}: {e}", svg.display())))?;
    }
    {
        let root = plotters::prelude::BitMapBackend::new(&png, (900, 600));
        draw(root, &title, &series, f32_mb)
            .map_err(|e| Error::Invalid(format!("{}: {e}", png.display())))?;
    }
    Ok(vec![svg, png])
}

fn draw<B: plotters::prelude::DrawingBackend>(
    backend: B,
    title: &str,
    series: &[(String, Vec<Point>)],
    f32_mb: f64,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    B::ErrorType: 'static,
{
    use plotters::prelude::*;
    let root = backend.into_drawing_area();
    root.fill(&WHITE)?;
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let x_max = all.clone().map(|p| p.0).fold(0.0f64, f64::max);
    let y_max = all.map(|p| p.1).fold(0.0f64, f64::max);
    let x_max = if x_max > 0.0 {
        x_max * 1.15
    } else {
        f32_mb.max(1.0)
    };
    let y_max = (y_max * 1.2).max(1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("model file size (MB)")
        .y_desc("WER (%)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    // Schemes of equal size (int4-rtn / int4-hqq) land on top of each other:
    // each label moves down one line per label already placed close by.
    let mut placed: Vec<(f64, f64)> = Vec::new();
    for (i, (set, pts)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let style = (FONT, 13).into_font().color(&colour);
        let mut elements = Vec::new();
        for (x, y, name) in pts {
            let near = placed
                .iter()
                .filter(|(px, py)| (px - x).abs() < 0.08 * x_max && (py - y).abs() < 0.05 * y_max)
                .count() as i32;
            placed.push((*x, *y));
            elements.push(
                EmptyElement::at((*x, *y))
                    + Circle::new((0, 0), 5, colour.filled())
                    + Text::new(
                        format!("{name} ({y:.1}%)"),
                        (8, -14 + 15 * near),
                        style.clone(),
                    ),
            );
        }
        chart
            .draw_series(elements)?
            .label(set.as_str())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::wer::Counts;
    use crate::eval::SetInfo;

    fn fake_report() -> Report {
        let sets = ["test-clean", "test-other"];
        let schemes = [
            ("f16", 76.0, 2.9, 7.1),
            ("int8", 40.0, 3.0, 7.3),
            ("int4-rtn", 23.0, 4.1, 9.8),
            ("int4-hqq", 23.0, 3.6, 9.5),
            ("int3-hqq", 18.0, 8.5, 16.0),
        ];
        let mut rows = Vec::new();
        for (name, mb, clean, other) in schemes {
            for (set, wer) in sets.iter().zip([clean, other]) {
                let mut r = Row::new(name, set, Status::Ok);
                r.file_bytes = (mb * MB) as u64;
                r.counts = Counts {
                    ref_words: 1000,
                    sub: (wer * 10.0) as usize,
                    del: 0,
                    ins: 0,
                };
                r.audio_s = 100.0;
                r.process_s = 15.0;
                rows.push(r);
            }
        }
        let mut skipped = Row::new(
            "int8-static",
            "test-clean",
            Status::Skipped("no | calibration".into()),
        );
        skipped.file_bytes = 0;
        rows.push(skipped);
        Report {
            model: "tiny.en".into(),
            model_path: "tiny.en.sotto".into(),
            f32_bytes: 151_000_000,
            threads: 2,
            kernels: "scalar".into(),
            rss_reset: Err("no reset here".into()),
            sets: sets
                .iter()
                .map(|s| SetInfo {
                    name: s.to_string(),
                    dir: PathBuf::from(s),
                    utterances: 10,
                    problems: Vec::new(),
                })
                .collect(),
            rows,
            finished: true,
        }
    }

    #[test]
    fn table_json_and_plot() {
        let rep = fake_report();
        let md = markdown(&rep);
        assert!(md.contains("| int4-hqq | test-other | 0 | 9.50 |"), "{md}");
        assert!(md.contains("skipped: no / calibration"), "{md}");
        assert!(md.contains("no reset here"), "{md}");
        let v = to_json(&rep);
        assert_eq!(v["results"].as_array().unwrap().len(), 11);
        assert_eq!(v["results"][10]["status"], "skipped");
        assert_eq!(v["peak_rss_reset"], "no reset here");

        let dir = std::env::temp_dir().join(format!("sotto-plot-{}", std::process::id()));
        match plot(&rep, &dir, None) {
            Ok(files) => {
                let svg = std::fs::read_to_string(&files[0]).unwrap();
                assert!(svg.contains("int3-hqq (8.5%)"));
                assert!(std::fs::metadata(&files[1]).unwrap().len() > 1000);
                if let Ok(keep) = std::env::var("SOTTO_KEEP_PLOT") {
                    std::fs::copy(&files[1], keep).unwrap();
                }
            }
            // A missing font is a failure in CI (which installs one), else a note.
            Err(e) if std::env::var_os("CI").is_none() => eprintln!("no plot: {e}"),
            Err(e) => panic!("plot failed: {e}"),
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn json_rewrites_atomically() {
        let dir = std::env::temp_dir().join(format!("sotto-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        let mut w = JsonWriter::new(Some(path.clone()));
        let mut rep = fake_report();
        w.write(&rep, true).unwrap();
        rep.rows.truncate(1);
        // Throttled: within a second only a forced write lands.
        w.write(&rep, false).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["results"].as_array().unwrap().len(), 11);
        w.write(&rep, true).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["results"].as_array().unwrap().len(), 1);
        assert!(!dir.join("r.json.tmp").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
