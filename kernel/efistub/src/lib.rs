//! The EFI stub: the kernel Image as a UEFI application (`--uefi`).
//!
//! The Image's header is also a PE/COFF header (kernel/src/main.rs), whose
//! entry point is [`stub`]'s `__efistub_pe_entry`. Firmware runs it with the
//! MMU on, identity-mapped, at an address of its choosing; the stub then does
//! what a boot-protocol loader would have done, with the firmware's services:
//! reads the command line from the load options, fetches the device tree from
//! the configuration table, picks a random physical address for the image
//! among conventional memory ([`place`]), copies the image and the tree there
//! (the tree with `/chosen` additions, [`fdt`]), exits boot services and
//! enters the image's first instruction as booting.rst asks: MMU and data
//! cache off, the written memory cleaned to the point of coherency, x0 = the
//! tree.
//!
//! Like kernel/pi, this crate's object code is checked by the build
//! (src/relacheck.rs) from `__efistub_pe_entry`: no absolute relocations and
//! no calls outside it and pi. So no panics (every read is checked with
//! `get`), no `core::fmt`, no loops the compiler could turn into `memcpy`
//! ([`mem`]). The logic builds on the host and is unit-tested there.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod cmdline;
pub mod fdt;
pub mod mem;
pub mod place;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod stub;
