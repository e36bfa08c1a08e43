//! What boot takes out of RAM before the frame allocator gets the rest: the
//! image, the DTB, the initrd, the tree's own reservations, and the heap. Pure,
//! so which pages end up free is tested on the host.

use pi::addr::PhysAddr;
use pi::layout::PAGE_SIZE;

use super::dtb::{DeviceTree, MAX_RESERVED_RANGES};
use crate::mm::ranges::{PhysRange, RangeList};

/// A reserved range and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The range.
    pub range: PhysRange,
    /// `image`, `dtb`, `initrd`, `efi-mmap`, `memreserve`, `heap`.
    pub what: &'static str,
}

/// Room for every reservation: the tree's (at most `MAX_RESERVED_RANGES`,
/// which the reader enforces), and the kernel's own five: image, dtb,
/// initrd, efi-mmap, heap. [`reserve_efi`] fills the slots in order.
pub const MAX_RESERVATIONS: usize = MAX_RESERVED_RANGES + 5;

/// RAM split between what is taken and what is free.
#[derive(Clone, Copy, Debug)]
pub struct Reserved {
    /// Reservations, in the order found (the heap last).
    pub list: [Option<Reservation>; MAX_RESERVATIONS],
    /// The heap: the top `heap_size` bytes of the highest free range that can
    /// spare twice that, so low memory (below the image too) stays frames.
    pub heap: PhysRange,
    /// Whole pages left for the frame allocator.
    pub free: RangeList,
}

/// Why RAM could not be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveError {
    /// The reservations split RAM into more ranges than a [`RangeList`] holds.
    TooManyRanges,
    /// No free range can hold the heap.
    NoRoomForHeap,
}

impl core::fmt::Display for ReserveError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReserveError::TooManyRanges => write!(
                f,
                "the reservations split RAM into more than {} ranges",
                crate::mm::ranges::MAX_RANGES
            ),
            ReserveError::NoRoomForHeap => write!(
                f,
                "no RAM left free by the reservations (the tree's /memreserve/ entries and /reserved-memory, the image, the tree, the initrd) is a range that can spare the heap"
            ),
        }
    }
}

impl Reserved {
    /// Nothing reserved yet: what [`reserve_efi`] fills in place. A
    /// constant, so the boot's static starts as it.
    pub const EMPTY: Reserved = Reserved {
        list: [None; MAX_RESERVATIONS],
        heap: PhysRange {
            start: PhysAddr::new(0),
            end: PhysAddr::new(0),
        },
        free: RangeList::new(),
    };
}

/// Reserves the `image`, the DTB at `dtb`, what the tree `dt` names, and a
/// heap of `heap_size` bytes; the rest of RAM is free, in whole pages (a frame
/// never shares a page with anything reserved).
///
/// # Errors
/// [`ReserveError`]: the kernel cannot go on without a heap.
pub fn reserve(
    dt: &DeviceTree<'_>,
    image: PhysRange,
    dtb: PhysRange,
    heap_size: u64,
) -> Result<Reserved, ReserveError> {
    let mut reserved = Reserved::EMPTY;
    reserve_efi(&mut reserved, dt, image, dtb, heap_size, None, &RangeList::new())?;
    Ok(reserved)
}

/// [`reserve`] under UEFI, into `out`, which must be [`Reserved::EMPTY`]:
/// also the memory map the EFI stub handed over (`efi_map`, kept for the
/// `efi` command) and every region of it the firmware or the hardware still
/// owns (`kept`: runtime services code and data, reserved, ACPI, MMIO;
/// `boot::efi::kept_ranges`), none of which may ever reach the frame
/// allocator or the heap. Boot fills its static in place: the value is two
/// kilobytes, and returned it was copied three times on its way there
/// (4,000 instructions, measured under `--icount`).
///
/// # Errors
/// As [`reserve`]; `out` is then half-filled, to be thrown away.
pub fn reserve_efi(
    out: &mut Reserved,
    dt: &DeviceTree<'_>,
    image: PhysRange,
    dtb: PhysRange,
    heap_size: u64,
    efi_map: Option<PhysRange>,
    kept: &RangeList,
) -> Result<(), ReserveError> {
    // One slot each, in this order, the heap's last; the tree's
    // reservations are capped so that all always fit.
    let mut taken = 0;
    let mut take = |range: PhysRange, what| {
        out.list[taken] = Some(Reservation { range, what });
        taken += 1;
    };
    take(image, "image");
    take(dtb, "dtb");
    if let Some(initrd) = dt.initrd {
        take(initrd, "initrd");
    }
    if let Some(map) = efi_map {
        take(map, "efi-mmap");
    }
    for &r in dt.reserved.iter() {
        take(r, "memreserve");
    }
    // Free is RAM without the whole pages of what the firmware keeps and of
    // each reservation, taken out one at a time. Each removal splits at most
    // one range in two, so without UEFI all fit (`boot::dtb` caps RAM and
    // the tree's reservations for it). Merging the holes into a list first
    // was a kilobyte zeroed and a sorted insert each, and taking each out
    // as it was listed a call site each (frames phase: 84 -> 73 translated
    // blocks).
    let free = &mut out.free;
    free.copy_from(&dt.memory);
    let taken_out = out.list[..taken].iter().flatten().map(|r| r.range);
    for hole in kept.iter().copied().chain(taken_out) {
        free.remove(hole.expand_to_pages(PAGE_SIZE))
            .map_err(|_| ReserveError::TooManyRanges)?;
    }
    let top = free
        .iter()
        .rev()
        .map(|r| r.shrink_to_pages(PAGE_SIZE))
        .find(|r| r.size() >= 2 * heap_size)
        .ok_or(ReserveError::NoRoomForHeap)?
        .end;
    let heap = PhysRange {
        start: PhysAddr::new(top.raw() - heap_size),
        end: top,
    };
    out.list[taken] = Some(Reservation {
        range: heap,
        what: "heap",
    });
    // What the heap takes is no longer free (as if it had been a hole).
    free.remove(heap).map_err(|_| ReserveError::TooManyRanges)?;
    out.heap = heap;
    Ok(())
}

/// Whole frames of `free` that lie below `limit`.
pub fn frames_below(free: &RangeList, limit: PhysAddr) -> u64 {
    free.iter()
        .map(|r| {
            let r = r.shrink_to_pages(PAGE_SIZE);
            let end = r.end.min(limit);
            if end > r.start {
                (end.raw() - r.start.raw()) / PAGE_SIZE
            } else {
                0
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn range(start: u64, size: u64) -> PhysRange {
        PhysRange::new(start, size).unwrap()
    }

    /// 1 GiB of RAM at 1 GiB, as on QEMU virt, with an initrd.
    fn machine() -> DeviceTree<'static> {
        let mut dt = crate::boot::dtb::DeviceTree::empty();
        dt.memory.insert(range(0x4000_0000, 1 << 30)).unwrap();
        dt.initrd = Some(range(0x4800_0000, 0xb414));
        dt
    }

    #[test]
    fn efi_kept_regions_and_the_map_never_become_frames_or_heap() {
        let dt = machine();
        let mut kept = RangeList::new();
        // Runtime services at the top of RAM, where the heap would go.
        kept.insert(range(0x7fe0_0000, 0x20_0000)).unwrap();
        kept.insert(range(0x4400_1000, 0x1000)).unwrap();
        let map = range(0x4500_0000, 0x1200);
        let image = range(0x4020_0000, 0x88000);
        let mut r = Reserved::EMPTY;
        reserve_efi(
            &mut r,
            &dt,
            image,
            range(0x4820_0000, 0x1000),
            4 * MIB,
            Some(map),
            &kept,
        )
        .unwrap();
        let names: Vec<_> = r.list.iter().flatten().map(|r| r.what).collect();
        assert_eq!(names, ["image", "dtb", "initrd", "efi-mmap", "heap"]);
        for taken in kept.iter().copied().chain([map.expand_to_pages(PAGE_SIZE)]) {
            let overlaps = |a: PhysRange| a.start < taken.end && taken.start < a.end;
            assert!(!overlaps(r.heap), "heap {:?} overlaps {taken:?}", r.heap);
            for free in r.free.iter() {
                assert!(!overlaps(*free), "free {free:?} overlaps {taken:?}");
            }
        }
        // Without them the top of RAM is the heap's.
        let plain = reserve(&dt, image, range(0x4820_0000, 0x1000), 4 * MIB).unwrap();
        assert!(plain.heap.end > PhysAddr::new(0x7fe0_0000));
    }

    #[test]
    fn the_heap_takes_the_top_and_frames_get_the_rest_in_whole_pages() {
        let dt = machine();
        let image = range(0x4020_0000, 0x88000);
        let dtb = range(0x4820_0000, 0x100000);
        let r = reserve(&dt, image, dtb, 4 * MIB).unwrap();
        let names: Vec<_> = r.list.iter().flatten().map(|r| r.what).collect();
        assert_eq!(names, ["image", "dtb", "initrd", "heap"]);
        assert_eq!(r.heap, range(0x8000_0000 - 4 * MIB, 4 * MIB));
        // Nothing free overlaps a reservation, and the initrd's partial last
        // page is not free either.
        for free in r.free.iter() {
            for taken in r.list.iter().flatten() {
                assert!(
                    free.end <= taken.range.start || taken.range.end <= free.start,
                    "{free:?}"
                );
            }
            assert!(free.start.is_aligned(PAGE_SIZE) && free.end.is_aligned(PAGE_SIZE));
        }
        assert!(
            !r.free
                .iter()
                .any(|f| f.start.raw() <= 0x4800_b000 && 0x4800_b000 < f.end.raw())
        );
        // Below the image: the 2 MiB from the RAM base.
        assert_eq!(frames_below(&r.free, image.start), 2 * MIB / PAGE_SIZE);
        let total: u64 = r.free.iter().map(|f| f.size()).sum();
        assert_eq!(total, (1 << 30) - 0x88000 - 0x100000 - 0xc000 - 4 * MIB);
    }

    #[test]
    fn reservations_sharing_pages_or_touching_come_out_once() {
        // The initrd starts in the DTB's last page, the DTB right after the
        // image, a tree reservation inside the initrd: each taken out on its
        // own, what is left is RAM without their union, in whole pages.
        let mut dt = machine();
        dt.initrd = Some(range(0x402f_f800, 0x2000));
        dt.reserved.insert(range(0x4030_0000, 0x10)).unwrap();
        let image = range(0x4020_0000, 0x88000);
        let dtb = range(0x4028_8000, 0x77c00);
        let r = reserve(&dt, image, dtb, 4 * MIB).unwrap();
        let pairs: Vec<_> = r.free.iter().map(|f| (f.start.raw(), f.end.raw())).collect();
        assert_eq!(
            pairs,
            [(0x4000_0000, 0x4020_0000), (0x4030_2000, 0x8000_0000 - 4 * MIB)]
        );
    }

    #[test]
    fn tree_reservations_are_listed_and_kept_out() {
        let mut dt = machine();
        dt.reserved.insert(range(0x5000_0000, 0x1000)).unwrap();
        let r = reserve(&dt, range(0x4020_0000, 0x88000), range(0x4820_0000, 0x1000), 4 * MIB).unwrap();
        assert!(r.list.iter().flatten().any(|x| x.what == "memreserve"));
        assert_eq!(
            frames_below(&r.free, PhysAddr::new(0x5000_1000)) - frames_below(&r.free, PhysAddr::new(0x5000_0000)),
            0
        );
    }

    #[test]
    fn no_room_for_the_heap_is_an_error() {
        let mut dt = DeviceTree::empty();
        dt.memory.insert(range(0x4000_0000, 6 * MIB)).unwrap();
        let e = reserve(&dt, range(0x4000_0000, 0x88000), range(0x4050_0000, 0x1000), 4 * MIB);
        assert_eq!(e.unwrap_err(), ReserveError::NoRoomForHeap);
        // Said in words, not by the variant's name (the panic prints it).
        assert!(
            ReserveError::NoRoomForHeap
                .to_string()
                .starts_with("no RAM left free by the reservations"),
            "{}",
            ReserveError::NoRoomForHeap
        );
        assert_eq!(
            ReserveError::TooManyRanges.to_string(),
            "the reservations split RAM into more than 64 ranges"
        );
    }

    #[test]
    fn frames_below_counts_whole_pages_only() {
        let mut free = RangeList::new();
        free.insert(range(0x1000, 0x3800)).unwrap();
        assert_eq!(frames_below(&free, PhysAddr::new(0x10_0000)), 3);
        assert_eq!(frames_below(&free, PhysAddr::new(0x2000)), 1);
        assert_eq!(frames_below(&free, PhysAddr::new(0x1000)), 0);
    }
}
