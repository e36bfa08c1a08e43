//! Position-independent early code and the page-table builder it shares with
//! the rest of the kernel.
//!
//! Everything in this crate may run before the MMU is on, at whatever physical
//! address the image was loaded. Such code must not contain a single absolute
//! address: the build (`src/relacheck.rs` at the top of the repository) inspects
//! this crate's object code and fails if it finds an absolute relocation or a
//! call to code outside it, as Linux's `relacheck` does for `arch/arm64/kernel/pi`.
//! That is why the code here never panics, never formats and never calls `core`
//! functions that are not inlined into it.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod addr;
mod asm;
pub mod board;
pub mod efimap;
pub mod idregs;
pub mod kmap;
pub mod layout;
pub mod pgtable;
pub mod pm;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod boot;
