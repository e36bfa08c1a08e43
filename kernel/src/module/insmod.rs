//! Loading modules from the initrd: `insmod`, `rmmod`, `lsmod`.
//!
//! A module is an ELF relocatable object, laid out and linked by
//! `module::load` straight into frames through their linear alias, then
//! mapped (text `r-x`, rodata `r--`, data `rw-`) in the module windows that
//! `kaslr::module_windows` placed around the running image: the 128 MiB direct
//! window by default (`module.region=near`), where a `bl` reaches the kernel;
//! the parts of the 2 GiB PLT window out of that reach with
//! `module.region=far`, where calls into the kernel need veneers. Any failure
//! undoes everything.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use pi::layout::PAGE_SIZE;
use pi::pgtable::{Attrs, Granularity};

use super::load::{self, Area, Module};
use super::loaded::{self, Loaded, MODULES};
use super::{abi, plt};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::percpu::{self, MAX_CPUS};
use crate::arch::recovery::{self, Fault, Kind};
use crate::arch::{counter, cpu, pmu, sections};
use crate::boot::cpio;
use crate::kaslr::module_windows::{self, Span, Windows};
use crate::mm::ranges::PhysRange;
use crate::mm::{frames, tables};

/// (command, module) for every module command, for `help`.
pub fn commands() -> Vec<(String, String)> {
    let modules = MODULES.lock();
    abi::commands()
        .into_iter()
        .map(|(command, owner)| {
            let module = modules
                .iter()
                .find(|m| m.base == owner)
                .map_or("?", |m| m.name.as_str());
            (command, module.to_string())
        })
        .collect()
}

fn initrd_file(initrd: Option<PhysRange>, name: &str) -> Result<&'static [u8], String> {
    let initrd = initrd.ok_or("no initrd")?;
    // SAFETY: the initrd is reserved RAM, mapped in the linear map, never written.
    let archive =
        unsafe { core::slice::from_raw_parts(initrd.start.to_linear().as_ptr::<u8>(), initrd.size() as usize) };
    // Only `NAME.ko`: were `NAME` itself accepted, `hello.ko.ko` (named
    // `hello.ko`) would find `hello.ko` and load `hello` a second time.
    let wanted = alloc::format!("{name}.ko");
    cpio::files(archive)
        .filter_map(Result::ok)
        .find(|f| f.name == wanted)
        .map(|f| f.data)
        .ok_or_else(|| alloc::format!("no module {name} in the initrd (see `modules`)"))
}

/// A module's name: its file name without `.ko` (`hello` and `hello.ko` are
/// the same module), by the one rule of `module::name`.
fn module_name(name: &str) -> Result<&str, String> {
    super::name::of_typed(name).map_err(|e| alloc::format!("{name}: {e}"))
}

/// What loading a module depends on, from the boot.
pub struct Where {
    /// The initrd the modules are in.
    pub initrd: Option<PhysRange>,
    /// The module windows KASLR placed.
    pub windows: Windows,
    /// The running image, which no module may overlap.
    pub image: Span,
    /// `module.region=far`: only where calls into the kernel need veneers.
    pub far: bool,
}

/// A module `insmod` loaded.
pub struct Inserted {
    /// Its `lsmod` line.
    pub line: String,
    /// Instructions the loader ran, from the start of `insmod` to the call
    /// of `init_module` (`None` when the CPU does not count them: QEMU
    /// without `-icount`).
    pub loader_instructions: Option<u64>,
}

/// Set while a CPU loads or removes a module: one at a time, so an
/// address `place_va` picks is not picked again before it is listed, one
/// `rmmod` frees is not reused before its mappings and their TLB entries
/// are gone on every CPU, and an `init_module` that fails takes its own
/// module off the list. A flag, not a lock: the holder calls module code
/// (`init_module`, `exit_module`), which no kernel lock may be held across
/// (`arch::lock`), and another CPU is refused rather than kept waiting.
static LOADER_BUSY: AtomicBool = AtomicBool::new(false);

/// This CPU's turn at loading or removing a module, until dropped.
struct LoaderTurn;

impl LoaderTurn {
    fn take(name: &str) -> Result<Self, String> {
        LOADER_BUSY
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .map(|_| LoaderTurn)
            .map_err(|_| {
                alloc::format!("{name}: another CPU is loading or removing a module; try again when it is done")
            })
    }
}

impl Drop for LoaderTurn {
    fn drop(&mut self) {
        LOADER_BUSY.store(false, Ordering::SeqCst);
    }
}

/// Loads module `name` from the initrd and runs its `init_module`.
pub fn insmod(name: &str, at: &Where) -> Result<Inserted, String> {
    // Counter 1 runs from the first instruction and is never stopped: the
    // loader's share is a difference of two readings, so the caller can count
    // the whole of `insmod` with counter 0 at the same time.
    let started = pmu::boot_clock();
    let name = module_name(name)?;
    let _turn = LoaderTurn::take(name)?;
    if MODULES.lock().iter().any(|m| m.name == name) {
        return Err(alloc::format!("{name} is already loaded"));
    }
    // Refused before copying if the kernel heap cannot hold the copy.
    let copy = load::Aligned::try_new(initrd_file(at.initrd, name)?).map_err(|e| alloc::format!("{name}: {e}"))?;
    let module = Module::parse(copy.bytes()).map_err(|e| alloc::format!("{name}: {e}"))?;
    let size = module.size();

    // Contiguous frames, so the image is one buffer in the linear map.
    let pages = size / PAGE_SIZE;
    let frames = frames::alloc_frames(pages).ok_or_else(|| alloc::format!("{name}: no {pages} free frames"))?;
    let undo = |msg: String| {
        frames::free_frames_at(frames, pages);
        alloc::format!("{name}: {msg}")
    };
    let buffer = frames.to_linear().as_ptr::<u8>();
    // SAFETY: the frames are ours, mapped rw (Normal memory) in the linear
    // map, `size` bytes, a whole number of pages.
    let image = unsafe {
        cpu::zero_pages(buffer, size as usize);
        core::slice::from_raw_parts_mut(buffer, size as usize)
    };
    let window = if at.far {
        "far part of the PLT window"
    } else {
        "module windows"
    };
    let base = place_va(at, size).ok_or_else(|| undo(alloc::format!("no room for {size:#x} bytes in the {window}")))?;
    let linked = module.link(image, base, abi::find).map_err(|e| undo(e.to_string()))?;

    for (offset, len, area) in module.areas() {
        let attrs = match area {
            Area::Text => Attrs::TEXT,
            Area::Rodata => Attrs::RODATA,
            Area::Data => Attrs::DATA,
        };
        if len > 0
            && let Err(e) = tables::map(base + offset, frames.add(offset), len, attrs, Granularity::PagesOnly)
        {
            let _ = tables::unmap_free(base, size);
            return Err(undo(alloc::format!("cannot map at {base:#x}: {e:?}")));
        }
    }
    // The text was written as data: make it visible to instruction fetch.
    let [(_, text, _), ..] = module.areas();
    cpu::sync_icache(buffer, text as usize);

    let sections: Vec<(String, u64, u64)> = module
        .sections()
        .map(|(name, p)| (name.to_string(), p.offset, p.size))
        .collect();
    let loaded = Loaded {
        name: name.to_string(),
        base,
        size,
        frames,
        pages,
        plt: linked.plt,
        slots: module.plt_slots,
        direct: linked.direct,
        exit: linked.exit,
        functions: module.functions(),
        symbol_file_args: symbol_file_args(base, &sections),
        sections,
        plt_at: module.plt_offset(),
        areas: module.areas().map(|(offset, size, _)| (offset, size)),
        faulted: None,
    };
    let line = describe(&loaded);
    // Listed before its first instruction runs, so a fault in `init_module`
    // finds it (and its memory stays accounted for).
    MODULES.lock().push(loaded);
    // A debugger learns of it before its first instruction runs.
    publish();
    let loader_instructions = started.zip(pmu::boot_clock()).map(|(start, now)| now - start);
    if let Some(init) = linked.init {
        // SAFETY: `init` is the module's `extern "C" fn() -> i32`, mapped r-x
        // and relocated above.
        let code = match (unsafe { call(base, init, [0, 0]) }).map(|x0| x0 as i32) {
            Ok(code) => code,
            // Removed by another CPU's rmmod as soon as it was listed.
            Err(CallError::Removing) => return Err(alloc::format!("{name}: removed before init_module ran")),
            // `call` marked it faulted: it stays listed, holding what it took.
            Err(CallError::Fault(_)) => {
                return Err(alloc::format!(
                    "{name}: init_module faulted; it stays loaded, marked faulted (see lsmod -v; rmmod {name} removes it without running its code)"
                ));
            }
        };
        if code != 0 {
            let mut list = MODULES.lock();
            let mut m = list.pop().expect("listed above");
            drop(list);
            m.exit = None;
            unload(&m);
            publish();
            return Err(alloc::format!("{name}: init_module returned {code}"));
        }
    }
    Ok(Inserted {
        line,
        loader_instructions,
    })
}

/// The module whose code each CPU runs now (its base; 0: none), indexed by
/// `percpu::id`: set by [`call`] before the module's first instruction
/// runs and put back after its last, so `rmmod` on one CPU knows whether
/// another runs the code it is about to free.
static RUNNING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The module `rmmod` is removing (its base; 0: none), and the CPU
/// removing it: from the moment it is set no other CPU enters its code.
///
/// With `RUNNING` it is a store-then-load on each side, all `SeqCst`:
/// [`call`] stores its marker then loads `GOING`, `rmmod` stores `GOING`
/// then loads every marker, so at least one of them sees the other's
/// store: either the call is refused, or `rmmod` waits for it.
static GOING: AtomicU64 = AtomicU64::new(0);
static REMOVER: AtomicU64 = AtomicU64::new(u64::MAX);

/// Why [`call`] did not return the module's x0.
#[derive(Clone, Copy, Debug)]
pub enum CallError {
    /// The call faulted, contained and reported.
    Fault(Fault),
    /// The module is being removed (`rmmod` on another CPU): its code was
    /// not entered.
    Removing,
}

impl CallError {
    /// Where it happened: the fault's instruction (0 if not entered).
    pub fn at(&self) -> u64 {
        match self {
            CallError::Fault(f) => f.elr,
            CallError::Removing => 0,
        }
    }
}

/// The loaded module whose code CPU `cpu` runs now, by name (for `cpus`).
pub fn running_on(cpu: usize) -> Option<String> {
    match RUNNING.get(cpu)?.load(Ordering::SeqCst) {
        0 => None,
        base => Some(loaded::name_of(base).unwrap_or_else(|| alloc::format!("{base:#x}"))),
    }
}

/// Calls module `base`'s code at `target` with `args` (an entry point, a
/// command, a test); its x0. What it registers or allocates is its own. A
/// fault in it is contained (`arch::recovery`): the module is marked
/// faulted, a line says so, and the fault comes back. While the call runs,
/// this CPU's `RUNNING` marker names the module.
///
/// # Errors
/// [`CallError`]: the call did not finish, broke the ABI, or was refused
/// because the module is being removed (a line says so).
///
/// # Safety
/// As for `recovery::run_untrusted`: `target` is an entry point of module
/// `base` taking at most the two arguments.
pub unsafe fn call(base: u64, target: u64, args: [u64; 2]) -> Result<u64, CallError> {
    let me = percpu::id();
    let outer = RUNNING[me].swap(base, Ordering::SeqCst);
    if GOING.load(Ordering::SeqCst) == base && REMOVER.load(Ordering::SeqCst) != me as u64 {
        RUNNING[me].store(outer, Ordering::SeqCst);
        let name = loaded::name_of(base).unwrap_or_default();
        crate::println!("error: {name} is being removed (rmmod on another CPU); its code was not entered");
        return Err(CallError::Removing);
    }
    let heap = frames::heap_in_use();
    let modules_heap = abi::allocations_total();
    // The code may have been written by another CPU (`insmod` there, its
    // `ic ialluis; dsb ish` done): this CPU must not run instructions it
    // fetched before, which only a context synchronization rules out (ARM
    // ARM B2.2.5). TCG has no instruction cache to show it.
    cpu::isb();
    // SAFETY: the caller's contract.
    let result = unsafe { recovery::run_untrusted(base, target, args) }.inspect_err(|fault| {
        // What the heap grew by that no module owns: the abandoned export
        // frames' share (none, while exports keep to `arch::recovery`'s rule).
        let grown = frames::heap_in_use().saturating_sub(heap);
        let by_modules = abi::allocations_total().saturating_sub(modules_heap);
        let leaked = grown.saturating_sub(by_modules) as u64;
        crate::println!("{}", contain(fault, leaked));
    });
    RUNNING[me].store(outer, Ordering::SeqCst);
    // `rmmod` may be waiting in `wfe` for this CPU to leave.
    crate::arch::smp::wake_all();
    result.map_err(CallError::Fault)
}

/// The CPUs other than this one that run module `base`'s code now.
fn cpus_in(base: u64) -> Vec<usize> {
    let me = percpu::id();
    (0..MAX_CPUS)
        .filter(|&n| n != me && RUNNING[n].load(Ordering::SeqCst) == base)
        .collect()
}

/// Claims module `base` for removal, then waits (in `wfe`) until no other
/// CPU runs its code: at most the module watchdog's period, its grace for
/// kernel code and [`REPORT_SLACK_MS`] (`module.watchdog=`; the default
/// period where the watchdog is off), by when a CPU's watchdog has
/// normally ended a call it was in (a call that started before `rmmod`
/// did). A CPU still in it then runs code no watchdog ends (it takes no
/// interrupts, the watchdog is off, or kernel code there holds a lock),
/// and freeing that code under it would be the worst answer. How long it
/// waited, in milliseconds, if another CPU was in it.
///
/// # Errors
/// The line to print: the CPUs still in it, and the module left loaded.
fn quiesce(name: &str, base: u64) -> Result<Option<u64>, String> {
    // The loader's turn (`LoaderTurn`) makes this the only remover. Who
    // removes is known before what: the remover's own `exit_module` call
    // is never refused.
    REMOVER.store(percpu::id() as u64, Ordering::SeqCst);
    GOING.store(base, Ordering::SeqCst);
    let limit_ms = match crate::arch::irq::watchdog_ms() {
        0 => crate::boot::bootargs::DEFAULT_WATCHDOG_MS,
        ms => ms + crate::arch::exceptions::KERNEL_CODE_GRACE_MS + REPORT_SLACK_MS,
    };
    let frequency = counter::frequency().max(1);
    let start = counter::now();
    let deadline = start + frequency * limit_ms / 1000;
    let mut waited = false;
    loop {
        let inside = cpus_in(base);
        if inside.is_empty() {
            return Ok(waited.then(|| (counter::now() - start) * 1000 / frequency));
        }
        waited = true;
        if counter::now() > deadline {
            release_going();
            let cpus: Vec<String> = inside.iter().map(|n| alloc::format!("{n}")).collect();
            return Err(alloc::format!(
                "{name}: cpu {} still runs its code after {limit_ms} ms (module.watchdog=); {name} stays loaded, its code untouched; rmmod again once the command there is done",
                cpus.join(",")
            ));
        }
        crate::arch::smp::wait_for_event();
    }
}

/// What ending a call takes past its watchdog's deadline and grace: the
/// handler's next look (every 10 ms), then the report it prints before
/// the CPU leaves the module's code.
const REPORT_SLACK_MS: u64 = 100;

/// Ends `rmmod`'s claim: the module's code may be entered again (or it is gone).
fn release_going() {
    REMOVER.store(u64::MAX, Ordering::SeqCst);
    GOING.store(0, Ordering::SeqCst);
}

/// Runs module command `word` with the whole `line`; false if there is none.
pub fn run_command(word: &str, line: &str) -> bool {
    match abi::command(word) {
        Some((owner, handler)) => {
            let rest = line.trim_start()[word.len()..].trim();
            // A fault is contained and reported by `call`: the command is over either way.
            // SAFETY: a registered handler, `extern "C" fn(*const u8, usize)`
            // of module `owner`, which stays mapped while registered.
            let _ = unsafe {
                call(
                    owner,
                    handler as usize as u64,
                    [rest.as_ptr() as u64, rest.len() as u64],
                )
            };
            true
        }
        None => false,
    }
}

/// Picks the module's virtual address in the module windows (see
/// `kaslr::module_windows`).
fn place_va(at: &Where, size: u64) -> Option<u64> {
    let loaded: Vec<Span> = MODULES
        .lock()
        .iter()
        .map(|m| Span {
            start: m.base,
            end: m.base + m.size,
        })
        .collect();
    module_windows::place(&at.windows, at.image, &loaded, size, at.far)
}

/// Unmaps and frees module `m`, taking back whatever it left registered or
/// allocated; a note if it left anything.
fn unload(m: &Loaded) -> Option<String> {
    let left = abi::forget(m.base);
    let _ = tables::unmap_free(m.base, m.size);
    frames::free_frames_at(m.frames, m.pages);
    (left.registrations + left.allocations > 0).then(|| {
        alloc::format!(
            "rmmod: {} left {} registration(s) and {} allocation(s) ({} bytes); taken back",
            m.name,
            left.registrations,
            left.allocations,
            left.bytes
        )
    })
}

/// Runs `exit_module` and removes module `name`, freeing all it took; the
/// lines to print (none if all went as it should).
///
/// A faulted module is removed without running its `exit_module`: its code
/// is not trusted to run again. Nothing the kernel keeps points into it
/// once it is gone: its commands and tests went when it faulted, `unload`
/// takes back its heap blocks and usages and unmaps its pages (tables and
/// veneers with them), and its record (the fault's description, its
/// symbols, the debug record's entry) goes with its place in the list. The
/// frames its fault abandoned were never resumed and hold nothing of the
/// heap (`arch::recovery`), so this is all it had: faults cost nothing
/// that outlives `rmmod`, however many there are.
pub fn rmmod(name: &str) -> Result<Vec<String>, String> {
    let name = module_name(name)?;
    let _turn = LoaderTurn::take(name)?;
    let base = (MODULES.lock().iter().find(|m| m.name == name).map(|m| m.base))
        .ok_or_else(|| alloc::format!("{name} is not loaded"))?;
    // No other CPU may be in its code when it goes, nor enter it after.
    let waited = quiesce(name, base)?;
    // What it is now, not before the wait: a fault on another CPU (its
    // watchdog, say) may have marked it meanwhile. It is still listed:
    // only the holder of the loader's turn takes modules off the list. From
    // here on the claim keeps every CPU out of its code, so nothing changes.
    let list = MODULES.lock();
    let m = list
        .iter()
        .find(|m| m.base == base)
        .expect("listed: only the loader's turn removes modules");
    let exit = m.exit;
    let faulted = m.faulted.as_ref().map(|fault| {
        alloc::format!(
            "rmmod: {name} had faulted ({fault}): exit_module not run, since its code is not trusted to run again; its {} pages, tables, {} veneer(s) and records freed",
            m.pages, m.plt
        )
    });
    drop(list);
    let removed = remove_quiesced(name, base, exit, faulted.is_some());
    release_going();
    let waited = waited.map(|ms| alloc::format!("rmmod: waited {ms} ms for another CPU to leave {name}'s code"));
    removed.map(|note| waited.into_iter().chain(faulted).chain(note).collect())
}

/// `rmmod`'s part once no other CPU runs the module's code: runs
/// `exit_module` unless it faulted, and unloads it; `unload`'s note.
fn remove_quiesced(name: &str, base: u64, exit: Option<u64>, faulted: bool) -> Result<Option<String>, String> {
    // It stays listed while `exit_module` runs, as while `init_module` does:
    // if exit faults, `contain` finds the module and marks it faulted, so its
    // frames, mapping and heap blocks stay accounted for and its addresses
    // stay taken (until an `rmmod` of the faulted module).
    if let (false, Some(exit)) = (faulted, exit) {
        // SAFETY: the module's `extern "C" fn()`, still mapped.
        if unsafe { call(base, exit, [0, 0]) }.is_err() {
            return Err(alloc::format!(
                "{name}: exit_module faulted; it stays, marked faulted (see lsmod -v; rmmod {name} again removes it without running its code)"
            ));
        }
    }
    let mut list = MODULES.lock();
    let i = list
        .iter()
        .position(|m| m.base == base)
        .expect("listed above; only the loader's turn removes modules");
    let m = list.remove(i);
    drop(list);
    let note = unload(&m);
    drop(m);
    publish();
    Ok(note)
}

/// `-s NAME ADDRESS ` for each of `sections` (name, offset, size) of a
/// module at `base`: written once per module, into one string.
fn symbol_file_args(base: u64, sections: &[(String, u64, u64)]) -> String {
    use core::fmt::Write;
    // "-s ", " 0x", 16 digits, " ".
    let mut args = String::with_capacity(sections.iter().map(|(name, ..)| name.len() + 23).sum());
    for (section, offset, _) in sections {
        args.push_str("-s ");
        args.push_str(section);
        let _ = write!(args, " {:#x} ", base + offset);
    }
    args
}

/// Tells the debug record which modules are loaded, and where each of their
/// sections is (as `add-symbol-file -s` pairs).
fn publish() {
    let modules = MODULES.lock();
    let list: Vec<(&str, u64, String)> = modules
        .iter()
        .map(|m| (m.name.as_str(), m.base, m.symbol_file_args.clone()))
        .collect();
    crate::debug::record::modules(&list);
}

fn describe(m: &Loaded) -> String {
    let distance = m.base.abs_diff(sections::text().start);
    alloc::format!(
        "{} base={:#x} size={:#x} plt={} slots={} direct={} distance={distance:#x}{}",
        m.name,
        m.base,
        m.size,
        m.plt,
        m.slots,
        m.direct,
        if m.faulted.is_some() { " faulted" } else { "" }
    )
}

/// One line per loaded module; with `verbose`, what each holds.
pub fn lsmod(verbose: bool) -> Vec<String> {
    let modules = MODULES.lock();
    let mut lines = Vec::new();
    for m in modules.iter() {
        lines.push(describe(m));
        if verbose {
            let (blocks, bytes) = abi::allocations_of(m.base);
            lines.push(alloc::format!(
                "  holds pages={} frames={:#x}-{:#x} heap-blocks={blocks} heap-bytes={bytes} heap-budget={} block-budget={}",
                m.pages,
                m.frames.raw(),
                m.frames.raw() + m.pages * PAGE_SIZE,
                abi::HEAP_BUDGET,
                abi::BLOCK_BUDGET
            ));
            if let Some(fault) = &m.faulted {
                lines.push(alloc::format!("  faulted: {fault}"));
            }
            for (name, offset, size) in &m.sections {
                let va = m.base + offset;
                let prot = tables::walk(va).translation.map_or("---", |t| t.prot.as_str());
                lines.push(alloc::format!(
                    "  section {name} va={va:#x}-{:#x} prot={prot}",
                    va + size
                ));
            }
            lines.extend((0..m.plt as u64).map(|slot| veneer_line(m.base + m.plt_at + slot * plt::VENEER_SIZE)));
        }
    }
    if verbose {
        lines.push(alloc::format!(
            "# kernel heap left behind by frames a module fault abandoned: {} bytes",
            LEAKED.load(core::sync::atomic::Ordering::Relaxed)
        ));
    }
    lines
}

/// A loaded module's area, as a `layout` row.
pub struct AreaRow {
    /// `NAME:text`, `NAME:rodata` or `NAME:data`.
    pub name: String,
    /// Its virtual addresses.
    pub va: Span,
    /// The frames behind it.
    pub pa: (u64, u64),
}

/// One row per area of each loaded module that has any bytes.
pub fn layout_rows() -> Vec<AreaRow> {
    let modules = MODULES.lock();
    let mut rows = Vec::new();
    for m in modules.iter() {
        for ((offset, size), area) in m.areas.iter().zip(["text", "rodata", "data"]) {
            if *size > 0 {
                let pa = m.frames.raw() + offset;
                rows.push(AreaRow {
                    name: alloc::format!("{}:{area}", m.name),
                    va: Span {
                        start: m.base + offset,
                        end: m.base + offset + size,
                    },
                    pa: (pa, pa + size),
                });
            }
        }
    }
    rows
}

/// `  veneer 0xAT -> 0xTARGET NAME words=0xADRP,0xADD,0xBR`, decoded from
/// the three instructions the slot holds now.
fn veneer_line(at: u64) -> String {
    // Mapped r-x and ours: the slot is inside a loaded module's text.
    let insn = |i: u64| crate::arch::peek::peek(at + 4 * i, 32).unwrap_or(0) as u32;
    let words = [insn(0), insn(1), insn(2)];
    let [adrp, add, br] = words;
    match plt::veneer_target(at, words) {
        Some(target) => {
            let name = crate::debug::backtrace::symbol(target).map_or_else(|| "?".into(), |s| s.to_string());
            alloc::format!("  veneer {at:#x} -> {target:#x} {name} words={adrp:#010x},{add:#010x},{br:#010x}")
        }
        None => alloc::format!("  veneer {at:#x}: not a veneer, words={adrp:#010x},{add:#010x},{br:#010x}"),
    }
}

/// Heap bytes the abandoned frames of contained faults still hold, leaked
/// on purpose (see `arch::recovery`).
static LEAKED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// After a contained fault in module `base`: marks it faulted and takes its
/// commands and tests away; its memory stays until `rmmod` (which runs none
/// of its code). `leaked` heap bytes were left
/// by the abandoned frames. The line to print.
pub fn contain(fault: &crate::arch::recovery::Fault, leaked: u64) -> String {
    LEAKED.fetch_add(leaked, core::sync::atomic::Ordering::Relaxed);
    let registrations = abi::forget_registrations(fault.owner);
    let mut modules = MODULES.lock();
    let Some(m) = modules.iter_mut().find(|m| m.base == fault.owner) else {
        return alloc::format!("module fault at {:#x}: no module is loaded there", fault.owner);
    };
    let at = loaded::symbolize_in(m, fault.elr)
        .or_else(|| crate::debug::backtrace::symbol(fault.elr))
        .map_or_else(|| alloc::format!("{:#x}", fault.elr), |s| s.to_string());
    let what = match fault.kind {
        Kind::Exception => alloc::format!("{} at {at}", fault.syndrome),
        Kind::StackOverflow => alloc::format!(
            "stack overflow (FAR={:#x} in the guard page below the kernel stack) at {at}",
            fault.far
        ),
        Kind::Clobbered(regs) => alloc::format!(
            "clobbered {regs}, which AAPCS64 has a callee preserve, returning from {at}; the kernel's values were put back"
        ),
        Kind::Watchdog { ms } => alloc::format!("watchdog: no return after {ms} ms at {at}"),
    };
    let line = alloc::format!(
        "module {} faulted: {what}; {registrations} command(s)/test(s) taken away, {} pages kept until rmmod, {leaked} bytes of kernel heap left by the abandoned frames",
        m.name,
        m.pages
    );
    m.faulted = Some(what);
    line
}
