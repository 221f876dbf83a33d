//! WER against bits per weight from `sotto eval` JSON files, as an SVG with the
//! Pareto front (`src/eval/pareto.rs`):
//!
//! ```text
//! cargo run --release --example pareto -- OUT.svg SET NAME=EVAL.json [NAME=EVAL.json ...]
//! ```
//! One series per NAME (JSON files under one NAME are merged, a later file's row
//! replacing an earlier one of the same scheme); `NAME/LABEL=BITS,WER` adds a point
//! measured earlier and reported in docs (e.g. `tiny.en/f16=16,14.88`; a study
//! format by its scheme name is drawn as a square); SET is the evaluation set plotted
//! (e.g. `test-other-90`). Bits per weight are read from each row's model file, so
//! the quantized files must still be where the JSON says.
use sotto::eval::pareto::{plot, points_from_json, Point};
use std::path::Path;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: pareto OUT.svg SET NAME=EVAL.json [NAME=EVAL.json ...]".into());
    }
    let (out, set) = (Path::new(&args[0]), args[1].as_str());
    let mut series: Vec<(String, Vec<Point>)> = Vec::new();
    for a in &args[2..] {
        let (name, path) = a
            .split_once('=')
            .ok_or_else(|| format!("'{a}' is not NAME=EVAL.json"))?;
        if let Some((name, label)) = name.split_once('/') {
            let (bits, wer) = path
                .split_once(',')
                .and_then(|(b, w)| Some((b.parse::<f64>().ok()?, w.parse::<f64>().ok()?)))
                .ok_or_else(|| format!("'{a}' is not NAME/LABEL=BITS,WER"))?;
            let p = Point {
                label: label.to_string(),
                bits,
                wer,
                study: sotto::eval::pareto::STUDY_SCHEMES.contains(&label),
            };
            match series.iter_mut().find(|(n, _)| n == name) {
                Some((_, s)) => s.push(p),
                None => series.push((name.to_string(), vec![p])),
            }
            continue;
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        let pts = points_from_json(&json, set).map_err(|e| format!("{path}: {e}"))?;
        let i = match series.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                series.push((name.to_string(), Vec::new()));
                series.len() - 1
            }
        };
        for p in pts {
            let s = &mut series[i].1;
            s.retain(|q| q.label != p.label);
            s.push(p);
        }
    }
    for (name, pts) in &series {
        for p in pts {
            println!("{name}\t{}\t{:.3} bits\t{:.2} %", p.label, p.bits, p.wer);
        }
    }
    let title = format!("WER ({set}) against bits per weight");
    plot(
        &title,
        &series,
        out,
        std::env::var_os("SOTTO_FONT").as_deref().map(Path::new),
    )
    .map_err(|e| e.to_string())?;
    println!("wrote {}", out.display());
    Ok(())
}
