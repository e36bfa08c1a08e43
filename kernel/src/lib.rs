//! The splitmap kernel, one folder per subsystem, in the order a boot meets
//! them: `boot` → `mm` → `kaslr` → `module` → `shell`, with `console`,
//! `debug` and `arch` (the CPU itself) beside them.
//!
//! Each subsystem keeps its pure logic (device tree reading, range
//! arithmetic, page-table building, KASLR arithmetic, module linking, the
//! shell's parsing and reports) in files that build and are tested on the
//! host, and its target-only half — what touches registers, live page tables
//! or linker symbols — in files gated on `cfg(kernel_proper)` next to them
//! (kernel/build.rs defines that name: the kernel itself on aarch64).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

// The host always has an allocator; on the machine only the kernel proper
// does (stage-0 builds this crate without one).
#[cfg(with_alloc)]
extern crate alloc;

pub mod arch;
pub mod boot;
pub mod console;
pub mod debug;
pub mod kaslr;
pub mod mm;
pub mod module;
pub mod num;
pub mod shell;
