//! sotto: Whisper speech-to-text from a memory-mapped `.sotto` file.
//!
//! ```no_run
//! use sotto::{Model, Options};
//!
//! # fn main() -> sotto::Result<()> {
//! let model = Model::load("tiny.en.sotto")?;
//! // 16-kHz mono samples in [-1, 1]; `sotto::audio::load_audio` reads files.
//! let samples: Vec<f32> = vec![0.0; 16_000];
//! let transcript = model.transcribe(&samples, &Options::default())?;
//! for s in &transcript.segments {
//!     println!("[{:.2} → {:.2}] {}", s.start, s.end, s.text);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A [`Model`] is `Send + Sync`: share it (e.g. in an `Arc`) and call
//! [`Model::transcribe`] from several threads at once; the calls share the
//! model's worker pool.
//!
//! Segments as they are decoded, and stopping from another thread:
//!
//! ```no_run
//! use sotto::{Abort, Device, LoadOptions, Model, Options};
//! use std::sync::Arc;
//!
//! # fn main() -> sotto::Result<()> {
//! // The kernel set and device are load options (the library reads no
//! // environment variable).
//! let model = Model::load_with("base.sotto", &LoadOptions::default().device(Device::Auto))?;
//! let abort = Abort::new();
//! let mut options = Options::default();
//! options.on_segment = Some(Arc::new(|s: &sotto::Segment| println!("{}", s.text)));
//! options.abort = Some(abort.clone());
//! let stopper = std::thread::spawn(move || {
//!     std::thread::sleep(std::time::Duration::from_secs(5));
//!     abort.abort();
//! });
//! let samples = sotto::audio::load_audio("long.wav".as_ref())?;
//! match model.transcribe(&samples, &options) {
//!     Ok(t) => println!("{}", t.text),
//!     Err(sotto::Error::Aborted) => eprintln!("stopped"),
//!     Err(e) => return Err(e),
//! }
//! stopper.join().unwrap();
//! # Ok(())
//! # }
//! ```

pub mod audio;
#[cfg(feature = "convert")]
pub mod convert;
pub mod decoding;
pub mod error;
#[cfg(feature = "eval")]
pub mod eval;
pub mod format;
#[cfg(feature = "gpu")]
pub mod gpu;
pub(crate) mod model;
pub mod quantize;
pub mod stream;
pub mod tokenizer;
pub mod vad;

pub use error::{Error, Result};
pub use model::{LinearObserver, Op, OpProfiler, OpTiming};

use std::path::Path;
use std::sync::{Arc, Mutex};

/// Transcribe in the spoken language, or translate to English.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Task {
    #[default]
    Transcribe,
    Translate,
}

/// Called with (seconds of audio done, seconds in all).
pub type ProgressFn = Arc<dyn Fn(f64, f64) + Send + Sync>;

/// Called with each segment as soon as its window is decoded.
pub type SegmentFn = Arc<dyn Fn(&Segment) + Send + Sync>;

/// Stops a transcription from another thread: clone it into [`Options::abort`],
/// call [`Abort::abort`], and the transcription returns [`Error::Aborted`] before
/// its next decoder step or window.
#[derive(Clone, Debug, Default)]
pub struct Abort(Arc<std::sync::atomic::AtomicBool>);

impl Abort {
    pub fn new() -> Abort {
        Abort::default()
    }
    pub fn abort(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    pub fn is_aborted(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Decoding options; the defaults are openai-whisper's greedy settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// Worker threads for the kernels.
    pub threads: usize,
    /// Spoken language code ("en", "de", …); `None` detects it (multilingual models).
    pub language: Option<String>,
    pub task: Task,
    /// Predict timestamps (segments); off decodes each window as one segment.
    pub timestamps: bool,
    /// Give the previous window's text as a prompt.
    pub condition_on_previous_text: bool,
    /// Tried in order while a window's text loops or is improbable.
    pub temperatures: Vec<f32>,
    pub compression_ratio_threshold: f32,
    pub logprob_threshold: f32,
    pub no_speech_threshold: f32,
    /// Latest first timestamp of a window, seconds.
    pub max_initial_timestamp: Option<f32>,
    /// sotto's own rule, not openai-whisper's: a window whose text is longer than
    /// this many characters per second of its audio (plus 20 characters) cannot all
    /// have been spoken there — typically the prompt copied over a short last
    /// window, which compresses normally. It falls back like a loop, and is
    /// dropped if no temperature passes. `None` turns the rule off.
    pub max_chars_per_second: Option<f32>,
    /// Seed for temperature sampling.
    pub seed: u64,
    pub progress: Option<ProgressFn>,
    /// Hears each segment as soon as its window is decoded.
    pub on_segment: Option<SegmentFn>,
    /// Stops the transcription when aborted.
    pub abort: Option<Abort>,
    /// Transcribe only the speech that this voice activity detector finds
    /// (Silero VAD); `None` transcribes everything.
    pub vad: Option<vad::VadOptions>,
    /// Text that the first window sees as if it had been said before the audio
    /// (openai-whisper's `initial_prompt`): names, spellings, style.
    pub initial_prompt: Option<String>,
    /// Give the initial prompt to every window, ahead of the previous text.
    pub carry_initial_prompt: bool,
    /// Text the first window's transcript starts with; decoding continues after it.
    pub prefix: Option<String>,
    /// faster-whisper's hotwords: a prompt ahead of the previous text in every
    /// window that has no prefix.
    pub hotwords: Option<String>,
    /// Token ids never sampled; `-1` stands for the model's non-speech symbols
    /// (the default, `[-1]`). Special tokens other than end of text and timestamps
    /// are always suppressed.
    pub suppress_tokens: Vec<i64>,
    /// Suppress a blank and end of text as a window's first sampled token.
    pub suppress_blank: bool,
    /// Most prompt tokens per window (previous text, initial prompt, hotwords);
    /// `None`, or anything larger, is `n_text_ctx / 2 − 1` (223 for Whisper).
    pub max_context: Option<usize>,
    /// Hypotheses of the beam search at temperature 0 (openai-whisper's
    /// `beam_size`); 1 decodes greedily.
    pub beam_size: usize,
    /// Beam search stops once `beam_size · patience` hypotheses have ended.
    pub patience: f32,
    /// `None` ranks candidates by log-probability / length; `Some(α)` (0 ≤ α ≤ 1)
    /// by log-probability / ((5 + length) / 6)^α, as openai-whisper.
    pub length_penalty: Option<f32>,
    /// Candidates sampled at each temperature above 0, the most probable kept.
    pub best_of: usize,
    /// Time every word ([`Segment::words`]) from the cross-attention of the
    /// model's alignment heads, as openai-whisper's `word_timestamps`.
    pub word_timestamps: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            language: None,
            task: Task::Transcribe,
            timestamps: true,
            condition_on_previous_text: true,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: 2.4,
            logprob_threshold: -1.0,
            no_speech_threshold: 0.6,
            max_initial_timestamp: Some(1.0),
            max_chars_per_second: Some(30.0),
            seed: 0,
            progress: None,
            on_segment: None,
            abort: None,
            vad: None,
            initial_prompt: None,
            carry_initial_prompt: false,
            prefix: None,
            hotwords: None,
            suppress_tokens: vec![-1],
            suppress_blank: true,
            max_context: None,
            beam_size: 1,
            patience: 1.0,
            length_penalty: None,
            best_of: 1,
            word_timestamps: false,
        }
    }
}

/// A stretch of transcribed speech.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Segment {
    /// Seconds from the start of the audio.
    pub start: f32,
    pub end: f32,
    pub text: String,
    pub tokens: Vec<u32>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    /// Temperature of the decoding kept for this segment's window (above 0 when
    /// the window fell back).
    pub temperature: f32,
    /// zlib compression ratio of the window's text (openai-whisper retries above 2.4).
    pub compression_ratio: f32,
    /// Probability of each of `tokens` when it was chosen; NaN for tokens that were
    /// given, not chosen (a prefix).
    pub token_probs: Vec<f32>,
    /// The segment's words with their times, when [`Options::word_timestamps`]
    /// is set (else empty).
    pub words: Vec<Word>,
}

/// A word of a segment and when it was said ([`Options::word_timestamps`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Word {
    /// The word's text as decoded, with its leading space and the punctuation
    /// merged into it.
    pub word: String,
    /// Seconds from the start of the audio.
    pub start: f32,
    pub end: f32,
    /// Mean probability of the word's tokens.
    pub probability: f32,
}

/// Where the time went.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Timings {
    pub mel_ms: f64,
    /// Encoder and cross-attention K/V, all windows.
    pub encoder_ms: f64,
    pub windows: usize,
    /// Decoder, all windows and fallbacks.
    pub decode_ms: f64,
    pub decode_tokens: usize,
    /// Voice activity detection (`Options::vad`).
    pub vad_ms: f64,
}

#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Transcript {
    pub text: String,
    pub language: String,
    pub segments: Vec<Segment>,
    pub timings: Timings,
    /// For every decoded window, in order, the temperature of the attempt kept:
    /// 0 unless the compression-ratio or log-probability rule made it retry hotter.
    /// Windows skipped as silence are included.
    pub window_temperatures: Vec<f32>,
}

/// Where the network runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Device {
    /// A real GPU when there is one (feature `gpu`), else the CPU. Software GPU
    /// adapters (lavapipe, SwiftShader, WARP) are never chosen automatically.
    #[default]
    Auto,
    Cpu,
    /// The best GPU adapter, a software one included; an error when there is none.
    Gpu,
}

/// How a model is loaded: the settings a program would otherwise read from its
/// environment (the library reads none; the `sotto` CLI maps `SOTTO_KERNELS` and
/// the `SOTTO_GPU_*` variables onto these).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The CPU kernel set by name (`scalar`, `avx2`, `avx2vnni`, `avx512`,
    /// `avx512vnni`, `amx`, `neon`, `neon-dotprod`, `neon-i8mm`); `None` takes the best
    /// this CPU supports. A set this CPU lacks is an error.
    pub kernels: Option<String>,
    /// Where the network runs; the default is the CPU.
    pub device: Device,
    /// How a GPU is opened: the optional adapter features the shaders may use
    /// and the per-buffer size above which weights are split.
    #[cfg(feature = "gpu")]
    pub gpu: gpu::GpuOptions,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            kernels: None,
            device: Device::Cpu,
            #[cfg(feature = "gpu")]
            gpu: gpu::GpuOptions::default(),
        }
    }
}

impl LoadOptions {
    /// These options with the kernel set `name`.
    pub fn kernels(mut self, name: impl Into<String>) -> LoadOptions {
        self.kernels = Some(name.into());
        self
    }
    /// These options with `device`.
    pub fn device(mut self, device: Device) -> LoadOptions {
        self.device = device;
        self
    }
}

/// A loaded model: the mapped file, its validated weights, the CPU kernels and
/// worker threads (and, after [`Model::set_device`], the weights on a GPU).
///
/// A `Model` is `Send + Sync`: concurrent [`Model::transcribe`] calls share its
/// worker pool (one per thread count asked for), so callers do not multiply the
/// threads competing for the cores.
pub struct Model {
    file: Arc<format::ModelFile>,
    /// The network's description, kept for uploading to a device later.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    plan: model::Layers<model::Desc>,
    cpu: model::CpuModel,
    kernels: sotto_kernels::Kernels,
    pools: Mutex<Vec<Arc<sotto_kernels::Pool>>>,
    observer: Option<model::LinearObserver>,
    profiler: Option<model::OpProfiler>,
    #[cfg(feature = "gpu")]
    gpu: Option<gpu::GpuModel>,
    /// How [`Model::set_device`] opens a GPU.
    #[cfg(feature = "gpu")]
    gpu_options: gpu::GpuOptions,
    /// Why `Device::Auto` stayed on the CPU, if it did.
    device_note: Option<String>,
}

impl Model {
    /// Maps and validates a `.sotto` file, on the CPU with the best kernels.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Model::load_with(path, &LoadOptions::default())
    }

    /// Maps and validates a `.sotto` file with `options`.
    pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Model> {
        let file = format::ModelFile::open(path.as_ref())?;
        Model::from_file_with(file, options)
    }

    /// A model over a file already opened (or built in memory), on the CPU.
    pub fn from_file(file: format::ModelFile) -> Result<Model> {
        Model::from_file_with(file, &LoadOptions::default())
    }

    pub fn from_file_with(file: format::ModelFile, options: &LoadOptions) -> Result<Model> {
        let kernels = match &options.kernels {
            Some(name) => sotto_kernels::Kernels::from_name(name).map_err(Error::Invalid)?,
            None => sotto_kernels::Kernels::detect(),
        };
        let file = Arc::new(file);
        let plan = model::Layers::describe(&file)?;
        let cpu = model::CpuModel::new(file.clone(), &plan)?;
        let mut model = Model {
            file,
            plan,
            cpu,
            kernels,
            pools: Mutex::new(Vec::new()),
            observer: None,
            profiler: None,
            #[cfg(feature = "gpu")]
            gpu: None,
            #[cfg(feature = "gpu")]
            gpu_options: options.gpu,
            device_note: None,
        };
        model.set_device(options.device)?;
        Ok(model)
    }

    /// Moves the network to `device`. `Gpu` fails when no adapter can be opened or
    /// the device cannot run this model (the model stays where it was); `Auto`
    /// falls back to the CPU and says why in [`Model::device_note`].
    pub fn set_device(&mut self, device: Device) -> Result<()> {
        #[cfg(feature = "gpu")]
        {
            let policy = match device {
                Device::Cpu => {
                    self.gpu = None;
                    self.device_note = None;
                    return Ok(());
                }
                // Loading a Vulkan driver costs start-up time (and Mesa prints warnings)
                // on machines that plainly have no GPU: look for device nodes first.
                Device::Auto if !gpu_device_nodes_present() => {
                    self.gpu = None;
                    self.device_note = Some("no GPU device found; using the CPU".into());
                    return Ok(());
                }
                Device::Auto => gpu::AdapterPolicy::HardwareOnly,
                Device::Gpu => gpu::AdapterPolicy::AllowSoftware,
            };
            let loaded = gpu::Gpu::new(policy, &self.gpu_options)
                .and_then(|g| gpu::GpuModel::new(g, &self.file, &self.plan));
            match (loaded, device) {
                (Ok(m), _) => {
                    self.gpu = Some(m);
                    self.device_note = None;
                }
                (Err(e), Device::Auto) => {
                    self.gpu = None;
                    self.device_note = Some(format!("{e}; using the CPU"));
                }
                (Err(e), _) => return Err(e),
            }
            Ok(())
        }
        #[cfg(not(feature = "gpu"))]
        match device {
            Device::Gpu => Err(Error::Invalid(
                "this build of sotto has no GPU support (feature `gpu`)".into(),
            )),
            Device::Auto => {
                self.device_note = Some("built without GPU support; using the CPU".into());
                Ok(())
            }
            _ => {
                self.device_note = None;
                Ok(())
            }
        }
    }

    /// [`Model::set_device`] for a model by value.
    pub fn with_device(mut self, device: Device) -> Result<Model> {
        self.set_device(device)?;
        Ok(self)
    }

    /// Opens GPUs with `options` in later [`Model::set_device`] calls (default:
    /// every optional feature the adapter offers, its own binding limit).
    #[cfg(feature = "gpu")]
    pub fn with_gpu_options(mut self, options: gpu::GpuOptions) -> Model {
        self.gpu_options = options;
        self
    }

    /// Moves the network to an adapter already opened (e.g. with
    /// [`gpu::Gpu::set_max_binding`] lowered, to exercise split weights).
    #[cfg(feature = "gpu")]
    pub fn with_gpu(mut self, gpu: gpu::Gpu) -> Result<Model> {
        self.gpu = Some(gpu::GpuModel::new(gpu, &self.file, &self.plan)?);
        self.device_note = None;
        Ok(self)
    }

    /// The device the network runs on, if a GPU ([`gpu::Gpu::enable_timing`]).
    #[cfg(feature = "gpu")]
    pub fn gpu(&self) -> Option<&gpu::Gpu> {
        self.gpu.as_ref().map(|m| &m.gpu)
    }

    /// What runs the network: the GPU adapter's name and the shader variants in use
    /// (f16 K/V caches, subgroups, dot4I8Packed), or the CPU kernels' name.
    pub fn device_name(&self) -> String {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            let f = g.gpu.features.and(g.gpu.enabled());
            let used: Vec<&str> = [
                (f.f16, "f16"),
                (f.subgroups, "subgroups"),
                (g.gpu.dot4, "dot4"),
            ]
            .iter()
            .filter_map(|&(on, name)| on.then_some(name))
            .collect();
            let used = if used.is_empty() {
                "plain".to_string()
            } else {
                used.join("+")
            };
            return format!("gpu: {} [{used}]", g.gpu.describe());
        }
        format!("cpu: {}", self.kernels.name())
    }

    /// Why [`Device::Auto`] fell back to the CPU, if it did.
    pub fn device_note(&self) -> Option<&str> {
        self.device_note.as_deref()
    }

    /// Why a transcription with `options` runs on the CPU although the model is
    /// on a GPU, if it does: the GPU backend does not read cross-attention
    /// weights back, so word timestamps are computed on the CPU.
    pub fn cpu_fallback_note(&self, options: &Options) -> Option<&'static str> {
        #[cfg(feature = "gpu")]
        if self.gpu.is_some() && options.word_timestamps {
            return Some(
                "word timestamps need the decoder's cross-attention weights, which the GPU backend does not read back; transcribing on the CPU",
            );
        }
        let _ = options;
        None
    }

    /// Uses `kernels` instead of the detected ones.
    pub fn with_kernels(mut self, kernels: sotto_kernels::Kernels) -> Model {
        self.kernels = kernels;
        self
    }

    pub fn config(&self) -> &format::ModelConfig {
        self.file.config()
    }

    pub fn file(&self) -> &format::ModelFile {
        &self.file
    }

    pub fn kernels(&self) -> &sotto_kernels::Kernels {
        &self.kernels
    }

    /// Installs (or with `None` removes) an observer of every linear layer's input
    /// rows on the CPU (calibration of static activation scales).
    pub fn set_observer(&mut self, observer: Option<model::LinearObserver>) {
        self.observer = observer;
    }

    /// Installs (or with `None` removes) a receiver of every CPU operation's wall
    /// time (`sotto bench --roofline`); without one no clock is read.
    pub fn set_profiler(&mut self, profiler: Option<model::OpProfiler>) {
        self.profiler = profiler;
    }

    /// The model's worker pool of `threads` threads, started on first use and shared
    /// by every call that asks for as many.
    fn pool(&self, threads: usize) -> Arc<sotto_kernels::Pool> {
        let threads = threads.max(1);
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pools.iter().find(|p| p.threads() == threads) {
            return p.clone();
        }
        let p = Arc::new(sotto_kernels::Pool::new(threads));
        pools.push(p.clone());
        p
    }

    /// Transcribes 16-kHz mono samples.
    pub fn transcribe(&self, samples: &[f32], options: &Options) -> Result<Transcript> {
        if let Some(v) = &options.vad {
            let pool = self.pool(options.threads);
            return vad::transcribe(
                samples,
                options,
                v,
                &self.kernels,
                &pool,
                &|s, o, joints| self.transcribe_joined(s, o, joints),
            );
        }
        self.transcribe_joined(samples, options, &[])
    }

    /// [`Model::transcribe`] without VAD of samples that may be pieces of speech laid
    /// end to end, meeting at `joints` (sample offsets).
    fn transcribe_joined(
        &self,
        samples: &[f32],
        options: &Options,
        joints: &[usize],
    ) -> Result<Transcript> {
        #[cfg(feature = "gpu")]
        if let Some(g) = self.gpu.as_ref().filter(|_| !options.word_timestamps) {
            return decoding::transcribe(&self.file, &g.backend(), samples, options, joints);
        }
        let pool = self.pool(options.threads);
        let cpu = self.cpu_backend(&pool);
        decoding::transcribe(&self.file, &cpu, samples, options, joints)
    }

    /// Transcribes an audio file (feature `audio`) in constant memory: the file is decoded
    /// packet by packet twice — once for the log-mel maximum Whisper scales by, once for the
    /// windows — so an hour takes no more memory than a minute. The transcript is identical
    /// to `transcribe(&load_audio(path)?, options)`.
    #[cfg(feature = "audio")]
    pub fn transcribe_file(&self, path: impl AsRef<Path>, options: &Options) -> Result<Transcript> {
        // VAD segments the whole signal before transcribing its speech.
        if options.vad.is_some() {
            return self.transcribe(&audio::load_audio(path.as_ref())?, options);
        }
        let nm = self.file.config().n_mels as usize;
        let mut source =
            decoding::source::FileMel::open(path.as_ref(), self.file.mel_filters(), nm)?;
        self.transcribe_source(&mut source, options, &[])
    }

    /// Transcribes the log-mel windows of `source` (a file read incrementally, a live
    /// stream's buffer, samples in memory), with `prompt` (text tokens) as earlier text.
    pub fn transcribe_source(
        &self,
        source: &mut dyn decoding::source::MelSource,
        options: &Options,
        prompt: &[u32],
    ) -> Result<Transcript> {
        self.transcribe_windows(source, options, prompt, false)
    }

    /// [`Model::transcribe_source`]; `whole_tail` (a live stream's buffer): the text after
    /// the last closed segment is kept instead of decoded again in one more window.
    pub(crate) fn transcribe_windows(
        &self,
        source: &mut dyn decoding::source::MelSource,
        options: &Options,
        prompt: &[u32],
        whole_tail: bool,
    ) -> Result<Transcript> {
        #[cfg(feature = "gpu")]
        if let Some(g) = self.gpu.as_ref().filter(|_| !options.word_timestamps) {
            let gpu = g.backend();
            return decoding::transcribe_source(
                &self.file,
                &gpu,
                source,
                options,
                prompt,
                whole_tail,
                &[],
            );
        }
        let pool = self.pool(options.threads);
        let cpu = self.cpu_backend(&pool);
        decoding::transcribe_source(&self.file, &cpu, source, options, prompt, whole_tail, &[])
    }

    fn cpu_backend<'a>(&'a self, pool: &'a sotto_kernels::Pool) -> model::Cpu<'a> {
        model::Cpu {
            model: &self.cpu,
            kernels: &self.kernels,
            pool,
            observer: self.observer.as_ref(),
            profiler: self.profiler.as_ref(),
        }
    }

    /// Encodes one window of `n_mels × 2·n_audio_ctx` log-mel frames on the model's
    /// device: the cross-attention keys and values the decoder reads. With
    /// [`Model::decoder_state`] and [`Model::decode_tokens`], the network's steps
    /// one at a time (benchmarks, custom decoding loops).
    pub fn encode_window(&self, mel: &[f32], threads: usize) -> Result<EncodedWindow> {
        use model::Network;
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return Ok(EncodedWindow(Encoded::Gpu(g.backend().encode(mel)?)));
        }
        let pool = self.pool(threads);
        Ok(EncodedWindow(Encoded::Cpu(
            self.cpu_backend(&pool).encode(mel)?,
        )))
    }

    /// An empty decoder state (self-attention cache) for one hypothesis; cloning
    /// forks it.
    pub fn decoder_state(&self) -> DecoderState {
        use model::Backend;
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return DecoderState(Cache::Gpu(g.backend().new_cache()));
        }
        let pool = self.pool(1);
        DecoderState(Cache::Cpu(self.cpu_backend(&pool).new_cache()))
    }

    /// Runs `tokens` through the decoder after those already in `state` and
    /// returns the logits of the positions `want` (indices into `tokens`).
    pub fn decode_tokens(
        &self,
        window: &EncodedWindow,
        state: &mut DecoderState,
        tokens: &[u32],
        want: &[usize],
        threads: usize,
    ) -> Result<Vec<Vec<f32>>> {
        use model::Network;
        match (&window.0, &mut state.0) {
            #[cfg(feature = "gpu")]
            (Encoded::Gpu(w), Cache::Gpu(c)) => match &self.gpu {
                Some(g) => g.backend().decode(w, c, tokens, want),
                None => Err(Error::Invalid(
                    "the window was encoded on another device".into(),
                )),
            },
            (Encoded::Cpu(w), Cache::Cpu(c)) => {
                let pool = self.pool(threads);
                self.cpu_backend(&pool).decode(w, c, tokens, want)
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::Invalid(
                "the window and the decoder state belong to different devices".into(),
            )),
        }
    }

    /// One decoder step of several hypotheses together (as beam search runs
    /// them): `tokens[i]` appended to `states[i]`, all of the same length; the
    /// logits of each, in order. On the CPU each row is bit-identical to the
    /// same step through [`Model::decode_tokens`].
    pub fn decode_batch(
        &self,
        window: &EncodedWindow,
        states: &mut [DecoderState],
        tokens: &[u32],
        threads: usize,
    ) -> Result<Vec<Vec<f32>>> {
        use model::Network;
        let other = || {
            Error::Invalid("the window and the decoder states belong to different devices".into())
        };
        match &window.0 {
            #[cfg(feature = "gpu")]
            Encoded::Gpu(w) => {
                let g = self.gpu.as_ref().ok_or_else(other)?;
                let mut caches = states
                    .iter_mut()
                    .map(|s| match &mut s.0 {
                        Cache::Gpu(c) => Ok(c),
                        #[allow(unreachable_patterns)]
                        _ => Err(other()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                g.backend().decode_batch(w, &mut caches, tokens)
            }
            Encoded::Cpu(w) => {
                let mut caches = states
                    .iter_mut()
                    .map(|s| match &mut s.0 {
                        Cache::Cpu(c) => Ok(c),
                        #[allow(unreachable_patterns)]
                        _ => Err(other()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let pool = self.pool(threads);
                self.cpu_backend(&pool).decode_batch(w, &mut caches, tokens)
            }
        }
    }

    /// The encoder's output for one window of `n_mels × 2·n_audio_ctx` log-mel
    /// frames (`n_audio_ctx × d`, row-major), on the CPU: for checking the
    /// network against a reference implementation.
    pub fn encoder_output(&self, mel: &[f32], threads: usize) -> Result<Vec<f32>> {
        let pool = self.pool(threads);
        model::Network::encoder_output(&self.cpu_backend(&pool), mel)
    }
}

/// One encoded window ([`Model::encode_window`]), on the device that encoded it.
pub struct EncodedWindow(Encoded);

enum Encoded {
    Cpu(model::cpu::CrossKv),
    #[cfg(feature = "gpu")]
    Gpu(gpu::GpuCross),
}

/// One hypothesis' decoder state ([`Model::decoder_state`]).
#[derive(Clone)]
pub struct DecoderState(Cache);

#[derive(Clone)]
enum Cache {
    Cpu(model::cpu::KvCache),
    #[cfg(feature = "gpu")]
    Gpu(gpu::GpuCache),
}

/// Whether this machine exposes a GPU to user space. Only Linux is checked (DRM
/// render nodes or NVIDIA device files); elsewhere the adapter probe decides.
#[cfg(feature = "gpu")]
fn gpu_device_nodes_present() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let has = |dir: &str, prefix: &str| {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
            .unwrap_or(false)
    };
    has("/dev/dri", "renderD") || has("/dev", "nvidia")
}
