#!/usr/bin/env python3
"""Beam search accuracy: corpus WER of sotto beam 1, sotto beam 5 and faster-whisper
beam 5 on the same files, in one run.

    python3 tools/compare_beam.py --sotto target/release/sotto \
        [--model tiny.en] [--model base] [--precision f16] [--precision int8] \
        [--set eval/librispeech/test-clean --set eval/librispeech/test-other] \
        [--threads 2] [--limit N] [--json OUT]

For each model and precision: sotto `transcribe --beam-size 1` (greedy) and
`--beam-size 5` (both with --best-of 5 and --language en, sotto's CLI defaults otherwise), and
faster-whisper with beam_size=5, best_of=5, patience=1, length_penalty=1 (CTranslate2's
1 is openai-whisper's None: log-probability / length), the same temperature fallback,
condition_on_previous_text, language "en", vad off. Precision f16 runs sotto's cached
float16 model against faster-whisper compute_type float32; int8 runs
`$SOTTO_HOME/{model}-int8.sotto` (int8 rows, dynamic int8 activations: `sotto eval`'s
int8, made with `sotto quantize` when missing or made otherwise, e.g. weight-only)
against compute_type int8. WER uses tools/wer.py, the normaliser `sotto eval` mirrors;
the corpus is all sets together.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare_wer import load_manifest, run_sotto  # noqa: E402
from wer import Counts, score  # noqa: E402

DEFAULT_SETS = ["eval/librispeech/test-clean", "eval/librispeech/test-other"]


def sotto_home():
    return os.environ.get("SOTTO_HOME") or os.path.join(os.path.expanduser("~"), ".cache",
                                                        "sotto")


def sotto_model(sotto, model, precision):
    """The value for sotto's -m: the cached model, or its int8 quantization."""
    if precision == "f16":
        return model
    path = os.path.join(sotto_home(), f"{model}-int8.sotto")
    if os.path.exists(path):
        # A file of that name made otherwise (weight-only int8) is not this comparison's.
        info = subprocess.run([sotto, "info", path], capture_output=True, text=True).stdout
        if "activations (quantized layers): dynamic" in info:
            return path
        print(f"{path}: not int8 with dynamic activations; quantizing again", file=sys.stderr)
    src = os.path.join(sotto_home(), f"{model}.sotto")
    if not os.path.exists(src):
        subprocess.run([sotto, "fetch", model], check=True)
    subprocess.run([sotto, "quantize", src, path, "--scheme", "int8",
                    "--activations", "dynamic"], check=True)
    return path


def run_fw(model, compute_type, threads, utts):
    from faster_whisper import WhisperModel
    from ct2_model import ct2_dir
    from ref_encoder import read_wav

    m = WhisperModel(ct2_dir(model), device="cpu", compute_type=compute_type,
                     cpu_threads=threads)
    hyps = []
    t0 = time.perf_counter()
    for u in utts:
        segments, _ = m.transcribe(
            read_wav(u["path"]), language="en", task="transcribe", beam_size=5, best_of=5,
            patience=1.0, length_penalty=1.0, condition_on_previous_text=True,
            without_timestamps=False, vad_filter=False, word_timestamps=False)
        hyps.append("".join(s.text for s in segments).strip())
    return hyps, time.perf_counter() - t0


def corpus(utts, hyps):
    c = Counts()
    for u, h in zip(utts, hyps):
        c = c + score(u["reference"], h)
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--sotto", required=True, metavar="PATH")
    ap.add_argument("--model", action="append", metavar="M", help="tiny.en (default), base")
    ap.add_argument("--precision", action="append", choices=["f16", "int8"])
    ap.add_argument("--set", dest="sets", action="append", metavar="DIR")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, help="first N utterances of each set")
    ap.add_argument("--json", metavar="OUT", help="write every hypothesis here")
    args = ap.parse_args()
    models = args.model or ["tiny.en"]
    precisions = args.precision or ["f16", "int8"]
    utts = [u for s in (args.sets or DEFAULT_SETS) for u in load_manifest(s, args.limit)]
    audio_s = sum(u["duration_s"] for u in utts)

    rows, report = [], []
    for model in models:
        for precision in precisions:
            m = sotto_model(args.sotto, model, precision)
            runs = {}
            for beam in (1, 5):
                print(f"[{model} {precision}] sotto beam {beam}: {len(utts)} files ...",
                      file=sys.stderr)
                runs[f"sotto b{beam}"] = run_sotto(
                    args.sotto, m, args.threads, utts,
                    ["--beam-size", str(beam), "--best-of", "5", "--device", "cpu"])
            ct = "float32" if precision == "f16" else "int8"
            print(f"[{model} {precision}] faster-whisper {ct} beam 5 ...", file=sys.stderr)
            runs["fw b5"] = run_fw(model, ct, args.threads, utts)
            wers = {k: corpus(utts, h) for k, (h, _) in runs.items()}
            rows.append((model, precision, wers, {k: w for k, (_, w) in runs.items()}))
            report.append({"model": model, "precision": precision,
                           "wer": {k: c.wer for k, c in wers.items()},
                           "wall_s": {k: w for k, (_, w) in runs.items()},
                           "hypotheses": {k: h for k, (h, _) in runs.items()}})

    print(f"{len(utts)} utterances, {audio_s:.0f} s audio, threads {args.threads}; "
          "corpus WER % (wall s)")
    head = ["model", "prec", "sotto b1", "sotto b5", "fw b5", "b5 sotto-fw"]
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for model, precision, w, t in rows:
        cell = lambda k: f"{100 * w[k].wer:.2f} ({t[k]:.0f})"  # noqa: E731
        diff = 100 * (w["sotto b5"].wer - w["fw b5"].wer)
        print(" | ".join([model, precision, cell("sotto b1"), cell("sotto b5"), cell("fw b5"),
                          f"{diff:+.2f}"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"sets": args.sets or DEFAULT_SETS, "threads": args.threads,
                       "runs": report}, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
