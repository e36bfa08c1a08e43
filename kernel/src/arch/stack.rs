//! The kernel stack: RAM frames mapped in the stack area above an unmapped
//! guard page, and the switch onto it.
//!
//! From here on the kernel runs on SP_EL0 (PSTATE.SPSel = 0) while exceptions
//! run on SP_EL1, the boot stack inside the image. A stack overflow is then a
//! data abort in the guard page, taken on a stack that still works, and can be
//! reported as what it is.

use pi::layout::{KERNEL_STACK_SIZE, PAGE_SIZE, STACK_SLOT, STACKS_VADDR};
use pi::pgtable::{Attrs, Granularity};

use super::memory;

unsafe extern "C" {
    static __boot_stack_end: u8;
}

/// `[start, end)` of the guard below the kernel stack, and of the stack.
pub fn guard() -> (u64, u64) {
    (STACKS_VADDR, STACKS_VADDR + STACK_SLOT - KERNEL_STACK_SIZE)
}

/// `[start, end)` of the kernel stack.
pub fn stack() -> (u64, u64) {
    (STACKS_VADDR + STACK_SLOT - KERNEL_STACK_SIZE, STACKS_VADDR + STACK_SLOT)
}

/// Maps the kernel stack and continues in `next` on it, with exceptions on
/// the boot stack. Never returns.
pub fn switch_to_kernel_stack(next: extern "C" fn() -> !) -> ! {
    let (start, end) = stack();
    for va in (start..end).step_by(PAGE_SIZE as usize) {
        let pa = memory::alloc_frame().expect("frames for the kernel stack");
        if let Err(e) = memory::map(va, pa, PAGE_SIZE, Attrs::DATA, Granularity::PagesOnly) {
            panic!("cannot map the kernel stack at {va:#x}: {e:?}");
        }
    }
    let exception_stack = &raw const __boot_stack_end as u64;
    // SAFETY: `end` tops a freshly mapped stack and `exception_stack` the boot
    // stack, which nothing uses after this (the frames on it are abandoned);
    // `next` never returns.
    unsafe {
        core::arch::asm!(
            "msr sp_el0, {stack}",
            "mov sp, {exception_stack}",
            "msr spsel, #0",
            "mov x29, xzr",
            "mov x30, xzr",
            "br {next}",
            stack = in(reg) end,
            exception_stack = in(reg) exception_stack,
            next = in(reg) next,
            options(noreturn),
        )
    }
}
