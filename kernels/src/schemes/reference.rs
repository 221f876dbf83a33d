//! The scalar reference for packed linear layers: simple enough to check by
//! reading, and the fallback on CPUs without a SIMD path (so it still blocks
//! the work into pool tasks). Every SIMD and WGSL packed kernel is tested
//! against it.
//!
//! - `ActQuant::Float` (every scheme): `out[i][j] = bias[j] + x[i] · w[j]`, with
//!   `w[j]` from [`dequantize_row`] and an f32 dot (8 interleaved partial sums,
//!   added pairwise at the end).
//! - int8 with `Dynamic` / `Static`: x row `i` becomes i8 codes `q[i]` and a scale
//!   `s_x[i]` ([`quantize_activations`]); then `out[i][j] = bias[j] + (s_x[i] ·
//!   s_w[j]) · Σ_p q[i][p] · code[j][p]`, the sum exact in i32 (k ≤ `MAX_INT8_DOT_K`).
//! - 4- / 3-bit with `Dynamic` / `Static` ("low-bit × int8"): x row `i` quantized
//!   as above; weight row `j` has integer codes `u[p]` ([`int_code`]: the code
//!   itself for int4 / int3, [`NF4_I8`]`[code]` for nf4) and per group `g` a
//!   scale `s_g` and zero `z_g` ([`lowbit_params`]). Per group, exactly in i32,
//!   `d_g = Σ_{p∈g} q[i][p] · u[p]` and `sx_g = Σ_{p∈g} q[i][p]`; then in f32,
//!   each operation rounded, no FMA, groups in order from `acc = 0`:
//!   `acc = acc + s_g · (d_g as f32 − z_g · sx_g as f32)`, and finally
//!   `out[i][j] = s_x[i] · acc + bias[j]` (bias 0 when absent). Every SIMD
//!   path performs this same sequence per output, so results are bit-identical.
use super::{dequantize_row, ActQuant, PackedWeights, Scheme};
use crate::Pool;

/// Weight rows (output columns) per pool task.
const COLUMNS_PER_TASK: usize = 32;
/// x rows per task when quantizing activations.
const ROWS_PER_TASK: usize = 16;

use crate::sync_ptr::SharedMut;

/// Quantizes `x[m × k]` row by row to int8 for `act` (`Dynamic` or `Static`):
/// - Dynamic: `a = max|x[i]|`; `a = 0` gives codes 0 and `s_x = 0`; otherwise
///   `s_x = a / 127` and `q = round(x · (127 / a))`;
/// - Static(s): `s_x = s`, `q = round(x · (1 / s))`, clamped to `−127..=127`;
///
/// all in f32, the reciprocal computed once per row, rounding half to even (the
/// rounding of `cvtps2dq`). `Float` leaves the outputs untouched.
pub fn quantize_activations(
    x: &[f32],
    k: usize,
    act: ActQuant,
    codes: &mut [i8],
    scales: &mut [f32],
) {
    for ((row, q), s) in x
        .chunks_exact(k)
        .zip(codes.chunks_exact_mut(k))
        .zip(scales.iter_mut())
    {
        let (s_x, inv) = match act {
            ActQuant::Float => return,
            ActQuant::Static(s) => (s, 1.0 / s),
            ActQuant::Dynamic => {
                let a = row.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
                if a == 0.0 {
                    (0.0, 0.0)
                } else {
                    (a / 127.0, 127.0 / a)
                }
            }
        };
        *s = s_x;
        for (q, &v) in q.iter_mut().zip(row) {
            *q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
    }
}

/// The activations one call multiplies with: f32 as given, or int8 codes + row scales.
#[derive(Clone, Copy)]
enum Acts<'a> {
    Float(&'a [f32]),
    Int8 { codes: &'a [i8], scales: &'a [f32] },
}

/// `Σ a[p] · b[p]` in f32: 8 interleaved partial sums, then the tail, added pairwise.
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, at) = a.split_at(a.len() / 8 * 8);
    let (b8, bt) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in at.iter().zip(bt).enumerate() {
        acc[l] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `Σ a[p] · b[p]` exactly in i32.
fn dot_i8(a: &[i8], b: &[u8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x as i32 * (y as i8) as i32)
        .sum()
}

/// NF4 as int8 for the low-bit × int8 path: `round(NF4[i] · 127)`. An
/// approximation of the float table (error ≤ 0.5/127 of the group absmax per
/// weight, as ggml's IQ4_NL table), so such a layer differs slightly from its
/// weight-only evaluation; every kernel uses this table.
pub const NF4_I8: [i8; 16] = [
    -127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127,
];

/// The integer weight code the low-bit × int8 dot uses for stored code `c`.
pub fn int_code(scheme: Scheme, c: u8) -> i32 {
    match scheme {
        Scheme::Nf4 | Scheme::Nf4Dq => NF4_I8[c as usize & 15] as i32,
        _ => c as i32,
    }
}

/// Group `g` of row `r`: `(s_g, z_g)` for the low-bit × int8 path. int4-sym:
/// `(scale, 8)`; int4-asym, int3: `(scale, zero)`; nf4, nf4-dq:
/// `(absmax / 127, 0)` (the division in f32), since `NF4_I8 ≈ 127 · NF4`.
pub fn lowbit_params(w: &PackedWeights, r: usize, g: usize) -> (f32, f32) {
    let i = r * w.groups_per_row() + g;
    let s = super::pack::scale_at(w, i);
    match w.scheme {
        Scheme::Int4Sym => (s, 8.0),
        Scheme::Int4Asym | Scheme::Int3 => (s, super::pack::zero_at(w, i)),
        _ => (s / 127.0, 0.0),
    }
}

/// Low-bit × int8 outputs of weight row `j` for every x row (module docs).
fn lowbit_column(
    codes: &[i8],
    scales: &[f32],
    m: usize,
    w: &PackedWeights,
    j: usize,
    b: f32,
    put: &dyn Fn(usize, f32),
) {
    let (k, group) = (w.k, w.group);
    let mut wc = vec![0u8; k];
    super::pack::row_codes(w, j, &mut wc);
    let u: Vec<i32> = wc.iter().map(|&c| int_code(w.scheme, c)).collect();
    let params: Vec<(f32, f32)> = (0..w.groups_per_row())
        .map(|g| lowbit_params(w, j, g))
        .collect();
    for i in 0..m {
        let q = &codes[i * k..(i + 1) * k];
        let mut acc = 0.0f32;
        for ((qg, ug), &(s, z)) in q.chunks(group).zip(u.chunks(group)).zip(&params) {
            let d: i32 = qg.iter().zip(ug).map(|(&x, &c)| x as i32 * c).sum();
            let sx: i32 = qg.iter().map(|&x| x as i32).sum();
            acc += s * (d as f32 - z * sx as f32);
        }
        put(i, scales[i] * acc + b);
    }
}

/// Output columns `cols` of every x row, written through `out` (`m × n`, row-major).
fn columns(
    acts: Acts,
    m: usize,
    w: &PackedWeights,
    cols: std::ops::Range<usize>,
    bias: Option<&[f32]>,
    out: &SharedMut<f32>,
) {
    let (n, k) = (w.n, w.k);
    let mut row = vec![0.0f32; k];
    for j in cols {
        let b = bias.map_or(0.0, |b| b[j]);
        let put = |i: usize, v: f32| {
            // Safety: column j belongs to this call only; i·n + j < m·n.
            unsafe { *out.get().add(i * n + j) = v }
        };
        match acts {
            Acts::Float(x) => {
                dequantize_row(w, j, &mut row);
                for i in 0..m {
                    put(i, dot_f32(&x[i * k..(i + 1) * k], &row) + b);
                }
            }
            Acts::Int8 { codes, scales } if w.scheme.is_grouped() => {
                lowbit_column(codes, scales, m, w, j, b, &put)
            }
            Acts::Int8 { codes, scales } => {
                let wc = &w.planes[0][j * k..(j + 1) * k];
                let s_w = super::pack::int8_scale(w, j);
                for i in 0..m {
                    let dot = dot_i8(&codes[i * k..(i + 1) * k], wc);
                    put(i, (scales[i] * s_w) * dot as f32 + b);
                }
            }
        }
    }
}

/// Prepares the activations (int8 codes for Dynamic / Static) and runs `body` with them.
fn with_acts(pool: Option<&Pool>, x: &[f32], m: usize, w: &PackedWeights, body: &dyn Fn(Acts)) {
    let k = w.k;
    let act = w.act;
    if act == ActQuant::Float {
        return body(Acts::Float(&x[..m * k]));
    }
    let mut codes = vec![0i8; m * k];
    let mut scales = vec![0.0f32; m];
    match pool {
        None => quantize_activations(&x[..m * k], k, act, &mut codes, &mut scales),
        Some(pool) => {
            let (cp, sp) = (
                SharedMut::new(&mut codes[..]),
                SharedMut::new(&mut scales[..]),
            );
            pool.run(m.div_ceil(ROWS_PER_TASK), &|t| {
                let (r0, r1) = (t * ROWS_PER_TASK, ((t + 1) * ROWS_PER_TASK).min(m));
                // Safety: rows r0..r1 belong to this task only and lie inside
                // `codes` (m·k) and `scales` (m), which outlive the job.
                let (c, s) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(cp.get().add(r0 * k), (r1 - r0) * k),
                        std::slice::from_raw_parts_mut(sp.get().add(r0), r1 - r0),
                    )
                };
                quantize_activations(&x[r0 * k..r1 * k], k, act, c, s);
            });
        }
    }
    body(Acts::Int8 {
        codes: &codes,
        scales: &scales,
    })
}

fn check(x: &[f32], m: usize, k: usize, w: &PackedWeights, bias: Option<&[f32]>, out: &[f32]) {
    assert_eq!(
        k, w.k,
        "linear: k = {k} but the packed weight has k = {}",
        w.k
    );
    assert!(
        x.len() >= m * k,
        "linear: x has {} floats, need {m}×{k}",
        x.len()
    );
    assert!(
        out.len() >= m * w.n,
        "linear: out has {} floats, need {m}×{}",
        out.len(),
        w.n
    );
    if let Some(b) = bias {
        assert!(
            b.len() >= w.n,
            "linear: bias has {} floats, need {}",
            b.len(),
            w.n
        );
    }
}

/// `out[m × n] = x[m × k] · wᵀ + bias` on one thread: the truth every packed
/// kernel is tested against (see the module docs for the exact arithmetic).
pub fn linear_reference(
    x: &[f32],
    m: usize,
    k: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    check(x, m, k, w, bias, out);
    let o = SharedMut::new(out);
    with_acts(None, x, m, w, &|acts| columns(acts, m, w, 0..w.n, bias, &o));
}

/// [`linear_reference`] with the output columns split over the pool's threads
/// (same arithmetic, bit-identical results). The scalar table's `linear_packed`
/// uses it for int8 activations (`scalar::linear_packed`).
#[allow(clippy::too_many_arguments)]
pub fn linear_reference_pooled(
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    w: PackedWeights,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert_eq!(
        n, w.n,
        "linear: n = {n} but the packed weight has n = {}",
        w.n
    );
    check(x, m, k, &w, bias, out);
    let o = SharedMut::new(out);
    with_acts(Some(pool), x, m, &w, &|acts| {
        pool.run(n.div_ceil(COLUMNS_PER_TASK), &|t| {
            let cols = t * COLUMNS_PER_TASK..((t + 1) * COLUMNS_PER_TASK).min(n);
            columns(acts, m, &w, cols, bias, &o);
        })
    });
}
