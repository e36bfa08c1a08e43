//! Counting retired instructions with the PMU (event 0x08, INST_RETIRED).
//!
//! Under QEMU's TCG the event exists only with `-icount` (`splitmap run
//! --icount`); elsewhere the counter is not offered and [`Instructions::start`]
//! says so. Event counter 0 measures one piece of work at a time; counter 1
//! runs from the first instruction ([`boot_clock`]). Nothing else in the
//! kernel uses the PMU.

/// A running count.
pub struct Instructions;

const INST_RETIRED: u64 = 0x08;

/// How many event counters the PMU has (PMCR_EL0.N), 0 without a PMU
/// (ID_AA64DFR0_EL1.PMUVer 0 or 0xF), where every PMU register access is
/// undefined. A counter past N is not there to program either.
fn counters() -> u64 {
    let dfr0: u64;
    // SAFETY: ID_AA64DFR0_EL1 is always readable at EL1.
    unsafe { core::arch::asm!("mrs {}, id_aa64dfr0_el1", out(reg) dfr0, options(nomem, nostack)) };
    if matches!((dfr0 >> 8) & 0xf, 0 | 0xf) {
        return 0;
    }
    let pmcr: u64;
    // SAFETY: PMCR_EL0 is readable at EL1 when a PMU is present.
    unsafe { core::arch::asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nomem, nostack)) };
    (pmcr >> 11) & 0x1f
}

impl Instructions {
    /// Starts counting from zero, if the CPU counts instructions.
    pub fn start() -> Option<Instructions> {
        if counters() < 1 {
            return None;
        }
        let events: u64;
        // SAFETY: PMCEID0_EL0 is readable at EL1 when a PMU is present.
        unsafe { core::arch::asm!("mrs {}, pmceid0_el0", out(reg) events, options(nomem, nostack)) };
        if events & (1 << INST_RETIRED) == 0 {
            return None;
        }
        // SAFETY: programming counter 0 of a present PMU from EL1: select the
        // event, zero the counter, enable the PMU (PMCR_EL0.E) and the counter.
        unsafe {
            core::arch::asm!(
                "msr pmevtyper0_el0, {event}",
                "msr pmevcntr0_el0, xzr",
                "mrs {t}, pmcr_el0",
                "orr {t}, {t}, #1",
                "msr pmcr_el0, {t}",
                "msr pmcntenset_el0, {one}",
                "isb",
                event = in(reg) INST_RETIRED,
                one = in(reg) 1u64,
                t = out(reg) _,
                options(nostack),
            );
        }
        Some(Instructions)
    }

    /// Stops the counter and returns the instructions retired since `start`.
    pub fn stop(self) -> u64 {
        let count: u64;
        // SAFETY: reads and disables counter 0, which `start` enabled.
        unsafe {
            core::arch::asm!(
                "isb",
                "mrs {count}, pmevcntr0_el0",
                "msr pmcntenclr_el0, {one}",
                count = out(reg) count,
                one = in(reg) 1u64,
                options(nostack),
            );
        }
        count
    }
}

/// Instructions retired since the kernel's first instruction at EL1, if the
/// early code could start counting them (event counter 1, which
/// `__pi_primary_entry` programs before anything else; it is never stopped).
pub fn boot_clock() -> Option<u64> {
    if counters() < 2 {
        return None;
    }
    // SAFETY: the PMU's enable and counter registers are readable at EL1
    // when a PMU is present.
    unsafe {
        let (enabled, count): (u64, u64);
        core::arch::asm!(
            "mrs {enabled}, pmcntenset_el0",
            "isb",
            "mrs {count}, pmevcntr1_el0",
            enabled = out(reg) enabled,
            count = out(reg) count,
            options(nomem, nostack),
        );
        // Without the event (QEMU without -icount) the counter stays at 0.
        (enabled & 2 != 0 && count > 0).then_some(count)
    }
}
