//! Live streams over the C ABI: `sotto_stream_new` on a model handle, then any number of
//! `sotto_stream_push` (PCM pieces of any size) and `sotto_stream_poll` (words confirmed
//! since the last poll, and the tentative rest), `sotto_stream_finish`, `sotto_stream_free`.
//! The stream holds its model (an `Arc` out of the model registry), so freeing the model
//! handle first is allowed: the model lives until its last stream is freed.

use crate::handles::{c_string, Fail, Registry};
use crate::{guard, out_arg, str_arg, ModelEntry, SottoModel, SottoParams, SottoStatus};
use crate::{Params, MODELS, PARAMS};
use sotto::stream::{Stream, StreamOptions, Word};
use std::borrow::Borrow;
use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex};

/// A live transcription (`sotto_stream_new`, `sotto_stream_free`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SottoStream {
    pub id: u64,
}

/// How `sotto_stream_new` streams; start from `sotto_stream_options_default()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SottoStreamOptions {
    /// Rate of the PCM pushed, Hz (resampled to 16 kHz inside; 16000 needs no resampling).
    pub sample_rate: u32,
    /// Seconds of new audio between transcriptions of the buffer (> 0).
    pub step_s: f32,
    /// Seconds of audio between the two hypotheses whose agreement confirms a word (≥ 0;
    /// at most `step_s`: the previous hypothesis). Longer: fewer early guesses confirmed,
    /// later confirmation.
    pub agree_s: f32,
    /// Seconds of silence after speech that end an utterance (all its words confirmed).
    pub pause_s: f32,
    /// Silero VAD weights (`sotto fetch silero-vad`'s `.svad` file) to find pauses with;
    /// NULL finds them by energy level.
    pub vad_path: *const c_char,
    /// Silero speech probability that counts as speech (with `vad_path`), in (0, 1).
    pub vad_threshold: f32,
}

/// One word on the stream's timeline (milliseconds from the first sample pushed).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SottoStreamWord {
    pub start_ms: i64,
    pub end_ms: i64,
    /// UTF-8, NUL-terminated.
    pub text: *const c_char,
}

/// What `sotto_stream_poll` returns. Every pointer is owned by the stream and valid until
/// the next poll or the free of that stream.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SottoStreamUpdate {
    /// The words confirmed since the last poll, joined by spaces ("" if none): final.
    pub confirmed: *const c_char,
    /// The unconfirmed rest of the current hypothesis ("" if none): may still change.
    pub tentative: *const c_char,
    pub confirmed_words: *const SottoStreamWord,
    pub n_confirmed: usize,
    pub tentative_words: *const SottoStreamWord,
    pub n_tentative: usize,
}

impl Default for SottoStreamUpdate {
    fn default() -> SottoStreamUpdate {
        SottoStreamUpdate {
            confirmed: std::ptr::null(),
            tentative: std::ptr::null(),
            confirmed_words: std::ptr::null(),
            n_confirmed: 0,
            tentative_words: std::ptr::null(),
            n_tentative: 0,
        }
    }
}

/// The model a stream holds: the registry's entry, kept alive by the stream.
struct Held(Arc<ModelEntry>);

impl Borrow<sotto::Model> for Held {
    fn borrow(&self) -> &sotto::Model {
        &self.0.model
    }
}

/// The strings and word arrays of the last poll.
#[derive(Default)]
struct View {
    strings: Vec<CString>,
    confirmed: Vec<SottoStreamWord>,
    tentative: Vec<SottoStreamWord>,
}

// The word arrays point into `strings`, owned alongside them and only read under the lock.
unsafe impl Send for View {}

struct StreamState {
    stream: Stream<Held>,
    /// Confirmed since the last poll.
    pending: Vec<Word>,
    tentative: Vec<Word>,
    finished: bool,
    view: View,
}

struct StreamEntry(Mutex<StreamState>);

impl StreamEntry {
    fn state(&self) -> std::sync::MutexGuard<'_, StreamState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static STREAMS: Registry<StreamEntry> = Registry::new("stream");

/// Streams alive now (counted by `sotto_live_objects`).
pub(crate) fn live_streams() -> usize {
    STREAMS.len()
}

/// 16 kHz, a transcription every second, 0.8-s pauses found by energy level.
#[no_mangle]
pub extern "C" fn sotto_stream_options_default() -> SottoStreamOptions {
    let d = StreamOptions::default();
    SottoStreamOptions {
        sample_rate: d.rate,
        step_s: d.step,
        agree_s: d.agree,
        pause_s: d.pause,
        vad_path: std::ptr::null(),
        vad_threshold: 0.5,
    }
}

/// A stream transcribing with `model` (which it keeps alive) and `params`' decoding options
/// (a null handle: the defaults; the params' callbacks and abort handle are not used by
/// streams). `options` may be NULL (the defaults).
#[no_mangle]
pub unsafe extern "C" fn sotto_stream_new(
    model: SottoModel,
    options: *const SottoStreamOptions,
    params: SottoParams,
    out: *mut SottoStream,
) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        let entry = MODELS.get(model.id)?;
        let o = if options.is_null() {
            sotto_stream_options_default()
        } else {
            options.read()
        };
        if o.sample_rate == 0 {
            return Err(Fail::invalid("options.sample_rate is 0"));
        }
        if !(o.step_s.is_finite() && o.step_s > 0.0) {
            return Err(Fail::invalid(format!(
                "options.step_s {} (want finite, > 0)",
                o.step_s
            )));
        }
        if !(o.agree_s.is_finite() && o.agree_s >= 0.0) {
            return Err(Fail::invalid(format!(
                "options.agree_s {} (want finite, ≥ 0)",
                o.agree_s
            )));
        }
        if !(o.pause_s.is_finite() && o.pause_s > 0.0) {
            return Err(Fail::invalid(format!(
                "options.pause_s {} (want finite, > 0)",
                o.pause_s
            )));
        }
        let p = match params.id {
            0 => Params::default(),
            id => PARAMS
                .get(id)?
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        };
        let mut so = StreamOptions::default();
        so.rate = o.sample_rate;
        so.step = o.step_s;
        so.agree = o.agree_s;
        so.pause = o.pause_s;
        so.options = p.options.clone();
        so.options.threads = p.threads.unwrap_or(entry.threads);
        let kernels = *entry.model.kernels();
        let held = Held(entry);
        let stream = if o.vad_path.is_null() {
            Stream::new(held, so)?
        } else {
            if !(o.vad_threshold > 0.0 && o.vad_threshold < 1.0) {
                return Err(Fail::invalid(format!(
                    "options.vad_threshold {} (want within (0, 1))",
                    o.vad_threshold
                )));
            }
            let silero = sotto::vad::Silero::load(str_arg(o.vad_path, "options.vad_path")?)?;
            let detector = sotto::vad::SileroPause::new(Arc::new(silero), kernels, o.vad_threshold);
            Stream::with_detector(held, so, Box::new(detector))?
        };
        out.id = STREAMS.insert(StreamEntry(Mutex::new(StreamState {
            stream,
            pending: Vec::new(),
            tentative: Vec::new(),
            finished: false,
            view: View::default(),
        })));
        Ok(())
    })
}

/// Takes `n` mono samples in [-1, 1] at the stream's rate (`pcm` may be NULL only when `n`
/// is 0); transcribes when a step's worth of audio has arrived, so a push may take as long
/// as a transcription. What it confirmed waits for `sotto_stream_poll`. After
/// `sotto_stream_finish` a push is `SOTTO_STATUS_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn sotto_stream_push(
    stream: SottoStream,
    pcm: *const f32,
    n: usize,
) -> SottoStatus {
    guard(|| {
        let entry = STREAMS.get(stream.id)?;
        let pcm: &[f32] = match (pcm.is_null(), n) {
            (_, 0) => &[],
            (true, _) => return Err(Fail::null("pcm")),
            (false, n) if n > isize::MAX as usize / 4 => {
                return Err(Fail::invalid(format!("{n} samples")))
            }
            (false, n) => std::slice::from_raw_parts(pcm, n),
        };
        let mut s = entry.state();
        if s.finished {
            return Err(Fail::invalid("stream already finished"));
        }
        let update = s.stream.push(pcm)?;
        s.pending.extend(update.confirmed);
        s.tentative = update.tentative;
        Ok(())
    })
}

/// Ends the input: everything still tentative is transcribed once more and confirmed
/// (read it with `sotto_stream_poll`). Finishing twice is allowed and does nothing.
#[no_mangle]
pub extern "C" fn sotto_stream_finish(stream: SottoStream) -> SottoStatus {
    guard(|| {
        let entry = STREAMS.get(stream.id)?;
        let mut s = entry.state();
        if s.finished {
            return Ok(());
        }
        let update = s.stream.finish()?;
        s.pending.extend(update.confirmed);
        s.tentative.clear();
        s.finished = true;
        Ok(())
    })
}

fn words(view: &mut View, words: &[Word]) -> (CString, Vec<SottoStreamWord>) {
    let joined: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    let list = words
        .iter()
        .map(|w| {
            let text = c_string(&w.text);
            let word = SottoStreamWord {
                start_ms: crate::ms(w.start),
                end_ms: crate::ms(w.end),
                text: text.as_ptr(),
            };
            view.strings.push(text);
            word
        })
        .collect();
    (c_string(&joined.join(" ")), list)
}

/// The words confirmed since the last poll and the current tentative words (see
/// `SottoStreamUpdate` for how long its pointers live).
#[no_mangle]
pub unsafe extern "C" fn sotto_stream_poll(
    stream: SottoStream,
    out: *mut SottoStreamUpdate,
) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        let entry = STREAMS.get(stream.id)?;
        let mut guard = entry.state();
        let s = &mut *guard;
        let pending = std::mem::take(&mut s.pending);
        let mut view = View::default();
        let (confirmed, cw) = words(&mut view, &pending);
        let (tentative, tw) = words(&mut view, &s.tentative);
        view.confirmed = cw;
        view.tentative = tw;
        *out = SottoStreamUpdate {
            confirmed: confirmed.as_ptr(),
            tentative: tentative.as_ptr(),
            confirmed_words: view.confirmed.as_ptr(),
            n_confirmed: view.confirmed.len(),
            tentative_words: view.tentative.as_ptr(),
            n_tentative: view.tentative.len(),
        };
        view.strings.push(confirmed);
        view.strings.push(tentative);
        // Moving the CStrings and Vecs moves no heap data: the pointers stay valid.
        s.view = view;
        Ok(())
    })
}

/// Frees a stream (and its hold on the model).
#[no_mangle]
pub extern "C" fn sotto_stream_free(stream: SottoStream) -> SottoStatus {
    guard(|| STREAMS.remove(stream.id).map(drop))
}
