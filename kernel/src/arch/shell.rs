//! The shell's commands, run against the live machine.

use pi::addr::PhysAddr;
use pi::layout::{FIXMAP_DTB, KIMAGE_VADDR, PAGE_OFFSET, PAGE_SIZE};
use pi::pgtable::{self, MapCounts};

use super::console::{self, Console};
use super::memory::{self, LiveTables, TABLES};
use super::{cpu, psci, selftest, state};
use crate::module::region;
use crate::report::{LayoutRow, write_walk};
use crate::shell::{COMMANDS, Command, Echo, LineEditor, parse};
use crate::{linear, println};

/// Prompt, at the start of a line.
const PROMPT: &str = "splitmap> ";

/// Reads lines and runs them, forever.
pub fn run() -> ! {
    let mut editor = LineEditor::new();
    crate::print!("{PROMPT}");
    loop {
        let Some(byte) = console::try_read() else {
            core::hint::spin_loop();
            continue;
        };
        match editor.feed(byte) {
            Echo::None => {}
            Echo::Byte(b) => console::put_bytes(&[b]),
            Echo::Erase => console::put_bytes(b"\x08 \x08"),
            Echo::Bell => console::put_bytes(b"\x07"),
            Echo::Enter => {
                println!();
                let line = editor.take_line();
                execute(line.as_str());
                crate::print!("{PROMPT}");
            }
        }
    }
}

fn execute(line: &str) {
    match parse(line) {
        Ok(Command::Empty) => {}
        Ok(Command::Help) => help(),
        Ok(Command::Layout) => layout(),
        Ok(Command::Walk(va)) => walk(va),
        Ok(Command::Mem) => mem(),
        Ok(Command::Bootargs) => bootargs(),
        Ok(Command::Kaslr) => kaslr(),
        Ok(Command::Modules) => modules(),
        Ok(Command::Insmod(name)) => match super::module::insmod(name) {
            Ok(line) => println!("{line}"),
            Err(e) => println!("error: insmod {e}"),
        },
        Ok(Command::Rmmod(name)) => match super::module::rmmod(name) {
            Ok(Some(note)) => println!("{note}"),
            Ok(None) => {}
            Err(e) => println!("error: rmmod {e}"),
        },
        Ok(Command::Lsmod) => super::module::lsmod().iter().for_each(|l| println!("{l}")),
        Ok(Command::Peek(va, width)) => match super::peek::peek(va, width) {
            Ok(value) => println!("{va:#x}: {value:#x} ({width}-bit)"),
            Err(reason) => println!("fault at {va:#x}: {reason}"),
        },
        Ok(Command::Test(filter)) => {
            selftest::run(filter);
        }
        Ok(Command::Poweroff) => {
            println!("splitmap: powering off");
            psci::system_off(state::get().dtb.psci)
        }
        Ok(Command::Crash(kind)) => super::crash::crash(kind),
        Err(crate::shell::ParseError::Unknown(word)) if super::exports::run_command(word, line) => {}
        Err(e) => println!("error: {e}"),
    }
}

fn help() {
    println!("commands:");
    for (name, args, what) in COMMANDS {
        let width = name.len() + if args.is_empty() { 0 } else { args.len() + 1 };
        crate::print!("  {name}");
        if !args.is_empty() {
            crate::print!(" {args}");
        }
        println!("{:pad$} {what}", "", pad = 20usize.saturating_sub(width));
    }
    for (name, module) in super::module::commands() {
        println!("  {name:<20} (from module {module})");
    }
    println!("numbers are hex with 0x, or decimal. Ctrl-A X leaves QEMU.");
}

unsafe extern "C" {
    static _text: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __bss_start: u8;
    static __pool_start: u8;
    static __pool_end: u8;
    static __boot_stack_start: u8;
    static __boot_stack_end: u8;
}

/// A region of the image: its rows' VA range.
fn image_regions() -> [(&'static str, u64, u64); 6] {
    let a = |p: *const u8| p as u64;
    [
        ("text", a(&raw const _text), a(&raw const __text_end)),
        ("rodata", a(&raw const __text_end), a(&raw const __rodata_end)),
        ("data", a(&raw const __rodata_end), a(&raw const __bss_start)),
        ("bss", a(&raw const __bss_start), a(&raw const __pool_start)),
        ("pgtables", a(&raw const __pool_start), a(&raw const __pool_end)),
        (
            "bootstack",
            a(&raw const __boot_stack_start),
            a(&raw const __boot_stack_end),
        ),
    ]
}

/// Permissions of the first page of `[va, …)` as the MMU sees them.
fn prot_at(va: u64) -> &'static str {
    match pgtable::walk(&LiveTables, cpu::ttbr1_root(), va).translation {
        Some(t) => t.prot.as_str(),
        None => "---",
    }
}

fn row(name: &str, va: u64, end: u64, pa: Option<(u64, u64)>) -> LayoutRow<'_> {
    let map: MapCounts = pgtable::count(&LiveTables, cpu::ttbr1_root(), va, end - va);
    LayoutRow {
        name,
        va: (va, end),
        pa,
        prot: prot_at(va),
        map,
    }
}

fn layout() {
    let k = state::get();
    let voffset = pi::addr::kimage_voffset();
    for (name, start, end) in image_regions() {
        println!("{}", row(name, start, end, Some((start - voffset, end - voffset))));
    }
    let offset = pi::addr::phys_offset();
    for r in k.dtb.memory.iter() {
        let r = r.shrink_to_pages(PAGE_SIZE);
        let va = linear::linear_va(r.start.raw(), offset);
        println!(
            "{}",
            row("linear", va, va + r.size(), Some((r.start.raw(), r.end.raw())))
        );
    }
    // The PLT window surrounds the image: count only what modules mapped.
    let placed = super::kaslr::get();
    let (plt, image) = (placed.modules.plt, placed.image);
    let count = |start: u64, end: u64| pgtable::count(&LiveTables, cpu::ttbr1_root(), start, end - start);
    let modules = LayoutRow {
        name: "modules",
        va: (plt.start, plt.end),
        pa: None,
        prot: prot_at(plt.start),
        map: count(plt.start, image.start) + count(image.end, plt.end),
    };
    println!("{modules}");
    let (guard_start, guard_end) = super::stack::guard();
    let (stack_start, stack_end) = super::stack::stack();
    println!("{}", row("guard", guard_start, guard_end, None));
    println!("{}", row("stack", stack_start, stack_end, None));
    if let Some(uart) = k.dtb.uart {
        let base = uart.regs.start.align_down(PAGE_SIZE).raw();
        let size = (uart.regs.end.raw() - base).next_multiple_of(PAGE_SIZE);
        let va = k.uart_va & !(PAGE_SIZE - 1);
        println!("{}", row("mmio", va, va + size, Some((base, base + size))));
    }
    let dtb_base = k.dtb_range.start.align_down(PAGE_SIZE).raw();
    let dtb_size = (k.dtb_range.end.raw() - dtb_base).next_multiple_of(PAGE_SIZE);
    println!(
        "{}",
        row(
            "dtb",
            FIXMAP_DTB,
            FIXMAP_DTB + dtb_size,
            Some((dtb_base, dtb_base + dtb_size))
        )
    );
    let tables = TABLES.lock().as_ref().expect("tables set up at boot").usage();
    println!(
        "# linear map: {} table pages (minimum for this RAM: {}); table pool: {}/{} pages used, {} more tables from frames; text at KIMAGE_VADDR={KIMAGE_VADDR:#x} + kaslr {:#x}",
        k.linear.tables,
        linear::minimum_tables(&k.dtb.memory, offset),
        tables.pool_used,
        tables.pool_size,
        tables.from_frames,
        super::kaslr::get().offset
    );
    match super::rodata::split_cost() {
        Some(c) => println!(
            "# rodata=full: the linear alias of text+rodata is r--; the split cost {} table pages (2M:{},4K:{})",
            c.tables, c.blocks_2m, c.pages_4k
        ),
        None => println!("# rodata=full is off: the linear alias of text+rodata is writable data (rw-)"),
    }
}

fn walk(va: u64) {
    if va < PAGE_OFFSET {
        println!(
            "error: {va:#x} is in the lower half (TTBR0), which is disabled after boot; try a kernel address such as {PAGE_OFFSET:#x}"
        );
        return;
    }
    let w = pgtable::walk(&LiveTables, cpu::ttbr1_root(), va);
    let _ = write_walk(&mut Console, va, &w);
}

fn mem() {
    let k = state::get();
    for r in k.dtb.memory.iter() {
        println!(
            "ram      pa={:#x}-{:#x} size={} MiB",
            r.start.raw(),
            r.end.raw(),
            r.size() >> 20
        );
    }
    for r in k.reserved.iter().flatten() {
        println!(
            "reserved pa={:#x}-{:#x} {}",
            r.range.start.raw(),
            r.range.end.raw(),
            r.what
        );
    }
    let below = frames_below(&k.free_at_boot, k.image.start);
    let free = memory::free_frames();
    println!(
        "free     frames={free} ({} MiB) below-image={below} ({} MiB at boot)",
        (free * PAGE_SIZE) >> 20,
        (below * PAGE_SIZE) >> 20
    );
}

/// Frames of `free` that lie below `limit`.
pub fn frames_below(free: &crate::ranges::RangeList, limit: PhysAddr) -> u64 {
    free.iter()
        .map(|r| {
            let r = r.shrink_to_pages(PAGE_SIZE);
            let end = r.end.min(limit);
            if end > r.start {
                (end.raw() - r.start.raw()) / PAGE_SIZE
            } else {
                0
            }
        })
        .sum()
}

fn bootargs() {
    let k = state::get();
    println!("cmdline: {}", k.dtb.bootargs);
    println!("loglevel={} nokaslr={}", k.bootargs.loglevel, k.bootargs.nokaslr);
    crate::bootargs::parse(k.dtb.bootargs, |issue| println!("warning: {issue}"));
}

fn kaslr() {
    let k = super::kaslr::get();
    let source = match (k.source, k.off) {
        (Some(s), _) => s.name(),
        (None, Some(super::kaslr::Off::NoKaslr)) => "disabled (nokaslr)",
        (None, Some(super::kaslr::Off::BadWindow)) => "disabled (window refused)",
        _ => "disabled (no seed)",
    };
    let image_size = state::get().image.size();
    println!(
        "source={source} offset={:#x} text={:#x}",
        k.offset,
        KIMAGE_VADDR + k.offset
    );
    let align = match k.window.align {
        0x1000 => "4K",
        0x10000 => "64K",
        _ => "2M",
    };
    let tenths = crate::kaslr::entropy_tenths(k.slots);
    println!(
        "window={:#x}-{:#x} align={align} slots={} entropy={}.{} bits",
        k.window.start,
        k.window.end,
        k.slots,
        tenths / 10,
        tenths % 10
    );
    match k.relocation_insns {
        Some(n) => println!(
            "image={image_size:#x} bytes relocations={} instructions={n}",
            k.relocations
        ),
        None => println!("image={image_size:#x} bytes relocations={}", k.relocations),
    }
    let (direct, plt) = (k.modules.direct, k.modules.plt);
    println!(
        "modules direct={:#x}-{:#x} plt={:#x}-{:#x}",
        direct.start, direct.end, plt.start, plt.end
    );
    if k.source.is_some() {
        // Linux's random_bounding_box: one choice per page of slack.
        let bits = |choices| {
            let t = crate::kaslr::entropy_tenths(choices);
            alloc::format!("{}.{}", t / 10, t % 10)
        };
        println!(
            "modules entropy direct={} bits plt={} bits",
            bits(region::bounding_box_choices(region::DIRECT_SIZE, k.image)),
            bits(region::bounding_box_choices(region::PLT_SIZE, direct))
        );
    }
    // Linux randomised the linear map's base too, until v6.16; here that is
    // the `kaslr.linear=on` experiment.
    let memory = &state::get().dtb.memory;
    let choices = crate::linear::randomisation_choices(memory);
    let t = crate::kaslr::entropy_tenths(choices);
    if k.linear_random {
        let first = crate::linear::phys_offset(memory).raw();
        let offset = crate::linear::linear_va(first, pi::addr::phys_offset()) - PAGE_OFFSET;
        println!(
            "linear base=random offset={offset:#x} ({choices} 1G-aligned places, {}.{} bits)",
            t / 10,
            t % 10
        );
    } else {
        println!(
            "linear base=fixed ({choices} 1G-aligned places would give {}.{} bits with kaslr.linear=on)",
            t / 10,
            t % 10
        );
    }
    let dtb_seed = state::get().dtb.kaslr_seed.map_or(0, |(seed, _)| seed);
    println!("dtb /chosen/kaslr-seed now={dtb_seed:#x}");
}

fn modules() {
    let Some(initrd) = state::get().dtb.initrd else {
        println!("error: no initrd: `splitmap run` passes one with -initrd");
        return;
    };
    // SAFETY: the initrd is RAM named by the device tree, reserved at boot
    // (nothing else writes it) and mapped in the linear map.
    let archive =
        unsafe { core::slice::from_raw_parts(initrd.start.to_linear().as_ptr::<u8>(), initrd.size() as usize) };
    for file in crate::cpio::files(archive) {
        match file {
            Ok(f) => {
                // ELF64 little-endian, ET_REL (1), EM_AARCH64 (183).
                let elf =
                    f.data.len() > 20 && f.data.starts_with(b"\x7fELF\x02\x01") && f.data[16..20] == [1, 0, 183, 0];
                println!(
                    "{} size={} {}",
                    f.name,
                    f.data.len(),
                    if elf { "elf=rel/aarch64" } else { "elf=no" }
                );
            }
            Err(e) => println!("error: {e}"),
        }
    }
}
