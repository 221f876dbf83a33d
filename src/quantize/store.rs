//! The glue between the quantizer and the packed layouts / format support owned by
//! `sotto_kernels::schemes` and `crate::format`: packing, reading a packed tensor
//! back, and recording the activation mode in the file.
use super::{rtn, Activations};
use crate::format::{act_scale_name, ActivationMode, ElementType, FileWriter};
use crate::{Error, Result};
use sotto_kernels::schemes::{self, ActQuant, Quantized, NF4};
use std::collections::BTreeMap;

/// The bytes the file stores for `q`.
pub(crate) fn pack(q: &Quantized) -> std::result::Result<Vec<u8>, String> {
    schemes::pack(q)
}

/// What the packed `data` of `q`'s shape decodes to (the runtime's reference decoder).
pub(crate) fn decode(q: &Quantized, data: &[u8]) -> std::result::Result<Vec<f32>, String> {
    let w = schemes::view(q.scheme, q.n, q.k, q.group, data, ActQuant::Float)?;
    let mut out = vec![0f32; q.n * q.k];
    schemes::dequantize(&w, &mut out);
    Ok(out)
}

/// RMSE between `w` and what the packed `data` decodes to.
pub(crate) fn stored_rmse(
    w: &[f32],
    q: &Quantized,
    data: &[u8],
) -> std::result::Result<f32, String> {
    let r = decode(q, data)?;
    let sse: f64 = w
        .iter()
        .zip(&r)
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum();
    Ok((sse / w.len().max(1) as f64).sqrt() as f32)
}

/// Nf4Dq: re-chooses every code for the absmax the file stores (8-bit double
/// quantized), keeping `q.scales` (the f32 absmax, which packing quantizes again to
/// the same codes). Returns the squared error before and after.
pub(crate) fn recode_nf4dq(
    w: &[f32],
    q: &mut Quantized,
) -> std::result::Result<(f64, f64), String> {
    let bytes = schemes::pack(q)?;
    let stored = schemes::unpack(q.scheme, q.n, q.k, q.group, &bytes)?.scales;
    let (k, g) = (q.k, q.group);
    let gpr = k.div_ceil(g);
    let (mut before, mut after) = (0f64, 0f64);
    for (r, (row, codes)) in w.chunks(k).zip(q.codes.chunks_mut(k)).enumerate() {
        for (gi, (vals, cs)) in row.chunks(g).zip(codes.chunks_mut(g)).enumerate() {
            let a = stored[r * gpr + gi];
            for (&v, c) in vals.iter().zip(cs) {
                before += ((v - a * NF4[*c as usize]) as f64).powi(2);
                *c = if a > 0.0 { rtn::nf4_code(v / a) } else { 7 };
                after += ((v - a * NF4[*c as usize]) as f64).powi(2);
            }
        }
    }
    Ok((before, after))
}

/// Records the activation mode; `Static` adds each int8 layer's fixed activation
/// scale `absmax / 127` as the F32 `[1]` tensor `<prefix>/act_scale`.
pub(crate) fn set_activations(
    writer: &mut FileWriter,
    mode: Activations,
    absmax: Option<&BTreeMap<String, f32>>,
    quantized: &[String],
) -> Result<()> {
    writer.set_activations(match mode {
        Activations::None => ActivationMode::None,
        Activations::Dynamic => ActivationMode::Dynamic,
        Activations::Static => ActivationMode::Static,
    });
    if mode != Activations::Static {
        return Ok(());
    }
    let absmax =
        absmax.ok_or_else(|| Error::Invalid("static activations need calibration".into()))?;
    for name in quantized {
        let seen = *absmax.get(name).ok_or_else(|| {
            Error::Invalid(format!(
                "calibration saw no input of layer {name}; cannot fix its activation scale"
            ))
        })?;
        // A layer whose input was all zeros still needs a positive scale.
        let scale = seen.max(f32::MIN_POSITIVE * 127.0) / 127.0;
        let scale_name = act_scale_name(name)
            .ok_or_else(|| Error::Invalid(format!("{name} is not a `/weight` tensor")))?;
        writer.add_tensor(
            &scale_name,
            ElementType::F32,
            &[1],
            0,
            scale.to_le_bytes().to_vec(),
        )?;
    }
    Ok(())
}
