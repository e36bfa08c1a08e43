//! The generic timer's virtual count (CNTVCT_EL0): time that every arm64 CPU
//! keeps, at a fixed frequency (CNTFRQ_EL0; 62.5 MHz under QEMU). Boot reads
//! it at each phase's end, and the early code at its first instruction at
//! EL1, so `phases` can say where the wall time of a boot goes.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, Readable};

/// The count now. The `isb` keeps the read from being taken early, before
/// the work it is meant to follow.
pub fn now() -> u64 {
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// Counts per second (0 only if firmware failed to set CNTFRQ_EL0).
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// CNTKCTL_EL1.EVNTEN: the counter sets the event register on a bit's
/// transition.
const EVNTEN: u64 = 1 << 2;
/// CNTKCTL_EL1.EVNTI: which count bit (its transitions every 2^(bit+1)
/// counts): bit 15, about a millisecond at 62.5 MHz, 3 at the Pi's 19.2 MHz.
const EVNTI: u64 = 15 << 4;

/// Turns on this CPU's event stream, as Linux does: every `WFE` then ends
/// within a millisecond or so even if no `SEV` comes, so a wait for a CPU
/// that never answers (bounded by counting) cannot sleep for good.
pub fn enable_event_stream() {
    let ctl: u64;
    // SAFETY: CNTKCTL_EL1 only controls EL0 access and the event stream.
    unsafe {
        core::arch::asm!("mrs {}, cntkctl_el1", out(reg) ctl, options(nomem, nostack));
        core::arch::asm!("msr cntkctl_el1, {}", "isb", in(reg) (ctl & !(0xf << 4)) | EVNTEN | EVNTI, options(nomem, nostack));
    }
}
