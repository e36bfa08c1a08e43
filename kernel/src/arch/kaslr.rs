//! Moving the running kernel to its randomised address.
//!
//! The image is linked at `KIMAGE_VADDR` as a position-independent executable;
//! the linker leaves a RELR list of every word that holds a link-time address.
//! A nokaslr boot touches none of them. Otherwise, once the linear map exists:
//!
//! 1. map the image a second time at `KIMAGE_VADDR + offset`;
//! 2. add `offset` to every RELR site, writing through the linear map (the
//!    image mapping of rodata is read-only);
//! 3. jump to the same code at the new address, with the stack moved too;
//! 4. unmap the link address, so the image is only where KASLR put it.
//!
//! Between 2 and 3 the code still runs at the link address while pointers in
//! data already point at the new one; both mappings are live, so either works.
//! Nothing written at run time before the move holds an image address.

use aarch64_cpu::registers::{ID_AA64ISAR0_EL1, Readable};
use pi::addr::{self, PhysAddr};
use pi::layout::KIMAGE_VADDR;
use pi::pgtable::Granularity;
use spin::Once;

use super::memory::TABLES;
use crate::bootargs::BootArgs;
use crate::dtb::BootInfo;
use crate::kaslr::{SeedSource, Window, choose_seed, window_from_args};
use crate::module::region::{self, Span, Windows};
use crate::ranges::PhysRange;
use crate::relr;

/// Why the image stayed at its link address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Off {
    /// `nokaslr`.
    NoKaslr,
    /// No seed from any source.
    NoSeed,
    /// `kaslr.window`/`kaslr.align` were refused (the reason is printed at boot).
    BadWindow,
}

/// What KASLR decided. Plain numbers: it is recorded before the move.
#[derive(Clone, Copy, Debug)]
pub struct Kaslr {
    /// Text VA minus `KIMAGE_VADDR`.
    pub offset: u64,
    /// Where the seed came from, if KASLR is on.
    pub source: Option<SeedSource>,
    /// Why it is off, if it is.
    pub off: Option<Off>,
    /// The window in force (the default one if the arguments were refused).
    pub window: Window,
    /// Placements the window allows for this image.
    pub slots: u64,
    /// Relocations applied by the move.
    pub relocations: u64,
    /// Instructions the relocation pass took, if the PMU counts them.
    pub relocation_insns: Option<u64>,
    /// Where the image runs (text VA to the end of bss).
    pub image: Span,
    /// The module windows around it.
    pub modules: Windows,
    /// Whether the linear map's base was randomised (`kaslr.linear=on`).
    pub linear_random: bool,
}

static KASLR: Once<Kaslr> = Once::new();

/// The decision (after [`decide`]).
pub fn get() -> Kaslr {
    *KASLR.get().expect("KASLR decided at boot")
}

unsafe extern "C" {
    static __relr_start: u64;
    static __relr_end: u64;
    static __boot_stack_end: u8;
}

/// Reads RNDR if the CPU has FEAT_RNG.
fn rndr() -> Option<u64> {
    if (ID_AA64ISAR0_EL1.get() >> 60) & 0xf == 0 {
        return None;
    }
    let value: u64;
    let ok: u64;
    // SAFETY: RNDR (s3_3_c2_c4_0) exists (checked above) and only reads; a
    // failure sets NZCV to 0b0100, seen through `cset`.
    unsafe {
        core::arch::asm!("mrs {v}, s3_3_c2_c4_0", "cset {ok}, ne", v = out(reg) value, ok = out(reg) ok, options(nomem, nostack))
    };
    (ok != 0).then_some(value)
}

/// The image at its link address.
fn link_span(size: u64) -> Span {
    Span {
        start: KIMAGE_VADDR,
        end: KIMAGE_VADDR + size,
    }
}

/// The seed and its source, in order of preference; RNDR is read only when
/// no other source has one.
fn seed(args: &BootArgs<'_>, dtb_seed: Option<u64>) -> Option<(u64, SeedSource)> {
    let rndr = if args.kaslr_seed.or(dtb_seed).is_some() {
        None
    } else {
        rndr()
    };
    choose_seed(args.kaslr_seed, dtb_seed, rndr)
}

/// The linear map's `PHYS_OFFSET`: RAM's first GiB, or with `kaslr.linear=on`
/// (and KASLR on, with a seed) that moved down by a random number of GiB, so
/// the linear map starts higher. Reads the seed sources without consuming
/// them: [`decide`] zeroes the DTB's seed once the linear map exists. True if
/// randomised.
pub fn linear_phys_offset(dt: &BootInfo<'_>, args: &BootArgs<'_>) -> (PhysAddr, bool) {
    let fixed = crate::linear::phys_offset(&dt.memory);
    if !args.kaslr_linear || args.nokaslr {
        return (fixed, false);
    }
    match seed(args, dt.kaslr_seed.map(|(seed, _)| seed)) {
        // A draw of its own, so the linear base says nothing about the image's.
        Some((seed, _)) => (
            crate::linear::randomised_phys_offset(&dt.memory, region::mix(seed, 3)),
            true,
        ),
        None => (fixed, false),
    }
}

/// Chooses the offset from the seed sources and the window, zeroing the DTB's
/// seed once read (as Linux does, so it is not reused).
pub fn decide(dt: &BootInfo<'_>, args: &BootArgs<'_>, dtb_pa: u64, image: PhysRange, linear_random: bool) -> Kaslr {
    let size = image.size();
    let dtb_seed = dt.kaslr_seed.map(|(seed, at)| {
        let p = PhysAddr::new(dtb_pa + at as u64).to_linear().as_ptr::<[u8; 8]>();
        // SAFETY: the DTB is RAM, mapped writable in the linear map, and no
        // reference into it is held while this one word is cleared.
        unsafe { p.write_volatile([0; 8]) };
        seed
    });
    let window = window_from_args(args.kaslr_window, args.kaslr_align, size);
    let default = Window::default_window();
    let mut k = Kaslr {
        offset: 0,
        source: None,
        off: None,
        window: *window.as_ref().unwrap_or(&default),
        slots: 0,
        relocations: 0,
        relocation_insns: None,
        image: link_span(size),
        modules: region::windows(link_span(size), None),
        linear_random,
    };
    k.slots = k.window.slots(size);
    if args.nokaslr {
        k.off = Some(Off::NoKaslr);
    } else if window.is_err() {
        k.off = Some(Off::BadWindow);
    } else {
        match seed(args, dtb_seed) {
            Some((seed, source)) => {
                k.source = Some(source);
                k.offset = k.window.pick(seed, size).map_or(0, |va| va - KIMAGE_VADDR);
                k.image = Span {
                    start: KIMAGE_VADDR + k.offset,
                    end: KIMAGE_VADDR + k.offset + size,
                };
                k.modules = region::windows(k.image, Some(seed));
            }
            None => k.off = Some(Off::NoSeed),
        }
    }
    k
}

/// Records "KASLR off" when there is no RAM to build a linear map in (boot
/// reports that and stops).
pub fn record_without_ram() {
    let window = Window::default_window();
    KASLR.call_once(|| Kaslr {
        offset: 0,
        source: None,
        off: Some(Off::NoSeed),
        window,
        slots: 0,
        relocations: 0,
        relocation_insns: None,
        image: link_span(0),
        modules: region::windows(link_span(0), None),
        linear_random: false,
    });
}

/// Records `k`, and if it moves the image, moves it and continues in
/// `next(x0, x1, x2)` at the new address. Returns only if there is no move.
///
/// # Safety
/// Called once, from the boot path at the link address, after the linear map
/// is built and before anything stores an image address at run time.
pub unsafe fn apply(mut k: Kaslr, image: PhysRange, next: extern "C" fn(u64, u64, u64) -> !, args: [u64; 3]) {
    if k.offset == 0 {
        KASLR.call_once(|| k);
        return;
    }
    let offset = k.offset;
    for (start, end, attrs) in pi::boot::image_segments() {
        let pa = PhysAddr::new(start - addr::kimage_voffset());
        if let Err(e) = super::memory::map(start + offset, pa, end - start, attrs, Granularity::LargestBlocks) {
            panic!("KASLR: cannot map the image at {:#x}: {e:?}", start + offset);
        }
    }

    // SAFETY: the linker brackets the RELR list with these symbols; it is in
    // rodata, mapped and never written.
    let entries = unsafe {
        let start = &raw const __relr_start;
        core::slice::from_raw_parts(start, (&raw const __relr_end).offset_from(start) as usize)
    };
    let counter = super::pmu::Instructions::start();
    relr::for_each_site(entries, |site| {
        let p = image.start.add(site - KIMAGE_VADDR).to_linear().as_ptr::<u64>();
        // SAFETY: each RELR site is a word inside the image (the linker says
        // so), reached through the linear map, which is writable.
        unsafe {
            p.write_volatile(p.read_volatile().wrapping_add(offset));
            core::arch::asm!("dc cvau, {p}", p = in(reg) p, options(nostack, preserves_flags));
        }
        k.relocations += 1;
    });
    // SAFETY: cache maintenance only: relocated words may be fetched as
    // instructions only after they reach the point of unification.
    unsafe {
        core::arch::asm!(
            "dsb ish",
            "ic iallu",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
    k.relocation_insns = counter.map(super::pmu::Instructions::stop);

    KASLR.call_once(|| k);
    let voffset = addr::kimage_voffset() + offset;
    addr::set_kimage(image.start, image.end, voffset);
    TABLES.lock().as_mut().expect("tables set up first").rebase(voffset);
    let target = next as usize as u64 + offset;
    let stack = &raw const __boot_stack_end as u64 + offset;
    // SAFETY: `target` is `next` in the new mapping, `stack` the top of the
    // boot stack there; nothing on the old stack is used again.
    unsafe {
        core::arch::asm!(
            "mov sp, {stack}",
            "mov x29, xzr",
            "mov x30, xzr",
            "br {target}",
            stack = in(reg) stack,
            target = in(reg) target,
            in("x0") args[0],
            in("x1") args[1],
            in("x2") args[2],
            options(noreturn),
        )
    }
}

/// After a move, removes the image's mapping at its link address.
pub fn unmap_link_address(image_size: u64) {
    if get().offset == 0 {
        return;
    }
    let size = image_size.next_multiple_of(pi::layout::PAGE_SIZE);
    if let Err(e) = super::memory::unmap(KIMAGE_VADDR, size) {
        panic!("KASLR: cannot unmap the link address: {e:?}");
    }
}
