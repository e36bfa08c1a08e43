//! Memory: physical ranges, the linear map of all RAM, what boot reserves,
//! and — on the machine — the live kernel page tables, frames and heap, the
//! kernel stack and `rodata=full`.

pub mod linear;
pub mod ptdump;
pub mod ranges;

#[cfg(kernel_proper)]
pub mod frames;
#[cfg(kernel_proper)]
pub mod rodata;
#[cfg(kernel_proper)]
pub mod stack;
#[cfg(kernel_proper)]
pub mod tables;
