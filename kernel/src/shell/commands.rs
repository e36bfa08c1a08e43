//! The shell on the machine: the read-run loop, and one function per command,
//! each run against the live page tables and boot state.

use pi::layout::{KIMAGE_VADDR, PAGE_SIZE};
use pi::pgtable::MapCounts;

use super::context::Context;
use super::editor::{Echo, LineEditor};
use super::parse::{COMMANDS, Command, Filled, ParseError, Symbol, help_for, parse};
use super::report::{KaslrReport, LayoutRow, ProtList, WalkRefusal, write_walk};
use super::{crash, explore, selftest};
use crate::arch::{pmu, psci};
use crate::boot::reserve::frames_below;
use crate::boot::{cpio, tree};
use crate::console::escape::Escaped;
use crate::console::{self, Console};
use crate::mm::tables;
use crate::mm::{frames, linear, rodata};
use crate::module::{self, abi, insmod};
use crate::println;

/// Prompt, at the start of a line. Printed as it is (`print_str`): through
/// `print!("{PROMPT}")` it was `core::fmt`'s work, translated before the
/// first prompt for nothing.
const PROMPT: &str = "splitmap> ";

/// Reads lines and runs them, forever.
pub fn run(cx: Context) -> ! {
    let mut editor = LineEditor::new();
    console::print_str(PROMPT);
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
            Echo::Left => console::put_bytes(b"\x08"),
            Echo::Right => console::put_bytes(b"\x1b[C"),
            Echo::Rewrite { erase, from, back } => {
                for _ in 0..erase {
                    console::put_bytes(b"\x08");
                }
                // ESC [K: erase to the end of the line, where the old text was.
                crate::print!("\x1b[K{}", &editor.text()[from..]);
                for _ in 0..back {
                    console::put_bytes(b"\x08");
                }
            }
            Echo::Choices => {
                println!();
                for word in editor.choices() {
                    crate::print!("{word}  ");
                }
                println!();
                crate::print!("{PROMPT}{}", editor.text());
            }
            Echo::Cancel => {
                println!("^C");
                console::print_str(PROMPT);
            }
            Echo::Enter => {
                println!();
                match editor.take_line() {
                    Ok(line) => execute(&cx, line.as_str()),
                    Err(e) => println!("error: {e}"),
                }
                console::print_str(PROMPT);
            }
        }
    }
}

/// Runs one command line: the shell's, or one `on` posted to this CPU.
pub fn execute(cx: &Context, line: &str) {
    match parse(line) {
        Ok(Command::Empty) => {}
        Ok(Command::Help(None)) => help(),
        Ok(Command::Help(Some(name))) => help_command(cx, name),
        Ok(Command::Layout) => layout(cx),
        Ok(Command::Walk(va)) => walk(cx, va),
        Ok(Command::Mem) => mem(cx),
        Ok(Command::Efi) => efi(cx),
        Ok(Command::Bootargs) => bootargs(cx),
        Ok(Command::Kaslr) => kaslr(cx),
        Ok(Command::Modules) => modules(cx),
        Ok(Command::Insmod(name)) => {
            // With --icount, what loading cost, and the loader's share of it up
            // to `init_module` (`splitmap bench` reads both).
            let counter = pmu::Instructions::start();
            let loaded = insmod::insmod(name, &modules_at(cx));
            let spent = counter.map(pmu::Instructions::stop);
            match loaded {
                Ok(insmod::Inserted {
                    line,
                    loader_instructions,
                }) => match spent.zip(loader_instructions) {
                    Some((n, loader)) => println!("{line} instructions={n} loader_instructions={loader}"),
                    None => println!("{line}"),
                },
                Err(e) => println!("error: insmod {e}"),
            }
        }
        Ok(Command::Rmmod(name)) => match insmod::rmmod(name) {
            Ok(notes) => notes.iter().for_each(|n| println!("{n}")),
            Err(e) => println!("error: rmmod {e}"),
        },
        Ok(Command::Lsmod(verbose)) => insmod::lsmod(verbose).iter().for_each(|l| println!("{l}")),
        Ok(Command::Peek(x)) => explore::peek(x),
        Ok(Command::Test(filter)) => {
            selftest::run(cx, filter);
        }
        Ok(Command::Poweroff) => {
            println!("splitmap: powering off");
            psci::system_off()
        }
        Ok(Command::Crash(kind)) => crash::crash(cx, kind),
        Ok(Command::Va2pa(va)) => explore::va2pa(cx, va),
        Ok(Command::Pa2va(pa)) => explore::pa2va(cx, pa),
        Ok(Command::Sym(Symbol::At(addr))) => explore::sym_at(addr),
        Ok(Command::Sym(Symbol::Named(name))) => explore::sym_named(name),
        Ok(Command::Ptdump(part)) => explore::ptdump(cx, part),
        Ok(Command::Examine(x)) => explore::examine(x),
        Ok(Command::Dmesg) => console::print_boot_log(),
        Ok(Command::Dtb(path)) => dtb(cx, path),
        Ok(Command::Irqs) => irqs(),
        Ok(Command::Cpus) => super::cpus::cpus(),
        Ok(Command::On(cpu, command)) if cpu == crate::arch::percpu::id() => execute(cx, command),
        Ok(Command::On(cpu, command)) => super::cpus::on(cpu, command),
        Ok(Command::Phases) => {
            crate::print!("{}", crate::boot::cost::marks(crate::arch::counter::frequency()));
            crate::print!("{}", crate::boot::smp_cost::report());
            match tree::read_again(cx.kernel.boot) {
                Ok(again) => crate::print!("{again}"),
                Err(e) => println!("again devicetree: {e}"),
            }
        }
        Err(ParseError::Unknown(word)) if insmod::run_command(word, line) => {}
        Err(e) => println!("error: {e}"),
    }
}

/// What loading a module depends on, from the boot.
fn modules_at(cx: &Context) -> insmod::Where {
    insmod::Where {
        initrd: cx.kernel.boot.dt.initrd,
        windows: cx.kaslr.modules,
        image: cx.kaslr.image,
        far: cx.kernel.boot.args.module_far,
    }
}

fn help_command(cx: &Context, name: &str) {
    match help_for(name) {
        Some(help) => {
            let image = cx.kernel.image.start;
            let example = Filled {
                example: help.example,
                image_pa: image.raw(),
                image_linear: image.to_linear().raw(),
            };
            println!("{}", usage_line(help.usage.0, help.usage.1));
            println!("  {}", help.what);
            println!("example: {example}");
        }
        None => match insmod::commands().into_iter().find(|(n, _)| n == name) {
            Some((_, module)) => match abi::usage(name) {
                Some(args) => {
                    println!("{}", usage_line(name, &args));
                    println!("  a command of module {module} (rmmod {module} removes it)");
                }
                None => println!("{name}: a command of module {module}, which registered no usage for it"),
            },
            None => println!("error: no command {name}; type 'help' for the list"),
        },
    }
}

/// `usage: NAME ARGS`, or `usage: NAME` for a command without arguments.
fn usage_line(name: &str, args: &str) -> alloc::string::String {
    match args {
        "" => alloc::format!("usage: {name}"),
        args => alloc::format!("usage: {name} {args}"),
    }
}

/// Where `help` starts each command's description.
const USAGE_WIDTH: usize = 20;

fn help() {
    println!("commands:");
    for (name, args, what) in COMMANDS {
        help_row(name, args, what);
    }
    let from_modules = insmod::commands();
    if !from_modules.is_empty() {
        println!("commands from loaded modules (help NAME: its usage; rmmod takes them away):");
    }
    for (name, module) in from_modules {
        let args = abi::usage(&name).unwrap_or_default();
        help_row(&name, &args, &alloc::format!("[module {module}]"));
    }
    println!("numbers are hex with 0x, or decimal. Ctrl-A X leaves QEMU.");
}

/// One command of `help`: its usage, then what it does in the same column
/// for every command.
fn help_row(name: &str, args: &str, what: &str) {
    let usage = match args {
        "" => alloc::string::String::from(name),
        args => alloc::format!("{name} {args}"),
    };
    if usage.len() <= USAGE_WIDTH {
        println!("  {usage:<USAGE_WIDTH$} {what}");
    } else {
        // Too wide for the column: the description goes under it, so
        // every description still starts in the same column.
        println!("  {usage}");
        println!("  {:USAGE_WIDTH$} {what}", "");
    }
}

/// Permissions of the first page of `[va, …)` as the MMU sees them.
fn prot_at(va: u64) -> &'static str {
    match tables::walk(va).translation {
        Some(t) => t.prot.as_str(),
        None => "---",
    }
}

fn row(name: &str, va: u64, end: u64, pa: Option<(u64, u64)>) -> LayoutRow<'_> {
    let map: MapCounts = tables::count(va, end - va);
    LayoutRow {
        name,
        va: (va, end),
        pa,
        prot: prot_at(va),
        map,
    }
}

fn layout(cx: &Context) {
    let (k, placed) = (cx.kernel, &cx.kaslr);
    let areas = insmod::layout_rows();
    // The module window holds areas of different permissions: its row
    // lists each once (`r-x,r--,rw-`), its areas' rows say which is which.
    let prots: alloc::vec::Vec<&str> = areas.iter().map(|a| prot_at(a.va.start)).collect();
    let in_modules = alloc::format!("{}", ProtList(&prots));
    let mut rows: alloc::vec::Vec<LayoutRow<'_>> = alloc::vec::Vec::new();
    for region in explore::regions(cx) {
        let (start, end) = (region.va.start, region.va.end);
        rows.push(if region.name == "modules" {
            // The PLT window surrounds the image: count only what modules mapped.
            let image = placed.image;
            LayoutRow {
                name: region.name,
                va: (start, end),
                pa: None,
                prot: &in_modules,
                map: tables::count(start, image.start - start) + tables::count(image.end, end - image.end),
            }
        } else {
            row(region.name, start, end, region.pa)
        });
    }
    // Each loaded module's areas, with the permissions they have.
    for area in &areas {
        rows.push(row(&area.name, area.va.start, area.va.end, Some(area.pa)));
    }
    // Each other CPU's stack and guard: the template rows' slot N.
    let slots = super::cpus::stack_rows();
    for (name, (start, end)) in &slots {
        rows.push(row(name, *start, *end, None));
    }
    // Lowest address first, a window before what it holds.
    rows.sort_by_key(|r| (r.va.0, core::cmp::Reverse(r.va.1)));
    for r in &rows {
        println!("{r}");
    }
    let offset = pi::addr::phys_offset();
    let tables = tables::usage();
    println!(
        "# linear map: {} table pages (minimum for this RAM: {}); table pool: {}/{} pages used, {} more tables from frames; text at KIMAGE_VADDR={KIMAGE_VADDR:#x} + kaslr {:#x}",
        tables::linear_now(&k.boot.dt.memory).tables,
        linear::minimum_tables(&k.boot.dt.memory, offset),
        tables.pool_used,
        tables.pool_size,
        tables.from_frames,
        placed.offset
    );
    if rows.iter().any(|r| r.map.contiguous > 0) {
        println!(
            "# +cont:N counts runs of leaves marked contiguous, of every size together: not a share of the count before it"
        );
    }
    match rodata::split_cost() {
        Some(c) => println!(
            "# rodata=full: the linear alias of text+rodata is r--; the split cost {} table pages (2M:{},4K:{})",
            c.tables, c.blocks_l2, c.pages
        ),
        None => println!("# rodata=full is off: the linear alias of text+rodata is writable data (rw-)"),
    }
}

fn walk(cx: &Context, va: u64) {
    match WalkRefusal::of(va) {
        Some(refusal) => println!("error: {refusal}"),
        None => {
            explore::say_region(cx, va);
            let _ = write_walk(&mut Console, va, &tables::walk(va));
        }
    }
}

/// The device tree the kernel read, as source, from the window boot mapped.
fn dtb(cx: &Context, path: &str) {
    use crate::boot::dtb::source::{SourceError, write_source};
    match write_source(cx.kernel.boot.dt.blob, path, &mut Console) {
        Ok(()) | Err(SourceError::Write) => {}
        Err(SourceError::NoSuchNode) => println!("error: no node {path} in the device tree (`dtb` shows them all)"),
        Err(SourceError::Malformed) => println!("error: the device tree no longer parses"),
    }
}

fn mem(cx: &Context) {
    let k = cx.kernel;
    for r in k.boot.dt.memory.iter() {
        println!(
            "ram      pa={:#x}-{:#x} size={} MiB",
            r.start.raw(),
            r.end.raw(),
            r.size() >> 20
        );
    }
    for r in k.reserved.list.iter().flatten() {
        println!(
            "reserved pa={:#x}-{:#x} {}",
            r.range.start.raw(),
            r.range.end.raw(),
            r.what
        );
    }
    let below = frames_below(&k.reserved.free, k.image.start);
    let free = frames::free_frames();
    println!(
        "free     frames={free} ({} MiB) below-image={below} ({} MiB at boot)",
        (free * PAGE_SIZE) >> 20,
        (below * PAGE_SIZE) >> 20
    );
    // Table pages that translate any of the PLT window (which holds the
    // direct window and the image): the image's alone when no module is
    // loaded, and back to that after rmmod (`tables::unmap_free`).
    let plt = cx.kaslr.modules.plt;
    let usage = tables::usage();
    println!(
        "tables   module-windows={} from-frames={} freed={}",
        tables::count(plt.start, plt.size()).tables,
        usage.from_frames,
        usage.freed
    );
    println!("heap     in-use={}", frames::heap_in_use());
}

/// `irqs`: `irq=N name=NAME count=N cpu=N`, one line per source at each
/// CPU that takes interrupts; without a GIC, why not, and that module
/// calls run unwatched.
fn irqs() {
    match crate::boot::gic::state() {
        Some(Ok(_)) => {
            for s in crate::arch::irq::sources() {
                println!("irq={} name={} count={} cpu={}", s.intid, s.name, s.count, s.cpu);
            }
            for (cpu, why) in crate::arch::irq::refused() {
                println!(
                    "error: cpu={cpu} takes no interrupts ({why}): module code it runs is unwatched; run modules on a CPU listed above (`on N`) to have the watchdog"
                );
            }
        }
        Some(Err(why)) => println!(
            "error: no interrupts on this machine ({}): the module watchdog is unavailable and module calls run unwatched; boot a machine with a GICv2 or GICv3 to have it",
            why
        ),
        None => println!("error: interrupts are not set up yet"),
    }
}

/// One line per region of the UEFI memory map: its type, range, attributes
/// and `use=`: `kept` (never reaches the frame allocator: runtime services,
/// reserved, ACPI, MMIO), the kernel's own reservation it overlaps (`image`,
/// `dtb`, …), or `free` (the frame allocator's, outside RAM or not).
fn efi(cx: &Context) {
    use crate::boot::efi;
    let k = cx.kernel;
    let Some(h) = k.boot.dt.efi.as_ref() else {
        println!(
            "error: no UEFI memory map: the kernel was not started by its EFI stub (boot with splitmap run --uefi)"
        );
        return;
    };
    let Some(map) = efi::map_bytes(h, &k.boot.dt.memory) else {
        println!("error: the UEFI memory map the stub named is not inside RAM; nothing to show");
        return;
    };
    for r in efi::regions(map, h.desc_size) {
        let overlaps = |x: crate::mm::ranges::PhysRange| x.start < r.range.end && r.range.start < x.end;
        let use_ = if efi::kept(r.ty) {
            "kept"
        } else {
            k.reserved
                .list
                .iter()
                .flatten()
                .find(|res| overlaps(res.range))
                .map_or("free", |res| res.what)
        };
        println!(
            "type={} pa={:#x}-{:#x} attr={:#x} use={use_}",
            efi::type_name(r.ty),
            r.range.start.raw(),
            r.range.end.raw(),
            r.attr
        );
    }
    println!(
        "map pa={:#x} size={} desc-size={} desc-ver={} seed-source={}",
        h.mmap_start, h.mmap_size, h.desc_size, h.desc_ver, h.source
    );
    if let (Some(slot), Some(slots)) = (h.slot, h.slots) {
        println!("placement pa={:#x} slot={slot} slots={slots}", k.image.start.raw());
    }
}

fn bootargs(cx: &Context) {
    let info = &cx.kernel.boot;
    // The command line is the bootloader's text: escaped, so that none of
    // it can end this line or pass for a line of the kernel's.
    println!("cmdline: {}", Escaped(info.dt.bootargs));
    // Settings and problems escape the command line's words themselves.
    println!("{}", info.args);
    for issue in info.arg_issues() {
        println!("warning: {issue}");
    }
    if info.arg_issues_dropped() > 0 {
        println!("warning: {} more problems not shown", info.arg_issues_dropped());
    }
    // The KASLR window's arguments are checked against the layout, not by
    // the parser: their problem is the decision's.
    if let Some(e) = cx.kaslr.window_error() {
        println!("warning: {e}");
    }
}

fn kaslr(cx: &Context) {
    let (k, moved, boot) = (&cx.kaslr, &cx.moved, &cx.kernel.boot);
    let report = KaslrReport {
        k,
        image_size: cx.kernel.image.size(),
        relocations: moved.relocations,
        instructions: moved.instructions,
        ram: &boot.dt.memory,
        dtb_seed_now: tree::kaslr_seed_now(boot).unwrap_or(0),
    };
    crate::print!("{report}");
}

fn modules(cx: &Context) {
    let Some(initrd) = cx.kernel.boot.dt.initrd else {
        println!("error: no initrd: `splitmap run` passes one with -initrd");
        return;
    };
    // SAFETY: the initrd is RAM named by the device tree, reserved at boot
    // (nothing else writes it) and mapped in the linear map.
    let archive =
        unsafe { core::slice::from_raw_parts(initrd.start.to_linear().as_ptr::<u8>(), initrd.size() as usize) };
    for file in cpio::files(archive) {
        match file {
            // Listed by the name `insmod` takes; a file it never could load
            // is a comment saying why (its name escaped: it comes from outside).
            Ok(f) => match module::name::of_file(f.name) {
                Ok(name) => {
                    // ELF64 little-endian, ET_REL (1), EM_AARCH64 (183).
                    let elf =
                        f.data.len() > 20 && f.data.starts_with(b"\x7fELF\x02\x01") && f.data[16..20] == [1, 0, 183, 0];
                    println!(
                        "{name} size={} {}",
                        f.data.len(),
                        if elf { "elf=rel/aarch64" } else { "elf=no" }
                    );
                }
                Err(e) => println!("# {} size={}: no module: {e}", Escaped(f.name), f.data.len()),
            },
            Err(e) => println!("error: {e}"),
        }
    }
}
