//! The `sotto` binary: output formats are well-formed and bad input gives a clear error.
mod common;

use common::*;
use std::process::{Command, Output};

fn sotto(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(args)
        .output()
        .expect("run sotto")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sotto failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

#[test]
fn formats_are_well_formed() {
    let model = model_path("tiny.en");
    let (m, a) = (model.to_str().unwrap(), jfk());
    let a = a.to_str().unwrap();

    let json: serde_json::Value = serde_json::from_str(&ok(&sotto(&[
        "transcribe",
        a,
        "-m",
        m,
        "-t",
        "2",
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(words(json["text"].as_str().unwrap()), words(JFK));
    assert_eq!(json["language"], "en");
    let segs = json["segments"].as_array().unwrap();
    assert!(!segs.is_empty());
    for s in segs {
        assert!(s["start"].as_f64().unwrap() <= s["end"].as_f64().unwrap());
        assert!(s["text"].is_string());
    }

    let srt = ok(&sotto(&["transcribe", a, "-m", m, "--format", "srt"]));
    let blocks: Vec<&str> = srt.trim_end().split("\n\n").collect();
    assert_eq!(blocks.len(), segs.len());
    for (i, b) in blocks.iter().enumerate() {
        let lines: Vec<&str> = b.lines().collect();
        assert_eq!(lines[0], (i + 1).to_string());
        let (from, to) = lines[1].split_once(" --> ").expect("srt time line");
        for t in [from, to] {
            assert!(
                t.len() == 12 && &t[2..3] == ":" && &t[5..6] == ":" && &t[8..9] == ",",
                "{t}"
            );
        }
        assert!(lines.len() >= 3);
    }

    let vtt = ok(&sotto(&["transcribe", a, "-m", m, "--format", "vtt"]));
    assert!(vtt.starts_with("WEBVTT\n\n"));
    assert!(
        vtt.lines()
            .filter(|l| l.contains(" --> "))
            .all(|l| l.len() == 29 && &l[8..9] == "."),
        "{vtt}"
    );

    let dir = std::env::temp_dir().join(format!("sotto-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.txt");
    ok(&sotto(&[
        "transcribe",
        a,
        "-m",
        m,
        "-o",
        out.to_str().unwrap(),
        "--no-timestamps",
    ]));
    assert_eq!(words(&std::fs::read_to_string(&out).unwrap()), words(JFK));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_give_clear_errors() {
    let model = model_path("tiny.en");
    let m = model.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("sotto-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let missing = dir.join("nope.wav");
    let out = sotto(&["transcribe", missing.to_str().unwrap(), "-m", m]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.wav"));

    let garbage = dir.join("garbage.mp3");
    std::fs::write(&garbage, b"this is not audio at all, just text").unwrap();
    let out = sotto(&["transcribe", garbage.to_str().unwrap(), "-m", m]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("garbage.mp3") && !err.contains("panicked"),
        "{err}"
    );

    let truncated = dir.join("truncated.sotto");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = sotto(&[
        "transcribe",
        jfk().to_str().unwrap(),
        "-m",
        truncated.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("truncated.sotto") && !err.contains("panicked"),
        "{err}"
    );

    let out = sotto(&["transcribe", jfk().to_str().unwrap(), "-m", "no-such-model"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-model"));
    std::fs::remove_dir_all(&dir).ok();
}

/// `sotto bench --json`: the GPU device-time fields are null on the CPU and, on a GPU
/// adapter with timestamp queries, positive numbers.
#[test]
fn bench_reports_gpu_device_time() {
    let model = model_path("tiny.en");
    let (m, a) = (model.to_str().unwrap(), jfk());
    let bench = |device: &str| -> serde_json::Value {
        let args = [
            "bench",
            "-m",
            m,
            "--audio",
            a.to_str().unwrap(),
            "-t",
            "2",
            "--runs",
            "1",
            "--json",
            "--device",
            device,
        ];
        serde_json::from_str(&ok(&sotto(&args))).expect("bench JSON")
    };
    let cpu = bench("cpu");
    assert!(cpu["decode_ms_per_token"].as_f64().is_some_and(|v| v > 0.0));
    assert!(cpu["gpu_encoder_ms_per_window"].is_null(), "{cpu}");
    assert!(cpu["gpu_decode_ms_per_token"].is_null(), "{cpu}");

    #[cfg(feature = "gpu")]
    {
        use sotto::gpu::{AdapterPolicy, Gpu, GpuOptions};
        let timestamps = match Gpu::new(AdapterPolicy::AllowSoftware, &GpuOptions::default()) {
            Ok(g) => g.has_timestamps(),
            Err(e) => {
                skip_or_fail(&format!("GPU part: no GPU adapter ({e})"));
                return;
            }
        };
        let gpu = bench("gpu");
        for field in ["gpu_encoder_ms_per_window", "gpu_decode_ms_per_token"] {
            if timestamps {
                assert!(
                    gpu[field].as_f64().is_some_and(|v| v > 0.0),
                    "{field}: {gpu}"
                );
            } else {
                eprintln!("note: the adapter has no TIMESTAMP_QUERY, so no GPU device time");
                assert!(gpu[field].is_null(), "{field}: {gpu}");
            }
        }
    }
}

/// `bench --roofline` on tiny.en in its quick mode: every kernel row and model
/// stage has a positive roof and the floors sit beside the measured figures.
/// No timing is asserted beyond "positive and finite".
#[test]
fn bench_roofline_reports_roofs_stages_and_floors() {
    let model = model_path("tiny.en");
    let m = model.to_str().unwrap();
    let out = ok(&sotto(&[
        "bench",
        "--roofline",
        "--quick",
        "--json",
        "-m",
        m,
        "-t",
        "2",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("roofline JSON");
    let positive = |x: &serde_json::Value| x.as_f64().is_some_and(|x| x > 0.0 && x.is_finite());
    assert!(v["compute"].as_array().is_some_and(|c| c.len() >= 2), "{v}");
    assert!(v["compute"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| positive(&c["gops_n"])));
    assert!(v["bandwidth"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| positive(&l["gbs_1"])));
    let rows = v["kernel_rows"].as_array().expect("kernel rows");
    assert!(!rows.is_empty());
    for r in rows {
        assert!(positive(&r["roof_gops"]) && positive(&r["floor_ms"]), "{r}");
    }
    let enc = &v["model"]["encoder"];
    let dec = &v["model"]["decoder"];
    for x in [
        &enc["ms_per_window"],
        &enc["floor_ms_per_window"],
        &dec["ms_per_token"],
        &dec["floor_ms_per_token"],
    ] {
        assert!(positive(x), "{v}");
    }
    let names = |s: &serde_json::Value| -> Vec<String> {
        s["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (e, d) = (names(enc), names(dec));
    for want in [
        "encoder conv stem",
        "encoder FFN",
        "encoder attention",
        "cross K/V projection",
    ] {
        assert!(e.iter().any(|n| n == want), "{want} missing from {e:?}");
    }
    for want in [
        "decoder GEMV (projections, FFN)",
        "decoder attention",
        "vocab projection",
    ] {
        assert!(d.iter().any(|n| n == want), "{want} missing from {d:?}");
    }
    // The floor of a whole step is the sum of its stages' floors.
    let sum: f64 = dec["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["floor_ms"].as_f64().unwrap())
        .sum();
    let floor = dec["floor_ms_per_token"].as_f64().unwrap();
    assert!(
        (sum - floor).abs() <= 1e-9 * floor.max(1.0),
        "{sum} vs {floor}"
    );

    // --plot without --roofline is refused by the argument parser.
    let refused = sotto(&["bench", "--plot", "/tmp/x"]);
    assert!(!refused.status.success());
}

#[cfg(unix)]
#[test]
fn a_reader_that_stops_early_ends_sotto_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::fd::AsRawFd;
    use std::process::Stdio;
    let model = model_path("tiny.en");
    let (reader, writer) = std::io::pipe().unwrap();
    // A one-page pipe: the ~15 KB table cannot fit, so sotto is still writing
    // when the reader goes away (as with `sotto info MODEL | head -1`).
    // SAFETY: F_SETPIPE_SZ on a pipe descriptor this test owns.
    let size = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(size >= 4096, "F_SETPIPE_SZ failed");
    let child = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(["info", model.to_str().unwrap()])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sotto");
    let mut reader = BufReader::with_capacity(64, reader);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.starts_with("file: "), "{first}");
    drop(reader);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
