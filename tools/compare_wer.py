#!/usr/bin/env python3
"""Compare faster-whisper and sotto on evaluation sets: corpus WER, S/D/I, wall time.

    python3 tools/compare_wer.py --model tiny.en --set eval/librispeech/test-clean \
        [--set DIR ...] [--sotto target/release/sotto] [--threads 2] [--limit N] [--json OUT]

A set is a folder with manifest.tsv (tab-separated, header line first, columns
file, duration_s, reference_text, ...; file paths relative to the folder).

faster-whisper runs float32 on the CPU with settings meant to match sotto's greedy path:
beam_size=1, best_of=--best-of (1), temperatures 0.0..1.0 fallback (faster-whisper's
defaults: compression ratio 2.4, log-prob -1.0, no-speech 0.6), condition_on_previous_text,
timestamps on, vad_filter off, language "en", cpu_threads=--threads. Audio is read
with `wave` (16-bit / 16 kHz / mono) and passed as float32 samples (int16 / 32768, the
same values faster-whisper's own decoder gives), so no ffmpeg/av is involved.
Its time covers transcription only; model load time is shown separately.

sotto is run once per set: `SOTTO transcribe FILE... -m MODEL -t THREADS --format json
--language en`, whose stdout is a JSON array of {"file", "text", ...} objects (or one
object for one file). Its time is the whole process (model load included). Without
--sotto, only faster-whisper runs.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wer import Counts, normalize, score  # noqa: E402

FW = "faster-whisper"
SOTTO = "sotto"


def load_manifest(set_dir, limit=None):
    path = os.path.join(set_dir, "manifest.tsv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    for col in ("file", "reference_text"):
        if rows and col not in rows[0]:
            raise SystemExit(f"{path}: no column {col!r} (have {list(rows[0])})")
    if limit is not None:
        rows = rows[:limit]
    return [{"file": r["file"], "path": os.path.join(set_dir, r["file"]),
             "duration_s": float(r.get("duration_s") or 0), "reference": r["reference_text"]}
            for r in rows]


# ---------------------------------------------------------------- faster-whisper

class FasterWhisper:
    def __init__(self, model, threads, best_of):
        from faster_whisper import WhisperModel
        from ct2_model import ct2_dir

        model_dir = model if os.path.isdir(model) else ct2_dir(model)
        t0 = time.perf_counter()
        self.model = WhisperModel(model_dir, device="cpu", compute_type="float32",
                                  cpu_threads=threads)
        self.load_s = time.perf_counter() - t0
        self.best_of = best_of

    def transcribe(self, path):
        from ref_encoder import read_wav

        audio = read_wav(path)
        segments, _info = self.model.transcribe(
            audio, language="en", task="transcribe", beam_size=1, best_of=self.best_of,
            condition_on_previous_text=True, without_timestamps=False, vad_filter=False,
            word_timestamps=False)
        segs = [{"start": s.start, "end": s.end, "text": s.text} for s in segments]
        return "".join(s["text"] for s in segs).strip(), segs


def run_faster_whisper(fw, utts):
    hyps = []
    t0 = time.perf_counter()
    for u in utts:
        text, _segs = fw.transcribe(u["path"])
        hyps.append(text)
    return hyps, time.perf_counter() - t0


# ---------------------------------------------------------------- sotto

def parse_sotto_output(stdout, utts):
    """Map sotto's JSON (array or single object) to one hypothesis per utterance."""
    data = json.loads(stdout)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError(f"sotto printed JSON of type {type(data).__name__}")
    by_key = {}
    for obj in data:
        f = obj.get("file")
        if f is not None:
            by_key[os.path.normpath(f)] = obj
            by_key.setdefault(os.path.basename(f), obj)
    hyps = []
    for i, u in enumerate(utts):
        obj = by_key.get(os.path.normpath(u["path"])) or by_key.get(os.path.basename(u["path"]))
        if obj is None and len(data) == len(utts):
            obj = data[i]                 # no usable "file" field: trust the order
        if obj is None:
            raise ValueError(f"sotto output has no entry for {u['path']}")
        text = obj.get("text")
        if text is None:
            text = "".join(s.get("text", "") for s in obj.get("segments", []))
        hyps.append(text.strip())
    return hyps


def run_sotto(sotto, model, threads, utts, extra_args):
    # English, as faster-whisper is told: a multilingual model left to detect would
    # answer some hard utterances in another language and script.
    cmd = [sotto, "transcribe", *[u["path"] for u in utts], "-m", model,
           "-t", str(threads), "--format", "json", "--language", "en", *extra_args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sotto exited {proc.returncode}: {' '.join(cmd[:3])} ...\n"
                           f"{proc.stderr[-2000:]}")
    return parse_sotto_output(proc.stdout, utts), wall


# ---------------------------------------------------------------- report

def fmt_engine(res):
    if res is None:
        return ["-", "-", "-"]
    c = res["counts"]
    return [f"{100 * c.wer:.2f}", f"{c.sub}/{c.dele}/{c.ins}", f"{res['wall_s']:.1f}"]


def print_table(rows):
    head = ["set", "n", "ref words", "audio s",
            "WER% fw", "S/D/I fw", "time s fw",
            "WER% sotto", "S/D/I sotto", "time s sotto", "dWER% (sotto-fw)"]
    table = [head]
    for r in rows:
        fw, so = r["engines"].get(FW), r["engines"].get(SOTTO)
        diff = "-"
        if fw and so:
            diff = f"{100 * (so['counts'].wer - fw['counts'].wer):+.2f}"
        table.append([r["set"], str(r["n"]), str(r["ref_words"]), f"{r['audio_s']:.1f}",
                      *fmt_engine(fw), *fmt_engine(so), diff])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for k, row in enumerate(table):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--model", required=True, help="tiny.en or base (or a CTranslate2 dir)")
    ap.add_argument("--set", dest="sets", action="append", required=True, metavar="DIR")
    ap.add_argument("--sotto", metavar="PATH", help="sotto binary; omitted: faster-whisper only")
    ap.add_argument("--sotto-model", metavar="M", help="value for sotto's -m (default: --model)")
    ap.add_argument("--sotto-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for sotto (repeatable)")
    ap.add_argument("--no-fw", action="store_true", help="skip faster-whisper")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--best-of", type=int, default=1,
                    help="faster-whisper candidates when sampling at T>0 (default 1)")
    ap.add_argument("--limit", type=int, help="first N utterances of each set")
    ap.add_argument("--json", metavar="OUT", help="write per-utterance results here")
    args = ap.parse_args()

    fw = None if args.no_fw else FasterWhisper(args.model, args.threads, args.best_of)
    if fw:
        print(f"faster-whisper model load: {fw.load_s:.2f} s", file=sys.stderr)

    rows, report = [], {"model": args.model, "threads": args.threads, "best_of": args.best_of,
                        "sets": []}
    total = {"set": "ALL", "n": 0, "ref_words": 0, "audio_s": 0.0, "engines": {}}
    for set_dir in args.sets:
        utts = load_manifest(set_dir, args.limit)
        name = os.path.basename(os.path.normpath(set_dir))
        hyps = {}
        walls = {}
        if fw:
            print(f"[{name}] faster-whisper: {len(utts)} files ...", file=sys.stderr)
            hyps[FW], walls[FW] = run_faster_whisper(fw, utts)
        if args.sotto:
            print(f"[{name}] sotto: {len(utts)} files ...", file=sys.stderr)
            hyps[SOTTO], walls[SOTTO] = run_sotto(args.sotto, args.sotto_model or args.model,
                                                  args.threads, utts, args.sotto_arg)

        row = {"set": name, "n": len(utts), "audio_s": sum(u["duration_s"] for u in utts),
               "ref_words": sum(len(normalize(u["reference"]).split()) for u in utts),
               "engines": {}}
        per_utt = [{"file": u["file"], "duration_s": u["duration_s"],
                    "reference": u["reference"]} for u in utts]
        for eng, hs in hyps.items():
            total_c = Counts()
            for pu, u, h in zip(per_utt, utts, hs):
                c = score(u["reference"], h)
                total_c = total_c + c
                pu[eng] = {"text": h, "sub": c.sub, "del": c.dele, "ins": c.ins,
                           "ref_words": c.ref_words}
            row["engines"][eng] = {"counts": total_c, "wall_s": walls[eng]}
            t = total["engines"].setdefault(eng, {"counts": Counts(), "wall_s": 0.0})
            t["counts"] = t["counts"] + total_c
            t["wall_s"] += walls[eng]
        for k in ("n", "ref_words", "audio_s"):
            total[k] += row[k]
        rows.append(row)
        report["sets"].append({
            "set": name, "dir": set_dir, "n": row["n"], "ref_words": row["ref_words"],
            "audio_s": row["audio_s"],
            "engines": {e: {"wer": r["counts"].wer, "sub": r["counts"].sub,
                            "del": r["counts"].dele, "ins": r["counts"].ins,
                            "wall_s": r["wall_s"]} for e, r in row["engines"].items()},
            "utterances": per_utt})
    if len(rows) > 1:
        rows.append(total)
    if fw:
        report["faster_whisper_load_s"] = fw.load_s

    print(f"model {args.model}, threads {args.threads}, greedy (beam 1, best_of {args.best_of})")
    print_table(rows)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
        print(f"per-utterance results: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
