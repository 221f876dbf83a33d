//! `sotto convert` on synthetic checkpoints of every Whisper family, random weights
//! at reduced width (head size 8) and a short audio context, but the real layer and
//! head counts, mel bins and vocabularies: written as a CTranslate2 directory, a
//! Hugging Face directory and a whisper.cpp ggml file, converted, checked to give the
//! same tensors, the architecture and special tokens, and run on every kernel set
//! and on the GPU (lavapipe in CI).
//! Hostile edits of the sources give clear errors and no output.
mod common;

use sotto::convert::{convert_model, ConvertOptions};
use sotto::format::ModelFile;
use sotto::quantize::{Activations, QuantizeOptions, Scheme};
use sotto::{LoadOptions, Model};
use sotto_kernels::Kernels;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Whisper's language codes in token order (openai/whisper tokenizer.py; large-v3 adds yue).
const LANGS: [&str; 100] = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

#[derive(Clone, Copy, Debug)]
struct Arch {
    name: &'static str,
    heads: usize,
    enc_layers: usize,
    dec_layers: usize,
    n_mels: usize,
    n_vocab: usize,
}

impl Arch {
    /// Reduced width: 8 per head.
    fn d(&self) -> usize {
        8 * self.heads
    }
    fn languages(&self) -> usize {
        self.n_vocab - 50257 - 1509
    }
}

/// The families' real structure (openai/whisper model dimensions; distil-large-v3 and
/// large-v3-turbo from their config.json on the Hugging Face hub).
const ARCHS: [Arch; 5] = [
    Arch {
        name: "small",
        heads: 12,
        enc_layers: 12,
        dec_layers: 12,
        n_mels: 80,
        n_vocab: 51865,
    },
    Arch {
        name: "medium",
        heads: 16,
        enc_layers: 24,
        dec_layers: 24,
        n_mels: 80,
        n_vocab: 51865,
    },
    Arch {
        name: "large-v3",
        heads: 20,
        enc_layers: 32,
        dec_layers: 32,
        n_mels: 128,
        n_vocab: 51866,
    },
    Arch {
        name: "large-v3-turbo",
        heads: 20,
        enc_layers: 32,
        dec_layers: 4,
        n_mels: 128,
        n_vocab: 51866,
    },
    Arch {
        name: "distil-large-v3",
        heads: 20,
        enc_layers: 32,
        dec_layers: 2,
        n_mels: 128,
        n_vocab: 51866,
    },
];
const AUDIO_CTX: usize = 12;
const TEXT_CTX: usize = 448;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;
/// Adds a random tensor: (tensors, name, shape, scale, base).
type AddFn<'a> = dyn FnMut(&mut Tensors, String, Vec<usize>, f32, f32) + 'a;

/// Random weights under CTranslate2's names, f16-representable, key biases zero.
fn weights(a: &Arch) -> Tensors {
    let d = a.d();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ a.n_vocab as u64 ^ (a.dec_layers as u64) << 20);
    let mut t = Tensors::new();
    let mut add = |t: &mut Tensors, name: String, shape: Vec<usize>, scale: f32, base: f32| {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|_| half::f16::from_f32(base + scale * rng.next()).to_f32())
            .collect();
        t.insert(name, (shape, v));
    };
    let lin = |t: &mut Tensors, add: &mut AddFn<'_>, p: &str, n: usize, k: usize| {
        add(
            t,
            format!("{p}/weight"),
            vec![n, k],
            1.0 / (k as f32).sqrt(),
            0.0,
        );
        add(t, format!("{p}/bias"), vec![n], 0.05, 0.0);
    };
    let norm = |t: &mut Tensors, add: &mut AddFn<'_>, p: &str| {
        add(t, format!("{p}/gamma"), vec![d], 0.1, 1.0);
        add(t, format!("{p}/beta"), vec![d], 0.05, 0.0);
    };
    let zero_key = |t: &mut Tensors, p: &str, skip: usize| {
        let b = &mut t.get_mut(&format!("{p}/bias")).unwrap().1;
        b[skip * d..(skip + 1) * d]
            .iter_mut()
            .for_each(|x| *x = 0.0);
    };
    add(
        &mut t,
        "encoder/conv1/weight".into(),
        vec![d, a.n_mels, 3],
        0.2,
        0.0,
    );
    add(&mut t, "encoder/conv1/bias".into(), vec![d], 0.05, 0.0);
    add(
        &mut t,
        "encoder/conv2/weight".into(),
        vec![d, d, 3],
        0.1,
        0.0,
    );
    add(&mut t, "encoder/conv2/bias".into(), vec![d], 0.05, 0.0);
    add(
        &mut t,
        "encoder/position_encodings/encodings".into(),
        vec![AUDIO_CTX, d],
        0.5,
        0.0,
    );
    for i in 0..a.enc_layers {
        let p = format!("encoder/layer_{i}");
        norm(&mut t, &mut add, &format!("{p}/self_attention/layer_norm"));
        lin(
            &mut t,
            &mut add,
            &format!("{p}/self_attention/linear_0"),
            3 * d,
            d,
        );
        zero_key(&mut t, &format!("{p}/self_attention/linear_0"), 1);
        lin(
            &mut t,
            &mut add,
            &format!("{p}/self_attention/linear_1"),
            d,
            d,
        );
        norm(&mut t, &mut add, &format!("{p}/ffn/layer_norm"));
        lin(&mut t, &mut add, &format!("{p}/ffn/linear_0"), 4 * d, d);
        lin(&mut t, &mut add, &format!("{p}/ffn/linear_1"), d, 4 * d);
    }
    norm(&mut t, &mut add, "encoder/layer_norm");
    add(
        &mut t,
        "decoder/embeddings/weight".into(),
        vec![a.n_vocab, d],
        0.5,
        0.0,
    );
    add(
        &mut t,
        "decoder/position_encodings/encodings".into(),
        vec![TEXT_CTX, d],
        0.5,
        0.0,
    );
    for i in 0..a.dec_layers {
        let p = format!("decoder/layer_{i}");
        norm(&mut t, &mut add, &format!("{p}/self_attention/layer_norm"));
        lin(
            &mut t,
            &mut add,
            &format!("{p}/self_attention/linear_0"),
            3 * d,
            d,
        );
        zero_key(&mut t, &format!("{p}/self_attention/linear_0"), 1);
        lin(
            &mut t,
            &mut add,
            &format!("{p}/self_attention/linear_1"),
            d,
            d,
        );
        norm(&mut t, &mut add, &format!("{p}/attention/layer_norm"));
        lin(&mut t, &mut add, &format!("{p}/attention/linear_0"), d, d);
        lin(
            &mut t,
            &mut add,
            &format!("{p}/attention/linear_1"),
            2 * d,
            d,
        );
        zero_key(&mut t, &format!("{p}/attention/linear_1"), 0);
        lin(&mut t, &mut add, &format!("{p}/attention/linear_2"), d, d);
        norm(&mut t, &mut add, &format!("{p}/ffn/layer_norm"));
        lin(&mut t, &mut add, &format!("{p}/ffn/linear_0"), 4 * d, d);
        lin(&mut t, &mut add, &format!("{p}/ffn/linear_1"), d, 4 * d);
    }
    norm(&mut t, &mut add, "decoder/layer_norm");
    t
}

/// OpenAI-structured names (Hugging Face or whisper.cpp) from CTranslate2's, fused
/// projections split, key biases dropped.
fn openai_layout(a: &Arch, w: &Tensors, hf: bool) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let d = a.d();
    let (enc, dec) = if hf {
        ("model.encoder.layers.", "model.decoder.layers.")
    } else {
        ("encoder.blocks.", "decoder.blocks.")
    };
    let [q, k, v, o] = if hf {
        ["q_proj", "k_proj", "v_proj", "out_proj"]
    } else {
        ["query", "key", "value", "out"]
    };
    let (sa, sn, ca, cn) = if hf {
        (
            "self_attn",
            "self_attn_layer_norm",
            "encoder_attn",
            "encoder_attn_layer_norm",
        )
    } else {
        ("attn", "attn_ln", "cross_attn", "cross_attn_ln")
    };
    let (f1, f2, fnorm) = if hf {
        ("fc1", "fc2", "final_layer_norm")
    } else {
        ("mlp.0", "mlp.2", "mlp_ln")
    };
    let mut out = Vec::new();
    let get = |n: &str| w.get(n).unwrap_or_else(|| panic!("{n}")).clone();
    let lin = |out: &mut Vec<_>, from: &str, to: &str| {
        let (s, x) = get(&format!("{from}/weight"));
        out.push((format!("{to}.weight"), s, x));
        let (s, x) = get(&format!("{from}/bias"));
        out.push((format!("{to}.bias"), s, x));
    };
    let norm = |out: &mut Vec<_>, from: &str, to: &str| {
        let (s, x) = get(&format!("{from}/gamma"));
        out.push((format!("{to}.weight"), s, x));
        let (s, x) = get(&format!("{from}/beta"));
        out.push((format!("{to}.bias"), s, x));
    };
    let split = |out: &mut Vec<_>, from: &str, to: &[String]| {
        let (_, ws) = get(&format!("{from}/weight"));
        let (_, bs) = get(&format!("{from}/bias"));
        for (i, name) in to.iter().enumerate() {
            out.push((
                format!("{name}.weight"),
                vec![d, d],
                ws[i * d * d..(i + 1) * d * d].to_vec(),
            ));
            if !name.ends_with(k) {
                out.push((
                    format!("{name}.bias"),
                    vec![d],
                    bs[i * d..(i + 1) * d].to_vec(),
                ));
            }
        }
    };
    let conv = if hf {
        "model.encoder.conv"
    } else {
        "encoder.conv"
    };
    for i in 1..=2 {
        lin(&mut out, &format!("encoder/conv{i}"), &format!("{conv}{i}"));
        if !hf {
            // whisper.cpp stores conv biases as [n, 1].
            let b = out.last_mut().unwrap();
            b.1 = vec![d, 1];
        }
    }
    let pos = |hf: bool, e: bool| match (hf, e) {
        (true, true) => "model.encoder.embed_positions.weight",
        (true, false) => "model.decoder.embed_positions.weight",
        (false, true) => "encoder.positional_embedding",
        (false, false) => "decoder.positional_embedding",
    };
    let (s, x) = get("encoder/position_encodings/encodings");
    out.push((pos(hf, true).into(), s, x));
    for i in 0..a.enc_layers {
        let (f, t) = (format!("encoder/layer_{i}"), format!("{enc}{i}"));
        norm(
            &mut out,
            &format!("{f}/self_attention/layer_norm"),
            &format!("{t}.{sn}"),
        );
        split(
            &mut out,
            &format!("{f}/self_attention/linear_0"),
            &[q, k, v].map(|p| format!("{t}.{sa}.{p}")),
        );
        lin(
            &mut out,
            &format!("{f}/self_attention/linear_1"),
            &format!("{t}.{sa}.{o}"),
        );
        norm(
            &mut out,
            &format!("{f}/ffn/layer_norm"),
            &format!("{t}.{fnorm}"),
        );
        lin(&mut out, &format!("{f}/ffn/linear_0"), &format!("{t}.{f1}"));
        lin(&mut out, &format!("{f}/ffn/linear_1"), &format!("{t}.{f2}"));
    }
    norm(
        &mut out,
        "encoder/layer_norm",
        if hf {
            "model.encoder.layer_norm"
        } else {
            "encoder.ln_post"
        },
    );
    let (s, x) = get("decoder/embeddings/weight");
    out.push((
        if hf {
            "model.decoder.embed_tokens.weight"
        } else {
            "decoder.token_embedding.weight"
        }
        .into(),
        s,
        x,
    ));
    let (s, x) = get("decoder/position_encodings/encodings");
    out.push((pos(hf, false).into(), s, x));
    for i in 0..a.dec_layers {
        let (f, t) = (format!("decoder/layer_{i}"), format!("{dec}{i}"));
        norm(
            &mut out,
            &format!("{f}/self_attention/layer_norm"),
            &format!("{t}.{sn}"),
        );
        split(
            &mut out,
            &format!("{f}/self_attention/linear_0"),
            &[q, k, v].map(|p| format!("{t}.{sa}.{p}")),
        );
        lin(
            &mut out,
            &format!("{f}/self_attention/linear_1"),
            &format!("{t}.{sa}.{o}"),
        );
        norm(
            &mut out,
            &format!("{f}/attention/layer_norm"),
            &format!("{t}.{cn}"),
        );
        lin(
            &mut out,
            &format!("{f}/attention/linear_0"),
            &format!("{t}.{ca}.{q}"),
        );
        split(
            &mut out,
            &format!("{f}/attention/linear_1"),
            &[k, v].map(|p| format!("{t}.{ca}.{p}")),
        );
        lin(
            &mut out,
            &format!("{f}/attention/linear_2"),
            &format!("{t}.{ca}.{o}"),
        );
        norm(
            &mut out,
            &format!("{f}/ffn/layer_norm"),
            &format!("{t}.{fnorm}"),
        );
        lin(&mut out, &format!("{f}/ffn/linear_0"), &format!("{t}.{f1}"));
        lin(&mut out, &format!("{f}/ffn/linear_1"), &format!("{t}.{f2}"));
    }
    norm(
        &mut out,
        "decoder/layer_norm",
        if hf {
            "model.decoder.layer_norm"
        } else {
            "decoder.ln"
        },
    );
    out
}

/// Text tokens `w0`, `w1`, … then Whisper's special tokens in order.
fn specials(a: &Arch) -> Vec<String> {
    let mut s = vec![
        "<|endoftext|>".to_string(),
        "<|startoftranscript|>".to_string(),
    ];
    s.extend(LANGS[..a.languages()].iter().map(|c| format!("<|{c}|>")));
    for t in [
        "translate",
        "transcribe",
        "startoflm",
        "startofprev",
        "nospeech",
        "notimestamps",
    ] {
        s.push(format!("<|{t}|>"));
    }
    s
}

fn tokenizer_json(a: &Arch) -> String {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..50257)
        .map(|i| (format!("w{i}"), serde_json::json!(i)))
        .collect();
    let added: Vec<_> = specials(a)
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": 50257 + i, "content": t, "special": true}))
        .collect();
    serde_json::json!({"model": {"type": "BPE", "vocab": vocab}, "added_tokens": added}).to_string()
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect()
}
fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn alignment_heads(a: &Arch) -> serde_json::Value {
    serde_json::json!([[a.dec_layers - 1, 0], [a.dec_layers / 2, a.heads - 1]])
}

fn write_hf(a: &Arch, w: &Tensors, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let d = a.d();
    let config = serde_json::json!({
        "model_type": "whisper", "d_model": d, "encoder_layers": a.enc_layers, "decoder_layers": a.dec_layers,
        "encoder_attention_heads": a.heads, "decoder_attention_heads": a.heads, "encoder_ffn_dim": 4 * d,
        "decoder_ffn_dim": 4 * d, "num_mel_bins": a.n_mels, "vocab_size": a.n_vocab,
        "max_source_positions": AUDIO_CTX, "max_target_positions": TEXT_CTX,
    });
    let gen = serde_json::json!({"suppress_tokens": [1, 2, 7], "begin_suppress_tokens": [220, 50257],
        "alignment_heads": alignment_heads(a), "is_multilingual": true});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("generation_config.json"), gen.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json(a)).unwrap();
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, v) in openai_layout(a, w, true) {
        let b = f16_bytes(&v);
        header.insert(name, serde_json::json!({"dtype": "F16", "shape": shape, "data_offsets": [data.len(), data.len() + b.len()]}));
        data.extend_from_slice(&b);
    }
    let h = serde_json::Value::Object(header).to_string();
    let mut f = (h.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(h.as_bytes());
    f.extend_from_slice(&data);
    std::fs::write(dir.join("model.safetensors"), f).unwrap();
}

fn write_ggml(a: &Arch, w: &Tensors, path: &Path) {
    let d = a.d() as i32;
    let mut f = Vec::new();
    let i32s =
        |f: &mut Vec<u8>, v: &[i32]| v.iter().for_each(|x| f.extend_from_slice(&x.to_le_bytes()));
    let (h, l) = (a.heads as i32, [a.enc_layers as i32, a.dec_layers as i32]);
    i32s(
        &mut f,
        &[
            0x6767_6d6c,
            a.n_vocab as i32,
            AUDIO_CTX as i32,
            d,
            h,
            l[0],
            TEXT_CTX as i32,
            d,
            h,
            l[1],
            a.n_mels as i32,
            1,
        ],
    );
    i32s(&mut f, &[a.n_mels as i32, 201]);
    f.extend_from_slice(&f32_bytes(&sotto::audio::mel_filter_bank(a.n_mels)));
    i32s(&mut f, &[50257]);
    for i in 0..50257 {
        let t = format!("w{i}");
        i32s(&mut f, &[t.len() as i32]);
        f.extend_from_slice(t.as_bytes());
    }
    for (name, shape, v) in openai_layout(a, w, false) {
        let float32 = shape.len() == 1 || name.contains("positional") || shape.last() == Some(&1);
        i32s(
            &mut f,
            &[
                shape.len() as i32,
                name.len() as i32,
                if float32 { 0 } else { 1 },
            ],
        );
        i32s(
            &mut f,
            &shape.iter().rev().map(|&x| x as i32).collect::<Vec<_>>(),
        );
        f.extend_from_slice(name.as_bytes());
        f.extend_from_slice(&if float32 {
            f32_bytes(&v)
        } else {
            f16_bytes(&v)
        });
    }
    std::fs::write(path, f).unwrap();
}

fn write_ct2(a: &Arch, w: &Tensors, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut f = 6u32.to_le_bytes().to_vec();
    let string = |f: &mut Vec<u8>, s: &str| {
        let s = format!("{s}\0");
        f.extend_from_slice(&(s.len() as u16).to_le_bytes());
        f.extend_from_slice(s.as_bytes());
    };
    string(&mut f, "WhisperSpec");
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&(w.len() as u32 + 2).to_le_bytes());
    let var = |f: &mut Vec<u8>, name: &str, shape: &[usize], dtype: u8, data: &[u8]| {
        string(f, name);
        f.push(shape.len() as u8);
        shape
            .iter()
            .for_each(|&x| f.extend_from_slice(&(x as u32).to_le_bytes()));
        f.push(dtype);
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(data);
    };
    for side in ["encoder", "decoder"] {
        var(
            &mut f,
            &format!("{side}/num_heads"),
            &[],
            2,
            &(a.heads as i16).to_le_bytes(),
        );
    }
    for (name, (shape, v)) in w {
        if shape.len() == 1 {
            var(&mut f, name, shape, 0, &f32_bytes(v));
        } else {
            var(&mut f, name, shape, 4, &f16_bytes(v));
        }
    }
    f.extend_from_slice(&0u32.to_le_bytes());
    std::fs::write(dir.join("model.bin"), f).unwrap();
    let cfg = serde_json::json!({"suppress_ids": [1, 2, 7], "suppress_ids_begin": [220, 50257], "alignment_heads": alignment_heads(a)});
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json(a)).unwrap();
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-synthetic");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn convert(src: &Path, out: &Path) -> sotto::Result<()> {
    let _ = std::fs::remove_file(out);
    convert_model(src, out, &ConvertOptions::default(), &|_| {}, &|_, _| {}).map(|_| ())
}

/// Encoder output and three greedy decoder steps' logits with kernel set `k`.
fn run(path: &Path, k: Kernels) -> (Vec<f32>, Vec<Vec<f32>>) {
    let m = Model::load_with(path, &LoadOptions::default().kernels(k.name())).unwrap();
    let c = ModelFile::open(path).unwrap().config().clone();
    let mut rng = Rng(7);
    let mel: Vec<f32> = (0..c.n_mels as usize * 2 * AUDIO_CTX)
        .map(|_| rng.next())
        .collect();
    let enc = m.encoder_output(&mel, 2).unwrap();
    let window = m.encode_window(&mel, 2).unwrap();
    let mut state = m.decoder_state();
    let t = &c.tokens;
    let prompt = [t.sot, c.languages[0].1, t.transcribe, t.no_timestamps];
    let mut logits = m
        .decode_tokens(&window, &mut state, &prompt, &[3], 2)
        .unwrap();
    for _ in 0..2 {
        let last = logits.last().unwrap();
        let next = (0..t.eot as usize)
            .max_by(|&a, &b| last[a].total_cmp(&last[b]))
            .unwrap() as u32;
        logits.extend(
            m.decode_tokens(&window, &mut state, &[next], &[0], 2)
                .unwrap(),
        );
    }
    (enc, logits)
}

#[test]
fn every_family_converts_from_every_format_and_agrees_across_kernel_sets() {
    let bin = env!("CARGO_BIN_EXE_sotto");
    for a in &ARCHS {
        let w = weights(a);
        let (hf, gg, ct2) = (
            scratch(&format!("{}-hf", a.name)),
            scratch(&format!("ggml-{}.bin", a.name)),
            scratch(&format!("{}-ct2", a.name)),
        );
        write_hf(a, &w, &hf);
        write_ggml(a, &w, &gg);
        write_ct2(a, &w, &ct2);
        let outs: Vec<PathBuf> = [&hf, &gg, &ct2]
            .iter()
            .map(|src| {
                let out = PathBuf::from(format!("{}.sotto", src.display()));
                convert(src, &out).unwrap_or_else(|e| panic!("{}: {}: {e}", a.name, src.display()));
                out
            })
            .collect();
        // The same tensors from every format.
        let files: Vec<ModelFile> = outs.iter().map(|p| ModelFile::open(p).unwrap()).collect();
        for t in files[2].tensors() {
            for f in &files[..2] {
                let u = f
                    .tensor(&t.name)
                    .unwrap_or_else(|e| panic!("{}: {e}", a.name));
                assert_eq!(
                    (u.etype, &u.shape),
                    (t.etype, &t.shape),
                    "{}: {}",
                    a.name,
                    t.name
                );
                assert_eq!(
                    f.bytes(u),
                    files[2].bytes(t),
                    "{}: {} differs between formats",
                    a.name,
                    t.name
                );
            }
        }
        assert_eq!(files[0].tensors().len(), files[2].tensors().len());
        // Architecture and special tokens from the files' own metadata.
        let c = files[0].config();
        assert_eq!(
            (
                c.n_audio_state as usize,
                c.n_audio_layer as usize,
                c.n_text_layer as usize,
                c.n_audio_head as usize,
                c.n_mels as usize,
                c.n_vocab as usize
            ),
            (
                a.d(),
                a.enc_layers,
                a.dec_layers,
                a.heads,
                a.n_mels,
                a.n_vocab
            ),
            "{}",
            a.name
        );
        assert_eq!(
            c.alignment_heads,
            vec![
                (a.dec_layers as u32 - 1, 0),
                (a.dec_layers as u32 / 2, a.heads as u32 - 1)
            ]
        );
        // Token ids of openai/whisper-large-v3's generation_config.json (translate 50359,
        // transcribe 50360, prev 50362, no_timestamps 50364) and of v1/v2 (one less:
        // <|yue|> = 50358 is the 100th language).
        let shift = (a.n_vocab == 51866) as u32;
        let tk = &c.tokens;
        assert_eq!(
            (
                tk.eot,
                tk.sot,
                tk.translate,
                tk.transcribe,
                tk.sot_prev,
                tk.no_timestamps,
                tk.timestamp_begin
            ),
            (
                50257,
                50258,
                50358 + shift,
                50359 + shift,
                50361 + shift,
                50363 + shift,
                50364 + shift
            ),
            "{}",
            a.name
        );
        assert_eq!(c.languages.len(), 99 + shift as usize);
        assert_eq!(
            c.languages.last().unwrap().0,
            if shift == 1 { "yue" } else { "su" }
        );
        for f in &files[1..] {
            assert_eq!(f.config().tokens, c.tokens, "{}", a.name);
            assert_eq!(f.config().languages, c.languages, "{}", a.name);
        }
        let info = std::process::Command::new(bin)
            .args(["info", outs[0].to_str().unwrap()])
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stdout);
        let want = format!(
            "n_mels {} ctx {AUDIO_CTX} state {} heads {} layers {}",
            a.n_mels,
            a.d(),
            a.heads,
            a.enc_layers
        );
        assert!(info.contains(&want), "{}: sotto info says\n{info}", a.name);
        assert!(
            info.contains(&format!(
                "vocab {} ctx {TEXT_CTX} state {} heads {} layers {}",
                a.n_vocab,
                a.d(),
                a.heads,
                a.dec_layers
            )),
            "{info}"
        );

        // Scalar and every SIMD set give the same encoder output and decoder logits.
        let reference = run(&outs[0], Kernels::from_name("scalar").unwrap());
        assert!(reference
            .0
            .iter()
            .chain(reference.1.iter().flatten())
            .all(|v| v.is_finite()));
        for k in Kernels::available() {
            eprintln!("{}: {} against scalar", a.name, k.name());
            assert_eq!(
                run(&outs[0], k),
                reference,
                "{}: kernel set {} differs from scalar",
                a.name,
                k.name()
            );
        }
        // Quantized in the same step (int8 and int4 weights × int8 activations): the
        // same across kernel sets too.
        for (scheme, group) in [(Scheme::Int8Row, 0), (Scheme::Int4Asym, 64)] {
            let q = scratch(&format!("{}-{scheme:?}.sotto", a.name));
            let opts = ConvertOptions {
                quantize: Some(QuantizeOptions {
                    scheme,
                    group,
                    activations: Activations::Dynamic,
                    threads: 2,
                    ..QuantizeOptions::default()
                }),
            };
            convert_model(&hf, &q, &opts, &|_| {}, &|_, _| {}).unwrap();
            let reference = run(&q, Kernels::from_name("scalar").unwrap());
            for k in Kernels::available() {
                assert_eq!(
                    run(&q, k),
                    reference,
                    "{} {scheme:?}: {} differs from scalar",
                    a.name,
                    k.name()
                );
            }
            let _ = std::fs::remove_file(q);
        }
        for p in outs {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn expect_error(src: &Path, needles: &[&str]) {
    // A directory of its own: other tests' conversions leave intermediates elsewhere.
    let outdir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-hostile-out");
    std::fs::create_dir_all(&outdir).unwrap();
    let out = outdir.join("hostile.sotto");
    let e = convert(src, &out)
        .expect_err("a hostile source must not convert")
        .to_string();
    for n in needles {
        assert!(
            e.contains(n),
            "error for {} lacks {n:?}: {e}",
            src.display()
        );
    }
    assert!(!out.exists(), "no output after an error");
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".convert-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn hostile_sources_give_clear_errors() {
    let a = Arch {
        name: "tiny-hostile",
        heads: 2,
        enc_layers: 2,
        dec_layers: 1,
        n_mels: 80,
        n_vocab: 51865,
    };
    let w = weights(&a);
    let dir = scratch("hostile-hf");
    let _ = std::fs::remove_dir_all(&dir);
    write_hf(&a, &w, &dir);
    let st = dir.join("model.safetensors");
    let good = std::fs::read(&st).unwrap();
    // A vocabulary size far beyond the embedding: refused before any allocation.
    let cfg0 = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg0.replace("\"vocab_size\":51865", "\"vocab_size\":4000000000"),
    )
    .unwrap();
    expect_error(&dir, &["model.safetensors", "vocab_size 4000000000"]);
    std::fs::write(dir.join("config.json"), &cfg0).unwrap();
    // A config that disagrees with the tensors (128 mel bins, conv1 holds 80).
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(cfg.contains("\"num_mel_bins\":80"));
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"num_mel_bins\":80", "\"num_mel_bins\":128"),
    )
    .unwrap();
    expect_error(
        &dir,
        &["model.safetensors", "conv1.weight", "config implies"],
    );
    std::fs::write(dir.join("config.json"), &cfg).unwrap();
    // Truncated data.
    std::fs::write(&st, &good[..good.len() - 100]).unwrap();
    expect_error(&dir, &["model.safetensors", "truncated"]);
    // Header length past the end.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
    std::fs::write(&st, &bad).unwrap();
    expect_error(&dir, &["model.safetensors", "past the end"]);
    // A tensor missing.
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&good[8..8 + n]).unwrap();
    let renamed = header.replace(
        "model.decoder.layer_norm.weight",
        "model.decoder.layer_morm.weight",
    );
    let mut bad = good[..8].to_vec();
    bad.extend_from_slice(renamed.as_bytes());
    bad.extend_from_slice(&good[8 + n..]);
    std::fs::write(&st, &bad).unwrap();
    expect_error(&dir, &["model.decoder.layer_norm.weight", "missing"]);
    std::fs::write(&st, &good).unwrap();
    // Truncated shard of a sharded checkpoint: the index names a tensor the shard lacks.
    let index = serde_json::json!({"weight_map": {"model.decoder.layer_norm.weight": "model-00001-of-00001.safetensors"}});
    std::fs::remove_file(&st).unwrap();
    std::fs::write(
        dir.join("model-00001-of-00001.safetensors"),
        &good[..good.len() / 2],
    )
    .unwrap();
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    expect_error(&dir, &["model-00001-of-00001.safetensors"]);

    // ggml and CTranslate2: truncated files.
    let gg = scratch("hostile.bin");
    write_ggml(&a, &w, &gg);
    let g = std::fs::read(&gg).unwrap();
    std::fs::write(&gg, &g[..g.len() - 10]).unwrap();
    expect_error(&gg, &["hostile.bin", "truncated"]);
    // Cut anywhere in the header, vocabulary or tensors: an error, never a panic.
    let cuts = (0..64).chain((64..g.len()).step_by(g.len() / 97));
    for cut in cuts {
        std::fs::write(&gg, &g[..cut]).unwrap();
        expect_error(&gg, &["hostile.bin"]);
    }
    // A hostile vocabulary count allocates nothing.
    let mut big = g.clone();
    let words_at = 12 * 4 + 8 + 80 * 201 * 4;
    assert_eq!(&big[words_at..words_at + 4], &50257i32.to_le_bytes());
    big[4..8].copy_from_slice(&i32::MAX.to_le_bytes());
    big[words_at..words_at + 4].copy_from_slice(&(i32::MAX - 1).to_le_bytes());
    std::fs::write(&gg, &big).unwrap();
    expect_error(&gg, &["hostile.bin"]);
    let ct2 = scratch("hostile-ct2");
    write_ct2(&a, &w, &ct2);
    let mb = std::fs::read(ct2.join("model.bin")).unwrap();
    std::fs::write(ct2.join("model.bin"), &mb[..mb.len() / 2]).unwrap();
    expect_error(&ct2, &["model.bin", "truncated"]);
}

/// Decoder logits on the GPU (lavapipe in CI) next to the CPU's, for the families'
/// converted files: the same network within f32 rounding (WGSL may contract to FMA).
#[cfg(feature = "gpu")]
#[test]
fn converted_families_run_on_the_gpu() {
    for a in &ARCHS {
        let w = weights(a);
        let hf = scratch(&format!("{}-gpu-hf", a.name));
        write_hf(a, &w, &hf);
        let out = scratch(&format!("{}-gpu.sotto", a.name));
        convert(&hf, &out).unwrap();
        let gpu = match Model::load_with(&out, &LoadOptions::default().device(sotto::Device::Gpu)) {
            Ok(m) => m,
            Err(e) => {
                common::skip_or_fail(&format!("GPU: {e}"));
                return;
            }
        };
        assert!(
            gpu.device_name().starts_with("gpu"),
            "{}",
            gpu.device_name()
        );
        let cpu = Model::load_with(&out, &LoadOptions::default().kernels("scalar")).unwrap();
        let c = ModelFile::open(&out).unwrap().config().clone();
        let mut rng = Rng(11);
        let mel: Vec<f32> = (0..c.n_mels as usize * 2 * AUDIO_CTX)
            .map(|_| rng.next())
            .collect();
        let t = &c.tokens;
        let prompt = [t.sot, c.languages[0].1, t.transcribe, t.no_timestamps];
        let logits = |m: &Model| {
            let window = m.encode_window(&mel, 2).unwrap();
            let mut state = m.decoder_state();
            m.decode_tokens(&window, &mut state, &prompt, &[0, 1, 2, 3], 2)
                .unwrap()
        };
        let (g, want) = (logits(&gpu), logits(&cpu));
        for (gr, wr) in g.iter().zip(&want) {
            let scale = wr.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = gr
                .iter()
                .zip(wr)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            eprintln!(
                "{}: GPU logits differ by {diff:e} (max |logit| {scale})",
                a.name
            );
            assert!(
                diff <= 1e-3 * scale.max(1.0),
                "{}: GPU differs by {diff} of {scale}",
                a.name
            );
        }
        let _ = std::fs::remove_file(out);
    }
}

/// `sotto bench --tokens N` (the big checkpoints' speed on synthetic weights,
/// tools/bench-big): one window encoded and exactly N decoder steps per run, whatever
/// the random weights emit; a count the decoder cannot hold, or 0, is refused.
#[test]
fn bench_times_a_fixed_number_of_decoder_steps() {
    let a = &ARCHS[3]; // large-v3-turbo's structure: 128 mels, 51 866 tokens, 4 decoder layers
    let ct2 = scratch("bench-tokens-ct2");
    write_ct2(a, &weights(a), &ct2);
    let out = scratch("bench-tokens.sotto");
    convert(&ct2, &out).unwrap();
    let bench = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sotto"))
            .args(["bench", "--json", "-t", "2", "--device", "cpu", "-m"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = bench(&["--tokens", "7", "--runs", "2"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let j: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(j["mode"], "fixed-tokens");
    assert_eq!(j["decode_tokens"], 7);
    assert_eq!(j["prompt_tokens"], 4, "sot, en, transcribe, notimestamps");
    assert_eq!(j["windows"], 1);
    assert_eq!(j["threads"], 2);
    for key in ["encoder_ms_runs", "decode_ms_per_token_runs"] {
        let runs = j[key].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{key}");
        assert!(
            runs.iter().all(|v| v.as_f64().unwrap() > 0.0),
            "{key}: {runs:?}"
        );
    }
    assert!(j["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        j["model_bytes"].as_u64().unwrap(),
        std::fs::metadata(&out).unwrap().len()
    );

    // Driven run by run (tools/bench-big): a ready line, then one line per `run`.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args([
            "bench", "--json", "-t", "2", "--device", "cpu", "--tokens", "3",
        ])
        .arg("-m")
        .arg(&out)
        .arg("--rounds-from-stdin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"run\nrun\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["ready"], true);
    for l in &lines[1..] {
        assert!(l["encoder_ms_per_window"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["decode_ms_per_token"].as_f64().unwrap() > 0.0, "{l}");
    }

    // 448 positions, 4 taken by the prompt.
    let o = bench(&["--tokens", "445"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("--tokens 445") && stderr.contains("444 after the prompt"),
        "{stderr}"
    );
    assert!(o.stdout.is_empty());
    let o = bench(&["--tokens", "0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tokens must be at least 1"));
    let _ = std::fs::remove_file(out);
}
