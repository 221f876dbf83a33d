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
//! [`Model::transcribe`] from several threads at once.

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
pub mod model;
pub mod quantize;

pub use error::{Error, Result};

use std::path::Path;
use std::sync::Arc;

/// Transcribe in the spoken language, or translate to English.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Task {
    #[default]
    Transcribe,
    Translate,
}

/// Called with (seconds of audio done, seconds in all).
pub type ProgressFn = Arc<dyn Fn(f64, f64) + Send + Sync>;

/// Decoding options; the defaults are openai-whisper's greedy settings.
#[derive(Clone)]
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
    /// Seed for temperature sampling.
    pub seed: u64,
    pub progress: Option<ProgressFn>,
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
            seed: 0,
            progress: None,
        }
    }
}

/// A stretch of transcribed speech.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Seconds from the start of the audio.
    pub start: f32,
    pub end: f32,
    pub text: String,
    pub tokens: Vec<u32>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub temperature: f32,
}

/// Where the time went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    pub mel_ms: f64,
    /// Encoder and cross-attention K/V, all windows.
    pub encoder_ms: f64,
    pub windows: usize,
    /// Decoder, all windows and fallbacks.
    pub decode_ms: f64,
    pub decode_tokens: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub language: String,
    pub segments: Vec<Segment>,
    pub timings: Timings,
}

/// Where the network runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// A real GPU when there is one (feature `gpu`), else the CPU. Software GPU
    /// adapters (lavapipe, SwiftShader, WARP) are never chosen automatically.
    #[default]
    Auto,
    Cpu,
    /// The best GPU adapter, a software one included; an error when there is none.
    Gpu,
}

/// A loaded model: the mapped file, its validated weights and the CPU kernels
/// (and, after [`Model::with_device`], the weights on a GPU).
pub struct Model {
    net: model::Network,
    kernels: sotto_kernels::Kernels,
    #[cfg(feature = "gpu")]
    gpu: Option<gpu::GpuModel>,
    /// How [`Model::with_device`] opens a GPU.
    #[cfg(feature = "gpu")]
    gpu_options: gpu::GpuOptions,
    /// Why `Device::Auto` stayed on the CPU, if it did.
    device_note: Option<String>,
}

impl Model {
    /// Maps and validates a `.sotto` file. Kernels follow `SOTTO_KERNELS` if set.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let file = format::ModelFile::open(path.as_ref())?;
        Model::from_file(file)
    }

    pub fn from_file(file: format::ModelFile) -> Result<Model> {
        let kernels = sotto_kernels::Kernels::from_env().map_err(Error::Invalid)?;
        Ok(Model {
            net: model::Network::new(file)?,
            kernels,
            #[cfg(feature = "gpu")]
            gpu: None,
            #[cfg(feature = "gpu")]
            gpu_options: gpu::GpuOptions::default(),
            device_note: None,
        })
    }

    /// Moves the network to `device`. `Gpu` fails when no adapter can be opened or
    /// the weights do not fit; `Auto` falls back to the CPU and says why in
    /// [`Model::device_note`].
    pub fn with_device(mut self, device: Device) -> Result<Model> {
        self.device_note = None;
        #[cfg(feature = "gpu")]
        {
            self.gpu = None;
            let policy = match device {
                Device::Cpu => return Ok(self),
                // Loading a Vulkan driver costs start-up time (and Mesa prints warnings)
                // on machines that plainly have no GPU: look for device nodes first.
                Device::Auto if !gpu_device_nodes_present() => {
                    self.device_note = Some("no GPU device found; using the CPU".into());
                    return Ok(self);
                }
                Device::Auto => gpu::AdapterPolicy::HardwareOnly,
                Device::Gpu => gpu::AdapterPolicy::AllowSoftware,
            };
            let loaded = gpu::Gpu::new(policy, &self.gpu_options)
                .and_then(|g| gpu::GpuModel::new(g, &self.net.file));
            match (loaded, device) {
                (Ok(m), _) => self.gpu = Some(m),
                (Err(e), Device::Auto) => self.device_note = Some(format!("{e}; using the CPU")),
                (Err(e), _) => return Err(e),
            }
            Ok(self)
        }
        #[cfg(not(feature = "gpu"))]
        match device {
            Device::Gpu => Err(Error::Invalid(
                "this build of sotto has no GPU support (feature `gpu`)".into(),
            )),
            _ => {
                if device == Device::Auto {
                    self.device_note = Some("built without GPU support; using the CPU".into());
                }
                Ok(self)
            }
        }
    }

    /// Opens GPUs with `options` in later [`Model::with_device`] calls (default:
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
        self.device_note = None;
        self.gpu = Some(gpu::GpuModel::new(gpu, &self.net.file)?);
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

    /// Uses `kernels` instead of the detected ones.
    pub fn with_kernels(mut self, kernels: sotto_kernels::Kernels) -> Model {
        self.kernels = kernels;
        self
    }

    pub fn config(&self) -> &format::ModelConfig {
        self.net.config()
    }

    pub fn file(&self) -> &format::ModelFile {
        &self.net.file
    }

    pub fn network(&self) -> &model::Network {
        &self.net
    }

    pub fn kernels(&self) -> &sotto_kernels::Kernels {
        &self.kernels
    }

    /// Transcribes 16-kHz mono samples.
    pub fn transcribe(&self, samples: &[f32], options: &Options) -> Result<Transcript> {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return decoding::transcribe(&self.net, &g.backend(), samples, options);
        }
        let pool = sotto_kernels::Pool::new(options.threads.max(1));
        let cpu = model::Cpu {
            net: &self.net,
            kernels: &self.kernels,
            pool: &pool,
        };
        decoding::transcribe(&self.net, &cpu, samples, options)
    }
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
