//! Loadable modules: the pure half (relocation encoding, PLT veneers, PLT
//! counting), tested on the host. The loader that uses it comes next.

pub mod exports;
pub mod plt;
pub mod reloc;
