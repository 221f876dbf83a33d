//! Prompts, prefixes, hotwords, suppression and the context cap change the decoded
//! tokens as they should (tiny.en on jfk, CPU; one prompt check on the GPU).
mod common;
use common::*;
use sotto::{Model, Options, Transcript};

fn opts() -> Options {
    let mut o = Options::default();
    o.threads = 2;
    o
}

fn run(model: &Model, samples: &[f32], o: &Options) -> Transcript {
    model.transcribe(samples, o).unwrap()
}

fn tokens(t: &Transcript) -> Vec<u32> {
    t.segments.iter().flat_map(|s| s.tokens.clone()).collect()
}

const PROMPT: &str = "Ask not. Fellow Americans!";

#[test]
fn prompt_prefix_hotwords_suppression() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let samples = sotto::audio::load_audio(&jfk()).unwrap();
    let file = model.file();
    let tok = file.tokenizer().unwrap();
    let plain = run(&model, &samples, &opts());

    // An initial prompt with punctuation changes the tokens (punctuated text), and
    // is not itself part of the transcript.
    let mut o = opts();
    o.initial_prompt = Some(PROMPT.into());
    let prompted = run(&model, &samples, &o);
    assert_ne!(tokens(&prompted), tokens(&plain), "{}", prompted.text);
    assert!(prompted.text.contains('.'), "{}", prompted.text);
    assert_eq!(words(&prompted.text), words(&plain.text));
    // One window: carrying the prompt changes nothing; a context of 0 drops it.
    o.carry_initial_prompt = true;
    assert_eq!(tokens(&run(&model, &samples, &o)), tokens(&prompted));
    o.carry_initial_prompt = false;
    o.max_context = Some(0);
    assert_eq!(tokens(&run(&model, &samples, &o)), tokens(&plain));
    // Hotwords are a prompt too (same tokens as the initial prompt on one window).
    let mut h = opts();
    h.hotwords = Some(PROMPT.into());
    assert_eq!(tokens(&run(&model, &samples, &h)), tokens(&prompted));

    // Suppressing '.' (by id) removes it from the prompted transcript.
    let dot = tok.encode(".");
    assert_eq!(dot.len(), 1);
    let mut s = opts();
    s.initial_prompt = Some(PROMPT.into());
    s.suppress_tokens = vec![-1, dot[0] as i64];
    let suppressed = run(&model, &samples, &s);
    assert!(!suppressed.text.contains('.'), "{}", suppressed.text);

    // A prefix: the first segment starts with <|0.00|> and the prefix, given, not scored.
    let mut p = opts();
    p.prefix = Some("And so, my dear".into());
    let prefixed = run(&model, &samples, &p);
    let want: Vec<u32> = std::iter::once(file.config().tokens.timestamp_begin)
        .chain(tok.encode(" And so, my dear"))
        .collect();
    let first = &prefixed.segments[0];
    assert_eq!(first.tokens[..want.len()], want[..], "{}", prefixed.text);
    assert!(first.token_probs[..want.len()].iter().all(|p| p.is_nan()));
    assert!(first.token_probs[want.len()..]
        .iter()
        .all(|p| (0.0..=1.0).contains(p)));
    assert_eq!(first.token_probs.len(), first.tokens.len());
    assert!(
        prefixed.text.starts_with("And so, my dear"),
        "{}",
        prefixed.text
    );
    // With a prefix, hotwords are not used (faster-whisper's rule).
    p.hotwords = Some(PROMPT.into());
    assert_eq!(tokens(&run(&model, &samples, &p)), tokens(&prefixed));

    // Bad suppress id: a clear error.
    let mut bad = opts();
    bad.suppress_tokens = vec![-2];
    assert!(model.transcribe(&samples, &bad).is_err());
}

#[cfg(feature = "gpu")]
#[test]
fn prompt_on_gpu_matches_cpu() {
    let path = model_path("tiny.en");
    let samples = sotto::audio::load_audio(&jfk()).unwrap();
    let mut o = opts();
    o.initial_prompt = Some(PROMPT.into());
    o.temperatures = vec![0.0];
    let cpu = run(&Model::load(&path).unwrap(), &samples, &o);
    let gpu = match Model::load(&path).unwrap().with_device(sotto::Device::Gpu) {
        Ok(m) => m,
        Err(e) => return skip_or_fail(&format!("GPU: {e}")),
    };
    let got = run(&gpu, &samples, &o);
    assert_eq!(words(&got.text), words(&cpu.text));
    assert!(got.text.contains('.'), "{}", got.text);
}
