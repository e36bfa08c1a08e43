//! The in-kernel test suite (`test [FILTER]`): claims about the live machine,
//! each checked against the page tables the MMU uses or against memory itself.

use pi::addr::PhysAddr;
use pi::layout::{
    FIXMAP_DTB, KERNEL_STACK_SIZE, KIMAGE_VADDR, LINEAR_END, MMIO_BASE, MMIO_END, PAGE_OFFSET, PAGE_SIZE,
};
use pi::pgtable::{self, Translation};

use super::context::Context;
use super::report::{TestFailure, TestResult, check, run_ktap, skip};
use crate::arch::esr::Syndrome;
use crate::arch::{cpu, exceptions, peek, sections};
use crate::boot::reserve::frames_below;
use crate::console::Console;
use crate::mm::tables;
use crate::mm::{frames, linear, rodata};
use crate::module::{abi, insmod};

type Test = fn(&Context) -> TestResult;

const TESTS: &[(&str, Test)] = &[
    (
        "text_va_is_link_address_plus_kaslr_offset",
        text_va_is_link_address_plus_kaslr_offset,
    ),
    ("image_maps_to_its_load_address", image_maps_to_its_load_address),
    (
        "link_address_is_unmapped_after_a_move",
        link_address_is_unmapped_after_a_move,
    ),
    (
        "relocated_pointers_point_into_the_running_image",
        relocated_pointers_point_into_the_running_image,
    ),
    ("linear_map_reaches_every_ram_range", linear_map_reaches_every_ram_range),
    ("linear_map_is_never_executable", linear_map_is_never_executable),
    ("frame_below_image_is_usable", frame_below_image_is_usable),
    (
        "frames_past_those_above_the_image_come_from_below",
        frames_past_those_above_the_image_come_from_below,
    ),
    ("text_is_not_writable", text_is_not_writable),
    ("rodata_is_read_only", rodata_is_read_only),
    ("data_is_not_executable", data_is_not_executable),
    ("dtb_window_is_read_only", dtb_window_is_read_only),
    ("linear_map_uses_minimum_tables", linear_map_uses_minimum_tables),
    ("ttbr0_is_disabled", ttbr0_is_disabled),
    ("wxn_is_on", wxn_is_on),
    (
        "image_alias_is_read_only_exactly_with_rodata_full",
        image_alias_is_read_only_exactly_with_rodata_full,
    ),
    (
        "kernel_stack_sits_above_an_unmapped_guard",
        kernel_stack_sits_above_an_unmapped_guard,
    ),
    ("tables_outgrow_the_image_pool", tables_outgrow_the_image_pool),
    ("exception_entry_keeps_sp_aligned", exception_entry_keeps_sp_aligned),
    (
        "system_registers_hold_what_boot_wrote",
        system_registers_hold_what_boot_wrote,
    ),
    ("mmio_is_device_memory", mmio_is_device_memory),
    ("zeroing_pages_clears_every_byte", zeroing_pages_clears_every_byte),
    ("timer_tick_arrives", timer_tick_arrives),
    (
        "efi_kept_regions_never_reach_the_frame_allocator",
        efi_kept_regions_never_reach_the_frame_allocator,
    ),
    ("watchdog_never_ends_kernel_code", watchdog_never_ends_kernel_code),
    (
        "watchdog_ends_kernel_code_after_its_grace",
        watchdog_ends_kernel_code_after_its_grace,
    ),
    (
        "smp_counter_sees_every_cpus_increments",
        super::smptest::smp_counter_sees_every_cpus_increments,
    ),
    (
        "smp_every_cpu_walks_to_the_same_pa",
        super::smptest::smp_every_cpu_walks_to_the_same_pa,
    ),
    (
        "smp_each_cpu_runs_on_its_own_stack",
        super::smptest::smp_each_cpu_runs_on_its_own_stack,
    ),
    (
        "smp_an_unmap_is_seen_by_every_cpu",
        super::smptest::smp_an_unmap_is_seen_by_every_cpu,
    ),
];

/// Whether the kernel has a test called `name` (modules cannot take it).
pub fn is_kernel_test(name: &str) -> bool {
    TESTS.iter().any(|(n, _)| *n == name)
}

/// A test in the suite: the kernel's own, or one a module registered.
#[derive(Clone, Copy)]
enum Entry {
    Kernel(Test),
    Module { owner: u64, test: extern "C" fn() -> i32 },
}

/// Runs the suite, module tests last (or the tests whose names contain
/// `filter`); returns failures.
pub fn run(cx: &Context, filter: Option<&str>) -> usize {
    let from_modules = abi::tests();
    let entries: alloc::vec::Vec<(&str, Entry)> = TESTS
        .iter()
        .map(|&(name, test)| (name, Entry::Kernel(test)))
        .chain(from_modules.iter().map(|(name, owner, test)| {
            (
                name.as_str(),
                Entry::Module {
                    owner: *owner,
                    test: *test,
                },
            )
        }))
        .collect();
    run_ktap(&mut Console, &entries, filter, |entry| match *entry {
        Entry::Kernel(test) => test(cx),
        Entry::Module { owner, test } => {
            // A fault was contained and reported by `call`; the suite goes on.
            // SAFETY: a registered test, `extern "C" fn() -> i32` of module
            // `owner`, which stays mapped while registered.
            match unsafe { insmod::call(owner, test as usize as u64, [0, 0]) }.map(|x0| x0 as i32) {
                Ok(code) => check(code == 0, "the module's test returned non-zero", code as u64),
                Err(e) => check(false, "the module's test faulted or was not entered", e.at()),
            }
        }
    })
    .unwrap_or(0)
}

fn fail(message: &'static str, value: u64) -> TestFailure {
    TestFailure {
        message,
        value,
        skipped: false,
    }
}

fn translate(va: u64) -> Option<Translation> {
    tables::walk(va).translation
}

fn text() -> u64 {
    sections::text().start
}

fn text_va_is_link_address_plus_kaslr_offset(cx: &Context) -> TestResult {
    // Linked at KIMAGE_VADDR; wherever it was loaded, it runs there plus the
    // KASLR offset (zero with nokaslr).
    let expected = KIMAGE_VADDR + cx.kaslr.offset;
    check(text() == expected, "_text is not at KIMAGE_VADDR + offset", text())?;
    let here = text_va_is_link_address_plus_kaslr_offset as *const () as u64;
    check(
        here >= text() && here < sections::text().end,
        "running code is outside the image text",
        here,
    )
}

fn image_maps_to_its_load_address(cx: &Context) -> TestResult {
    let image = cx.kernel.image;
    let t = translate(text()).ok_or(fail("the image's text is unmapped", text()))?;
    check(t.pa == image.start, "text does not map to the load address", t.pa.raw())
}

fn link_address_is_unmapped_after_a_move(cx: &Context) -> TestResult {
    if cx.kaslr.offset == 0 {
        return skip("KASLR is off: the image is at its link address");
    }
    check(
        translate(KIMAGE_VADDR).is_none(),
        "the link address still maps the image",
        KIMAGE_VADDR,
    )
}

fn relocated_pointers_point_into_the_running_image(_: &Context) -> TestResult {
    // TESTS holds function pointers: link-time addresses the move relocated.
    let text_end = sections::text().end;
    for (_, test) in TESTS {
        let f = *test as usize as u64;
        check(
            f >= text() && f < text_end,
            "a function pointer in data points outside the running text",
            f,
        )?;
    }
    Ok(())
}

/// Reads a word through the linear map with a volatile load.
fn read_linear(pa: PhysAddr) -> u64 {
    // SAFETY: `pa` is in a /memory range, so the linear map covers it (checked
    // by the caller through a walk first); reading RAM has no side effects.
    unsafe { pa.to_linear().as_ptr::<u64>().read_volatile() }
}

fn linear_map_reaches_every_ram_range(cx: &Context) -> TestResult {
    for r in cx.kernel.boot.dt.memory.iter() {
        let r = r.shrink_to_pages(PAGE_SIZE);
        for pa in [r.start, PhysAddr::new(r.end.raw() - PAGE_SIZE)] {
            let va = pa.to_linear().raw();
            let t = translate(va).ok_or(fail("RAM page not in the linear map", pa.raw()))?;
            check(t.pa == pa, "linear map translates to the wrong PA", t.pa.raw())?;
            let _ = read_linear(pa);
        }
    }
    // The image is reachable through both mappings, and they show the same bytes.
    let image_pa = cx.kernel.image.start;
    // SAFETY: `_text` is the image header, mapped readable.
    let via_image = unsafe { (text() as *const u64).read_volatile() };
    check(
        read_linear(image_pa) == via_image,
        "image and its linear alias differ",
        image_pa.raw(),
    )
}

fn linear_map_is_never_executable(cx: &Context) -> TestResult {
    // The linear map holds RAM's whole pages: a range that starts or ends
    // off a page boundary is mapped from its first whole page.
    for r in cx
        .kernel
        .boot
        .dt
        .memory
        .iter()
        .map(|r| r.shrink_to_pages(PAGE_SIZE))
        .filter(|r| r.size() > 0)
    {
        let t = translate(r.start.to_linear().raw()).ok_or(fail("unmapped", r.start.raw()))?;
        check(!t.prot.exec, "linear map is executable", r.start.raw())?;
    }
    Ok(())
}

fn frame_below_image_is_usable(cx: &Context) -> TestResult {
    let image = cx.kernel.image.start;
    // Free frames below the image, highest first (closest to the image).
    let below = cx.kernel.reserved.free.iter().rev().flat_map(|r| {
        let r = r.shrink_to_pages(PAGE_SIZE);
        let end = r.end.min(image);
        (0..end.raw().saturating_sub(r.start.raw()) / PAGE_SIZE)
            .map(move |i| PhysAddr::new(end.raw() - (i + 1) * PAGE_SIZE))
    });
    let at_boot = frames_below(&cx.kernel.reserved.free, image);
    if at_boot == 0 {
        return skip("the image sits at the bottom of RAM: nothing below it");
    }
    // Boot itself takes frames once the allocator has them: the kernel stack
    // and page tables past the image's pool. With the image near the bottom
    // of RAM those may be all the frames below it; any more must be free.
    let taken_by_boot = KERNEL_STACK_SIZE / PAGE_SIZE + tables::usage().from_frames;
    // The allocator must hand out a frame there when asked for it.
    let Some(pa) = below
        .take((taken_by_boot + 64) as usize)
        .find_map(frames::alloc_frame_at)
    else {
        if at_boot <= taken_by_boot {
            return skip("boot's own frames (kernel stack, page tables) took every frame below the image");
        }
        return Err(fail("allocator refused every frame below the image", image.raw()));
    };
    let p = pa.to_linear().as_ptr::<u64>();
    let pattern = 0x5a5a_0000_0000_0000 | pa.raw();
    // SAFETY: the frame is ours (just allocated) and linear-mapped rw.
    let back = unsafe {
        p.write_volatile(pattern);
        p.read_volatile()
    };
    frames::free_frame(pa);
    check(back == pattern, "frame below the image did not read back", pa.raw())
}

/// With the image near the top of RAM: take one frame more than lie above
/// it; by counting, at least one must come from below.
fn frames_past_those_above_the_image_come_from_below(cx: &Context) -> TestResult {
    const MAX_ABOVE: u64 = 16 * 1024;
    let image = cx.kernel.image;
    let free = &cx.kernel.reserved.free;
    let above: u64 = free
        .iter()
        .map(|r| r.shrink_to_pages(PAGE_SIZE))
        .filter(|r| r.start >= image.end)
        .map(|r| r.size() / PAGE_SIZE)
        .sum();
    if above > MAX_ABOVE {
        return skip("the image is not near the top of RAM");
    }
    if frames_below(free, image.start) == 0 {
        return skip("nothing below the image");
    }
    let mut taken = alloc::vec::Vec::new();
    for _ in 0..=above {
        match frames::alloc_frame() {
            Some(pa) => taken.push(pa),
            None => break,
        }
    }
    let below = taken.iter().filter(|&&pa| pa < image.start).count() as u64;
    let got = taken.len() as u64;
    taken.into_iter().for_each(frames::free_frame);
    check(got == above + 1, "the allocator ran dry", got)?;
    check(below >= 1, "no frame came from below the image", below)
}

fn text_is_not_writable(_: &Context) -> TestResult {
    let t = translate(text()).ok_or(fail("text unmapped", text()))?;
    check(!t.prot.write && t.prot.exec, "text is not r-x", text())
}

fn rodata_is_read_only(_: &Context) -> TestResult {
    let va = sections::text().end;
    let t = translate(va).ok_or(fail("rodata unmapped", va))?;
    check(!t.prot.write && !t.prot.exec, "rodata is not r--", va)
}

fn data_is_not_executable(_: &Context) -> TestResult {
    let va = sections::rodata().end;
    let t = translate(va).ok_or(fail("data unmapped", va))?;
    check(t.prot.write && !t.prot.exec, "data is not rw-", va)
}

fn dtb_window_is_read_only(_: &Context) -> TestResult {
    let t = translate(FIXMAP_DTB).ok_or(fail("DTB window unmapped", FIXMAP_DTB))?;
    check(!t.prot.write && !t.prot.exec, "DTB window is not r--", FIXMAP_DTB)
}

fn linear_map_uses_minimum_tables(cx: &Context) -> TestResult {
    let k = cx.kernel;
    let minimum = linear::minimum_tables(&k.boot.dt.memory, pi::addr::phys_offset());
    check(
        k.linear.tables == minimum,
        "linear map used more table pages than the minimum",
        k.linear.tables,
    )
}

fn ttbr0_is_disabled(_: &Context) -> TestResult {
    check(cpu::ttbr0_disabled(), "TCR_EL1.EPD0 is clear: TTBR0 still walks", 0)
}

fn kernel_stack_sits_above_an_unmapped_guard(_: &Context) -> TestResult {
    // This CPU's slot: CPU 0's is `stack`/`guard`, another's `stack.N`/`guard.N`.
    let slot = pi::kmap::stack_slot(crate::arch::percpu::id());
    let ((guard_start, guard_end), (stack_start, stack_end)) = (slot.guard, slot.stack);
    let sp: u64;
    // SAFETY: reads the stack pointer, nothing else.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    check(
        (stack_start..stack_end).contains(&sp),
        "not running on the kernel stack",
        sp,
    )?;
    check(
        translate(guard_end - PAGE_SIZE).is_none() && translate(guard_start).is_none(),
        "the guard is mapped",
        guard_start,
    )?;
    let t = translate(stack_start).ok_or(fail("the stack is unmapped", stack_start))?;
    check(t.prot.as_str() == "rw-", "the stack is not rw-", stack_start)
}

/// Hardware faults a load or store through a misaligned SP (SCTLR_EL1.SA);
/// TCG does not. So the kernel checks what TCG lets slide: an exception
/// taken from the kernel stack (EL1t, vector 0) and one taken on the
/// handler's own stack (EL1h, vector 4, as a fault inside the handler would
/// be) each enter with SP 16-byte aligned, at the boot stack's top. (The
/// stub itself stops on a misaligned SP before recording anything; this
/// checks the SP it was given.)
fn exception_entry_keeps_sp_aligned(_: &Context) -> TestResult {
    // CPU 0 takes exceptions on the boot stack; another CPU on the one
    // boot gave it (its record's first SP).
    let top = match crate::arch::percpu::id() {
        0 => sections::boot_stack().end,
        n => crate::arch::smp::RECORDS[n]
            .sp
            .load(core::sync::atomic::Ordering::SeqCst),
    };
    type Probe = fn(u64) -> Result<u64, Syndrome>;
    let probes: [(usize, Probe); 2] = [(0, peek::peek64), (4, peek::peek_on_sp_el1)];
    for (vector, probe) in probes {
        let _ = exceptions::take_entry_sp(vector);
        // Nothing is mapped at 0 (TTBR0 walks nothing): a data abort.
        check(probe(0).is_err(), "a load from 0 did not fault", vector as u64)?;
        let sp = exceptions::take_entry_sp(vector);
        check(
            sp != 0,
            "the fault did not come through the expected vector",
            vector as u64,
        )?;
        check(
            sp.is_multiple_of(16),
            "an exception entered with SP not 16-byte aligned",
            sp,
        )?;
        // With no exception in progress SP_EL1 rests at the boot stack's
        // top (16-byte aligned by the linker script): any other value is a
        // frame a return path left behind.
        check(
            sp == top,
            "an exception entered with SP_EL1 away from the boot stack's top",
            sp,
        )?;
    }
    Ok(())
}

fn image_alias_is_read_only_exactly_with_rodata_full(cx: &Context) -> TestResult {
    let full = cx.kernel.boot.args.rodata_full;
    let (start, end) = rodata::protected_range();
    for pa in [start, PhysAddr::new(end.raw() - PAGE_SIZE)] {
        let t = translate(pa.to_linear().raw()).ok_or(fail("image alias unmapped", pa.raw()))?;
        check(
            t.prot.write != full,
            "alias protection does not match rodata=",
            pa.raw(),
        )?;
        check(!t.prot.exec, "the alias is executable", pa.raw())?;
    }
    // Just outside the protected range the linear map is ordinary data.
    let after = translate(end.to_linear().raw()).ok_or(fail("data alias unmapped", end.raw()))?;
    check(after.prot.write, "the alias of data is read-only", end.raw())
}

fn wxn_is_on(_: &Context) -> TestResult {
    use aarch64_cpu::registers::{Readable, SCTLR_EL1};
    // SCTLR_EL1.WXN: the MMU itself treats any writable page as never executable.
    check(
        SCTLR_EL1.get() & (1 << 19) != 0,
        "SCTLR_EL1.WXN is clear",
        SCTLR_EL1.get(),
    )
}

/// Maps one page into each of enough empty GiB of the linear area (past the
/// end of RAM, or before its start when `kaslr.linear=on` put RAM at the top)
/// that the image's table pool must run out, then unmaps them: the tables
/// past the pool come from frames, and the mappings work. The table pages
/// stay behind (`mm/tables.rs` never frees one), so the first `test` leaves
/// the pool full and some frames fewer in `mem`; a run after that maps one
/// page through the tables it left, and can only show that they work.
fn tables_outgrow_the_image_pool(cx: &Context) -> TestResult {
    const GIB: u64 = 1 << 30;
    let usage = tables::usage;
    let before = usage();
    // An empty GiB needs at least a level-3 table of its own.
    let count = before.pool_size - before.pool_used + 1;
    let ram = &cx.kernel.boot.dt.memory;
    let (Some(lowest), Some(highest)) = (ram.iter().map(|r| r.start).min(), ram.iter().map(|r| r.end).max()) else {
        return skip("no RAM ranges");
    };
    let ram_start = lowest.to_linear().raw() / GIB * GIB;
    let ram_end = PhysAddr::new(highest.raw() - PAGE_SIZE)
        .to_linear()
        .raw()
        .next_multiple_of(GIB);
    let first = if LINEAR_END - ram_end >= count * GIB {
        ram_end
    } else if ram_start - PAGE_OFFSET >= count * GIB {
        ram_start - count * GIB
    } else {
        return skip("no empty GiB in the linear area");
    };
    let vas = (0..count).map(|i| first + i * GIB);

    let frame = frames::alloc_frame().ok_or(fail("no free frame", 0))?;
    let pattern = 0x7ab1_e000_0000_0000 | frame.raw();
    // SAFETY: the frame is ours (just allocated) and linear-mapped rw.
    unsafe { frame.to_linear().as_ptr::<u64>().write_volatile(pattern) };
    let mut mapped = 0;
    let mut result = Ok(());
    for va in vas.clone() {
        if tables::map(
            va,
            frame,
            PAGE_SIZE,
            pgtable::Attrs::DATA,
            pgtable::Granularity::PagesOnly,
        )
        .is_err()
        {
            result = Err(fail("could not map a page: no table page left", va));
            break;
        }
        mapped += 1;
    }
    for va in vas.clone().take(mapped) {
        // SAFETY: `va` was just mapped rw to `frame`, which holds `pattern`.
        let back = unsafe { (va as *const u64).read_volatile() };
        if result.is_ok() && back != pattern {
            result = Err(fail("a page mapped with a frame table reads wrong", va));
        }
    }
    let after = usage();
    for va in vas.clone().take(mapped) {
        let _ = tables::unmap(va, PAGE_SIZE);
    }
    frames::free_frame(frame);
    result?;
    check(
        after.pool_used == after.pool_size,
        "the pool did not run out",
        after.pool_used,
    )?;
    let pool_was_full = before.pool_used == before.pool_size;
    check(
        after.from_frames > before.from_frames || pool_was_full,
        "no new table came from frames",
        after.from_frames,
    )?;
    check(
        vas.clone().all(|va| translate(va).is_none()),
        "a test page is still mapped",
        first,
    )
}

/// TCG uses MAIR_EL1, SCTLR_EL1 and TCR_EL1 only as far as it emulates them,
/// and drops nothing a 32-bit `movz`/`movk` pair failed to load; a real CPU
/// runs on every bit. So read them back and compare with what pi meant to
/// write (its constants, an independent source: the assembly only loads
/// them), and TCR_EL1.IPS with what the ID register allows, capped at 48
/// bits (`pi::boot::IPS_MAX`).
fn system_registers_hold_what_boot_wrote(_: &Context) -> TestResult {
    use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL1, Readable, SCTLR_EL1, TCR_EL1};
    let mair = MAIR_EL1.get();
    check(mair == pgtable::MAIR_VALUE, "MAIR_EL1 is not pi's MAIR_VALUE", mair)?;

    // M, A, C, SA, I, WXN, E0E, EE: MMU and caches on, SP alignment checked,
    // writable never executable, no alignment faults, little-endian.
    const SCTLR_CHECKED: u64 =
        (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19) | (1 << 24) | (1 << 25);
    let sctlr = SCTLR_EL1.get();
    check(
        sctlr & SCTLR_CHECKED == pi::boot::SCTLR_MMU_ON & SCTLR_CHECKED,
        "SCTLR_EL1's M|A|C|SA|I|WXN|E0E|EE differ from pi's SCTLR_MMU_ON",
        sctlr,
    )?;

    let tcr = TCR_EL1.get();
    let ips_field = 0b111 << pi::boot::TCR_IPS_SHIFT;
    let ips = (tcr & ips_field) >> pi::boot::TCR_IPS_SHIFT;
    let parange = ID_AA64MMFR0_EL1.get() & 0xf;
    check(ips <= 0b101, "TCR_EL1.IPS is wider than 48 bits", ips)?;
    check(
        ips == parange.min(pi::boot::IPS_MAX),
        "TCR_EL1.IPS is not min(ID_AA64MMFR0_EL1.PARange, 48 bits)",
        ips,
    )?;
    // Everything else is pi's TCR_VALUE, with EPD0 set since TTBR0 was left.
    check(
        tcr & !ips_field & !pi::boot::TCR_EPD0 == pi::boot::TCR_VALUE,
        "TCR_EL1 is not pi's TCR_VALUE (IPS and EPD0 aside)",
        tcr,
    )
}

/// `cpu::zero_pages` (`dc zva`: how `insmod` zeroes a module's frames)
/// clears every byte of dirty frames, and not one past them.
fn zeroing_pages_clears_every_byte(_: &Context) -> TestResult {
    let Some(pa) = frames::alloc_frames(3) else {
        return Err(fail("no 3 contiguous free frames", 3));
    };
    let (p, page) = (pa.to_linear().as_ptr::<u8>(), PAGE_SIZE as usize);
    // SAFETY: the frames are ours (just allocated), linear-mapped rw as
    // Normal memory; the third only written with the pattern and read.
    let bytes = unsafe {
        core::ptr::write_bytes(p, 0xa5, 3 * page);
        cpu::zero_pages(p, 2 * page);
        core::slice::from_raw_parts(p, 3 * page)
    };
    let dirty = bytes[..2 * page].iter().position(|&b| b != 0);
    let spilled = bytes[2 * page..].iter().position(|&b| b != 0xa5);
    frames::free_frames_at(pa, 3);
    check(
        dirty.is_none(),
        "a byte was not zeroed (offset)",
        dirty.unwrap_or(0) as u64,
    )?;
    check(
        spilled.is_none(),
        "a byte past the pages was zeroed (offset)",
        spilled.unwrap_or(0) as u64,
    )
}

/// Device registers must be Device memory and never executable: a real CPU
/// may read Normal memory speculatively, merge and reorder accesses to it,
/// and fetch instructions from anything executable, and a device register
/// read can have side effects; TCG does none of that, so a wrong attribute
/// would pass unseen. Every leaf in the MMIO window is checked from its raw
/// descriptor bits (not `Entry::decode`'s reading of them), its memory type
/// through MAIR_EL1 as the MMU reads it; and the console's page maps to the
/// registers the device tree named.
fn mmio_is_device_memory(cx: &Context) -> TestResult {
    use aarch64_cpu::registers::{MAIR_EL1, Readable};
    // MAIR_EL1 encodings (ARM ARM D19, MAIR_ELx.Attr<n>).
    const DEVICE_NGNRE: u64 = 0x04;
    const PXN: u64 = 1 << 53;
    const UXN: u64 = 1 << 54;
    let console = cx.kernel.console;
    check(
        (MMIO_BASE..MMIO_END).contains(&console.va),
        "the console is not in the MMIO window",
        console.va,
    )?;
    let t = translate(console.va).ok_or(fail("the console's registers are unmapped", console.va))?;
    check(
        t.pa == console.regs.start,
        "the console's VA maps to the wrong PA",
        t.pa.raw(),
    )?;

    let mair = MAIR_EL1.get();
    let mut leaves = 0u64;
    let mut bad: Option<(&'static str, u64)> = None;
    tables::locked(|tables, root| {
        pgtable::visit(tables, root, MMIO_BASE, MMIO_END - MMIO_BASE, &mut |v| {
            let pgtable::Visited::Leaf { raw, va, .. } = v else {
                return;
            };
            leaves += 1;
            let attr = (mair >> (8 * ((raw >> 2) & 7))) & 0xff;
            if attr != DEVICE_NGNRE {
                bad = bad.or(Some(("an MMIO page is not Device-nGnRE", va)));
            }
            if raw & (PXN | UXN) != PXN | UXN {
                bad = bad.or(Some(("an MMIO page is executable (PXN or UXN clear)", va)));
            }
        })
    });
    check(leaves >= 1, "nothing is mapped in the MMIO window", leaves)?;
    match bad {
        Some((message, va)) => Err(fail(message, va)),
        None => Ok(()),
    }
}

/// The GIC and the timer deliver an interrupt: armed 1 ms ahead with IRQs
/// unmasked, a tick is counted well within a second (by the virtual count,
/// not by a loop of guessed length), and IRQs are masked again after. The
/// watchdog over module calls rests on exactly this.
fn timer_tick_arrives(_: &Context) -> TestResult {
    use crate::arch::irq;
    if !irq::ready() {
        return skip("this CPU takes no interrupts: `irqs` says why");
    }
    let before = irq::timer_count();
    check(
        irq::tick_within(1000, 1000),
        "no timer interrupt within a second",
        before,
    )?;
    check(irq::timer_count() > before, "the timer's count did not grow", before)?;
    let daif: u64;
    // SAFETY: reads PSTATE's interrupt masks.
    unsafe { core::arch::asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack)) };
    check(daif & (1 << 7) != 0, "IRQs left unmasked after the wait", daif)
}

/// Under UEFI: no frame of a region the firmware keeps (runtime services
/// code and data, reserved, ACPI, MMIO) is free — the allocator refuses each
/// one asked for by address. A frame that only partly overlaps such a region
/// counts too: handing it out would hand out the firmware's bytes with it.
fn efi_kept_regions_never_reach_the_frame_allocator(cx: &Context) -> TestResult {
    use crate::boot::efi;
    let k = cx.kernel;
    let Some(h) = k.boot.dt.efi.as_ref() else {
        return skip("not started by the EFI stub (--uefi)");
    };
    let map = efi::map_bytes(h, &k.boot.dt.memory).ok_or(fail("the UEFI memory map is not inside RAM", 0))?;
    let mut checked = 0u64;
    // The UEFI specification's types the OS must leave alone (not
    // `efi::kept`, which this checks): reserved, runtime services code and
    // data, unusable, ACPI reclaim and NVS, MMIO, MMIO ports, PAL code.
    let must_keep = |ty: u32| matches!(ty, 0 | 5 | 6 | 8..=13);
    for r in efi::regions(map, h.desc_size).filter(|r| must_keep(r.ty)) {
        let first = r.range.start.raw() / PAGE_SIZE;
        let end = r.range.end.raw().div_ceil(PAGE_SIZE);
        for frame in first..end {
            let pa = PhysAddr::new(frame * PAGE_SIZE);
            if !k.boot.dt.memory.iter().any(|ram| ram.start <= pa && pa < ram.end) {
                continue;
            }
            checked += 1;
            if let Some(pa) = frames::alloc_frame_at(pa) {
                frames::free_frame(pa);
                return Err(fail("a frame of a region the firmware keeps was free", pa.raw()));
            }
        }
    }
    check(checked > 0, "the map has no kept region inside RAM", 0)
}

/// The longest watchdog [`watchdog_never_ends_kernel_code`] waits out (it
/// waits two periods): longer ones skip it.
const KERNEL_CODE_WATCHDOG_MAX_MS: u64 = 250;

/// Held by [`run_kernel_code_past_the_watchdog`] when the watchdog expires.
static WATCHDOG_LOCK: crate::arch::lock::Mutex<()> = crate::arch::lock::Mutex::new(());

/// What [`run_kernel_code_past_the_watchdog`] returns when it was not ended.
const WATCHDOG_SURVIVED: u64 = 0x600d;

/// Waits (by the virtual count) until the timer's count passes `before`;
/// false if ten watchdog periods go by first.
fn tick_after(before: u64) -> bool {
    use crate::arch::{counter, irq};
    let give_up = counter::now() + counter::frequency() * irq::watchdog_ms() * 10 / 1000;
    while irq::timer_count() == before {
        if counter::now() > give_up {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Run as untrusted code: what an export at work for a module looks like to
/// the watchdog. Runs past the watchdog's period holding a kernel lock, then
/// past its next look without one; returns [`WATCHDOG_SURVIVED`] unless it
/// was ended (0 if no interrupt came).
extern "C" fn run_kernel_code_past_the_watchdog(_: u64, _: u64) -> u64 {
    use crate::arch::irq;
    let held = WATCHDOG_LOCK.lock();
    if !tick_after(irq::timer_count()) {
        return 0;
    }
    drop(held);
    if !tick_after(irq::timer_count()) {
        return 0;
    }
    WATCHDOG_SURVIVED
}

/// The watchdog never ends kernel code running for a module (an export):
/// neither with a kernel lock held (abandoning the holder's frame would
/// leave the lock held for good) nor without (its frame may hold heap
/// values), however long it runs; it looks again every 10 ms, and ends the
/// call only in the module's own code (tests/irqs.rs shows that part). Waits
/// two watchdog periods, so runs only with `module.watchdog=` at most
/// 250 ms (tests/irqs.rs runs it with 50).
fn watchdog_never_ends_kernel_code(_: &Context) -> TestResult {
    use crate::arch::recovery;
    use crate::arch::{irq, lock};
    if !irq::ready() {
        return skip("this CPU takes no interrupts: `irqs` says why");
    }
    if !(1..=KERNEL_CODE_WATCHDOG_MAX_MS).contains(&irq::watchdog_ms()) {
        return skip("waits two watchdog periods: runs with module.watchdog=1..250 only");
    }
    let before = irq::timer_count();
    let at = run_kernel_code_past_the_watchdog as *const () as u64;
    // SAFETY: a kernel function taking two integer arguments, which returns.
    let ran = unsafe { recovery::run_untrusted(at, at, [0, 0]) };
    check(lock::held() == 0, "a kernel lock is left held", lock::held() as u64)?;
    match ran {
        Ok(WATCHDOG_SURVIVED) => check(
            irq::timer_count() >= before + 2,
            "the watchdog did not look twice",
            irq::timer_count() - before,
        ),
        Ok(_) => Err(fail(
            "no timer interrupt came in ten watchdog periods",
            irq::watchdog_ms(),
        )),
        Err(fault) => Err(fail("the watchdog ended kernel code running for a module", fault.elr)),
    }
}

/// Run as untrusted code: kernel code that never returns (an export a
/// module keeps busy for good).
extern "C" fn spin_in_kernel_code(_: u64, _: u64) -> u64 {
    loop {
        core::hint::spin_loop();
    }
}

/// Kernel code running for a module is not ended by the watchdog for
/// `exceptions::KERNEL_CODE_GRACE_MS` past the deadline, and then it is: a
/// module that spends all its time in exports is still ended. Takes the
/// grace, so runs only with `module.watchdog=` at most 250 ms.
fn watchdog_ends_kernel_code_after_its_grace(_: &Context) -> TestResult {
    use crate::arch::exceptions::KERNEL_CODE_GRACE_MS;
    use crate::arch::recovery::{self, Kind};
    use crate::arch::{counter, irq};
    if !irq::ready() {
        return skip("this CPU takes no interrupts: `irqs` says why");
    }
    if !(1..=KERNEL_CODE_WATCHDOG_MAX_MS).contains(&irq::watchdog_ms()) {
        return skip("waits out the grace: runs with module.watchdog=1..250 only");
    }
    let start = counter::now();
    let at = spin_in_kernel_code as *const () as u64;
    // SAFETY: a kernel function taking two integer arguments; its frame,
    // abandoned when the watchdog ends it, holds nothing.
    let ran = unsafe { recovery::run_untrusted(at, at, [0, 0]) };
    let ms = (counter::now() - start) * 1000 / counter::frequency();
    let Err(fault) = ran else {
        return Err(fail("the endless call returned", 0));
    };
    check(
        matches!(fault.kind, Kind::Watchdog { .. }),
        "not ended by the watchdog",
        fault.elr,
    )?;
    check(
        ms >= irq::watchdog_ms() + KERNEL_CODE_GRACE_MS,
        "ended before the grace was over (ms)",
        ms,
    )
}
