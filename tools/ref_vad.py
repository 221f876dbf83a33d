#!/usr/bin/env python3
"""onnxruntime's Silero VAD v6 (the model faster-whisper ships) on 16-kHz mono 16-bit WAV
files: the reference tests/vad.rs compares sotto's VAD with.

For each file prints one line `p FILE` followed by the per-frame speech probabilities
(faster-whisper's framing: 512 samples with the previous 64 in front, the end padded
with zeros), one line `s START END ...` with faster-whisper's speech segments (samples,
default VadOptions), and one blank line.

    python3 tools/ref_vad.py samples/jfk.wav eval/librispeech/test-other/1688-142285-0000.wav
"""
import sys
import wave

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model


def read_wav(path):
    with wave.open(path) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (16000, 1, 2):
            sys.exit(f"{path}: need 16-kHz mono 16-bit PCM")
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model = get_vad_model()
    for path in sys.argv[1:]:
        audio = read_wav(path)
        padded = np.pad(audio, (0, 512 - audio.shape[0] % 512))
        probs = model(padded).reshape(-1)
        speech = get_speech_timestamps(audio, VadOptions())
        print("p " + path)
        print(" ".join(f"{p:.7f}" for p in probs))
        print("s " + " ".join(f"{s['start']} {s['end']}" for s in speech))
        print()


if __name__ == "__main__":
    main()
