//! Where the image goes: a random page-aligned address among the conventional
//! memory of the UEFI memory map, every possible address equally likely, as
//! Linux's `efi_random_alloc` picks one.
//!
//! A region offers one *slot* per aligned address at which the whole image
//! fits inside it. The seed picks one slot of all regions' slots together, so
//! a large region is chosen in proportion to its size, not as often as a
//! small one.

pub use pi::efimap::{CONVENTIONAL, Region, regions};

/// Aligned addresses in `[start, end)` at which `size` bytes fit below
/// `limit`; `align` is a power of two.
pub fn slots(start: u64, end: u64, size: u64, align: u64, limit: u64) -> u64 {
    let shift = align.trailing_zeros();
    let first = start.saturating_add(align - 1) & !(align - 1);
    let end = end.min(limit);
    match end.checked_sub(size) {
        Some(last) if last >= first => ((last - first) >> shift) + 1,
        _ => 0,
    }
}

/// Whether the image can run where the firmware loaded it (`nokaslr`): at
/// `text`, aligned to `align`, and whole below `limit` (what the kernel can
/// map, `pi::idregs::pa_limit`).
pub fn usable_as_loaded(text: u64, size: u64, align: u64, limit: u64) -> bool {
    text.is_multiple_of(align) && text.checked_add(size).is_some_and(|end| end <= limit)
}

/// The address of slot `target` (0-based) counted over all conventional
/// regions of `map`, `target` itself, and the total number of slots (the
/// slots are in the map's order, which is address order). `seed`'s low 32 bits pick
/// the slot: `target = total * seed32 / 2^32`, so every slot is equally likely.
pub fn choose(
    regions: impl Iterator<Item = Region> + Clone,
    size: u64,
    align: u64,
    limit: u64,
    seed: u64,
) -> Option<(u64, u64, u64)> {
    let conventional = regions.filter(|r| r.ty == CONVENTIONAL);
    let total: u64 = conventional
        .clone()
        .map(|r| slots(r.start, r.end(), size, align, limit))
        .fold(0, u64::saturating_add);
    if total == 0 {
        return None;
    }
    let index = ((u128::from(total) * u128::from(seed as u32)) >> 32) as u64;
    let mut target = index;
    for r in conventional {
        let n = slots(r.start, r.end(), size, align, limit);
        if target < n {
            let first = r.start.saturating_add(align - 1) & !(align - 1);
            return Some((first + (target << align.trailing_zeros()), index, total));
        }
        target -= n;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(start: u64, pages: u64) -> Region {
        Region {
            ty: CONVENTIONAL,
            start,
            pages,
            attr: 0,
        }
    }

    #[test]
    fn slots_count_aligned_fits() {
        assert_eq!(slots(0x1000, 0x5000, 0x2000, 0x1000, u64::MAX), 3);
        assert_eq!(slots(0x1001, 0x5000, 0x2000, 0x1000, u64::MAX), 2);
        assert_eq!(slots(0x0, 0x1000, 0x2000, 0x1000, u64::MAX), 0);
        assert_eq!(slots(0x0, 0x40000, 0x10000, 0x10000, 0x30000), 3);
    }

    #[test]
    fn every_slot_is_reachable_and_in_a_conventional_region() {
        let map = [
            conv(0x4000_0000, 16),
            Region {
                ty: 5,
                start: 0x4001_0000,
                pages: 16,
                attr: 0,
            },
            conv(0x4002_0000, 4),
        ];
        let size = 0x3000;
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..4096u64 {
            let seed = (i << 20) | 0xdead_0000_0000;
            let (pa, index, total) = choose(map.iter().copied(), size, 0x1000, u64::MAX, seed).unwrap();
            assert_eq!(total, 14 + 2);
            let expected = if pa < 0x4001_0000 {
                (pa - 0x4000_0000) >> 12
            } else {
                14 + ((pa - 0x4002_0000) >> 12)
            };
            assert_eq!(index, expected, "slots count in address order");
            assert!(
                map.iter()
                    .any(|r| r.ty == CONVENTIONAL && r.start <= pa && pa + size <= r.end())
            );
            seen.insert(pa);
        }
        assert_eq!(seen.len(), 16);
    }

    #[test]
    fn the_cpus_limit_keeps_every_placement_mappable() {
        // A 40-bit CPU (Cortex-A53) and RAM across the 1 TiB line.
        let limit = pi::idregs::pa_limit(0x2, pi::pgtable::granule::Granule::K4);
        let size = 0x5000;
        // 16 KiB below the line: with 48 bits the image fits 12 ways.
        let map = [conv((1 << 40) - 0x4000, 16)];
        assert_eq!(choose(map.iter().copied(), size, 0x1000, limit, 7), None);
        let wide = pi::idregs::pa_limit(0x5, pi::pgtable::granule::Granule::K4);
        assert_eq!(
            choose(map.iter().copied(), size, 0x1000, wide, 0).map(|c| c.2),
            Some(12)
        );
        let map = [conv((1 << 40) - 0x8000, 16)];
        let (pa, _, total) = choose(map.iter().copied(), size, 0x1000, limit, u64::MAX).unwrap();
        assert_eq!((pa, total), ((1 << 40) - size, 4));
        assert!(usable_as_loaded((1 << 40) - size, size, 0x1000, limit));
        assert!(!usable_as_loaded((1 << 40) - 0x4000, size, 0x1000, limit));
        assert!(!usable_as_loaded(0x4000_0800, size, 0x1000, limit));
        assert!(!usable_as_loaded(!0xfff, size, 0x1000, u64::MAX));
    }

    #[test]
    fn nothing_fits() {
        assert_eq!(choose([conv(0, 1)].into_iter(), 0x2000, 0x1000, u64::MAX, 5), None);
    }
}
