#!/usr/bin/env bash
# Runs the host tests of the early-code crate (kernel/pi: the page-table mapper
# and walker over `pgtable::host::HostTables`) under Miri, which checks the
# crate's unsafe code (raw table pointers, volatile accesses) for undefined
# behaviour: aliasing violations, out-of-bounds or dangling accesses.
#   scripts/miri.sh [EXTRA ARGS FOR THE TEST HARNESS]
# Every test runs by default: about 17 minutes on one core, nearly all of it in
# pgtable::tests::random_layouts_use_the_minimum_shape (300 random layouts; the
# others take a second or two each). For a quick pass over every unsafe path:
#   scripts/miri.sh --skip random_layouts_use_the_minimum_shape
# Miri needs nightly; the product does not (rust-toolchain.toml pins stable, and
# `cargo +nightly` overrides that here only). Not part of `cargo test`: run it
# by hand or from CI. cargo-miri builds into `miri/` under the target
# directory, so it neither waits for nor invalidates the normal builds.
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=nightly
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    echo "miri: the $toolchain toolchain is not installed (rustup toolchain install $toolchain --component miri,rust-src)" >&2
    exit 1
fi
if ! cargo "+$toolchain" miri --version >/dev/null 2>&1; then
    echo "miri: the $toolchain toolchain has no miri (rustup component add miri --toolchain $toolchain)" >&2
    exit 1
fi
# `cargo miri setup` builds Miri's own standard library from the source in the
# rust-src component.
sysroot=$(rustc "+$toolchain" --print sysroot)
if [ ! -d "$sysroot/lib/rustlib/src/rust/library" ]; then
    echo "miri: adding rust-src to the $toolchain toolchain (Miri builds its standard library from it)"
    if ! rustup component add rust-src --toolchain "$toolchain"; then
        echo "miri: cannot install rust-src for $toolchain (offline, or no rustup access here)." >&2
        echo "miri: install it where rustup can download (rustup component add rust-src --toolchain $toolchain)," >&2
        echo "miri: or point MIRI_SYSROOT at a Miri sysroot built elsewhere." >&2
        exit 1
    fi
fi

cargo "+$toolchain" miri setup
cargo "+$toolchain" miri test -p splitmap-pi --features host-tables -- "$@"
