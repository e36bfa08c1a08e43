//! Small CPU operations: barriers, TLB maintenance, translation registers.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{DAIF, Readable, TCR_EL1, TTBR0_EL1, TTBR1_EL1, Writeable};
use pi::addr::PhysAddr;

/// Makes page-table stores visible to the table walker before they are used.
/// Enough for invalid-to-valid changes, which need no TLB invalidation.
pub fn publish_tables() {
    barrier::dsb(barrier::ISHST);
    barrier::isb(barrier::SY);
}

/// Stops all walks through TTBR0: after the jump to the high half, the
/// identity page is never used again.
pub fn disable_ttbr0() {
    TCR_EL1.set(TCR_EL1.get() | pi::boot::TCR_EPD0);
    TTBR0_EL1.set(0);
    barrier::isb(barrier::SY);
    // SAFETY: TLB invalidation has no memory-safety preconditions.
    unsafe { core::arch::asm!("tlbi vmalle1", "dsb nsh", "isb", options(nostack, preserves_flags)) };
}

/// Whether TTBR0 walks are off.
pub fn ttbr0_disabled() -> bool {
    TCR_EL1.get() & pi::boot::TCR_EPD0 != 0
}

/// Root of the kernel-half tables.
pub fn ttbr1_root() -> PhysAddr {
    // BADDR is bits [47:1]; with 48-bit PAs and no ASID use the low 48 bits.
    PhysAddr::new(TTBR1_EL1.get() & 0x0000_ffff_ffff_fffe)
}

/// Masks interrupts and waits forever.
pub fn park() -> ! {
    DAIF.set(0b1111 << 6);
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Invalidates every TLB entry of this translation regime, after removing
/// mappings.
pub fn flush_tlb() {
    // SAFETY: TLB invalidation has no memory-safety preconditions.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalle1is",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}
