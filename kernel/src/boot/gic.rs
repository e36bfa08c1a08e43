//! Bringing interrupts up: the GIC and timer interrupt the device tree
//! names (`dtb::intc`), their registers mapped in the MMIO window's
//! `gic-dist` and `gic-cpu` rows (Device-nGnRE, as the UART's), the GIC enabled for the timer's PPI,
//! and the watchdog over module calls started (`arch::irq`). A machine
//! without them boots all the same: module calls then run unwatched.

use alloc::string::{String, ToString};

use pi::kmap::{self, FixedWindow};
use pi::layout::PAGE_SIZE;

use super::dtb::intc::{Gic, GicVersion, Interrupts};
use crate::arch::gic::{self, Regs};
use crate::arch::gicr::Redistributors;
use crate::arch::once::WriteOnce;
use crate::arch::percpu::MAX_CPUS;
use crate::arch::{cpu, irq};
use crate::mm::ranges::PhysRange;
use crate::mm::tables;

/// The rows' windows: the distributor's, then the other frame's.
const WINDOWS: [FixedWindow; 2] = [kmap::fixed("gic-dist"), kmap::fixed("gic-cpu")];

/// The GICv3 redistributors mapped of each region: enough for every CPU
/// the kernel runs, each four 64 KiB frames long as with virtual LPIs
/// (GICv4; without them two, and the first half of this holds all of
/// them), or `redistributor-stride` apart where that is longer.
const fn redistributors_mapped(stride: Option<u64>) -> u64 {
    let least = 2 * crate::arch::gicr::REDISTRIBUTOR;
    let step = match stride {
        Some(stride) if stride > least => stride,
        _ => least,
    };
    MAX_CPUS as u64 * step
}

// Without a stride, every region fits the `gic-cpu` row, each rounded out
// to whole pages (a longer stride may not: then mapping says so).
const _: () = assert!(
    crate::arch::gicr::MAX_REGIONS as u64 * (redistributors_mapped(None) + 2 * PAGE_SIZE)
        <= WINDOWS[1].end - WINDOWS[1].start
);

/// The GIC as boot set it up: what `layout` and `irqs` show.
#[derive(Clone, Copy, Debug)]
pub struct Mapped {
    /// Which GIC.
    pub version: GicVersion,
    /// The distributor.
    pub dist: Frame,
    /// The CPU interface (v2) or the first redistributor region (v3; any
    /// others are mapped one after another above it in the same row, and
    /// `layout` shows this one).
    pub cpu: Frame,
    /// The timer's INTID.
    pub timer: u32,
}

/// One register frame as mapped.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// The whole pages mapped.
    pub pages: PhysRange,
    /// Where they are mapped.
    pub va: u64,
    /// Where the registers themselves are (inside the pages).
    pub regs_va: u64,
}

/// What boot made of the interrupt controller: set up, or why not.
static STATE: WriteOnce<Result<Mapped, String>> = WriteOnce::new(Err(String::new()));

/// Maps and enables the GIC the tree named (`found`, read with the rest of
/// the tree at boot), and starts the watchdog with `watchdog_ms`; what came
/// of it (also kept for [`state`]).
///
/// # Panics
/// On a second call: boot starts interrupts once.
pub fn start(found: &Interrupts, watchdog_ms: u64) -> &'static Result<Mapped, String> {
    STATE.set(set_up(found, watchdog_ms))
}

/// [`start`]'s work: the GIC mapped and enabled, the watchdog started.
fn set_up(found: &Interrupts, watchdog_ms: u64) -> Result<Mapped, String> {
    let gic = found.gic.map_err(|e| e.to_string())?;
    let timer = found
        .virtual_timer
        .ok_or_else(|| "the device tree names no arm,armv8-timer interrupt for the virtual timer".to_string())?;
    let (mapped, regs) = map(gic, timer)?;
    // SAFETY: `map` mapped these registers as Device memory for good.
    unsafe { gic::init(regs, timer) }.map_err(|e| e.to_string())?;
    irq::start(timer, watchdog_ms);
    Ok(mapped)
}

/// What [`start`] made of it (`None` before it ran).
pub fn state() -> Option<&'static Result<Mapped, String>> {
    STATE.get()
}

/// What is mapped of a second register frame: GICv2's CPU interface, or
/// the first [`redistributors_mapped`] bytes of a GICv3 redistributor
/// region.
fn mapped_part(gic: &Gic, regs: PhysRange) -> PhysRange {
    match gic.version {
        GicVersion::V2 => regs,
        GicVersion::V3 => PhysRange::saturating(
            regs.start.raw(),
            regs.size().min(redistributors_mapped(gic.redistributor_stride)),
        ),
    }
}

/// Maps the distributor at its row's start, and in the second row GICv2's
/// CPU interface or each of GICv3's redistributor regions (its
/// [`mapped_part`]), one after another; with the mappings, as the GIC
/// driver takes them.
fn map(gic: Gic, timer: u32) -> Result<(Mapped, Regs), String> {
    if !(16..32).contains(&timer) {
        return Err(alloc::format!(
            "the timer's interrupt {timer} is not a private one (16-31)"
        ));
    }
    let version = match gic.version {
        GicVersion::V2 => 2,
        GicVersion::V3 => 3,
    };
    let (dist_used, cpu_used) = crate::arch::gic::frame_bytes_used(version);
    for (regs, used, what) in [
        (gic.dist, dist_used, "distributor"),
        (
            gic.cpu,
            cpu_used,
            if version == 2 { "CPU interface" } else { "redistributor" },
        ),
    ] {
        if regs.size() < used {
            return Err(alloc::format!(
                "the GICv{version} {what}'s reg at {:#x} is {:#x} bytes, fewer than the {used:#x} the kernel uses",
                regs.start.raw(),
                regs.size()
            ));
        }
    }
    // `regs` mapped from `at` in `window`, if its pages fit there.
    let one = |regs: PhysRange, window: FixedWindow, at: u64| -> Result<Frame, String> {
        let pages = regs.expand_to_pages(PAGE_SIZE);
        let bits = cpu::pa_bits();
        if pages.end.raw() > 1 << bits || pages.size() > window.end - at {
            return Err(alloc::format!(
                "the GIC's registers at {:#x} ({:#x} bytes) cannot be mapped",
                regs.start.raw(),
                regs.size()
            ));
        }
        let part = FixedWindow { start: at, ..window };
        let base = tables::map_fixed(part, pages.start, pages.size())
            .map_err(|e| alloc::format!("mapping the GIC's registers: {e:?}"))?;
        Ok(Frame {
            pages,
            va: base,
            regs_va: base + (regs.start.raw() - pages.start.raw()),
        })
    };
    let [dist_window, cpu_window] = WINDOWS;
    let dist = one(gic.dist, dist_window, dist_window.start)?;
    let mapped = |cpu| Mapped {
        version: gic.version,
        dist,
        cpu,
        timer,
    };
    if gic.version == GicVersion::V2 {
        let cpu = one(gic.cpu, cpu_window, cpu_window.start)?;
        let regs = Regs::V2 {
            dist: dist.regs_va,
            cpu: cpu.regs_va,
        };
        return Ok((mapped(cpu), regs));
    }
    let mut redist = Redistributors::NONE;
    let mut at = cpu_window.start;
    let mut first = None;
    for (slot, regs) in redist.regions.iter_mut().zip(gic.redistributors()) {
        let part = mapped_part(&gic, regs);
        let frame = one(part, cpu_window, at)?;
        at += frame.pages.size();
        *slot = (frame.regs_va, part.size());
        first.get_or_insert(frame);
    }
    redist.stride = gic.redistributor_stride;
    let regs = Regs::V3 {
        dist: dist.regs_va,
        redist,
    };
    Ok((mapped(first.expect("a first region")), regs))
}
