//! Small CPU operations: barriers, TLB and cache maintenance, translation
//! registers, the CPU's random numbers and its physical address width, and
//! switching stacks.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    DAIF, ID_AA64ISAR0_EL1, ID_AA64MMFR0_EL1, Readable, TCR_EL1, TTBR0_EL1, TTBR1_EL1, Writeable,
};
use pi::addr::PhysAddr;

/// Makes page-table stores visible to the table walker before they are used.
/// Enough for invalid-to-valid changes, which need no TLB invalidation.
pub fn publish_tables() {
    barrier::dsb(barrier::ISHST);
    barrier::isb(barrier::SY);
}

/// A context synchronization event: the instructions after it are fetched
/// after it, so code another CPU wrote and made visible is what runs.
pub fn isb() {
    barrier::isb(barrier::SY);
}

/// Stops all walks through TTBR0: after the jump to the high half, the
/// identity page is never used again.
pub fn disable_ttbr0() {
    TCR_EL1.set(TCR_EL1.get() | pi::boot::TCR_EPD0);
    TTBR0_EL1.set(0);
    barrier::isb(barrier::SY);
    // SAFETY: TLB invalidation has no memory-safety preconditions.
    unsafe { core::arch::asm!("tlbi vmalle1", "dsb nsh", "isb", options(nostack, preserves_flags)) };
}

/// Whether TTBR0 walks are off.
pub fn ttbr0_disabled() -> bool {
    TCR_EL1.get() & pi::boot::TCR_EPD0 != 0
}

/// Root of the kernel-half tables.
pub fn ttbr1_root() -> PhysAddr {
    // BADDR is bits [47:1]; with 48-bit PAs and no ASID use the low 48 bits.
    PhysAddr::new(TTBR1_EL1.get() & 0x0000_ffff_ffff_fffe)
}

/// TTBR1_EL1 as it is: what a secondary loads to share the kernel tables.
pub fn ttbr1_raw() -> u64 {
    TTBR1_EL1.get()
}

/// Where `splitmap_first_frame` is now (a kernel address).
pub fn first_frame() -> u64 {
    splitmap_first_frame as *const () as u64
}

/// The physical address width the kernel uses: this CPU's
/// (ID_AA64MMFR0_EL1.PARange), at most 48 bits, as the early code caps
/// TCR_EL1.IPS (`pi::boot::IPS_MAX`): 52-bit addresses need descriptors
/// this kernel does not write.
pub fn pa_bits() -> u32 {
    super::idregs::pa_bits(ID_AA64MMFR0_EL1.get()).min(super::idregs::pa_bits(pi::boot::IPS_MAX))
}

/// A random number from RNDR, if the CPU has FEAT_RNG and it delivers.
pub fn rndr() -> Option<u64> {
    if (ID_AA64ISAR0_EL1.get() >> 60) & 0xf == 0 {
        return None;
    }
    let value: u64;
    let ok: u64;
    // SAFETY: RNDR (s3_3_c2_c4_0) exists (checked above) and only reads; a
    // failure sets NZCV to 0b0100, seen through `cset`.
    unsafe {
        core::arch::asm!("mrs {v}, s3_3_c2_c4_0", "cset {ok}, ne", v = out(reg) value, ok = out(reg) ok, options(nomem, nostack))
    };
    (ok != 0).then_some(value)
}

/// Masks interrupts and waits forever.
pub fn park() -> ! {
    DAIF.set(0b1111 << 6);
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Invalidates every TLB entry of this translation regime on every CPU of
/// the inner shareable domain (`tlbi vmalle1is`, `dsb ish`: broadcast, so a
/// secondary's TLB drops a mapping CPU 0 removed), after removing mappings.
#[cfg(not(feature = "local-tlbi"))]
pub fn flush_tlb() {
    // SAFETY: TLB invalidation has no memory-safety preconditions.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalle1is",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// The test-only local variant (feature `local-tlbi`): other CPUs keep
/// what their TLBs hold, which `smp_an_unmap_is_seen_by_every_cpu` catches.
#[cfg(feature = "local-tlbi")]
pub fn flush_tlb() {
    // SAFETY: TLB invalidation has no memory-safety preconditions.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Cleans the data-cache line holding `p` to the point of unification, where
/// instruction fetch sees it.
pub fn clean_to_pou(p: *const u8) {
    // SAFETY: cache maintenance by VA on a mapped address changes no memory
    // contents; callers pass addresses they just wrote.
    unsafe { core::arch::asm!("dc cvau, {p}", p = in(reg) p, options(nostack, preserves_flags)) };
}

/// Discards every instruction-cache line of every CPU in the inner
/// shareable domain (`ic ialluis`: broadcast), after the data written as
/// code has been cleaned with [`clean_to_pou`]: module code and veneers
/// written on one CPU may be run on any (`on N CMD`). QEMU models no
/// instruction cache, so no test can tell this from a local `ic iallu`
/// (docs/design-notes.md).
pub fn invalidate_icache() {
    // SAFETY: cache maintenance only.
    unsafe {
        core::arch::asm!(
            "dsb ish",
            "ic ialluis",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// The smallest data-cache line of any cache this CPU's maintenance
/// reaches, in bytes (CTR_EL0.DminLine, log2 of words): maintenance by
/// address steps by it, as Linux's does.
fn dcache_line() -> usize {
    let ctr: u64;
    // SAFETY: CTR_EL0 is readable at EL1.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Makes `len` bytes of code written as data at `start` safe to execute.
pub fn sync_icache(start: *const u8, len: usize) {
    // Every line the bytes touch, at this CPU's line size: stepping by the
    // smallest the architecture allows (16 bytes) cleaned each 64-byte line
    // of the Cortex-A72 four times, 1,000 instructions per page of module text.
    let line = dcache_line();
    let first = start.wrapping_sub(start as usize % line);
    let end = start.wrapping_add(len);
    let mut p = first;
    while p < end {
        clean_to_pou(p);
        p = p.wrapping_add(line);
    }
    invalidate_icache();
}

/// Zeroes the `len` bytes at `start`, both page-aligned: a block
/// (DCZID_EL0.BS words, 64 bytes on the Cortex-A72) per `dc zva`, as Linux's
/// `clear_page` does, or by stores where the CPU prohibits that
/// (DCZID_EL0.DZP). By stores, zeroing a module's two 4 KiB pages took 3,000
/// instructions (and a 64 KiB page 24,000).
///
/// # Safety
/// The bytes are writable, no one else's, and mapped as Normal memory: `dc
/// zva` on Device memory faults on hardware (TCG would not fault; the
/// linear map, the only caller's, is Normal).
pub unsafe fn zero_pages(start: *mut u8, len: usize) {
    let dczid: u64;
    // SAFETY: DCZID_EL0 is readable at EL1.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags)) };
    if dczid & 0x10 != 0 {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::write_bytes(start, 0, len) };
        return;
    }
    // At most 2 KiB: pages hold whole blocks.
    let block = 4 << (dczid & 0xf);
    debug_assert!((start as usize).is_multiple_of(block) && len.is_multiple_of(block));
    for offset in (0..len).step_by(block) {
        // SAFETY: the caller's contract; the block is inside the bytes.
        unsafe { core::arch::asm!("dc zva, {}", in(reg) start.add(offset), options(nostack, preserves_flags)) };
    }
}

/// The stacks to continue on: `exception` becomes SP_EL1; with `kernel`, the
/// code runs on SP_EL0 from then on (PSTATE.SPSel = 0), else on SP_EL1 too.
pub struct Stacks {
    /// Top of the stack exceptions are taken on.
    pub exception: u64,
    /// Top of the stack the code runs on, if not the exception stack.
    pub kernel: Option<u64>,
}

unsafe extern "C" {
    /// The outermost frame of every call chain: calls the function in x16,
    /// with x0-x7 as they are, which must never return. Its call-frame
    /// information leaves the return address undefined, so gdb's backtraces
    /// end on it, as the kernel's own do (the frame pointer is zero), instead
    /// of stopping on "previous frame inner to this frame (corrupt stack?)".
    /// The early code enters Rust through it; [`continue_on`] too. Only ever
    /// jumped to, never called from Rust: x16 would hold anything.
    fn splitmap_first_frame() -> !;
}

pi::asm_function!(
    "splitmap_first_frame",
    r#"
    .cfi_sections .debug_frame
    .cfi_startproc
    .cfi_undefined x30
    blr     x16
    udf     #0
    .cfi_endproc
"#
);

/// Continues in `next(args)` on fresh `stacks`, called from
/// `splitmap_first_frame` with an empty frame-record chain, so backtraces
/// end there. Both run `displacement` bytes above where they run now: after
/// a KASLR move, the image's offset; else 0.
///
/// # Safety
/// Both stack tops must be mapped, writable and unused; nothing on the
/// current stack may be used again; `next` must be the address (where the
/// image runs now) of code that never returns; the image must be mapped
/// executable `displacement` bytes above where it runs now.
pub unsafe fn continue_on(stacks: Stacks, next: u64, args: [u64; 3], displacement: u64) -> ! {
    let (sp_el0, spsel) = match stacks.kernel {
        Some(top) => (top, 0u64),
        None => (0, 1),
    };
    // Code addresses are taken PC-relatively (adrp/add: the small code
    // model), so this is where the first frame is now, as `next` is.
    let first_frame = splitmap_first_frame as *const () as u64;
    // SAFETY: the caller's contract; SPSel is written last, so the new SP_EL1
    // is set while it is still the stack pointer in use.
    unsafe {
        core::arch::asm!(
            "mov sp, {exception}",
            "msr sp_el0, {sp_el0}",
            "msr spsel, {spsel}",
            "mov x29, xzr",
            "br x17",
            exception = in(reg) stacks.exception,
            sp_el0 = in(reg) sp_el0,
            spsel = in(reg) spsel,
            // x16: what the first frame calls; x17: the first frame.
            in("x16") next.wrapping_add(displacement),
            in("x17") first_frame.wrapping_add(displacement),
            in("x0") args[0],
            in("x1") args[1],
            in("x2") args[2],
            options(noreturn),
        )
    }
}
