//! Recovery points: how a fault in module code returns to the shell instead
//! of stopping the kernel (Linux oopses and goes on; so do we, for modules).
//!
//! The design, stated once:
//! - Each shell command runs through [`contained`], which saves the
//!   callee-saved registers and the stack pointer (a recovery point) and
//!   calls the command.
//! - A synchronous exception taken while a recovery point is active, while
//!   the kernel is running a module's code (or a kernel export on a module's
//!   behalf, `module::abi`) and while the console is free, is contained: the
//!   exception handler reports it and returns — not to the faulting
//!   instruction, but to [`contained`]'s resume path, which restores the
//!   saved registers and makes the call return `Err`.
//! - The frames between the recovery point and the fault are abandoned: never
//!   resumed, never dropped. What they owned (heap blocks, say) is leaked on
//!   purpose; the shell counts it. Nothing else refers to those frames: no
//!   kernel lock is held while module code runs (the exports take and drop
//!   theirs around their own work, and check a module's pointers before
//!   taking one), and the module is marked faulted so none of its code runs
//!   again.
//! - Any other exception is a kernel bug, decoded and fatal as before.

use core::sync::atomic::{AtomicU64, Ordering};

/// Callee-saved state at a recovery point: x19-x30, sp, d8-d15 (AAPCS64).
#[repr(C)]
struct RecoveryPoint([u64; 21]);

/// The innermost active recovery point (0 if none).
static ACTIVE: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    /// Saves the recovery point in `point`, calls `f(data)`; 0 when `f`
    /// returns, 1 when a contained fault resumed at the point instead.
    fn splitmap_contained_call(point: *mut RecoveryPoint, f: extern "C" fn(*mut u8), data: *mut u8) -> u64;
    /// Where a contained fault resumes, with x0 = the recovery point.
    fn splitmap_contained_resume();
}

/// A call that a contained fault ended (`exceptions::take_fault` says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faulted;

/// Runs `f` from a recovery point: [`Faulted`] if a contained fault ended it.
///
/// # Errors
/// [`Faulted`]: `f` did not finish; its frames were abandoned.
pub fn contained<F: FnOnce()>(f: F) -> Result<(), Faulted> {
    extern "C" fn trampoline<F: FnOnce()>(data: *mut u8) {
        // SAFETY: `data` is the `Option<F>` below, alive for the whole call.
        let f = unsafe { &mut *data.cast::<Option<F>>() };
        if let Some(f) = f.take() {
            f();
        }
    }
    let mut point = RecoveryPoint([0; 21]);
    let mut f = Some(f);
    let outer = ACTIVE.swap(&raw mut point as u64, Ordering::SeqCst);
    // SAFETY: the routine saves and restores exactly the callee-saved state;
    // `point` and `f` outlive the call; after a resume, the frames in between
    // are abandoned as the module comment describes.
    let resumed = unsafe { splitmap_contained_call(&raw mut point, trampoline::<F>, (&raw mut f).cast()) };
    ACTIVE.store(outer, Ordering::SeqCst);
    if resumed == 0 { Ok(()) } else { Err(Faulted) }
}

/// Whether a recovery point is active.
pub fn active() -> bool {
    ACTIVE.load(Ordering::SeqCst) != 0
}

/// Makes the exception return to the active recovery point: the stub
/// restores `x` and `elr` and erets there. `None` if there is none.
pub fn resume_at_point(x: &mut [u64; 31], elr: &mut u64) -> Option<()> {
    let point = ACTIVE.load(Ordering::SeqCst);
    (point != 0).then(|| {
        x[0] = point;
        *elr = splitmap_contained_resume as *const () as u64;
    })
}

core::arch::global_asm!(
    r#"
    // Call-frame information for gdb (the compiler writes it for Rust
    // functions only, and gdb's prologue reader stops at the stores to the
    // recovery point), so a backtrace goes on past this routine to whoever
    // called `contained`.
    .cfi_sections .debug_frame
    .section .text.splitmap_contained_call, "ax"
    .global splitmap_contained_call
    .type   splitmap_contained_call, %function
splitmap_contained_call:
    .cfi_startproc
    stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    stp     x29, x30, [x0, #80]
    mov     x9, sp
    str     x9, [x0, #96]
    stp     d8, d9, [x0, #104]
    stp     d10, d11, [x0, #120]
    stp     d12, d13, [x0, #136]
    stp     d14, d15, [x0, #152]
    stp     x29, x30, [sp, #-16]!
    .cfi_def_cfa_offset 16
    .cfi_offset x29, -16
    .cfi_offset x30, -8
    mov     x29, sp
    mov     x9, x1
    mov     x0, x2
    blr     x9
    ldp     x29, x30, [sp], #16
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    mov     x0, #0
    ret
    .cfi_endproc
    .size   splitmap_contained_call, . - splitmap_contained_call

    .section .text.splitmap_contained_resume, "ax"
    .global splitmap_contained_resume
    .type   splitmap_contained_resume, %function
splitmap_contained_resume:
    ldp     x19, x20, [x0, #0]
    ldp     x21, x22, [x0, #16]
    ldp     x23, x24, [x0, #32]
    ldp     x25, x26, [x0, #48]
    ldp     x27, x28, [x0, #64]
    ldp     x29, x30, [x0, #80]
    ldr     x9, [x0, #96]
    mov     sp, x9
    ldp     d8, d9, [x0, #104]
    ldp     d10, d11, [x0, #120]
    ldp     d12, d13, [x0, #136]
    ldp     d14, d15, [x0, #152]
    mov     x0, #1
    ret
    .size   splitmap_contained_resume, . - splitmap_contained_resume
"#
);
