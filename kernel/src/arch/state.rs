//! What boot learned, kept for the shell and the tests. Written once.

use pi::pgtable::MapCounts;
use spin::Once;

use crate::bootargs::BootArgs;
use crate::dtb::BootInfo;
use crate::ranges::{PhysRange, RangeList};

/// A reserved range and why.
#[derive(Clone, Copy, Debug)]
pub struct Reservation {
    /// The range.
    pub range: PhysRange,
    /// `image`, `dtb`, `initrd`, `memreserve`, `heap`.
    pub what: &'static str,
}

/// How many reservations `mem` lists at most.
pub const MAX_RESERVATIONS: usize = 16;

/// The machine as boot found and set it up.
pub struct Kernel {
    /// The image in RAM, `[_text, _end)`.
    pub image: PhysRange,
    /// The device tree's findings.
    pub dtb: BootInfo<'static>,
    /// Where the DTB blob sits.
    pub dtb_range: PhysRange,
    /// The parsed command line.
    pub bootargs: BootArgs<'static>,
    /// Descriptors the linear map was built with.
    pub linear: MapCounts,
    /// UART registers' virtual address.
    pub uart_va: u64,
    /// Reservations, in the order found.
    pub reserved: [Option<Reservation>; MAX_RESERVATIONS],
    /// RAM given to the frame allocator at boot.
    pub free_at_boot: RangeList,
}

static KERNEL: Once<Kernel> = Once::new();

/// Records the boot state (first call wins).
pub fn set(kernel: Kernel) -> &'static Kernel {
    KERNEL.call_once(|| kernel)
}

/// The boot state.
///
/// # Panics
/// Before boot has finished, which no shell command can observe.
pub fn get() -> &'static Kernel {
    KERNEL.get().expect("boot state read before boot finished")
}

/// The boot state, if boot got that far.
pub fn try_get() -> Option<&'static Kernel> {
    KERNEL.get()
}
