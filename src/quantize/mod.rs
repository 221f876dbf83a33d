//! `sotto quantize`: turns an f16/f32 `.sotto` model into one with packed weights.
//!
//! - [`quantize_tensor`] quantizes one `n × k` matrix into a [`Quantized`] (codes in
//!   logical order + f32 scales / zero-points); `sotto_kernels::schemes::pack` turns it
//!   into the bytes the file stores.
//! - Methods: round to nearest ([`Method::Rtn`], every scheme), Half-Quadratic
//!   Quantization ([`Method::Hqq`], the affine schemes int4 / int3; see `hqq.rs`) and
//!   GPTQ ([`Method::Gptq`], the grouped schemes, from calibration audio; `gptq.rs`).
//! - [`quantize_model`] quantizes every linear weight and the token embedding (also the
//!   tied output projection); convolutions, norms, biases and position tables stay as
//!   they are, and `--keep` patterns leave more tensors alone.
//! - Activations: `none`, `dynamic` (int8 activations quantized per row at run time) or
//!   `static` (one scale per linear layer, from calibration audio; `calibrate.rs`), for
//!   every scheme (int8 × int8, or the 4- / 3-bit × int8 kernels).
pub mod awq;
mod gptq;
mod hqq;
pub mod mixed;
mod rtn;

#[cfg(feature = "audio")]
mod calibrate;
#[cfg(feature = "audio")]
use calibrate::InputGram;
/// Without audio decoding there is no calibration: GPTQ refuses to run.
#[cfg(not(feature = "audio"))]
struct InputGram {
    k: usize,
    xtx: Vec<f32>,
    rows: usize,
    abs_sum: Vec<f64>,
    abs_max: Vec<f32>,
    abs_rows: usize,
}

pub use gptq::{gptq_tensor, output_error, GptqConfig, GptqResult};
pub use hqq::{shrink, HqqConfig};
pub use rtn::{is_affine, is_grouped, nf4_code, reconstruct};
pub use sotto_kernels::schemes::{default_group, Quantized, Scheme, NF4};

use crate::format::{ElementType, FileWriter, ModelFile, TensorInfo};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// How weights are rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Round to nearest with min/max (affine) or absmax (symmetric) parameters.
    Rtn,
    /// Half-Quadratic Quantization: zero-point and scale refined per group (int4 / int3).
    Hqq,
    /// GPTQ: error compensation through the inverse Hessian of each layer's inputs
    /// on calibration audio (int4 / nf4 / int3; tensors with no inputs seen: RTN).
    Gptq,
}

/// How the runtime treats the activations entering quantized linear layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activations {
    /// Activations stay float; weights are dequantized in the kernel.
    None,
    /// int8 activations, scale from each row's absmax at run time.
    Dynamic,
    /// int8 activations with one fixed scale per linear layer, from calibration.
    Static,
}

#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub scheme: Scheme,
    /// Elements per group along the input dimension; 0 = the scheme's default (64).
    pub group: usize,
    pub method: Method,
    pub activations: Activations,
    /// Directory of audio files for static activation scales and for GPTQ's
    /// Hessians. Keep it apart from any audio the result is scored on.
    pub calibrate: Option<PathBuf>,
    /// GPTQ settings (with `Method::Gptq`).
    pub gptq: GptqConfig,
    /// With `Scheme::Nf4`: store the block absmax as 8-bit codes (`Scheme::Nf4Dq`).
    pub double_quant: bool,
    /// Tensors whose name contains one of these (or matches it as a glob with `*` /
    /// `?`) are left as they are.
    pub keep: Vec<String>,
    pub threads: usize,
    /// Mixed precision (`--budget`): the average bits per weight (scales included)
    /// over the quantizable tensors; each tensor's scheme is chosen by its measured
    /// sensitivity on the `calibrate` audio (`mixed.rs`). `None`: one scheme for all.
    pub budget: Option<f64>,
    /// AWQ or SmoothQuant scales searched on the `calibrate` audio and folded into
    /// the float model before quantizing (`awq.rs`).
    pub prescale: awq::Prescale,
}

impl Default for QuantizeOptions {
    fn default() -> QuantizeOptions {
        QuantizeOptions {
            scheme: Scheme::Int8Row,
            group: 0,
            method: Method::Rtn,
            activations: Activations::None,
            calibrate: None,
            gptq: GptqConfig::default(),
            double_quant: false,
            keep: Vec::new(),
            budget: None,
            prescale: awq::Prescale::None,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

/// One tensor of a quantization run.
#[derive(Clone, Debug)]
pub struct TensorReport {
    pub name: String,
    /// The element type written (`int4`, `nf4-dq`, ..., or `f16` for a kept tensor).
    pub scheme: String,
    /// RMSE of round-to-nearest.
    pub rtn_rmse: f32,
    /// RMSE of the chosen method (equal to `rtn_rmse` for RTN), measured on what
    /// the file stores.
    pub method_rmse: f32,
    /// Bytes the tensor takes in the file.
    pub bytes: u64,
    pub elements: u64,
    /// GPTQ: the layer's output error on the calibration inputs relative to its
    /// output, `ΔW·H·ΔWᵀ / W·H·Wᵀ`, for (round to nearest, GPTQ); `None` otherwise.
    pub output_error: Option<(f64, f64)>,
}

#[derive(Clone, Debug)]
pub struct QuantizeReport {
    /// Quantized tensors and tensors left alone by `--keep`, in file order.
    pub tensors: Vec<TensorReport>,
    pub file_bytes: u64,
    /// Over the quantized tensors, scales and zero-points included (with
    /// `--budget`: over every quantizable tensor, those left in f16 at 16 bits).
    pub bits_per_weight: f64,
    /// With `--budget`: every quantizable tensor's measured sensitivity and choice,
    /// most sensitive first; empty otherwise.
    pub sensitivity: Vec<mixed::Sensitivity>,
    /// With `--budget`: seconds spent measuring the sensitivities.
    pub sensitivity_seconds: f64,
    /// With AWQ / SmoothQuant: each folded group's chosen scaling; empty otherwise.
    pub prescale: Vec<awq::ScaleChoice>,
    /// With AWQ / SmoothQuant: seconds spent on calibration, search and folding.
    pub prescale_seconds: f64,
}

/// The name `sotto quantize --scheme` uses for a scheme.
pub fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Int8Row => "int8",
        Scheme::Int8Tensor => "int8-tensor",
        Scheme::Int4Sym => "int4-sym",
        Scheme::Int4Asym => "int4",
        Scheme::Nf4 => "nf4",
        Scheme::Nf4Dq => "nf4-dq",
        Scheme::Int3 => "int3",
    }
}

/// Quantizes the row-major `n × k` matrix `w`. `group` 0 takes the scheme's default;
/// it is ignored by the int8 schemes. Errors on a shape mismatch, a non-finite
/// value, a value too large for the scheme's f16 parameters, or HQQ with a
/// non-affine scheme.
pub fn quantize_tensor(
    w: &[f32],
    n: usize,
    k: usize,
    scheme: Scheme,
    group: usize,
    method: Method,
) -> std::result::Result<Quantized, String> {
    quantize_tensor_with(w, n, k, scheme, group, method, &HqqConfig::default(), 1).map(|r| r.q)
}

/// A quantized tensor with the squared errors of RTN and of the chosen method
/// (against this crate's own reconstruction, before packing).
#[derive(Clone, Debug)]
pub struct TensorResult {
    pub q: Quantized,
    pub rtn_sse: f64,
    pub sse: f64,
}

impl TensorResult {
    pub fn rtn_rmse(&self) -> f32 {
        (self.rtn_sse / self.q.codes.len().max(1) as f64).sqrt() as f32
    }
    pub fn rmse(&self) -> f32 {
        (self.sse / self.q.codes.len().max(1) as f64).sqrt() as f32
    }
}

/// [`quantize_tensor`] with HQQ settings, over `threads` threads (rows split among them).
#[allow(clippy::too_many_arguments)]
pub fn quantize_tensor_with(
    w: &[f32],
    n: usize,
    k: usize,
    scheme: Scheme,
    group: usize,
    method: Method,
    hqq: &HqqConfig,
    threads: usize,
) -> std::result::Result<TensorResult, String> {
    if n == 0 || k == 0 || n.checked_mul(k) != Some(w.len()) {
        return Err(format!(
            "{} values do not make a {n} × {k} matrix with no zero dimension",
            w.len()
        ));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "value {} at row {}, column {} is not finite",
            w[i],
            i / k,
            i % k
        ));
    }
    if method == Method::Hqq && !is_affine(scheme) {
        return Err(format!(
            "HQQ needs an asymmetric scheme (int4, int3), not {}",
            scheme_name(scheme)
        ));
    }
    if method == Method::Gptq {
        return Err("GPTQ needs calibration inputs: use gptq_tensor or quantize_model".into());
    }
    let group = if is_grouped(scheme) {
        match group {
            0 => default_group(scheme),
            g if g.is_multiple_of(32) => g,
            g => return Err(format!("group {g} is not a multiple of 32")),
        }
    } else {
        0
    };
    if rtn::params_f16(scheme) {
        // Scales up to (max − min) / levels must fit f16 (65504).
        let (lo, hi) = w
            .iter()
            .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if (hi - lo) / 7.0 > 60000.0 {
            return Err(format!(
                "values up to {:e} are too large for {}'s f16 scales",
                lo.abs().max(hi),
                scheme_name(scheme)
            ));
        }
    }
    let tensor_scale = (scheme == Scheme::Int8Tensor)
        .then(|| rtn::int8_scale(w.iter().fold(0f32, |m, v| m.max(v.abs()))));

    let threads = threads.clamp(1, n);
    let rows_per = n.div_ceil(threads);
    let parts: Vec<Part> = if threads == 1 {
        vec![quantize_rows(
            w,
            k,
            scheme,
            group,
            method,
            hqq,
            tensor_scale,
        )]
    } else {
        std::thread::scope(|sc| {
            let handles: Vec<_> = w
                .chunks(rows_per * k)
                .map(|rows| {
                    sc.spawn(move || {
                        quantize_rows(rows, k, scheme, group, method, hqq, tensor_scale)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("quantizer thread panicked"))
                .collect()
        })
    };
    let mut q = Quantized {
        scheme,
        n,
        k,
        group,
        codes: Vec::with_capacity(n * k),
        scales: Vec::new(),
        zeros: Vec::new(),
    };
    let (mut rtn_sse, mut sse) = (0f64, 0f64);
    for p in parts {
        q.codes.extend_from_slice(&p.codes);
        q.scales.extend_from_slice(&p.scales);
        q.zeros.extend_from_slice(&p.zeros);
        rtn_sse += p.rtn_sse;
        sse += p.sse;
    }
    if let Some(s) = tensor_scale {
        q.scales = vec![s];
    }
    if scheme == Scheme::Nf4Dq {
        // Packing stores each absmax as an 8-bit code: choose the codes again for the
        // absmax values the file will hold.
        let (_, after) = store::recode_nf4dq(w, &mut q)?;
        (rtn_sse, sse) = (after, after);
    }
    Ok(TensorResult { q, rtn_sse, sse })
}

/// Codes and parameters of a run of whole rows.
struct Part {
    codes: Vec<u8>,
    scales: Vec<f32>,
    zeros: Vec<f32>,
    rtn_sse: f64,
    sse: f64,
}

fn quantize_rows(
    w: &[f32],
    k: usize,
    scheme: Scheme,
    group: usize,
    method: Method,
    hqq: &HqqConfig,
    tensor_scale: Option<f32>,
) -> Part {
    let mut p = Part {
        codes: vec![0u8; w.len()],
        scales: Vec::new(),
        zeros: Vec::new(),
        rtn_sse: 0.0,
        sse: 0.0,
    };
    let mut scratch = Vec::new();
    for (row, codes) in w.chunks(k).zip(p.codes.chunks_mut(k)) {
        match scheme {
            Scheme::Int8Row | Scheme::Int8Tensor => {
                let s = tensor_scale.unwrap_or_else(|| {
                    rtn::int8_scale(row.iter().fold(0f32, |m, v| m.max(v.abs())))
                });
                let mut sse = 0f64;
                for (c, &v) in codes.iter_mut().zip(row) {
                    *c = rtn::int8_code(v, s);
                    sse += ((v - s * (*c as i8) as f32) as f64).powi(2);
                }
                p.rtn_sse += sse;
                p.sse += sse;
                if tensor_scale.is_none() {
                    p.scales.push(s);
                }
            }
            _ => {
                for (g, gc) in row.chunks(group).zip(codes.chunks_mut(group)) {
                    let (s, z, rtn_sse, sse) = match (scheme, method) {
                        (Scheme::Int4Sym, _) => {
                            let s = rtn::int4sym_group(g, gc);
                            let e = group_sse(g, gc, |c| s * (c as f32 - 8.0));
                            (s, None, e, e)
                        }
                        (Scheme::Nf4 | Scheme::Nf4Dq, _) => {
                            let s = rtn::nf4_group(g, gc);
                            let e = group_sse(g, gc, |c| s * NF4[c as usize]);
                            (s, None, e, e)
                        }
                        // GPTQ is refused above; its fallback is RTN.
                        (_, Method::Rtn | Method::Gptq) => {
                            let (s, z) = rtn::affine_params(g, scheme);
                            let e = rtn::affine_group(g, s, z, rtn::levels(scheme), gc);
                            (s, Some(z), e, e)
                        }
                        (_, Method::Hqq) => {
                            let r = hqq::hqq_group(g, scheme, hqq, gc, &mut scratch);
                            (r.scale, Some(r.zero), r.rtn_sse, r.sse)
                        }
                    };
                    p.scales.push(s);
                    if let Some(z) = z {
                        p.zeros.push(z);
                    }
                    p.rtn_sse += rtn_sse;
                    p.sse += sse;
                }
            }
        }
    }
    p
}

fn group_sse(g: &[f32], codes: &[u8], value: impl Fn(u8) -> f32) -> f64 {
    g.iter()
        .zip(codes)
        .map(|(&w, &c)| ((w - value(c)) as f64).powi(2))
        .sum()
}

/// Whether `name` matches a `--keep` pattern: a glob (`*` any run, `?` one
/// character) when it has a wildcard, else a substring.
pub fn keep_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.contains(pattern);
    }
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative glob match with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && (p[i] == '?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The token embedding, also Whisper's output projection. GPTQ leaves it to HQQ / RTN:
/// its Hessian would come from its use as the output projection alone, and
/// minimising that error moves the rows the embedding lookup reads (measured on
/// tiny.en int4: test-clean 4.61 → 10.44 WER, transcripts ending early, when GPTQ
/// quantized it).
const TIED_EMBEDDING: &str = "decoder/embeddings/weight";

/// Whether a tensor is one `sotto quantize` packs: a 2-D weight of a linear layer, or
/// the token embedding (the tied output projection).
pub fn is_quantizable(t: &TensorInfo) -> bool {
    is_quantizable_name(&t.name, t.shape.len())
}

/// [`is_quantizable`] from a tensor's name and rank.
pub fn is_quantizable_name(name: &str, rank: usize) -> bool {
    if rank != 2 {
        return false;
    }
    if name == "decoder/embeddings/weight" {
        return true;
    }
    match name.strip_suffix("/weight") {
        Some(prefix) => prefix
            .rsplit('/')
            .next()
            .is_some_and(|last| last.starts_with("linear_")),
        None => false,
    }
}

/// The scheme actually written for these options (`--double-quant` turns nf4 into nf4-dq).
pub fn effective_scheme(opts: &QuantizeOptions) -> Scheme {
    match (opts.scheme, opts.double_quant) {
        (Scheme::Nf4, true) => Scheme::Nf4Dq,
        (s, _) => s,
    }
}

/// Rejects option combinations that cannot work, with a message naming the option.
pub fn check_options(opts: &QuantizeOptions) -> Result<()> {
    let scheme = effective_scheme(opts);
    let name = scheme_name(scheme);
    let bad = |m: String| Err(Error::Invalid(m));
    if opts.method == Method::Hqq && !is_affine(scheme) {
        return bad(format!(
            "--method hqq works with the asymmetric schemes int4 and int3, not {name} \
             (HQQ refines a zero-point, which {name} does not have)"
        ));
    }
    if opts.double_quant && !matches!(opts.scheme, Scheme::Nf4 | Scheme::Nf4Dq) {
        return bad(format!("--double-quant applies to nf4 only, not {name}"));
    }
    if opts.activations != Activations::None
        && is_grouped(scheme)
        && opts.group > sotto_kernels::schemes::MAX_INT8_GROUP
    {
        return bad(format!(
            "--activations dynamic/static takes groups of at most {} elements, not {}",
            sotto_kernels::schemes::MAX_INT8_GROUP,
            opts.group
        ));
    }
    if opts.activations == Activations::Static && opts.calibrate.is_none() {
        return bad(
            "--activations static needs --calibrate DIR (audio files to measure \
             activation ranges on)"
                .into(),
        );
    }
    if opts.method == Method::Gptq {
        if !is_grouped(scheme) {
            return bad(format!(
                "--method gptq works with the grouped schemes int4, nf4 and int3, not {name}"
            ));
        }
        if opts.calibrate.is_none() {
            return bad(
                "--method gptq needs --calibrate DIR (audio files, kept apart from any \
                 audio you score the model on)"
                    .into(),
            );
        }
    }
    if let Some(b) = opts.budget {
        mixed::check_budget(opts, b)?;
    }
    awq::check(opts, scheme)?;
    if opts.activations != Activations::Static
        && opts.prescale == awq::Prescale::None
        && opts.method != Method::Gptq
        && opts.budget.is_none()
        && opts.calibrate.is_some()
    {
        return bad(
            "--calibrate is only used with --activations static, --method gptq or --budget".into(),
        );
    }
    if opts.group != 0 {
        if !is_grouped(scheme) {
            return bad(format!(
                "--group applies to int4, nf4 and int3; {name} has one scale per row or tensor"
            ));
        }
        if !(32..=4096).contains(&opts.group) || !opts.group.is_multiple_of(32) {
            return bad(format!(
                "--group {} must be a multiple of 32 up to 4096 (32, 64, 128, ...)",
                opts.group
            ));
        }
    }
    Ok(())
}

/// A tensor as f32 values (from f16 or f32 storage).
fn tensor_f32(file: &ModelFile, t: &TensorInfo) -> Result<Vec<f32>> {
    match t.etype {
        ElementType::F16 => Ok(file
            .f16s(t)?
            .iter()
            .map(|&b| half::f16::from_bits(b).to_f32())
            .collect()),
        ElementType::F32 => Ok(file.f32s(t)?.to_vec()),
        other => Err(Error::Invalid(format!(
            "tensor {} is already quantized ({}); quantize an f16 or f32 model",
            t.name,
            other.name()
        ))),
    }
}

/// Quantizes `input` into `out` (written atomically). `progress(done, total)` is
/// called after every tensor.
pub fn quantize_model(
    input: &ModelFile,
    out: &Path,
    opts: &QuantizeOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<QuantizeReport> {
    check_options(opts)?;
    if opts.prescale != awq::Prescale::None {
        return awq::quantize_prescaled(input, out, opts, progress);
    }
    if opts.budget.is_some() {
        return mixed::quantize_mixed(input, out, opts, progress);
    }
    let scheme = effective_scheme(opts);
    let etype = ElementType::from_scheme(scheme);
    let threads = opts.threads.max(1);

    let activation_absmax = match opts.activations {
        Activations::Static => Some(static_absmax(input, opts)?),
        _ => None,
    };
    let grams = match opts.method {
        Method::Gptq => {
            let wanted: Vec<(String, usize)> = input
                .tensors()
                .iter()
                .filter(|t| {
                    is_quantizable(t)
                        && t.name != TIED_EMBEDDING
                        && !opts.keep.iter().any(|p| keep_matches(p, &t.name))
                })
                .map(|t| (t.name.clone(), t.shape[1]))
                .collect();
            input_grams(input, opts, &wanted)?
        }
        _ => Default::default(),
    };

    let config = input.config().clone();
    let vocab: Vec<Vec<u8>> = (0..config.n_vocab)
        .map(|id| input.token_bytes(id).to_vec())
        .collect();
    let mut writer = FileWriter::new(config, vocab, input.mel_filters().to_vec());

    let total = input.tensors().len();
    let mut reports = Vec::new();
    let (mut q_bytes, mut q_elems) = (0u64, 0u64);
    for (i, t) in input.tensors().iter().enumerate() {
        if t.name.ends_with("/act_scale") {
            // An earlier run's static activation scales: this run writes its own.
            progress(i + 1, total);
            continue;
        }
        let kept = opts.keep.iter().any(|p| keep_matches(p, &t.name));
        if !is_quantizable(t) || kept {
            writer.add_tensor(&t.name, t.etype, &t.shape, t.group, input.bytes(t).to_vec())?;
            if kept && is_quantizable(t) {
                reports.push(TensorReport {
                    name: t.name.clone(),
                    scheme: t.etype.name().into(),
                    rtn_rmse: 0.0,
                    method_rmse: 0.0,
                    bytes: t.len,
                    elements: t.elements() as u64,
                    output_error: None,
                });
            }
            progress(i + 1, total);
            continue;
        }
        let w = tensor_f32(input, t)?;
        let (n, k) = (t.shape[0], t.shape[1]);
        let ctx = |m: String| Error::Invalid(format!("tensor {}: {m}", t.name));
        let gram = grams.get(&t.name).filter(|g| g.rows > 0 && g.k == k);
        let mut output_err = None;
        let r = match (opts.method, gram) {
            (Method::Gptq, Some(g)) => {
                let r = gptq_tensor(&w, n, k, scheme, opts.group, &g.xtx, &opts.gptq, threads)
                    .map_err(ctx)?;
                let energy =
                    output_error(&w, &vec![0f32; w.len()], &g.xtx, k).max(f64::MIN_POSITIVE);
                output_err = Some((r.rtn_output_error / energy, r.output_error / energy));
                TensorResult {
                    q: r.q,
                    rtn_sse: 0.0,
                    sse: 0.0,
                }
            }
            // GPTQ without calibration inputs for this tensor (the tied embedding, or
            // a layer never reached): HQQ where the scheme has one, else RTN.
            (method, _) => quantize_tensor_with(
                &w,
                n,
                k,
                scheme,
                opts.group,
                match method {
                    Method::Gptq if is_affine(scheme) => Method::Hqq,
                    Method::Gptq => Method::Rtn,
                    m => m,
                },
                &HqqConfig::default(),
                threads,
            )
            .map_err(ctx)?,
        };
        let data = store::pack(&r.q).map_err(ctx)?;
        // The error of what the file holds, read back by the runtime's decoder.
        let stored_rmse = store::stored_rmse(&w, &r.q, &data).map_err(ctx)?;
        let rtn_rmse = match opts.method {
            Method::Rtn => stored_rmse,
            // The RTN weight error is not computed next to GPTQ's (its comparison
            // is the output error).
            Method::Gptq if output_err.is_some() => f32::NAN,
            Method::Gptq | Method::Hqq => r.rtn_rmse(),
        };
        let bytes = data.len() as u64;
        writer.add_tensor(&t.name, etype, &t.shape, r.q.group as u32, data)?;
        q_bytes += bytes;
        q_elems += w.len() as u64;
        reports.push(TensorReport {
            name: t.name.clone(),
            scheme: etype.name().into(),
            rtn_rmse,
            method_rmse: stored_rmse,
            bytes,
            elements: w.len() as u64,
            output_error: output_err,
        });
        progress(i + 1, total);
    }
    let quantized: Vec<String> = reports
        .iter()
        .filter(|r| r.scheme == etype.name())
        .map(|r| r.name.clone())
        .collect();
    store::set_activations(
        &mut writer,
        opts.activations,
        activation_absmax.as_ref(),
        &quantized,
    )?;
    writer.write(out)?;
    let file_bytes = std::fs::metadata(out)
        .map_err(|e| Error::io(out.display().to_string(), e))?
        .len();
    Ok(QuantizeReport {
        tensors: reports,
        file_bytes,
        bits_per_weight: q_bytes as f64 * 8.0 / q_elems.max(1) as f64,
        sensitivity: Vec::new(),
        sensitivity_seconds: 0.0,
        prescale: Vec::new(),
        prescale_seconds: 0.0,
    })
}

/// Per quantized tensor, `Σ xᵀx` of its inputs over the calibration audio.
fn input_grams(
    input: &ModelFile,
    opts: &QuantizeOptions,
    wanted: &[(String, usize)],
) -> Result<std::collections::BTreeMap<String, InputGram>> {
    let dir = opts
        .calibrate
        .as_deref()
        .ok_or_else(|| Error::Invalid("--method gptq needs --calibrate DIR".into()))?;
    #[cfg(feature = "audio")]
    {
        calibrate::input_grams(input, dir, wanted, opts.threads.max(1), &|_| {})
    }
    #[cfg(not(feature = "audio"))]
    {
        let _ = (input, dir, wanted);
        Err(Error::Invalid(
            "GPTQ calibration needs the `audio` feature of sotto".into(),
        ))
    }
}

/// Per-linear-layer input absmax over the calibration audio.
fn static_absmax(
    input: &ModelFile,
    opts: &QuantizeOptions,
) -> Result<std::collections::BTreeMap<String, f32>> {
    let dir = opts
        .calibrate
        .as_deref()
        .ok_or_else(|| Error::Invalid("--activations static needs --calibrate DIR".into()))?;
    #[cfg(feature = "audio")]
    {
        calibrate::activation_absmax(input, dir, opts.threads.max(1), &|_| {})
    }
    #[cfg(not(feature = "audio"))]
    {
        let _ = (input, dir);
        Err(Error::Invalid(
            "static calibration needs the `audio` feature of sotto".into(),
        ))
    }
}

mod store;

impl QuantizeReport {
    /// The `--report` table: one line per tensor (name, element type, RTN RMSE, the
    /// method's RMSE, bytes) and a total with bits per weight and the file's size
    /// against the model in f32 (`f32_bytes` = 4 bytes × every element of the model).
    pub fn table(&self, method: Method, f32_bytes: u64) -> String {
        use std::fmt::Write;
        let method_col = match method {
            Method::Rtn => "RMSE",
            Method::Hqq => "HQQ RMSE",
            Method::Gptq => "GPTQ RMSE",
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<50} {:<11} {:>11} {:>11} {:>7} {:>11}",
            "tensor", "scheme", "RTN RMSE", method_col, "gain", "bytes"
        );
        for t in &self.tensors {
            let gain = if t.rtn_rmse > 0.0 {
                format!("{:+.1}%", 100.0 * (t.method_rmse / t.rtn_rmse - 1.0))
            } else {
                "-".into()
            };
            let rtn = if t.rtn_rmse.is_finite() {
                format!("{:.3e}", t.rtn_rmse)
            } else {
                "-".into()
            };
            let _ = write!(
                s,
                "{:<50} {:<11} {:>11} {:>11.3e} {:>7} {:>11}",
                t.name, t.scheme, rtn, t.method_rmse, gain, t.bytes
            );
            match t.output_error {
                Some((rtn, gptq)) => {
                    let _ = writeln!(s, "  output error RTN {:.3e} GPTQ {:.3e}", rtn, gptq);
                }
                None => s.push('\n'),
            }
        }
        let quantized: Vec<&TensorReport> = self
            .tensors
            .iter()
            .filter(|t| t.scheme != "f16" && t.scheme != "f32")
            .collect();
        let elems: u64 = quantized.iter().map(|t| t.elements).sum();
        // Element-weighted RMSE over the quantized tensors where it was computed
        // (GPTQ leaves the RTN column out: NaN); "n/a" where it was computed for none.
        let total = |f: fn(&TensorReport) -> f32| {
            let (mut sse, mut n) = (0f64, 0u64);
            for t in quantized.iter().filter(|t| f(t).is_finite()) {
                sse += (f(t) as f64).powi(2) * t.elements as f64;
                n += t.elements;
            }
            if n == 0 {
                "n/a".to_string()
            } else {
                format!("{:.3e}", (sse / n as f64).sqrt())
            }
        };
        let rtn_total = total(|t| t.rtn_rmse);
        let rtn_scope = match quantized.iter().filter(|t| !t.rtn_rmse.is_finite()).count() {
            0 => String::new(),
            _ if rtn_total == "n/a" => String::new(),
            skipped => format!(
                " over the {} tensors it was computed for",
                quantized.len() - skipped
            ),
        };
        let _ = writeln!(
            s,
            "total: {} tensors quantized ({} weights), RMSE {} (RTN {}{}), {:.3} bits/weight; \
             file {:.1} MB = {:.1}% of the f32 model ({:.1} MB)",
            quantized.len(),
            elems,
            total(|t| t.method_rmse),
            rtn_total,
            rtn_scope,
            self.bits_per_weight,
            self.file_bytes as f64 / 1e6,
            100.0 * self.file_bytes as f64 / f32_bytes.max(1) as f64,
            f32_bytes as f64 / 1e6
        );
        s
    }
}

/// Bytes of `file`'s model with every tensor in f32 (the size `--report` compares to).
pub fn f32_model_bytes(file: &ModelFile) -> u64 {
    file.tensors().iter().map(|t| 4 * t.elements() as u64).sum()
}

/// Packing for a converter that already holds codes and scales (CTranslate2 int8).
#[cfg(feature = "convert")]
pub(crate) use store::pack as store_pack;

/// The activation mode of tensors packed without calibration (`Static` is refused).
#[cfg(feature = "convert")]
pub(crate) fn store_set_activations(
    writer: &mut FileWriter,
    mode: Activations,
    quantized: &[String],
) -> Result<()> {
    store::set_activations(writer, mode, None, quantized)
}
