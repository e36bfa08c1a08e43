//! Table pages in host memory, for tests of the mapper and of code built on
//! it: each page gets a made-up physical address.

extern crate std;

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use super::{FreedTable, Granule, TableAccess, TableAlloc, TableFree};
use crate::addr::PhysAddr;

/// Made-up physical address of the first host table page.
const TABLE_BASE: u64 = 0x7000_0000_0000;

/// Up to `limit` table pages of one granule on the host heap.
pub struct HostTables {
    pages: Vec<Box<[u64]>>,
    limit: usize,
    granule: Granule,
    /// Pages handed back, reused first by `alloc_table`.
    free: Vec<PhysAddr>,
    /// Every `free_table` call, in order.
    pub freed: Vec<FreedTable>,
}

impl HostTables {
    /// A root table plus room for `limit` more, in the kernel's granule;
    /// returns the tables and the root.
    pub fn new(limit: usize) -> (Self, PhysAddr) {
        Self::with_granule(crate::layout::GRANULE, limit)
    }

    /// The same in any granule.
    pub fn with_granule(granule: Granule, limit: usize) -> (Self, PhysAddr) {
        let mut tables = HostTables {
            pages: Vec::new(),
            limit: limit + 1,
            granule,
            free: Vec::new(),
            freed: Vec::new(),
        };
        let root = tables.alloc_table().expect("room for the root");
        (tables, root)
    }

    /// Index in `pages` of the page at `pa` (panics, on the host only, for a PA
    /// that was never handed out).
    fn index(&self, pa: PhysAddr) -> usize {
        ((pa.raw() - TABLE_BASE) / self.granule.page_size()) as usize
    }
}

// SAFETY: every PA handed out indexes a live boxed page (the granule's count
// of `u64`s, so 8-byte aligned) owned by `pages`, which nothing else can reach: the read pointer is
// derived from `&self`, the write pointer from `&mut self.pages[i]`, so each is
// valid for as long as the borrow of `self` it came from. `pages` is private and
// no reference into a page is ever handed out.
unsafe impl TableAccess for HostTables {
    fn granule(&self) -> Granule {
        self.granule
    }

    fn table_ptr(&self, pa: PhysAddr) -> *const u64 {
        self.pages[self.index(pa)].as_ptr()
    }

    fn table_ptr_mut(&mut self, pa: PhysAddr) -> *mut u64 {
        let i = self.index(pa);
        self.pages[i].as_mut_ptr()
    }
}

/// What a freed host page is filled with: table descriptors to a page that
/// was never handed out, so a walk through a freed page panics in `index`
/// instead of reading stale entries.
const POISON: u64 = 0x1000 | 0b11;

impl TableAlloc for HostTables {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        if let Some(pa) = self.free.pop() {
            let i = self.index(pa);
            self.pages[i].fill(0);
            return Some(pa);
        }
        if self.pages.len() == self.limit {
            return None;
        }
        self.pages.push(vec![0; self.granule.entries()].into_boxed_slice());
        Some(PhysAddr::new(
            TABLE_BASE + (self.pages.len() as u64 - 1) * self.granule.page_size(),
        ))
    }
}

impl TableFree for HostTables {
    /// Poisons the page, so that a walk still reaching it fails, and keeps
    /// it for the next `alloc_table`. A page freed twice is a bug: panics.
    fn free_table(&mut self, freed: FreedTable) {
        assert!(!self.free.contains(&freed.table), "{freed:x?} freed twice");
        let i = self.index(freed.table);
        self.pages[i].fill(POISON);
        self.free.push(freed.table);
        self.freed.push(freed);
    }
}

impl HostTables {
    /// Table pages handed out and not freed, the root among them.
    pub fn in_use(&self) -> usize {
        self.pages.len() - self.free.len()
    }
}
