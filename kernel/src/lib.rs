//! The splitmap kernel, one folder per subsystem, in layers: each may use
//! the ones before it in [`LAYERS`] and none after it, so the kernel reads
//! from the bottom up and no two folders depend on each other
//! (`tests/layers.rs` checks every `crate::` path). The early code, `pi`, is
//! a crate of its own below them all. Where a lower layer needs something
//! only a higher one knows — the exception handler's backtraces, the module
//! registries' reserved names — the higher one lends it at boot
//! (`init::phases`). The one thing every layer uses from above is printing:
//! `print!` and `println!` are the kernel's printk, and the terminal they
//! write to needs nothing but the kernel's lock.
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

/// The layers, lowest first:
/// - `num`: numbers as users type them;
/// - `arch`: the CPU — registers, exceptions, the kernel's lock, recovery
///   points, PSCI, linker symbols;
/// - `mm`: page tables, the linear map, frames and heap, the kernel stack;
/// - `console`: the UART, printing, the console's bring-up, a panic's last
///   words;
/// - `boot`: what the bootloader handed over (device tree, command line,
///   initrd) and the RAM boot set aside;
/// - `kaslr`: where the image and the module windows go, and the move;
/// - `debug`: symbols, backtraces, the debugger's record;
/// - `module`: loading modules, and what they may call;
/// - `shell`: the commands and the in-kernel tests;
/// - `init`: the boot sequence, which calls them all.
pub const LAYERS: [&str; 10] = [
    "num", "arch", "mm", "console", "boot", "kaslr", "debug", "module", "shell", "init",
];

pub mod arch;
pub mod boot;
pub mod console;
pub mod debug;
pub mod init;
pub mod kaslr;
pub mod mm;
pub mod module;
pub mod num;
pub mod shell;
