//! Naming addresses: the symbol table build.rs embeds in the image (`ksyms`,
//! pure) and the frame-pointer walk that prints backtraces with it.

pub mod ksyms;

#[cfg(kernel_proper)]
pub mod backtrace;
#[cfg(kernel_proper)]
pub mod record;
