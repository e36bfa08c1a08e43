//! The stage-0 loader is linked at 0 as a position-independent executable:
//! it runs wherever QEMU puts it (RAM base + its header's text_offset, 1 MiB:
//! 0x4010_0000 on `virt`, 0x10_0000 on `raspi3b`) and first applies its own
//! RELR relocations (src/main.rs). 1 MiB keeps every kernel address from RAM
//! base + 2 MiB up free; a kernel asked for below that (the Pi firmware's
//! 0x80000) makes stage-0 move itself out of the way first.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SPLITMAP_KERNEL_IMAGE");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let script = format!(
        "OUTPUT_ARCH(aarch64)\nENTRY(_start)\nSECTIONS {{\n  . = 0;\n  _start = .;\n  .text : {{ KEEP(*(.head.text)) *(.text .text.*) }}\n  .rodata : ALIGN(16) {{ *(.rodata .rodata.*) *(.data.rel.ro .data.rel.ro.*) *(.got .got.*) }}\n  .relr.dyn : ALIGN(8) {{ __relr_start = .; *(.relr.dyn) __relr_end = .; }}\n  .rela.dyn : ALIGN(8) {{ __rela_start = .; *(.rela .rela.*) __rela_end = .; }}\n  .data : ALIGN(16) {{ *(.data .data.*) }}\n  .bss (NOLOAD) : ALIGN(16) {{ __bss_start = .; *(.bss .bss.*) *(COMMON) . = ALIGN(16); . += 0x10000; __stack_end = .; }}\n  . = ALIGN(4096);\n  _end = .;\n  __image_size = _end - _start;\n  /DISCARD/ : {{ *(.comment) *(.note .note.*) *(.eh_frame .eh_frame_hdr) *(.interp .dynamic) *(.dynsym .dynstr .hash .gnu.hash) }}\n}}\nASSERT(_end - _start <= {:#x}, \"stage-0 must fit below RAM base + 2 MiB\")\nASSERT(__rela_end == __rela_start, \"stage-0 applies RELR only: no RELA relocations\")\n",
        0x10_0000u64
    );
    let path = out.join("stage0.ld");
    fs::write(&path, script).expect("write stage0.ld");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", path.display());
        // As the kernel's link: Cortex-A53 erratum 843419 (kernel/build.rs).
        let args = [
            "-pie",
            "--no-dynamic-linker",
            "-znotext",
            "-zpack-relative-relocs",
            "--fix-cortex-a53-843419",
        ];
        for arg in args {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}
