//! `sotto::quantize`: error bounds of round-to-nearest, edge cases, NF4 code choice,
//! HQQ against RTN (synthetic and real weights), option checks and whole-model runs.
mod common;

use sotto::format::ModelFile;
use sotto::quantize::{
    check_options, gptq_tensor, is_quantizable, keep_matches, output_error, quantize_model,
    quantize_tensor, quantize_tensor_with, reconstruct, Activations, GptqConfig, HqqConfig, Method,
    QuantizeOptions, Quantized, Scheme, NF4,
};
use sotto_kernels::schemes::{self, ActQuant};

/// xorshift64* with Box–Muller: deterministic test data without dependencies.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
    /// Gaussian with 1 % of the values 10× larger (outliers), as f16 values.
    fn heavy(&mut self) -> f32 {
        let g = self.gauss() * 0.02;
        let x = if self.uniform() < 0.01 { g * 10.0 } else { g };
        half::f16::from_f32(x).to_f32()
    }
}

const ALL: [Scheme; 7] = [
    Scheme::Int8Row,
    Scheme::Int8Tensor,
    Scheme::Int4Sym,
    Scheme::Int4Asym,
    Scheme::Nf4,
    Scheme::Nf4Dq,
    Scheme::Int3,
];

fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let sse: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    (sse / a.len() as f64).sqrt()
}

/// Index of element (r, c)'s scale in `scales`.
fn param_index(q: &Quantized, r: usize, c: usize) -> usize {
    match q.scheme {
        Scheme::Int8Row => r,
        Scheme::Int8Tensor => 0,
        _ => r * q.k.div_ceil(q.group) + c / q.group,
    }
}

/// The theoretical worst-case error of element (r, c): half a step (`scale / 2`),
/// with slack for parameters stored as f16 (the f16-rounded scale may leave the range
/// end short by levels·2⁻¹¹ steps, the f16 zero-point shifts the grid by ≤ 2⁻⁸ steps);
/// for NF4 half the widest gap between adjacent codes times the block absmax.
fn bound(q: &Quantized, r: usize, c: usize) -> f32 {
    let s = q.scales[param_index(q, r, c)].abs();
    match q.scheme {
        Scheme::Int8Row | Scheme::Int8Tensor => s * 0.5 * (1.0 + 1e-5),
        Scheme::Int4Sym => s * (0.5 + 8.0 / 2048.0),
        Scheme::Int4Asym | Scheme::Int3 => s * (0.5 + 15.0 / 2048.0 + 1.0 / 256.0),
        Scheme::Nf4 | Scheme::Nf4Dq => {
            let gap = NF4.windows(2).map(|w| w[1] - w[0]).fold(0f32, f32::max);
            s * gap * 0.5 * (1.0 + 1e-6)
        }
    }
}

/// What the runtime decodes from the packed bytes of `q`, and the scales as stored.
fn packed_decode(q: &Quantized) -> (Vec<f32>, Vec<f32>) {
    let bytes = schemes::pack(q).unwrap();
    let stored = schemes::unpack(q.scheme, q.n, q.k, q.group, &bytes).unwrap();
    assert_eq!(
        stored.codes, q.codes,
        "{:?}: codes survive packing",
        q.scheme
    );
    let w = schemes::view(q.scheme, q.n, q.k, q.group, &bytes, ActQuant::Float).unwrap();
    let mut out = vec![0f32; q.n * q.k];
    schemes::dequantize(&w, &mut out);
    (out, stored.scales)
}

fn check_bound(w: &[f32], n: usize, k: usize, scheme: Scheme, group: usize) {
    let q = quantize_tensor(w, n, k, scheme, group, Method::Rtn).unwrap();
    assert_eq!(q.codes.len(), n * k);
    let (packed, stored_scales) = packed_decode(&q);
    // The quantizer already rounds parameters as the file stores them, so its own
    // reconstruction is exactly what the runtime decodes (Nf4Dq: the absmax is
    // re-quantized by packing; its codes were chosen for the stored absmax).
    let r = if scheme == Scheme::Nf4Dq {
        packed
    } else {
        let r = reconstruct(&q);
        assert_eq!(
            r, packed,
            "{scheme:?} {n}×{k} g{group}: reconstruction ≠ packed decode"
        );
        r
    };
    for row in 0..n {
        for c in 0..k {
            let i = row * k + c;
            assert!(r[i].is_finite(), "{scheme:?} {n}×{k} g{group}: NaN at {i}");
            let e = (w[i] - r[i]).abs();
            let b = if scheme == Scheme::Nf4Dq {
                // Stored absmax a_s: half the widest code gap, plus the clamping of
                // values beyond a_s when the 8-bit absmax rounded down.
                let p = param_index(&q, row, c);
                let (a, a_s) = (q.scales[p], stored_scales[p]);
                let mut sq = q.clone();
                sq.scales = stored_scales.clone();
                bound(&sq, row, c) + (a - a_s).max(0.0)
            } else {
                bound(&q, row, c)
            };
            assert!(
                e <= b + f32::MIN_POSITIVE,
                "{scheme:?} {n}×{k} g{group}: |w − ŵ| = {e} > bound {b} at ({row}, {c}), w = {}",
                w[i]
            );
        }
    }
}

#[test]
fn rtn_error_is_within_the_theoretical_bound() {
    let mut rng = Rng(7);
    for scheme in ALL {
        for &k in &[1usize, 3, 33, 64, 65, 128, 200] {
            for &group in &[32usize, 64, 128] {
                let n = 5;
                let w: Vec<f32> = (0..n * k).map(|_| rng.heavy()).collect();
                check_bound(&w, n, k, scheme, group);
                // Unscaled f32 values too (not f16-representable).
                let w: Vec<f32> = (0..n * k).map(|_| rng.gauss() * 3.0).collect();
                check_bound(&w, n, k, scheme, group);
            }
        }
    }
}

#[test]
fn groups_follow_the_documented_layout() {
    let (n, k) = (3, 65);
    let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin()).collect();
    for scheme in ALL {
        let q = quantize_tensor(&w, n, k, scheme, 32, Method::Rtn).unwrap();
        let (scales, zeros) = match scheme {
            Scheme::Int8Row => (n, 0),
            Scheme::Int8Tensor => (1, 0),
            Scheme::Int4Asym | Scheme::Int3 => (n * 3, n * 3),
            _ => (n * 3, 0),
        };
        assert_eq!(q.scales.len(), scales, "{scheme:?}");
        assert_eq!(q.zeros.len(), zeros, "{scheme:?}");
        let max_code = match scheme {
            Scheme::Int3 => 7,
            Scheme::Int8Row | Scheme::Int8Tensor => 255,
            _ => 15,
        };
        assert!(q.codes.iter().all(|&c| c <= max_code), "{scheme:?}");
        if matches!(scheme, Scheme::Int8Row | Scheme::Int8Tensor) {
            assert_eq!(q.group, 0);
            // −128 is never used: the code range is symmetric.
            assert!(q.codes.iter().all(|&c| c != 0x80));
        } else {
            assert_eq!(q.group, 32);
        }
    }
    // Group 0 = the default, 64.
    let q = quantize_tensor(&w, n, k, Scheme::Int4Asym, 0, Method::Rtn).unwrap();
    assert_eq!((q.group, q.scales.len()), (64, n * 2));
}

#[test]
fn zero_groups_dequantize_to_exact_zero() {
    let (n, k) = (2, 100);
    let mut w = vec![0f32; n * k];
    // Row 1's second group (64..100) has values; everything else is zero.
    for (c, v) in w[k + 64..2 * k].iter_mut().enumerate() {
        *v = c as f32 * 0.01 - 0.1;
    }
    for scheme in ALL {
        let q = quantize_tensor(&w, n, k, scheme, 64, Method::Rtn).unwrap();
        let r = reconstruct(&q);
        assert!(r.iter().all(|v| v.is_finite()), "{scheme:?}");
        assert!(q.scales.iter().chain(&q.zeros).all(|v| v.is_finite()));
        let zero_part = if matches!(scheme, Scheme::Int8Tensor) {
            0..0 // one scale: zeros still exact, checked below
        } else {
            0..k + 64
        };
        for i in zero_part {
            assert_eq!(
                r[i].to_bits() & 0x7fff_ffff,
                0,
                "{scheme:?} at {i}: {}",
                r[i]
            );
        }
        for (i, (&a, &b)) in w.iter().zip(&r).enumerate() {
            if a == 0.0 {
                assert_eq!(b, 0.0, "{scheme:?} at {i}");
            }
        }
    }
    // An all-zero tensor (HQQ too).
    for (scheme, method) in [
        (Scheme::Int4Asym, Method::Hqq),
        (Scheme::Int3, Method::Hqq),
        (Scheme::Int8Tensor, Method::Rtn),
        (Scheme::Nf4, Method::Rtn),
    ] {
        let z = vec![0f32; 3 * 33];
        let q = quantize_tensor(&z, 3, 33, scheme, 32, method).unwrap();
        assert!(reconstruct(&q).iter().all(|&v| v == 0.0), "{scheme:?}");
    }
}

#[test]
fn constant_groups_reconstruct_exactly() {
    // f16 constants (weights come from f16 files) must come back exactly.
    for &c in &[0.5f32, -0.0371, 1.0e-3, -3.25, 1000.0] {
        let c = half::f16::from_f32(c).to_f32();
        for (scheme, method) in [
            (Scheme::Int4Asym, Method::Rtn),
            (Scheme::Int4Asym, Method::Hqq),
            (Scheme::Int3, Method::Rtn),
            (Scheme::Int3, Method::Hqq),
            (Scheme::Nf4, Method::Rtn),
        ] {
            let w = vec![c; 2 * 70];
            let q = quantize_tensor(&w, 2, 70, scheme, 64, method).unwrap();
            let r = reconstruct(&q);
            assert!(
                r.iter().all(|&v| v == c),
                "{scheme:?} {method:?} {c}: {r:?}"
            );
        }
        // Symmetric schemes are exact for a constant whose scale is exact.
        let w = vec![c; 40];
        let q = quantize_tensor(&w, 1, 40, Scheme::Int8Row, 0, Method::Rtn).unwrap();
        let r = reconstruct(&q);
        assert!(
            r.iter().all(|&v| (v - c).abs() <= c.abs() * 1e-6),
            "int8 {c}"
        );
    }
}

#[test]
fn extreme_values_are_handled() {
    let max = half::f16::MAX.to_f32();
    let w = vec![max, -max, 0.0, max, 1.0, -1.0, max * 0.5, -max];
    for scheme in ALL {
        check_bound(&w, 2, 4, scheme, 32);
        let q = quantize_tensor(&w, 2, 4, scheme, 32, Method::Rtn).unwrap();
        let r = reconstruct(&q);
        // ±max is an end of the range: reconstructed within f16 rounding.
        for i in [0usize, 1, 3, 7] {
            assert!(
                (r[i] - w[i]).abs() <= max * 2e-3,
                "{scheme:?} {i}: {}",
                r[i]
            );
        }
    }
    // f32 values beyond f16's range: fine for int8 / nf4 (f32 parameters), an error
    // naming the problem for the f16-parameter schemes.
    let big = vec![1.0e30f32, -2.0e30, 3.0, 0.0];
    for scheme in [Scheme::Int8Row, Scheme::Int8Tensor, Scheme::Nf4] {
        check_bound(&big, 1, 4, scheme, 64);
    }
    for scheme in [Scheme::Int4Sym, Scheme::Int4Asym, Scheme::Int3] {
        let e = quantize_tensor(&big, 1, 4, scheme, 64, Method::Rtn).unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }
}

#[test]
fn non_finite_values_and_bad_shapes_are_errors() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut w = vec![0.5f32; 12];
        w[7] = bad;
        for scheme in ALL {
            let e = quantize_tensor(&w, 3, 4, scheme, 64, Method::Rtn).unwrap_err();
            assert!(
                e.contains("row 1, column 3") && e.contains("not finite"),
                "{e}"
            );
        }
    }
    assert!(quantize_tensor(&[1.0; 6], 2, 4, Scheme::Int8Row, 0, Method::Rtn).is_err());
    assert!(quantize_tensor(&[], 0, 4, Scheme::Int8Row, 0, Method::Rtn).is_err());
    let e = quantize_tensor(&[1.0; 8], 2, 4, Scheme::Nf4, 64, Method::Hqq).unwrap_err();
    assert!(e.contains("HQQ"), "{e}");
}

#[test]
fn nf4_codes_are_the_nearest_table_entries() {
    // Each value in a block of absmax 1 takes the nearest code; both sides of every
    // midpoint go to their own code.
    let mut w = vec![1.0f32]; // sets the absmax
    let mut want = vec![15u8];
    for i in 0..15 {
        let mid = 0.5 * (NF4[i] + NF4[i + 1]);
        w.extend([mid.next_down(), mid.next_up(), NF4[i]]);
        want.extend([i as u8, i as u8 + 1, i as u8]);
    }
    let k = w.len();
    let q = quantize_tensor(&w, 1, k, Scheme::Nf4, 64, Method::Rtn).unwrap();
    assert_eq!(q.scales, vec![1.0]);
    assert_eq!(q.codes, want);
    // Scaled blocks: absmax 0.25, values at the table's points map to their codes.
    let w: Vec<f32> = NF4.iter().map(|v| v * 0.25).collect();
    let q = quantize_tensor(&w, 1, 16, Scheme::Nf4, 64, Method::Rtn).unwrap();
    assert_eq!(q.codes, (0..16).collect::<Vec<u8>>());
    assert_eq!(reconstruct(&q), w);
}

fn hqq_vs_rtn(w: &[f32], n: usize, k: usize, scheme: Scheme, group: usize) -> (f32, f32) {
    let r = quantize_tensor_with(
        w,
        n,
        k,
        scheme,
        group,
        Method::Hqq,
        &HqqConfig::default(),
        2,
    )
    .unwrap();
    let rtn = quantize_tensor(w, n, k, scheme, group, Method::Rtn).unwrap();
    let rtn_rmse = rmse(w, &reconstruct(&rtn)) as f32;
    let hqq_rmse = rmse(w, &reconstruct(&r.q)) as f32;
    // The internal bookkeeping agrees with an independent reconstruction.
    assert!((r.rtn_rmse() - rtn_rmse).abs() <= 1e-6 * rtn_rmse.max(1e-12));
    assert!((r.rmse() - hqq_rmse).abs() <= 1e-5 * hqq_rmse.max(1e-12));
    (rtn_rmse, hqq_rmse)
}

#[test]
fn hqq_is_never_worse_than_rtn_on_synthetic_weights() {
    let mut rng = Rng(11);
    let (n, k) = (64, 384);
    let gauss: Vec<f32> = (0..n * k).map(|_| rng.gauss() * 0.05).collect();
    let heavy: Vec<f32> = (0..n * k).map(|_| rng.heavy()).collect();
    for (what, w) in [("gaussian", &gauss), ("heavy-tailed", &heavy)] {
        for scheme in [Scheme::Int4Asym, Scheme::Int3] {
            for group in [32, 64, 128] {
                let (rtn, hqq) = hqq_vs_rtn(w, n, k, scheme, group);
                eprintln!("{what} {scheme:?} g{group}: RTN {rtn:.6} HQQ {hqq:.6}");
                assert!(
                    hqq <= rtn,
                    "{what} {scheme:?} g{group}: HQQ {hqq} > RTN {rtn}"
                );
                assert!(
                    hqq < rtn * 0.995,
                    "{what} {scheme:?} g{group}: HQQ gains nothing"
                );
            }
        }
    }
}

fn tiny() -> ModelFile {
    ModelFile::open(&common::model_path("tiny.en")).unwrap()
}

fn f32_of(file: &ModelFile, name: &str) -> (Vec<f32>, usize, usize) {
    let t = file.tensor(name).unwrap();
    let w = file
        .f16s(t)
        .unwrap()
        .iter()
        .map(|&b| half::f16::from_bits(b).to_f32())
        .collect();
    (w, t.shape[0], t.shape[1])
}

const REAL: [&str; 3] = [
    "encoder/layer_0/self_attention/linear_0/weight",
    "decoder/layer_2/ffn/linear_1/weight",
    "decoder/embeddings/weight",
];

#[test]
fn hqq_is_never_worse_than_rtn_on_real_weights() {
    let file = tiny();
    for name in REAL {
        let (w, n, k) = f32_of(&file, name);
        for scheme in [Scheme::Int4Asym, Scheme::Int3] {
            let (rtn, hqq) = hqq_vs_rtn(&w, n, k, scheme, 64);
            eprintln!("{name} {scheme:?} g64: RTN {rtn:.6} HQQ {hqq:.6}");
            assert!(hqq <= rtn, "{name} {scheme:?}: HQQ {hqq} > RTN {rtn}");
        }
    }
}

#[test]
fn tensor_selection_and_keep_patterns() {
    let file = tiny();
    let picked: Vec<&str> = file
        .tensors()
        .iter()
        .filter(|t| is_quantizable(t))
        .map(|t| t.name.as_str())
        .collect();
    let c = file.config();
    // Encoder: qkv, out, ffn up, ffn down; decoder: + cross q, kv, out; + embedding.
    assert_eq!(
        picked.len(),
        4 * c.n_audio_layer as usize + 7 * c.n_text_layer as usize + 1
    );
    assert!(picked.contains(&"decoder/embeddings/weight"));
    assert!(picked.iter().all(|n| !n.contains("conv")
        && !n.contains("position")
        && !n.contains("layer_norm")
        && n.ends_with("/weight")));

    assert!(keep_matches("embeddings", "decoder/embeddings/weight"));
    assert!(keep_matches(
        "decoder/*/ffn/*",
        "decoder/layer_1/ffn/linear_0/weight"
    ));
    assert!(!keep_matches(
        "decoder/*/ffn/*",
        "encoder/layer_1/ffn/linear_0/weight"
    ));
    assert!(keep_matches(
        "*linear_?/weight",
        "encoder/layer_0/ffn/linear_1/weight"
    ));
    assert!(!keep_matches(
        "*linear_?",
        "encoder/layer_0/ffn/linear_1/weight"
    ));
}

#[test]
fn impossible_option_combinations_are_refused() {
    let base = QuantizeOptions::default();
    let err = |o: QuantizeOptions| check_options(&o).unwrap_err().to_string();
    for scheme in [
        Scheme::Int8Row,
        Scheme::Int8Tensor,
        Scheme::Nf4,
        Scheme::Int4Sym,
    ] {
        let e = err(QuantizeOptions {
            scheme,
            method: Method::Hqq,
            ..base.clone()
        });
        assert!(e.contains("hqq"), "{e}");
    }
    // Low-bit schemes take int8 activations, with groups short enough for
    // exact group dots.
    for scheme in [Scheme::Int4Asym, Scheme::Nf4, Scheme::Int3] {
        for activations in [Activations::Dynamic, Activations::Static] {
            let o = QuantizeOptions {
                scheme,
                activations,
                calibrate: (activations == Activations::Static).then(|| "x".into()),
                ..base.clone()
            };
            check_options(&o).unwrap();
            let e = err(QuantizeOptions { group: 2048, ..o });
            assert!(e.contains("at most"), "{e}");
        }
    }
    let e = err(QuantizeOptions {
        activations: Activations::Static,
        ..base.clone()
    });
    assert!(e.contains("--calibrate"), "{e}");
    let e = err(QuantizeOptions {
        scheme: Scheme::Int4Asym,
        double_quant: true,
        ..base.clone()
    });
    assert!(e.contains("nf4"), "{e}");
    let e = err(QuantizeOptions {
        scheme: Scheme::Int4Asym,
        group: 48 + 1,
        ..base.clone()
    });
    assert!(e.contains("--group"), "{e}");
    for ok in [
        QuantizeOptions {
            scheme: Scheme::Int3,
            method: Method::Hqq,
            group: 128,
            ..base.clone()
        },
        QuantizeOptions {
            activations: Activations::Dynamic,
            ..base.clone()
        },
        QuantizeOptions {
            scheme: Scheme::Nf4,
            double_quant: true,
            ..base.clone()
        },
    ] {
        check_options(&ok).unwrap();
    }
}

/// Bits per weight of a scheme at group 64 for a tiny.en-sized row (k ≥ 384), the
/// documented packed layouts (docs/FORMAT.md): payload + parameters.
fn documented_bits(scheme: Scheme, k: f64) -> f64 {
    match scheme {
        Scheme::Int8Row => 8.0 + 32.0 / k,
        Scheme::Int8Tensor => 8.0,
        Scheme::Int4Sym => 4.0 + 16.0 / 64.0,
        Scheme::Int4Asym => 4.0 + 32.0 / 64.0,
        Scheme::Nf4 => 4.0 + 32.0 / 64.0,
        Scheme::Nf4Dq => 4.0 + 8.0 / 64.0 + 64.0 / (64.0 * 256.0),
        Scheme::Int3 => 3.0 + 32.0 / 64.0,
    }
}

#[test]
fn every_scheme_and_method_writes_a_loadable_file_of_the_documented_size() {
    let file = tiny();
    let dir = std::env::temp_dir().join(format!("sotto-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (Scheme::Int8Row, Method::Rtn, false),
        (Scheme::Int8Tensor, Method::Rtn, false),
        (Scheme::Int4Sym, Method::Rtn, false),
        (Scheme::Int4Asym, Method::Rtn, false),
        (Scheme::Int4Asym, Method::Hqq, false),
        (Scheme::Nf4, Method::Rtn, false),
        (Scheme::Nf4, Method::Rtn, true),
        (Scheme::Int3, Method::Rtn, false),
        (Scheme::Int3, Method::Hqq, false),
    ];
    for (scheme, method, dq) in cases {
        let out = dir.join(format!("{scheme:?}-{method:?}-{dq}.sotto"));
        let opts = QuantizeOptions {
            scheme,
            method,
            double_quant: dq,
            threads: 2,
            ..QuantizeOptions::default()
        };
        let calls = std::cell::Cell::new(0);
        let report = quantize_model(&file, &out, &opts, &|done, total| {
            assert!(done <= total);
            calls.set(calls.get() + 1);
        })
        .unwrap_or_else(|e| panic!("{scheme:?} {method:?}: {e}"));
        assert_eq!(calls.get(), file.tensors().len());
        let q = ModelFile::open(&out).unwrap();
        q.verify_checksums().unwrap();
        assert_eq!(q.file_len(), report.file_bytes);
        let (mut bytes, mut elems, mut want_bits) = (0u64, 0u64, 0f64);
        let effective = if dq { Scheme::Nf4Dq } else { scheme };
        for t in q.tensors() {
            let orig = file.tensor(&t.name).unwrap();
            assert_eq!(t.shape, orig.shape);
            if is_quantizable(orig) {
                assert_ne!(t.etype, orig.etype, "{} not quantized", t.name);
                bytes += t.len;
                elems += t.elements() as u64;
                want_bits += documented_bits(effective, t.shape[1] as f64) * t.elements() as f64;
            } else {
                assert_eq!(q.bytes(t), file.bytes(orig), "{} changed", t.name);
            }
        }
        let bits = bytes as f64 * 8.0 / elems as f64;
        let want = want_bits / elems as f64;
        // Planes are 256-byte aligned: a little header overhead per tensor, no more.
        assert!(
            bits >= want - 1e-9 && bits <= want * 1.01,
            "{scheme:?} {method:?} dq {dq}: {bits:.4} bits/weight, documented {want:.4}"
        );
        assert!((report.bits_per_weight - bits).abs() < 1e-9);
        for t in &report.tensors {
            assert!(t.method_rmse <= t.rtn_rmse * (1.0 + 1e-6), "{}", t.name);
            assert!(
                t.method_rmse > 0.0 && t.method_rmse.is_finite(),
                "{}",
                t.name
            );
        }
        eprintln!(
            "{scheme:?} {method:?} dq {dq}: {} bytes, {bits:.3} bits/weight",
            report.file_bytes
        );
        std::fs::remove_file(&out).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sotto-quantize-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn jfk_words(model: &std::path::Path) -> Vec<String> {
    let m = sotto::Model::load(model).unwrap();
    let samples = sotto::audio::load_audio(&common::jfk()).unwrap();
    let opts = {
        let mut o = sotto::Options::default();
        o.threads = 2;
        o
    };
    common::words(&m.transcribe(&samples, &opts).unwrap().text)
}

#[test]
fn static_activations_are_calibrated_and_recorded() {
    // Calibration audio: three test-other utterances (so runs with static scales
    // should be evaluated on test-clean, or these three left out).
    let calib = temp_dir("calib");
    for f in [
        "1688-142285-0000.wav",
        "1688-142285-0001.wav",
        "1688-142285-0002.wav",
    ] {
        std::fs::copy(
            common::repo_path("eval/librispeech/test-other").join(f),
            calib.join(f),
        )
        .unwrap();
    }
    std::fs::write(calib.join("notes.txt"), "not audio").unwrap();
    let file = tiny();
    let out = calib.join("static.sotto");
    let opts = QuantizeOptions {
        scheme: Scheme::Int8Row,
        activations: Activations::Static,
        calibrate: Some(calib.clone()),
        threads: 2,
        ..QuantizeOptions::default()
    };
    let report = quantize_model(&file, &out, &opts, &|_, _| {}).unwrap();
    let q = ModelFile::open(&out).unwrap();
    assert_eq!(
        q.config().activations,
        sotto::format::ActivationMode::Static
    );
    let mut scales = 0;
    for t in &report.tensors {
        let name = sotto::format::act_scale_name(&t.name).unwrap();
        let s = q.f32s(q.tensor(&name).unwrap()).unwrap()[0];
        // absmax / 127 of real activations: well inside (1e-4, 10).
        assert!(s > 1e-4 && s < 10.0, "{name} = {s}");
        scales += 1;
    }
    assert_eq!(scales, report.tensors.len());
    let words = jfk_words(&out);
    assert!(
        words
            .join(" ")
            .contains("ask not what your country can do for you"),
        "{words:?}"
    );
    // A directory without audio is a clear error.
    let empty = temp_dir("empty");
    let e = quantize_model(
        &file,
        &empty.join("x.sotto"),
        &QuantizeOptions {
            calibrate: Some(empty.clone()),
            ..opts
        },
        &|_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no audio files"), "{e}");
    std::fs::remove_dir_all(&calib).ok();
    std::fs::remove_dir_all(&empty).ok();
}

#[test]
fn dynamic_activations_and_kept_tensors() {
    let file = tiny();
    let dir = temp_dir("dynamic");
    let out = dir.join("dyn.sotto");
    let opts = QuantizeOptions {
        scheme: Scheme::Int8Row,
        activations: Activations::Dynamic,
        keep: vec!["decoder/embeddings".into(), "encoder/layer_0/*".into()],
        threads: 2,
        ..QuantizeOptions::default()
    };
    let report = quantize_model(&file, &out, &opts, &|_, _| {}).unwrap();
    let q = ModelFile::open(&out).unwrap();
    assert_eq!(
        q.config().activations,
        sotto::format::ActivationMode::Dynamic
    );
    for name in [
        "decoder/embeddings/weight",
        "encoder/layer_0/ffn/linear_0/weight",
    ] {
        let t = q.tensor(name).unwrap();
        assert_eq!(t.etype, sotto::format::ElementType::F16, "{name}");
        let r = report.tensors.iter().find(|r| r.name == name).unwrap();
        assert_eq!(r.scheme, "f16");
    }
    let t = q.tensor("encoder/layer_1/ffn/linear_0/weight").unwrap();
    assert_eq!(t.etype, sotto::format::ElementType::Int8Row);
    let words = jfk_words(&out);
    assert!(
        words
            .join(" ")
            .contains("ask not what your country can do for you"),
        "{words:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn sotto_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args(args)
        .output()
        .expect("run sotto")
}

#[test]
fn cli_refuses_bad_combinations_and_prints_a_report() {
    let model = common::model_path("tiny.en");
    let m = model.to_str().unwrap();
    let dir = temp_dir("cli");
    let out = dir.join("q.sotto");
    let o = out.to_str().unwrap();
    for (args, want) in [
        (vec!["--scheme", "int8", "--method", "hqq"], "hqq"),
        (vec!["--scheme", "nf4", "--method", "hqq"], "hqq"),
        (
            vec![
                "--scheme",
                "int4",
                "--group",
                "2048",
                "--activations",
                "dynamic",
            ],
            "at most",
        ),
        (
            vec!["--scheme", "int8", "--activations", "static"],
            "--calibrate",
        ),
        (vec!["--scheme", "nf4", "--symmetric"], "--symmetric"),
        (vec!["--scheme", "int4", "--group", "48"], "--group"),
        (vec!["--scheme", "int8", "--double-quant"], "nf4"),
    ] {
        let mut a = vec!["quantize", m, o];
        a.extend(&args);
        let r = sotto_cli(&a);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote a file");
    }
    let r = sotto_cli(&[
        "quantize",
        m,
        o,
        "--scheme",
        "int4",
        "--symmetric",
        "--group",
        "128",
        "--report",
        "-t",
        "2",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let table = String::from_utf8_lossy(&r.stdout);
    assert!(table.contains("decoder/embeddings/weight"), "{table}");
    assert!(table.contains("int4-sym"), "{table}");
    let total = table.lines().last().unwrap();
    assert!(
        total.starts_with("total:") && total.contains("bits/weight"),
        "{total}"
    );
    assert!(total.contains("of the f32 model"), "{total}");
    let q = ModelFile::open(&out).unwrap();
    let t = q.tensor("decoder/layer_0/ffn/linear_1/weight").unwrap();
    assert_eq!(
        (t.etype, t.group),
        (sotto::format::ElementType::Int4Sym, 128)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// int4 (HQQ) weights with dynamic int8 activations: recorded in the file and
/// transcribed on the CPU by the low-bit × int8 kernels (the GPU's: tests/gpu.rs).
#[test]
fn low_bit_weights_with_int8_activations() {
    let file = tiny();
    let dir = temp_dir("lowbit-dyn");
    let out = dir.join("int4-dyn.sotto");
    let opts = QuantizeOptions {
        scheme: Scheme::Int4Asym,
        method: Method::Hqq,
        activations: Activations::Dynamic,
        threads: 2,
        ..QuantizeOptions::default()
    };
    quantize_model(&file, &out, &opts, &|_, _| {}).unwrap();
    let q = ModelFile::open(&out).unwrap();
    assert_eq!(
        q.config().activations,
        sotto::format::ActivationMode::Dynamic
    );
    let t = q.tensor("decoder/layer_0/ffn/linear_1/weight").unwrap();
    assert_eq!(t.etype, sotto::format::ElementType::Int4Asym);
    let words = jfk_words(&out);
    assert!(
        words
            .join(" ")
            .contains("ask not what your country can do for you"),
        "{words:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

// ------------------------------------------------------------------ GPTQ

/// `m × k` inputs whose columns are strongly correlated (a few shared factors plus
/// a little noise) and differ in scale, like a layer's activations; and `XᵀX`.
fn correlated_inputs(rng: &mut Rng, m: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    let factors = 8;
    let mix: Vec<f32> = (0..factors * k).map(|_| rng.gauss()).collect();
    let col_scale: Vec<f32> = (0..k).map(|j| 0.2 + (j % 7) as f32 * 0.5).collect();
    let mut x = vec![0f32; m * k];
    for r in 0..m {
        let f: Vec<f32> = (0..factors).map(|_| rng.gauss()).collect();
        for j in 0..k {
            let v: f32 = (0..factors).map(|i| f[i] * mix[i * k + j]).sum::<f32>();
            x[r * k + j] = (v + 0.05 * rng.gauss()) * col_scale[j];
        }
    }
    let mut h = vec![0f32; k * k];
    for row in x.chunks(k) {
        for i in 0..k {
            for j in 0..k {
                h[i * k + j] += row[i] * row[j];
            }
        }
    }
    (x, h)
}

/// `‖X·(W − V)ᵀ‖²` computed directly on the inputs.
fn layer_output_sse(x: &[f32], w: &[f32], v: &[f32], n: usize, k: usize) -> f64 {
    let mut sse = 0f64;
    for row in x.chunks(k) {
        for o in 0..n {
            let d: f64 = (0..k)
                .map(|j| row[j] as f64 * (w[o * k + j] - v[o * k + j]) as f64)
                .sum();
            sse += d * d;
        }
    }
    sse
}

#[test]
fn gptq_reduces_the_layer_output_error_against_rtn() {
    let (n, k, m) = (24, 128, 400);
    let mut rng = Rng(0x9e37_79b9);
    let (x, h) = correlated_inputs(&mut rng, m, k);
    let w: Vec<f32> = (0..n * k).map(|_| rng.heavy()).collect();
    for scheme in [
        Scheme::Int4Asym,
        Scheme::Nf4,
        Scheme::Nf4Dq,
        Scheme::Int3,
        Scheme::Int4Sym,
    ] {
        for act_order in [true, false] {
            let cfg = GptqConfig {
                act_order,
                ..GptqConfig::default()
            };
            let r = gptq_tensor(&w, n, k, scheme, 32, &h, &cfg, 2).unwrap();
            let rtn = quantize_tensor(&w, n, k, scheme, 32, Method::Rtn).unwrap();
            // What the file would store, read back through the runtime's decoder.
            let (gptq_w, _) = packed_decode(&r.q);
            let (rtn_w, _) = packed_decode(&rtn);
            let e_gptq = layer_output_sse(&x, &w, &gptq_w, n, k);
            let e_rtn = layer_output_sse(&x, &w, &rtn_w, n, k);
            assert!(
                e_gptq < 0.7 * e_rtn,
                "{scheme:?} act_order {act_order}: GPTQ output error {e_gptq:.4e} vs RTN {e_rtn:.4e}"
            );
            // The reported errors are the same quantities through H.
            let direct = output_error(&w, &gptq_w, &h, k);
            assert!(
                (r.output_error - direct).abs() <= 1e-3 * direct.max(1e-12),
                "{scheme:?}: {} vs {direct}",
                r.output_error
            );
            assert!(r.output_error < r.rtn_output_error);
        }
    }
}

#[test]
fn gptq_layout_is_the_schemes_own_and_round_trips_through_a_file() {
    let (n, k, m) = (16, 192, 300);
    let mut rng = Rng(77);
    let (_, h) = correlated_inputs(&mut rng, m, k);
    let w: Vec<f32> = (0..n * k).map(|_| rng.heavy()).collect();
    for scheme in [Scheme::Int4Asym, Scheme::Nf4, Scheme::Nf4Dq, Scheme::Int3] {
        let r = gptq_tensor(&w, n, k, scheme, 64, &h, &GptqConfig::default(), 1).unwrap();
        let rtn = quantize_tensor(&w, n, k, scheme, 64, Method::Rtn).unwrap();
        assert_eq!(r.q.codes.len(), rtn.codes.len());
        assert_eq!(r.q.scales.len(), rtn.scales.len());
        assert_eq!(r.q.zeros.len(), rtn.zeros.len());
        assert_eq!(r.q.group, rtn.group);
        // Reconstruct from the parameters, pack, unpack: the same values, and the
        // codes survive (checked in packed_decode).
        let (stored, _) = packed_decode(&r.q);
        if scheme != Scheme::Nf4Dq {
            let mine = reconstruct(&r.q);
            assert!(rmse(&mine, &stored) < 1e-6, "{scheme:?}");
        }
        // Same threads or not, the same result.
        let r2 = gptq_tensor(&w, n, k, scheme, 64, &h, &GptqConfig::default(), 3).unwrap();
        assert_eq!(r.q.codes, r2.q.codes, "{scheme:?}");
    }
}

#[test]
fn gptq_survives_degenerate_hessians() {
    let (n, k) = (8, 64);
    let mut rng = Rng(5);
    let w: Vec<f32> = (0..n * k).map(|_| rng.heavy()).collect();
    let check = |h: &[f32], what: &str| {
        for damp in [0.0, 0.01] {
            let cfg = GptqConfig {
                damp,
                ..GptqConfig::default()
            };
            let r = gptq_tensor(&w, n, k, Scheme::Int4Asym, 32, h, &cfg, 2)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let (v, _) = packed_decode(&r.q);
            assert!(v.iter().all(|x| x.is_finite()), "{what}");
            assert!(r.output_error.is_finite() && r.rtn_output_error.is_finite());
            // No worse than a generous multiple of the RTN weight error.
            let rtn = quantize_tensor(&w, n, k, Scheme::Int4Asym, 32, Method::Rtn).unwrap();
            assert!(
                rmse(&w, &v) < 4.0 * rmse(&w, &reconstruct(&rtn)) + 1e-6,
                "{what}"
            );
        }
    };
    // All zero: no input was ever seen.
    check(&vec![0f32; k * k], "zero Hessian");
    // Rank one (one input row): singular without damping.
    let x: Vec<f32> = (0..k).map(|_| rng.gauss()).collect();
    let mut h = vec![0f32; k * k];
    for i in 0..k {
        for j in 0..k {
            h[i * k + j] = x[i] * x[j];
        }
    }
    check(&h, "rank-one Hessian");
    // Half the inputs dead (zero columns).
    let (_, mut h2) = correlated_inputs(&mut rng, 100, k);
    for i in (0..k).step_by(2) {
        for j in 0..k {
            h2[i * k + j] = 0.0;
            h2[j * k + i] = 0.0;
        }
    }
    check(&h2, "dead inputs");
    // Zero weights.
    let zeros = vec![0f32; n * k];
    let r = gptq_tensor(
        &zeros,
        n,
        k,
        Scheme::Nf4,
        32,
        &h2,
        &GptqConfig::default(),
        1,
    )
    .unwrap();
    assert!(packed_decode(&r.q).0.iter().all(|&v| v == 0.0));
    // Bad input is an error, not a panic.
    let mut nan_h = h.clone();
    nan_h[3] = f32::NAN;
    assert!(gptq_tensor(
        &w,
        n,
        k,
        Scheme::Int4Asym,
        32,
        &nan_h,
        &GptqConfig::default(),
        1
    )
    .is_err());
    assert!(gptq_tensor(
        &w,
        n,
        k,
        Scheme::Int4Asym,
        32,
        &h[..10],
        &GptqConfig::default(),
        1
    )
    .is_err());
    assert!(gptq_tensor(&w, n, k, Scheme::Int8Row, 32, &h, &GptqConfig::default(), 1).is_err());
    assert!(gptq_tensor(
        &w,
        n,
        k,
        Scheme::Int4Asym,
        48,
        &h,
        &GptqConfig::default(),
        1
    )
    .is_err());
    let mut bad_w = w.clone();
    bad_w[0] = f32::INFINITY;
    assert!(gptq_tensor(
        &bad_w,
        n,
        k,
        Scheme::Int4Asym,
        32,
        &h,
        &GptqConfig::default(),
        1
    )
    .is_err());
}

#[test]
fn gptq_model_needs_calibration_audio_and_writes_a_working_file() {
    let file = tiny();
    let bad = QuantizeOptions {
        scheme: Scheme::Int4Asym,
        method: Method::Gptq,
        ..QuantizeOptions::default()
    };
    assert!(check_options(&bad)
        .unwrap_err()
        .to_string()
        .contains("--calibrate"));
    let int8 = QuantizeOptions {
        scheme: Scheme::Int8Row,
        calibrate: Some("x".into()),
        ..bad.clone()
    };
    assert!(check_options(&int8).is_err());
    // Two test-other utterances as calibration audio (not jfk, which is checked).
    let calib = temp_dir("gptq-calib");
    for f in ["1688-142285-0000.wav", "1688-142285-0001.wav"] {
        std::fs::copy(
            common::repo_path("eval/librispeech/test-other").join(f),
            calib.join(f),
        )
        .unwrap();
    }
    let out = calib.join("gptq.sotto");
    let opts = QuantizeOptions {
        calibrate: Some(calib.clone()),
        threads: 2,
        keep: vec![
            "encoder/layer_1*".into(),
            "encoder/layer_2*".into(),
            "encoder/layer_3*".into(),
            "decoder/layer_1*".into(),
            "decoder/layer_2*".into(),
            "decoder/layer_3*".into(),
        ],
        ..bad
    };
    let report = quantize_model(&file, &out, &opts, &|_, _| {}).unwrap();
    let gptq: Vec<_> = report
        .tensors
        .iter()
        .filter_map(|t| t.output_error)
        .collect();
    assert!(!gptq.is_empty());
    // On the calibration inputs GPTQ's output error is below RTN's in total.
    let (rtn, mine): (f64, f64) = gptq.iter().fold((0.0, 0.0), |a, e| (a.0 + e.0, a.1 + e.1));
    assert!(mine < rtn, "GPTQ {mine} vs RTN {rtn}");
    let words = jfk_words(&out);
    assert!(
        words
            .join(" ")
            .contains("ask not what your country can do for you"),
        "{words:?}"
    );
    std::fs::remove_dir_all(&calib).ok();
}
