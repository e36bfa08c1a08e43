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
