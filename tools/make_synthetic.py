#!/usr/bin/env python3
"""Write a FULL-size synthetic Whisper checkpoint as a CTranslate2 directory (random weights).

    tools/make_synthetic.py small medium large-v3-turbo     # prints each directory
    tools/make_synthetic.py small --out DIR --vocab-from CT2_DIR

No real small / medium / large checkpoint can be downloaded here, but a window's encoder
time and a decoder step's time do not depend on the weights' values, only on their shapes
and storage: this writes every tensor of the real architecture (openai/whisper model
dimensions; large-v3-turbo from its Hugging Face config.json) with random float16 weights
of a realistic scale, so `sotto convert` / `sotto quantize` and tools/ct2_to_ggml.py make
files of the real size that `sotto bench --tokens N` and whisper.cpp can time
(tools/bench-big does all of it). The transcripts of such a model are garbage.

  linear and conv weights, token and positional embeddings: N(0, 0.02), float16
  biases: N(0, 0.01), key biases exactly zero (Whisper's key projections have none)
  layer norms: gamma N(1, 0.02), beta N(0, 0.01)
  1-D tensors float32, everything else float16 (what a float16 CTranslate2 model stores)

The vocabulary is a real one: tokenizer.json (and vocabulary.json when the source has it)
copied from base's CTranslate2 directory (tools/ct2_model.py, 51 865 tokens, multilingual);
for large-v3's 51 866 tokens `<|yue|>` is inserted after `<|su|>` as large-v3 has it, which
shifts every special token after it by one (openai/whisper tokenizer.py: yue is the 100th
language, added in v3). config.json: base's suppression lists with those ids shifted,
language ids, placeholder alignment heads.

Written once per checkpoint into $SOTTO_HOME/synthetic/{name}/ (atomically: a temporary
directory renamed); an existing directory is kept. Sizes: small ~0.5 GB, medium ~1.5 GB,
large-v3-turbo ~1.6 GB, large-v3 ~3.1 GB.
"""

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (d_model, heads, encoder layers, decoder layers, mel bins, vocabulary)
ARCHS = {
    "small": (768, 12, 12, 12, 80, 51865),
    "medium": (1024, 16, 24, 24, 80, 51865),
    "large-v3": (1280, 20, 32, 32, 128, 51866),
    "large-v3-turbo": (1280, 20, 32, 4, 128, 51866),
}
AUDIO_CTX, TEXT_CTX = 1500, 448
# CTranslate2 data type codes
F32, I16, F16 = 0, 2, 4
SU = "<|su|>"  # the last language before v3's <|yue|>


def sotto_home():
    return os.environ.get("SOTTO_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "sotto")


def tensors(d, enc_layers, dec_layers, n_mels, n_vocab):
    """(name, shape, kind) in CTranslate2's names; kind: w (weight), b (bias), kb (key
    bias: zero in part), g / n (layer norm gamma / beta)."""
    out = [("encoder/conv1/weight", (d, n_mels, 3), "w"), ("encoder/conv1/bias", (d,), "b"),
           ("encoder/conv2/weight", (d, d, 3), "w"), ("encoder/conv2/bias", (d,), "b"),
           ("encoder/position_encodings/encodings", (AUDIO_CTX, d), "w")]

    def norm(p):
        out.extend([(f"{p}/gamma", (d,), "g"), (f"{p}/beta", (d,), "n")])

    def lin(p, n, k, key=None):
        out.extend([(f"{p}/weight", (n, k), "w"), (f"{p}/bias", (n,), "b" if key is None else f"kb{key}")])

    for i in range(enc_layers):
        p = f"encoder/layer_{i}"
        norm(f"{p}/self_attention/layer_norm")
        lin(f"{p}/self_attention/linear_0", 3 * d, d, key=1)
        lin(f"{p}/self_attention/linear_1", d, d)
        norm(f"{p}/ffn/layer_norm")
        lin(f"{p}/ffn/linear_0", 4 * d, d)
        lin(f"{p}/ffn/linear_1", d, 4 * d)
    norm("encoder/layer_norm")
    out.append(("decoder/embeddings/weight", (n_vocab, d), "w"))
    out.append(("decoder/position_encodings/encodings", (TEXT_CTX, d), "w"))
    for i in range(dec_layers):
        p = f"decoder/layer_{i}"
        norm(f"{p}/self_attention/layer_norm")
        lin(f"{p}/self_attention/linear_0", 3 * d, d, key=1)
        lin(f"{p}/self_attention/linear_1", d, d)
        norm(f"{p}/attention/layer_norm")
        lin(f"{p}/attention/linear_0", d, d)
        lin(f"{p}/attention/linear_1", 2 * d, d, key=0)
        lin(f"{p}/attention/linear_2", d, d)
        norm(f"{p}/ffn/layer_norm")
        lin(f"{p}/ffn/linear_0", 4 * d, d)
        lin(f"{p}/ffn/linear_1", d, 4 * d)
    norm("decoder/layer_norm")
    return out


def values(rng, shape, kind, d):
    n = int(np.prod(shape))
    if kind == "w":
        return (rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)).astype(np.float16)
    if kind == "g":
        return 1 + rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)
    v = rng.standard_normal(n, dtype=np.float32) * np.float32(0.01)
    if kind.startswith("kb"):
        k = int(kind[2:])
        v[k * d:(k + 1) * d] = 0
    return v


def write_model_bin(path, arch, seed):
    d, heads, enc_layers, dec_layers, n_mels, n_vocab = arch
    rng = np.random.default_rng(seed)
    specs = tensors(d, enc_layers, dec_layers, n_mels, n_vocab)

    def string(s):
        b = (s + "\0").encode()
        return struct.pack("<H", len(b)) + b

    def header(name, shape, code, size):
        return (string(name) + struct.pack("<B", len(shape)) + struct.pack(f"<{len(shape)}I", *shape)
                + struct.pack("<BI", code, size))

    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<I", 3))
        f.write(struct.pack("<I", len(specs) + 2))
        for side in ("encoder", "decoder"):
            f.write(header(f"{side}/num_heads", (), I16, 2) + struct.pack("<h", heads))
        for name, shape, kind in specs:
            v = values(rng, shape, kind, d)
            code = F16 if v.dtype == np.float16 else F32
            data = v.astype("<f2" if code == F16 else "<f4").tobytes()
            f.write(header(name, shape, code, len(data)))
            f.write(data)
        f.write(struct.pack("<I", 0))  # no aliases


def shift_tokenizer(tok):
    """tokenizer.json with <|yue|> inserted after <|su|> (every id after it + 1)."""
    added = tok["added_tokens"]
    su = next(t["id"] for t in added if t["content"] == SU)
    for t in added:
        if t["id"] > su:
            t["id"] += 1
    vocab = tok["model"]["vocab"]
    for k, i in list(vocab.items()):
        if i > su:
            vocab[k] = i + 1
    yue = dict(next(t for t in added if t["content"] == SU))
    yue.update(id=su + 1, content="<|yue|>")
    added.insert(next(i for i, t in enumerate(added) if t["id"] == su) + 1, yue)
    post = tok.get("post_processor") or {}
    for spec in (post.get("special_tokens") or {}).values():
        spec["ids"] = [i + 1 if i > su else i for i in spec.get("ids", [])]
    return tok, su


def write_vocab_files(src, dst, n_vocab):
    """tokenizer.json (+ vocabulary.json) from `src`, made to hold `n_vocab` tokens; returns the
    id of <|su|> when <|yue|> was inserted after it, else None."""
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    count = max([*tok["model"]["vocab"].values(), *(t["id"] for t in tok["added_tokens"])]) + 1
    su = None
    if n_vocab == count + 1:
        tok, su = shift_tokenizer(tok)
    elif n_vocab != count:
        raise SystemExit(f"{src}: a vocabulary of {count} tokens cannot make one of {n_vocab}")
    with open(os.path.join(dst, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    vj = os.path.join(src, "vocabulary.json")
    if os.path.isfile(vj):
        with open(vj, encoding="utf-8") as f:
            words = json.load(f)
        if su is not None:
            words.insert(su + 1, "<|yue|>")
        if len(words) != n_vocab:
            raise SystemExit(f"{vj}: {len(words)} tokens, expected {n_vocab}")
        with open(os.path.join(dst, "vocabulary.json"), "w", encoding="utf-8") as f:
            json.dump(words, f, ensure_ascii=False)
    return su


def write_config(src, dst, su, dec_layers, heads):
    with open(os.path.join(src, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)

    def shift(ids):
        return [i + 1 if su is not None and i > su else i for i in ids]

    out = {
        "suppress_ids": shift(cfg.get("suppress_ids", [])),
        "suppress_ids_begin": shift(cfg.get("suppress_ids_begin", [])),
        # placeholders: word timestamps of a random model mean nothing
        "alignment_heads": [[dec_layers - 1, 0], [dec_layers // 2, heads - 1]],
    }
    if "lang_ids" in cfg:
        out["lang_ids"] = cfg["lang_ids"] + ([su + 1] if su is not None else [])
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(out, f)


def make(name, out_root, vocab_from, seed=1234):
    if name not in ARCHS:
        raise SystemExit(f"unknown checkpoint {name!r}; known: {', '.join(ARCHS)}")
    arch = ARCHS[name]
    d, heads, enc_layers, dec_layers, n_mels, n_vocab = arch
    dst = os.path.join(out_root, name)
    if os.path.isfile(os.path.join(dst, "model.bin")):
        return dst
    os.makedirs(out_root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=out_root)
    try:
        su = write_vocab_files(vocab_from, tmp, n_vocab)
        write_config(vocab_from, tmp, su, dec_layers, heads)
        with open(os.path.join(tmp, "preprocessor_config.json"), "w") as f:
            json.dump({"feature_size": n_mels, "sampling_rate": 16000, "hop_length": 160,
                       "n_fft": 400, "chunk_length": 30}, f)
        write_model_bin(os.path.join(tmp, "model.bin"), arch, seed + len(name))
        os.chmod(tmp, 0o755)
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+", help=", ".join(ARCHS))
    ap.add_argument("--out", help="parent directory (default: $SOTTO_HOME/synthetic)")
    ap.add_argument("--vocab-from", metavar="CT2_DIR",
                    help="CTranslate2 directory of a multilingual model whose tokenizer.json and "
                    "config.json are copied (default: base's, through tools/ct2_model.py)")
    a = ap.parse_args()
    src = a.vocab_from
    if src is None:
        sys.path.insert(0, HERE)
        from ct2_model import ct2_dir

        src = ct2_dir("base")
    out = a.out or os.path.join(sotto_home(), "synthetic")
    for name in a.names:
        print(make(name, out, src), flush=True)


if __name__ == "__main__":
    main()
