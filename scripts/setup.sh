#!/usr/bin/env bash
# Installs what splitmap needs on a fresh Debian machine: QEMU for arm64 and the
# Rust target and components the build uses. Safe to run again.
set -euo pipefail

need_sudo() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# QEMU (qemu-system-arm provides qemu-system-aarch64), gdb-multiarch (for
# `splitmap gdb`), and for the tests: dtc (device-tree-compiler), which the
# kernel's `dtb` is compared with, and Chromium, which opens `splitmap map`'s
# HTML page; EDK2's firmware for arm64 (qemu-efi-aarch64), which `--uefi` boots
# the kernel under, and U-Boot for QEMU (u-boot-qemu), whose `bootefi`
# `--uefi --firmware u-boot` boots it with. All from Debian's packages.
missing=()
command -v qemu-system-aarch64 >/dev/null 2>&1 || missing+=(qemu-system-arm)
command -v gdb-multiarch >/dev/null 2>&1 || missing+=(gdb-multiarch)
command -v dtc >/dev/null 2>&1 || missing+=(device-tree-compiler)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -f /usr/share/qemu-efi-aarch64/QEMU_EFI.fd ] || missing+=(qemu-efi-aarch64)
[ -f /usr/lib/u-boot/qemu_arm64/u-boot.bin ] || missing+=(u-boot-qemu)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    need_sudo apt-get update -qq
    need_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Automatic toolchain installs may be off (RUSTUP_AUTO_INSTALL=0): add what
# rust-toolchain.toml names explicitly, for the toolchain it pins.
cd "$(dirname "$0")/.."
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
rustup target add --toolchain "$toolchain" aarch64-unknown-none
rustup component add --toolchain "$toolchain" clippy rustfmt

qemu-system-aarch64 --version | head -n 1
echo "setup: done. 'cargo run' boots splitmap; 'cargo test' runs every test."
