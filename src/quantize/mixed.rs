//! Mixed precision by measured sensitivity (`sotto quantize --budget B`).
//!
//! 1. Every quantizable tensor (linear weights and the tied token embedding) is
//!    quantized with each candidate: the chosen scheme at twice its group (fewer
//!    scales), at its group, int8 per row, and f16 (left as it is). Each candidate's
//!    stored bytes (scales included) and weight MSE are measured on what the file
//!    would hold.
//! 2. Sensitivity: the model with that tensor *alone* in the chosen scheme at its
//!    group decodes the calibration audio teacher-forced on the float model's own
//!    greedy tokens; the mean KL divergence of its next-token distributions from the
//!    float model's is the tensor's sensitivity.
//! 3. As in Hessian-aware mixed precision, the loss of a small weight perturbation is
//!    taken as curvature × perturbation energy: each tensor's measured KL divided by
//!    its MSE gives its curvature, and a candidate's predicted KL is the curvature
//!    times the candidate's MSE (f16: 0).
//! 4. A multiple-choice knapsack (dynamic programming over the byte budget, costs
//!    rounded up so the result never exceeds it) picks one candidate per tensor with
//!    the smallest summed predicted KL under `budget × weights / 8` bytes.
use super::{
    is_quantizable, keep_matches, quantize_tensor_with, scheme_name, store, tensor_f32,
    Activations, HqqConfig, Method, QuantizeOptions, QuantizeReport, TensorReport,
};
use crate::format::{ElementType, FileWriter, ModelFile};
use crate::{Error, Result};
use sotto_kernels::schemes::Scheme;

/// One tensor's measurement and choice.
#[derive(Clone, Debug)]
pub struct Sensitivity {
    pub name: String,
    /// Mean KL divergence (nats per decoded token) of the model with this tensor
    /// alone quantized with the low scheme at its group.
    pub kl: f64,
    /// Weight MSE of that quantization.
    pub mse: f64,
    /// The candidate chosen (`int4 g64`, `int8`, `f16`, ...).
    pub choice: String,
    /// Its predicted KL (curvature × its MSE).
    pub predicted_kl: f64,
    pub elements: u64,
    pub bytes: u64,
}

/// One way to store a tensor.
struct Candidate {
    label: String,
    etype: ElementType,
    group: u32,
    data: Vec<u8>,
    mse: f64,
}

/// Rejects budgets that cannot be met or make no sense, and option combinations
/// the mixed quantizer does not take.
pub(crate) fn check_budget(opts: &QuantizeOptions, budget: f64) -> Result<()> {
    let bad = |m: String| Err(Error::Invalid(m));
    if !budget.is_finite() || budget <= 0.0 {
        return bad(format!(
            "--budget {budget} must be a positive number of bits per weight (e.g. 4.5)"
        ));
    }
    if budget > 16.0 {
        return bad(format!(
            "--budget {budget} is above f16's 16 bits per weight; leave the model as it is"
        ));
    }
    if !super::is_grouped(opts.scheme) || opts.double_quant {
        return bad(format!(
            "--budget mixes a grouped low-bit scheme (int4, int3, nf4) with int8 and f16, not {}",
            scheme_name(super::effective_scheme(opts))
        ));
    }
    if opts.method == Method::Gptq {
        return bad("--budget works with --method rtn or hqq, not gptq".into());
    }
    if opts.activations != Activations::None {
        return bad("--budget works with --activations none only".into());
    }
    if opts.calibrate.is_none() {
        return bad(
            "--budget needs --calibrate DIR (audio files to measure each tensor's \
             sensitivity on, kept apart from any audio you score the model on)"
                .into(),
        );
    }
    Ok(())
}

/// `quantize_model` with `opts.budget` set.
pub(crate) fn quantize_mixed(
    input: &ModelFile,
    out: &std::path::Path,
    opts: &QuantizeOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<QuantizeReport> {
    let budget = opts.budget.unwrap_or(f64::NAN);
    check_budget(opts, budget)?;
    let threads = opts.threads.max(1);
    let group = match opts.group {
        0 => super::default_group(opts.scheme),
        g => g,
    };
    let total = input.tensors().len();
    let wide = group * 2 <= 4096;
    let low_index = usize::from(wide);
    let lowest = (opts.scheme, if wide { group * 2 } else { group });

    // The least the file can take (every tensor at the cheapest candidate): sizes
    // from packing zeros, so a budget below it is refused before any work.
    let (mut elems, mut kept_bytes, mut least) = (0u64, 0u64, 0u64);
    for t in input.tensors().iter().filter(|t| is_quantizable(t)) {
        elems += t.elements() as u64;
        if opts.keep.iter().any(|p| keep_matches(p, &t.name)) {
            kept_bytes += t.len;
            continue;
        }
        let (n, k) = (t.shape[0], t.shape[1]);
        let zeros = vec![0f32; n * k];
        let ctx = |m: String| Error::Invalid(format!("tensor {}: {m}", t.name));
        let r = quantize_tensor_with(
            &zeros,
            n,
            k,
            lowest.0,
            lowest.1,
            Method::Rtn,
            &HqqConfig::default(),
            threads,
        )
        .map_err(ctx)?;
        least += store::pack(&r.q).map_err(ctx)?.len() as u64;
    }
    let budget_bytes = budget * elems as f64 / 8.0 - kept_bytes as f64;
    if (least as f64) > budget_bytes {
        return Err(Error::Invalid(format!(
            "--budget {budget} bits/weight is below the least this model can take: {:.3} \
             (every tensor {} g{}{})",
            (least + kept_bytes) as f64 * 8.0 / elems.max(1) as f64,
            scheme_name(lowest.0),
            lowest.1,
            if kept_bytes > 0 {
                ", --keep tensors f16"
            } else {
                ""
            }
        )));
    }

    // 1. Candidates per tensor, cheapest first.
    let mut names = Vec::new();
    let mut cands: Vec<Vec<Candidate>> = Vec::new();
    for (i, t) in input.tensors().iter().enumerate() {
        progress(i / 2, total);
        if !is_quantizable(t) || opts.keep.iter().any(|p| keep_matches(p, &t.name)) {
            continue;
        }
        let w = tensor_f32(input, t)?;
        let (n, k) = (t.shape[0], t.shape[1]);
        let ctx = |m: String| Error::Invalid(format!("tensor {}: {m}", t.name));
        let mut list = Vec::new();
        let mut low = vec![(opts.scheme, group, opts.method)];
        if wide {
            low.insert(0, (opts.scheme, group * 2, opts.method));
        }
        low.push((Scheme::Int8Row, 0, Method::Rtn));
        for (scheme, g, method) in low {
            let r =
                quantize_tensor_with(&w, n, k, scheme, g, method, &HqqConfig::default(), threads)
                    .map_err(ctx)?;
            let data = store::pack(&r.q).map_err(ctx)?;
            let rmse = store::stored_rmse(&w, &r.q, &data).map_err(ctx)? as f64;
            list.push(Candidate {
                label: if g > 0 {
                    format!("{} g{g}", scheme_name(scheme))
                } else {
                    scheme_name(scheme).to_string()
                },
                etype: ElementType::from_scheme(scheme),
                group: r.q.group as u32,
                data,
                mse: rmse * rmse,
            });
        }
        list.push(Candidate {
            label: "f16".into(),
            etype: ElementType::F16,
            group: 0,
            data: w
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
                .collect(),
            mse: 0.0,
        });
        names.push(t.name.clone());
        cands.push(list);
    }

    // 2. Sensitivity of each tensor alone at the low scheme.
    let t0 = std::time::Instant::now();
    let dir = opts
        .calibrate
        .as_deref()
        .ok_or_else(|| Error::Invalid("--budget needs --calibrate DIR".into()))?;
    let low: Vec<(&str, &Candidate)> = names
        .iter()
        .zip(&cands)
        .map(|(n, c)| (n.as_str(), &c[low_index]))
        .collect();
    let kl = measure(input, dir, &low, threads, &|i| {
        progress(total / 2 + i * total / (2 * low.len().max(1)), total)
    })?;
    let seconds = t0.elapsed().as_secs_f64();

    // 3. Predicted KL of every candidate; 4. the knapsack.
    let value: Vec<Vec<f64>> = cands
        .iter()
        .zip(&kl)
        .map(|(c, &kl)| {
            let mse = c[low_index].mse;
            let curvature = if mse > 0.0 { kl.max(0.0) / mse } else { 0.0 };
            c.iter().map(|c| curvature * c.mse).collect()
        })
        .collect();
    let bytes: Vec<Vec<u64>> = cands
        .iter()
        .map(|c| c.iter().map(|c| c.data.len() as u64).collect())
        .collect();
    let pick = choose(&value, &bytes, budget_bytes as u64);

    // Write: every tensor as its candidate, the rest as they are.
    let config = input.config().clone();
    let vocab: Vec<Vec<u8>> = (0..config.n_vocab)
        .map(|id| input.token_bytes(id).to_vec())
        .collect();
    let mut writer = FileWriter::new(config, vocab, input.mel_filters().to_vec());
    let mut reports = Vec::new();
    let mut sens = Vec::new();
    let mut q_bytes = kept_bytes;
    let mut cands: Vec<Option<Vec<Candidate>>> = cands.into_iter().map(Some).collect();
    for t in input.tensors() {
        if t.name.ends_with("/act_scale") {
            continue;
        }
        let Some(i) = names.iter().position(|n| *n == t.name) else {
            writer.add_tensor(&t.name, t.etype, &t.shape, t.group, input.bytes(t).to_vec())?;
            continue;
        };
        let mut list = cands[i].take().unwrap_or_default();
        let j = pick[i];
        let low_mse = list[low_index].mse;
        let c = list.swap_remove(j);
        let len = c.data.len() as u64;
        q_bytes += len;
        sens.push(Sensitivity {
            name: t.name.clone(),
            kl: kl[i],
            mse: low_mse,
            choice: c.label.clone(),
            predicted_kl: value[i][j],
            elements: t.elements() as u64,
            bytes: len,
        });
        reports.push(TensorReport {
            name: t.name.clone(),
            scheme: c.label.clone(),
            rtn_rmse: f32::NAN,
            method_rmse: c.mse.sqrt() as f32,
            bytes: len,
            elements: t.elements() as u64,
            output_error: None,
        });
        writer.add_tensor(&t.name, c.etype, &t.shape, c.group, c.data)?;
    }
    writer.set_activations(crate::format::ActivationMode::None);
    writer.write(out)?;
    progress(total, total);
    let file_bytes = std::fs::metadata(out)
        .map_err(|e| Error::io(out.display().to_string(), e))?
        .len();
    sens.sort_by(|a, b| b.kl.total_cmp(&a.kl));
    Ok(QuantizeReport {
        tensors: reports,
        file_bytes,
        bits_per_weight: q_bytes as f64 * 8.0 / elems.max(1) as f64,
        sensitivity: sens,
        sensitivity_seconds: seconds,
        prescale: Vec::new(),
        prescale_seconds: 0.0,
    })
}

/// Multiple-choice knapsack: one option per item (`value` to minimise, `bytes` its
/// cost), total bytes ≤ `capacity`. Costs are counted in units of
/// `capacity / 20000` rounded up, so the choice never exceeds the capacity; when the
/// rounding leaves no solution, every item's first (cheapest) option.
pub fn choose(value: &[Vec<f64>], bytes: &[Vec<u64>], capacity: u64) -> Vec<usize> {
    const STEPS: u64 = 20_000;
    let unit = capacity.div_ceil(STEPS).max(1);
    let cap = (capacity / unit) as usize;
    let inf = f64::INFINITY;
    // best[c]: least value of the items so far within c units.
    let mut best = vec![0f64; cap + 1];
    let mut choice: Vec<Vec<u8>> = Vec::with_capacity(value.len());
    for (vals, costs) in value.iter().zip(bytes) {
        let mut next = vec![inf; cap + 1];
        let mut ch = vec![u8::MAX; cap + 1];
        for (j, (&v, &b)) in vals.iter().zip(costs).enumerate() {
            let u = b.div_ceil(unit) as usize;
            for c in u..=cap {
                let cand = best[c - u] + v;
                if cand < next[c] {
                    next[c] = cand;
                    ch[c] = j as u8;
                }
            }
        }
        best = next;
        choice.push(ch);
    }
    if !best[cap].is_finite() {
        return vec![0; value.len()];
    }
    let mut pick = vec![0; value.len()];
    let mut c = cap;
    for i in (0..value.len()).rev() {
        let j = choice[i][c] as usize;
        pick[i] = j;
        c -= bytes[i][j].div_ceil(unit) as usize;
    }
    pick
}

/// Per tensor in `low` (name, its packed candidate), the mean KL divergence of the
/// next-token distribution of the model with that tensor alone replaced, from
/// `input`'s, over the first 30 s of every audio file in `dir` decoded
/// teacher-forced on `input`'s greedy tokens (no timestamps). `done(i)` after each.
#[cfg(feature = "audio")]
fn measure(
    input: &ModelFile,
    dir: &std::path::Path,
    low: &[(&str, &Candidate)],
    threads: usize,
    done: &dyn Fn(usize),
) -> Result<Vec<f64>> {
    use crate::audio::{log_mel_spectrogram, N_FRAMES, N_SAMPLES};
    let files = super::calibrate::audio_files(dir)?;
    let path = input
        .path()
        .ok_or_else(|| Error::Invalid("--budget needs the input model as a file on disk".into()))?;
    let reference = crate::Model::from_file(ModelFile::open(path)?)?;
    let c = input.config();
    let t = &c.tokens;
    let mut prompt = vec![t.sot];
    if c.multilingual {
        let en = c
            .languages
            .iter()
            .find(|(code, _)| code == "en")
            .map(|(_, id)| *id)
            .ok_or_else(|| Error::Invalid("the model has no English language token".into()))?;
        prompt.extend([en, t.transcribe]);
    }
    prompt.push(t.no_timestamps);
    let max_new = (c.n_text_ctx as usize / 2)
        .saturating_sub(prompt.len())
        .max(1);

    // The float model's windows, tokens and log-probabilities.
    struct Window {
        mel: Vec<f32>,
        enc: crate::EncodedWindow,
        tokens: Vec<u32>,
        want: Vec<usize>,
        logp: Vec<Vec<f32>>,
    }
    let nm = c.n_mels as usize;
    let mut windows = Vec::new();
    for f in &files {
        let mut samples = crate::audio::load_audio(f)?;
        samples.truncate(N_SAMPLES);
        if samples.is_empty() {
            continue;
        }
        let (mel, frames) = log_mel_spectrogram(&samples, N_SAMPLES, input.mel_filters(), nm);
        let mel: Vec<f32> = (0..nm)
            .flat_map(|m| mel[m * frames..m * frames + N_FRAMES].iter().copied())
            .collect();
        let enc = reference.encode_window(&mel, threads)?;
        let mut state = reference.decoder_state();
        let mut logits =
            reference.decode_tokens(&enc, &mut state, &prompt, &[prompt.len() - 1], threads)?;
        let mut tokens = prompt.clone();
        for _ in 0..max_new {
            // Text tokens and the end of text only.
            let row = &logits[0][..=t.eot as usize];
            let next = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b }) as u32;
            tokens.push(next);
            if next == t.eot {
                break;
            }
            logits = reference.decode_tokens(&enc, &mut state, &[next], &[0], threads)?;
        }
        let want: Vec<usize> = (prompt.len() - 1..tokens.len() - 1).collect();
        let mut state = reference.decoder_state();
        let logp = reference
            .decode_tokens(&enc, &mut state, &tokens, &want, threads)?
            .into_iter()
            .map(log_softmax)
            .collect();
        windows.push(Window {
            mel,
            enc,
            tokens,
            want,
            logp,
        });
    }
    if windows.is_empty() {
        return Err(Error::Invalid(format!(
            "--calibrate {}: no audio decoded",
            dir.display()
        )));
    }

    let mut out = Vec::with_capacity(low.len());
    for (i, (name, cand)) in low.iter().enumerate() {
        let mut w = FileWriter::new(
            c.clone(),
            (0..c.n_vocab)
                .map(|id| input.token_bytes(id).to_vec())
                .collect(),
            input.mel_filters().to_vec(),
        );
        for t in input.tensors() {
            if t.name == *name {
                w.add_tensor(&t.name, cand.etype, &t.shape, cand.group, cand.data.clone())?;
            } else {
                w.add_tensor(&t.name, t.etype, &t.shape, t.group, input.bytes(t).to_vec())?;
            }
        }
        let model = crate::Model::from_file(ModelFile::from_bytes(w.to_bytes()?)?)?;
        // The encoder and each decoder layer's cross-attention keys / values are
        // computed when a window is encoded; every other tensor only in decoding.
        let encodes = name.starts_with("encoder/") || name.ends_with("/attention/linear_1/weight");
        let (mut sum, mut count) = (0f64, 0usize);
        for win in &windows {
            let own;
            let enc = if encodes {
                own = model.encode_window(&win.mel, threads)?;
                &own
            } else {
                &win.enc
            };
            let mut state = model.decoder_state();
            let rows = model.decode_tokens(enc, &mut state, &win.tokens, &win.want, threads)?;
            for (q, p) in rows.into_iter().zip(&win.logp) {
                sum += kl_div(p, &log_softmax(q));
                count += 1;
            }
        }
        out.push(sum / count.max(1) as f64);
        done(i + 1);
    }
    Ok(out)
}

#[cfg(not(feature = "audio"))]
fn measure(
    _: &ModelFile,
    _: &std::path::Path,
    _: &[(&str, &Candidate)],
    _: usize,
    _: &dyn Fn(usize),
) -> Result<Vec<f64>> {
    Err(Error::Invalid(
        "--budget measures sensitivities on audio: it needs the `audio` feature of sotto".into(),
    ))
}

/// `log softmax(x)`, in place.
#[cfg_attr(not(feature = "audio"), allow(dead_code))]
fn log_softmax(mut x: Vec<f32>) -> Vec<f32> {
    let m = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let lse = m + x.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
    for v in &mut x {
        *v -= lse;
    }
    x
}

/// `KL(p ‖ q)` from log-probabilities.
#[cfg_attr(not(feature = "audio"), allow(dead_code))]
fn kl_div(logp: &[f32], logq: &[f32]) -> f64 {
    logp.iter()
        .zip(logq)
        .map(|(&lp, &lq)| {
            let p = (lp as f64).exp();
            if p > 0.0 {
                p * (lp as f64 - lq as f64)
            } else {
                0.0
            }
        })
        .sum::<f64>()
        .max(0.0)
}

/// The `--report` lines of a mixed run: every tensor by decreasing sensitivity.
pub fn sensitivity_table(s: &[Sensitivity], seconds: f64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sensitivity (mean KL per token, tensor alone at the low scheme; {seconds:.1} s):"
    );
    let _ = writeln!(
        out,
        "{:<50} {:>11} {:>11} {:<10} {:>11}",
        "tensor", "KL", "MSE", "choice", "pred. KL"
    );
    for t in s {
        let _ = writeln!(
            out,
            "{:<50} {:>11.3e} {:>11.3e} {:<10} {:>11.3e}",
            t.name, t.kl, t.mse, t.choice, t.predicted_kl
        );
    }
    out
}
