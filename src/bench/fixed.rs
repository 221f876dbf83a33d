//! `sotto bench --tokens N`: the network's speed over a fixed amount of work, whatever
//! the weights say. A transcription's decoder time depends on how many tokens the model
//! emits (random weights may end at once); here every run encodes one 30-s window and then
//! forces exactly N decoder steps, so models (and engines) are compared on the same work.
//!
//! One run: `Model::encode_window` on one window of log-mel frames (a fixed pattern in the
//! log-mel range: the cost does not depend on the values), timed; the prompt
//! `<|startoftranscript|>` [`<|en|>`] `<|transcribe|>` `<|notimestamps|>` in one decoder
//! pass, not timed; then N single-token decoder steps, each feeding the previous step's
//! arg-max (greedy, no suppression, no timestamp rules, end-of-text ignored), timed as a
//! whole and divided by N. One warm-up run, then `--runs` timed runs; medians reported.
use super::{median, ms_since, peak_rss_bytes};
use sotto::{convert, Error, Model, Result};
use std::time::Instant;

pub(super) fn run(a: &super::BenchArgs, tokens: usize) -> Result<()> {
    if tokens == 0 {
        return Err(Error::Invalid("--tokens must be at least 1".into()));
    }
    let model_path = convert::resolve_model(&crate::home(), &a.model, &|m| eprintln!("{m}"))?;
    let t = Instant::now();
    let model = Model::load_with(&model_path, &crate::load_options()?)?;
    let load_ms = ms_since(t);
    let t = Instant::now();
    let model = crate::to_device(model, a.device.into())?;
    let upload_ms = ms_since(t);
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });

    let cfg = model.config();
    let tk = &cfg.tokens;
    let mut prompt = vec![tk.sot];
    if let Some((_, en)) = cfg.languages.iter().find(|(code, _)| code == "en") {
        prompt.push(*en);
    }
    prompt.extend([tk.transcribe, tk.no_timestamps]);
    let room = (cfg.n_text_ctx as usize).saturating_sub(prompt.len());
    if tokens > room {
        return Err(Error::Invalid(format!(
            "--tokens {tokens}: the decoder holds {} positions, {} after the prompt",
            cfg.n_text_ctx, room
        )));
    }
    let (n_mels, frames) = (cfg.n_mels as usize, 2 * cfg.n_audio_ctx as usize);
    let mel: Vec<f32> = (0..n_mels * frames)
        .map(|i| ((i % 97) as f32 / 97.0) - 0.5)
        .collect();

    let once = || -> Result<(f64, f64)> {
        let t = Instant::now();
        let window = model.encode_window(&mel, threads)?;
        let enc_ms = ms_since(t);
        let mut state = model.decoder_state();
        let logits =
            model.decode_tokens(&window, &mut state, &prompt, &[prompt.len() - 1], threads)?;
        let mut next = argmax(&logits[0]);
        let t = Instant::now();
        for _ in 0..tokens {
            let logits = model.decode_tokens(&window, &mut state, &[next], &[0], threads)?;
            next = argmax(&logits[0]);
        }
        Ok((enc_ms, ms_since(t) / tokens as f64))
    };
    once()?; // warm-up: pool start, page faults on the mapping
    if a.rounds_from_stdin {
        let ready = serde_json::json!({
            "ready": true,
            "model_bytes": model.file().file_len(),
            "kernels": model.kernels().name(),
            "threads": threads,
            "load_ms": load_ms,
        });
        return rounds_from_stdin(ready, &once);
    }
    let mut enc = Vec::with_capacity(a.runs);
    let mut dec = Vec::with_capacity(a.runs);
    for _ in 0..a.runs {
        let (e, d) = once()?;
        enc.push(e);
        dec.push(d);
    }
    let peak = peak_rss_bytes();
    let report = serde_json::json!({
        "mode": "fixed-tokens",
        "model": model_path.display().to_string(),
        "model_bytes": model.file().file_len(),
        "device": model.device_name(),
        "kernels": model.kernels().name(),
        "threads": threads,
        "runs": a.runs,
        "load_ms": load_ms,
        "upload_ms": upload_ms,
        "encoder_ms_per_window": median(enc.clone()),
        "encoder_ms_runs": enc,
        "windows": 1,
        "decode_ms_per_token": median(dec.clone()),
        "decode_ms_per_token_runs": dec,
        "decode_tokens": tokens,
        "prompt_tokens": prompt.len(),
        "peak_rss_bytes": peak,
    });
    if a.json {
        println!("{report}");
    } else {
        let r = &report;
        println!(
            "model        {} ({:.1} MiB)\n\
             device       {}, {} threads, kernels {}\n\
             load         {:.1} ms (mmap + validation)\n\
             encoder      {:.1} ms/window (median of {})\n\
             decoder      {:.2} ms/token ({} forced steps after a {}-token prompt, greedy)\n\
             peak RSS     {}",
            r["model"].as_str().unwrap_or(""),
            model.file().file_len() as f64 / (1 << 20) as f64,
            r["device"].as_str().unwrap_or(""),
            threads,
            r["kernels"].as_str().unwrap_or(""),
            load_ms,
            r["encoder_ms_per_window"].as_f64().unwrap_or(f64::NAN),
            a.runs,
            r["decode_ms_per_token"].as_f64().unwrap_or(f64::NAN),
            tokens,
            prompt.len(),
            match peak {
                Some(b) => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
                None => "unknown (no /proc/self/status)".into(),
            }
        );
    }
    Ok(())
}

/// One run per `run` line on stdin, each answered with a JSON line (after a first
/// `ready` line), until stdin ends.
fn rounds_from_stdin(
    ready: serde_json::Value,
    once: &dyn Fn() -> Result<(f64, f64)>,
) -> Result<()> {
    use std::io::{BufRead, Write};
    let mut out = std::io::stdout().lock();
    let reply = |out: &mut std::io::StdoutLock, v: serde_json::Value| -> Result<()> {
        writeln!(out, "{v}")
            .and_then(|_| out.flush())
            .map_err(|e| Error::Invalid(format!("stdout: {e}")))
    };
    reply(&mut out, ready)?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::Invalid(format!("stdin: {e}")))?;
        if line.trim() != "run" {
            return Err(Error::Invalid(format!(
                "--rounds-from-stdin: expected `run`, read {line:?}"
            )));
        }
        let (enc, dec) = once()?;
        reply(
            &mut out,
            serde_json::json!({
                "encoder_ms_per_window": enc,
                "decode_ms_per_token": dec,
                "peak_rss_bytes": peak_rss_bytes(),
            }),
        )?;
    }
    Ok(())
}

/// Index of the largest logit (the first of equals; NaN never wins).
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() && !x.is_nan() {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn argmax_first_of_equals_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.25]), 1);
        assert_eq!(argmax(&[-1.0]), 0);
    }
}
