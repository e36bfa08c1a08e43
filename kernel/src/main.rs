//! The kernel binary: the Linux arm64 Image header, and the library linked in.
//!
//! Built on the host (by `cargo test`), this file is an empty program: the
//! kernel only runs on `aarch64-unknown-none`, built by the top-level build.rs.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    // Pulls in the library, which holds the whole kernel.
    use kernel as _;

    // The 64-byte header from Documentation/arch/arm64/booting.rst. A loader
    // reads it from the start of the file and jumps to its first word.
    core::arch::global_asm!(
        r#"
        .section .head.text, "ax"
        .global _head
    _head:
        b       __pi_primary_entry  // code0: branch to the early code
        .long   0                   // code1
        .quad   0                   // text_offset: load anywhere (2 MiB + 0)
        .quad   __image_size        // image_size: up to _end, bss included
        .quad   {flags}             // flags
        .quad   0                   // res2
        .quad   0                   // res3
        .quad   0                   // res4
        .ascii  "ARM\x64"           // magic
        .long   0                   // res5: no PE/COFF header
        "#,
        flags = const FLAGS,
    );

    /// Image flags: bit 0 = 0 little-endian; bits 1-2 the page size (1 = 4 KiB,
    /// 2 = 16 KiB, 3 = 64 KiB); bit 3 = 1 the image may be placed anywhere in
    /// RAM (not just near the start).
    const FLAGS: u64 = (pi::layout::GRANULE.image_flag() << 1) | (1 << 3);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("splitmap-kernel runs only on aarch64-unknown-none: use `cargo run` at the top of the repository");
}
