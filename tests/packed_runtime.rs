//! The runtime on packed weights: tiny.en with every linear layer and the token
//! embedding quantized by a naive round-to-nearest written here (independent of
//! `sotto quantize`), built in memory, must still transcribe jfk.wav word for word.
mod common;

use common::*;
use sotto::format::{ActivationMode, ElementType, FileWriter, ModelFile};
use sotto::{Model, Options};
use sotto_kernels::schemes::{self, Quantized, Scheme};
use sotto_kernels::Kernels;

fn f16_round(v: f32) -> f32 {
    schemes::f16_bits_to_f32(schemes::f32_to_f16_bits(v))
}

/// Naive RTN of an `n × k` matrix: int8 per row (absmax / 127), or asymmetric int4 per
/// group (scale = range / 15, zero = −min / scale, both rounded to f16 first).
fn rtn(w: &[f32], n: usize, k: usize, scheme: Scheme, group: usize) -> Quantized {
    let mut q = Quantized {
        scheme,
        n,
        k,
        group,
        codes: Vec::with_capacity(n * k),
        scales: vec![],
        zeros: vec![],
    };
    for row in w.chunks_exact(k) {
        match scheme {
            Scheme::Int8Row => {
                let a = row.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
                let s = if a > 0.0 { a / 127.0 } else { 1.0 };
                q.scales.push(s);
                q.codes.extend(
                    row.iter()
                        .map(|&v| (v / s).round().clamp(-127.0, 127.0) as i8 as u8),
                );
            }
            Scheme::Int4Asym => {
                for g in row.chunks(group) {
                    let lo = g.iter().copied().fold(f32::INFINITY, f32::min).min(0.0);
                    let hi = g.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(0.0);
                    let s = f16_round(((hi - lo) / 15.0).max(1e-7));
                    let z = f16_round((-lo / s).round());
                    q.scales.push(s);
                    q.zeros.push(z);
                    q.codes.extend(
                        g.iter()
                            .map(|&v| (v / s + z).round().clamp(0.0, 15.0) as u8),
                    );
                }
            }
            _ => unreachable!(),
        }
    }
    q
}

fn is_packed_here(name: &str, rank: usize) -> bool {
    rank == 2
        && (name == "decoder/embeddings/weight"
            || name
                .strip_suffix("/weight")
                .and_then(|p| p.rsplit('/').next())
                .is_some_and(|l| l.starts_with("linear_")))
}

/// tiny.en with its linear layers and embedding in `scheme`, as an in-memory file.
fn packed_tiny(scheme: Scheme, mode: ActivationMode) -> ModelFile {
    let src = ModelFile::open(&model_path("tiny.en")).unwrap();
    let c = src.config().clone();
    let vocab = (0..c.n_vocab)
        .map(|id| src.token_bytes(id).to_vec())
        .collect();
    let mut w = FileWriter::new(c, vocab, src.mel_filters().to_vec());
    w.set_activations(mode);
    let mut packed = 0;
    for t in src.tensors() {
        if !is_packed_here(&t.name, t.shape.len()) {
            w.add_tensor(&t.name, t.etype, &t.shape, t.group, src.bytes(t).to_vec())
                .unwrap();
            continue;
        }
        let vals: Vec<f32> = src
            .f16s(t)
            .unwrap()
            .iter()
            .map(|&h| schemes::f16_bits_to_f32(h))
            .collect();
        let (n, k) = (t.shape[0], t.shape[1]);
        let g = schemes::default_group(scheme);
        let data = schemes::pack(&rtn(&vals, n, k, scheme, g)).unwrap();
        w.add_tensor(
            &t.name,
            ElementType::from_scheme(scheme),
            &t.shape,
            g as u32,
            data,
        )
        .unwrap();
        packed += 1;
    }
    // CTranslate2 fuses projections: per encoder layer self-attention (qkv, out) and
    // ffn (2); per decoder layer self-attention (2), cross-attention (q, kv, out) and
    // ffn (2); plus the embedding.
    assert_eq!(packed, 4 * 4 + 4 * 7 + 1);
    ModelFile::from_bytes(w.to_bytes().unwrap()).unwrap()
}

fn check_jfk(file: ModelFile, kernels: Option<Kernels>) {
    let mut model = Model::from_file(file).unwrap();
    if let Some(k) = kernels {
        model = model.with_kernels(k);
    }
    let samples = sotto::audio::load_audio(&jfk()).unwrap();
    let t = model
        .transcribe(&samples, &{
            let mut o = Options::default();
            o.threads = 2;
            o
        })
        .unwrap();
    assert_eq!(
        words(&t.text),
        words(JFK),
        "{}: got {}",
        model.kernels().name(),
        t.text
    );
}

#[test]
fn int8_dynamic_tiny_en_transcribes_jfk() {
    check_jfk(packed_tiny(Scheme::Int8Row, ActivationMode::Dynamic), None);
}

#[test]
fn int4_tiny_en_transcribes_jfk() {
    check_jfk(packed_tiny(Scheme::Int4Asym, ActivationMode::None), None);
}

/// The scalar reference end to end (the fallback on CPUs without SIMD kernels).
#[test]
fn int8_dynamic_tiny_en_on_the_scalar_reference() {
    check_jfk(
        packed_tiny(Scheme::Int8Row, ActivationMode::Dynamic),
        Kernels::with_isa("scalar"),
    );
}
