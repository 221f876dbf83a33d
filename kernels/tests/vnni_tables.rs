//! The VNNI kernel tables (`avx2vnni`, `avx512vnni`, `amx`) against the scalar
//! reference, entry by entry: float and f16 `linear`, weight-only and int8-
//! activation packed layers of every scheme, layer norm, GELU, attention and
//! f16 conversion must all give the reference's bits.
//!
//! Each comparison is between different functions: a VNNI table shares most
//! of its entries with its base set (`avx2`, `avx512`), so comparing it with
//! the base would compare those entries with themselves and could not fail.
//! The scalar kernels are written independently (plain loops spelling out
//! the canonical order), so a wrong entry in a VNNI table — a base-set
//! function that is not bit-exact, or a VNNI path miswired — shows here.
#![cfg(target_arch = "x86_64")]

mod common;

use common::{f32_to_f16_bits, Rng};
use sotto_kernels::schemes::{pack, view, ActQuant, Quantized, Scheme};
use sotto_kernels::{AttentionShape, Kernels, Pool, Weights};

fn same_bits(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits(),
            "{what}: element {i} differs: {x} vs {y}"
        );
    }
}

/// (the scalar reference, a VNNI set) for every VNNI set this CPU has.
fn pairs() -> Vec<(Kernels, Kernels)> {
    let scalar = Kernels::with_isa("scalar").unwrap();
    ["avx2vnni", "avx512vnni", "amx"]
        .into_iter()
        .filter_map(|b| Some((scalar, Kernels::with_isa(b)?)))
        .collect()
}

#[test]
fn vnni_tables_match_the_scalar_reference() {
    let pool = Pool::new(2);
    let mut rng = Rng::new(41);
    let pairs = pairs();
    if pairs.is_empty() {
        eprintln!("no VNNI kernel set on this CPU: nothing to compare");
    }
    for (base, vnni) in pairs {
        assert_ne!(base.isa(), vnni.isa());
        let what = |s: &str| format!("{} vs {} {s}", vnni.name(), base.name());
        for &(m, k, n) in &[(1, 100, 17), (3, 384, 40), (17, 65, 33), (40, 384, 70)] {
            let x = rng.vec(m * k, 1.0);
            let bias = rng.vec(n, 0.5);
            let run = |kern: &Kernels, w: Weights| {
                let mut out = vec![f32::NAN; m * n];
                kern.linear(&pool, &x, m, k, w, n, Some(&bias), &mut out);
                out
            };
            let wf = rng.vec(n * k, 0.3);
            let wh: Vec<u16> = wf.iter().map(|&v| f32_to_f16_bits(v)).collect();
            for (label, w) in [("f32", Weights::F32(&wf)), ("f16", Weights::F16(&wh))] {
                same_bits(&what(label), &run(&base, w), &run(&vnni, w));
            }
            for scheme in Scheme::ALL {
                let group = if scheme.is_int8() { 0 } else { 32 };
                let max = scheme.max_code() as usize;
                let codes = (0..n * k)
                    .map(|_| {
                        if scheme.is_int8() {
                            (rng.below(255) as i32 - 127) as i8 as u8
                        } else {
                            rng.below(max + 1) as u8
                        }
                    })
                    .collect();
                let ns = scheme.n_scales(n, k, group).unwrap();
                let q = Quantized {
                    scheme,
                    n,
                    k,
                    group,
                    codes,
                    scales: (0..ns).map(|_| 0.01 + rng.unit().abs() * 0.02).collect(),
                    zeros: if scheme.has_zeros() {
                        (0..ns).map(|_| rng.below(max + 1) as f32).collect()
                    } else {
                        Vec::new()
                    },
                };
                let bytes = pack(&q).unwrap();
                for act in [ActQuant::Float, ActQuant::Dynamic, ActQuant::Static(0.008)] {
                    let w = view(scheme, n, k, group, &bytes, act).unwrap();
                    let label = format!("{scheme:?} {act:?} m={m} k={k} n={n}");
                    same_bits(
                        &what(&label),
                        &run(&base, Weights::Packed(w)),
                        &run(&vnni, Weights::Packed(w)),
                    );
                }
            }
        }

        let (rows, d) = (7, 385);
        let x = rng.vec(rows * d, 3.0);
        let (gamma, beta) = (rng.vec(d, 1.0), rng.vec(d, 0.2));
        let norm = |kern: &Kernels| {
            let mut out = vec![0.0; rows * d];
            kern.layer_norm(&x, d, &gamma, &beta, &mut out);
            out
        };
        same_bits(&what("layer norm"), &norm(&base), &norm(&vnni));
        let gelu = |kern: &Kernels| {
            let mut v = x.clone();
            kern.gelu(&mut v);
            v
        };
        same_bits(&what("gelu"), &gelu(&base), &gelu(&vnni));
        let half: Vec<u16> = x.iter().map(|&v| f32_to_f16_bits(v)).collect();
        let conv = |kern: &Kernels| {
            let mut v = vec![0.0; half.len()];
            kern.f16_to_f32(&half, &mut v);
            v
        };
        same_bits(&what("f16 to f32"), &conv(&base), &conv(&vnni));

        for causal in [None, Some(3)] {
            let (n_q, n_kv, heads, hd) = (9, 37, 3, 24);
            let width = heads * hd;
            let q = rng.vec(n_q * width, 1.0);
            let kv = rng.vec(n_kv * 2 * width, 1.0);
            let shape = AttentionShape {
                n_q,
                n_kv,
                n_head: heads,
                head_dim: hd,
                q_stride: width,
                kv_stride: 2 * width,
                kv_head_stride: hd,
                out_stride: width,
                causal_offset: causal,
            };
            let att = |kern: &Kernels| {
                let mut out = vec![0.0; n_q * width];
                kern.attention(&pool, &q, &kv, &kv[width..], shape, &mut out);
                out
            };
            same_bits(&what("attention"), &att(&base), &att(&vnni));
        }
    }
}
