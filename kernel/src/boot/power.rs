//! The board's own power control, for a device tree without `/psci`: the
//! BCM2835 power-management block (`brcm,bcm2835-pm-wdt`, the Raspberry
//! Pi's), whose watchdog resets the SoC, mapped where the tree says and
//! lent to `arch::psci` for power-off and reset. Which registers get which
//! values is `pi::pm` (the early code resets the board with it too).

#[cfg(kernel_proper)]
pub use machine::start;

#[cfg(kernel_proper)]
mod machine {
    use pi::kmap::{self, FixedWindow};
    use pi::layout::PAGE_SIZE;
    use pi::pgtable::MapError;
    use pi::pm::{Action, RSTC, RSTS, SETTLE_SPINS, writes};
    use spin::Once;

    use crate::arch::psci::{self, BoardPower};
    use crate::mm::ranges::PhysRange;
    use crate::mm::tables;

    /// The MMIO window; the block's page goes in its last page, clear of the
    /// console's, which start at the window's first.
    const MMIO: FixedWindow = kmap::fixed("mmio");

    /// Where the block's registers are mapped.
    static REGS: Once<u64> = Once::new();

    /// Maps the block at `regs` and makes it the machine's power-off and reset.
    ///
    /// # Errors
    /// Why it could not be mapped (a console over the whole MMIO window, or
    /// registers that straddle a page).
    pub fn start(regs: PhysRange) -> Result<(), MapError> {
        let page = regs.expand_to_pages(PAGE_SIZE);
        if page.size() != PAGE_SIZE {
            return Err(MapError::Misaligned);
        }
        let va = MMIO.end - PAGE_SIZE;
        tables::map(va, page.start, PAGE_SIZE, MMIO.mapping.attrs, MMIO.mapping.granularity)?;
        REGS.call_once(|| va + (regs.start.raw() - page.start.raw()));
        psci::use_board_power(BoardPower {
            name: "BCM2835 power-management watchdog",
            off: || fire(Action::Off),
            reset: || fire(Action::Reset),
        });
        Ok(())
    }

    /// Asks the block for `action`; returns only if it did not happen.
    fn fire(action: Action) {
        let Some(&base) = REGS.get() else { return };
        use crate::arch::mmio::{read32, write32};
        // SAFETY: `base` maps the block's registers as Device memory (`start`);
        // these are 32-bit registers at their documented offsets.
        unsafe {
            let (rsts, rstc) = (read32(base + RSTS), read32(base + RSTC));
            for (offset, value) in writes(action, rsts, rstc) {
                write32(base + offset, value);
            }
        }
        // The reset takes the watchdog's countdown (160 µs) on hardware.
        for _ in 0..SETTLE_SPINS {
            core::hint::spin_loop();
        }
    }
}
