//! Fields of the ID registers, decoded. Pure, so the decoding is tested on
//! the host; the physical-address width is pi's, which the EFI stub shares.

pub use pi::idregs::pa_bits;
