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

// SAFETY: every PA handed out indexes a live boxed page owned by `pages`; tests
// hold no references into them while the mapper runs.
unsafe impl TableAccess for HostTables {
    fn table_ptr(&self, pa: PhysAddr) -> *mut u64 {
        let index = ((pa.raw() - TABLE_BASE) / TABLE_SIZE) as usize;
        self.pages[index].as_ptr() as *mut u64
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
