//! Entering untrusted code: how a fault in a module returns to the kernel
//! that called it instead of stopping the machine (Linux oopses and goes on;
//! so do we, for modules).
//!
//! The design, stated once:
//! - Every call into module code — `init_module`, `exit_module`, a module's
//!   command or test — goes through [`run_untrusted`], which saves the
//!   callee-saved registers and the stack pointer (a recovery point), notes
//!   whose code runs ([`owner`]), and makes the call.
//! - A synchronous exception taken while a recovery point is active and no
//!   kernel lock is held (`arch::lock::held` is 0) is contained: the
//!   exception handler reports it and returns — not to the faulting
//!   instruction, but to the recovery point, and [`run_untrusted`] returns
//!   the [`Fault`] to its caller, who marks the module faulted.
//! - The frames abandoned are the module's and those of the kernel exports
//!   running for it: never resumed, never dropped. Exports hold no lock
//!   while they touch a module's memory (they read its pointers before
//!   taking one) and no heap value across a call into module code, so
//!   nothing else refers to those frames; the module is marked faulted, so
//!   none of its code runs again.
//! - With a lock held, abandoning the frames would leave it held for good:
//!   the fault is reported and the kernel stops instead of hanging later.
//! - The watchdog's timer interrupt, taken in module code that has run past
//!   `module.watchdog=` milliseconds, is contained the same way, as a fault
//!   of its own kind (`Fault::watchdog_ms`); with a lock held it waits
//!   instead (`arch::irq`).
//! - Any other exception is a kernel bug, decoded and fatal as before.

use core::sync::atomic::{AtomicU64, Ordering};

use super::esr::Syndrome;

/// A fault contained at a recovery point: whose code, and what happened.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// The owner given to [`run_untrusted`] (a module's base address).
    pub owner: u64,
    /// ESR_EL1.
    pub syndrome: Syndrome,
    /// FAR_EL1.
    pub far: u64,
    /// Where it happened.
    pub elr: u64,
    /// Not an exception of its own but the watchdog's: the code ran this
    /// many milliseconds without returning (`syndrome` and `far` are then 0).
    pub watchdog_ms: Option<u64>,
}

impl Fault {
    /// What happened, in words: the exception decoded, or the watchdog's
    /// `watchdog: no return after N ms`.
    pub fn what(&self) -> impl core::fmt::Display + '_ {
        struct What<'a>(&'a Fault);
        impl core::fmt::Display for What<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.0.watchdog_ms {
                    Some(ms) => write!(f, "watchdog: no return after {ms} ms"),
                    None => write!(f, "{}", self.0.syndrome),
                }
            }
        }
        What(self)
    }
}

/// A recovery point: the callee-saved state x19-x30, sp, d8-d15 (AAPCS64)
/// that the assembly below saves and restores (it knows this layout), then
/// whose code runs and, once contained, the fault.
#[repr(C)]
struct RecoveryPoint {
    saved: [u64; 21],
    owner: u64,
    fault: Option<Fault>,
}

// The resume path finds the saved state at the point's own address.
const _: () = assert!(core::mem::offset_of!(RecoveryPoint, saved) == 0);

/// The innermost active recovery point (0 if none).
static ACTIVE: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    /// Saves the callee-saved state in `saved`, calls `f(data)`; 0 when `f`
    /// returns, 1 when a contained fault resumed at the point instead.
    fn splitmap_contained_call(saved: *mut [u64; 21], f: extern "C" fn(*mut u8), data: *mut u8) -> u64;
    /// Where a contained fault resumes, with x0 = the recovery point.
    fn splitmap_contained_resume();
}

/// Runs `f`, untrusted code belonging to `owner`, from a recovery point.
///
/// # Errors
/// The [`Fault`] that ended `f`: it did not finish, and its frames were
/// abandoned (see the module comment).
///
/// # Panics
/// If a kernel lock is held: a fault in `f` could not be contained, so
/// entering untrusted code then is a kernel bug.
pub fn run_untrusted<F: FnOnce() -> R, R>(owner: u64, f: F) -> Result<R, Fault> {
    struct Call<F, R> {
        f: Option<F>,
        result: Option<R>,
    }
    extern "C" fn trampoline<F: FnOnce() -> R, R>(data: *mut u8) {
        // SAFETY: `data` is the `Call` below, alive for the whole call.
        let call = unsafe { &mut *data.cast::<Call<F, R>>() };
        call.result = call.f.take().map(|f| f());
    }
    let held = super::lock::held();
    assert!(
        held == 0,
        "the kernel entered untrusted code at {owner:#x} holding {held} lock(s)"
    );
    let mut point = RecoveryPoint {
        saved: [0; 21],
        owner,
        fault: None,
    };
    let mut call = Call {
        f: Some(f),
        result: None,
    };
    let outer = ACTIVE.swap(&raw mut point as u64, Ordering::SeqCst);
    // IRQs unmasked and the watchdog armed for the call alone (`irq`).
    let watch = super::irq::watch();
    // SAFETY: the routine saves and restores exactly the callee-saved state;
    // `point` and `call` outlive the call; after a resume, the frames in
    // between are abandoned as the module comment describes.
    let resumed = unsafe { splitmap_contained_call(&raw mut point.saved, trampoline::<F, R>, (&raw mut call).cast()) };
    drop(watch);
    ACTIVE.store(outer, Ordering::SeqCst);
    match (resumed, point.fault, call.result) {
        (0, _, Some(result)) => Ok(result),
        (_, Some(fault), _) => Err(fault),
        _ => unreachable!("a call returns a result or resumes with a fault"),
    }
}

/// Whose untrusted code runs right now, if any: what a kernel export asks
/// to know which module called it.
pub fn owner() -> Option<u64> {
    let point = ACTIVE.load(Ordering::SeqCst) as *const RecoveryPoint;
    // SAFETY: a nonzero ACTIVE points to a live recovery point: it is set by
    // `run_untrusted` for exactly as long as its frame exists.
    (!point.is_null()).then(|| unsafe { (*point).owner })
}

/// Why a fault in untrusted code cannot be contained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotContained {
    /// No untrusted code is running: the fault is the kernel's own.
    NoRecoveryPoint,
    /// Kernel locks are held, which abandoning the frames would never release.
    LocksHeld(usize),
}

/// Whether a fault now can be contained, and for which owner: the
/// exception handler's question.
///
/// # Errors
/// [`NotContained`] says why not.
pub fn containable() -> Result<u64, NotContained> {
    let owner = owner().ok_or(NotContained::NoRecoveryPoint)?;
    match super::lock::held() {
        0 => Ok(owner),
        held => Err(NotContained::LocksHeld(held)),
    }
}

/// Makes the exception return to the active recovery point with `fault`:
/// the handler's stub restores `x` and `elr` and erets there.
///
/// # Panics
/// If there is no active recovery point ([`containable`] says first).
pub fn resume_with(fault: Fault, x: &mut [u64; 31], elr: &mut u64) {
    let point = ACTIVE.load(Ordering::SeqCst) as *mut RecoveryPoint;
    assert!(!point.is_null(), "no recovery point to resume at");
    // SAFETY: as in `owner`; the frame that owns the point is suspended below
    // this handler, so nothing else touches it now.
    unsafe { (*point).fault = Some(fault) };
    x[0] = point as u64;
    *elr = splitmap_contained_resume as *const () as u64;
}

// Call-frame information for gdb (the compiler writes it for Rust functions
// only, and gdb's prologue reader stops at the stores to the recovery point),
// so a backtrace goes on past this routine to whoever called `run_untrusted`.
pi::asm_function!(
    "splitmap_contained_call",
    r#"
    .cfi_sections .debug_frame
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
"#
);

pi::asm_function!(
    "splitmap_contained_resume",
    r#"
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
"#
);
