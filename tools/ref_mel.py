#!/usr/bin/env python3
"""Reference log-mel features from faster-whisper's pure-numpy FeatureExtractor.

Usage:
    ref_mel.py WAV OUT.f32 [--padding N] [--n-mels 80] [--max-samples K]
    ref_mel.py --filters OUT.f32 [--n-mels 80]

Writes raw little-endian float32 (row-major, n_mels x n_frames; or n_mels x 201 for --filters) and
prints "shape N_MELS N_COLS" on stdout. The WAV (16-bit PCM, 16 kHz, mono) is read with the `wave`
module and scaled by 1/32768, the same conversion sotto's decoder applies.

faster-whisper's __call__(waveform, padding) appends `padding` zeros, runs a centred reflect-padded
STFT (numpy rfft, periodic Hann) and drops the last frame -- the same numerics as openai-whisper's
log_mel_spectrogram(audio, padding=...). So sotto's log_mel_spectrogram(samples, padding, ...) is
compared with FeatureExtractor(...)(samples, padding=padding) for the same `padding`.
"""
import argparse
import sys
import wave

import numpy as np

try:
    from faster_whisper.feature_extractor import FeatureExtractor
except ImportError:
    sys.exit("ref_mel.py: python package faster_whisper is missing: pip install faster-whisper")


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            sys.exit(f"ref_mel.py: {path}: expected 16-bit mono PCM")
        if w.getframerate() != 16000:
            sys.exit(f"ref_mel.py: {path}: expected 16 kHz, got {w.getframerate()} Hz")
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wav", nargs="?")
    ap.add_argument("out")
    ap.add_argument("--padding", type=int, default=160)
    ap.add_argument("--n-mels", type=int, default=80)
    ap.add_argument("--max-samples", type=int, default=None)
    ap.add_argument("--filters", action="store_true", help="write the mel filter bank instead")
    args = ap.parse_intermixed_args()

    fe = FeatureExtractor(feature_size=args.n_mels)
    if args.filters:
        out = np.ascontiguousarray(fe.mel_filters, dtype="<f4")
    else:
        if args.wav is None:
            ap.error("WAV is required unless --filters is given")
        samples = read_wav(args.wav)
        if args.max_samples is not None:
            samples = samples[: args.max_samples]
        out = np.ascontiguousarray(fe(samples, padding=args.padding), dtype="<f4")
    out.tofile(args.out)
    print("shape", *out.shape)


if __name__ == "__main__":
    main()
