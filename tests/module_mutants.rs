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
        let &(_, start, size) = sections.iter().find(|(n, ..)| *n == f.section).unwrap();
        assert!(
            f.offset >= start && f.offset + f.size <= start + size,
            "{} {:#x}+{:#x} leaves {} {start:#x}+{size:#x}",
            f.name,
            f.offset,
            f.size,
            f.section
        );
    }
}
