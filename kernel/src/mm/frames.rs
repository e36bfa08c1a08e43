//! Free RAM after boot: the frame allocator over every free page (below the
//! image too), one page-sized frame at a time, and the kernel heap.

use buddy_system_allocator::{FrameAllocator, LockedHeap};
use pi::addr::PhysAddr;
use pi::layout::PAGE_SIZE;
use spin::Mutex;

use super::ranges::{PhysRange, RangeList};

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Free frames, handed out one page (`PAGE_SIZE`) at a time.
static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    alloc: FrameAllocator::new(),
    free: 0,
});

struct Frames {
    alloc: FrameAllocator<32>,
    /// Frames currently free: the allocator does not count them itself.
    free: u64,
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

/// Whether the frame allocator or the heap is locked right now.
pub fn busy() -> bool {
    FRAMES.is_locked() || HEAP.is_locked()
}

/// Heap bytes allocated right now.
pub fn heap_in_use() -> usize {
    HEAP.lock().stats_alloc_actual()
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

/// One free frame.
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
