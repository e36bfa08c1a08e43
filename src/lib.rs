//! The splitmap host tool: builds the kernel and runs it under QEMU.

pub mod kbuild;
pub mod qemu;
pub mod relacheck;
pub mod session;
pub mod sweep;
