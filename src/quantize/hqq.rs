//! Half-Quadratic Quantization (Badri & Shaji, 2023) for the affine schemes.
//!
//! For one group `w` with codes `q = clamp(round(w/s + z), 0, L)` and values
//! `s·(q − z)`, HQQ looks for the zero-point (and here also the scale) that minimise
//! an lp norm (p < 1) of the error, which tolerates the few large errors outliers
//! cause. Half-quadratic splitting adds an auxiliary error variable `e` and alternates:
//!
//! 1. `e ← shrink_p(w − s·(q − z), β)`: the lp proximal step, a generalised soft
//!    threshold `sign(x)·max(|x| − |x|^(p−1)/β, 0)`;
//! 2. `(s, z) ← argmin ‖s·(q − z) − (w − e)‖²`: closed form (the mean for `z`, a
//!    one-variable regression when the scale is refined too);
//! 3. `q ← clamp(round(w/s + z))`, `β ← κ·β`.
//!
//! No calibration data is needed. Every iterate is scored by its squared error with
//! the parameters rounded as the file stores them; the best one wins, RTN included,
//! so HQQ is never worse than RTN in RMSE. The loop stops once the error stops falling.
use super::rtn::{affine_code, affine_group, affine_params, levels, params_f16, stored};
use sotto_kernels::schemes::Scheme;

/// HQQ's settings; [`HqqConfig::default`] is what `sotto quantize --method hqq` uses.
#[derive(Clone, Copy, Debug)]
pub struct HqqConfig {
    pub iters: usize,
    /// The lp norm's exponent, `0 < p < 1`.
    pub p: f32,
    /// Initial penalty β and its growth factor κ per iteration.
    pub beta: f32,
    pub kappa: f32,
    /// Also refit the scale (least squares) after each shrinkage step.
    pub refine_scale: bool,
}

impl Default for HqqConfig {
    fn default() -> HqqConfig {
        HqqConfig {
            iters: 20,
            p: 0.7,
            beta: 10.0,
            kappa: 1.01,
            refine_scale: true,
        }
    }
}

/// The lp (p < 1) proximal operator: shrinks `x` towards 0.
#[inline]
pub fn shrink(x: f32, beta: f32, p: f32) -> f32 {
    shrink_with(x, beta, p, shrink_threshold(beta, p))
}

/// `|x|` at or below which [`shrink`] gives 0: `|x| − |x|^(p−1)/β ≤ 0 ⇔ |x| ≤ β^(−1/p)`.
#[inline]
pub(crate) fn shrink_threshold(beta: f32, p: f32) -> f32 {
    beta.powf(-1.0 / p)
}

/// [`shrink`] with its threshold computed once per β (skips the power for the
/// small errors, nearly all of them).
#[inline]
fn shrink_with(x: f32, beta: f32, p: f32, threshold: f32) -> f32 {
    let a = x.abs();
    if a <= threshold {
        return 0.0;
    }
    let y = a - a.powf(p - 1.0) / beta;
    if y <= 0.0 {
        0.0
    } else {
        y.copysign(x)
    }
}

/// Result of one group: stored scale and zero, the codes written to `codes`, and the
/// squared errors of RTN and of the chosen parameters.
pub(crate) struct GroupResult {
    pub scale: f32,
    pub zero: f32,
    pub rtn_sse: f64,
    pub sse: f64,
}

/// HQQ on one group of an affine scheme (`Int4Asym` / `Int3`); `scratch` is reused
/// between calls.
pub(crate) fn hqq_group(
    g: &[f32],
    scheme: Scheme,
    cfg: &HqqConfig,
    codes: &mut [u8],
    scratch: &mut Vec<f32>,
) -> GroupResult {
    let f16 = params_f16(scheme);
    let maxq = levels(scheme);
    let (s0, z0) = affine_params(g, scheme);
    let rtn_sse = affine_group(g, s0, z0, maxq, codes);
    let mut best = GroupResult {
        scale: s0,
        zero: z0,
        rtn_sse,
        sse: rtn_sse,
    };
    if s0 == 0.0 || rtn_sse == 0.0 || g.len() < 2 {
        return best;
    }
    let n = g.len();
    scratch.clear();
    scratch.resize(2 * n, 0.0);
    let (q, t) = scratch.split_at_mut(n);
    let mut trial = vec![0u8; n];
    let (mut s, mut z) = (s0, z0);
    let mut beta = cfg.beta;
    let mut prev = rtn_sse;
    for _ in 0..cfg.iters {
        // Codes for the current (unrounded) parameters, and the shrunk target.
        let threshold = shrink_threshold(beta, cfg.p);
        for i in 0..n {
            let qi = affine_code(g[i], s, z, maxq) as f32;
            let e = shrink_with(g[i] - s * (qi - z), beta, cfg.p, threshold);
            q[i] = qi;
            t[i] = g[i] - e;
        }
        let inv_n = 1.0 / n as f64;
        let qm = q.iter().map(|&v| v as f64).sum::<f64>() * inv_n;
        let tm = t.iter().map(|&v| v as f64).sum::<f64>() * inv_n;
        if cfg.refine_scale {
            let (mut sqt, mut sqq) = (0f64, 0f64);
            for i in 0..n {
                let dq = q[i] as f64 - qm;
                sqt += dq * (t[i] as f64 - tm);
                sqq += dq * dq;
            }
            if sqq > 0.0 && sqt > 0.0 {
                s = (sqt / sqq) as f32;
            }
        }
        z = (qm - tm / s as f64) as f32;
        beta *= cfg.kappa;
        if !(s.is_finite() && z.is_finite()) || s <= 0.0 {
            break;
        }
        let (sr, zr) = (stored(s, f16), stored(z, f16));
        if sr == 0.0 || !zr.is_finite() {
            break;
        }
        let sse = affine_group(g, sr, zr, maxq, &mut trial);
        if sse < best.sse {
            best.scale = sr;
            best.zero = zr;
            best.sse = sse;
            codes.copy_from_slice(&trial);
        }
        if sse >= prev {
            break;
        }
        prev = sse;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_is_soft_threshold_like() {
        assert_eq!(shrink(0.0, 10.0, 0.7), 0.0);
        assert_eq!(shrink(0.01, 10.0, 0.7), 0.0);
        let y = shrink(2.0, 10.0, 0.7);
        assert!(y > 0.0 && y < 2.0);
        assert_eq!(shrink(-2.0, 10.0, 0.7), -y);
    }

    #[test]
    fn hqq_group_never_worse_than_rtn() {
        let g: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 / 64.0 - 0.5) * if i == 5 { 8.0 } else { 1.0 })
            .collect();
        let mut codes = vec![0u8; 64];
        let mut scratch = Vec::new();
        let r = hqq_group(
            &g,
            Scheme::Int3,
            &HqqConfig::default(),
            &mut codes,
            &mut scratch,
        );
        assert!(r.sse <= r.rtn_sse);
        let recon: f64 = g
            .iter()
            .zip(&codes)
            .map(|(&w, &c)| ((w - r.scale * (c as f32 - r.zero)) as f64).powi(2))
            .sum();
        assert!((recon - r.sse).abs() <= 1e-9 * (1.0 + r.sse));
    }
}
