//! Hugging Face transformers Whisper directories (`openai/whisper-*`,
//! `distil-whisper/*`): `config.json`, `generation_config.json`, `tokenizer.json`
//! and `model.safetensors` or shards listed in `model.safetensors.index.json`.
use super::safetensors::{self, StEntry};
use super::sink::{self, floats, json_heads, json_ids, Sink, SourceTensor, TensorSource};
use super::vocab::Vocabulary;
use crate::format::ModelConfig;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

pub(crate) fn is_hf_dir(dir: &Path) -> bool {
    dir.join("model.safetensors").is_file() || dir.join("model.safetensors.index.json").is_file()
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))
}

fn json_file(path: &Path) -> Result<serde_json::Value> {
    serde_json::from_str(&read_text(path)?)
        .map_err(|e| Error::Convert(format!("{}: not JSON: {e}", path.display())))
}

struct Shards {
    maps: Vec<(String, memmap2::Mmap)>,
    /// Tensor name → (shard, entry).
    index: BTreeMap<String, (usize, StEntry)>,
}

impl TensorSource for Shards {
    fn file(&self) -> &str {
        self.maps
            .first()
            .map(|m| m.0.as_str())
            .unwrap_or("model.safetensors")
    }
    fn get(&mut self, name: &str) -> Result<Option<SourceTensor>> {
        let Some((shard, e)) = self.index.get(name) else {
            return Ok(None);
        };
        let bytes = &self.maps[*shard].1[e.start..e.end];
        Ok(Some(SourceTensor {
            shape: e.shape.clone(),
            values: floats(e.dtype, bytes),
            exact: true,
            q4: None,
        }))
    }
}

fn open_shards(dir: &Path) -> Result<Shards> {
    let single = dir.join("model.safetensors");
    let (files, listed): (Vec<String>, Option<BTreeMap<String, String>>) = if single.is_file() {
        (vec!["model.safetensors".into()], None)
    } else {
        let ipath = dir.join("model.safetensors.index.json");
        let ictx = ipath.display().to_string();
        let index = json_file(&ipath)?;
        let map = index
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::Convert(format!("{ictx}: no weight_map object")))?;
        let mut listed = BTreeMap::new();
        for (k, v) in map {
            let f = v
                .as_str()
                .filter(|f| !f.is_empty() && !f.contains(['/', '\\']) && *f != "..")
                .ok_or_else(|| Error::Convert(format!("{ictx}: {k}: not a shard file name")))?;
            listed.insert(k.clone(), f.to_string());
        }
        let mut files: Vec<String> = listed.values().cloned().collect();
        files.sort();
        files.dedup();
        (files, Some(listed))
    };
    let mut shards = Shards {
        maps: Vec::new(),
        index: BTreeMap::new(),
    };
    for (i, f) in files.iter().enumerate() {
        let path = dir.join(f);
        let ctx = path.display().to_string();
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&ctx, e))?;
        // SAFETY: read-only mapping of a file this process does not modify; a file
        // truncated by another process while mapped is outside what sotto guards.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&ctx, e))?;
        for (name, e) in safetensors::parse(&map, &ctx)? {
            if shards.index.insert(name.clone(), (i, e)).is_some() {
                return Err(Error::Convert(format!(
                    "{ctx}: tensor {name} is also in another shard"
                )));
            }
        }
        shards.maps.push((ctx, map));
    }
    if let Some(listed) = listed {
        for (name, f) in &listed {
            let found = shards.index.get(name).map(|(i, _)| files[*i].as_str());
            if found != Some(f.as_str()) {
                return Err(Error::Convert(format!(
                    "{}: the index puts {name} in {f}, which does not hold it",
                    dir.join("model.safetensors.index.json").display()
                )));
            }
        }
    }
    Ok(shards)
}

/// Reads the Hugging Face directory `dir` into a sink.
pub(crate) fn read(dir: &Path, wide: bool) -> Result<Sink> {
    let cpath = dir.join("config.json");
    let cctx = cpath.display().to_string();
    let cfg = json_file(&cpath)?;
    if let Some(t) = cfg.get("model_type").and_then(|t| t.as_str()) {
        if t != "whisper" {
            return Err(Error::Convert(format!(
                "{cctx}: model_type {t:?}, not whisper"
            )));
        }
    }
    let num = |key: &str| -> Result<u32> {
        cfg.get(key)
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| {
                Error::Convert(format!(
                    "{cctx}: {key} is missing or not a positive integer"
                ))
            })
    };
    let d = num("d_model")?;
    for key in ["encoder_ffn_dim", "decoder_ffn_dim"] {
        if cfg.get(key).is_some() && num(key)? != 4 * d {
            return Err(Error::Convert(format!(
                "{cctx}: {key} {} is not 4 × d_model {d}, which Whisper's layers need",
                num(key)?
            )));
        }
    }
    let gpath = dir.join("generation_config.json");
    let gctx = gpath.display().to_string();
    let gen = if gpath.is_file() {
        json_file(&gpath)?
    } else {
        serde_json::Value::Null
    };
    // Older checkpoints keep the suppression lists in config.json.
    let list = |key: &str| -> Result<Vec<u32>> {
        match gen.get(key) {
            Some(_) => json_ids(&gen, key, &gctx),
            None => json_ids(&cfg, key, &cctx),
        }
    };
    let n_vocab = num("vocab_size")?;
    // The weights first: vocab_size must match the embedding before anything is
    // allocated for that many tokens.
    let mut shards = open_shards(dir)?;
    match shards.index.get(sink::HF_NAMES.embed) {
        Some((_, e)) if e.shape == [n_vocab as usize, d as usize] => {}
        Some((_, e)) => {
            return Err(Error::Convert(format!(
                "{}: {} has shape {:?}, config.json says vocab_size {n_vocab} × d_model {d}",
                shards.file(),
                sink::HF_NAMES.embed,
                e.shape
            )))
        }
        None => {
            return Err(Error::Convert(format!(
                "{}: tensor {} is missing",
                shards.file(),
                sink::HF_NAMES.embed
            )))
        }
    }
    let tpath = dir.join("tokenizer.json");
    if !tpath.is_file() {
        return Err(Error::Convert(format!(
            "{}: no tokenizer.json (it comes with the model's repository)",
            dir.display()
        )));
    }
    let vocab = Vocabulary::from_tokenizer_json(&read_text(&tpath)?, n_vocab)?;
    let multilingual = gen
        .get("is_multilingual")
        .and_then(|v| v.as_bool())
        .unwrap_or(n_vocab >= 51865);
    let config = ModelConfig {
        n_mels: num("num_mel_bins")?,
        n_audio_ctx: num("max_source_positions")?,
        n_audio_state: d,
        n_audio_head: num("encoder_attention_heads")?,
        n_audio_layer: num("encoder_layers")?,
        n_text_ctx: num("max_target_positions")?,
        n_text_state: d,
        n_text_head: num("decoder_attention_heads")?,
        n_text_layer: num("decoder_layers")?,
        n_vocab,
        multilingual,
        tokens: vocab.special.clone(),
        suppress_ids: list("suppress_tokens")?,
        suppress_ids_begin: list("begin_suppress_tokens")?,
        alignment_heads: json_heads(&gen, "alignment_heads", &gctx)?,
        languages: if multilingual {
            vocab.languages.clone()
        } else {
            Vec::new()
        },
        activations: Default::default(),
    };
    crate::format::validate_config(&config, &cctx)?;
    let mel = crate::audio::mel_filter_bank(config.n_mels as usize);
    let mut sink = Sink::new(config.clone(), vocab.tokens, mel, wide);
    sink::assemble(&mut shards, &sink::HF_NAMES, &config, &mut sink)?;
    // The output projection must be the embedding (Whisper ties them).
    if let Some(proj) = shards.get("proj_out.weight")? {
        let emb = shards.get(sink::HF_NAMES.embed)?.map(|e| e.values);
        if Some(proj.values) != emb {
            return Err(Error::Convert(format!(
                "{}: proj_out.weight differs from the token embedding; sotto needs them tied",
                shards.file()
            )));
        }
    }
    Ok(sink)
}
