//! Loading modules from the initrd: `insmod`, `rmmod`, `lsmod`.
//!
//! A module is an ELF relocatable object. Its allocated sections are laid out
//! in three areas (text `r-x` with the PLT veneers after it, rodata `r--`,
//! data `rw-`), copied into frames through their linear alias, relocated
//! there, and mapped in the module region: the 2 GiB below the running image,
//! so every module stays within ADRP reach of the kernel whatever KASLR did.
//! `module.region=near` (default) puts modules in the top 128 MiB, where a
//! `bl` reaches the kernel directly; `far` puts them at the bottom, where
//! calls into the kernel need veneers. Any failure undoes everything.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use object::elf;
use object::read::elf::{ElfFile64, FileHeader};
use object::{LittleEndian, Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionKind};
use pi::addr::PhysAddr;
use pi::layout::PAGE_SIZE;
use pi::pgtable::{self, Attrs, Granularity};
use spin::Mutex;

use super::{cpu, memory, state};
use crate::module::exports::{self, Export};
use crate::module::plt::{self, Branch};
use crate::module::reloc::{self, types};

/// A loaded module.
struct Loaded {
    name: String,
    base: u64,
    size: u64,
    frames: PhysAddr,
    order_pages: u64,
    plt: usize,
    direct: usize,
    exit: Option<u64>,
}

static MODULES: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

unsafe extern "C" {
    static _text: u8;
    static __start_kexports: Export;
    static __stop_kexports: Export;
}

fn splitmap_text() -> u64 {
    &raw const _text as u64
}

/// Module region: `[start, end)`, the 2 GiB below the image.
fn region() -> (u64, u64) {
    let end = splitmap_text();
    (end - (2 << 30), end)
}

fn far() -> bool {
    state::get().bootargs.module_far
}

/// A kernel export by name.
fn export(name: &str) -> Option<u64> {
    let start = &raw const __start_kexports;
    // SAFETY: the linker brackets the export entries with these symbols.
    let table = unsafe { core::slice::from_raw_parts(start, (&raw const __stop_kexports).offset_from(start) as usize) };
    (0..table.len()).find_map(|i| {
        let (function, name_at) = exports::addresses(table, start as u64, i)?;
        // SAFETY: names are NUL-terminated strings in rodata, emitted by `export!`.
        let entry = unsafe { core::ffi::CStr::from_ptr(name_at as *const core::ffi::c_char) };
        (entry.to_bytes() == name.as_bytes()).then_some(function)
    })
}

/// Kernel export: print a line from a module.
///
/// # Safety
/// `message` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_log(message: *const u8, len: usize) {
    // SAFETY: the caller passes a pointer and length of its own string.
    let bytes = unsafe { core::slice::from_raw_parts(message, len) };
    crate::println!("{}", core::str::from_utf8(bytes).unwrap_or("(not UTF-8)"));
}
crate::export!(splitmap_log);

/// A shell command a module registered: its handler gets the rest of the line.
struct ModuleCommand {
    name: String,
    handler: extern "C" fn(*const u8, usize),
}

static COMMANDS: Mutex<Vec<ModuleCommand>> = Mutex::new(Vec::new());

/// Kernel export: add shell command `name`; 0 on success, -1 if the name is taken.
///
/// # Safety
/// `name` must point to `len` readable bytes; `handler` must stay callable
/// until the command is unregistered (rmmod does that at the latest).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_register_command(
    name: *const u8,
    len: usize,
    handler: extern "C" fn(*const u8, usize),
) -> i32 {
    // SAFETY: the caller's contract.
    let bytes = unsafe { core::slice::from_raw_parts(name, len) };
    let Ok(name) = core::str::from_utf8(bytes) else {
        return -1;
    };
    let builtin = crate::shell::COMMANDS.iter().any(|(n, _, _)| *n == name);
    let mut commands = COMMANDS.lock();
    if builtin || name.is_empty() || commands.iter().any(|c| c.name == name) {
        return -1;
    }
    commands.push(ModuleCommand {
        name: name.to_string(),
        handler,
    });
    0
}
crate::export!(splitmap_register_command);

/// Kernel export: remove shell command `name` (if registered).
///
/// # Safety
/// `name` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitmap_unregister_command(name: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    let bytes = unsafe { core::slice::from_raw_parts(name, len) };
    COMMANDS.lock().retain(|c| c.name.as_bytes() != bytes);
}
crate::export!(splitmap_unregister_command);

/// Runs module command `word` with the whole `line`; false if there is none.
pub fn run_command(word: &str, line: &str) -> bool {
    let handler = COMMANDS.lock().iter().find(|c| c.name == word).map(|c| c.handler);
    match handler {
        Some(h) => {
            let rest = line.trim_start()[word.len()..].trim();
            h(rest.as_ptr(), rest.len());
            true
        }
        None => false,
    }
}

/// (command, module) for every module command, for `help`.
pub fn commands() -> Vec<(String, String)> {
    let modules = MODULES.lock();
    COMMANDS
        .lock()
        .iter()
        .map(|c| {
            let at = c.handler as usize as u64;
            let owner = modules
                .iter()
                .find(|m| (m.base..m.base + m.size).contains(&at))
                .map_or("?", |m| m.name.as_str());
            (c.name.clone(), owner.to_string())
        })
        .collect()
}

fn initrd_file(name: &str) -> Result<&'static [u8], String> {
    let initrd = state::get().dtb.initrd.ok_or("no initrd")?;
    // SAFETY: the initrd is reserved RAM, mapped in the linear map, never written.
    let archive =
        unsafe { core::slice::from_raw_parts(initrd.start.to_linear().as_ptr::<u8>(), initrd.size() as usize) };
    let wanted = alloc::format!("{name}.ko");
    crate::cpio::files(archive)
        .filter_map(Result::ok)
        .find(|f| f.name == wanted || f.name == name)
        .map(|f| f.data)
        .ok_or_else(|| alloc::format!("no module {name} in the initrd (see `modules`)"))
}

/// Where each allocated section goes: (section index, offset in the image).
struct Layout {
    offsets: Vec<(object::SectionIndex, u64)>,
    text: u64,
    rodata: u64,
    total: u64,
    plt_at: u64,
    plt_slots: usize,
}

fn layout(file: &ElfFile64<'_, LittleEndian>) -> Result<Layout, String> {
    let mut offsets = Vec::new();
    let mut areas = [0u64; 3];
    let mut placed: [Vec<(object::SectionIndex, u64, u64)>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for s in file.sections() {
        let area = match s.kind() {
            SectionKind::Text => 0,
            SectionKind::ReadOnlyData | SectionKind::ReadOnlyString => 1,
            SectionKind::Data | SectionKind::UninitializedData => 2,
            _ => continue,
        };
        if s.size() == 0 {
            continue;
        }
        let align = s.align().max(1);
        let at = areas[area].next_multiple_of(align);
        areas[area] = at + s.size();
        placed[area].push((s.index(), at, s.size()));
    }
    // PLT slots go after the text, sized by Linux's rule.
    let mut branches = Vec::new();
    for s in file.sections() {
        for (_, r) in s.relocations() {
            let RelocationFlags::Elf { r_type } = r.flags() else {
                continue;
            };
            let RelocationTarget::Symbol(sym) = r.target() else {
                continue;
            };
            let same_section = file.symbol_by_index(sym).ok().and_then(|s| s.section_index()) == Some(s.index());
            branches.push(Branch {
                r_type,
                symbol: sym.0 as u32,
                addend: r.addend(),
                same_section,
            });
        }
    }
    let plt_slots = plt::count(&mut branches);
    let plt_at = areas[0].next_multiple_of(16);
    let text = (plt_at + plt_slots as u64 * reloc::VENEER_SIZE).next_multiple_of(PAGE_SIZE);
    let rodata = areas[1].next_multiple_of(PAGE_SIZE);
    let data = areas[2].next_multiple_of(PAGE_SIZE);
    let bases = [0, text, text + rodata];
    for (area, list) in placed.iter().enumerate() {
        offsets.extend(list.iter().map(|&(i, at, _)| (i, bases[area] + at)));
    }
    Ok(Layout {
        offsets,
        text,
        rodata,
        total: text + rodata + data,
        plt_at,
        plt_slots,
    })
}

/// Loads module `name` from the initrd and runs its `init_module`.
pub fn insmod(name: &str) -> Result<String, String> {
    if MODULES.lock().iter().any(|m| m.name == name) {
        return Err(alloc::format!("{name} is already loaded"));
    }
    let packed = initrd_file(name)?;
    // cpio aligns file data to 4 bytes only; ELF headers want 8.
    let mut words = alloc::vec![0u64; packed.len().div_ceil(8)];
    // SAFETY: `words` holds at least `packed.len()` bytes; u64s have no invalid bit patterns.
    let data = unsafe {
        core::ptr::copy_nonoverlapping(packed.as_ptr(), words.as_mut_ptr().cast::<u8>(), packed.len());
        core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), packed.len())
    };
    let file = ElfFile64::<LittleEndian>::parse(data).map_err(|e| alloc::format!("{name}: not an ELF file: {e}"))?;
    let header = file.elf_header();
    if header.e_type(LittleEndian) != elf::ET_REL || header.e_machine(LittleEndian) != elf::EM_AARCH64 {
        return Err(alloc::format!("{name}: not an AArch64 relocatable object"));
    }
    let lay = layout(&file)?;

    // Memory: contiguous frames (zeroed), so the image is one linear buffer.
    let pages = lay.total / PAGE_SIZE;
    let frames = memory::alloc_frames(pages).ok_or_else(|| alloc::format!("{name}: no {pages} free frames"))?;
    let buffer = frames.to_linear().as_ptr::<u8>();
    // SAFETY: the frames are ours, mapped rw in the linear map, `total` bytes.
    let image = unsafe {
        core::ptr::write_bytes(buffer, 0, lay.total as usize);
        core::slice::from_raw_parts_mut(buffer, lay.total as usize)
    };
    let base = place_va(lay.total);
    let undo = |msg: String| {
        memory::free_frames_at(frames, pages);
        msg
    };
    let section_at = |i: object::SectionIndex| lay.offsets.iter().find(|(s, _)| *s == i).map(|&(_, at)| at);
    for s in file.sections() {
        if let (Some(at), Ok(bytes)) = (section_at(s.index()), s.data())
            && s.kind() != SectionKind::UninitializedData
        {
            image[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        }
    }

    // Relocate.
    let mut plt_keys: Vec<(u32, u64)> = Vec::new();
    let (mut plt_used, mut direct) = (0usize, 0usize);
    for s in file.sections() {
        let Some(section_off) = section_at(s.index()) else {
            continue;
        };
        for (offset, r) in s.relocations() {
            let RelocationFlags::Elf { r_type } = r.flags() else {
                continue;
            };
            let RelocationTarget::Symbol(sym) = r.target() else {
                return Err(undo(alloc::format!(
                    "{name}: relocation without a symbol in {}",
                    s.name().unwrap_or("?")
                )));
            };
            let symbol = file
                .symbol_by_index(sym)
                .map_err(|e| undo(alloc::format!("{name}: {e}")))?;
            let target = match symbol.section_index() {
                Some(i) => match section_at(i) {
                    Some(at) => base + at + symbol.address(),
                    None => return Err(undo(alloc::format!("{name}: symbol in a section that is not loaded"))),
                },
                None => {
                    let sname = symbol.name().unwrap_or("?");
                    export(sname).ok_or_else(|| undo(alloc::format!("{name}: undefined symbol {sname}")))?
                }
            };
            let s_plus_a = target.wrapping_add_signed(r.addend());
            let place_off = (section_off + offset) as usize;
            let p = base + section_off + offset;
            let place = &mut image[place_off..];
            let mut result = reloc::apply(r_type, place, p, s_plus_a);
            if matches!(r_type, types::CALL26 | types::JUMP26) {
                if result.is_ok() {
                    direct += 1;
                } else if result == Err(reloc::RelocError::Overflow(r_type)) {
                    // Through a veneer: one per (symbol, addend), as counted.
                    let key = (sym.0 as u32, s_plus_a);
                    let slot = match plt_keys.iter().position(|k| *k == key) {
                        Some(i) => i,
                        None => {
                            plt_keys.push(key);
                            plt_keys.len() - 1
                        }
                    };
                    if slot >= lay.plt_slots {
                        return Err(undo(alloc::format!("{name}: more PLT slots needed than counted")));
                    }
                    let slot_off = lay.plt_at + slot as u64 * reloc::VENEER_SIZE;
                    let veneer = reloc::veneer(base + slot_off, s_plus_a)
                        .ok_or_else(|| undo(alloc::format!("{name}: {s_plus_a:#x} is beyond a veneer's reach")))?;
                    for (i, insn) in veneer.iter().enumerate() {
                        let at = slot_off as usize + 4 * i;
                        image[at..at + 4].copy_from_slice(&insn.to_le_bytes());
                    }
                    plt_used = plt_keys.len();
                    result = reloc::apply(r_type, &mut image[place_off..], p, base + slot_off);
                }
            }
            result.map_err(|e| {
                let what = match symbol.name() {
                    Ok(n) if !n.is_empty() => n,
                    _ => symbol
                        .section_index()
                        .and_then(|i| file.section_by_index(i).ok())
                        .and_then(|s| s.name().ok())
                        .unwrap_or("?"),
                };
                undo(alloc::format!(
                    "{name}: {e} in {} (against {what})",
                    s.name().unwrap_or("?")
                ))
            })?;
        }
    }

    // Map: text r-x, rodata r--, data rw-.
    let areas = [
        (0, lay.text, Attrs::TEXT),
        (lay.text, lay.rodata, Attrs::RODATA),
        (lay.text + lay.rodata, lay.total - lay.text - lay.rodata, Attrs::DATA),
    ];
    {
        let mut guard = memory::TABLES.lock();
        let tables = guard.as_mut().expect("tables");
        for (off, len, attrs) in areas {
            if len > 0
                && let Err(e) = pgtable::map(
                    tables,
                    cpu::ttbr1_root(),
                    base + off,
                    frames.add(off),
                    len,
                    attrs,
                    Granularity::PagesOnly,
                )
            {
                drop(guard);
                let _ = pgtable::unmap(&memory::LiveTables, cpu::ttbr1_root(), base, lay.total);
                cpu::flush_tlb();
                return Err(undo(alloc::format!("{name}: cannot map at {base:#x}: {e:?}")));
            }
        }
    }
    cpu::publish_tables();
    // The text was written as data: make it visible to instruction fetch.
    for line in (0..lay.text).step_by(64) {
        // SAFETY: cache maintenance on our own frames' linear alias.
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) buffer.add(line as usize), options(nostack)) };
    }
    // SAFETY: cache maintenance only.
    unsafe { core::arch::asm!("dsb ish", "ic iallu", "dsb ish", "isb", options(nostack)) };

    let entry = |sym: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(sym))
            .and_then(|s| Some(base + section_at(s.section_index()?)? + s.address()))
    };
    let exit = entry("exit_module");
    let mut module = Loaded {
        name: name.to_string(),
        base,
        size: lay.total,
        frames,
        order_pages: pages,
        plt: plt_used,
        direct,
        exit,
    };
    if let Some(init) = entry("init_module") {
        // SAFETY: `init` is the module's `extern "C" fn() -> i32`, mapped r-x
        // and relocated above.
        let f: extern "C" fn() -> i32 = unsafe { core::mem::transmute(init as usize) };
        let code = f();
        if code != 0 {
            module.exit = None;
            unload(module);
            return Err(alloc::format!("{name}: init_module returned {code}"));
        }
    }
    let line = describe(&module);
    MODULES.lock().push(module);
    Ok(line)
}

/// Picks the module's virtual address in the region: near the top (in `bl`
/// reach of the kernel) or at the bottom (`module.region=far`), after modules
/// already there.
fn place_va(size: u64) -> u64 {
    let (start, end) = region();
    let used: u64 = MODULES.lock().iter().map(|m| m.size + PAGE_SIZE).sum();
    if far() {
        start + used
    } else {
        end - (64 << 20) - used - size
    }
}

fn unload(m: Loaded) {
    // Whatever the module left registered goes with it.
    COMMANDS
        .lock()
        .retain(|c| !(m.base..m.base + m.size).contains(&(c.handler as usize as u64)));
    let _ = pgtable::unmap(&memory::LiveTables, cpu::ttbr1_root(), m.base, m.size);
    cpu::flush_tlb();
    memory::free_frames_at(m.frames, m.order_pages);
}

/// Runs `exit_module` and removes module `name`, freeing all it took.
pub fn rmmod(name: &str) -> Result<(), String> {
    let mut list = MODULES.lock();
    let i = list
        .iter()
        .position(|m| m.name == name)
        .ok_or_else(|| alloc::format!("{name} is not loaded"))?;
    let m = list.remove(i);
    drop(list);
    if let Some(exit) = m.exit {
        // SAFETY: the module's `extern "C" fn()`, still mapped.
        let f: extern "C" fn() = unsafe { core::mem::transmute(exit as usize) };
        f();
    }
    unload(m);
    Ok(())
}

fn describe(m: &Loaded) -> String {
    let distance = splitmap_text() - m.base;
    alloc::format!(
        "{} base={:#x} size={:#x} plt={} direct={} distance={:#x}",
        m.name,
        m.base,
        m.size,
        m.plt,
        m.direct,
        distance
    )
}

/// One line per loaded module.
pub fn lsmod() -> Vec<String> {
    MODULES.lock().iter().map(describe).collect()
}
