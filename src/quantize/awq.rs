//! Per-input-channel scaling folded into the network before quantization, so that
//! inference runs exactly the ops it ran before (no extra pass):
//!
//! - **AWQ** (Lin, Tang, Tang, Yang, Dang, Gan, Han 2023, "AWQ: Activation-aware
//!   Weight Quantization for LLM Compression and Acceleration"): the input columns
//!   of a linear weight are multiplied by `s = mean|x|^α` (normalised so that
//!   `max(s)·min(s) = 1`), which gives the channels carrying large activations more
//!   of the quantization grid; `α` is searched on the grid 0, 0.1, …, 1 for the
//!   smallest output error `Σ_layers tr(ΔW·H·ΔWᵀ)` on the calibration inputs
//!   (`H = Σ xᵀx`, `ΔW = Q(W·diag(s))·diag(s)⁻¹ − W`; α = 0 is the identity, so the
//!   search never picks scales worse than none on that measure).
//! - **SmoothQuant** (Xiao, Lin, Seznec, Wu, Demouth, Han 2022, "SmoothQuant:
//!   Accurate and Efficient Post-Training Quantization for Large Language Models"):
//!   `s_j = max|X_j|^α / max|W_j|^(1−α)` moves activation outliers into the weights
//!   before int8 activations with one static scale per layer; `α` is searched on the
//!   same grid (plus no scaling) for the smallest modelled output error: the weight
//!   term above plus the static int8 activation rounding, per channel
//!   `min(E[x_j²], step²/12)` with `step = max_j(max|X_j|/s_j)/127`, through
//!   `‖s_j·W_{:,j}‖²`.
//!
//! The scales are folded where the network allows it: the consumer's input columns
//! are multiplied by `s` and the producer of its input divided by `s` — a layer
//! norm's gamma and beta (self-attention q/k/v, cross-attention q, fc1; the encoder's
//! final norm for every decoder layer's cross-attention k/v, one `s` per norm over
//! all the layers it feeds), or the value rows of the attention in front of the
//! output projection (softmax weights are linear in the values). fc2's input comes
//! through GELU and gets no scaling; neither does the tied token embedding.
//!
//! [`fold_model`] writes the folded model (the touched tensors in f32) and
//! `quantize_model` quantizes that with the chosen method; GPTQ and static
//! activation scales are calibrated again on the folded model.
use super::{
    is_quantizable, keep_matches, reconstruct, tensor_f32, HqqConfig, InputGram, Method,
    QuantizeOptions, Scheme,
};
use crate::format::{ElementType, FileWriter, ModelFile};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Which pre-scaling a quantization run folds in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Prescale {
    #[default]
    None,
    Awq,
    Smooth,
}

/// Parses `sotto quantize --method`: `rtn`, `hqq`, `gptq`, or one of them after
/// `awq+` (`awq` alone is `awq+rtn`).
pub fn parse_method(name: &str) -> Result<(Method, Prescale)> {
    let base = |m: &str| match m {
        "rtn" => Some(Method::Rtn),
        "hqq" => Some(Method::Hqq),
        "gptq" => Some(Method::Gptq),
        _ => None,
    };
    let bad = || {
        Error::Invalid(format!(
            "unknown method '{name}'; known: rtn, hqq, gptq, awq, awq+rtn, awq+hqq, awq+gptq"
        ))
    };
    let n = name.trim().to_ascii_lowercase();
    if n == "awq" {
        return Ok((Method::Rtn, Prescale::Awq));
    }
    match n.strip_prefix("awq+") {
        Some(rest) => base(rest).map(|m| (m, Prescale::Awq)).ok_or_else(bad),
        None => base(&n).map(|m| (m, Prescale::None)).ok_or_else(bad),
    }
}

/// The name [`parse_method`] reads back.
pub fn method_name(method: Method, prescale: Prescale) -> String {
    let m = match method {
        Method::Rtn => "rtn",
        Method::Hqq => "hqq",
        Method::Gptq => "gptq",
    };
    match prescale {
        Prescale::Awq if method == Method::Rtn => "awq".into(),
        Prescale::Awq => format!("awq+{m}"),
        Prescale::Smooth => format!("smooth+{m}"),
        Prescale::None => m.into(),
    }
}

/// Where the scales of a group are divided out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Producer {
    /// A layer norm: gamma and beta divided by `s`.
    Norm { gamma: String, beta: String },
    /// Rows `start..start + k` of a linear weight and its bias divided by `s`.
    Rows {
        weight: String,
        bias: String,
        start: usize,
    },
}

/// Linear layers reading the same input, and that input's producer.
#[derive(Clone, Debug)]
pub struct FoldGroup {
    pub producer: Producer,
    /// Weight names (`n × k` each).
    pub consumers: Vec<String>,
    pub k: usize,
}

impl FoldGroup {
    /// A short name: the producer.
    pub fn name(&self) -> &str {
        match &self.producer {
            Producer::Norm { gamma, .. } => gamma.strip_suffix("/gamma").unwrap_or(gamma),
            Producer::Rows { weight, .. } => weight,
        }
    }
}

/// The groups of `file` whose scaling can be folded (see the module comment).
pub fn fold_groups(file: &ModelFile) -> Vec<FoldGroup> {
    let shape = |name: &str| file.tensor(name).ok().map(|t| t.shape.clone());
    let linear_k = |name: &str| {
        file.tensor(name)
            .ok()
            .filter(|t| is_quantizable(t))
            .map(|t| t.shape[1])
    };
    let mut groups = Vec::new();
    let names: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
    for name in &names {
        if let Some(prefix) = name.strip_suffix("/layer_norm/gamma") {
            let beta = format!("{prefix}/layer_norm/beta");
            let Some(k) = shape(name).filter(|s| s.len() == 1).map(|s| s[0]) else {
                continue;
            };
            if shape(&beta) != Some(vec![k]) {
                continue;
            }
            let consumers: Vec<String> = if prefix == "encoder" {
                names
                    .iter()
                    .filter(|n| {
                        n.starts_with("decoder/layer_")
                            && n.ends_with("/attention/linear_1/weight")
                            && !n.contains("self_attention")
                    })
                    .cloned()
                    .collect()
            } else if prefix.ends_with("/self_attention")
                || prefix.ends_with("/attention")
                || prefix.ends_with("/ffn")
            {
                vec![format!("{prefix}/linear_0/weight")]
            } else {
                Vec::new()
            };
            if consumers.is_empty() || consumers.iter().any(|c| linear_k(c) != Some(k)) {
                continue;
            }
            groups.push(FoldGroup {
                producer: Producer::Norm {
                    gamma: name.clone(),
                    beta,
                },
                consumers,
                k,
            });
        }
        // Values → output projection: the values are the last `d` rows of the
        // fused self-attention q/k/v (3d) or cross-attention k/v (2d) projection.
        for (attn, src, dst, parts) in [
            ("/self_attention/", "linear_0", "linear_1", 3),
            ("/attention/", "linear_1", "linear_2", 2),
        ] {
            let Some(prefix) = name.strip_suffix(&format!("{src}/weight")) else {
                continue;
            };
            if !prefix.ends_with(attn) || (attn == "/attention/" && prefix.contains("self_")) {
                continue;
            }
            let out = format!("{prefix}{dst}/weight");
            let bias = format!("{prefix}{src}/bias");
            let (Some(ws), Some(k)) = (shape(name), linear_k(&out)) else {
                continue;
            };
            if ws.len() != 2 || ws[0] != parts * k || shape(&bias) != Some(vec![parts * k]) {
                continue;
            }
            groups.push(FoldGroup {
                producer: Producer::Rows {
                    weight: name.clone(),
                    bias,
                    start: (parts - 1) * k,
                },
                consumers: vec![out],
                k,
            });
        }
    }
    groups
}

/// The scaling chosen for one group.
#[derive(Clone, Debug)]
pub struct ScaleChoice {
    pub group: String,
    /// `None`: no scaling was better on the search's measure.
    pub alpha: Option<f32>,
    /// The search's error without scaling and with the chosen scales.
    pub error_before: f64,
    pub error_after: f64,
    pub scales: Vec<f32>,
}

/// `Σ_rows (w − v)·H·(w − v)ᵀ`, rows split over threads.
fn output_error(w: &[f32], v: &[f32], h: &[f32], k: usize, threads: usize) -> f64 {
    let n = w.len() / k;
    let per = n.div_ceil(threads.clamp(1, n.max(1))).max(1) * k;
    std::thread::scope(|sc| {
        let hs: Vec<_> = w
            .chunks(per)
            .zip(v.chunks(per))
            .map(|(a, b)| sc.spawn(move || super::gptq::output_error(a, b, h, k)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("error thread panicked"))
            .sum()
    })
}

/// `w` (n × k) quantized with the columns scaled by `s`, scaled back.
fn quantized_back(
    w: &[f32],
    k: usize,
    s: &[f32],
    opts: &QuantizeOptions,
    method: Method,
) -> std::result::Result<Vec<f32>, String> {
    let n = w.len() / k;
    let mut ws = w.to_vec();
    for r in ws.chunks_mut(k) {
        for (x, &f) in r.iter_mut().zip(s) {
            *x *= f;
        }
    }
    let scheme = super::effective_scheme(opts);
    let r = super::quantize_tensor_with(
        &ws,
        n,
        k,
        scheme,
        opts.group,
        method,
        &HqqConfig::default(),
        opts.threads.max(1),
    )?;
    let mut back = reconstruct(&r.q);
    for r in back.chunks_mut(k) {
        for (x, &f) in r.iter_mut().zip(s) {
            *x /= f;
        }
    }
    Ok(back)
}

const ALPHAS: usize = 10;

/// Searches the scales of one group. `ws` are the consumers' weights (kept ones
/// left out), `grams` their calibration statistics.
fn search(
    group: &FoldGroup,
    ws: &[(&str, &[f32])],
    grams: &[&InputGram],
    opts: &QuantizeOptions,
    prescale: Prescale,
) -> Result<ScaleChoice> {
    let k = group.k;
    let g0 = grams[0];
    let rows = g0.abs_rows.max(1) as f64;
    let ctx = |name: &str, m: String| Error::Invalid(format!("tensor {name}: {m}"));
    // The search quantizes with the cheap method that best stands for the final
    // one: HQQ for HQQ, round to nearest otherwise (GPTQ runs after the fold).
    let method = if opts.method == Method::Hqq {
        Method::Hqq
    } else {
        Method::Rtn
    };
    let static_act = opts.activations == super::Activations::Static;
    let error = |s: &[f32]| -> Result<f64> {
        let mut total = 0f64;
        for ((name, w), g) in ws.iter().zip(grams) {
            let back = quantized_back(w, k, s, opts, method).map_err(|m| ctx(name, m))?;
            total += output_error(w, &back, &g.xtx, k, opts.threads.max(1));
            if static_act {
                // Static int8 activations of the scaled input x/s.
                let step = g
                    .abs_max
                    .iter()
                    .zip(s)
                    .fold(0f32, |m, (&a, &f)| m.max(a / f)) as f64
                    / 127.0;
                let unit = g.rows as f64 * step * step / 12.0;
                for (j, &f) in s.iter().enumerate() {
                    let f = f as f64;
                    let energy = g.xtx[j * k + j] as f64 / (f * f);
                    let col: f64 = w.chunks(k).map(|r| (r[j] as f64 * f).powi(2)).sum();
                    total += energy.min(unit) * col;
                }
            }
        }
        Ok(total)
    };
    let ones = vec![1f32; k];
    let before = error(&ones)?;
    let mut best = (None, before, ones);
    let wmax: Vec<f32> = (0..k)
        .map(|j| {
            ws.iter()
                .flat_map(|(_, w)| w.chunks(k).map(move |r| r[j].abs()))
                .fold(0f32, f32::max)
        })
        .collect();
    for step in 0..=ALPHAS {
        let alpha = step as f32 / ALPHAS as f32;
        let mut s: Vec<f32> = match prescale {
            Prescale::Smooth => g0
                .abs_max
                .iter()
                .zip(&wmax)
                .map(|(&a, &m)| a.max(1e-5).powf(alpha) / m.max(1e-5).powf(1.0 - alpha))
                .collect(),
            _ => {
                if step == 0 {
                    continue; // s = 1: measured above
                }
                g0.abs_sum
                    .iter()
                    .map(|&a| ((a / rows) as f32).max(1e-4).powf(alpha))
                    .collect()
            }
        };
        let (lo, hi) = s
            .iter()
            .fold((f32::MAX, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
        let norm = (lo as f64 * hi as f64).sqrt() as f32;
        if !(norm.is_finite() && norm > 0.0) {
            continue;
        }
        for v in &mut s {
            *v = (*v / norm).clamp(1e-4, 1e4);
        }
        let e = error(&s)?;
        if e < best.1 {
            best = (Some(alpha), e, s);
        }
    }
    Ok(ScaleChoice {
        group: group.name().to_string(),
        alpha: best.0,
        error_before: before,
        error_after: best.1,
        scales: best.2,
    })
}

/// Multiplies the consumers' columns by `s` and divides the producer by it, in
/// `tensors` (f32 values by name).
fn apply(group: &FoldGroup, s: &[f32], tensors: &mut HashMap<String, Vec<f32>>) {
    let k = group.k;
    for c in &group.consumers {
        if let Some(w) = tensors.get_mut(c) {
            for r in w.chunks_mut(k) {
                for (x, &f) in r.iter_mut().zip(s) {
                    *x *= f;
                }
            }
        }
    }
    match &group.producer {
        Producer::Norm { gamma, beta } => {
            for name in [gamma, beta] {
                if let Some(v) = tensors.get_mut(name) {
                    for (x, &f) in v.iter_mut().zip(s) {
                        *x /= f;
                    }
                }
            }
        }
        Producer::Rows {
            weight,
            bias,
            start,
        } => {
            if let Some(w) = tensors.get_mut(weight) {
                let cols = w.len() / (start + k);
                for (j, &f) in s.iter().enumerate() {
                    for x in &mut w[(start + j) * cols..(start + j + 1) * cols] {
                        *x /= f;
                    }
                }
            }
            if let Some(b) = tensors.get_mut(bias) {
                for (x, &f) in b[*start..start + k].iter_mut().zip(s) {
                    *x /= f;
                }
            }
        }
    }
}

/// Writes `input` with `scales[i]` folded into `groups[i]` (every touched tensor
/// stored as f32) to `out`. The float network computes the same function.
pub fn fold_model(
    input: &ModelFile,
    out: &Path,
    groups: &[FoldGroup],
    scales: &[Vec<f32>],
) -> Result<()> {
    if groups.len() != scales.len() {
        return Err(Error::Invalid(format!(
            "{} groups but {} scale vectors",
            groups.len(),
            scales.len()
        )));
    }
    let mut tensors: HashMap<String, Vec<f32>> = HashMap::new();
    for (g, s) in groups.iter().zip(scales) {
        if s.len() != g.k || s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(Error::Invalid(format!(
                "group {}: scales must be {} positive finite values",
                g.name(),
                g.k
            )));
        }
        let mut names = g.consumers.clone();
        match &g.producer {
            Producer::Norm { gamma, beta } => names.extend([gamma.clone(), beta.clone()]),
            Producer::Rows { weight, bias, .. } => names.extend([weight.clone(), bias.clone()]),
        }
        for n in names {
            if let std::collections::hash_map::Entry::Vacant(e) = tensors.entry(n) {
                let t = input.tensor(e.key())?;
                e.insert(tensor_f32(input, t)?);
            }
        }
        apply(g, s, &mut tensors);
    }
    let config = input.config().clone();
    let vocab: Vec<Vec<u8>> = (0..config.n_vocab)
        .map(|id| input.token_bytes(id).to_vec())
        .collect();
    let mut writer = FileWriter::new(config, vocab, input.mel_filters().to_vec());
    for t in input.tensors() {
        match tensors.get(&t.name) {
            Some(v) => writer.add_tensor(
                &t.name,
                ElementType::F32,
                &t.shape,
                0,
                bytemuck::cast_slice(v).to_vec(),
            )?,
            None => {
                writer.add_tensor(&t.name, t.etype, &t.shape, t.group, input.bytes(t).to_vec())?
            }
        }
    }
    writer.write(out)
}

/// Measures the calibration statistics, searches every group's scales for `opts`
/// (`opts.prescale`) and writes the folded float model to `out`.
pub fn prescale_model(
    input: &ModelFile,
    out: &Path,
    opts: &QuantizeOptions,
    log: &dyn Fn(&str),
) -> Result<Vec<ScaleChoice>> {
    let groups: Vec<FoldGroup> = fold_groups(input)
        .into_iter()
        .filter(|g| {
            g.consumers
                .iter()
                .any(|c| !opts.keep.iter().any(|p| keep_matches(p, c)))
        })
        .collect();
    let mut wanted: Vec<(String, usize)> = Vec::new();
    for g in &groups {
        for c in &g.consumers {
            if !wanted.iter().any(|(n, _)| n == c) {
                wanted.push((c.clone(), g.k));
            }
        }
    }
    let grams = super::input_grams(input, opts, &wanted)?;
    let mut choices = Vec::new();
    let mut scales = Vec::new();
    for g in &groups {
        let mut ws = Vec::new();
        let mut gs = Vec::new();
        for c in &g.consumers {
            if opts.keep.iter().any(|p| keep_matches(p, c)) {
                continue;
            }
            let Some(gram) = grams.get(c).filter(|x| x.rows > 0 && x.abs_rows > 0) else {
                continue;
            };
            let t = input.tensor(c)?;
            ws.push((c.as_str(), tensor_f32(input, t)?));
            gs.push(gram);
        }
        let choice = if ws.is_empty() {
            ScaleChoice {
                group: g.name().to_string(),
                alpha: None,
                error_before: 0.0,
                error_after: 0.0,
                scales: vec![1.0; g.k],
            }
        } else {
            let views: Vec<(&str, &[f32])> = ws.iter().map(|(n, w)| (*n, w.as_slice())).collect();
            search(g, &views, &gs, opts, opts.prescale)?
        };
        log(&format!(
            "{}: alpha {} error {:.4e} -> {:.4e}",
            choice.group,
            choice
                .alpha
                .map_or("none".to_string(), |a| format!("{a:.1}")),
            choice.error_before,
            choice.error_after
        ));
        scales.push(choice.scales.clone());
        choices.push(choice);
    }
    fold_model(input, out, &groups, &scales)?;
    Ok(choices)
}

/// [`super::quantize_model`] with the pre-scaling folded in first.
pub(super) fn quantize_prescaled(
    input: &ModelFile,
    out: &Path,
    opts: &QuantizeOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<super::QuantizeReport> {
    let tmp = out.with_file_name(format!(
        ".{}.prescaled.tmp",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let started = std::time::Instant::now();
    let choices = prescale_model(input, &tmp, opts, &|_| {});
    let result = choices.and_then(|choices| {
        let folded = ModelFile::open(&tmp)?;
        let needs_audio = opts.activations == super::Activations::Static
            || opts.method == Method::Gptq
            || opts.budget.is_some();
        let inner = QuantizeOptions {
            prescale: Prescale::None,
            calibrate: opts.calibrate.clone().filter(|_| needs_audio),
            ..opts.clone()
        };
        let search_seconds = started.elapsed().as_secs_f64();
        let mut report = super::quantize_model(&folded, out, &inner, progress)?;
        report.prescale = choices;
        report.prescale_seconds = search_seconds;
        Ok(report)
    });
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Whether `scheme`/`opts` admit the pre-scaling asked for.
pub(super) fn check(opts: &QuantizeOptions, scheme: Scheme) -> Result<()> {
    let bad = |m: &str| Err(Error::Invalid(m.into()));
    match opts.prescale {
        Prescale::None => Ok(()),
        _ if opts.calibrate.is_none() => bad(
            "AWQ and SmoothQuant need --calibrate DIR (audio files, kept apart from any audio \
             you score the model on)",
        ),
        Prescale::Smooth if opts.activations != super::Activations::Static => {
            bad("--smooth is for int8 static activations: add --activations static")
        }
        Prescale::Smooth if opts.budget.is_some() => bad("--smooth does not combine with --budget"),
        Prescale::Awq if opts.budget.is_some() => bad("AWQ does not combine with --budget"),
        _ => {
            let _ = scheme;
            Ok(())
        }
    }
}

/// The `--report` lines of the folded groups: α and the search's error before and
/// after, then the time spent.
pub fn choice_table(choices: &[ScaleChoice], seconds: f64) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<50} {:>6} {:>12} {:>12}",
        "scaled group (producer)", "alpha", "error none", "error scaled"
    );
    for c in choices {
        let _ = writeln!(
            s,
            "{:<50} {:>6} {:>12.4e} {:>12.4e}",
            c.group,
            c.alpha.map_or("none".to_string(), |a| format!("{a:.1}")),
            c.error_before,
            c.error_after
        );
    }
    let _ = writeln!(s, "scale search and folding: {seconds:.1} s");
    s
}
