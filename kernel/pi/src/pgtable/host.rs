//! Table pages in host memory, for tests of the mapper and of code built on
//! it: each page gets a made-up physical address.

extern crate std;

use std::boxed::Box;
use std::vec::Vec;

use super::{ENTRIES, TABLE_SIZE, TableAccess, TableAlloc};
use crate::addr::PhysAddr;

/// Made-up physical address of the first host table page.
const TABLE_BASE: u64 = 0x7000_0000_0000;

/// Up to `limit` table pages on the host heap.
pub struct HostTables {
    pages: Vec<Box<[u64; ENTRIES]>>,
    limit: usize,
}

impl HostTables {
    /// A root table plus room for `limit` more; returns the tables and the root.
    pub fn new(limit: usize) -> (Self, PhysAddr) {
        let mut tables = HostTables {
            pages: Vec::new(),
            limit: limit + 1,
        };
        let root = tables.alloc_table().expect("room for the root");
        (tables, root)
    }
}

impl HostTables {
    /// Index in `pages` of the page at `pa` (panics, on the host only, for a PA
    /// that was never handed out).
    fn index(pa: PhysAddr) -> usize {
        ((pa.raw() - TABLE_BASE) / TABLE_SIZE) as usize
    }
}

// SAFETY: every PA handed out indexes a live boxed page (512 `u64`s, so 8-byte
// aligned) owned by `pages`, which nothing else can reach: the read pointer is
// derived from `&self`, the write pointer from `&mut self.pages[i]`, so each is
// valid for as long as the borrow of `self` it came from. `pages` is private and
// no reference into a page is ever handed out.
unsafe impl TableAccess for HostTables {
    fn table_ptr(&self, pa: PhysAddr) -> *const u64 {
        self.pages[Self::index(pa)].as_ptr()
    }

    fn table_ptr_mut(&mut self, pa: PhysAddr) -> *mut u64 {
        self.pages[Self::index(pa)].as_mut_ptr()
    }
}

impl TableAlloc for HostTables {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        if self.pages.len() == self.limit {
            return None;
        }
        self.pages.push(Box::new([0; ENTRIES]));
        Some(PhysAddr::new(TABLE_BASE + (self.pages.len() as u64 - 1) * TABLE_SIZE))
    }
}
