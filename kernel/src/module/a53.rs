//! Cortex-A53 erratum 843419, which the Raspberry Pi 3's cores (r0p4) have:
//! an `adrp` in one of a 4 KiB page's last two words, followed by a load or
//! store and then (with at most one instruction between, no branch) a load
//! or store of the unsigned-immediate form based on the `adrp`'s register,
//! may compute a wrong address for that last access (Arm's errata notice
//! ARM-EPM-048406, "sequence 1"; the linkers' workarounds detect the same).
//!
//! The kernel itself is linked with `--fix-cortex-a53-843419`, and
//! `tests/errata.rs` checks that no sequence is left in it.
//! A module's code gets its page offsets where `insmod` places it, so the
//! loader makes every `adrp` it relocates in those two words an `adr` of
//! the same page address (`reloc::apply`), and refuses a module in which a
//! sequence is left (an `adrp` whose page is beyond `adr`'s 1 MiB).
//!
//! Only the instruction classes the erratum names are decoded, by their
//! fixed bits in the Arm ARM's encoding tables ("Loads and Stores").

/// Whether the instruction `at` bytes into a 4 KiB page, `code[0]`, starts
/// the erratum's sequence in `code` (the instructions from it on).
pub fn starts_sequence(at: u64, code: &[u32]) -> bool {
    if at % 4096 < 0xff8 {
        return false;
    }
    let (adrp, access, then) = match *code {
        [adrp, access, third, ..] => (adrp, access, third),
        _ => return false,
    };
    let reg = adrp & 0x1f;
    if !is_adrp(adrp) || !may_be_second(access, reg) {
        return false;
    }
    // The instruction between may be anything but a branch: the notice
    // also requires that it not write the register, which the linkers do
    // not check either (a few more sequences found, none missed).
    let last_uses = |insn: u32| unsigned_offset(insn) && base(insn) == reg;
    last_uses(then) || (!is_branch(then) && code.get(3).is_some_and(|&fourth| last_uses(fourth)))
}

/// Where in `code` (little-endian instructions, the first at address
/// `start`, 4-byte aligned) a sequence starts, if one does. Only each
/// page's last two words are looked at: `insmod` runs this on each of a
/// module's code sections (a sequence is one function's, so it lies in
/// one), at a few instructions a page.
#[inline]
pub fn find(start: u64, code: &[u8]) -> Option<u64> {
    // The first such word: the first page's 0xff8, or its 0xffc where the
    // code starts on that word itself. In line: most of a module's code
    // sections end before theirs.
    let to_ff8 = (0xff8u64.wrapping_sub(start) % 4096) as usize;
    let first = if to_ff8 == 4092 { 0 } else { to_ff8 };
    if first >= code.len() {
        return None;
    }
    find_from(start, code, first)
}

/// [`find`], from the word `at` on, one of a page's last two.
fn find_from(start: u64, code: &[u8], mut at: usize) -> Option<u64> {
    // Past the end reads as 0, `udf #0`: no part of any sequence.
    let word = |at: usize| {
        code.get(at..at + 4)
            .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    while at < code.len() {
        // Most such words are no `adrp`: the rest is read only for one.
        let adrp = word(at);
        let here = start.wrapping_add(at as u64);
        if is_adrp(adrp) && starts_sequence(here, &[adrp, word(at + 4), word(at + 8), word(at + 12)]) {
            return Some(here);
        }
        // 0xff8 is followed by 0xffc, 0xffc by the next page's 0xff8.
        at += if here % 4096 == 0xff8 { 4 } else { 4092 };
    }
    None
}

/// The erratum's second instruction: a load or store of one register (any
/// addressing), a store pair (STP, STNP), an exclusive, a literal load or
/// an Advanced SIMD ST1, that does not write the `adrp`'s register.
fn may_be_second(insn: u32, reg: u32) -> bool {
    let class = exclusive(insn) || literal_load(insn) || single(insn) || store_pair(insn) || st1(insn);
    class && !(loads_into(insn) && insn & 0x1f == reg) && !(writes_back(insn) && base(insn) == reg)
}

fn is_adrp(insn: u32) -> bool {
    insn & 0x9f00_0000 == 0x9000_0000
}

fn base(insn: u32) -> u32 {
    (insn >> 5) & 0x1f
}

/// Load/store exclusive (LDXR, STXR, LDAXR, ...).
fn exclusive(insn: u32) -> bool {
    insn & 0x3f00_0000 == 0x0800_0000
}

/// LDR (literal), integer or FP/SIMD.
fn literal_load(insn: u32) -> bool {
    insn & 0x3b00_0000 == 0x1800_0000
}

/// Load/store register (unsigned immediate): the erratum's last access.
fn unsigned_offset(insn: u32) -> bool {
    insn & 0x3b00_0000 == 0x3900_0000
}

/// Load/store of one register: unscaled, post-indexed, unprivileged,
/// pre-indexed, register offset, unsigned immediate.
fn single(insn: u32) -> bool {
    let register_offset = insn & 0x3b20_0c00 == 0x3820_0800;
    imm9_form(insn) || register_offset || unsigned_offset(insn)
}

/// Load/store register with a 9-bit immediate: unscaled, post-indexed,
/// unprivileged or pre-indexed, told apart by bits 11:10.
fn imm9_form(insn: u32) -> bool {
    insn & 0x3b20_0000 == 0x3800_0000
}

/// STP (post-indexed, offset, pre-indexed) and STNP, integer or FP/SIMD.
fn store_pair(insn: u32) -> bool {
    matches!(
        insn & 0x3bc0_0000,
        0x2800_0000 | 0x2880_0000 | 0x2900_0000 | 0x2980_0000
    )
}

/// Advanced SIMD ST1, multiple or single structure, with or without
/// post-index.
fn st1(insn: u32) -> bool {
    let multiple = insn & 0xbfff_0000 == 0x0c00_0000 || insn & 0xbfe0_0000 == 0x0c80_0000;
    let single = insn & 0xbfff_0000 == 0x0d00_0000 || insn & 0xbfe0_0000 == 0x0d80_0000;
    (multiple && matches!(insn & 0xf000, 0x2000 | 0x6000 | 0x7000 | 0xa000))
        || (single && matches!(insn & 0x0040_e000, 0x0000 | 0x4000 | 0x8000))
}

/// Pre- or post-indexed single-register forms, STP's and ST1's: they write
/// the base register back.
fn writes_back(insn: u32) -> bool {
    let single = imm9_form(insn) && matches!(insn & 0xc00, 0x400 | 0xc00);
    let pair = matches!(insn & 0x3bc0_0000, 0x2880_0000 | 0x2980_0000);
    let st1_post = st1(insn) && insn & 0x0080_0000 != 0;
    single || pair || st1_post
}

/// A load into its first register (bits 0-4): exclusive and literal loads,
/// and single-register loads (not stores, not PRFM, which shares their
/// encodings with `opc` 2: size 3 integer; size 0 FP/SIMD is STR of a Q
/// register).
fn loads_into(insn: u32) -> bool {
    if exclusive(insn) {
        return insn & 0x0040_0000 != 0;
    }
    if literal_load(insn) {
        return true;
    }
    if !single(insn) {
        return false;
    }
    let (size, simd, opc) = (insn >> 30, (insn >> 26) & 1, (insn >> 22) & 3);
    opc != 0 && !(opc == 2 && ((size == 0 && simd == 1) || (size == 3 && simd == 0)))
}

/// Conditional and unconditional branches, immediate and register,
/// compare- and test-and-branch.
fn is_branch(insn: u32) -> bool {
    insn & 0xfe00_0000 == 0x5400_0000
        || insn & 0xfe00_0000 == 0xd600_0000
        || insn & 0x7c00_0000 == 0x1400_0000
        || insn & 0x7c00_0000 == 0x3400_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    // adrp x0, #0; ldr x1, [x1]; ldr x0, [x0]: the notice's shortest form.
    const ADRP_X0: u32 = 0x9000_0000;
    const LDR_X1_X1: u32 = 0xf940_0021;
    const LDR_X0_X0: u32 = 0xf940_0000;
    const NOP: u32 = 0xd503_201f;

    #[test]
    fn the_sequence_is_found_only_in_a_pages_last_two_words() {
        let code = [ADRP_X0, LDR_X1_X1, LDR_X0_X0];
        assert!(starts_sequence(0xff8, &code));
        assert!(starts_sequence(0x1ffc, &code));
        assert!(!starts_sequence(0xff4, &code));
        assert!(!starts_sequence(0x1000, &code));
        let bytes = |words: &[u32]| words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
        let code = bytes(&[NOP, NOP, ADRP_X0, LDR_X1_X1, LDR_X0_X0]);
        assert_eq!(find(0xff0, &code), Some(0xff8));
        assert_eq!(find(0x1fff_1ff4, &code), Some(0x1fff_1ffc));
        assert_eq!(find(0xfec, &code), None);
        assert_eq!(find(0xff0, &code[..16]), None, "cut short before its last access");
        // Code that starts on a page's last word: its first word is looked at.
        let at_ffc = bytes(&[ADRP_X0, LDR_X1_X1, LDR_X0_X0]);
        assert_eq!(find(0x2ffc, &at_ffc), Some(0x2ffc));
        assert_eq!(find(0x2ff8, &at_ffc), Some(0x2ff8));
        assert_eq!(find(0x3000, &at_ffc), None);
        // Pages further on are looked at too.
        let mut long = bytes(&[NOP; 4096]);
        long[0x1ff8..0x2004].copy_from_slice(&bytes(&[ADRP_X0, LDR_X1_X1, LDR_X0_X0]));
        assert_eq!(find(0x4000, &long), Some(0x5ff8));
        assert_eq!(find(0x4004, &long), Some(0x5ffc));
        assert_eq!(find(0x4008, &long), None);
    }

    #[test]
    fn one_instruction_may_come_between_but_no_branch() {
        let with = |third: u32| starts_sequence(0xff8, &[ADRP_X0, LDR_X1_X1, third, LDR_X0_X0]);
        assert!(with(NOP));
        assert!(with(0x9100_0421), "add x1, x1, #1");
        assert!(!with(0x1400_0001), "b .+4");
        assert!(!with(0xb400_0041), "cbz x1, .+8");
        assert!(with(0x9100_0400), "add x0, x0, #1: counted, as the linkers do");
        assert!(!starts_sequence(0xff8, &[ADRP_X0, LDR_X1_X1, NOP, NOP, LDR_X0_X0]));
    }

    #[test]
    fn the_second_access_must_not_write_the_register_and_the_last_must_use_it() {
        assert!(
            !starts_sequence(0xff8, &[ADRP_X0, 0xf940_0020, LDR_X0_X0]),
            "ldr x0, [x1]"
        );
        assert!(
            starts_sequence(0xff8, &[ADRP_X0, 0xf900_0020, LDR_X0_X0]),
            "str x0, [x1]"
        );
        assert!(
            starts_sequence(0xff8, &[ADRP_X0, 0xa900_0421, LDR_X0_X0]),
            "stp x1, x1, [x1]"
        );
        assert!(
            !starts_sequence(0xff8, &[ADRP_X0, 0xf840_8c01, LDR_X0_X0]),
            "ldr x1, [x0, #8]! writes x0 back"
        );
        assert!(
            !starts_sequence(0xff8, &[ADRP_X0, 0xa940_0421, LDR_X0_X0]),
            "ldp is not among them"
        );
        assert!(
            !starts_sequence(0xff8, &[ADRP_X0, 0x9100_0421, LDR_X0_X0]),
            "add is no access"
        );
        assert!(
            starts_sequence(0xff8, &[ADRP_X0, 0x0d00_8020, LDR_X0_X0]),
            "st1 {{v0.s}}[0], [x1]"
        );
        assert!(
            !starts_sequence(0xff8, &[ADRP_X0, 0x0d40_8020, LDR_X0_X0]),
            "ld1 is not among them"
        );
        assert!(
            !starts_sequence(0xff8, &[ADRP_X0, LDR_X1_X1, LDR_X1_X1]),
            "based on x1, not x0"
        );
        assert!(
            !starts_sequence(0xff8, &[ADRP_X0, LDR_X1_X1, 0xf840_0000]),
            "ldur x0, [x0]: unscaled"
        );
        assert!(
            !starts_sequence(0xff8, &[0x1000_0000, LDR_X1_X1, LDR_X0_X0]),
            "adr, not adrp"
        );
    }
}
