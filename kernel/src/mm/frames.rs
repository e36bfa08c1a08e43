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
struct KernelHeap(Mutex<LazyHeap>);

/// The heap, given its memory at its first use: nothing before the prompt
/// allocates, and filling it writes its first block's free-list link. Under
/// QEMU on a host with transparent huge pages, that write alone costs the
/// host a 2 MiB page zeroed for guest RAM nothing else had touched (about
/// 0.2 ms of a 60 ms boot, measured).
struct LazyHeap {
    heap: Heap<32>,
    /// Linear-map start and size of the memory not given to `heap` yet.
    pending: Option<(usize, usize)>,
}

impl LazyHeap {
    fn heap(&mut self) -> &mut Heap<32> {
        if let Some((start, size)) = self.pending.take() {
            // SAFETY: `init_heap`'s caller gave this memory to the heap for
            // good; `take` hands it over once.
            unsafe { self.heap.init(start, size) };
        }
        &mut self.heap
    }
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(Mutex::new(LazyHeap {
    heap: Heap::empty(),
    pending: None,
}));

// SAFETY: the buddy heap hands out each block once, aligned as asked, until
// it is returned; the lock serialises every use of it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .heap()
            .alloc(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, at: *mut u8, layout: Layout) {
        if let Some(at) = NonNull::new(at) {
            // SAFETY: GlobalAlloc's contract: `at` came from `alloc` with `layout`.
            unsafe { self.0.lock().heap().dealloc(at, layout) };
        }
    }
}

/// Free frames, handed out one page (`PAGE_SIZE`) at a time.
static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    alloc: FrameAllocator::new(),
    free: 0,
    pending: None,
});

struct Frames {
    alloc: FrameAllocator<32>,
    /// Frames currently free: the allocator does not count them itself.
    free: u64,
    /// Free RAM not handed to `alloc` yet: filling the buddy allocator is a
    /// tree insert, and a heap allocation for a new tree node, a block
    /// (4.5 k instructions and 60 translated blocks at boot), and the one
    /// allocation before the prompt (the kernel stack) is carved from the
    /// top instead. The first allocation that needs the buddy allocator
    /// fills it ([`Frames::buddy`]).
    pending: Option<Pending>,
}

/// What [`init_frames`] was given and what was carved off it since.
struct Pending {
    free: &'static RangeList,
    /// The free RAM above this was carved off the last range, in blocks as
    /// the buddy allocator would hand them out (so [`free_frames_at`] takes
    /// them back as its own).
    top: PhysAddr,
}

impl Pending {
    /// The ranges, in pages, without what was carved off.
    fn ranges(&self) -> impl DoubleEndedIterator<Item = PhysRange> + '_ {
        self.free.iter().map(|r| {
            let r = r.shrink_to_pages(PAGE_SIZE);
            PhysRange {
                start: r.start,
                end: r.end.min(self.top).max(r.start),
            }
        })
    }
}

impl Frames {
    /// The buddy allocator, given the pending free RAM first.
    fn buddy(&mut self) -> &mut FrameAllocator<32> {
        if let Some(pending) = self.pending.take() {
            for r in pending.ranges().filter(|r| r.size() > 0) {
                self.alloc.add_frame(frame_number(r.start), frame_number(r.end));
            }
        }
        &mut self.alloc
    }

    /// `count` frames carved off the top of the pending free RAM, as the
    /// buddy allocator would align them; `None` once it is filled, or if
    /// the top does not hold such a block.
    fn carve(&mut self, count: u64) -> Option<PhysAddr> {
        let pending = self.pending.as_mut()?;
        let top = pending.ranges().rev().find(|r| r.size() > 0)?;
        let pa = top.top_block(count.next_power_of_two() * PAGE_SIZE)?;
        pending.top = pa;
        Some(pa)
    }
}

/// Hands the heap its memory (which it takes in at its first use).
///
/// # Safety
/// `range` must be RAM mapped in the linear map and used by nothing else, ever.
pub unsafe fn init_heap(range: PhysRange) {
    let start = range.start.to_linear().raw() as usize;
    HEAP.0.lock().pending = Some((start, range.size() as usize));
}

/// Heap bytes allocated right now.
pub fn heap_in_use() -> usize {
    let heap = HEAP.0.lock();
    if heap.pending.is_some() {
        0
    } else {
        heap.heap.stats_alloc_actual()
    }
}

/// Gives every page of `free` to the frame allocator (which takes them
/// in when first asked for a frame it must find); the frames free now
/// (as [`free_frames`] says, without taking the lock again).
pub fn init_frames(free: &'static RangeList) -> u64 {
    let mut frames = FRAMES.lock();
    let pending = Pending {
        free,
        top: PhysAddr::new(u64::MAX),
    };
    frames.free += pending.ranges().map(|r| r.size() / PAGE_SIZE).sum::<u64>();
    frames.pending = Some(pending);
    frames.free
}

fn frame_number(pa: PhysAddr) -> usize {
    (pa.raw() / PAGE_SIZE) as usize
}

/// One free frame.
pub fn alloc_frame() -> Option<PhysAddr> {
    let mut frames = FRAMES.lock();
    let n = frames.buddy().alloc(1)?;
    frames.free -= 1;
    Some(PhysAddr::new(n as u64 * PAGE_SIZE))
}

/// `count` contiguous frames (rounded up to a power of two by the buddy
/// allocator; [`free_frames_at`] takes the same count back).
pub fn alloc_frames(count: u64) -> Option<PhysAddr> {
    let mut frames = FRAMES.lock();
    let pa = match frames.carve(count) {
        Some(pa) => pa,
        None => PhysAddr::new(frames.buddy().alloc(count as usize)? as u64 * PAGE_SIZE),
    };
    frames.free -= (count as usize).next_power_of_two() as u64;
    Some(pa)
}

/// Returns frames from [`alloc_frames`].
pub fn free_frames_at(pa: PhysAddr, count: u64) {
    let mut frames = FRAMES.lock();
    frames.buddy().dealloc(frame_number(pa), count as usize);
    frames.free += (count as usize).next_power_of_two() as u64;
}

/// The frame at `pa`, if it is free.
pub fn alloc_frame_at(pa: PhysAddr) -> Option<PhysAddr> {
    let mut frames = FRAMES.lock();
    frames.buddy().alloc_at(frame_number(pa), 1)?;
    frames.free -= 1;
    Some(pa)
}

/// Returns a frame from [`alloc_frame`] or [`alloc_frame_at`].
pub fn free_frame(pa: PhysAddr) {
    let mut frames = FRAMES.lock();
    frames.buddy().dealloc(frame_number(pa), 1);
    frames.free += 1;
}

/// Frames free now.
pub fn free_frames() -> u64 {
    FRAMES.lock().free
}
