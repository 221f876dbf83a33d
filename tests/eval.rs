//! `sotto eval`: the normaliser against the Python reference (tools/wer.py), and
//! an evaluation run on the real tiny.en model over a set with broken entries.
#![cfg(feature = "eval")]
mod common;

use sotto::eval::manifest::ProblemKind;
use sotto::eval::normalize::normalize;
use sotto::eval::{schemes, EvalConfig, Status};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's evaluation sets (eval/README.md).
fn eval_sets() -> PathBuf {
    root().join("eval")
}

/// Tricky inputs: the Python self-test's, and more.
const CASES: &[&str] = &[
    " He hoped, there would be stew for dinner!",
    "flour-fattened sauce.",
    "Do not you know? DON'T YOU KNOW",
    "I won't go, I can't, I cannot, shan't, ain't, let's, y'all",
    "wanna gonna gotta",
    "Tom's hat. the boys' toys",
    "'TWAS 'QUOTED' WORD, 'tis so",
    "it was \"quoted\" word",
    "Mr. Smith, Mrs Jones, Dr. Who, St. Paul, Prof. X, Capt. Y, Jr. Sr. Lt. Z",
    "The colour of honour, dishonoured neighbours, unfavourable",
    "that same dishonoured bosom; four hours of our tour",
    "His belly counselled him. travelled, quarrelling, marvellous",
    "centre theatre realise recognised grey plough cheque gaol",
    "21 days, In 1850. 1905 1500 2024 1100 1999 2000 999 0 007",
    "the 3rd time, 21st, 2nd, 100th, 11th, 12th, 1st",
    "1,200 and 1,000,000 and 12,345,67 and 1234,567",
    "$5 $2,000 $3.50 $1.5 £3 50 % 7%",
    "1.5 0.25 3.14.15",
    "café NAÏVE Zoë",
    "Well, uh, um... hmm mhm mm uhh umm",
    "umbrella uhm hum humm",
    "<|en|> [MUSIC] hello (laughs) there [unclosed <open",
    "it 's they 're we 'll I 've I 'm he 'd don 't",
    "rock & roll, A&B",
    "x-ray re-enter -- twenty-one",
    "it\u{2019}s \u{2018}single\u{2019} `back`",
    "9,999 1,850 men 10,000th",
    "",
    "   ...   ",
    "ordinals like 23rd, 101st, 1000th, 42nd",
    "a1.5b 12ab 3rdly",
];

/// tools/wer.py's normaliser on `texts`; `None` (after `common::skip_or_fail`, which
/// fails under CI) when python3 cannot be started.
fn python_normalize(texts: &[String]) -> Option<Vec<String>> {
    let script = "import json,sys\nsys.path.insert(0, sys.argv[1])\nimport wer\n\
                  print(json.dumps([wer.normalize(t) for t in json.load(sys.stdin)]))";
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(root().join("tools"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            common::skip_or_fail(&format!(
                "python3 not available ({e}): no comparison with tools/wer.py"
            ));
            return None;
        }
    };
    {
        use std::io::Write;
        let input = serde_json::to_string(texts).unwrap();
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(input.as_bytes())
            .expect("writing to python3");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "tools/wer.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("tools/wer.py's JSON"))
}

fn manifest_texts(dir: &Path) -> Vec<String> {
    let path = dir.join("manifest.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter_map(|l| l.split('\t').nth(2).map(str::to_string))
        .collect()
}

#[test]
fn normaliser_matches_python_reference() {
    let mut texts: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    for set in ["librispeech/test-clean", "librispeech/test-other"] {
        let refs = manifest_texts(&eval_sets().join(set));
        assert!(refs.len() >= 20, "{set}: {} reference texts", refs.len());
        // Also the mixed-case, punctuated form a model would write.
        for r in refs {
            let mut chars = r.to_lowercase().chars().collect::<Vec<_>>();
            if let Some(c) = chars.first_mut() {
                *c = c.to_ascii_uppercase();
            }
            texts.push(chars.into_iter().collect::<String>() + ".");
            texts.push(r);
        }
    }
    let Some(expected) = python_normalize(&texts) else {
        return;
    };
    assert_eq!(expected.len(), texts.len(), "tools/wer.py's answer");
    let mut mismatches = Vec::new();
    for (t, want) in texts.iter().zip(&expected) {
        let got = normalize(t);
        if &got != want {
            mismatches.push(format!("{t:?}\n  rust:   {got:?}\n  python: {want:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} differ:\n{}",
        mismatches.len(),
        texts.len(),
        mismatches.join("\n")
    );
}

#[test]
fn eval_skips_broken_entries_and_scores_the_rest() {
    let jfk = common::jfk();
    let model =
        sotto::convert::fetch(&common::home(), "tiny.en", &|m| eprintln!("{m}")).expect("tiny.en");
    let dir = std::env::temp_dir().join(format!("sotto-eval-set-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&jfk, dir.join("jfk.wav")).unwrap();
    std::fs::write(dir.join("garbage.wav"), b"RIFF this is not audio at all").unwrap();
    std::fs::write(
        dir.join("manifest.tsv"),
        "file\tduration_s\treference_text\tsource\tlicense\n\
         jfk.wav\t11.0\tAND SO MY FELLOW AMERICANS ASK NOT WHAT YOUR COUNTRY CAN DO FOR YOU ASK WHAT YOU CAN DO FOR YOUR COUNTRY\tx\ty\n\
         this line has no tabs\n\
         missing.wav\t1.0\tNOT HERE\tx\ty\n\
         garbage.wav\t1.0\tNOT AUDIO\tx\ty\n",
    )
    .unwrap();
    let json = dir.join("out.json");
    let cfg = EvalConfig {
        model: model.display().to_string(),
        sets: vec![dir.clone()],
        schemes: schemes::parse_schemes("f16").unwrap(),
        threads: 2,
        limit: None,
        calibrate: None,
        requantize: false,
        json: Some(json.clone()),
        progress: false,
        load: Default::default(),
        home: common::home(),
    };
    let log = std::sync::Mutex::new(Vec::<String>::new());
    let report = sotto::eval::run(&cfg, &|m| log.lock().unwrap().push(m.to_string())).unwrap();
    let log = log.into_inner().unwrap();
    assert!(
        log.iter().any(|l| l.contains("bad manifest line")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("missing.wav")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("garbage.wav")), "{log:?}");

    let set = &report.sets[0];
    assert_eq!(set.skipped(ProblemKind::BadLine), 1);
    assert_eq!(set.skipped(ProblemKind::MissingFile), 1);
    assert_eq!(set.skipped(ProblemKind::Undecodable), 1);
    assert_eq!(set.utterances, 1);

    assert_eq!(report.rows.len(), 1);
    let row = &report.rows[0];
    assert_eq!(row.status, Status::Ok);
    assert_eq!(row.utterances.len(), 1);
    assert_eq!(row.counts.ref_words, 22);
    assert!(row.counts.wer() < 0.1, "WER {}", row.counts.wer());
    assert!(row.file_bytes > 0 && row.rtf() > 0.0 && row.windows == 1);
    assert!(row.decode_tokens > 0);
    assert!(report.f32_bytes > row.file_bytes);
    if cfg!(target_os = "linux") {
        assert!(row.peak_rss.unwrap() > 0);
    }

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["finished"], true);
    let u = &v["results"][0]["utterances"][0];
    assert_eq!(u["file"], "jfk.wav");
    assert_eq!(u["ref_words"], 22);
    assert!(u["hypothesis"].as_str().unwrap().contains("country"));
    assert_eq!(v["sets"][0]["skipped"]["undecodable_files"], 1);

    let table = sotto::eval::report::markdown(&report);
    assert!(table.contains("| f16 |"), "{table}");
    assert!(table.contains("1 undecodable audio file"), "{table}");

    // Both plot files appear. The PNG's text needs a TrueType font (fonts-dejavu-core,
    // which .ci/run installs): without one, `common::skip_or_fail` (a failure under CI);
    // any other plot error fails.
    match sotto::eval::report::plot(&report, &dir.join("plot"), None) {
        Ok(files) => {
            assert_eq!(files.len(), 2, "{files:?}");
            for f in &files {
                let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                assert!(bytes.len() > 1000, "{}: {} bytes", f.display(), bytes.len());
                let magic: &[u8] = match f.extension().and_then(|e| e.to_str()) {
                    Some("png") => b"\x89PNG",
                    Some("svg") => b"<svg",
                    other => panic!("unexpected plot file {other:?}"),
                };
                assert!(
                    bytes.windows(magic.len()).take(64).any(|w| w == magic),
                    "{} does not start like a {} file",
                    f.display(),
                    f.extension().unwrap().to_string_lossy()
                );
            }
        }
        Err(e) if e.to_string().contains("no usable TrueType font") => {
            common::skip_or_fail(&format!("the plot: {e}"))
        }
        Err(e) => panic!("plot: {e}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_calibration_skips_static_scheme() {
    let model =
        sotto::convert::fetch(&common::home(), "tiny.en", &|m| eprintln!("{m}")).expect("tiny.en");
    let dir = std::env::temp_dir().join(format!("sotto-eval-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.tsv"), "file\treference_text\n").unwrap();
    let cfg = EvalConfig {
        model: model.display().to_string(),
        sets: vec![dir.clone()],
        schemes: schemes::parse_schemes("int8-static").unwrap(),
        threads: 1,
        limit: None,
        calibrate: None,
        requantize: false,
        json: None,
        progress: false,
        load: Default::default(),
        home: common::home(),
    };
    let report = sotto::eval::run(&cfg, &|_| {}).unwrap();
    assert!(matches!(&report.rows[0].status, Status::Skipped(r) if r.contains("--calibrate")));
    std::fs::remove_dir_all(&dir).ok();
}
