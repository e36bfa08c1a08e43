//! The geometry of a translation granule (ARM ARM D8.2, VMSAv8-64 without
//! FEAT_LPA2): how big a page is, how many bits each level resolves, which
//! levels exist for a given virtual-address width, and which may hold blocks.
//! The mapper and the walker ask it every question about shape, so one body
//! of code serves the 4 KiB, 16 KiB and 64 KiB granules.
//!
//! | granule | levels (48-bit VA) | entries | blocks |
//! |---|---|---|---|
//! | 4 KiB | 0-3 | 512 | 1 GiB (level 1), 2 MiB (level 2) |
//! | 16 KiB | 0-3, level 0 with 2 entries | 2048 | 32 MiB (level 2); 64 GiB at level 1 needs LPA2 |
//! | 64 KiB | 1-3 | 8192 | 512 MiB (level 2); 4 TiB at level 1 needs 52-bit PAs |

/// A translation granule, with the virtual-address width it translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granule {
    /// log2 of the page size: 12, 14 or 16.
    page_shift: u32,
    /// Bits of virtual address translated (64 - TnSZ).
    va_bits: u32,
}

/// The level whose entries are pages (every granule has it).
pub const LAST_LEVEL: usize = 3;

impl Granule {
    /// 4 KiB pages, 48-bit VAs.
    pub const K4: Granule = Granule {
        page_shift: 12,
        va_bits: 48,
    };
    /// 16 KiB pages, 48-bit VAs.
    pub const K16: Granule = Granule {
        page_shift: 14,
        va_bits: 48,
    };
    /// 64 KiB pages, 48-bit VAs.
    pub const K64: Granule = Granule {
        page_shift: 16,
        va_bits: 48,
    };

    /// Bytes in a page (and in a table page).
    pub const fn page_size(self) -> u64 {
        1 << self.page_shift
    }

    /// Bits each full level resolves: a table page holds 8-byte entries.
    pub const fn bits_per_level(self) -> u32 {
        self.page_shift - 3
    }

    /// Entries in a full table page.
    pub const fn entries(self) -> usize {
        1 << self.bits_per_level()
    }

    /// log2 of the bytes one entry covers at `level` (which may exceed the
    /// VA width at a level the granule does not use).
    pub const fn level_shift(self, level: usize) -> u32 {
        // A `match`-free expression: no bounds check, no panic path, so it
        // can run before the MMU is on.
        let below = (LAST_LEVEL - if level > LAST_LEVEL { LAST_LEVEL } else { level }) as u32;
        self.page_shift + self.bits_per_level() * below
    }

    /// Bytes one entry covers at `level`.
    pub const fn level_size(self, level: usize) -> u64 {
        1 << self.level_shift(level)
    }

    /// The level the walk starts at: the shallowest one whose entries cover
    /// less than the whole VA width.
    pub const fn first_level(self) -> usize {
        let mut level = 0;
        while level < LAST_LEVEL && self.level_shift(level) >= self.va_bits {
            level += 1;
        }
        level
    }

    /// Bits of VA the `level` table resolves: a full level's worth, or fewer
    /// at the first level (16 KiB: 1 bit, so 2 entries).
    pub const fn bits_at(self, level: usize) -> u32 {
        let room = self.va_bits.saturating_sub(self.level_shift(level));
        if room < self.bits_per_level() {
            room
        } else {
            self.bits_per_level()
        }
    }

    /// The index of `va` in a `level` table.
    pub const fn index(self, va: u64, level: usize) -> usize {
        ((va >> self.level_shift(level)) & ((1 << self.bits_at(level)) - 1)) as usize
    }

    /// The shallowest level that may hold a block without LPA2 or 52-bit PAs.
    pub const fn first_block_level(self) -> usize {
        if self.page_shift == 12 { 1 } else { 2 }
    }

    /// Whether `level` may hold a block.
    pub const fn block_allowed(self, level: usize) -> bool {
        level >= self.first_block_level() && level < LAST_LEVEL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_granule_has_the_architectures_shape() {
        // (granule, first level, entries, level sizes 0..=3, first block level)
        let rows = [
            (Granule::K4, 0, 512, [1u64 << 39, 1 << 30, 2 << 20, 4 << 10], 1),
            (Granule::K16, 0, 2048, [1 << 47, 64 << 30, 32 << 20, 16 << 10], 2),
            (Granule::K64, 1, 8192, [1 << 55, 4 << 40, 512 << 20, 64 << 10], 2),
        ];
        for (g, first, entries, sizes, first_block) in rows {
            assert_eq!(g.first_level(), first, "{g:?}");
            assert_eq!(g.entries(), entries, "{g:?}");
            assert_eq!([0, 1, 2, 3].map(|l| g.level_size(l)), sizes, "{g:?}");
            assert_eq!(g.first_block_level(), first_block, "{g:?}");
            assert_eq!(g.page_size(), sizes[3]);
        }
        assert_eq!(Granule::K16.bits_at(0), 1, "16 KiB: two entries at level 0");
        assert_eq!(Granule::K64.bits_at(1), 6, "64 KiB: 64 entries at level 1");
        assert!(!Granule::K64.block_allowed(1) && Granule::K64.block_allowed(2));
        assert!(!Granule::K4.block_allowed(0) && !Granule::K4.block_allowed(3));
    }

    #[test]
    fn indices_use_only_the_bits_a_level_resolves() {
        let va = 0xffff_8000_8020_3000u64;
        assert_eq!(Granule::K4.index(va, 0), 256);
        assert_eq!(Granule::K4.index(va, 3), 3);
        assert_eq!(Granule::K16.index(va, 0), 1, "bit 47");
        assert_eq!(Granule::K64.index(va, 1), 32, "bits 47:42");
        assert_eq!(Granule::K64.index(va, 3), (0x8020_3000 >> 16) & 0x1fff);
    }
}
