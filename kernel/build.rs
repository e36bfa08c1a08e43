//! Generates the kernel's linker script from the one definition of the link
//! address, and hands it to the linker for the aarch64 binary.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=linker.ld.in");
    println!("cargo:rerun-if-changed=pi/src/layout.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let template = fs::read_to_string("linker.ld.in").expect("read linker.ld.in");
    let script = template.replace("@KIMAGE_VADDR@", &format!("{:#x}", pi::layout::KIMAGE_VADDR));
    let path = out.join("linker.ld");
    fs::write(&path, script).expect("write linker.ld");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", path.display());
        println!("cargo:rustc-link-arg-bins=--gc-sections");
        for arg in ["-pie", "--no-dynamic-linker", "-znotext", "-zpack-relative-relocs"] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}
