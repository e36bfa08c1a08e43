//! Which CPU this is: TPIDR_EL1 holds its number, 0 for the boot CPU, and
//! every per-CPU value is an array slot indexed by it.
//!
//! A number, not a pointer to a per-CPU struct: a KASLR move changes every
//! image address after CPU 0 has set its register, and a number needs no
//! fixing up. Module code cannot change it: the module scanner refuses any
//! access to TPIDR_EL1 (`module::scan`).

/// The most CPUs the kernel brings up (the tool's `--smp` limit on virt);
/// the device tree's others are reported and left off.
pub const MAX_CPUS: usize = 8;

/// This CPU's number, below [`MAX_CPUS`]. 0 off the machine and in builds
/// of this crate that are not the kernel (stage-0), which run on one CPU.
#[inline]
pub fn id() -> usize {
    #[cfg(kernel_proper)]
    {
        let n: u64;
        // SAFETY: TPIDR_EL1 is always readable at EL1.
        unsafe { core::arch::asm!("mrs {}, tpidr_el1", out(reg) n, options(nomem, nostack, preserves_flags)) };
        (n as usize).min(MAX_CPUS - 1)
    }
    #[cfg(not(kernel_proper))]
    {
        0
    }
}

/// Makes this CPU number `n`: the first thing each CPU does in the kernel
/// proper (its reset value is UNKNOWN on hardware).
#[cfg(kernel_proper)]
pub fn set_id(n: usize) {
    debug_assert!(n < MAX_CPUS);
    // SAFETY: TPIDR_EL1 is a software register; only `id` reads it.
    unsafe { core::arch::asm!("msr tpidr_el1, {}", in(reg) n as u64, options(nomem, nostack, preserves_flags)) };
}
