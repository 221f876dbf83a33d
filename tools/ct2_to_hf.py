#!/usr/bin/env python3
"""Write a CTranslate2 Whisper model as a Hugging Face transformers directory.

    python3 tools/ct2_to_hf.py tiny.en OUT_DIR                 # one model.safetensors, f16
    python3 tools/ct2_to_hf.py tiny.en OUT_DIR --shards 3      # model-0000i-of-00003 + index
    python3 tools/ct2_to_hf.py DIR OUT_DIR --dtype bf16

The layout is transformers' WhisperForConditionalGeneration (as in openai/whisper-* and
distil-whisper/* repositories): config.json, generation_config.json, tokenizer.json and
safetensors weights with separate q/k/v projections (k_proj without bias) and the output
projection tied to the token embedding (stored only with --proj-out). It exists so sotto's
tests can feed `sotto convert` real weights in this layout: only package registries are
reachable here, so Hugging Face's own files cannot be downloaded.

safetensors is written by hand (8-byte little-endian header length, a JSON header
{name: {dtype, shape, data_offsets}}, then the data) so nothing beyond numpy is needed.
"""

import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ct2_to_ggml import read_ct2  # noqa: E402

DTYPES = {"f32": ("F32", "<f4"), "f16": ("F16", "<f2"), "bf16": ("BF16", None)}


def to_bytes(arr, dtype):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if dtype == "bf16":  # round to nearest even on the upper 16 bits
        u = arr.view(np.uint32).astype(np.uint64)
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        return u.astype("<u2").tobytes()
    return arr.astype(DTYPES[dtype][1]).tobytes()


def hf_tensors(w):
    """CTranslate2 variables -> [(transformers name, array)]."""
    t = []

    def linear(dst, src, bias=True):
        t.append((f"{dst}.weight", w[f"{src}/weight"]))
        if bias:
            t.append((f"{dst}.bias", w[f"{src}/bias"]))

    def norm(dst, src):
        t.append((f"{dst}.weight", w[f"{src}/gamma"]))
        t.append((f"{dst}.bias", w[f"{src}/beta"]))

    def split(dsts, src):
        ws = np.split(w[f"{src}/weight"], len(dsts))
        bs = np.split(w[f"{src}/bias"], len(dsts))
        for dst, wi, bi in zip(dsts, ws, bs):
            t.append((f"{dst}.weight", wi))
            if dst.endswith("k_proj"):
                assert not np.any(bi), f"{src}: key bias is not zero"
            else:
                t.append((f"{dst}.bias", bi))

    def n_layers(prefix):
        n = 0
        while f"{prefix}/layer_{n}/ffn/linear_0/weight" in w:
            n += 1
        return n

    for i in (1, 2):
        linear(f"model.encoder.conv{i}", f"encoder/conv{i}")
    t.append(("model.encoder.embed_positions.weight", w["encoder/position_encodings/encodings"]))
    for i in range(n_layers("encoder")):
        s, d = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        norm(f"{d}.self_attn_layer_norm", f"{s}/self_attention/layer_norm")
        split([f"{d}.self_attn.q_proj", f"{d}.self_attn.k_proj", f"{d}.self_attn.v_proj"],
              f"{s}/self_attention/linear_0")
        linear(f"{d}.self_attn.out_proj", f"{s}/self_attention/linear_1")
        norm(f"{d}.final_layer_norm", f"{s}/ffn/layer_norm")
        linear(f"{d}.fc1", f"{s}/ffn/linear_0")
        linear(f"{d}.fc2", f"{s}/ffn/linear_1")
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    t.append(("model.decoder.embed_tokens.weight", w["decoder/embeddings/weight"]))
    t.append(("model.decoder.embed_positions.weight", w["decoder/position_encodings/encodings"]))
    for i in range(n_layers("decoder")):
        s, d = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        norm(f"{d}.self_attn_layer_norm", f"{s}/self_attention/layer_norm")
        split([f"{d}.self_attn.q_proj", f"{d}.self_attn.k_proj", f"{d}.self_attn.v_proj"],
              f"{s}/self_attention/linear_0")
        linear(f"{d}.self_attn.out_proj", f"{s}/self_attention/linear_1")
        norm(f"{d}.encoder_attn_layer_norm", f"{s}/attention/layer_norm")
        linear(f"{d}.encoder_attn.q_proj", f"{s}/attention/linear_0")
        split([f"{d}.encoder_attn.k_proj", f"{d}.encoder_attn.v_proj"], f"{s}/attention/linear_1")
        linear(f"{d}.encoder_attn.out_proj", f"{s}/attention/linear_2")
        norm(f"{d}.final_layer_norm", f"{s}/ffn/layer_norm")
        linear(f"{d}.fc1", f"{s}/ffn/linear_0")
        linear(f"{d}.fc2", f"{s}/ffn/linear_1")
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    return t, n_layers("encoder"), n_layers("decoder")


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors:
        b = to_bytes(arr, dtype)
        header[name] = {"dtype": DTYPES[dtype][0], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)  # the data starts 8-aligned, as safetensors writes it
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def convert(ct2_dir, out_dir, dtype="f16", shards=1, proj_out=False):
    w = read_ct2(os.path.join(ct2_dir, "model.bin"))
    with open(os.path.join(ct2_dir, "config.json")) as f:
        ct2_config = json.load(f)
    tensors, n_enc, n_dec = hf_tensors(w)
    emb = w["decoder/embeddings/weight"]
    if proj_out:
        tensors.append(("proj_out.weight", emb))
    d = emb.shape[1]
    n_vocab = emb.shape[0]
    os.makedirs(out_dir, exist_ok=True)
    config = {
        "model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"],
        "d_model": d, "encoder_layers": n_enc, "decoder_layers": n_dec,
        "encoder_attention_heads": int(w["encoder/num_heads"]),
        "decoder_attention_heads": int(w["decoder/num_heads"]),
        "encoder_ffn_dim": 4 * d, "decoder_ffn_dim": 4 * d,
        "num_mel_bins": w["encoder/conv1/weight"].shape[1], "vocab_size": n_vocab,
        "max_source_positions": w["encoder/position_encodings/encodings"].shape[0],
        "max_target_positions": w["decoder/position_encodings/encodings"].shape[0],
        "tie_word_embeddings": True, "torch_dtype": {"f32": "float32", "f16": "float16",
                                                     "bf16": "bfloat16"}[dtype],
    }
    gen = {
        "suppress_tokens": ct2_config.get("suppress_ids", []),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", []),
        "alignment_heads": ct2_config.get("alignment_heads", []),
        "is_multilingual": n_vocab >= 51865,
    }
    for name, obj in (("config.json", config), ("generation_config.json", gen)):
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(obj, f, indent=1)
    shutil.copyfile(os.path.join(ct2_dir, "tokenizer.json"), os.path.join(out_dir, "tokenizer.json"))
    for old in os.listdir(out_dir):
        if old.endswith(".safetensors") or old.endswith(".safetensors.index.json"):
            os.unlink(os.path.join(out_dir, old))
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, dtype)
        return
    parts = np.array_split(np.arange(len(tensors)), shards)
    weight_map = {}
    for i, idx in enumerate(parts):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        chunk = [tensors[j] for j in idx]
        write_safetensors(os.path.join(out_dir, name), chunk, dtype)
        weight_map.update({n: name for n, _ in chunk})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a model name sotto fetches (tiny.en, base) or a CTranslate2 directory")
    ap.add_argument("out", help="output directory")
    ap.add_argument("--dtype", default="f16", choices=sorted(DTYPES))
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--proj-out", action="store_true", help="also store the tied proj_out.weight")
    a = ap.parse_args()
    src = a.model
    if not os.path.isdir(src):
        from ct2_model import ct2_dir
        src = ct2_dir(src)
    convert(src, a.out, a.dtype, a.shards, a.proj_out)
    print(a.out)


if __name__ == "__main__":
    main()
