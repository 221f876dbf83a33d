//! Mixed precision by measured sensitivity (`sotto quantize --budget`): the
//! knapsack's choices, budget checks, a mixed tiny.en file, and the `--report`
//! total line without NaN.
mod common;

use sotto::format::ModelFile;
use sotto::quantize::{
    check_options, mixed::choose, quantize_model, Method, QuantizeOptions, QuantizeReport, Scheme,
    TensorReport,
};

/// Four equal tensors, options (int4 g128, int4 g64, int8, f16) at 4.25 / 4.5 /
/// 8.25 / 16 bits per weight, sensitivities 1 < 2 < 4 < 8: within any budget the
/// more sensitive tensor never gets fewer bits than a less sensitive one, and the
/// bytes stay within the budget.
#[test]
fn knapsack_follows_sensitivity_and_budget() {
    let elems = 1000u64;
    let bits = [4.25, 4.5, 8.25, 16.0];
    let mse = [1.2, 1.0, 0.004, 0.0];
    let curvature = [1.0, 2.0, 4.0, 8.0];
    let bytes: Vec<Vec<u64>> = (0..4)
        .map(|_| {
            bits.iter()
                .map(|b| (b * elems as f64 / 8.0) as u64)
                .collect()
        })
        .collect();
    let value: Vec<Vec<f64>> = curvature
        .iter()
        .map(|c| mse.iter().map(|m| c * m).collect())
        .collect();
    for budget in [4.25, 4.4, 4.5, 5.0, 6.0, 7.5, 9.0, 12.0, 16.0] {
        let cap = (budget * 4.0 * elems as f64 / 8.0) as u64;
        let pick = choose(&value, &bytes, cap);
        let used: u64 = pick.iter().enumerate().map(|(i, &j)| bytes[i][j]).sum();
        assert!(used <= cap, "budget {budget}: {used} > {cap} bytes");
        for i in 1..4 {
            assert!(
                pick[i] >= pick[i - 1],
                "budget {budget}: tensor {i} (more sensitive) got {pick:?}"
            );
        }
        if budget >= 16.0 {
            assert_eq!(pick, vec![3; 4]);
        }
        if budget >= 4.5 {
            // Room for every tensor at g64 at least.
            assert!(pick.iter().all(|&j| j >= 1), "budget {budget}: {pick:?}");
        }
        if budget == 4.25 {
            assert_eq!(pick, vec![0; 4]);
        }
    }
    // At 5.5 bits the most sensitive tensor is bought int8 first.
    let pick = choose(&value, &bytes, (5.5 * 4.0 * elems as f64 / 8.0) as u64);
    assert_eq!(pick, vec![1, 1, 1, 2]);
}

fn opts(budget: f64) -> QuantizeOptions {
    QuantizeOptions {
        scheme: Scheme::Int4Asym,
        group: 64,
        method: Method::Hqq,
        calibrate: Some(common::jfk().parent().unwrap().to_path_buf()),
        budget: Some(budget),
        threads: 2,
        ..QuantizeOptions::default()
    }
}

#[test]
fn hostile_budgets_are_clear_errors() {
    for (b, want) in [
        (f64::NAN, "positive number"),
        (-1.0, "positive number"),
        (0.0, "positive number"),
        (f64::INFINITY, "positive number"),
        (17.0, "above f16"),
    ] {
        let e = check_options(&opts(b)).unwrap_err().to_string();
        assert!(e.contains("--budget") && e.contains(want), "{b}: {e}");
    }
    let e = check_options(&QuantizeOptions {
        calibrate: None,
        ..opts(4.5)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("--calibrate"), "{e}");
    let e = check_options(&QuantizeOptions {
        method: Method::Gptq,
        ..opts(4.5)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("gptq"), "{e}");
    let e = check_options(&QuantizeOptions {
        scheme: Scheme::Int8Row,
        group: 0,
        method: Method::Rtn,
        ..opts(8.5)
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("grouped"), "{e}");
    assert!(check_options(&opts(4.5)).is_ok());

    // Below every tensor at int4 g128 (4.25 bits + padding): refused before work.
    let path = common::model_path("tiny.en");
    if !path.is_file() {
        return common::skip_or_fail("tiny.en model missing");
    }
    let file = ModelFile::open(&path).unwrap();
    let out = std::env::temp_dir().join(format!("sotto-mixed-low-{}.sotto", std::process::id()));
    let e = quantize_model(&file, &out, &opts(4.0), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("below the least") && e.contains("int4 g128"),
        "{e}"
    );
    assert!(!out.exists());
}

/// tiny.en at 4.5 bits per weight, sensitivities measured on jfk.wav alone: the
/// budget holds, more than one type is chosen, and the file transcribes jfk.
#[test]
fn mixed_tiny_en_within_budget_transcribes_jfk() {
    let path = common::model_path("tiny.en");
    if !path.is_file() {
        return common::skip_or_fail("tiny.en model missing");
    }
    let file = ModelFile::open(&path).unwrap();
    let calib = std::env::temp_dir().join(format!("sotto-mixed-calib-{}", std::process::id()));
    std::fs::create_dir_all(&calib).unwrap();
    std::fs::copy(common::jfk(), calib.join("jfk.wav")).unwrap();
    let out = calib.join("mixed.sotto");
    let report = quantize_model(
        &file,
        &out,
        &QuantizeOptions {
            calibrate: Some(calib.clone()),
            ..opts(4.5)
        },
        &|_, _| {},
    )
    .unwrap();
    assert!(
        report.bits_per_weight <= 4.5,
        "{} bits/weight",
        report.bits_per_weight
    );
    let q = ModelFile::open(&out).unwrap();
    let (mut elems, mut bytes) = (0u64, 0u64);
    let mut kinds = std::collections::BTreeSet::new();
    for t in q.tensors() {
        if sotto::quantize::is_quantizable_name(&t.name, t.shape.len()) {
            elems += t.elements() as u64;
            bytes += t.len;
            kinds.insert((t.etype.name(), t.group));
        }
    }
    assert!(bytes as f64 * 8.0 / elems as f64 <= 4.5);
    assert!(kinds.len() >= 2, "{kinds:?}");
    // Measured, finite, sorted most sensitive first; one per quantizable tensor.
    assert_eq!(report.sensitivity.len(), report.tensors.len());
    assert!(report
        .sensitivity
        .iter()
        .all(|s| s.kl.is_finite() && s.kl >= 0.0));
    assert!(report.sensitivity.windows(2).all(|w| w[0].kl >= w[1].kl));
    assert!(report.sensitivity[0].kl > 0.0);

    let m = sotto::Model::load(&out).unwrap();
    let samples = sotto::audio::load_audio(&common::jfk()).unwrap();
    let mut o = sotto::Options::default();
    o.threads = 2;
    let text = m.transcribe(&samples, &o).unwrap().text;
    let words = common::words(&text).join(" ");
    assert!(
        words.contains("ask not what your country can do for you"),
        "{text}"
    );
    std::fs::remove_dir_all(&calib).ok();
}

/// GPTQ rows have no RTN RMSE: the total names the tensors it covers, or n/a, never NaN.
#[test]
fn report_total_has_no_nan() {
    let t = |name: &str, rtn: f32| TensorReport {
        name: name.into(),
        scheme: "int4".into(),
        rtn_rmse: rtn,
        method_rmse: 0.01,
        bytes: 100,
        elements: 200,
        output_error: Some((0.1, 0.01)),
    };
    let mut r = QuantizeReport {
        tensors: vec![t("a/weight", f32::NAN), t("b/weight", f32::NAN)],
        file_bytes: 1000,
        bits_per_weight: 4.0,
        sensitivity: Vec::new(),
        sensitivity_seconds: 0.0,
        prescale: Vec::new(),
        prescale_seconds: 0.0,
    };
    let s = r.table(Method::Gptq, 4000);
    assert!(!s.contains("NaN"), "{s}");
    assert!(s.contains("(RTN n/a)"), "{s}");
    r.tensors.push(t("c/weight", 0.02));
    let s = r.table(Method::Gptq, 4000);
    assert!(!s.contains("NaN"), "{s}");
    assert!(s.contains("RTN 2.000e-2 over the 1 tensors"), "{s}");
}
