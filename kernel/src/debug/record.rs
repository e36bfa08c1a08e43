//! The debug record: one page at a fixed address (`DEBUG_RECORD_VA`) that
//! tells a debugger where the running kernel is — whatever KASLR chose — and
//! where each loaded module's sections are. `scripts/gdb/splitmap.py` reads
//! it: a watchpoint on `magic` stops gdb the moment boot has filled it in,
//! so the slide is learned in the same boot; `generation` changes on every
//! `insmod` and `rmmod`.
//!
//! Layout (little-endian u64s unless said): magic `"SPLITMAP"`, version,
//! KASLR offset, text VA, image PA, generation, module count, PHYS_OFFSET,
//! the root table's PA (TTBR1), the image's end VA, the PLT module window
//! (start, end), then up to
//! [`MAX_MODULES`] entries of: name (32 bytes, NUL-padded), base, and a
//! pointer and length to a string of `-s SECTION ADDRESS` pairs, the
//! arguments gdb's `add-symbol-file` wants.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::lock::Mutex;
use pi::addr::KimgVirt;
use pi::layout::{DEBUG_RECORD_VA, PAGE_SIZE};

use crate::mm::tables;

/// `"SPLITMAP"`, written last.
const MAGIC: u64 = u64::from_le_bytes(*b"SPLITMAP");
const VERSION: u64 = 1;
/// Modules the record lists.
pub const MAX_MODULES: usize = 16;

#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleEntry {
    name: [u8; 32],
    base: u64,
    sections: u64,
    sections_len: u64,
}

impl ModuleEntry {
    /// A slot no module fills.
    const NONE: ModuleEntry = ModuleEntry {
        name: [0; 32],
        base: 0,
        sections: 0,
        sections_len: 0,
    };
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Record {
    magic: u64,
    version: u64,
    kaslr_offset: u64,
    text: u64,
    image_pa: u64,
    generation: u64,
    modules: u64,
    phys_offset: u64,
    ttbr1: u64,
    image_end: u64,
    plt_start: u64,
    plt_end: u64,
    module: [ModuleEntry; MAX_MODULES],
}

// One page of the build's granule: page-aligned so it maps alone.
#[cfg_attr(not(any(feature = "granule-16k", feature = "granule-64k")), repr(C, align(4096)))]
#[cfg_attr(all(feature = "granule-16k", not(feature = "granule-64k")), repr(C, align(16384)))]
#[cfg_attr(feature = "granule-64k", repr(C, align(65536)))]
struct RecordPage(Record);

const _: () = assert!(core::mem::size_of::<RecordPage>() as u64 == PAGE_SIZE);

/// The page itself, in the image but not in `.bss`: the linker script puts
/// `.record` in the NOLOAD span after `.bss`, which the early code zeroes
/// and this page it does not (with 64 KiB pages the page and its alignment
/// padding were most of `.bss`: 10 k instructions of zeroing at every
/// boot). So it holds garbage, even a previous boot's record, until
/// [`publish`] writes the whole record; only [`PUBLISHED`] says it is valid.
/// Written only through its fixed address, where a debugger's watchpoint
/// sees the writes.
#[unsafe(link_section = ".record")]
static mut RECORD: RecordPage = RecordPage(Record {
    magic: 0,
    version: 0,
    kaslr_offset: 0,
    text: 0,
    image_pa: 0,
    generation: 0,
    modules: 0,
    phys_offset: 0,
    ttbr1: 0,
    image_end: 0,
    plt_start: 0,
    plt_end: 0,
    module: [ModuleEntry::NONE; MAX_MODULES],
});

/// Set once [`publish`] has mapped the record and written all of it (not
/// the record's own magic, which may be a previous boot's).
static PUBLISHED: AtomicBool = AtomicBool::new(false);

/// The strings the module entries point to, kept alive here.
static STRINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record() -> *mut Record {
    DEBUG_RECORD_VA as *mut Record
}

/// Where this boot put things, for the record.
pub struct Boot {
    /// Text VA minus the link address.
    pub kaslr_offset: u64,
    /// The image's first and last-plus-one VA.
    pub image: (u64, u64),
    /// Where the image is in RAM.
    pub image_pa: u64,
    /// The linear map's `PHYS_OFFSET`.
    pub phys_offset: u64,
    /// The kernel tables' root.
    pub ttbr1: u64,
    /// The PLT module window.
    pub plt: (u64, u64),
}

/// Maps the record at its fixed address and fills it in for this boot.
pub fn publish(boot: &Boot) {
    let pa = KimgVirt::new(&raw const RECORD as u64).to_phys();
    if let Err(e) = tables::map_fixed(const { pi::kmap::fixed("debug") }, pa, PAGE_SIZE) {
        log::warn!("debug record: cannot map it at {DEBUG_RECORD_VA:#x}: {e:?}");
        return;
    }
    let r = record();
    // SAFETY: the record's page was just mapped rw at `r`; boot runs on one
    // CPU and nothing else writes it.
    unsafe {
        // All of it, magic 0 first: the page is not zeroed at boot, and a
        // watchpoint on the magic must see it change to MAGIC only once the
        // rest is in place. Written where it lies, not built on the stack
        // and copied (a kilobyte twice: 0.8 k instructions). The magic's
        // 0 is a store of its own, volatile like the rest: a plain `memset`
        // over it, followed by the magic's store below, is one the compiler
        // may trim to start past the magic.
        (&raw mut (*r).magic).write_volatile(0);
        r.write_bytes(0, 1);
        (&raw mut (*r).version).write_volatile(VERSION);
        (&raw mut (*r).kaslr_offset).write_volatile(boot.kaslr_offset);
        (&raw mut (*r).text).write_volatile(boot.image.0);
        (&raw mut (*r).image_pa).write_volatile(boot.image_pa);
        (&raw mut (*r).phys_offset).write_volatile(boot.phys_offset);
        (&raw mut (*r).ttbr1).write_volatile(boot.ttbr1);
        (&raw mut (*r).image_end).write_volatile(boot.image.1);
        (&raw mut (*r).plt_start).write_volatile(boot.plt.0);
        (&raw mut (*r).plt_end).write_volatile(boot.plt.1);
    }
    // Before the magic, which is the last store here: gdb's `sm-boot`
    // watches the magic and stops after it, and a learner should see this
    // function there, not an atomic store inlined into it. A release: the
    // stores above cannot move past it, so none past the magic either.
    PUBLISHED.store(true, Ordering::Release);
    // SAFETY: as above.
    unsafe { (&raw mut (*r).magic).write_volatile(MAGIC) };
}

/// Lists the loaded modules: (name, base, `add-symbol-file` section args).
pub fn modules(list: &[(&str, u64, String)]) {
    // Without `publish` (mapping failed, or boot has not got there) the
    // fixed address may be unmapped and the page garbage: no record to
    // update.
    if !PUBLISHED.load(Ordering::Acquire) {
        return;
    }
    let r = record();
    let mut strings = STRINGS.lock();
    strings.clear();
    for (i, (name, base, args)) in list.iter().take(MAX_MODULES).enumerate() {
        let mut entry = ModuleEntry {
            name: [0; 32],
            base: *base,
            sections: 0,
            sections_len: args.len() as u64,
        };
        let n = name.len().min(31);
        entry.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        strings.push(args.clone());
        entry.sections = strings[i].as_ptr() as u64;
        // SAFETY: `PUBLISHED` says `publish` mapped the page rw at `r`, for
        // good; `i` < MAX_MODULES; only the shell writes it now, and
        // holds `STRINGS` while it does.
        unsafe { (&raw mut (*r).module[i]).write_volatile(entry) };
    }
    // SAFETY: as above.
    unsafe {
        (&raw mut (*r).modules).write_volatile(list.len().min(MAX_MODULES) as u64);
        let generation = (&raw const (*r).generation).read_volatile();
        (&raw mut (*r).generation).write_volatile(generation + 1);
    }
    splitmap_modules_changed();
}

/// Called once the record lists the modules anew: a debugger's breakpoint
/// here reloads module symbols (as Linux's `lx-symbols` breaks in
/// `do_init_module`). Does nothing else.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn splitmap_modules_changed() {
    core::hint::black_box(());
}
