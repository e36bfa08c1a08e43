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

    /// TCR_EL1's TG0 and TG1 fields for this granule (their encodings differ).
    pub const fn tcr_tg(self) -> u64 {
        let (tg0, tg1): (u64, u64) = match self.page_shift {
            12 => (0b00, 0b10),
            14 => (0b10, 0b01),
            _ => (0b01, 0b11),
        };
        (tg0 << 14) | (tg1 << 30)
    }

    /// The Image header's page-size field (flags bits 1-2): 1, 2 or 3.
    pub const fn image_flag(self) -> u64 {
        match self.page_shift {
            12 => 1,
            14 => 2,
            _ => 3,
        }
    }

    /// Its name: `4K`, `16K` or `64K`.
    pub const fn name(self) -> &'static str {
        match self.page_shift {
            12 => "4K",
            14 => "16K",
            _ => "64K",
        }
    }

    /// log2 of the page size.
    pub const fn page_shift(self) -> u32 {
        self.page_shift
    }

    /// The `ID_AA64MMFR0_EL1` field that says whether a CPU has this granule
    /// (for stage 1): its name and its value in `mmfr0`.
    pub const fn cpu_field(self, mmfr0: u64) -> (&'static str, u64) {
        match self.page_shift {
            12 => ("TGran4", (mmfr0 >> 28) & 0xf),
            14 => ("TGran16", (mmfr0 >> 20) & 0xf),
            _ => ("TGran64", (mmfr0 >> 24) & 0xf),
        }
    }

    /// Whether a CPU whose `ID_AA64MMFR0_EL1` reads `mmfr0` can translate
    /// with this granule. Mind the encodings: TGran4 and TGran64 read 0 when
    /// supported and 0xF when not; TGran16 reads 0 when *not* supported.
    pub const fn supported_by(self, mmfr0: u64) -> bool {
        let (_, value) = self.cpu_field(mmfr0);
        match self.page_shift {
            14 => value == 1 || value == 2,
            _ => value != 0xf,
        }
    }

    /// Bits of physical address this granule's descriptors hold as written
    /// here: 48 for every granule. 52 would need FEAT_LPA (64 KiB: PA bits
    /// 51:48 in descriptor bits 15:12) or FEAT_LPA2 (TCR_EL1.DS), neither of
    /// which the mapper writes.
    pub const fn output_bits(self) -> u32 {
        48
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

    /// Entries a `level` table holds: `1 << bits_at(level)`.
    pub const fn entries_at(self, level: usize) -> usize {
        1 << self.bits_at(level)
    }

    /// The index of `va` in a `level` table.
    pub const fn index(self, va: u64, level: usize) -> usize {
        ((va >> self.level_shift(level)) & (self.entries_at(level) as u64 - 1)) as usize
    }

    /// The shallowest level that may hold a block without LPA2 or 52-bit PAs.
    pub const fn first_block_level(self) -> usize {
        if self.page_shift == 12 { 1 } else { 2 }
    }

    /// How many aligned, like entries at `level` form a run the contiguous
    /// bit may mark (one TLB entry then covers the run), or 0 where there
    /// is none: 4 KiB: 16 pages (64 KiB), 16 × 2 MiB (32 MiB); 16 KiB: 128
    /// pages (2 MiB), 32 × 32 MiB (1 GiB); 64 KiB: 32 pages (2 MiB), 32 ×
    /// 512 MiB (16 GiB).
    pub const fn contiguous_entries(self, level: usize) -> usize {
        match (self.page_shift, level) {
            (12, 2 | 3) => 16,
            (14, 3) => 128,
            (14, 2) | (16, 2 | 3) => 32,
            _ => 0,
        }
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
        // Contiguous runs, as bytes: the sizes the architecture names.
        let run = |g: Granule, l| g.contiguous_entries(l) as u64 * g.level_size(l);
        assert_eq!((run(Granule::K4, 3), run(Granule::K4, 2)), (64 << 10, 32 << 20));
        assert_eq!((run(Granule::K16, 3), run(Granule::K16, 2)), (2 << 20, 1 << 30));
        assert_eq!((run(Granule::K64, 3), run(Granule::K64, 2)), (2 << 20, 16 << 30));
        assert_eq!(Granule::K4.contiguous_entries(1), 0);
    }

    #[test]
    fn cpu_support_reads_each_fields_own_encoding() {
        // QEMU's cortex-a72 (0x1124: TGran4 = 0, TGran64 = 0, TGran16 = 0)
        // and `max` (TGran4 = 1, TGran64 = 0, TGran16 = 2).
        let a72 = 0x0000_0000_0000_1124u64;
        let max = 0x0000_0000_1020_1125u64;
        assert!(Granule::K4.supported_by(a72) && Granule::K64.supported_by(a72));
        assert!(!Granule::K16.supported_by(a72), "{:?}", Granule::K16.cpu_field(a72));
        assert!(Granule::K4.supported_by(max) && Granule::K16.supported_by(max) && Granule::K64.supported_by(max));
        let no_64k = 0x0f00_0000u64;
        assert!(!Granule::K64.supported_by(no_64k) && Granule::K4.supported_by(no_64k));
        assert_eq!(Granule::K16.cpu_field(max), ("TGran16", 2));
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
