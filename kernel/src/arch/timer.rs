//! The EL1 virtual timer (CNTV_*): one compare value against the virtual
//! count (`counter`), raising its PPI while the count has passed it and the
//! timer is enabled and unmasked. The watchdog (`irq`) is its one user.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0, Writeable};

use super::counter;

/// Fires once the virtual count reaches `at`. The timer's line is
/// level-triggered: it stays asserted until the compare value moves past
/// the count or the timer is stopped, so every handler does one or the other
/// before its EOI.
pub fn fire_at(at: u64) {
    CNTV_CVAL_EL0.set(at);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    barrier::isb(barrier::SY);
}

/// Stops the timer: its line drops (the `isb` makes that so before the
/// next instruction, an EOI or an unmask).
pub fn stop() {
    CNTV_CTL_EL0.set(0);
    barrier::isb(barrier::SY);
}

/// The virtual count `ms` milliseconds from now (saturating; at least one
/// tick ahead).
pub fn after_ms(ms: u64) -> u64 {
    let ticks = u128::from(counter::frequency()) * u128::from(ms) / 1000;
    counter::now().saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX).max(1))
}
