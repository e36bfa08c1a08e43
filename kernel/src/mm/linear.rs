//! The linear map: all RAM at `PAGE_OFFSET + (pa - PHYS_OFFSET)`, built from the
//! largest blocks that fit, never executable, independent of where the image is.
//!
//! `PHYS_OFFSET` is the lowest RAM address rounded down to 1 GiB, so VA and PA
//! agree modulo 1 GiB, a multiple of every granule's largest block: with 4 KiB
//! pages each 1 GiB-aligned GiB of RAM becomes one level-1 block, with 16 KiB
//! and 64 KiB pages 32 MiB and 512 MiB level-2 blocks tile it. Memory below the image is mapped like any other: the image has its
//! own mapping and no longer decides where the linear map starts.

use pi::addr::PhysAddr;
use pi::kmap::{self, Mapping};
use pi::layout::{GRANULE, LINEAR_END, PAGE_OFFSET, PAGE_SIZE};
use pi::pgtable::{self, LAST_LEVEL, MapCounts, MapError, TableAlloc};

use super::ranges::{MAX_RANGES, RangeList};

/// How every RAM range is mapped.
const LINEAR: Mapping = kmap::mapping("linear");

/// Linear-map alignment of `PHYS_OFFSET`: 1 GiB, the largest block with 4 KiB
/// pages and a multiple of the others' (32 MiB, 512 MiB).
pub const PHYS_OFFSET_ALIGN: u64 = 1 << 30;

/// `PHYS_OFFSET` for this RAM when it is not randomised: its lowest address
/// rounded down to 1 GiB. (The value in force is `pi::addr::phys_offset()`.)
pub fn fixed_phys_offset(ram: &RangeList) -> PhysAddr {
    ram.iter()
        .next()
        .map_or(PhysAddr::new(0), |r| r.start.align_down(PHYS_OFFSET_ALIGN))
}

/// The linear-map address of `pa` for a given `PHYS_OFFSET`. Wrapping, as in
/// Linux: a randomised `PHYS_OFFSET` (see [`randomised_phys_offset`]) may lie
/// below physical address 0.
pub fn linear_va(pa: u64, phys_offset: PhysAddr) -> u64 {
    PAGE_OFFSET.wrapping_add(pa.wrapping_sub(phys_offset.raw()))
}

/// How many 1 GiB-aligned places the linear map could start at, if its base
/// were randomised as Linux did until v6.16 (`memstart_offset_seed`): the
/// linear area's size minus the span of RAM, in 1 GiB steps. splitmap keeps
/// the base fixed; `kaslr` shows what randomising it would give.
pub fn randomisation_choices(ram: &RangeList) -> u64 {
    let Some(last) = ram.iter().last() else {
        return 0;
    };
    let span = (last.end.raw() - fixed_phys_offset(ram).raw()).next_multiple_of(PHYS_OFFSET_ALIGN);
    (LINEAR_END - PAGE_OFFSET)
        .checked_sub(span)
        .map_or(0, |room| room / PHYS_OFFSET_ALIGN + 1)
}

/// `PHYS_OFFSET` moved down by a random number of 1 GiB steps (`random` mod
/// [`randomisation_choices`]), so the linear map starts that much higher: the
/// `kaslr.linear=on` experiment, Linux's `memstart_addr` randomisation. It may
/// wrap below 0; only differences with it are ever taken.
pub fn randomised_phys_offset(ram: &RangeList, random: u64) -> PhysAddr {
    let choices = randomisation_choices(ram).max(1);
    let steps = random % choices;
    PhysAddr::new(fixed_phys_offset(ram).raw().wrapping_sub(steps * PHYS_OFFSET_ALIGN))
}

/// Why the linear map could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearError {
    /// RAM reaches beyond the 128 TiB the linear map spans.
    TooMuchRam(u64),
    /// The mapper refused.
    Map(MapError),
}

/// Maps every RAM range (page-aligned inward) below `root`, at
/// `linear_va(pa, offset)`.
///
/// # Errors
/// [`LinearError`]; ranges mapped before the failure stay mapped.
pub fn build<A: TableAlloc + ?Sized>(
    mem: &mut A,
    root: PhysAddr,
    ram: &RangeList,
    offset: PhysAddr,
) -> Result<MapCounts, LinearError> {
    let mut total = MapCounts::default();
    for range in ram.iter() {
        let r = range.shrink_to_pages(PAGE_SIZE);
        if r.size() == 0 {
            continue;
        }
        if r.end.raw().wrapping_sub(offset.raw()) > LINEAR_END - PAGE_OFFSET {
            return Err(LinearError::TooMuchRam(r.end.raw()));
        }
        let c = pgtable::map(
            mem,
            root,
            linear_va(r.start.raw(), offset),
            r.start,
            r.size(),
            LINEAR.attrs,
            LINEAR.granularity,
        )
        .map_err(LinearError::Map)?;
        total += c;
    }
    Ok(total)
}

/// The fewest table pages (below the root) any mapper needs for this RAM,
/// computed from span arithmetic rather than by mapping: a 512 GiB span touched
/// needs a level-1 table; a 1 GiB or 2 MiB span touched but not covered whole
/// needs a table one level down. Ranges are disjoint and non-adjacent (a
/// [`RangeList`] keeps them so), so only the ends of a range can touch a span
/// partially.
pub fn minimum_tables(ram: &RangeList, phys_offset: PhysAddr) -> u64 {
    // One set per level below the root: the spans of the level above that
    // need a table at this one.
    let mut needed = [SpanSet::new(), SpanSet::new(), SpanSet::new()];
    for range in ram.iter() {
        let r = range.shrink_to_pages(PAGE_SIZE);
        if r.size() == 0 {
            continue;
        }
        let (start, end) = (
            linear_va(r.start.raw(), phys_offset),
            linear_va(r.end.raw(), phys_offset),
        );
        for level in GRANULE.first_level() + 1..=LAST_LEVEL {
            let set = &mut needed[level - 1];
            let size = GRANULE.level_size(level - 1);
            let (first, last) = (start / size, (end - 1) / size);
            if !GRANULE.block_allowed(level - 1) {
                // No block above: every span touched needs a table here.
                for span in first..=last {
                    set.insert(span);
                }
                continue;
            }
            // A block covers whole spans; only the partial ones at the ends
            // need a table.
            if start % size != 0 || end < (first + 1) * size {
                set.insert(first);
            }
            if end % size != 0 {
                set.insert(last);
            }
        }
    }
    needed.iter().map(|s| s.len as u64).sum()
}

/// A tiny set of span numbers (two per range at most, plus level-0 spans).
struct SpanSet {
    items: [u64; 4 * MAX_RANGES],
    len: usize,
}

impl SpanSet {
    fn new() -> Self {
        SpanSet {
            items: [0; 4 * MAX_RANGES],
            len: 0,
        }
    }

    fn insert(&mut self, span: u64) {
        if !self.items[..self.len].contains(&span) && self.len < self.items.len() {
            self.items[self.len] = span;
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::ranges::PhysRange;
    use pi::pgtable::host::HostTables;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    #[test]
    fn builder_meets_the_minimum_for_many_layouts() {
        // RAM layouts: QEMU virt sizes, odd sizes, several nodes, a hole, above 4 GiB.
        let layouts: &[&[(u64, u64)]] = &[
            &[(GIB, 512 * MIB)],
            &[(GIB, GIB)],
            &[(GIB, 1536 * MIB)],
            &[(GIB, 3000 * MIB)],
            &[(GIB, 4 * GIB)],
            &[(GIB, 6 * GIB)],
            &[(GIB + 0x1000, GIB)],
            &[(GIB, 512 * MIB), (GIB + 768 * MIB, 256 * MIB + 0x3000)],
            &[(0x8000_0000, GIB), (0x1_0000_0000 + 2 * MIB, 5 * MIB)],
            &[(GIB + 100 * MIB, 7 * MIB + 0x1000), (3 * GIB, 10 * GIB)],
        ];
        for layout in layouts {
            let mut ram = RangeList::new();
            for &(start, size) in *layout {
                ram.insert(PhysRange::new(start, size).unwrap()).unwrap();
            }
            let (mut tables, root) = HostTables::new(64);
            let counts = build(&mut tables, root, &ram, fixed_phys_offset(&ram)).unwrap();
            assert_eq!(
                counts.tables,
                minimum_tables(&ram, fixed_phys_offset(&ram)),
                "{layout:x?}"
            );
        }
    }

    #[test]
    fn linear_base_choices_are_the_slack_in_gib_steps() {
        let area = (LINEAR_END - PAGE_OFFSET) / GIB;
        let mut ram = RangeList::new();
        assert_eq!(randomisation_choices(&ram), 0, "no RAM, nothing to place");
        // 1 GiB at 1 GiB: one GiB used, the rest is slack.
        ram.insert(PhysRange::new(GIB, GIB).unwrap()).unwrap();
        assert_eq!(randomisation_choices(&ram), area);
        // A second range 10 GiB up: the span counts, holes included, rounded up.
        ram.insert(PhysRange::new(11 * GIB, MIB).unwrap()).unwrap();
        assert_eq!(randomisation_choices(&ram), area - 11 + 1);
    }

    #[test]
    fn a_randomised_base_keeps_ram_inside_the_linear_area_with_minimum_tables() {
        let mut ram = RangeList::new();
        ram.insert(PhysRange::new(GIB, 3 * GIB + 5 * MIB).unwrap()).unwrap();
        ram.insert(PhysRange::new(6 * GIB, GIB).unwrap()).unwrap();
        let choices = randomisation_choices(&ram);
        let end = ram.iter().last().unwrap().end.raw();
        for random in [0, 1, 511, 512, choices - 1, choices, 0x1234_5678_9abc_def0] {
            let offset = randomised_phys_offset(&ram, random);
            let shift = linear_va(GIB, offset) - PAGE_OFFSET;
            assert_eq!(shift % GIB, 0, "VA and PA still agree modulo 1 GiB");
            assert_eq!(shift / GIB, random % choices);
            assert!(linear_va(end - 1, offset) < LINEAR_END, "{random:#x}: RAM fits");
            let (mut tables, root) = HostTables::new(64);
            let counts = build(&mut tables, root, &ram, offset).unwrap();
            assert_eq!(counts.tables, minimum_tables(&ram, offset), "{random:#x}");
        }
        // The last choice puts the end of RAM's last GiB at the end of the area.
        let last = randomised_phys_offset(&ram, choices - 1);
        assert_eq!(linear_va(end.next_multiple_of(GIB), last), LINEAR_END);
    }

    #[test]
    fn phys_offset_rounds_down_to_a_gib() {
        let mut ram = RangeList::new();
        ram.insert(PhysRange::new(0x4020_0000, GIB).unwrap()).unwrap();
        assert_eq!(fixed_phys_offset(&ram), PhysAddr::new(0x4000_0000));
        assert_eq!(linear_va(0x4020_0000, fixed_phys_offset(&ram)), PAGE_OFFSET + 0x20_0000);
    }
}
