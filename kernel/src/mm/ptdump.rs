//! `ptdump`: the kernel's tables as runs, Linux `ptdump` style — one line per
//! run of leaves that are contiguous in both virtual and physical memory, of
//! one block size and identical attributes:
//!
//! `0xVASTART-0xVAEND SIZE pa=0xSTART-0xEND blk=1G|2M|4K n=N attr=normal|device ap=rw|ro x=kernel|never ng=0|1 cont=0|1`
//!
//! Pure: it reads leaves from `pgtable::visit`, so the host tests run it on
//! tables built in memory.

use core::fmt;

use pi::addr::PhysAddr;
use pi::pgtable::{self, MAIR_IDX_DEVICE, MAIR_IDX_NORMAL, TableAccess, Visited, level_size};

/// Descriptor bits that make two leaves different: AttrIndx, AP, nG, AF,
/// contiguous, PXN, UXN (the output address and the type bits aside).
const ATTRIBUTES: u64 = (7 << 2) | (3 << 6) | (1 << 10) | (1 << 11) | (1 << 52) | (1 << 53) | (1 << 54);

/// One run of like leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First virtual address.
    pub va: u64,
    /// First physical address.
    pub pa: PhysAddr,
    /// Bytes mapped.
    pub size: u64,
    /// Level of its leaves.
    pub level: usize,
    /// How many leaves.
    pub leaves: u64,
    /// A leaf's descriptor (the attributes are the same in all).
    pub raw: u64,
}

impl Run {
    /// Whether `leaf` continues this run.
    fn takes(&self, va: u64, pa: PhysAddr, level: usize, raw: u64) -> bool {
        level == self.level
            && va == self.va.wrapping_add(self.size)
            && pa.raw() == self.pa.raw() + self.size
            && raw & ATTRIBUTES == self.raw & ATTRIBUTES
    }
}

/// The runs of leaves that map `[va, va + len)` below `root`, in order.
pub fn runs<A: TableAccess + ?Sized>(mem: &A, root: PhysAddr, va: u64, len: u64, mut f: impl FnMut(Run)) {
    let mut current: Option<Run> = None;
    pgtable::visit(mem, root, va, len, &mut |v| {
        let Visited::Leaf { va, pa, level, raw } = v else {
            return;
        };
        match current.as_mut() {
            Some(run) if run.takes(va, pa, level, raw) => {
                run.size += level_size(level);
                run.leaves += 1;
            }
            _ => {
                if let Some(done) = current.take() {
                    f(done);
                }
                current = Some(Run {
                    va,
                    pa,
                    size: level_size(level),
                    level,
                    leaves: 1,
                    raw,
                });
            }
        }
    });
    if let Some(done) = current {
        f(done);
    }
}

/// `4K`, `2M`, `1G`, or a count of the largest unit that divides `bytes`.
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        match () {
            _ if b.is_multiple_of(1 << 30) => write!(f, "{}G", b >> 30),
            _ if b.is_multiple_of(1 << 20) => write!(f, "{}M", b >> 20),
            _ => write!(f, "{}K", b >> 10),
        }
    }
}

/// A leaf descriptor's attributes, as `ptdump` and `walk` print them:
/// `attr=normal ap=rw x=never ng=0 cont=0`.
pub struct Attributes(pub u64);

impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.0;
        let bit = |n: u32| (raw >> n) & 1;
        let attr = match (raw >> 2) & 7 {
            i if i == MAIR_IDX_NORMAL => "normal",
            i if i == MAIR_IDX_DEVICE => "device",
            _ => "other",
        };
        // AP[2] (bit 7) makes it read-only; AP[1] (bit 6) would open it to EL0.
        let ap = match (bit(7), bit(6)) {
            (0, 0) => "rw",
            (1, 0) => "ro",
            (0, _) => "rw+el0",
            _ => "ro+el0",
        };
        let x = if bit(53) == 1 { "never" } else { "kernel" };
        write!(f, "attr={attr} ap={ap} x={x} ng={} cont={}", bit(11), bit(52))
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x}-{:#x} {} pa={:#x}-{:#x} blk={} n={} {}",
            self.va,
            self.va.wrapping_add(self.size),
            Size(self.size),
            self.pa.raw(),
            self.pa.raw() + self.size,
            Size(level_size(self.level)),
            self.leaves,
            Attributes(self.raw)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pi::pgtable::host::HostTables;
    use pi::pgtable::{Attrs, Granularity, map};

    const BASE: u64 = 0xffff_0000_0000_0000;
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn dump(tables: &HostTables, root: PhysAddr) -> Vec<String> {
        let mut lines = Vec::new();
        runs(tables, root, BASE, 1 << 47, |r| lines.push(r.to_string()));
        lines
    }

    #[test]
    fn like_leaves_make_one_run_and_any_difference_starts_another() {
        let (mut tables, root) = HostTables::new(16);
        let mut m = |va, pa, len, attrs, g| map(&mut tables, root, va, PhysAddr::new(pa), len, attrs, g).unwrap();
        // 1 GiB + 4 MiB of data from 1 GiB: one 1G block, then two 2M blocks.
        m(BASE + GIB, GIB, GIB + 4 * MIB, Attrs::DATA, Granularity::LargestBlocks);
        // Three read-only pages, then one more page elsewhere in PA (a new run).
        m(
            BASE + 4 * GIB,
            0x4000_0000,
            0x3000,
            Attrs::RODATA,
            Granularity::PagesOnly,
        );
        m(
            BASE + 4 * GIB + 0x3000,
            0x5000_0000,
            0x1000,
            Attrs::RODATA,
            Granularity::PagesOnly,
        );
        // A device page.
        m(
            BASE + 5 * GIB,
            0x900_0000,
            0x1000,
            Attrs::DEVICE,
            Granularity::PagesOnly,
        );
        assert_eq!(
            dump(&tables, root),
            [
                "0xffff000040000000-0xffff000080000000 1G pa=0x40000000-0x80000000 blk=1G n=1 attr=normal ap=rw x=never ng=0 cont=0",
                "0xffff000080000000-0xffff000080400000 4M pa=0x80000000-0x80400000 blk=2M n=2 attr=normal ap=rw x=never ng=0 cont=0",
                "0xffff000100000000-0xffff000100003000 12K pa=0x40000000-0x40003000 blk=4K n=3 attr=normal ap=ro x=never ng=0 cont=0",
                "0xffff000100003000-0xffff000100004000 4K pa=0x50000000-0x50001000 blk=4K n=1 attr=normal ap=ro x=never ng=0 cont=0",
                "0xffff000140000000-0xffff000140001000 4K pa=0x9000000-0x9001000 blk=4K n=1 attr=device ap=rw x=never ng=0 cont=0",
            ]
        );
    }

    #[test]
    fn text_is_executable_and_a_permission_change_splits_a_run() {
        let (mut tables, root) = HostTables::new(16);
        let mut m = |va, pa, len, attrs| {
            map(
                &mut tables,
                root,
                va,
                PhysAddr::new(pa),
                len,
                attrs,
                Granularity::PagesOnly,
            )
            .unwrap()
        };
        m(BASE, 0x4020_0000, 0x2000, Attrs::TEXT);
        m(BASE + 0x2000, 0x4020_2000, 0x1000, Attrs::DATA);
        let lines = dump(&tables, root);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].ends_with("n=2 attr=normal ap=ro x=kernel ng=0 cont=0"),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("ap=rw x=never"), "{}", lines[1]);
    }
}
