//! Why static int8 activations lose accuracy: for each linear layer, the range the
//! calibration fixed against the ranges the rows of held-out audio really have.
//!
//! cargo run --release --example activation_ranges -- F16.sotto STATIC.sotto AUDIO...
//!
//! Per layer: the calibrated absmax (act_scale · 127); the largest input seen on the
//! audio; the share of rows whose absmax exceeds the calibrated one (those values are
//! clipped); and the median row's effective int8 levels (127 · row absmax / calibrated
//! absmax) — what dynamic per-row scaling would give 127 of.
use sotto::format::{act_scale_name, ModelFile};
use sotto::Options;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Rows = BTreeMap<String, Vec<f32>>;

fn main() -> sotto::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: activation_ranges F16.sotto STATIC.sotto AUDIO...");
        std::process::exit(2);
    }
    let file = ModelFile::open(args[0].as_ref())?;
    let calibrated = ModelFile::open(args[1].as_ref())?;
    let multilingual = file.config().multilingual;
    let widths: BTreeMap<String, usize> = file
        .tensors()
        .iter()
        .filter(|t| t.shape.len() == 2)
        .map(|t| (t.name.clone(), t.shape[1]))
        .collect();
    let mut model = sotto::Model::from_file(file)?;
    let rows: Arc<Mutex<Rows>> = Arc::default();
    let sink = rows.clone();
    model.set_observer(Some(Box::new(move |name: &str, x: &[f32]| {
        let Some(&k) = widths.get(name) else { return };
        let mut map = sink.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(name.to_string()).or_default();
        entry.extend(
            x.chunks(k)
                .map(|r| r.iter().fold(0f32, |m, v| m.max(v.abs()))),
        );
    })));
    let opts = {
        let mut o = Options::default();
        o.threads = 2;
        o.language = multilingual.then(|| "en".to_string());
        o
    };
    for audio in &args[2..] {
        let samples = sotto::audio::load_audio(audio.as_ref())?;
        model.transcribe(&samples, &opts)?;
    }
    println!("| layer | calibrated absmax | held-out max | rows clipped % | median row levels |");
    println!("|---|---:|---:|---:|---:|");
    let rows = rows.lock().unwrap_or_else(|e| e.into_inner());
    for (name, maxes) in rows.iter() {
        let Some(scale) = act_scale_name(name).and_then(|n| calibrated.tensor(&n).ok().cloned())
        else {
            continue;
        };
        let calib = calibrated.f32s(&scale)?[0] * 127.0;
        let mut sorted = maxes.clone();
        sorted.sort_by(f32::total_cmp);
        let median = sorted[sorted.len() / 2];
        let top = sorted[sorted.len() - 1];
        let clipped =
            maxes.iter().filter(|&&m| m > calib).count() as f64 * 100.0 / maxes.len() as f64;
        println!(
            "| {name} | {calib:.2} | {top:.2} | {clipped:.1} | {:.0} |",
            127.0 * median / calib
        );
    }
    Ok(())
}
