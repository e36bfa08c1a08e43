//! Device registers, read and written one instruction each: `ldr`/`str`
//! (or `ldrb`/`strb`) from a base register, no writeback, no pair. Under a
//! hypervisor (KVM, `--accel kvm`) an MMIO access traps and the hypervisor
//! emulates it from the syndrome, which it can only do for such plain
//! single loads and stores (ESR's ISV); `read_volatile` promises the access
//! but not its addressing mode. Linux's `__raw_readl`/`__raw_writel` exist
//! for the same reason. Ordering between devices is the caller's: these
//! are no barriers beyond the compiler's. (The host build, where the
//! drivers compile for their tests but never run, uses volatile accesses.)

/// Reads the 32-bit register at `at`.
///
/// # Safety
/// `at` must be a 4-byte aligned register address mapped as Device memory.
pub unsafe fn read32(at: u64) -> u32 {
    #[cfg(target_arch = "aarch64")]
    {
        let value: u32;
        // SAFETY: the caller's contract; one load, no writeback.
        unsafe { core::arch::asm!("ldr {v:w}, [{a}]", a = in(reg) at, v = out(reg) value, options(nostack, readonly)) };
        value
    }
    #[cfg(not(target_arch = "aarch64"))]
    // SAFETY: the caller's contract.
    unsafe {
        core::ptr::read_volatile(at as *const u32)
    }
}

/// Writes the 32-bit register at `at`.
///
/// # Safety
/// As [`read32`]; and the write must be one the device expects.
pub unsafe fn write32(at: u64, value: u32) {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller's contract; one store, no writeback.
    unsafe {
        core::arch::asm!("str {v:w}, [{a}]", a = in(reg) at, v = in(reg) value, options(nostack));
    }
    #[cfg(not(target_arch = "aarch64"))]
    // SAFETY: the caller's contract.
    unsafe {
        core::ptr::write_volatile(at as *mut u32, value);
    }
}

/// Writes the 8-bit register at `at` (the GIC's byte-wide priorities).
///
/// # Safety
/// As [`write32`], for a byte-accessible register.
pub unsafe fn write8(at: u64, value: u8) {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller's contract; one byte store, no writeback.
    unsafe {
        core::arch::asm!("strb {v:w}, [{a}]", a = in(reg) at, v = in(reg) u32::from(value), options(nostack));
    }
    #[cfg(not(target_arch = "aarch64"))]
    // SAFETY: the caller's contract.
    unsafe {
        core::ptr::write_volatile(at as *mut u8, value);
    }
}
