#!/usr/bin/env python3
"""Reference log-mel + encoder output from faster-whisper / CTranslate2, for sotto's tests.

    python3 tools/ref_encoder.py MODEL WAV OUT_PREFIX

MODEL is "tiny.en" or "base" (see ct2_model.py) or a CTranslate2 model directory.
WAV must be 16-bit PCM, 16 kHz, mono (read with `wave`, no ffmpeg).

Writes
    OUT_PREFIX.mel.f32   80 x 3000 float32, little-endian, row-major (mel bin major)
    OUT_PREFIX.enc.f32   1500 x d  float32, little-endian, row-major (position major)

The mel is exactly what faster-whisper feeds the encoder for the first 30-s window
(WhisperModel.generate_segments):
  * samples = int16 / 32768;
  * features = FeatureExtractor(feature_size=80)(samples) with its default padding=160
    (160 zero samples appended, NOT 30 s of zeros as openai-whisper does), so the
    (max - 8) floor is taken over the whole file;
  * content_frames = features.shape[-1] - 1  (= len(samples) // 160);
  * segment = features[:, :min(3000, content_frames)] then pad_or_trim to 3000 frames,
    which pads with 0.0 in the *normalised* log-mel domain (not log-mel of silence).
"""

import os
import sys
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def read_wav(path):
    """Return float32 samples in [-1, 1) from a 16-bit PCM 16-kHz mono WAV."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != 16000:
            raise ValueError(
                f"{path}: need 16-bit mono 16 kHz PCM, got {8 * w.getsampwidth()}-bit, "
                f"{w.getnchannels()} channel(s), {w.getframerate()} Hz")
        raw = w.readframes(w.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def first_window_mel(samples, n_mels=80):
    """The 80 x 3000 mel faster-whisper encodes for the first window (see module doc)."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    fe = FeatureExtractor(feature_size=n_mels)
    features = fe(samples)  # padding=160, as WhisperModel.transcribe calls it
    content_frames = features.shape[-1] - 1
    segment_size = min(fe.nb_max_frames, content_frames)
    segment = pad_or_trim(features[:, :segment_size])
    return np.ascontiguousarray(segment, dtype=np.float32)


def encode(model_dir, mel):
    import ctranslate2

    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32")
    out = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None])))
    return np.array(out, dtype=np.float32)[0]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    model, wav, prefix = sys.argv[1:]
    if os.path.isdir(model):
        model_dir = model
    else:
        from ct2_model import ct2_dir
        model_dir = ct2_dir(model)

    mel = first_window_mel(read_wav(wav))
    enc = encode(model_dir, mel)
    d = os.path.dirname(prefix)
    if d:
        os.makedirs(d, exist_ok=True)
    mel.astype("<f4").tofile(prefix + ".mel.f32")
    enc.astype("<f4").tofile(prefix + ".enc.f32")
    print(f"mel {mel.shape[0]}x{mel.shape[1]} -> {prefix}.mel.f32")
    print(f"enc {enc.shape[0]}x{enc.shape[1]} -> {prefix}.enc.f32")


if __name__ == "__main__":
    main()
