//! The interrupt controller and the timer's interrupt, from the device tree:
//! which GIC (`arm,cortex-a15-gic` / `arm,gic-400` are GICv2, `arm,gic-v3`
//! is GICv3), where its registers are, and which interrupt the EL1 virtual
//! timer raises (`arm,armv8-timer`'s `interrupts`, third entry). Read in
//! `dtb::parse`'s one walk, node by node as each ends; a tree without
//! either node is a machine without a watchdog, not a bad tree, so nothing
//! here refuses the tree. The GIC's `reg` is translated through every
//! ancestor's `ranges`, as the console's is (a GIC under `/soc` sits at a
//! bus address, as on the Raspberry Pi 4).

use super::{Compatible, Frame, Node, Regs, to_cpu};
use crate::mm::ranges::PhysRange;

/// The GIC architectures the kernel drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// Memory-mapped distributor and CPU interface.
    V2,
    /// Memory-mapped distributor and redistributors; system-register CPU
    /// interface.
    V3,
}

/// How many GICv3 redistributor regions the kernel reads.
pub use crate::arch::gicr::MAX_REGIONS as MAX_REDISTRIBUTOR_REGIONS;

/// A GIC the kernel can drive: its version and its register frames, as
/// `reg` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gic {
    /// v2 or v3.
    pub version: GicVersion,
    /// The distributor (`GICD_*`).
    pub dist: PhysRange,
    /// GICv2: the CPU interface (`GICC_*`); GICv3: the first redistributor
    /// region (`GICR_*`, 128 KiB a CPU, the boot CPU's usually first).
    pub cpu: PhysRange,
    /// GICv3: the redistributor regions after the first, as many as
    /// `#redistributor-regions` says (up to [`MAX_REDISTRIBUTOR_REGIONS`]
    /// in all; the ones after are not read).
    pub more_redistributors: [Option<PhysRange>; MAX_REDISTRIBUTOR_REGIONS - 1],
    /// GICv3: `redistributor-stride`, the bytes from one redistributor to
    /// the next where firmware pads them; without it, each redistributor's
    /// GICR_TYPER says its length.
    pub redistributor_stride: Option<u64>,
}

impl Gic {
    /// GICv3's redistributor regions, the first one first.
    pub fn redistributors(&self) -> impl Iterator<Item = PhysRange> + '_ {
        core::iter::once(self.cpu).chain(self.more_redistributors.iter().flatten().copied())
    }
}

/// Why there is no GIC to drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoGic {
    /// The tree has no node with a GIC's `compatible` (another kind of
    /// interrupt controller, or none).
    Absent,
    /// The GIC node's `reg` does not give two register frames (or, for a
    /// GICv3, the redistributor regions `#redistributor-regions` counts).
    BadReg,
    /// The GIC's `reg` does not reach the CPU through its ancestors'
    /// `ranges`.
    Untranslatable,
    /// A GICv3's `redistributor-stride` is not a whole number of 64 KiB
    /// frames of at least one redistributor's two.
    BadStride(u64),
}

impl core::fmt::Display for NoGic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NoGic::Absent => "the device tree names no GICv2 or GICv3 interrupt controller",
            NoGic::BadReg => "the device tree's GIC node's reg lacks its distributor, its CPU interface or a redistributor region (#redistributor-regions counts them)",
            NoGic::Untranslatable => "the device tree's GIC registers do not reach the CPU through its parents' ranges",
            NoGic::BadStride(stride) => {
                return write!(
                    f,
                    "the device tree's GIC redistributor-stride {stride:#x} is not a multiple of 64 KiB of at least 128 KiB"
                );
            }
        })
    }
}

/// What the tree says about interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupts {
    /// The GIC, or why there is none.
    pub gic: Result<Gic, NoGic>,
    /// The INTID of the EL1 virtual timer's interrupt, if the tree has a
    /// timer node whose third `interrupts` entry reads.
    pub virtual_timer: Option<u32>,
}

impl Interrupts {
    /// What a tree without either node says.
    pub const NONE: Interrupts = Interrupts {
        gic: Err(NoGic::Absent),
        virtual_timer: None,
    };
}

/// The timer node's `interrupts` entries, in the binding's order: secure
/// physical, non-secure physical, virtual, hypervisor.
const VIRTUAL_TIMER_ENTRY: usize = 2;

/// What the walk has found so far: the first GIC node (read as it ends, its
/// ancestors known) and the first timer node's `interrupts`.
pub(super) struct Found<'dt> {
    gic: Result<Gic, NoGic>,
    /// The GIC's `#interrupt-cells`, which size the timer's entries.
    gic_cells: u32,
    timer: Option<&'dt [u8]>,
}

impl<'dt> Found<'dt> {
    pub(super) const fn new() -> Self {
        Found {
            gic: Err(NoGic::Absent),
            gic_cells: 3,
            timer: None,
        }
    }

    /// The end of the last of `frames` (its ancestors before it), a node
    /// below the root.
    pub(super) fn node_end(&mut self, frames: &[Frame<'dt>]) {
        let (node, ancestors) = frames.split_last().expect("a node below the root");
        match node.known {
            Some(Compatible::Gic(version)) if self.gic == Err(NoGic::Absent) => {
                self.gic = gic_regs(version, node, ancestors);
                self.gic_cells = node.interrupt_cells.unwrap_or(3);
            }
            Some(Compatible::Timer) if self.timer.is_none() => self.timer = node.interrupts,
            _ => {}
        }
    }

    /// What the whole tree said, into `into` (where it is kept: an
    /// `Interrupts` returned was built on the stack and copied, two calls to
    /// `memcpy`).
    pub(super) fn finish(&self, into: &mut Interrupts) {
        into.gic = self.gic;
        into.virtual_timer = self.timer.and_then(|t| intid(t, self.gic_cells, VIRTUAL_TIMER_ENTRY));
    }
}

/// The GIC's `reg` ranges (the distributor, then GICv2's CPU interface or
/// GICv3's redistributor regions), by its parent's cells (the last of
/// `ancestors`), translated to CPU physical addresses through every
/// ancestor's `ranges`.
fn gic_regs(version: GicVersion, node: &Frame<'_>, ancestors: &[Frame<'_>]) -> Result<Gic, NoGic> {
    let parent = &ancestors[ancestors.len() - 1];
    let Some(Ok(mut regs)) = node.reg.map(|reg| Regs::of(reg, parent, Node::InterruptController)) else {
        return Err(NoGic::BadReg);
    };
    let translated = |r: PhysRange| to_cpu(r, ancestors).map_err(|_| NoGic::Untranslatable);
    let (dist, cpu) = match (regs.next(), regs.next()) {
        (Some(dist), Some(cpu)) if dist.size() > 0 && cpu.size() > 0 => (dist, cpu),
        _ => return Err(NoGic::BadReg),
    };
    let mut gic = Gic {
        version,
        dist: translated(dist)?,
        cpu: translated(cpu)?,
        more_redistributors: [None; MAX_REDISTRIBUTOR_REGIONS - 1],
        redistributor_stride: None,
    };
    if version == GicVersion::V3 {
        // After the redistributor regions come GICC, GICH and GICV, which
        // the kernel does not use: only `#redistributor-regions` tells
        // them apart.
        let more = node.redistributor_regions.saturating_sub(1) as usize;
        if regs.clone().count() < more {
            return Err(NoGic::BadReg);
        }
        for slot in gic.more_redistributors.iter_mut().take(more) {
            match regs.next() {
                Some(r) if r.size() > 0 => *slot = Some(translated(r)?),
                _ => return Err(NoGic::BadReg),
            }
        }
        gic.redistributor_stride = match node.redistributor_stride {
            0 => None,
            // Each step lands on a redistributor's first frame, and never
            // inside the one before.
            s if s.is_multiple_of(0x1_0000) && s >= 0x2_0000 => Some(s),
            s => return Err(NoGic::BadStride(s)),
        };
    }
    Ok(gic)
}

/// The INTID entry `index` of an `interrupts` property names, with the GIC
/// binding's cells: type (0 SPI, 1 PPI), number, flags.
fn intid(interrupts: &[u8], cells: u32, index: usize) -> Option<u32> {
    if cells < 2 {
        return None;
    }
    let stride = 4 * cells as usize;
    // At least two cells: the type and the number.
    let &[t0, t1, t2, t3, n0, n1, n2, n3, ..] = interrupts.get(index * stride..(index + 1) * stride)? else {
        return None;
    };
    let number = u32::from_be_bytes([n0, n1, n2, n3]);
    match u32::from_be_bytes([t0, t1, t2, t3]) {
        // PPIs are INTIDs 16-31, SPIs from 32 (below 1020).
        1 if number < 16 => Some(16 + number),
        0 if number < 988 => Some(32 + number),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    /// What `dtb::parse` reads of the interrupts in `blob`.
    fn read(blob: &[u8]) -> Interrupts {
        crate::boot::dtb::parse(blob).unwrap().interrupts
    }

    /// A tree like QEMU virt's: a GIC node (if `gic`), a timer (if `timer`).
    fn tree(gic: Option<(&str, &[(u64, u64)])>, timer: Option<&[u32]>, timer_first: bool) -> Vec<u32> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let add_timer = |w: &mut FdtWriter| {
            if let Some(cells) = timer {
                let t = w.begin_node("timer").unwrap();
                w.property_string_list("compatible", vec!["arm,armv8-timer".into(), "arm,armv7-timer".into()])
                    .unwrap();
                w.property_array_u32("interrupts", cells).unwrap();
                w.end_node(t).unwrap();
            }
        };
        if timer_first {
            add_timer(&mut w);
        }
        if let Some((compatible, regs)) = gic {
            let n = w.begin_node("intc@8000000").unwrap();
            w.property_string("compatible", compatible).unwrap();
            w.property_u32("#interrupt-cells", 3).unwrap();
            let cells: Vec<u32> = regs
                .iter()
                .flat_map(|&(a, s)| [(a >> 32) as u32, a as u32, (s >> 32) as u32, s as u32])
                .collect();
            w.property_array_u32("reg", &cells).unwrap();
            w.property_null("interrupt-controller").unwrap();
            w.end_node(n).unwrap();
        }
        if !timer_first {
            add_timer(&mut w);
        }
        w.end_node(root).unwrap();
        crate::boot::dtb::tests::aligned(&w.finish().unwrap())
    }

    use crate::boot::dtb::tests::as_bytes as bytes;

    /// QEMU virt's timer: secure, non-secure, virtual, hypervisor PPIs.
    const VIRT_TIMER: [u32; 12] = [1, 13, 0xf04, 1, 14, 0xf04, 1, 11, 0xf04, 1, 10, 0xf04];

    fn range(start: u64, size: u64) -> PhysRange {
        PhysRange::new(start, size).unwrap()
    }

    #[test]
    fn qemu_virt_gicv2_and_gicv3() {
        let v2 = tree(
            Some((
                "arm,cortex-a15-gic",
                &[(0x0800_0000, 0x10000), (0x0801_0000, 0x10000), (0x0803_0000, 0x10000)],
            )),
            Some(&VIRT_TIMER),
            true,
        );
        let irqs = read(bytes(&v2));
        assert_eq!(
            irqs.gic,
            Ok(Gic {
                version: GicVersion::V2,
                dist: range(0x0800_0000, 0x10000),
                cpu: range(0x0801_0000, 0x10000),
                more_redistributors: [None; MAX_REDISTRIBUTOR_REGIONS - 1],
                redistributor_stride: None,
            })
        );
        // PPI 11, the third entry: INTID 27.
        assert_eq!(irqs.virtual_timer, Some(27));
        let v3 = tree(
            Some(("arm,gic-v3", &[(0x0800_0000, 0x10000), (0x080a_0000, 0xf6_0000)])),
            Some(&VIRT_TIMER),
            false,
        );
        let irqs = read(bytes(&v3));
        assert_eq!(
            irqs.gic,
            Ok(Gic {
                version: GicVersion::V3,
                dist: range(0x0800_0000, 0x10000),
                cpu: range(0x080a_0000, 0xf6_0000),
                more_redistributors: [None; MAX_REDISTRIBUTOR_REGIONS - 1],
                redistributor_stride: None,
            })
        );
        assert_eq!(irqs.virtual_timer, Some(27));
        let gic400 = tree(
            Some(("arm,gic-400", &[(1 << 32, 0x1000), (0x2000, 0x2000)])),
            None,
            false,
        );
        let irqs = read(bytes(&gic400));
        assert_eq!(
            irqs.gic.map(|g| (g.version, g.dist.start.raw())),
            Ok((GicVersion::V2, 1 << 32))
        );
        assert_eq!(irqs.virtual_timer, None, "no timer node");
    }

    /// A GICv3 with `regions` redistributor regions (`#redistributor-regions`
    /// if not `None`), then GICC, GICH and GICV, and `stride` if given.
    fn gicv3(regions: Option<u32>, stride: Option<u64>) -> Vec<u32> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let n = w.begin_node("intc@8000000").unwrap();
        w.property_string("compatible", "arm,gic-v3").unwrap();
        let regs = [
            (0x0800_0000u64, 0x1_0000u64),
            (0x080a_0000, 0x2_0000),
            (0x1000_0000, 0x40_0000),
            (0x0801_0000, 0x1_0000),
            (0x0803_0000, 0x1_0000),
            (0x0804_0000, 0x1_0000),
        ];
        let cells: Vec<u64> = regs.iter().flat_map(|&(a, s)| [a, s]).collect();
        w.property_array_u64("reg", &cells).unwrap();
        if let Some(n) = regions {
            w.property_u32("#redistributor-regions", n).unwrap();
        }
        if let Some(stride) = stride {
            w.property_u64("redistributor-stride", stride).unwrap();
        }
        w.end_node(n).unwrap();
        w.end_node(root).unwrap();
        crate::boot::dtb::tests::aligned(&w.finish().unwrap())
    }

    #[test]
    fn gicv3_redistributor_regions_and_stride() {
        let gic = |regions, stride| read(bytes(&gicv3(regions, stride))).gic;
        let two = gic(Some(2), Some(0x4_0000)).unwrap();
        assert_eq!(two.cpu, range(0x080a_0000, 0x2_0000));
        assert_eq!(
            two.more_redistributors,
            [Some(range(0x1000_0000, 0x40_0000)), None, None]
        );
        assert_eq!(two.redistributor_stride, Some(0x4_0000));
        assert_eq!(
            two.redistributors().collect::<Vec<_>>(),
            [range(0x080a_0000, 0x2_0000), range(0x1000_0000, 0x40_0000)]
        );
        // Without the count, one region: what follows is GICC and the rest.
        for one in [gic(None, None).unwrap(), gic(Some(1), None).unwrap()] {
            assert_eq!(one.more_redistributors, [None; MAX_REDISTRIBUTOR_REGIONS - 1]);
            assert_eq!(one.redistributor_stride, None);
        }
        // More regions than `reg` holds: refused, not read past its end.
        assert_eq!(gic(Some(7), None), Err(NoGic::BadReg));
        // A stride that would land inside a redistributor, or nowhere.
        for bad in [0x1_0000, 0x2_8000, 0x3] {
            assert_eq!(gic(Some(2), Some(bad)).map(|_| ()), Err(NoGic::BadStride(bad)));
        }
        // A huge one is a stride all the same: the search stops at the
        // region's end without wrapping (`gicr`'s tests).
        assert!(gic(Some(2), Some(0xffff_ffff_ffff_0000)).is_ok());
        // Past the kernel's four, the rest are not read.
        let four = gic(Some(5), None).unwrap();
        assert_eq!(four.redistributors().count(), MAX_REDISTRIBUTOR_REGIONS);
    }

    /// A GIC under a bus whose `ranges` moves its children (as the
    /// Raspberry Pi 4's `/soc` does): its registers are where the CPU sees
    /// them; a bus without `ranges` does not reach the CPU at all.
    fn gic_on_a_bus(ranges: Option<&[u32]>) -> Vec<u32> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        let soc = w.begin_node("soc").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        if let Some(r) = ranges {
            w.property_array_u32("ranges", r).unwrap();
        }
        let gic = w.begin_node("interrupt-controller@40041000").unwrap();
        w.property_string("compatible", "arm,gic-400").unwrap();
        w.property_array_u32("reg", &[0x4004_1000, 0x1000, 0x4004_2000, 0x2000])
            .unwrap();
        w.end_node(gic).unwrap();
        w.end_node(soc).unwrap();
        w.end_node(root).unwrap();
        crate::boot::dtb::tests::aligned(&w.finish().unwrap())
    }

    #[test]
    fn a_gic_on_a_bus_is_where_the_cpu_sees_it() {
        // Bus 0x40000000 is CPU 0xff800000 (child, parent hi/lo, size).
        let moved = gic_on_a_bus(Some(&[0x4000_0000, 0, 0xff80_0000, 0x80_0000]));
        assert_eq!(
            read(bytes(&moved)).gic,
            Ok(Gic {
                version: GicVersion::V2,
                dist: range(0xff84_1000, 0x1000),
                cpu: range(0xff84_2000, 0x2000),
                more_redistributors: [None; MAX_REDISTRIBUTOR_REGIONS - 1],
                redistributor_stride: None,
            })
        );
        assert_eq!(read(bytes(&gic_on_a_bus(None))).gic, Err(NoGic::Untranslatable));
        let identity = gic_on_a_bus(Some(&[]));
        assert_eq!(read(bytes(&identity)).gic.map(|g| g.dist.start.raw()), Ok(0x4004_1000));
    }

    #[test]
    fn no_gic_or_a_broken_one_is_said() {
        let none = tree(None, Some(&VIRT_TIMER), true);
        assert_eq!(read(bytes(&none)).gic, Err(NoGic::Absent));
        let other = tree(
            Some(("brcm,bcm2836-l1-intc", &[(0x4000_0000, 0x100), (0, 1)])),
            None,
            true,
        );
        assert_eq!(read(bytes(&other)).gic, Err(NoGic::Absent));
        let one_frame = tree(Some(("arm,gic-v3", &[(0x0800_0000, 0x10000)])), None, true);
        assert_eq!(read(bytes(&one_frame)).gic, Err(NoGic::BadReg));
        let empty_frame = tree(
            Some(("arm,gic-v3", &[(0x0800_0000, 0x10000), (0x080a_0000, 0)])),
            None,
            true,
        );
        assert_eq!(read(bytes(&empty_frame)).gic, Err(NoGic::BadReg));
    }

    #[test]
    fn timer_interrupts_decode_by_type() {
        assert_eq!(intid(bytes(&VIRT_TIMER.map(u32::to_be)), 3, 2), Some(27));
        assert_eq!(intid(bytes(&VIRT_TIMER.map(u32::to_be)), 3, 1), Some(30));
        // An SPI; a PPI number out of range; too few entries; too few cells.
        let spi = [0u32, 5, 4].map(u32::to_be);
        assert_eq!(intid(bytes(&spi), 3, 0), Some(37));
        assert_eq!(intid(bytes(&[1u32, 16, 4].map(u32::to_be)), 3, 0), None);
        assert_eq!(intid(bytes(&spi), 3, 2), None);
        assert_eq!(intid(bytes(&spi), 1, 0), None);
        let short = tree(None, Some(&VIRT_TIMER[..6]), true);
        assert_eq!(read(bytes(&short)).virtual_timer, None);
    }
}
