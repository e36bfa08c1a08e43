//! Cortex-A53 erratum 843419 (the Raspberry Pi 3's cores have it; QEMU does
//! not model it): no sequence that triggers it may be left in the kernel's
//! code in any granule's build, which the kernel's link asks `rust-lld` to
//! patch (`--fix-cortex-a53-843419`); and a module holding one is mended
//! or refused by the loader, which places it. The sequence finder is the
//! one the loader uses on every module it links (`kernel::module::a53`,
//! unit-tested on sequences from the erratum notice).

mod common;
use common::splitmap;

use object::{Object, ObjectSection, SectionFlags};

#[test]
fn no_kernel_code_holds_the_a53_843419_sequence() {
    for granule in ["4k", "16k", "64k"] {
        let build = splitmap(&["build", "--granule", granule]);
        assert!(build.success, "{}", build.stderr);
        let elf_path = build
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("elf: "))
            .expect("an elf line");
        let elf = std::fs::read(elf_path).unwrap();
        let file = object::File::parse(&*elf).unwrap();
        let mut code_bytes = 0;
        for section in file.sections() {
            let SectionFlags::Elf { sh_flags } = section.flags() else {
                continue;
            };
            if sh_flags & u64::from(object::elf::SHF_EXECINSTR) == 0 {
                continue;
            }
            let code = section.data().unwrap();
            code_bytes += code.len();
            let found = kernel::module::a53::find(section.address(), code);
            assert_eq!(
                found,
                None,
                "{granule}: {} holds the sequence at {found:#x?}",
                section.name().unwrap_or("?")
            );
        }
        assert!(code_bytes > 100_000, "{granule}: only {code_bytes} bytes of code found");
    }
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
