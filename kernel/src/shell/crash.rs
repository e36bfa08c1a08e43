//! `crash KIND`: faults on purpose, so tests and learners can see each kind
//! decoded. None of these returns: the exception handler reports and halts.

use core::arch::asm;
use core::sync::atomic::AtomicU32;

use super::context::Context;
use super::parse::{CRASH_KINDS, CrashKind};
use crate::arch::sections;

/// A word of writable data (an atomic, so it lands in .data, not .rodata) to
/// jump into. It holds `nop`, which would run if data were executable.
static DATA_WORD: AtomicU32 = AtomicU32::new(0xd503_201f);

/// Triggers `kind`; returns only when the access is allowed (`write-alias`
/// without `rodata=full`).
// Never inlined: its frame is the one a learner looks for in the backtrace.
#[inline(never)]
pub fn crash(cx: &Context, kind: CrashKind) {
    let name = CRASH_KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("?", |(name, _)| name);
    crate::println!("crash: {name}, on purpose");
    match kind {
        CrashKind::WriteAlias => {
            // Writes back the word it read, so without rodata=full nothing
            // changes and the shell goes on.
            let alias = cx.kernel.image.start.to_linear().as_ptr::<u64>();
            // SAFETY: the image's first word through the linear map: the same
            // value goes back, so the text is unchanged if the write is allowed.
            unsafe { alias.write_volatile(alias.read_volatile()) };
            crate::println!("crash: no fault: the linear alias of the text is writable (boot with rodata=full)");
            return;
        }
        // SAFETY: each access here is meant to fault; the exception handler
        // halts the kernel, so no state is left behind to corrupt.
        CrashKind::Null => unsafe {
            let _ = core::ptr::read_volatile(core::ptr::null::<u64>());
        },
        // SAFETY: as above.
        CrashKind::WriteText => unsafe { core::ptr::write_volatile(sections::text().start as *mut u64, 0) },
        // SAFETY: as above.
        CrashKind::ExecData => unsafe {
            let target: extern "C" fn() = core::mem::transmute(&raw const DATA_WORD);
            target();
        },
        CrashKind::ExecLinear => {
            // The image's first page through its linear alias: the same bytes
            // as the text, but the linear map is never executable.
            let image = cx.kernel.image.start;
            // SAFETY: as above.
            unsafe {
                let target: extern "C" fn() = core::mem::transmute(image.to_linear().as_ptr::<u8>());
                target();
            }
        }
        CrashKind::StackOverflow => {
            core::hint::black_box(recurse(0));
        }
        // SAFETY: as above.
        CrashKind::Brk => unsafe { asm!("brk #0x1234") },
        // SAFETY: as above.
        CrashKind::Undef => unsafe { asm!("udf #0") },
    }
    panic!("crash {kind:?} did not fault");
}

/// Recurses with 1 KiB frames until the stack runs into its guard page.
#[allow(unconditional_recursion)] // the point: the guard page ends it
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 128]);
    recurse(depth + 1).wrapping_add(frame[(depth % 128) as usize])
}
