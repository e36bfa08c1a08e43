//! The splitmap host tool: builds the kernel and runs it under QEMU.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::too_many_lines)]

pub mod bench;
pub mod boot_line;
pub mod efi_output;
pub mod input;
pub mod kbuild;
pub mod machine;
pub mod map;
pub mod output;
pub mod qemu;
pub mod qmp;
pub mod relacheck;
pub mod relay;
pub mod session;
pub mod sweep;
pub mod uboot;
pub mod watchdog;
