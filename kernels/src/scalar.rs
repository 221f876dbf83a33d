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

/// For every head and query: scores against the visible keys, softmax with
/// the maximum subtracted, weighted sum of the values.
pub fn attention(pool: &Pool, q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, out: &mut [f32]) {
    let d = s.head_dim;
    let scale = 1.0 / (d as f32).sqrt();
    let out = SharedOut(out.as_mut_ptr());
    pool.run(s.n_head * s.n_q, &|task| {
        let (h, i) = (task / s.n_q, task % s.n_q);
        let qi = &q[i * s.q_stride + h * d..][..d];
        let visible = s.keys_for_query(i);
        let mut scores = vec![0.0f32; visible];
        for (j, score) in scores.iter_mut().enumerate() {
            let kj = &k[j * s.kv_stride + h * d..][..d];
            let dot: f32 = qi.iter().zip(kj).map(|(a, b)| a * b).sum();
            *score = dot * scale;
        }
        let max = scores.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0f32;
        for score in &mut scores {
            *score = (*score - max).exp();
            sum += *score;
        }
        let mut acc = vec![0.0f32; d];
        for (j, &p) in scores.iter().enumerate() {
            let vj = &v[j * s.kv_stride + h * d..][..d];
            for (a, &b) in acc.iter_mut().zip(vj) {
                *a += p * b;
            }
        }
        for (c, a) in acc.iter().enumerate() {
            // Safety: (query i, head h) owns these d floats of out.
            unsafe { *out.ptr().add(i * s.out_stride + h * d + c) = a / sum };
        }
    });
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
