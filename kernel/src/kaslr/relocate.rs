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
//! Step 2 adds `offset` to what each RELR site holds *then*, so a word written
//! before the move stays right only if it is a RELR site: a static whose
//! initial value is an image address, as the vtable half of `log`'s logger
//! pointer is (it starts as `&NopLogger`; `console::init_log` sets it before
//! the move). Its data half is no RELR site: it stays right only because the
//! logger is zero-sized and never read through it (asserted in
//! `console::terminal`). The exception handler's borrowed functions are
//! stored before the move too, and lent again after it (`init::phases`).
//! Any other pointer into the image stored before the move would keep the
//! link address, which step 4 unmaps.

use pi::addr::{self, PhysAddr};
use pi::layout::{KIMAGE_VADDR, PAGE_SIZE};

use super::decide::Kaslr;
use super::relr;
use crate::arch::once::WriteOnce;
use crate::arch::{cpu, pmu, sections};
use crate::mm::ranges::PhysRange;
use crate::mm::tables;

/// What the move cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct Moved {
    /// Relocations applied.
    pub relocations: u64,
    /// Instructions the relocation pass took, if the PMU counts them.
    pub instructions: Option<u64>,
}

static DECISION: WriteOnce<Option<(Kaslr<'static>, Moved)>> = WriteOnce::new(None);

/// The boot's decision and what carrying it out cost.
///
/// # Panics
/// Before [`apply`], which nothing after boot can observe.
pub fn get() -> (Kaslr<'static>, Moved) {
    *decision()
}

/// [`get`], in place: boot reads it without copying its 150 bytes.
///
/// # Panics
/// As [`get`].
pub fn decision() -> &'static (Kaslr<'static>, Moved) {
    DECISION.some().expect("KASLR decided at boot")
}

/// The image's offset from its link address: 0 until the decision is made
/// (so a fault that early is still symbolised).
pub fn offset() -> u64 {
    DECISION.some().map_or(0, |(k, _)| k.offset)
}

/// Records `k`, and if it moves the image, moves it and continues in
/// `next(args)` at the new address. Returns only if there is no move.
///
/// # Safety
/// Called once, from the boot path at the link address, after the linear map
/// is built and before anything stores an image address at run time.
pub unsafe fn apply(k: &Kaslr<'static>, image: PhysRange, next: extern "C" fn(u64, u64, u64) -> !, args: [u64; 3]) {
    if !k.moves() {
        DECISION.set(Some((*k, Moved::default())));
        return;
    }
    let offset = k.offset;
    for pi::boot::Segment { start, end, mapping } in pi::boot::image_segments() {
        let pa = PhysAddr::new(start - addr::kimage_voffset());
        if let Err(e) = tables::map(start + offset, pa, end - start, mapping.attrs, mapping.granularity) {
            panic!("KASLR: cannot map the image at {:#x}: {e:?}", start + offset);
        }
    }

    let mut moved = Moved::default();
    let counter = pmu::Instructions::start();
    // The image's alias in the linear map, which is writable. The closure
    // takes its numbers by value, so the loop keeps them in registers.
    let linear = image.start.to_linear();
    moved.relocations = relr::for_each_site(sections::relr(), move |site| {
        let p = linear.add(site - KIMAGE_VADDR).as_ptr::<u64>();
        // SAFETY: each RELR site is a word inside the image (the linker says
        // so), reached through the linear map, which is writable.
        unsafe { p.write_volatile(p.read_volatile().wrapping_add(offset)) };
        // Relocated words may be fetched as instructions (literal pools).
        cpu::clean_to_pou(p.cast());
    });
    cpu::invalidate_icache();
    moved.instructions = counter.map(pmu::Instructions::stop);

    DECISION.set(Some((*k, moved)));
    let voffset = addr::kimage_voffset() + offset;
    addr::set_kimage(image.start, image.end, voffset);
    tables::locked(|tables, _| tables.rebase(voffset));
    let stacks = cpu::Stacks {
        exception: sections::boot_stack().end + offset,
        kernel: None,
    };
    // SAFETY: the whole image (`next` and the first frame with it) and the
    // boot stack are mapped `offset` above, the same memory as at the old
    // address; nothing on the old stack is used again.
    unsafe { cpu::continue_on(stacks, next as usize as u64, args, offset) }
}

/// After a move, removes the image's mapping at its link address.
pub fn unmap_link_address() {
    let (k, _) = decision();
    if !k.moves() {
        return;
    }
    let size = k.image.size().next_multiple_of(PAGE_SIZE);
    if let Err(e) = tables::unmap(KIMAGE_VADDR, size) {
        panic!("KASLR: cannot unmap the link address: {e:?}");
    }
}
