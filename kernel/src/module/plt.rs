//! How many PLT veneers a module may need, counted before loading exactly as
//! Linux arm64 does (arch/arm64/kernel/module-plts.c, `count_plts`), so a load
//! never runs out of slots.
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

use super::reloc::types::{CALL26, JUMP26};

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

#[cfg(test)]
mod tests {
    use super::super::reloc::types::{ABS64, ADR_PREL_PG_HI21};
    use super::*;

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
}
