//! The kernel proper's boot, one forward pass. The early code (kernel/pi)
//! enters [`splitmap_kernel_main`] at the link address with the MMU on, and
//! the phases run in this order:
//!
//! 1. exception vectors (lent backtraces and the console from above), TTBR0
//!    off, the address types told where the image is, the early table pool
//!    resumed;
//! 2. the device tree and command line read into one [`BootInfo`] — the only
//!    full parse of either in a boot (the `bootargs` command shows what it
//!    found);
//! 3. KASLR decided (`kaslr::decide`), the linear map built at the base it
//!    chose, the DTB's seed zeroed so it is not reused;
//! 4. the image moved (`kaslr::relocate`), continuing in [`after_move`] at
//!    the new address — or straight there, when it stays;
//! 5. the link address unmapped, the console started, everything the boot
//!    info holds against the machine reported, `rodata=full`, reservations,
//!    frames and heap;
//! 6. onto the kernel stack and into the shell.
//!
//! The boot info and the KASLR decision cross the move in statics: neither
//! holds an address of the image (see `boot::info`), so both read the same
//! from the new mapping.

use log::{debug, error, info, warn};
use pi::addr::{self, KimgVirt, PhysAddr};
use pi::boot::EarlyPool;
use pi::layout::PAGE_SIZE;
use pi::pgtable::{self, MapError};

use crate::arch::once::WriteOnce;
use crate::arch::{counter, cpu, exceptions, pmu, psci, sections};
use crate::boot::cost::{self, Phase};
use crate::boot::dtb::DtbError;
use crate::boot::info::BootInfo;
use crate::boot::state::{self, Kernel};
use crate::boot::{reserve, tree};
use crate::console::{self, bringup::Fallback};
use crate::kaslr::decide::{self, Kaslr, Placement};
use crate::kaslr::{relocate, seed};
use crate::mm::linear::LinearError;
use crate::mm::ranges::{PhysRange, RangeList};
use crate::mm::{frames, rodata, stack, tables};
use crate::shell::report::Leaves;

/// Heap size: enough for the frame allocator's bookkeeping and the shell.
const HEAP_SIZE: u64 = 4 << 20;

/// The boot's inputs, read once before the move and used after it.
static BOOT_INFO: WriteOnce<BootInfo<'static>> = WriteOnce::new(BootInfo::EMPTY);

/// What boot set aside, and the RAM left for frames: kilobytes, built in
/// place and kept there for the shell.
static RESERVED: WriteOnce<reserve::Reserved> = WriteOnce::new(reserve::Reserved::EMPTY);

/// Descriptors the linear map was built with (before any move).
static LINEAR_COUNTS: WriteOnce<pgtable::MapCounts> = WriteOnce::new(pgtable::MapCounts {
    blocks_l1: 0,
    blocks_l2: 0,
    pages: 0,
    tables: 0,
    contiguous: 0,
});

/// Entered from `__pi_enable_mmu` (kernel/pi/src/boot.rs) at the link address.
///
/// # Safety
/// Only the early code calls this, once, with the MMU on and the boot tables
/// live: `dtb_pa` from x0 at entry, `image_pa` where `_text` is loaded,
/// `pool_used` pages of the table pool taken, `boot_regs` = x1|x2|x3 at entry,
/// `first_tick` the virtual count at the first instruction at EL1, `dtb_len`
/// the bytes of the DTB to map (`pi::boot::BootTables::dtb_len`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_kernel_main(
    dtb_pa: u64,
    image_pa: u64,
    pool_used: u64,
    boot_regs: u64,
    first_tick: u64,
    dtb_len: u64,
) -> ! {
    // CPU 0, before anything that counts locks or finds a recovery point by
    // CPU number (TPIDR_EL1's reset value is UNKNOWN).
    crate::arch::percpu::set_id(0);
    cost::started(first_tick);
    lend_to_lower_layers();
    exceptions::install();
    // The secondaries turn their MMU on through the same identity page.
    crate::arch::smp::keep_idmap_root();
    cpu::disable_ttbr0();
    // Messages go to the boot log until there is a console, which shows them.
    console::init_log(log::LevelFilter::Info);
    let image = record_image(PhysAddr::new(image_pa));
    let pool = sections::pool();
    // SAFETY: the early code took `pool_used` pages of this pool; the rest is
    // untouched and mapped rw in the image mapping at `pa + kimage_voffset`.
    let pool = unsafe {
        EarlyPool::resume(
            KimgVirt::new(pool.start).to_phys(),
            KimgVirt::new(pool.end).to_phys(),
            pool_used,
            addr::kimage_voffset(),
        )
    };
    tables::init(pool);
    map_dtb(dtb_pa, dtb_len);
    mark(Phase::Early);

    // Read straight into its static: the value is kilobytes, and it is
    // used from there, never copied.
    let info = BOOT_INFO.fill(|info| {
        tree::read_into(dtb_pa, boot_regs, info).unwrap_or_else(|e| unusable_device_tree(dtb_pa, e));
    });
    cost::tree_read(info.dt.size);
    psci::use_conduit(info.dt.psci);
    // Before any panic below: a panic's last words go to this board's UART
    // (the default board's address may be RAM here, as on the Pi).
    console::bringup::know_board(info.board(), &info.dt.memory);
    mark(Phase::DeviceTree);
    log::set_max_level(info.args.loglevel);
    debug!(
        "early code: MMU on, image mapped at the link address {:#x} from pa={image_pa:#x}, {pool_used} of {} pool pages used",
        sections::text().start,
        sections::pool().size() / PAGE_SIZE
    );
    debug!(
        "device tree at {dtb_pa:#x}: {} bytes, {} RAM ranges ({} MiB), bootargs '{}'",
        info.dtb.size(),
        info.dt.memory.len(),
        info.dt.memory.total() >> 20,
        info.dt.bootargs
    );
    if !info.dt.memory.is_empty() && !info.dt.memory.covers(image) {
        // The linear map, which KASLR writes through, would not reach it.
        panic!(
            "the kernel image at {:#x}-{:#x} is not inside the RAM the device tree describes",
            image.start.raw(),
            image.end.raw()
        );
    }
    if info.dt.memory.is_empty() {
        // Nothing to map or move; `after_move` reports it once there is a console.
        // SAFETY: no move: `apply` only records the decision.
        unsafe { relocate::apply(&decide::without_ram(), image, after_move, [image_pa, 0, 0]) };
    } else {
        let dtb_seed = info.dt.kaslr_seed.map(|(seed, _)| seed);
        let seed = seed::choose_seed(info.args.kaslr_seed, dtb_seed, cpu::rndr);
        let k = decide::decide(&info.args, seed, image.size(), &info.dt.memory);
        let counts = LINEAR_COUNTS.set(map_linear(&info.dt.memory, k.linear.phys_offset));
        mark(Phase::Linear);
        debug!(
            "linear map built: PHYS_OFFSET={:#x}{}, {} in {} table pages",
            k.linear.phys_offset.raw(),
            if k.linear.random { " (random)" } else { "" },
            Leaves(*counts, " "),
            counts.tables
        );
        tree::zero_kaslr_seed(info);
        if k.moves() {
            debug!("KASLR: moving the image by {:#x} to {:#x}", k.offset, k.image.start);
        }
        // SAFETY: the linear map is built and nothing stored so far holds an
        // image address; `after_move` takes only plain numbers.
        unsafe { relocate::apply(&k, image, after_move, [image_pa, 0, 0]) };
    }
    after_move(image_pa, 0, 0)
}

/// The rest of boot, at the image's final address (after a KASLR move, or at
/// the link address).
extern "C" fn after_move(image_pa: u64, _: u64, _: u64) -> ! {
    exceptions::install();
    lend_to_lower_layers();
    relocate::unmap_link_address();
    let image = PhysRange {
        start: PhysAddr::new(image_pa),
        end: PhysAddr::new(image_pa + sections::image().size()),
    };
    let info = BOOT_INFO.get().expect("boot info read before the move");
    mark(Phase::Kaslr);
    let (k, moved) = relocate::decision();
    // Where the image runs from now on, before anything but the exception
    // vectors, unmapping the old address and a phase mark: a debugger follows
    // from here (sm-boot stops on this).
    crate::debug::record::publish(&crate::debug::record::Boot {
        kaslr_offset: k.offset,
        image: (sections::image().start, sections::image().end),
        image_pa,
        phys_offset: addr::phys_offset().raw(),
        ttbr1: cpu::ttbr1_root().raw(),
        plt: (k.modules.plt.start, k.modules.plt.end),
    });
    if k.moves() {
        debug!(
            "KASLR: running at {:#x}; {} relocations applied; link address unmapped",
            sections::text().start,
            moved.relocations
        );
    }
    let named = match info.dt.uart {
        Some(uart) if uart.pl011 => Ok(uart.regs),
        _ => Err(no_named_console(info)),
    };
    // Kept whole, read in place: split, its fallback was copied out with
    // a call to `memcpy`.
    let started = console::bringup::start(named, &info.dt.memory);
    exceptions::take_serrors();
    report(info, k, started.1.as_ref(), image);
    // No `/psci`: the board's own power control, if the tree names one.
    if info.dt.psci.is_none() {
        match info.dt.power.map(crate::boot::power::start) {
            Some(Ok(())) => {}
            Some(Err(e)) => warn!("the power-management block cannot be mapped ({e:?}): poweroff will halt instead"),
            None => warn!("the device tree names neither /psci nor a power controller: poweroff will halt instead"),
        }
    }
    if info.dt.memory.is_empty() {
        panic!("{}", DtbError::NoMemory);
    }
    mark(Phase::Console);

    if info.args.rodata_full {
        rodata::protect_image_alias();
    }
    let linear_counts = LINEAR_COUNTS.get().expect("linear map built");
    // What the tables hold now. Only `rodata=full` changes the linear map
    // after it is built (it splits the blocks over the image's alias), so
    // only then is it walked again: with 16 KiB pages, walking 8 GiB of
    // 32 MiB blocks cost 9 k instructions, 14 % of an 8 GiB boot.
    let walked;
    let linear_now = if info.args.rodata_full {
        walked = tables::linear_now(&info.dt.memory);
        &walked
    } else {
        linear_counts
    };
    let reserved = match &info.dt.efi {
        // Without UEFI, nothing the firmware keeps: a list in rodata (an
        // empty one built here was a kilobyte zeroed, 480 instructions).
        None => reserve(info, image, None, &const { RangeList::new() }),
        Some(efi) => reserve_under_uefi(info, image, efi),
    };
    // SAFETY: the heap is free RAM (inside a /memory range, so linear-mapped,
    // and reserved so the frame allocator never hands it out).
    unsafe { frames::init_heap(reserved.heap) };
    let free_frames = frames::init_frames(&reserved.free);
    mark(Phase::Frames);
    debug!(
        "frames: {free_frames} free; heap at {:#x}-{:#x}",
        reserved.heap.start.raw(),
        reserved.heap.end.raw()
    );
    if let Some(initrd) = info.dt.initrd {
        debug!("initrd at {:#x}-{:#x}", initrd.start.raw(), initrd.end.raw());
    }
    // Like every line of a normal boot, written without `core::fmt`
    // (`console::line` says why).
    console::log_line(log::Level::Info, |l| {
        l.dec(info.dt.memory.total() >> 20).text(" MiB RAM, ");
        l.dec((free_frames * PAGE_SIZE) >> 20).text(" MiB free, linear map ");
        Leaves(*linear_now, " ").write_to(l);
        l.text(" in ").dec(linear_now.tables).text(" table pages");
    });
    start_interrupts(info);
    state::set(Kernel {
        image,
        boot: info,
        linear: linear_counts,
        console: started.0,
        reserved,
    });
    debug!(
        "switching to the kernel stack at {:#x} (exceptions stay on the boot stack)",
        stack::STACK.start
    );
    stack::switch_to_kernel_stack(run_shell)
}

extern "C" fn run_shell() -> ! {
    let kernel = state::get();
    crate::boot::smp::start_secondaries(
        || kernel.boot.cpus(),
        kernel.boot.dt.cpus.dropped(),
        kernel.boot.args.maxcpus,
        serve_mailbox,
    );
    mark(Phase::Shell);
    console::end_boot_log();
    // Modules load only from the shell: what they need to know of it and
    // what the kernel needs to know of them is settled now.
    crate::module::abi::reserve_names(crate::module::abi::ReservedNames {
        command: crate::shell::parse::is_builtin,
        test: crate::shell::selftest::is_kernel_test,
    });
    crate::debug::backtrace::name_modules_with(crate::module::loaded::symbolize);
    let (kaslr, moved) = relocate::get();
    crate::shell::commands::run(crate::shell::context::Context {
        kernel: state::get(),
        kaslr,
        moved,
    })
}

/// Where each secondary goes once it is up: it runs the command lines `on`
/// posts to it, as the shell would, until the machine stops.
extern "C" fn serve_mailbox(cpu: u64, _: u64, _: u64) -> ! {
    let (kaslr, moved) = relocate::get();
    let cx = crate::shell::context::Context {
        kernel: state::get(),
        kaslr,
        moved,
    };
    crate::arch::smp::serve(cpu as usize, |line| crate::shell::commands::execute(&cx, line))
}

/// What the exception handler, which sits below every other layer, borrows
/// from above: as functions of the image where it runs now (so again after
/// a KASLR move).
fn lend_to_lower_layers() {
    exceptions::lend(exceptions::Hooks {
        backtrace: crate::debug::backtrace::print,
        take_console: console::force_unlock,
    });
}

/// Sets RAM aside for the kernel in [`RESERVED`], built in place: also
/// the UEFI memory map (`efi_map`) and the regions the firmware keeps
/// (`kept`).
fn reserve(
    info: &BootInfo<'_>,
    image: PhysRange,
    efi_map: Option<PhysRange>,
    kept: &RangeList,
) -> &'static reserve::Reserved {
    RESERVED.fill(|reserved| {
        reserve::reserve_efi(reserved, &info.dt, image, info.dtb, HEAP_SIZE, efi_map, kept)
            .unwrap_or_else(|e| panic!("cannot set RAM aside for the kernel: {e}"))
    })
}

/// [`reserve`] under UEFI: what the firmware keeps (runtime services,
/// reserved, ACPI) never reaches the frame allocator, nor does the map
/// itself. Out of line and cold: inlined, a boot without UEFI ran (and QEMU
/// translated) its plumbing, a kilobyte's `Option<RangeList>` moved.
#[cold]
#[inline(never)]
fn reserve_under_uefi(
    info: &BootInfo<'_>,
    image: PhysRange,
    efi: &crate::boot::efi::EfiHandover<'_>,
) -> &'static reserve::Reserved {
    let Some(map) = crate::boot::efi::map_bytes(efi, &info.dt.memory) else {
        return reserve(info, image, None, &const { RangeList::new() });
    };
    let kept = crate::boot::efi::kept_ranges(map, efi.desc_size).unwrap_or_else(|_| {
        panic!("cannot set RAM aside for the kernel: the UEFI memory map has too many kept regions")
    });
    reserve(info, image, efi.map_range(), &kept)
}

/// Why the tree names no PL011 console. Out of line and cold: a boot with
/// one tested one case, not four.
#[cold]
#[inline(never)]
fn no_named_console(info: &BootInfo<'_>) -> Fallback {
    match (info.dt.uart, info.dt.uart_node_found) {
        (Some(_), _) => Fallback::NotCompatible,
        (None, true) => Fallback::NoRegs,
        (None, false) if info.dt.uart_node.is_empty() => Fallback::NoStdoutPath,
        (None, false) => Fallback::NoSuchNode,
    }
}

/// The GIC and the watchdog over module calls, or why a boot has neither.
fn start_interrupts(info: &BootInfo<'_>) {
    let watchdog = info.args.module_watchdog_ms;
    match crate::boot::gic::start(&info.dt.interrupts, watchdog) {
        Ok(gic) => debug!(
            "interrupts: GICv{} at {:#x}, timer INTID {}, module watchdog {}",
            match gic.version {
                crate::boot::dtb::intc::GicVersion::V2 => 2,
                crate::boot::dtb::intc::GicVersion::V3 => 3,
            },
            gic.dist.pages.start.raw(),
            gic.timer,
            if watchdog == 0 {
                "off".into()
            } else {
                alloc::format!("{watchdog} ms")
            }
        ),
        // A machine may have none: not a problem of the tree, so not a warning.
        Err(why) => info!("no interrupts: {why}; module calls run without a watchdog"),
    }
}

/// Says, once there is a console, what boot made of its inputs: problems in
/// the command line and the tree, and where the image went.
fn report(info: &BootInfo<'_>, k: &Kaslr<'_>, fallback: Option<&Fallback>, image: PhysRange) {
    for issue in info.arg_issues() {
        warn!("{issue}");
    }
    if info.arg_issues_dropped() > 0 {
        warn!("{} more boot argument problems not shown", info.arg_issues_dropped());
    }
    if let Some(fallback) = fallback {
        warn!("{}", fallback.instead(info.board(), info.dt.uart_node));
    }
    // Without `core::fmt`, as the `[INFO ]` line in `after_move`.
    console::print_line(|l| {
        l.text("splitmap: image pa=").hex(image.start.raw());
        l.text(" va=").hex(sections::text().start);
        l.text(" kaslr=").hex(k.offset);
        l.text(" (").text(k.source().map_or("disabled", |s| s.name())).text(")");
    });
    if let Some(efi) = &info.dt.efi {
        crate::println!(
            "splitmap: efi placed the image at pa={:#x} ({}), --load-addr {:#x} replays it",
            image.start.raw(),
            efi.source,
            image.start.raw()
        );
        if let Some(seed) = efi.seed {
            info!("EFI placement seed {seed:#x}: efistub.seed={seed:#x} replays it under --uefi");
        }
    }
    report_kaslr_off(k);
    if let (Some(seed), Some(source)) = (k.seed, k.source())
        && source != crate::kaslr::seed::SeedSource::Bootarg
    {
        info!(
            "KASLR seed {seed:#x} from {}: --kaslr-seed {seed:#x} replays this placement",
            source.name()
        );
    }
    // Filled from the first slot on: stop at the first empty one, which
    // is the first slot in most boots.
    for problem in info.dt.problems.iter().map_while(Option::as_ref) {
        warn!("{problem}; {}", problem.consequence());
    }
    if info.ram_cut {
        warn!(
            "RAM beyond this CPU's {}-bit physical address space ignored",
            cpu::pa_bits()
        );
    }
    if let Some(r) = info.initrd_outside_ram {
        warn!(
            "initrd at {:#x}-{:#x} is outside RAM; ignored",
            r.start.raw(),
            r.end.raw()
        );
    }
    if info.dt.kaslr_seed.is_some() && !info.dtb_in_ram() {
        warn!(
            "the device tree at {:#x} is outside RAM: /chosen/kaslr-seed could not be zeroed",
            info.dtb.start.raw()
        );
    }
    if info.dt.psci.is_some() && psci::version().is_none() {
        warn!(
            "PSCI does not answer over {} (nothing behind the conduit the device tree names): poweroff will halt instead",
            psci::name()
        );
    }
    if info.boot_regs != 0 {
        warn!(
            "boot protocol: x1-x3 should be zero at entry (x1|x2|x3 = {:#x})",
            info.boot_regs
        );
    }
}

fn report_kaslr_off(k: &Kaslr<'_>) {
    match k.placement {
        Placement::NoSeed => warn!("KASLR off: no seed (kaslr.seed=, /chosen/kaslr-seed or RNDR)"),
        Placement::BadWindow(e) => error!("{e}; KASLR off"),
        Placement::NoKaslr(Some(e)) => warn!("{e}; ignored (nokaslr)"),
        Placement::NoKaslr(None) | Placement::Random(_) => {}
    }
}

/// Tells the address types where the image is: `[_text, _end)` at `image_pa`.
fn record_image(image_pa: PhysAddr) -> PhysRange {
    let image = sections::image();
    addr::set_kimage(
        image_pa,
        image_pa.add(image.size()),
        image.start.wrapping_sub(image_pa.raw()),
    );
    PhysRange {
        start: image_pa,
        end: image_pa.add(image.size()),
    }
}

/// Notes the end of `phase` with the instructions retired so far and the
/// time. Never inlined: one copy of the register reads for all seven marks
/// keeps what measuring adds to the code QEMU translates small.
#[inline(never)]
fn mark(phase: Phase) {
    cost::mark(phase, pmu::boot_clock(), counter::now());
}

/// A device tree the kernel cannot read: say why on the early console, stop.
fn unusable_device_tree(dtb_pa: u64, e: DtbError) -> ! {
    let _ = console::bringup::start(Err(Fallback::NoStdoutPath), &RangeList::new());
    panic!("the device tree at {dtb_pa:#x} is unusable: {e}")
}

/// Maps the DTB read-only in its window at `FIXMAP_DTB` (the early code
/// leaves it to the kernel: see kernel/pi/src/boot.rs), from the page that
/// holds `dtb_pa` through the one that holds its `len`th byte, so that the
/// device tree can be read before the linear map exists. Nothing to map
/// without a DTB (`len` 0), which `tree::read` then refuses.
fn map_dtb(dtb_pa: u64, len: u64) {
    if len == 0 {
        return;
    }
    let base = dtb_pa & !(PAGE_SIZE - 1);
    let end = (dtb_pa + len).next_multiple_of(PAGE_SIZE);
    let window = const { pi::kmap::fixed("dtb") };
    if let Err(e) = tables::map_fixed(window, PhysAddr::new(base), end - base) {
        panic!("cannot map the device tree at {dtb_pa:#x}: {e:?}");
    }
}

/// Builds the linear map of all RAM for `phys_offset`.
fn map_linear(ram: &RangeList, phys_offset: PhysAddr) -> pgtable::MapCounts {
    addr::set_phys_offset(phys_offset);
    tables::build_linear(ram, phys_offset).unwrap_or_else(|e| match e {
        LinearError::Map(MapError::OutOfTables) => panic!(
            "the linear map of these RAM ranges needs more page-table pages than the image's pool holds ({}): {} ranges, and each that starts or ends off a block boundary needs tables of its own",
            sections::pool().size() / PAGE_SIZE,
            ram.len()
        ),
        e => panic!("linear map: {e:?}"),
    })
}
