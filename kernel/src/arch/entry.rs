//! The kernel proper starts here, at its link address, with the MMU on.
//! Each boot phase is one function, so phases are easy to read and to time.

use log::{info, warn};
use pi::addr::{self, KimgVirt, PhysAddr};
use pi::boot::EarlyPool;
use pi::layout::{FIXMAP_DTB, MMIO_BASE, MMIO_END, PAGE_SIZE};
use pi::pgtable::{self, Attrs, Granularity};
use spin::Once;

use super::memory::{self, KernelTables, TABLES};
use super::state::{self, Kernel, MAX_RESERVATIONS, Reservation};
use super::{console, cpu, exceptions, kaslr, shell, stack};
use crate::dtb::{self, BootInfo};
use crate::pl011::Pl011;
use crate::ranges::{PhysRange, RangeList};
use crate::{bootargs, linear};

unsafe extern "C" {
    static _text: u8;
    static _end: u8;
    static __pool_start: u8;
    static __pool_end: u8;
}

/// Heap size: enough for the frame allocator's bookkeeping and the shell.
const HEAP_SIZE: u64 = 4 << 20;

/// Entered from `__pi_enable_mmu` (kernel/pi/src/boot.rs) at the link address.
///
/// # Safety
/// Only the early code calls this, once, with the MMU on and the boot tables
/// live: `dtb_pa` from x0 at entry, `image_pa` where `_text` is loaded,
/// `pool_used` pages of the table pool taken, `boot_regs` = x1|x2|x3 at entry.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_kernel_main(dtb_pa: u64, image_pa: u64, pool_used: u64, boot_regs: u64) -> ! {
    exceptions::install();
    cpu::disable_ttbr0();
    let image = record_image(PhysAddr::new(image_pa));
    // SAFETY: the early code took `pool_used` pages of this pool; the rest is
    // untouched and mapped rw in the image mapping at `pa + kimage_voffset`.
    let pool = unsafe {
        EarlyPool::resume(
            kimg_to_phys(&raw const __pool_start),
            kimg_to_phys(&raw const __pool_end),
            pool_used,
            addr::kimage_voffset(),
        )
    };
    *TABLES.lock() = Some(KernelTables::new(pool));

    let mut dt = match read_device_tree(dtb_pa) {
        Ok((dt, _)) => dt,
        Err(e) => unusable_device_tree(dtb_pa, e),
    };
    dt.memory = addressable(&dt.memory).0;
    if dt.memory.is_empty() {
        // Nothing to map; `kernel_continue` reports it once there is a console.
        kaslr::record_without_ram();
    } else {
        let args = bootargs::parse(dt.bootargs, |_| {});
        let (phys_offset, linear_random) = kaslr::linear_phys_offset(&dt, &args);
        LINEAR_COUNTS.call_once(|| map_linear(&dt.memory, phys_offset));
        let decision = kaslr::decide(&dt, &args, dtb_pa, image, linear_random);
        // SAFETY: the linear map is built and nothing stored so far holds an
        // image address; `kernel_continue` takes only plain numbers.
        unsafe { kaslr::apply(decision, image, kernel_continue, [dtb_pa, image_pa, boot_regs]) };
    }
    kernel_continue(dtb_pa, image_pa, boot_regs)
}

/// Descriptors the linear map was built with (before any move).
static LINEAR_COUNTS: Once<pgtable::MapCounts> = Once::new();

/// The rest of boot, at the image's final address (after a KASLR move, or at
/// the link address).
extern "C" fn kernel_continue(dtb_pa: u64, image_pa: u64, boot_regs: u64) -> ! {
    exceptions::install();
    let image = PhysRange {
        start: PhysAddr::new(image_pa),
        end: PhysAddr::new(image_pa + image_size()),
    };
    kaslr::unmap_link_address(image.size());
    let (mut dt, dtb_range) = read_device_tree(dtb_pa).unwrap_or_else(|e| unusable_device_tree(dtb_pa, e));
    let uart = dt.uart.filter(|u| u.pl011).map(|u| u.regs);
    let uart_va = start_console(uart);
    let args = bootargs::parse(dt.bootargs, |issue| warn!("{issue}"));
    console::init_log(args.loglevel);
    if uart.is_none() {
        warn!("no PL011 at /chosen/stdout-path; console on QEMU virt's UART at {EARLY_UART_PA:#x}");
    }
    let k = kaslr::get();
    crate::println!(
        "splitmap: image pa={:#x} va={:#x} kaslr={:#x} ({})",
        image.start.raw(),
        &raw const _text as u64,
        k.offset,
        k.source.map_or("disabled", |s| s.name())
    );
    match k.off {
        Some(kaslr::Off::NoSeed) => warn!("KASLR off: no seed (kaslr.seed=, /chosen/kaslr-seed or RNDR)"),
        Some(kaslr::Off::BadWindow) => {
            if let Err(e) = crate::kaslr::window_from_args(args.kaslr_window, args.kaslr_align, image.size()) {
                log::error!("{e}; KASLR off");
            }
        }
        _ => {}
    }
    for problem in dt.problems.iter().flatten() {
        warn!("{problem}; {}", problem.consequence());
    }
    let (ram, cut) = addressable(&dt.memory);
    if cut {
        warn!(
            "RAM beyond this CPU's {}-bit physical address space ignored",
            pa_width()
        );
    }
    dt.memory = ram;
    if dt.memory.is_empty() {
        panic!("{}", crate::dtb::DtbError::NoMemory);
    }
    if boot_regs != 0 {
        warn!("boot protocol: x1-x3 should be zero at entry (x1|x2|x3 = {boot_regs:#x})");
    }

    if args.rodata_full {
        super::rodata::protect_image_alias();
    }
    let linear_counts = *LINEAR_COUNTS.get().expect("linear map built");
    let (reserved, free) = reserve(&dt, image, dtb_range);
    memory::init_frames(&free);
    info!(
        "{} MiB RAM, {} MiB free, linear map 1G:{} 2M:{} 4K:{} in {} table pages",
        dt.memory.total() >> 20,
        (memory::free_frames() * PAGE_SIZE) >> 20,
        linear_counts.blocks_1g,
        linear_counts.blocks_2m,
        linear_counts.pages_4k,
        linear_counts.tables
    );
    state::set(Kernel {
        image,
        dtb: dt,
        dtb_range,
        bootargs: args,
        linear: linear_counts,
        uart_va,
        reserved,
        free_at_boot: free,
    });
    stack::switch_to_kernel_stack(run_shell)
}

extern "C" fn run_shell() -> ! {
    shell::run()
}

/// This CPU's physical address width.
fn pa_width() -> u32 {
    use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, Readable};
    crate::ranges::pa_bits(ID_AA64MMFR0_EL1.get())
}

/// The RAM this CPU can address, and whether some was cut off.
fn addressable(ram: &RangeList) -> (RangeList, bool) {
    ram.below_pa_bits(pa_width())
}

fn image_size() -> u64 {
    &raw const _end as u64 - &raw const _text as u64
}

fn kimg_to_phys(p: *const u8) -> PhysAddr {
    KimgVirt::new(p as u64).to_phys()
}

/// Tells the address types where the image is: `[_text, _end)` at `image_pa`.
fn record_image(image_pa: PhysAddr) -> PhysRange {
    let va = &raw const _text as u64;
    let size = &raw const _end as u64 - va;
    addr::set_kimage(image_pa, image_pa.add(size), va.wrapping_sub(image_pa.raw()));
    PhysRange {
        start: image_pa,
        end: image_pa.add(size),
    }
}

/// Parses the DTB the early code mapped at `FIXMAP_DTB`. Without a device tree
/// there is no console to complain on, so a bad one powers off (the host sees
/// QEMU exit without a prompt).
fn read_device_tree(dtb_pa: u64) -> Result<(BootInfo<'static>, PhysRange), dtb::DtbError> {
    let va = FIXMAP_DTB + (dtb_pa & (PAGE_SIZE - 1));
    // SAFETY: the early code mapped at least the DTB's first page read-only at
    // FIXMAP_DTB (the header is 8-byte aligned, so its 8 bytes share that page),
    // and the mapping is never removed.
    let head = unsafe { core::slice::from_raw_parts(va as *const u8, 8) };
    let size = dtb::header_totalsize(head)?;
    // SAFETY: as above; the early code mapped the whole `totalsize`, which
    // `header_totalsize` checked against the protocol's 2 MiB cap.
    let blob = unsafe { core::slice::from_raw_parts(va as *const u8, size as usize) };
    let info = dtb::parse(blob)?;
    Ok((info, PhysRange::new(dtb_pa, size).unwrap_or_default()))
}

/// QEMU virt's first PL011: the console when the device tree names none, or
/// cannot be read at all (Linux's `earlycon=pl011,0x9000000`). splitmap only
/// runs on `virt`, so this is where a user is looking.
const EARLY_UART_PA: u64 = 0x0900_0000;

/// A device tree the kernel cannot read: say why on the early console, stop.
fn unusable_device_tree(dtb_pa: u64, e: dtb::DtbError) -> ! {
    start_console(None);
    panic!("the device tree at {dtb_pa:#x} is unusable: {e}")
}

/// Maps the console UART (`regs`, or QEMU virt's if `None`) into the MMIO
/// window and makes it the console. Returns its virtual address.
fn start_console(regs: Option<PhysRange>) -> u64 {
    let regs = regs.unwrap_or(PhysRange {
        start: PhysAddr::new(EARLY_UART_PA),
        end: PhysAddr::new(EARLY_UART_PA + PAGE_SIZE),
    });
    let base = regs.start.align_down(PAGE_SIZE);
    let size = (regs.end.raw() - base.raw()).next_multiple_of(PAGE_SIZE);
    let va = MMIO_BASE;
    if va + size > MMIO_END {
        // A UART that does not fit the window: nothing can be shown.
        super::psci::system_off(None)
    }
    map_kernel(va, base, size, Attrs::DEVICE, Granularity::PagesOnly);
    let regs = va + (regs.start.raw() - base.raw());
    // SAFETY: the PL011's registers were just mapped as Device memory at `regs`
    // and the console is their only user.
    console::init(unsafe { Pl011::new(regs as *mut u32) });
    regs
}

/// Maps into the live kernel tables, or panics with the reason: boot-time
/// mappings either succeed or the kernel cannot go on.
fn map_kernel(va: u64, pa: PhysAddr, size: u64, attrs: Attrs, granularity: Granularity) {
    if let Err(e) = memory::map(va, pa, size, attrs, granularity) {
        panic!("cannot map {va:#x} -> {pa:?} ({size:#x} bytes): {e:?}");
    }
}

/// Builds the linear map of all RAM for `phys_offset`.
fn map_linear(ram: &RangeList, phys_offset: PhysAddr) -> pgtable::MapCounts {
    addr::set_phys_offset(phys_offset);
    let mut tables = TABLES.lock();
    let tables = tables.as_mut().expect("tables set up first");
    let counts =
        linear::build(tables, cpu::ttbr1_root(), ram, phys_offset).unwrap_or_else(|e| panic!("linear map: {e:?}"));
    cpu::publish_tables();
    counts
}

/// Reserves what is in use (image, DTB, initrd, the DTB's own reservations and
/// the heap) and returns the reservations and the RAM left for frames.
fn reserve(
    dt: &BootInfo<'_>,
    image: PhysRange,
    dtb_range: PhysRange,
) -> ([Option<Reservation>; MAX_RESERVATIONS], RangeList) {
    let mut list: [Option<Reservation>; MAX_RESERVATIONS] = [None; MAX_RESERVATIONS];
    let mut n = 0;
    let mut add = |range: PhysRange, what: &'static str| {
        if n < MAX_RESERVATIONS {
            list[n] = Some(Reservation { range, what });
            n += 1;
        }
    };
    add(image, "image");
    add(dtb_range, "dtb");
    if let Some(initrd) = dt.initrd {
        add(initrd, "initrd");
    }
    dt.reserved.iter().for_each(|&r| add(r, "memreserve"));

    let mut holes = RangeList::new();
    for r in list.iter().flatten() {
        // Whole pages: a frame must not share a page with anything reserved.
        let page_start = r.range.start.align_down(PAGE_SIZE);
        let page_end = PhysAddr::new(r.range.end.raw().next_multiple_of(PAGE_SIZE));
        holes
            .insert(PhysRange {
                start: page_start,
                end: page_end,
            })
            .expect("too many reservations");
    }
    let free = dt.memory.subtract(&holes).expect("too many free ranges");

    // The heap: the top of the highest free range, leaving low memory (below
    // the image too) to the frame allocator.
    let heap_from = free
        .iter()
        .rev()
        .find(|r| r.shrink_to_pages(PAGE_SIZE).size() >= 2 * HEAP_SIZE)
        .expect("no room for the heap");
    let top = heap_from.shrink_to_pages(PAGE_SIZE).end;
    let heap = PhysRange {
        start: PhysAddr::new(top.raw() - HEAP_SIZE),
        end: top,
    };
    // SAFETY: `heap` is free RAM (not reserved, inside a /memory range, so
    // linear-mapped) and is removed from the frame allocator's share below.
    unsafe { memory::init_heap(heap) };
    if let Some(slot) = list.iter_mut().find(|r| r.is_none()) {
        *slot = Some(Reservation {
            range: heap,
            what: "heap",
        });
    }
    holes.insert(heap).expect("too many reservations");
    let free = dt.memory.subtract(&holes).expect("too many free ranges");
    (list, free)
}
