//! Cortex-A53 errata (the Raspberry Pi 3's cores are r0p4 and have both;
//! QEMU models neither), checked on the code as built.
//!
//! 843419: no sequence that triggers it may be left in the kernel's code in
//! any granule's build, which the kernel's link asks `rust-lld` to patch
//! (`--fix-cortex-a53-843419`); and a module holding one is mended or
//! refused by the loader, which places it. The sequence finder is the one
//! the loader uses on every module it links (`kernel::module::a53`,
//! unit-tested on sequences from the erratum notice).
//!
//! 835769: no 64-bit multiply-accumulate may follow a load or store in any
//! code built for the kernel's target (the kernel, stage 0, the modules),
//! which LLVM keeps apart with a `nop` (`+fix-cortex-a53-835769`, in
//! .cargo/config.toml).

mod common;
use common::{MODULES, artifact, granule_artifact, module_file};

use object::{Object, ObjectSection, SectionFlags};

/// The executable sections of the ELF file `elf`: name, address, bytes.
fn code_sections(elf: &[u8]) -> Vec<(String, u64, Vec<u8>)> {
    let file = object::File::parse(elf).unwrap();
    file.sections()
        .filter(|section| {
            let SectionFlags::Elf { sh_flags } = section.flags() else {
                return false;
            };
            sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0
        })
        .map(|section| {
            let name = section.name().unwrap_or("?").to_string();
            (name, section.address(), section.data().unwrap().to_vec())
        })
        .collect()
}

#[test]
fn no_kernel_code_holds_the_a53_843419_sequence() {
    for granule in ["4k", "16k", "64k"] {
        let mut code_bytes = 0;
        for (name, address, code) in code_sections(&granule_artifact(granule, "elf")) {
            code_bytes += code.len();
            let found = kernel::module::a53::find(address, &code);
            assert_eq!(found, None, "{granule}: {name} holds the sequence at {found:#x?}");
        }
        assert!(code_bytes > 100_000, "{granule}: only {code_bytes} bytes of code found");
    }
}

/// Where in `code` (at `address`) a 64-bit multiply-accumulate comes
/// right after a load, store or prefetch: erratum 835769's sequence. The
/// accumulates are `madd`/`msub` on X registers, `smaddl`/`smsubl` and
/// `umaddl`/`umsubl`, each with an accumulator other than `xzr` (with
/// `xzr` they are `mul`, `mneg`, `smull`, `umull`, which LLVM leaves
/// alone, as does the erratum); the accesses are the A64 "loads and
/// stores" encoding group (op0 = x1x0).
fn mac_after_memory_access(address: u64, code: &[u8]) -> Vec<u64> {
    let words: Vec<u32> = code
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect();
    let accumulates = |w: u32| matches!(w >> 21, 0x4d8 | 0x4d9 | 0x4dd) && (w >> 10) & 31 != 31;
    let accesses = |w: u32| (w >> 25) & 0b0101 == 0b0100;
    (1..words.len())
        .filter(|&i| accumulates(words[i]) && accesses(words[i - 1]))
        .map(|i| address + 4 * i as u64)
        .collect()
}

#[test]
fn mac_after_memory_access_finds_the_sequence_and_only_it() {
    let code = |words: &[u32]| words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
    const LDR: u32 = 0xf940_0021; // ldr x1, [x1]
    const STP: u32 = 0xa900_7bfd; // stp x29, x30, [sp]
    const MADD: u32 = 0x9b02_0c20; // madd x0, x1, x2, x3
    const UMADDL: u32 = 0x9ba2_0c20; // umaddl x0, w1, w2, x3
    const MUL: u32 = 0x9b02_7c20; // mul x0, x1, x2 (madd with xzr)
    const MADD_W: u32 = 0x1b02_0c20; // madd w0, w1, w2, w3
    const NOP: u32 = 0xd503_201f;
    assert_eq!(mac_after_memory_access(0x1000, &code(&[LDR, MADD])), [0x1004]);
    assert_eq!(mac_after_memory_access(0, &code(&[STP, UMADDL])), [4]);
    for harmless in [[LDR, NOP, MADD], [LDR, MUL, NOP], [LDR, MADD_W, NOP], [MADD, LDR, NOP]] {
        assert_eq!(
            mac_after_memory_access(0, &code(&harmless)),
            [0u64; 0],
            "{harmless:#x?}"
        );
    }
}

/// Stage 0's flat binary without the kernel Image it embeds (scanned above
/// as the kernel; embedded at a byte, not a word, boundary, its words read
/// from there would be no instructions): stage 0's own code, and its data
/// read as code too, which can only find more.
fn stage0_own_bytes() -> Vec<u8> {
    let mut boot = artifact("boot");
    let image = artifact("image");
    let head = &image[..4096];
    let at = boot
        .windows(head.len())
        .position(|w| w == head)
        .expect("stage 0 embeds the Image");
    assert_eq!(&boot[at..at + image.len()], &image[..], "the whole Image");
    boot[at..at + image.len()].fill(0);
    boot
}

/// Before LLVM's fix was turned on, the 4K kernel held 45 such sequences.
#[test]
fn no_code_built_for_the_kernel_holds_the_a53_835769_sequence() {
    let mut code = Vec::new();
    for granule in ["4k", "16k", "64k"] {
        for (name, address, bytes) in code_sections(&granule_artifact(granule, "elf")) {
            code.push((format!("{granule} kernel {name}"), address, bytes));
        }
    }
    for module in MODULES {
        for (name, address, bytes) in code_sections(&module_file(module)) {
            code.push((format!("{module}.ko {name}"), address, bytes));
        }
    }
    code.push(("stage 0 (boot.bin)".into(), 0, stage0_own_bytes()));
    for (what, address, bytes) in &code {
        let found = mac_after_memory_access(*address, bytes);
        assert!(found.is_empty(), "{what}: at {found:#x?}");
    }
    assert!(code.len() > 10, "only {} code sections found", code.len());
}

/// A module object holding the sequence at `.text`'s offset 0xff8 (where
/// `insmod` puts it on a page's last two words, the text starting a page),
/// its `adrp` to `target`: assembled by rustc from `global_asm!`.
fn module_with_the_sequence(target: &str, name: &str) -> Vec<u8> {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("a53-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let source = format!(
        r#"#![no_std]
core::arch::global_asm!(
    ".section .text.sequence, \"ax\"",
    ".balign 4096",
    ".space 4096 - 8",
    "adrp x0, {target}",
    "ldr x1, [x1]",
    "ldr x0, [x0, :lo12:{target}]",
    "ret",
    ".section .rodata.near, \"a\"",
    ".balign 8",
    "near: .quad 1",
);"#
    );
    std::fs::write(dir.join("m.rs"), source).unwrap();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "--target",
            "aarch64-unknown-none",
        ])
        .args(["--emit", "obj", "-o"])
        .arg(dir.join("m.o"))
        .arg(dir.join("m.rs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(dir.join("m.o")).unwrap()
}

/// The loader makes the `adrp` an `adr` of the same page when `adr`
/// reaches it (the module's own data, here), and refuses the module, by
/// section and offset, when it does not (a kernel symbol 64 MiB away).
#[test]
fn the_module_loader_breaks_the_sequence_or_refuses_the_module() {
    use kernel::module::load::{Aligned, LoadError, Module};
    const BASE: u64 = 0xffff_8000_7000_0000;
    let far = BASE + (64 << 20);
    for (target, fits) in [("near", true), ("far_data", false)] {
        let object = module_with_the_sequence(target, target);
        let copy = Aligned::new(&object);
        let module = Module::parse(copy.bytes()).unwrap();
        let (_, text) = module.sections().find(|(name, _)| *name == ".text.sequence").unwrap();
        assert_eq!(text.offset % 4096, 0, "the text starts a page");
        let mut image = vec![0; module.size() as usize];
        let linked = module.link(&mut image, BASE, |name| (name == "far_data").then_some(far));
        if !fits {
            let Err(e @ LoadError::A53Erratum { .. }) = linked else {
                panic!("{linked:?}")
            };
            assert_eq!(e.to_string().split(':').next(), Some(".text.sequence+0xff8"), "{e}");
            continue;
        }
        linked.unwrap();
        let at = (text.offset + 0xff8) as usize;
        let adr = u32::from_le_bytes(image[at..at + 4].try_into().unwrap());
        assert_eq!(adr & 0x9f00_001f, 0x1000_0000, "adr x0, not {adr:#010x}");
        // adr's 21-bit byte offset: to the start of `near`'s page.
        let imm = ((adr >> 5) & 0x7_ffff) << 2 | (adr >> 29) & 3;
        let offset = ((imm << 11) as i32 >> 11) as i64;
        let (_, rodata) = module.sections().find(|(name, _)| *name == ".rodata.near").unwrap();
        let place = BASE + text.offset + 0xff8;
        assert_eq!(place.wrapping_add_signed(offset), (BASE + rodata.offset) & !0xfff);
        assert_eq!(
            kernel::module::a53::find(BASE + text.offset, &image[text.offset as usize..]),
            None
        );
    }
}
