//! "What is at this address, and why?": the regions of the kernel's address
//! space as `layout` lists them, and the commands that answer from the live
//! tables — `va2pa`, `pa2va`, `sym`.

use alloc::vec::Vec;

use pi::addr::PhysAddr;
use pi::kmap::{KERNEL_MAP, Place, Section};
use pi::layout::{PAGE_OFFSET, PAGE_SIZE};

use alloc::string::String;

use super::context::Context;
use super::parse::{Examine, Part};
use super::report::WalkRefusal;
use crate::arch::{peek, sections};
use crate::debug::{backtrace, ksyms};
use crate::mm::ranges::{RangeList, Span};
use crate::mm::{linear, ptdump, rodata, tables};
use crate::module::loaded;
use crate::println;

/// A region of the kernel's address space.
pub struct Region {
    /// Its row's name in `pi::kmap::KERNEL_MAP`.
    pub name: &'static str,
    /// Its virtual addresses.
    pub va: Span,
    /// The physical range it maps 1:1, if it does.
    pub pa: Option<(u64, u64)>,
}

/// Every row of the kernel's map as this boot placed it, lowest address
/// first: `layout`'s rows, less each module's own.
pub fn regions(cx: &Context) -> Vec<Region> {
    let k = cx.kernel;
    let mut out = Vec::new();
    for row in KERNEL_MAP {
        let mut add = |start: u64, end: u64, pa: Option<(u64, u64)>| {
            out.push(Region {
                name: row.name,
                va: Span { start, end },
                pa,
            });
        };
        match row.place {
            // TTBR0 walks are off once the kernel runs.
            Place::Identity => {}
            Place::Linear => linear_rows(&k.boot.dt.memory, add),
            Place::Modules => {
                let plt = cx.kaslr.modules.plt;
                add(plt.start, plt.end, None);
            }
            Place::Image(section) => {
                let va = match section {
                    Section::Text => sections::text(),
                    Section::Rodata => sections::rodata(),
                    Section::Data => sections::data(),
                    Section::Bss => sections::bss(),
                    Section::Pool => sections::pool(),
                    Section::BootStack => sections::boot_stack(),
                };
                let voffset = pi::addr::kimage_voffset();
                add(va.start, va.end, Some((va.start - voffset, va.end - voffset)));
            }
            // A window shows what boot mapped in it: a physical range for
            // the two that map one, all of it for the rest.
            Place::Fixed { start, end } => {
                let gic = crate::boot::gic::state().and_then(|s| s.as_ref().ok());
                let mapped = match row.name {
                    "mmio" => Some(k.console.regs.expand_to_pages(PAGE_SIZE)),
                    // Nothing is mapped there without a GIC.
                    "gic-dist" | "gic-cpu" => match gic {
                        Some(g) if row.name == "gic-dist" => Some(g.dist.pages),
                        Some(g) => Some(g.cpu.pages),
                        None => continue,
                    },
                    "dtb" => Some(k.boot.dtb.expand_to_pages(PAGE_SIZE)),
                    _ => None,
                };
                match mapped {
                    Some(pa) => add(start, start + pa.size(), Some((pa.start.raw(), pa.end.raw()))),
                    None => add(start, end, None),
                }
            }
        }
    }
    out
}

/// The linear map's rows, one per RAM range. With `rodata=full` the image's
/// alias is read-only inside its range: a row of its own, so each row has
/// one permission.
fn linear_rows(ram: &RangeList, mut add: impl FnMut(u64, u64, Option<(u64, u64)>)) {
    let offset = pi::addr::phys_offset();
    let alias = rodata::split_cost().map(|_| rodata::protected_range());
    for r in ram.iter() {
        let r = r.shrink_to_pages(PAGE_SIZE);
        let (start, end) = (r.start.raw(), r.end.raw());
        let (from, to) = alias
            .filter(|(from, _)| r.contains(*from))
            .map_or((end, end), |(from, to)| (from.raw(), to.raw().min(end)));
        for (lo, hi) in [(start, from), (from, to), (to, end)] {
            if lo < hi {
                let va = linear::linear_va(lo, offset);
                add(va, va + (hi - lo), Some((lo, hi)));
            }
        }
    }
}

/// The innermost region `va` is in (the image's rows, not the module window
/// around them), or `none`.
fn region_of(regions: &[Region], va: u64) -> &'static str {
    regions
        .iter()
        .filter(|r| (r.va.start..r.va.end).contains(&va))
        .min_by_key(|r| r.va.end - r.va.start)
        .map(|r| r.name)
        .or_else(|| cpu_slot_of(va))
        .unwrap_or("none")
}

/// `guard.N` and `stack.N` for each CPU number (CPU 0's are the `guard`
/// and `stack` rows themselves), as `layout` names them.
const SLOT_NAMES: [(&str, &str); crate::arch::percpu::MAX_CPUS] = [
    ("guard", "stack"),
    ("guard.1", "stack.1"),
    ("guard.2", "stack.2"),
    ("guard.3", "stack.3"),
    ("guard.4", "stack.4"),
    ("guard.5", "stack.5"),
    ("guard.6", "stack.6"),
    ("guard.7", "stack.7"),
];

/// The `guard.N` or `stack.N` row `va` is in, for a CPU boot numbered.
fn cpu_slot_of(va: u64) -> Option<&'static str> {
    crate::boot::smp::cpus().iter().enumerate().skip(1).find_map(|(n, c)| {
        c.as_ref()?;
        let slot = pi::kmap::stack_slot(n);
        let (guard, stack) = SLOT_NAMES[n];
        if (slot.guard.0..slot.guard.1).contains(&va) {
            Some(guard)
        } else if (slot.stack.0..slot.stack.1).contains(&va) {
            Some(stack)
        } else {
            None
        }
    })
}

/// The first line of `walk VA`: which region the address is in, and for a
/// region never mapped as itself (a guard, the module window), why.
pub fn say_region(cx: &Context, va: u64) {
    let name = region_of(&regions(cx), va);
    // CPU N's `guard.N`/`stack.N` are copies of the template rows.
    let template = name.split_once('.').map_or(name, |(row, _)| row);
    match pi::kmap::find(template) {
        Some(row) if row.mapping.is_none() && template != name => println!("# region={name}: {}", row.why),
        Some(_) if template != name => println!("# region={name}"),
        Some(row) if row.mapping.is_none() => println!("# region={}: {}", row.name, row.why),
        Some(row) => println!("# region={}", row.name),
        None => println!("# region=none: a hole between the regions `layout` lists"),
    }
}

/// `va2pa VA`: `va=0x… pa=0x… region=NAME`, from a walk of the live tables.
pub fn va2pa(cx: &Context, va: u64) {
    if let Some(refusal) = WalkRefusal::of(va) {
        println!("error: {refusal}");
        return;
    }
    let region = region_of(&regions(cx), va);
    match tables::walk(va).translation {
        Some(t) => println!("va={va:#x} pa={:#x} region={region}", t.pa.raw()),
        None => println!("error: {va:#x} is not mapped (region={region}); `walk {va:#x}` shows where the walk stops"),
    }
}

/// `pa2va PA`: one `pa=0x… va=0x… region=NAME prot=PROT` line for every
/// virtual address that maps `pa` — each checked by walking the live tables,
/// with the permissions that alias has.
pub fn pa2va(cx: &Context, pa: u64) {
    let regions = regions(cx);
    let mut candidates: Vec<u64> = regions
        .iter()
        .filter_map(|r| {
            let (start, end) = r.pa?;
            (start..end).contains(&pa).then(|| r.va.start + (pa - start))
        })
        .collect();
    candidates.extend(loaded::aliases_of(PhysAddr::new(pa)));
    let mut found = 0;
    for va in candidates {
        if let Some(t) = tables::walk(va).translation.filter(|t| t.pa.raw() == pa) {
            println!(
                "pa={pa:#x} va={va:#x} region={} prot={}",
                region_of(&regions, va),
                t.prot.as_str()
            );
            found += 1;
        }
    }
    if found == 0 {
        println!("error: no virtual address maps {pa:#x} (RAM, the image, modules, the UART and the DTB are mapped)");
    }
}

/// The linear map's window.
const LINEAR: Option<(u64, u64)> = pi::kmap::row("linear").window();

/// `ptdump [PART]`: one line per run of like leaves, lowest address first.
pub fn ptdump(cx: &Context, part: Part) {
    let k = &cx.kaslr;
    let spans = match part {
        Part::All => [Some((PAGE_OFFSET, 0u64.wrapping_sub(PAGE_OFFSET))), None],
        Part::Linear => [LINEAR.map(|(start, end)| (start, end - start)), None],
        Part::Image => [Some((k.image.start, k.image.size())), None],
        // The PLT window around the image, less the image itself.
        Part::Modules => [
            Some((k.modules.plt.start, k.image.start - k.modules.plt.start)),
            Some((k.image.end, k.modules.plt.end - k.image.end)),
        ],
    };
    let mut runs = 0;
    tables::locked(|tables, root| {
        for (va, len) in spans.into_iter().flatten() {
            ptdump::runs(tables, root, va, len, |run| {
                println!("{run}");
                runs += 1;
            });
        }
    });
    if runs == 0 {
        println!("# nothing mapped there");
    }
}

/// `x VA [COUNT] [WIDTH] [force]`: lines of `0xVA: v v v v`, 16 bytes a
/// line, each value read through the exception table; a fault ends the dump
/// with `fault at 0x…: REASON`.
pub fn examine(x: Examine) {
    if refused_as_device(&x) {
        return;
    }
    let bytes = u64::from(x.width / 8);
    let per_line = 16 / bytes;
    let mut line = String::new();
    for i in 0..x.count {
        let va = x.va.wrapping_add(i * bytes);
        if i % per_line == 0 {
            if !line.is_empty() {
                println!("{line}");
            }
            line = alloc::format!("{va:#x}:");
        }
        match peek::peek(va, x.width) {
            Ok(v) => line.push_str(&alloc::format!(" {v:0width$x}", width = 2 * bytes as usize)),
            Err(reason) => {
                if !line.ends_with(':') {
                    println!("{line}");
                }
                println!("fault at {va:#x}: {reason}");
                return;
            }
        }
    }
    println!("{line}");
}

/// `peek VA [WIDTH] [force]`: `0xVA: 0xVALUE (WIDTH-bit)`, or the fault
/// (`x` with one value, in its own format).
pub fn peek(x: Examine) {
    if refused_as_device(&x) {
        return;
    }
    match peek::peek(x.va, x.width) {
        Ok(value) => println!("{:#x}: {value:#x} ({}-bit)", x.va, x.width),
        Err(reason) => println!("fault at {:#x}: {reason}", x.va),
    }
}

/// Whether `x` would read device memory without `force`, said if so: a read
/// there can change the device, so it takes asking twice.
fn refused_as_device(x: &Examine) -> bool {
    if x.force {
        return false;
    }
    let bytes = u64::from(x.width / 8);
    let device = (0..x.count)
        .map(|i| x.va.wrapping_add(i * bytes))
        .find(|&va| tables::walk(va).steps().last().is_some_and(|s| is_device(s.raw)));
    if let Some(va) = device {
        println!(
            "error: {va:#x} is device memory, where a read can change the device (reading the UART's data register takes a typed byte); add `force` to read it anyway"
        );
    }
    device.is_some()
}

/// Whether a leaf descriptor maps device memory (AttrIndx).
fn is_device(raw: u64) -> bool {
    raw & 1 == 1 && (raw >> 2) & 7 == pi::pgtable::MAIR_IDX_DEVICE
}

/// `sym ADDR`: `0xADDR NAME+0xOFF section=SECTION [module]`.
pub fn sym_at(addr: u64) {
    match backtrace::symbol(addr) {
        Some(s) => match &s.module {
            Some(module) => println!("{addr:#x} {}+{:#x} section={} [{module}]", s.name, s.offset, s.section),
            None => println!("{addr:#x} {}+{:#x} section={}", s.name, s.offset, s.section),
        },
        None => {
            let text = sections::text();
            let why = if (text.start..text.end).contains(&addr) {
                "the kernel's text there is not a function (the Image header, or padding between functions)"
            } else {
                "not in the kernel's text or a module's"
            };
            println!("error: no function at {addr:#x}: {why}");
        }
    }
}

/// `sym NAME`: where function `NAME` starts, in the kernel or a module.
pub fn sym_named(name: &str) {
    let text = sections::text().start;
    if let Some((offset, _)) = ksyms::find(sections::ksyms(), name) {
        sym_at(text + offset);
        return;
    }
    match loaded::find_function(name) {
        Some(addr) => sym_at(addr),
        None => println!("error: no function named {name} in the kernel or a loaded module"),
    }
}
