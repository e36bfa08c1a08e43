//! KASLR: where the image may go (`window`), where the randomness comes from
//! (`seed`), what a boot decides from both (`decide`), the relocation list
//! the linker leaves (`relr`), and — on the machine — the move itself
//! (`relocate`).

pub mod decide;
pub mod module_windows;
pub mod relr;
pub mod seed;
pub mod window;

#[cfg(kernel_proper)]
pub mod relocate;
