#!/usr/bin/env python3
"""Transcription with and without --vad on speech separated by silence and noise.

Builds (in a temporary directory, nothing committed) 16-kHz files of 10 LibriSpeech
test-other utterances each (every 10th line of eval/librispeech/test-other's manifest,
from line 0, 1, ... for the first, second, ... file), each preceded by a 3-20 s gap; gaps alternate between near-silence
(white dither at -80 dBFS) and recorded-style room noise (brown + pink noise with
50-Hz hum and harmonics, about -42 dBFS RMS), and the file ends with one more gap.
Then runs `sotto transcribe --format json` without and with `--vad`, interleaved
(A, B, A, B, ...: the machine is shared, so only the ratio in one run means much),
and reports the median wall time of each and their ratio, the words emitted inside
the gaps (words of segments that lie mostly, > 50 %, outside every utterance), and
the WER of the whole transcript against the ten references (tools/wer.py).

    python3 tools/vad_bench.py [--sotto target/release/sotto] [-m tiny.en] [-t 2] [--runs 3]
                               [--files N]   # N files of 10 different utterances each
                               [--vad-args '--vad-chunk-s 1e9']
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wer  # noqa: E402

RATE = 16000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SET = os.path.join(ROOT, "eval", "librispeech", "test-other")


def read_wav(path):
    with wave.open(path) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2), path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def write_wav(path, x):
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def room_noise(n, rng):
    """Brown + pink noise with mains hum, scaled to about -42 dBFS RMS."""
    white = rng.standard_normal(n)
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(4001) / 4001, mode="same")  # no DC drift
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum, n)
    t = np.arange(n) / RATE
    hum = sum(a * np.sin(2 * np.pi * 50 * k * t + k) for k, a in [(1, 1.0), (2, 0.4), (3, 0.5), (5, 0.2)])
    x = brown / (brown.std() + 1e-9) + pink / (pink.std() + 1e-9) + 0.8 * hum / hum.std()
    return (x / x.std() * 10 ** (-42 / 20)).astype(np.float32)


def build(path, which=0, seed=17):
    """File `which` holds manifest lines which, which + 10, ... (10 utterances)."""
    rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(SET, "manifest.tsv"))][1:]
    rows = rows[which::10][:10]
    rng = np.random.default_rng(seed)
    parts, speech, refs = [], [], []
    at = 0

    def gap(i):
        n = int(rng.uniform(3, 20) * RATE)
        if i % 2 == 0:
            g = (rng.standard_normal(n) * 10 ** (-80 / 20)).astype(np.float32)
        else:
            g = room_noise(n, rng)
        parts.append(g)
        return n

    for i, row in enumerate(rows):
        at += gap(i)
        x = read_wav(os.path.join(SET, row[0]))
        parts.append(x)
        speech.append((at / RATE, (at + len(x)) / RATE))
        refs.append(row[2])
        at += len(x)
    at += gap(len(rows))
    audio = np.concatenate(parts)
    write_wav(path, audio)
    return speech, refs, len(audio) / RATE


def words_in_gaps(segments, speech):
    n = 0
    for s in segments:
        d = max(s["end"] - s["start"], 1e-3)
        inside = sum(max(0.0, min(s["end"], b) - max(s["start"], a)) for a, b in speech)
        if inside / d <= 0.5:
            n += len(wer.normalize(s["text"]).split())
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sotto", default=os.path.join(ROOT, "target", "release", "sotto"))
    ap.add_argument("-m", "--model", default="tiny.en")
    ap.add_argument("-t", "--threads", default="2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=1, help="files of 10 different utterances each")
    ap.add_argument("--vad-args", default="", help="more flags for the --vad runs, e.g. '--vad-chunk-s 1e9'")
    a = ap.parse_args()
    names = ["plain", "vad"]
    total = {n: dict(time=0.0, gaps=0, counts=wer.Counts()) for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for which in range(a.files):
            path = os.path.join(tmp, f"gaps{which}.wav")
            speech, refs, seconds = build(path, which, seed=17 + which)
            print(f"file {which}: {seconds:.1f} s, {sum(b - a for a, b in speech):.1f} s of speech "
                  f"in 10 utterances")
            base = [a.sotto, "transcribe", path, "-m", a.model, "-t", a.threads, "--device", "cpu",
                    "--format", "json", "-v"]
            cmds = {"plain": base, "vad": base + ["--vad"] + a.vad_args.split()}
            times = {n: [] for n in names}
            out = {}
            for _ in range(a.runs):
                for n in names:
                    t0 = time.perf_counter()
                    p = subprocess.run(cmds[n], capture_output=True, text=True)
                    times[n].append(time.perf_counter() - t0)
                    if p.returncode != 0:
                        sys.exit(f"{' '.join(cmds[n])} failed:\n{p.stderr}")
                    out[n] = (json.loads(p.stdout), p.stderr.strip())
            ref = " ".join(refs)
            for n in names:
                tr, log = out[n]
                c = wer.score(ref, tr["text"])
                gaps = words_in_gaps(tr["segments"], speech)
                med = statistics.median(times[n])
                t = total[n]
                t["time"] += med
                t["gaps"] += gaps
                t["counts"] = t["counts"] + c
                print(f"  {n:5}: median {med:.2f} s of {[round(x, 2) for x in times[n]]}, "
                      f"{len(tr['segments'])} segments, words in gaps {gaps}, "
                      f"WER {100 * c.wer:.2f} % (S {c.sub} D {c.dele} I {c.ins} of {c.ref_words})")
                print("         " + log.replace("\n", "\n         "))
            print(f"  time ratio vad/plain: {statistics.median(times['vad']) / statistics.median(times['plain']):.3f}")
    print(f"all {a.files} file(s), {a.model}, {a.threads} threads:")
    for n in names:
        t = total[n]
        c = t["counts"]
        print(f"  {n:5}: {t['time']:.2f} s (sum of medians), words in gaps {t['gaps']}, "
              f"WER {100 * c.wer:.2f} % (S {c.sub} D {c.dele} I {c.ins} of {c.ref_words})")
    print(f"  time ratio vad/plain: {total['vad']['time'] / total['plain']['time']:.3f}")


if __name__ == "__main__":
    main()
