//! The quantization schemes `sotto eval` compares, by name, and how each one's
//! model file is obtained: the converted file itself (`f16`) or a file quantized
//! once into the cache (`$SOTTO_HOME/{model}-{scheme}.sotto`) and reused.

use crate::format::ModelFile;
use crate::quantize::awq::Prescale;
use crate::quantize::{self, Activations, Method, QuantizeOptions, Scheme};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// How a scheme's model file comes about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The model file as given (the converted float16 weights).
    AsGiven,
    /// Quantized from the given file.
    Quantized {
        scheme: Scheme,
        /// 0: the scheme's default.
        group: usize,
        method: Method,
        activations: Activations,
        double_quant: bool,
        /// Tensors left in f16 (`--keep` patterns).
        keep: &'static [&'static str],
        /// Mixed precision (`--budget`) in hundredths of a bit per weight; the
        /// sensitivities are measured on the calibration audio.
        budget_centibits: Option<u16>,
        /// AWQ or SmoothQuant scales folded in first.
        prescale: Prescale,
    },
}

/// A named scheme of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalScheme {
    pub name: &'static str,
    pub source: Source,
}

const fn q(
    name: &'static str,
    scheme: Scheme,
    group: usize,
    method: Method,
    activations: Activations,
    double_quant: bool,
) -> EvalScheme {
    EvalScheme {
        name,
        source: Source::Quantized {
            scheme,
            group,
            method,
            activations,
            double_quant,
            keep: &[],
            budget_centibits: None,
            prescale: Prescale::None,
        },
    }
}

/// [`q`] with AWQ / SmoothQuant scales folded in first.
const fn qp(
    name: &'static str,
    scheme: Scheme,
    method: Method,
    activations: Activations,
    prescale: Prescale,
) -> EvalScheme {
    let group = match scheme {
        Scheme::Int8Row | Scheme::Int8Tensor => 0,
        _ => 64,
    };
    EvalScheme {
        name,
        source: Source::Quantized {
            scheme,
            group,
            method,
            activations,
            double_quant: false,
            keep: &[],
            budget_centibits: None,
            prescale,
        },
    }
}

/// Every scheme `--schemes` accepts, in the default order.
pub const SCHEMES: &[EvalScheme] = &[
    EvalScheme {
        name: "f16",
        source: Source::AsGiven,
    },
    q(
        "int8",
        Scheme::Int8Row,
        0,
        Method::Rtn,
        Activations::Dynamic,
        false,
    ),
    // PyTorch `quantize_dynamic` (the study's int8): linear layers only; Whisper's
    // output projection is the tied token embedding, which stays float.
    EvalScheme {
        name: "int8-linear",
        source: Source::Quantized {
            scheme: Scheme::Int8Row,
            group: 0,
            method: Method::Rtn,
            activations: Activations::Dynamic,
            double_quant: false,
            keep: &["decoder/embeddings/weight"],
            budget_centibits: None,
            prescale: Prescale::None,
        },
    },
    q(
        "int8-tensor",
        Scheme::Int8Tensor,
        0,
        Method::Rtn,
        Activations::Dynamic,
        false,
    ),
    q(
        "int8-static",
        Scheme::Int8Row,
        0,
        Method::Rtn,
        Activations::Static,
        false,
    ),
    q(
        "int4-rtn",
        Scheme::Int4Asym,
        64,
        Method::Rtn,
        Activations::None,
        false,
    ),
    q(
        "int4-hqq",
        Scheme::Int4Asym,
        64,
        Method::Hqq,
        Activations::None,
        false,
    ),
    q("nf4", Scheme::Nf4, 0, Method::Rtn, Activations::None, false),
    q(
        "nf4-dq",
        Scheme::Nf4,
        0,
        Method::Rtn,
        Activations::None,
        true,
    ),
    q(
        "int3-hqq",
        Scheme::Int3,
        64,
        Method::Hqq,
        Activations::None,
        false,
    ),
    // Mixed precision at 4.5 bits/weight: int4 HQQ g128 / g64, int8 or f16 per tensor
    // by its sensitivity on the calibration audio (--calibrate).
    EvalScheme {
        name: "mixed-4.5",
        source: Source::Quantized {
            scheme: Scheme::Int4Asym,
            group: 64,
            method: Method::Hqq,
            activations: Activations::None,
            double_quant: false,
            keep: &[],
            budget_centibits: Some(450),
            prescale: Prescale::None,
        },
    },
    // AWQ scales (awq.rs) folded in before RTN / HQQ / GPTQ; SmoothQuant before
    // static int8 activations.
    qp(
        "int4-awq",
        Scheme::Int4Asym,
        Method::Rtn,
        Activations::None,
        Prescale::Awq,
    ),
    qp(
        "int4-awq-hqq",
        Scheme::Int4Asym,
        Method::Hqq,
        Activations::None,
        Prescale::Awq,
    ),
    qp(
        "int4-awq-gptq",
        Scheme::Int4Asym,
        Method::Gptq,
        Activations::None,
        Prescale::Awq,
    ),
    qp(
        "int8-static-smooth",
        Scheme::Int8Row,
        Method::Rtn,
        Activations::Static,
        Prescale::Smooth,
    ),
    // GPTQ from the calibration audio (--calibrate), act-order with static groups.
    q(
        "int4-gptq",
        Scheme::Int4Asym,
        64,
        Method::Gptq,
        Activations::None,
        false,
    ),
    q(
        "nf4-gptq",
        Scheme::Nf4,
        0,
        Method::Gptq,
        Activations::None,
        false,
    ),
    q(
        "nf4-dq-gptq",
        Scheme::Nf4,
        0,
        Method::Gptq,
        Activations::None,
        true,
    ),
    q(
        "int3-gptq",
        Scheme::Int3,
        64,
        Method::Gptq,
        Activations::None,
        false,
    ),
    // Low-bit weights with dynamic int8 activations (the low-bit × int8 kernels).
    q(
        "int4-hqq-dyn",
        Scheme::Int4Asym,
        64,
        Method::Hqq,
        Activations::Dynamic,
        false,
    ),
    q(
        "int3-hqq-dyn",
        Scheme::Int3,
        64,
        Method::Hqq,
        Activations::Dynamic,
        false,
    ),
];

/// Parses a comma-separated list of scheme names (duplicates dropped, order kept).
pub fn parse_schemes(list: &str) -> Result<Vec<EvalScheme>> {
    let mut out: Vec<EvalScheme> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let s = SCHEMES.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = SCHEMES.iter().map(|s| s.name).collect();
            Error::Invalid(format!(
                "unknown scheme '{name}'; known: {}",
                names.join(", ")
            ))
        })?;
        if !out.contains(s) {
            out.push(*s);
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid("--schemes names no scheme".into()));
    }
    Ok(out)
}

/// The quantizer's options for a scheme, or why it cannot be built here
/// (`Err` is a reason to skip it, not a failure).
pub fn quantize_options(
    scheme: &EvalScheme,
    calibrate: Option<&Path>,
    threads: usize,
) -> std::result::Result<Option<QuantizeOptions>, String> {
    let Source::Quantized {
        scheme: s,
        group,
        method,
        activations,
        double_quant,
        keep,
        budget_centibits,
        prescale,
    } = scheme.source
    else {
        return Ok(None);
    };
    let needs_audio = activations == Activations::Static
        || method == Method::Gptq
        || budget_centibits.is_some()
        || prescale != Prescale::None;
    let calibrate = match (needs_audio, calibrate) {
        (true, Some(dir)) => Some(dir.to_path_buf()),
        (true, None) => {
            return Err(format!(
                "{} needs calibration audio: pass --calibrate DIR",
                if prescale == Prescale::Awq {
                    "AWQ"
                } else if prescale == Prescale::Smooth {
                    "SmoothQuant"
                } else if method == Method::Gptq {
                    "GPTQ"
                } else if budget_centibits.is_some() {
                    "mixed precision (sensitivities)"
                } else {
                    "static activation scales"
                }
            ))
        }
        (false, _) => None,
    };
    Ok(Some(QuantizeOptions {
        scheme: s,
        group,
        method,
        activations,
        calibrate,
        double_quant,
        keep: keep.iter().map(|k| k.to_string()).collect(),
        budget: budget_centibits.map(|b| b as f64 / 100.0),
        prescale,
        threads: threads.max(1),
        ..QuantizeOptions::default()
    }))
}

/// Where a quantized scheme of `model` is cached.
pub fn cache_path(home: &Path, model: &str, scheme: &EvalScheme) -> PathBuf {
    home.join(format!("{model}-{}.sotto", scheme.name))
}

/// The file to evaluate for `scheme`: `source` itself for `f16`, else the cached
/// quantized file, made when missing, unreadable or `fresh` is set.
#[allow(clippy::too_many_arguments)]
pub fn scheme_file(
    home: &Path,
    source: &Path,
    model: &str,
    scheme: &EvalScheme,
    opts: &QuantizeOptions,
    fresh: bool,
    log: &dyn Fn(&str),
    progress: &dyn Fn(usize, usize),
) -> Result<PathBuf> {
    if scheme.source == Source::AsGiven {
        return Ok(source.to_path_buf());
    }
    let out = cache_path(home, model, scheme);
    if out.is_file() && !fresh {
        match ModelFile::open(&out) {
            Ok(_) => return Ok(out),
            Err(e) => log(&format!("{}: {e}; quantizing again", out.display())),
        }
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    }
    log(&format!(
        "quantizing {} to {} (once; cached for later runs)",
        source.display(),
        out.display()
    ));
    let input = ModelFile::open(source)?;
    quantize::quantize_model(&input, &out, opts, progress)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_map() {
        let all: Vec<&str> = SCHEMES.iter().map(|s| s.name).collect();
        let parsed = parse_schemes(&all.join(",")).unwrap();
        assert_eq!(parsed.len(), SCHEMES.len());
        assert!(parse_schemes("f16,bogus").is_err());
        assert!(parse_schemes(" , ").is_err());
        assert_eq!(parse_schemes("f16, f16 ,int8").unwrap().len(), 2);

        let f16 = parse_schemes("f16").unwrap()[0];
        assert!(quantize_options(&f16, None, 2).unwrap().is_none());
        let st = parse_schemes("int8-static").unwrap()[0];
        assert!(quantize_options(&st, None, 2).is_err());
        let o = quantize_options(&st, Some(Path::new("/x")), 2)
            .unwrap()
            .unwrap();
        assert_eq!(o.activations, Activations::Static);
        let lin = parse_schemes("int8-linear").unwrap()[0];
        let o = quantize_options(&lin, None, 2).unwrap().unwrap();
        assert_eq!(o.keep, vec!["decoder/embeddings/weight".to_string()]);
        let dq = parse_schemes("nf4-dq").unwrap()[0];
        let o = quantize_options(&dq, None, 2).unwrap().unwrap();
        assert!(o.double_quant && o.scheme == Scheme::Nf4);
        let h = parse_schemes("int3-hqq").unwrap()[0];
        let o = quantize_options(&h, None, 2).unwrap().unwrap();
        assert_eq!(
            (o.scheme, o.group, o.method),
            (Scheme::Int3, 64, Method::Hqq)
        );
    }
}
