//! The kernel's virtual memory layout: every fixed address lives here.
//!
//! 48-bit virtual addresses, in the granule chosen at build time ([`GRANULE`]).
//! TTBR1 translates the upper half (`0xffff_…`); TTBR0 only ever holds the
//! identity page of the MMU switch. The addresses below are the same in every
//! granule (each is a multiple of 64 KiB, most of 2 MiB).

/// The translation granule the kernel is built for: a build-time choice
/// (features `granule-16k`, `granule-64k`; 4 KiB otherwise).
#[cfg(feature = "granule-64k")]
pub const GRANULE: crate::pgtable::granule::Granule = crate::pgtable::granule::Granule::K64;
/// The translation granule the kernel is built for.
#[cfg(all(feature = "granule-16k", not(feature = "granule-64k")))]
pub const GRANULE: crate::pgtable::granule::Granule = crate::pgtable::granule::Granule::K16;
/// The translation granule the kernel is built for.
#[cfg(not(any(feature = "granule-16k", feature = "granule-64k")))]
pub const GRANULE: crate::pgtable::granule::Granule = crate::pgtable::granule::Granule::K4;
/// Size of a translation granule and of a page.
pub const PAGE_SIZE: u64 = GRANULE.page_size();
/// Number of virtual address bits per half (T1SZ = 64 - 48).
pub const VA_BITS: u32 = 48;

/// Start of the linear map of all RAM. The lowest half of the kernel half, as in
/// Linux ≥ 5.4, so that `va = pa - PHYS_OFFSET + PAGE_OFFSET` never overflows for
/// up to 128 TiB of RAM.
pub const PAGE_OFFSET: u64 = 0xffff_0000_0000_0000;
/// End (exclusive) of the linear map.
pub const LINEAR_END: u64 = 0xffff_8000_0000_0000;

/// Module region: 2 GiB right below the image, so that by default a module's
/// `bl` reaches the kernel text without a veneer.
pub const MODULES_VADDR: u64 = 0xffff_8000_0000_0000;
/// Size of the module region.
pub const MODULES_SIZE: u64 = 2 << 30;

/// The kernel image's link address. It does not depend on where the image sits
/// in RAM: that is the whole point of splitting text from the linear map.
pub const KIMAGE_VADDR: u64 = MODULES_VADDR + MODULES_SIZE;

/// Device tree window: the boot protocol caps the DTB at 2 MiB; 4 MiB leaves room
/// for an unaligned start. Mapped read-only by the early code.
pub const FIXMAP_DTB: u64 = 0xffff_ffff_fe00_0000;
/// Size of the device tree window.
pub const FIXMAP_DTB_SIZE: u64 = 4 << 20;
/// Largest DTB the boot protocol allows.
pub const DTB_MAX_SIZE: u64 = 2 << 20;

/// One page a debugger reads to find the running kernel: its KASLR offset
/// and loaded modules (`debug::record`). Just above the DTB window, at an
/// address no boot can move.
pub const DEBUG_RECORD_VA: u64 = FIXMAP_DTB + FIXMAP_DTB_SIZE;

/// MMIO window for device registers (UART, later GIC): Device-nGnRE, never
/// executable. It shares its level-0 and level-1 tables with the DTB window.
pub const MMIO_BASE: u64 = 0xffff_ffff_f000_0000;
/// End (exclusive) of the MMIO window.
pub const MMIO_END: u64 = FIXMAP_DTB;
/// The interrupt controller's part of the MMIO window, its upper half:
/// the distributor at its start, the CPU interface (GICv2) or the CPUs'
/// redistributors (GICv3) at [`GIC_CPU_OFFSET`] from it.
pub const GIC_VADDR: u64 = MMIO_BASE + 0x0800_0000;
/// Where the GIC's second register frame is mapped, from [`GIC_VADDR`]:
/// past any distributor, a multiple of every granule.
pub const GIC_CPU_OFFSET: u64 = 16 << 20;

/// Kernel stacks, each below an unmapped guard page so that running off the
/// end faults instead of corrupting memory. Above the DTB window, at the top of
/// the address space.
pub const STACKS_VADDR: u64 = 0xffff_ffff_ff00_0000;
/// Size of the stack area.
pub const STACKS_SIZE: u64 = 16 << 20;
/// One stack slot: the guard half (unmapped) below the stack half.
pub const STACK_SLOT: u64 = 128 << 10;
/// Usable bytes of a kernel stack.
pub const KERNEL_STACK_SIZE: u64 = 64 << 10;

// The regions must not overlap and must keep their order.
const _: () = assert!(PAGE_OFFSET < LINEAR_END && LINEAR_END <= MODULES_VADDR);
const _: () = assert!(MODULES_VADDR + MODULES_SIZE <= KIMAGE_VADDR);
const _: () = assert!(KIMAGE_VADDR < MMIO_BASE && MMIO_END <= FIXMAP_DTB);
const _: () = assert!(MMIO_BASE < GIC_VADDR && GIC_VADDR + 2 * GIC_CPU_OFFSET <= MMIO_END);
const _: () =
    assert!(FIXMAP_DTB + FIXMAP_DTB_SIZE <= STACKS_VADDR && STACKS_VADDR.checked_add(STACKS_SIZE - 1).is_some());
const _: () = assert!(KERNEL_STACK_SIZE < STACK_SLOT);
// The image needs 2 MiB alignment of its link address so that 2 MiB blocks stay
// possible whenever the loader picks a 2 MiB-aligned PA.
const _: () = assert!(KIMAGE_VADDR.is_multiple_of(2 << 20));
