//! The UEFI memory map as the firmware writes it (EFI_MEMORY_DESCRIPTOR
//! entries, `desc_size` bytes apart): read by the EFI stub to place the
//! image, and by the kernel from the copy the stub hands over in `/chosen`.
//! Here, in pi, because both use it and the stub's crate is under the
//! relocation check: every read is a checked `get`, no panics, no
//! formatting.

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

#[cfg(test)]
mod tests {
    use super::*;

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
                Region {
                    ty: CONVENTIONAL,
                    start: 0x4000_0000,
                    pages: 3,
                    attr: 0
                },
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
