//! The build's check that code running before the MMU is on is
//! position-independent, like Linux's `relacheck` for `arch/arm64/kernel/pi`.
//!
//! Before the MMU is on the kernel runs at its physical address, but it is
//! linked at `KIMAGE_VADDR`. A PC-relative reference (`adrp`/`add`, `bl`) works
//! either way; an absolute one (a pointer stored in data, a `ldr x0, =sym`
//! literal, a GOT entry) holds the link-time address and would send the CPU to
//! unmapped memory. So: starting from the entry symbol, follow every relocation
//! through the early crate's object code; any absolute relocation reached is an
//! error, and so is a call into code outside the early crate, which nobody
//! checks. Taking the address of an outside symbol PC-relatively is fine (the
//! early code computes the kernel's entry point that way).
//!
//! And from the early entry (not the EFI stub's, which runs with the
//! firmware's caches on), a reference to `.bss` is an error too: the early
//! code zeroes `.bss` only once the MMU is on, through the cache, so before
//! that it holds whatever RAM held, and a store there with the caches off
//! would be wiped (kernel/pi/src/boot.rs).

use std::collections::{HashMap, HashSet};

use object::read::archive::ArchiveFile;
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex, SymbolSection};

/// The early code's first instruction, reached from the Image header.
pub const EARLY_ENTRY: &str = "__pi_primary_entry";

/// The EFI stub's entry point (kernel/efistub), the PE header's
/// AddressOfEntryPoint: it too runs where the firmware loaded the image, not
/// at the link address. Checked from when its crate is among the objects.
pub const EFI_ENTRY: &str = "__efistub_pe_entry";

// AArch64 ELF relocation types (ELF for the Arm 64-bit Architecture).
use object::elf::{
    R_AARCH64_ABS16, R_AARCH64_ABS32, R_AARCH64_ABS64, R_AARCH64_ADR_GOT_PAGE, R_AARCH64_CALL26, R_AARCH64_JUMP26,
    R_AARCH64_LD64_GOT_LO12_NC, R_AARCH64_MOVW_SABS_G2, R_AARCH64_MOVW_UABS_G0,
};

/// Relocations that store an absolute address (or reach one through the GOT).
fn is_absolute(r_type: u32) -> bool {
    matches!(
        r_type,
        R_AARCH64_ABS64 | R_AARCH64_ABS32 | R_AARCH64_ABS16 | R_AARCH64_ADR_GOT_PAGE | R_AARCH64_LD64_GOT_LO12_NC
    ) || (R_AARCH64_MOVW_UABS_G0..=R_AARCH64_MOVW_SABS_G2).contains(&r_type)
}

fn type_name(r_type: u32) -> String {
    match r_type {
        R_AARCH64_ABS64 => "R_AARCH64_ABS64".into(),
        R_AARCH64_ABS32 => "R_AARCH64_ABS32".into(),
        R_AARCH64_ABS16 => "R_AARCH64_ABS16".into(),
        R_AARCH64_CALL26 => "R_AARCH64_CALL26".into(),
        R_AARCH64_JUMP26 => "R_AARCH64_JUMP26".into(),
        R_AARCH64_ADR_GOT_PAGE => "R_AARCH64_ADR_GOT_PAGE".into(),
        R_AARCH64_LD64_GOT_LO12_NC => "R_AARCH64_LD64_GOT_LO12_NC".into(),
        t => format!("relocation type {t}"),
    }
}

/// Checks the early crate's archive (an `.rlib`): every object member together.
///
/// # Errors
/// One line per offending relocation, naming the symbol that contains it and
/// the symbol it refers to; or why the archive could not be read.
#[allow(dead_code)] // build.rs checks with check_archives; tests use this
pub fn check_archive(bytes: &[u8]) -> Result<(), Vec<String>> {
    check_archives(&[bytes])
}

/// Checks archives linked together (kernel/pi and kernel/efistub): calls
/// from one into the other are inside the checked code.
///
/// # Errors
/// As [`check_archive`].
pub fn check_archives(archives: &[&[u8]]) -> Result<(), Vec<String>> {
    let mut objects = Vec::new();
    for bytes in archives {
        objects.extend(archive_objects(bytes)?);
    }
    let objects: Vec<(String, &[u8])> = objects.iter().map(|(n, d)| (n.clone(), &d[..])).collect();
    check_objects(&objects)
}

fn archive_objects(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Vec<String>> {
    let archive = ArchiveFile::parse(bytes).map_err(|e| vec![format!("not an archive: {e}")])?;
    let mut objects = Vec::new();
    for member in archive.members() {
        let member = member.map_err(|e| vec![format!("bad archive member: {e}")])?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        let data = member.data(bytes).map_err(|e| vec![format!("{name}: {e}")])?;
        // Object members only: an rlib also holds its metadata (lib.rmeta).
        if object::FileKind::parse(data).is_ok_and(|k| k == object::FileKind::Elf64) {
            // Members sit at any offset in the archive; ELF parsing wants its
            // headers aligned, which a fresh allocation is.
            objects.push((name, data.to_vec()));
        }
    }
    Ok(objects)
}

/// Checks relocatable objects that are linked together, starting from
/// [`EARLY_ENTRY`].
///
/// # Errors
/// As [`check_archive`].
pub fn check_objects(objects: &[(String, &[u8])]) -> Result<(), Vec<String>> {
    let files: Vec<object::File<'_>> = objects
        .iter()
        .map(|(name, data)| object::File::parse(*data).map_err(|e| vec![format!("{name}: {e}")]))
        .collect::<Result<_, _>>()?;

    // Where each global symbol is defined: (object, section).
    let mut defined: HashMap<String, (usize, SectionIndex)> = HashMap::new();
    for (i, file) in files.iter().enumerate() {
        for sym in file.symbols() {
            if let (SymbolSection::Section(section), Ok(name)) = (sym.section(), sym.name())
                && (sym.is_global() || name == EARLY_ENTRY)
            {
                defined.insert(name.to_string(), (i, section));
            }
        }
    }
    let Some(&root) = defined.get(EARLY_ENTRY) else {
        return Err(vec![format!(
            "the early entry point {EARLY_ENTRY} is not defined in the early code"
        )]);
    };

    let mut reached = HashSet::new();
    let mut errors = Vec::new();
    follow(&files, &defined, root, true, &mut reached, &mut errors);
    if let Some(&efi) = defined.get(EFI_ENTRY) {
        follow(&files, &defined, efi, false, &mut reached, &mut errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Follows every relocation from `root` through the objects, adding what it
/// finds wrong to `errors`; sections in `reached` are not followed again.
/// With `forbid_bss`, a reference into `.bss` is wrong too.
fn follow(
    files: &[object::File<'_>],
    defined: &HashMap<String, (usize, SectionIndex)>,
    root: (usize, SectionIndex),
    forbid_bss: bool,
    reached: &mut HashSet<(usize, SectionIndex)>,
    errors: &mut Vec<String>,
) {
    if !reached.insert(root) {
        return;
    }
    let mut queue = vec![root];
    while let Some((obj, section_index)) = queue.pop() {
        let file = &files[obj];
        let Ok(section) = file.section_by_index(section_index) else {
            continue;
        };
        for (offset, reloc) in section.relocations() {
            let RelocationFlags::Elf { r_type } = reloc.flags() else {
                continue;
            };
            let target = match reloc.target() {
                RelocationTarget::Symbol(index) => file.symbol_by_index(index).ok(),
                _ => None,
            };
            let target_name = target.as_ref().and_then(|s| s.name().ok()).filter(|n| !n.is_empty());
            let target_desc = match (&target_name, &target) {
                (Some(n), _) => demangle(n),
                (None, Some(s)) => match s.section() {
                    SymbolSection::Section(i) => file
                        .section_by_index(i)
                        .and_then(|s| s.name().map(str::to_owned))
                        .unwrap_or_default(),
                    _ => "?".into(),
                },
                _ => "?".into(),
            };
            // Where the reference lands: this object's section, or the one
            // that defines the symbol.
            let next = match target.as_ref().map(|s| s.section()) {
                Some(SymbolSection::Section(i)) => Some((obj, i)),
                Some(SymbolSection::Undefined) => target_name.and_then(|n| defined.get(n).copied()),
                _ => None,
            };
            let target_section = next.and_then(|(o, i)| files[o].section_by_index(i).ok()?.name().ok());
            if forbid_bss && target_section.is_some_and(|n| n == ".bss" || n.starts_with(".bss.")) {
                errors.push(format!(
                    "{} in {} (section {}, offset {offset:#x}) refers to {target_desc} in .bss: code that runs before the MMU is on must not use .bss, which is zeroed only after",
                    type_name(r_type),
                    containing_symbol(file, section_index, offset),
                    section.name().unwrap_or("?"),
                ));
                continue;
            }
            if is_absolute(r_type) {
                errors.push(format!(
                    "{} in {} (section {}, offset {offset:#x}) refers to {target_desc}: code that runs before the MMU is on must not use absolute addresses",
                    type_name(r_type),
                    containing_symbol(file, section_index, offset),
                    section.name().unwrap_or("?"),
                ));
                continue;
            }
            // Follow the reference to the section it lands in.
            match next {
                Some(next) if reached.insert(next) => queue.push(next),
                Some(_) => {} // Already reached.
                None if matches!(r_type, R_AARCH64_CALL26 | R_AARCH64_JUMP26) => errors.push(format!(
                    "{} in {} calls {target_desc}, which is outside the early code and unchecked",
                    type_name(r_type),
                    containing_symbol(file, section_index, offset),
                )),
                None => {} // A PC-relative address of an outside symbol: fine.
            }
        }
    }
}

/// The (demangled) name of the symbol in `section` that covers `offset`.
fn containing_symbol(file: &object::File<'_>, section: SectionIndex, offset: u64) -> String {
    file.symbols()
        .filter(|s| s.section() == SymbolSection::Section(section) && s.kind() != object::SymbolKind::Section)
        .filter(|s| s.address() <= offset && (offset < s.address() + s.size().max(1) || s.size() == 0))
        .max_by_key(|s| s.address())
        .and_then(|s| s.name().ok().map(demangle))
        .unwrap_or_else(|| {
            format!(
                "<{}>",
                file.section_by_index(section)
                    .and_then(|s| s.name().map(str::to_owned))
                    .unwrap_or_default()
            )
        })
}

fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}
