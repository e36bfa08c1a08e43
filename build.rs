//! Cross-builds the kernel for aarch64, checks its early code, and makes the
//! artifacts the host tool boots: the Image, the ELF (symbols, for gdb), the
//! initrd (a cpio of the sample modules) and the stage-0 loader.
//! Their paths reach the host tool as SPLITMAP_IMAGE, SPLITMAP_ELF,
//! SPLITMAP_INITRD and SPLITMAP_BOOT.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "src/kbuild.rs"]
mod kbuild;
#[path = "src/relacheck.rs"]
mod relacheck;

fn main() {
    for path in [
        "kernel",
        "boot",
        "modules",
        ".cargo",
        "src/kbuild.rs",
        "src/relacheck.rs",
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    let workspace = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let target_root = env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    let cargo = PathBuf::from(env::var_os("CARGO").expect("CARGO"));

    let nested = target_root.join("kernel");
    let built =
        kbuild::cargo_build(&cargo, &workspace, &nested, "splitmap-kernel", &[], &[]).unwrap_or_else(|e| fail(&e));
    let pi = built
        .kernel_rlib("pi")
        .unwrap_or_else(|| fail("the build produced no aarch64 pi .rlib"));
    let stub = built
        .kernel_rlib("efistub")
        .unwrap_or_else(|| fail("the build produced no aarch64 efistub .rlib"));
    let read = |p: &Path| fs::read(p).unwrap_or_else(|e| fail(&format!("{}: {e}", p.display())));
    let (rlib, stub_rlib) = (read(pi), read(stub));
    if let Err(errors) = relacheck::check_archives(&[&rlib, &stub_rlib]) {
        fail(&format!(
            "relacheck: the early code (kernel/pi, kernel/efistub) is not position-independent:\n  {}",
            errors.join("\n  ")
        ));
    }
    let out = target_root.join("splitmap");
    fs::create_dir_all(&out).unwrap_or_else(|e| fail(&format!("{}: {e}", out.display())));
    let elf_bytes = built.executable("splitmap-kernel").unwrap_or_else(|e| fail(&e));
    let image = kbuild::kernel_image(&elf_bytes).unwrap_or_else(|e| fail(&e));
    let image_path = out.join("Image");
    write_if_changed(&image_path, &image);

    // The stage-0 loader embeds the Image, so it is built second.
    let boot = kbuild::cargo_build(
        &cargo,
        &workspace,
        &nested,
        "splitmap-boot",
        &[],
        &[("SPLITMAP_KERNEL_IMAGE", &image_path)],
    )
    .unwrap_or_else(|e| fail(&e));
    let boot_bytes = boot.executable("splitmap-boot").unwrap_or_else(|e| fail(&e));
    let boot_image = kbuild::make_image(&boot_bytes).unwrap_or_else(|e| fail(&e));

    let paths = [
        ("SPLITMAP_IMAGE", image_path, image),
        ("SPLITMAP_ELF", out.join("splitmap.elf"), elf_bytes),
        (
            "SPLITMAP_INITRD",
            out.join("initrd.cpio"),
            initrd(&cargo, &workspace, &nested, &out),
        ),
        ("SPLITMAP_BOOT", out.join("boot.bin"), boot_image),
    ];
    for (var, path, bytes) in paths {
        write_if_changed(&path, &bytes);
        println!("cargo:rustc-env={var}={}", path.display());
    }
}

/// The sample modules (modules/*), each partially linked into NAME.ko (and,
/// with its debug info, NAME.ko.debug beside it, for gdb only), plus
/// broken copies of hello for the loader's refusals, packed into a cpio initrd.
fn initrd(cargo: &Path, workspace: &Path, nested: &Path, out: &Path) -> Vec<u8> {
    let rustc = PathBuf::from(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    let host = env::var("HOST").expect("HOST");
    let lld = kbuild::rust_lld(&rustc, &host).unwrap_or_else(|e| fail(&e));
    // The tests link modules with it too, to compare with the kernel's loader.
    println!("cargo:rustc-env=SPLITMAP_RUST_LLD={}", lld.display());
    let mut files = Vec::new();
    for (package, name) in module_crates(workspace) {
        let built = kbuild::cargo_build(cargo, workspace, nested, &package, &[], &[]).unwrap_or_else(|e| fail(&e));
        let lib = built
            .staticlibs
            .iter()
            .find(|(_, p)| p.to_string_lossy().contains(kbuild::KERNEL_TARGET))
            .unwrap_or_else(|| fail(&format!("{package} built no static library")));
        let object = out.join(format!("{name}.ko"));
        kbuild::link_module(&lld, &lib.1, &object).unwrap_or_else(|e| fail(&e));
        let bytes = fs::read(&object).unwrap_or_else(|e| fail(&format!("{}: {e}", object.display())));
        if name == "hello" {
            files.extend(kbuild::broken_variants(&name, &bytes).unwrap_or_else(|e| fail(&e)));
        }
        files.push((format!("{name}.ko"), bytes));
    }
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    kbuild::cpio(&entries)
}

/// Every module crate in modules/ (a folder whose Cargo.toml builds a
/// `staticlib`): (package name, module name = its `[lib]` name), by module
/// name. A copy of modules/hello with both names changed is a new module.
fn module_crates(workspace: &Path) -> Vec<(String, String)> {
    let folders = fs::read_dir(workspace.join("modules")).unwrap_or_else(|e| fail(&format!("modules/: {e}")));
    let mut found = Vec::new();
    for folder in folders.flatten() {
        let Ok(manifest) = fs::read_to_string(folder.path().join("Cargo.toml")) else {
            continue;
        };
        if !manifest.contains("\"staticlib\"") {
            continue;
        }
        // The first `name = "…"` after a section's header.
        let name_in = |section: &str| {
            manifest.split(section).nth(1)?.lines().find_map(|line| {
                let value = line.trim().strip_prefix("name")?.trim_start().strip_prefix('=')?.trim();
                Some(value.strip_prefix('"')?.strip_suffix('"')?.to_string())
            })
        };
        match (name_in("[package]"), name_in("[lib]")) {
            (Some(package), Some(name)) => found.push((package, name)),
            _ => fail(&format!("{}: no [package] or [lib] name", folder.path().display())),
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

/// Rewrites `path` only when its bytes change, so nothing rebuilds for nothing.
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if fs::read(path).ok().as_deref() != Some(bytes) {
        fs::write(path, bytes).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
