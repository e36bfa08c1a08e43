//! Structural checks on a module file, before anything is laid out, copied
//! or run. The ELF reader tolerates much that a loader must not: relocation
//! sections that point at the wrong symbol table or the wrong section are
//! simply not associated with anything, and the code would run unrelocated.
//! Here every section is either one the loader understands or the file is
//! refused, naming the section (or symbol) and why.

use alloc::format;
use alloc::string::String;

use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, SectionTable, Sym, SymbolTable};
use object::{LittleEndian as LE, SectionIndex};

type Sections<'d> = SectionTable<'d, elf::FileHeader64<LE>>;
type Symbols<'d> = SymbolTable<'d, elf::FileHeader64<LE>>;

/// Bytes of one ELF64 symbol and of one RELA entry.
const SYM_SIZE: u64 = 24;
const RELA_SIZE: u64 = 24;

/// The entry points the kernel calls; both optional.
pub const ENTRY_POINTS: [&str; 2] = ["init_module", "exit_module"];

/// Section types the loader knows what to do with: load (PROGBITS, NOBITS),
/// use while linking (SYMTAB, STRTAB, RELA), or leave alone (NOTE, and
/// LLVM's address-significance table).
const UNDERSTOOD: [u32; 7] = [
    elf::SHT_NULL,
    elf::SHT_PROGBITS,
    elf::SHT_NOBITS,
    elf::SHT_SYMTAB,
    elf::SHT_STRTAB,
    elf::SHT_RELA,
    elf::SHT_NOTE,
];
const SHT_LLVM_ADDRSIG: u32 = 0x6fff_4c03;

/// Checks every section header and the entry points of the ELF file `data`.
/// Runs before the ELF reader builds its own view, which would refuse some of
/// these files without naming the section.
///
/// # Errors
/// The first thing the loader does not understand, named.
pub fn structure(data: &[u8]) -> Result<(), String> {
    let not_elf = |e: object::read::Error| format!("not an ELF file: {e}");
    let header = elf::FileHeader64::<LE>::parse(data).map_err(not_elf)?;
    let sections: Sections<'_> = header.sections(LE, data).map_err(not_elf)?;
    let sections = &sections;
    let name_of = |h: &elf::SectionHeader64<LE>| {
        sections
            .section_name(LE, h)
            .ok()
            .and_then(|n| core::str::from_utf8(n).ok())
            .unwrap_or("?")
    };
    let mut symtab = None;
    for (i, h) in sections.iter().enumerate() {
        let (name, kind) = (name_of(h), h.sh_type(LE));
        let flags = h.sh_flags(LE);
        if kind == elf::SHT_REL {
            return Err(format!(
                "section {name} holds REL relocations; AArch64 modules use RELA (with addends)"
            ));
        }
        if !UNDERSTOOD.contains(&kind) && kind != SHT_LLVM_ADDRSIG {
            return Err(format!(
                "section {name} has type {kind:#x}, which the loader does not understand"
            ));
        }
        if name.starts_with(".rela") && kind != elf::SHT_RELA {
            return Err(format!(
                "section {name} is named as relocations but has type {kind:#x}, not RELA"
            ));
        }
        if name == ".symtab" && kind != elf::SHT_SYMTAB {
            return Err(format!("section {name} is not a symbol table (type {kind:#x})"));
        }
        if kind == elf::SHT_NOBITS && flags & u64::from(elf::SHF_EXECINSTR) != 0 {
            return Err(format!("section {name} is code but has no contents (NOBITS)"));
        }
        if flags & u64::from(elf::SHF_ALLOC) != 0 {
            alignment(h, name)?;
        }
        if kind == elf::SHT_SYMTAB {
            if symtab.replace(i).is_some() {
                return Err("more than one symbol table".into());
            }
            entries(h, name, SYM_SIZE, "symbol")?;
            let link = sections.section(SectionIndex(h.sh_link(LE) as usize));
            if link.map(|s| s.sh_type(LE)) != Ok(elf::SHT_STRTAB) {
                return Err(format!("symbol table {name} does not link to a string table"));
            }
        }
    }
    let symbols: Symbols<'_> = sections
        .symbols(LE, data, elf::SHT_SYMTAB)
        .map_err(|e| format!("the symbol table cannot be read: {e}"))?;
    for h in sections.iter().filter(|h| h.sh_type(LE) == elf::SHT_RELA) {
        let Some(symtab) = symtab else {
            return Err(format!(
                "section {} holds relocations, but there is no symbol table",
                name_of(h)
            ));
        };
        relocations(sections, symbols.len(), h, name_of(h), symtab, data)?;
    }
    for entry in ENTRY_POINTS {
        let mut found = symbols
            .symbols()
            .iter()
            .filter(|s| symbols.symbol_name(LE, s) == Ok(entry.as_bytes()));
        let Some(sym) = found.next() else { continue };
        if found.next().is_some() {
            return Err(format!("{entry} is defined more than once"));
        }
        entry_point(sections, entry, sym)?;
    }
    Ok(())
}

/// A section the loader places: its `sh_addralign` is 0 or 1 (none) or a
/// power of two, as the ELF spec requires (the layout rounds offsets up to
/// it), and code is at least 4-aligned, so every instruction is.
fn alignment(h: &elf::SectionHeader64<LE>, name: &str) -> Result<(), String> {
    let align = h.sh_addralign(LE);
    if align > 1 && !align.is_power_of_two() {
        return Err(format!(
            "section {name} wants {align}-byte alignment, which is not a power of two"
        ));
    }
    if h.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) != 0 && align < 4 {
        return Err(format!(
            "section {name} is code aligned to {align} byte(s); instructions need 4"
        ));
    }
    Ok(())
}

/// A table section of `size`-byte entries: whole entries, aligned.
fn entries(h: &elf::SectionHeader64<LE>, name: &str, size: u64, what: &str) -> Result<u64, String> {
    let (entsize, bytes) = (h.sh_entsize(LE), h.sh_size(LE));
    if entsize != size {
        return Err(format!(
            "section {name} has {entsize}-byte entries; a {what} is {size} bytes"
        ));
    }
    if !bytes.is_multiple_of(size) {
        return Err(format!(
            "section {name} is {bytes} bytes, not a whole number of {what}s"
        ));
    }
    if !h.sh_offset(LE).is_multiple_of(8) {
        return Err(format!("section {name} is not 8-byte aligned in the file"));
    }
    Ok(bytes / size)
}

/// A RELA section: whole entries, for the symbol table, patching a section
/// that is loaded, naming symbols that exist.
fn relocations(
    sections: &Sections<'_>,
    nsyms: usize,
    h: &elf::SectionHeader64<LE>,
    name: &str,
    symtab: usize,
    data: &[u8],
) -> Result<(), String> {
    entries(h, name, RELA_SIZE, "relocation")?;
    if h.sh_link(LE) as usize != symtab {
        return Err(format!(
            "section {name} links to section {}, not the symbol table",
            h.sh_link(LE)
        ));
    }
    let target = h.sh_info(LE) as usize;
    let patched = sections
        .section(SectionIndex(target))
        .ok()
        .filter(|_| target != 0)
        .ok_or_else(|| format!("section {name} relocates section {target}, which does not exist"))?;
    let alloc = patched.sh_flags(LE) & u64::from(elf::SHF_ALLOC) != 0;
    if !alloc || patched.sh_type(LE) != elf::SHT_PROGBITS {
        return Err(format!(
            "section {name} relocates section {target}, which is not loaded with contents"
        ));
    }
    let table: &[elf::Rela64<LE>] = h
        .data_as_array(LE, data)
        .map_err(|_| format!("section {name} lies outside the file"))?;
    for (i, r) in table.iter().enumerate() {
        let sym = r.r_sym(LE, false) as usize;
        if sym >= nsyms {
            return Err(format!(
                "relocation {i} in {name} names symbol {sym}; there are {nsyms}"
            ));
        }
        if r.r_offset(LE) >= patched.sh_size(LE) {
            return Err(format!(
                "relocation {i} in {name} patches offset {:#x}, past the end of its section",
                r.r_offset(LE)
            ));
        }
    }
    Ok(())
}

/// An entry point: a 4-byte aligned instruction inside loaded code.
fn entry_point(sections: &Sections<'_>, entry: &str, sym: &elf::Sym64<LE>) -> Result<(), String> {
    let shndx = sym.st_shndx(LE);
    match shndx {
        elf::SHN_UNDEF => return Err(format!("{entry} is undefined: a module defines its own entry points")),
        elf::SHN_ABS => return Err(format!("{entry} is an absolute symbol, not code in the module")),
        i if i >= elf::SHN_LORESERVE => return Err(format!("{entry} is in special section {i:#x}, not code")),
        _ => {}
    }
    let section = sections
        .section(SectionIndex(shndx.into()))
        .map_err(|_| format!("{entry} names section {shndx}, which does not exist"))?;
    let code = u64::from(elf::SHF_ALLOC | elf::SHF_EXECINSTR);
    if section.sh_flags(LE) & code != code || section.sh_type(LE) != elf::SHT_PROGBITS {
        return Err(format!("{entry} is in section {shndx}, which is not loaded code"));
    }
    let at = sym.st_value(LE);
    if !at.is_multiple_of(4) {
        return Err(format!("{entry} at {at:#x} is not 4-byte aligned"));
    }
    if at.checked_add(4).is_none_or(|end| end > section.sh_size(LE)) {
        return Err(format!("{entry} at {at:#x} lies past the end of its section"));
    }
    Ok(())
}
