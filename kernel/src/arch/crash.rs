//! `crash KIND`: faults on purpose, so tests and learners can see each kind
//! decoded. None of these returns: the exception handler reports and halts.

use core::arch::asm;
use core::sync::atomic::AtomicU32;

unsafe extern "C" {
    static _text: u8;
}

use crate::shell::CrashKind;

/// A word of writable data (an atomic, so it lands in .data, not .rodata) to
/// jump into. It holds `nop`, which would run if data were executable.
static DATA_WORD: AtomicU32 = AtomicU32::new(0xd503_201f);

/// Triggers `kind`.
pub fn crash(kind: CrashKind) -> ! {
    crate::println!("crash: {kind:?}");
    match kind {
        // SAFETY: each access here is meant to fault; the exception handler
        // halts the kernel, so no state is left behind to corrupt.
        CrashKind::Null => unsafe {
            let _ = core::ptr::read_volatile(core::ptr::null::<u64>());
        },
        // SAFETY: as above.
        CrashKind::WriteText => unsafe { core::ptr::write_volatile(&raw const _text as *mut u64, 0) },
        // SAFETY: as above.
        CrashKind::ExecData => unsafe {
            let target: extern "C" fn() = core::mem::transmute(&raw const DATA_WORD);
            target();
        },
        // SAFETY: as above.
        CrashKind::Brk => unsafe { asm!("brk #0x1234") },
        // SAFETY: as above.
        CrashKind::Undef => unsafe { asm!("udf #0") },
    }
    panic!("crash {kind:?} did not fault");
}
