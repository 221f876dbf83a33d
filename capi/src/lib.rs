//! sotto's C ABI: `include/sotto.h`, generated from this file by cbindgen. The
//! contract every function keeps (statuses, last error, handles as registry ids,
//! string ownership, no panic across the boundary) is the header's opening
//! comment, in `cbindgen.toml`. Pointers the caller passes must be NULL or valid
//! for the stated length; that much the library cannot check.
#![allow(clippy::missing_safety_doc)]

mod handles;
// Live streams (push/poll), in their own file.
mod stream;
#[cfg(test)]
mod tests;

use handles::{c_string, Fail, Registry};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// What a call did. Every function returns one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SottoStatus {
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// A handle that is null, freed, or of another kind.
    InvalidHandle = 2,
    /// An argument out of range, or a string that is not UTF-8.
    InvalidArgument = 3,
    /// A file could not be read.
    Io = 4,
    /// The model file is malformed.
    Format = 5,
    /// The audio could not be decoded or is unusable.
    Audio = 6,
    /// Stopped by an abort handle or a callback's nonzero return.
    Aborted = 7,
    /// The GPU failed or is not there.
    Device = 8,
    /// This build of the library lacks the feature (e.g. audio decoding).
    Unsupported = 9,
    /// A bug inside sotto, caught at the boundary; the message says where.
    Panic = 10,
    /// Any other failure; the message says what.
    Failed = 11,
}

pub const SOTTO_TASK_TRANSCRIBE: i32 = 0;
/// Translate to English.
pub const SOTTO_TASK_TRANSLATE: i32 = 1;

pub const SOTTO_DEVICE_CPU: i32 = 0;
/// A real GPU when there is one (library built with feature `gpu`), else the CPU.
pub const SOTTO_DEVICE_AUTO: i32 = 1;
/// A GPU or an error.
pub const SOTTO_DEVICE_GPU: i32 = 2;

pub const SOTTO_FORMAT_TXT: i32 = 0;
pub const SOTTO_FORMAT_SRT: i32 = 1;
pub const SOTTO_FORMAT_VTT: i32 = 2;
pub const SOTTO_FORMAT_JSON: i32 = 3;

/// A loaded model (`sotto_model_load`, `sotto_model_free`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SottoModel {
    pub id: u64,
}

/// Decoding parameters (`sotto_params_new`, setters, `sotto_params_free`); a null
/// handle where parameters are read means the defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SottoParams {
    pub id: u64,
}

/// A transcript (`sotto_transcribe*`, `sotto_result_*`, `sotto_result_free`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SottoResult {
    pub id: u64,
}

/// Stops transcriptions from any thread (`sotto_abort_*`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SottoAbort {
    pub id: u64,
}

/// How `sotto_model_load` loads a model; start from `sotto_load_options_default()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SottoLoadOptions {
    /// Worker threads for transcriptions whose parameters set none; 0 = all cores.
    pub threads: u32,
    /// CPU kernel set ("scalar", "avx2", "avx512vnni", "neon", …); NULL = the best
    /// this CPU supports. A set this CPU lacks is an error.
    pub kernels: *const c_char,
    /// `SOTTO_DEVICE_*`.
    pub device: i32,
}

/// One segment, as `sotto_result_segment` and the segment callback see it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SottoSegment {
    /// Milliseconds from the start of the audio.
    pub start_ms: i64,
    pub end_ms: i64,
    /// UTF-8, NUL-terminated; owned by the result (or, in the segment callback,
    /// valid until the callback returns).
    pub text: *const c_char,
    /// The segment's token ids (`n_tokens` of them), owned like `text`.
    pub tokens: *const u32,
    pub n_tokens: usize,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    /// Temperature of the decoding kept (above 0 when the window fell back).
    pub temperature: f32,
    pub compression_ratio: f32,
}

/// Called after each 30-s window with seconds of audio done and in all; a nonzero
/// return stops the transcription (`SOTTO_STATUS_ABORTED`) before its next window,
/// so after the last window it changes nothing.
pub type SottoProgressCallback =
    Option<unsafe extern "C" fn(done_s: f64, total_s: f64, user_data: *mut c_void) -> i32>;

/// Called with each segment as soon as its window is decoded (the pointer is valid
/// during the call only); a nonzero return stops the transcription before its
/// next window, as for the progress callback.
pub type SottoSegmentCallback =
    Option<unsafe extern "C" fn(segment: *const SottoSegment, user_data: *mut c_void) -> i32>;

// ---------------------------------------------------------------------------
// Errors and the boundary

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(message: &str) {
    let c = c_string(message);
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

/// Runs one entry point: its error becomes a status and this thread's last error,
/// and so does a panic.
fn guard(f: impl FnOnce() -> Result<(), Fail>) -> SottoStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SottoStatus::Ok,
        Ok(Err(fail)) => {
            set_error(&fail.message);
            fail.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_error(&format!("internal error (panic): {what}"));
            SottoStatus::Panic
        }
    }
}

/// The message of this thread's last failed call ("" if none): UTF-8, valid until
/// this thread's next failing call.
#[no_mangle]
pub extern "C" fn sotto_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// The library's version ("0.1.0"), static.
#[no_mangle]
pub extern "C" fn sotto_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"",
        };
    VERSION.as_ptr()
}

/// Handles and strings alive now (models, parameters, results, abort handles,
/// formatted strings): 0 once a program has freed everything it got.
#[no_mangle]
pub extern "C" fn sotto_live_objects() -> usize {
    catch_unwind(|| {
        MODELS.len()
            + PARAMS.len()
            + RESULTS.len()
            + ABORTS.len()
            + handles::live_strings()
            + stream::live_streams()
    })
    .unwrap_or(0)
}

unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Fail> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|_| Fail::invalid(format!("{what} is not UTF-8")))
}

/// Clears `out` first so that a failure leaves a null value there.
unsafe fn out_arg<'a, T: Default>(p: *mut T, what: &str) -> Result<&'a mut T, Fail> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    p.write(T::default());
    Ok(&mut *p)
}

/// A pointer out-parameter, checked and set to NULL (what it holds on failure).
unsafe fn out_ptr<'a, T>(p: *mut *const T, what: &str) -> Result<&'a mut *const T, Fail> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    p.write(std::ptr::null());
    Ok(&mut *p)
}

// ---------------------------------------------------------------------------
// Models

struct ModelEntry {
    model: sotto::Model,
    threads: usize,
    kernels: CString,
}

static MODELS: Registry<ModelEntry> = Registry::new("model");

/// 0 threads (all cores), the best kernels, the CPU.
#[no_mangle]
pub extern "C" fn sotto_load_options_default() -> SottoLoadOptions {
    SottoLoadOptions {
        threads: 0,
        kernels: std::ptr::null(),
        device: SOTTO_DEVICE_CPU,
    }
}

fn device(code: i32) -> Result<sotto::Device, Fail> {
    match code {
        SOTTO_DEVICE_CPU => Ok(sotto::Device::Cpu),
        SOTTO_DEVICE_AUTO => Ok(sotto::Device::Auto),
        SOTTO_DEVICE_GPU => Ok(sotto::Device::Gpu),
        _ => Err(Fail::invalid(format!("unknown device {code}"))),
    }
}

fn all_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Maps and validates a `.sotto` file. `options` may be NULL (the defaults).
#[no_mangle]
pub unsafe extern "C" fn sotto_model_load(
    path: *const c_char,
    options: *const SottoLoadOptions,
    out: *mut SottoModel,
) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        let path = str_arg(path, "path")?;
        let o = if options.is_null() {
            sotto_load_options_default()
        } else {
            options.read()
        };
        let mut load = sotto::LoadOptions::default().device(device(o.device)?);
        if !o.kernels.is_null() {
            load = load.kernels(str_arg(o.kernels, "options.kernels")?);
        }
        let threads = match o.threads {
            0 => all_cores(),
            n => n as usize,
        };
        let model = sotto::Model::load_with(path, &load)?;
        let kernels = c_string(model.kernels().isa().name());
        out.id = MODELS.insert(ModelEntry {
            model,
            threads,
            kernels,
        });
        Ok(())
    })
}

/// Whether the model is multilingual (detects the language, can translate).
#[no_mangle]
pub unsafe extern "C" fn sotto_model_multilingual(
    model: SottoModel,
    out: *mut bool,
) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        *out = MODELS.get(model.id)?.model.config().multilingual;
        Ok(())
    })
}

/// The CPU kernel set the model runs with ("x86-avx2-fma", …); lives until the
/// model is freed.
#[no_mangle]
pub unsafe extern "C" fn sotto_model_kernels(
    model: SottoModel,
    out: *mut *const c_char,
) -> SottoStatus {
    guard(|| {
        let out = out_ptr(out, "out")?;
        *out = MODELS.get(model.id)?.kernels.as_ptr();
        Ok(())
    })
}

/// Frees a model. Transcriptions running on it finish first.
#[no_mangle]
pub extern "C" fn sotto_model_free(model: SottoModel) -> SottoStatus {
    guard(|| MODELS.remove(model.id).map(drop))
}

// ---------------------------------------------------------------------------
// Abort handles

/// A trigger that stays set until reset, and the transcriptions now listening to it.
#[derive(Default)]
struct AbortEntry(Mutex<AbortState>);

#[derive(Default)]
struct AbortState {
    triggered: bool,
    calls: Vec<(u64, sotto::Abort)>,
}

impl AbortEntry {
    fn state(&self) -> std::sync::MutexGuard<'_, AbortState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One transcription listening to an abort handle, until dropped.
struct Listening<'a> {
    entry: &'a AbortEntry,
    call: u64,
}

impl<'a> Listening<'a> {
    fn new(entry: &'a AbortEntry, abort: &sotto::Abort) -> Listening<'a> {
        let call = handles::next_id();
        let mut s = entry.state();
        if s.triggered {
            abort.abort();
        }
        s.calls.push((call, abort.clone()));
        Listening { entry, call }
    }
}

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        self.entry.state().calls.retain(|(id, _)| *id != self.call);
    }
}

static ABORTS: Registry<AbortEntry> = Registry::new("abort handle");

/// A new abort handle, not triggered.
#[no_mangle]
pub unsafe extern "C" fn sotto_abort_new(out: *mut SottoAbort) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        out.id = ABORTS.insert(AbortEntry::default());
        Ok(())
    })
}

/// Stops the transcriptions using this handle (before their next decoder step) and
/// every later one until `sotto_abort_reset`. Safe from any thread.
#[no_mangle]
pub extern "C" fn sotto_abort_trigger(abort: SottoAbort) -> SottoStatus {
    guard(|| {
        let entry = ABORTS.get(abort.id)?;
        let mut s = entry.state();
        s.triggered = true;
        for (_, a) in &s.calls {
            a.abort();
        }
        Ok(())
    })
}

/// Lets later transcriptions run again (those already stopped stay stopped).
#[no_mangle]
pub extern "C" fn sotto_abort_reset(abort: SottoAbort) -> SottoStatus {
    guard(|| {
        ABORTS.get(abort.id)?.state().triggered = false;
        Ok(())
    })
}

/// Frees an abort handle (parameters holding it keep it working).
#[no_mangle]
pub extern "C" fn sotto_abort_free(abort: SottoAbort) -> SottoStatus {
    guard(|| ABORTS.remove(abort.id).map(drop))
}

// ---------------------------------------------------------------------------
// Parameters

/// The caller's `user_data`, handed back to its callbacks on the transcribing thread.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// The caller promises its callbacks may run on the thread that transcribes.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    fn get(self) -> *mut c_void {
        self.0
    }
}

#[derive(Clone, Default)]
struct Params {
    /// Callbacks and abort are not set here but per call.
    options: sotto::Options,
    /// `None`: the model's thread count.
    threads: Option<usize>,
    progress: Option<(unsafe extern "C" fn(f64, f64, *mut c_void) -> i32, UserData)>,
    segment: Option<(
        unsafe extern "C" fn(*const SottoSegment, *mut c_void) -> i32,
        UserData,
    )>,
    abort: Option<Arc<AbortEntry>>,
}

static PARAMS: Registry<Mutex<Params>> = Registry::new("parameters");

fn with_params(
    params: SottoParams,
    f: impl FnOnce(&mut Params) -> Result<(), Fail>,
) -> SottoStatus {
    guard(|| {
        let entry = PARAMS.get(params.id)?;
        let mut p = entry.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p)
    })
}

fn not_nan(v: f32, what: &str) -> Result<f32, Fail> {
    if v.is_nan() {
        return Err(Fail::invalid(format!("{what} is NaN")));
    }
    Ok(v)
}

/// Parameters with openai-whisper's greedy defaults: language detected, task
/// transcribe, timestamps on, conditioned on previous text, temperatures
/// 0, 0.2, …, 1.0, thresholds 2.4 (compression ratio), −1 (log-probability),
/// 0.6 (no speech), the model's thread count, no callbacks.
#[no_mangle]
pub unsafe extern "C" fn sotto_params_new(out: *mut SottoParams) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        out.id = PARAMS.insert(Mutex::new(Params::default()));
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn sotto_params_free(params: SottoParams) -> SottoStatus {
    guard(|| PARAMS.remove(params.id).map(drop))
}

/// Worker threads; 0 = the model's count.
#[no_mangle]
pub extern "C" fn sotto_params_set_threads(params: SottoParams, threads: u32) -> SottoStatus {
    with_params(params, |p| {
        p.threads = (threads > 0).then_some(threads as usize);
        Ok(())
    })
}

/// Spoken language code ("en", "de", …); NULL detects it (multilingual models).
#[no_mangle]
pub unsafe extern "C" fn sotto_params_set_language(
    params: SottoParams,
    language: *const c_char,
) -> SottoStatus {
    with_params(params, |p| {
        p.options.language = match language.is_null() {
            true => None,
            false => {
                let l = str_arg(language, "language")?;
                if l.is_empty() {
                    return Err(Fail::invalid("language is empty (NULL detects it)"));
                }
                Some(l.to_string())
            }
        };
        Ok(())
    })
}

/// `SOTTO_TASK_TRANSCRIBE` or `SOTTO_TASK_TRANSLATE`.
#[no_mangle]
pub extern "C" fn sotto_params_set_task(params: SottoParams, task: i32) -> SottoStatus {
    with_params(params, |p| {
        p.options.task = match task {
            SOTTO_TASK_TRANSCRIBE => sotto::Task::Transcribe,
            SOTTO_TASK_TRANSLATE => sotto::Task::Translate,
            _ => return Err(Fail::invalid(format!("unknown task {task}"))),
        };
        Ok(())
    })
}

/// Predict timestamps (segments); off decodes each 30-s window as one segment.
#[no_mangle]
pub extern "C" fn sotto_params_set_timestamps(params: SottoParams, on: bool) -> SottoStatus {
    with_params(params, |p| {
        p.options.timestamps = on;
        Ok(())
    })
}

/// Give the previous window's text as a prompt.
#[no_mangle]
pub extern "C" fn sotto_params_set_condition_on_previous_text(
    params: SottoParams,
    on: bool,
) -> SottoStatus {
    with_params(params, |p| {
        p.options.condition_on_previous_text = on;
        Ok(())
    })
}

/// Temperatures tried in order while a window's text loops or is improbable
/// (1 to 16 values, each finite and ≥ 0; `{0}` alone never falls back).
#[no_mangle]
pub unsafe extern "C" fn sotto_params_set_temperatures(
    params: SottoParams,
    temperatures: *const f32,
    n: usize,
) -> SottoStatus {
    with_params(params, |p| {
        if temperatures.is_null() {
            return Err(Fail::null("temperatures"));
        }
        if !(1..=16).contains(&n) {
            return Err(Fail::invalid(format!("{n} temperatures (want 1 to 16)")));
        }
        let t = std::slice::from_raw_parts(temperatures, n);
        if let Some(bad) = t.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
            return Err(Fail::invalid(format!(
                "temperature {bad} (want finite, ≥ 0)"
            )));
        }
        p.options.temperatures = t.to_vec();
        Ok(())
    })
}

/// Fallback thresholds: a window retries hotter when its text's compression ratio
/// is above `compression_ratio` or its mean log-probability below `logprob`;
/// it is silence when its no-speech probability is above `no_speech` (and the
/// log-probability rule failed). ±infinity turns a rule off; NaN is an error.
#[no_mangle]
pub extern "C" fn sotto_params_set_thresholds(
    params: SottoParams,
    compression_ratio: f32,
    logprob: f32,
    no_speech: f32,
) -> SottoStatus {
    with_params(params, |p| {
        p.options.compression_ratio_threshold = not_nan(compression_ratio, "compression_ratio")?;
        p.options.logprob_threshold = not_nan(logprob, "logprob")?;
        p.options.no_speech_threshold = not_nan(no_speech, "no_speech")?;
        Ok(())
    })
}

/// Latest first timestamp of a window in seconds; negative = no limit.
#[no_mangle]
pub extern "C" fn sotto_params_set_max_initial_timestamp(
    params: SottoParams,
    seconds: f32,
) -> SottoStatus {
    with_params(params, |p| {
        let s = not_nan(seconds, "seconds")?;
        p.options.max_initial_timestamp = (s >= 0.0).then_some(s);
        Ok(())
    })
}

/// sotto's speaking-rate rule (characters per second of audio above which a
/// window's text falls back); ≤ 0 turns it off.
#[no_mangle]
pub extern "C" fn sotto_params_set_max_chars_per_second(
    params: SottoParams,
    chars: f32,
) -> SottoStatus {
    with_params(params, |p| {
        let c = not_nan(chars, "chars")?;
        p.options.max_chars_per_second = (c > 0.0).then_some(c);
        Ok(())
    })
}

/// Seed for temperature sampling.
#[no_mangle]
pub extern "C" fn sotto_params_set_seed(params: SottoParams, seed: u64) -> SottoStatus {
    with_params(params, |p| {
        p.options.seed = seed;
        Ok(())
    })
}

/// Progress callback (NULL removes it); called on the transcribing thread.
#[no_mangle]
pub extern "C" fn sotto_params_set_progress_callback(
    params: SottoParams,
    callback: SottoProgressCallback,
    user_data: *mut c_void,
) -> SottoStatus {
    with_params(params, |p| {
        p.progress = callback.map(|c| (c, UserData(user_data)));
        Ok(())
    })
}

/// Segment callback (NULL removes it); called on the transcribing thread.
#[no_mangle]
pub extern "C" fn sotto_params_set_segment_callback(
    params: SottoParams,
    callback: SottoSegmentCallback,
    user_data: *mut c_void,
) -> SottoStatus {
    with_params(params, |p| {
        p.segment = callback.map(|c| (c, UserData(user_data)));
        Ok(())
    })
}

/// Transcriptions with these parameters listen to `abort`; a null handle detaches.
#[no_mangle]
pub extern "C" fn sotto_params_set_abort(params: SottoParams, abort: SottoAbort) -> SottoStatus {
    with_params(params, |p| {
        p.abort = match abort.id {
            0 => None,
            id => Some(ABORTS.get(id)?),
        };
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Transcription and results

struct SegmentEntry {
    text: CString,
    segment: sotto::Segment,
    /// The text of each of `segment.words` (word timestamps).
    words: Vec<CString>,
}

struct ResultEntry {
    text: CString,
    language: CString,
    segments: Vec<SegmentEntry>,
    transcript: sotto::Transcript,
}

impl ResultEntry {
    /// Segment `index`, or an error naming how many there are.
    fn segment(&self, index: usize) -> Result<&SegmentEntry, Fail> {
        self.segments.get(index).ok_or_else(|| {
            Fail::invalid(format!(
                "segment {index} of a result with {}",
                self.segments.len()
            ))
        })
    }
}

static RESULTS: Registry<ResultEntry> = Registry::new("result");

fn ms(seconds: f32) -> i64 {
    (seconds as f64 * 1000.0).round() as i64
}

fn segment_view(s: &sotto::Segment, text: &CStr) -> SottoSegment {
    SottoSegment {
        start_ms: ms(s.start),
        end_ms: ms(s.end),
        text: text.as_ptr(),
        tokens: s.tokens.as_ptr(),
        n_tokens: s.tokens.len(),
        avg_logprob: s.avg_logprob,
        no_speech_prob: s.no_speech_prob,
        temperature: s.temperature,
        compression_ratio: s.compression_ratio,
    }
}

/// `params`' options for one call, its callbacks and abort wired to `abort`.
fn call_options(p: &Params, threads: usize, abort: &sotto::Abort) -> sotto::Options {
    let mut o = p.options.clone();
    o.threads = p.threads.unwrap_or(threads);
    o.abort = Some(abort.clone());
    if let Some((cb, user)) = p.progress {
        let abort = abort.clone();
        o.progress = Some(Arc::new(move |done, total| {
            if unsafe { cb(done, total, user.get()) } != 0 {
                abort.abort();
            }
        }));
    }
    if let Some((cb, user)) = p.segment {
        let abort = abort.clone();
        o.on_segment = Some(Arc::new(move |s: &sotto::Segment| {
            let text = c_string(&s.text);
            let view = segment_view(s, &text);
            if unsafe { cb(&view, user.get()) } != 0 {
                abort.abort();
            }
        }));
    }
    o
}

fn transcribe(
    model: SottoModel,
    params: SottoParams,
    out: &mut SottoResult,
    samples: &[f32],
) -> Result<(), Fail> {
    let entry = MODELS.get(model.id)?;
    let p = match params.id {
        0 => Params::default(),
        id => PARAMS
            .get(id)?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    };
    let abort = sotto::Abort::new();
    let _listening = p.abort.as_deref().map(|a| Listening::new(a, &abort));
    let options = call_options(&p, entry.threads, &abort);
    let transcript = entry.model.transcribe(samples, &options)?;
    let segments = transcript
        .segments
        .iter()
        .map(|s| SegmentEntry {
            text: c_string(&s.text),
            segment: s.clone(),
            words: s.words.iter().map(|w| c_string(&w.word)).collect(),
        })
        .collect();
    out.id = RESULTS.insert(ResultEntry {
        text: c_string(&transcript.text),
        language: c_string(&transcript.language),
        segments,
        transcript,
    });
    Ok(())
}

/// Transcribes `n_samples` 16-kHz mono samples in [-1, 1]. `params` may be a null
/// handle (the defaults). `samples` may be NULL only when `n_samples` is 0.
#[no_mangle]
pub unsafe extern "C" fn sotto_transcribe(
    model: SottoModel,
    samples: *const f32,
    n_samples: usize,
    params: SottoParams,
    out: *mut SottoResult,
) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        let samples: &[f32] = match (samples.is_null(), n_samples) {
            (_, 0) => &[],
            (true, _) => return Err(Fail::null("samples")),
            (false, n) if n > isize::MAX as usize / 4 => {
                return Err(Fail::invalid(format!("{n} samples")))
            }
            (false, n) => std::slice::from_raw_parts(samples, n),
        };
        transcribe(model, params, out, samples)
    })
}

/// Decodes an audio file (WAV, FLAC, MP3, OGG; any rate, channels mixed down) and
/// transcribes it. `SOTTO_STATUS_UNSUPPORTED` in a library built without `audio`.
#[no_mangle]
pub unsafe extern "C" fn sotto_transcribe_file(
    model: SottoModel,
    path: *const c_char,
    params: SottoParams,
    out: *mut SottoResult,
) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        let path = str_arg(path, "path")?;
        transcribe(model, params, out, &load_audio(path)?)
    })
}

#[cfg(feature = "audio")]
fn load_audio(path: &str) -> Result<Vec<f32>, Fail> {
    Ok(sotto::audio::load_audio(path.as_ref())?)
}

#[cfg(not(feature = "audio"))]
fn load_audio(_path: &str) -> Result<Vec<f32>, Fail> {
    Err(Fail {
        status: SottoStatus::Unsupported,
        message: "this libsotto was built without audio decoding (feature audio)".into(),
    })
}

/// Number of segments.
#[no_mangle]
pub unsafe extern "C" fn sotto_result_segment_count(
    result: SottoResult,
    out: *mut usize,
) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        *out = RESULTS.get(result.id)?.segments.len();
        Ok(())
    })
}

/// Segment `index` (0-based); its pointers live until the result is freed.
#[no_mangle]
pub unsafe extern "C" fn sotto_result_segment(
    result: SottoResult,
    index: usize,
    out: *mut SottoSegment,
) -> SottoStatus {
    guard(|| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        let r = RESULTS.get(result.id)?;
        let s = r.segment(index)?;
        out.write(segment_view(&s.segment, &s.text));
        Ok(())
    })
}

/// The whole text; lives until the result is freed.
#[no_mangle]
pub unsafe extern "C" fn sotto_result_text(
    result: SottoResult,
    out: *mut *const c_char,
) -> SottoStatus {
    guard(|| {
        let out = out_ptr(out, "out")?;
        *out = RESULTS.get(result.id)?.text.as_ptr();
        Ok(())
    })
}

/// The language code spoken (given or detected); lives until the result is freed.
#[no_mangle]
pub unsafe extern "C" fn sotto_result_language(
    result: SottoResult,
    out: *mut *const c_char,
) -> SottoStatus {
    guard(|| {
        let out = out_ptr(out, "out")?;
        *out = RESULTS.get(result.id)?.language.as_ptr();
        Ok(())
    })
}

/// The transcript as `SOTTO_FORMAT_*` text (as the `sotto` CLI writes it), in a new
/// string the caller frees with `sotto_string_free`.
#[no_mangle]
pub unsafe extern "C" fn sotto_result_format(
    result: SottoResult,
    format: i32,
    out: *mut *mut c_char,
) -> SottoStatus {
    use sotto::decoding::output::{render, Format};
    guard(|| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        out.write(std::ptr::null_mut());
        let format = match format {
            SOTTO_FORMAT_TXT => Format::Txt,
            SOTTO_FORMAT_SRT => Format::Srt,
            SOTTO_FORMAT_VTT => Format::Vtt,
            SOTTO_FORMAT_JSON => Format::Json,
            _ => return Err(Fail::invalid(format!("unknown format {format}"))),
        };
        let text = render(&RESULTS.get(result.id)?.transcript, format);
        out.write(handles::give_string(&text));
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn sotto_result_free(result: SottoResult) -> SottoStatus {
    guard(|| RESULTS.remove(result.id).map(drop))
}

/// Frees a string from `sotto_result_format`; any other pointer, or one already
/// freed, is `SOTTO_STATUS_INVALID_HANDLE` (and left alone).
#[no_mangle]
pub unsafe extern "C" fn sotto_string_free(s: *mut c_char) -> SottoStatus {
    guard(|| {
        if s.is_null() {
            return Err(Fail::null("string"));
        }
        handles::take_string(s)
    })
}

// ---------------------------------------------------------------------------
// Word timestamps

/// One word of a segment (`sotto_result_word`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SottoWord {
    /// UTF-8, NUL-terminated, with its leading space and merged punctuation;
    /// owned by the result.
    pub text: *const c_char,
    /// Milliseconds from the start of the audio.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Mean probability of the word's tokens.
    pub probability: f32,
}

/// Time every word of every segment from the alignment heads' cross-attention
/// (openai-whisper's `word_timestamps`); off by default. On a GPU the
/// transcription then runs on the CPU (the GPU backend does not read the
/// weights back).
#[no_mangle]
pub extern "C" fn sotto_params_set_word_timestamps(params: SottoParams, on: bool) -> SottoStatus {
    with_params(params, |p| {
        p.options.word_timestamps = on;
        Ok(())
    })
}

/// Number of words of segment `segment` (0 without word timestamps).
#[no_mangle]
pub unsafe extern "C" fn sotto_result_word_count(
    result: SottoResult,
    segment: usize,
    out: *mut usize,
) -> SottoStatus {
    guard(|| {
        let out = out_arg(out, "out")?;
        let r = RESULTS.get(result.id)?;
        let s = r.segment(segment)?;
        *out = s.words.len();
        Ok(())
    })
}

/// Word `index` (0-based) of segment `segment`; its text lives until the result
/// is freed.
#[no_mangle]
pub unsafe extern "C" fn sotto_result_word(
    result: SottoResult,
    segment: usize,
    index: usize,
    out: *mut SottoWord,
) -> SottoStatus {
    guard(|| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        let r = RESULTS.get(result.id)?;
        let s = r.segment(segment)?;
        let (w, text) = s
            .segment
            .words
            .get(index)
            .zip(s.words.get(index))
            .ok_or_else(|| {
                Fail::invalid(format!("word {index} of a segment with {}", s.words.len()))
            })?;
        out.write(SottoWord {
            text: text.as_ptr(),
            start_ms: ms(w.start),
            end_ms: ms(w.end),
            probability: w.probability,
        });
        Ok(())
    })
}
