//! GICv3 redistributors: which of them is a CPU's. Each CPU has its own,
//! in rows of them that the device tree gives as one region or several
//! (`#redistributor-regions`); a row's order is the firmware's, not the
//! CPUs' numbers, so a CPU finds its own by the affinity in each frame's
//! GICR_TYPER, as Linux's `gic_populate_rdist` does. Pure: the register
//! reads come from the caller (`gic`), so this builds and is tested on the
//! host.

/// One GICv3 redistributor without virtual LPIs: RD_base and SGI_base,
/// 64 KiB each (GICR_TYPER.VLPIS set adds two more frames).
pub const REDISTRIBUTOR: u64 = 0x2_0000;

/// How many redistributor regions the kernel reads (QEMU's `virt` splits
/// them in two past 123 CPUs; the binding allows any number).
pub const MAX_REGIONS: usize = 4;

/// The redistributor regions as mapped, and how far apart their
/// redistributors are.
#[derive(Clone, Copy, Debug)]
pub struct Redistributors {
    /// Each region's mapping and length, `(va, len)`; `(0, 0)` for none.
    pub regions: [(u64, u64); MAX_REGIONS],
    /// `redistributor-stride`: the bytes from one redistributor to the
    /// next where firmware pads them; `None` where each one's GICR_TYPER
    /// says its length.
    pub stride: Option<u64>,
}

impl Redistributors {
    /// No region.
    pub const NONE: Redistributors = Redistributors {
        regions: [(0, 0); MAX_REGIONS],
        stride: None,
    };

    /// The mapping of the redistributor of the CPU with `affinity`,
    /// looked for region by region, given the GICR_TYPER at a mapping by
    /// `typer(va)`.
    pub fn find(&self, affinity: u64, typer: impl Fn(u64) -> u64) -> Option<u64> {
        self.regions.iter().find_map(|&(va, len)| {
            find_redistributor(len, affinity, self.stride, |at| typer(va + at)).map(|at| va + at)
        })
    }
}

/// Where the redistributor of the CPU with `affinity` (GICR_TYPER's
/// bits 63:32) is, from the first of `len` bytes of them, given each one's
/// GICR_TYPER by `typer(offset)`. The frames come in order, each `stride`
/// bytes or else two or (with virtual LPIs, GICR_TYPER.VLPIS) four 64 KiB
/// frames long, the last with GICR_TYPER.Last set; which CPU a frame
/// serves is only in its TYPER, not in its place (firmware numbers CPUs as
/// it likes).
pub fn find_redistributor(len: u64, affinity: u64, stride: Option<u64>, typer: impl Fn(u64) -> u64) -> Option<u64> {
    let mut at: u64 = 0;
    // Checked: a stride from a tree could carry `at` past the top.
    while at.checked_add(REDISTRIBUTOR)? <= len {
        let t = typer(at);
        if t >> 32 == affinity {
            return Some(at);
        }
        if t & (1 << 4) != 0 {
            return None;
        }
        let step = match stride {
            // A stride shorter than a redistributor would read inside one.
            Some(stride) => stride.max(REDISTRIBUTOR),
            None if t & (1 << 1) != 0 => 2 * REDISTRIBUTOR,
            None => REDISTRIBUTOR,
        };
        at = at.checked_add(step)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GICR_TYPER of a redistributor for `affinity`, the last one or not,
    /// with virtual LPIs or not.
    fn typer(affinity: u64, last: bool, vlpis: bool) -> u64 {
        affinity << 32 | u64::from(last) << 4 | u64::from(vlpis) << 1
    }

    #[test]
    fn a_cpus_redistributor_is_found_by_affinity_not_by_place() {
        // Three CPUs whose firmware listed them 0x100, 0, 1.
        let frames = [
            typer(0x100, false, false),
            typer(0, false, false),
            typer(1, true, false),
        ];
        let read = |at: u64| frames[(at / REDISTRIBUTOR) as usize];
        let len = 3 * REDISTRIBUTOR;
        assert_eq!(find_redistributor(len, 0x100, None, read), Some(0));
        assert_eq!(find_redistributor(len, 0, None, read), Some(REDISTRIBUTOR));
        assert_eq!(find_redistributor(len, 1, None, read), Some(2 * REDISTRIBUTOR));
        assert_eq!(find_redistributor(len, 2, None, read), None, "past the last");
        // Fewer bytes mapped than frames listed: never read past them.
        assert_eq!(find_redistributor(2 * REDISTRIBUTOR, 1, None, read), None);
        assert_eq!(find_redistributor(REDISTRIBUTOR - 1, 0x100, None, read), None);
    }

    #[test]
    fn redistributors_with_virtual_lpis_are_four_frames_long() {
        let read = |at: u64| match at {
            0 => typer(0, false, true),
            x if x == 2 * REDISTRIBUTOR => typer(1, true, true),
            _ => panic!("read at {at:#x}, inside a redistributor"),
        };
        assert_eq!(
            find_redistributor(4 * REDISTRIBUTOR, 1, None, read),
            Some(2 * REDISTRIBUTOR)
        );
    }

    #[test]
    fn the_last_flag_ends_the_search() {
        let read = |at: u64| {
            assert_eq!(at, 0, "read past the last");
            typer(0, true, false)
        };
        assert_eq!(find_redistributor(8 * REDISTRIBUTOR, 5, None, read), None);
    }

    #[test]
    fn a_stride_from_the_tree_steps_over_padding() {
        // Firmware pads each redistributor to 256 KiB: the frames between
        // are not redistributors, and reading them would be wrong.
        let stride = 4 * REDISTRIBUTOR;
        let read = move |at: u64| match at / stride {
            _ if !at.is_multiple_of(stride) => panic!("read at {at:#x}, in padding"),
            0 => typer(0, false, false),
            1 => typer(1, false, false),
            _ => typer(2, true, false),
        };
        assert_eq!(find_redistributor(3 * stride, 2, Some(stride), read), Some(2 * stride));
        assert_eq!(find_redistributor(3 * stride, 3, Some(stride), read), None);
        // A stride near the top of the address space ends the search.
        let first = |at: u64| {
            assert_eq!(at, 0, "read at {at:#x}");
            typer(0, false, false)
        };
        assert_eq!(find_redistributor(u64::MAX, 1, Some(u64::MAX - 0xffff), first), None);
    }

    #[test]
    fn each_region_is_searched_to_its_own_last_flag() {
        // Two regions, each ending in its own Last: CPU 1's is in the
        // second, at the start of its mapping.
        let regions = Redistributors {
            regions: [
                (0x1000_0000, REDISTRIBUTOR),
                (0x2000_0000, 8 * REDISTRIBUTOR),
                (0, 0),
                (0, 0),
            ],
            stride: None,
        };
        let read = |va: u64| match va {
            0x1000_0000 => typer(0, true, false),
            0x2000_0000 => typer(1, false, false),
            0x2002_0000 => typer(2, true, false),
            _ => panic!("read at {va:#x}"),
        };
        assert_eq!(regions.find(0, read), Some(0x1000_0000));
        assert_eq!(regions.find(1, read), Some(0x2000_0000));
        assert_eq!(regions.find(2, read), Some(0x2002_0000));
        assert_eq!(regions.find(3, read), None);
    }
}
