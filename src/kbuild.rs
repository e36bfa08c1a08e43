//! Cross-building the kernel for `aarch64-unknown-none` and turning it into a
//! Linux arm64 Image. Used by build.rs (through `#[path]`) and by tests that
//! build variants, so both run exactly the same steps.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSegment};

/// The kernel's target.
pub const KERNEL_TARGET: &str = "aarch64-unknown-none";
/// Cargo profile for the kernel (release, with symbols), from the root Cargo.toml.
pub const KERNEL_PROFILE: &str = "kernel";

/// What a nested `cargo build` produced.
#[derive(Debug, Default)]
pub struct Built {
    /// (binary name, path) of each executable.
    pub executables: Vec<(String, PathBuf)>,
    /// (library name, path) of each `.rlib`.
    pub rlibs: Vec<(String, PathBuf)>,
    /// (library name, path) of each static library (`.a`).
    pub staticlibs: Vec<(String, PathBuf)>,
}

impl Built {
    /// The `.rlib` of library `name` built for the kernel target (the same
    /// crate may also be built for the host, as a build-dependency).
    pub fn kernel_rlib(&self, name: &str) -> Option<&Path> {
        let dir = format!("/{KERNEL_TARGET}/");
        self.rlibs
            .iter()
            .find(|(n, p)| n == name && p.to_string_lossy().contains(&dir))
            .map(|(_, p)| p.as_path())
    }

    /// The bytes of executable `name`.
    ///
    /// # Errors
    /// The build made no such executable, or it cannot be read.
    pub fn executable(&self, name: &str) -> Result<Vec<u8>, String> {
        let (_, path) = self
            .executables
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("the build produced no {name} executable"))?;
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The kernel's Image from its ELF: the flat image, with the symbol table
/// filled in and the header checked.
///
/// # Errors
/// From [`make_image`], [`embed_symbols`] or [`check_header`].
pub fn kernel_image(elf: &[u8]) -> Result<Vec<u8>, String> {
    let mut image = make_image(elf)?;
    embed_symbols(elf, &mut image)?;
    check_header(&image)?;
    Ok(image)
}

/// Clears from `cmd`'s environment what the cargo running us set for its own
/// build: flags, wrappers (clippy sets one) and its target directory must
/// not leak into a nested cargo's.
pub fn without_outer_cargo(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let outer = key.starts_with("CARGO_") && key != "CARGO_HOME";
        if outer
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTFLAGS")
            || key.starts_with("RUSTDOC")
            || key.starts_with("__CARGO")
        {
            cmd.env_remove(key.as_ref());
        }
    }
}

/// Runs `cargo build -p PACKAGE` for the kernel target in its own target
/// directory (a nested cargo on the outer one would wait for its lock forever).
///
/// # Errors
/// Cargo's diagnostics when the build fails.
pub fn cargo_build(
    cargo: &Path,
    workspace: &Path,
    target_dir: &Path,
    package: &str,
    features: &[&str],
    env: &[(&str, &Path)],
) -> Result<Built, String> {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--package",
            package,
            "--target",
            KERNEL_TARGET,
            "--profile",
            KERNEL_PROFILE,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--message-format", "json-render-diagnostics"]);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    without_outer_cargo(&mut cmd);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cargo.display()))?;
    if !output.status.success() {
        return Err(format!(
            "building {package} for {KERNEL_TARGET} failed:\n{}\n(did scripts/setup.sh run? it adds the {KERNEL_TARGET} target)",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut built = Built::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let name = msg["target"]["name"].as_str().unwrap_or_default().to_string();
        if let Some(exe) = msg["executable"].as_str() {
            built.executables.push((name.clone(), PathBuf::from(exe)));
        }
        for file in msg["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
        {
            if file.ends_with(".rlib") {
                built.rlibs.push((name.clone(), PathBuf::from(file)));
            } else if file.ends_with(".a") {
                built.staticlibs.push((name.clone(), PathBuf::from(file)));
            }
        }
    }
    Ok(built)
}

/// Offset of the header's `image_size` field.
pub const HEADER_IMAGE_SIZE: usize = 16;
/// Offset of the header's `flags` field.
pub const HEADER_FLAGS: usize = 24;
/// Offset of the header's magic, `ARM\x64`.
pub const HEADER_MAGIC: usize = 56;

/// Lays the ELF's loadable segments out as the flat image a boot loader loads:
/// byte 0 is `_text` (the header), each segment at its offset from there.
/// Memory that is only allocated (.bss, the table pool, the boot stack) is not
/// in the file; the header's `image_size` tells the loader to leave room.
///
/// # Errors
/// If the ELF cannot be read.
pub fn make_image(elf: &[u8]) -> Result<Vec<u8>, String> {
    let file = object::File::parse(elf).map_err(|e| format!("kernel ELF: {e}"))?;
    let segments: Vec<_> = file.segments().filter(|s| s.size() > 0).collect();
    let base = segments
        .iter()
        .map(|s| s.address())
        .min()
        .ok_or("kernel ELF has no loadable segment")?;
    let mut image = Vec::new();
    for segment in &segments {
        let data = segment.data().map_err(|e| format!("kernel ELF segment: {e}"))?;
        if data.is_empty() {
            continue;
        }
        let at = (segment.address() - base) as usize;
        if image.len() < at + data.len() {
            image.resize(at + data.len(), 0);
        }
        image[at..at + data.len()].copy_from_slice(data);
    }
    Ok(image)
}

/// Checks the 64-byte arm64 Image header (Documentation/arch/arm64/booting.rst).
///
/// # Errors
/// What is wrong with it.
pub fn check_header(image: &[u8]) -> Result<(), String> {
    let u64_at = |off: usize| {
        image
            .get(off..off + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if image.get(HEADER_MAGIC..HEADER_MAGIC + 4) != Some(b"ARM\x64") {
        return Err("Image header: magic ARM\\x64 missing at offset 56".into());
    }
    let size = u64_at(HEADER_IMAGE_SIZE).unwrap_or(0);
    if size < image.len() as u64 {
        return Err(format!(
            "Image header: image_size {size:#x} is smaller than the file ({:#x})",
            image.len()
        ));
    }
    if u64_at(HEADER_FLAGS).unwrap_or(0) & (1 << 3) == 0 {
        return Err("Image header: flags bit 3 (place anywhere) is clear".into());
    }
    Ok(())
}

/// Fills the reserved `.ksyms` section of `image` (the flat Image of `elf`)
/// with the kernel's function symbols, in the format kernel/src/debug/ksyms.rs reads.
///
/// # Errors
/// If the section is missing or too small.
pub fn embed_symbols(elf: &[u8], image: &mut [u8]) -> Result<usize, String> {
    use object::{ObjectSection, ObjectSymbol, SymbolKind};
    let file = object::File::parse(elf).map_err(|e| format!("kernel ELF: {e}"))?;
    let text = file.symbol_by_name("_text").ok_or("no _text symbol")?.address();
    let section = file
        .section_by_name(".ksyms")
        .ok_or("no .ksyms section: see kernel/linker.ld.in")?;
    let mut symbols: Vec<(u32, u32, String)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0 && s.address() >= text)
        .filter_map(|s| {
            let name = format!("{:#}", rustc_demangle::demangle(s.name().ok()?));
            Some(((s.address() - text) as u32, s.size() as u32, name))
        })
        .collect();
    symbols.sort();
    symbols.dedup_by_key(|s| s.0);
    let mut table = b"KSYM".to_vec();
    table.extend((symbols.len() as u32).to_le_bytes());
    let names_at = table.len() + 16 * symbols.len();
    let mut names = Vec::new();
    for (start, size, name) in &symbols {
        for v in [*start, *size, (names_at + names.len()) as u32, name.len() as u32] {
            table.extend(v.to_le_bytes());
        }
        names.extend(name.bytes());
    }
    table.extend(names);
    if table.len() as u64 > section.size() {
        return Err(format!(
            ".ksyms needs {} bytes; raise KSYMS_SIZE in kernel/linker.ld.in",
            table.len()
        ));
    }
    let at = (section.address() - text) as usize;
    image
        .get_mut(at..at + table.len())
        .ok_or(".ksyms is outside the Image file")?
        .copy_from_slice(&table);
    Ok(symbols.len())
}

/// The `rust-lld` that ships with the toolchain running `rustc`.
///
/// # Errors
/// If `rustc` cannot be run.
pub fn rust_lld(rustc: &Path, host: &str) -> Result<PathBuf, String> {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("{}: {e}", rustc.display()))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    Ok(Path::new(&sysroot).join("lib/rustlib").join(host).join("bin/rust-lld"))
}

/// Sections a module does not need: debug info, and the LLVM bitcode that
/// the prebuilt `core` carries (over a megabyte once `core::fmt` is in).
/// `--strip-debug` does nothing under `-r`; a discarding script does.
const MODULE_DISCARDS: &str = "SECTIONS {\n  /DISCARD/ : { *(.debug_*) *(.llvmbc) *(.llvmcmd) *(.comment) }\n}\n";
/// The same for the copy gdb reads (`NAME.ko.debug`): the debug info stays.
const MODULE_DEBUG_DISCARDS: &str = "SECTIONS {\n  /DISCARD/ : { *(.llvmbc) *(.llvmcmd) *(.comment) }\n}\n";

/// The file beside a module `NAME.ko` that keeps its debug info, for gdb:
/// `NAME.ko.debug`.
pub fn debug_copy(ko: &Path) -> PathBuf {
    let mut name = ko.as_os_str().to_owned();
    name.push(".debug");
    PathBuf::from(name)
}

/// Partially links a module's static library into one relocatable object
/// (`rust-lld -r`), keeping only what `init_module`/`exit_module` reach: the
/// only undefined symbols left are kernel exports. `out` has no debug info
/// (it goes in the initrd); the same link with it is written beside, to
/// [`debug_copy`]`(out)`, for gdb: the same sections, under the same names.
///
/// # Errors
/// If rust-lld fails.
pub fn link_module(lld: &Path, staticlib: &Path, out: &Path) -> Result<(), String> {
    link_module_with(lld, staticlib, out, "module-discards.ld", MODULE_DISCARDS)?;
    link_module_with(
        lld,
        staticlib,
        &debug_copy(out),
        "module-debug-discards.ld",
        MODULE_DEBUG_DISCARDS,
    )
}

fn link_module_with(lld: &Path, staticlib: &Path, out: &Path, script: &str, discards: &str) -> Result<(), String> {
    let script = out.with_file_name(script);
    std::fs::write(&script, discards).map_err(|e| format!("{}: {e}", script.display()))?;
    let output = Command::new(lld)
        .args([
            "-flavor",
            "gnu",
            "-r",
            "--gc-sections",
            "-u",
            "init_module",
            "-u",
            "exit_module",
        ])
        .arg("-T")
        .arg(&script)
        .arg(staticlib)
        .arg("-o")
        .arg(out)
        .output()
        .map_err(|e| format!("{}: {e}", lld.display()))?;
    if !output.status.success() {
        return Err(format!(
            "rust-lld -r {}: {}",
            staticlib.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// Broken copies of a module, put in the initrd so that anyone (and the tests)
/// can watch the loader refuse them and change nothing: cut in half, a
/// relocation type nobody supports, and an import the kernel does not export.
///
/// # Errors
/// If the module is not the ELF relocatable object the build just made.
pub fn broken_variants(name: &str, ko: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(ko).map_err(|e| format!("{name}.ko: {e}"))?;
    let mut variants = vec![(format!("{name}-truncated.ko"), ko[..ko.len() / 2].to_vec())];

    // The first RELA entry of an allocated section: its r_info's low 32 bits
    // are the type. 0x3ff is not an AArch64 relocation type.
    let rela = file
        .sections()
        .find(|s| s.name().is_ok_and(|n| n.starts_with(".rela.text")))
        .and_then(|s| s.file_range())
        .ok_or(format!("{name}.ko has no .rela.text section"))?;
    let mut bad_reloc = ko.to_vec();
    let r_info = rela.0 as usize + 8;
    bad_reloc[r_info..r_info + 4].copy_from_slice(&0x3ffu32.to_le_bytes());
    variants.push((format!("{name}-badreloc.ko"), bad_reloc));

    // The export's name in the string table, changed by one letter.
    let at = ko
        .windows(13)
        .position(|w| w == b"splitmap_log\0")
        .ok_or(format!("{name}.ko imports no splitmap_log"))?;
    let mut undefined = ko.to_vec();
    undefined[at + 11] = b'x';
    variants.push((format!("{name}-undefined.ko"), undefined));
    Ok(variants)
}

/// A cpio archive in the "newc" format the kernel reads (kernel/src/boot/cpio.rs):
/// each file a 110-byte ASCII header, its name and its data, 4-byte aligned,
/// then the `TRAILER!!!` entry.
pub fn cpio(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let trailer: (&str, &[u8]) = ("TRAILER!!!", &[]);
    for (i, (name, data)) in files.iter().chain(std::iter::once(&trailer)).enumerate() {
        let mode = if data.is_empty() && *name == "TRAILER!!!" {
            0
        } else {
            0o100644
        };
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
        // devminor, rdevmajor, rdevminor, namesize, check
        let fields = [
            i as u32 + 1,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    out
}
