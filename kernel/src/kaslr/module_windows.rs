//! Where modules go: a 128 MiB "direct" window, from anywhere in which a `bl`
//! reaches every byte of the kernel image, inside a 2 GiB "PLT" window, from
//! anywhere in which a veneer's `adrp` does (and so does a PREL32). Both are
//! placed as Linux ≥ 6.5 places them (arch/arm64/kernel/module.c,
//! `module_init_limits`):
//!
//! - KASLR off: both windows end where the image ends.
//! - KASLR on: each window is a random "bounding box" around what it must
//!   contain: the direct window around the image, the PLT window around the
//!   direct window, at a random page offset.
//!
//! Modules are then placed first-fit from the bottom of a window, skipping the
//! image and other modules, with an unmapped guard page between any two of
//! them, whichever was placed first.

use pi::layout::{MMIO_BASE, MODULES_VADDR, PAGE_SIZE};

use super::seed::{Stream, draw};
pub use crate::mm::ranges::Span;

/// Size of the direct window: a 26-bit branch's reach.
pub const DIRECT_SIZE: u64 = 128 << 20;
/// Size of the PLT window: what a veneer can reach for certain.
pub const PLT_SIZE: u64 = 2 << 30;

/// The two module windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// Modules here call the kernel directly.
    pub direct: Span,
    /// Modules here reach the kernel through veneers (and contain `direct`).
    pub plt: Span,
}

/// Linux's `random_bounding_box`: the start of a `size`-byte window that
/// contains `inner`, at a page offset picked by `random` among all that fit;
/// `None` if `inner` is not smaller than `size`.
pub fn bounding_box(size: u64, inner: Span, random: u64) -> Option<u64> {
    let span = inner.size();
    if span >= size {
        return None;
    }
    let max_pages = (size - span) / PAGE_SIZE;
    Some(inner.start - (random % (max_pages + 1)) * PAGE_SIZE)
}

/// The number of places [`bounding_box`] chooses from.
pub fn bounding_box_choices(size: u64, inner: Span) -> u64 {
    size.checked_sub(inner.size()).map_or(0, |room| room / PAGE_SIZE + 1)
}

/// The `size`-byte window starting at `start`, moved (not shrunk) to lie
/// inside the module-capable part of the address space if it pokes out: the
/// kernel half between `MODULES_VADDR` and the MMIO window. It still contains
/// what it was built around as long as that lies inside too.
fn window_at(start: u64, size: u64) -> Span {
    let start = start.clamp(MODULES_VADDR, MMIO_BASE - size);
    Span {
        start,
        end: start + size,
    }
}

/// The module windows for an image at `image`, randomised from `seed`
/// (KASLR on) or fixed below the image's end (off).
pub fn windows(image: Span, seed: Option<u64>) -> Windows {
    let Some(seed) = seed else {
        return Windows {
            direct: window_at(image.end - DIRECT_SIZE, DIRECT_SIZE),
            plt: window_at(image.end - PLT_SIZE, PLT_SIZE),
        };
    };
    // Two draws of their own: the image placement used the seed itself.
    let direct = window_at(
        bounding_box(DIRECT_SIZE, image, draw(seed, Stream::DirectModules)).unwrap_or(image.start),
        DIRECT_SIZE,
    );
    let plt = window_at(
        bounding_box(PLT_SIZE, direct, draw(seed, Stream::PltModules)).unwrap_or(direct.start),
        PLT_SIZE,
    );
    Windows { direct, plt }
}

/// The lowest `size`-byte place in `zone` that overlaps neither `image` nor
/// any of `loaded`, and leaves a guard page on both sides of each: the new
/// module neither starts in the page after one nor ends in the page before
/// one (a gap left by an unloaded module may be too small for that).
fn first_fit(zone: Span, image: Span, loaded: &[Span], size: u64) -> Option<u64> {
    let mut at = zone.start;
    loop {
        let end = at.checked_add(size)?;
        if end > zone.end {
            return None;
        }
        let clash = core::iter::once(&image)
            .chain(loaded)
            .find(|t| at < t.end + PAGE_SIZE && t.start < end + PAGE_SIZE);
        match clash {
            Some(t) => at = t.end + PAGE_SIZE,
            None => return Some(at),
        }
    }
}

/// Where a module of `size` bytes goes, given the `image` and the modules
/// already `loaded`. Near: the direct window, else the PLT window (Linux's
/// fallback). Far (`module.region=far`): the parts of the PLT window out of
/// a branch's reach of every byte of the image, so every call needs a veneer.
pub fn place(w: &Windows, image: Span, loaded: &[Span], size: u64, far: bool) -> Option<u64> {
    let fit = |zone| first_fit(zone, image, loaded, size);
    if far {
        let below = Span {
            start: w.plt.start,
            end: image.start.saturating_sub(DIRECT_SIZE).max(w.plt.start),
        };
        let above = Span {
            start: (image.end + DIRECT_SIZE).min(w.plt.end),
            end: w.plt.end,
        };
        fit(below).or_else(|| fit(above))
    } else {
        fit(w.direct).or_else(|| fit(w.plt))
    }
}

/// Whether every byte of `module` reaches every byte of `image` with a `bl`.
pub fn in_direct_reach(module: Span, image: Span) -> bool {
    let lowest = module.start.min(image.start);
    let highest = module.end.max(image.end);
    highest - lowest <= DIRECT_SIZE
}

impl Windows {
    /// Whether both windows hold what they must: the image in the direct
    /// window, the direct window in the PLT window.
    pub fn hold(&self, image: Span) -> bool {
        self.direct.contains(image) && self.plt.contains(self.direct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: Span = Span {
        start: 0xffff_a000_0020_0000,
        end: 0xffff_a000_0020_0000 + 0x6c000,
    };

    #[test]
    fn without_kaslr_both_windows_end_at_the_image_end() {
        let w = windows(IMAGE, None);
        assert_eq!(
            w.direct,
            Span {
                start: IMAGE.end - DIRECT_SIZE,
                end: IMAGE.end
            }
        );
        assert_eq!(
            w.plt,
            Span {
                start: IMAGE.end - PLT_SIZE,
                end: IMAGE.end
            }
        );
        assert!(w.hold(IMAGE));
    }

    #[test]
    fn bounding_boxes_cover_every_page_offset_and_nothing_else() {
        let inner = Span {
            start: 0x1000_0000,
            end: 0x1000_0000 + 3 * PAGE_SIZE,
        };
        let size = 8 * PAGE_SIZE;
        // room for 5 pages of slack: 6 choices, offsets 0..=5 pages below.
        assert_eq!(bounding_box_choices(size, inner), 6);
        let starts: std::collections::BTreeSet<u64> = (0..60).map(|r| bounding_box(size, inner, r).unwrap()).collect();
        let want: std::collections::BTreeSet<u64> = (0..6).map(|p| inner.start - p * PAGE_SIZE).collect();
        assert_eq!(starts, want);
        for s in starts {
            assert!(
                Span {
                    start: s,
                    end: s + size
                }
                .contains(inner)
            );
        }
        // An inner span as large as the box leaves no choice at all.
        assert_eq!(bounding_box(3 * PAGE_SIZE, inner, 7), None);
        assert_eq!(bounding_box_choices(2 * PAGE_SIZE, inner), 0);
    }

    #[test]
    fn randomised_windows_nest_and_follow_the_seed() {
        let mut directs = std::collections::BTreeSet::new();
        for seed in 1..200u64 {
            let w = windows(IMAGE, Some(seed));
            assert!(w.hold(IMAGE), "seed {seed}: {w:x?}");
            assert_eq!(w.direct.size(), DIRECT_SIZE);
            assert_eq!(w.plt.size(), PLT_SIZE);
            assert_eq!(w.direct.start % PAGE_SIZE, IMAGE.start % PAGE_SIZE);
            assert_eq!(windows(IMAGE, Some(seed)), w, "reproducible");
            directs.insert(w.direct.start);
        }
        assert!(directs.len() > 190, "seeds spread the direct window: {}", directs.len());
    }

    #[test]
    fn windows_stay_out_of_the_mmio_area() {
        let high = Span {
            start: MMIO_BASE - 0x10_0000,
            end: MMIO_BASE - 0x1000,
        };
        for seed in [None, Some(1), Some(u64::MAX)] {
            let w = windows(high, seed);
            assert!(w.plt.end <= MMIO_BASE && w.hold(high), "{seed:?}: {w:x?}");
        }
    }

    /// The lowest image any KASLR window allows (at `KIMAGE_VADDR`, the top of
    /// the module area) and the highest (just under the MMIO window): the
    /// windows stay inside the kernel half, still hold the image, and a far
    /// module still finds a place out of reach.
    #[test]
    fn windows_hold_at_both_ends_of_the_kernel_half() {
        let size = IMAGE.size();
        let lowest = Span {
            start: pi::layout::KIMAGE_VADDR,
            end: pi::layout::KIMAGE_VADDR + size,
        };
        let highest = Span {
            start: MMIO_BASE - size,
            end: MMIO_BASE,
        };
        for image in [lowest, highest] {
            for seed in core::iter::once(None).chain((0..200).map(Some)) {
                let w = windows(image, seed);
                assert!(w.hold(image), "{image:x?} {seed:?}: {w:x?}");
                assert!(
                    w.plt.start >= MODULES_VADDR && w.plt.end <= MMIO_BASE,
                    "{seed:?}: {w:x?}"
                );
                let at = place(&w, image, &[], 0x2000, true).expect("a far place");
                let m = Span {
                    start: at,
                    end: at + 0x2000,
                };
                assert!(w.plt.contains(m) && !in_direct_reach(m, image), "{seed:?}: {m:x?}");
            }
        }
    }

    #[test]
    fn near_modules_reach_the_image_and_skip_what_is_taken() {
        let w = windows(IMAGE, Some(42));
        let mut loaded = Vec::new();
        for _ in 0..20 {
            let at = place(&w, IMAGE, &loaded, 0x3000, false).unwrap();
            let m = Span {
                start: at,
                end: at + 0x3000,
            };
            assert!(w.direct.contains(m) && in_direct_reach(m, IMAGE), "{m:x?}");
            assert!(
                !loaded
                    .iter()
                    .any(|l: &Span| l.start < m.end + PAGE_SIZE && m.start < l.end + PAGE_SIZE)
            );
            assert!(m.end + PAGE_SIZE <= IMAGE.start || m.start >= IMAGE.end + PAGE_SIZE);
            loaded.push(m);
        }
    }

    /// A gap left by an unloaded module is not used if the new module would
    /// end right where the next one starts: the guard page is on both sides.
    #[test]
    fn a_module_in_a_gap_keeps_a_guard_page_before_the_next() {
        let w = windows(IMAGE, None);
        let span = |at: u64, size: u64| Span {
            start: at,
            end: at + size,
        };
        let a = span(place(&w, IMAGE, &[], 2 * PAGE_SIZE, false).unwrap(), 2 * PAGE_SIZE);
        let b = span(place(&w, IMAGE, &[a], PAGE_SIZE, false).unwrap(), PAGE_SIZE);
        assert_eq!(b.start, a.start + 3 * PAGE_SIZE, "after A and its guard page");
        // A unloaded: C, one page larger than A, fits the gap only by
        // touching B.
        let c = span(place(&w, IMAGE, &[b], 3 * PAGE_SIZE, false).unwrap(), 3 * PAGE_SIZE);
        assert!(
            c.end + PAGE_SIZE <= b.start || c.start >= b.end + PAGE_SIZE,
            "C {c:x?} leaves no guard page next to B {b:x?}"
        );
        // What does fit the gap still goes there.
        let d = span(place(&w, IMAGE, &[b], 2 * PAGE_SIZE, false).unwrap(), 2 * PAGE_SIZE);
        assert_eq!(d, a);
    }

    #[test]
    fn a_full_direct_window_falls_back_to_the_plt_window() {
        let w = windows(IMAGE, None);
        let at = place(&w, IMAGE, &[], DIRECT_SIZE, false).unwrap();
        assert!(!w.direct.contains(Span {
            start: at,
            end: at + DIRECT_SIZE
        }));
        assert!(w.plt.contains(Span {
            start: at,
            end: at + DIRECT_SIZE
        }));
    }

    #[test]
    fn far_modules_are_out_of_reach_of_the_whole_image() {
        for seed in [None, Some(3), Some(99)] {
            let w = windows(IMAGE, seed);
            let at = place(&w, IMAGE, &[], 0x2000, true).unwrap();
            let m = Span {
                start: at,
                end: at + 0x2000,
            };
            assert!(w.plt.contains(m), "{seed:?}");
            assert!(
                m.end + DIRECT_SIZE <= IMAGE.start || m.start >= IMAGE.end + DIRECT_SIZE,
                "{m:x?}"
            );
        }
        // Nothing fits: None, never a place in reach.
        let w = windows(IMAGE, None);
        assert_eq!(place(&w, IMAGE, &[], PLT_SIZE, true), None);
    }
}
