#!/usr/bin/env python3
"""Latency and WER of `sotto stream --simulate` on a file made by make_longform.py.

    python3 tools/stream_latency.py LONG.wav STREAM.jsonl [BATCH.txt | BATCH.json] [--pool FILE]

LONG.tsv (utterance start, end, reference text) gives exact word ends for the last word of
each utterance; STREAM.jsonl is `sotto stream --simulate LONG.wav --json` (one confirmed word
per line with its wall time since the start; the file is fed in real time, so wall time is
audio time). The confirmed words are aligned to the reference words (difflib); latency is
wall − utterance end for each utterance whose last word was confirmed as the same word.
Prints the median / 90th percentile / max latency, stream WER and, given BATCH.txt (the batch
transcript), batch WER, both against LONG.txt.

BATCH.json (`sotto transcribe --word-timestamps --format json`) also times every word: the
stream's words are aligned to the batch's (difflib), and latency is wall − the batch word's
end (its cross-attention alignment, which matches faster-whisper's to the frame). Every word
counts, not only an utterance's last, and the end is the word's, not the utterance's
trailing silence. Prints that latency too (`--pool FILE` appends
the per-word latencies there, for a median over several files).
"""

import argparse
import difflib
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wer import normalize, score  # noqa: E402


def timed_words(pieces):
    """Normalised words of (text, time) pieces, each word with its piece's time."""
    words, times = [], []
    for text, t in pieces:
        for n in normalize(text).split():
            words.append(n)
            times.append(t)
    return words, times


def latencies(ref, ref_times, hyp, walls):
    """wall − reference time for each hypothesis word aligned (difflib) to a reference word
    that has a time."""
    out = []
    for a, b, size in difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_matching_blocks():
        out += [walls[b + k] - ref_times[a + k] for k in range(size)
                if ref_times[a + k] is not None]
    return sorted(out)


def spread(lat):
    p90 = lat[min(len(lat) - 1, int(0.9 * len(lat)))]
    return f"latency s: median {statistics.median(lat):.2f}  p90 {p90:.2f}  max {lat[-1]:.2f}"


def main():
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("wav")
    ap.add_argument("stream")
    ap.add_argument("batch", nargs="?")
    ap.add_argument("--pool", metavar="FILE")
    args = ap.parse_args()
    base = os.path.splitext(args.wav)[0]
    spans = []
    for line in open(base + ".tsv", encoding="utf-8"):
        start, end, text = line.rstrip("\n").split("\t", 2)
        spans.append((float(start), float(end), text))
    stream = [json.loads(x) for x in open(args.stream, encoding="utf-8") if x.strip()]

    # Reference words, each with the end time of its utterance when it is the last word.
    ref, ends = [], []
    for _, end, text in spans:
        words = normalize(text).split()
        ref += words
        ends += [None] * (len(words) - 1) + [end] if words else []
    hyp, walls = timed_words((w["text"], w["wall"]) for w in stream)
    lat = latencies(ref, ends, hyp, walls)
    reference = " ".join(t for _, _, t in spans)
    stream_text = " ".join(w["text"] for w in stream)
    c = score(reference, stream_text)
    print(f"utterances {len(spans)}, last words matched {len(lat)}")
    if lat:
        print(spread(lat))
    print(f"stream WER {100 * c.wer:.2f} % ({c.ref_words} words)")
    if args.batch:
        path = args.batch
        if path.endswith(".json"):
            batch = json.load(open(path, encoding="utf-8"))
            bwords, bends = timed_words((w["word"], w["end"]) for seg in batch["segments"]
                                        for w in seg.get("words", []))
            every = latencies(bwords, bends, hyp, walls)
            if every:
                print(f"every word ({len(every)} matched of {len(hyp)}): {spread(every)}")
                if args.pool:
                    with open(args.pool, "a", encoding="utf-8") as f:
                        f.write("\n".join(f"{x:.3f}" for x in every) + "\n")
            text = batch["text"]
        else:
            text = open(path, encoding="utf-8").read()
        b = score(reference, text)
        print(f"batch WER {100 * b.wer:.2f} %")


if __name__ == "__main__":
    main()
