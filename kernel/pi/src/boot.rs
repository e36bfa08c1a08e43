//! From the boot protocol's entry to the kernel running at its link address.
//!
//! Runs with the MMU off, at whatever page-aligned physical address the loader
//! chose. Every address is computed PC-relatively (`adrp`/`adr`), never loaded
//! from memory, so the code works wherever it sits. The steps:
//!
//! 1. `__pi_primary_entry` (assembly): note the boot registers, leave EL2
//!    if entered there (`__pi_el2_to_el1`), put SCTLR_EL1 at a known
//!    MMU-off value, start counting instructions (for
//!    `phases`), enable FP/SIMD (compiled Rust may use it), clean and
//!    invalidate the top of the boot stack, which the MMU-off code uses, from
//!    the data cache and set it up.
//! 2. [`create_boot_tables`]: map what must exist before the MMU is on:
//!    the image at VA = PA in TTBR0, each segment with its row's
//!    permissions, and an empty root for TTBR1. Table pages come from the
//!    pool the linker reserved inside the image, never from memory past its
//!    end, each cleaned and invalidated before it is zeroed and invalidated
//!    again at the end. Everything else is mapped with the MMU on, where a
//!    table page costs no maintenance (with 64 KiB pages, 14 k instructions
//!    a page with the MMU off): the image at its link address
//!    ([`map_kernel`], step 3) and the DTB's window (the kernel's; only the
//!    DTB's size is read here, [`dtb_size`], and handed on).
//! 3. `__pi_enable_mmu` (assembly, identity-mapped): turn the MMU on
//!    (`__pi_mmu_on`; the secondaries share this and the EL2 exit), map
//!    the image at its link address ([`map_kernel`], still at VA = PA), zero
//!    `.bss` through the cache (what is written with the MMU off is only
//!    the stack and the tables: see `EarlyPool::mmu_off`), and jump to
//!    `splitmap_kernel_main` at its link address, called from the kernel's
//!    `splitmap_first_frame`, the frame backtraces end on.

use crate::addr::PhysAddr;
use crate::kmap::{self, Mapping};
use crate::layout::{DTB_MAX_SIZE, KIMAGE_VADDR, PAGE_SIZE};
use crate::pgtable::{self, MAIR_VALUE, TableAccess, TableAlloc};

/// TCR_EL1: 48-bit VAs in both halves (T0SZ = T1SZ = 16), the build's
/// granule in both (TG0, TG1), walks inner shareable and write-back
/// cacheable. IPS is filled in at run time: ID_AA64MMFR0_EL1.PARange capped
/// at [`IPS_MAX`].
pub const TCR_VALUE: u64 = TSZ // T0SZ
    | (1 << 8) | (1 << 10) | (3 << 12) // IRGN0, ORGN0 = WBWA; SH0 = inner
    | (TSZ << 16) // T1SZ
    | (1 << 24) | (1 << 26) | (3 << 28) // IRGN1, ORGN1 = WBWA; SH1 = inner
    | crate::layout::GRANULE.tcr_tg();

/// TnSZ: the bits of a virtual address above the translated ones.
const TSZ: u64 = 64 - crate::layout::VA_BITS as u64;

/// The widest TCR_EL1.IPS the kernel sets: 0b101, 48-bit physical
/// addresses. PARange 0b110 (52 bits) would need FEAT_LPA (64 KiB pages) or
/// FEAT_LPA2 (TCR_EL1.DS) and descriptors that hold PA bits 51:48, which
/// these do not (`pgtable`'s output addresses are bits 47:12); 0b111 is
/// reserved. So the early code sets IPS = min(PARange, IPS_MAX).
pub const IPS_MAX: u64 = 0b101;
// The EFI stub places the image below `idregs::pa_limit`, which the
// granule's descriptors cap: the same width as IPS_MAX.
const _: () = assert!(crate::idregs::pa_bits(IPS_MAX) == crate::layout::GRANULE.output_bits());

/// Where IPS sits in TCR_EL1 (bits 34:32).
pub const TCR_IPS_SHIFT: u32 = 32;

/// TCR_EL1.EPD0: no walks through TTBR0. Set once the identity page is left.
pub const TCR_EPD0: u64 = 1 << 7;

/// SCTLR_EL1 bits that are RES1 in ARMv8.0 (11, 20, 22, 23, 28, 29): the value
/// with everything off.
pub const SCTLR_RES1: u64 = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);

/// SCTLR_EL1 with the MMU on: M (MMU), C (data cache), SA (SP alignment check),
/// I (instruction cache), WXN (writable implies execute-never).
pub const SCTLR_MMU_ON: u64 = SCTLR_RES1 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19);

unsafe extern "C" {
    // Linker-script symbols (kernel/linker.ld.in). Only their addresses are used.
    static _text: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static _end: u8;
    static __pool_start: u8;
    static __pool_loaded_end: u8;
    static __pool_end: u8;
}

/// The address of a linker symbol as the running code sees it: before the MMU
/// is on that is its physical address, because the reference is PC-relative.
macro_rules! here {
    ($sym:ident) => {
        &raw const $sym as u64
    };
}

/// Table pages carved from the pool inside the image.
///
/// The kernel keeps allocating from the same pool after the MMU is on (for the
/// linear map and device mappings), reaching pages through the image mapping.
#[derive(Debug)]
pub struct EarlyPool {
    start: u64,
    next: u64,
    end: u64,
    /// Added to a table's PA to reach it from the running code: 0 while the MMU
    /// is off, `kimage_voffset` afterwards.
    va_offset: u64,
    /// Whether its pages are written with the MMU and caches off (see
    /// [`EarlyPool::mmu_off`]).
    caches_off: bool,
    /// With the caches off, the pool's pages below this PA are in the
    /// file: zero, and cleaned to the point of coherency by the loader.
    /// Tables are taken from them first (at `loaded_next`), the roots and
    /// the tables past them from `next` on, which starts here. (`start`
    /// for a resumed pool: none.)
    loaded_end: u64,
    loaded_next: u64,
}

impl EarlyPool {
    /// A pool over `[start, end)` of which `used` pages are handed out already,
    /// reached at `pa + va_offset`.
    ///
    /// # Safety
    /// `[start, end)` must be page-aligned memory reserved for page tables, its
    /// first `used` pages allocated by an earlier pool over the same range, the
    /// rest unused by anything else, and all of it reachable at `pa + va_offset`.
    pub const unsafe fn resume(start: PhysAddr, end: PhysAddr, used: u64, va_offset: u64) -> Self {
        EarlyPool {
            start: start.raw(),
            next: start.raw() + used * PAGE_SIZE,
            end: end.raw(),
            va_offset,
            caches_off: false,
            loaded_end: start.raw(),
            loaded_next: start.raw(),
        }
    }

    /// The pool as the early code takes it, with the MMU off, reached at its
    /// PA. Its pages below `loaded` are in the file, as the loader left
    /// them: zero, and cleaned to the point of coherency (the boot
    /// protocol's promise for the loaded image), so they are handed out as
    /// tables as they are, first. The roots come from the NOLOAD pages
    /// that follow (only their first [`ROOT_BYTES`] are used: a whole page
    /// of the file each would be waste), and so do tables once the loaded
    /// pages are taken. Every loaded page counts as used from the start.
    /// NOLOAD pages are past the end of the file, so the caches may hold
    /// lines there, dirty ones too.
    /// With the MMU off the stores go straight to memory, and an eviction
    /// of such a line later would overwrite them: so each such page is
    /// cleaned and invalidated (then `dsb sy`) before it is zeroed. Only
    /// the pages handed out need it; the rest are written later, through
    /// the cache, by the kernel. After the last store the early code
    /// invalidates every page taken ([`EarlyPool::invalidate_taken`]):
    /// clean lines may still hold what memory held before the stores.
    ///
    /// # Safety
    /// As [`EarlyPool::resume`] with nothing used and `va_offset` 0; the MMU
    /// must be off while the pool is used; `[start, loaded)` is part of the
    /// image as loaded from the file, all zeros, untouched since.
    pub const unsafe fn mmu_off(start: PhysAddr, loaded: PhysAddr, end: PhysAddr) -> Self {
        // SAFETY: the caller's contract is `resume`'s.
        let mut pool = unsafe { EarlyPool::resume(start, end, 0, 0) };
        pool.caches_off = true;
        pool.loaded_end = loaded.raw();
        pool.next = loaded.raw();
        pool
    }

    /// Pages handed out so far.
    pub const fn used(&self) -> u64 {
        (self.next - self.start) / PAGE_SIZE
    }

    /// Pages the pool holds in all.
    pub const fn capacity(&self) -> u64 {
        (self.end - self.start) / PAGE_SIZE
    }

    /// The pool is now reached at `pa + va_offset` (after the image moved).
    pub fn set_va_offset(&mut self, va_offset: u64) {
        self.va_offset = va_offset;
    }

    /// Whether `pa` lies inside the pool.
    pub const fn contains(&self, pa: PhysAddr) -> bool {
        self.start <= pa.raw() && pa.raw() < self.end
    }
}

// SAFETY: `resume`'s contract makes every pool page reachable at `pa + va_offset`
// and owned by the pool; the mapper only passes pages the pool handed out (or
// the roots, which are pool pages too). Both pointers come from that address,
// not from `self`; the pages' one writer is whoever holds `&mut` of the pool
// (the early code, then the kernel's locked tables that own it).
unsafe impl TableAccess for EarlyPool {
    fn table_ptr(&self, pa: PhysAddr) -> *const u64 {
        pa.raw().wrapping_add(self.va_offset) as *const u64
    }

    fn table_ptr_mut(&mut self, pa: PhysAddr) -> *mut u64 {
        pa.raw().wrapping_add(self.va_offset) as *mut u64
    }
}

impl EarlyPool {
    /// A root table: a pool page of which only the entries a walk from
    /// TTBRn can reach (the granule's first level: 512 with 4 KiB pages,
    /// 2 with 16 KiB, 64 with 64 KiB) are zeroed, and, with the MMU off,
    /// maintained; the rest of the page is never used.
    pub fn alloc_root(&mut self) -> Option<PhysAddr> {
        self.take(ROOT_BYTES)
    }

    /// Hands out the next page with its first `bytes` zeroed (a multiple of
    /// 64, at most a page).
    ///
    /// Never inlined: the two roots and `alloc_table` each had their own
    /// copy of the maintenance and zeroing loops, blocks QEMU translated
    /// three times over.
    #[inline(never)]
    fn take(&mut self, bytes: u64) -> Option<PhysAddr> {
        if self.end - self.next < PAGE_SIZE {
            return None;
        }
        let pa = PhysAddr::new(self.next);
        self.next += PAGE_SIZE;
        let page = self.table_ptr_mut(pa);
        if self.caches_off {
            dcache::clean_invalidate(pa.raw(), bytes);
            zero_by_pairs(page, bytes);
            return Some(pa);
        }
        if !zero_by_zva(page, bytes) {
            zero_by_pairs(page, bytes);
        }
        // With the MMU on the page may be linked into live tables
        // (`map_kernel`): its zeroes must reach the walker first.
        // SAFETY: a barrier only.
        unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
        Some(pa)
    }

    /// With the MMU off: after the last store to the tables, drops whatever
    /// lines the caches took meanwhile over the pages handed out (a
    /// speculative fill through another observer's cacheable alias), so the
    /// walks and cacheable reads that follow see what was stored. The first
    /// two pages after the loaded ones are the roots, of which only
    /// [`ROOT_BYTES`] were written.
    /// `dmb sy` first: with the MMU off nothing else orders the
    /// non-cacheable stores before the invalidation; `dsb sy` last, so it
    /// is done before the MMU is on.
    ///
    /// Of the loaded pages, only the entries the identity map of
    /// `[start, end)` below `ttbr0` wrote: every other line of them holds in
    /// memory what the file held, and any cached copy is clean and the same
    /// (with 64 KiB pages the two pages whole were 2,048 lines, 8 k
    /// instructions).
    fn invalidate_taken(&self, ttbr0: PhysAddr, start: u64, end: u64) {
        // SAFETY: barriers only.
        unsafe { core::arch::asm!("dmb sy", options(nostack, preserves_flags)) };
        pgtable::entry_runs(self, ttbr0, start, end - start, &mut |table, first, n| {
            if (self.start..self.loaded_next).contains(&table.raw()) {
                dcache::invalidate(table.raw() + first as u64 * 8, n as u64 * 8);
            }
        });
        let roots = self.loaded_end;
        for root in 0..2.min((self.next - roots) / PAGE_SIZE) {
            dcache::invalidate(roots + root * PAGE_SIZE, ROOT_BYTES);
        }
        let tables = roots + 2 * PAGE_SIZE;
        if self.next > tables {
            dcache::invalidate(tables, self.next - tables);
        }
        // SAFETY: barriers only.
        unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
    }
}

impl TableAlloc for EarlyPool {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        if self.loaded_next < self.loaded_end {
            // In the file: zero already, and no dirty line over it.
            let pa = PhysAddr::new(self.loaded_next);
            self.loaded_next += PAGE_SIZE;
            return Some(pa);
        }
        self.take(PAGE_SIZE)
    }
}

/// Zeroes `bytes` (a multiple of 64, at most a page) from `page`, a pool
/// page [`EarlyPool::take`] is handing out, with pairs of zero registers.
fn zero_by_pairs(page: *mut u64, bytes: u64) {
    // SAFETY: the caller's page (inside the pool, page-aligned, reachable
    // at `page` and not yet handed out); the loop stores exactly
    // `bytes` (a multiple of 64, at most a page, see `ROOT_BYTES`) from
    // it, 64 a turn. Assembly, because a plain loop would become a call
    // to `memset`, which lives outside this crate, and because pairs of
    // zero registers are the cheapest stores there are with the MMU off
    // (where `dc zva` faults).
    //
    // No barrier between these stores and the descriptor that links the
    // page in when the MMU is off: there are no table walks to order
    // them against, and the stores go straight to memory: the first
    // walk comes after `invalidate_taken`'s `dmb sy`/`dc ivac`/`dsb sy`
    // and the `isb` of `__pi_enable_mmu`. With the MMU on, `take`
    // issues the `dsb ishst` a live table needs (and the kernel's
    // `KernelTables::alloc_table`, kernel/src/mm/tables.rs, its own).
    unsafe {
        core::arch::asm!(
            "0:",
            "stp xzr, xzr, [{p}], #16",
            "stp xzr, xzr, [{p}], #16",
            "stp xzr, xzr, [{p}], #16",
            "stp xzr, xzr, [{p}], #16",
            "subs {n}, {n}, #1",
            "b.ne 0b",
            p = inout(reg) page => _,
            n = inout(reg) bytes / 64 => _,
            options(nostack),
        );
    }
}

/// Zeroes `bytes` (a multiple of 64) from `page` with `dc zva`, a block
/// of DCZID_EL0.BS words a turn (64 bytes on the Cortex-A72), if the CPU
/// allows it (DCZID_EL0.DZP clear) and the block divides 64; says whether it
/// did. Only for Normal memory, so only with the MMU on (with it off,
/// memory is Device and `dc zva` faults on hardware). With 64 KiB pages a
/// table page is 1,024 turns of three instructions, against six for the
/// four `stp` of the loop in `take`: 3 k instructions instead of 6 k.
fn zero_by_zva(page: *mut u64, bytes: u64) -> bool {
    let dczid: u64;
    // SAFETY: DCZID_EL0 is readable at EL1.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags)) };
    let block = 4u64 << (dczid & 0xf);
    if dczid & (1 << 4) != 0 || block > 64 {
        return false;
    }
    let mut at = page as u64;
    let end = at + bytes;
    while at < end {
        // SAFETY: the caller's page is Normal memory the pool owns and has
        // not handed out; each turn zeroes the aligned block at `at`, which
        // `block` dividing 64 keeps inside `[page, page + bytes)`.
        unsafe { core::arch::asm!("dc zva, {}", in(reg) at, options(nostack, preserves_flags)) };
        at += block;
    }
    true
}

/// What a walk can read of a root table: the first level's entries, and at
/// least 64 bytes (what `EarlyPool::take` zeroes a turn; the rest of a
/// root's page is never used).
const ROOT_BYTES: u64 = {
    let g = crate::layout::GRANULE;
    let bytes = g.entries_at(g.first_level()) as u64 * 8;
    if bytes < 64 { 64 } else { bytes }
};

/// Data-cache maintenance to the point of coherency by virtual address
/// (with the MMU off, the physical one), a line at a time: CTR_EL0.DminLine,
/// the smallest data cache line of any level.
mod dcache {
    fn line() -> u64 {
        let ctr: u64;
        // SAFETY: CTR_EL0 is readable at EL1.
        unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
        4 << ((ctr >> 16) & 0xf)
    }

    /// `dc civac` over every line that `[start, start + len)` touches, then
    /// `dsb sy`: done before the next store.
    pub fn clean_invalidate(start: u64, len: u64) {
        let line = line();
        let mut at = start & !(line - 1);
        while at < start + len {
            // SAFETY: maintenance by VA changes no memory contents but those
            // of lines written back, which hold what they held.
            unsafe { core::arch::asm!("dc civac, {}", in(reg) at, options(nostack, preserves_flags)) };
            at += line;
        }
        // SAFETY: a barrier only.
        unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
    }

    /// `dc ivac` over every line that `[start, start + len)` touches; the
    /// caller orders it with barriers. Only for lines whose cached copies
    /// hold nothing to keep: `clean_invalidate` made them clean before the
    /// stores that followed went to memory.
    pub fn invalidate(start: u64, len: u64) {
        let line = line();
        let mut at = start & !(line - 1);
        while at < start + len {
            // SAFETY: as in `clean_invalidate`; the lines dropped were clean
            // (see above), so no store is lost.
            unsafe { core::arch::asm!("dc ivac, {}", in(reg) at, options(nostack, preserves_flags)) };
            at += line;
        }
    }
}

/// What the early code hands to the assembly that turns the MMU on.
#[repr(C)]
pub struct BootTables {
    /// Root of the kernel half (image, DTB window).
    pub ttbr1: u64,
    /// Root of the identity map of the image.
    pub ttbr0: u64,
    /// Pool pages used so far.
    pub pool_used: u64,
    /// Bytes of the DTB for the kernel to map at `FIXMAP_DTB` ([`dtb_size`];
    /// 0 without a DTB).
    pub dtb_len: u64,
}

/// Why the early mapping failed. There is no console yet, so the assembly
/// parks the CPU; the code is left in x0 for a debugger.
#[repr(u64)]
enum EarlyError {
    PoolTooSmall = 1,
    Map = 2,
    /// The CPU lacks the granule the kernel was built for.
    Granule = 3,
}

impl From<pgtable::MapError> for EarlyError {
    fn from(_: pgtable::MapError) -> Self {
        EarlyError::Map
    }
}

/// Builds the boot page tables. Called from `__pi_primary_entry` with the MMU
/// off; returns 0 on success, an [`EarlyError`] code otherwise.
///
/// # Safety
/// MMU off, `.bss` zeroed (pool pages are zeroed as they are handed out),
/// `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __pi_create_boot_tables(dtb_pa: u64, out: *mut BootTables) -> u64 {
    match create_boot_tables(dtb_pa) {
        Ok(tables) => {
            // SAFETY: the caller passes a pointer to its stack frame.
            unsafe { out.write(tables) };
            0
        }
        Err(e) => e as u64,
    }
}

fn create_boot_tables(dtb_pa: u64) -> Result<BootTables, EarlyError> {
    // QEMU does not fault on a granule the CPU lacks: it walks with another
    // one. So this check is the only guard, and with no console yet it speaks
    // through the early UART.
    let mmfr0: u64;
    // SAFETY: ID_AA64MMFR0_EL1 is always readable at EL1.
    unsafe { core::arch::asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0, options(nomem, nostack)) };
    if !crate::layout::GRANULE.supported_by(mmfr0) {
        early_uart::refuse_granule(board_of(dtb_pa), mmfr0);
        return Err(EarlyError::Granule);
    }

    // SAFETY: the linker reserves [__pool_start, __pool_end) for tables, page
    // aligned, its pages up to __pool_loaded_end zeros in the file, and the
    // MMU is off so physical addresses are used as they are. Nothing runs
    // this twice on one load of the image.
    let mut pool = unsafe {
        EarlyPool::mmu_off(
            PhysAddr::new(here!(__pool_start)),
            PhysAddr::new(here!(__pool_loaded_end)),
            PhysAddr::new(here!(__pool_end)),
        )
    };
    // The roots first: `invalidate_taken` knows them as the first two pages
    // past the loaded ones.
    let ttbr1 = pool.alloc_root().ok_or(EarlyError::PoolTooSmall)?;
    let ttbr0 = pool.alloc_root().ok_or(EarlyError::PoolTooSmall)?;

    // The image where it runs (VA = PA), each segment as at its link
    // address: enough for `__pi_enable_mmu` to turn the MMU on and for
    // [`map_kernel`] to build the image's mapping at its link address
    // with the MMU and caches on, where a table page costs no cache
    // maintenance (with 64 KiB pages, 14 k instructions a page with the
    // MMU off, and the image at its link address takes two more pages).
    // This is also where the secondaries turn their MMU on.
    map_image(&mut pool, ttbr0, 0)?;

    /// The one thing the early code ever prints, before the device tree is read:
    /// on the board's PL011 (`crate::board`; elsewhere nothing shows, and the
    /// CPU still parks). Then, as after any panic, the board resets where the
    /// early code knows how (the Pi's watchdog: the host tool hears a reset,
    /// QEMU with `-no-reboot` exits); elsewhere the last line is the one the
    /// host tool watches for to end a session that cannot power off.
    mod early_uart {
        use crate::layout::GRANULE;

        /// `uart` is a PL011's data register; its flag register is at +0x18.
        fn put(uart: u64, byte: u8) {
            let data = uart as *mut u32;
            let flags = (uart + 0x18) as *const u32;
            // SAFETY: with the MMU off these are Device accesses to the PL011's
            // registers; nothing else drives the UART this early. TXFF (bit 5)
            // set means the FIFO is full: wait.
            unsafe {
                while flags.read_volatile() & (1 << 5) != 0 {}
                data.write_volatile(u32::from(byte));
            }
        }

        fn write(uart: u64, text: &str) {
            for &b in text.as_bytes() {
                if b == b'\n' {
                    put(uart, b'\r');
                }
                put(uart, b);
            }
        }

        /// Says which granule the CPU lacks, and what to do on `board`.
        pub fn refuse_granule(board: &crate::board::Board, mmfr0: u64) {
            let uart = board.early_uart;
            let (field, value) = GRANULE.cpu_field(mmfr0);
            write(uart, "\nkernel panic: this kernel is built for ");
            write(uart, GRANULE.name());
            write(uart, " pages, which this CPU cannot use (ID_AA64MMFR0_EL1.");
            write(uart, field);
            write(uart, " = 0x");
            put(uart, b"0123456789abcdef"[(value & 0xf) as usize]);
            write(uart, "): ");
            board.granule_hint().for_each(|b| put(uart, b));
            write(uart, "\n");
            if let Some(pm) = board.early_reset {
                reset(pm);
                write(
                    uart,
                    "splitmap: reset is unavailable: the BCM2835 power-management watchdog did not reset the machine; halted (Ctrl-A X leaves QEMU)\n",
                );
            } else {
                write(
                    uart,
                    "splitmap: power-off is unavailable: the device tree is not read yet; halted (Ctrl-A X leaves QEMU)\n",
                );
            }
        }

        /// Resets the board through its power-management block at `pm`;
        /// returns only if that did not happen.
        fn reset(pm: u64) {
            use crate::pm::{Action, RSTC, RSTS, SETTLE_SPINS, writes};
            let read = |offset: u64| {
                let value: u32;
                // SAFETY: with the MMU off this is a Device access to one of
                // the block's 32-bit registers (the board's row names the
                // block); one `ldr`, as `kernel::arch::mmio` reads registers.
                unsafe {
                    core::arch::asm!("ldr {v:w}, [{a}]", a = in(reg) pm + offset, v = out(reg) value, options(nostack, readonly));
                }
                value
            };
            // In program order: with the MMU off every access is Device-nGnRnE,
            // so RSTC (which fires the reset) is written last.
            for (offset, value) in writes(Action::Reset, read(RSTS), read(RSTC)) {
                // SAFETY: as above, one `str` of the value the block expects
                // there; nothing else drives it this early.
                unsafe {
                    core::arch::asm!("str {v:w}, [{a}]", a = in(reg) pm + offset, v = in(reg) value, options(nostack));
                }
            }
            for _ in 0..SETTLE_SPINS {
                core::hint::spin_loop();
            }
        }
    }

    #[cfg(feature = "relacheck-canary")]
    core::hint::black_box(&canary::RELACHECK_CANARY);
    #[cfg(feature = "relacheck-bss-canary")]
    bss_canary::BSS_CANARY.store(1, core::sync::atomic::Ordering::Relaxed);

    pool.invalidate_taken(ttbr0, here!(_text), here!(_end));
    Ok(BootTables {
        ttbr1: ttbr1.raw(),
        ttbr0: ttbr0.raw(),
        pool_used: pool.used(),
        dtb_len: if dtb_pa == 0 { 0 } else { dtb_size(dtb_pa) },
    })
}

/// Maps the image at its link address in TTBR1's root `ttbr1`, which the
/// early code left empty, taking table pages from the pool after its
/// first `pool_used`; writes the pages used in all to `used`. Called from
/// `__pi_enable_mmu` with the MMU and caches on, running at VA = PA through
/// TTBR0's identity map of the image; returns 0 on success, an
/// [`EarlyError`] code otherwise.
///
/// # Safety
/// MMU on with TTBR0 mapping the image at VA = PA (stack and pool
/// included) and TTBR1 = `ttbr1`; nothing has used the image's link
/// address yet; `used` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __pi_map_kernel(ttbr1: u64, pool_used: u64, used: *mut u64) -> u64 {
    // SAFETY: the pool is the early code's, of which it took `pool_used`
    // pages; the identity map reaches it at its PA (`va_offset` 0).
    let mut pool = unsafe {
        EarlyPool::resume(
            PhysAddr::new(here!(__pool_start)),
            PhysAddr::new(here!(__pool_end)),
            pool_used,
            0,
        )
    };
    match map_kernel(&mut pool, PhysAddr::new(ttbr1)) {
        Ok(()) => {
            // SAFETY: the caller passes a pointer to its stack frame.
            unsafe { used.write(pool.used()) };
            0
        }
        Err(e) => e as u64,
    }
}

/// The image at its link address, whatever its physical address.
///
/// TTBR1 is live: its root was installed empty, and the MMU may walk it
/// (speculatively) from the moment it is on. No break-before-make is
/// needed, since every descriptor written here replaces an invalid one,
/// and invalid descriptors are never cached in a TLB; so no TLB
/// invalidation either. What a live table does need: each new table page
/// zeroed before the descriptor that links it is visible to the walker
/// (`EarlyPool::take` issues `dsb ishst` after zeroing a page with the
/// MMU on), and every descriptor visible before the first access through
/// TTBR1 (the `dsb ishst` below, and the `isb` in `__pi_enable_mmu`).
/// Walks are cacheable (TCR_EL1's IRGN1/ORGN1), so the tables written
/// through the cache need no cleaning.
fn map_kernel(pool: &mut EarlyPool, ttbr1: PhysAddr) -> Result<(), EarlyError> {
    map_image(pool, ttbr1, KIMAGE_VADDR.wrapping_sub(here!(_text)))?;
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
    Ok(())
}

/// Maps each segment of the image, where it runs, `voffset` above its
/// address, below `root`: the identity map (`voffset` 0) and the link
/// address. Both run at the image's physical address.
///
/// Never inlined: its loop is unrolled, and the two callers each had a
/// copy of the three calls, blocks QEMU translated twice.
#[inline(never)]
fn map_image(pool: &mut EarlyPool, root: PhysAddr, voffset: u64) -> Result<(), EarlyError> {
    for segment in image_segments() {
        map_segment(pool, root, segment, voffset)?;
    }
    Ok(())
}

/// Maps `segment` of the image, where it runs, `voffset` above its
/// address, below `root`.
///
/// Never inlined: the loop over the three segments is unrolled, and
/// `pgtable::map`'s argument checks inlined in each turn were 7 blocks a
/// segment for QEMU to translate.
#[inline(never)]
fn map_segment(pool: &mut EarlyPool, root: PhysAddr, segment: Segment, voffset: u64) -> Result<(), EarlyError> {
    let Segment { start, end, mapping } = segment;
    pgtable::map(
        pool,
        root,
        start.wrapping_add(voffset),
        PhysAddr::new(start),
        end - start,
        mapping.attrs,
        mapping.granularity,
    )?;
    Ok(())
}

/// One segment of the image, mapped in one call.
#[derive(Clone, Copy)]
pub struct Segment {
    /// First byte, page-aligned by the linker script.
    pub start: u64,
    /// One past the last byte, page-aligned too.
    pub end: u64,
    /// Its row's in [`kmap::KERNEL_MAP`]: text's, rodata's, or data's (which
    /// bss, pool and boot stack share, so blocks may span them).
    pub mapping: Mapping,
}

/// The image's segments (text, rodata, data) at the addresses the running
/// code sees: physical before the MMU is on, virtual after.
#[inline(always)]
pub fn image_segments() -> [Segment; 3] {
    let segment = |start, end, mapping| Segment { start, end, mapping };
    [
        segment(here!(_text), here!(__text_end), const { kmap::mapping("text") }),
        segment(
            here!(__text_end),
            here!(__rodata_end),
            const { kmap::mapping("rodata") },
        ),
        segment(here!(__rodata_end), here!(_end), const { kmap::mapping("data") }),
    ]
}

/// The board the device tree at `dtb_pa` names (the default board, if it
/// names none or cannot be read).
fn board_of(dtb_pa: u64) -> &'static crate::board::Board {
    let tree = (dtb_pa != 0).then(|| {
        // SAFETY: with the MMU off, the DTB the boot protocol puts at x0 is
        // readable where it is; `dtb_size` read only its header and caps the
        // length at the protocol's 2 MiB, and every read below is checked.
        unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, dtb_size(dtb_pa) as usize) }
    });
    crate::board::board(crate::board::of_compatible(
        tree.and_then(crate::board::root_compatible),
    ))
}

/// How much of the DTB to map: its header's `totalsize` capped at the
/// protocol's 2 MiB, and never less than the header's first 8 bytes (magic and
/// `totalsize`), which the kernel reads to say what is wrong with a bad tree.
fn dtb_size(dtb_pa: u64) -> u64 {
    const FDT_MAGIC: u32 = 0xd00d_feed;
    const MAGIC_AND_SIZE: u64 = 8;
    if !dtb_pa.is_multiple_of(8) {
        return MAGIC_AND_SIZE;
    }
    let header = dtb_pa as *const u32;
    // SAFETY: the boot protocol puts a DTB at x0 (8-byte aligned, checked above);
    // reading its first two words is what any loader expects the kernel to do.
    let (magic, size) = unsafe {
        (
            u32::from_be(header.read_volatile()),
            u32::from_be(header.add(1).read_volatile()),
        )
    };
    if magic != FDT_MAGIC {
        return MAGIC_AND_SIZE;
    }
    u64::from(size).clamp(MAGIC_AND_SIZE, DTB_MAX_SIZE)
}

#[cfg(feature = "relacheck-canary")]
mod canary {
    /// A table of pointers: linked statically, each entry is an absolute address
    /// (R_AARCH64_ABS64), which is wrong before the MMU is on.
    #[unsafe(no_mangle)]
    pub static RELACHECK_CANARY: [&u8; 1] = [&TARGET];
    static TARGET: u8 = 0;
}

#[cfg(feature = "relacheck-bss-canary")]
mod bss_canary {
    /// Zero-initialised, so in `.bss`, which holds garbage until the MMU is on.
    #[unsafe(no_mangle)]
    pub static BSS_CANARY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}

// The assembly loads MAIR, TCR and SCTLR values with `movz`/`movk` of their
// low 32 bits only.
const _: () = assert!(MAIR_VALUE >> 32 == 0 && TCR_VALUE >> 32 == 0 && SCTLR_MMU_ON >> 32 == 0);

// Leaves EL2 for EL1, for the boot CPU's entry and every secondary's (one
// sequence, so a CPU entered at EL2 is set up the same whichever it is):
// called with `bl`, MMU off, it returns at EL1 to x30: by `eret`, with
// interrupts masked, if called at EL2 (booting.rst allows EL2 entry; this
// kernel runs at EL1), and at once if called at EL1. x0 and x1 are
// clobbered, so callers keep nothing there. Outside `.idmap.text`: it only
// ever runs with the MMU off.
crate::asm_function!(
    section = ".text.pi.entry",
    "__pi_el2_to_el1",
    r#"
    mrs     x0, CurrentEL
    cmp     x0, #(2 << 2)
    b.eq    0f
    ret
0:  mov     x0, #(1 << 31)              // HCR_EL2.RW: EL1 is AArch64;
    orr     x0, x0, #(1 << 29)          // .HCD: `hvc` is undefined at EL1,
__pi_el2_hcr:                           // not a call into an EL2 that has
    msr     hcr_el2, x0                 // no hypervisor (a PSCI probe on a
                                        // board without PSCI traps, and is
                                        // caught); where EL3 exists HCD is
                                        // RES0, and EL2's vectors make it
                                        // so. tests/gdb.rs adds a trap at
                                        // this write
    isb
    // Whether HCR_EL2.E2H stays 1 whatever is written (a CPU without
    // FEAT_E2H0: Apple's, or a nested guest's, which may even read 0): it
    // renames EL1 registers at EL2, `far_el1` to FAR_EL2, and changes the
    // layout of CPTR_EL2 and CNTHCTL_EL2. Tested as Linux does: with E2H
    // 0, FAR_EL1 keeps the 1 written to it.
    mov     x1, #1
    msr     far_el1, x1
    isb
    mov     x1, #2
    msr     far_el2, x1
    isb
    mrs     x1, far_el1
__pi_el2_e2h_probed:                    // (tests/gdb.rs makes it read 2 here)
    cmp     x1, #2
    movz    x1, #({sctlr_off} & 0xffff) // SCTLR_EL1: MMU and caches off,
    movk    x1, #(({sctlr_off} >> 16) & 0xffff), lsl #16 // RES1 bits set
    b.ne    5f
    orr     x0, x0, #(1 << 34)          // E2H-only: say so in HCR_EL2, as
    msr     hcr_el2, x0                 // it behaves
    isb
    mov     x0, #(3 << 20)              // CPTR_EL2, laid out as CPACR_EL1:
    msr     cptr_el2, x0                // FPEN, no FP/SIMD traps to EL2
    mov     x0, #(3 << 10)              // CNTHCTL_EL2, laid out as with
    msr     cnthctl_el2, x0             // E2H: EL1PCTEN, EL1PCEN
    msr     S3_5_C1_C0_0, x1            // SCTLR_EL1, named SCTLR_EL12 here
    b       6f                          // (`sctlr_el1` is SCTLR_EL2)
5:  mov     x0, #0x33ff                 // CPTR_EL2: no FP/SIMD traps to EL2
    msr     cptr_el2, x0
    mov     x0, #3                      // CNTHCTL_EL2: EL1 may use the
    msr     cnthctl_el2, x0             // physical counter and timer
    msr     sctlr_el1, x1
6:  mrs     x0, midr_el1                // EL1 reads MIDR_EL1 and MPIDR_EL1
    msr     vpidr_el2, x0               // from VPIDR_EL2 and VMPIDR_EL2,
    mrs     x0, mpidr_el1               // whose reset values are UNKNOWN
    msr     vmpidr_el2, x0              // (QEMU's are the real ones): the
                                        // GIC and `cpus` go by the affinity
    mrs     x1, id_aa64dfr0_el1         // MDCR_EL2: no PMU or debug traps
    ubfx    x1, x1, #8, #4              // to EL2, and every PMU counter
    mov     x0, xzr                     // EL1's (HPMN = PMCR_EL0.N), whatever
    cbz     x1, 1f                      // firmware left; PMU registers exist
    cmp     x1, #0xf                    // only if PMUVer is neither 0 nor 0xf
    b.eq    1f
    mrs     x0, pmcr_el0
    ubfx    x0, x0, #11, #5
1:  msr     mdcr_el2, x0
    msr     cntvoff_el2, xzr
    msr     vttbr_el2, xzr              // VMID 0: EL1's TLB entries carry
                                        // the VMID even with stage 2 off,
                                        // and `tlbi vmalle1is` reaches only
                                        // the issuer's; its reset is UNKNOWN
    mrs     x0, id_aa64mmfr0_el1        // With fine-grained traps (FEAT_FGT:
    ubfx    x0, x0, #56, #4             // their reset is UNKNOWN where EL3
    cbz     x0, 3f                      // exists), none: HFGRTR, HFGWTR,
    msr     S3_4_C1_C1_4, xzr           // HFGITR, HDFGRTR, HDFGWTR_EL2 (the
    msr     S3_4_C1_C1_5, xzr           // inverted-sense bits trap only
    msr     S3_4_C1_C1_6, xzr           // registers the kernel never uses)
    msr     S3_4_C3_C1_4, xzr
    msr     S3_4_C3_C1_5, xzr
3:  mrs     x0, id_aa64mmfr1_el1        // With FEAT_HCX, HCRX_EL2 0: no
    ubfx    x0, x0, #40, #4             // extension enabled for EL1
    cbz     x0, 4f
    msr     S3_4_C1_C2_2, xzr
4:  mrs     x0, id_aa64pfr0_el1         // With a GICv3 CPU interface (the
    ubfx    x0, x0, #24, #4             // GIC field nonzero), ICC_SRE_EL2:
    cbz     x0, 2f                      // SRE, and Enable so that EL1's
    mrs     x0, S3_4_C12_C9_5           // ICC_SRE_EL1 does not trap to EL2
    mov     x1, #0x9                    // (its reset value is UNKNOWN on
    orr     x0, x0, x1                  // hardware; QEMU's reads as set)
    msr     S3_4_C12_C9_5, x0
    isb
    mrs     x0, S3_4_C12_C9_5           // only if SRE stuck: the virtual
    tbz     x0, #0, 2f                  // interface's registers need it
    msr     S3_4_C12_C11_0, xzr         // ICH_HCR_EL2: no virtual interface
2:  adrp    x0, __pi_el2_vectors        // EL2's vectors from here on: a
    add     x0, x0, :lo12:__pi_el2_vectors // trap left on is handed to EL1
    msr     vbar_el2, x0
    mov     x0, #0x3c5                  // SPSR_EL2: EL1h, interrupts masked
    msr     spsr_el2, x0
    msr     elr_el2, x30                // back to the caller, at EL1
    eret
"#,
    sctlr_off = const SCTLR_RES1,
);

// EL2's vectors once the kernel runs at EL1 (VBAR_EL2, set as EL2 is left).
// An exception EL2 takes from EL1 is a trap the exit did not turn off (one
// firmware or a newer CPU left on: a fine-grained trap of a later
// extension, MPAM's); with no vectors EL2 would run whatever VBAR_EL2's
// UNKNOWN reset names, and the kernel would hang without a word. Here each
// is handed down to EL1's vector of the same kind, with EL1's ESR, FAR,
// ELR and SPSR as EL2's: the kernel reports it decoded, as any exception
// (`esr::Syndrome::hint` says where it came from). From EL2 itself (only
// the exit runs there, before this is set) and from AArch32 (HCR_EL2.RW)
// nothing comes: those entries wait forever.
crate::asm_function!(
    section = ".text.pi.el2_vectors",
    "__pi_el2_vectors",
    r#"
    .balign 0x800
    .rept 8                             // from EL2, SP_EL0 and SP_EL2
    .balign 0x80
0:  wfe
    b       0b
    .endr
    .irp kind, 0, 1, 2, 3               // from EL1 (or EL0), AArch64: sync,
    .balign 0x80                        // IRQ, FIQ, SError
    msr     tpidr_el2, x0               // x0 kept in TPIDR_EL2, x1 in SP_EL2
    mov     sp, x1                      // (nothing here uses a stack)
    mov     x1, #(\kind * 0x80)
    b       __pi_el2_hand_down
    .endr
    .rept 4                             // from AArch32
    .balign 0x80
0:  wfe
    b       0b
    .endr
"#
);

// The exception EL2 just took, as EL1 would have taken it: x1 is its kind's
// offset in a group of vectors (x0 and x1 kept as the vectors left them).
// An `hvc` is handed down as HCR_EL2.HCD would have made it, where the CPU
// has EL3 and HCD is RES0 (the Raspberry Pi's A53s): undefined, at the
// `hvc` itself, so the exception table that covers the kernel's PSCI calls
// catches a guess over it as on any other board.
crate::asm_function!(
    section = ".text.pi.el2_vectors",
    "__pi_el2_hand_down",
    r#"
    cbnz    x1, 4f                      // synchronous: an `hvc` (EC 0x16)?
    mrs     x0, esr_el2
    lsr     x0, x0, #26
    cmp     x0, #0x16
    b.ne    4f
    mrs     x0, elr_el2                 // ELR_EL2 is the instruction after
    sub     x0, x0, #4                  // it
    msr     elr_el2, x0
    mov     x0, #(1 << 25)              // ESR: EC 0 (unknown reason), IL
    msr     esr_el2, x0
4:  mrs     x0, spsr_el2                // Which of EL1's four groups: from
    tst     x0, #0xc                    // EL0, "lower EL" (0x400); from EL1,
    b.ne    0f                          // "current EL" with SP_EL1 (0x200,
    add     x1, x1, #0x400              // the kernel's) or SP_EL0 (0)
    b       1f
0:  tbz     x0, #0, 1f
    add     x1, x1, #0x200
1:  mrs     x0, hcr_el2                 // With E2H (`__pi_el2_to_el1`),
    tbnz    x0, #34, 2f                 // EL1's registers are *_EL12 here
    mrs     x0, esr_el2
    msr     esr_el1, x0
    mrs     x0, far_el2
    msr     far_el1, x0
    mrs     x0, elr_el2
    msr     elr_el1, x0
    mrs     x0, spsr_el2
    msr     spsr_el1, x0
    mrs     x0, vbar_el1
    b       3f
2:  mrs     x0, esr_el2
    msr     S3_5_C5_C2_0, x0            // ESR_EL12
    mrs     x0, far_el2
    msr     S3_5_C6_C0_0, x0            // FAR_EL12
    mrs     x0, elr_el2
    msr     S3_5_C4_C0_1, x0            // ELR_EL12
    mrs     x0, spsr_el2
    msr     S3_5_C4_C0_0, x0            // SPSR_EL12
    mrs     x0, S3_5_C12_C0_0           // VBAR_EL12
3:  add     x0, x0, x1
    msr     elr_el2, x0                 // into EL1's vector, at EL1h with
    mov     x0, #0x3c5                  // interrupts masked, as EL1 takes
    msr     spsr_el2, x0                // an exception
    mov     x1, sp
    mrs     x0, tpidr_el2
    eret
"#
);

crate::asm_function!(
    section = ".text.pi.entry",
    "__pi_primary_entry",
    r#"
    mov     x19, x0                     // DTB physical address
    orr     x20, x1, x2                 // booting.rst: x1-x3 must be zero;
    orr     x20, x20, x3                // the kernel warns if they are not

    bl      __pi_el2_to_el1             // at EL1 from here on
    isb                                 // x25 = the virtual count at the
    mrs     x25, cntvct_el0             // first instruction at EL1
    msr     spsel, #1                   // SP is SP_EL1 (EL1h), whatever a
                                        // loader entering at EL1 left
    movz    x0, #({sctlr_off} & 0xffff) // SCTLR_EL1: MMU and caches off on
    movk    x0, #(({sctlr_off} >> 16) & 0xffff), lsl #16 // the EL1 path too
    msr     sctlr_el1, x0               // (after EL2 it is already), so no
    isb                                 // bit a loader left set leaks in
    mrs     x0, id_aa64dfr0_el1         // With a PMU, count retired
    ubfx    x0, x0, #8, #4              // instructions from here on in event
    cbz     x0, 3f                      // counter 1 (INST_RETIRED, 0x08): the
    cmp     x0, #0xf                    // kernel's `phases` command reports
    b.eq    3f                          // what each boot phase cost. The PMU
    mrs     x0, pmcr_el0                // may have fewer counters than two
    ubfx    x0, x0, #11, #5             // (PMCR_EL0.N): counter 1 is then
    cmp     x0, #2                      // not there to program
    b.lo    3f
    mov     x0, #0x08
    msr     pmevtyper1_el0, x0
    msr     pmevcntr1_el0, xzr
    mrs     x0, pmcr_el0
    orr     x0, x0, #1                  // PMCR_EL0.E
    msr     pmcr_el0, x0
    mov     x0, #2
    msr     pmcntenset_el0, x0
3:
    mov     x0, #(3 << 20)              // CPACR_EL1.FPEN: no FP/SIMD traps,
    msr     cpacr_el1, x0               // compiled Rust may use q registers
    isb

    // The boot stack is NOLOAD: past the end of the file, so a loader
    // that cleaned the file to the point of coherency left whatever lines
    // the caches hold there, dirty ones too. The stores below go straight
    // to memory (MMU off: Device-nGnRnE), and an eviction of such a line
    // would overwrite them, under the code that reads them back. So clean
    // and invalidate first the part of the stack the MMU-off code uses,
    // [__early_stack_start, __boot_stack_end) (kernel/linker.ld.in: all
    // 64 KiB of the stack were 1,024 lines, 4 k instructions). Nothing
    // reads what is stored there now once the MMU is on, so no
    // invalidation is needed afterwards.
    // The table pool is maintained page by page as the tables take it
    // (`EarlyPool::mmu_off`); `.bss` is zeroed only once the MMU is on,
    // through the cache (`__pi_enable_mmu`), and the early code never
    // touches it before (the build's relacheck refuses a reference to
    // `.bss` from here). Nothing else is written with the MMU off.
    adrp    x1, __boot_stack_end
    add     x1, x1, :lo12:__boot_stack_end
    mov     sp, x1
    adrp    x0, __early_stack_start
    add     x0, x0, :lo12:__early_stack_start
    mrs     x2, ctr_el0                 // clean and invalidate [x0, x1)
    ubfx    x2, x2, #16, #4             // to PoC by line. DminLine:
    mov     x3, #4                      // log2(words) of the smallest
    lsl     x2, x3, x2                  // data cache line
1:  dc      civac, x0
    add     x0, x0, x2
    cmp     x0, x1
    b.lo    1b
    dsb     sy                          // done before the first store

    sub     sp, sp, #32
    mov     x0, x19
    mov     x1, sp
    bl      __pi_create_boot_tables     // which invalidates its tables
    cbnz    x0, 9f
    ldp     x21, x22, [sp]              // x21 = TTBR1 root, x22 = TTBR0 root
    ldp     x23, x26, [sp, #16]         // x23 = pool pages used, x26 = DTB bytes
    add     sp, sp, #32
    b       __pi_enable_mmu

9:  wfe                                 // no console yet: park, code in x0
    b       9b
"#,
    sctlr_off = const SCTLR_RES1,
);

crate::asm_function!(
    section = ".idmap.text",
    "__pi_enable_mmu",
    r#"
    bl      __pi_mmu_on

    // Still at VA = PA, through TTBR0's identity map of the image: map
    // the image at its link address in TTBR1 (empty until now), with the
    // caches on. `__pi_map_kernel` ends with `dsb ishst`; the `isb` makes
    // the first fetch from the link address come after it.
    mov     x0, x21                     // x0 = TTBR1 root
    mov     x1, x23                     // x1 = pool pages used
    sub     sp, sp, #16
    mov     x2, sp
    bl      __pi_map_kernel
    cbnz    x0, 9f
    ldr     x23, [sp]                   // x23 = pool pages used now
    add     sp, sp, #16
    isb

    // Now at VA = PA in TTBR0. Compute the link-time addresses from the
    // physical ones: voffset = KIMAGE_VADDR - PA(_text).
    movz    x1, #(({kimage} >> 48) & 0xffff), lsl #48
    movk    x1, #(({kimage} >> 32) & 0xffff), lsl #32
    movk    x1, #(({kimage} >> 16) & 0xffff), lsl #16
    movk    x1, #({kimage} & 0xffff)
    adrp    x0, _text
    add     x0, x0, :lo12:_text
    sub     x24, x1, x0                 // x24 = kimage_voffset
    adrp    x2, __bss_start             // zero .bss: the protocol does not
    add     x2, x2, :lo12:__bss_start   // promise zeroed memory past the
    add     x2, x2, x24                 // file. Now, not with the MMU off:
    adrp    x3, __bss_end               // through the cache, whatever lines
    add     x3, x3, :lo12:__bss_end     // it held, so it needs no cache
    add     x3, x3, x24                 // maintenance. 64 bytes a turn (the
0:  stp     xzr, xzr, [x2], #16         // linker script aligns both ends):
    stp     xzr, xzr, [x2], #16         // 3.5 k instructions for 36 KiB,
    stp     xzr, xzr, [x2], #16         // against 6.9 k 16 bytes a turn
    stp     xzr, xzr, [x2], #16
    cmp     x2, x3
    b.lo    0b
    adrp    x2, __boot_stack_end
    add     x2, x2, :lo12:__boot_stack_end
    add     x2, x2, x24
    mov     sp, x2
    adrp    x16, splitmap_kernel_main
    add     x16, x16, :lo12:splitmap_kernel_main
    add     x16, x16, x24
    adrp    x17, splitmap_first_frame   // which calls x16 and which
    add     x17, x17, :lo12:splitmap_first_frame
    add     x17, x17, x24               // debuggers see as the outermost
    mov     x1, x0                      // x1 = image PA
    mov     x0, x19                     // x0 = DTB PA
    mov     x2, x23                     // x2 = pool pages used
    mov     x3, x20                     // x3 = x1|x2|x3 at entry
    mov     x4, x25                     // x4 = the count at entry
    mov     x5, x26                     // x5 = DTB bytes to map
    mov     x29, xzr                    // end of the frame-pointer chain
    br      x17

9:  wfe                                 // no console yet: park, code in x0
    b       9b
"#,
    kimage = const KIMAGE_VADDR,
);

// Turns the MMU on with TTBR1 = x21 and TTBR0 = x22, for the boot CPU
// (`__pi_enable_mmu`) and every secondary (`arch::smp`): called with `bl`
// from the identity-mapped page, MMU off, it returns there with the MMU
// and caches on; x0-x2 are clobbered. Whatever the TLB holds from before
// (firmware's translations) is invalidated before SCTLR_EL1.M is set, and
// the instructions fetched with the MMU off after.
crate::asm_function!(
    section = ".idmap.text",
    "__pi_mmu_on",
    r#"
    movz    x0, #({mair} & 0xffff)
    movk    x0, #(({mair} >> 16) & 0xffff), lsl #16
    msr     mair_el1, x0
    movz    x0, #({tcr} & 0xffff)
    movk    x0, #(({tcr} >> 16) & 0xffff), lsl #16
    mrs     x1, id_aa64mmfr0_el1        // IPS = min(PARange, {ips_max}):
    ubfx    x1, x1, #0, #4              // output addresses as wide as the
    mov     x2, #{ips_max}              // CPU supports, but no wider than
    cmp     x1, x2                      // 48 bits (see IPS_MAX), as
    csel    x1, x2, x1, hi              // Linux's tcr_compute_pa_size
    bfi     x0, x1, #{ips_shift}, #3
    msr     tcr_el1, x0
    msr     ttbr0_el1, x22
    msr     ttbr1_el1, x21
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    movz    x0, #({sctlr} & 0xffff)
    movk    x0, #(({sctlr} >> 16) & 0xffff), lsl #16
    msr     sctlr_el1, x0
    isb
    ic      iallu                       // discard instructions fetched
    dsb     nsh                         // before the MMU was on
    isb
    ret
"#,
    mair = const MAIR_VALUE,
    tcr = const TCR_VALUE,
    sctlr = const SCTLR_MMU_ON,
    ips_max = const IPS_MAX,
    ips_shift = const TCR_IPS_SHIFT,
);
