//! Word timestamps: the alignment pieces on small hand-checked cases, jfk's words
//! against faster-whisper's (`word_timestamps=True`, same weights, run here through
//! tools/compare_words.py), the subtitle layouts of the CLI, and the GPU's fallback.
mod common;

use sotto::decoding::output::{self, Format, Layout};
use sotto::decoding::words::{self, Timing};
use sotto::{Device, Model, Options};
use std::process::Command;

#[test]
fn dtw_small_matrices() {
    // Hand-checked: the cheap cells (0) run (0,0) (0,1) (1,2) (2,3).
    let c = [
        0., 0., 9., 9., //
        9., 9., 0., 9., //
        9., 9., 9., 0.,
    ];
    assert_eq!(words::dtw(&c, 3, 4), vec![(0, 0), (0, 1), (1, 2), (2, 3)]);
    // One row goes straight along it, one column straight down.
    assert_eq!(
        words::dtw(&[1., 2., 3.], 1, 3),
        vec![(0, 0), (0, 1), (0, 2)]
    );
    assert_eq!(words::dtw(&[1., 2.], 2, 1), vec![(0, 0), (1, 0)]);
    // Ties go left in the backtrace (openai-whisper's order): an all-zero
    // matrix walks down the first column, then along the last row.
    assert_eq!(words::dtw(&[0.; 4], 2, 2), vec![(0, 0), (1, 0), (1, 1)]);
}

#[test]
fn median_filter_and_standardize() {
    let x = [5., 1., 9., 2., 7.];
    // width 3, reflected at the ends: [1 5 1] [5 1 9] [1 9 2] [9 2 7] [2 7 2].
    assert_eq!(words::median_filter(&x, 3), vec![1., 5., 2., 7., 2.]);
    assert_eq!(words::median_filter(&[3., 1.], 7), vec![3., 1.]);
    let mut w = [1., 10., 3., 10.];
    words::standardize(&mut w, 2, 2);
    assert_eq!(w, [-1., 0., 1., 0.]);
    assert_eq!(words::median(vec![4., 1., 2., 3.]), 2.5);
}

#[test]
fn median_of_seven_matches_a_sort_per_window() {
    // Every 0/1 input (the 0-1 principle: a network that sorts those sorts
    // everything), then random rows with ties, against a sort of each window.
    let naive = |x: &[f32]| -> Vec<f32> {
        let n = x.len() as isize;
        let at = |i: isize| {
            x[(if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            }) as usize]
        };
        (0..n)
            .map(|j| {
                let mut w: Vec<f32> = (j - 3..=j + 3).map(at).collect();
                w.sort_by(f32::total_cmp);
                w[3]
            })
            .collect()
    };
    for bits in 0u32..1 << 9 {
        let x: Vec<f32> = (0..9).map(|k| (bits >> k & 1) as f32).collect();
        assert_eq!(words::median_filter(&x, 7), naive(&x), "{x:?}");
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in [4, 5, 7, 16, 33, 1500] {
        let x: Vec<f32> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) % 13) as f32 - 6.0
            })
            .collect();
        assert_eq!(words::median_filter(&x, 7), naive(&x), "length {len}");
    }
}

fn timing(w: &str) -> Timing {
    Timing::new(w, vec![w.len() as u32], 0.0, 0.0, 1.0)
}

#[test]
fn punctuation_merges_into_neighbours() {
    let mut a: Vec<Timing> = [" \"", "Hello", ",", " world", ".", "\""]
        .iter()
        .map(|w| timing(w))
        .collect();
    words::merge_punctuations(
        &mut a,
        words::PREPEND_PUNCTUATIONS,
        words::APPEND_PUNCTUATIONS,
    );
    let ws: Vec<&str> = a.iter().map(|t| t.word.as_str()).collect();
    assert_eq!(ws, vec!["", " \"Hello,", "", " world.\"", "", ""]);
    assert_eq!(a[1].tokens, vec![2, 5, 1]);
    assert!(a[2].tokens.is_empty());
    // A word ending in a space takes no closing mark.
    let mut b: Vec<Timing> = [" a ", "."].iter().map(|w| timing(w)).collect();
    words::merge_punctuations(
        &mut b,
        words::PREPEND_PUNCTUATIONS,
        words::APPEND_PUNCTUATIONS,
    );
    assert_eq!(b[1].word, ".");
}

fn jfk_transcript(model: &Model) -> sotto::Transcript {
    let samples = sotto::audio::load_audio(&common::jfk()).expect("jfk");
    let mut o = Options::default();
    o.threads = 2;
    o.word_timestamps = true;
    model.transcribe(&samples, &o).expect("transcribe")
}

fn norm(w: &str) -> String {
    w.chars()
        .filter(|c| c.is_alphanumeric() || *c == '\'')
        .flat_map(char::to_lowercase)
        .collect()
}

#[test]
fn jfk_words_match_faster_whisper() {
    let model = Model::load(common::model_path("tiny.en")).expect("model");
    let t = jfk_transcript(&model);
    let ours: Vec<&sotto::Word> = t.segments.iter().flat_map(|s| &s.words).collect();
    let jfk = common::jfk();
    let reference = common::python(&[
        "tools/compare_words.py",
        "--reference",
        jfk.to_str().expect("utf-8 path"),
        "--model",
        "tiny.en",
        "--threads",
        "2",
    ]);
    // [{"word": " And", "start": 0.0, "end": 0.76, "probability": 0.69}, …]
    let mut theirs: Vec<(String, f32, f32)> = Vec::new();
    for item in reference.trim().trim_matches(['[', ']']).split("}, {") {
        let field = |name: &str| -> &str {
            let at = item.find(&format!("\"{name}\": ")).expect(name) + name.len() + 4;
            let rest = &item[at..];
            let end = rest.find(", \"").unwrap_or(rest.len());
            rest[..end].trim_end_matches('}')
        };
        let num = |name: &str| field(name).parse::<f32>().expect(name);
        theirs.push((
            field("word").trim_matches('"').to_string(),
            num("start"),
            num("end"),
        ));
    }
    let a: Vec<String> = ours.iter().map(|w| norm(&w.word)).collect();
    let b: Vec<String> = theirs.iter().map(|w| norm(&w.0)).collect();
    assert_eq!(a, b, "the same words as faster-whisper");
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for (o, r) in ours.iter().zip(&theirs) {
        starts.push((o.start - r.1).abs());
        ends.push((o.end - r.2).abs());
        assert!(
            (o.start - r.1).abs() <= 0.2 && (o.end - r.2).abs() <= 0.2,
            "{:?}: sotto {}–{}, faster-whisper {}–{}",
            o.word,
            o.start,
            o.end,
            r.1,
            r.2
        );
        assert!(o.start <= o.end && (0.0..=1.0).contains(&o.probability));
    }
    let med_s = words::median(starts);
    let med_e = words::median(ends);
    assert!(
        med_s <= 0.04 && med_e <= 0.04,
        "median |Δstart| {med_s}, |Δend| {med_e}"
    );
    for s in &t.segments {
        assert!(!s.words.is_empty());
    }
}

fn sotto(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(args)
        .env("SOTTO_HOME", common::home())
        .output()
        .expect("run sotto");
    assert!(
        out.status.success(),
        "sotto {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text lines of SRT cues.
fn srt_texts(srt: &str) -> Vec<String> {
    srt.split("\n\n")
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.lines().skip(2).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn cli_layouts() {
    common::model_path("tiny.en");
    let jfk = common::jfk();
    let jfk = jfk.to_str().expect("utf-8 path");
    let base = [
        "transcribe",
        "-m",
        "tiny.en",
        "-t",
        "2",
        "--device",
        "cpu",
        jfk,
    ];

    let (json, _) = sotto(&[&base[..], &["--word-timestamps", "--format", "json"]].concat());
    let n_words = json.matches("\"word\":").count();
    assert!(n_words >= 20, "{json}");
    assert!(json.contains("\"probability\":"), "{json}");

    // --max-len 12 --split-on-word: cues of whole words, at most 12 characters
    // unless one word is longer.
    let (srt, _) = sotto(
        &[
            &base[..],
            &["--max-len", "12", "--split-on-word", "--format", "srt"],
        ]
        .concat(),
    );
    let cues = srt_texts(&srt);
    assert!(cues.len() > 3, "{srt}");
    for c in &cues {
        assert!(
            c.chars().count() <= 12 || !c.contains(' '),
            "cue {c:?} is longer than 12"
        );
    }
    // --max-len 4: words themselves cut, every cue at most 4 characters.
    let (srt, _) = sotto(&[&base[..], &["--max-len", "4", "--format", "srt"]].concat());
    for c in srt_texts(&srt) {
        assert!(c.chars().count() <= 4, "cue {c:?} is longer than 4");
    }
    // --highlight-words: every word underlined once, one word per cue.
    let (vtt, _) = sotto(&[&base[..], &["--highlight-words", "--format", "vtt"]].concat());
    assert!(vtt.starts_with("WEBVTT\n\n"), "{vtt}");
    let underlined: Vec<&str> = vtt.lines().filter(|l| l.contains("<u>")).collect();
    assert_eq!(underlined.len(), n_words, "{vtt}");
    assert!(underlined.iter().all(|l| l.matches("<u>").count() == 1));
    assert!(underlined[0].starts_with("<u>And</u> so"), "{vtt}");
}

#[test]
fn relayout_and_highlight_shapes() {
    let model = Model::load(common::model_path("tiny.en")).expect("model");
    let t = jfk_transcript(&model);
    let mut l = Layout::default();
    l.max_len = Some(1);
    l.split_on_word = true;
    // One word per segment (whisper.cpp's `-ml 1` with word splitting).
    let n_words: usize = t.segments.iter().map(|s| s.words.len()).sum();
    let one = output::relayout(t.clone(), &l);
    assert_eq!(one.segments.len(), n_words);
    assert!(one.segments.iter().all(|s| s.words.len() == 1));
    let mut h = Layout::default();
    h.highlight_words = true;
    let srt = output::render_with(&t, Format::Srt, &h);
    assert_eq!(srt.matches("<u>").count(), n_words);
    // Other formats are untouched by highlighting.
    assert_eq!(
        output::render_with(&t, Format::Txt, &h),
        output::render(&t, Format::Txt)
    );
}

#[test]
fn gpu_falls_back_to_the_cpu() {
    let path = common::model_path("tiny.en");
    let cpu = Model::load(&path).expect("model");
    let gpu = match Model::load(&path).and_then(|m| m.with_device(Device::Gpu)) {
        Ok(m) => m,
        Err(e) => {
            common::skip_or_fail(&format!("no GPU adapter: {e}"));
            return;
        }
    };
    let mut o = Options::default();
    o.word_timestamps = true;
    let note = gpu
        .cpu_fallback_note(&o)
        .expect("a fallback note on the GPU");
    assert!(note.contains("word timestamps"), "{note}");
    assert_eq!(cpu.cpu_fallback_note(&o), None);
    let (a, b) = (jfk_transcript(&cpu), jfk_transcript(&gpu));
    assert_eq!(
        a.segments, b.segments,
        "the fallback transcribes on the CPU"
    );
}
