//! The CPU: system registers, barriers and cache/TLB maintenance, exception
//! entry and its decoding, the exception table, fault-tolerant loads,
//! device registers (`mmio`), the kernel's lock and write-once cell, recovery points for untrusted code, PSCI, the PMU and the
//! counter, and the linker-script symbols. Everything else the kernel does
//! lives with its subsystem.

pub mod conduit;
pub mod esr;
pub mod extable;
pub mod gicr;
pub mod idregs;
pub mod lock;
pub mod mmio;
pub mod once;
pub mod percpu;

#[cfg(kernel_proper)]
pub mod counter;
#[cfg(kernel_proper)]
pub mod cpu;
#[cfg(kernel_proper)]
pub mod exceptions;
#[cfg(kernel_proper)]
pub mod gic;
#[cfg(kernel_proper)]
pub mod irq;
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
#[cfg(kernel_proper)]
pub mod smp;
#[cfg(kernel_proper)]
pub mod timer;
