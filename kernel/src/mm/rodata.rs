//! `rodata=full`: make the linear alias of the kernel's text and rodata
//! read-only too.
//!
//! The image mapping already protects text (`r-x`) and rodata (`r--`), but the
//! same bytes are reachable through the linear map, which is one writable
//! 1 GiB block by default. Linux's default (`rodata=full`) maps the whole
//! linear map with pages to protect that alias; splitmap keeps pure blocks by
//! default and, when asked, splits only the block that covers the alias. The
//! cost is the table pages `layout` reports.

use pi::addr::{KimgVirt, PhysAddr};
use pi::pgtable::{self, Attrs, Entry, MapCounts, level_size, table_descriptor};
use spin::Once;

use super::tables;
use crate::arch::cpu;

static SPLIT: Once<MapCounts> = Once::new();

/// The longest contiguous run of any granule (128 pages of 16 KiB).
const MAX_RUN: usize = 128;

/// What the split cost, if `rodata=full` was applied.
pub fn split_cost() -> Option<MapCounts> {
    SPLIT.get().copied()
}

/// `[start, end)` physical of the image's text and rodata.
pub fn protected_range() -> (PhysAddr, PhysAddr) {
    let [text, rodata, _] = pi::boot::image_segments();
    (KimgVirt::new(text.start).to_phys(), KimgVirt::new(rodata.end).to_phys())
}

/// Splits the linear-map blocks covering the alias of text and rodata and maps
/// that alias read-only. Must run while nothing else touches the linear map
/// (boot, before the heap and frames are handed out): each split passes
/// through a moment where the block is unmapped (break-before-make).
pub fn protect_image_alias() {
    let (start, end) = protected_range();
    let mut total = MapCounts::default();
    let mut va = start.to_linear().raw();
    let alias_end = end.to_linear().raw();
    // One hold of the tables' lock for the whole split.
    tables::locked(|tables, root| {
        while va < alias_end {
            let walk = pgtable::walk(tables, root, va);
            let (Some(t), Some(step)) = (walk.translation, walk.steps().last().copied()) else {
                panic!("rodata=full: the image alias at {va:#x} is not in the linear map");
            };
            let block_va = va & !(t.size - 1);
            let chunk_end = alias_end.min(block_va + t.size);
            // An entry in a contiguous run cannot change alone: the run must
            // first stop being one, through break-before-make of all of it.
            let (first, n) = pgtable::run_of(tables, step.table, step.index, t.level);
            if n > 1 {
                let mut raws = [0u64; MAX_RUN];
                for (i, raw) in raws.iter_mut().enumerate().take(n) {
                    *raw = pgtable::entry(tables, step.table, first + i);
                    pgtable::set_entry(tables, step.table, first + i, 0);
                }
                cpu::flush_tlb();
                for (i, raw) in raws.iter().enumerate().take(n) {
                    pgtable::set_entry(tables, step.table, first + i, raw & !pgtable::CONTIGUOUS);
                }
                cpu::flush_tlb();
            }
            let step = pgtable::WalkStep {
                raw: pgtable::entry(tables, step.table, step.index),
                ..step
            };
            if t.level == pgtable::LAST_LEVEL {
                // Pages already: a permission change needs no break-before-make.
                let pa = t.pa.align_down(t.size);
                pgtable::set_entry(
                    tables,
                    step.table,
                    step.index,
                    pgtable::leaf_descriptor(pa, t.level, Attrs::RODATA),
                );
            } else {
                let block_pa = t.pa.align_down(t.size);
                let (table, counts) = pgtable::build_split(
                    tables,
                    t.level,
                    block_va,
                    block_pa,
                    va,
                    chunk_end - va,
                    Attrs::RODATA,
                    Attrs::DATA,
                )
                .unwrap_or_else(|e| panic!("rodata=full: cannot split the block at {block_va:#x}: {e:?}"));
                debug_assert!(matches!(Entry::decode(step.raw, t.level), Entry::Leaf { .. }));
                // Break: unmap the block and make every CPU forget it; make: install
                // the table that maps the same memory.
                pgtable::set_entry(tables, step.table, step.index, 0);
                cpu::flush_tlb();
                pgtable::set_entry(tables, step.table, step.index, table_descriptor(table));
                total += counts;
            }
            cpu::flush_tlb();
            va = chunk_end.max(va + level_size(pgtable::LAST_LEVEL));
        }
    });
    SPLIT.call_once(|| total);
}
