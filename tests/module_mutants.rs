//! Structural mutants of every sample module (tests/common/mutants.rs): the
//! loader refuses each one before anything runs, naming what is wrong.

mod common;
use common::mutants::structural;
use common::*;
use kernel::module::load::{Aligned, Module};

/// Refused by parsing or by linking at a base in the kernel half, with every
/// import found (so only the structure can fail).
fn refusal(bytes: &[u8]) -> Option<String> {
    let copy = Aligned::new(bytes);
    let module = match Module::parse(copy.bytes()) {
        Ok(m) => m,
        Err(e) => return Some(e.to_string()),
    };
    let mut image = vec![0u8; module.size() as usize];
    module
        .link(&mut image, 0xffff_8000_7800_0000, |_| Some(0xffff_8000_8000_1000))
        .err()
        .map(|e| e.to_string())
}

#[test]
fn every_structural_mutant_is_refused_by_name() {
    for name in MODULES {
        let ko = module_file(name);
        // Also: the instruction scan (kernel/src/module/scan.rs) finds
        // nothing to refuse in any sample's code.
        assert!(refusal(&ko).is_none(), "{name} itself loads");
        let mutants = structural(&ko, 0x5eed);
        assert!(mutants.len() >= 50, "{name}: only {} mutants", mutants.len());
        for m in mutants {
            let why = refusal(&m.bytes).unwrap_or_else(|| panic!("{name}: accepted with {}", m.what));
            if let Some(names) = &m.names {
                assert!(
                    why.contains(names.as_str()),
                    "{name}: {}: the refusal does not name {names}: {why}",
                    m.what
                );
            }
        }
    }
}

/// Writes every sample's mutants to a folder and packs them with
/// `splitmap initrd`; their module names, in order.
fn mutant_initrd() -> (String, Vec<(String, String)>) {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mutants");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut names = Vec::new();
    for name in MODULES {
        for (i, m) in structural(&module_file(name), 0x5eed).into_iter().enumerate() {
            let module = format!("{name}-m{i:02}");
            std::fs::write(dir.join(format!("{module}.ko")), &m.bytes).unwrap();
            names.push((module, m.what));
        }
    }
    let initrd = dir.with_extension("cpio").display().to_string();
    let packed = splitmap(&["initrd", &dir.display().to_string(), "-o", &initrd]);
    assert!(packed.success, "{}", packed.stderr);
    (initrd, names)
}

#[test]
fn the_new_mutant_classes_are_generated() {
    for name in MODULES {
        let mutants = structural(&module_file(name), 0x5eed);
        let count = |what: &str| mutants.iter().filter(|m| m.what.contains(what)).count();
        assert!(
            count("sh_info another code section") > 0,
            "{name}: no retargeted relocations"
        );
        assert_eq!(
            count("a branch to an export with addend"),
            3,
            "{name}: no branch addends"
        );
        assert!(
            count("a branch relocation moved onto another instruction") > 0,
            "{name}: no moved branch relocations"
        );
    }
}

#[test]
fn retargeted_and_moved_relocations_and_branches_into_an_export_are_refused_with_the_reason() {
    for name in MODULES {
        for m in structural(&module_file(name), 0x5eed) {
            let why = || refusal(&m.bytes).unwrap();
            if m.what.contains("sh_info another code section") {
                let why = why();
                assert!(
                    why.contains("both relocate") || why.contains("relocations for"),
                    "{name}: {}: {why}",
                    m.what
                );
            } else if m.what.contains("a branch to an export with addend") {
                let why = why();
                assert!(
                    why.contains("lands inside it, not at its start"),
                    "{name}: {}: {why}",
                    m.what
                );
            } else if m.what.contains("a branch relocation moved onto another instruction") {
                let why = why();
                assert!(
                    why.contains(", which is not a BL") || why.contains(", which is not a B "),
                    "{name}: {}: {why}",
                    m.what
                );
            }
        }
    }
}

/// Every instruction class a module may not contain, written over the
/// second instruction of each code section of hello in turn: refused, named
/// by section and offset.
#[test]
fn privileged_instructions_are_refused_by_section_and_offset() {
    use object::{Object, ObjectSection, SectionKind};
    let ko = module_file("hello");
    let file = object::File::parse(&*ko).unwrap();
    let rows: [(u32, &str); 9] = [
        (
            0xd503_4fdf,
            "msr daifset masks interrupts, which no watchdog could then interrupt",
        ),
        (0xd503_42ff, "msr daifclr unmasks interrupts"),
        (0xd518_c000, "msr vbar_el1 writes a system register"),
        (0xd51b_4220, "msr daif sets the interrupt masks"),
        (0xd69f_03e0, "eret leaves the kernel's exception level"),
        (0xd400_0842, "hvc #0x42 calls the hypervisor"),
        (0xd400_0003, "smc #0x0 calls the secure monitor"),
        (0xd503_207f, "wfi waits for an interrupt"),
        (0xd503_205f, "wfe waits for an event"),
    ];
    let mut tried = 0;
    for s in file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text && s.size() >= 8)
    {
        let (at, _) = s.file_range().unwrap();
        for (insn, what) in rows {
            let mut bytes = ko.clone();
            bytes[at as usize + 4..at as usize + 8].copy_from_slice(&insn.to_le_bytes());
            let why = refusal(&bytes).unwrap_or_else(|| panic!("{:#x} accepted", insn));
            let want = format!("{}+0x4: {what}", s.name().unwrap());
            assert!(why.starts_with(&want), "{why}\nwanted {want}");
            tried += 1;
        }
    }
    assert!(tried >= rows.len() * 2, "{tried}");
    // Reading a system register is allowed: mrs x0, daif.
    let s = file.sections().find(|s| s.kind() == SectionKind::Text).unwrap();
    let (at, _) = s.file_range().unwrap();
    let mut bytes = ko.clone();
    bytes[at as usize + 4..at as usize + 8].copy_from_slice(&0xd53b_4220u32.to_le_bytes());
    assert_eq!(refusal(&bytes), None);
}

#[test]
fn the_kernel_refuses_every_mutant_and_stays_as_it_was() {
    let (initrd, names) = mutant_initrd();
    assert!(names.len() >= 50 * MODULES.len(), "{} mutants", names.len());
    let mut cmds = vec!["mem".to_string()];
    for (module, _) in &names {
        cmds.push(format!("insmod {module}"));
        cmds.push("mem".into());
    }
    cmds.push("lsmod".into());
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let out = session(&["--nokaslr", "--initrd", &initrd], &refs);
    // One answer per insmod, in order: every one an error naming the module.
    let answers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("error: insmod") || l.contains(" base=0x"))
        .collect();
    assert_eq!(answers.len(), names.len(), "{out}");
    for ((module, what), answer) in names.iter().zip(&answers) {
        assert!(
            answer.starts_with(&format!("error: insmod {module}: ")),
            "{module} ({what}) was not refused: {answer}"
        );
    }
    // Free memory never moved, and nothing is left loaded.
    let free: Vec<&str> = out.lines().filter(|l| l.starts_with("free     frames=")).collect();
    assert_eq!(free.len(), names.len() + 1);
    assert!(free.iter().all(|f| *f == free[0]), "free frames changed: {free:?}");
    let after_lsmod = out.rsplit("splitmap> lsmod").next().unwrap();
    assert!(!after_lsmod.contains(" base=0x"), "{after_lsmod}");
}

/// The section header of allocated section `pick` (by flags) in `ko`: its
/// name and where its header is in the file.
fn section_header(ko: &[u8], pick: impl Fn(u64) -> bool) -> (String, usize) {
    use object::{Object, ObjectSection, SectionFlags};
    let file = object::File::parse(ko).unwrap();
    let shoff = u64::from_le_bytes(ko[0x28..0x30].try_into().unwrap()) as usize;
    let s = file
        .sections()
        .find(|s| matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & 2 != 0 && pick(sh_flags)))
        .unwrap();
    (s.name().unwrap().to_string(), shoff + s.index().0 * 64)
}

#[test]
fn section_alignments_that_are_not_powers_of_two_or_misalign_code_are_refused() {
    const EXECINSTR: u64 = 4;
    let ko = module_file("hello");
    let with_align = |at: usize, align: u64| {
        let mut b = ko.clone();
        b[at + 48..at + 56].copy_from_slice(&align.to_le_bytes());
        b
    };
    let (text, text_at) = section_header(&ko, |f| f & EXECINSTR != 0);
    let (data, data_at) = section_header(&ko, |f| f & EXECINSTR == 0);
    for (bytes, names, why) in [
        (with_align(text_at, 12), &text, "not a power of two"),
        (with_align(text_at, 2), &text, "instructions need 4"),
        (with_align(text_at, 0), &text, "instructions need 4"),
        (with_align(data_at, 24), &data, "not a power of two"),
    ] {
        let refusal = refusal(&bytes).unwrap_or_else(|| panic!("{names}: {why}: accepted"));
        assert!(refusal.contains(names.as_str()) && refusal.contains(why), "{refusal}");
    }
    // 0 and 1 mean no constraint for data; a larger power of two is kept.
    assert_eq!(refusal(&with_align(data_at, 0)), None);
    assert_eq!(refusal(&with_align(data_at, 1)), None);
    assert_eq!(refusal(&with_align(text_at, 64)), None);
}

#[test]
fn function_sizes_from_the_file_are_clamped_to_their_section() {
    use object::{Object, ObjectSymbol, SymbolKind};
    let ko = module_file("hello");
    let file = object::File::parse(&*ko).unwrap();
    let symtab = file.section_by_name(".symtab").unwrap();
    let symtab_at = {
        use object::ObjectSection;
        symtab.file_range().unwrap().0 as usize
    };
    let functions: Vec<usize> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.is_definition())
        .map(|s| s.index().0)
        .collect();
    assert!(!functions.is_empty());
    let mut bytes = ko.clone();
    for (i, index) in functions.iter().enumerate() {
        // Sizes far past the section, one that would overflow `offset + size`.
        let size = if i == 0 { u64::MAX } else { 1 << 40 };
        let at = symtab_at + index * 24 + 16;
        bytes[at..at + 8].copy_from_slice(&size.to_le_bytes());
    }
    let copy = Aligned::new(&bytes);
    let module = Module::parse(copy.bytes()).unwrap();
    let sections: Vec<(&str, u64, u64)> = module.sections().map(|(n, p)| (n, p.offset, p.size)).collect();
    let listed = module.functions();
    assert_eq!(listed.len(), functions.len());
    for f in listed {
        let (section, start, size) = sections[f.section];
        assert!(
            f.offset >= start && f.offset + f.size <= start + size,
            "{} {:#x}+{:#x} leaves {} {start:#x}+{size:#x}",
            f.name(),
            f.offset,
            f.size,
            section
        );
    }
}
