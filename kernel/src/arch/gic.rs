//! The GIC, version 2 or 3, as far as each CPU taking one private interrupt
//! (its own timer's PPI) needs it: enabling, acknowledging and ending
//! interrupts. Where its registers are comes from above (the device tree,
//! mapped by `boot::gic`); until `init` has run, nothing here touches the
//! hardware and [`version`] is `None`.
//!
//! Register accesses are volatile, through Device-nGnRE mappings, which
//! keep program order within one peripheral only: the distributor and the
//! CPU interface (or redistributor) are different ones, so nothing orders
//! a write to one against a write to the other but a barrier. The `dsb` at
//! the end of `init_this_cpu` makes every configuration write reach the GIC
//! before the CPU unmasks an interrupt (TCG would not notice if it did not).

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use aarch64_cpu::asm::barrier;

use super::gicr::Redistributors;
use super::lock::Mutex;
use super::mmio::{read32, write8, write32};
use super::{counter, smp};

/// Where the registers are mapped.
#[derive(Clone, Copy, Debug)]
pub enum Regs {
    /// GICv2: the distributor's and the CPU interface's mappings.
    V2 {
        /// `GICD_*`.
        dist: u64,
        /// `GICC_*` (banked: every CPU sees its own at this address).
        cpu: u64,
    },
    /// GICv3: the distributor's mapping and the redistributors' regions,
    /// each CPU's somewhere in them (RD_base, then SGI_base), found by its
    /// affinity (`gicr`).
    V3 {
        /// `GICD_*`.
        dist: u64,
        /// The `GICR_*` regions.
        redist: Redistributors,
    },
}

/// Why the GIC could not be set up at a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// GICv3: the system register interface stays off (at EL2 nobody set
    /// ICC_SRE_EL2.Enable, or the CPU has none).
    NoSystemRegisters,
    /// GICv3: no redistributor in the mapped regions names this CPU's
    /// affinity.
    NoRedistributor(u64),
    /// GICv3: the redistributor did not wake, or the distributor did not
    /// finish a write, in time.
    Timeout(&'static str),
    /// [`init`] has not succeeded: there is no distributor to use.
    NotSetUp,
}

impl core::fmt::Display for GicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GicError::NoSystemRegisters => write!(
                f,
                "the GICv3 system register interface cannot be enabled (ICC_SRE_EL1.SRE stays 0)"
            ),
            GicError::NoRedistributor(affinity) => write!(
                f,
                "no GICv3 redistributor in the mapped regions belongs to this CPU (affinity {affinity:#x})"
            ),
            GicError::Timeout(what) => write!(f, "the GIC did not answer: {what}"),
            GicError::NotSetUp => write!(f, "the GIC's distributor is not set up"),
        }
    }
}

/// 0 until `init` succeeds, then 2 or 3.
static VERSION: AtomicU8 = AtomicU8::new(0);
// The mappings `init` was given, for every CPU's `init_this_cpu`.
/// The distributor.
static GICD: AtomicU64 = AtomicU64::new(0);
/// GICv2's CPU interface (acknowledge and EOI go through it).
static CPU_FRAME: AtomicU64 = AtomicU64::new(0);
/// GICv3's redistributor regions.
static GICR: Mutex<Redistributors> = Mutex::new(Redistributors::NONE);

// GICD (both versions).
const GICD_CTLR: u64 = 0x000;
const GICD_ISENABLER: u64 = 0x100;
const GICD_IPRIORITYR: u64 = 0x400;
// GICC (v2).
const GICC_CTLR: u64 = 0x000;
const GICC_PMR: u64 = 0x004;
const GICC_IAR: u64 = 0x00c;
const GICC_EOIR: u64 = 0x010;
// GICR (v3): RD_base, then the SGI_base frame 64 KiB above it.
const GICR_TYPER: u64 = 0x008;
const GICR_WAKER: u64 = 0x014;
const SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = SGI_BASE + 0x080;
const GICR_ISENABLER0: u64 = SGI_BASE + 0x100;
const GICR_IPRIORITYR: u64 = SGI_BASE + 0x400;

/// How many bytes of each frame `init` touches for a private interrupt
/// (INTIDs below 32): (distributor, CPU interface or redistributor), by
/// version. A tree whose `reg` is shorter is refused before mapping
/// (`boot::gic`), not met as a data abort at boot.
pub const fn frame_bytes_used(version: u8) -> (u64, u64) {
    match version {
        2 => (GICD_IPRIORITYR + 32, GICC_EOIR + 4),
        _ => (GICD_CTLR + 4, GICR_IPRIORITYR + 32),
    }
}

/// The priority the kernel gives its interrupt, and the mask that lets it
/// (and anything more urgent) through.
const PRIORITY: u8 = 0x80;
const PRIORITY_MASK: u32 = 0xf0;

/// INTIDs 1020-1023 are special: 1023 is "nothing pending" (spurious).
pub const SPURIOUS: u32 = 1023;

/// How long to poll a GIC status bit before giving up, in milliseconds of
/// the counter: a time, not a count of polls, so a secondary that gives up
/// still reports in within `boot::smp::REPORT_MS` on any CPU.
const POLL_MS: u64 = 10;

/// Polls until `done` holds, [`POLL_MS`] at most.
fn wait(what: &'static str, mut done: impl FnMut() -> bool) -> Result<(), GicError> {
    let give_up = counter::now() + counter::frequency() * POLL_MS / 1000;
    loop {
        if done() {
            return Ok(());
        }
        if counter::now() > give_up {
            return Err(GicError::Timeout(what));
        }
    }
}

/// Enables the GIC's distributor, and private interrupt `intid` (16-31)
/// at this CPU, the boot CPU ([`init_this_cpu`] for the others), with
/// interrupts still masked at the CPU (PSTATE.I): unmasking is the caller's
/// choice.
///
/// # Safety
/// `regs` are mappings of this machine's GIC registers, as Device memory,
/// that stay for good.
pub unsafe fn init(regs: Regs, intid: u32) -> Result<(), GicError> {
    let (dist, version) = match regs {
        Regs::V2 { dist, cpu } => {
            CPU_FRAME.store(cpu, Ordering::SeqCst);
            (dist, 2)
        }
        Regs::V3 { dist, redist } => {
            *GICR.lock() = redist;
            (dist, 3)
        }
    };
    GICD.store(dist, Ordering::SeqCst);
    // SAFETY: the caller's contract; GICD_CTLR is both versions'. For v3:
    // affinity routing and both groups (ARE_NS | EnableGrp1A | EnableGrp1,
    // or with security off ARE | EnableGrp1 | EnableGrp0), each write
    // waited for (RWP). Disabled first, as Linux's `gic_dist_init` does:
    // ARE may be set only while the groups are off, and firmware that used
    // the GIC may leave them on.
    unsafe {
        if version == 2 {
            write32(dist + GICD_CTLR, 1);
        } else {
            let written = || wait("GICD_CTLR.RWP stays set", || read32(dist + GICD_CTLR) & (1 << 31) == 0);
            write32(dist + GICD_CTLR, 0);
            written()?;
            write32(dist + GICD_CTLR, (1 << 4) | (1 << 1) | 1);
            written()?;
        }
    }
    VERSION.store(version, Ordering::SeqCst);
    init_this_cpu(intid).inspect_err(|_| VERSION.store(0, Ordering::SeqCst))
}

/// Enables private interrupt `intid` (16-31) at this CPU, its interrupts
/// still masked (PSTATE.I): every CPU's own CPU interface (GICv2: the
/// banked registers at the one address; GICv3: its redistributor and
/// system registers). After [`init`] on the boot CPU; nothing before.
pub fn init_this_cpu(intid: u32) -> Result<(), GicError> {
    let bit = 1u32 << (intid % 32);
    let (dist, cpu) = (GICD.load(Ordering::SeqCst), CPU_FRAME.load(Ordering::SeqCst));
    match version() {
        None => return Err(GicError::NotSetUp),
        Some(2) => {
            // SAFETY: `init`'s caller vouched for these mappings; the
            // priority and enable bits of INTIDs below 32 and the whole
            // GICC are banked per CPU.
            unsafe {
                write8(dist + GICD_IPRIORITYR + u64::from(intid), PRIORITY);
                write32(dist + GICD_ISENABLER, bit);
                write32(cpu + GICC_PMR, PRIORITY_MASK);
                write32(cpu + GICC_CTLR, 1);
            }
        }
        Some(_) => {
            // The system register interface first: without it the CPU
            // interface's registers do not exist.
            // SAFETY: ICC_SRE_EL1 (S3_0_C12_C12_5): setting SRE only selects
            // the system register interface for this EL.
            let sre = unsafe {
                let mut sre: u64;
                core::arch::asm!("mrs {0}, S3_0_C12_C12_5", "orr {0}, {0}, #1", "msr S3_0_C12_C12_5, {0}", "isb", "mrs {0}, S3_0_C12_C12_5", out(reg) sre, options(nostack));
                sre
            };
            if sre & 1 == 0 {
                return Err(GicError::NoSystemRegisters);
            }
            // GICR_TYPER's affinity: Aff3 above Aff2-Aff0.
            let mpidr = smp::mpidr();
            let affinity = (mpidr & 0xff_ffff) | ((mpidr >> 32) & 0xff) << 24;
            // SAFETY: inside the mapped redistributors (`find` reads whole
            // frames inside each region's mapping only).
            let typer =
                |va: u64| unsafe { u64::from(read32(va + GICR_TYPER)) | u64::from(read32(va + GICR_TYPER + 4)) << 32 };
            let redist = GICR
                .lock()
                .find(affinity, typer)
                .ok_or(GicError::NoRedistributor(affinity))?;
            // SAFETY: this CPU's redistributor, mapped; the offsets are GICv3's.
            unsafe {
                // Wake the redistributor: ProcessorSleep off, until its
                // ChildrenAsleep says the interface is awake.
                write32(redist + GICR_WAKER, read32(redist + GICR_WAKER) & !(1 << 1));
                wait("GICR_WAKER.ChildrenAsleep stays set", || {
                    read32(redist + GICR_WAKER) & (1 << 2) == 0
                })?;
                write32(redist + GICR_IGROUPR0, read32(redist + GICR_IGROUPR0) | bit);
                write8(redist + GICR_IPRIORITYR + u64::from(intid), PRIORITY);
                write32(redist + GICR_ISENABLER0, bit);
            }
            // SAFETY: ICC_CTLR_EL1, ICC_BPR1_EL1, ICC_PMR_EL1 and
            // ICC_IGRPEN1_EL1, this CPU's interface only. ICC_CTLR_EL1 is
            // written whole: firmware that used the GIC (EDK2, TF-A) may
            // have left EOImode = 1, under which `end`'s EOIR write would
            // only drop the priority and the timer's interrupt would stay
            // active for good (one tick, then no watchdog). EOImode 0 makes
            // the EOIR write deactivate too; binary point 0 gives every
            // priority bit to preemption.
            unsafe {
                core::arch::asm!(
                    "msr S3_0_C12_C12_4, xzr",
                    "msr S3_0_C12_C12_3, xzr",
                    "msr S3_0_C4_C6_0, {pmr}",
                    "isb",
                    "msr S3_0_C12_C12_7, {one}",
                    "isb",
                    pmr = in(reg) u64::from(PRIORITY_MASK),
                    one = in(reg) 1u64,
                    options(nostack)
                );
            }
        }
    }
    // Every configuration write reaches the GIC before this CPU unmasks
    // an interrupt.
    barrier::dsb(barrier::SY);
    Ok(())
}

/// 2 or 3 once `init` succeeded.
pub fn version() -> Option<u8> {
    match VERSION.load(Ordering::SeqCst) {
        0 => None,
        v => Some(v),
    }
}

/// Acknowledges the highest-priority pending interrupt: the raw IAR value
/// (pass it to [`end`]) and its INTID ([`SPURIOUS`] if none).
pub fn acknowledge() -> (u32, u32) {
    match version() {
        Some(2) => {
            // SAFETY: `init` stored the CPU interface's mapping.
            let iar = unsafe { read32(CPU_FRAME.load(Ordering::SeqCst) + GICC_IAR) };
            (iar, iar & 0x3ff)
        }
        Some(_) => {
            let iar: u64;
            // SAFETY: ICC_IAR1_EL1 (S3_0_C12_C12_0), enabled by `init`. The
            // `dsb sy` after it (as Linux's gic_read_iar) keeps later reads
            // of what the interrupt announced from being satisfied before
            // the acknowledge; not `nomem`, for the compiler's order too.
            unsafe { core::arch::asm!("mrs {}, S3_0_C12_C12_0", "dsb sy", out(reg) iar, options(nostack)) };
            (iar as u32, (iar & 0xff_ffff) as u32)
        }
        None => (SPURIOUS, SPURIOUS),
    }
}

/// Ends the interrupt [`acknowledge`] returned `iar` for (priority drop and
/// deactivation: EOImode 0 in both versions). Not for a spurious one.
pub fn end(iar: u32) {
    match version() {
        Some(2) => {
            // SAFETY: as in `acknowledge`.
            unsafe { write32(CPU_FRAME.load(Ordering::SeqCst) + GICC_EOIR, iar) }
        }
        Some(_) => {
            // SAFETY: ICC_EOIR1_EL1 (S3_0_C12_C12_1), for the INTID just acknowledged.
            unsafe { core::arch::asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(iar), options(nostack)) }
        }
        None => {}
    }
}
