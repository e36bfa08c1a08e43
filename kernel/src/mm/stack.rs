//! The kernel stack: RAM frames mapped in the stack area above an unmapped
//! guard page, and the switch onto it.
//!
//! From here on the kernel runs on SP_EL0 (PSTATE.SPSel = 0) while exceptions
//! run on SP_EL1, the boot stack inside the image. A stack overflow is then a
//! data abort in the guard page, taken on a stack that still works, and can be
//! reported as what it is.

use pi::kmap;
use pi::layout::{KERNEL_STACK_SIZE, PAGE_SIZE};

use super::ranges::Span;
use super::{frames, tables};
use crate::arch::{cpu, sections};

/// The unmapped guard below the kernel stack.
pub const GUARD: Span = window("guard");

/// The kernel stack.
pub const STACK: Span = window("stack");

const fn window(name: &str) -> Span {
    match kmap::row(name).window() {
        Some((start, end)) => Span { start, end },
        None => panic!("the stack rows have fixed windows"),
    }
}

/// Maps the kernel stack and continues in `next` on it, with exceptions on
/// the boot stack. Never returns.
pub fn switch_to_kernel_stack(next: extern "C" fn() -> !) -> ! {
    let pa = frames::alloc_frames(KERNEL_STACK_SIZE / PAGE_SIZE).expect("frames for the kernel stack");
    if let Err(e) = tables::map_fixed(const { kmap::fixed("stack") }, pa, KERNEL_STACK_SIZE) {
        panic!("cannot map the kernel stack at {:#x}: {e:?}", STACK.start);
    }
    let stacks = cpu::Stacks {
        exception: sections::boot_stack().end,
        kernel: Some(STACK.end),
    };
    // SAFETY: the kernel stack was just mapped; the boot stack is no longer
    // used by anything (the frames on it are abandoned); `next` is kernel code
    // and never returns.
    unsafe { cpu::continue_on(stacks, next as usize as u64, [0; 3], 0) }
}
