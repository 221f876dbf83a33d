//! The reference kernels: plain loops, written to be checked by reading. Every
//! SIMD kernel is tested against these. They are also the fallback on CPUs
//! without a SIMD path, so `linear` and `attention` still use the pool.

use crate::{AttentionShape, Pool, Weights};

/// One IEEE half (raw bits) to f32, exactly. NaNs stay NaN with their payload
/// and come out quiet, as the x86 F16C conversion does.
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = (h as u32 & 0x8000) << 16;
    let exponent = (h >> 10) & 0x1f;
    let mantissa = (h & 0x3ff) as u32;
    let magnitude = match exponent {
        // Zero or subnormal: mantissa × 2⁻²⁴, exact in f32.
        0 => (mantissa as f32 * (1.0 / 16_777_216.0)).to_bits(),
        // Infinity (mantissa 0) or NaN (set the quiet bit).
        31 if mantissa == 0 => 0x7f80_0000,
        31 => 0x7fc0_0000 | (mantissa << 13),
        // Normal: rebias the exponent from 15 to 127.
        _ => ((exponent as u32 + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(sign | magnitude)
}

pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16_bits_to_f32(s);
    }
}

/// Row `j` of `w` as f32.
fn weight_row(w: Weights, j: usize, k: usize, buf: &mut Vec<f32>) {
    buf.clear();
    match w {
        Weights::F32(w) => buf.extend_from_slice(&w[j * k..(j + 1) * k]),
        Weights::F16(w) => buf.extend(w[j * k..(j + 1) * k].iter().map(|&h| f16_bits_to_f32(h))),
        Weights::Packed(p) => {
            buf.resize(k, 0.0);
            crate::schemes::dequantize_row(&p, j, buf);
        }
    }
}

/// Columns handled by one pool task.
const COLUMNS_PER_TASK: usize = 64;

/// `out[i][j] = bias[j] + Σ_p x[i][p] · w[j][p]`, summed in order in f32.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: Weights,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let out = SharedOut(out.as_mut_ptr());
    pool.run(n.div_ceil(COLUMNS_PER_TASK), &|task| {
        let mut row = Vec::with_capacity(k);
        for j in task * COLUMNS_PER_TASK..((task + 1) * COLUMNS_PER_TASK).min(n) {
            weight_row(w, j, k, &mut row);
            for i in 0..m {
                let mut sum = 0.0f32;
                for p in 0..k {
                    sum += x[i * k + p] * row[p];
                }
                let value = sum + bias.map_or(0.0, |b| b[j]);
                // Safety: column j belongs to this task only; i·n + j < m·n.
                unsafe { *out.ptr().add(i * n + j) = value };
            }
        }
    });
}

/// Per row: `(x − mean) / sqrt(var + 1e-5) · gamma + beta`, statistics in f64.
pub fn layer_norm(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
    for (row, out_row) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv_std = 1.0 / (var + 1e-5).sqrt();
        for p in 0..d {
            out_row[p] =
                ((row[p] as f64 - mean) * inv_std * gamma[p] as f64 + beta[p] as f64) as f32;
        }
    }
}

/// erfc(z) for z ≥ 0 with fractional error below 1.2e-7 everywhere: the
/// Chebyshev fit of Numerical Recipes (2nd ed., §6.2, `erfcc`). Relative
/// accuracy for large z matters: GELU(x) for x ≪ 0 is x·erfc(|x|/√2)/2.
pub fn erfc_nonneg(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t * (-z * z + poly).exp()
}

/// GELU(x) = x · Φ(x), Φ(x) = erfc(−x/√2)/2, evaluated so that both tails keep
/// their relative accuracy.
pub fn gelu_one(x: f32) -> f32 {
    let x = x as f64;
    let z = x.abs() * std::f64::consts::FRAC_1_SQRT_2;
    let half_erfc = 0.5 * erfc_nonneg(z);
    let phi = if x >= 0.0 { 1.0 - half_erfc } else { half_erfc };
    (x * phi) as f32
}

pub fn gelu(x: &mut [f32]) {
    for v in x {
        *v = gelu_one(*v);
    }
}

/// e^x exactly as the SIMD kernels compute it (`simd::EXP_POLY`): the same
/// clamp, reduction, FMAs and order, so the results are bit-identical.
pub fn exp_poly(x: f32) -> f32 {
    use crate::simd::{EXP_MAX, EXP_MIN, EXP_POLY, LN2_HI, LN2_LO};
    // Not `clamp`: a NaN becomes EXP_MIN, as `max(x, EXP_MIN)` does in SIMD.
    #[allow(clippy::manual_clamp)]
    let x = x.max(EXP_MIN).min(EXP_MAX);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    let mut p = EXP_POLY[0];
    for &c in &EXP_POLY[1..] {
        p = p.mul_add(r, c);
    }
    let e = p.mul_add(r * r, r) + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// A softmax weight: `exp_poly`, flushed to 0 below `EXP_MIN` (and for NaN).
fn softmax_weight(x: f32) -> f32 {
    if x >= crate::simd::EXP_MIN {
        exp_poly(x)
    } else {
        0.0
    }
}

/// Folds sixteen lane sums by halving: lanes `i` and `i + 8`, then `i + 4`,
/// `i + 2`, `i + 1` — the order a SIMD horizontal sum takes at any width.
fn fold16(mut a: [f32; 16]) -> f32 {
    let mut half = 8;
    while half > 0 {
        for i in 0..half {
            a[i] += a[i + half];
        }
        half /= 2;
    }
    a[0]
}

/// `Σ x[p]·y[p]` for `p < d` in the dot path's order: sixteen FMA chains
/// (lane `p mod 16`, padded with 0·0 to whole groups of 16), then [`fold16`].
pub fn dot16(x: impl Fn(usize) -> f32, y: impl Fn(usize) -> f32, d: usize) -> f32 {
    let mut acc = [0.0f32; 16];
    for p0 in (0..d).step_by(16) {
        for (l, a) in acc.iter_mut().enumerate() {
            let p = p0 + l;
            let (xp, yp) = if p < d { (x(p), y(p)) } else { (0.0, 0.0) };
            *a = xp.mul_add(yp, *a);
        }
    }
    fold16(acc)
}

/// `Σ x` in the dot path's order: sixteen lane sums, then [`fold16`].
pub fn sum16(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    for chunk in x.chunks(16) {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    fold16(acc)
}

/// For every head and query: scores against the visible keys, softmax with
/// the maximum subtracted, weighted sum of the values, times 1/sum.
///
/// This is also the canonical operation order every SIMD kernel follows
/// bit for bit (see `attention.rs`): with fewer than `DOT_MAX_Q` queries
/// (the dot path) scores and the sum use [`dot16`] / [`sum16`]; otherwise
/// scores are one FMA chain over the head dimension and the sum is taken in
/// key order. `P·V` is one FMA chain per output in key order.
pub fn attention(pool: &Pool, q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, out: &mut [f32]) {
    let d = s.head_dim;
    let scale = 1.0 / (d as f32).sqrt();
    let dot_path = s.n_q < crate::attention::DOT_MAX_Q;
    let out = SharedOut(out.as_mut_ptr());
    pool.run(s.n_head * s.n_q, &|task| {
        let (h, i) = (task / s.n_q, task % s.n_q);
        let qi = &q[i * s.q_stride + h * d..][..d];
        let visible = s.keys_for_query(i);
        let mut scores = vec![0.0f32; visible];
        for (j, score) in scores.iter_mut().enumerate() {
            let kj = &k[j * s.kv_stride + h * d..][..d];
            *score = if dot_path {
                dot16(|p| qi[p], |p| kj[p], d)
            } else {
                kj.iter()
                    .zip(qi)
                    .fold(0.0, |acc, (a, b)| a.mul_add(*b, acc))
            };
        }
        let max = scores.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for score in &mut scores {
            *score = softmax_weight((*score - max) * scale);
        }
        let sum = if dot_path {
            sum16(&scores)
        } else {
            scores.iter().fold(0.0, |a, &b| a + b)
        };
        let mut acc = vec![0.0f32; d];
        for (j, &p) in scores.iter().enumerate() {
            let vj = &v[j * s.kv_stride + h * d..][..d];
            for (a, &b) in acc.iter_mut().zip(vj) {
                *a = p.mul_add(b, *a);
            }
        }
        let inv = 1.0 / sum;
        for (c, a) in acc.iter().enumerate() {
            // Safety: (query i, head h) owns these d floats of out.
            unsafe { *out.ptr().add(i * s.out_stride + h * d + c) = a * inv };
        }
    });
}

/// [`attention`] with K and V as f16 bits: converted exactly, then the same.
pub fn attention_f16(
    pool: &Pool,
    q: &[f32],
    k: &[u16],
    v: &[u16],
    s: AttentionShape,
    out: &mut [f32],
) {
    let widen = |x: &[u16]| x.iter().map(|&h| f16_bits_to_f32(h)).collect::<Vec<_>>();
    attention(pool, q, &widen(k), &widen(v), s, out)
}

/// A raw output pointer shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub *mut f32);
// Safety: every user writes disjoint elements from different tasks.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}
