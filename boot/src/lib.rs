//! splitmap's stage-0 loader: the pure half, tested on the host.
//!
//! QEMU starts the loader with `-kernel`, as it would start Linux, so the
//! loader gets the DTB in x0. It reads `splitmap.load=PA|random` from
//! `/chosen/bootargs`, checks the address, copies the kernel Image (embedded
//! in the loader) there and enters it exactly as booting.rst says. The kernel
//! never learns that the loader existed.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod placement;
