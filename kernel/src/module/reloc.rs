//! AArch64 ELF relocations (ELF for the Arm 64-bit Architecture, "Static
//! AArch64 relocations"): what each one computes and how it is written into
//! the instruction or data word at the place P. `S + A` is the target.

use core::fmt;

/// Relocation types our modules use.
pub mod types {
    /// `S + A`, 64-bit data.
    pub const ABS64: u32 = 257;
    /// `S + A - P`, 64-bit data.
    pub const PREL64: u32 = 260;
    /// `S + A - P`, 32-bit data (signed).
    pub const PREL32: u32 = 261;
    /// `Page(S + A) - Page(P)`, ADRP, checked to ±4 GiB.
    pub const ADR_PREL_PG_HI21: u32 = 275;
    /// Same, unchecked.
    pub const ADR_PREL_PG_HI21_NC: u32 = 276;
    /// `(S + A) & 0xfff`, ADD immediate.
    pub const ADD_ABS_LO12_NC: u32 = 277;
    /// `(S + A) & 0xfff`, LDRB/STRB offset.
    pub const LDST8_ABS_LO12_NC: u32 = 278;
    /// `S + A - P`, B, ±128 MiB.
    pub const JUMP26: u32 = 282;
    /// `S + A - P`, BL, ±128 MiB.
    pub const CALL26: u32 = 283;
    /// `((S + A) & 0xfff) >> 1`, LDRH/STRH offset.
    pub const LDST16_ABS_LO12_NC: u32 = 284;
    /// `((S + A) & 0xfff) >> 2`, 32-bit LDR/STR offset.
    pub const LDST32_ABS_LO12_NC: u32 = 285;
    /// `((S + A) & 0xfff) >> 3`, 64-bit LDR/STR offset.
    pub const LDST64_ABS_LO12_NC: u32 = 286;
    /// `((S + A) & 0xfff) >> 4`, 128-bit LDR/STR offset.
    pub const LDST128_ABS_LO12_NC: u32 = 299;
}

/// Why a relocation could not be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocError {
    /// A type the loader does not handle.
    Unsupported(u32),
    /// The value does not fit the field (a branch out of reach, a PREL32 beyond ±2 GiB).
    Overflow(u32),
    /// The place is too short for the field, or a branch target is not 4-aligned.
    BadPlace(u32),
    /// A load or store's target is not aligned to its access size: the
    /// scaled offset field cannot hold its low bits (lld: "improper
    /// alignment").
    Misaligned(u32),
    /// The place holds an instruction of another kind than the type
    /// patches (a CALL26 on anything but a BL, say): patching its immediate
    /// bits would make a different instruction, not the one the compiler
    /// wrote. (type, the word there.)
    WrongInstruction(u32, u32),
}

/// The ABI's name for relocation type `r_type`, for the ones we know.
pub fn type_name(r_type: u32) -> Option<&'static str> {
    use types::*;
    Some(match r_type {
        ABS64 => "R_AARCH64_ABS64",
        258 => "R_AARCH64_ABS32",
        PREL64 => "R_AARCH64_PREL64",
        PREL32 => "R_AARCH64_PREL32",
        ADR_PREL_PG_HI21 => "R_AARCH64_ADR_PREL_PG_HI21",
        ADR_PREL_PG_HI21_NC => "R_AARCH64_ADR_PREL_PG_HI21_NC",
        ADD_ABS_LO12_NC => "R_AARCH64_ADD_ABS_LO12_NC",
        LDST8_ABS_LO12_NC => "R_AARCH64_LDST8_ABS_LO12_NC",
        JUMP26 => "R_AARCH64_JUMP26",
        CALL26 => "R_AARCH64_CALL26",
        LDST16_ABS_LO12_NC => "R_AARCH64_LDST16_ABS_LO12_NC",
        LDST32_ABS_LO12_NC => "R_AARCH64_LDST32_ABS_LO12_NC",
        LDST64_ABS_LO12_NC => "R_AARCH64_LDST64_ABS_LO12_NC",
        LDST128_ABS_LO12_NC => "R_AARCH64_LDST128_ABS_LO12_NC",
        _ => return None,
    })
}

impl fmt::Display for RelocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (RelocError::Unsupported(t)
        | RelocError::Overflow(t)
        | RelocError::BadPlace(t)
        | RelocError::Misaligned(t)
        | RelocError::WrongInstruction(t, _)) = *self;
        match self {
            RelocError::Unsupported(_) => write!(f, "unsupported relocation type {t}")?,
            RelocError::Overflow(_) => write!(f, "relocation type {t} overflows its field")?,
            RelocError::BadPlace(_) => write!(f, "relocation type {t} at a bad place")?,
            RelocError::Misaligned(_) => write!(
                f,
                "improper alignment for relocation type {t}: its target is not aligned to the access size"
            )?,
            RelocError::WrongInstruction(_, insn) => write!(
                f,
                "relocation type {t} at {insn:#010x}, which is not {}",
                expected_instruction(t).map_or("an instruction it patches", |(_, _, what)| what)
            )?,
        }
        match type_name(t) {
            Some(name) => write!(f, " ({name})"),
            None => Ok(()),
        }
    }
}

/// Reach of a 26-bit branch: ±128 MiB.
pub const BRANCH26_RANGE: i64 = 128 << 20;

/// Whether a B/BL at `p` reaches `target`.
pub fn branch26_reaches(p: u64, target: u64) -> bool {
    let delta = target.wrapping_sub(p) as i64;
    delta % 4 == 0 && (-BRANCH26_RANGE..BRANCH26_RANGE).contains(&delta)
}

pub(super) fn page(x: u64) -> u64 {
    x & !0xfff
}

/// B/BL with its 26-bit word offset replaced.
fn with_imm26(insn: u32, delta: i64) -> u32 {
    (insn & 0xfc00_0000) | (((delta >> 2) as u32) & 0x03ff_ffff)
}

/// ADRP with its 21-bit page offset replaced (immlo bits 30:29, immhi 23:5).
pub(super) fn with_adrp_imm(insn: u32, pages: i64) -> u32 {
    let imm = pages as u32 & 0x1f_ffff;
    (insn & 0x9f00_001f) | ((imm & 3) << 29) | ((imm >> 2) << 5)
}

/// ADD/LDR/STR (unsigned immediate) with its 12-bit field replaced.
pub(super) fn with_imm12(insn: u32, imm: u64) -> u32 {
    (insn & 0xffc0_03ff) | (((imm & 0xfff) as u32) << 10)
}

/// The instruction relocation type `r_type` patches: (mask, value, name),
/// where `insn & mask == value`; `None` for a data relocation. From the ARM
/// ARM's encodings: B/BL, ADRP, ADD (immediate), and the loads and stores
/// with an unsigned immediate (of the access size the type scales by).
fn expected_instruction(r_type: u32) -> Option<(u32, u32, &'static str)> {
    use types::*;
    // Load/store (unsigned immediate): bits 29:27 = 111, 25:24 = 01; size
    // in 31:30, V (SIMD&FP) in 26, opc in 23:22. A 128-bit access is V=1,
    // size=00, opc=1x.
    const LDST: (u32, u32) = (0x3b00_0000, 0x3900_0000);
    const SIZE: u32 = 0xc000_0000;
    const V_OPC1: u32 = 0x0480_0000;
    Some(match r_type {
        CALL26 => (0xfc00_0000, 0x9400_0000, "a BL"),
        JUMP26 => (0xfc00_0000, 0x1400_0000, "a B"),
        ADR_PREL_PG_HI21 | ADR_PREL_PG_HI21_NC => (0x9f00_0000, 0x9000_0000, "an ADRP"),
        ADD_ABS_LO12_NC => (0x7f80_0000, 0x1100_0000, "an ADD (immediate)"),
        LDST8_ABS_LO12_NC => (LDST.0 | SIZE, LDST.1, "a byte load or store (unsigned immediate)"),
        LDST16_ABS_LO12_NC => (
            LDST.0 | SIZE,
            LDST.1 | 0x4000_0000,
            "a 16-bit load or store (unsigned immediate)",
        ),
        LDST32_ABS_LO12_NC => (
            LDST.0 | SIZE,
            LDST.1 | 0x8000_0000,
            "a 32-bit load or store (unsigned immediate)",
        ),
        LDST64_ABS_LO12_NC => (
            LDST.0 | SIZE,
            LDST.1 | 0xc000_0000,
            "a 64-bit load or store (unsigned immediate)",
        ),
        LDST128_ABS_LO12_NC => (
            LDST.0 | SIZE | V_OPC1,
            LDST.1 | V_OPC1,
            "a 128-bit load or store (unsigned immediate)",
        ),
        _ => return None,
    })
}

/// Whether `insn` is what relocation type `r_type` patches.
fn patches(r_type: u32, insn: u32) -> bool {
    let Some((mask, value, _)) = expected_instruction(r_type) else {
        return true;
    };
    // A byte access has size 00, as a 128-bit one does: V=1 with opc=1x
    // is the 128-bit one.
    let q = 0x0480_0000;
    insn & mask == value && (r_type != types::LDST8_ABS_LO12_NC || insn & q != q)
}

/// Applies relocation `r_type` at `place` (the bytes at address `p`) for the
/// target `s_plus_a`.
///
/// # Errors
/// A [`RelocError`]; `place` is unchanged then.
pub fn apply(r_type: u32, place: &mut [u8], p: u64, s_plus_a: u64) -> Result<(), RelocError> {
    use types::*;
    let bad = RelocError::BadPlace(r_type);
    let word = |place: &[u8]| {
        let insn = place
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(bad)?;
        if patches(r_type, insn) {
            Ok(insn)
        } else {
            Err(RelocError::WrongInstruction(r_type, insn))
        }
    };
    let put32 = |place: &mut [u8], v: u32| {
        place
            .get_mut(..4)
            .ok_or(bad)
            .map(|b| b.copy_from_slice(&v.to_le_bytes()))
    };
    match r_type {
        ABS64 => place
            .get_mut(..8)
            .ok_or(bad)
            .map(|b| b.copy_from_slice(&s_plus_a.to_le_bytes())),
        PREL64 => place
            .get_mut(..8)
            .ok_or(bad)
            .map(|b| b.copy_from_slice(&s_plus_a.wrapping_sub(p).to_le_bytes())),
        PREL32 => {
            let delta = s_plus_a.wrapping_sub(p) as i64;
            if delta < i64::from(i32::MIN) || delta > i64::from(i32::MAX) {
                return Err(RelocError::Overflow(r_type));
            }
            put32(place, delta as i32 as u32)
        }
        CALL26 | JUMP26 => {
            if !branch26_reaches(p, s_plus_a) {
                return Err(if !s_plus_a.wrapping_sub(p).is_multiple_of(4) {
                    bad
                } else {
                    RelocError::Overflow(r_type)
                });
            }
            let insn = word(place)?;
            put32(place, with_imm26(insn, s_plus_a.wrapping_sub(p) as i64))
        }
        ADR_PREL_PG_HI21 | ADR_PREL_PG_HI21_NC => {
            let pages = (page(s_plus_a).wrapping_sub(page(p)) as i64) >> 12;
            if r_type == ADR_PREL_PG_HI21 && !(-(1 << 20)..(1 << 20)).contains(&pages) {
                return Err(RelocError::Overflow(r_type));
            }
            let insn = word(place)?;
            // In a page's last two words an `adrp` may start Cortex-A53
            // erratum 843419's sequence (`module::a53`): where the page
            // is within `adr`'s reach, an `adr` of the page's address
            // computes the same value, and no sequence starts.
            let delta = page(s_plus_a).wrapping_sub(p) as i64;
            if p % 4096 >= 0xff8 && (-(1 << 20)..(1 << 20)).contains(&delta) {
                return put32(place, with_adrp_imm(insn & !(1 << 31), delta));
            }
            put32(place, with_adrp_imm(insn, pages))
        }
        ADD_ABS_LO12_NC | LDST8_ABS_LO12_NC | LDST16_ABS_LO12_NC | LDST32_ABS_LO12_NC | LDST64_ABS_LO12_NC
        | LDST128_ABS_LO12_NC => {
            let shift = match r_type {
                LDST16_ABS_LO12_NC => 1,
                LDST32_ABS_LO12_NC => 2,
                LDST64_ABS_LO12_NC => 3,
                LDST128_ABS_LO12_NC => 4,
                _ => 0,
            };
            // The field holds the offset in units of the access size: low
            // bits it would drop are an error, never silently lost.
            if s_plus_a & ((1 << shift) - 1) != 0 {
                return Err(RelocError::Misaligned(r_type));
            }
            let insn = word(place)?;
            put32(place, with_imm12(insn, (s_plus_a & 0xfff) >> shift))
        }
        other => Err(RelocError::Unsupported(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::types::*;
    use super::*;

    fn patched(r_type: u32, insn: u32, p: u64, target: u64) -> Result<u32, RelocError> {
        let mut place = insn.to_le_bytes();
        apply(r_type, &mut place, p, target)?;
        Ok(u32::from_le_bytes(place))
    }

    #[test]
    fn instruction_encodings() {
        // Worked out by hand from the A64 encodings (ARM ARM C6):
        // (type, instruction with a zero field, P, S+A, result)
        let p = 0xffff_8000_0000_1000u64;
        let rows: &[(u32, u32, u64, u64, u32)] = &[
            // bl +0x1000: imm26 = 0x400.
            (CALL26, 0x9400_0000, p, p + 0x1000, 0x9400_0400),
            // b -4: imm26 = 0x3ffffff.
            (JUMP26, 0x1400_0000, p, p - 4, 0x17ff_ffff),
            // bl to the last word in reach: +128 MiB - 4.
            (CALL26, 0x9400_0000, p, p + (128 << 20) - 4, 0x95ff_ffff),
            // adrp x0, one page up: immlo = 1.
            (ADR_PREL_PG_HI21, 0x9000_0000, p, p + 0x1234, 0xb000_0000),
            // adrp x1, 5 pages down: imm = -5 = 0x1ffffb: immlo 3, immhi 0x7fffe.
            (ADR_PREL_PG_HI21, 0x9000_0001, p, p - 0x5000, 0xf0ff_ffc1),
            // In a page's last two words an adrp becomes an adr of the
            // page's address (Cortex-A53 erratum 843419): adr x0, +8 ...
            (ADR_PREL_PG_HI21, 0x9000_0000, p + 0xff8, p + 0x1234, 0x1000_0040),
            // ... adr x1, -0x5ffc (to p - 0x5000) ...
            (ADR_PREL_PG_HI21_NC, 0x9000_0001, p + 0xffc, p - 0x5000, 0x10fd_0021),
            // ... unless adr cannot reach it: adrp x0, 0x200 pages up.
            (ADR_PREL_PG_HI21, 0x9000_0000, p + 0xff8, p + 0x20_0010, 0x9000_1000),
            // add x0, x0, #0x234.
            (ADD_ABS_LO12_NC, 0x9100_0000, p, 0x1234, 0x9108_d000),
            // ldr x2, [x3, #0x238]: imm12 = 0x238 >> 3 = 0x47.
            (LDST64_ABS_LO12_NC, 0xf940_0062, p, 0xabc_d238, 0xf941_1c62),
            // ldr w2, [x3, #0x238]: imm12 = 0x8e.
            (LDST32_ABS_LO12_NC, 0xb940_0062, p, 0x238, 0xb942_3862),
            // ldrb w2, [x3, #0x7]
            (LDST8_ABS_LO12_NC, 0x3940_0062, p, 0x1007, 0x3940_1c62),
        ];
        for &(t, insn, p, target, want) in rows {
            assert_eq!(
                patched(t, insn, p, target),
                Ok(want),
                "type {t} target {target:#x}: got {:#x?}",
                patched(t, insn, p, target)
            );
        }
    }

    #[test]
    fn each_type_patches_only_its_own_kind_of_instruction() {
        use types::*;
        let p = 0xffff_8000_7800_0000;
        let add = 0x9100_0000; // add x0, x0, #0
        let rows: [(u32, u32, bool); 14] = [
            (CALL26, 0x9400_0000, true),  // bl
            (CALL26, 0x1400_0000, false), // b
            (CALL26, add, false),
            (JUMP26, 0x1400_0000, true),
            (JUMP26, 0x9400_0000, false),
            (ADR_PREL_PG_HI21, 0x9000_0000, true),  // adrp x0
            (ADR_PREL_PG_HI21, 0x1000_0000, false), // adr x0
            (ADD_ABS_LO12_NC, add, true),
            (ADD_ABS_LO12_NC, 0xf940_0000, false), // ldr x0, [x0]
            (LDST64_ABS_LO12_NC, 0xf940_0000, true),
            (LDST32_ABS_LO12_NC, 0xf940_0000, false),
            (LDST8_ABS_LO12_NC, 0x39c0_0000, true),  // ldrsb w0, [x0]
            (LDST8_ABS_LO12_NC, 0x3dc0_0000, false), // ldr q0, [x0]
            (LDST128_ABS_LO12_NC, 0x3dc0_0000, true),
        ];
        for (r_type, insn, fits) in rows {
            let mut place = insn.to_le_bytes();
            let result = apply(r_type, &mut place, p, p + 0x1000);
            if fits {
                assert!(result.is_ok(), "{r_type} {insn:#010x}: {result:?}");
            } else {
                assert_eq!(result, Err(RelocError::WrongInstruction(r_type, insn)));
                assert_eq!(place, insn.to_le_bytes(), "unchanged");
            }
        }
        let why = RelocError::WrongInstruction(CALL26, add).to_string();
        assert_eq!(
            why,
            "relocation type 283 at 0x91000000, which is not a BL (R_AARCH64_CALL26)"
        );
    }

    #[test]
    fn ranges_are_checked() {
        let p = 0xffff_8000_0000_0000u64;
        assert_eq!(
            patched(CALL26, 0x9400_0000, p, p + (128 << 20)),
            Err(RelocError::Overflow(CALL26))
        );
        assert_eq!(
            patched(JUMP26, 0x1400_0000, p, p - (128 << 20) - 4),
            Err(RelocError::Overflow(JUMP26))
        );
        assert_eq!(
            patched(CALL26, 0x9400_0000, p, p + 2),
            Err(RelocError::BadPlace(CALL26))
        );
        assert_eq!(
            patched(ADR_PREL_PG_HI21, 0x9000_0000, p, p + (4 << 30)),
            Err(RelocError::Overflow(ADR_PREL_PG_HI21))
        );
        assert!(
            patched(ADR_PREL_PG_HI21_NC, 0x9000_0000, p, p + (4 << 30)).is_ok(),
            "_NC is not checked"
        );
        assert_eq!(patched(999, 0, p, p), Err(RelocError::Unsupported(999)));
        let mut short = [0u8; 2];
        assert_eq!(apply(CALL26, &mut short, p, p), Err(RelocError::BadPlace(CALL26)));
    }

    #[test]
    fn loads_and_stores_refuse_targets_not_aligned_to_their_size() {
        let p = 0xffff_8000_0000_1000u64;
        // (type, instruction, access size)
        let rows = [
            (LDST16_ABS_LO12_NC, 0x7940_0062u32, 2u64),
            (LDST32_ABS_LO12_NC, 0xb940_0062, 4),
            (LDST64_ABS_LO12_NC, 0xf940_0062, 8),
            (LDST128_ABS_LO12_NC, 0x3dc0_0062, 16),
        ];
        for (t, insn, size) in rows {
            for off in 1..size {
                let target = 0xabc_d200 + off;
                let mut place = insn.to_le_bytes();
                assert_eq!(
                    apply(t, &mut place, p, target),
                    Err(RelocError::Misaligned(t)),
                    "type {t} target {target:#x}"
                );
                assert_eq!(u32::from_le_bytes(place), insn, "a refusal leaves the place as it was");
            }
            assert!(patched(t, insn, p, 0xabc_d200 + size).is_ok(), "type {t} aligned");
        }
        // Bytes and ADD have no access size: any low bits go in.
        assert!(patched(LDST8_ABS_LO12_NC, 0x3940_0062, p, 0x1007).is_ok());
        assert!(patched(ADD_ABS_LO12_NC, 0x9100_0000, p, 0x1235).is_ok());
        assert_eq!(
            RelocError::Misaligned(LDST64_ABS_LO12_NC).to_string(),
            "improper alignment for relocation type 286: its target is not aligned to the access size (R_AARCH64_LDST64_ABS_LO12_NC)"
        );
    }

    #[test]
    fn data_relocations() {
        let p = 0xffff_8000_0000_1000u64;
        let mut place = [0u8; 8];
        apply(ABS64, &mut place, p, 0xffff_8000_1234_5678).unwrap();
        assert_eq!(u64::from_le_bytes(place), 0xffff_8000_1234_5678);
        apply(PREL64, &mut place, p, p - 16).unwrap();
        assert_eq!(u64::from_le_bytes(place) as i64, -16);
        let mut place = [0u8; 4];
        apply(PREL32, &mut place, p, p + 0x7fff_fff0).unwrap();
        assert_eq!(i32::from_le_bytes(place), 0x7fff_fff0);
        assert_eq!(
            apply(PREL32, &mut place, p, p + (2 << 30)),
            Err(RelocError::Overflow(PREL32))
        );
    }
}
