//! GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training
//! Quantization for Generative Pre-trained Transformers"): columns of a linear
//! weight are quantized one after another, and the error of each is spread over the
//! columns not yet quantized through the inverse Hessian `H = 2·XᵀX` of the layer's
//! calibration inputs, so that the layer's *output* error on those inputs is small
//! rather than the weight error.
//!
//! As in the paper: dead inputs (zero diagonal) get `H_ii = 1`; the diagonal is
//! damped by a fraction of its mean; the upper Cholesky factor of `H⁻¹` drives the
//! updates; blocks of 128 columns are updated lazily. With act-order the columns go
//! in order of decreasing `H_ii`; the group parameters are then computed from the
//! original weights before any update ("static groups"), so a group's scale still
//! covers the columns it indexes in stored order and the file layout is the
//! scheme's usual one. nf4-dq always uses static groups: its block absmax values are
//! double-quantized together, so they are fixed (and quantized) before GPTQ runs.
use super::{rtn, store, Quantized, Scheme, NF4};

/// GPTQ settings.
#[derive(Clone, Debug, PartialEq)]
pub struct GptqConfig {
    /// Added to the Hessian's diagonal, as a fraction of its mean (paper: 0.01).
    pub damp: f64,
    /// Columns per lazy-batch block.
    pub block: usize,
    /// Quantize columns in order of decreasing Hessian diagonal (with static groups).
    pub act_order: bool,
}

impl Default for GptqConfig {
    fn default() -> GptqConfig {
        GptqConfig {
            damp: 0.01,
            block: 128,
            act_order: true,
        }
    }
}

/// A quantized tensor and the output error `Σ_rows Δw·H·Δwᵀ` (on the Hessian given)
/// of GPTQ and of round-to-nearest with the same group parameters' rule.
#[derive(Clone, Debug)]
pub struct GptqResult {
    pub q: Quantized,
    pub output_error: f64,
    pub rtn_output_error: f64,
    /// The damping that made `H` positive definite, as a fraction of the mean diagonal
    /// (raised from the configured one when Cholesky failed).
    pub damp_used: f64,
}

/// Per-group parameters: scale and (affine schemes) zero-point.
#[derive(Clone, Copy, Debug)]
struct Params {
    s: f32,
    z: f32,
}

/// The code and the value it stands for, for `w` under `p`.
fn quantize_value(scheme: Scheme, w: f32, p: Params) -> (u8, f32) {
    match scheme {
        Scheme::Int4Asym | Scheme::Int3 => {
            let c = rtn::affine_code(w, p.s, p.z, rtn::levels(scheme));
            (c, p.s * (c as f32 - p.z))
        }
        Scheme::Int4Sym => {
            if p.s == 0.0 {
                return (8, 0.0);
            }
            let c = ((w / p.s).round().clamp(-8.0, 7.0) + 8.0) as u8;
            (c, p.s * (c as f32 - 8.0))
        }
        Scheme::Nf4 | Scheme::Nf4Dq => {
            if p.s <= 0.0 {
                return (7, 0.0);
            }
            let c = rtn::nf4_code(w / p.s);
            (c, p.s * NF4[c as usize])
        }
        Scheme::Int8Row | Scheme::Int8Tensor => unreachable!("GPTQ runs on grouped schemes"),
    }
}

/// Round-to-nearest parameters of one group of values.
fn group_params(scheme: Scheme, g: &[f32], scratch: &mut Vec<u8>) -> Params {
    scratch.resize(g.len(), 0);
    match scheme {
        Scheme::Int4Asym | Scheme::Int3 => {
            let (s, z) = rtn::affine_params(g, scheme);
            Params { s, z }
        }
        Scheme::Int4Sym => Params {
            s: rtn::int4sym_group(g, scratch),
            z: 0.0,
        },
        _ => Params {
            s: rtn::nf4_group(g, scratch),
            z: 0.0,
        },
    }
}

/// In-place Cholesky `a = L·Lᵀ` (lower triangle written, upper left as is); false
/// when `a` is not positive definite.
fn cholesky(a: &mut [f64], k: usize) -> bool {
    for j in 0..k {
        let rj = &a[j * k..j * k + j];
        let d = a[j * k + j] - dot(rj, rj);
        if d.is_nan() || d <= 0.0 {
            return false;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let (ri, rj) = (i * k, j * k);
            let s = a[ri + j] - dot(&a[ri..ri + j], &a[rj..rj + j]);
            a[ri + j] = s / d;
        }
    }
    true
}

/// Upper Cholesky factor `U` of `H⁻¹` (`H⁻¹ = Uᵀ·U`), row-major, from the damped `h`:
/// factor `H = L·Lᵀ`, invert `L`, form `H⁻¹ = L⁻ᵀL⁻¹`, factor that.
fn inverse_upper_cholesky(h: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = h.to_vec();
    if !cholesky(&mut l, k) {
        return None;
    }
    // M = L⁻¹ (lower triangular) by forward substitution, a row at a time:
    // M_i = (e_i − Σ_{p<i} L_ip · M_p) / L_ii.
    let mut m = vec![0f64; k * k];
    for i in 0..k {
        let (done, rest) = m.split_at_mut(i * k);
        let row = &mut rest[..k];
        row[i] = 1.0;
        for p in 0..i {
            let lip = l[i * k + p];
            if lip != 0.0 {
                for (x, &y) in row[..=p].iter_mut().zip(&done[p * k..p * k + p + 1]) {
                    *x -= lip * y;
                }
            }
        }
        let inv = 1.0 / l[i * k + i];
        for x in &mut row[..=i] {
            *x *= inv;
        }
    }
    // H⁻¹ = Mᵀ·M: (H⁻¹)_ij = Σ_{p ≥ max(i,j)} M_pi M_pj.
    let mut hinv = vec![0f64; k * k];
    for p in 0..k {
        let row = &m[p * k..p * k + p + 1];
        for i in 0..=p {
            let mpi = row[i];
            if mpi == 0.0 {
                continue;
            }
            let out = &mut hinv[i * k..i * k + i + 1];
            for (o, &mpj) in out.iter_mut().zip(&row[..=i]) {
                *o += mpi * mpj;
            }
        }
    }
    // hinv holds the lower triangle (j ≤ i); mirror, then factor.
    for i in 0..k {
        for j in 0..i {
            hinv[j * k + i] = hinv[i * k + j];
        }
    }
    if !cholesky(&mut hinv, k) {
        return None;
    }
    // U = Lᵀ of that factor.
    let mut u = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..=i {
            u[j * k + i] = hinv[i * k + j];
        }
    }
    Some(u)
}

/// Dot product with four running sums (so that it vectorizes).
fn dot<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> f64 {
    let mut acc = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| x.into() * y.into())
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l].into() * y[l].into();
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `Σ_rows (w − v)·H·(w − v)ᵀ` for row-major `n × k` weights and `k × k` `h`.
pub fn output_error(w: &[f32], v: &[f32], h: &[f32], k: usize) -> f64 {
    let mut total = 0f64;
    let mut d = vec![0f32; k];
    for (wr, vr) in w.chunks(k).zip(v.chunks(k)) {
        for ((x, &a), &b) in d.iter_mut().zip(wr).zip(vr) {
            *x = a - b;
        }
        for i in 0..k {
            if d[i] == 0.0 {
                continue;
            }
            total += d[i] as f64 * dot(&h[i * k..(i + 1) * k], &d);
        }
    }
    total
}

/// GPTQ of the row-major `n × k` matrix `w` (output rows × input columns) for a
/// grouped scheme, with `h` the `k × k` Hessian (any positive multiple of `XᵀX`).
/// `group` 0 takes the scheme's default. The codes and parameters are laid out
/// exactly as round-to-nearest lays them out.
#[allow(clippy::too_many_arguments)]
pub fn gptq_tensor(
    w: &[f32],
    n: usize,
    k: usize,
    scheme: Scheme,
    group: usize,
    h: &[f32],
    cfg: &GptqConfig,
    threads: usize,
) -> Result<GptqResult, String> {
    let cfg_threads = |n: usize| threads.clamp(1, n);
    if n == 0 || k == 0 || n.checked_mul(k) != Some(w.len()) {
        return Err(format!(
            "{} values do not make a {n} × {k} matrix with no zero dimension",
            w.len()
        ));
    }
    if k.checked_mul(k) != Some(h.len()) {
        return Err(format!("the Hessian has {} values, not {k} × {k}", h.len()));
    }
    if !rtn::is_grouped(scheme) {
        return Err(format!(
            "GPTQ quantizes the grouped schemes (int4, nf4, int3), not {}",
            super::scheme_name(scheme)
        ));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(format!("weight {} at index {i} is not finite", w[i]));
    }
    if let Some(i) = h.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "Hessian entry {} at index {i} is not finite (calibration activations overflowed?)",
            h[i]
        ));
    }
    let group = match group {
        0 => super::default_group(scheme),
        g if g.is_multiple_of(32) => g,
        g => return Err(format!("group {g} is not a multiple of 32")),
    };
    let block = cfg.block.max(1);
    let gpr = k.div_ceil(group);
    let mut scratch = Vec::new();

    // Column order.
    let diag: Vec<f64> = (0..k).map(|i| h[i * k + i] as f64).collect();
    let mut perm: Vec<usize> = (0..k).collect();
    if cfg.act_order {
        perm.sort_by(|&a, &b| diag[b].total_cmp(&diag[a]).then(a.cmp(&b)));
    }
    let static_groups = cfg.act_order || scheme == Scheme::Nf4Dq;

    // Static group parameters, from the original weights (stored precision).
    let mut params: Vec<Params> = Vec::new();
    if static_groups {
        params.reserve(n * gpr);
        for row in w.chunks(k) {
            for g in row.chunks(group) {
                params.push(group_params(scheme, g, &mut scratch));
            }
        }
        if scheme == Scheme::Nf4Dq {
            // The file keeps each absmax as an 8-bit code: use what it will hold.
            let probe = Quantized {
                scheme,
                n,
                k,
                group,
                codes: vec![7; n * k],
                scales: params.iter().map(|p| p.s).collect(),
                zeros: Vec::new(),
            };
            let bytes = store::pack(&probe)?;
            let stored = sotto_kernels::schemes::unpack(scheme, n, k, group, &bytes)?.scales;
            for (p, s) in params.iter_mut().zip(stored) {
                p.s = s;
            }
        }
    }

    // Permuted, damped Hessian in f64; dead inputs get H_ii = 1 and no neighbours.
    let mut hp = vec![0f64; k * k];
    for (i, &pi) in perm.iter().enumerate() {
        for (j, &pj) in perm.iter().enumerate() {
            hp[i * k + j] = h[pi * k + pj] as f64;
        }
    }
    for i in 0..k {
        if hp[i * k + i] <= 0.0 {
            for j in 0..k {
                hp[i * k + j] = 0.0;
                hp[j * k + i] = 0.0;
            }
            hp[i * k + i] = 1.0;
        }
    }
    let mean_diag = (0..k).map(|i| hp[i * k + i]).sum::<f64>() / k as f64;
    let mut damp = cfg.damp.max(0.0);
    let mut u = None;
    for _ in 0..8 {
        let mut hd = hp.clone();
        for i in 0..k {
            hd[i * k + i] += damp * mean_diag;
        }
        u = inverse_upper_cholesky(&hd, k);
        if u.is_some() {
            break;
        }
        // Not positive definite (singular H with no damping, rounding): damp more.
        damp = if damp == 0.0 { 1e-4 } else { damp * 10.0 };
    }
    let u = u.ok_or("the Hessian stays singular after damping")?;

    // Weights in permuted column order, f64 for the updates.
    let mut wp = vec![0f64; n * k];
    for r in 0..n {
        for (i, &pi) in perm.iter().enumerate() {
            wp[r * k + i] = w[r * k + pi] as f64;
        }
    }
    // Rows are independent given U: split them over threads.
    let threads = cfg_threads(n);
    let rows_per = n.div_ceil(threads);
    let job = RowJob {
        k,
        group,
        gpr,
        block,
        scheme,
        perm: &perm,
        u: &u,
        params: static_groups.then_some(&params[..]),
    };
    let parts: Vec<RowsOut> = std::thread::scope(|sc| {
        let handles: Vec<_> = wp
            .chunks_mut(rows_per * k)
            .enumerate()
            .map(|(t, rows)| {
                let job = &job;
                sc.spawn(move || job.run(rows, t * rows_per))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("GPTQ thread panicked"))
            .collect()
    });
    let mut codes = Vec::with_capacity(n * k);
    let mut values = Vec::with_capacity(n * k);
    let mut dyn_params = Vec::new();
    for p in parts {
        codes.extend_from_slice(&p.codes);
        values.extend_from_slice(&p.values);
        dyn_params.extend_from_slice(&p.params);
    }

    let params = if static_groups { params } else { dyn_params };
    let q = Quantized {
        scheme,
        n,
        k,
        group,
        codes,
        scales: params.iter().map(|p| p.s).collect(),
        zeros: if rtn::is_affine(scheme) {
            params.iter().map(|p| p.z).collect()
        } else {
            Vec::new()
        },
    };
    // Round to nearest with the static rule, for the comparison.
    let mut rtn_values = vec![0f32; n * k];
    for (r, (row, out)) in w.chunks(k).zip(rtn_values.chunks_mut(k)).enumerate() {
        for (gi, (g, o)) in row.chunks(group).zip(out.chunks_mut(group)).enumerate() {
            let p = if static_groups {
                q_params(&q, r * gpr + gi)
            } else {
                group_params(scheme, g, &mut scratch)
            };
            for (x, &wv) in o.iter_mut().zip(g) {
                *x = quantize_value(scheme, wv, p).1;
            }
        }
    }
    Ok(GptqResult {
        output_error: output_error(w, &values, h, k),
        rtn_output_error: output_error(w, &rtn_values, h, k),
        q,
        damp_used: damp,
    })
}

fn q_params(q: &Quantized, i: usize) -> Params {
    Params {
        s: q.scales[i],
        z: q.zeros.get(i).copied().unwrap_or(0.0),
    }
}

/// What the column sweep needs, shared by the threads.
struct RowJob<'a> {
    k: usize,
    group: usize,
    gpr: usize,
    block: usize,
    scheme: Scheme,
    perm: &'a [usize],
    u: &'a [f64],
    /// Static group parameters of every row; `None`: computed as groups start.
    params: Option<&'a [Params]>,
}

struct RowsOut {
    codes: Vec<u8>,
    values: Vec<f32>,
    /// Dynamic group parameters of these rows (empty with static groups).
    params: Vec<Params>,
}

impl RowJob<'_> {
    /// Quantizes the rows `wp` (permuted columns, updated in place), the first of
    /// which is row `row0` of the tensor.
    fn run(&self, wp: &mut [f64], row0: usize) -> RowsOut {
        let (k, group, gpr, block) = (self.k, self.group, self.gpr, self.block);
        let n = wp.len() / k;
        let mut out = RowsOut {
            codes: vec![0u8; n * k],
            values: vec![0f32; n * k],
            params: if self.params.is_some() {
                Vec::new()
            } else {
                vec![Params { s: 0.0, z: 0.0 }; n * gpr]
            },
        };
        let mut err = vec![0f64; block];
        let mut col = vec![0f32; group];
        let mut scratch = Vec::new();
        for r in 0..n {
            let row = &mut wp[r * k..(r + 1) * k];
            let mut i1 = 0;
            while i1 < k {
                let i2 = (i1 + block).min(k);
                for i in i1..i2 {
                    let orig = self.perm[i];
                    let gi = orig / group;
                    let p = match self.params {
                        Some(ps) => ps[(row0 + r) * gpr + gi],
                        None => {
                            if i % group == 0 {
                                // Without act-order, column i starts a group: its
                                // parameters come from the weights as the updates
                                // so far have left them.
                                let end = (i + group).min(k);
                                let g = &mut col[..end - i];
                                for (c, &v) in g.iter_mut().zip(&row[i..end]) {
                                    *c = v as f32;
                                }
                                out.params[r * gpr + gi] =
                                    group_params(self.scheme, g, &mut scratch);
                            }
                            out.params[r * gpr + gi]
                        }
                    };
                    let urow = &self.u[i * k..(i + 1) * k];
                    let wv = row[i];
                    let (c, v) = quantize_value(self.scheme, wv as f32, p);
                    out.codes[r * k + orig] = c;
                    out.values[r * k + orig] = v;
                    let e = (wv - v as f64) / urow[i];
                    err[i - i1] = e;
                    if e != 0.0 {
                        for (x, &uv) in row[i + 1..i2].iter_mut().zip(&urow[i + 1..i2]) {
                            *x -= e * uv;
                        }
                    }
                }
                // Lazy batch: the block's errors reach the columns after it at once.
                for (j, &e) in err[..i2 - i1].iter().enumerate() {
                    if e == 0.0 {
                        continue;
                    }
                    let urow = &self.u[(i1 + j) * k + i2..(i1 + j + 1) * k];
                    for (x, &uv) in row[i2..].iter_mut().zip(urow) {
                        *x -= e * uv;
                    }
                }
                i1 = i2;
            }
        }
        out
    }
}
