//! Everything that touches the hardware. Thin on purpose: the logic it drives
//! lives in the host-tested modules of the crate and in `pi`.

pub mod backtrace;
pub mod console;
pub mod cpu;
pub mod crash;
pub mod entry;
pub mod exceptions;
pub mod exports;
pub mod kaslr;
pub mod memory;
pub mod module;
mod panic;
pub mod peek;
pub mod pmu;
pub mod psci;
pub mod rodata;
pub mod selftest;
pub mod shell;
pub mod stack;
pub mod state;
