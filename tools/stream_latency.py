#!/usr/bin/env python3
"""Latency and WER of `sotto stream --simulate` on a file made by make_longform.py.

    python3 tools/stream_latency.py LONG.wav STREAM.jsonl [BATCH.txt]

LONG.tsv (utterance start, end, reference text) gives exact word ends for the last word of
each utterance; STREAM.jsonl is `sotto stream --simulate LONG.wav --json` (one confirmed word
per line with its wall time since the start; the file is fed in real time, so wall time is
audio time). The confirmed words are aligned to the reference words (difflib); latency is
wall − utterance end for each utterance whose last word was confirmed as the same word.
Prints the median / 90th percentile / max latency, stream WER and, given BATCH.txt (the batch
transcript), batch WER, both against LONG.txt.
"""

import difflib
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wer import normalize, score  # noqa: E402


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    base = os.path.splitext(sys.argv[1])[0]
    spans = []
    for line in open(base + ".tsv", encoding="utf-8"):
        start, end, text = line.rstrip("\n").split("\t", 2)
        spans.append((float(start), float(end), text))
    stream = [json.loads(x) for x in open(sys.argv[2], encoding="utf-8") if x.strip()]

    # Reference words, each with the end time of its utterance when it is the last word.
    ref, ends = [], []
    for _, end, text in spans:
        words = normalize(text).split()
        ref += words
        ends += [None] * (len(words) - 1) + [end] if words else []
    hyp, walls = [], []
    for w in stream:
        for n in normalize(w["text"]).split():
            hyp.append(n)
            walls.append(w["wall"])
    lat = []
    for a, b, size in difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_matching_blocks():
        for k in range(size):
            if ends[a + k] is not None:
                lat.append(walls[b + k] - ends[a + k])
    reference = " ".join(t for _, _, t in spans)
    stream_text = " ".join(w["text"] for w in stream)
    c = score(reference, stream_text)
    print(f"utterances {len(spans)}, last words matched {len(lat)}")
    if lat:
        lat.sort()
        p90 = lat[min(len(lat) - 1, int(0.9 * len(lat)))]
        print(f"latency s: median {statistics.median(lat):.2f}  p90 {p90:.2f}  max {lat[-1]:.2f}")
    print(f"stream WER {100 * c.wer:.2f} % ({c.ref_words} words)")
    if len(sys.argv) == 4:
        b = score(reference, open(sys.argv[3], encoding="utf-8").read())
        print(f"batch WER {100 * b.wer:.2f} %")


if __name__ == "__main__":
    main()
