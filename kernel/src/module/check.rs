//! Structural checks on a module file, before anything is laid out, copied
//! or run. The ELF reader tolerates much that a loader must not: relocation
//! sections that point at the wrong symbol table or the wrong section are
//! simply not associated with anything, and the code would run unrelocated.
//! Here every section is either one the loader understands or the file is
//! refused, naming the section (or symbol) and why.

use alloc::string::String;
use core::fmt;

use object::elf;
use object::read::elf::{FileHeader, Rela, SectionHeader, SectionTable, Sym, SymbolTable};
use object::{LittleEndian as LE, SectionIndex, SymbolIndex};

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

/// Why a file's structure is refused. Sections are named as the file names
/// them (`?` if it does not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The ELF reader refused the header or the section table.
    NotElf(object::read::Error),
    /// A REL section: AArch64 modules use RELA.
    Rel(String),
    /// A section type the loader does not understand.
    UnknownType(String, u32),
    /// A `.rela*` section that is not RELA.
    RelaInName(String, u32),
    /// A `.symtab` that is not a symbol table.
    NotSymtab(String, u32),
    /// Code without contents (NOBITS).
    EmptyCode(String),
    /// An alignment that is not a power of two.
    OddAlignment(String, u64),
    /// Code aligned to less than an instruction.
    UnalignedCode(String, u64),
    /// Two symbol tables.
    TwoSymtabs,
    /// Table entries of the wrong size.
    EntrySize {
        /// The table.
        section: String,
        /// Its `sh_entsize`.
        entsize: u64,
        /// The size of one `what`.
        want: u64,
        /// What an entry is.
        what: &'static str,
    },
    /// A table that is not a whole number of entries.
    PartialEntry {
        /// The table.
        section: String,
        /// Its size.
        bytes: u64,
        /// What an entry is.
        what: &'static str,
    },
    /// A table not 8-byte aligned in the file.
    UnalignedTable(String),
    /// A symbol table that does not link to a string table.
    NoStrtab(String),
    /// The symbol table cannot be read.
    BadSymtab(object::read::Error),
    /// Relocations with no symbol table to name symbols in.
    NoSymtab(String),
    /// Relocations linked to another section than the symbol table.
    WrongSymtab(String, u32),
    /// Relocations for a section that does not exist.
    NoTarget(String, usize),
    /// Relocations for a section that is not loaded with contents.
    TargetNotLoaded(String, usize),
    /// Relocations whose name does not agree with the section they patch
    /// (`.rela.text.foo` patches `.text.foo`): the relocation section and
    /// the name of its target.
    Misnamed(String, String),
    /// Two relocation sections for one section.
    SecondRelocations {
        /// The first relocation section for it.
        first: String,
        /// The second.
        second: String,
        /// The section both patch.
        target: String,
    },
    /// A table whose contents lie outside the file.
    OutsideFile(String),
    /// A relocation naming a symbol past the end of the symbol table.
    NoSuchSymbol {
        /// Which relocation of its section.
        index: usize,
        /// The RELA section.
        section: String,
        /// The symbol it names.
        symbol: usize,
        /// How many there are.
        symbols: usize,
    },
    /// A relocation patching past the end of its section.
    PastSection {
        /// Which relocation of its section.
        index: usize,
        /// The RELA section.
        section: String,
        /// The offset it patches.
        offset: u64,
    },
    /// An entry point the loader cannot call.
    Entry(&'static str, BadEntry),
}

/// What is wrong with an entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadEntry {
    /// Defined more than once.
    Twice,
    /// Undefined: the module must define it.
    Undefined,
    /// An absolute symbol.
    Absolute,
    /// In a special section (this index).
    Special(u16),
    /// In a section that does not exist.
    NoSection(u16),
    /// In a section that is not loaded code.
    NotCode(u16),
    /// At an address not 4-aligned.
    Unaligned(u64),
    /// Past the end of its section.
    PastEnd(u64),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Malformed::*;
        match self {
            NotElf(e) => write!(f, "not an ELF file: {e}"),
            Rel(name) => write!(
                f,
                "section {name} holds REL relocations; AArch64 modules use RELA (with addends)"
            ),
            UnknownType(name, kind) => write!(
                f,
                "section {name} has type {kind:#x}, which the loader does not understand"
            ),
            RelaInName(name, kind) => write!(
                f,
                "section {name} is named as relocations but has type {kind:#x}, not RELA"
            ),
            NotSymtab(name, kind) => write!(f, "section {name} is not a symbol table (type {kind:#x})"),
            EmptyCode(name) => write!(f, "section {name} is code but has no contents (NOBITS)"),
            OddAlignment(name, align) => write!(
                f,
                "section {name} wants {align}-byte alignment, which is not a power of two"
            ),
            UnalignedCode(name, align) => write!(
                f,
                "section {name} is code aligned to {align} byte(s); instructions need 4"
            ),
            TwoSymtabs => write!(f, "more than one symbol table"),
            EntrySize {
                section,
                entsize,
                want,
                what,
            } => write!(
                f,
                "section {section} has {entsize}-byte entries; a {what} is {want} bytes"
            ),
            PartialEntry { section, bytes, what } => {
                write!(f, "section {section} is {bytes} bytes, not a whole number of {what}s")
            }
            UnalignedTable(name) => write!(f, "section {name} is not 8-byte aligned in the file"),
            NoStrtab(name) => write!(f, "symbol table {name} does not link to a string table"),
            BadSymtab(e) => write!(f, "the symbol table cannot be read: {e}"),
            NoSymtab(name) => write!(f, "section {name} holds relocations, but there is no symbol table"),
            WrongSymtab(name, link) => write!(f, "section {name} links to section {link}, not the symbol table"),
            NoTarget(name, target) => write!(f, "section {name} relocates section {target}, which does not exist"),
            TargetNotLoaded(name, target) => write!(
                f,
                "section {name} relocates section {target}, which is not loaded with contents"
            ),
            Misnamed(name, target) => write!(
                f,
                "section {name} relocates section {target}; relocations for {target} are named .rela{target}"
            ),
            SecondRelocations { first, second, target } => write!(
                f,
                "sections {first} and {second} both relocate {target}; a section has at most one relocation section"
            ),
            OutsideFile(name) => write!(f, "section {name} lies outside the file"),
            NoSuchSymbol {
                index,
                section,
                symbol,
                symbols,
            } => write!(
                f,
                "relocation {index} in {section} names symbol {symbol}; there are {symbols}"
            ),
            PastSection { index, section, offset } => write!(
                f,
                "relocation {index} in {section} patches offset {offset:#x}, past the end of its section"
            ),
            Entry(entry, why) => match why {
                BadEntry::Twice => write!(f, "{entry} is defined more than once"),
                BadEntry::Undefined => write!(f, "{entry} is undefined: a module defines its own entry points"),
                BadEntry::Absolute => write!(f, "{entry} is an absolute symbol, not code in the module"),
                BadEntry::Special(i) => write!(f, "{entry} is in special section {i:#x}, not code"),
                BadEntry::NoSection(i) => write!(f, "{entry} names section {i}, which does not exist"),
                BadEntry::NotCode(i) => write!(f, "{entry} is in section {i}, which is not loaded code"),
                BadEntry::Unaligned(at) => write!(f, "{entry} at {at:#x} is not 4-byte aligned"),
                BadEntry::PastEnd(at) => write!(f, "{entry} at {at:#x} lies past the end of its section"),
            },
        }
    }
}

/// Checks every section header and the entry points of the ELF file `data`.
/// Runs before the ELF reader builds its own view, which would refuse some of
/// these files without naming the section.
///
/// # Errors
/// The first thing the loader does not understand, named:
/// - [`Malformed::NotElf`]: the header or section table cannot be read.
/// - [`Malformed::Rel`], [`Malformed::UnknownType`],
///   [`Malformed::RelaInName`], [`Malformed::NotSymtab`],
///   [`Malformed::EmptyCode`]: a section of a type the loader cannot use.
/// - [`Malformed::OddAlignment`], [`Malformed::UnalignedCode`]: a loaded
///   section's alignment.
/// - [`Malformed::TwoSymtabs`], [`Malformed::NoStrtab`],
///   [`Malformed::BadSymtab`]: the symbol table.
/// - [`Malformed::EntrySize`], [`Malformed::PartialEntry`],
///   [`Malformed::UnalignedTable`], [`Malformed::OutsideFile`]: a table's
///   shape.
/// - [`Malformed::NoSymtab`], [`Malformed::WrongSymtab`],
///   [`Malformed::NoTarget`], [`Malformed::TargetNotLoaded`],
///   [`Malformed::Misnamed`], [`Malformed::SecondRelocations`],
///   [`Malformed::NoSuchSymbol`], [`Malformed::PastSection`]: relocations.
/// - [`Malformed::Entry`]: `init_module` or `exit_module`.
///
/// On success, the symbol of each of [`ENTRY_POINTS`] the file defines.
pub fn structure(data: &[u8]) -> Result<[Option<SymbolIndex>; 2], Malformed> {
    let header = elf::FileHeader64::<LE>::parse(data).map_err(Malformed::NotElf)?;
    let sections: Sections<'_> = header.sections(LE, data).map_err(Malformed::NotElf)?;
    let sections = &sections;
    // Names are read whole (a search for each one's end) only for messages;
    // the checks compare them in place.
    let name_of = |h| section_name(sections, h);
    let names = header
        .section_strings_index(LE, data)
        .and_then(|i| sections.section(i))
        .and_then(|h| h.data(LE, data))
        .map_or(Strings(&[]), Strings);
    let mut symtab = None;
    for (i, h) in sections.iter().enumerate() {
        let (name, kind) = (|| name_of(h), h.sh_type(LE));
        let flags = h.sh_flags(LE);
        if kind == elf::SHT_REL {
            return Err(Malformed::Rel(name().into()));
        }
        if !UNDERSTOOD.contains(&kind) && kind != SHT_LLVM_ADDRSIG {
            return Err(Malformed::UnknownType(name().into(), kind));
        }
        if kind != elf::SHT_RELA && names.starts_with(h.sh_name(LE), b".rela") && name().starts_with(".rela") {
            return Err(Malformed::RelaInName(name().into(), kind));
        }
        if kind != elf::SHT_SYMTAB && names.is(h.sh_name(LE), b".symtab") {
            return Err(Malformed::NotSymtab(name().into(), kind));
        }
        if kind == elf::SHT_NOBITS && flags & u64::from(elf::SHF_EXECINSTR) != 0 {
            return Err(Malformed::EmptyCode(name().into()));
        }
        if flags & u64::from(elf::SHF_ALLOC) != 0 {
            alignment(h, name)?;
        }
        if kind == elf::SHT_SYMTAB {
            if symtab.replace(i).is_some() {
                return Err(Malformed::TwoSymtabs);
            }
            entries(h, name, SYM_SIZE, "symbol")?;
            let link = sections.section(SectionIndex(h.sh_link(LE) as usize));
            if link.map(|s| s.sh_type(LE)) != Ok(elf::SHT_STRTAB) {
                return Err(Malformed::NoStrtab(name().into()));
            }
        }
    }
    let symbols: Symbols<'_> = sections
        .symbols(LE, data, elf::SHT_SYMTAB)
        .map_err(Malformed::BadSymtab)?;
    // Which sections already have their relocations (the index of the
    // relocation section): one section each, so no relocation section can
    // patch another's code and leave its own target unrelocated.
    let mut relocated: alloc::vec::Vec<Option<usize>> = alloc::vec![None; sections.len()];
    for (i, h) in sections
        .iter()
        .enumerate()
        .filter(|(_, h)| h.sh_type(LE) == elf::SHT_RELA)
    {
        let Some(symtab) = symtab else {
            return Err(Malformed::NoSymtab(name_of(h).into()));
        };
        let rela = RelaSection {
            index: i,
            header: h,
            nsyms: symbols.len(),
            symtab,
        };
        relocations(sections, names, rela, data, &mut relocated)?;
    }
    // Each entry point's symbols, found in one pass over the table: (the
    // first, whether there is a second).
    let strings = symtab
        .and_then(|i| sections.section(SectionIndex(i)).ok())
        .and_then(|h| sections.section(SectionIndex(h.sh_link(LE) as usize)).ok())
        .and_then(|h| h.data(LE, data).ok())
        .map_or(Strings(&[]), Strings);
    let mut found: [Option<(SymbolIndex, bool)>; 2] = [None; 2];
    for (index, sym) in symbols.symbols().iter().enumerate() {
        if let Some(i) = ENTRY_POINTS
            .iter()
            .position(|entry| strings.is(sym.st_name(LE), entry.as_bytes()))
        {
            found[i] = Some(found[i].map_or((SymbolIndex(index), false), |(first, _)| (first, true)));
        }
    }
    let mut entries = [None; 2];
    for ((entry, found), slot) in ENTRY_POINTS.into_iter().zip(found).zip(&mut entries) {
        let Some((index, twice)) = found else { continue };
        if twice {
            return Err(Malformed::Entry(entry, BadEntry::Twice));
        }
        let sym = symbols.symbol(index).map_err(Malformed::BadSymtab)?;
        entry_point(sections, sym).map_err(|why| Malformed::Entry(entry, why))?;
        *slot = Some(index);
    }
    Ok(entries)
}

/// A string table's bytes, to compare names in place: through the ELF
/// reader, each name is first searched for its end, and for every section
/// and symbol of a module that was most of this check's instructions.
#[derive(Clone, Copy)]
struct Strings<'d>(&'d [u8]);

impl<'d> Strings<'d> {
    /// The bytes from `offset` to the end of the table.
    fn at(self, offset: u32) -> &'d [u8] {
        self.0.get(offset as usize..).unwrap_or_default()
    }

    /// Whether the name at `offset` starts with `prefix`.
    fn starts_with(self, offset: u32, prefix: &[u8]) -> bool {
        self.at(offset).starts_with(prefix)
    }

    /// Whether the name at `offset` is `name` (as the reader would read it:
    /// up to a NUL). Byte by byte: most names differ in their first.
    fn is(self, offset: u32, name: &[u8]) -> bool {
        let mut rest = self.at(offset).iter();
        name.iter().all(|b| rest.next() == Some(b)) && rest.next() == Some(&0)
    }

    /// Whether the names at `a` and `b` are the same, as the reader would
    /// read them: NUL-terminated, UTF-8.
    fn same(self, a: u32, b: u32) -> bool {
        let (a, b) = (self.at(a), self.at(b));
        match a.iter().zip(b).position(|(x, y)| x != y || *x == 0) {
            Some(len) => a[len] == 0 && b[len] == 0 && core::str::from_utf8(&a[..len]).is_ok(),
            None => false,
        }
    }
}

/// A section the loader places: its `sh_addralign` is 0 or 1 (none) or a
/// power of two, as the ELF spec requires (the layout rounds offsets up to
/// it), and code is at least 4-aligned, so every instruction is. `name`
/// names it in a refusal.
fn alignment<'n>(h: &elf::SectionHeader64<LE>, name: impl FnOnce() -> &'n str) -> Result<(), Malformed> {
    let align = h.sh_addralign(LE);
    if align > 1 && !align.is_power_of_two() {
        return Err(Malformed::OddAlignment(name().into(), align));
    }
    if h.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) != 0 && align < 4 {
        return Err(Malformed::UnalignedCode(name().into(), align));
    }
    Ok(())
}

/// A table section of `size`-byte entries: whole entries, aligned. `name`
/// names it in a refusal.
fn entries<'n>(
    h: &elf::SectionHeader64<LE>,
    name: impl FnOnce() -> &'n str,
    size: u64,
    what: &'static str,
) -> Result<u64, Malformed> {
    let (entsize, bytes) = (h.sh_entsize(LE), h.sh_size(LE));
    if entsize != size {
        return Err(Malformed::EntrySize {
            section: name().into(),
            entsize,
            want: size,
            what,
        });
    }
    if !bytes.is_multiple_of(size) {
        return Err(Malformed::PartialEntry {
            section: name().into(),
            bytes,
            what,
        });
    }
    if !h.sh_offset(LE).is_multiple_of(8) {
        return Err(Malformed::UnalignedTable(name().into()));
    }
    Ok(bytes / size)
}

/// A section's name as the reader reads it (`?` if it cannot).
fn section_name<'d>(sections: &Sections<'d>, h: &elf::SectionHeader64<LE>) -> &'d str {
    sections
        .section_name(LE, h)
        .ok()
        .and_then(|n| core::str::from_utf8(n).ok())
        .unwrap_or("?")
}

/// A RELA section, with what checking it needs to know.
struct RelaSection<'h> {
    /// Its index.
    index: usize,
    header: &'h elf::SectionHeader64<LE>,
    /// Symbols in the symbol table.
    nsyms: usize,
    /// The symbol table's index.
    symtab: usize,
}

/// A RELA section: whole entries, for the symbol table, patching a section
/// that is loaded, the only one patching it and named after it, naming
/// symbols that exist. `relocated` holds, for each section, the relocation
/// section seen for it so far.
fn relocations(
    sections: &Sections<'_>,
    names: Strings<'_>,
    rela: RelaSection<'_>,
    data: &[u8],
    relocated: &mut [Option<usize>],
) -> Result<(), Malformed> {
    let h = rela.header;
    let name_of = |h| String::from(section_name(sections, h));
    let name = || name_of(h);
    entries(h, || section_name(sections, h), RELA_SIZE, "relocation")?;
    if h.sh_link(LE) as usize != rela.symtab {
        return Err(Malformed::WrongSymtab(name(), h.sh_link(LE)));
    }
    let target = h.sh_info(LE) as usize;
    let patched = sections
        .section(SectionIndex(target))
        .ok()
        .filter(|_| target != 0)
        .ok_or_else(|| Malformed::NoTarget(name(), target))?;
    let alloc = patched.sh_flags(LE) & u64::from(elf::SHF_ALLOC) != 0;
    if !alloc || patched.sh_type(LE) != elf::SHT_PROGBITS {
        return Err(Malformed::TargetNotLoaded(name(), target));
    }
    if let Some(first) = relocated[target].replace(rela.index) {
        let first = sections
            .section(SectionIndex(first))
            .map_or_else(|_| "?".into(), name_of);
        return Err(Malformed::SecondRelocations {
            first,
            second: name(),
            target: name_of(patched),
        });
    }
    // Named `.rela` and the name of the section it patches.
    let offset = h.sh_name(LE);
    if !(names.starts_with(offset, b".rela") && names.same(offset.wrapping_add(5), patched.sh_name(LE))) {
        return Err(Malformed::Misnamed(name(), name_of(patched)));
    }
    let table: &[elf::Rela64<LE>] = h.data_as_array(LE, data).map_err(|_| Malformed::OutsideFile(name()))?;
    for (index, r) in table.iter().enumerate() {
        let symbol = r.r_sym(LE, false) as usize;
        if symbol >= rela.nsyms {
            return Err(Malformed::NoSuchSymbol {
                index,
                section: name(),
                symbol,
                symbols: rela.nsyms,
            });
        }
        if r.r_offset(LE) >= patched.sh_size(LE) {
            return Err(Malformed::PastSection {
                index,
                section: name(),
                offset: r.r_offset(LE),
            });
        }
    }
    Ok(())
}

/// An entry point: a 4-byte aligned instruction inside loaded code.
fn entry_point(sections: &Sections<'_>, sym: &elf::Sym64<LE>) -> Result<(), BadEntry> {
    let shndx = sym.st_shndx(LE);
    match shndx {
        elf::SHN_UNDEF => return Err(BadEntry::Undefined),
        elf::SHN_ABS => return Err(BadEntry::Absolute),
        i if i >= elf::SHN_LORESERVE => return Err(BadEntry::Special(i)),
        _ => {}
    }
    let section = sections
        .section(SectionIndex(shndx.into()))
        .map_err(|_| BadEntry::NoSection(shndx))?;
    let code = u64::from(elf::SHF_ALLOC | elf::SHF_EXECINSTR);
    if section.sh_flags(LE) & code != code || section.sh_type(LE) != elf::SHT_PROGBITS {
        return Err(BadEntry::NotCode(shndx));
    }
    let at = sym.st_value(LE);
    if !at.is_multiple_of(4) {
        return Err(BadEntry::Unaligned(at));
    }
    if at.checked_add(4).is_none_or(|end| end > section.sh_size(LE)) {
        return Err(BadEntry::PastEnd(at));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-byte ELF header and `shnum` zeroed section headers after it, the
    /// last one an empty string table for section names.
    fn header_with_sections(shnum: u16) -> alloc::vec::Vec<u64> {
        let mut h = [0u8; 64];
        h[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        h[16..18].copy_from_slice(&elf::ET_REL.to_le_bytes());
        h[18..20].copy_from_slice(&elf::EM_AARCH64.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[40..48].copy_from_slice(&64u64.to_le_bytes()); // e_shoff
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h[58..60].copy_from_slice(&64u16.to_le_bytes());
        h[60..62].copy_from_slice(&shnum.to_le_bytes());
        h[62..64].copy_from_slice(&(shnum - 1).to_le_bytes()); // e_shstrndx
        let mut words = alloc::vec![0u64; 8 + 8 * usize::from(shnum)];
        for (w, chunk) in words.iter_mut().zip(h.chunks(8)) {
            *w = u64::from_le_bytes(chunk.try_into().unwrap());
        }
        words[8 * usize::from(shnum)] = u64::from(elf::SHT_STRTAB) << 32;
        words
    }

    fn bytes(words: &[u64]) -> alloc::vec::Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn a_file_that_is_no_elf_is_refused_as_such() {
        let e = structure(&[]).unwrap_err();
        assert!(matches!(e, Malformed::NotElf(_)), "{e:?}");
        assert!(e.to_string().starts_with("not an ELF file: "), "{e}");
    }

    #[test]
    fn a_section_of_an_unknown_type_is_named() {
        // Section 1: type 0x70000001 (a processor-specific type).
        let mut words = header_with_sections(3);
        words[8 + 8] = 0x7000_0001 << 32;
        let data = bytes(&words);
        // The names' string table is empty: the section's name is unknown.
        let e = structure(&data).unwrap_err();
        assert_eq!(e, Malformed::UnknownType("?".into(), 0x7000_0001));
        assert_eq!(
            e.to_string(),
            "section ? has type 0x70000001, which the loader does not understand"
        );
    }

    /// In place, as the ELF reader would read them: up to a NUL, in the
    /// table, and (for `same`) UTF-8.
    #[test]
    fn names_compare_in_place_as_the_reader_reads_them() {
        let t = Strings(b"\0.rela.text.f\0.text.f\0.text.g\0\xff\0\xff\0.text.f");
        assert!(t.is(1, b".rela.text.f") && t.starts_with(1, b".rela"));
        assert!(!t.is(1, b".rela.text") && !t.is(1, b".rela.text.f.x") && !t.is(99, b""));
        assert!(t.is(0, b"") && !t.is(34, b".text.f"), "no NUL before the end: no name");
        assert!(t.same(6, 14) && !t.same(6, 22), ".text.f, .text.g");
        assert!(!t.same(30, 32), "the same bytes, but not UTF-8");
        assert!(!t.same(14, 34), "no NUL before the end");
    }

    #[test]
    fn entry_point_messages_name_the_entry() {
        let rows = [
            (BadEntry::Twice, "init_module is defined more than once"),
            (
                BadEntry::Undefined,
                "init_module is undefined: a module defines its own entry points",
            ),
            (
                BadEntry::Special(0xfff2),
                "init_module is in special section 0xfff2, not code",
            ),
            (BadEntry::Unaligned(0x6), "init_module at 0x6 is not 4-byte aligned"),
        ];
        for (why, text) in rows {
            assert_eq!(Malformed::Entry("init_module", why).to_string(), text);
        }
    }
}
