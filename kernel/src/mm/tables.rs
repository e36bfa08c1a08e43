//! The live kernel page tables after the MMU is on: how table pages are
//! reached, where new ones come from, and the one lock under which every
//! mapping is made, published and removed.

use crate::arch::lock::Mutex;
use aarch64_cpu::asm::barrier;
use pi::addr::PhysAddr;
use pi::boot::EarlyPool;
use pi::kmap::FixedWindow;
use pi::layout::PAGE_SIZE;
use pi::pgtable::{
    self, Attrs, FreedTable, Granularity, LAST_LEVEL, MapCounts, MapError, TableAccess, TableAlloc, TableFree,
    Unmapped, Walk,
};

use super::frames::{alloc_frame, free_frame};
use super::linear::{self, LinearError};
use super::ranges::RangeList;
use crate::arch::cpu;

/// Where a live table page is: pool pages through the image mapping, any
/// other page (a frame) through the linear map. Both mappings are rw.
fn live_table(pa: PhysAddr) -> *mut u64 {
    match pa.to_kimg() {
        Some(kimg) => kimg.as_ptr(),
        None => pa.to_linear().as_ptr(),
    }
}

/// Page tables being extended after boot: pages from the image's pool while
/// it lasts, then frames, so modules and stacks are never refused for want of
/// table pages. [`unmap_free`] gives back the tables a range leaves empty
/// (module windows); a plain [`unmap`] keeps them for the next mapping there.
pub struct KernelTables {
    pool: EarlyPool,
    /// Table pages from frames, in use now.
    from_frames: u64,
    /// Pool pages given back, linked through their first entry (a PA, or 0
    /// at the end): reused before the pool's fresh pages.
    recycled: Option<PhysAddr>,
    recycled_count: u64,
    /// Table pages given back since boot.
    freed: u64,
    /// While the linear map is built: the pool's last pages are not handed
    /// out (see [`KEPT_FOR_THE_CONSOLE`]).
    building_linear: bool,
}

/// The one writer of the live kernel tables.
static TABLES: Mutex<Option<KernelTables>> = Mutex::new(None);

/// Takes over the tables the early code built, and the rest of its pool.
pub fn init(pool: EarlyPool) {
    *TABLES.lock() = Some(KernelTables::new(pool));
}

/// Where the kernel's table pages came from: the image's pool, then frames.
#[derive(Clone, Copy)]
pub struct TableUsage {
    /// Pool pages in use now (handed out and not given back).
    pub pool_used: u64,
    pub pool_size: u64,
    /// Table pages from frames in use now.
    pub from_frames: u64,
    /// Table pages given back since boot (pool and frames).
    pub freed: u64,
}

impl KernelTables {
    /// Continues the early pool.
    pub fn new(pool: EarlyPool) -> Self {
        KernelTables {
            pool,
            from_frames: 0,
            recycled: None,
            recycled_count: 0,
            freed: 0,
            building_linear: false,
        }
    }

    /// The image (and the pool in it) is now mapped `voffset` above its PA.
    pub fn rebase(&mut self, voffset: u64) {
        self.pool.set_va_offset(voffset);
    }

    pub fn usage(&self) -> TableUsage {
        TableUsage {
            pool_used: self.pool.used() - self.recycled_count,
            pool_size: self.pool.capacity(),
            from_frames: self.from_frames,
            freed: self.freed,
        }
    }

    /// A pool page given back earlier, zeroed (the link word was its only
    /// non-zero entry).
    fn reuse_recycled(&mut self) -> Option<PhysAddr> {
        let pa = self.recycled?;
        let page = live_table(pa);
        // SAFETY: a recycled pool page is unlinked (no walk reaches it since
        // its `free_table`), owned by this list alone, and mapped rw in the
        // image; its first entry holds the next link.
        let next = unsafe { page.read_volatile() };
        self.recycled = (next != 0).then_some(PhysAddr::new(next));
        self.recycled_count -= 1;
        // SAFETY: as above; the whole page is ours.
        unsafe { core::ptr::write_bytes(page.cast::<u8>(), 0, PAGE_SIZE as usize) };
        Some(pa)
    }
}

// SAFETY: every table page is either in the image's pool or a RAM frame, and
// `live_table` reaches both through rw mappings. Neither is memory a Rust
// reference points into, and `TABLES` is the only `KernelTables`: a `&mut`
// to it (the only way to write) means holding its lock.
unsafe impl TableAccess for KernelTables {
    fn table_ptr(&self, pa: PhysAddr) -> *const u64 {
        live_table(pa)
    }

    fn table_ptr_mut(&mut self, pa: PhysAddr) -> *mut u64 {
        live_table(pa)
    }
}

impl TableAlloc for KernelTables {
    /// A zeroed table page, its zeroes visible to the table walker.
    ///
    /// The caller links the page into a live table next (`pgtable::map`
    /// writes the table descriptor right after this returns; a table from
    /// `pgtable::build_split` is swapped in later, after a TLB flush whose
    /// `dsb ishst` orders its entries too), and from that store on the
    /// walker may read the new page: a speculative walk, or one for a
    /// neighbouring address. Without a barrier the zeroing stores may
    /// still be in flight then, and the walker would see stale entries as
    /// valid ones. So `dsb ishst` after zeroing, before returning, as
    /// Linux's page-table allocation does ("ensure the zeroing is observed
    /// by page table walks"). The pool's pages are zeroed by
    /// `EarlyPool::alloc_table`, which issues no barrier (with the MMU off
    /// it needs none): this one covers both sources.
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        if self.building_linear && self.pool.capacity() - self.pool.used() <= KEPT_FOR_THE_CONSOLE {
            return None;
        }
        let pa = match self.reuse_recycled().or_else(|| self.pool.alloc_table()) {
            Some(pa) => pa,
            // Before `init_frames` there are none, and the pool is all there is.
            None => {
                let pa = alloc_frame()?;
                // SAFETY: a free frame is ours and mapped rw in the linear map.
                unsafe { core::ptr::write_bytes(pa.to_linear().as_ptr::<u8>(), 0, PAGE_SIZE as usize) };
                self.from_frames += 1;
                pa
            }
        };
        barrier::dsb(barrier::ISHST);
        Some(pa)
    }
}

impl TableFree for KernelTables {
    /// Break-before-make for a table descriptor: `pgtable::unmap_free` has
    /// cleared the descriptor (the break); before the page is written or
    /// handed out, no walk may still reach it. So, as for a leaf: `dsb
    /// ishst` makes the cleared descriptor visible to the walkers of every
    /// CPU, `tlbi vmalle1is` drops whatever the TLBs and walk caches hold
    /// through the old table (a TLBI by VA at `freed.va` would do too, as
    /// the walk cache entry for the descriptor is tagged with the VAs it
    /// translates; the whole TLB needs no such argument, and unloading is
    /// rare), `dsb ish` waits until that is done everywhere, `isb` for this
    /// CPU's pipeline. Only then is the page reused: a pool page goes on
    /// the recycled list (its first entry becomes the link), a frame back to
    /// the frame allocator.
    fn free_table(&mut self, freed: FreedTable) {
        cpu::flush_tlb();
        self.freed += 1;
        if freed.table.to_kimg().is_some() {
            let page = live_table(freed.table);
            let next = self.recycled.map_or(0, PhysAddr::raw);
            // SAFETY: the page is unlinked and invalidated above, so nothing
            // but this list reaches it; it is mapped rw in the image.
            unsafe { page.write_volatile(next) };
            self.recycled = Some(freed.table);
            self.recycled_count += 1;
        } else {
            free_frame(freed.table);
            self.from_frames -= 1;
        }
    }
}

/// The shallowest level whose tables [`unmap_free`] gives back: tables of
/// level-2 and level-3 entries (with 4 KiB pages, those that translate 1 GiB
/// and 2 MiB). Never the root, and never a level-1 table: one of those
/// spans 512 GiB with 4 KiB pages and 128 TiB with 16 KiB (all of the
/// kernel half), so the image, the module windows, the fixed windows and
/// the MMIO window hang from the same one; the early code built them, and
/// they are the upper structure every later mapping descends through (with
/// 64 KiB pages level 1 is the root itself). A level-2 or level-3 table that
/// is empty maps nothing, and nothing keeps a table's address outside the
/// tables: every map, unmap, split and walk finds tables from the root,
/// under the tables' lock, so an empty one can go.
pub const FIRST_FREEABLE_LEVEL: usize = LAST_LEVEL - 1;

/// Table pages the linear map leaves in the pool: the console's mapping,
/// which comes after it, takes at most one (the MMIO window shares its upper
/// tables with the device tree's, which the early code mapped); kept so that
/// a linear map that runs out can still be reported. Frames do not exist
/// yet when the linear map is built, so the pool is all there is.
///
/// A flag of [`KernelTables`], not a wrapper type around it: one type of
/// tables means one copy of `pgtable::map` and what it calls, and both the
/// device tree's window and the linear map are mapped at boot (a second
/// copy was 27 more blocks for QEMU to translate).
const KEPT_FOR_THE_CONSOLE: u64 = 1;

/// Runs `f` on the live tables and their root, under the tables' lock. Only
/// one `KernelTables` exists, so the `&mut` it gets is the lock's.
pub fn locked<R>(f: impl FnOnce(&mut KernelTables, PhysAddr) -> R) -> R {
    let mut tables = TABLES.lock();
    f(tables.as_mut().expect("tables set up at boot"), cpu::ttbr1_root())
}

/// The walk the MMU would do for `va`, read from the live tables.
pub fn walk(va: u64) -> Walk {
    locked(|tables, root| pgtable::walk(tables, root, va))
}

/// Descriptors of each size that map `[va, va + len)` in the live tables.
pub fn count(va: u64, len: u64) -> MapCounts {
    locked(|tables, root| pgtable::count(tables, root, va, len))
}

/// The linear map as the live tables hold it now (after `rodata=full`
/// split a block, say): descriptors of each size and table pages, each
/// table counted once however many RAM ranges share it.
pub fn linear_now(ram: &RangeList) -> MapCounts {
    let offset = pi::addr::phys_offset();
    let (Some(first), Some(last)) = (ram.iter().next(), ram.iter().last()) else {
        return MapCounts::default();
    };
    let start = linear::linear_va(first.start.raw(), offset);
    count(start, linear::linear_va(last.end.raw(), offset) - start)
}

/// Where the kernel's table pages came from so far.
pub fn usage() -> TableUsage {
    locked(|tables, _| tables.usage())
}

/// Maps `[va, va + len)` to `pa` in the live kernel tables, under their lock,
/// and makes the new entries visible to the table walker.
#[inline(never)]
pub fn map(va: u64, pa: PhysAddr, len: u64, attrs: Attrs, granularity: Granularity) -> Result<(), MapError> {
    let mapped = locked(|tables, root| pgtable::map(tables, root, va, pa, len, attrs, granularity));
    cpu::publish_tables();
    mapped.map(|_| ())
}

/// Maps `len` bytes from `pa` at the start of fixed window `w` (a row of
/// `pi::kmap`), as its row says; returns the address.
///
/// # Panics
/// If `len` overflows the window: callers size what they map from
/// `layout.rs`, so that is a mistake in the kernel, not a run-time condition.
pub fn map_fixed(w: FixedWindow, pa: PhysAddr, len: u64) -> Result<u64, MapError> {
    assert!(
        len <= w.end - w.start,
        "{len:#x} bytes overflow the window at {:#x}",
        w.start
    );
    map(w.start, pa, len, w.mapping.attrs, w.mapping.granularity).map(|()| w.start)
}

/// [`map_fixed`] for the panic path: does nothing and says so (false) if
/// the tables are not set up yet or are locked by whoever panicked.
pub fn try_map_fixed(w: FixedWindow, pa: PhysAddr, len: u64) -> bool {
    len <= w.end - w.start && try_map(w.start, pa, len, w.mapping.attrs, w.mapping.granularity)
}

/// [`map`] for the panic path: does nothing and says so (false) if the
/// tables are not set up yet or are locked by whoever panicked.
pub fn try_map(va: u64, pa: PhysAddr, len: u64, attrs: Attrs, granularity: Granularity) -> bool {
    let Some(mut tables) = TABLES.try_lock() else {
        return false;
    };
    let Some(tables) = tables.as_mut() else {
        return false;
    };
    let mapped = pgtable::map(tables, cpu::ttbr1_root(), va, pa, len, attrs, granularity);
    cpu::publish_tables();
    mapped.is_ok()
}

/// Removes the kernel mappings of `[va, va + len)` (page-aligned), under the
/// tables' lock, and flushes the TLB. Returns the entries cleared.
pub fn unmap(va: u64, len: u64) -> Result<u64, MapError> {
    // Flushed under the lock: no other CPU maps anything at these addresses
    // before every CPU's TLB has let go of the old entries (break before
    // make across CPUs).
    locked(|tables, root| {
        let cleared = pgtable::unmap(tables, root, va, len);
        cpu::flush_tlb();
        cleared
    })
}

/// [`unmap`], and gives back the table pages the range leaves empty, from
/// [`FIRST_FREEABLE_LEVEL`] down (each with break-before-make, see
/// [`KernelTables::free_table`]): `rmmod`'s, so that loading and unloading
/// modules all over the module windows leaves no table pages behind.
pub fn unmap_free(va: u64, len: u64) -> Result<Unmapped, MapError> {
    // Flushed under the lock, as in [`unmap`].
    locked(|tables, root| {
        let done = pgtable::unmap_free(tables, root, va, len, FIRST_FREEABLE_LEVEL);
        cpu::flush_tlb();
        done
    })
}

/// Builds the linear map of all `ram` for `phys_offset` in the live tables,
/// under their lock, and publishes it.
///
/// # Errors
/// What `linear::build` refused; ranges mapped before it stay mapped.
pub fn build_linear(ram: &RangeList, phys_offset: PhysAddr) -> Result<MapCounts, LinearError> {
    let built = locked(|tables, root| {
        tables.building_linear = true;
        let built = linear::build(tables, root, ram, phys_offset);
        tables.building_linear = false;
        built
    });
    cpu::publish_tables();
    built
}
