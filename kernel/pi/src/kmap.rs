//! Every mapping the kernel makes, in one table: [`KERNEL_MAP`].
//!
//! Each row says where a region's virtual addresses come from, how it is
//! mapped (attributes and granularity, or never) and why it is there. Every
//! map call that makes a kernel region takes its attributes and granularity
//! from its row, so no call site invents them; `layout`, `walk`, `va2pa` and
//! the host's `splitmap map` name regions by their rows. Adding a region is
//! adding a row here (and mapping it, at the boot phase where its physical
//! address becomes known).
//!
//! The early code (`boot.rs`) reads rows only in `const` blocks, through
//! [`mapping`]: what reaches its object code is the resulting [`Mapping`]
//! values, never this table, whose strings are absolute addresses (the
//! build's `relacheck` would refuse them).

use crate::layout::{
    DEBUG_RECORD_VA, FIXMAP_DTB, FIXMAP_DTB_SIZE, GIC_CPU_OFFSET, GIC_VADDR, KERNEL_STACK_SIZE, LINEAR_END, MMIO_BASE,
    MMIO_END, PAGE_OFFSET, PAGE_SIZE, STACK_SLOT, STACKS_VADDR,
};
use crate::pgtable::{Attrs, Granularity};
use Granularity::{Contiguous, LargestBlocks, PagesOnly};
use Place::{Fixed, Image};

/// Where a region's virtual addresses are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// In TTBR0 at VA = PA, only while the MMU is switched on; TTBR0 walks
    /// are off once the kernel runs at its link address.
    Identity,
    /// Each RAM range at `PAGE_OFFSET + (pa - PHYS_OFFSET)`, inside
    /// `[PAGE_OFFSET, LINEAR_END)`.
    Linear,
    /// The PLT window KASLR places around the image at boot; modules are
    /// mapped in it as they are loaded.
    Modules,
    /// A section of the image, at its link address plus the KASLR offset.
    Image(Section),
    /// A window at an address no boot moves: the mapping starts at `start`
    /// and never reaches `end`.
    Fixed {
        /// First address.
        start: u64,
        /// End of the window (exclusive).
        end: u64,
    },
}

/// The image's sections, in link order (kernel/linker.ld.in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// `[_text, __text_end)`.
    Text,
    /// `[__text_end, __rodata_end)`.
    Rodata,
    /// `.data`.
    Data,
    /// `.bss`.
    Bss,
    /// The early page-table pool.
    Pool,
    /// The boot stack.
    BootStack,
}

/// How a region is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Permissions and memory type.
    pub attrs: Attrs,
    /// Largest blocks, pages only, or blocks with contiguous runs.
    pub granularity: Granularity,
}

/// One row of the kernel's map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRegion {
    /// What `layout` calls it.
    pub name: &'static str,
    /// Where its virtual addresses are.
    pub place: Place,
    /// How the kernel maps it; `None` for a region that is never mapped as
    /// itself (a guard, or a window other code fills).
    pub mapping: Option<Mapping>,
    /// Why it is there, in one line (the host's memory table prints it).
    pub why: &'static str,
}

const fn mapped(attrs: Attrs, granularity: Granularity) -> Option<Mapping> {
    Some(Mapping { attrs, granularity })
}

const fn region(name: &'static str, place: Place, mapping: Option<Mapping>, why: &'static str) -> KernelRegion {
    KernelRegion {
        name,
        place,
        mapping,
        why,
    }
}

/// Every kernel mapping, lowest address first (the image's rows at their
/// link address; KASLR moves them and the module window together, between
/// the linear map and the MMIO window). A `static`, so the image holds one
/// copy, whatever number of places read it: each string in it is a
/// relocation KASLR applies.
#[rustfmt::skip]
pub static KERNEL_MAP: &[KernelRegion] = &[
    // Lower half, hence its own root (TTBR0): the image where it runs, each
    // segment as its own row says (text's attributes here), while the MMU
    // is turned on and the image's TTBR1 tables built (`pi::boot`).
    region("idmap", Place::Identity, mapped(Attrs::TEXT, PagesOnly),
        "the image where it runs, while the MMU is turned on (until the kernel runs at its link address)"),
    // Blocks, and contiguous runs: RAM is the most of the map and one TLB
    // entry should cover as much of it as it can.
    region("linear", Place::Linear, mapped(Attrs::DATA, Contiguous),
        "linear map: all RAM at `PAGE_OFFSET + (pa - PHYS_OFFSET)`"),
    // Each module's text r-x, rodata r-- and data rw- in pages, mapped by
    // `module::insmod` as it loads one.
    region("modules", Place::Modules, None,
        "module window: loaded modules, within branch-and-veneer reach of the kernel"),
    // Blocks where the load address allows; VA and PA need not agree modulo
    // 2 MiB, and the mapper falls back to pages.
    region("text", Image(Section::Text), mapped(Attrs::TEXT, LargestBlocks), "kernel text"),
    region("rodata", Image(Section::Rodata), mapped(Attrs::RODATA, LargestBlocks), "kernel read-only data"),
    // From here to the image's end one segment: the rows must agree.
    region("data", Image(Section::Data), mapped(Attrs::DATA, LargestBlocks), "kernel data"),
    region("pgtables", Image(Section::Pool), mapped(Attrs::DATA, LargestBlocks), "the early page-table pool"),
    region("bss", Image(Section::Bss), mapped(Attrs::DATA, LargestBlocks), "kernel bss"),
    region("bootstack", Image(Section::BootStack), mapped(Attrs::DATA, LargestBlocks),
        "the boot stack (exceptions run on it)"),
    // Device-nGnRE, never executable (the attributes see to both).
    region("mmio", Fixed { start: MMIO_BASE, end: GIC_VADDR }, mapped(Attrs::DEVICE, PagesOnly),
        "device registers (the UART)"),
    // The upper half of the MMIO window, one row a GIC frame; as
    // Device-nGnRE as the rest.
    region("gic-dist", Fixed { start: GIC_VADDR, end: GIC_VADDR + GIC_CPU_OFFSET }, mapped(Attrs::DEVICE, PagesOnly),
        "the interrupt controller's distributor (GICD)"),
    region("gic-cpu", Fixed { start: GIC_VADDR + GIC_CPU_OFFSET, end: MMIO_END }, mapped(Attrs::DEVICE, PagesOnly),
        "the interrupt controller's CPU interface (GICv2 GICC) or the CPUs' redistributors (GICv3 GICR)"),
    // Read-only: parsed before the linear map exists; the KASLR seed in it is
    // zeroed through the linear map.
    region("dtb", Fixed { start: FIXMAP_DTB, end: FIXMAP_DTB + FIXMAP_DTB_SIZE }, mapped(Attrs::RODATA, PagesOnly),
        "the device tree the bootloader passed"),
    region("debug", Fixed { start: DEBUG_RECORD_VA, end: DEBUG_RECORD_VA + PAGE_SIZE }, mapped(Attrs::DATA, PagesOnly),
        "the debug record (where `splitmap gdb` learns the layout)"),
    region("guard", Fixed { start: STACKS_VADDR, end: STACK_START }, None,
        "unmapped guard: a stack overflow faults here"),
    region("stack", Fixed { start: STACK_START, end: STACKS_VADDR + STACK_SLOT }, mapped(Attrs::DATA, PagesOnly),
        "the kernel stack"),
];

/// The kernel stack's first address: the top half of the first stack slot.
const STACK_START: u64 = STACKS_VADDR + STACK_SLOT - KERNEL_STACK_SIZE;

/// One CPU's stack slot: its unmapped guard and, above it, its kernel stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackSlot {
    /// `[start, end)` of the guard.
    pub guard: (u64, u64),
    /// `[start, end)` of the stack.
    pub stack: (u64, u64),
}

/// CPU `cpu`'s stack slot. The `guard` and `stack` rows are the template,
/// and CPU 0's own; CPU N's (`guard.N`, `stack.N`) are the same rows
/// `N * STACK_SLOT` higher, mapped as the `stack` row says.
pub const fn stack_slot(cpu: usize) -> StackSlot {
    let StackSlot { guard, stack } = FIRST_STACK_SLOT;
    let up = cpu as u64 * STACK_SLOT;
    StackSlot {
        guard: (guard.0 + up, guard.1 + up),
        stack: (stack.0 + up, stack.1 + up),
    }
}

/// CPU 0's slot, worked out when the kernel is built: looking the rows up
/// by name at run time compared strings row by row, 29 blocks for QEMU to
/// translate at boot.
const FIRST_STACK_SLOT: StackSlot = {
    let (Some(guard), Some(stack)) = (row("guard").window(), row("stack").window()) else {
        panic!("the stack rows have fixed windows")
    };
    StackSlot { guard, stack }
};

// Every CPU's slot fits the stack area.
const _: () = assert!(crate::layout::STACK_SLOT * 8 <= crate::layout::STACKS_SIZE);

/// The row named `name`. In a `const` block a missing name fails the build.
pub const fn row(name: &str) -> &'static KernelRegion {
    let mut i = 0;
    while i < KERNEL_MAP.len() {
        if same(KERNEL_MAP[i].name.as_bytes(), name.as_bytes()) {
            return &KERNEL_MAP[i];
        }
        i += 1;
    }
    panic!("no such row in KERNEL_MAP")
}

/// The row named `name`, if there is one (`hello:text`, a module's area, is
/// not a row).
pub fn find(name: &str) -> Option<&'static KernelRegion> {
    KERNEL_MAP.iter().find(|r| r.name == name)
}

/// A fixed window and how it is mapped: what code that maps one needs of
/// its row, as plain numbers (no pointer into the table to relocate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedWindow {
    /// First address: where the mapping starts.
    pub start: u64,
    /// End of the window (exclusive).
    pub end: u64,
    /// How it is mapped.
    pub mapping: Mapping,
}

/// Row `name`'s window; in a `const` block, fails the build if the row has
/// no fixed window or is never mapped.
pub const fn fixed(name: &str) -> FixedWindow {
    match *row(name) {
        KernelRegion {
            place: Fixed { start, end },
            mapping: Some(mapping),
            ..
        } => FixedWindow { start, end, mapping },
        _ => panic!("row has no fixed window or is never mapped"),
    }
}

/// How row `name` is mapped; fails the build in a `const` block if it never is.
pub const fn mapping(name: &str) -> Mapping {
    match row(name).mapping {
        Some(m) => m,
        None => panic!("row is never mapped"),
    }
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl KernelRegion {
    /// The virtual addresses it may occupy, if no boot moves them.
    pub const fn window(&self) -> Option<(u64, u64)> {
        match self.place {
            Place::Linear => Some((PAGE_OFFSET, LINEAR_END)),
            Place::Fixed { start, end } => Some((start, end)),
            Place::Identity | Place::Modules | Place::Image(_) => None,
        }
    }
}

// The image's data segment (data to the image's end) is mapped in one call,
// with data's row: the rows after it must say the same.
const _: () = {
    let data = mapping("data");
    let mut i = 0;
    while i < KERNEL_MAP.len() {
        if let (Image(s), Some(m)) = (KERNEL_MAP[i].place, KERNEL_MAP[i].mapping)
            && !matches!(s, Section::Text | Section::Rodata)
        {
            assert!(same_mapping(m, data), "the image's rw rows are mapped as one segment");
        }
        i += 1;
    }
};

const fn same_mapping(a: Mapping, b: Mapping) -> bool {
    a.attrs.prot as u8 == b.attrs.prot as u8
        && a.attrs.mem as u8 == b.attrs.mem as u8
        && a.granularity as u8 == b.granularity as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::PhysAddr;
    use crate::layout::KIMAGE_VADDR;
    use crate::pgtable::{Entry, LAST_LEVEL, leaf_descriptor};

    #[test]
    fn rows_with_fixed_addresses_are_in_order_and_disjoint() {
        let windows: Vec<(&str, (u64, u64))> = KERNEL_MAP.iter().filter_map(|r| Some((r.name, r.window()?))).collect();
        for pair in windows.windows(2) {
            let ((a, (a0, a1)), (b, (b0, _))) = (pair[0], pair[1]);
            assert!(a0 < a1, "{a} is empty");
            assert!(a1 <= b0, "{a} ends at {a1:#x}, past {b}'s start {b0:#x}");
        }
        // The image, at its link address, between the linear map and the MMIO window.
        let (_, linear_end) = row("linear").window().unwrap();
        let (mmio, _) = row("mmio").window().unwrap();
        assert!(linear_end <= KIMAGE_VADDR && KIMAGE_VADDR < mmio);
        // The rows KASLR moves sit between them in the table too.
        let at = |name| KERNEL_MAP.iter().position(|r: &KernelRegion| r.name == name).unwrap();
        for r in KERNEL_MAP
            .iter()
            .filter(|r| matches!(r.place, Place::Modules | Image(_)))
        {
            assert!(
                at("linear") < at(r.name) && at(r.name) < at("mmio"),
                "{} out of order",
                r.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_every_row_says_why() {
        for (i, r) in KERNEL_MAP.iter().enumerate() {
            assert!(!r.why.is_empty() && !r.why.contains('\n'), "{}", r.name);
            assert!(KERNEL_MAP[..i].iter().all(|o| o.name != r.name), "{} twice", r.name);
            assert_eq!(find(r.name), Some(r));
        }
        assert_eq!(find("hello:text"), None);
    }

    #[test]
    fn stack_slots_follow_the_template_rows_without_overlap() {
        let zero = stack_slot(0);
        assert_eq!(Some(zero.guard), row("guard").window());
        assert_eq!(Some(zero.stack), row("stack").window());
        for cpu in 1..8 {
            let (below, slot) = (stack_slot(cpu - 1), stack_slot(cpu));
            assert_eq!(
                slot.guard.0,
                below.stack.1,
                "cpu {cpu}'s guard sits right above cpu {}'s stack",
                cpu - 1
            );
            assert_eq!(slot.guard.1, slot.stack.0);
            assert_eq!(slot.stack.1 - slot.stack.0, KERNEL_STACK_SIZE);
            assert!(slot.guard.1 - slot.guard.0 >= PAGE_SIZE);
        }
    }

    #[test]
    fn every_mapped_row_obeys_w_xor_x() {
        for r in KERNEL_MAP {
            let Some(m) = r.mapping else { continue };
            // What the MMU will see: the descriptor the mapper writes.
            let raw = leaf_descriptor(PhysAddr::new(0x4000_0000), LAST_LEVEL, m.attrs);
            let Entry::Leaf { prot, .. } = Entry::decode(raw, LAST_LEVEL) else {
                panic!("{}: not a leaf", r.name)
            };
            assert!(!(prot.write && prot.exec), "{} is writable and executable", r.name);
            assert!(!(prot.device && prot.exec), "{} is executable device memory", r.name);
        }
    }
}
