#!/usr/bin/env python3
"""Word timestamps: sotto `transcribe --word-timestamps` against faster-whisper
`word_timestamps=True` on the same files and the same model weights, and the cost of
word timestamps in sotto's transcription time.

    python3 tools/compare_words.py --sotto target/release/sotto \
        [--model tiny.en] [--model base] [--set eval/librispeech/test-clean] \
        [--threads 2] [--limit N] [--rounds 3] [--json OUT]
    python3 tools/compare_words.py --reference samples/jfk.wav [--model tiny.en]
        (faster-whisper's words of one file as JSON, for tests/words.rs)

Both sides decode greedily (beam 1, best-of 5 at the fallback temperatures, the same
thresholds, condition_on_previous_text, language "en", no VAD); faster-whisper loads
the CTranslate2 directory the cached .sotto was converted from (tools/ct2_model.py),
compute_type float32. Files: samples/jfk.wav plus the set's manifest. On each file
whose word sequences are equal (lower-cased, punctuation stripped), |Δstart| and
|Δend| of every word; the table gives their median and 95th percentile.

Cost: `sotto transcribe` of all files with and without --word-timestamps, the two
runs interleaved for --rounds rounds (one process per run, all files in it), the
ratio of the medians of the wall times.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_files(sets, limit):
    from compare_wer import load_manifest

    files = [os.path.join(REPO, "samples", "jfk.wav")]
    for s in sets:
        files += [u["path"] for u in load_manifest(s, limit)]
    return files


def fw_words(model, threads, files):
    """faster-whisper's words per file: [[(word, start, end, probability)]]."""
    from faster_whisper import WhisperModel
    from ct2_model import ct2_dir
    from ref_encoder import read_wav

    m = WhisperModel(ct2_dir(model), device="cpu", compute_type="float32",
                     cpu_threads=threads)
    out = []
    for f in files:
        segments, _ = m.transcribe(
            read_wav(f), language="en", task="transcribe", beam_size=1, best_of=5,
            condition_on_previous_text=True, without_timestamps=False, vad_filter=False,
            word_timestamps=True)
        out.append([(w.word, w.start, w.end, w.probability)
                    for s in segments for w in (s.words or [])])
    return out


def sotto_cmd(sotto, model, threads, files, words):
    cmd = [sotto, "transcribe", "-m", model, "-t", str(threads), "--format", "json",
           "--beam-size", "1", "--best-of", "5", "--device", "cpu", "--language", "en"]
    if words:
        cmd.append("--word-timestamps")
    return cmd + files


def sotto_words(sotto, model, threads, files):
    proc = subprocess.run(sotto_cmd(sotto, model, threads, files, True), check=True,
                          capture_output=True, text=True)
    doc = json.loads(proc.stdout)
    if isinstance(doc, dict):
        doc = [doc]
    return [[(w["word"], w["start"], w["end"], w["probability"])
             for s in d["segments"] for w in s.get("words", [])] for d in doc]


def norm(word):
    return re.sub(r"[^\w']", "", word.lower())


def percentile(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def row(r):
    model, same, n, nw, ds, de, ratio = r
    ms = lambda x: f"{1000 * x:.0f}" if x == x else "-"  # noqa: E731
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    rt = f"{ratio:.3f}" if ratio is not None else "-"
    return (f"| {model} | {same}/{n} | {nw} | {ms(med(ds))} | {ms(percentile(ds, 0.95))} "
            f"| {ms(med(de))} | {ms(percentile(de, 0.95))} | {rt} |")


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--sotto", metavar="PATH")
    ap.add_argument("--model", action="append", metavar="M", help="tiny.en (default), base")
    ap.add_argument("--set", dest="sets", action="append", metavar="DIR")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, help="first N utterances of each set")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (0: none)")
    ap.add_argument("--json", metavar="OUT", help="write every word pair here")
    ap.add_argument("--reference", metavar="AUDIO",
                    help="print faster-whisper's words of AUDIO as JSON and exit")
    args = ap.parse_args()
    models = args.model or ["tiny.en"]
    if args.reference:
        words = fw_words(models[0], args.threads, [args.reference])[0]
        print(json.dumps([{"word": w, "start": s, "end": e, "probability": p}
                          for w, s, e, p in words]))
        return
    if not args.sotto:
        ap.error("--sotto is needed (or --reference)")
    sets = args.sets if args.sets is not None else [os.path.join(REPO, "eval", "librispeech",
                                                                 "test-clean")]
    files = load_files(sets, args.limit)

    rows, dump = [], []
    for model in models:
        ref = fw_words(model, args.threads, files)
        hyp = sotto_words(args.sotto, model, args.threads, files)
        ds, de, same = [], [], 0
        for f, r, h in zip(files, ref, hyp):
            equal = [norm(w[0]) for w in r] == [norm(w[0]) for w in h]
            dump.append({"model": model, "file": f, "same_words": equal,
                         "faster_whisper": r, "sotto": h})
            if not equal:
                continue
            same += 1
            for a, b in zip(r, h):
                ds.append(abs(a[1] - b[1]))
                de.append(abs(a[2] - b[2]))
        ratio = None
        if args.rounds > 0:
            t_plain, t_words = [], []
            for _ in range(args.rounds):
                t_plain.append(timed(sotto_cmd(args.sotto, model, args.threads, files, False)))
                t_words.append(timed(sotto_cmd(args.sotto, model, args.threads, files, True)))
            ratio = statistics.median(t_words) / statistics.median(t_plain)
        rows.append((model, same, len(files), len(ds), ds, de, ratio))
        # Each model's row as soon as it is measured (a long run can be cut short).
        print(row(rows[-1]), file=sys.stderr, flush=True)

    print("| model | files same words | words | median Δstart ms | p95 Δstart ms "
          "| median Δend ms | p95 Δend ms | time with / without |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(row(r))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dump, f, indent=1)


if __name__ == "__main__":
    main()
