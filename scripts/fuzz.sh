#!/usr/bin/env bash
# Runs every fuzz target for a fixed number of iterations (default 200000) and
# fails on any crash. Fuzzing needs nightly (cargo-fuzz); the product does not.
#   scripts/fuzz.sh [RUNS]
# Targets build with -O, like the kernel (no debug assertions): fdt-rs has a
# debug_assert on malformed structure blocks whose read is bounds-checked in
# release, which is what the kernel runs (see docs/fuzzing.md).
set -uo pipefail
cd "$(dirname "$0")/.."
# The module target starts from the real sample modules, which the build makes.
cargo build --quiet || exit 1
cd fuzz
runs=${1:-200000}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz || exit 1
targets=$(cargo +nightly fuzz list) || exit 1
[ -n "$targets" ] || { echo "fuzz: no targets listed" >&2; exit 1; }
failed=0
for target in $targets; do
    log=$(mktemp)
    if cargo +nightly fuzz run -O "$target" -- -runs="$runs" -max_len=4096 >"$log" 2>&1; then
        echo "fuzz: $target: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)"
    else
        echo "fuzz: $target: CRASH"
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -n 10
        failed=1
    fi
    rm -f "$log"
done
[ "$failed" -eq 0 ] && echo "fuzz: every target ran $runs runs without a crash"
exit "$failed"
