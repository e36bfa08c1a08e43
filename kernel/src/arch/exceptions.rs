//! The EL1 exception vector table and its handler. An exception is decoded
//! (`esr`) and handled one of three ways: a faulting instruction in the
//! exception table (a `peek` probe) resumes at its fixup; a fault in a
//! module's code, or in the kernel on its behalf, is reported and contained
//! at the shell's recovery point (`recovery`), the module marked faulted;
//! anything else is a kernel bug, printed with a backtrace, and the kernel
//! halts.

use core::arch::global_asm;

use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, Readable, VBAR_EL1, Writeable};

use super::esr::{Syndrome, VECTOR_NAMES, class, class_name};
use super::{extable, recovery, sections};
use crate::debug::backtrace;

/// Registers saved by the vector stub.
#[repr(C)]
pub struct Frame {
    /// x0 to x30.
    pub x: [u64; 31],
    /// ELR_EL1: where the exception was taken.
    pub elr: u64,
    /// SPSR_EL1.
    pub spsr: u64,
}

/// Points VBAR_EL1 at the table.
pub fn install() {
    VBAR_EL1.set(sections::exception_vectors());
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Called by the vector stub. Returns only if an exception-table fixup
/// applies or a module fault is contained: the stub then restores the
/// registers (with the new ELR, and for a contained fault the recovery
/// point's registers) and returns from the exception.
#[unsafe(no_mangle)]
extern "C" fn splitmap_exception(frame: &mut Frame, vector: u64) {
    let esr = Syndrome(ESR_EL1.get());
    let far = FAR_EL1.get();
    let ec = esr.class();
    // The kernel runs on SP_EL0 after boot (vector 0), on SP_EL1 before (4).
    let sync_at_el1 = vector == 0 || vector == 4;
    // A synchronous exception taken at EL1 by an instruction the table knows:
    // a `peek` load (reported by the fixup, whatever the address — the guard
    // page included, which only an overflowing stack makes fatal), or a PSCI
    // call over a conduit with nothing behind it (an undefined instruction).
    let coverable = matches!(
        ec,
        class::DATA_ABORT | class::INSTRUCTION_ABORT | class::SP_ALIGNMENT | class::UNKNOWN
    );
    if sync_at_el1 && coverable {
        let table = sections::ex_table();
        if let Some(fixup) = extable::search(table, table.as_ptr() as u64, frame.elr) {
            super::peek::record_fault(esr, far);
            frame.elr = fixup;
            return;
        }
    }
    let guard = crate::mm::stack::GUARD;
    if sync_at_el1 && ec == class::DATA_ABORT && (guard.start..guard.end).contains(&far) {
        crate::println!("\nkernel stack overflow: FAR={far:#018x} is in the guard page below the kernel stack");
        backtrace::print(frame.elr, frame.x[29]);
        panic!("kernel stack overflow");
    }
    // A fault in module code (or in the kernel on a module's behalf), under a
    // recovery point: reported, and the shell goes on (see `recovery`). Not
    // while a kernel lock is held: `abi::current` then says no (and why).
    if vector == 0
        && recovery::active()
        && !crate::console::busy()
        && let Some(module) = crate::module::abi::current()
    {
        crate::println!("\nmodule fault: the module at {module:#x} took an exception");
        report(frame, vector, esr, far);
        record(Fault {
            module,
            syndrome: esr,
            far,
            elr: frame.elr,
        });
        if recovery::resume_at_point(&mut frame.x, &mut frame.elr).is_some() {
            return;
        }
    }
    crate::println!();
    report(frame, vector, esr, far);
    panic!("unhandled exception: {}", class_name(ec));
}

/// Prints the exception decoded, and the backtrace.
fn report(frame: &Frame, vector: u64, esr: Syndrome, far: u64) {
    let name = VECTOR_NAMES.get(vector as usize).copied().unwrap_or("?");
    let ec = esr.class();
    crate::println!("exception: {name}: {} (EC {ec:#04x})", class_name(ec));
    crate::println!(
        "  ESR={:#018x} ELR={:#018x} FAR={far:#018x} SPSR={:#x}",
        esr.0,
        frame.elr,
        frame.spsr
    );
    if let Some(reason) = esr.abort_reason() {
        crate::println!("  {reason}");
    }
    if let Some(hint) = esr.hint() {
        crate::println!("  {hint}");
    }
    backtrace::print(frame.elr, frame.x[29]);
}

/// A fault contained at a recovery point: which module, and what happened.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// The base of the module the kernel was running.
    pub module: u64,
    /// ESR_EL1.
    pub syndrome: Syndrome,
    /// FAR_EL1.
    pub far: u64,
    /// Where it happened.
    pub elr: u64,
}

/// The last contained fault, until the shell takes it.
static LAST_FAULT: spin::Mutex<Option<Fault>> = spin::Mutex::new(None);

fn record(fault: Fault) {
    *LAST_FAULT.lock() = Some(fault);
}

/// The fault that ended the last contained call, once.
pub fn take_fault() -> Option<Fault> {
    LAST_FAULT.lock().take()
}

global_asm!(
    r#"
    .macro ventry index
    .balign 0x80
    sub     sp, sp, #(33 * 8)
    stp     x0, x1, [sp, #(0 * 8)]
    mov     x1, #\index
    b       __exception_common
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global __exception_vectors
    .type   __exception_vectors, %function
__exception_vectors:
    .set i, 0
    .rept 16
    ventry i
    .set i, i + 1
    .endr
    .size   __exception_vectors, . - __exception_vectors

    .type   __exception_common, %function
__exception_common:
    stp     x2, x3, [sp, #(2 * 8)]
    stp     x4, x5, [sp, #(4 * 8)]
    stp     x6, x7, [sp, #(6 * 8)]
    stp     x8, x9, [sp, #(8 * 8)]
    stp     x10, x11, [sp, #(10 * 8)]
    stp     x12, x13, [sp, #(12 * 8)]
    stp     x14, x15, [sp, #(14 * 8)]
    stp     x16, x17, [sp, #(16 * 8)]
    stp     x18, x19, [sp, #(18 * 8)]
    stp     x20, x21, [sp, #(20 * 8)]
    stp     x22, x23, [sp, #(22 * 8)]
    stp     x24, x25, [sp, #(24 * 8)]
    stp     x26, x27, [sp, #(26 * 8)]
    stp     x28, x29, [sp, #(28 * 8)]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x30, x2, [sp, #(30 * 8)]
    str     x3, [sp, #(32 * 8)]
    mov     x0, sp
    bl      splitmap_exception
    // Fixed up: restore everything (ELR may have changed) and return.
    ldr     x3, [sp, #(32 * 8)]
    ldp     x30, x2, [sp, #(30 * 8)]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x0, x1, [sp, #(0 * 8)]
    ldp     x2, x3, [sp, #(2 * 8)]
    ldp     x4, x5, [sp, #(4 * 8)]
    ldp     x6, x7, [sp, #(6 * 8)]
    ldp     x8, x9, [sp, #(8 * 8)]
    ldp     x10, x11, [sp, #(10 * 8)]
    ldp     x12, x13, [sp, #(12 * 8)]
    ldp     x14, x15, [sp, #(14 * 8)]
    ldp     x16, x17, [sp, #(16 * 8)]
    ldp     x18, x19, [sp, #(18 * 8)]
    ldp     x20, x21, [sp, #(20 * 8)]
    ldp     x22, x23, [sp, #(22 * 8)]
    ldp     x24, x25, [sp, #(24 * 8)]
    ldp     x26, x27, [sp, #(26 * 8)]
    ldp     x28, x29, [sp, #(28 * 8)]
    add     sp, sp, #(33 * 8)
    eret
    .size   __exception_common, . - __exception_common
"#
);
