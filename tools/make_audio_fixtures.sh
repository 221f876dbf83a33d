#!/bin/sh
# Regenerates tests/data/audio: 0.5 s of a 440 Hz sine at amplitude 0.5 in the compressed formats
# load_audio must read. Needs sox with libsox-fmt-all (apt-get install sox libsox-fmt-all).
# The files are committed, so tests do not need sox.
set -eu
cd "$(dirname "$0")/../tests/data/audio"
sox -n -r 44100 -c 2 -b 16 sine440_44k1_stereo.flac synth 0.5 sine 440 vol 0.5
sox -n -r 48000 -c 2 sine440_48k_stereo.ogg synth 0.5 sine 440 vol 0.5
# MP3 through lame itself (apt-get install lame): it writes the LAME/Info tag that carries the
# encoder delay and padding for the 44.1-kHz file (sox's own MP3 output has none).
tmp=$(mktemp -d)
sox -n -r 44100 -c 2 -b 16 "$tmp/s44.wav" synth 0.5 sine 440 vol 0.5
sox -n -r 16000 -c 1 -b 16 "$tmp/s16.wav" synth 0.5 sine 440 vol 0.5
lame --quiet -b 64 "$tmp/s44.wav" sine440_44k1_stereo.mp3
lame --quiet -b 32 "$tmp/s16.wav" sine440_16k_mono.mp3
rm -r "$tmp"
