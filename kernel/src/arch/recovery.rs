//! Entering untrusted code: how a fault in a module returns to the kernel
//! that called it instead of stopping the machine (Linux oopses and goes on;
//! so do we, for modules).
//!
//! The design, stated once:
//! - Every call into module code — `init_module`, `exit_module`, a module's
//!   command or test — goes through [`run_untrusted`], which saves the
//!   callee-saved registers and the stack pointer (a recovery point), notes
//!   whose code runs ([`owner`]), and makes the call: straight from
//!   assembly into the module, with no kernel frame in between that would
//!   trust the module's registers.
//! - The module's registers are checked when it returns: AAPCS64 has the
//!   callee preserve x19-x28, the frame pointer x29, SP and d8-d15 (the
//!   kernel is built with floating point, so the compiler keeps values in
//!   them). Any that differ make a contained fault naming them
//!   ([`Kind::Clobbered`]), and the saved values are put back either way
//!   before a kernel instruction uses them.
//! - A synchronous exception taken while a recovery point is armed (its
//!   state saved, the untrusted code not yet returned) and no
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
//!   of its own kind ([`Kind::Watchdog`]); taken in kernel code (an export
//!   at work for the module, with a lock held or not) or outside the armed
//!   window, it waits instead (`arch::irq`, `exceptions::irq`).
//! - Any other exception is a kernel bug, decoded and fatal as before.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use super::esr::Syndrome;
use super::percpu::MAX_CPUS;

/// A fault contained at a recovery point: whose code, and what happened.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// The owner given to [`run_untrusted`] (a module's base address).
    pub owner: u64,
    /// What went wrong.
    pub kind: Kind,
    /// ESR_EL1 (0 for [`Kind::Clobbered`] and [`Kind::Watchdog`], which are
    /// no exceptions).
    pub syndrome: Syndrome,
    /// FAR_EL1 (0 for those two).
    pub far: u64,
    /// Where it happened: the faulting instruction, or for
    /// [`Kind::Clobbered`] the entry point that returned so.
    pub elr: u64,
}

/// The kinds of contained fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An exception (the syndrome says which).
    Exception,
    /// A data abort in the guard page below the kernel stack: the module
    /// (or an export running for it) ran the stack out.
    StackOverflow,
    /// The call returned with callee-saved registers changed.
    Clobbered(Clobbers),
    /// No exception but the watchdog's interrupt: the code ran this many
    /// milliseconds without returning.
    Watchdog {
        /// The watchdog's limit (`module.watchdog=`).
        ms: u64,
    },
}

/// Callee-saved registers a module changed, one bit each, in the order
/// [`Clobbers::NAMES`] lists (the assembly below sets the bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clobbers(pub u64);

impl Clobbers {
    /// The registers the check covers, bit 0 first.
    pub const NAMES: [&'static str; 20] = [
        "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29 (fp)", "sp", "d8", "d9", "d10",
        "d11", "d12", "d13", "d14", "d15",
    ];
}

impl fmt::Display for Clobbers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (bit, name) in Self::NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                write!(f, "{sep}{name}")?;
                sep = ", ";
            }
        }
        Ok(())
    }
}

/// A recovery point: the callee-saved state x19-x30, sp, d8-d15 (AAPCS64)
/// that the assembly below saves and restores (it knows this layout), the
/// registers the untrusted code clobbered, then whose code runs and, once
/// contained, the fault.
#[repr(C)]
struct RecoveryPoint {
    saved: [u64; 21],
    clobbered: u64,
    /// Nonzero only while the untrusted code runs: set by the assembly once
    /// `saved` holds the state, cleared as soon as the code returns. An
    /// exception or the watchdog's interrupt outside that window (IRQs are
    /// unmasked a little before and after it) finds nothing to resume.
    armed: u64,
    owner: u64,
    fault: Option<Fault>,
}

// The assembly finds the saved state at the point's own address, and the
// clobber mask after it.
const _: () = assert!(core::mem::offset_of!(RecoveryPoint, saved) == 0);
const _: () = assert!(core::mem::offset_of!(RecoveryPoint, clobbered) == 168);
const _: () = assert!(core::mem::offset_of!(RecoveryPoint, armed) == 176);

/// Each CPU's innermost active recovery point (0 if none), indexed by
/// `percpu::id`. The assembly reads this CPU's after the untrusted code
/// returns, since no register but TPIDR_EL1 (which module code cannot
/// touch: the scanner refuses it) is trusted then.
static ACTIVE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// This CPU's slot of [`ACTIVE`].
fn active() -> &'static AtomicU64 {
    &ACTIVE[super::percpu::id()]
}

unsafe extern "C" {
    /// Saves the callee-saved state in `point` (a [`RecoveryPoint`], whose
    /// layout the assembly knows), calls `target(a0, a1)`,
    /// checks and restores the state; the target's x0. After a contained
    /// fault it returns through `splitmap_contained_resume` instead.
    fn splitmap_contained_call(point: *mut u64, target: u64, a0: u64, a1: u64) -> u64;
    /// Where a contained fault resumes, with x0 = the recovery point.
    fn splitmap_contained_resume();
}

/// Calls `target(args[0], args[1])`, untrusted code belonging to `owner`,
/// from a recovery point; its x0. Every entry point a module has fits this
/// call (`fn() -> i32`, `fn()`, `fn(*const u8, usize)`): extra arguments are
/// ignored, and the caller reads as much of x0 as the type returns.
///
/// # Errors
/// The [`Fault`] that ended the call: an exception (the frames in between
/// were abandoned, see the module comment), or registers clobbered (the
/// call returned, the kernel's values are back).
///
/// # Panics
/// If a kernel lock is held: a fault in the call could not be contained, so
/// entering untrusted code then is a kernel bug.
///
/// # Safety
/// `target` must be mapped executable code of `owner` that takes at most
/// two integer arguments; whatever it does to memory is its business.
pub unsafe fn run_untrusted(owner: u64, target: u64, args: [u64; 2]) -> Result<u64, Fault> {
    let held = super::lock::held();
    assert!(
        held == 0,
        "the kernel entered untrusted code at {owner:#x} holding {held} lock(s)"
    );
    let mut point = RecoveryPoint {
        saved: [0; 21],
        clobbered: 0,
        armed: 0,
        owner,
        fault: None,
    };
    let outer = active().swap(&raw mut point as u64, Ordering::SeqCst);
    // IRQs unmasked and the watchdog armed for the call alone (`irq`).
    let watch = super::irq::watch();
    // SAFETY: the routine saves, checks and restores exactly the callee-saved
    // state; `point` outlives the call; the caller vouches for `target`;
    // after a resume, the frames in between are abandoned as the module
    // comment describes.
    let x0 = unsafe { splitmap_contained_call((&raw mut point).cast(), target, args[0], args[1]) };
    drop(watch);
    active().store(outer, Ordering::SeqCst);
    if let Some(fault) = point.fault {
        return Err(fault);
    }
    match point.clobbered {
        0 => Ok(x0),
        mask => Err(Fault {
            owner,
            kind: Kind::Clobbered(Clobbers(mask)),
            syndrome: Syndrome(0),
            far: 0,
            elr: target,
        }),
    }
}
/// Whose untrusted code runs right now, if any: what a kernel export asks
/// to know which module called it.
pub fn owner() -> Option<u64> {
    let point = active().load(Ordering::SeqCst) as *const RecoveryPoint;
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
    let point = active().load(Ordering::SeqCst) as *const RecoveryPoint;
    // SAFETY: as in `owner`; `armed` is written by the assembly of the
    // same CPU, read volatile.
    if point.is_null() || unsafe { (&raw const (*point).armed).read_volatile() } == 0 {
        return Err(NotContained::NoRecoveryPoint);
    }
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
    let point = active().load(Ordering::SeqCst) as *mut RecoveryPoint;
    assert!(!point.is_null(), "no recovery point to resume at");
    // SAFETY: as in `owner`; the frame that owns the point is suspended below
    // this handler, so nothing else touches it now.
    // Disarmed: an interrupt before the caller masks IRQs again finds
    // nothing to resume.
    unsafe {
        (*point).fault = Some(fault);
        (*point).armed = 0;
    }
    x[0] = point as u64;
    *elr = splitmap_contained_resume as *const () as u64;
}

// Call-frame information for gdb (the compiler writes it for Rust functions
// only, and gdb's prologue reader stops at the stores to the recovery point),
// so a backtrace goes on past this routine to whoever called `run_untrusted`.
//
// After the untrusted code returns, only x0 (its result) is used: the point
// is found again through this CPU's slot of ACTIVE, each callee-saved register is compared with
// what it must be (x29 and SP: this routine's own frame, 16 bytes below the
// saved SP), a bit set for each that differs (the order of
// `Clobbers::NAMES`), and all are restored from the point before `ret` (x30
// too, so the return goes where the kernel called from, whatever the module
// left in the link register or on the stack).
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
    str     xzr, [x0, #168]
    mov     x9, #1
    str     x9, [x0, #176]
    stp     x29, x30, [sp, #-16]!
    .cfi_def_cfa_offset 16
    .cfi_offset x29, -16
    .cfi_offset x30, -8
    mov     x29, sp
    mov     x9, x1
    mov     x0, x2
    mov     x1, x3
    blr     x9
    mrs     x10, tpidr_el1          // this CPU's slot of ACTIVE
    cmp     x10, #({max_cpus} - 1)      // (clamped as percpu::id does)
    mov     x11, #({max_cpus} - 1)
    csel    x10, x10, x11, ls
    adrp    x9, {active}
    add     x9, x9, :lo12:{active}
    ldr     x9, [x9, x10, lsl #3]
    str     xzr, [x9, #176]
    mov     x12, #0
    .macro  splitmap_check reg, offset, bit
    ldr     x10, [x9, #\offset]
    cmp     x10, \reg
    cset    x11, ne
    orr     x12, x12, x11, lsl #\bit
    .endm
    .macro  splitmap_check_d reg, offset, bit
    fmov    x13, \reg
    splitmap_check x13, \offset, \bit
    .endm
    splitmap_check x19, 0, 0
    splitmap_check x20, 8, 1
    splitmap_check x21, 16, 2
    splitmap_check x22, 24, 3
    splitmap_check x23, 32, 4
    splitmap_check x24, 40, 5
    splitmap_check x25, 48, 6
    splitmap_check x26, 56, 7
    splitmap_check x27, 64, 8
    splitmap_check x28, 72, 9
    ldr     x10, [x9, #96]
    sub     x10, x10, #16
    cmp     x10, x29
    cset    x11, ne
    orr     x12, x12, x11, lsl #10
    mov     x13, sp
    cmp     x10, x13
    cset    x11, ne
    orr     x12, x12, x11, lsl #11
    splitmap_check_d d8, 104, 12
    splitmap_check_d d9, 112, 13
    splitmap_check_d d10, 120, 14
    splitmap_check_d d11, 128, 15
    splitmap_check_d d12, 136, 16
    splitmap_check_d d13, 144, 17
    splitmap_check_d d14, 152, 18
    splitmap_check_d d15, 160, 19
    .purgem splitmap_check_d
    .purgem splitmap_check
    str     x12, [x9, #168]
    ldp     x19, x20, [x9, #0]
    ldp     x21, x22, [x9, #16]
    ldp     x23, x24, [x9, #32]
    ldp     x25, x26, [x9, #48]
    ldp     x27, x28, [x9, #64]
    ldp     x29, x30, [x9, #80]
    ldr     x10, [x9, #96]
    mov     sp, x10
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    ldp     d8, d9, [x9, #104]
    ldp     d10, d11, [x9, #120]
    ldp     d12, d13, [x9, #136]
    ldp     d14, d15, [x9, #152]
    ret
    .cfi_endproc
"#,
    active = sym ACTIVE,
    max_cpus = const MAX_CPUS,
);

// A contained fault's return from `splitmap_contained_call`: the point's
// state back, `fault` set (the caller looks there, not at x0).
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
    mov     x0, #0
    ret
"#
);
