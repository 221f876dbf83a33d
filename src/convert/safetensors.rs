//! A bounds-checked reader of safetensors files (the header is untrusted input):
//! u64 header length N, N bytes of JSON `{name: {dtype, shape, data_offsets:
//! [begin, end]}, "__metadata__": {...}}`, then the data; offsets are relative to
//! the data's start. Every tensor must lie inside the data, match its dtype and
//! shape exactly, and not overlap another.
use super::sink::FloatType;
use crate::{Error, Result};
use std::collections::BTreeMap;

/// One tensor of a safetensors file: where its bytes are in the file.
#[derive(Clone, Debug)]
pub(crate) struct StEntry {
    pub dtype: FloatType,
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub start: usize,
    pub end: usize,
}

/// Largest header sotto accepts (safetensors' own limit is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// Parses the header of a safetensors file of `bytes`; `ctx` names it for errors.
pub(crate) fn parse(bytes: &[u8], ctx: &str) -> Result<BTreeMap<String, StEntry>> {
    let err = |m: String| Error::Convert(format!("{ctx}: {m}"));
    if bytes.len() < 8 {
        return Err(err(format!(
            "{} bytes: too short for a safetensors header",
            bytes.len()
        )));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
    if n > MAX_HEADER || n > (bytes.len() - 8) as u64 {
        return Err(err(format!(
            "header length {n} runs past the end of the file ({} bytes)",
            bytes.len()
        )));
    }
    let data_start = 8 + n as usize;
    let data_len = bytes.len() - data_start;
    let header = std::str::from_utf8(&bytes[8..data_start])
        .map_err(|_| err("header is not UTF-8".into()))?;
    let json: serde_json::Value =
        serde_json::from_str(header).map_err(|e| err(format!("header is not JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| err("header is not a JSON object".into()))?;
    let mut out = BTreeMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let terr = |m: String| err(format!("tensor {name}: {m}"));
        let dtype = match v.get("dtype").and_then(|d| d.as_str()) {
            Some("F32") => FloatType::F32,
            Some("F16") => FloatType::F16,
            Some("BF16") => FloatType::Bf16,
            Some(other) => {
                return Err(terr(format!(
                    "dtype {other} is not supported (F32, F16 or BF16 weights)"
                )))
            }
            None => return Err(terr("no dtype".into())),
        };
        let shape = v
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| {
                a.iter()
                    .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                    .collect::<Option<Vec<usize>>>()
            })
            .ok_or_else(|| terr("shape is not a list of sizes".into()))?;
        let offsets = v
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
            .ok_or_else(|| terr("data_offsets is not [begin, end]".into()))?;
        let (b, e) = offsets;
        if b > e || e > data_len as u64 {
            return Err(terr(format!(
                "data_offsets [{b}, {e}] outside the {data_len} data bytes (truncated file?)"
            )));
        }
        let want = shape
            .iter()
            .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
            .ok_or_else(|| terr(format!("shape {shape:?} overflows")))?;
        if want as u64 != e - b {
            return Err(terr(format!(
                "{} bytes for shape {shape:?} of {dtype:?}, which needs {want}",
                e - b
            )));
        }
        out.insert(
            name.clone(),
            StEntry {
                dtype,
                shape,
                start: data_start + b as usize,
                end: data_start + e as usize,
            },
        );
    }
    let mut ranges: Vec<(usize, usize, &str)> = out
        .iter()
        .map(|(n, e)| (e.start, e.end, n.as_str()))
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(err(format!("tensors {} and {} overlap", w[0].2, w[1].2)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn reads_and_rejects() {
        let ok = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        let t = parse(&file(ok, &[0; 8]), "x").unwrap();
        assert_eq!(t["b"].start - t["a"].start, 4);
        let bad = |h: &str, data: usize| {
            parse(&file(h, &vec![0; data]), "x.safetensors")
                .unwrap_err()
                .to_string()
        };
        assert!(bad(ok, 7).contains("outside"), "truncated data");
        let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        assert!(bad(overlap, 8).contains("overlap"));
        let shape = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        assert!(bad(shape, 8).contains("needs 12"));
        let dtype = r#"{"a":{"dtype":"I8","shape":[8],"data_offsets":[0,8]}}"#;
        assert!(bad(dtype, 8).contains("not supported"));
        let mut long = file(ok, &[0; 8]);
        long[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let e = parse(&long, "x.safetensors").unwrap_err().to_string();
        assert!(
            e.contains("past the end") && e.contains("x.safetensors"),
            "{e}"
        );
        // No cut of a valid file panics.
        let whole = file(ok, &[0; 8]);
        for cut in 0..whole.len() {
            let _ = parse(&whole[..cut], "x");
        }
    }
}
