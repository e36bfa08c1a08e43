//! The physical-address limits the CPU's ID registers set. Pure, shared by
//! the kernel (`arch::cpu::pa_bits`) and the EFI stub, which must not place
//! the image where the kernel could not map it.

use crate::pgtable::granule::Granule;

/// The physical address width for ID_AA64MMFR0_EL1.PARange (ARM ARM D19):
/// 32, 36, 40, 42, 44, 48 or 52 bits (0b110; 0b111 is reserved and read as
/// the widest).
pub const fn pa_bits(parange: u64) -> u32 {
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

/// One past the highest physical address the kernel can reach on a CPU whose
/// ID_AA64MMFR0_EL1 reads `mmfr0`, with `granule`'s descriptors: the
/// narrower of the CPU's PARange and the descriptors' output address.
pub const fn pa_limit(mmfr0: u64, granule: Granule) -> u64 {
    let cpu = pa_bits(mmfr0);
    let tables = granule.output_bits();
    1 << if cpu < tables { cpu } else { tables }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parange_names_the_width() {
        assert_eq!((pa_bits(2), pa_bits(5), pa_bits(6)), (40, 48, 52));
        assert_eq!(pa_bits(0x10), 32, "only the field's four bits count");
    }

    #[test]
    fn the_limit_is_the_cpus_or_the_granules_whichever_is_lower() {
        for granule in [Granule::K4, Granule::K16, Granule::K64] {
            // Cortex-A53 (40 bits), A72 (44), `max` (48, or 52 with LPA).
            assert_eq!(pa_limit(0x0000_0000_0010_1122, granule), 1 << 40);
            assert_eq!(pa_limit(0x0000_0000_0010_1124, granule), 1 << 44);
            assert_eq!(pa_limit(0x0000_0000_0010_1125, granule), 1 << 48);
            assert_eq!(pa_limit(0x0000_0000_0010_1126, granule), 1 << 48, "{}", granule.name());
        }
    }
}
