//! The top of the kernel: the boot sequence, which calls every subsystem in
//! the order a boot needs them, from the early code's jump to the shell
//! (Linux's `init/main.c`). Nothing imports it.

#[cfg(kernel_proper)]
pub mod phases;
