//! The CLI's outputs: several formats into --output-dir (openai-whisper's names,
//! written whole or not at all), audio from standard input (a container or raw
//! s16le), and the decoding flags.
mod common;
use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sotto(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sotto");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.unwrap_or(&[]).to_vec();
    // sotto may exit before reading (bad arguments): a broken pipe is no failure.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sotto failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failed(out: &Output, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(says), "{err}");
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sotto-outputs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn several_formats_into_a_directory() {
    let model = model_path("tiny.en");
    let (m, a) = (model.to_str().unwrap(), jfk());
    let dir = tmp("formats");
    let d = dir.to_str().unwrap();
    let base = ["transcribe", a.to_str().unwrap(), "-m", m, "-t", "2"];
    let args = [
        &base[..],
        &[
            "--format",
            "txt,srt,vtt,json,tsv,lrc,csv",
            "--output-dir",
            d,
        ],
    ]
    .concat();
    assert_eq!(ok(&sotto(&args, None)), "");
    assert_eq!(
        listing(&dir),
        ["jfk.csv", "jfk.json", "jfk.lrc", "jfk.srt", "jfk.tsv", "jfk.txt", "jfk.vtt"]
    );
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("jfk.{ext}"))).unwrap();
    assert_eq!(words(&read("txt")), words(JFK));
    assert!(
        read("srt").starts_with("1\n00:00:00,000 --> "),
        "{}",
        read("srt")
    );
    assert!(read("vtt").starts_with("WEBVTT\n\n00:00:00.000 --> "));
    assert!(
        read("tsv").starts_with("start\tend\ttext\n0\t"),
        "{}",
        read("tsv")
    );
    assert!(
        read("lrc").starts_with("[by:sotto]\n[00:00.00]"),
        "{}",
        read("lrc")
    );
    assert!(
        read("csv").starts_with("start,end,text\n0,"),
        "{}",
        read("csv")
    );
    let json: serde_json::Value = serde_json::from_str(&read("json")).unwrap();
    for s in json["segments"].as_array().unwrap() {
        let (t, p) = (
            s["tokens"].as_array().unwrap(),
            s["token_probs"].as_array().unwrap(),
        );
        assert!(!t.is_empty() && t.len() == p.len(), "{s}");
        assert!(
            p.iter().all(|p| (0.0..=1.0).contains(&p.as_f64().unwrap())),
            "{s}"
        );
    }
    // The single-format output on stdout is what the file holds.
    let args = [&base[..], &["--format", "srt"]].concat();
    assert_eq!(ok(&sotto(&args, None)), read("srt"));

    // Several formats need a directory; a failing input writes nothing.
    failed(
        &sotto(&[&base[..], &["--format", "srt,vtt"]].concat(), None),
        "--output-dir",
    );
    let bad = tmp("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let junk = bad.join("junk.wav");
    std::fs::write(&junk, b"RIFF not really a wave file").unwrap();
    let out_dir = bad.join("out");
    let args = [
        "transcribe",
        junk.to_str().unwrap(),
        "-m",
        m,
        "--format",
        "srt,json",
        "--output-dir",
        out_dir.to_str().unwrap(),
    ];
    failed(&sotto(&args, None), "junk.wav");
    assert!(listing(&out_dir).is_empty(), "{:?}", listing(&out_dir));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&bad);
}

#[test]
fn standard_input_and_decode_flags() {
    let model = model_path("tiny.en");
    let m = model.to_str().unwrap();
    let wav = std::fs::read(jfk()).unwrap();
    let args = ["transcribe", "-", "-m", m, "-t", "2"];
    let from_stdin = ok(&sotto(&args, Some(&wav)));
    assert_eq!(words(&from_stdin), words(JFK));
    // Raw s16le: jfk.wav's samples (16-kHz s16 mono) without the container.
    let samples = sotto::audio::load_audio(&jfk()).unwrap();
    let raw: Vec<u8> = samples
        .iter()
        .flat_map(|&s| ((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    assert_eq!(
        ok(&sotto(&[&args[..], &["--raw"]].concat(), Some(&raw))),
        from_stdin
    );
    failed(&sotto(&args, Some(&[])), "standard input");
    failed(
        &sotto(&[&args[..], &["--raw"]].concat(), Some(&[1, 2, 3])),
        "even number of bytes",
    );
    failed(
        &sotto(&["transcribe", "-", "-", "-m", m], Some(&wav)),
        "once",
    );

    // Every decoding flag parses; text in --suppress-tokens is encoded.
    let flags = [
        "transcribe",
        "-",
        "-m",
        m,
        "-t",
        "2",
        "--prompt",
        "Ask not. Fellow Americans!",
        "--carry-initial-prompt",
        "--suppress-tokens=-1,.",
        "--suppress-blank",
        "false",
        "--temperature",
        "0",
        "--temperature-increment",
        "0.5",
        "--compression-ratio-threshold",
        "2.4",
        "--logprob-threshold",
        "-1",
        "--no-speech-threshold",
        "0.6",
        "--max-context",
        "100",
        "--max-initial-timestamp",
        "1",
        "--no-condition-on-previous-text",
        "--max-chars-per-second",
        "30",
        "--seed",
        "1",
    ];
    let text = ok(&sotto(&flags, Some(&wav)));
    assert_eq!(words(&text), words(JFK));
    assert!(!text.contains('.'), "{text}");
    failed(
        &sotto(&[&args[..], &["--temperature", "2"]].concat(), Some(&wav)),
        "temperature",
    );
}
