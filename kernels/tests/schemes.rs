//! Packed layouts: pack/unpack round trips, the bit positions of docs/FORMAT.md
//! checked against hand-computed bytes, rejections, and the scalar reference
//! linear against dequantize + f32 matmul (and int8 activations against their
//! quantization-error bound).

mod common;

use common::{Rng, U};
use sotto_kernels::schemes::{
    self, dequantize, dequantize_row, f16_bits_to_f32, f32_to_f16_bits, layout, linear_reference,
    linear_reference_pooled, pack, unpack, view, ActQuant, PackedWeights, Quantized, Scheme, NF4,
    NF4_I8,
};
use sotto_kernels::{Kernels, Pool, Weights};

const KS: [usize; 9] = [1, 31, 32, 33, 63, 64, 65, 100, 384];
const NS: [usize; 3] = [1, 3, 17];

fn groups(s: Scheme) -> Vec<usize> {
    if s.is_int8() {
        vec![0]
    } else {
        vec![32, 64, 128]
    }
}

/// A random quantized matrix; `fill` picks each code (`None`: random in range).
fn random_q(rng: &mut Rng, s: Scheme, n: usize, k: usize, group: usize) -> Quantized {
    let codes = (0..n * k)
        .map(|_| {
            if s.is_int8() {
                (rng.below(255) as i32 - 127) as i8 as u8
            } else {
                rng.below(s.max_code() as usize + 1) as u8
            }
        })
        .collect();
    let ns = s.n_scales(n, k, group).unwrap();
    let scales = (0..ns).map(|_| rng.unit() * 0.1).collect();
    let zeros = if s.has_zeros() {
        (0..ns).map(|_| rng.unit() * 8.0 + 4.0).collect()
    } else {
        vec![]
    };
    Quantized {
        scheme: s,
        n,
        k,
        group,
        codes,
        scales,
        zeros,
    }
}

fn f16_round(v: f32) -> f32 {
    f16_bits_to_f32(f32_to_f16_bits(v))
}

/// What `unpack` must give back for `q`: codes exact, scales as stored.
fn check_round_trip(q: &Quantized) {
    let bytes =
        pack(q).unwrap_or_else(|e| panic!("{:?} {}×{} g{}: {e}", q.scheme, q.n, q.k, q.group));
    let l = layout(q.scheme, q.n, q.k, q.group).unwrap();
    assert_eq!(bytes.len(), l.total);
    for (off, len) in l.planes {
        assert!(len == 0 || off % 256 == 0, "planes start 256-aligned");
        assert!(off + len <= l.total);
    }
    let u = unpack(q.scheme, q.n, q.k, q.group, &bytes).unwrap();
    assert_eq!(
        u.codes, q.codes,
        "{:?} {}×{} g{}",
        q.scheme, q.n, q.k, q.group
    );
    assert_eq!(u.scales.len(), q.scales.len());
    assert_eq!(u.zeros.len(), q.zeros.len());
    match q.scheme {
        Scheme::Int8Row | Scheme::Int8Tensor | Scheme::Nf4 => assert_eq!(u.scales, q.scales),
        Scheme::Int4Sym | Scheme::Int4Asym | Scheme::Int3 => {
            let want: Vec<f32> = q.scales.iter().map(|&v| f16_round(v)).collect();
            assert_eq!(u.scales, want);
            let want: Vec<f32> = q.zeros.iter().map(|&v| f16_round(v)).collect();
            assert_eq!(u.zeros, want);
        }
        Scheme::Nf4Dq => {
            // Each chunk of 256 absmax values: within half a step (+ f32 rounding).
            for (a, b) in q.scales.chunks(256).zip(u.scales.chunks(256)) {
                let lo = a.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let step = (hi - lo) / 255.0;
                for (&x, &y) in a.iter().zip(b) {
                    let tol = step * 0.5 + 4.0 * U as f32 * hi.abs().max(lo.abs());
                    assert!(
                        (x - y).abs() <= tol,
                        "absmax {x} stored as {y}, step {step}"
                    );
                }
            }
        }
    }
    // Packing what was unpacked gives the same bytes: stored values are fixed
    // points (except Nf4Dq, whose recomputed step may move by an ulp).
    if q.scheme != Scheme::Nf4Dq {
        assert_eq!(pack(&u).unwrap(), bytes, "repack {:?}", q.scheme);
    }
    // dequantize agrees with the scheme's formula on the unpacked values.
    let w = view(q.scheme, q.n, q.k, q.group, &bytes, ActQuant::Float).unwrap();
    let mut d = vec![0.0f32; q.n * q.k];
    dequantize(&w, &mut d);
    let ng = w.groups_per_row();
    for r in 0..q.n {
        for c in 0..q.k {
            let code = u.codes[r * q.k + c];
            let gi = if q.scheme.is_grouped() {
                r * ng + c / q.group
            } else {
                0
            };
            let want = match q.scheme {
                Scheme::Int8Row => u.scales[r] * (code as i8) as f32,
                Scheme::Int8Tensor => u.scales[0] * (code as i8) as f32,
                Scheme::Int4Sym => u.scales[gi] * (code as f32 - 8.0),
                Scheme::Int4Asym | Scheme::Int3 => u.scales[gi] * (code as f32 - u.zeros[gi]),
                Scheme::Nf4 | Scheme::Nf4Dq => u.scales[gi] * NF4[code as usize],
            };
            assert_eq!(d[r * q.k + c], want, "{:?} ({r}, {c})", q.scheme);
        }
    }
}

#[test]
fn round_trips_every_layout() {
    let mut rng = Rng::new(1);
    for s in Scheme::ALL {
        for g in groups(s) {
            for &n in &NS {
                for &k in &KS {
                    check_round_trip(&random_q(&mut rng, s, n, k, g));
                }
            }
        }
    }
}

#[test]
fn nf4_dq_spans_several_chunks() {
    // 17 × 1000 / 32 = 17 × 32 = 544 groups: three chunks, the last short.
    let mut rng = Rng::new(2);
    let q = random_q(&mut rng, Scheme::Nf4Dq, 17, 1000, 32);
    check_round_trip(&q);
    let l = layout(Scheme::Nf4Dq, 17, 1000, 32).unwrap();
    assert_eq!(l.planes[1].1, 544);
    assert_eq!(l.planes[2].1, 3 * 8);
}

#[test]
fn zero_constant_and_extreme_codes() {
    for s in Scheme::ALL {
        for g in groups(s) {
            for &k in &[33usize, 64, 100] {
                let (n, ns) = (3, s.n_scales(3, k, g).unwrap());
                let zq = |codes: Vec<u8>, scale: f32| Quantized {
                    scheme: s,
                    n,
                    k,
                    group: g,
                    codes,
                    scales: vec![scale; ns],
                    zeros: if s.has_zeros() { vec![1.5; ns] } else { vec![] },
                };
                // All-zero: zero codes and zero scales.
                check_round_trip(&zq(vec![0; n * k], 0.0));
                // Constant groups (Nf4Dq: constant absmax, step 0, stored exactly).
                let c = if s.is_int8() { 5 } else { 3 };
                let q = zq(vec![c; n * k], 0.25);
                check_round_trip(&q);
                let u = unpack(s, n, k, g, &pack(&q).unwrap()).unwrap();
                assert!(u.scales.iter().all(|&v| v == 0.25), "{s:?} constant scale");
                // ± the largest codes, alternating.
                let (lo, hi) = if s.is_int8() {
                    ((-127i8) as u8, 127u8)
                } else {
                    (0, s.max_code())
                };
                let codes = (0..n * k)
                    .map(|i| if i % 3 == 0 { lo } else { hi })
                    .collect();
                check_round_trip(&zq(codes, -0.5));
            }
        }
    }
}

#[test]
fn nibble_positions_match_format_md() {
    // Row 0 of a 2 × 40 Int4Sym matrix: element j in byte j's low nibble,
    // element 16 + j in its high nibble; block 1 (elements 32..40) at byte 16.
    let (n, k) = (2, 40);
    let mut codes = vec![0u8; n * k];
    codes[0] = 0x1;
    codes[16] = 0x2;
    codes[15] = 0xa;
    codes[31] = 0xb;
    codes[32] = 0xf; // block 1, j = 0, low nibble
    codes[39] = 0x7; // block 1, j = 7, low nibble (its high partner ≥ k stays 0)
    codes[k + 5] = 0xc; // row 1 starts at rb = 2 · 16 = 32 bytes
    codes[k + 21] = 0xd;
    let q = Quantized {
        scheme: Scheme::Int4Sym,
        n,
        k,
        group: 32,
        codes,
        scales: vec![1.0, 2.0, 0.5, -3.0],
        zeros: vec![],
    };
    let b = pack(&q).unwrap();
    let mut want = [0u8; 64];
    want[0] = 0x21;
    want[15] = 0xba;
    want[16] = 0x0f;
    want[23] = 0x07;
    want[32 + 5] = 0xdc;
    assert_eq!(&b[..64], &want[..]);
    assert!(b[64..256].iter().all(|&x| x == 0), "padding is zero");
    // Scales: f16 at 256, row-major over (row, group).
    let halves: Vec<u16> = b[256..264]
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(halves, [0x3c00, 0x4000, 0x3800, 0xc200]);
    assert_eq!(b.len(), 264);
}

#[test]
fn int3_bit_positions_match_format_md() {
    // One block: element 8i + j has its low 2 bits at bits 2i..2i+1 of byte j,
    // element e its high bit at bit e/4 of byte 8 + e%4.
    let k = 32;
    let mut codes = vec![0u8; k];
    codes[0] = 0b101; // i 0, j 0: byte 0 |= 0b01; high: byte 8 bit 0
    codes[9] = 0b110; // i 1, j 1: byte 1 |= 0b10 << 2; high: byte 9 bit 2
    codes[31] = 0b111; // i 3, j 7: byte 7 |= 0b11 << 6; high: byte 11 bit 7
    codes[20] = 0b011; // i 2, j 4: byte 4 |= 0b11 << 4; no high bit
    let q = Quantized {
        scheme: Scheme::Int3,
        n: 1,
        k,
        group: 32,
        codes,
        scales: vec![1.0],
        zeros: vec![4.0],
    };
    let b = pack(&q).unwrap();
    assert_eq!(
        &b[..12],
        &[0x01, 0x08, 0, 0, 0x30, 0, 0, 0xc0, 0x01, 0x04, 0, 0x80]
    );
    // Scales at 256, zeros at 512, nothing after.
    assert_eq!(&b[256..258], &0x3c00u16.to_le_bytes());
    assert_eq!(&b[512..514], &0x4400u16.to_le_bytes());
    assert_eq!(b.len(), 514);
}

#[test]
fn int8_and_nf4_planes() {
    let q = Quantized {
        scheme: Scheme::Int8Row,
        n: 2,
        k: 3,
        group: 0,
        codes: vec![1, 0xff, 0x81, 127, 0, 2],
        scales: vec![0.5, -2.0],
        zeros: vec![],
    };
    let b = pack(&q).unwrap();
    assert_eq!(&b[..6], &[1, 0xff, 0x81, 127, 0, 2]);
    assert_eq!(&b[256..260], &0.5f32.to_le_bytes());
    assert_eq!(&b[260..264], &(-2.0f32).to_le_bytes());
    assert_eq!(b.len(), 264);
    let w = view(Scheme::Int8Row, 2, 3, 0, &b, ActQuant::Float).unwrap();
    let mut d = [0.0f32; 6];
    dequantize(&w, &mut d);
    assert_eq!(d, [0.5, -0.5, -63.5, -254.0, 0.0, -4.0]);

    let t = Quantized {
        scheme: Scheme::Int8Tensor,
        scales: vec![0.25],
        ..q.clone()
    };
    assert_eq!(pack(&t).unwrap().len(), 260);

    // Nf4Dq: two chunks' (min, step) pairs after the u8 codes.
    let l = layout(Scheme::Nf4Dq, 300, 64, 64).unwrap();
    assert_eq!(l.planes, [(0, 300 * 32), (9728, 300), (10240, 16)]);
    assert_eq!(l.total, 10256);
}

#[test]
fn bits_per_weight_table() {
    // FORMAT.md's table at G = 64, for a 1024 × 1024 matrix.
    let (n, k) = (1024, 1024);
    let bpw = |s, g| layout(s, n, k, g).unwrap().bits_per_weight(n, k);
    let close = |a: f64, b: f64| (a - b).abs() < 2e-3;
    assert!(close(bpw(Scheme::Int8Row, 0), 8.0 + 32.0 / k as f64));
    assert!(close(bpw(Scheme::Int4Sym, 64), 4.25));
    assert!(close(bpw(Scheme::Int4Asym, 64), 4.5));
    assert!(close(bpw(Scheme::Nf4, 64), 4.5));
    assert!(close(
        bpw(Scheme::Nf4Dq, 64),
        4.0 + 8.0 / 64.0 + 64.0 / (256.0 * 64.0)
    ));
    assert!(close(bpw(Scheme::Int3, 64), 3.5));
}

#[test]
fn rejects_bad_input() {
    let good = |s: Scheme| {
        let g = schemes::default_group(s);
        random_q(&mut Rng::new(3), s, 2, 70, g)
    };
    for s in Scheme::ALL {
        assert!(pack(&good(s)).is_ok(), "{s:?}");
        let mut q = good(s);
        q.codes[5] = if s.is_int8() { 0x80 } else { s.max_code() + 1 };
        assert!(pack(&q).is_err(), "{s:?}: code out of range");
        let mut q = good(s);
        q.scales[0] = f32::NAN;
        assert!(pack(&q).is_err(), "{s:?}: NaN scale");
        let mut q = good(s);
        q.scales[0] = f32::INFINITY;
        assert!(pack(&q).is_err(), "{s:?}: infinite scale");
        let mut q = good(s);
        q.codes.pop();
        assert!(pack(&q).is_err(), "{s:?}: short codes");
        let mut q = good(s);
        q.scales.push(1.0);
        assert!(pack(&q).is_err(), "{s:?}: extra scale");
        if s.has_zeros() {
            let mut q = good(s);
            q.zeros[1] = f32::NAN;
            assert!(pack(&q).is_err(), "{s:?}: NaN zero");
            let mut q = good(s);
            q.zeros.pop();
            assert!(pack(&q).is_err(), "{s:?}: short zeros");
        }
        if matches!(s, Scheme::Int4Sym | Scheme::Int4Asym | Scheme::Int3) {
            let mut q = good(s);
            q.scales[0] = 1.0e6;
            assert!(pack(&q).is_err(), "{s:?}: scale overflows f16");
        }
        if s.is_grouped() {
            for g in [0, 16, 48, 100] {
                assert!(layout(s, 2, 70, g).is_err(), "{s:?} group {g}");
            }
        } else {
            assert!(layout(s, 2, 70, 32).is_err(), "{s:?} takes group 0");
        }
        let g = schemes::default_group(s);
        assert!(layout(s, 0, 70, g).is_err());
        assert!(layout(s, 2, 0, g).is_err());
        assert!(
            layout(s, usize::MAX, usize::MAX / 2, g).is_err(),
            "{s:?} overflow"
        );
        // view wants the exact length.
        let b = pack(&good(s)).unwrap();
        assert!(view(s, 2, 70, g, &b, ActQuant::Float).is_ok());
        assert!(view(s, 2, 70, g, &b[..b.len() - 1], ActQuant::Float).is_err());
        let mut longer = b.clone();
        longer.push(0);
        assert!(view(s, 2, 70, g, &longer, ActQuant::Float).is_err());
        // Every scheme takes int8 activations (int8 × int8 or low-bit × int8).
        assert!(view(s, 2, 70, g, &b, ActQuant::Dynamic).is_ok(), "{s:?}");
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(view(s, 2, 70, g, &b, ActQuant::Static(bad)).is_err());
        }
    }
}

#[test]
fn f16_conversion_matches_the_test_helper() {
    let mut rng = Rng::new(4);
    let mut vals = vec![
        0.0,
        -0.0,
        65504.0,
        65520.0,
        1e-8,
        5.96e-8,
        2.98e-8,
        6.1e-5,
        f32::MAX,
    ];
    vals.extend((0..20000).map(|i| rng.unit() * 10f32.powi(i % 12 - 8)));
    for v in vals {
        assert_eq!(f32_to_f16_bits(v), common::f32_to_f16_bits(v), "{v:e}");
        // Half values round-trip exactly.
        let h = f32_to_f16_bits(v);
        if h & 0x7c00 != 0x7c00 {
            assert_eq!(f32_to_f16_bits(f16_bits_to_f32(h)), h);
        }
    }
    assert!(f16_bits_to_f32(f32_to_f16_bits(f32::NAN)).is_nan());
}

// ---- the reference linear ---------------------------------------------------

/// Packed weights plus their dequantized f32 copy.
struct Packed {
    bytes: Vec<u8>,
    dense: Vec<f32>,
    s: Scheme,
    n: usize,
    k: usize,
    g: usize,
}

impl Packed {
    fn new(rng: &mut Rng, s: Scheme, n: usize, k: usize, g: usize) -> Packed {
        let bytes = pack(&random_q(rng, s, n, k, g)).unwrap();
        let w = view(s, n, k, g, &bytes, ActQuant::Float).unwrap();
        let mut dense = vec![0.0; n * k];
        dequantize(&w, &mut dense);
        Packed {
            bytes,
            dense,
            s,
            n,
            k,
            g,
        }
    }
    fn view(&self, act: ActQuant) -> PackedWeights<'_> {
        view(self.s, self.n, self.k, self.g, &self.bytes, act).unwrap()
    }
}

/// `out` against the exact (f64) product of x and the dequantized weights: an f32
/// dot of k terms in any order is within γ_k·Σ|x·w| of it (Higham §3.1).
fn check_float(p: &Packed, x: &[f32], m: usize, bias: &[f32], out: &[f32], what: &str) {
    let (n, k) = (p.n, p.k);
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut mag) = (bias[j] as f64, bias[j].abs() as f64);
            for c in 0..k {
                let t = x[i * k + c] as f64 * p.dense[j * k + c] as f64;
                exact += t;
                mag += t.abs();
            }
            let tol = (k + 2) as f64 * U * mag + 1e-30;
            let got = out[i * n + j] as f64;
            assert!(
                (got - exact).abs() <= tol,
                "{what} {:?} m{m} k{k} n{n} ({i},{j}): {got} vs {exact} (tol {tol:e})",
                p.s
            );
        }
    }
}

#[test]
fn reference_matches_dequantized_matmul() {
    let mut rng = Rng::new(5);
    let pool = Pool::new(3);
    for s in Scheme::ALL {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 31, 17),
            (5, 65, 3),
            (2, 100, 33),
            (17, 384, 5),
            (1, 33, 70),
        ] {
            let g = if s.is_int8() {
                0
            } else {
                [32, 64, 128][rng.below(3)]
            };
            let p = Packed::new(&mut rng, s, n, k, g);
            let x = rng.vec(m * k, 2.0);
            let bias = rng.vec(n, 1.0);
            let w = p.view(ActQuant::Float);
            let mut out = vec![f32::NAN; m * n];
            linear_reference(&x, m, k, &w, Some(&bias), &mut out);
            check_float(&p, &x, m, &bias, &out, "reference");
            // The pooled version and every kernel table: same arithmetic today, and
            // within the float tolerance once SIMD kernels replace it.
            let mut pooled = vec![f32::NAN; m * n];
            linear_reference_pooled(&pool, &x, m, k, w, n, Some(&bias), &mut pooled);
            assert_eq!(out, pooled, "pooled == serial");
            for kern in Kernels::available() {
                let mut o = vec![f32::NAN; m * n];
                kern.linear(&pool, &x, m, k, Weights::Packed(w), n, Some(&bias), &mut o);
                check_float(&p, &x, m, &bias, &o, kern.name());
            }
            // No bias.
            let mut nb = vec![f32::NAN; m * n];
            linear_reference(&x, m, k, &w, None, &mut nb);
            check_float(&p, &x, m, &vec![0.0; n], &nb, "no bias");
        }
    }
}

/// Int8 activations: x = s_x·q + e with |e| ≤ s_x/2 per element (rounding; nothing
/// clamps when s_x = absmax/127), so against the weight-only (float) result
///   |out_int8 − out_float| ≤ Σ_p |e_p|·|w_p| + rounding ≤ (s_x/2)·Σ_p |w_p| + R,
/// with w = s_w·code the dequantized weights and R = (k + 4)·u·(Σ|x·w| + |b|) + the
/// reciprocal's error (s_x·(127/a) = 1 ± 2u, adding ≤ 2u·Σ|x·w|). The i32 dot is exact.
#[test]
fn int8_activations_within_quantization_bound() {
    let mut rng = Rng::new(6);
    let pool = Pool::new(2);
    for s in [Scheme::Int8Row, Scheme::Int8Tensor] {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 33, 5),
            (7, 384, 17),
            (2, 100, 64),
            (16, 65, 9),
        ] {
            let p = Packed::new(&mut rng, s, n, k, 0);
            let mut x = rng.vec(m * k, 3.0);
            if m > 2 {
                x[k..2 * k].fill(0.0); // an all-zero row: s_x = 0, out = bias
            }
            let bias = rng.vec(n, 1.0);
            let mut float = vec![0.0; m * n];
            linear_reference(&x, m, k, &p.view(ActQuant::Float), Some(&bias), &mut float);
            // The largest |x| of all rows, to use one static scale for every row.
            let amax = x.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
            for act in [ActQuant::Dynamic, ActQuant::Static(amax / 127.0)] {
                let w = p.view(act);
                let mut out = vec![f32::NAN; m * n];
                linear_reference(&x, m, k, &w, Some(&bias), &mut out);
                let mut pooled = vec![f32::NAN; m * n];
                linear_reference_pooled(&pool, &x, m, k, w, n, Some(&bias), &mut pooled);
                assert_eq!(out, pooled);
                for i in 0..m {
                    let row = &x[i * k..(i + 1) * k];
                    let s_x = match act {
                        ActQuant::Static(v) => v,
                        _ => row.iter().fold(0.0f32, |a, &v| a.max(v.abs())) / 127.0,
                    };
                    for j in 0..n {
                        let wr = &p.dense[j * k..(j + 1) * k];
                        let sum_w: f64 = wr.iter().map(|&v| v.abs() as f64).sum();
                        let mag: f64 = row
                            .iter()
                            .zip(wr)
                            .map(|(&a, &b)| (a * b).abs() as f64)
                            .sum::<f64>()
                            + bias[j].abs() as f64;
                        let bound = s_x as f64 / 2.0 * sum_w * (1.0 + 4.0 * U)
                            + (2 * k + 8) as f64 * U * mag
                            + 1e-30;
                        let (a, b) = (out[i * n + j] as f64, float[i * n + j] as f64);
                        assert!(
                            (a - b).abs() <= bound,
                            "{s:?} {act:?} m{m} k{k} n{n} ({i},{j}): {a} vs {b}, bound {bound:e}"
                        );
                        if row.iter().all(|&v| v == 0.0) {
                            assert_eq!(out[i * n + j], bias[j]);
                        }
                    }
                }
                for kern in Kernels::available() {
                    let mut o = vec![f32::NAN; m * n];
                    kern.linear(&pool, &x, m, k, Weights::Packed(w), n, Some(&bias), &mut o);
                    for (a, b) in o.iter().zip(&out) {
                        let tol = 4.0 * U as f32 * b.abs().max(1e-3) * k as f32;
                        assert!((a - b).abs() <= tol, "{} {act:?}: {a} vs {b}", kern.name());
                    }
                }
            }
        }
    }
}

/// The int8 arithmetic spelled out: codes, scales and the i32 dot, per row.
#[test]
fn int8_dynamic_is_exactly_the_documented_arithmetic() {
    let mut rng = Rng::new(7);
    let (m, k, n) = (3, 45, 4);
    let p = Packed::new(&mut rng, Scheme::Int8Row, n, k, 0);
    let mut x = rng.vec(m * k, 1.0);
    x[3] = 0.5; // ties appear only by construction: make one
    let u = unpack(Scheme::Int8Row, n, k, 0, &p.bytes).unwrap();
    for act in [ActQuant::Dynamic, ActQuant::Static(0.004)] {
        let mut out = vec![0.0; m * n];
        linear_reference(&x, m, k, &p.view(act), None, &mut out);
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            let a = row.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
            let (s_x, inv) = match act {
                ActQuant::Static(s) => (s, 1.0 / s),
                _ => (a / 127.0, 127.0 / a),
            };
            let q: Vec<i32> = row
                .iter()
                .map(|&v| (v * inv).round_ties_even().clamp(-127.0, 127.0) as i32)
                .collect();
            if let ActQuant::Static(_) = act {
                assert!(q.iter().any(|&c| c.abs() == 127), "static scale clamps");
            }
            for j in 0..n {
                let dot: i32 = (0..k).map(|c| q[c] * u.codes[j * k + c] as i8 as i32).sum();
                assert_eq!(out[i * n + j], (s_x * u.scales[j]) * dot as f32);
            }
        }
    }
}

#[test]
fn dequantize_row_matches_whole_matrix() {
    let mut rng = Rng::new(8);
    for s in Scheme::ALL {
        let g = schemes::default_group(s);
        let p = Packed::new(&mut rng, s, 5, 130, g);
        let w = p.view(ActQuant::Float);
        let mut row = vec![0.0; 130];
        for r in 0..5 {
            dequantize_row(&w, r, &mut row);
            assert_eq!(row, p.dense[r * 130..(r + 1) * 130]);
        }
    }
}

/// The low-bit × int8 table is NF4 rounded to 127ths.
#[test]
fn nf4_i8_is_nf4_times_127_rounded() {
    for (i, &v) in NF4_I8.iter().enumerate() {
        assert_eq!(v as f32, (NF4[i] * 127.0).round(), "entry {i}");
    }
}

/// The low-bit × int8 arithmetic spelled out from `unpack`'s codes, scales
/// and zeros: per group exact integer dot and code sum, the float part in the
/// documented order.
#[test]
#[allow(clippy::needless_range_loop)] // indices as in the documented formula
fn lowbit_int8_is_exactly_the_documented_arithmetic() {
    let mut rng = Rng::new(17);
    for s in [
        Scheme::Int4Sym,
        Scheme::Int4Asym,
        Scheme::Nf4,
        Scheme::Nf4Dq,
        Scheme::Int3,
    ] {
        for &(m, k, n, g) in &[(3, 45, 4, 32), (2, 200, 3, 64), (1, 129, 2, 128)] {
            let p = Packed::new(&mut rng, s, n, k, g);
            let u = unpack(s, n, k, g, &p.bytes).unwrap();
            let x = rng.vec(m * k, 1.0);
            let bias = rng.vec(n, 1.0);
            let ng = k.div_ceil(g);
            for act in [ActQuant::Dynamic, ActQuant::Static(0.004)] {
                let mut out = vec![0.0; m * n];
                linear_reference(&x, m, k, &p.view(act), Some(&bias), &mut out);
                for i in 0..m {
                    let row = &x[i * k..(i + 1) * k];
                    let a = row.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
                    let (s_x, inv) = match act {
                        ActQuant::Static(v) => (v, 1.0 / v),
                        _ => (a / 127.0, 127.0 / a),
                    };
                    let q: Vec<i32> = row
                        .iter()
                        .map(|&v| (v * inv).round_ties_even().clamp(-127.0, 127.0) as i32)
                        .collect();
                    for j in 0..n {
                        let mut acc = 0.0f32;
                        for gi in 0..ng {
                            let (mut d, mut sx) = (0i32, 0i32);
                            for c in gi * g..((gi + 1) * g).min(k) {
                                let code = u.codes[j * k + c];
                                let w = match s {
                                    Scheme::Nf4 | Scheme::Nf4Dq => NF4_I8[code as usize] as i32,
                                    _ => code as i32,
                                };
                                d += q[c] * w;
                                sx += q[c];
                            }
                            let sc = u.scales[j * ng + gi];
                            let (sc, z) = match s {
                                Scheme::Int4Sym => (sc, 8.0),
                                Scheme::Nf4 | Scheme::Nf4Dq => (sc / 127.0, 0.0),
                                _ => (sc, u.zeros[j * ng + gi]),
                            };
                            acc += sc * (d as f32 - z * sx as f32);
                        }
                        assert_eq!(
                            out[i * n + j].to_bits(),
                            (s_x * acc + bias[j]).to_bits(),
                            "{s:?} {act:?} ({i},{j})"
                        );
                    }
                }
                // And close to the weight-only result: dynamic codes err by at
                // most s_x/2 per element; nf4's table by 0.5/127 of absmax.
                if act == ActQuant::Dynamic {
                    let mut float = vec![0.0; m * n];
                    linear_reference(&x, m, k, &p.view(ActQuant::Float), Some(&bias), &mut float);
                    for i in 0..m {
                        let row = &x[i * k..(i + 1) * k];
                        let s_x = row.iter().fold(0.0f32, |a, &v| a.max(v.abs())) / 127.0;
                        for j in 0..n {
                            let wr = &p.dense[j * k..(j + 1) * k];
                            let sw: f64 = wr.iter().map(|&v| v.abs() as f64).sum();
                            let sxabs: f64 = row.iter().map(|&v| v.abs() as f64).sum();
                            let amax = (0..ng)
                                .map(|gi| u.scales[j * ng + gi].abs())
                                .fold(0.0f32, f32::max)
                                as f64;
                            let nf4_err = if matches!(s, Scheme::Nf4 | Scheme::Nf4Dq) {
                                0.5 / 127.0 * amax * (sxabs + k as f64 * s_x as f64 / 2.0)
                            } else {
                                0.0
                            };
                            let scale = (0..ng)
                                .map(|gi| u.scales[j * ng + gi].abs() * 16.0)
                                .fold(0.0f32, f32::max)
                                as f64;
                            let bound = s_x as f64 / 2.0 * sw
                                + nf4_err
                                + 64.0 * k as f64 * 6e-8 * (sxabs + 1.0) * (scale + 1.0);
                            let (a, b) = (out[i * n + j] as f64, float[i * n + j] as f64);
                            assert!(
                                (a - b).abs() <= bound,
                                "{s:?} ({i},{j}): {a} vs weight-only {b}, bound {bound:e}"
                            );
                        }
                    }
                }
            }
        }
    }
}
