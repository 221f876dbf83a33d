//! `sotto eval` arguments and entry point (called from `main.rs`).

use super::{report, schemes, EvalConfig};
use crate::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Model name (tiny.en, base) or .sotto path: the f16 file the schemes start from
    #[arg(short, long, default_value = "tiny.en")]
    pub model: String,
    /// A folder with manifest.tsv (columns file, duration_s, reference_text); repeatable
    #[arg(long = "set", required = true)]
    pub sets: Vec<PathBuf>,
    /// Comma-separated schemes; missing quantized files are made once into $SOTTO_HOME
    #[arg(
        long,
        default_value = "f16,int8,int8-linear,int8-tensor,int8-static,int4-rtn,int4-hqq,nf4,nf4-dq,int3-hqq"
    )]
    pub schemes: String,
    /// Worker threads (default: all cores)
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Write every result (per utterance) to this JSON file, updated as it runs
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the plot (wer_vs_size.svg/.png) and the table (eval.md) here; also
    /// eval.json when --json is not given
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Evaluate only the first N utterances of each set
    #[arg(long)]
    pub limit: Option<usize>,
    /// Folder of audio files for static activation scales (int8-static)
    #[arg(long)]
    pub calibrate: Option<PathBuf>,
    /// Quantize again even when $SOTTO_HOME holds a scheme's file (after a
    /// quantizer change)
    #[arg(long)]
    pub requantize: bool,
}

/// Runs `sotto eval`: table on stdout, messages and progress on stderr.
/// `font`: a TrueType file for the plot's text, tried first (the CLI passes `$SOTTO_FONT`).
pub fn run(
    args: EvalArgs,
    load: crate::LoadOptions,
    home: std::path::PathBuf,
    font: Option<std::path::PathBuf>,
) -> Result<()> {
    let threads = match args.threads {
        Some(0) => return Err(Error::Invalid("--threads must be at least 1".into())),
        Some(t) => t,
        None => crate::Options::default().threads,
    };
    let json = args
        .json
        .clone()
        .or_else(|| args.out.as_ref().map(|d| d.join("eval.json")));
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    }
    let cfg = EvalConfig {
        model: args.model,
        sets: args.sets,
        schemes: schemes::parse_schemes(&args.schemes)?,
        threads,
        limit: args.limit,
        calibrate: args.calibrate,
        requantize: args.requantize,
        json: json.clone(),
        progress: true,
        load,
        home,
    };
    let t0 = std::time::Instant::now();
    let log = |m: &str| eprintln!("{m}");
    let rep = super::run(&cfg, &log)?;
    let table = report::markdown(&rep);
    print!("{table}");
    if let Some(j) = &json {
        eprintln!("results: {}", j.display());
    }
    if let Some(dir) = &args.out {
        report::write_atomic(&dir.join("eval.md"), table.as_bytes())?;
        match report::plot(&rep, dir, font.as_deref()) {
            Ok(files) => {
                for f in files {
                    eprintln!("plot: {}", f.display());
                }
            }
            // The numbers are written already: a missing font is not fatal.
            Err(e) => eprintln!("no plot: {e}"),
        }
    }
    eprintln!("eval took {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
