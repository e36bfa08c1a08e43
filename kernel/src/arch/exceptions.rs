//! The EL1 exception vector table. Every exception here is a kernel bug or a
//! deliberate probe: it is decoded, printed and the kernel halts.

use core::arch::global_asm;

use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, Readable, VBAR_EL1, Writeable};

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

unsafe extern "C" {
    static __exception_vectors: u8;
}

/// Points VBAR_EL1 at the table.
pub fn install() {
    VBAR_EL1.set(&raw const __exception_vectors as u64);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// The 16 vectors: {current EL with SP0, current EL with SPx, lower EL
/// AArch64, lower EL AArch32} x {synchronous, IRQ, FIQ, SError}.
const VECTOR_NAMES: [&str; 16] = [
    "sync (EL1t)",
    "irq (EL1t)",
    "fiq (EL1t)",
    "serror (EL1t)",
    "sync",
    "irq",
    "fiq",
    "serror",
    "sync (EL0)",
    "irq (EL0)",
    "fiq (EL0)",
    "serror (EL0)",
    "sync (EL0/32)",
    "irq (EL0/32)",
    "fiq (EL0/32)",
    "serror (EL0/32)",
];

/// Name of an exception class (ESR_EL1.EC).
pub fn class_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "WFI/WFE trapped",
        0x07 => "FP/SIMD access trapped",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x18 => "MSR/MRS trapped",
        0x20 => "instruction abort from EL0",
        0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 => "data abort from EL0",
        0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x3c => "BRK instruction",
        _ => "other",
    }
}

/// Meaning of a data/instruction fault status code (DFSC/IFSC).
pub fn fault_status(fsc: u64) -> &'static str {
    match fsc {
        0x00..=0x03 => "address size fault",
        0x04..=0x07 => "translation fault",
        0x09..=0x0b => "access flag fault",
        0x0d..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x21 => "alignment fault",
        _ => "other fault",
    }
}

unsafe extern "C" {
    static __start_ex_table: crate::extable::Entry;
    static __stop_ex_table: crate::extable::Entry;
}

/// The exception table, at the address it runs at.
fn extable() -> &'static [crate::extable::Entry] {
    let start = &raw const __start_ex_table;
    // SAFETY: the linker script brackets the `__ex_table` entries with these
    // symbols; the table is in rodata, mapped and never written.
    unsafe { core::slice::from_raw_parts(start, (&raw const __stop_ex_table).offset_from(start) as usize) }
}

/// Called by the vector stub. Returns only if an exception-table fixup
/// applies: the stub then restores the registers (with the new ELR) and
/// returns from the exception.
#[unsafe(no_mangle)]
extern "C" fn splitmap_exception(frame: &mut Frame, vector: u64) {
    let esr = ESR_EL1.get();
    let far = FAR_EL1.get();
    let ec = (esr >> 26) & 0x3f;
    // The kernel runs on SP_EL0 after boot (vector 0), on SP_EL1 before (4).
    let sync_at_el1 = vector == 0 || vector == 4;
    let (guard_start, guard_end) = super::stack::guard();
    if sync_at_el1 && ec == 0x25 && (guard_start..guard_end).contains(&far) {
        crate::println!("\nkernel stack overflow: FAR={far:#018x} is in the guard page below the kernel stack");
        super::backtrace::print(frame.elr, frame.x[29]);
        panic!("kernel stack overflow");
    }
    // A synchronous abort taken at EL1 by an instruction the table knows.
    if sync_at_el1 && matches!(ec, 0x25 | 0x21 | 0x26) {
        let table = extable();
        if let Some(fixup) = crate::extable::search(table, table.as_ptr() as u64, frame.elr) {
            super::peek::record_fault(esr, far);
            frame.elr = fixup;
            return;
        }
    }
    let name = VECTOR_NAMES.get(vector as usize).copied().unwrap_or("?");
    crate::println!("\nexception: {name}: {} (EC {ec:#04x})", class_name(ec));
    crate::println!(
        "  ESR={esr:#018x} ELR={:#018x} FAR={far:#018x} SPSR={:#x}",
        frame.elr,
        frame.spsr
    );
    if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) {
        let fsc = esr & 0x3f;
        let level = fsc & 3;
        let wnr = if ec >= 0x24 && esr & (1 << 6) != 0 {
            " on write"
        } else {
            ""
        };
        crate::println!("  {} at level {level}{wnr}", fault_status(fsc));
    }
    super::backtrace::print(frame.elr, frame.x[29]);
    panic!("unhandled exception: {}", class_name(ec));
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
__exception_vectors:
    .set i, 0
    .rept 16
    ventry i
    .set i, i + 1
    .endr

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
"#
);
