//! What the EFI stub (kernel/efistub) hands over in `/chosen`, as Linux's
//! stub does: where the UEFI memory map is (`linux,uefi-mmap-*`), and, for
//! the boot line, the seed that placed the image and where it came from
//! (`splitmap,efi-seed`, `splitmap,efi-seed-source`). Pure: the map's bytes
//! are read by the caller (through the linear map).

use crate::mm::ranges::{PhysRange, RangeList, TooManyRanges};

/// The `/chosen` properties the stub sets (the device-tree reader knows
/// them by name: `dtb::words`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `linux,uefi-mmap-start`.
    MmapStart,
    /// `linux,uefi-mmap-size`.
    MmapSize,
    /// `linux,uefi-mmap-desc-size`.
    DescSize,
    /// `linux,uefi-mmap-desc-ver`.
    DescVer,
    /// `splitmap,efi-seed`.
    Seed,
    /// `splitmap,efi-seed-source`.
    SeedSource,
    /// `splitmap,efi-slot`: which of the placements the seed picked.
    Slot,
    /// `splitmap,efi-slots`: how many there were.
    Slots,
}

/// The stub's handover, as the tree holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EfiHandover<'dt> {
    /// Physical address of the memory map.
    pub mmap_start: u64,
    /// Its size in bytes.
    pub mmap_size: u64,
    /// Bytes from one descriptor to the next (at least 40).
    pub desc_size: u64,
    /// EFI_MEMORY_DESCRIPTOR_VERSION.
    pub desc_ver: u64,
    /// The seed that placed the image (`efistub.seed=` replays it).
    pub seed: Option<u64>,
    /// `rng`, `fallback`, `efistub.seed`, or with `nokaslr` `firmware` (the
    /// firmware's placement kept) or `nokaslr` (the lowest aligned place).
    pub source: &'dt str,
    /// The slot the seed picked among the image's page-aligned places in
    /// conventional memory, counted in address order (`sweep --uefi`).
    pub slot: Option<u64>,
    /// How many such places there were.
    pub slots: Option<u64>,
}

impl<'dt> EfiHandover<'dt> {
    /// Takes the value of one property.
    pub fn set(&mut self, field: Field, value: &'dt [u8]) {
        let number = match value.len() {
            4 => u32::from_be_bytes(value.try_into().unwrap_or_default()).into(),
            8 => u64::from_be_bytes(value.try_into().unwrap_or_default()),
            _ => 0,
        };
        match field {
            Field::MmapStart => self.mmap_start = number,
            Field::MmapSize => self.mmap_size = number,
            Field::DescSize => self.desc_size = number,
            Field::DescVer => self.desc_ver = number,
            Field::Seed => self.seed = Some(number),
            Field::Slot => self.slot = Some(number),
            Field::Slots => self.slots = Some(number),
            Field::SeedSource => {
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                self.source = core::str::from_utf8(&value[..end]).unwrap_or("?");
            }
        }
    }

    /// Where the memory map lies, if the handover names a usable one.
    pub fn map_range(&self) -> Option<PhysRange> {
        (self.desc_size >= 40 && self.mmap_size > 0)
            .then(|| PhysRange::new(self.mmap_start, self.mmap_size))
            .flatten()
    }
}

/// One UEFI memory map entry, its pages as a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// EFI_MEMORY_TYPE.
    pub ty: u32,
    /// The range (4 KiB UEFI pages).
    pub range: PhysRange,
    /// EFI_MEMORY_* attributes.
    pub attr: u64,
}

/// The entries of the memory map `map`, `desc_size` bytes apart, as the
/// stub read them (`pi::efimap`); an entry whose range does not fit the
/// address space is left out.
#[inline]
pub fn regions(map: &[u8], desc_size: u64) -> impl Iterator<Item = Region> + '_ {
    pi::efimap::regions(map, usize::try_from(desc_size).unwrap_or(usize::MAX)).filter_map(|r| {
        Some(Region {
            ty: r.ty,
            range: PhysRange::new(r.start, r.pages.checked_mul(4096)?)?,
            attr: r.attr,
        })
    })
}

/// The UEFI specification's name for a memory type, shortened.
pub fn type_name(ty: u32) -> &'static str {
    match ty {
        0 => "reserved",
        1 => "loader-code",
        2 => "loader-data",
        3 => "boot-code",
        4 => "boot-data",
        5 => "runtime-code",
        6 => "runtime-data",
        7 => "conventional",
        8 => "unusable",
        9 => "acpi-reclaim",
        10 => "acpi-nvs",
        11 => "mmio",
        12 => "mmio-port",
        13 => "pal-code",
        14 => "persistent",
        15 => "unaccepted",
        _ => "other",
    }
}

/// Whether the kernel must leave a region of type `ty` alone: only loader,
/// boot-services and conventional memory is the OS's after ExitBootServices.
/// Runtime services code and data stay the firmware's (their calls work only
/// while those bytes are intact), ACPI tables and NVS the platform's,
/// reserved/MMIO/unusable ranges were never RAM to hand out. Unknown types
/// are kept too: freeing what one does not understand is the unsafe choice.
pub const fn kept(ty: u32) -> bool {
    !matches!(ty, 1..=4 | 7)
}

/// Every kept region of the map, merged.
///
/// # Errors
/// When they do not fit one [`RangeList`].
pub fn kept_ranges(map: &[u8], desc_size: u64) -> Result<RangeList, TooManyRanges> {
    let mut list = RangeList::new();
    for r in regions(map, desc_size).filter(|r| kept(r.ty)) {
        list.insert(r.range)?;
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(ty: u32, start: u64, pages: u64, attr: u64) -> Vec<u8> {
        let mut d = vec![0u8; 48];
        d[0..4].copy_from_slice(&ty.to_le_bytes());
        d[8..16].copy_from_slice(&start.to_le_bytes());
        d[24..32].copy_from_slice(&pages.to_le_bytes());
        d[32..40].copy_from_slice(&attr.to_le_bytes());
        d
    }

    #[test]
    fn kept_are_runtime_reserved_acpi_and_mmio() {
        let map: Vec<u8> = [
            desc(7, 0x4000_0000, 0x100, 0xf),
            desc(5, 0x4010_0000, 0x10, 1 << 63),
            desc(6, 0x4011_0000, 0x10, 1 << 63),
            desc(4, 0x4012_0000, 0x10, 0xf),
            desc(9, 0x4013_0000, 1, 0xf),
            desc(11, 0x0400_0000, 0x10, 1 << 63),
        ]
        .concat();
        let kept = kept_ranges(&map, 48).unwrap();
        let wraps = desc(6, 0xffff_ffff_ffff_0000, 0x100, 0);
        assert_eq!(
            regions(&wraps, 48).count(),
            0,
            "a range past the address space is left out"
        );
        let got: Vec<_> = kept.iter().map(|r| (r.start.raw(), r.end.raw())).collect();
        assert_eq!(
            got,
            [
                (0x0400_0000, 0x0401_0000),
                (0x4010_0000, 0x4012_0000),
                (0x4013_0000, 0x4013_1000)
            ]
        );
        let names: Vec<_> = regions(&map, 48).map(|r| type_name(r.ty)).collect();
        assert_eq!(
            names,
            [
                "conventional",
                "runtime-code",
                "runtime-data",
                "boot-data",
                "acpi-reclaim",
                "mmio"
            ]
        );
    }

    #[test]
    fn handover_fields() {
        let (start, size, desc) = (
            0x4500_0000u64.to_be_bytes(),
            0x900u32.to_be_bytes(),
            48u32.to_be_bytes(),
        );
        let mut h = EfiHandover::default();
        assert_eq!(h.map_range(), None);
        h.set(Field::MmapStart, &start);
        h.set(Field::MmapSize, &size);
        h.set(Field::DescSize, &desc);
        h.set(Field::SeedSource, b"rng\0");
        assert_eq!(h.map_range(), PhysRange::new(0x4500_0000, 0x900));
        assert_eq!(h.source, "rng");
    }
}

/// The memory map's bytes, read through the linear map; None when the
/// handover names none or it lies outside the RAM `ram` describes (which the
/// linear map covers).
#[cfg(kernel_proper)]
pub fn map_bytes(h: &EfiHandover<'_>, ram: &RangeList) -> Option<&'static [u8]> {
    let range = h.map_range().filter(|&r| ram.covers(r))?;
    let ptr = range.start.to_linear().as_ptr::<u8>();
    // SAFETY: the range is inside RAM, so linear-mapped; boot reserves it
    // ("efi-mmap") so nothing reuses it, and nobody writes it after the stub.
    Some(unsafe { core::slice::from_raw_parts(ptr, range.size() as usize) })
}
