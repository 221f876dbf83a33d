#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model directory into a whisper.cpp ggml model file.

    python3 tools/ct2_to_ggml.py tiny.en --type q8_0            # prints the cached file
    python3 tools/ct2_to_ggml.py DIR OUT.bin --type f16         # explicit directory and output
    from ct2_to_ggml import ggml_file; ggml_file("base", "q4_0")

Only package registries are reachable here, so whisper.cpp's own model files cannot be
downloaded; this builds them from the same CTranslate2 weights sotto and faster-whisper
use (tools/ct2_model.py unpacks them), so all three engines run the same numbers.
Cached as $SOTTO_HOME/ggml/ggml-{model}-{type}.bin, made on demand.

The file is whisper.cpp's legacy "ggml" container, read by whisper_model_load
(all integers little-endian int32):
  magic 0x67676d6c; n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
  n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype;
  mel filters: n_mel, n_fft (= 201 bins), n_mel × n_fft f32;
  vocabulary: count, then per token its byte length and raw bytes (GPT-2's
  byte-to-unicode map undone), ids 0 .. <|endoftext|> - 1; whisper.cpp makes the
  special tokens itself;
  tensors until end of file: n_dims, name length, ggml type, dims innermost first,
  name, data.

Types (what whisper.cpp's converter and its `quantize` tool write):
  f16  (ftype 1): 2-D and 3-D weights f16; 1-D tensors, the conv biases (stored
       [n, 1]) and both positional embeddings f32.
  q8_0 (ftype 7), q4_0 (ftype 2), q4_1 (3), q5_0 (8), q5_1 (9): the f16 file's 2-D tensors (every linear weight and
       the token embedding) in ggml blocks of 32 with an f16 scale, except the conv
       biases and positional embeddings; conv weights stay f16. The header's ftype is
       then 1000 × GGML_QNT_VERSION (2) + ftype, as `quantize` writes it.

CTranslate2 fuses the self-attention q|k|v projections (linear_0) and the cross-attention
k|v projections (linear_1); they are split here. whisper.cpp's key projections have no
bias: CTranslate2 stores zeros for it, which is checked, not assumed.
"""

import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np

MAGIC = 0x67676D6C
QNT_VERSION = 2  # GGML_QNT_VERSION; quantized files store 1000 * this + ftype
# name -> (file ftype, ggml tensor type of the 2-D weights)
TYPES = {"f16": (1, 1), "q8_0": (7, 8), "q4_0": (2, 2), "q4_1": (3, 3), "q5_0": (8, 6),
         "q5_1": (9, 7)}
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q4_1, GGML_Q5_0, GGML_Q5_1, GGML_Q8_0 = 0, 1, 2, 3, 6, 7, 8
QK = 32  # elements per ggml block (both q8_0 and q4_0)

# CTranslate2 data type codes (its DataType enum order) -> numpy dtype
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path):
    """{name: numpy array} of a CTranslate2 model.bin (format version 6); bf16 is refused."""
    with open(path, "rb") as f:
        b = f.read()
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(b):
            raise ValueError(f"{path}: truncated at byte {pos}")
        s = b[pos:pos + n]
        pos += n
        return s

    def u(fmt):
        return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

    def string():
        return take(u("H")).rstrip(b"\0").decode()

    version = u("I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 format version {version}, expected 6")
    spec = string()
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: holds a {spec}, not a WhisperSpec")
    u("I")  # spec revision
    out = {}
    for _ in range(u("I")):
        name = string()
        shape = [u("I") for _ in range(u("B"))]
        code = u("B")
        size = u("I")
        if code not in CT2_DTYPES:
            raise ValueError(f"{path}: {name}: unsupported data type code {code}")
        arr = np.frombuffer(take(size), dtype=CT2_DTYPES[code])
        out[name] = arr.reshape(shape) if shape else arr[0]
    return out


def byte_decoder():
    """GPT-2's printable-unicode character -> byte map (the inverse of its encoder)."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = (b for b in range(256) if b not in keep)
    mapping = {chr(c): c for c in keep}
    for i, c in enumerate(extra):
        mapping[chr(256 + i)] = c
    return mapping


def vocabulary(tokenizer_json):
    """Token byte strings for ids 0 .. <|endoftext|> - 1, from a Hugging Face tokenizer.json."""
    with open(tokenizer_json, encoding="utf-8") as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    eot = vocab.get("<|endoftext|>")
    if eot is None:
        eot = next(t["id"] for t in tok["added_tokens"] if t["content"] == "<|endoftext|>")
    dec = byte_decoder()
    words = [b""] * eot
    for text, i in vocab.items():
        if i < eot:
            words[i] = bytes(dec[c] for c in text)
    return words


def mel_filters(n_mels):
    """Whisper's mel filter bank (librosa slaney mel scale and normalisation), (n_mels, 201)."""
    from faster_whisper.feature_extractor import FeatureExtractor

    return np.asarray(FeatureExtractor.get_mel_filters(16000, 400, n_mels), dtype=np.float32)


def quantize_q8_0(x):
    """Rows of f32 -> ggml q8_0 bytes: per 32 values an f16 scale d = max|x| / 127, then
    round(x / d) as int8 (ties away from zero, like the C reference's roundf)."""
    blocks = x.reshape(-1, QK).astype(np.float32)
    d = np.abs(blocks).max(axis=1) / np.float32(127)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    v = blocks * inv[:, None]
    q = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int8)
    out = np.empty((blocks.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def quantize_q4_0(x):
    """Rows of f32 -> ggml q4_0 bytes: per 32 values an f16 scale d = m / -8, m the value of
    largest magnitude (first on ties), codes min(15, trunc(x / d + 8.5)); element j in the low
    nibble of byte j, element j + 16 in its high nibble."""
    blocks = x.reshape(-1, QK).astype(np.float32)
    m = blocks[np.arange(blocks.shape[0]), np.abs(blocks).argmax(axis=1)]
    d = m / np.float32(-8)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = np.minimum(15, np.trunc(blocks * inv[:, None] + np.float32(8.5))).astype(np.uint8)
    out = np.empty((blocks.shape[0], 18), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def _min_max_blocks(x):
    blocks = x.reshape(-1, QK).astype(np.float32)
    lo, hi = blocks.min(axis=1), blocks.max(axis=1)
    return blocks, lo, hi


def _pack_low_high(q):
    """Codes (blocks × 32) -> 16 bytes per block: element j low nibble, j + 16 high nibble."""
    return (q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)


def _fifth_bits(q):
    """Bit 4 of element j -> bit j of a little-endian u32 (j + 16 for the second half)."""
    bits = ((q >> 4) & 1).astype(np.uint32)
    return (bits << np.arange(32, dtype=np.uint32)).sum(axis=1, dtype=np.uint64).astype("<u4")


def quantize_q4_1(x):
    """ggml's quantize_row_q4_1_ref: d = (max - min) / 15, m = min (both f16),
    codes min(15, trunc((x - min) / d + 0.5))."""
    blocks, lo, hi = _min_max_blocks(x)
    d = (hi - lo) / np.float32(15)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = np.minimum(15, np.trunc((blocks - lo[:, None]) * inv[:, None] + np.float32(0.5))).astype(np.uint8)
    out = np.empty((blocks.shape[0], 20), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = lo.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 4:] = _pack_low_high(q)
    return out.tobytes()


def quantize_q5_0(x):
    """ggml's quantize_row_q5_0_ref: d = m / -16 (m the value of largest magnitude),
    codes min(31, trunc(x / d + 16.5)); low 4 bits as q4, fifth bits in a u32."""
    blocks = x.reshape(-1, QK).astype(np.float32)
    m = blocks[np.arange(blocks.shape[0]), np.abs(blocks).argmax(axis=1)]
    d = m / np.float32(-16)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = np.minimum(31, np.trunc(blocks * inv[:, None] + np.float32(16.5))).astype(np.uint8)
    out = np.empty((blocks.shape[0], 22), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:6] = _fifth_bits(q).view(np.uint8).reshape(-1, 4)
    out[:, 6:] = _pack_low_high(q)
    return out.tobytes()


def quantize_q5_1(x):
    """ggml's quantize_row_q5_1_ref: d = (max - min) / 31, m = min, codes
    trunc((x - min) / d + 0.5); low 4 bits as q4, fifth bits in a u32."""
    blocks, lo, hi = _min_max_blocks(x)
    d = (hi - lo) / np.float32(31)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    q = np.minimum(31, np.trunc((blocks - lo[:, None]) * inv[:, None] + np.float32(0.5))).astype(np.uint8)
    out = np.empty((blocks.shape[0], 24), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = lo.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 4:8] = _fifth_bits(q).view(np.uint8).reshape(-1, 4)
    out[:, 8:] = _pack_low_high(q)
    return out.tobytes()


def openai_tensors(w):
    """CTranslate2 variables -> [(OpenAI tensor name, float array)], fused projections split."""
    t = []

    def linear(dst, src, key_bias=False):
        t.append((f"{dst}.weight", w[f"{src}/weight"]))
        if not key_bias:
            t.append((f"{dst}.bias", w[f"{src}/bias"]))

    def norm(dst, src):
        t.append((f"{dst}.weight", w[f"{src}/gamma"]))
        t.append((f"{dst}.bias", w[f"{src}/beta"]))

    def split(dst_names, src):
        weight, bias = w[f"{src}/weight"], w[f"{src}/bias"]
        n = len(dst_names)
        if weight.shape[0] % n or bias.shape[0] != weight.shape[0]:
            raise ValueError(f"{src}: shape {weight.shape} does not split in {n}")
        for ws, bs, dst in zip(np.split(weight, n), np.split(bias, n), dst_names):
            t.append((f"{dst}.weight", ws))
            if dst.endswith(".key"):
                if np.any(bs != 0):
                    raise ValueError(f"{src}: key bias is not zero; whisper.cpp has none")
            else:
                t.append((f"{dst}.bias", bs))

    def layers(prefix):
        n = 0
        while f"{prefix}/layer_{n}/ffn/linear_0/weight" in w:
            n += 1
        return n

    t.append(("encoder.positional_embedding", w["encoder/position_encodings/encodings"]))
    for i in (1, 2):
        t.append((f"encoder.conv{i}.weight", w[f"encoder/conv{i}/weight"]))
        t.append((f"encoder.conv{i}.bias", w[f"encoder/conv{i}/bias"].reshape(-1, 1)))
    for i in range(layers("encoder")):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        split([f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
              f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
    norm("encoder.ln_post", "encoder/layer_norm")

    t.append(("decoder.positional_embedding", w["decoder/position_encodings/encodings"]))
    t.append(("decoder.token_embedding.weight", w["decoder/embeddings/weight"]))
    for i in range(layers("decoder")):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        split([f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
              f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
        split([f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"], f"{src}/attention/linear_1")
        linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
    norm("decoder.ln", "decoder/layer_norm")
    return t


QUANTIZERS = {GGML_Q8_0: quantize_q8_0, GGML_Q4_0: quantize_q4_0, GGML_Q4_1: quantize_q4_1,
              GGML_Q5_0: quantize_q5_0, GGML_Q5_1: quantize_q5_1}

# 2-D tensors whisper.cpp keeps in float even in a quantized file
KEEP_FLOAT = {"encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
              "decoder.positional_embedding"}


def convert(model_dir, out_path, type_name="f16"):
    """Write the ggml file for the CTranslate2 model in `model_dir`; returns the tensor count."""
    if type_name not in TYPES:
        raise ValueError(f"unknown type {type_name!r}; known: {', '.join(TYPES)}")
    ftype, wtype = TYPES[type_name]
    w = read_ct2(os.path.join(model_dir, "model.bin"))
    for flag in ("decoder/scale_embeddings", "decoder/alibi"):
        if flag in w and int(w[flag]):
            raise ValueError(f"{flag} is set; not a Whisper model whisper.cpp can run")
    tensors = openai_tensors(w)
    shapes = dict(tensors)
    conv1 = shapes["encoder.conv1.weight"]
    emb = shapes["decoder.token_embedding.weight"]
    n_enc = sum(1 for n, _ in tensors if n.endswith(".mlp_ln.weight") and n.startswith("encoder."))
    n_dec = sum(1 for n, _ in tensors if n.endswith(".mlp_ln.weight") and n.startswith("decoder."))
    hparams = [
        emb.shape[0],                                      # n_vocab
        shapes["encoder.positional_embedding"].shape[0],   # n_audio_ctx
        conv1.shape[0],                                    # n_audio_state
        int(w["encoder/num_heads"]),
        n_enc,
        shapes["decoder.positional_embedding"].shape[0],   # n_text_ctx
        emb.shape[1],                                      # n_text_state
        int(w["decoder/num_heads"]),
        n_dec,
        conv1.shape[1],                                    # n_mels
        ftype if type_name == "f16" else QNT_VERSION * 1000 + ftype,
    ]
    filters = mel_filters(conv1.shape[1])
    words = vocabulary(os.path.join(model_dir, "tokenizer.json"))

    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ggml.", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<12i", MAGIC, *hparams))
            f.write(struct.pack("<2i", *filters.shape))
            f.write(filters.astype("<f4").tobytes())
            f.write(struct.pack("<i", len(words)))
            for word in words:
                f.write(struct.pack("<i", len(word)) + word)
            for name, arr in tensors:
                arr = np.asarray(arr)
                if arr.dtype.kind != "f":
                    raise ValueError(f"{name}: {arr.dtype} weights (a quantized CTranslate2 "
                                     "model) are not supported; use a float16 model")
                if arr.ndim == 1 or name in KEEP_FLOAT:
                    ttype, data = GGML_F32, arr.astype("<f4").tobytes()
                elif arr.ndim == 2 and wtype in QUANTIZERS:
                    ttype, data = wtype, QUANTIZERS[wtype](arr)
                else:
                    ttype, data = GGML_F16, arr.astype("<f2").tobytes()
                if ttype in QUANTIZERS and arr.shape[-1] % QK:
                    raise ValueError(f"{name}: rows of {arr.shape[-1]} are not whole blocks of {QK}")
                key = name.encode()
                f.write(struct.pack("<3i", arr.ndim, len(key), ttype))
                f.write(struct.pack(f"<{arr.ndim}i", *reversed(arr.shape)))
                f.write(key)
                f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(tensors)


def check_against_ggml():
    """Compares quantize_q8_0 / q4_0 / q4_1 / q5_0 / q5_1 byte for byte with ggml_quantize_chunk from the
    ggml library pywhispercpp ships, on random and adversarial rows; returns the mismatches."""
    import ctypes
    import glob

    import pywhispercpp

    libs = os.path.join(os.path.dirname(os.path.dirname(pywhispercpp.__file__)), "pywhispercpp.libs")
    found = glob.glob(os.path.join(libs, "libggml-base*.so*"))
    if not found:
        raise SystemExit(f"no libggml-base in {libs}")
    lib = ctypes.CDLL(found[0])
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_void_p]

    def ggml(ttype, x, block_bytes):
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.zeros(x.size // QK * block_bytes, dtype=np.uint8)
        n = lib.ggml_quantize_chunk(ttype, x.ctypes.data, out.ctypes.data, 0, x.shape[0],
                                    x.shape[1], None)
        if n != out.size:
            raise SystemExit(f"ggml_quantize_chunk wrote {n} bytes, expected {out.size}")
        return out.tobytes()

    rng = np.random.default_rng(7)
    cases = {
        "normal": rng.standard_normal((64, 384)),
        "f16 weights": rng.standard_normal((32, 512)).astype(np.float16) * 0.05,
        "zeros": np.zeros((2, 64)),
        "constant": np.full((2, 64), -3.0),
        "halves (rounding ties)": np.arange(-64, 64).reshape(4, 32) * 0.5,
        "-max and +max tie": np.tile([-2.0, 2.0] + [0.3] * 30, (3, 1)),
        "large": rng.standard_normal((4, 64)) * 6e4,
        "subnormal scale": rng.standard_normal((4, 64)) * 1e-6,
        "one spike": np.where(np.arange(96) == 5, 100.0, 0.01).reshape(1, 96),
    }
    bad = []
    for name, x in cases.items():
        for label, ttype, size, ours in (("q8_0", GGML_Q8_0, 34, quantize_q8_0),
                                         ("q4_0", GGML_Q4_0, 18, quantize_q4_0),
                                         ("q4_1", GGML_Q4_1, 20, quantize_q4_1),
                                         ("q5_0", GGML_Q5_0, 22, quantize_q5_0),
                                         ("q5_1", GGML_Q5_1, 24, quantize_q5_1)):
            x32 = np.asarray(x, dtype=np.float32)
            same = ours(x32) == ggml(ttype, x32, size)
            print(f"{label} {name}: {'same bytes' if same else 'DIFFERENT'}", file=sys.stderr)
            if not same:
                bad.append(f"{label} {name}")
    return bad


def sotto_home():
    return os.environ.get("SOTTO_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "sotto")


def ggml_file(model_name, type_name="f16"):
    """Path of the cached ggml file for a model sotto fetches ("tiny.en", "base"), made once."""
    path = os.path.join(sotto_home(), "ggml", f"ggml-{model_name}-{type_name}.bin")
    if not os.path.isfile(path):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from ct2_model import ct2_dir

        print(f"ct2_to_ggml: converting {model_name} to {path} (once)", file=sys.stderr)
        convert(ct2_dir(model_name), path, type_name)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="a model name sotto fetches (tiny.en, base) or a CTranslate2 directory")
    ap.add_argument("out", nargs="?", help="output file (default: the $SOTTO_HOME/ggml cache)")
    ap.add_argument("--type", default="f16", choices=sorted(TYPES))
    ap.add_argument("--check", action="store_true",
                    help="only compare the q8_0/q4_0 encoders with the ggml library of pywhispercpp")
    a = ap.parse_args()
    if a.check:
        bad = check_against_ggml()
        raise SystemExit(f"differ from ggml: {', '.join(bad)}" if bad else 0)
    if not a.model:
        ap.error("a model name or directory is required")
    if os.path.isdir(a.model):
        if not a.out:
            raise SystemExit("a directory needs an output path")
        convert(a.model, a.out, a.type)
        print(a.out)
    elif a.out:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from ct2_model import ct2_dir

        convert(ct2_dir(a.model), a.out, a.type)
        print(a.out)
    else:
        print(ggml_file(a.model, a.type))


if __name__ == "__main__":
    main()
