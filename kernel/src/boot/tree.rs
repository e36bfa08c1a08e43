//! The device tree as the kernel proper reads it: through the read-only
//! window the early code mapped at `FIXMAP_DTB`, once at boot (and once more
//! for `phases`), and its KASLR seed zeroed through the linear map once used.

use pi::layout::{FIXMAP_DTB, PAGE_SIZE};

use super::cost;
use super::dtb::{self, DtbError};
use super::info::BootInfo;
use crate::arch::{counter, cpu, pmu};

/// The DTB as the early code mapped it, read-only, at `FIXMAP_DTB` (the
/// mapping stays for good); `len` bytes from its start.
///
/// # Safety
/// The early code must have mapped at least `len` bytes of the DTB at
/// `dtb_pa` (the header's 8 bytes always; all of `totalsize` once checked).
unsafe fn dtb_window(dtb_pa: u64, len: u64) -> &'static [u8] {
    let va = FIXMAP_DTB + (dtb_pa & (PAGE_SIZE - 1));
    // SAFETY: the caller's contract; nothing writes the window.
    unsafe { core::slice::from_raw_parts(va as *const u8, len as usize) }
}

/// Reads the DTB the early code mapped at `FIXMAP_DTB`, and the command line
/// in it, into `info`, which must be [`BootInfo::EMPTY`].
///
/// # Errors
/// Why the tree cannot be read at all; `info` is then half-filled.
pub fn read_into(dtb_pa: u64, boot_regs: u64, info: &mut BootInfo<'static>) -> Result<(), DtbError> {
    if dtb_pa == 0 || !dtb_pa.is_multiple_of(8) {
        return Err(DtbError::BadAddress(dtb_pa));
    }
    // SAFETY: the early code maps at least the header's first 8 bytes of any
    // non-zero x0 (`pi::boot::dtb_size`).
    let size = dtb::header_totalsize(unsafe { dtb_window(dtb_pa, 8) })?;
    // SAFETY: the early code mapped the whole `totalsize`, which
    // `header_totalsize` checked against the protocol's 2 MiB cap.
    let blob = unsafe { dtb_window(dtb_pa, size) };
    info.read_into(blob, dtb_pa, cpu::pa_bits(), boot_regs)
}

/// The device tree phase's reading of `info` once more — the same tree (but
/// for the KASLR seed, zeroed after use), the same code — for `phases`
/// ([`cost::Again`]).
///
/// # Errors
/// Why the tree no longer reads, which would mean something overwrote it.
pub fn read_again(info: &BootInfo<'_>) -> Result<cost::Again, DtbError> {
    // Emptied before counting: the boot's static starts empty for free.
    let mut scratch = BootInfo::EMPTY;
    let counting = pmu::Instructions::start();
    let start = counter::now();
    let again = read_into(info.dtb.start.raw(), info.boot_regs, &mut scratch);
    let ticks = counter::now() - start;
    let instructions = counting.map(pmu::Instructions::stop);
    // What was read is thrown away; the reading must still happen.
    core::hint::black_box(&scratch);
    again.map(|()| cost::Again {
        instructions,
        micros: cost::micros(ticks, counter::frequency()),
    })
}

/// `/chosen/kaslr-seed` as the DTB holds it now (zero once boot consumed it).
pub fn kaslr_seed_now(info: &BootInfo<'_>) -> Option<u64> {
    let (_, at) = info.dt.kaslr_seed?;
    // SAFETY: `at` is inside the blob, whose whole `totalsize` is mapped.
    let blob = unsafe { dtb_window(info.dtb.start.raw(), info.dtb.size()) };
    Some(u64::from_be_bytes(blob.get(at..at + 8)?.try_into().ok()?))
}

/// Zeroes `/chosen/kaslr-seed` so the seed is not reused (as Linux does),
/// through the linear map: the DTB window is read-only. A tree outside RAM
/// has no linear alias and keeps its seed (boot says so).
pub fn zero_kaslr_seed(info: &BootInfo<'_>) {
    if let Some((_, at)) = info.dt.kaslr_seed
        && info.dtb_in_ram()
    {
        let p = info.dtb.start.add(at as u64).to_linear().as_ptr::<[u8; 8]>();
        // SAFETY: the DTB is RAM, mapped writable in the linear map (just
        // built), and no reference into that word is held while it is cleared.
        unsafe { p.write_volatile([0; 8]) };
    }
}
