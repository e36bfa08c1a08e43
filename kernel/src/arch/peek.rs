//! `peek`: loads that may fault. Each load instruction has an exception-table
//! entry; a fault on it resumes at the entry's fixup, which reports failure,
//! and the handler records why.

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::{DAIF, Readable, Writeable};

use super::esr::Syndrome;
use super::percpu::{self, MAX_CPUS};

/// ESR and FAR of the last fault a fixup absorbed, on each CPU (one CPU's
/// peek must not read another's fault).
static LAST_ESR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static LAST_FAR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Called by the exception handler when it applies a fixup.
pub fn record_fault(esr: Syndrome, far: u64) {
    LAST_ESR[percpu::id()].store(esr.0, Ordering::Relaxed);
    LAST_FAR[percpu::id()].store(far, Ordering::Relaxed);
}

unsafe extern "C" {
    /// Load `width` bits from `va`: x0 = value, x1 = 0, or x1 = 1 on a fault.
    fn splitmap_peek8(va: u64) -> Peeked;
    fn splitmap_peek16(va: u64) -> Peeked;
    fn splitmap_peek32(va: u64) -> Peeked;
    fn splitmap_peek64(va: u64) -> Peeked;
    /// [`splitmap_peek64`] run on SP_EL1, so that its fault is taken at
    /// EL1h: the stack the handler itself runs on, as a fault inside the
    /// handler would be.
    fn splitmap_peek64_on_sp_el1(va: u64) -> Peeked;
}

#[repr(C)]
struct Peeked {
    value: u64,
    faulted: u64,
}

/// Reads `width` (8, 16, 32 or 64) bits at `va`, or says why it faulted
/// (the syndrome prints as the reason).
pub fn peek(va: u64, width: u8) -> Result<u64, Syndrome> {
    probe(|| match width {
        // SAFETY: each routine is one load with an exception-table entry: a
        // fault resumes at its fixup instead of being fatal, and nothing is
        // written.
        8 => unsafe { splitmap_peek8(va) },
        // SAFETY: as above.
        16 => unsafe { splitmap_peek16(va) },
        // SAFETY: as above.
        32 => unsafe { splitmap_peek32(va) },
        // SAFETY: as above.
        _ => unsafe { splitmap_peek64(va) },
    })
}

/// Reads consecutive 32-bit registers from `va` into `words`, or says why
/// the first that faulted did. Out of line, over a slice: the console
/// probe's eight ID registers read by an inlined fixed-count loop were
/// unrolled into 17 of the boot's translated blocks.
#[inline(never)]
pub fn peek_words(va: u64, words: &mut [u32]) -> Result<(), Syndrome> {
    for (i, word) in words.iter_mut().enumerate() {
        *word = peek(va + 4 * i as u64, 32)? as u32;
    }
    Ok(())
}

/// Reads 64 bits at `va`, or says why it faulted.
pub fn peek64(va: u64) -> Result<u64, Syndrome> {
    peek(va, 64)
}

/// Reads 64 bits at `va` with SP_EL1 selected (PSTATE.SPSel = 1), so that a
/// fault is an EL1h exception, taken on the stack it interrupted: what a
/// fault inside the exception handler looks like, without a bug to cause it.
pub fn peek_on_sp_el1(va: u64) -> Result<u64, Syndrome> {
    // SAFETY: as `peek`'s loads; the routine selects SP_EL1 only around the
    // load and uses no stack, and a fault's fixup selects SP_EL0 again.
    probe(|| unsafe { splitmap_peek64_on_sp_el1(va) })
}

/// Runs one covered load with interrupts masked.
fn probe(load: impl FnOnce() -> Peeked) -> Result<u64, Syndrome> {
    // Mask every exception that can be masked for the load (a peek may run
    // inside a module's call, where IRQs are unmasked), so nothing else can
    // fault in between and overwrite the record. An SError the load itself
    // raises (hardware's answer to some accesses nothing answers) is no
    // fault the table covers: taken once SErrors are unmasked again, it is
    // reported and ends the kernel (`exceptions::take_serrors`).
    let daif = DAIF.get();
    DAIF.set(daif | (0b1111 << 6));
    let r = load();
    let esr = LAST_ESR[percpu::id()].load(Ordering::Relaxed);
    DAIF.set(daif);
    if r.faulted == 0 {
        Ok(r.value)
    } else {
        Err(Syndrome(esr))
    }
}

super::extable::covered_routine!("splitmap_peek8", "ldrb w0, [x0]");
super::extable::covered_routine!("splitmap_peek16", "ldrh w0, [x0]");
super::extable::covered_routine!("splitmap_peek32", "ldr w0, [x0]");
super::extable::covered_routine!("splitmap_peek64", "ldr x0, [x0]");

pi::asm_function!(
    "splitmap_peek64_on_sp_el1",
    r#"
    msr     spsel, #1
1:  ldr     x0, [x0]
    msr     spsel, #0
    mov     x1, #0
    ret
2:  msr     spsel, #0
    mov     x0, #0
    mov     x1, #1
    ret
    .pushsection __ex_table, "a"
    .balign 4
    .long   1b - .
    .long   2b - .
    .popsection
"#
);
