//! Where the image goes: a random page-aligned address among the conventional
//! memory of the UEFI memory map, every possible address equally likely, as
//! Linux's `efi_random_alloc` picks one.
//!
//! A region offers one *slot* per aligned address at which the whole image
//! fits inside it. The seed picks one slot of all regions' slots together, so
//! a large region is chosen in proportion to its size, not as often as a
//! small one.

/// UEFI memory type EfiConventionalMemory: free for the OS and for allocation.
pub const CONVENTIONAL: u32 = 7;

/// One UEFI memory map entry, the fields the stub and kernel read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// EFI_MEMORY_TYPE.
    pub ty: u32,
    /// First byte.
    pub start: u64,
    /// Number of 4 KiB UEFI pages.
    pub pages: u64,
    /// EFI_MEMORY_* attributes.
    pub attr: u64,
}

impl Region {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.pages.saturating_mul(4096))
    }
}

/// The descriptors of a memory map `map` whose entries are `desc_size`
/// bytes apart (EFI_MEMORY_DESCRIPTOR: type u32, pad, PhysicalStart u64,
/// VirtualStart u64, NumberOfPages u64, Attribute u64).
pub fn regions(map: &[u8], desc_size: usize) -> impl Iterator<Item = Region> + Clone + '_ {
    let step = desc_size.max(40);
    (0..map.len() / step).filter_map(move |i| {
        let d = map.get(i * step..i * step + 40)?;
        let u64_at = |o: usize| Some(u64::from_le_bytes(d.get(o..o + 8)?.try_into().ok()?));
        Some(Region {
            ty: u32::from_le_bytes(d.get(0..4)?.try_into().ok()?),
            start: u64_at(8)?,
            pages: u64_at(24)?,
            attr: u64_at(32)?,
        })
    })
}

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
    fn nothing_fits() {
        assert_eq!(choose([conv(0, 1)].into_iter(), 0x2000, 0x1000, u64::MAX, 5), None);
    }

    #[test]
    fn regions_read_descriptors() {
        let mut map = vec![0u8; 48 * 2];
        map[0] = 7;
        map[8..16].copy_from_slice(&0x4000_0000u64.to_le_bytes());
        map[24..32].copy_from_slice(&3u64.to_le_bytes());
        map[48] = 5;
        map[48 + 32..48 + 40].copy_from_slice(&(1u64 << 63).to_le_bytes());
        let r: Vec<_> = regions(&map, 48).collect();
        assert_eq!(
            r,
            [
                conv(0x4000_0000, 3),
                Region {
                    ty: 5,
                    start: 0,
                    pages: 0,
                    attr: 1 << 63
                }
            ]
        );
    }
}
