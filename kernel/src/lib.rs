//! The splitmap kernel.
//!
//! Pure logic (device tree reading, range arithmetic, the shell's parsing and
//! the reports) builds and is tested on the host; everything that touches the
//! hardware lives under `arch` and builds only for `aarch64-unknown-none`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

// The host always has an allocator; on the machine only the kernel proper
// does (stage-0 builds this crate without one).
#[cfg(any(not(target_os = "none"), feature = "machine"))]
extern crate alloc;

pub mod bootargs;
pub mod cpio;
pub mod dtb;
pub mod extable;
pub mod kaslr;
pub mod ksyms;
pub mod linear;
pub mod module;
pub mod pl011;
pub mod ranges;
pub mod relr;
pub mod report;
pub mod shell;

#[cfg(all(target_arch = "aarch64", target_os = "none", feature = "machine"))]
pub mod arch;
