//! Whether the UART `/chosen/stdout-path` names is a PL011, before the
//! console drives it. A tree's word is not enough: the console's first
//! access enables the UART and its output loop waits on a flag bit, so a
//! `reg` that is unassigned MMIO faults the kernel before it has a console
//! (a silent power-off), and one that is another device (an RTC), RAM, or
//! off the block's start never sets the bit the loop waits for (a hang), or
//! writes the log into memory. So: no Device mapping over RAM, the block on
//! a 4 KiB boundary as every PrimeCell's is, and its identification
//! registers read (by loads that may fault, `arch::peek`) and checked here.
//!
//! The decisions are pure, for host tests; `bringup` does the reads.

use core::fmt;

use crate::arch::esr::Syndrome;
use crate::mm::ranges::{PhysRange, RangeList};

/// Where a PrimeCell's identification registers start in its block:
/// PeriphID0..3 then PCellID0..3, one byte in each 32-bit register.
pub const ID_OFFSET: u64 = 0xfe0;

/// How many identification registers there are.
pub const ID_REGS: usize = 8;

/// Every PrimeCell's block starts on this boundary (it spans 4 KiB, ending
/// in the identification registers), whatever the page size.
pub const BLOCK_ALIGN: u64 = 0x1000;

/// PCellID0..3: the same for every PrimeCell (0xB105F00D, low byte first).
const PRIMECELL_ID: [u8; 4] = [0x0d, 0xf0, 0x05, 0xb1];

/// The PL011's part number (PeriphID0, and PeriphID1's low nibble).
const PL011_PART: u16 = 0x011;

/// ARM's JEP106 designer code (PeriphID1's high nibble, PeriphID2's low).
const ARM: u8 = 0x41;

/// Why the named UART is not used for the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its pages overlap RAM (`/memory`): a Device mapping of RAM beside the
    /// linear map's Normal one, and the log written into memory.
    InRam,
    /// It does not start on a 4 KiB boundary, where a PrimeCell's block does.
    Unaligned,
    /// A read of its identification registers faulted: nothing answers there.
    NoDevice(Syndrome),
    /// The component ID (PCellID0..3) is not a PrimeCell's.
    NotPrimeCell([u8; 4]),
    /// A PrimeCell, but not ARM's PL011.
    OtherPrimeCell {
        /// The part number (0x031 for the PL031 RTC).
        part: u16,
        /// The JEP106 designer code (0x41 for ARM).
        designer: u8,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InRam => write!(f, "is in RAM (the tree's /memory)"),
            Refusal::Unaligned => write!(
                f,
                "is not on a {BLOCK_ALIGN:#x}-byte boundary, where a PL011's registers start"
            ),
            Refusal::NoDevice(why) => {
                write!(
                    f,
                    "does not answer: reading its ID registers at +{ID_OFFSET:#x} faulted ({why})"
                )
            }
            Refusal::NotPrimeCell(id) => write!(
                f,
                "is no PrimeCell: PCellID0..3 read {:#04x} {:#04x} {:#04x} {:#04x}, not 0x0d 0xf0 0x05 0xb1",
                id[0], id[1], id[2], id[3]
            ),
            Refusal::OtherPrimeCell { part, designer } => write!(
                f,
                "is another PrimeCell: part {part:#05x} by designer {designer:#04x}, not a PL011 (part 0x011 by ARM, 0x41)"
            ),
        }
    }
}

/// What can be refused before anything is mapped: `regs`, whose whole pages
/// are `pages`, against the tree's `ram`.
pub fn before_mapping(regs: PhysRange, pages: PhysRange, ram: &RangeList) -> Result<(), Refusal> {
    if ram.iter().any(|r| r.start < pages.end && pages.start < r.end) {
        return Err(Refusal::InRam);
    }
    if !regs.start.raw().is_multiple_of(BLOCK_ALIGN) {
        return Err(Refusal::Unaligned);
    }
    Ok(())
}

/// The verdict on the identification registers' low bytes, PeriphID0..3
/// then PCellID0..3. PeriphID2's high nibble is the revision and PeriphID3
/// the configuration, which vary between PL011s and are not looked at.
pub fn identify(ids: [u8; ID_REGS]) -> Result<(), Refusal> {
    let cell = [ids[4], ids[5], ids[6], ids[7]];
    if cell != PRIMECELL_ID {
        return Err(Refusal::NotPrimeCell(cell));
    }
    let part = u16::from(ids[0]) | (u16::from(ids[1] & 0x0f) << 8);
    let designer = (ids[1] >> 4) | ((ids[2] & 0x0f) << 4);
    if part == PL011_PART && designer == ARM {
        Ok(())
    } else {
        Err(Refusal::OtherPrimeCell { part, designer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's PL011 and PL031, as their models report.
    const PL011: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
    const PL031: [u8; 8] = [0x31, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

    #[test]
    fn a_pl011_of_any_revision_passes() {
        assert_eq!(identify(PL011), Ok(()));
        // r1p5 (revision 3) as on real boards, and another configuration.
        let mut r1p5 = PL011;
        r1p5[2] = 0x34;
        r1p5[3] = 0x01;
        assert_eq!(identify(r1p5), Ok(()));
    }

    #[test]
    fn other_primecells_are_named_by_part_and_designer() {
        assert_eq!(
            identify(PL031),
            Err(Refusal::OtherPrimeCell {
                part: 0x031,
                designer: 0x41
            })
        );
        // Luminary's PL011 variant in QEMU (stellaris): designer 0x?8 0x?0.
        let luminary = [0x11, 0x00, 0x18, 0x01, 0x0d, 0xf0, 0x05, 0xb1];
        assert_eq!(
            identify(luminary),
            Err(Refusal::OtherPrimeCell {
                part: 0x011,
                designer: 0x80
            })
        );
        // A part number whose high nibble differs.
        let mut part_111 = PL011;
        part_111[1] = 0x11;
        assert!(matches!(
            identify(part_111),
            Err(Refusal::OtherPrimeCell { part: 0x111, .. })
        ));
    }

    #[test]
    fn anything_without_the_primecell_id_is_refused() {
        // Unimplemented registers that read as zero or all ones, and one
        // wrong byte at each place.
        assert_eq!(identify([0; 8]), Err(Refusal::NotPrimeCell([0; 4])));
        assert_eq!(identify([0xff; 8]), Err(Refusal::NotPrimeCell([0xff; 4])));
        for i in 4..8 {
            let mut bad = PL011;
            bad[i] ^= 0x80;
            assert!(matches!(identify(bad), Err(Refusal::NotPrimeCell(_))), "byte {i}");
        }
    }

    fn ram() -> RangeList {
        let mut ram = RangeList::new();
        ram.insert(PhysRange::new(0x4000_0000, 0x4000_0000).unwrap()).unwrap();
        // RAM off a page boundary, 4 KiB past a device's block.
        ram.insert(PhysRange::new(0x3000_1000, 0x10_0000).unwrap()).unwrap();
        ram
    }

    fn check(start: u64, size: u64, page: u64) -> Result<(), Refusal> {
        let regs = PhysRange::new(start, size).unwrap();
        before_mapping(regs, regs.expand_to_pages(page), &ram())
    }

    #[test]
    fn ram_and_unaligned_blocks_are_refused_before_mapping() {
        assert_eq!(check(0x900_0000, 0x1000, 0x1000), Ok(()));
        // A 0x200-byte `reg` (as on Raspberry Pi boards) is still the block.
        assert_eq!(check(0xfe20_1000, 0x200, 0x1_0000), Ok(()));
        assert_eq!(check(0x7000_0000, 0x1000, 0x1000), Err(Refusal::InRam));
        // Touching RAM only through the page that would be mapped.
        assert_eq!(check(0x3000_0000, 0x1000, 0x1000), Ok(()));
        assert_eq!(check(0x3000_0000, 0x1000, 0x4000), Err(Refusal::InRam));
        assert_eq!(check(0x900_0004, 0x1000, 0x1000), Err(Refusal::Unaligned));
        assert_eq!(check(0x900_0800, 0x100, 0x1000), Err(Refusal::Unaligned));
    }

    #[test]
    fn each_refusal_says_what_was_found() {
        let text = Refusal::OtherPrimeCell {
            part: 0x031,
            designer: 0x41,
        }
        .to_string();
        assert!(text.contains("part 0x031 by designer 0x41"), "{text}");
        let text = Refusal::NotPrimeCell([0, 0, 0, 0]).to_string();
        assert!(text.contains("read 0x00 0x00 0x00 0x00"), "{text}");
        assert!(Refusal::Unaligned.to_string().contains("0x1000-byte boundary"));
    }
}
