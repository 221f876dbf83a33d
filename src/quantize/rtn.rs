//! Round-to-nearest quantizers for every scheme, and a plain f32 reconstruction
//! that follows the value formulas documented on [`Scheme`].
//!
//! Parameters are rounded to the precision the file stores them in (f16 for the
//! int4 / int3 schemes, f32 otherwise) *before* codes are chosen, so the codes are
//! nearest for the values the runtime will actually see.
use sotto_kernels::schemes::{Quantized, Scheme, NF4};

/// Largest code of the affine (asymmetric) schemes.
pub(crate) fn levels(scheme: Scheme) -> f32 {
    match scheme {
        Scheme::Int3 => 7.0,
        _ => 15.0,
    }
}

/// Whether the scheme stores its scales / zero-points as f16 (docs/FORMAT.md).
pub(crate) fn params_f16(scheme: Scheme) -> bool {
    matches!(scheme, Scheme::Int4Sym | Scheme::Int4Asym | Scheme::Int3)
}

/// `x` as the file will store it.
pub(crate) fn stored(x: f32, f16: bool) -> f32 {
    if f16 {
        half::f16::from_f32(x).to_f32()
    } else {
        x
    }
}

/// Whether the scheme groups along rows (int4 / int3 / nf4) rather than using per-row
/// or per-tensor scales (int8).
pub fn is_grouped(scheme: Scheme) -> bool {
    !matches!(scheme, Scheme::Int8Row | Scheme::Int8Tensor)
}

/// Whether the scheme has a zero-point per group.
pub fn is_affine(scheme: Scheme) -> bool {
    matches!(scheme, Scheme::Int4Asym | Scheme::Int3)
}

/// Index of the NF4 code nearest to `x` (`x` already divided by the block absmax).
/// An exact midpoint goes to the lower of its two codes.
pub fn nf4_code(x: f32) -> u8 {
    // The code is the number of midpoints strictly below x.
    let mut code = 0u8;
    for i in 0..15 {
        let mid = 0.5 * (NF4[i] + NF4[i + 1]);
        if x > mid {
            code += 1;
        } else {
            break;
        }
    }
    code
}

/// Symmetric int8 scale for a set of values with absolute maximum `absmax`.
pub(crate) fn int8_scale(absmax: f32) -> f32 {
    absmax / 127.0
}

/// Code for `w` under a symmetric int8 `scale` (as its u8 bit pattern).
pub(crate) fn int8_code(w: f32, scale: f32) -> u8 {
    if scale == 0.0 {
        return 0;
    }
    ((w / scale).round().clamp(-127.0, 127.0) as i8) as u8
}

/// RTN parameters of one affine group: `(scale, zero)`, both already rounded to
/// their stored precision. The range always contains 0, so the zero-point lies in
/// `0..=levels` and f16 stores it finely; a constant group is represented exactly
/// (`scale = |c|`, `zero = ∓1`, every code 0), an all-zero group as scale 0.
pub(crate) fn affine_params(g: &[f32], scheme: Scheme) -> (f32, f32) {
    let f16 = params_f16(scheme);
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &w in g {
        lo = lo.min(w);
        hi = hi.max(w);
    }
    if lo == hi {
        let c = lo;
        let s = stored(c.abs(), f16);
        if c == 0.0 || s == 0.0 {
            return (0.0, 0.0);
        }
        return (s, if c > 0.0 { -1.0 } else { 1.0 });
    }
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let s = stored((hi - lo) / levels(scheme), f16);
    if s == 0.0 {
        return (0.0, 0.0);
    }
    (s, stored(-lo / s, f16))
}

/// Nearest code of `w` under affine parameters.
#[inline]
pub(crate) fn affine_code(w: f32, s: f32, z: f32, maxq: f32) -> u8 {
    if s == 0.0 {
        return 0;
    }
    // Clamped first, so adding ½ and truncating rounds to nearest (ties up, as
    // `round` does for non-negative values) without a libm call.
    ((w / s + z).clamp(0.0, maxq) + 0.5) as u8
}

/// Quantizes one group of an affine scheme with the given parameters; returns the
/// squared error.
pub(crate) fn affine_group(g: &[f32], s: f32, z: f32, maxq: f32, codes: &mut [u8]) -> f64 {
    let mut sse = 0f64;
    for (c, &w) in codes.iter_mut().zip(g) {
        *c = affine_code(w, s, z, maxq);
        let r = s * (*c as f32 - z);
        sse += ((w - r) as f64).powi(2);
    }
    sse
}

/// Symmetric int4 (`scale · (code − 8)`, codes 1..=15 used): scale = absmax / 7.
pub(crate) fn int4sym_group(g: &[f32], codes: &mut [u8]) -> f32 {
    let absmax = g.iter().fold(0f32, |m, w| m.max(w.abs()));
    let s = stored(absmax / 7.0, true);
    for (c, &w) in codes.iter_mut().zip(g) {
        *c = if s == 0.0 {
            8
        } else {
            ((w / s).round().clamp(-8.0, 7.0) + 8.0) as u8
        };
    }
    s
}

/// NF4 block: returns the absmax (f32, stored exactly).
pub(crate) fn nf4_group(g: &[f32], codes: &mut [u8]) -> f32 {
    let absmax = g.iter().fold(0f32, |m, w| m.max(w.abs()));
    for (c, &w) in codes.iter_mut().zip(g) {
        *c = if absmax == 0.0 {
            7 // NF4[7] = 0
        } else {
            nf4_code(w / absmax)
        };
    }
    absmax
}

/// The f32 values a [`Quantized`] stands for (the formulas on [`Scheme`]); the
/// absmax of `Nf4Dq` is taken as given (before double quantization).
pub fn reconstruct(q: &Quantized) -> Vec<f32> {
    let (n, k) = (q.n, q.k);
    let mut out = vec![0f32; n * k];
    let gpr = if is_grouped(q.scheme) {
        k.div_ceil(q.group.max(1))
    } else {
        1
    };
    for r in 0..n {
        for c in 0..k {
            let code = q.codes[r * k + c];
            let gi = r * gpr + c / q.group.max(1);
            out[r * k + c] = match q.scheme {
                Scheme::Int8Row => q.scales[r] * code as i8 as f32,
                Scheme::Int8Tensor => q.scales[0] * code as i8 as f32,
                Scheme::Int4Sym => q.scales[gi] * (code as f32 - 8.0),
                Scheme::Int4Asym | Scheme::Int3 => q.scales[gi] * (code as f32 - q.zeros[gi]),
                Scheme::Nf4 | Scheme::Nf4Dq => q.scales[gi] * NF4[code as usize & 15],
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nf4_code_picks_nearest_and_splits_midpoints() {
        for (i, &v) in NF4.iter().enumerate() {
            assert_eq!(nf4_code(v) as usize, i);
        }
        for i in 0..15 {
            let mid = 0.5 * (NF4[i] + NF4[i + 1]);
            assert_eq!(nf4_code(mid.next_down()) as usize, i, "just below mid {i}");
            assert_eq!(
                nf4_code(mid.next_up()) as usize,
                i + 1,
                "just above mid {i}"
            );
            assert_eq!(nf4_code(mid) as usize, i, "at mid {i}");
        }
        assert_eq!(nf4_code(-1.0), 0);
        assert_eq!(nf4_code(1.0), 15);
        assert_eq!(nf4_code(0.0), 7);
    }

    #[test]
    fn constant_and_zero_affine_groups_are_exact() {
        // Exact when the constant is an f16 value (weights come from f16 files),
        // within f16 rounding otherwise.
        for &c in &[0.0f32, 0.25, -0.125, 3.0e-3, -7.5, 1.0e-6, -65504.0] {
            for scheme in [Scheme::Int4Asym, Scheme::Int3] {
                let g = vec![c; 17];
                let (s, z) = affine_params(&g, scheme);
                let mut codes = vec![0u8; 17];
                let sse = affine_group(&g, s, z, levels(scheme), &mut codes);
                let rounding = (c.abs() - stored(c.abs(), true)) as f64;
                let tol = 17.0 * rounding * rounding * 1.001;
                assert!(sse <= tol, "constant {c}: scale {s} zero {z} sse {sse}");
            }
        }
    }
}
