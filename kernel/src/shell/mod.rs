//! The serial shell: a line editor, a parser that turns lines into commands,
//! the text formats scripts read (`report`), and — on the machine — the
//! commands themselves, the in-kernel test suite and `crash`.

mod complete;
pub mod editor;
pub mod parse;
pub mod report;

#[cfg(kernel_proper)]
pub mod commands;
#[cfg(kernel_proper)]
pub mod context;
#[cfg(kernel_proper)]
mod cpus;
#[cfg(kernel_proper)]
mod crash;
#[cfg(kernel_proper)]
mod explore;
#[cfg(kernel_proper)]
pub mod selftest;
#[cfg(kernel_proper)]
mod smptest;
