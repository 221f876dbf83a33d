#!/usr/bin/env bash
# Tests the aarch64 NEON kernels of sotto-kernels under qemu-user, on an x86-64
# Debian 12 machine, three times: one emulated CPU per NEON kernel set, each
# run failing unless that set was really detected (SOTTO_KERNELS_ENSURE).
#
#   qemu-aarch64 -cpu cortex-a72   plain NEON            -> aarch64-neon
#   qemu-aarch64 -cpu cortex-a76   + dotprod (sdot)      -> aarch64-neon-dotprod
#   qemu-aarch64 -cpu max          + i8mm (smmla)        -> aarch64-neon-i8mm
#
# Toolchain: Debian's own Rust (rustc-web, 1.96) with its arm64 standard
# library, linked into rustup as `debian-web` (`rustup toolchain link debian-web
# /usr`). Setup is idempotent: installed packages and the toolchain link are
# skipped. Run as root (or with passwordless sudo) on a fresh machine.
#
# Environment: CARGO_TARGET_DIR (default target/aarch64), NEON_CPUS (default
# "cortex-a72 cortex-a76 max"). Timings under qemu mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s (%ss)\n' "$*" "$SECONDS"; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
          libc6-dev-arm64-cross qemu-user)

step "system packages"
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        sudo_ dpkg --add-architecture arm64
    fi
    sudo_ apt-get update -qq
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >/dev/null
else
    echo "all installed"
fi

step "toolchain"
if ! rustup toolchain list | grep -q '^debian-web'; then
    rustup toolchain link debian-web /usr
fi
rustc +debian-web --version
[ -d "$(rustc +debian-web --print sysroot)/lib/rustlib/aarch64-unknown-linux-gnu" ] \
    || { echo "debian-web has no aarch64 standard library" >&2; exit 1; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/aarch64}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# Not `-L /usr/aarch64-linux-gnu`: the multiarch arm64 glibc is found natively,
# and mixing the two glibc builds hangs every test binary at its first thread.
cargo_test() {
    cargo +debian-web test --release --target aarch64-unknown-linux-gnu -p sotto-kernels "$@"
}

step "build"
cargo_test --no-run

for cpu in ${NEON_CPUS:-cortex-a72 cortex-a76 max}; do
    case "$cpu" in
        cortex-a72) ensure=neon ;;
        cortex-a76) ensure=neon-dotprod ;;
        max) ensure=neon-i8mm ;;
        *) echo "unknown qemu cpu $cpu" >&2; exit 1 ;;
    esac
    step "tests under qemu -cpu $cpu (must detect $ensure)"
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu $cpu" \
        SOTTO_KERNELS_ENSURE="$ensure" cargo_test -q
done

step "done"
