//! Helpers shared by the real-model tests: model files come from the cache
//! (`$SOTTO_HOME`), fetched and converted on first use.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static FETCH: Mutex<()> = Mutex::new(());

/// Path of the converted model `name` (tiny.en, base), fetching it if needed.
pub fn model_path(name: &str) -> PathBuf {
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    sotto::convert::fetch(&home(), name, &|m| eprintln!("{m}"))
        .unwrap_or_else(|e| panic!("cannot fetch {name}: {e}"))
}

/// The model cache the CLI uses (`$SOTTO_HOME`, else `~/.cache/sotto`).
pub fn home() -> PathBuf {
    sotto::convert::sotto_home(std::env::var_os("SOTTO_HOME"), std::env::var_os("HOME"))
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn jfk() -> PathBuf {
    repo_path("samples/jfk.wav")
}

/// Whether the tests run under CI: `CI` is `true` or `1` (GitHub Actions, GitLab and
/// most CI services set `CI=true`; `.ci/run` sets it too).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The one way a test gives up because something outside the repository is missing
/// (a GPU adapter, python3, a Python reference package, a font, a cached model):
/// under CI (`in_ci`) that is a failure — CI installs all of them, so a test there
/// must never pass by not running — and this panics; elsewhere it prints
/// `SKIPPED: reason` and the caller returns.
#[track_caller]
pub fn skip_or_fail(reason: &str) {
    if in_ci() {
        panic!("{reason} (CI is set: a test that cannot run fails instead of skipping)");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Runs a Python helper from tools/; fails the test (never skips) when Python or
/// its packages are missing: `.ci/run` installs them.
pub fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(args)
        .current_dir(repo_path(""))
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed for reference tests (run .ci/run): {e}"));
    assert!(
        out.status.success(),
        "python3 {:?} failed (run .ci/run to install faster-whisper/ctranslate2):\n{}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Lowercase words without punctuation, for comparing transcripts.
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance.
pub fn word_errors(reference: &[String], hyp: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hyp.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hyp.len() + 1];
        for (j, h) in hyp.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(r != h))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hyp.len()]
}

pub const JFK: &str = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
