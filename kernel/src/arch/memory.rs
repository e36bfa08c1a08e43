//! Memory after the MMU is on: how live tables are reached, the frame
//! allocator over all free RAM (below the image too), and the heap.

use buddy_system_allocator::{FrameAllocator, LockedHeap};
use pi::addr::PhysAddr;
use pi::boot::EarlyPool;
use pi::layout::PAGE_SIZE;
use pi::pgtable::{self, Attrs, Granularity, MapError, TableAccess, TableAlloc};
use spin::Mutex;

use crate::ranges::{PhysRange, RangeList};

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Free frames, handed out one 4 KiB page at a time.
static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    alloc: FrameAllocator::new(),
    free: 0,
});

struct Frames {
    alloc: FrameAllocator<32>,
    /// Frames currently free: the allocator does not count them itself.
    free: u64,
}

/// Reaches any live table page: pool pages through the image mapping, any
/// other page through the linear map.
pub struct LiveTables;

// SAFETY: table pages are either inside the image (mapped rw at their image
// address) or RAM frames (mapped rw in the linear map); callers that write
// hold the `TABLES` lock, the only writer.
unsafe impl TableAccess for LiveTables {
    fn table_ptr(&self, pa: PhysAddr) -> *mut u64 {
        match pa.to_kimg() {
            Some(kimg) => kimg.as_ptr(),
            None => pa.to_linear().as_ptr(),
        }
    }
}

/// Page tables being extended after boot: pages from the image's pool while
/// it lasts, then frames, so modules and stacks are never refused for want of
/// table pages. Table pages are never freed: an unmapped range keeps its
/// tables, and the next mapping there reuses them.
pub struct KernelTables {
    pool: EarlyPool,
    from_frames: u64,
}

/// The one writer of the live kernel tables.
pub static TABLES: Mutex<Option<KernelTables>> = Mutex::new(None);

/// Where the kernel's table pages came from: the image's pool, then frames.
#[derive(Clone, Copy)]
pub struct TableUsage {
    pub pool_used: u64,
    pub pool_size: u64,
    pub from_frames: u64,
}

impl KernelTables {
    /// Continues the early pool.
    pub fn new(pool: EarlyPool) -> Self {
        KernelTables { pool, from_frames: 0 }
    }

    /// The image (and the pool in it) is now mapped `voffset` above its PA.
    pub fn rebase(&mut self, voffset: u64) {
        self.pool.set_va_offset(voffset);
    }

    pub fn usage(&self) -> TableUsage {
        TableUsage {
            pool_used: self.pool.used(),
            pool_size: self.pool.capacity(),
            from_frames: self.from_frames,
        }
    }
}

// SAFETY: delegates to `LiveTables`, which reaches every table page.
unsafe impl TableAccess for KernelTables {
    fn table_ptr(&self, pa: PhysAddr) -> *mut u64 {
        LiveTables.table_ptr(pa)
    }
}

impl TableAlloc for KernelTables {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        if let Some(pa) = self.pool.alloc_table() {
            return Some(pa);
        }
        // Before `init_frames` there are none, and the pool is all there is.
        let pa = alloc_frame()?;
        // SAFETY: a free frame is ours and mapped rw in the linear map.
        unsafe { core::ptr::write_bytes(pa.to_linear().as_ptr::<u8>(), 0, PAGE_SIZE as usize) };
        self.from_frames += 1;
        Some(pa)
    }
}

/// Maps `[va, va + len)` to `pa` in the live kernel tables, under their lock,
/// and makes the new entries visible to the table walker.
pub fn map(va: u64, pa: PhysAddr, len: u64, attrs: Attrs, granularity: Granularity) -> Result<(), MapError> {
    let mapped = {
        let mut tables = TABLES.lock();
        let tables = tables.as_mut().expect("tables set up at boot");
        pgtable::map(tables, super::cpu::ttbr1_root(), va, pa, len, attrs, granularity)
    };
    super::cpu::publish_tables();
    mapped.map(|_| ())
}

/// Removes the kernel mappings of `[va, va + len)` (page-aligned), under the
/// tables' lock, and flushes the TLB. Returns the entries cleared.
pub fn unmap(va: u64, len: u64) -> Result<u64, MapError> {
    let cleared = {
        let tables = TABLES.lock();
        let tables = tables.as_ref().expect("tables set up at boot");
        pgtable::unmap(tables, super::cpu::ttbr1_root(), va, len)
    };
    super::cpu::flush_tlb();
    cleared
}

/// Hands the heap its memory.
///
/// # Safety
/// `range` must be RAM mapped in the linear map and used by nothing else, ever.
pub unsafe fn init_heap(range: PhysRange) {
    let start = range.start.to_linear().raw() as usize;
    // SAFETY: the caller gives us this memory for good.
    unsafe { HEAP.lock().init(start, range.size() as usize) };
}

/// Gives every page of `free` to the frame allocator.
pub fn init_frames(free: &RangeList) {
    let mut frames = FRAMES.lock();
    for r in free.iter() {
        let r = r.shrink_to_pages(PAGE_SIZE);
        if r.size() > 0 {
            frames.alloc.add_frame(frame_number(r.start), frame_number(r.end));
            frames.free += r.size() / PAGE_SIZE;
        }
    }
}

fn frame_number(pa: PhysAddr) -> usize {
    (pa.raw() / PAGE_SIZE) as usize
}

/// One free 4 KiB frame.
pub fn alloc_frame() -> Option<PhysAddr> {
    let mut frames = FRAMES.lock();
    let n = frames.alloc.alloc(1)?;
    frames.free -= 1;
    Some(PhysAddr::new(n as u64 * PAGE_SIZE))
}

/// `count` contiguous frames (rounded up to a power of two by the buddy
/// allocator; [`free_frames_at`] takes the same count back).
pub fn alloc_frames(count: u64) -> Option<PhysAddr> {
    let mut frames = FRAMES.lock();
    let n = frames.alloc.alloc(count as usize)?;
    frames.free -= (count as usize).next_power_of_two() as u64;
    Some(PhysAddr::new(n as u64 * PAGE_SIZE))
}

/// Returns frames from [`alloc_frames`].
pub fn free_frames_at(pa: PhysAddr, count: u64) {
    let mut frames = FRAMES.lock();
    frames.alloc.dealloc(frame_number(pa), count as usize);
    frames.free += (count as usize).next_power_of_two() as u64;
}

/// The frame at `pa`, if it is free.
pub fn alloc_frame_at(pa: PhysAddr) -> Option<PhysAddr> {
    let mut frames = FRAMES.lock();
    frames.alloc.alloc_at(frame_number(pa), 1)?;
    frames.free -= 1;
    Some(pa)
}

/// Returns a frame from [`alloc_frame`] or [`alloc_frame_at`].
pub fn free_frame(pa: PhysAddr) {
    let mut frames = FRAMES.lock();
    frames.alloc.dealloc(frame_number(pa), 1);
    frames.free += 1;
}

/// Frames free now.
pub fn free_frames() -> u64 {
    FRAMES.lock().free
}
