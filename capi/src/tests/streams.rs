//! Streams through the C ABI: bad handles and options are errors, jfk pushed in pieces
//! (at 16 and 48 kHz) gives the batch transcript's words with ordered times, and a stream
//! keeps its model alive after the model handle is freed.

use super::*;
use crate::stream::*;

fn update_words(u: &SottoStreamUpdate) -> (Vec<SottoStreamWord>, String) {
    let words = match u.n_confirmed {
        0 => Vec::new(),
        n => unsafe { std::slice::from_raw_parts(u.confirmed_words, n) }.to_vec(),
    };
    let text = unsafe { CStr::from_ptr(u.confirmed) }.to_str().unwrap();
    (words, text.to_string())
}

#[test]
fn stream_handles_and_options_are_checked() {
    unsafe {
        let mut s = SottoStream { id: 5 };
        assert_eq!(
            sotto_stream_new(
                SottoModel::default(),
                null(),
                SottoParams::default(),
                &mut s
            ),
            SottoStatus::InvalidHandle
        );
        assert_eq!(s.id, 0, "a failure leaves a null handle");
        assert_eq!(
            sotto_stream_new(
                SottoModel::default(),
                null(),
                SottoParams::default(),
                null_mut()
            ),
            SottoStatus::NullArgument
        );
        let bogus = SottoStream { id: 1 << 40 };
        let pcm = [0f32; 10];
        for stream in [SottoStream::default(), bogus] {
            assert_eq!(
                sotto_stream_push(stream, pcm.as_ptr(), 10),
                SottoStatus::InvalidHandle
            );
            let mut u = SottoStreamUpdate {
                confirmed: c"x".as_ptr(),
                ..Default::default()
            };
            assert_eq!(
                sotto_stream_poll(stream, &mut u),
                SottoStatus::InvalidHandle
            );
            assert!(u.confirmed.is_null() && u.n_confirmed == 0);
            assert_eq!(sotto_stream_finish(stream), SottoStatus::InvalidHandle);
            assert_eq!(sotto_stream_free(stream), SottoStatus::InvalidHandle);
        }
        assert!(last_error().contains("stream handle"), "{}", last_error());
    }
    let Some(model) = tiny() else { return };
    let pcm = [0f32; 10];
    unsafe {
        let mut s = SottoStream::default();
        let mut o = sotto_stream_options_default();
        o.sample_rate = 0;
        assert_eq!(
            sotto_stream_new(model, &o, SottoParams::default(), &mut s),
            SottoStatus::InvalidArgument
        );
        o = sotto_stream_options_default();
        o.step_s = f32::NAN;
        assert_eq!(
            sotto_stream_new(model, &o, SottoParams::default(), &mut s),
            SottoStatus::InvalidArgument
        );
        o = sotto_stream_options_default();
        o.agree_s = -1.0;
        assert_eq!(
            sotto_stream_new(model, &o, SottoParams::default(), &mut s),
            SottoStatus::InvalidArgument
        );
        o = sotto_stream_options_default();
        let missing = cs("/nonexistent/silero.svad");
        o.vad_path = missing.as_ptr();
        assert_eq!(
            sotto_stream_new(model, &o, SottoParams::default(), &mut s),
            SottoStatus::Io
        );
        assert!(
            last_error().contains("/nonexistent/silero.svad"),
            "{}",
            last_error()
        );
        // A model handle is not a stream handle, and a stream handle not a model's.
        assert_eq!(
            sotto_stream_free(SottoStream { id: model.id }),
            SottoStatus::InvalidHandle
        );
        assert_eq!(
            sotto_stream_new(model, null(), SottoParams::default(), &mut s),
            SottoStatus::Ok
        );
        assert_eq!(
            sotto_model_free(SottoModel { id: s.id }),
            SottoStatus::InvalidHandle
        );
        assert_eq!(sotto_stream_push(s, null(), 3), SottoStatus::NullArgument);
        assert_eq!(sotto_stream_push(s, null(), 0), SottoStatus::Ok);
        assert_eq!(sotto_stream_free(s), SottoStatus::Ok);
        assert_eq!(
            sotto_stream_push(s, pcm.as_ptr(), 10),
            SottoStatus::InvalidHandle
        );
        assert_eq!(sotto_stream_free(s), SottoStatus::InvalidHandle);
        assert_eq!(sotto_model_free(model), SottoStatus::Ok);
    }
}

#[test]
fn streams_jfk_in_pieces() {
    let Some(model) = tiny() else { return };
    let audio = jfk();
    let mut batch = SottoResult::default();
    let status = unsafe {
        sotto_transcribe(
            model,
            audio.as_ptr(),
            audio.len(),
            SottoParams::default(),
            &mut batch,
        )
    };
    assert_eq!(status, SottoStatus::Ok, "{}", last_error());
    let expected = common::words(&text_of(batch));
    assert_eq!(sotto_result_free(batch), SottoStatus::Ok);
    // 48 kHz by repeating each sample three times: the stream resamples it.
    let tripled: Vec<f32> = audio.iter().flat_map(|&v| [v; 3]).collect();
    for (rate, pcm, piece) in [(16_000u32, &audio, 1_234usize), (48_000, &tripled, 4_800)] {
        unsafe {
            let mut o = sotto_stream_options_default();
            o.sample_rate = rate;
            let mut s = SottoStream::default();
            let status = sotto_stream_new(model, &o, SottoParams::default(), &mut s);
            assert_eq!(status, SottoStatus::Ok, "{}", last_error());
            let mut words = Vec::new();
            let mut text = Vec::new();
            let mut tentative_seen = false;
            for chunk in pcm.chunks(piece) {
                let status = sotto_stream_push(s, chunk.as_ptr(), chunk.len());
                assert_eq!(status, SottoStatus::Ok, "{}", last_error());
                let mut u = SottoStreamUpdate::default();
                assert_eq!(sotto_stream_poll(s, &mut u), SottoStatus::Ok);
                tentative_seen |= u.n_tentative > 0;
                let (w, t) = update_words(&u);
                words.extend(w.iter().map(|w| {
                    let text = CStr::from_ptr(w.text).to_str().unwrap().to_string();
                    (w.start_ms, w.end_ms, text)
                }));
                if !t.is_empty() {
                    text.push(t);
                }
            }
            assert_eq!(sotto_stream_finish(s), SottoStatus::Ok);
            assert_eq!(sotto_stream_finish(s), SottoStatus::Ok, "finishing twice");
            let mut u = SottoStreamUpdate::default();
            assert_eq!(sotto_stream_poll(s, &mut u), SottoStatus::Ok);
            assert_eq!(u.n_tentative, 0);
            let (w, t) = update_words(&u);
            words.extend(w.iter().map(|w| {
                let text = CStr::from_ptr(w.text).to_str().unwrap().to_string();
                (w.start_ms, w.end_ms, text)
            }));
            if !t.is_empty() {
                text.push(t);
            }
            let mut again = SottoStreamUpdate::default();
            assert_eq!(sotto_stream_poll(s, &mut again), SottoStatus::Ok);
            assert_eq!(again.n_confirmed, 0, "a poll hands each word out once");
            assert_eq!(
                sotto_stream_push(s, audio.as_ptr(), 10),
                SottoStatus::InvalidArgument
            );
            assert!(
                tentative_seen,
                "{rate} Hz: no tentative words before the end"
            );
            let joined: Vec<&str> = words.iter().map(|w| w.2.as_str()).collect();
            assert_eq!(common::words(&joined.join(" ")), expected, "{rate} Hz");
            assert_eq!(common::words(&text.join(" ")), expected, "{rate} Hz");
            let mut last_end = 0;
            for (start, end, word) in &words {
                assert!(
                    *start >= last_end - 1_000 && end >= start,
                    "{word} {start} {end}"
                );
                last_end = *end;
            }
            assert!(last_end <= 11_500, "{last_end} ms");
            assert_eq!(sotto_stream_free(s), SottoStatus::Ok);
        }
    }
    assert_eq!(sotto_model_free(model), SottoStatus::Ok);
}

#[test]
fn a_stream_keeps_its_model() {
    let Some(model) = tiny() else { return };
    let audio = jfk();
    unsafe {
        let mut s = SottoStream::default();
        let status = sotto_stream_new(model, null(), SottoParams::default(), &mut s);
        assert_eq!(status, SottoStatus::Ok, "{}", last_error());
        assert_eq!(sotto_model_free(model), SottoStatus::Ok);
        assert_eq!(
            sotto_stream_push(s, audio.as_ptr(), audio.len()),
            SottoStatus::Ok,
            "{}",
            last_error()
        );
        assert_eq!(sotto_stream_finish(s), SottoStatus::Ok);
        let mut u = SottoStreamUpdate::default();
        assert_eq!(sotto_stream_poll(s, &mut u), SottoStatus::Ok);
        let (_, text) = update_words(&u);
        assert!(
            common::words(&text)
                .join(" ")
                .contains("ask not what your country"),
            "{text}"
        );
        assert_eq!(sotto_stream_free(s), SottoStatus::Ok);
    }
}
