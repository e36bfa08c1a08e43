//! The EL1 exception vector table and its handler. An exception is decoded
//! (`esr`) and handled one of three ways: a faulting instruction in the
//! exception table (a `peek` probe) resumes at its fixup; a fault in
//! untrusted (module) code, or in the kernel on its behalf, is reported and
//! returned to the kernel that called it (`recovery`); anything else is a
//! kernel bug, printed with a backtrace, and the kernel halts. An IRQ is
//! counted and ended (`irq`); the watchdog's, in module code, ends the call
//! as a contained fault.
//!
//! The stub keeps SP 16-byte aligned: SCTLR_EL1.SA makes any load or store
//! through a misaligned SP fault on hardware (TCG does not check), and a
//! fault in the vector's own first store would nest forever. So the frame is
//! a multiple of 16 bytes (asserted below), and every entry checks the SP it
//! was given before its first store: a misaligned one is reported as the
//! kernel bug it is, on an SP aligned down, instead of faulting or passing
//! unseen under TCG.

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, Readable, VBAR_EL1, Writeable};

use super::esr::{Syndrome, VECTOR_NAMES, class, class_name};
use super::percpu::{self, MAX_CPUS};
use super::recovery::{self, Fault, Kind, NotContained};
use super::{extable, sections};

/// Registers saved by the vector stub.
#[repr(C)]
pub struct Frame {
    /// x0 to x30.
    pub x: [u64; 31],
    /// ELR_EL1: where the exception was taken.
    pub elr: u64,
    /// SPSR_EL1.
    pub spsr: u64,
    /// Keeps the frame a multiple of 16 bytes, so SP stays aligned.
    _pad: u64,
}

/// Bytes the stub reserves below SP for a [`Frame`].
const FRAME_SIZE: usize = core::mem::size_of::<Frame>();
const _: () = assert!(FRAME_SIZE.is_multiple_of(16), "SP must stay 16-byte aligned");
const _: () = assert!(core::mem::offset_of!(Frame, elr) == 31 * 8 && core::mem::offset_of!(Frame, spsr) == 32 * 8);

/// What the stub reserves: the frame, or with the test-only feature
/// `misaligned-frame` 8 bytes more, so that the entry check has something
/// to catch (tests/faults.rs).
#[cfg(not(feature = "misaligned-frame"))]
const RESERVED: usize = FRAME_SIZE;
#[cfg(feature = "misaligned-frame")]
const RESERVED: usize = FRAME_SIZE + 8;

/// Vector numbers at or above this came through the misaligned-SP path:
/// `vector - MISALIGNED` is the real vector.
const MISALIGNED: u64 = 16;

/// What the layers above lend the handler, which sits below them all.
#[derive(Clone, Copy)]
pub struct Hooks {
    /// Prints a backtrace from `pc`, frame pointer `fp` and link register
    /// `lr` (x30), naming what it can (`debug::backtrace`).
    pub backtrace: fn(pc: u64, fp: u64, lr: u64),
    /// Frees the console for a report that stops the kernel, whoever held it.
    pub take_console: fn(),
}

/// The lent functions' addresses (0: none yet). Addresses, not a `Once`:
/// they move with the image, so boot lends them again after a KASLR move.
static BACKTRACE: AtomicU64 = AtomicU64::new(0);
static TAKE_CONSOLE: AtomicU64 = AtomicU64::new(0);

/// Lends the handler what it cannot know itself: first thing at boot, and
/// again where the image runs after a KASLR move, before the old mapping
/// goes.
pub fn lend(hooks: Hooks) {
    BACKTRACE.store(hooks.backtrace as usize as u64, Ordering::SeqCst);
    TAKE_CONSOLE.store(hooks.take_console as usize as u64, Ordering::SeqCst);
}

fn backtrace(frame: &Frame) {
    let (pc, fp, lr) = (frame.elr, frame.x[29], frame.x[30]);
    match BACKTRACE.load(Ordering::SeqCst) {
        0 => crate::println!("backtrace: not available yet (pc={pc:#x} fp={fp:#x} lr={lr:#x})"),
        at => {
            // SAFETY: a nonzero value is a `fn(u64, u64, u64)` that `lend`
            // stored for the image as it is mapped now.
            let print: fn(u64, u64, u64) = unsafe { core::mem::transmute(at as usize) };
            print(pc, fp, lr);
        }
    }
}

fn take_console() {
    if let at @ 1.. = TAKE_CONSOLE.load(Ordering::SeqCst) {
        // SAFETY: as in `backtrace`: a `fn()` that `lend` stored.
        let take: fn() = unsafe { core::mem::transmute(at as usize) };
        take();
    }
}

/// Whether `far` is in the guard page below this CPU's kernel stack: a data
/// abort there is a stack overflow.
pub fn in_stack_guard(far: u64) -> bool {
    let (start, end) = pi::kmap::stack_slot(percpu::id()).guard;
    (start..end).contains(&far)
}

/// The SP each vector last entered with (before the frame) on each CPU, for
/// the in-kernel test that checks it (`exception_entry_keeps_sp_aligned`).
static ENTRY_SP: [[AtomicU64; 16]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; 16] }; MAX_CPUS];

/// The SP vector `vector` last entered with on this CPU, once (0 if not
/// since the last time it was asked).
pub fn take_entry_sp(vector: usize) -> u64 {
    ENTRY_SP[percpu::id()]
        .get(vector)
        .map_or(0, |sp| sp.swap(0, Ordering::Relaxed))
}

/// Points VBAR_EL1 at the table.
pub fn install() {
    VBAR_EL1.set(sections::exception_vectors());
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Takes SErrors on this CPU from now on: on hardware an access nothing
/// answers (a register past a device's block, a bus error) often comes
/// back as an asynchronous SError, not as a synchronous abort, and masked
/// (PSTATE.A, set from reset) it would stay pending for good, unreported.
/// Taken, it is reported decoded and ends the kernel, as Linux treats one.
/// Called once the vectors are in place and a console can print the report
/// (the boot CPU's is up; a secondary's is the boot CPU's). TCG raises none
/// of its own; a virtual SError (HCR_EL2.VSE) shows it (`tests/gdb.rs`).
pub fn take_serrors() {
    // SAFETY: clears PSTATE.A with the kernel's vectors installed, so an
    // SError is taken by its handler; every exception entry masks it
    // again, and the panic path masks everything.
    unsafe { core::arch::asm!("msr daifclr, #4", options(nomem, nostack)) };
}

/// Called by the vector stub. Returns only if an exception-table fixup
/// applies or a module fault is contained: the stub then restores the
/// registers (with the new ELR, and for a contained fault the recovery
/// point's registers) and returns from the exception.
#[unsafe(no_mangle)]
extern "C" fn splitmap_exception(frame: &mut Frame, vector: u64) {
    let esr = Syndrome(ESR_EL1.get());
    let far = FAR_EL1.get();
    if vector >= MISALIGNED {
        misaligned_entry(frame, vector - MISALIGNED, esr, far);
    }
    let entered_with = frame as *const Frame as u64 + RESERVED as u64;
    ENTRY_SP[percpu::id()][vector as usize].store(entered_with, Ordering::Relaxed);
    // IRQs, from the kernel's stack (1) or the boot stack (5).
    if vector == 1 || vector == 5 {
        irq(frame, vector);
        return;
    }
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
    let overflow = sync_at_el1 && ec == class::DATA_ABORT && in_stack_guard(far);
    // A fault in untrusted code (or in the kernel on its behalf): reported,
    // and returned to the kernel that called it (see `recovery`). Only from
    // the kernel's own stack (vector 0): untrusted code never runs on SP_EL1.
    // A stack overflow too: this handler runs on SP_EL1, not on the stack
    // that overflowed, and the recovery point puts SP_EL0 back where the
    // call started, so nothing here or after uses the broken stack.
    if vector == 0 {
        match recovery::containable() {
            Ok(owner) => {
                if overflow {
                    crate::println!(
                        "\nmodule fault: the module at {owner:#x} overflowed the kernel stack (FAR={far:#018x} is in the guard page below it)"
                    );
                } else {
                    crate::println!("\nmodule fault: the module at {owner:#x} took an exception");
                }
                report(frame, vector, esr, far);
                let fault = Fault {
                    owner,
                    kind: if overflow { Kind::StackOverflow } else { Kind::Exception },
                    syndrome: esr,
                    far,
                    elr: frame.elr,
                };
                recovery::resume_with(fault, &mut frame.x, &mut frame.elr);
                return;
            }
            Err(NotContained::LocksHeld(n)) => {
                let owner = recovery::owner().unwrap_or(0);
                // The console's lock may be among them: the panic path takes
                // the console over and prints this.
                panic_not_contained(owner, n, frame, vector, esr, far);
            }
            Err(NotContained::NoRecoveryPoint) => {}
        }
    }
    if overflow {
        stopping(frame);
        crate::println!("\nkernel stack overflow: FAR={far:#018x} is in the guard page below the kernel stack");
        backtrace(frame);
        panic!("kernel stack overflow");
    }
    stopping(frame);
    crate::println!();
    report(frame, vector, esr, far);
    panic!("unhandled exception: {}", class_name(ec));
}

/// An interrupt: counted and ended (`irq`). A watchdog that expired in
/// module code ends the call as a contained fault, as a synchronous fault
/// there is (from the kernel's stack only, with no kernel lock held);
/// otherwise it looks again shortly and the code goes on. Not in the
/// kernel's own text either, for [`KERNEL_CODE_GRACE_MS`]: an export at
/// work for the module may hold heap values (a formatted log line) that
/// abandoning its frame would leak; exports end, and a later look finds the
/// module's code. A module that spends nearly all its time in exports (a
/// loop that logs) may never be found in its own code, so past the grace
/// the call is ended in an export too, with no lock held, and what its
/// frame held is counted as left behind (`lsmod -v`).
fn irq(frame: &mut Frame, vector: u64) {
    let super::irq::Event::Expired(ms) = super::irq::handle() else {
        return;
    };
    let text = sections::text();
    let in_kernel = (text.start..text.end).contains(&frame.elr);
    let graced = in_kernel && super::irq::overdue_ms() < KERNEL_CODE_GRACE_MS;
    match recovery::containable() {
        Ok(owner) if vector == 1 && !graced => {
            crate::println!(
                "\nmodule fault: the module at {owner:#x} did not return within {ms} ms; stopped at pc={:#x}",
                frame.elr
            );
            backtrace(frame);
            let fault = Fault {
                owner,
                kind: Kind::Watchdog { ms },
                syndrome: Syndrome(0),
                far: 0,
                elr: frame.elr,
            };
            recovery::resume_with(fault, &mut frame.x, &mut frame.elr);
        }
        _ => super::irq::look_again_soon(),
    }
}

/// How long past the watchdog's deadline kernel code running for a module
/// (an export) may go on before the call is ended in it anyway.
pub const KERNEL_CODE_GRACE_MS: u64 = 1000;

/// Fatal reports under way on each CPU: 1 while one is printed; more if
/// the report itself faulted (a corrupt frame record, say). Per CPU: another
/// CPU's report is no reason to think this one's faulted.
static STOPPING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Starts a report that ends the kernel: the console is freed from whoever
/// held it (the code that faulted may have been printing). An exception
/// taken inside such a report must not report again, and again, down the
/// boot stack: the second says so in a line and panics, a third resets the
/// machine (a failure, as a panic's end is) without a word, and if the
/// reset itself faults (a trapped `smc`, handed down by EL2's vectors) the
/// CPU stops where it is, its reports printed.
fn stopping(frame: &Frame) {
    take_console();
    match STOPPING[percpu::id()].fetch_add(1, Ordering::SeqCst) {
        0 => {}
        1 => panic!("an exception at {:#x} while reporting an exception", frame.elr),
        2 => super::psci::system_reset(),
        _ => super::cpu::park(),
    }
}

/// The vector's entry check found SP misaligned: a kernel bug that hardware
/// would have turned into an endless fault, reported while it can be.
fn misaligned_entry(frame: &Frame, vector: u64, esr: Syndrome, far: u64) -> ! {
    stopping(frame);
    let sp: u64;
    // SAFETY: reads the scratch register the stub parked the misaligned SP in
    // (TPIDRRO_EL0: no EL0 code exists to read it).
    unsafe { core::arch::asm!("mrs {}, tpidrro_el0", out(reg) sp, options(nomem, nostack)) };
    crate::println!(
        "\nexception entry: SP={sp:#x} (after reserving the frame) is not 16-byte aligned (SP mod 16 = {}); hardware would fault on the first store",
        sp % 16
    );
    report(frame, vector, esr, far);
    panic!("exception entered with a misaligned stack pointer");
}

/// A fault in untrusted code while the kernel holds locks: not contained.
fn panic_not_contained(owner: u64, held: usize, frame: &Frame, vector: u64, esr: Syndrome, far: u64) -> ! {
    stopping(frame);
    crate::println!(
        "\nmodule fault at {owner:#x} while the kernel holds {held} lock(s): not contained, since they would never be released"
    );
    report(frame, vector, esr, far);
    panic!("unhandled exception: {}", class_name(esr.class()));
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
    backtrace(frame);
}

pi::asm_function!(
    section = ".text.vectors",
    "__exception_vectors",
    r#"
    // Each entry reserves the frame, then checks SP's alignment with no
    // free register (tst cannot take SP): SP += x0; x0 = SP - x0 (the old
    // SP); test it; then undo both. NZCV is free: SPSR_EL1 saved it.
    .macro ventry index
    .balign 0x80
    sub     sp, sp, #{reserved}
    add     sp, sp, x0
    sub     x0, sp, x0
    tst     x0, #15
    sub     x0, sp, x0
    sub     sp, sp, x0
    b.ne    1f
    stp     x0, x1, [sp, #(0 * 8)]
    mov     x1, #\index
    b       __exception_common
    // Misaligned: park x0 and the bad SP in registers no EL0 code uses,
    // align SP down and report it through vector index + 16.
1:  msr     tpidr_el0, x0
    mov     x0, sp
    msr     tpidrro_el0, x0
    and     x0, x0, #~15
    mov     sp, x0
    mrs     x0, tpidr_el0
    stp     x0, x1, [sp, #(0 * 8)]
    mov     x1, #(\index + {misaligned})
    b       __exception_common
    .endm

    // VBAR_EL1 takes a 2 KiB-aligned table: at the start of its own
    // section this pads nothing and aligns the section.
    .balign 0x800
    .set i, 0
    .rept 16
    ventry i
    .set i, i + 1
    .endr

    .purgem ventry
"#,
    reserved = const RESERVED,
    misaligned = const MISALIGNED,
);

pi::asm_function!(
    "__exception_common",
    r#"
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
    add     sp, sp, #{reserved}
    eret
"#,
    reserved = const RESERVED,
);
