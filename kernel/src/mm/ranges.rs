//! Physical address ranges: RAM from the device tree, reserved regions, and
//! what is left for the frame allocator. Fixed capacity, no allocation: the
//! lists are built before the heap exists.

use core::fmt;

use pi::addr::PhysAddr;

/// `[start, end)` in physical memory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct PhysRange {
    /// First byte.
    pub start: PhysAddr,
    /// One past the last byte.
    pub end: PhysAddr,
}

impl PhysRange {
    /// `[start, start + size)`, or `None` if that wraps around.
    pub fn new(start: u64, size: u64) -> Option<Self> {
        let end = start.checked_add(size)?;
        Some(PhysRange {
            start: PhysAddr::new(start),
            end: PhysAddr::new(end),
        })
    }

    /// `[start, start + size)`, ending at the top of the address space if it
    /// would run past it (a device tree may describe a range ending at 2^64,
    /// whose end does not fit in 64 bits; no RAM reaches that far).
    pub fn saturating(start: u64, size: u64) -> Self {
        PhysRange {
            start: PhysAddr::new(start),
            end: PhysAddr::new(start.saturating_add(size)),
        }
    }

    /// The whole pages that hold any of this range (at most up to the last
    /// page boundary of the address space).
    pub fn expand_to_pages(&self, page: u64) -> PhysRange {
        let top = !(page - 1); // the last page boundary below 2^64
        PhysRange {
            start: self.start.align_down(page),
            end: PhysAddr::new(self.end.raw().checked_next_multiple_of(page).unwrap_or(top)),
        }
    }

    /// Bytes in the range.
    pub fn size(&self) -> u64 {
        self.end.raw() - self.start.raw()
    }

    /// Whether `pa` lies inside.
    pub fn contains(&self, pa: PhysAddr) -> bool {
        self.start <= pa && pa < self.end
    }

    /// The largest page-aligned range inside this one (may be empty).
    pub fn shrink_to_pages(&self, page: u64) -> PhysRange {
        let Some(start) = self.start.raw().checked_next_multiple_of(page) else {
            return PhysRange::default();
        };
        let end = self.end.raw() & !(page - 1);
        PhysRange {
            start: PhysAddr::new(start),
            end: PhysAddr::new(end.max(start)),
        }
    }

    /// The start of a block of `bytes` (a power of two) at the top of the
    /// range and aligned to its size, as a buddy allocator hands one out,
    /// if the range ends on such a boundary and holds it; else `None`.
    pub fn top_block(&self, bytes: u64) -> Option<PhysAddr> {
        let start = self.end.raw().checked_sub(bytes)?;
        (bytes.is_power_of_two() && start.is_multiple_of(bytes) && start >= self.start.raw())
            .then(|| PhysAddr::new(start))
    }
}

impl fmt::Debug for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start.raw(), self.end.raw())
    }
}

pub use pi::addr::Span;

/// How many ranges a list holds at most. QEMU `virt` has one RAM node (or one per
/// NUMA node); the device tree reader caps RAM and reservations so that RAM
/// with every reservation punched out still fits (see `boot::dtb`).
pub const MAX_RANGES: usize = 64;

/// The list is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyRanges;

/// A sorted list of disjoint, non-adjacent ranges.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RangeList {
    items: [PhysRange; MAX_RANGES],
    len: usize,
}

impl Default for RangeList {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RangeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl RangeList {
    /// An empty list.
    pub const fn new() -> Self {
        RangeList {
            items: [PhysRange {
                start: PhysAddr::new(0),
                end: PhysAddr::new(0),
            }; MAX_RANGES],
            len: 0,
        }
    }

    /// The ranges, lowest first.
    pub fn iter(&self) -> core::slice::Iter<'_, PhysRange> {
        self.items[..self.len].iter()
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.iter().map(PhysRange::size).sum()
    }

    /// Adds `range`, merging it with any range it overlaps or touches, so the
    /// list stays sorted, disjoint and non-adjacent (adjacent RAM nodes become
    /// one range, which lets the linear map use the largest blocks across them).
    ///
    /// # Errors
    /// [`TooManyRanges`] if the list is full; the list is then unchanged.
    pub fn insert(&mut self, range: PhysRange) -> Result<(), TooManyRanges> {
        if range.start >= range.end {
            return Ok(());
        }
        let (first, last, merged) = self.span(range);
        let removed = last - first;
        if removed == 0 && self.len == MAX_RANGES {
            return Err(TooManyRanges);
        }
        // Replace items[first..last] with the merged range.
        self.items.copy_within(last..self.len, first + 1);
        self.items[first] = merged;
        self.len = self.len + 1 - removed;
        Ok(())
    }

    /// Where a non-empty `range` goes: it replaces `items[first..last]` (the
    /// ranges it overlaps or touches), merged with them into the range
    /// returned.
    fn span(&self, range: PhysRange) -> (usize, usize, PhysRange) {
        let mut merged = range;
        // Ranges entirely before and entirely after the merged one stay.
        let first = self.items[..self.len].partition_point(|r| r.end < merged.start);
        let mut last = first;
        while last < self.len && self.items[last].start <= merged.end {
            merged.start = merged.start.min(self.items[last].start);
            merged.end = merged.end.max(self.items[last].end);
            last += 1;
        }
        (first, last, merged)
    }

    /// Like [`insert`](Self::insert), but refused if the list would then
    /// hold more than `limit` ranges.
    ///
    /// # Errors
    /// [`TooManyRanges`]; the list is then unchanged.
    pub fn insert_up_to(&mut self, range: PhysRange, limit: usize) -> Result<(), TooManyRanges> {
        // The length after, worked out first: inserting into a copy and
        // keeping it cost two copies of the list (a KiB each), about 1,100
        // instructions for each range the device tree names.
        let after = if range.start >= range.end {
            self.len
        } else {
            let (first, last, _) = self.span(range);
            self.len + 1 - (last - first)
        };
        if after > limit {
            return Err(TooManyRanges);
        }
        self.insert(range)
    }

    /// The parts of `self` not covered by `holes`, as a new list.
    ///
    /// # Errors
    /// [`TooManyRanges`] if the holes split the list into more pieces than fit.
    pub fn subtract(&self, holes: &RangeList) -> Result<RangeList, TooManyRanges> {
        let mut out = *self;
        out.remove_all(holes)?;
        Ok(out)
    }

    /// Takes every range of `holes` out of the list, in place (a list is a
    /// kilobyte: no copy of it is returned).
    ///
    /// # Errors
    /// [`TooManyRanges`] if the holes split the list into more pieces than
    /// fit; the holes before the one refused are taken out.
    pub fn remove_all(&mut self, holes: &RangeList) -> Result<(), TooManyRanges> {
        holes.iter().try_for_each(|&hole| self.remove(hole))
    }

    /// Takes `hole` out of the list, in place: the ranges it overlaps lose
    /// what it covers (one it falls inside becomes two).
    ///
    /// # Errors
    /// [`TooManyRanges`] if that split does not fit; the list is then
    /// unchanged.
    pub fn remove(&mut self, hole: PhysRange) -> Result<(), TooManyRanges> {
        // items[first..last]: the ranges the hole overlaps.
        let first = self.items[..self.len].partition_point(|r| r.end <= hole.start);
        let mut last = first;
        while last < self.len && self.items[last].start < hole.end {
            last += 1;
        }
        if hole.start >= hole.end || first == last {
            return Ok(());
        }
        // What is left of them: a head before the hole, a tail after it.
        let head = PhysRange {
            start: self.items[first].start,
            end: hole.start,
        };
        let tail = PhysRange {
            start: hole.end,
            end: self.items[last - 1].end,
        };
        let mut left = [head, tail];
        let mut kept = 0;
        for piece in [head, tail] {
            if piece.start < piece.end {
                left[kept] = piece;
                kept += 1;
            }
        }
        let len = self.len - (last - first) + kept;
        if len > MAX_RANGES {
            return Err(TooManyRanges);
        }
        self.items.copy_within(last..self.len, first + kept);
        self.items[first..first + kept].copy_from_slice(&left[..kept]);
        self.len = len;
        Ok(())
    }

    /// Makes the list a copy of `other`, copying only the ranges in use (a
    /// whole list is a kilobyte: at boot its copy was 540 instructions).
    pub fn copy_from(&mut self, other: &RangeList) {
        self.items[..other.len].copy_from_slice(&other.items[..other.len]);
        self.len = other.len;
    }

    /// Whether some range covers `[start, end)` entirely. Out of line: boot
    /// asks at three places, and each inlined copy of the loop was blocks
    /// QEMU translated of its own (boot to poweroff: 1,461 -> 1,455).
    #[inline(never)]
    pub fn covers(&self, range: PhysRange) -> bool {
        self.iter().any(|r| r.start <= range.start && range.end <= r.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_block_is_aligned_to_its_size_and_inside_the_range() {
        let r = PhysRange {
            start: PhysAddr::new(0x4000_0000),
            end: PhysAddr::new(0x8000_0000),
        };
        assert_eq!(r.top_block(0x4000), Some(PhysAddr::new(0x7fff_c000)));
        assert_eq!(r.top_block(0x4000_0000), Some(PhysAddr::new(0x4000_0000)));
        // Larger than the range, not a power of two, or an end off its boundary.
        assert_eq!(r.top_block(0x8000_0000), None);
        assert_eq!(r.top_block(0x3000), None);
        let unaligned = PhysRange {
            end: PhysAddr::new(0x7fff_f000),
            ..r
        };
        assert_eq!(unaligned.top_block(0x4000), None);
        assert_eq!(unaligned.top_block(0x1000), Some(PhysAddr::new(0x7fff_e000)));
    }

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange {
            start: PhysAddr::new(start),
            end: PhysAddr::new(end),
        }
    }

    fn list(ranges: &[(u64, u64)]) -> RangeList {
        let mut l = RangeList::new();
        for &(s, e) in ranges {
            l.insert(r(s, e)).unwrap();
        }
        l
    }

    fn pairs(l: &RangeList) -> Vec<(u64, u64)> {
        l.iter().map(|r| (r.start.raw(), r.end.raw())).collect()
    }

    #[test]
    #[allow(clippy::type_complexity)] // table-driven rows read best spelled out
    fn insert_sorts_and_merges() {
        // (inserted in this order, expected list)
        let rows: &[(&[(u64, u64)], &[(u64, u64)])] = &[
            (&[(30, 40), (10, 20)], &[(10, 20), (30, 40)]),
            (&[(10, 20), (20, 30)], &[(10, 30)]),
            (&[(10, 20), (15, 25)], &[(10, 25)]),
            (&[(10, 20), (30, 40), (5, 50)], &[(5, 50)]),
            (&[(10, 20), (30, 40), (19, 31)], &[(10, 40)]),
            (&[(10, 20), (0, 0)], &[(10, 20)]),
        ];
        for (inserted, expected) in rows {
            assert_eq!(pairs(&list(inserted)), *expected, "inserting {inserted:?}");
        }
    }

    #[test]
    fn full_list_refuses_and_stays_unchanged() {
        let mut l = RangeList::new();
        for i in 0..MAX_RANGES as u64 {
            l.insert(r(i * 10, i * 10 + 5)).unwrap();
        }
        let before = l;
        assert_eq!(l.insert(r(1000, 1005)), Err(TooManyRanges));
        assert_eq!(l, before);
        // Merging into an existing range still works when full.
        l.insert(r(5, 10)).unwrap();
        assert_eq!(l.len(), MAX_RANGES - 1);
    }

    #[test]
    fn up_to_a_limit_refuses_only_what_would_grow_past_it() {
        let mut l = list(&[(10, 20), (30, 40)]);
        let before = l;
        assert_eq!(l.insert_up_to(r(50, 60), 2), Err(TooManyRanges));
        assert_eq!(l, before);
        // Merging, touching, joining two, or empty: never longer.
        for (range, after) in [
            ((15, 25), &[(10, 25), (30, 40)][..]),
            ((40, 45), &[(10, 20), (30, 45)][..]),
            ((20, 30), &[(10, 40)][..]),
            ((0, 0), &[(10, 20), (30, 40)][..]),
        ] {
            let mut l = before;
            assert_eq!(l.insert_up_to(r(range.0, range.1), 2), Ok(()), "{range:?}");
            assert_eq!(pairs(&l), after, "{range:?}");
        }
        // A list already past the limit takes only what brings it back.
        let mut over = list(&[(10, 20), (30, 40), (50, 60)]);
        assert_eq!(over.insert_up_to(r(70, 80), 2), Err(TooManyRanges));
        assert_eq!(over.insert_up_to(r(15, 35), 2), Ok(()));
        assert_eq!(pairs(&over), [(10, 40), (50, 60)]);
        let mut l = before;
        assert_eq!(l.insert_up_to(r(50, 60), 3), Ok(()));
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn remove_all_punches_holes() {
        let ram = list(&[(0x4000_0000, 0x8000_0000), (0x1_0000_0000, 0x1_4000_0000)]);
        let subtract = |holes: &RangeList| {
            let mut left = ram;
            left.remove_all(holes).map(|()| left)
        };
        assert_eq!(
            ram.subtract(&list(&[(0x4000_0000, 0x4000_1000)])),
            subtract(&list(&[(0x4000_0000, 0x4000_1000)]))
        );
        let holes = list(&[
            (0x3000_0000, 0x4000_1000),
            (0x4020_0000, 0x4060_0000),
            (0x7fff_f000, 0x1_0000_1000),
        ]);
        assert_eq!(
            pairs(&subtract(&holes).unwrap()),
            [
                (0x4000_1000, 0x4020_0000),
                (0x4060_0000, 0x7fff_f000),
                (0x1_0000_1000, 0x1_4000_0000)
            ]
        );
        assert_eq!(subtract(&RangeList::new()).unwrap(), ram);
    }

    #[test]
    fn remove_trims_splits_and_refuses_a_split_that_does_not_fit() {
        let mut l = list(&[(10, 20), (30, 40), (50, 60)]);
        l.remove(r(15, 35)).unwrap(); // trims two ranges
        assert_eq!(pairs(&l), [(10, 15), (35, 40), (50, 60)]);
        l.remove(r(52, 55)).unwrap(); // splits one
        assert_eq!(pairs(&l), [(10, 15), (35, 40), (50, 52), (55, 60)]);
        l.remove(r(0, 38)).unwrap(); // swallows one, trims the next
        assert_eq!(pairs(&l), [(38, 40), (50, 52), (55, 60)]);
        l.remove(r(40, 50)).unwrap(); // touches, overlaps nothing
        l.remove(r(45, 45)).unwrap(); // empty
        assert_eq!(pairs(&l), [(38, 40), (50, 52), (55, 60)]);
        l.remove(r(0, 100)).unwrap();
        assert!(l.is_empty());

        let mut full = RangeList::new();
        for i in 0..MAX_RANGES as u64 {
            full.insert(r(i * 10, i * 10 + 5)).unwrap();
        }
        let before = full;
        assert_eq!(full.remove(r(1, 2)), Err(TooManyRanges));
        assert_eq!(full, before);
        full.remove(r(0, 2)).unwrap(); // a trim needs no room
        assert_eq!(full.iter().next(), Some(&r(2, 5)));
    }

    #[test]
    fn shrink_to_pages() {
        assert_eq!(r(0x1001, 0x3fff).shrink_to_pages(0x1000), r(0x2000, 0x3000));
        assert_eq!(r(0x1001, 0x1fff).shrink_to_pages(0x1000).size(), 0);
    }

    #[test]
    fn a_copy_has_the_ranges_of_the_list_copied_and_no_others() {
        let mut from = RangeList::new();
        from.insert(r(0x1000, 0x2000)).unwrap();
        let mut to = RangeList::new();
        for i in 0..4 {
            to.insert(r(0x10_0000 * (i + 1), 0x10_0000 * (i + 1) + 0x1000)).unwrap();
        }
        to.copy_from(&from);
        assert_eq!(to.iter().copied().collect::<Vec<_>>(), [r(0x1000, 0x2000)]);
        to.copy_from(&RangeList::new());
        assert!(to.is_empty());
    }
}

impl RangeList {
    /// The parts of `self` below `2^bits`, and whether anything was cut off
    /// (RAM the CPU cannot address must not be mapped).
    pub fn below_pa_bits(&self, bits: u32) -> (RangeList, bool) {
        let limit = 1u64.checked_shl(bits).unwrap_or(u64::MAX);
        let mut kept = RangeList::new();
        let mut cut = false;
        for r in self.iter() {
            if r.end.raw() > limit {
                cut = true;
            }
            if r.start.raw() < limit {
                let end = PhysAddr::new(r.end.raw().min(limit));
                // Fewer or equal ranges than `self`: cannot overflow.
                let _ = kept.insert(PhysRange { start: r.start, end });
            }
        }
        (kept, cut)
    }
}

#[cfg(test)]
mod pa_tests {
    use super::*;

    #[test]
    fn ram_beyond_the_pa_size_is_cut_off() {
        let mut ram = RangeList::new();
        ram.insert(PhysRange::new(0x4000_0000, 0x4000_0000).unwrap()).unwrap();
        ram.insert(PhysRange::new(0xff_c000_0000, 0x8000_0000).unwrap())
            .unwrap(); // crosses 2^40
        ram.insert(PhysRange::new(0x100_0000_0000, 0x1000).unwrap()).unwrap(); // above 2^40
        let (kept, cut) = ram.below_pa_bits(40);
        assert!(cut);
        let pairs: Vec<_> = kept.iter().map(|r| (r.start.raw(), r.end.raw())).collect();
        assert_eq!(pairs, [(0x4000_0000, 0x8000_0000), (0xff_c000_0000, 0x100_0000_0000)]);
        assert_eq!(ram.below_pa_bits(48), (ram, false));
    }
}
