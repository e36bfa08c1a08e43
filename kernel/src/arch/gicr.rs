//! GICv3 redistributors: which of a region's frames is a CPU's. Each CPU
//! has its own, in a row of them that the device tree gives as one region;
//! the row's order is the firmware's, not the CPUs' numbers, so a CPU finds
//! its own by the affinity in each frame's GICR_TYPER, as Linux's
//! `gic_populate_rdist` does. Pure: the register reads come from the caller
//! (`gic`), so this builds and is tested on the host.

/// One GICv3 redistributor without virtual LPIs: RD_base and SGI_base,
/// 64 KiB each (GICR_TYPER.VLPIS set adds two more frames).
pub const REDISTRIBUTOR: u64 = 0x2_0000;

/// Where the redistributor of the CPU with `affinity` (GICR_TYPER's
/// bits 63:32) is, from the first of `len` bytes of them, given each one's
/// GICR_TYPER by `typer(offset)`. The frames come in order, each two or
/// (with virtual LPIs, GICR_TYPER.VLPIS) four 64 KiB frames long, the last
/// with GICR_TYPER.Last set; which CPU a frame serves is only in its
/// TYPER, not in its place (firmware numbers CPUs as it likes).
pub fn find_redistributor(len: u64, affinity: u64, typer: impl Fn(u64) -> u64) -> Option<u64> {
    let mut at = 0;
    while at + REDISTRIBUTOR <= len {
        let t = typer(at);
        if t >> 32 == affinity {
            return Some(at);
        }
        if t & (1 << 4) != 0 {
            return None;
        }
        at += if t & (1 << 1) != 0 {
            2 * REDISTRIBUTOR
        } else {
            REDISTRIBUTOR
        };
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
        assert_eq!(find_redistributor(len, 0x100, read), Some(0));
        assert_eq!(find_redistributor(len, 0, read), Some(REDISTRIBUTOR));
        assert_eq!(find_redistributor(len, 1, read), Some(2 * REDISTRIBUTOR));
        assert_eq!(find_redistributor(len, 2, read), None, "past the last");
        // Fewer bytes mapped than frames listed: never read past them.
        assert_eq!(find_redistributor(2 * REDISTRIBUTOR, 1, read), None);
        assert_eq!(find_redistributor(REDISTRIBUTOR - 1, 0x100, read), None);
    }

    #[test]
    fn redistributors_with_virtual_lpis_are_four_frames_long() {
        let read = |at: u64| match at {
            0 => typer(0, false, true),
            x if x == 2 * REDISTRIBUTOR => typer(1, true, true),
            _ => panic!("read at {at:#x}, inside a redistributor"),
        };
        assert_eq!(find_redistributor(4 * REDISTRIBUTOR, 1, read), Some(2 * REDISTRIBUTOR));
    }

    #[test]
    fn the_last_flag_ends_the_search() {
        let read = |at: u64| {
            assert_eq!(at, 0, "read past the last");
            typer(0, true, false)
        };
        assert_eq!(find_redistributor(8 * REDISTRIBUTOR, 5, read), None);
    }
}
