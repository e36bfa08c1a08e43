//! The splitmap host tool: builds the kernel and runs it under QEMU.

pub mod kbuild;
pub mod relacheck;
