//! `peek`: loads that may fault. Each load instruction has an exception-table
//! entry; a fault on it resumes at the entry's fixup, which reports failure,
//! and the handler records why.

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::{DAIF, Readable, Writeable};

use super::esr::Syndrome;

/// ESR and FAR of the last fault a fixup absorbed.
static LAST_ESR: AtomicU64 = AtomicU64::new(0);
static LAST_FAR: AtomicU64 = AtomicU64::new(0);

/// Called by the exception handler when it applies a fixup.
pub fn record_fault(esr: Syndrome, far: u64) {
    LAST_ESR.store(esr.0, Ordering::Relaxed);
    LAST_FAR.store(far, Ordering::Relaxed);
}

unsafe extern "C" {
    /// Load `width` bits from `va`: x0 = value, x1 = 0, or x1 = 1 on a fault.
    fn splitmap_peek8(va: u64) -> Peeked;
    fn splitmap_peek16(va: u64) -> Peeked;
    fn splitmap_peek32(va: u64) -> Peeked;
    fn splitmap_peek64(va: u64) -> Peeked;
}

#[repr(C)]
struct Peeked {
    value: u64,
    faulted: u64,
}

/// Reads `width` (8, 16, 32 or 64) bits at `va`, or says why it faulted
/// (the syndrome prints as the reason).
pub fn peek(va: u64, width: u8) -> Result<u64, Syndrome> {
    // Interrupts stay masked (they are never unmasked yet); keep it that way
    // explicitly so nothing else can fault in between and overwrite the record.
    let daif = DAIF.get();
    DAIF.set(daif | (0b1111 << 6));
    // SAFETY: each routine is one load with an exception-table entry: a fault
    // resumes at its fixup instead of being fatal, and nothing is written.
    let r = unsafe {
        match width {
            8 => splitmap_peek8(va),
            16 => splitmap_peek16(va),
            32 => splitmap_peek32(va),
            _ => splitmap_peek64(va),
        }
    };
    let esr = LAST_ESR.load(Ordering::Relaxed);
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
