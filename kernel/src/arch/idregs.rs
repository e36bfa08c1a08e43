//! Fields of the ID registers, decoded. Pure, so the decoding is tested on
//! the host.

/// The physical address width for ID_AA64MMFR0_EL1.PARange (ARM ARM D19):
/// 32, 36, 40, 42, 44, 48 or 52 bits.
pub fn pa_bits(parange: u64) -> u32 {
    match parange & 0xf {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parange_names_the_width() {
        assert_eq!((super::pa_bits(2), super::pa_bits(5), super::pa_bits(6)), (40, 48, 52));
        assert_eq!(super::pa_bits(0x10), 32, "only the field's four bits count");
    }
}
