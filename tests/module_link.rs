//! The kernel's module linker (`kernel::module::load`), run on the host on
//! the real sample modules and checked against an independent linker:
//! rust-lld links the same object at the same addresses, and every byte of
//! every section must come out the same. Then the far case: every branch to
//! the kernel goes through a veneer that decodes back to its export.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::process::Command;

use kernel::module::check::Malformed;
use kernel::module::load::{Aligned, LoadError, Module};
use kernel::module::plt::PltError;
use kernel::module::{plt, reloc};
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};

const BASE: u64 = 0xffff_8000_7000_0000;
/// Where the "kernel" exports sit: 64 MiB above the module, in `bl` reach.
const KERNEL: u64 = BASE + (64 << 20);

/// A made-up address for each kernel export the module imports.
fn exports(ko: &[u8]) -> BTreeMap<String, u64> {
    let file = object::File::parse(ko).unwrap();
    file.symbols()
        .filter(|s| s.is_undefined() && !s.name().unwrap().is_empty())
        .filter(|s| s.name().unwrap().starts_with("splitmap_"))
        .enumerate()
        .map(|(i, s)| (s.name().unwrap().to_string(), KERNEL + 0x100 * i as u64))
        .collect()
}

/// Our image of `ko` at `base`.
fn ours(ko: &[u8], base: u64) -> (Vec<u8>, Vec<(String, u64, u64)>, kernel::module::load::Linked) {
    let copy = Aligned::new(ko);
    let module = Module::parse(copy.bytes()).unwrap();
    let mut image = vec![0; module.size() as usize];
    let exports = exports(ko);
    let linked = module.link(&mut image, base, |n| exports.get(n).copied()).unwrap();
    let sections = module
        .sections()
        .map(|(name, p)| (name.to_string(), p.offset, p.size))
        .collect();
    (image, sections, linked)
}

/// rust-lld's link of `ko` with each section where our loader put it.
fn lld(name: &str, ko: &[u8], sections: &[(String, u64, u64)]) -> object::File<'static> {
    let dir = std::env::temp_dir().join(format!("splitmap-lld-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut script = String::from("SECTIONS {\n");
    // rust-lld drops empty output sections; there is nothing to compare in them.
    for (section, offset, _) in sections.iter().filter(|(_, _, size)| *size > 0) {
        writeln!(script, "  {section} {:#x} : {{ *({section}) }}", BASE + offset).unwrap();
    }
    script.push_str("}\n");
    for (export, at) in exports(ko) {
        writeln!(script, "{export} = {at:#x};").unwrap();
    }
    std::fs::write(dir.join("place.ld"), &script).unwrap();
    std::fs::write(dir.join("in.o"), ko).unwrap();
    let out = Command::new(env!("SPLITMAP_RUST_LLD"))
        .args(["-flavor", "gnu", "--no-relax", "-static", "-e", "init_module", "-T"])
        .arg(dir.join("place.ld"))
        .arg(dir.join("in.o"))
        .arg("-o")
        .arg(dir.join("out.elf"))
        .output()
        .expect("run rust-lld");
    assert!(
        out.status.success(),
        "rust-lld on {name}: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes: &'static [u8] = std::fs::read(dir.join("out.elf")).unwrap().leak();
    std::fs::remove_dir_all(&dir).unwrap();
    object::File::parse(bytes).unwrap()
}

/// Relocation types in `ko`, applied to allocated sections.
fn types_used(ko: &[u8]) -> BTreeMap<u32, usize> {
    let file = object::File::parse(ko).unwrap();
    let mut used = BTreeMap::new();
    for s in file
        .sections()
        .filter(|s| s.name().is_ok_and(|n| !n.starts_with(".debug")))
    {
        for (_, r) in s.relocations() {
            if let RelocationFlags::Elf { r_type } = r.flags() {
                *used.entry(r_type).or_default() += 1;
            }
        }
    }
    used
}

#[test]
fn every_section_matches_what_rust_lld_makes_of_the_same_object() {
    let mut seen = BTreeMap::new();
    for name in MODULES {
        let ko = module_file(name);
        let (image, sections, _) = ours(&ko, BASE);
        let linked = lld(name, &ko, &sections);
        for (section, offset, size) in sections.iter().filter(|(_, _, size)| *size > 0) {
            let theirs = linked
                .section_by_name(section)
                .unwrap_or_else(|| panic!("{name}: rust-lld has no {section}"));
            assert_eq!(theirs.address(), BASE + offset, "{name}: {section} placed");
            let ours = &image[*offset as usize..(offset + size) as usize];
            let theirs = theirs.uncompressed_data().unwrap();
            let theirs: &[u8] = if theirs.is_empty() {
                &vec![0; *size as usize]
            } else {
                &theirs
            };
            if let Some(at) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
                panic!(
                    "{name}: {section}+{at:#x}: ours {:02x?}, rust-lld's {:02x?}",
                    &ours[at & !3..(at & !3) + 4],
                    &theirs[at & !3..(at & !3) + 4]
                );
            }
        }
        for (t, n) in types_used(&ko) {
            *seen.entry(t).or_insert(0) += n;
        }
    }
    // The comparison means something only for the types the modules use.
    let names: Vec<&str> = seen.keys().map(|&t| reloc::type_name(t).unwrap_or("?")).collect();
    for wanted in [
        "R_AARCH64_CALL26",
        "R_AARCH64_JUMP26",
        "R_AARCH64_ADR_PREL_PG_HI21",
        "R_AARCH64_ADD_ABS_LO12_NC",
        "R_AARCH64_LDST8_ABS_LO12_NC",
        "R_AARCH64_LDST16_ABS_LO12_NC",
        "R_AARCH64_LDST32_ABS_LO12_NC",
        "R_AARCH64_LDST64_ABS_LO12_NC",
        "R_AARCH64_ABS64",
        "R_AARCH64_PREL32",
        "R_AARCH64_PREL64",
    ] {
        assert!(names.contains(&wanted), "no sample module uses {wanted}: {names:?}");
    }
}

/// (branches to the kernel, distinct exports branched to) in `ko`.
fn kernel_branches(ko: &[u8]) -> (usize, usize) {
    let file = object::File::parse(ko).unwrap();
    let mut calls = 0;
    let mut targets = std::collections::BTreeSet::new();
    for s in file.sections() {
        for (_, r) in s.relocations() {
            let (RelocationFlags::Elf { r_type: 282 | 283 }, RelocationTarget::Symbol(i)) = (r.flags(), r.target())
            else {
                continue;
            };
            let symbol = file.symbol_by_index(i).unwrap();
            if symbol.is_undefined() {
                calls += 1;
                targets.insert(symbol.name().unwrap().to_string());
            }
        }
    }
    (calls, targets.len())
}

#[test]
fn far_from_the_kernel_every_export_gets_one_veneer() {
    // 1 GiB below the exports: out of bl reach, well within a veneer's.
    let far = KERNEL - (1 << 30);
    for name in MODULES {
        let ko = module_file(name);
        let copy = Aligned::new(&ko);
        let module = Module::parse(copy.bytes()).unwrap();
        let (image, _, linked) = ours(&ko, far);
        let (calls, targets) = kernel_branches(&ko);
        assert_eq!(linked.plt, targets, "{name}: one veneer per export");
        assert!(linked.plt <= module.plt_slots, "{name}: never more than counted");
        if name == "farcalls" {
            assert!(calls > targets, "farcalls calls some exports from several places");
        }
        // The veneers, read back, lead to exactly the exports.
        let [(_, text, _), ..] = module.areas();
        let mut reached = std::collections::BTreeSet::new();
        for at in (0..text as usize).step_by(4) {
            let word = |i: usize| u32::from_le_bytes(image[at + 4 * i..at + 4 * i + 4].try_into().unwrap());
            if at + 12 <= text as usize
                && let Some(t) = plt::veneer_target(far + at as u64, [word(0), word(1), word(2)])
            {
                reached.insert(t);
            }
        }
        let wanted: std::collections::BTreeSet<u64> = exports(&ko).values().copied().collect();
        assert_eq!(reached, wanted, "{name}: veneers lead to the exports");
    }
}

#[test]
fn bad_modules_are_refused_with_the_reason() {
    let ko = module_file("hello");
    let cut = Aligned::new(&ko[..ko.len() - 100]);
    let err = Module::parse(cut.bytes()).err().unwrap();
    assert!(matches!(err, LoadError::Malformed(Malformed::NotElf(_))), "{err}");

    // A section whose contents run past the end of the file: sh_size (at 0x20
    // in its header) made huge.
    let index = object::File::parse(&*ko)
        .unwrap()
        .section_by_name(".text.init_module")
        .unwrap()
        .index()
        .0;
    let shoff = u64::from_le_bytes(ko[0x28..0x30].try_into().unwrap()) as usize;
    let mut long = ko.clone();
    let size_at = shoff + 64 * index + 0x20;
    long[size_at..size_at + 8].copy_from_slice(&0x10_0000u64.to_le_bytes());
    let long = Aligned::new(&long);
    let err = Module::parse(long.bytes()).err().unwrap();
    assert_eq!(err, LoadError::Truncated(".text.init_module".into()));
    assert_eq!(
        err.to_string(),
        "section .text.init_module lies outside the file (truncated?)"
    );

    let copy = Aligned::new(&ko);
    let module = Module::parse(copy.bytes()).unwrap();
    let mut image = vec![0; module.size() as usize];
    let err = module.link(&mut image, BASE, |_| None).unwrap_err();
    assert!(
        matches!(&err, LoadError::UndefinedSymbol(s) if s.starts_with("splitmap_")),
        "{err}"
    );
    // An export 8 GiB away is beyond even a veneer.
    let err = module.link(&mut image, BASE, |_| Some(BASE + (8 << 30))).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Veneer {
                error: PltError::OutOfReach(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("beyond a veneer's reach"), "{err}");
}
