//! From the early code's jump to the shell. What the bootloader hands over —
//! the device tree (`dtb`), the command line in it (`bootargs`) and the
//! initrd (`cpio`) — is read by pure code; `info` reads all of it once into
//! one value. On the machine, `phases` runs the boot in order and `state`
//! keeps what it found for the shell.

pub mod bootargs;
pub mod cost;
pub mod cpio;
pub mod dtb;
pub mod info;

#[cfg(kernel_proper)]
pub mod phases;
#[cfg(kernel_proper)]
pub mod state;
