//! The glue between the quantizer and the packed layouts / format support owned by
//! `sotto_kernels::schemes` and `crate::format`: packing, reading a packed tensor
//! back, and recording the activation mode in the file.
use super::{rtn, Activations};
use crate::format::FileWriter;
use crate::{Error, Result};
use sotto_kernels::schemes::Quantized;
use std::collections::BTreeMap;

/// The bytes the file stores for `q`.
pub(crate) fn pack(q: &Quantized) -> std::result::Result<Vec<u8>, String> {
    // TODO(schemes): sotto_kernels::schemes::pack
    let _ = q;
    Err("bit packing is not available in this build yet".into())
}

/// RMSE between `w` and what `data` (the packed tensor) decodes to; `None` when the
/// packed layout cannot be read back here.
pub(crate) fn stored_rmse(w: &[f32], q: &Quantized, data: &[u8]) -> Option<f32> {
    let _ = data;
    let r = rtn::reconstruct(q);
    let sse: f64 = w
        .iter()
        .zip(&r)
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum();
    Some((sse / w.len().max(1) as f64).sqrt() as f32)
}

/// Records the activation mode (and static scales, `absmax / 127` per linear layer).
pub(crate) fn set_activations(
    writer: &mut FileWriter,
    mode: Activations,
    absmax: Option<&BTreeMap<String, f32>>,
) -> Result<()> {
    let _ = (writer, absmax);
    match mode {
        Activations::None => Ok(()),
        _ => Err(Error::Invalid(
            "activation modes need format support that is not in this build yet".into(),
        )),
    }
}
