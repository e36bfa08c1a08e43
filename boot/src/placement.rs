//! Where the kernel Image goes: the user's request, checked against RAM and
//! everything already in memory, or a random page-aligned slot (the page
//! size the Image's header names).

use core::fmt;

use kernel::mm::ranges::{PhysRange, RangeList};

/// The bootarg the host tool sets for `--load-addr`.
pub const LOAD_KEY: &str = "splitmap.load";

/// The bootarg the host tool sets for `--raw-dtb`: the physical address of a
/// device tree to hand the kernel instead of QEMU's.
pub const DTB_KEY: &str = "splitmap.dtb";

/// Room kept for a raw device tree: the boot protocol's 2 MiB cap, since its
/// own header may be the very thing that is broken.
pub const RAW_DTB_ROOM: u64 = 2 << 20;

/// What was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Exactly this physical address.
    At(u64),
    /// A random 4 KiB-aligned address where the image fits.
    Random,
}

/// Something in memory the image must not overwrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy {
    /// Where.
    pub range: PhysRange,
    /// What: `dtb`, `initrd`, `stage-0 loader`, `reserved`.
    pub what: &'static str,
}

/// Why a placement was refused. Printed after `stage0: error: `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementError<'a> {
    /// `splitmap.load=` holds something that is neither a number nor `random`.
    BadValue(&'a str),
    /// `splitmap.dtb=` holds something that is not a number.
    BadDtb(&'a str),
    /// Not a multiple of the Image's page size.
    Unaligned {
        /// Requested address.
        pa: u64,
        /// The page size the Image was built for.
        page: u64,
    },
    /// `[pa, pa + size)` is not inside one RAM range.
    OutsideRam {
        /// Requested address.
        pa: u64,
        /// Bytes the image needs.
        size: u64,
    },
    /// `[pa, pa + size)` overlaps something in use.
    Overlaps {
        /// Requested address.
        pa: u64,
        /// What it hits.
        busy: Busy,
    },
    /// `random` without randomness in the device tree.
    NoSeed,
    /// No free slot large enough.
    NoRoom(u64),
    /// `splitmap.dtb=` names an address whose tree is not all in RAM.
    RawDtbOutsideRam(u64),
}

impl fmt::Display for PlacementError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::BadValue(v) => write!(f, "{LOAD_KEY}={v}: expected a physical address (0x…) or 'random'"),
            PlacementError::BadDtb(v) => write!(f, "{DTB_KEY}={v}: expected a physical address (0x…)"),
            PlacementError::Unaligned { pa, page } => write!(
                f,
                "load address {pa:#x} is not {} KiB-aligned (the Image is built for {} KiB pages)",
                page >> 10,
                page >> 10
            ),
            PlacementError::OutsideRam { pa, size } => {
                write!(
                    f,
                    "load address {pa:#x}: the image ({size:#x} bytes) does not fit inside RAM there"
                )
            }
            PlacementError::Overlaps { pa, busy } => write!(
                f,
                "load address {pa:#x}: the image would overlap the {} at {:#x}-{:#x}",
                busy.what,
                busy.range.start.raw(),
                busy.range.end.raw()
            ),
            PlacementError::NoSeed => write!(f, "random placement needs /chosen/rng-seed in the device tree"),
            PlacementError::NoRoom(size) => write!(f, "no free RAM slot fits the image ({size:#x} bytes)"),
            PlacementError::RawDtbOutsideRam(pa) => write!(
                f,
                "{DTB_KEY}={pa:#x}: the device tree there is not in RAM (or not 8-byte aligned)"
            ),
        }
    }
}

/// The value of the last `key=` in the command line.
fn last_value<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    bootargs
        .split_ascii_whitespace()
        .rev()
        .find_map(|word| word.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// Finds `splitmap.load=` in the command line (the last one wins).
///
/// # Errors
/// [`PlacementError::BadValue`] for a value that is neither a number nor `random`.
pub fn parse_request(bootargs: &str) -> Result<Option<Request>, PlacementError<'_>> {
    last_value(bootargs, LOAD_KEY)
        .map(|value| match value {
            "random" => Ok(Request::Random),
            _ => kernel::num::parse_u64(value)
                .map(Request::At)
                .ok_or(PlacementError::BadValue(value)),
        })
        .transpose()
}

/// Finds `splitmap.dtb=` in the command line (the last one wins).
///
/// # Errors
/// [`PlacementError::BadDtb`] for a value that is not a number.
pub fn parse_raw_dtb(bootargs: &str) -> Result<Option<u64>, PlacementError<'_>> {
    last_value(bootargs, DTB_KEY)
        .map(|value| kernel::num::parse_u64(value).ok_or(PlacementError::BadDtb(value)))
        .transpose()
}

/// Checks a raw device tree at `pa` before anything reads it: its 8-byte
/// header must be in RAM (`header` reads it then) and, if it is a device tree
/// header, the whole tree it describes too. What is not a device tree at all
/// still goes to the kernel, which explains it on its early console: that is
/// what `--raw-dtb` is for.
///
/// # Errors
/// [`PlacementError::RawDtbOutsideRam`].
pub fn check_raw_dtb(
    pa: u64,
    ram: &RangeList,
    header: impl FnOnce() -> [u8; 8],
) -> Result<(), PlacementError<'static>> {
    let in_ram = |size| PhysRange::new(pa, size).is_some_and(|r| ram.covers(r));
    if !pa.is_multiple_of(8) || !in_ram(8) {
        return Err(PlacementError::RawDtbOutsideRam(pa));
    }
    match kernel::boot::dtb::header_totalsize(&header()) {
        Ok(size) if !in_ram(size) => Err(PlacementError::RawDtbOutsideRam(pa)),
        _ => Ok(()),
    }
}

/// The page size an Image needs, from its header's flags (bits 1-2: 1 = 4 KiB,
/// 2 = 16 KiB, 3 = 64 KiB; 0, unspecified, is 4 KiB), so the loader aligns a
/// kernel of any granule right.
pub fn image_page_size(header: &[u8]) -> u64 {
    let flags = header
        .get(24..32)
        .and_then(|f| f.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    match (flags >> 1) & 3 {
        2 => 16 << 10,
        3 => 64 << 10,
        _ => 4 << 10,
    }
}

/// Checks that an image of `size` bytes, built for `page`-byte pages, may go
/// at `pa`.
///
/// # Errors
/// The first rule broken: alignment, RAM, then overlaps.
pub fn check(pa: u64, size: u64, page: u64, ram: &RangeList, busy: &[Busy]) -> Result<(), PlacementError<'static>> {
    if !pa.is_multiple_of(page) {
        return Err(PlacementError::Unaligned { pa, page });
    }
    let image = PhysRange::new(pa, size).ok_or(PlacementError::OutsideRam { pa, size })?;
    if !ram.covers(image) {
        return Err(PlacementError::OutsideRam { pa, size });
    }
    match busy
        .iter()
        .find(|b| b.range.start < image.end && image.start < b.range.end)
    {
        Some(&busy) => Err(PlacementError::Overlaps { pa, busy }),
        None => Ok(()),
    }
}

/// A uniformly chosen `page`-aligned address where `size` bytes fit in RAM
/// without touching anything busy. `seed` picks the slot.
///
/// # Errors
/// [`PlacementError::NoRoom`] if there is no such slot.
pub fn random_slot(
    seed: u64,
    size: u64,
    page: u64,
    ram: &RangeList,
    busy: &[Busy],
) -> Result<u64, PlacementError<'static>> {
    let mut holes = RangeList::new();
    for b in busy {
        let start = b.range.start.align_down(page).raw();
        let end = b.range.end.raw().next_multiple_of(page);
        holes
            .insert(PhysRange::new(start, end - start).ok_or(PlacementError::NoRoom(size))?)
            .map_err(|_| PlacementError::NoRoom(size))?;
    }
    let free = ram.subtract(&holes).map_err(|_| PlacementError::NoRoom(size))?;
    // Slots of each free range: addresses a with a + size <= end.
    let slots_in = |r: &PhysRange| {
        let r = r.shrink_to_pages(page);
        if r.size() >= size {
            (r.size() - size) / page + 1
        } else {
            0
        }
    };
    let total: u64 = free.iter().map(slots_in).sum();
    if total == 0 {
        return Err(PlacementError::NoRoom(size));
    }
    let mut pick = seed % total;
    for r in free.iter() {
        let n = slots_in(r);
        if pick < n {
            return Ok(r.shrink_to_pages(page).start.raw() + pick * page);
        }
        pick -= n;
    }
    Err(PlacementError::NoRoom(size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pi::layout::PAGE_SIZE;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn ram(ranges: &[(u64, u64)]) -> RangeList {
        let mut l = RangeList::new();
        ranges
            .iter()
            .for_each(|&(s, n)| l.insert(PhysRange::new(s, n).unwrap()).unwrap());
        l
    }

    fn busy(start: u64, size: u64, what: &'static str) -> Busy {
        Busy {
            range: PhysRange::new(start, size).unwrap(),
            what,
        }
    }

    #[test]
    fn a_raw_tree_must_lie_in_ram() {
        let ram = ram(&[(GIB, GIB)]);
        let header = |size: u32| {
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&0xd00d_feedu32.to_be_bytes());
            h[4..].copy_from_slice(&size.to_be_bytes());
            move || h
        };
        assert_eq!(check_raw_dtb(0x4600_0000, &ram, header(0x1000)), Ok(()));
        assert_eq!(
            check_raw_dtb(0x4600_0000, &ram, || [0; 8]),
            Ok(()),
            "garbage is the kernel's to explain"
        );
        for (pa, size) in [(0x1000, 0x1000), (0x7fff_f000, 0x2000), (0x4600_0004, 0x100)] {
            assert_eq!(
                check_raw_dtb(pa, &ram, header(size)),
                Err(PlacementError::RawDtbOutsideRam(pa)),
                "{pa:#x}"
            );
        }
    }

    #[test]
    fn requests() {
        assert_eq!(parse_request("console=x"), Ok(None));
        assert_eq!(
            parse_request("splitmap.load=0x40200000"),
            Ok(Some(Request::At(0x4020_0000)))
        );
        assert_eq!(parse_request("a splitmap.load=random b"), Ok(Some(Request::Random)));
        assert_eq!(parse_raw_dtb("splitmap.dtb=0x46000000 x"), Ok(Some(0x4600_0000)));
        assert_eq!(parse_raw_dtb("splitmap.load=0x1000"), Ok(None));
        assert_eq!(parse_raw_dtb("splitmap.dtb=here"), Err(PlacementError::BadDtb("here")));
        assert_eq!(
            parse_request("splitmap.load=1 splitmap.load=0x2000"),
            Ok(Some(Request::At(0x2000)))
        );
        assert_eq!(
            parse_request("splitmap.load=banana"),
            Err(PlacementError::BadValue("banana"))
        );
        assert!(PlacementError::BadValue("x").to_string().contains("random"));
    }

    #[test]
    fn checks_in_order() {
        let r = ram(&[(GIB, GIB)]);
        let b = [
            busy(GIB + 128 * MIB, MIB, "dtb"),
            busy(GIB + MIB, MIB, "stage-0 loader"),
        ];
        let size = 0x69000;
        // (address, expected)
        let rows = [
            (GIB + 2 * MIB, Ok(())),
            (GIB + 0x123_4000, Ok(())),
            (2 * GIB - size, Ok(())),
            (
                GIB + 0x1234,
                Err(PlacementError::Unaligned {
                    pa: GIB + 0x1234,
                    page: 4096,
                }),
            ),
            (
                2 * GIB - size + PAGE_SIZE,
                Err(PlacementError::OutsideRam {
                    pa: 2 * GIB - size + PAGE_SIZE,
                    size,
                }),
            ),
            (0, Err(PlacementError::OutsideRam { pa: 0, size })),
            (
                GIB + 128 * MIB - PAGE_SIZE,
                Err(PlacementError::Overlaps {
                    pa: GIB + 128 * MIB - PAGE_SIZE,
                    busy: b[0],
                }),
            ),
            (
                GIB + MIB,
                Err(PlacementError::Overlaps {
                    pa: GIB + MIB,
                    busy: b[1],
                }),
            ),
            (!0xfff, Err(PlacementError::OutsideRam { pa: !0xfff, size })),
        ];
        for (pa, expected) in rows {
            assert_eq!(check(pa, size, 4096, &r, &b), expected, "{pa:#x}");
        }
    }

    #[test]
    fn random_slots_are_valid_and_cover_the_space() {
        let r = ram(&[(GIB, 64 * MIB), (4 * GIB, 8 * MIB)]);
        let b = [
            busy(GIB + MIB, MIB, "stage-0 loader"),
            busy(GIB + 32 * MIB + 5, 100, "dtb"),
        ];
        let size = 0x69000;
        for seed in 0..5_000u64 {
            let pa = random_slot(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), size, 4096, &r, &b).unwrap();
            check(pa, size, 4096, &r, &b).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        // Slots per free piece, (piece - size) / 4 KiB + 1: [1G, 1G+1M) 152,
        // [1G+2M, 1G+32M) 7576, [1G+32M+4K, 1G+64M) 8087, [4G, 4G+8M) 1944.
        let total = 152 + 7576 + 8087 + 1944;
        assert_eq!(random_slot(0, size, 4096, &r, &b), Ok(GIB), "first slot");
        assert_eq!(
            random_slot(151, size, 4096, &r, &b),
            Ok(GIB + MIB - size),
            "last slot below the loader"
        );
        assert_eq!(
            random_slot(152, size, 4096, &r, &b),
            Ok(GIB + 2 * MIB),
            "first slot above the loader"
        );
        assert_eq!(
            random_slot(total - 1, size, 4096, &r, &b),
            Ok(4 * GIB + 8 * MIB - size),
            "last slot"
        );
        assert_eq!(random_slot(total, size, 4096, &r, &b), Ok(GIB), "wraps around");
        assert_eq!(
            random_slot(1, 16 * GIB, 4096, &r, &b),
            Err(PlacementError::NoRoom(16 * GIB))
        );
    }

    #[test]
    fn the_images_page_size_sets_the_alignment() {
        let header = |flags: u64| {
            let mut h = [0u8; 64];
            h[24..32].copy_from_slice(&flags.to_le_bytes());
            h
        };
        let pages = [(0b1010, 4 << 10), (0b1100, 16 << 10), (0b1110, 64 << 10), (0, 4 << 10)];
        for (flags, page) in pages {
            assert_eq!(image_page_size(&header(flags)), page, "{flags:#b}");
        }
        let mut r = RangeList::new();
        r.insert(PhysRange::new(GIB, GIB).unwrap()).unwrap();
        let e = check(GIB + 0x1000, 0x10000, 64 << 10, &r, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "load address 0x40001000 is not 64 KiB-aligned (the Image is built for 64 KiB pages)"
        );
        for seed in 0..50 {
            assert!(
                random_slot(seed * 7919, 0x10000, 64 << 10, &r, &[])
                    .unwrap()
                    .is_multiple_of(64 << 10)
            );
        }
    }
}
