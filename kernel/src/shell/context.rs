//! What the shell's commands and tests work from: boot's findings and the
//! KASLR decision, handed over once by the boot sequence. Each command takes
//! it as an argument, so its signature shows what it depends on.

use crate::boot::state::Kernel;
use crate::kaslr::decide::Kaslr;
use crate::kaslr::relocate::Moved;

/// The machine as boot left it.
pub struct Context {
    /// What boot found and set up: the image, the device tree and command
    /// line, the console, the RAM it reserved.
    pub kernel: &'static Kernel,
    /// Where KASLR put the image and the module windows.
    pub kaslr: Kaslr<'static>,
    /// What moving the image cost.
    pub moved: Moved,
}
