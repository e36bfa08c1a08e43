//! The CPU: system registers, barriers and cache/TLB maintenance, exception
//! entry and its decoding, the exception table, fault-tolerant loads,
//! recovery points, PSCI, the PMU and the counter, the panic handler and the linker-script
//! symbols. Everything else
//! the kernel does lives with its subsystem.

pub mod esr;
pub mod extable;
pub mod lock;

#[cfg(kernel_proper)]
pub mod counter;
#[cfg(kernel_proper)]
pub mod cpu;
#[cfg(kernel_proper)]
pub mod exceptions;
#[cfg(kernel_proper)]
mod panic;
#[cfg(kernel_proper)]
pub mod peek;
#[cfg(kernel_proper)]
pub mod pmu;
#[cfg(kernel_proper)]
pub mod psci;
#[cfg(kernel_proper)]
pub mod recovery;
#[cfg(kernel_proper)]
pub mod sections;
