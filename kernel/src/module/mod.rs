//! Loadable modules: the pure half (layout and linking, relocation encoding,
//! PLT veneers and their counting), tested and fuzzed on the host. The kernel
//! side (`arch::module`) only takes memory, maps it and runs the entry points.

pub mod exports;
#[cfg(any(not(target_os = "none"), feature = "machine"))]
pub mod load;
pub mod plt;
pub mod region;
pub mod reloc;
