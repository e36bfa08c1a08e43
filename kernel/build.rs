//! Generates the kernel's linker script from the one definition of the link
//! address, and hands it to the linker for the aarch64 binary.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=linker.ld.in");
    println!("cargo:rerun-if-changed=pi/src/layout.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let template = fs::read_to_string("linker.ld.in").expect("read linker.ld.in");
    // The granule: this crate's feature (a build-dependency's features are
    // its own, so pi's GRANULE here is always 4 KiB). Fewer, larger table
    // pages in the bigger granules: each maps more.
    // The pool's first pages are in the file (see linker.ld.in): one table
    // a level below the root for the identity map of the image (3 levels
    // with 64 KiB pages, 4 with 16 KiB and 4 KiB).
    let (page_size, pool_pages, loaded_pages) = if env::var_os("CARGO_FEATURE_GRANULE_64K").is_some() {
        (64 << 10, 16, 2)
    } else if env::var_os("CARGO_FEATURE_GRANULE_16K").is_some() {
        (16 << 10, 32, 3)
    } else {
        (4 << 10, 64, 3)
    };
    let script = template
        .replace("@KIMAGE_VADDR@", &format!("{:#x}", pi::layout::KIMAGE_VADDR))
        .replace("@PAGE_SIZE@", &page_size.to_string())
        .replace("@POOL_PAGES@", &pool_pages.to_string())
        .replace("@POOL_LOADED_PAGES@", &loaded_pages.to_string());
    let path = out.join("linker.ld");
    fs::write(&path, script).expect("write linker.ld");
    // Two names for the configurations the crate is built in, so modules say
    // which half they belong to in one word: `kernel_proper` is the kernel
    // itself on the machine (registers, exception vectors, the allocator);
    // `with_alloc` is wherever a heap exists (the kernel proper and the host,
    // not the stage-0 loader, which reuses only the pure logic).
    println!("cargo::rustc-check-cfg=cfg(kernel_proper)");
    println!("cargo::rustc-check-cfg=cfg(with_alloc)");
    let on_machine = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none");
    let machine_feature = env::var_os("CARGO_FEATURE_MACHINE").is_some();
    let aarch64 = env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("aarch64");
    if on_machine && aarch64 && machine_feature {
        println!("cargo::rustc-cfg=kernel_proper");
    }
    if !on_machine || machine_feature {
        println!("cargo::rustc-cfg=with_alloc");
    }
    // `splitmap bench` links the same objects statically too, to show what
    // linking as a PIE costs: SPLITMAP_STATIC_LINK=1 leaves out the PIE flags
    // (that kernel has no relocations, so it can only run with nokaslr).
    println!("cargo:rerun-if-env-changed=SPLITMAP_STATIC_LINK");
    let pie = env::var_os("SPLITMAP_STATIC_LINK").is_none();
    if on_machine {
        println!("cargo:rustc-link-arg-bins=-T{}", path.display());
        println!("cargo:rustc-link-arg-bins=--gc-sections");
        // Cortex-A53 erratum 843419 (the Raspberry Pi 3's A53 is r0p4, an
        // affected revision): an `adrp` in a page's last two words, then a
        // load or store, then one based on its register, may compute a wrong
        // address. The linker moves such a last load or store out to a
        // patch and branches there, as Linux links arm64 kernels.
        println!("cargo:rustc-link-arg-bins=--fix-cortex-a53-843419");
        let pie_flags = ["-pie", "--no-dynamic-linker", "-znotext", "-zpack-relative-relocs"];
        for arg in pie_flags.iter().filter(|_| pie) {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}
