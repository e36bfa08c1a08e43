//! Secondary CPUs: where one enters the kernel, what it finds there, and
//! the mailboxes the CPUs talk through.
//!
//! The invariants, stated once:
//! - A secondary enters at `__pi_secondary_entry`'s *physical* address,
//!   computed at run time from where the image is loaded
//!   ([`entry_pa`]): KASLR moved the virtual image, never the physical one,
//!   and the CPU starts with its MMU off.
//! - Everything it needs before its MMU is on is in its [`BootRecord`],
//!   which it reads with the MMU off (non-cacheable): the boot CPU writes it,
//!   then cleans it to the point of coherency before starting the CPU.
//! - It turns its MMU on with the boot CPU's TTBR1 root and the TCR, MAIR
//!   and SCTLR values of the early code (`pi::boot`), through the identity
//!   page the early code built (still there: the physical image did not
//!   move), and leaves TTBR0 off as soon as it runs at kernel addresses.
//! - Mailboxes: an idle CPU waits on its own with `WFE`; the poster writes
//!   the line, publishes it with a release store, and `SEV`s; the CPU
//!   answers the same way. Nobody spins without `WFE`: under `-icount`
//!   QEMU runs one CPU at a time, and `WFE` is where it switches.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::percpu::MAX_CPUS;

/// What a secondary reads before its MMU is on, in this order (the entry's
/// assembly knows the offsets).
#[repr(C)]
pub struct BootRecord {
    /// TTBR1_EL1: the kernel tables' root.
    pub ttbr1: AtomicU64,
    /// TTBR0_EL1: the identity map of the MMU switch.
    pub ttbr0: AtomicU64,
    /// Where to continue, at its kernel address (called as `fn(cpu) -> !`
    /// from `first_frame`).
    pub entry: AtomicU64,
    /// `splitmap_first_frame` at its kernel address.
    pub first_frame: AtomicU64,
    /// The CPU's first stack top (its exception stack), a kernel address.
    pub sp: AtomicU64,
    /// The CPU's number: TPIDR_EL1.
    pub cpu: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<BootRecord>() == 48);

/// One record per CPU, so a CPU that comes up late reads its own, never
/// the next one's.
pub static RECORDS: [BootRecord; MAX_CPUS] = [const {
    BootRecord {
        ttbr1: AtomicU64::new(0),
        ttbr0: AtomicU64::new(0),
        entry: AtomicU64::new(0),
        first_frame: AtomicU64::new(0),
        sp: AtomicU64::new(0),
        cpu: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// The identity map's root the early code built (TTBR0_EL1 before the boot
/// CPU turned TTBR0 off): the secondaries turn their MMU on through it.
static IDMAP_ROOT: AtomicU64 = AtomicU64::new(0);

/// Notes TTBR0_EL1 as the early code left it: call before `disable_ttbr0`.
pub fn keep_idmap_root() {
    let ttbr0: u64;
    // SAFETY: reads a system register.
    unsafe { core::arch::asm!("mrs {}, ttbr0_el1", out(reg) ttbr0, options(nomem, nostack)) };
    IDMAP_ROOT.store(ttbr0, Ordering::SeqCst);
}

/// The identity map's root (0 if the boot CPU never noted it).
pub fn idmap_root() -> u64 {
    IDMAP_ROOT.load(Ordering::SeqCst)
}

/// The record's physical address for a CPU started by spin-table, whose
/// firmware jumps with x0 = 0: the entry reads it from here (PC-relative,
/// MMU off). One at a time: the boot CPU starts CPUs one after another.
pub static SPIN_TABLE_RECORD: AtomicU64 = AtomicU64::new(0);

/// [`SPIN_TABLE_RECORD`]'s kernel address (to clean it to PoC).
pub fn spin_record_va() -> u64 {
    &raw const SPIN_TABLE_RECORD as u64
}

unsafe extern "C" {
    static __pi_secondary_entry: u8;
}

/// `__pi_secondary_entry` where it runs now (a kernel address).
pub fn entry_va() -> u64 {
    &raw const __pi_secondary_entry as u64
}

/// `__pi_secondary_entry`'s physical address: where the image is loaded,
/// whatever KASLR did to its virtual address.
pub fn entry_pa() -> u64 {
    pi::addr::KimgVirt::new(entry_va()).to_phys().raw()
}

/// Cleans and invalidates `[start, start + len)` to the point of
/// coherency: for data a CPU with its MMU off (or firmware) reads.
pub fn clean_to_poc(start: u64, len: u64) {
    // 16 bytes: the smallest data-cache line the architecture allows.
    let mut p = start & !15;
    while p < start + len {
        // SAFETY: cache maintenance by VA of a mapped address changes no
        // memory contents.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) p, options(nostack, preserves_flags)) };
        p += 16;
    }
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Wakes every CPU waiting in `WFE`, after the stores before it are seen.
pub fn wake_all() {
    // SAFETY: barriers and an event.
    unsafe { core::arch::asm!("dsb ish", "sev", options(nostack, preserves_flags)) };
}

/// Waits for an event (a `SEV`, or anything else that sets the event
/// register): the only way CPUs here wait for each other.
pub fn wait_for_event() {
    aarch64_cpu::asm::wfe();
}

/// This CPU's MPIDR_EL1 affinity fields (Aff3 at 39:32, Aff2..Aff0).
pub fn mpidr() -> u64 {
    let m: u64;
    // SAFETY: reads a system register.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) m, options(nomem, nostack)) };
    m & 0xff_00ff_ffff
}

/// The longest command line a mailbox carries.
pub const LINE_MAX: usize = 256;

const IDLE: u32 = 0;
const POSTED: u32 = 1;
const DONE: u32 = 2;
const CLAIMED: u32 = 3;
/// Taken by its CPU, which runs it now.
const RUNNING: u32 = 4;

/// One CPU's mailbox: a command line or a function posted to it, and
/// whether it ran.
pub struct Mailbox {
    state: AtomicU32,
    len: AtomicUsize,
    line: UnsafeCell<[u8; LINE_MAX]>,
    /// A `fn(u64) -> u64` to call instead of a line (0: a line).
    func: AtomicU64,
    arg: AtomicU64,
    result: AtomicU64,
    /// Posted by [`post_detached`]: nobody waits, so the CPU frees the
    /// mailbox itself when it is done.
    detached: AtomicBool,
}

// SAFETY: `line` is written only by the poster that moved `state` from IDLE
// to CLAIMED (one at a time: a compare-exchange) and read only by its CPU
// while it is POSTED; the release/acquire on `state` orders the bytes.
unsafe impl Sync for Mailbox {}

static MAILBOXES: [Mailbox; MAX_CPUS] = [const {
    Mailbox {
        state: AtomicU32::new(IDLE),
        len: AtomicUsize::new(0),
        line: UnsafeCell::new([0; LINE_MAX]),
        func: AtomicU64::new(0),
        arg: AtomicU64::new(0),
        result: AtomicU64::new(0),
        detached: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// Why a line could not be posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostError {
    /// Longer than [`LINE_MAX`].
    TooLong,
    /// The CPU is running another line.
    Busy,
    /// Posted, and the CPU did not finish it within the limit (it still
    /// may: its mailbox stays taken).
    TimedOut,
}

/// Claims `cpu`'s mailbox, lets `fill` write it, and hands it over.
fn post(cpu: usize, fill: impl FnOnce(&Mailbox)) -> Result<(), PostError> {
    let mb = &MAILBOXES[cpu];
    // Claimed first, so two posters never write one mailbox; the CPU looks
    // only for POSTED, so it never reads one half written.
    mb.state
        .compare_exchange(IDLE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
        .map_err(|_| PostError::Busy)?;
    fill(mb);
    mb.state.store(POSTED, Ordering::Release);
    wake_all();
    Ok(())
}

/// Waits (in `WFE`) until `cpu` has done what was posted to it, or until
/// the counter passes `deadline`; what a posted function returned.
///
/// # Errors
/// [`PostError::TimedOut`].
pub fn wait_done(cpu: usize, deadline: u64) -> Result<u64, PostError> {
    let mb = &MAILBOXES[cpu];
    while mb.state.load(Ordering::Acquire) != DONE {
        if super::counter::now() > deadline {
            return Err(PostError::TimedOut);
        }
        wait_for_event();
    }
    let result = mb.result.load(Ordering::Relaxed);
    mb.state.store(IDLE, Ordering::Release);
    Ok(result)
}

/// Posts `line` to `cpu`'s mailbox, wakes it, and waits until it has run
/// the line (see [`wait_done`]). The CPU must be online and serving its
/// mailbox.
///
/// # Errors
/// [`PostError`]: nothing was posted, or no answer came in time.
pub fn post_and_wait(cpu: usize, line: &str, deadline: u64) -> Result<(), PostError> {
    post_line(cpu, line, false)?;
    wait_done(cpu, deadline).map(|_| ())
}

/// Posts `line` to `cpu`'s mailbox and returns once the CPU has taken it
/// (or `deadline` passed): nobody waits for it to finish, the CPU frees its
/// mailbox itself when it is done (`on N CMD &`).
///
/// # Errors
/// [`PostError`]: nothing was posted, or the CPU did not take it in time
/// (it still may).
pub fn post_detached(cpu: usize, line: &str, deadline: u64) -> Result<(), PostError> {
    post_line(cpu, line, true)?;
    let mb = &MAILBOXES[cpu];
    while mb.state.load(Ordering::Acquire) == POSTED {
        if super::counter::now() > deadline {
            return Err(PostError::TimedOut);
        }
        wait_for_event();
    }
    Ok(())
}

fn post_line(cpu: usize, line: &str, detached: bool) -> Result<(), PostError> {
    let bytes = line.as_bytes();
    if bytes.len() > LINE_MAX {
        return Err(PostError::TooLong);
    }
    post(cpu, |mb| {
        // SAFETY: claimed by `post`: nobody else writes `line`, and the CPU
        // reads it only after the release store of POSTED.
        unsafe { (&mut *mb.line.get())[..bytes.len()].copy_from_slice(bytes) };
        mb.len.store(bytes.len(), Ordering::Relaxed);
        mb.func.store(0, Ordering::Relaxed);
        mb.detached.store(detached, Ordering::Relaxed);
    })
}

/// Whether `cpu` is running something posted to its mailbox now.
pub fn busy(cpu: usize) -> bool {
    MAILBOXES[cpu].state.load(Ordering::Acquire) == RUNNING
}

/// Posts a call of `f(arg)` to `cpu` and returns at once: [`wait_done`]
/// collects its result. For the in-kernel tests, which need CPUs working
/// at the same time.
///
/// # Errors
/// [`PostError::Busy`].
pub fn post_call(cpu: usize, f: fn(u64) -> u64, arg: u64) -> Result<(), PostError> {
    post(cpu, |mb| {
        mb.func.store(f as usize as u64, Ordering::Relaxed);
        mb.arg.store(arg, Ordering::Relaxed);
        mb.detached.store(false, Ordering::Relaxed);
    })
}

/// Serves this CPU's mailbox forever: waits for a line (or a function),
/// runs it with `run` (or calls it), says it is done.
pub fn serve(cpu: usize, mut run: impl FnMut(&str)) -> ! {
    let mb = &MAILBOXES[cpu];
    loop {
        while mb.state.load(Ordering::Acquire) != POSTED {
            wait_for_event();
        }
        mb.state.store(RUNNING, Ordering::Release);
        wake_all();
        let result = match mb.func.load(Ordering::Relaxed) {
            0 => {
                let len = mb.len.load(Ordering::Relaxed).min(LINE_MAX);
                let mut copy = [0u8; LINE_MAX];
                // SAFETY: POSTED: the poster wrote the line before its
                // release store and does not write it again until DONE.
                copy[..len].copy_from_slice(unsafe { &(&*mb.line.get())[..len] });
                // The poster's line was a `str`, copied whole.
                run(core::str::from_utf8(&copy[..len]).unwrap_or(""));
                0
            }
            f => {
                // SAFETY: `post_call` stored a `fn(u64) -> u64` of the image
                // as it runs now (nothing moves it after boot).
                let f: fn(u64) -> u64 = unsafe { core::mem::transmute(f as usize) };
                f(mb.arg.load(Ordering::Relaxed))
            }
        };
        mb.result.store(result, Ordering::Relaxed);
        let done = if mb.detached.load(Ordering::Relaxed) {
            IDLE
        } else {
            DONE
        };
        mb.state.store(done, Ordering::Release);
        wake_all();
    }
}

// A secondary's first instructions, MMU off, at the physical address PSCI
// `CPU_ON` (or the spin-table's release word) gave: x0 = its record's
// physical address. In `.idmap.text`, the page the early code mapped at
// VA = PA, so the instruction after the MMU switch is still there. It drops
// from EL2 if it entered there (spin-table firmware may leave it there),
// reads its whole record (with the MMU off, non-cacheable: the boot CPU
// cleaned it to PoC), turns the MMU on, the EL2 exit and the MMU switch
// each by the boot CPU's own sequence, and jumps to its kernel entry on its
// exception stack with TPIDR_EL1 = its number.
pi::asm_function!(
    section = ".idmap.text",
    "__pi_secondary_entry",
    r#"
    mov     x25, x0                     // kept across the EL2 exit
    bl      __pi_el2_to_el1             // at EL1 from here on, as the boot CPU
    msr     spsel, #1                   // SP is SP_EL1, as on the boot CPU
    cbnz    x25, 1f                     // spin-table: x0 = 0, the record's
    adrp    x25, {spin}                 // address is in SPIN_TABLE_RECORD
    ldr     x25, [x25, :lo12:{spin}]    // (read at EL1, not at EL2, whose
1:  ldp     x21, x22, [x25, #0]         // data endianness, SCTLR_EL2.EE,
    ldp     x16, x17, [x25, #16]        // nobody set): TTBR1, TTBR0; entry,
    ldp     x23, x24, [x25, #32]        // first frame; SP, CPU number
    movz    x1, #({sctlr_off} & 0xffff) // SCTLR_EL1: MMU and caches off
    movk    x1, #(({sctlr_off} >> 16) & 0xffff), lsl #16
    msr     sctlr_el1, x1
    isb
    mov     x1, #(3 << 20)              // CPACR_EL1.FPEN: no FP/SIMD traps
    msr     cpacr_el1, x1
    msr     tpidr_el1, x24
    bl      __pi_mmu_on                 // as the boot CPU, with its tables
    mov     sp, x23
    mov     x0, x24
    mov     x29, xzr
    br      x17
"#,
    sctlr_off = const pi::boot::SCTLR_RES1,
    spin = sym SPIN_TABLE_RECORD,
);
