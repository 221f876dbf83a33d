#!/usr/bin/env bash
# The C ABI as a C program sees it: libsotto.a built in release, the examples
# compiled with gcc against include/sotto.h under AddressSanitizer/LeakSanitizer
# and UBSan, run on samples/jfk.wav with tiny.en (f16) and an int8 copy of it;
# every run must exit 0 with the right text and no sanitizer report. Prints the
# stripped size of a statically linked transcribe binary.
set -euo pipefail
cd "$(dirname "$0")/.."
SOTTO_HOME="${SOTTO_HOME:-$HOME/.cache/sotto}"
f16="$SOTTO_HOME/tiny.en.sotto"
[ -f "$f16" ] || { echo "missing $f16 (sotto fetch tiny.en)" >&2; exit 1; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# The library alone: sotto with feature audio only (no GPU, no CLI).
cargo build --release -p sotto-c
lib=target/release/libsotto.a
# What `cargo rustc --print native-static-libs` lists for this target.
libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)

[ -x target/release/sotto ] || cargo build --release --bin sotto
int8="$out/tiny.en-int8.sotto"
target/release/sotto quantize "$f16" "$int8" --scheme int8 >/dev/null

g++ -fsyntax-only -x c++ -Wall -Wextra -Werror capi/include/sotto.h

san=(-std=c11 -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined
    -fno-omit-frame-pointer -fno-sanitize-recover=all -Icapi/include)
for ex in transcribe errors stream; do
    gcc "${san[@]}" "capi/examples/$ex.c" "$lib" "${libs[@]}" -o "$out/$ex"
done

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
for model in "$f16" "$int8"; do
    echo "== transcribe $(basename "$model") (ASan, LSan, UBSan)"
    "$out/transcribe" "$model" samples/jfk.wav 2 >"$out/text" 2>"$out/log" \
        || { cat "$out/log" "$out/text" >&2; echo "transcribe failed" >&2; exit 1; }
    cat "$out/text"
    if grep -E "Sanitizer|runtime error" "$out/log" >&2; then exit 1; fi
    norm=$(tr 'A-Z' 'a-z' <"$out/text" | tr -d ',.')
    [[ $norm == *"ask not what your country can do for you"* ]] \
        || { echo "the transcript lacks the words" >&2; exit 1; }
    echo "== errors $(basename "$model")"
    "$out/errors" "$model" samples/jfk.wav >"$out/text" 2>"$out/log" \
        || { cat "$out/log" >&2; echo "errors failed" >&2; exit 1; }
    if grep -E "Sanitizer|runtime error" "$out/log" >&2; then exit 1; fi
    cat "$out/text"
    echo "== stream $(basename "$model") (100-ms pieces, ASan, LSan, UBSan)"
    "$out/stream" "$model" samples/jfk.wav 2 >"$out/text" 2>"$out/log" \
        || { cat "$out/log" "$out/text" >&2; echo "stream failed" >&2; exit 1; }
    if grep -E "Sanitizer|runtime error" "$out/log" >&2; then exit 1; fi
    cat "$out/text"
    norm=$(tr 'A-Z' 'a-z' <"$out/text" | tr -d ',.')
    [[ $norm == *"ask not what your country can do for you"* ]] \
        || { echo "the streamed text lacks the words" >&2; exit 1; }
done

# Size of a deployable binary: transcribe without sanitizers, PCM in (no audio
# decoding linked), stripped; against glibc shared and fully static.
size() { stat -c %s "$1" | awk '{printf "%.2f MiB", $1 / 1048576}'; }
small=(-std=c11 -O2 -DSOTTO_PCM_ONLY -Icapi/include -ffunction-sections -Wl,--gc-sections -s)
gcc "${small[@]}" capi/examples/transcribe.c "$lib" "${libs[@]}" -o "$out/transcribe-shared-libc"
echo "== stripped transcribe (PCM in), libc shared: $(size "$out/transcribe-shared-libc")"
if gcc "${small[@]}" -static capi/examples/transcribe.c "$lib" -lpthread -lm -ldl \
    -o "$out/transcribe-static" 2>"$out/log"; then
    "$out/transcribe-static" "$int8" samples/jfk.wav 2 >"$out/text" 2>/dev/null
    grep -qi "ask not what your country" "$out/text" \
        || { echo "the static binary transcribed wrongly" >&2; exit 1; }
    echo "== stripped transcribe (PCM in), fully static: $(size "$out/transcribe-static") (runs: tiny.en int8 on jfk.wav)"
else
    cat "$out/log" >&2
    echo "fully static link failed" >&2
    exit 1
fi
echo "== C ABI checks passed"
