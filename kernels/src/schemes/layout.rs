//! Where each plane of a packed tensor lies (docs/FORMAT.md, "Packed layouts").
use super::Scheme;

/// Every plane starts at a multiple of this many bytes from the tensor start.
pub const ALIGN: usize = 256;

/// Longest k for which int8 × int8 dots accumulate in i32 without overflow:
/// `k · 127 · 127 < 2³¹`.
pub const MAX_INT8_DOT_K: usize = 131_072;

/// Longest group for low-bit weights with int8 activations: a group's dot
/// (`|d_g| ≤ group · 127 · 127`) and code sum stay below 2²⁴, exact in f32.
pub const MAX_INT8_GROUP: usize = 1024;

/// The planes of one packed tensor: `(offset, length)` in bytes from the tensor
/// start (an unused plane is `(total, 0)`), and the tensor's exact length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub planes: [(usize, usize); 3],
    pub total: usize,
}

impl Layout {
    /// Storage bits per logical weight.
    pub fn bits_per_weight(&self, n: usize, k: usize) -> f64 {
        self.total as f64 * 8.0 / (n as f64 * k as f64)
    }
}

/// The group size the quantizer uses unless told otherwise (0: int8, no groups).
pub fn default_group(scheme: Scheme) -> usize {
    match scheme {
        Scheme::Int8Row | Scheme::Int8Tensor => 0,
        _ => 64,
    }
}

/// Bytes per row of plane 0 (codes).
pub(crate) fn row_bytes(scheme: Scheme, k: usize) -> usize {
    match scheme {
        Scheme::Int8Row | Scheme::Int8Tensor => k,
        Scheme::Int3 => k.div_ceil(32) * 12,
        _ => k.div_ceil(32) * 16,
    }
}

/// The layout of an `n × k` tensor in `scheme` with `group` (0 for int8; a
/// positive multiple of 32 for the others). All arithmetic is checked, so hostile
/// sizes give an error, not an overflow.
pub fn layout(scheme: Scheme, n: usize, k: usize, group: usize) -> Result<Layout, String> {
    if n == 0 || k == 0 {
        return Err(format!("{scheme:?}: empty {n}×{k} matrix"));
    }
    if scheme.is_int8() {
        if group != 0 {
            return Err(format!("{scheme:?} takes group 0, not {group}"));
        }
    } else if group == 0 || !group.is_multiple_of(32) {
        return Err(format!(
            "{scheme:?}: group {group} is not a positive multiple of 32"
        ));
    }
    let overflow = || format!("{scheme:?}: {n}×{k} is too large");
    let groups = if scheme.is_grouped() {
        n.checked_mul(k.div_ceil(group)).ok_or_else(overflow)?
    } else {
        0
    };
    // row_bytes(k) ≤ k + 16 cannot overflow; times n can.
    let codes = row_bytes(scheme, k).checked_mul(n).ok_or_else(overflow)?;
    let (scales, zeros) = match scheme {
        Scheme::Int8Row => (n.checked_mul(4), Some(0)),
        Scheme::Int8Tensor => (Some(4), Some(0)),
        Scheme::Int4Sym => (groups.checked_mul(2), Some(0)),
        Scheme::Int4Asym | Scheme::Int3 => (groups.checked_mul(2), groups.checked_mul(2)),
        Scheme::Nf4 => (groups.checked_mul(4), Some(0)),
        Scheme::Nf4Dq => (Some(groups), groups.div_ceil(256).checked_mul(8)),
    };
    let lens = [
        codes,
        scales.ok_or_else(overflow)?,
        zeros.ok_or_else(overflow)?,
    ];
    let mut planes = [(0, 0); 3];
    let mut end = 0usize;
    for (plane, &len) in planes.iter_mut().zip(&lens) {
        if len == 0 {
            continue;
        }
        let start = end.checked_next_multiple_of(ALIGN).ok_or_else(overflow)?;
        end = start.checked_add(len).ok_or_else(overflow)?;
        *plane = (start, len);
    }
    // Unused planes sit at the end, empty.
    for (plane, &len) in planes.iter_mut().zip(&lens) {
        if len == 0 {
            *plane = (end, 0);
        }
    }
    Ok(Layout { planes, total: end })
}
