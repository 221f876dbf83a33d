#!/usr/bin/env python3
"""Write a copy of a CTranslate2 Whisper model directory with its weights stored another way:
int8 as CTranslate2's converter writes with `--quantization int8` (int8_float16 with
--scale-dtype f16), int16 (one scale per tensor), or every float variable as float32 / bfloat16.

    python3 tools/ct2_recode.py tiny.en OUT_DIR                  # int8
    python3 tools/ct2_recode.py tiny.en OUT_DIR --weights bf16

int8: every linear weight (`.../linear_N/weight`) and the token embedding become int8 with one
scale per row stored as `<name>_scale`: scale = 127 / max|row|, code = round(w · scale)
(CTranslate2's `model_spec.py` quantization; the reader divides by the scale). Other
variables, the aliases and config/tokenizer files are copied unchanged. f32 / bf16: float
variables re-encoded (bf16 rounded to nearest even). Used by sotto's tests of `sotto convert`
on CTranslate2 models stored in those types (none can be downloaded here).
"""

import argparse
import os
import shutil
import struct
import sys

import numpy as np

DT = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_raw(path):
    b = open(path, "rb").read()
    pos = 0

    def take(n):
        nonlocal pos
        s = b[pos:pos + n]
        pos += n
        return s

    def u(fmt):
        return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

    version = u("I")
    spec = take(u("H"))
    revision = u("I")
    variables = []
    for _ in range(u("I")):
        name = take(u("H")).rstrip(b"\0").decode()
        shape = [u("I") for _ in range(u("B"))]
        code = u("B")
        data = take(u("I"))
        variables.append((name, shape, code, data))
    return version, spec, revision, variables, b[pos:]


def quantizable(name, shape):
    last = name.rsplit("/", 2)
    return len(shape) == 2 and (name == "decoder/embeddings/weight" or
                                (name.endswith("/weight") and last[-2].startswith("linear_")))


def write_var(f, name, shape, code, data):
    n = name.encode() + b"\0"
    f.write(struct.pack("<H", len(n)) + n + struct.pack("<B", len(shape)))
    f.write(struct.pack(f"<{len(shape)}I", *shape))
    f.write(struct.pack("<BI", code, len(data)) + data)


def to_bf16(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()


def convert(src, out, scale_dtype="f32", weights="int8"):
    version, spec, revision, variables, tail = read_raw(os.path.join(src, "model.bin"))
    os.makedirs(out, exist_ok=True)
    out_vars = []
    for name, shape, code, data in variables:
        if weights in ("f32", "bf16") and code in (0, 4):
            x = np.frombuffer(data, dtype=DT[code]).astype(np.float32)
            if weights == "f32":
                out_vars.append((name, shape, 0, x.astype("<f4").tobytes()))
            else:
                out_vars.append((name, shape, 5, to_bf16(x)))
        elif weights == "int16" and quantizable(name, shape) and code in (0, 4):
            # One scale for the tensor: 2^10 / max|w| (CTranslate2's int16 quantization).
            w = np.frombuffer(data, dtype=DT[code]).astype(np.float32)
            scale = np.float32(2**10 / max(float(np.abs(w).max()), 1e-30))
            q = np.clip(np.rint(w * scale), -32768, 32767).astype("<i2")
            out_vars.append((name, shape, 2, q.tobytes()))
            out_vars.append((name + "_scale", [], 0, np.float32(scale).tobytes()))
        elif weights == "int8" and quantizable(name, shape) and code in (0, 4):
            w = np.frombuffer(data, dtype=DT[code]).astype(np.float32).reshape(shape)
            amax = np.abs(w).max(axis=1)
            scale = np.where(amax > 0, np.float32(127) / np.maximum(amax, 1e-30), 1).astype(np.float32)
            q = np.rint(w * scale[:, None]).astype(np.int8)
            out_vars.append((name, shape, 1, q.tobytes()))
            s = scale.astype(np.float16 if scale_dtype == "f16" else np.float32)
            out_vars.append((name + "_scale", [shape[0]], 4 if scale_dtype == "f16" else 0, s.tobytes()))
        else:
            out_vars.append((name, shape, code, data))
    with open(os.path.join(out, "model.bin"), "wb") as f:
        f.write(struct.pack("<I", version) + struct.pack("<H", len(spec)) + spec)
        f.write(struct.pack("<II", revision, len(out_vars)))
        for v in out_vars:
            write_var(f, *v)
        f.write(tail)
    for extra in os.listdir(src):
        if extra != "model.bin":
            shutil.copyfile(os.path.join(src, extra), os.path.join(out, extra))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a model name sotto fetches (tiny.en, base) or a CTranslate2 directory")
    ap.add_argument("out")
    ap.add_argument("--weights", default="int8", choices=["int8", "int16", "f32", "bf16"])
    ap.add_argument("--scale-dtype", default="f32", choices=["f32", "f16"])
    a = ap.parse_args()
    src = a.model
    if not os.path.isdir(src):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from ct2_model import ct2_dir
        src = ct2_dir(src)
    convert(src, a.out, a.scale_dtype, a.weights)
    print(a.out)


if __name__ == "__main__":
    main()
