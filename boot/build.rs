//! The stage-0 loader is linked where QEMU puts it: RAM base (0x4000_0000 on
//! `virt`) + its header's text_offset (1 MiB), out of the way of every kernel
//! load address from RAM base + 2 MiB up.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SPLITMAP_KERNEL_IMAGE");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let script = format!(
        "OUTPUT_ARCH(aarch64)\nENTRY(_start)\nSECTIONS {{\n  . = {:#x};\n  _start = .;\n  .text : {{ KEEP(*(.head.text)) *(.text .text.*) }}\n  .rodata : ALIGN(16) {{ *(.rodata .rodata.*) *(.data.rel.ro .data.rel.ro.*) }}\n  .data : ALIGN(16) {{ *(.data .data.*) }}\n  .bss (NOLOAD) : ALIGN(16) {{ __bss_start = .; *(.bss .bss.*) *(COMMON) . = ALIGN(16); . += 0x10000; __stack_end = .; }}\n  . = ALIGN(4096);\n  _end = .;\n  __image_size = _end - _start;\n  /DISCARD/ : {{ *(.comment) *(.note .note.*) *(.eh_frame .eh_frame_hdr) }}\n}}\nASSERT(_end - _start <= {:#x}, \"stage-0 must fit below RAM base + 2 MiB\")\n",
        0x4000_0000u64 + 0x10_0000,
        0x10_0000u64
    );
    let path = out.join("stage0.ld");
    fs::write(&path, script).expect("write stage0.ld");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", path.display());
    }
}
