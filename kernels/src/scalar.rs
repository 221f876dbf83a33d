//! The reference kernels: plain loops, written to be checked by reading. Every
//! SIMD kernel is tested against these. They are also the fallback on CPUs
//! without a SIMD path, so `linear` and `attention` still use the pool.
//!
//! # Canonical order
//!
//! `linear`, `layer_norm`, `gelu` and `f16_to_f32` fix one order of f32
//! operations that every kernel set implements exactly, so their results are
//! bit-identical on every CPU (tested in `tests/exact.rs`). That keeps
//! transcripts independent of the CPU: with int8 activations a last-bit
//! difference can move an activation across a rounding boundary of its code.
//! FMA means one rounding (`f32::mul_add` here):
//! - sums along a row use [`LANES`] = 16 partial sums, element `p` into lane
//!   `p % 16`, the row zero-padded to a multiple of 16, then [`reduce`]'s fixed
//!   pairwise tree. AVX-512 holds the lanes in one zmm, AVX2 in two ymm,
//!   NEON in four q registers;
//! - `linear`, m ≥ `CHAIN_MIN_M`: each output starts at its bias
//!   (or 0) and accumulates `x·w` over k in order with FMA (the micro-kernels'
//!   register tiles span all of k);
//! - `linear`, m < `CHAIN_MIN_M`: lanes of FMAs, reduced, plus the bias (or 0);
//! - `gelu`: [`gelu_canonical`]'s f32 sequence (the erfc fit and exp below).
//!
//! The constants of this order live in `canonical.rs`, apart from the
//! drivers' speed thresholds (`tuning.rs`).

pub use crate::canonical::LANES;
use crate::canonical::{ATTENTION_DOT_MAX_Q, CHAIN_MIN_M, PACKED_DOT_PAD};
use crate::sync_ptr::SharedMut;
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

/// The canonical reduction of 16 partial sums: lane `i` with `i + 8`, then
/// `i + 4`, `i + 2`, `i + 1`.
#[inline]
pub fn reduce(l: &[f32; LANES]) -> f32 {
    let s8: [f32; 8] = std::array::from_fn(|i| l[i] + l[i + 8]);
    let s4: [f32; 4] = std::array::from_fn(|i| s8[i] + s8[i + 4]);
    let s2: [f32; 2] = std::array::from_fn(|i| s4[i] + s4[i + 2]);
    s2[0] + s2[1]
}

/// Defines `$name` running `$body` compiled with the FMA instruction when the
/// CPU has it: without it `f32::mul_add` is a call to the C library's `fmaf`
/// (same result, several times slower). `$body` must call `#[inline(always)]`
/// code only.
macro_rules! with_fma {
    ($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:expr) => {
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "fma")]
                unsafe fn fast($($arg: $ty),*) -> $ret {
                    $body
                }
                if std::arch::is_x86_feature_detected!("fma") {
                    // Safety: the CPU has FMA.
                    return unsafe { fast($($arg),*) };
                }
            }
            $body
        }
    };
}

/// `Σ a[p]·b[p]` in the canonical lane order (FMA per element, zero padding).
#[inline(always)]
fn dot_lanes_body(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a16, b16) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (at, bt) = (a16.remainder(), b16.remainder());
    for (ca, cb) in a16.zip(b16) {
        for l in 0..LANES {
            acc[l] = ca[l].mul_add(cb[l], acc[l]);
        }
    }
    if !at.is_empty() {
        // Padding lanes add fma(0, 0, acc): acc + 0, which turns −0 into +0.
        let (mut ta, mut tb) = ([0.0f32; LANES], [0.0f32; LANES]);
        ta[..at.len()].copy_from_slice(at);
        tb[..bt.len()].copy_from_slice(bt);
        for l in 0..LANES {
            acc[l] = ta[l].mul_add(tb[l], acc[l]);
        }
    }
    reduce(&acc)
}
with_fma!(dot_lanes(a: &[f32], b: &[f32]) -> f32 = dot_lanes_body(a, b));

/// `init + Σ a[p]·b[p]` as one FMA chain in order.
#[inline(always)]
fn chain_body(a: &[f32], b: &[f32], init: f32) -> f32 {
    a.iter()
        .zip(b)
        .fold(init, |acc, (&x, &w)| x.mul_add(w, acc))
}
with_fma!(chain(a: &[f32], b: &[f32], init: f32) -> f32 = chain_body(a, b, init));

/// `out[i][j] = bias[j] + Σ_p x[i][p] · w[j][p]` in the canonical order: for
/// m ≥ `CHAIN_MIN_M` an FMA chain over p starting at the bias, else
/// [`LANES`] partial sums reduced, then the bias added.
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
    let out = SharedMut::new(out);
    let by_chain = m >= CHAIN_MIN_M;
    pool.run(n.div_ceil(COLUMNS_PER_TASK), &|task| {
        let mut row = Vec::with_capacity(k);
        for j in task * COLUMNS_PER_TASK..((task + 1) * COLUMNS_PER_TASK).min(n) {
            weight_row(w, j, k, &mut row);
            let b = bias.map_or(0.0, |b| b[j]);
            for i in 0..m {
                let xi = &x[i * k..(i + 1) * k];
                let value = if by_chain {
                    chain(xi, &row, b)
                } else {
                    dot_lanes(xi, &row) + b
                };
                // Safety: column j belongs to this task only; i·n + j < m·n.
                unsafe { *out.get().add(i * n + j) = value };
            }
        }
    });
}

/// `linear` for packed weights. Int8 activations: the reference (exact
/// integer dots, so any order gives the same bits). Weight-only, in the order
/// of the SIMD drivers in `packed/`: m ≥ `CHAIN_MIN_M` as `linear` above on
/// the decoded rows; m < `CHAIN_MIN_M` lanes over k rounded up to `PACKED_DOT_PAD` (x zero,
/// the weights' padding decoded as stored), reduced, then (int8: times the row
/// scale, the codes summed unscaled) plus the bias.
#[allow(clippy::too_many_arguments)]
pub fn linear_packed(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: crate::schemes::PackedWeights,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    use crate::schemes::{dequantize_row_padded, ActQuant};
    // int8 activations (every scheme: int8 × int8 or low-bit × int8) take
    // the integer reference; only weight-only layers go on below.
    if w.act != ActQuant::Float || m >= CHAIN_MIN_M {
        return match w.act {
            ActQuant::Float => linear(pool, x, m, k, Weights::Packed(w), n, bias, out),
            _ => crate::schemes::linear_reference_pooled(pool, x, m, k, w, n, bias, out),
        };
    }
    assert!(x.len() >= m * k && out.len() >= m * n && w.n == n && w.k == k);
    let kp = k.next_multiple_of(PACKED_DOT_PAD);
    let mut xp = vec![0.0f32; m * kp];
    for (dst, src) in xp.chunks_exact_mut(kp).zip(x.chunks_exact(k)) {
        dst[..k].copy_from_slice(src);
    }
    let int8 = w.scheme.is_int8();
    let out = SharedMut::new(out);
    pool.run(n.div_ceil(COLUMNS_PER_TASK), &|task| {
        let mut row = vec![0.0f32; kp];
        for j in task * COLUMNS_PER_TASK..((task + 1) * COLUMNS_PER_TASK).min(n) {
            dequantize_row_padded(&w, j, &mut row);
            let mut scale = 1.0;
            if int8 {
                // The int8 tiles multiply by the codes and scale the sum.
                let codes = &w.planes[0][j * k..(j + 1) * k];
                row.fill(0.0);
                for (r, &c) in row.iter_mut().zip(codes) {
                    *r = c as i8 as f32;
                }
                let at = if w.scheme == crate::schemes::Scheme::Int8Row {
                    j
                } else {
                    0
                };
                let b = &w.planes[1][4 * at..4 * at + 4];
                scale = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            let b = bias.map_or(0.0, |b| b[j]);
            for i in 0..m {
                let mut v = dot_lanes(&xp[i * kp..(i + 1) * kp], &row);
                if int8 {
                    v *= scale;
                }
                // Safety: column j belongs to this task only; i·n + j < m·n.
                unsafe { *out.get().add(i * n + j) = v + b };
            }
        }
    });
}

/// Per row: `(x − mean) / sqrt(var + 1e-5) · gamma + beta` in the canonical
/// f32 order: mean = lane sum · (1/d); var = lane sum of FMA squares of the
/// centred values · (1/d); `out = fma((x − mean) · inv_std, gamma, beta)`.
pub fn layer_norm(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
    layer_norm_dispatch(x, d, gamma, beta, out)
}
with_fma!(layer_norm_dispatch(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) -> () = layer_norm_body(x, d, gamma, beta, out));

#[inline(always)]
fn layer_norm_body(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
    let inv_d = 1.0 / d as f32;
    for (row, out_row) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mut acc = [0.0f32; LANES];
        for chunk in row.chunks(LANES) {
            for (l, a) in acc.iter_mut().enumerate() {
                *a += chunk.get(l).copied().unwrap_or(0.0);
            }
        }
        let mean = reduce(&acc) * inv_d;
        let mut acc = [0.0f32; LANES];
        for chunk in row.chunks(LANES) {
            for (l, a) in acc.iter_mut().enumerate() {
                let c = chunk.get(l).map_or(0.0, |&v| v - mean);
                *a = c.mul_add(c, *a);
            }
        }
        let inv_std = 1.0 / (reduce(&acc) * inv_d + 1e-5).sqrt();
        for p in 0..d {
            out_row[p] = ((row[p] - mean) * inv_std).mul_add(gamma[p], beta[p]);
        }
    }
}

/// Layer norm with the statistics in f64: the accuracy reference the
/// canonical f32 kernels are tested against.
pub fn layer_norm_f64(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], out: &mut [f32]) {
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

/// GELU(x) = x · Φ(x), Φ(x) = erfc(−x/√2)/2, evaluated in f64 so that both
/// tails keep their relative accuracy: the accuracy reference for
/// [`gelu_canonical`].
pub fn gelu_one(x: f32) -> f32 {
    let x = x as f64;
    let z = x.abs() * std::f64::consts::FRAC_1_SQRT_2;
    let half_erfc = 0.5 * erfc_nonneg(z);
    let phi = if x >= 0.0 { 1.0 - half_erfc } else { half_erfc };
    (x * phi) as f32
}

/// e^x as every kernel set computes it (see `simd::EXP_POLY`): the input
/// clamped to [EXP_MIN, EXP_MAX], x = n·ln2 + r (Cody–Waite), e^r by the
/// Cephes polynomial, 2ⁿ from exponent bits.
#[inline(always)]
pub fn exp_canonical(x: f32) -> f32 {
    use crate::simd::{EXP_MAX, EXP_MIN, EXP_POLY, LN2_HI, LN2_LO};
    // x86 `max` returns its second operand for NaN: NaN becomes EXP_MIN.
    let x = if x > EXP_MIN { x } else { EXP_MIN };
    let x = if x < EXP_MAX { x } else { EXP_MAX };
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    let p = EXP_POLY[1..]
        .iter()
        .fold(EXP_POLY[0], |p, &c| p.mul_add(r, c));
    let e = p.mul_add(r * r, r) + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// GELU in f32 as every kernel set computes it: `erfc_nonneg`'s fit with the
/// exponent −z² + Q(t), z² = x²/2 taken from an exact product (FMA gives its
/// low part; rounding z first would cost a relative error of 2·u·z²).
#[inline(always)]
pub fn gelu_canonical(x: f32) -> f32 {
    use crate::simd::ERFC_POLY;
    let abs = x.abs();
    let z = abs * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / z.mul_add(0.5, 1.0);
    let q = ERFC_POLY[1..]
        .iter()
        .fold(ERFC_POLY[0], |q, &c| q.mul_add(t, c));
    // x86 `min` returns its second operand for NaN (the result is NaN anyway).
    let xs = if abs < 16.0 { abs } else { 16.0 };
    let hi = xs * xs;
    let lo = xs.mul_add(xs, -hi);
    let arg = (-0.5f32).mul_add(lo, (-0.5f32).mul_add(hi, q));
    let half_erfc = (0.5 * t) * exp_canonical(arg);
    let phi = if x < 0.0 { half_erfc } else { 1.0 - half_erfc };
    x * phi
}

pub fn gelu(x: &mut [f32]) {
    gelu_dispatch(x)
}
with_fma!(gelu_dispatch(x: &mut [f32]) -> () = gelu_body(x));

#[inline(always)]
fn gelu_body(x: &mut [f32]) {
    for v in x {
        *v = gelu_canonical(*v);
    }
}

/// e^x exactly as the SIMD kernels compute it (`simd::EXP_POLY`): the same
/// clamp, reduction, FMAs and order, so the results are bit-identical.
#[inline(always)]
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
#[inline(always)]
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

/// [`fold16`] in f64.
pub(crate) fn fold16_f64(mut a: [f64; 16]) -> f64 {
    let mut half = 8;
    while half > 0 {
        for i in 0..half {
            a[i] += a[i + half];
        }
        half /= 2;
    }
    a[0]
}

/// The maximum of a row and `Σ e^(x[p] − max)`, what a log-softmax over a
/// row of logits needs (`log_sum_exp = max + ln(sum)`): each term the
/// canonical exp flushed to 0 below `EXP_MIN` (and for −∞ or NaN
/// elements), converted to f64 and added in sixteen f64 lane sums (lane
/// `p mod 16`, in p order), then folded by halving ([`fold16_f64`]). NaN
/// elements never become the maximum; an empty or all −∞ row gives
/// `(−∞, 0)`. A zero maximum's sign is unspecified (either gives the same
/// sum).
pub fn max_exp_sum(x: &[f32]) -> (f32, f64) {
    max_exp_sum_dispatch(x)
}
with_fma!(max_exp_sum_dispatch(x: &[f32]) -> (f32, f64) = max_exp_sum_body(x));

#[inline(always)]
fn max_exp_sum_body(x: &[f32]) -> (f32, f64) {
    let max = x
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    if max == f32::NEG_INFINITY {
        return (max, 0.0);
    }
    let mut acc = [0.0f64; 16];
    for chunk in x.chunks(16) {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += softmax_weight(v - max) as f64;
        }
    }
    (max, fold16_f64(acc))
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
/// bit for bit (see `attention.rs`): with fewer than `ATTENTION_DOT_MAX_Q` queries
/// (the dot path) scores and the sum use [`dot16`] / [`sum16`]; otherwise
/// scores are one FMA chain over the head dimension and the sum is taken in
/// key order. `P·V` is one FMA chain per output in key order.
pub fn attention(pool: &Pool, q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, out: &mut [f32]) {
    let d = s.head_dim;
    let scale = 1.0 / (d as f32).sqrt();
    let dot_path = s.n_q < ATTENTION_DOT_MAX_Q;
    let out = SharedMut::new(out);
    pool.run(s.n_head * s.n_q, &|task| {
        let (h, i) = (task / s.n_q, task % s.n_q);
        let qi = &q[i * s.q_stride + h * d..][..d];
        let visible = s.keys_for_query(i);
        let mut scores = vec![0.0f32; visible];
        for (j, score) in scores.iter_mut().enumerate() {
            let kj = &k[j * s.kv_stride + h * s.kv_head_stride..][..d];
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
            let vj = &v[j * s.kv_stride + h * s.kv_head_stride..][..d];
            for (a, &b) in acc.iter_mut().zip(vj) {
                *a = p.mul_add(b, *a);
            }
        }
        let inv = 1.0 / sum;
        for (c, a) in acc.iter().enumerate() {
            // Safety: (query i, head h) owns these d floats of out.
            unsafe { *out.get().add(i * s.out_stride + h * d + c) = a * inv };
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
