#!/usr/bin/env python3
"""Make a long-form test recording by joining LibriSpeech utterances.

    python3 tools/make_longform.py OUT.wav [--seconds 120] [--set DIR] [--repeat] [--gap S] [--first N]

Takes utterances of the set (default: the repository's eval/librispeech/test-other) in
manifest order (from the N-th with --first N, so that several files hold different speech), with 0.3 s of silence between them, until the audio is at least --seconds long.
Writes OUT.wav (16 kHz mono 16-bit PCM) and OUT.txt (the joined reference texts, one line) and
prints what it used. `--repeat` goes round the set again until the length is reached (an hour of
test-other for the constant-memory check); OUT.tsv lists each utterance's start, end (s) and text
(streaming latency is measured from those ends). For checking long-form transcription
(seeking across 30-s windows): no sentence should be dropped or repeated.
"""

import argparse
import os
import sys
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare_wer import load_manifest  # noqa: E402

RATE = 16000
GAP_S = 0.3
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SET = os.path.join(REPO, "eval", "librispeech", "test-other")


def read_pcm(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != RATE:
            raise SystemExit(f"{path}: need 16-bit mono {RATE} Hz PCM")
        return w.readframes(w.getnframes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", metavar="OUT.wav")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--set", default=DEFAULT_SET, metavar="DIR")
    ap.add_argument("--repeat", action="store_true")
    ap.add_argument("--gap", type=float, default=GAP_S, metavar="S")
    ap.add_argument("--first", type=int, default=0, metavar="N", help="start at the N-th utterance")
    args = ap.parse_args()

    gap = b"\x00\x00" * int(round(args.gap * RATE))
    chunks, texts, spans, n_bytes = [], [], [], 0
    manifest = load_manifest(args.set)
    manifest = manifest[args.first:] + manifest[:args.first]
    while n_bytes < args.seconds * RATE * 2:
        for u in manifest:
            if n_bytes >= args.seconds * RATE * 2:
                break
            if chunks:
                chunks.append(gap)
                n_bytes += len(gap)
            pcm = read_pcm(u["path"])
            chunks.append(pcm)
            spans.append((n_bytes / (2 * RATE), (n_bytes + len(pcm)) / (2 * RATE)))
            n_bytes += len(pcm)
            texts.append(u["reference"].strip())
        if not args.repeat:
            break
    total_s = n_bytes / (2 * RATE)
    if total_s < args.seconds:
        print(f"warning: the set holds only {total_s:.1f} s", file=sys.stderr)

    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with wave.open(args.out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(chunks))
    txt = os.path.splitext(args.out)[0] + ".txt"
    with open(txt, "w", encoding="utf-8") as f:
        f.write(" ".join(texts) + "\n")
    with open(os.path.splitext(args.out)[0] + ".tsv", "w", encoding="utf-8") as f:
        for (start, end), text in zip(spans, texts):
            f.write(f"{start:.4f}\t{end:.4f}\t{text}\n")
    print(f"{args.out}: {len(texts)} utterances, {total_s:.2f} s; reference text in {txt}")


if __name__ == "__main__":
    main()
