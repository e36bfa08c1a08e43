//! Loadable modules. The pure half — ELF layout and linking (`load`),
//! relocation encoding (`reloc`), PLT veneers (`plt`), the module windows
//! (`region`), the export table and what modules register (`exports`), the
//! module name rule (`name`), how a module's log line is printed
//! (`logline`) — is tested and fuzzed on the host. On the machine, `insmod` takes frames,
//! maps and runs modules, `loaded` lists what is loaded where, and `abi` is
//! the kernel's side of their calls.

pub mod a53;
#[cfg(with_alloc)]
pub mod check;
pub mod exports;
#[cfg(with_alloc)]
pub mod load;
pub mod logline;
pub mod name;
pub mod plt;
pub mod reloc;
pub mod scan;

#[cfg(kernel_proper)]
pub mod abi;
#[cfg(kernel_proper)]
pub mod insmod;
#[cfg(kernel_proper)]
pub mod loaded;
