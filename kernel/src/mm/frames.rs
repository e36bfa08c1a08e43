//! Free RAM after boot: the frame allocator over every free page (below the
//! image too), one page-sized frame at a time, and the kernel heap.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use crate::arch::lock::Mutex;
use buddy_system_allocator::{FrameAllocator, Heap};
use pi::addr::PhysAddr;
use pi::layout::PAGE_SIZE;

use super::ranges::{PhysRange, RangeList};

/// The kernel heap, behind the kernel's own lock so that holding it counts
/// (`arch::lock`): a fault inside `alloc` must not be contained.
struct KernelHeap(Mutex<Heap<32>>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(Mutex::new(Heap::empty()));

// SAFETY: the buddy heap hands out each block once, aligned as asked, until
// it is returned; the lock serialises every use of it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .alloc(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, at: *mut u8, layout: Layout) {
        if let Some(at) = NonNull::new(at) {
            // SAFETY: GlobalAlloc's contract: `at` came from `alloc` with `layout`.
            unsafe { self.0.lock().dealloc(at, layout) };
        }
    }
}

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
    unsafe { HEAP.0.lock().init(start, range.size() as usize) };
}

/// Heap bytes allocated right now.
pub fn heap_in_use() -> usize {
    HEAP.0.lock().stats_alloc_actual()
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
