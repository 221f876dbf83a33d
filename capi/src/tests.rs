//! The C ABI called as C would call it: the header is what the source generates,
//! bad arguments and handles are errors, a real transcription comes back intact,
//! callbacks and abort handles stop it.

use super::*;
use std::ffi::CStr;
use std::ptr::{null, null_mut};

#[path = "../../tests/common/mod.rs"]
mod common;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn last_error() -> String {
    unsafe { CStr::from_ptr(sotto_last_error()) }
        .to_str()
        .unwrap()
        .to_string()
}

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

#[test]
fn header() {
    let config = cbindgen::Config::from_file(format!("{MANIFEST}/cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(MANIFEST)
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut generated);
    let path = format!("{MANIFEST}/include/sotto.h");
    if std::env::var_os("SOTTO_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{path} differs from what src/lib.rs generates: \
         SOTTO_BLESS=1 cargo test --release -p sotto-c header"
    );
}

#[test]
fn version() {
    let v = unsafe { CStr::from_ptr(sotto_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn panic_becomes_a_status() {
    let status = guard(|| panic!("boom {}", 7));
    assert_eq!(status, SottoStatus::Panic);
    assert!(last_error().contains("boom 7"), "{}", last_error());
}

#[test]
fn bad_arguments_are_errors() {
    unsafe {
        let mut m = SottoModel { id: 99 };
        assert_eq!(
            sotto_model_load(null(), null(), &mut m),
            SottoStatus::NullArgument
        );
        assert_eq!(m.id, 0, "a failure leaves a null handle");
        assert!(last_error().contains("path"));
        let path = cs("/nonexistent/model.sotto");
        assert_eq!(
            sotto_model_load(path.as_ptr(), null(), null_mut()),
            SottoStatus::NullArgument
        );
        assert_eq!(
            sotto_model_load(path.as_ptr(), null(), &mut m),
            SottoStatus::Io
        );
        assert!(last_error().contains("/nonexistent/model.sotto"));
        let not_utf8 = [0xffu8, 0xfe, 0];
        assert_eq!(
            sotto_model_load(not_utf8.as_ptr().cast(), null(), &mut m),
            SottoStatus::InvalidArgument
        );
        let mut o = sotto_load_options_default();
        o.device = 7;
        assert_eq!(
            sotto_model_load(path.as_ptr(), &o, &mut m),
            SottoStatus::InvalidArgument
        );

        // A file that is not a model.
        let dir = std::env::temp_dir().join(format!("sotto-capi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.sotto");
        std::fs::write(&junk, vec![0x5au8; 4096]).unwrap();
        let junk_c = cs(junk.to_str().unwrap());
        assert_eq!(
            sotto_model_load(junk_c.as_ptr(), null(), &mut m),
            SottoStatus::Format
        );
        std::fs::remove_dir_all(&dir).unwrap();

        // Parameters: bad values refused, the handle's lifetime checked.
        let mut p = SottoParams::default();
        assert_eq!(sotto_params_new(&mut p), SottoStatus::Ok);
        assert_ne!(p.id, 0);
        assert_eq!(sotto_params_set_task(p, 5), SottoStatus::InvalidArgument);
        assert_eq!(
            sotto_params_set_thresholds(p, f32::NAN, -1.0, 0.6),
            SottoStatus::InvalidArgument
        );
        let temps = [0.0f32, -0.2];
        assert_eq!(
            sotto_params_set_temperatures(p, temps.as_ptr(), 2),
            SottoStatus::InvalidArgument
        );
        assert_eq!(
            sotto_params_set_temperatures(p, null(), 2),
            SottoStatus::NullArgument
        );
        assert_eq!(
            sotto_params_set_language(p, c"".as_ptr()),
            SottoStatus::InvalidArgument
        );
        assert_eq!(sotto_params_set_language(p, null()), SottoStatus::Ok);
        assert_eq!(
            sotto_params_set_abort(p, SottoAbort { id: p.id }),
            SottoStatus::InvalidHandle,
            "a parameters id is not an abort handle"
        );
        // A handle of another kind is unknown and left alive.
        assert_eq!(
            sotto_model_free(SottoModel { id: p.id }),
            SottoStatus::InvalidHandle
        );
        assert!(last_error().contains("model handle"), "{}", last_error());
        assert_eq!(sotto_params_free(p), SottoStatus::Ok);
        assert_eq!(sotto_params_free(p), SottoStatus::InvalidHandle);
        assert_eq!(sotto_params_set_seed(p, 1), SottoStatus::InvalidHandle);

        // Null handles everywhere.
        let r = SottoResult::default();
        let mut n = 5usize;
        assert_eq!(
            sotto_result_segment_count(r, &mut n),
            SottoStatus::InvalidHandle
        );
        assert_eq!(n, 0);
        let mut text: *const c_char = c"x".as_ptr();
        assert_eq!(sotto_result_text(r, &mut text), SottoStatus::InvalidHandle);
        assert!(text.is_null());
        assert_eq!(sotto_result_free(r), SottoStatus::InvalidHandle);
        assert_eq!(
            sotto_abort_trigger(SottoAbort::default()),
            SottoStatus::InvalidHandle
        );
        let mut out = SottoResult::default();
        assert_eq!(
            sotto_transcribe(SottoModel::default(), null(), 0, p, &mut out),
            SottoStatus::InvalidHandle
        );
        assert_eq!(
            sotto_transcribe(SottoModel { id: 1 }, null(), 10, p, &mut out),
            SottoStatus::NullArgument
        );

        // A string sotto did not hand out is refused, not freed.
        let mine = cs("mine").into_raw();
        assert_eq!(sotto_string_free(mine), SottoStatus::InvalidHandle);
        drop(CString::from_raw(mine));
    }
    // The last error is per thread.
    let other = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other, "");
}

/// tiny.en loaded with 2 threads, or None where the model cannot be had outside CI.
fn tiny() -> Option<SottoModel> {
    let path = common::model_path("tiny.en");
    if !path.exists() {
        common::skip_or_fail("tiny.en is not in the model cache");
        return None;
    }
    let path = cs(path.to_str().unwrap());
    let mut options = sotto_load_options_default();
    options.threads = 2;
    let mut m = SottoModel::default();
    let status = unsafe { sotto_model_load(path.as_ptr(), &options, &mut m) };
    assert_eq!(status, SottoStatus::Ok, "{}", last_error());
    Some(m)
}

fn jfk_path() -> String {
    format!("{MANIFEST}/../samples/jfk.wav")
}

fn jfk() -> Vec<f32> {
    sotto::audio::load_audio(jfk_path().as_ref()).unwrap()
}

fn text_of(r: SottoResult) -> String {
    let mut text = null();
    assert_eq!(unsafe { sotto_result_text(r, &mut text) }, SottoStatus::Ok);
    unsafe { CStr::from_ptr(text) }
        .to_str()
        .unwrap()
        .to_string()
}

unsafe extern "C" fn count_segment(s: *const SottoSegment, user: *mut c_void) -> i32 {
    let s = &*s;
    assert!(!CStr::from_ptr(s.text).to_bytes().is_empty());
    *(user as *mut usize) += 1;
    0
}

#[test]
fn transcribes_jfk() {
    let Some(model) = tiny() else { return };
    unsafe {
        let mut params = SottoParams::default();
        assert_eq!(sotto_params_new(&mut params), SottoStatus::Ok);
        let mut seen = 0usize;
        sotto_params_set_segment_callback(
            params,
            Some(count_segment),
            &mut seen as *mut usize as *mut c_void,
        );
        let path = cs(&jfk_path());
        let mut from_file = SottoResult::default();
        let status = sotto_transcribe_file(model, path.as_ptr(), params, &mut from_file);
        assert_eq!(status, SottoStatus::Ok, "{}", last_error());
        let samples = jfk();
        let mut from_pcm = SottoResult::default();
        let status = sotto_transcribe(
            model,
            samples.as_ptr(),
            samples.len(),
            SottoParams::default(),
            &mut from_pcm,
        );
        assert_eq!(status, SottoStatus::Ok, "{}", last_error());

        let text = text_of(from_file);
        assert_eq!(text, text_of(from_pcm));
        let words = common::words(&text).join(" ");
        assert!(
            words.contains("ask not what your country can do for you"),
            "{text}"
        );
        let mut n = 0;
        assert_eq!(
            sotto_result_segment_count(from_file, &mut n),
            SottoStatus::Ok
        );
        assert!(n >= 1);
        assert_eq!(seen, n, "the segment callback saw every segment");
        let mut joined = String::new();
        let mut last_end = 0;
        for i in 0..n {
            let mut s = std::mem::zeroed::<SottoSegment>();
            assert_eq!(sotto_result_segment(from_file, i, &mut s), SottoStatus::Ok);
            assert!(last_end <= s.start_ms && s.start_ms <= s.end_ms && s.end_ms <= 11_100);
            last_end = s.end_ms;
            assert!(s.n_tokens > 0 && !s.tokens.is_null());
            joined += CStr::from_ptr(s.text).to_str().unwrap();
        }
        assert_eq!(joined.trim(), text);
        let mut s = std::mem::zeroed::<SottoSegment>();
        assert_eq!(
            sotto_result_segment(from_file, n, &mut s),
            SottoStatus::InvalidArgument
        );
        let mut lang = null();
        assert_eq!(sotto_result_language(from_file, &mut lang), SottoStatus::Ok);
        assert_eq!(CStr::from_ptr(lang).to_str().unwrap(), "en");

        let mut multilingual = true;
        assert_eq!(
            sotto_model_multilingual(model, &mut multilingual),
            SottoStatus::Ok
        );
        assert!(!multilingual, "tiny.en");
        let mut kernels = null();
        assert_eq!(sotto_model_kernels(model, &mut kernels), SottoStatus::Ok);
        assert!(!CStr::from_ptr(kernels).to_bytes().is_empty());
        assert_eq!(
            sotto_model_kernels(SottoModel { id: params.id }, &mut kernels),
            SottoStatus::InvalidHandle
        );
        assert!(kernels.is_null());

        let mut srt = null_mut();
        assert_eq!(
            sotto_result_format(from_file, SOTTO_FORMAT_SRT, &mut srt),
            SottoStatus::Ok
        );
        assert!(CStr::from_ptr(srt).to_str().unwrap().contains(" --> "));
        assert_eq!(sotto_string_free(srt), SottoStatus::Ok);
        assert_eq!(sotto_string_free(srt), SottoStatus::InvalidHandle);
        assert_eq!(
            sotto_result_format(from_file, 9, &mut srt),
            SottoStatus::InvalidArgument
        );
        assert!(srt.is_null());

        let missing = cs("/nonexistent.wav");
        let mut r = SottoResult { id: 3 };
        assert_eq!(
            sotto_transcribe_file(model, missing.as_ptr(), params, &mut r),
            SottoStatus::Audio,
            "{}",
            last_error()
        );
        assert_eq!(r.id, 0);

        for r in [from_file, from_pcm] {
            assert_eq!(sotto_result_free(r), SottoStatus::Ok);
            assert_eq!(sotto_result_free(r), SottoStatus::InvalidHandle);
            assert_eq!(text_of_status(r), SottoStatus::InvalidHandle);
        }
        assert_eq!(sotto_params_free(params), SottoStatus::Ok);
        assert_eq!(sotto_model_free(model), SottoStatus::Ok);
        assert_eq!(sotto_model_free(model), SottoStatus::InvalidHandle);
        assert_eq!(
            sotto_transcribe(model, samples.as_ptr(), samples.len(), params, &mut r),
            SottoStatus::InvalidHandle
        );
    }
}

fn text_of_status(r: SottoResult) -> SottoStatus {
    let mut text = null();
    unsafe { sotto_result_text(r, &mut text) }
}

/// jfk three times: two windows, so a stop after the first is seen before the second.
fn jfk3() -> Vec<f32> {
    let one = jfk();
    [&one[..], &one[..], &one[..]].concat()
}

unsafe extern "C" fn stop_after_first(done: f64, total: f64, user: *mut c_void) -> i32 {
    assert!(done > 0.0 && done < total, "{done} / {total}");
    *(user as *mut u32) += 1;
    1
}

struct Handshake {
    first: std::sync::atomic::AtomicBool,
    reached: std::sync::mpsc::Sender<()>,
    resume: std::sync::mpsc::Receiver<()>,
}

/// At the first segment, tells the main thread and waits for it to trigger the abort.
unsafe extern "C" fn wait_for_trigger(_: *const SottoSegment, user: *mut c_void) -> i32 {
    let h = &*(user as *const Handshake);
    if h.first.swap(false, std::sync::atomic::Ordering::SeqCst) {
        h.reached.send(()).unwrap();
        h.resume.recv().unwrap();
    }
    0
}

#[test]
fn callbacks_and_abort_handles_stop_a_transcription() {
    let Some(model) = tiny() else { return };
    let samples = jfk3();
    unsafe {
        let mut out = SottoResult::default();
        // A progress callback returning nonzero.
        let mut p = SottoParams::default();
        sotto_params_new(&mut p);
        let mut calls = 0u32;
        sotto_params_set_progress_callback(
            p,
            Some(stop_after_first),
            &mut calls as *mut u32 as *mut c_void,
        );
        let status = sotto_transcribe(model, samples.as_ptr(), samples.len(), p, &mut out);
        assert_eq!(status, SottoStatus::Aborted, "{}", last_error());
        assert_eq!((calls, out.id), (1, 0));
        sotto_params_set_progress_callback(p, None, null_mut());

        // An abort handle triggered before the call, then reset.
        let mut a = SottoAbort::default();
        assert_eq!(sotto_abort_new(&mut a), SottoStatus::Ok);
        assert_eq!(sotto_params_set_abort(p, a), SottoStatus::Ok);
        assert_eq!(sotto_abort_trigger(a), SottoStatus::Ok);
        let one = jfk();
        let status = sotto_transcribe(model, one.as_ptr(), one.len(), p, &mut out);
        assert_eq!(status, SottoStatus::Aborted);
        assert_eq!(sotto_abort_reset(a), SottoStatus::Ok);
        let status = sotto_transcribe(model, one.as_ptr(), one.len(), p, &mut out);
        assert_eq!(status, SottoStatus::Ok, "{}", last_error());
        assert_eq!(sotto_result_free(out), SottoStatus::Ok);

        // A freed abort handle is gone for the caller; parameters holding it keep
        // it (here reset, so the call runs).
        assert_eq!(sotto_abort_free(a), SottoStatus::Ok);
        assert_eq!(sotto_abort_trigger(a), SottoStatus::InvalidHandle);
        let status = sotto_transcribe(model, one.as_ptr(), one.len(), p, &mut out);
        assert_eq!(status, SottoStatus::Ok, "{}", last_error());
        assert_eq!(sotto_result_free(out), SottoStatus::Ok);

        // Triggered from this thread while another one transcribes (paused in its
        // first segment callback): the next window does not start. The model is
        // freed meanwhile: the running call keeps it until it ends.
        let mut b = SottoAbort::default();
        assert_eq!(sotto_abort_new(&mut b), SottoStatus::Ok);
        assert_eq!(sotto_params_set_abort(p, b), SottoStatus::Ok);
        let (reached_tx, reached_rx) = std::sync::mpsc::channel();
        let (resume_tx, resume_rx) = std::sync::mpsc::channel();
        let handshake = Handshake {
            first: true.into(),
            reached: reached_tx,
            resume: resume_rx,
        };
        sotto_params_set_segment_callback(
            p,
            Some(wait_for_trigger),
            &handshake as *const Handshake as *mut c_void,
        );
        let worker = std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let mut out = SottoResult::default();
                let status = sotto_transcribe(model, samples.as_ptr(), samples.len(), p, &mut out);
                (status, out.id)
            });
            reached_rx.recv().unwrap();
            assert_eq!(sotto_abort_trigger(b), SottoStatus::Ok);
            assert_eq!(sotto_model_free(model), SottoStatus::Ok);
            resume_tx.send(()).unwrap();
            worker.join().unwrap()
        });
        assert_eq!(worker, (SottoStatus::Aborted, 0));
        assert_eq!(sotto_model_free(model), SottoStatus::InvalidHandle);
        assert_eq!(sotto_abort_free(b), SottoStatus::Ok);
        assert_eq!(sotto_params_free(p), SottoStatus::Ok);
    }
}

// Live streams (push/poll), in their own file.
mod streams;
// ---------------------------------------------------------------------------
// Word timestamps

#[test]
fn words_of_jfk() {
    let Some(model) = tiny() else { return };
    unsafe {
        let mut params = SottoParams::default();
        assert_eq!(sotto_params_new(&mut params), SottoStatus::Ok);
        assert_eq!(
            sotto_params_set_word_timestamps(params, true),
            SottoStatus::Ok
        );
        assert_eq!(
            sotto_params_set_word_timestamps(SottoParams { id: 12345 }, true),
            SottoStatus::InvalidHandle
        );
        let samples = jfk();
        let mut r = SottoResult::default();
        let status = sotto_transcribe(model, samples.as_ptr(), samples.len(), params, &mut r);
        assert_eq!(status, SottoStatus::Ok, "{}", last_error());
        let mut n_seg = 0;
        assert_eq!(sotto_result_segment_count(r, &mut n_seg), SottoStatus::Ok);
        let mut words = Vec::new();
        let mut last_end = 0;
        for i in 0..n_seg {
            let mut n = 0;
            assert_eq!(sotto_result_word_count(r, i, &mut n), SottoStatus::Ok);
            assert!(n > 0);
            for j in 0..n {
                let mut w = SottoWord {
                    text: null(),
                    start_ms: 0,
                    end_ms: 0,
                    probability: 0.0,
                };
                assert_eq!(sotto_result_word(r, i, j, &mut w), SottoStatus::Ok);
                assert!(w.start_ms <= w.end_ms && w.start_ms >= last_end - 1000);
                assert!((0.0..=1.0).contains(&w.probability));
                last_end = w.end_ms;
                words.push(CStr::from_ptr(w.text).to_str().unwrap().to_string());
            }
            // Past the last word, and past the last segment: errors.
            let mut w = std::mem::zeroed::<SottoWord>();
            assert_eq!(
                sotto_result_word(r, i, n, &mut w),
                SottoStatus::InvalidArgument
            );
        }
        assert_eq!(
            sotto_result_word_count(r, n_seg, &mut 0),
            SottoStatus::InvalidArgument
        );
        assert_eq!(
            sotto_result_word_count(r, 0, null_mut()),
            SottoStatus::NullArgument
        );
        assert_eq!(
            sotto_result_word(r, 0, 0, null_mut()),
            SottoStatus::NullArgument
        );
        assert_eq!(
            sotto_result_word_count(SottoResult { id: 999_999 }, 0, &mut 0),
            SottoStatus::InvalidHandle
        );
        let text: String = words.concat();
        assert_eq!(text.trim(), text_of(r), "the words make the text");
        // Without word timestamps: no words.
        let mut plain = SottoResult::default();
        let status = sotto_transcribe(
            model,
            samples.as_ptr(),
            samples.len(),
            SottoParams::default(),
            &mut plain,
        );
        assert_eq!(status, SottoStatus::Ok, "{}", last_error());
        let mut n = 7;
        assert_eq!(sotto_result_word_count(plain, 0, &mut n), SottoStatus::Ok);
        assert_eq!(n, 0);
        for h in [r, plain] {
            assert_eq!(sotto_result_free(h), SottoStatus::Ok);
        }
        assert_eq!(sotto_params_free(params), SottoStatus::Ok);
        assert_eq!(sotto_model_free(model), SottoStatus::Ok);
    }
}
