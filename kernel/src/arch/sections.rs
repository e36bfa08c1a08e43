//! The linker script's symbols (kernel/linker.ld.in), declared once. Every
//! address here is where the image runs now: the kernel is position
//! independent, so each is computed PC-relative (`adrp`) and follows a KASLR
//! move without relocation.

use pi::addr::Span;

use crate::arch::extable;

mod symbols {
    unsafe extern "C" {
        pub static _text: u8;
        pub static __text_end: u8;
        pub static __rodata_end: u8;
        pub static __bss_start: u8;
        pub static __pool_start: u8;
        pub static __pool_end: u8;
        pub static __boot_stack_start: u8;
        pub static __boot_stack_end: u8;
        pub static _end: u8;
        pub static __ksyms_start: u8;
        pub static __ksyms_end: u8;
        pub static __start_ex_table: crate::arch::extable::Entry;
        pub static __stop_ex_table: crate::arch::extable::Entry;
        pub static __relr_start: u64;
        pub static __relr_end: u64;
        pub static __exception_vectors: u8;
    }
}
use symbols::*;

fn span(start: *const u8, end: *const u8) -> Span {
    Span {
        start: start as u64,
        end: end as u64,
    }
}

/// The whole image, `[_text, _end)`: header, text, rodata, data, the table
/// pool, bss (with the debug record's page) and the boot stack.
pub fn image() -> Span {
    span(&raw const _text, &raw const _end)
}

/// Code, `r-x`.
pub fn text() -> Span {
    span(&raw const _text, &raw const __text_end)
}

/// Read-only data (the symbol table, exports, exception table and RELR list
/// included), `r--`.
pub fn rodata() -> Span {
    span(&raw const __text_end, &raw const __rodata_end)
}

/// Initialised data, `rw-`.
pub fn data() -> Span {
    span(&raw const __rodata_end, &raw const __pool_start)
}

/// Zeroed data, `rw-`, and the debug record's page after it.
pub fn bss() -> Span {
    span(&raw const __bss_start, &raw const __boot_stack_start)
}

/// The page-table pool the early code starts from.
pub fn pool() -> Span {
    span(&raw const __pool_start, &raw const __pool_end)
}

/// The boot stack: the early code's, then the exception stack.
pub fn boot_stack() -> Span {
    span(&raw const __boot_stack_start, &raw const __boot_stack_end)
}

/// A table the linker brackets with `start` and `end` symbols (each
/// subsystem declares the symbols of its own tables).
///
/// # Safety
/// `[start, end)` must be a mapped, never-written array of `T` in the image.
pub unsafe fn table<T>(start: *const T, end: *const T) -> &'static [T] {
    // SAFETY: the caller's contract; `end` follows `start` in the same section.
    unsafe { core::slice::from_raw_parts(start, end.offset_from(start) as usize) }
}

/// The symbol table build.rs writes into the image after linking.
pub fn ksyms() -> &'static [u8] {
    // SAFETY: the linker reserves [__ksyms_start, __ksyms_end) in rodata.
    unsafe { table(&raw const __ksyms_start, &raw const __ksyms_end) }
}

/// The exception table: instructions that may fault, and where to resume.
pub fn ex_table() -> &'static [extable::Entry] {
    // SAFETY: the linker brackets the `__ex_table` entries, in rodata.
    unsafe { table(&raw const __start_ex_table, &raw const __stop_ex_table) }
}

/// The RELR list of words that hold link-time addresses.
pub fn relr() -> &'static [u64] {
    // SAFETY: the linker brackets `.relr.dyn`, in rodata.
    unsafe { table(&raw const __relr_start, &raw const __relr_end) }
}

/// The EL1 exception vector table.
pub fn exception_vectors() -> u64 {
    &raw const __exception_vectors as u64
}
