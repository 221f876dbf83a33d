//! `sotto::stream::Stream`: jfk pushed in small pieces gives the batch transcript's words;
//! silence is not buffered and the buffer stays bounded.
mod common;

use common::{jfk, model_path, words};
use sotto::audio::load_audio;
use sotto::stream::{Stream, StreamOptions};
use sotto::{Model, Options};

fn opts(rate: u32) -> StreamOptions {
    let mut o = StreamOptions::default();
    o.rate = rate;
    // Every step, whatever the machine's load: the same words each run.
    o.keep_up = false;
    let mut d = Options::default();
    d.threads = 2;
    o.options = d;
    o
}

#[test]
fn jfk_in_small_pieces_gives_the_batch_words() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let audio = load_audio(&jfk()).unwrap();
    let batch = model.transcribe(&audio, &opts(16_000).options).unwrap();
    let mut stream = Stream::new(&model, opts(16_000)).unwrap();
    let mut confirmed = Vec::new();
    let mut last_end = 0f32;
    for piece in audio.chunks(1_234) {
        let u = stream.push(piece).unwrap();
        for w in &u.confirmed {
            assert!(w.start >= last_end - 1.0 && w.end >= w.start, "{w:?}");
            last_end = w.end;
        }
        confirmed.extend(u.confirmed);
    }
    confirmed.extend(stream.finish().unwrap().confirmed);
    let text: Vec<String> = confirmed.iter().map(|w| w.text.clone()).collect();
    assert_eq!(words(&text.join(" ")), words(&batch.text));
    assert!(confirmed.last().unwrap().end <= audio.len() as f32 / 16_000.0 + 0.5);
}

/// A transcription encodes the buffer once: the unfinished last segment is kept as the
/// tentative tail, not decoded again in a window of its own (at a 1-s step: 39 windows for
/// 35 transcriptions; 45 for 34 when the tail was decoded again). A second window stays for
/// a model that stops early, so a few are allowed.
#[test]
fn each_transcription_encodes_the_buffer_once() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    // Two utterances, 34 s: the buffer is cut and later steps carry a prompt.
    let mut audio = Vec::new();
    for name in ["2033-164914-0006.wav", "2033-164914-0008.wav"] {
        let path = common::repo_path(&format!("eval/librispeech/test-other/{name}"));
        audio.extend(load_audio(&path).unwrap());
    }
    let mut stream = Stream::new(&model, opts(16_000)).unwrap();
    for piece in audio.chunks(1_600) {
        stream.push(piece).unwrap();
    }
    stream.finish().unwrap();
    let (runs, windows) = stream.transcriptions();
    assert!(runs >= 30, "{runs} transcriptions of 34 s");
    assert!(
        windows <= runs + runs / 6,
        "{windows} windows encoded by {runs} transcriptions"
    );
}

/// Four test-other utterances 0.3 s apart (too short a pause to end an utterance). Decoding
/// the buffer, the model closed the second utterance's text and stopped, hearing nothing of
/// the third for as long as the second stayed in the buffer: nothing was confirmed for 9 s.
/// The buffer is now cut after the confirmed text once 2 s pass with no new word (and a
/// model that stops without a timestamp has the rest decoded again), so every word is
/// confirmed while the audio after it is still being spoken.
#[test]
fn a_model_stopping_before_the_buffer_end_does_not_stall_the_stream() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let mut audio = Vec::new();
    for name in [
        "1998-15444-0008.wav",
        "1998-15444-0009.wav",
        "2033-164914-0000.wav",
        "2033-164914-0001.wav",
    ] {
        let path = common::repo_path(&format!("eval/librispeech/test-other/{name}"));
        audio.extend(load_audio(&path).unwrap());
        audio.extend(std::iter::repeat_n(0.0, 4_800));
    }
    let mut stream = Stream::new(&model, opts(16_000)).unwrap();
    let (mut pushed, mut lags) = (0usize, Vec::new());
    for piece in audio.chunks(800) {
        let u = stream.push(piece).unwrap();
        pushed += piece.len();
        let now = pushed as f32 / 16_000.0;
        lags.extend(u.confirmed.iter().map(|w| (now - w.end, w.text.clone())));
    }
    assert!(
        lags.len() >= 40,
        "{} words confirmed before the end",
        lags.len()
    );
    let worst = lags
        .iter()
        .cloned()
        .fold((0f32, String::new()), |a, b| if b.0 > a.0 { b } else { a });
    assert!(
        worst.0 < 4.0,
        "{:?} confirmed {:.1} s after its end",
        worst.1,
        worst.0
    );
}

/// With `agree` longer than `step`, a word is confirmed only when a hypothesis made at least
/// `agree` seconds of audio earlier held it too (here every half second against the one a
/// second before; utterance-ending pauses are off, so every confirmation before `finish` is
/// by agreement).
#[test]
fn agreement_reaches_back_agree_seconds() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let audio = load_audio(&jfk()).unwrap();
    let check = |agree: f32| -> usize {
        let mut o = opts(16_000);
        (o.step, o.agree, o.pause) = (0.5, agree, 1e3);
        let mut stream = Stream::new(&model, o).unwrap();
        // (audio seconds pushed, the tentative words) after each transcription.
        let mut held: Vec<(f32, Vec<sotto::stream::Word>)> = Vec::new();
        let (mut pushed, mut early) = (0usize, 0usize);
        let mut confirmed = 0;
        for piece in audio.chunks(800) {
            let u = stream.push(piece).unwrap();
            pushed += piece.len();
            let now = pushed as f32 / 16_000.0;
            for w in &u.confirmed {
                confirmed += 1;
                // Pushes of 50 ms: a transcription ran at most that much before `now`.
                let before = held.iter().filter(|(t, _)| *t <= now - 1.0 + 0.1);
                if !before
                    .flat_map(|(_, ws)| ws)
                    .any(|x| words(&x.text) == words(&w.text) && (x.start - w.start).abs() < 0.5)
                {
                    early += 1;
                }
            }
            if !u.tentative.is_empty() {
                held.push((now, u.tentative));
            }
        }
        assert!(
            confirmed >= 10,
            "{confirmed} words confirmed before the end"
        );
        early
    };
    assert_eq!(
        check(1.0),
        0,
        "words confirmed by a hypothesis less than 1 s apart"
    );
    // The previous hypothesis, half a second before, confirms some of them.
    assert!(check(0.5) > 0);
}

/// jfk cut in two by a 2-s pause: the first half is confirmed at the pause, its audio stays
/// as context for the second, and the words confirmed across the pause are neither repeated
/// nor lost (the times of the second half keep the pause).
#[test]
fn a_pause_inside_speech_neither_repeats_nor_loses_words() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let audio = load_audio(&jfk()).unwrap();
    // Cut where batch word timestamps put jfk's pause after "Americans,".
    let mut timed = opts(16_000).options;
    timed.word_timestamps = true;
    let batch = model.transcribe(&audio, &timed).unwrap();
    let all: Vec<_> = batch.segments.iter().flat_map(|s| &s.words).collect();
    let k = all
        .iter()
        .position(|w| w.word.contains("Americans"))
        .expect("jfk says Americans");
    let at = (all[k].end + all[k + 1].start) / 2.0;
    let (first, second) = audio.split_at((at * 16_000.0) as usize);
    let mut with_pause: Vec<f32> = first.to_vec();
    with_pause.extend(std::iter::repeat_n(0f32, 32_000));
    with_pause.extend_from_slice(second);
    let mut stream = Stream::new(&model, opts(16_000)).unwrap();
    let mut confirmed = Vec::new();
    let mut at_pause = 0;
    for (i, piece) in with_pause.chunks(1_600).enumerate() {
        confirmed.extend(stream.push(piece).unwrap().confirmed);
        if (i + 1) * 1_600 <= first.len() + 32_000 {
            at_pause = confirmed.len();
        }
    }
    confirmed.extend(stream.finish().unwrap().confirmed);
    assert!(at_pause > 0, "nothing confirmed at the pause");
    let text: Vec<String> = confirmed.iter().map(|w| w.text.clone()).collect();
    let (got, want) = (words(&text.join(" ")), words(&batch.text));
    let errors = word_errors(&got, &want);
    assert!(errors <= 2, "{errors} word errors: {got:?} vs {want:?}");
    let after = &confirmed[at_pause..];
    assert!(
        after.iter().all(|w| w.end >= at + 2.0),
        "words after the pause on the stream's timeline: {after:?}"
    );
}

#[test]
fn silence_is_not_buffered_and_the_buffer_is_bounded() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let mut o = opts(16_000);
    o.step = 3.0;
    o.trim = 6.0;
    o.max_buffer = 10.0;
    let mut stream = Stream::new(&model, o).unwrap();
    // A minute of silence: never transcribed, never held.
    for _ in 0..60 {
        let u = stream.push(&vec![0f32; 16_000]).unwrap();
        assert!(u.confirmed.is_empty() && u.tentative.is_empty());
    }
    assert!(stream.peak_buffer() <= 16_000, "{}", stream.peak_buffer());
    // Speech without pauses longer than the bound (jfk twice, gaps filled with noise).
    let audio = load_audio(&jfk()).unwrap();
    let mut noisy: Vec<f32> = audio.iter().chain(&audio).copied().collect();
    for (i, v) in noisy.iter_mut().enumerate() {
        *v += 0.02 * ((i as f32 * 0.7).sin());
    }
    let mut n = 0;
    for piece in noisy.chunks(4_000) {
        n += stream.push(piece).unwrap().confirmed.len();
    }
    n += stream.finish().unwrap().confirmed.len();
    assert!(n >= 20, "{n} words confirmed");
    assert!(
        stream.peak_buffer() <= 10 * 16_000,
        "{}",
        stream.peak_buffer()
    );
}

#[test]
fn other_rates_are_resampled() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    assert!(Stream::new(&model, opts(0)).is_err());
    let audio = load_audio(&jfk()).unwrap();
    let up: Vec<f32> = audio.iter().flat_map(|&v| [v, v, v]).collect();
    let mut stream = Stream::new(&model, opts(48_000)).unwrap();
    let mut text = String::new();
    for piece in up.chunks(9_999) {
        for w in stream.push(piece).unwrap().confirmed {
            text += &format!(" {}", w.text);
        }
    }
    for w in stream.finish().unwrap().confirmed {
        text += &format!(" {}", w.text);
    }
    assert!(words(&text).len() >= 20, "{text}");
}

/// Silero VAD as the pause detector: jfk still gives the batch words, and a hum loud
/// enough for the energy detector to take as speech is neither buffered nor transcribed.
#[test]
fn silero_pauses_skip_a_hum_the_energy_detector_keeps() {
    let model = Model::load(model_path("tiny.en")).unwrap();
    let silero = std::sync::Arc::new(
        sotto::vad::Silero::load(
            sotto::convert::fetch_silero_vad(&common::home(), &|m| eprintln!("{m}")).unwrap(),
        )
        .unwrap(),
    );
    let detector = || {
        Box::new(sotto::vad::SileroPause::new(
            silero.clone(),
            *model.kernels(),
            0.5,
        ))
    };
    // A 100-Hz hum at -37 dBFS, 20 s.
    let hum: Vec<f32> = (0..320_000)
        .map(|i| 0.02 * (i as f32 * 2.0 * std::f32::consts::PI * 100.0 / 16_000.0).sin())
        .collect();
    let mut energy = Stream::new(&model, opts(16_000)).unwrap();
    let mut vad = Stream::with_detector(&model, opts(16_000), detector()).unwrap();
    for piece in hum.chunks(1_600) {
        energy.push(piece).unwrap();
        let u = vad.push(piece).unwrap();
        assert!(u.confirmed.is_empty() && u.tentative.is_empty(), "{u:?}");
    }
    assert!(vad.peak_buffer() <= 16_000, "{}", vad.peak_buffer());
    assert!(
        energy.peak_buffer() > 16_000,
        "the hum should pass the energy detector"
    );

    let audio = load_audio(&jfk()).unwrap();
    let batch = model.transcribe(&audio, &opts(16_000).options).unwrap();
    let mut stream = Stream::with_detector(&model, opts(16_000), detector()).unwrap();
    let mut confirmed = Vec::new();
    for piece in audio.chunks(1_234) {
        confirmed.extend(stream.push(piece).unwrap().confirmed);
    }
    confirmed.extend(stream.finish().unwrap().confirmed);
    let text: Vec<String> = confirmed.iter().map(|w| w.text.clone()).collect();
    // Silero finds jfk's pauses, which the energy detector (its background noise above
    // -45 dBFS) does not: each stretch is confirmed on its own, with less context, so
    // tiny.en may mishear a word or two there (3 word errors seen).
    let (got, want) = (words(&text.join(" ")), words(&batch.text));
    let errors = word_errors(&got, &want);
    assert!(errors <= 4, "{errors} word errors: {got:?} vs {want:?}");
}

/// Word-level edit distance.
fn word_errors(a: &[String], b: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let cur = (prev + usize::from(x != y))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = cur;
        }
    }
    row[b.len()]
}
