//! What the bootloader hands over — the device tree (`dtb`), the command
//! line in it (`bootargs`) and the initrd (`cpio`) — read by pure code;
//! `info` reads all of it once into one value, and `reserve` sets aside the
//! RAM it names. On the machine, `tree` reads the blob where the early code
//! mapped it and `state` keeps what boot found for the shell. The boot
//! sequence itself is `init::phases`, at the top.

pub mod bootargs;
pub mod cost;
pub mod cpio;
pub mod dtb;
pub mod efi;
pub mod info;
pub mod power;
pub mod reserve;
#[cfg(kernel_proper)]
pub mod smp;
pub mod smp_cost;

#[cfg(kernel_proper)]
pub mod gic;
#[cfg(kernel_proper)]
pub mod state;
#[cfg(kernel_proper)]
pub mod tree;
