#!/usr/bin/env bash
# Splits a manifest set into a calibration folder (the first N utterances) and an
# evaluation set of the rest, so static int8 scales are never fitted on audio they
# are scored on. Files are symlinked, not copied.
#   tools/split_calibration.sh SET_DIR N OUT_DIR   → OUT_DIR/calib/*.wav, OUT_DIR/eval/manifest.tsv
set -euo pipefail
set_dir=$(cd "$1" && pwd); n=$2; out=$3
rm -rf "$out"; mkdir -p "$out/calib" "$out/eval"
head -n 1 "$set_dir/manifest.tsv" > "$out/eval/manifest.tsv"
i=0
tail -n +2 "$set_dir/manifest.tsv" | while IFS= read -r line; do
    file=${line%%$'\t'*}
    if [ "$i" -lt "$n" ]; then
        ln -s "$set_dir/$file" "$out/calib/$(basename "$file")"
    else
        mkdir -p "$out/eval/$(dirname "$file")"
        ln -s "$set_dir/$file" "$out/eval/$file"
        printf '%s\n' "$line" >> "$out/eval/manifest.tsv"
    fi
    i=$((i + 1))
done
echo "$out/calib: $(ls "$out/calib" | wc -l) files; $out/eval: $(($(wc -l < "$out/eval/manifest.tsv") - 1)) utterances"
