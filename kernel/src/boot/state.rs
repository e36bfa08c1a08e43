//! What boot learned and set up, kept for the shell and the tests. Written
//! once, at the end of boot; the boot sequence hands it to the shell
//! (`shell::context`), which passes it to each command.

use pi::pgtable::MapCounts;

use super::info::BootInfo;
use crate::arch::once::WriteOnce;
use crate::boot::reserve::Reserved;
use crate::mm::ranges::PhysRange;

/// The machine as boot found and set it up.
pub struct Kernel {
    /// The image in RAM, `[_text, _end)`.
    pub image: PhysRange,
    /// The device tree and command line, as read at boot (kilobytes, kept
    /// where boot read them).
    pub boot: &'static BootInfo<'static>,
    /// Descriptors the linear map was built with (where boot keeps them: a
    /// copy was two calls to `memcpy` at the end of every boot).
    pub linear: &'static MapCounts,
    /// The console UART.
    pub console: crate::console::bringup::Console,
    /// What boot reserved, and the RAM it gave the frame allocator.
    pub reserved: &'static Reserved,
}

static KERNEL: WriteOnce<Option<Kernel>> = WriteOnce::new(None);

/// Records the boot state.
///
/// # Panics
/// On a second call: boot ends once.
pub fn set(kernel: Kernel) {
    KERNEL.set(Some(kernel));
}

/// The boot state, for the boot sequence to hand on.
///
/// # Panics
/// Before boot has finished.
pub fn get() -> &'static Kernel {
    KERNEL.some().expect("boot state read before boot finished")
}
