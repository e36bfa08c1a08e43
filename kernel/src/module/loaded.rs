//! The modules loaded now: what `insmod` placed where, for the loader and
//! for everyone who asks about an address (backtraces, `sym`, `va2pa`) or
//! about the module running (a module's log line). Apart from the loader so
//! that its questions need not go through it: `abi` answers a module's call
//! from here, and `insmod` calls `abi`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::arch::lock::Mutex;
use crate::debug::backtrace::Symbol;
use pi::addr::PhysAddr;
use pi::layout::PAGE_SIZE;

use super::load;

/// A loaded module.
pub(super) struct Loaded {
    pub(super) name: String,
    pub(super) base: u64,
    pub(super) size: u64,
    pub(super) frames: PhysAddr,
    pub(super) pages: u64,
    pub(super) plt: usize,
    pub(super) slots: usize,
    pub(super) direct: usize,
    pub(super) exit: Option<u64>,
    /// Its functions, for backtraces and `sym`.
    pub(super) functions: Vec<load::Function>,
    /// Its sections: (name, offset from base, size).
    pub(super) sections: Vec<(String, u64, u64)>,
    /// Where its sections are, as `add-symbol-file` arguments (`-s NAME
    /// ADDRESS ...`), for the debug record.
    pub(super) symbol_file_args: String,
    /// Where its veneers start, from base.
    pub(super) plt_at: u64,
    /// Its text, rodata and data areas: (offset from base, size).
    pub(super) areas: [(u64, u64); 3],
    /// Set once the module took a contained fault (a description of it).
    pub(super) faulted: Option<String>,
}

pub(super) static MODULES: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

/// The name of the module loaded at `base`, if one is.
pub fn name_of(base: u64) -> Option<String> {
    MODULES.lock().iter().find(|m| m.base == base).map(|m| m.name.clone())
}

/// The function of `m` that `addr` is in.
pub(super) fn symbolize_in(m: &Loaded, addr: u64) -> Option<Symbol> {
    let offset = addr.checked_sub(m.base)?;
    let f = m
        .functions
        .iter()
        .find(|f| (f.offset..f.offset + f.size.max(1)).contains(&offset))?;
    Some(Symbol {
        name: f.name(),
        offset: offset - f.offset,
        section: m
            .sections
            .get(f.section)
            .map_or_else(|| "?".into(), |(name, ..)| name.clone()),
        module: Some(m.name.clone()),
    })
}

/// The module function an address is in. Never waits: the exception
/// handler calls it (`None` if the list is busy).
pub fn symbolize(addr: u64) -> Option<Symbol> {
    let modules = MODULES.try_lock()?;
    let m = modules.iter().find(|m| (m.base..m.base + m.size).contains(&addr))?;
    symbolize_in(m, addr)
}

/// Where module function `name` starts, in the first loaded module that has it.
pub fn find_function(name: &str) -> Option<u64> {
    MODULES
        .lock()
        .iter()
        .find_map(|m| m.functions.iter().find(|f| f.name() == name).map(|f| m.base + f.offset))
}

/// The virtual address of `pa` in each loaded module whose frames hold it.
pub fn aliases_of(pa: PhysAddr) -> Vec<u64> {
    MODULES
        .lock()
        .iter()
        .filter(|m| (m.frames.raw()..m.frames.raw() + m.pages * PAGE_SIZE).contains(&pa.raw()))
        .map(|m| m.base + (pa.raw() - m.frames.raw()))
        .collect()
}
