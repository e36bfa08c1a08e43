//! The BCM2835 power-management block (`brcm,bcm2835-pm-wdt`, the Raspberry
//! Pi's), whose watchdog resets the SoC: which registers get which values.
//! Power-off is the same reset with the boot partition set to 63 in PM_RSTS,
//! which the Pi's firmware (and QEMU's model of the block) take as "halt":
//! QEMU then exits as on a PSCI SYSTEM_OFF.
//!
//! Here, not in the kernel's `boot::power`, because the early code needs it
//! too: a refusal before the device tree is read resets the board through
//! the block at the address `board` gives (the early code cannot call out of
//! this crate). Pure: the writes themselves are the caller's.

/// Every write to the block carries this in its top byte, or is ignored.
pub const PASSWORD: u32 = 0x5a00_0000;
/// The byte the password goes in.
const PASSWORD_MASK: u32 = 0xff00_0000;
/// Reset control: WRCFG (bits 5:4) = full reset fires the reset.
pub const RSTC: u64 = 0x1c;
/// Reset status: the boot partition, spread over its even bits 0-10.
pub const RSTS: u64 = 0x20;
/// Watchdog countdown, in 16 µs ticks.
pub const WDOG: u64 = 0x24;

const RSTC_WRCFG_MASK: u32 = 0x30;
const RSTC_WRCFG_FULL_RESET: u32 = 0x20;
/// Partition 63: every partition bit set.
const RSTS_PARTITION_HALT: u32 = 0x555;
/// A short countdown (10 ticks, 160 µs), as Linux's driver writes.
const WDOG_TICKS: u32 = 10;

/// What to ask of the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Halt: the machine stays off (QEMU exits).
    Off,
    /// Reset: the machine starts again (QEMU exits with `-no-reboot`).
    Reset,
}

/// The writes that do `action`, in order, as (register offset, value), given
/// the registers' values now (`rsts`, `rstc`; whatever their top byte reads
/// as is replaced by the password).
#[inline(always)]
pub fn writes(action: Action, rsts: u32, rstc: u32) -> [(u64, u32); 3] {
    let partition = match action {
        Action::Off => RSTS_PARTITION_HALT,
        Action::Reset => 0,
    };
    let rsts = (rsts & !PASSWORD_MASK & !RSTS_PARTITION_HALT) | partition;
    let rstc = (rstc & !PASSWORD_MASK & !RSTC_WRCFG_MASK) | RSTC_WRCFG_FULL_RESET;
    [
        (RSTS, PASSWORD | rsts),
        (WDOG, PASSWORD | WDOG_TICKS),
        // Last: with WRCFG = full reset the countdown runs (QEMU resets at once).
        (RSTC, PASSWORD | rstc),
    ]
}

/// How long to wait for the countdown (160 µs on hardware) before deciding
/// the reset did not happen, in spin-loop iterations: far longer than that
/// at any clock a Pi runs.
pub const SETTLE_SPINS: u32 = 10_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_off_is_a_reset_into_partition_63() {
        // QEMU's reset values: RSTS 0x1000, RSTC 0x102.
        assert_eq!(
            writes(Action::Off, 0x1000, 0x102),
            [(RSTS, 0x5a00_1555), (WDOG, 0x5a00_000a), (RSTC, 0x5a00_0122)]
        );
        // A reset clears the partition; WRCFG is replaced, other bits kept.
        assert_eq!(
            writes(Action::Reset, 0x1555, 0x132),
            [(RSTS, 0x5a00_1000), (WDOG, 0x5a00_000a), (RSTC, 0x5a00_0122)]
        );
        // Every write carries the password exactly once.
        for (_, value) in writes(Action::Off, u32::MAX, u32::MAX) {
            assert_eq!(value & 0xff00_0000, PASSWORD);
        }
    }
}
