//! PLT veneers, all of them: how many a module may need, counted before
//! loading exactly as Linux arm64 does (arch/arm64/kernel/module-plts.c,
//! `count_plts`), so a load never runs out of slots; how one is encoded; and
//! how they are written while a module is linked, one per target.
//!
//! Counting is per relocated executable section. Only CALL26/JUMP26 can need a
//! veneer, and only when the target is outside the section being relocated: a
//! branch to the same section moves with it and stays in reach (if a section
//! is larger than a branch's reach, no veneer placement could help anyway).
//! The section's relocations are sorted by (type, symbol, addend) so that
//! identical branches sit next to each other and count once; a non-zero addend
//! always counts (Linux does not bother deduplicating those: they do not occur
//! in practice). Two sections calling the same export count twice: the loader
//! shares veneers more eagerly than that, so it never needs more than counted.

#[cfg(with_alloc)]
use alloc::collections::BTreeMap;
use core::fmt;

use super::reloc::types::{CALL26, JUMP26};
use super::reloc::{page, with_adrp_imm, with_imm12};

/// A relocation as the counter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Branch {
    /// Relocation type.
    pub r_type: u32,
    /// Symbol index.
    pub symbol: u32,
    /// Addend.
    pub addend: i64,
    /// Whether the symbol is defined in the section the relocation patches.
    pub same_section: bool,
}

/// Slots to reserve for the `relocations` of one executable section (sorted
/// in place, as Linux sorts them).
pub fn count(relocations: &mut [Branch]) -> usize {
    relocations.sort_unstable_by_key(|r| (r.r_type, r.symbol, r.addend));
    let key = |r: &Branch| (r.r_type, r.symbol, r.addend);
    (0..relocations.len())
        .filter(|&i| {
            let r = &relocations[i];
            let duplicate = i > 0 && key(&relocations[i - 1]) == key(r);
            matches!(r.r_type, CALL26 | JUMP26) && !r.same_section && (r.addend != 0 || !duplicate)
        })
        .count()
}

/// Bytes of one PLT veneer.
pub const VENEER_SIZE: u64 = 12;

/// The veneer at `at` that jumps to `target` from anywhere within ±4 GiB:
/// `adrp x16, target; add x16, x16, :lo12:target; br x16` (x16 is IP0, the
/// register the procedure-call standard gives to veneers).
pub fn veneer(at: u64, target: u64) -> Option<[u32; 3]> {
    const ADRP_X16: u32 = 0x9000_0010;
    const ADD_X16_X16: u32 = 0x9100_0210;
    const BR_X16: u32 = 0xd61f_0200;
    let pages = (page(target).wrapping_sub(page(at)) as i64) >> 12;
    if !(-(1 << 20)..(1 << 20)).contains(&pages) {
        return None;
    }
    Some([with_adrp_imm(ADRP_X16, pages), with_imm12(ADD_X16_X16, target), BR_X16])
}

/// Where a veneer at `at` jumps: the inverse of [`veneer`], read the way the
/// CPU executes the three instructions.
pub fn veneer_target(at: u64, insns: [u32; 3]) -> Option<u64> {
    let [adrp, add, br] = insns;
    if adrp & 0x9f00_001f != 0x9000_0010 || add & 0xffc0_03ff != 0x9100_0210 || br != 0xd61f_0200 {
        return None;
    }
    let imm = ((adrp >> 29) & 3) | (((adrp >> 5) & 0x7_ffff) << 2);
    let pages = ((imm << 11) as i32 >> 11) as i64; // sign-extend 21 bits
    let base = page(at).wrapping_add((pages << 12) as u64);
    Some(base + u64::from((add >> 10) & 0xfff))
}

/// Why no veneer could be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PltError {
    /// Every slot is taken: the count before loading was wrong.
    OutOfSlots,
    /// The target (this address) is beyond a veneer's ±4 GiB.
    OutOfReach(u64),
}

impl fmt::Display for PltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PltError::OutOfSlots => write!(f, "more PLT slots needed than counted"),
            PltError::OutOfReach(target) => write!(f, "{target:#x} is beyond a veneer's reach"),
        }
    }
}

/// The veneers of one module being linked: `slots` of them from image offset
/// `at`, one written per distinct target, shared by every branch to it.
#[cfg(with_alloc)]
pub struct Plt {
    at: u64,
    slots: usize,
    /// The slot of each target a veneer has been written for.
    written: BTreeMap<u64, usize>,
}

#[cfg(with_alloc)]
impl Plt {
    /// Room for `slots` veneers from image offset `at`.
    pub fn new(at: u64, slots: usize) -> Self {
        Plt {
            at,
            slots,
            written: BTreeMap::new(),
        }
    }

    /// Veneers written so far.
    pub fn used(&self) -> usize {
        self.written.len()
    }

    /// The address of the veneer to `target` in `image`, which runs at
    /// `base`: the one already written for it, or a new one in the next slot.
    /// Finding it is a map lookup, not a scan of every veneer written so
    /// far: a module with thousands of far targets must not link in their
    /// square.
    ///
    /// # Errors
    /// - [`PltError::OutOfSlots`]: every slot is taken (the count was wrong).
    /// - [`PltError::OutOfReach`]: `target` is beyond a veneer's reach.
    pub fn veneer_to(&mut self, image: &mut [u8], base: u64, target: u64) -> Result<u64, PltError> {
        let slot = match self.written.get(&target) {
            Some(&slot) => slot,
            None if self.written.len() < self.slots => self.written.len(),
            None => return Err(PltError::OutOfSlots),
        };
        let at = self.at + slot as u64 * VENEER_SIZE;
        let insns = veneer(base.wrapping_add(at), target).ok_or(PltError::OutOfReach(target))?;
        for (i, insn) in insns.iter().enumerate() {
            let at = at as usize + 4 * i;
            image[at..at + 4].copy_from_slice(&insn.to_le_bytes());
        }
        // Taken only once written: a target out of reach takes no slot.
        self.written.insert(target, slot);
        Ok(base.wrapping_add(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::reloc::types::{ABS64, ADR_PREL_PG_HI21};

    fn b(r_type: u32, symbol: u32, addend: i64, same_section: bool) -> Branch {
        Branch {
            r_type,
            symbol,
            addend,
            same_section,
        }
    }

    #[test]
    fn counts_like_linux() {
        // (relocations, slots) — the reference count is worked out by hand.
        let rows: Vec<(Vec<Branch>, usize)> = vec![
            (vec![], 0),
            // Two calls to the same export: one slot.
            (vec![b(CALL26, 7, 0, false), b(CALL26, 7, 0, false)], 1),
            // Same symbol, different addends or types: separate slots.
            (
                vec![b(CALL26, 7, 0, false), b(CALL26, 7, 8, false), b(JUMP26, 7, 0, false)],
                3,
            ),
            // A non-zero addend counts every time, duplicate or not.
            (vec![b(CALL26, 7, 8, false), b(CALL26, 7, 8, false)], 2),
            // Branches within the section, and non-branches, need none.
            (
                vec![
                    b(CALL26, 3, 0, true),
                    b(ABS64, 9, 0, false),
                    b(ADR_PREL_PG_HI21, 9, 0, false),
                ],
                0,
            ),
            // Interleaved duplicates still count once each after sorting.
            (
                vec![
                    b(CALL26, 2, 0, false),
                    b(CALL26, 1, 0, false),
                    b(CALL26, 2, 0, false),
                    b(CALL26, 1, 0, false),
                ],
                2,
            ),
        ];
        for (mut relocations, slots) in rows {
            assert_eq!(count(&mut relocations), slots, "{relocations:?}");
        }
    }

    #[test]
    fn veneers_decode_back_to_their_target() {
        let at = 0xffff_8000_0000_0ff4u64;
        // Fixed encodings: adrp x16, +0x12345 pages; add x16, x16, #0x678; br x16.
        let target = (at & !0xfff) + (0x12345 << 12) + 0x678;
        let v = veneer(at, target).unwrap();
        // adrp: immlo = 0x12345 & 3 = 1 (bit 29), immhi = 0x12345 >> 2 = 0x48d1 (bits 23:5).
        assert_eq!(v, [0xb009_1a30, 0x9119_e210, 0xd61f_0200]);
        for target in [
            at + 8,
            at - (1 << 30) + 0x10,
            at + (4 << 30) - 0x1000,
            at - (4 << 30) + 0x1000,
        ] {
            let v = veneer(at, target).unwrap();
            assert_eq!(veneer_target(at, v), Some(target), "{target:#x}");
        }
        assert_eq!(veneer(at, at + (4 << 30) + 0x1000), None, "beyond ADRP's reach");
        assert_eq!(veneer_target(at, [0, 0, 0]), None);
    }

    #[test]
    fn one_veneer_per_target_and_never_more_than_counted() {
        let mut image = vec![0u8; 0x100];
        let mut plt = Plt::new(0x40, 2);
        let base = 0xffff_8000_0000_0000;
        let (a, b) = (base + (1 << 30), base + (2 << 30));
        let first = plt.veneer_to(&mut image, base, a).unwrap();
        assert_eq!(plt.veneer_to(&mut image, base, a), Ok(first), "shared");
        let second = plt.veneer_to(&mut image, base, b).unwrap();
        assert_eq!(second, first + VENEER_SIZE);
        assert_eq!(plt.used(), 2);
        let word = |at: u64, i: usize| {
            let o = (at - base) as usize + 4 * i;
            u32::from_le_bytes(image[o..o + 4].try_into().unwrap())
        };
        assert_eq!(veneer_target(second, [0, 1, 2].map(|i| word(second, i))), Some(b));
        assert_eq!(
            plt.veneer_to(&mut image, base, base + (3 << 30)),
            Err(PltError::OutOfSlots),
            "a third target"
        );
        let mut roomy = Plt::new(0x40, 4);
        let far = base + (8 << 30);
        assert_eq!(roomy.veneer_to(&mut image, base, far), Err(PltError::OutOfReach(far)));
        assert_eq!(roomy.used(), 0, "a target out of reach takes no slot");
    }
}
