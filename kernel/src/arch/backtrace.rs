//! Names for addresses, and the frame-pointer walk behind backtraces.

use super::stack;
use crate::ksyms;

unsafe extern "C" {
    static _text: u8;
    static __ksyms_start: u8;
    static __ksyms_end: u8;
    static __boot_stack_start: u8;
    static __boot_stack_end: u8;
}

fn table() -> &'static [u8] {
    let start = &raw const __ksyms_start;
    // SAFETY: the linker reserves [__ksyms_start, __ksyms_end) in rodata;
    // build.rs filled it; it is mapped and never written.
    unsafe { core::slice::from_raw_parts(start, (&raw const __ksyms_end).offset_from(start) as usize) }
}

/// Prints one line for `addr`: runtime VA, link-time address (for addr2line
/// on the ELF, whatever KASLR did) and `symbol+offset`.
pub fn print_frame(depth: usize, addr: u64) {
    let text = &raw const _text as u64;
    let link = addr.wrapping_sub(super::kaslr::get().offset);
    match addr.checked_sub(text).and_then(|off| ksyms::lookup(table(), off)) {
        Some(f) => crate::println!(
            "  #{depth:<2} {addr:#018x} (link {link:#018x}) {}+{:#x}",
            f.name,
            f.offset
        ),
        None => crate::println!("  #{depth:<2} {addr:#018x} (link {link:#018x}) ?"),
    }
}

/// Whether a frame record at `fp` lies on a kernel stack (so reading it is safe).
fn on_a_stack(fp: u64) -> bool {
    let (k0, k1) = stack::stack();
    let (b0, b1) = (&raw const __boot_stack_start as u64, &raw const __boot_stack_end as u64);
    fp.is_multiple_of(16) && ((k0..k1 - 16).contains(&fp) || (b0..b1 - 16).contains(&fp))
}

/// Prints the call chain: the faulting PC, then each return address found by
/// following frame records (`[fp] = caller's fp`, `[fp + 8] = return address`).
pub fn print(pc: u64, mut fp: u64) {
    crate::println!("backtrace:");
    print_frame(0, pc);
    for depth in 1..32 {
        if !on_a_stack(fp) {
            break;
        }
        // SAFETY: `fp` is 16-aligned inside a mapped kernel stack (checked).
        let (next, lr) = unsafe { ((fp as *const u64).read(), (fp as *const u64).add(1).read()) };
        if lr == 0 {
            break;
        }
        // The return address is the instruction after the call.
        print_frame(depth, lr - 4);
        fp = next;
    }
}
