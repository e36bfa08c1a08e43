//! Laying out and linking a module: everything `insmod` does that is not
//! touching memory or page tables, so the host can test it, fuzz it and
//! compare it with what `rust-lld` makes of the same object.
//!
//! A module is an AArch64 ELF relocatable object. Its allocated sections go
//! into three page-aligned areas, in this order: text (`r-x`, the PLT veneers
//! after it), rodata (`r--`), data and bss (`rw-`). [`Module::parse`] checks
//! the file and fixes the layout, so the caller knows how much memory to take
//! before anything is written; [`Module::link`] fills an image of that size for
//! a chosen base address. Either fails with a [`LoadError`] and no other
//! effect.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{
    LittleEndian, Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex, SectionKind,
    SymbolIndex, SymbolSection,
};

use super::a53;
use super::check::Malformed;
use super::plt::{self, Branch, Plt, PltError};
use super::reloc::{self, RelocError, types};
use super::scan::{self, Privileged};

/// Page size of the module areas: the kernel's, since each area is mapped
/// with its own permissions.
pub const PAGE: u64 = pi::layout::PAGE_SIZE;

/// Largest module image we lay out (sections, veneers and padding): it goes
/// in contiguous frames, not in the heap. Only [`MAX_FILE`] bytes of it can
/// come from the file; the rest is bss (and veneers and padding).
pub const MAX_SIZE: u64 = 16 << 20;

/// Largest module file `insmod` copies ([`Aligned::try_new`]). The copy lives
/// in the kernel heap, 4 MiB under a buddy allocator: one block can be at
/// most half of it, and the kernel's own blocks take from one half, so a
/// quarter is what a copy can count on. A larger file is refused by name
/// rather than panicking the kernel when the heap runs out.
pub const MAX_FILE: usize = 1 << 20;

const _: () = assert!(MAX_FILE as u64 <= MAX_SIZE);

/// Why a module file cannot be loaded. Sections and symbols are named as
/// the file names them (`?` if it does not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The file (this many bytes) is larger than [`MAX_FILE`].
    FileTooLarge(usize),
    /// The kernel heap cannot hold a copy of the file (this many bytes).
    HeapFull(usize),
    /// The file's structure, found by `module::check`.
    Malformed(Malformed),
    /// An ELF file, but not an AArch64 relocatable object.
    NotRelocatable,
    /// A section with contents past the end of the file.
    Truncated(String),
    /// A section aligned to more than a page (to this many bytes).
    OverAligned(String, u64),
    /// The image would be larger than [`MAX_SIZE`].
    TooLarge,
    /// No allocated sections.
    NothingToLoad,
    /// The ELF reader refused something the checks let through.
    Elf(object::read::Error),
    /// The image given to [`Module::link`] is not [`Module::size`] bytes.
    ImageSize {
        /// Its size.
        got: usize,
        /// The module's.
        want: u64,
    },
    /// A relocation in this section that is not an ELF one.
    NotElfRelocation(String),
    /// A relocation with no symbol.
    NoSymbol {
        /// Its type.
        r_type: u32,
        /// The section it patches.
        section: String,
    },
    /// A symbol defined in a section that is not loaded.
    NotLoaded {
        /// The section whose relocation refers to it.
        section: String,
        /// The symbol.
        symbol: String,
    },
    /// A symbol neither the module nor the kernel defines.
    UndefinedSymbol(String),
    /// A symbol in a special section (common, or a reserved index).
    UnusableSection(String),
    /// A relocation whose field runs past the end of its section.
    PastSection {
        /// The relocation's offset in the section.
        offset: u64,
        /// The section.
        section: String,
    },
    /// A relocation that cannot be applied.
    Relocation {
        /// Why.
        error: RelocError,
        /// The section it patches.
        section: String,
        /// Its symbol.
        symbol: String,
    },
    /// An instruction a module may not contain (`module::scan`).
    Privileged {
        /// The code section it is in.
        section: String,
        /// Its offset in that section.
        offset: u64,
        /// What it is.
        what: Privileged,
    },
    /// Cortex-A53 erratum 843419's sequence (`module::a53`), starting at
    /// this offset in this code section: an `adrp` in a page's last two
    /// words whose page `adr` cannot reach (the loader makes the others
    /// `adr`s).
    A53Erratum {
        /// The code section.
        section: String,
        /// The `adrp`'s offset in it.
        offset: u64,
    },
    /// A branch (CALL26, JUMP26) to a kernel export with an addend: it
    /// would land inside the export, not at its start.
    BranchAddend {
        /// The section it patches.
        section: String,
        /// The branch's offset in that section.
        offset: u64,
        /// The export.
        symbol: String,
        /// The addend.
        addend: i64,
    },
    /// A branch out of reach that no veneer can help.
    Veneer {
        /// Why.
        error: PltError,
        /// The section it patches.
        section: String,
        /// Its symbol.
        symbol: String,
    },
}

impl From<Malformed> for LoadError {
    fn from(m: Malformed) -> Self {
        LoadError::Malformed(m)
    }
}

impl From<object::read::Error> for LoadError {
    fn from(e: object::read::Error) -> Self {
        LoadError::Elf(e)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError::*;
        match self {
            FileTooLarge(bytes) => write!(
                f,
                "the file is {bytes} bytes; a module file is at most {} KiB (it is copied into the kernel heap)",
                MAX_FILE >> 10
            ),
            HeapFull(bytes) => write!(f, "the kernel heap cannot hold a copy of the file ({bytes} bytes) now"),
            Malformed(m) => m.fmt(f),
            NotRelocatable => write!(f, "not an AArch64 relocatable object"),
            Truncated(section) => write!(f, "section {section} lies outside the file (truncated?)"),
            OverAligned(section, align) => write!(f, "section {section} wants {align}-byte alignment (at most a page)"),
            TooLarge => write!(f, "larger than {} MiB", MAX_SIZE >> 20),
            NothingToLoad => write!(f, "nothing to load: no allocated sections"),
            Elf(e) => e.fmt(f),
            ImageSize { got, want } => write!(f, "image is {got:#x} bytes, not {want:#x}"),
            NotElfRelocation(section) => write!(f, "a non-ELF relocation in {section}"),
            NoSymbol { r_type, section } => write!(f, "relocation type {r_type} without a symbol in {section}"),
            NotLoaded { section, symbol } => {
                write!(f, "{section} refers to {symbol}, which is not in a loaded section")
            }
            UndefinedSymbol(symbol) => write!(f, "undefined symbol {symbol}"),
            UnusableSection(symbol) => write!(f, "symbol {symbol} has no usable section"),
            PastSection { offset, section } => write!(f, "relocation at {offset:#x} runs past the end of {section}"),
            Relocation { error, section, symbol } => write!(f, "{error} in {section} (against {symbol})"),
            Veneer { error, section, symbol } => write!(f, "{error} in {section} (against {symbol})"),
            Privileged { section, offset, what } => write!(f, "{section}+{offset:#x}: {what}"),
            A53Erratum { section, offset } => write!(
                f,
                "{section}+{offset:#x}: an adrp in a page's last two words starts Cortex-A53 erratum 843419's sequence, and its page is beyond adr's 1 MiB"
            ),
            BranchAddend {
                section,
                offset,
                symbol,
                addend,
            } => write!(
                f,
                "{section}+{offset:#x}: a branch to kernel export {symbol}{}{:#x} lands inside it, not at its start",
                if *addend < 0 { '-' } else { '+' },
                addend.unsigned_abs()
            ),
        }
    }
}

/// A module's bytes, copied to 8-byte alignment (the ELF reader wants aligned
/// headers; files in a cpio archive are only 4-byte aligned).
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    /// A copy of `bytes`, however large: for the host's tests and tools. The
    /// kernel copies a module file with [`Aligned::try_new`].
    pub fn new(bytes: &[u8]) -> Self {
        Self::copy(Vec::with_capacity(bytes.len().div_ceil(8)), bytes)
    }

    /// A copy of module file `bytes`, if it is at most [`MAX_FILE`] bytes and
    /// the heap can hold it.
    ///
    /// # Errors
    /// Nothing was allocated then:
    /// - [`LoadError::FileTooLarge`]: `bytes` is over [`MAX_FILE`].
    /// - [`LoadError::HeapFull`]: the heap has no room for the copy.
    pub fn try_new(bytes: &[u8]) -> Result<Self, LoadError> {
        if bytes.len() > MAX_FILE {
            return Err(LoadError::FileTooLarge(bytes.len()));
        }
        let mut words = Vec::new();
        words
            .try_reserve_exact(bytes.len().div_ceil(8))
            .map_err(|_| LoadError::HeapFull(bytes.len()))?;
        Ok(Self::copy(words, bytes))
    }

    /// `bytes` appended to `words`, empty with room for all of them.
    fn copy(mut words: Vec<u64>, bytes: &[u8]) -> Self {
        let (whole, tail) = bytes.split_at(bytes.len() / 8 * 8);
        // The kernel's target may not assume that an unaligned load works:
        // from a slice of unknown alignment, every copy (`memcpy` too) goes
        // a byte at a time, and that was a tenth of loading hello.ko (7,600
        // instructions for its 2,752 bytes). Files in a cpio archive are
        // 4-byte aligned: those are copied by 32-bit halves (1,500).
        match object::pod::slice_from_all_bytes::<u32>(whole) {
            Ok(halves) => words.extend(
                halves
                    .chunks_exact(2)
                    .map(|h| u64::from(u32::from_le(h[0])) | (u64::from(u32::from_le(h[1])) << 32)),
            ),
            Err(()) => words.extend(
                whole
                    .chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))),
            ),
        }
        if !tail.is_empty() {
            let mut last = [0u8; 8];
            last[..tail.len()].copy_from_slice(tail);
            words.push(u64::from_le_bytes(last));
        }
        Aligned {
            words,
            len: bytes.len(),
        }
    }

    /// The bytes, 8-byte aligned.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` owns at least `len` initialised bytes (little-endian
        // words hold them in file order); u8 has no alignment or validity needs.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// The three areas of a module image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Code and PLT veneers: `r-x`.
    Text,
    /// Read-only data: `r--`.
    Rodata,
    /// Data and bss: `rw-`, never executable.
    Data,
}

/// An allocated section's place in the image.
#[derive(Clone, Copy, Debug)]
pub struct Placed {
    /// Its index in the ELF file.
    pub index: SectionIndex,
    /// Offset from the image base.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A checked module with its layout fixed.
pub struct Module<'d> {
    file: ElfFile64<'d, LittleEndian>,
    placed: Vec<Placed>,
    /// Sizes of the text (with the veneers), rodata and data areas, each a
    /// multiple of [`PAGE`].
    areas: [u64; 3],
    plt_at: u64,
    /// Veneer slots reserved, counted as Linux counts them.
    pub plt_slots: usize,
    /// The symbols of `init_module` and `exit_module`, if defined (found by
    /// `module::check`, which made sure each is loaded code).
    entries: [Option<SymbolIndex>; 2],
}

/// A function defined in a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// Its symbol, as the file names it (mangled): demangled only when
    /// asked ([`Function::name`]), since most of a module's functions never
    /// are, and demangling them all was a twentieth of loading hello.ko.
    pub symbol: String,
    /// Where it starts, from the module image's base.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
    /// The section it is in: its place in [`Module::sections`].
    pub section: usize,
}

impl Function {
    /// Its name, demangled, without the hash.
    pub fn name(&self) -> String {
        format!("{:#}", rustc_demangle::demangle(&self.symbol))
    }
}

/// What linking did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Linked {
    /// Veneers written.
    pub plt: usize,
    /// Branches that reached their target without one.
    pub direct: usize,
    /// Address of `init_module`, if the module has one.
    pub init: Option<u64>,
    /// Address of `exit_module`, if the module has one.
    pub exit: Option<u64>,
}

fn area_of(kind: SectionKind) -> Option<Area> {
    match kind {
        SectionKind::Text => Some(Area::Text),
        SectionKind::ReadOnlyData | SectionKind::ReadOnlyString | SectionKind::ReadOnlyDataWithRel => {
            Some(Area::Rodata)
        }
        SectionKind::Data | SectionKind::UninitializedData => Some(Area::Data),
        _ => None,
    }
}

/// Refuses `code`, the bytes of section `name()`, if it holds an
/// instruction a module may not contain. (Names are read only for
/// errors: each is a search for its end in the string table.)
fn scan_code<'n>(name: impl FnOnce() -> &'n str, code: &[u8]) -> Result<(), LoadError> {
    match scan::first_privileged(code) {
        Some((offset, _, what)) => Err(LoadError::Privileged {
            section: name().into(),
            offset,
            what,
        }),
        None => Ok(()),
    }
}

/// `x` rounded up to `align`, within [`MAX_SIZE`].
fn round_up(x: u64, align: u64) -> Result<u64, LoadError> {
    x.checked_next_multiple_of(align)
        .filter(|&v| v <= MAX_SIZE)
        .ok_or(LoadError::TooLarge)
}

impl<'d> Module<'d> {
    /// Checks `data` (8-byte aligned, see [`Aligned`]) and lays it out.
    ///
    /// # Errors
    /// Why the file cannot be a module:
    /// - [`LoadError::Malformed`]: not ELF, or a structure the loader refuses
    ///   (see `module::check`).
    /// - [`LoadError::NotRelocatable`]: not an AArch64 relocatable object.
    /// - [`LoadError::Truncated`]: a section outside the file.
    /// - [`LoadError::OverAligned`]: an alignment above a page.
    /// - [`LoadError::TooLarge`]: the image would exceed [`MAX_SIZE`].
    /// - [`LoadError::NothingToLoad`]: no allocated sections.
    /// - [`LoadError::Privileged`]: code holds an instruction a module may
    ///   not contain (`module::scan`).
    /// - [`LoadError::Elf`]: the ELF reader refused what the checks passed.
    pub fn parse(data: &'d [u8]) -> Result<Self, LoadError> {
        let entries = super::check::structure(data)?;
        let file = ElfFile64::<LittleEndian>::parse(data).map_err(Malformed::NotElf)?;
        let header = file.elf_header();
        if header.e_type(LittleEndian) != elf::ET_REL || header.e_machine(LittleEndian) != elf::EM_AARCH64 {
            return Err(LoadError::NotRelocatable);
        }
        // Every section with contents must lie inside the file, so a cut-off
        // file fails here rather than losing relocations silently.
        for s in file.sections() {
            if s.elf_section_header().sh_type(LittleEndian) != elf::SHT_NOBITS && s.data().is_err() {
                return Err(LoadError::Truncated(s.name().unwrap_or("?").into()));
            }
        }

        let mut ends = [0u64; 3];
        let mut placed: [Vec<Placed>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for s in file.sections() {
            // Empty sections are placed too: symbols may be defined in them.
            let Some(area) = area_of(s.kind()) else { continue };
            let align = s.align().max(1);
            if align > PAGE {
                return Err(LoadError::OverAligned(s.name().unwrap_or("?").into(), align));
            }
            let offset = round_up(ends[area as usize], align)?;
            ends[area as usize] = offset
                .checked_add(s.size())
                .filter(|&e| e <= MAX_SIZE)
                .ok_or(LoadError::TooLarge)?;
            placed[area as usize].push(Placed {
                index: s.index(),
                offset,
                size: s.size(),
            });
        }

        // No instruction in the code that nothing at EL1 could pre-empt or
        // undo (`module::scan`), before anything is copied; `link` scans
        // again once relocations have patched it.
        for s in file.sections() {
            if s.elf_section_header().sh_flags(LittleEndian) & u64::from(elf::SHF_EXECINSTR) != 0
                && area_of(s.kind()).is_some()
            {
                scan_code(|| s.name().unwrap_or("?"), s.data()?)?;
            }
        }

        // Veneers go after the text, as many as Linux would count. Only
        // branches can need one: `plt::count` counts nothing else, and
        // another type never sorts next to a branch as its duplicate.
        let mut plt_slots = 0usize;
        let mut branches: Vec<Branch> = Vec::new();
        for p in &placed[Area::Text as usize] {
            let section = file.section_by_index(p.index)?;
            branches.clear();
            branches.extend(section.relocations().filter_map(|(_, r)| {
                let (RelocationFlags::Elf { r_type }, RelocationTarget::Symbol(sym)) = (r.flags(), r.target()) else {
                    return None;
                };
                if !matches!(r_type, types::CALL26 | types::JUMP26) {
                    return None;
                }
                let defined_in = file.symbol_by_index(sym).ok().and_then(|s| s.section_index());
                Some(Branch {
                    r_type,
                    symbol: sym.0 as u32,
                    addend: r.addend(),
                    same_section: defined_in == Some(p.index),
                })
            }));
            plt_slots += plt::count(&mut branches);
        }
        let plt_at = round_up(ends[0], 16)?;
        let veneers = (plt_slots as u64)
            .checked_mul(plt::VENEER_SIZE)
            .ok_or(LoadError::TooLarge)?;
        let areas = [
            round_up(plt_at.checked_add(veneers).ok_or(LoadError::TooLarge)?, PAGE)?,
            round_up(ends[1], PAGE)?,
            round_up(ends[2], PAGE)?,
        ];
        match areas.iter().sum::<u64>() {
            0 => return Err(LoadError::NothingToLoad),
            total if total > MAX_SIZE => return Err(LoadError::TooLarge),
            _ => {}
        }
        let bases = [0, areas[0], areas[0] + areas[1]];
        let placed = placed
            .into_iter()
            .enumerate()
            .flat_map(|(area, list)| {
                list.into_iter().map(move |p| Placed {
                    offset: bases[area] + p.offset,
                    ..p
                })
            })
            .collect();
        Ok(Module {
            file,
            placed,
            areas,
            plt_at,
            plt_slots,
            entries,
        })
    }

    /// Bytes of the whole image.
    pub fn size(&self) -> u64 {
        self.areas.iter().sum()
    }

    /// (offset, size, area) of each area in the image, in order.
    pub fn areas(&self) -> [(u64, u64, Area); 3] {
        let [text, rodata, data] = self.areas;
        [
            (0, text, Area::Text),
            (text, rodata, Area::Rodata),
            (text + rodata, data, Area::Data),
        ]
    }

    /// Where the PLT veneers start, from the image's base.
    pub fn plt_offset(&self) -> u64 {
        self.plt_at
    }

    /// Every allocated section with its name and place.
    pub fn sections(&self) -> impl Iterator<Item = (&'d str, Placed)> + '_ {
        self.placed.iter().map(|p| {
            let name = self.file.section_by_index(p.index).ok().and_then(|s| s.name().ok());
            (name.unwrap_or("?"), *p)
        })
    }

    fn offset_of(&self, index: SectionIndex) -> Option<u64> {
        self.placed.iter().find(|p| p.index == index).map(|p| p.offset)
    }

    /// The module's functions, lowest first: for backtraces and `sym`.
    pub fn functions(&self) -> Vec<Function> {
        let mut functions: Vec<Function> = self
            .file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition())
            .filter_map(|s| {
                let index = s.section_index()?;
                let section = self.placed.iter().position(|p| p.index == index)?;
                let placed = self.placed[section];
                // st_size is the file's word: clamped to the section, so a
                // lookup (`offset + size`) stays inside the module.
                let size = s.size().min(placed.size.saturating_sub(s.address()));
                Some(Function {
                    symbol: s.name().ok()?.into(),
                    offset: placed.offset.checked_add(s.address())?,
                    size,
                    section,
                })
            })
            .collect();
        functions.sort_by_key(|f| f.offset);
        functions
    }

    /// Address of defined symbol `index` once the image is at `base`.
    fn address(&self, index: SymbolIndex, base: u64) -> Option<u64> {
        let s = self.file.symbol_by_index(index).ok()?;
        let offset = self.offset_of(s.section_index()?)?;
        Some(base.wrapping_add(offset).wrapping_add(s.address()))
    }

    /// Fills `image` (zeroed, [`Module::size`] bytes, to run at `base`):
    /// copies the sections and applies every relocation, importing undefined
    /// symbols through `import`. A branch that cannot reach its target goes
    /// through a veneer.
    ///
    /// # Errors
    /// The first relocation that cannot be applied, named with its section
    /// and symbol; `image` is then garbage and must not be used:
    /// - [`LoadError::ImageSize`]: `image` is not [`Module::size`] bytes.
    /// - [`LoadError::UndefinedSymbol`]: `import` does not know a symbol.
    /// - [`LoadError::NotLoaded`], [`LoadError::UnusableSection`]: a symbol
    ///   in a section that is not in the image.
    /// - [`LoadError::NotElfRelocation`], [`LoadError::NoSymbol`],
    ///   [`LoadError::PastSection`]: a relocation the loader cannot place.
    /// - [`LoadError::Relocation`]: a relocation that cannot be applied
    ///   (unsupported, out of range, misaligned).
    /// - [`LoadError::Veneer`]: a branch that even a veneer cannot reach.
    /// - [`LoadError::BranchAddend`]: a branch into the middle of an export.
    /// - [`LoadError::Privileged`]: relocated code holds an instruction a
    ///   module may not contain.
    /// - [`LoadError::Elf`]: the ELF reader refused what parsing passed.
    pub fn link(&self, image: &mut [u8], base: u64, import: impl Fn(&str) -> Option<u64>) -> Result<Linked, LoadError> {
        if image.len() as u64 != self.size() {
            return Err(LoadError::ImageSize {
                got: image.len(),
                want: self.size(),
            });
        }
        for p in &self.placed {
            let section = self.file.section_by_index(p.index)?;
            if section.kind() == SectionKind::UninitializedData {
                continue;
            }
            let bytes = section.data()?;
            let at = p.offset as usize;
            image[at..at + bytes.len()].copy_from_slice(bytes);
        }

        let mut linked = Linked::default();
        let mut plt = Plt::new(self.plt_at, self.plt_slots);
        // Each kernel symbol is imported once, however many relocations name it.
        let mut imported: Vec<Option<u64>> = alloc::vec![None; self.file.elf_symbol_table().len()];
        for p in &self.placed {
            let section = self.file.section_by_index(p.index)?;
            // Names are read only for errors (and imports): each is a
            // search for its end in a string table.
            let section_name = || String::from(section.name().unwrap_or("?"));
            for (offset, r) in section.relocations() {
                let RelocationFlags::Elf { r_type } = r.flags() else {
                    return Err(LoadError::NotElfRelocation(section_name()));
                };
                let RelocationTarget::Symbol(index) = r.target() else {
                    return Err(LoadError::NoSymbol {
                        r_type,
                        section: section_name(),
                    });
                };
                let symbol = self.file.symbol_by_index(index)?;
                let symbol_name = || match symbol.name() {
                    Ok(n) if !n.is_empty() => n,
                    _ => symbol
                        .section_index()
                        .and_then(|i| self.file.section_by_index(i).ok())
                        .and_then(|s| s.name().ok())
                        .unwrap_or("?"),
                };
                let target = match symbol.section() {
                    SymbolSection::Section(i) => {
                        let at = self.offset_of(i).ok_or_else(|| LoadError::NotLoaded {
                            section: section_name(),
                            symbol: symbol_name().into(),
                        })?;
                        base.wrapping_add(at).wrapping_add(symbol.address())
                    }
                    SymbolSection::Absolute => symbol.address(),
                    SymbolSection::Undefined => {
                        if matches!(r_type, types::CALL26 | types::JUMP26) && r.addend() != 0 {
                            return Err(LoadError::BranchAddend {
                                section: section_name(),
                                offset,
                                symbol: symbol_name().into(),
                                addend: r.addend(),
                            });
                        }
                        match imported[index.0] {
                            Some(address) => address,
                            None => {
                                let name = symbol_name();
                                let address = import(name).ok_or_else(|| LoadError::UndefinedSymbol(name.into()))?;
                                *imported[index.0].insert(address)
                            }
                        }
                    }
                    _ => return Err(LoadError::UnusableSection(symbol_name().into())),
                };
                let s_plus_a = target.wrapping_add_signed(r.addend());
                let width = if matches!(r_type, types::ABS64 | types::PREL64) {
                    8
                } else {
                    4
                };
                let start = offset
                    .checked_add(width)
                    .filter(|&end| end <= p.size)
                    .map(|_| (p.offset + offset) as usize)
                    .ok_or_else(|| LoadError::PastSection {
                        offset,
                        section: section_name(),
                    })?;
                let end = (p.offset + p.size) as usize;
                let place = base.wrapping_add(p.offset + offset);
                let mut result = reloc::apply(r_type, &mut image[start..end], place, s_plus_a);
                if matches!(r_type, types::CALL26 | types::JUMP26) {
                    if result.is_ok() {
                        linked.direct += 1;
                    } else if result == Err(RelocError::Overflow(r_type)) {
                        let veneer = plt
                            .veneer_to(image, base, s_plus_a)
                            .map_err(|error| LoadError::Veneer {
                                error,
                                section: section_name(),
                                symbol: symbol_name().into(),
                            })?;
                        linked.plt = plt.used();
                        result = reloc::apply(r_type, &mut image[start..end], place, veneer);
                    }
                }
                result.map_err(|error| LoadError::Relocation {
                    error,
                    section: section_name(),
                    symbol: symbol_name().into(),
                })?;
            }
        }
        // Relocations patch code too: scan what will run.
        for p in &self.placed {
            let section = self.file.section_by_index(p.index)?;
            if section.elf_section_header().sh_flags(LittleEndian) & u64::from(elf::SHF_EXECINSTR) != 0 {
                let at = p.offset as usize;
                let code = &image[at..at + p.size as usize];
                scan_code(|| section.name().unwrap_or("?"), code)?;
                if let Some(start) = a53::find(base.wrapping_add(p.offset), code) {
                    return Err(LoadError::A53Erratum {
                        section: section.name().unwrap_or("?").into(),
                        offset: start.wrapping_sub(base.wrapping_add(p.offset)),
                    });
                }
            }
        }
        let [init, exit] = self.entries.map(|entry| self.address(entry?, base));
        linked.init = init;
        linked.exit = exit;
        Ok(linked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the alignment of the file (4-byte aligned ones are copied
    /// by halves) and however its length ends.
    #[test]
    fn aligned_copy_keeps_the_bytes_from_any_alignment() {
        let words: Vec<u64> = (0..8u64)
            .map(|i| 0x0706_0504_0302_0100 + i * 0x0808_0808_0808_0808)
            .collect();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        for start in 0..8 {
            for len in 0..=bytes.len() - start {
                let file = &bytes[start..start + len];
                assert_eq!(Aligned::new(file).bytes(), file, "from {start}, {len} bytes");
            }
        }
    }

    #[test]
    fn aligned_copy_keeps_the_bytes() {
        let bytes: Vec<u8> = (0..13).collect();
        let a = Aligned::new(&bytes[1..]);
        assert_eq!(a.bytes(), &bytes[1..]);
        assert_eq!(a.bytes().as_ptr() as usize % 8, 0);
        let b = Aligned::try_new(&bytes[1..]).unwrap();
        assert_eq!(b.bytes(), &bytes[1..]);
        assert_eq!(b.bytes().as_ptr() as usize % 8, 0);
    }

    #[test]
    fn a_file_larger_than_the_heap_can_copy_is_refused_by_size() {
        let largest = alloc::vec![0xa5u8; MAX_FILE];
        assert_eq!(Aligned::try_new(&largest).unwrap().bytes(), &largest[..]);
        let larger = alloc::vec![0u8; MAX_FILE + 1];
        let why = Aligned::try_new(&larger).err().unwrap();
        assert_eq!(why, LoadError::FileTooLarge(MAX_FILE + 1));
        // The text users read (insmod prints it) stays as it was.
        assert_eq!(
            why.to_string(),
            format!(
                "the file is {} bytes; a module file is at most 1024 KiB (it is copied into the kernel heap)",
                MAX_FILE + 1
            )
        );
    }

    /// A 64-byte ELF header and nothing else: `e_type`, `e_machine` as given.
    fn bare_header(e_type: u16, e_machine: u16) -> Aligned {
        let mut h = [0u8; 64];
        h[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&e_machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
        h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        h[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        Aligned::new(&h)
    }

    #[test]
    fn an_object_with_nothing_to_load_is_refused() {
        let empty = bare_header(elf::ET_REL, elf::EM_AARCH64);
        assert_eq!(Module::parse(empty.bytes()).err(), Some(LoadError::NothingToLoad));
        let executable = bare_header(elf::ET_EXEC, elf::EM_AARCH64);
        assert_eq!(Module::parse(executable.bytes()).err(), Some(LoadError::NotRelocatable));
        let x86 = bare_header(elf::ET_REL, elf::EM_X86_64);
        assert_eq!(Module::parse(x86.bytes()).err(), Some(LoadError::NotRelocatable));
    }

    #[test]
    fn garbage_is_refused() {
        let nothing = Module::parse(&[]).err().unwrap();
        assert!(
            matches!(nothing, LoadError::Malformed(Malformed::NotElf(_))),
            "{nothing:?}"
        );
        assert!(nothing.to_string().starts_with("not an ELF file: "), "{nothing}");
        let a = Aligned::new(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        assert!(matches!(
            Module::parse(a.bytes()),
            Err(LoadError::Malformed(Malformed::NotElf(_)))
        ));
    }

    /// Every message, word for word: QEMU tests and users read them.
    #[test]
    fn messages_read_as_before() {
        let name = || String::from(".text.f");
        let rows: [(LoadError, &str); 12] = [
            (
                LoadError::Privileged {
                    section: ".text.command".into(),
                    offset: 8,
                    what: Privileged::DaifSet,
                },
                ".text.command+0x8: msr daifset masks interrupts, which no watchdog could then interrupt",
            ),
            (
                LoadError::BranchAddend {
                    section: name(),
                    offset: 0x10,
                    symbol: "splitmap_log".into(),
                    addend: 4,
                },
                ".text.f+0x10: a branch to kernel export splitmap_log+0x4 lands inside it, not at its start",
            ),
            (
                LoadError::BranchAddend {
                    section: name(),
                    offset: 0x10,
                    symbol: "splitmap_log".into(),
                    addend: -4,
                },
                ".text.f+0x10: a branch to kernel export splitmap_log-0x4 lands inside it, not at its start",
            ),
            (
                Malformed::Misnamed(".rela.text.g".into(), name()).into(),
                "section .rela.text.g relocates section .text.f; relocations for .text.f are named .rela.text.f",
            ),
            (LoadError::TooLarge, "larger than 16 MiB"),
            (
                LoadError::Truncated(name()),
                "section .text.f lies outside the file (truncated?)",
            ),
            (
                LoadError::OverAligned(name(), 0x2000),
                "section .text.f wants 8192-byte alignment (at most a page)",
            ),
            (
                LoadError::UndefinedSymbol("splitmap_print".into()),
                "undefined symbol splitmap_print",
            ),
            (
                LoadError::PastSection {
                    offset: 0x10,
                    section: name(),
                },
                "relocation at 0x10 runs past the end of .text.f",
            ),
            (
                LoadError::Relocation {
                    error: RelocError::Unsupported(999),
                    section: name(),
                    symbol: "x".into(),
                },
                "unsupported relocation type 999 in .text.f (against x)",
            ),
            (
                LoadError::Veneer {
                    error: PltError::OutOfReach(0x1000),
                    section: name(),
                    symbol: "x".into(),
                },
                "0x1000 is beyond a veneer's reach in .text.f (against x)",
            ),
            (
                Malformed::NoSuchSymbol {
                    index: 3,
                    section: ".rela.text".into(),
                    symbol: 40,
                    symbols: 12,
                }
                .into(),
                "relocation 3 in .rela.text names symbol 40; there are 12",
            ),
        ];
        for (e, text) in rows {
            assert_eq!(e.to_string(), text, "{e:?}");
        }
    }
}
