//! Where the image may go (the window), in steps of what alignment (the
//! slots), which slot a seed picks, and how many bits of entropy that is.
//!
//! The default window is the middle half of the area above `KIMAGE_VADDR`
//! (up to the MMIO window), as Linux places its image in the middle half of
//! the vmalloc area: away from both ends, where other mappings grow.

use core::fmt;

use pi::layout::{KIMAGE_VADDR, MMIO_BASE};

use crate::console::escape::Escaped;
use crate::num::parse_u64;

/// The placement rules in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Lowest text VA allowed.
    pub start: u64,
    /// The image must end at or below this.
    pub end: u64,
    /// Text VA alignment: 4 KiB, 64 KiB or 2 MiB.
    pub align: u64,
}

/// The end of the area the image may move in: the MMIO window starts there.
pub const KASLR_AREA_END: u64 = MMIO_BASE;

impl Window {
    /// The default: the middle half of `[KIMAGE_VADDR, KASLR_AREA_END)`, 2 MiB steps.
    pub const fn default_window() -> Window {
        let quarter = (KASLR_AREA_END - KIMAGE_VADDR) / 4;
        Window {
            start: KIMAGE_VADDR + quarter,
            end: KIMAGE_VADDR + 3 * quarter,
            align: 2 << 20,
        }
    }

    /// How many placements fit an image of `size` bytes.
    pub fn slots(&self, size: u64) -> u64 {
        let first = self.start.next_multiple_of(self.align);
        match self.end.checked_sub(size) {
            Some(last) if last >= first => (last - first) / self.align + 1,
            _ => 0,
        }
    }

    /// The text VA for `seed`: slot `seed mod slots`, counted from the bottom.
    pub fn pick(&self, seed: u64, size: u64) -> Option<u64> {
        let slots = self.slots(size);
        (slots > 0).then(|| self.start.next_multiple_of(self.align) + (seed % slots) * self.align)
    }
}

/// `round(10 * log2(slots))`: the entropy in tenths of a bit, without floats.
pub fn entropy_tenths(slots: u64) -> u64 {
    if slots == 0 {
        return 0;
    }
    let whole = 63 - u64::from(slots.leading_zeros());
    // The fraction, one binary digit per squaring of the mantissa in [1, 2) (Q32).
    let mut mantissa = (u128::from(slots) << 32) >> whole;
    let mut fraction = 0u64;
    for _ in 0..20 {
        mantissa = (mantissa * mantissa) >> 32;
        fraction <<= 1;
        if mantissa >= 2 << 32 {
            mantissa >>= 1;
            fraction |= 1;
        }
    }
    // Rounded, not truncated: 24.99998 bits is 25.0, not 24.9.
    whole * 10 + ((fraction * 10 + (1 << 19)) >> 20)
}

/// A bad `kaslr.*` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowError<'a> {
    /// Not `0xSTART-0xEND`.
    Syntax(&'a str),
    /// START is not below END.
    Empty(u64, u64),
    /// Not 4K, 64K or 2M.
    Align(&'a str),
    /// Finer than the kernel's pages: the image is mapped page by page.
    AlignBelowPage(&'a str),
    /// Outside `[KIMAGE_VADDR, KASLR_AREA_END)`: it would overlap the
    /// linear map, the modules or the MMIO window.
    OutsideArea(u64, u64),
    /// Too small for the image.
    TooSmall(u64, u64),
    /// Overlaps the image at its link address but does not start there.
    OverlapsLinkAddress(u64, u64),
}

impl fmt::Display for WindowError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `v` is the command line's text: escaped.
            WindowError::Syntax(v) => write!(f, "kaslr.window={}: expected 0xSTART-0xEND", Escaped(v)),
            WindowError::Empty(s, e) => write!(f, "kaslr.window={s:#x}-{e:#x}: the start must be below the end"),
            WindowError::Align(v) => write!(f, "kaslr.align={}: expected 4K, 64K or 2M", Escaped(v)),
            WindowError::AlignBelowPage(v) => write!(
                f,
                "kaslr.align={}: finer than this kernel's {} pages",
                Escaped(v),
                pi::layout::GRANULE.name()
            ),
            WindowError::OutsideArea(s, e) => write!(
                f,
                "kaslr.window={s:#x}-{e:#x} leaves the image area {KIMAGE_VADDR:#x}-{KASLR_AREA_END:#x} (it would overlap the modules, linear map or MMIO regions)"
            ),
            WindowError::TooSmall(s, e) => {
                write!(f, "kaslr.window={s:#x}-{e:#x} has no aligned slot that fits the image")
            }
            WindowError::OverlapsLinkAddress(s, e) => write!(
                f,
                "kaslr.window={s:#x}-{e:#x} overlaps the image at its link address {KIMAGE_VADDR:#x}; start at or after its end"
            ),
        }
    }
}

/// Applies `kaslr.window=` and `kaslr.align=` (either may be absent) to the
/// default window and checks the result for an image of `size` bytes.
///
/// # Errors
/// A [`WindowError`]; the caller falls back to no KASLR.
pub fn window_from_args<'a>(
    window: Option<&'a str>,
    align: Option<&'a str>,
    size: u64,
) -> Result<Window, WindowError<'a>> {
    let mut w = Window::default_window();
    if let Some(a) = align {
        w.align = match a {
            "4K" | "4k" => 4 << 10,
            "64K" | "64k" => 64 << 10,
            "2M" | "2m" => 2 << 20,
            _ => return Err(WindowError::Align(a)),
        };
        if w.align < pi::layout::PAGE_SIZE {
            return Err(WindowError::AlignBelowPage(a));
        }
    }
    if let Some(text) = window {
        let (s, e) = text.split_once('-').ok_or(WindowError::Syntax(text))?;
        let (s, e) = (
            parse_u64(s).ok_or(WindowError::Syntax(text))?,
            parse_u64(e).ok_or(WindowError::Syntax(text))?,
        );
        if s >= e {
            return Err(WindowError::Empty(s, e));
        }
        if s < KIMAGE_VADDR || e > KASLR_AREA_END {
            return Err(WindowError::OutsideArea(s, e));
        }
        w.start = s;
        w.end = e;
    }
    if w.slots(size) == 0 {
        return Err(WindowError::TooSmall(w.start, w.end));
    }
    // The image is already mapped at its link address while it moves, so no
    // slot may overlap it except the link address itself (moving by zero is
    // no move at all). Slots only grow from the first, so checking the lowest
    // one that moves checks them all.
    let first = w.start.next_multiple_of(w.align);
    let lowest_move = if first == KIMAGE_VADDR { first + w.align } else { first };
    let moves_exist = lowest_move.checked_add(size).is_some_and(|end| end <= w.end);
    if moves_exist && lowest_move < KIMAGE_VADDR + size {
        return Err(WindowError::OverlapsLinkAddress(w.start, w.end));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 0x69000;
    const MIB: u64 = 1 << 20;

    #[test]
    fn default_window_is_the_middle_half() {
        let w = Window::default_window();
        let area = KASLR_AREA_END - KIMAGE_VADDR;
        assert_eq!(w.start - KIMAGE_VADDR, area / 4);
        assert_eq!(KASLR_AREA_END - w.end, area / 4);
        assert_eq!(w.align, 2 * MIB);
    }

    #[test]
    fn slots_at_the_edges() {
        let base = KIMAGE_VADDR + 64 * MIB;
        // (window, size, slots, first pick, last pick)
        let rows = [
            // Exactly one slot.
            (
                Window {
                    start: base,
                    end: base + SIZE,
                    align: 4096,
                },
                1,
                base,
                base,
            ),
            // One 2 MiB slot: the image needs less than 2 MiB.
            (
                Window {
                    start: base,
                    end: base + 2 * MIB,
                    align: 2 * MIB,
                },
                1,
                base,
                base,
            ),
            // Unaligned start rounds up.
            (
                Window {
                    start: base + 1,
                    end: base + 6 * MIB,
                    align: 2 * MIB,
                },
                2,
                base + 2 * MIB,
                base + 4 * MIB,
            ),
            (
                Window {
                    start: base,
                    end: base + 4 * MIB,
                    align: 64 << 10,
                },
                (4 * MIB - SIZE) / (64 << 10) + 1,
                base,
                base + 4 * MIB - SIZE.next_multiple_of(64 << 10),
            ),
        ];
        for (w, slots, first, last) in rows {
            assert_eq!(w.slots(SIZE), slots, "{w:x?}");
            assert_eq!(w.pick(0, SIZE), Some(first));
            assert_eq!(w.pick(slots - 1, SIZE), Some(last));
            assert_eq!(w.pick(slots, SIZE), Some(first), "wraps");
            let end = w.pick(slots - 1, SIZE).unwrap() + SIZE;
            assert!(end <= w.end, "the last slot fits");
        }
        let tiny = Window {
            start: base,
            end: base + SIZE - 1,
            align: 4096,
        };
        assert_eq!((tiny.slots(SIZE), tiny.pick(5, SIZE)), (0, None));
    }

    #[test]
    fn entropy() {
        for (slots, tenths) in [
            (1, 0),
            (2, 10),
            (3, 16),
            (1024, 100),
            (1536, 106),
            (32 << 20, 250),
            (u64::MAX, 640),
        ] {
            assert_eq!(entropy_tenths(slots), tenths, "{slots}");
        }
        // The default window at 2 MiB: 64 TiB / 2 MiB = 2^25 slots, less the
        // partial last one: 24.99998 bits, which rounds to 25.0.
        let slots = Window::default_window().slots(SIZE);
        assert_eq!(entropy_tenths(slots), 250);
        assert_eq!(entropy_tenths((1 << 25) - 1), 250);
        assert_eq!(entropy_tenths(3 << 20), 216, "21.58 bits");
    }

    #[test]
    fn every_slot_of_an_accepted_window_is_a_valid_move() {
        // Windows at and just past the link address, at each alignment.
        for align in ["4K", "64K", "2M"] {
            for start in [
                KIMAGE_VADDR,
                KIMAGE_VADDR + 0x1000,
                KIMAGE_VADDR + SIZE,
                KIMAGE_VADDR + 2 * MIB,
            ] {
                let window = format!("{start:#x}-{:#x}", start + 64 * MIB);
                let Ok(w) = window_from_args(Some(&window), Some(align), SIZE) else {
                    continue;
                };
                for slot in 0..w.slots(SIZE) {
                    let va = w.pick(slot, SIZE).unwrap();
                    assert!(
                        va == KIMAGE_VADDR || va >= KIMAGE_VADDR + SIZE,
                        "{window} {align}: slot {slot} at {va:#x} overlaps the link address"
                    );
                }
            }
        }
        // A window of exactly the link address is fine: the image stays.
        let here = format!("{KIMAGE_VADDR:#x}-{:#x}", KIMAGE_VADDR + SIZE);
        assert!(window_from_args(Some(&here), Some("4K"), SIZE).is_ok());
    }

    #[test]
    fn window_arguments() {
        let ok = window_from_args(Some("0xffff900000000000-0xffff900040000000"), Some("64K"), SIZE).unwrap();
        assert_eq!(
            (ok.start, ok.end, ok.align),
            (0xffff_9000_0000_0000, 0xffff_9000_4000_0000, 64 << 10)
        );
        let rows: &[(Option<&str>, Option<&str>, &str)] = &[
            (
                Some("0xffff000000000000-0xffff000040000000"),
                None,
                "leaves the image area",
            ),
            (
                Some("0xfffffffff0000000-0xfffffffff8000000"),
                None,
                "leaves the image area",
            ),
            (Some("0xffff900000000000-0xffff900000010000"), None, "no aligned slot"),
            (Some("nonsense"), None, "expected 0xSTART-0xEND"),
            (
                Some("0xffff900000000000-0xffff800000000000"),
                None,
                "0xffff900000000000-0xffff800000000000: the start must be below the end",
            ),
            (Some("0x1-0x1"), None, "the start must be below the end"),
            (None, Some("3M"), "expected 4K, 64K or 2M"),
            (
                Some("0xffff800080001000-0xffff800090000000"),
                Some("4K"),
                "overlaps the image at its link address",
            ),
            // Starting at the link address: slot 0 stays, but the next ones
            // (4K and 64K steps) would overlap the image still mapped there.
            (
                Some("0xffff800080000000-0xffff800090000000"),
                Some("4K"),
                "overlaps the image at its link address",
            ),
            (
                Some("0xffff800080000000-0xffff800090000000"),
                Some("64K"),
                "overlaps the image at its link address",
            ),
        ];
        for (window, align, message) in rows {
            let e = window_from_args(*window, *align, SIZE).unwrap_err();
            assert!(e.to_string().contains(message), "{window:?} {align:?}: {e}");
        }
    }
}
