//! Bit packing ([`pack`]), its exact inverse ([`unpack`]) and the reference
//! decoders ([`dequantize`], [`dequantize_row`]). The layouts are in
//! docs/FORMAT.md; plane positions come from [`layout`].
use super::{layout, PackedWeights, Quantized, Scheme, NF4};

pub use crate::scalar::f16_bits_to_f32;

/// f32 to IEEE half bits, rounding to nearest, ties to even (as F16C's
/// `vcvtps2ph` with rounding mode 0). Overflow gives ±infinity; NaN stays NaN.
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        let nan = if man != 0 {
            0x200 | (man >> 13) as u16
        } else {
            0
        };
        return sign | 0x7c00 | nan;
    }
    // Round `m` right by `shift` bits, ties to even.
    let round = |m: u32, shift: u32| -> u32 {
        let q = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        q + u32::from(rem > half || (rem == half && q & 1 == 1))
    };
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Half subnormal (units of 2⁻²⁴) or zero: value = (1.m) · 2^(e − 15)
        // = (man | 2²³) · 2^(e − 14 − 24 + 24) units → shift by 14 − e.
        if e < -10 {
            return sign;
        }
        return sign | round(man | 0x80_0000, (14 - e) as u32) as u16;
    }
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    sign | round(((e as u32) << 23) | man, 13) as u16
}

fn le_u16(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[2 * i], b[2 * i + 1]])
}

fn le_f32(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// An f32 stored as f16, or an error when it is not finite or overflows f16.
fn to_f16(v: f32, what: &str, i: usize) -> Result<u16, String> {
    let h = f32_to_f16_bits(v);
    if !v.is_finite() || h & 0x7c00 == 0x7c00 {
        return Err(format!(
            "{what} {i} = {v} is not representable as a finite f16"
        ));
    }
    Ok(h)
}

/// Nf4Dq's second-level constants for one chunk of up to 256 group absmax values:
/// `(min, step)` with `step = (max − min) / 255` (0 when constant).
fn dq_constants(chunk: &[f32]) -> (f32, f32) {
    let min = chunk.iter().copied().fold(f32::INFINITY, f32::min);
    let max = chunk.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (min, ((max as f64 - min as f64) / 255.0) as f32)
}

/// The 8-bit code of `a` given the chunk's stored `(min, step)`.
fn dq_code(a: f32, min: f32, step: f32) -> u8 {
    if step == 0.0 {
        return 0;
    }
    ((a as f64 - min as f64) / step as f64)
        .round()
        .clamp(0.0, 255.0) as u8
}

/// Nf4Dq absmax from its code: `min + code · step`, evaluated in f32 (product
/// rounded, then the sum).
pub(crate) fn dq_absmax(code: u8, min: f32, step: f32) -> f32 {
    min + code as f32 * step
}

/// Checks `q`'s lengths, code range and scale values against its scheme.
fn validate(q: &Quantized) -> Result<usize, String> {
    let group = if q.scheme.is_int8() { 0 } else { q.group };
    layout(q.scheme, q.n, q.k, group)?;
    let s = q.scheme;
    let want_codes = q.n.checked_mul(q.k);
    if Some(q.codes.len()) != want_codes {
        return Err(format!(
            "{} codes for a {}×{} matrix",
            q.codes.len(),
            q.n,
            q.k
        ));
    }
    let want_scales = s.n_scales(q.n, q.k, group).unwrap_or(usize::MAX);
    if q.scales.len() != want_scales {
        return Err(format!(
            "{} scales, {s:?} {}×{} group {group} needs {want_scales}",
            q.scales.len(),
            q.n,
            q.k
        ));
    }
    let want_zeros = if s.has_zeros() { want_scales } else { 0 };
    if q.zeros.len() != want_zeros {
        return Err(format!(
            "{} zero-points, {s:?} needs {want_zeros}",
            q.zeros.len()
        ));
    }
    if s.is_int8() {
        if let Some(i) = q.codes.iter().position(|&c| c == 0x80) {
            return Err(format!("code {i} is −128; int8 codes are −127..=127"));
        }
    } else if let Some(i) = q.codes.iter().position(|&c| c > s.max_code()) {
        return Err(format!(
            "code {i} = {} is outside 0..={}",
            q.codes[i],
            s.max_code()
        ));
    }
    for (what, v) in [("scale", &q.scales), ("zero-point", &q.zeros)] {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!("{what} {i} = {} is not finite", v[i]));
        }
    }
    Ok(group)
}

/// Packs `q` into the bytes a `.sotto` file stores for it (exactly
/// `layout(..).total` long). Scales and zero-points are rounded to f16 where the
/// layout says f16; Nf4Dq double-quantizes the f32 absmax itself. Errors on
/// inconsistent lengths, out-of-range codes and non-finite or unrepresentable scales.
pub fn pack(q: &Quantized) -> Result<Vec<u8>, String> {
    let group = validate(q)?;
    let (s, n, k) = (q.scheme, q.n, q.k);
    let l = layout(s, n, k, group)?;
    let mut out = vec![0u8; l.total];
    let rb = super::layout::row_bytes(s, k);
    // Every scheme has planes 0 and 1; `rest` starts at plane 1.
    let base = l.planes[1].0;
    let (p0, rest) = out.split_at_mut(base);
    let codes = &mut p0[..l.planes[0].1];
    for (dst, src) in codes.chunks_exact_mut(rb).zip(q.codes.chunks_exact(k)) {
        match s {
            Scheme::Int8Row | Scheme::Int8Tensor => dst.copy_from_slice(src),
            Scheme::Int3 => {
                for (c, &code) in src.iter().enumerate() {
                    let (b, e) = (c / 32, c % 32);
                    let blk = &mut dst[12 * b..12 * b + 12];
                    blk[e % 8] |= (code & 3) << (2 * (e / 8));
                    blk[8 + e % 4] |= ((code >> 2) & 1) << (e / 4);
                }
            }
            _ => {
                for (c, &code) in src.iter().enumerate() {
                    let (b, e) = (c / 32, c % 32);
                    dst[16 * b + e % 16] |= code << (4 * (e / 16));
                }
            }
        }
    }
    let plane = |i: usize| (l.planes[i].0 - base, l.planes[i].1);
    let (o1, _) = plane(1);
    match s {
        Scheme::Int8Row | Scheme::Int8Tensor | Scheme::Nf4 => {
            for (i, v) in q.scales.iter().enumerate() {
                rest[o1 + 4 * i..o1 + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        Scheme::Int4Sym | Scheme::Int4Asym | Scheme::Int3 => {
            for (i, &v) in q.scales.iter().enumerate() {
                let h = to_f16(v, "scale", i)?;
                rest[o1 + 2 * i..o1 + 2 * i + 2].copy_from_slice(&h.to_le_bytes());
            }
            if s.has_zeros() {
                let (o2, _) = plane(2);
                for (i, &v) in q.zeros.iter().enumerate() {
                    let h = to_f16(v, "zero-point", i)?;
                    rest[o2 + 2 * i..o2 + 2 * i + 2].copy_from_slice(&h.to_le_bytes());
                }
            }
        }
        Scheme::Nf4Dq => {
            let (o2, _) = plane(2);
            for (ci, chunk) in q.scales.chunks(256).enumerate() {
                let (min, step) = dq_constants(chunk);
                if !step.is_finite() {
                    return Err(format!(
                        "absmax chunk {ci}: range too wide to double-quantize"
                    ));
                }
                let at = o2 + 8 * ci;
                rest[at..at + 4].copy_from_slice(&min.to_le_bytes());
                rest[at + 4..at + 8].copy_from_slice(&step.to_le_bytes());
                for (j, &a) in chunk.iter().enumerate() {
                    rest[o1 + 256 * ci + j] = dq_code(a, min, step);
                }
            }
        }
    }
    Ok(out)
}

/// Reads packed `bytes` back into logical order: codes exactly as packed, scales
/// and zero-points as stored (through f16, or Nf4Dq's 8-bit absmax).
pub fn unpack(
    scheme: Scheme,
    n: usize,
    k: usize,
    group: usize,
    bytes: &[u8],
) -> Result<Quantized, String> {
    let w = super::view(scheme, n, k, group, bytes, super::ActQuant::Float)?;
    let mut codes = vec![0u8; n * k];
    for (r, row) in codes.chunks_exact_mut(k).enumerate() {
        row_codes(&w, r, row);
    }
    let ng = w.groups_per_row();
    let count = scheme.n_scales(n, k, group).unwrap_or(0);
    let mut scales = Vec::with_capacity(count);
    let mut zeros = Vec::new();
    for i in 0..count {
        scales.push(scale_at(&w, i));
    }
    if scheme.has_zeros() {
        zeros = (0..count).map(|i| zero_at(&w, i)).collect();
    }
    debug_assert!(!scheme.is_grouped() || count == n * ng);
    Ok(Quantized {
        scheme,
        n,
        k,
        group,
        codes,
        scales,
        zeros,
    })
}

/// Row `r`'s codes, one per element (int8: the i8 bit pattern).
/// `out.len()` may exceed k up to k rounded to 32 (int8: padded with 0).
pub(crate) fn row_codes(w: &PackedWeights, r: usize, out: &mut [u8]) {
    let k = out.len();
    let rb = w.row_bytes();
    let src = &w.planes[0][r * rb..(r + 1) * rb];
    match w.scheme {
        Scheme::Int8Row | Scheme::Int8Tensor => {
            out[..w.k].copy_from_slice(src);
            out[w.k..].fill(0);
        }
        Scheme::Int3 => {
            for (c, o) in out[..k].iter_mut().enumerate() {
                let (b, e) = (c / 32, c % 32);
                let blk = &src[12 * b..12 * b + 12];
                let low = (blk[e % 8] >> (2 * (e / 8))) & 3;
                let high = (blk[8 + e % 4] >> (e / 4)) & 1;
                *o = low | (high << 2);
            }
        }
        _ => {
            for (c, o) in out[..k].iter_mut().enumerate() {
                let (b, e) = (c / 32, c % 32);
                *o = (src[16 * b + e % 16] >> (4 * (e / 16))) & 15;
            }
        }
    }
}

/// Scale number `i` (row-major over rows and groups) as stored, decoded to f32.
pub(crate) fn scale_at(w: &PackedWeights, i: usize) -> f32 {
    let p = w.planes[1];
    match w.scheme {
        Scheme::Int8Row | Scheme::Int8Tensor | Scheme::Nf4 => le_f32(p, i),
        Scheme::Int4Sym | Scheme::Int4Asym | Scheme::Int3 => f16_bits_to_f32(le_u16(p, i)),
        Scheme::Nf4Dq => {
            let c = i / 256;
            dq_absmax(
                p[i],
                le_f32(w.planes[2], 2 * c),
                le_f32(w.planes[2], 2 * c + 1),
            )
        }
    }
}

/// Zero-point number `i` (Int4Asym, Int3).
pub(crate) fn zero_at(w: &PackedWeights, i: usize) -> f32 {
    f16_bits_to_f32(le_u16(w.planes[2], i))
}

/// Row `r` of `w` as f32 (`out.len() ≥ k`): the reference decoder every kernel
/// must agree with. Values are computed in f32 exactly as the scheme table says:
/// `scale · code` (int8), `scale · (code − 8)`, `scale · (code − zero)`,
/// `absmax · NF4[code]`.
pub fn dequantize_row(w: &PackedWeights, r: usize, out: &mut [f32]) {
    assert!(
        out.len() >= w.k,
        "dequantize_row: out shorter than k = {}",
        w.k
    );
    dequantize_row_n(w, r, w.k, out)
}

/// [`dequantize_row`] over k rounded up to 32, as the SIMD decoders see a row:
/// the padding decodes the stored padding codes (int8: code 0).
pub(crate) fn dequantize_row_padded(w: &PackedWeights, r: usize, out: &mut [f32]) {
    dequantize_row_n(w, r, w.k.next_multiple_of(32), out)
}

fn dequantize_row_n(w: &PackedWeights, r: usize, k: usize, out: &mut [f32]) {
    assert!(r < w.n, "dequantize_row: row {r} of {}", w.n);
    let mut codes = vec![0u8; k];
    row_codes(w, r, &mut codes);
    let out = &mut out[..k];
    match w.scheme {
        Scheme::Int8Row | Scheme::Int8Tensor => {
            let s = scale_at(w, if w.scheme == Scheme::Int8Row { r } else { 0 });
            for (o, &c) in out.iter_mut().zip(&codes) {
                *o = s * (c as i8) as f32;
            }
        }
        s => {
            let g = w.group;
            let ng = w.groups_per_row();
            for (gi, (o, c)) in out.chunks_mut(g).zip(codes.chunks(g)).enumerate() {
                let scale = scale_at(w, r * ng + gi);
                match s {
                    Scheme::Int4Sym => {
                        for (o, &c) in o.iter_mut().zip(c) {
                            *o = scale * (c as f32 - 8.0);
                        }
                    }
                    Scheme::Int4Asym | Scheme::Int3 => {
                        let z = zero_at(w, r * ng + gi);
                        for (o, &c) in o.iter_mut().zip(c) {
                            *o = scale * (c as f32 - z);
                        }
                    }
                    _ => {
                        for (o, &c) in o.iter_mut().zip(c) {
                            *o = scale * NF4[c as usize];
                        }
                    }
                }
            }
        }
    }
}

/// The whole of `w` as f32, row-major `n × k` (`out.len() ≥ n·k`).
pub fn dequantize(w: &PackedWeights, out: &mut [f32]) {
    assert!(out.len() >= w.n * w.k, "dequantize: out shorter than n×k");
    for (r, row) in out.chunks_exact_mut(w.k).take(w.n).enumerate() {
        dequantize_row(w, r, row);
    }
}

/// Row `r`'s int8 weight scale (Int8Row: its own; Int8Tensor: the one scale).
pub(crate) fn int8_scale(w: &PackedWeights, r: usize) -> f32 {
    scale_at(w, if w.scheme == Scheme::Int8Row { r } else { 0 })
}
