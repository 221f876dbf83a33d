//! AWQ and SmoothQuant (`src/quantize/awq.rs`): folding the per-channel scales into
//! the layer norms and value rows leaves the float network's outputs unchanged
//! (arbitrary scales, and the scales the searches choose on calibration audio);
//! method names parse and bad ones are refused; bad option combinations are errors.
mod common;

use common::*;
use sotto::audio::{load_audio, log_mel_spectrogram, N_FRAMES, N_SAMPLES};
use sotto::format::ModelFile;
use sotto::quantize::awq::{
    fold_groups, fold_model, method_name, parse_method, prescale_model, Prescale, Producer,
};
use sotto::quantize::{check_options, Activations, Method, QuantizeOptions, Scheme};
use sotto::Model;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sotto-awq-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Logits of the first decoder positions over jfk's first window.
fn logits(path: &Path) -> Vec<Vec<f32>> {
    let model = Model::load(path).unwrap();
    let samples = load_audio(&jfk()).unwrap();
    let nm = model.config().n_mels as usize;
    let (mel, frames) = log_mel_spectrogram(&samples, N_SAMPLES, model.file().mel_filters(), nm);
    let mel: Vec<f32> = (0..nm)
        .flat_map(|m| mel[m * frames..m * frames + N_FRAMES].iter().copied())
        .collect();
    let window = model.encode_window(&mel, 2).unwrap();
    let t = model.config().tokens.clone();
    let mut state = model.decoder_state();
    // sot, no-timestamps, then " And so my" in GPT-2 ids.
    let tokens = [t.sot, t.no_timestamps, 843, 523, 616];
    model
        .decode_tokens(&window, &mut state, &tokens, &[1, 2, 3, 4], 2)
        .unwrap()
}

/// Largest |a − b| relative to the largest |a|.
fn rel_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let (mut d, mut m) = (0f32, 0f32);
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!(ra.len(), rb.len());
        for (x, y) in ra.iter().zip(rb) {
            d = d.max((x - y).abs());
            m = m.max(x.abs());
        }
    }
    d / m.max(f32::MIN_POSITIVE)
}

fn tiny() -> Option<PathBuf> {
    let path = model_path("tiny.en");
    if !path.is_file() {
        skip_or_fail("tiny.en model missing");
        return None;
    }
    Some(path)
}

/// Every foldable group of tiny.en is found (4 + 4 layers: per encoder layer two
/// norms and the values; per decoder layer three norms and two value blocks; the
/// encoder's final norm feeding all four cross-attention k/v), and scales spanning
/// 1/4 … 4 folded into all of them leave the float logits unchanged — while the
/// folded file really differs from the original.
#[test]
fn fold_leaves_float_outputs_unchanged() {
    let Some(path) = tiny() else { return };
    let file = ModelFile::open(&path).unwrap();
    let groups = fold_groups(&file);
    assert_eq!(groups.len(), 4 * 3 + 4 * 5 + 1, "{groups:#?}");
    let enc = groups
        .iter()
        .find(|g| g.name() == "encoder/layer_norm")
        .expect("the encoder's final norm is a group");
    assert_eq!(enc.consumers.len(), 4);
    let rows = groups
        .iter()
        .filter(|g| matches!(g.producer, Producer::Rows { .. }))
        .count();
    assert_eq!(rows, 4 + 2 * 4);
    let scales: Vec<Vec<f32>> = groups
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            (0..g.k)
                .map(|j| {
                    let u = ((j * 7919 + gi * 104729) % 1000) as f32 / 999.0;
                    4f32.powf(2.0 * u - 1.0)
                })
                .collect()
        })
        .collect();
    let out = tmp("folded.sotto");
    fold_model(&file, &out, &groups, &scales).unwrap();
    let folded = ModelFile::open(&out).unwrap();
    let gamma = "encoder/layer_0/self_attention/layer_norm/gamma";
    let g0 = folded.f32s(folded.tensor(gamma).unwrap()).unwrap();
    let g1 = file.f32s(file.tensor(gamma).unwrap()).unwrap();
    assert!(g0
        .iter()
        .zip(g1)
        .any(|(a, b)| (a - b).abs() > 1e-3 * b.abs()));
    drop(folded);
    let reference = logits(&path);
    let d = rel_diff(&reference, &logits(&out));
    eprintln!("folded: relative logit change {d:e}");
    assert!(
        d < 2e-3,
        "folding changed the float logits by {d} (relative)"
    );

    // The control: the same scales with one norm's beta left undivided change the
    // logits far beyond that tolerance.
    let mut wrong = groups.clone();
    let i = wrong
        .iter()
        .position(|g| g.name() == "encoder/layer_0/ffn/layer_norm")
        .unwrap();
    if let Producer::Norm { gamma, beta } = &mut wrong[i].producer {
        *beta = gamma.clone();
    }
    fold_model(&file, &out, &wrong, &scales).unwrap();
    let d = rel_diff(&reference, &logits(&out));
    eprintln!("mis-folded: relative logit change {d:e}");
    assert!(d > 2e-2, "a wrong fold went unnoticed ({d})");
    let _ = std::fs::remove_file(&out);

    // Bad scales are refused.
    let mut bad = scales.clone();
    bad[0][0] = 0.0;
    assert!(fold_model(&file, &out, &groups, &bad).is_err());
    assert!(fold_model(&file, &out, &groups, &scales[1..]).is_err());
}

fn calib_dir() -> PathBuf {
    let dir = tmp("calib");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(jfk(), dir.join("jfk.wav")).unwrap();
    dir
}

/// The searches (AWQ for int4, SmoothQuant for static int8) on jfk, restricted to
/// encoder layer 0, decoder layer 0 and the encoder's final norm: they choose
/// scales for some groups (never a larger search error than no scaling), and the
/// folded float model computes the same logits.
#[test]
fn searched_scales_fold_without_changing_outputs() {
    let Some(path) = tiny() else { return };
    let file = ModelFile::open(&path).unwrap();
    let keep: Vec<String> = [
        "encoder/layer_1",
        "encoder/layer_2",
        "encoder/layer_3",
        "decoder/layer_1",
        "decoder/layer_2",
        "decoder/layer_3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let reference = logits(&path);
    for (prescale, scheme, activations) in [
        (Prescale::Awq, Scheme::Int4Asym, Activations::None),
        (Prescale::Smooth, Scheme::Int8Row, Activations::Static),
    ] {
        let opts = QuantizeOptions {
            scheme,
            group: if scheme == Scheme::Int4Asym { 64 } else { 0 },
            activations,
            prescale,
            calibrate: Some(calib_dir()),
            keep: keep.clone(),
            threads: 2,
            ..QuantizeOptions::default()
        };
        check_options(&opts).unwrap();
        let out = tmp("searched.sotto");
        let choices = prescale_model(&file, &out, &opts, &|_| {}).unwrap();
        assert_eq!(choices.len(), 3 + 5 + 1, "{prescale:?}");
        assert!(
            choices.iter().any(|c| c.alpha.is_some()),
            "{prescale:?}: no group was scaled"
        );
        for c in &choices {
            assert!(c.error_after <= c.error_before, "{prescale:?}: {c:?}");
            assert!(c.scales.iter().all(|s| s.is_finite() && *s > 0.0));
        }
        let d = rel_diff(&reference, &logits(&out));
        let _ = std::fs::remove_file(&out);
        assert!(d < 2e-3, "{prescale:?}: float logits changed by {d}");
    }
}

#[test]
fn method_names_parse_and_bad_ones_are_refused() {
    for (name, m, p) in [
        ("rtn", Method::Rtn, Prescale::None),
        ("hqq", Method::Hqq, Prescale::None),
        ("gptq", Method::Gptq, Prescale::None),
        ("awq", Method::Rtn, Prescale::Awq),
        ("awq+rtn", Method::Rtn, Prescale::Awq),
        ("AWQ+HQQ", Method::Hqq, Prescale::Awq),
        ("awq+gptq", Method::Gptq, Prescale::Awq),
    ] {
        assert_eq!(parse_method(name).unwrap(), (m, p), "{name}");
        assert_eq!(parse_method(&method_name(m, p)).unwrap(), (m, p));
    }
    for bad in [
        "", "awq+", "awq+awq", "gptq+awq", "smooth", "awq+foo", "rtnx",
    ] {
        let e = parse_method(bad).unwrap_err().to_string();
        assert!(e.contains("unknown method"), "{bad}: {e}");
    }
    // AWQ and SmoothQuant need calibration audio; SmoothQuant static activations;
    // neither combines with a bit budget.
    let base = QuantizeOptions {
        scheme: Scheme::Int4Asym,
        prescale: Prescale::Awq,
        ..QuantizeOptions::default()
    };
    let e = check_options(&base).unwrap_err().to_string();
    assert!(e.contains("--calibrate"), "{e}");
    let smooth = QuantizeOptions {
        scheme: Scheme::Int8Row,
        prescale: Prescale::Smooth,
        calibrate: Some(PathBuf::from("/x")),
        ..QuantizeOptions::default()
    };
    let e = check_options(&smooth).unwrap_err().to_string();
    assert!(e.contains("static"), "{e}");
    check_options(&QuantizeOptions {
        activations: Activations::Static,
        ..smooth.clone()
    })
    .unwrap();
    let e = check_options(&QuantizeOptions {
        calibrate: Some(PathBuf::from("/x")),
        budget: Some(4.5),
        ..base.clone()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("budget"), "{e}");
    check_options(&QuantizeOptions {
        calibrate: Some(PathBuf::from("/x")),
        ..base
    })
    .unwrap();
}
