//! What a boot decides about KASLR, in one place: whether the image moves and
//! where to, the module windows around it, and the linear map's base — from
//! the boot arguments, the seed and the image's size. Pure, so the precedence
//! (`nokaslr` over a refused window over a missing seed) is tested on the
//! host; the move itself is `kaslr::relocate`.
//!
//! The decision is made once the device tree and command line are read and
//! before anything is built: it carries no address of the image, so it
//! survives the move unchanged.

use pi::addr::PhysAddr;
use pi::layout::KIMAGE_VADDR;

use super::module_windows::{self, Windows};
use super::seed::{SeedSource, Stream, draw};
use super::window::{Window, WindowError, window_from_args};
use crate::boot::bootargs::BootArgs;
use crate::mm::linear;
use crate::mm::ranges::{RangeList, Span};

/// Whether the image moved, and why not if it did not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement<'a> {
    /// Moved to a random slot of the window, from a seed of this source.
    Random(SeedSource),
    /// `nokaslr`; with what was wrong with `kaslr.window`/`kaslr.align`, if
    /// anything (nothing is placed, but bad input is still reported).
    NoKaslr(Option<WindowError<'a>>),
    /// No seed from any source.
    NoSeed,
    /// `kaslr.window`/`kaslr.align` were refused, for this reason.
    BadWindow(WindowError<'a>),
}

/// The linear map's `PHYS_OFFSET`, and whether it was randomised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearBase {
    /// The physical address `PAGE_OFFSET` maps.
    pub phys_offset: PhysAddr,
    /// Whether `kaslr.linear=on` moved it.
    pub random: bool,
}

/// What KASLR decided for this boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kaslr<'a> {
    /// Text VA minus `KIMAGE_VADDR` (0 unless [`Placement::Random`]).
    pub offset: u64,
    /// Moved or not, and why.
    pub placement: Placement<'a>,
    /// The seed the placement came from (`kaslr.seed=` replays it).
    pub seed: Option<u64>,
    /// The window in force (the default one if the arguments were refused).
    pub window: Window,
    /// Placements the window allows for this image.
    pub slots: u64,
    /// Where the image runs (text VA to the end of the image).
    pub image: Span,
    /// The module windows around it.
    pub modules: Windows,
    /// The linear map's base.
    pub linear: LinearBase,
}

impl<'a> Kaslr<'a> {
    /// Whether the image moves away from its link address.
    pub fn moves(&self) -> bool {
        self.offset != 0
    }

    /// What was wrong with `kaslr.window`/`kaslr.align`, if anything.
    pub fn window_error(&self) -> Option<WindowError<'a>> {
        match self.placement {
            Placement::BadWindow(e) | Placement::NoKaslr(Some(e)) => Some(e),
            _ => None,
        }
    }

    /// The seed's source, if the image was placed at random.
    pub fn source(&self) -> Option<SeedSource> {
        match self.placement {
            Placement::Random(source) => Some(source),
            _ => None,
        }
    }
}

/// The image at its link address.
fn at_link_address(size: u64) -> Span {
    Span {
        start: KIMAGE_VADDR,
        end: KIMAGE_VADDR + size,
    }
}

/// Decides for an image of `image_size` bytes and this `ram`, given the
/// boot arguments and the boot's `seed` (see `seed::choose_seed`).
pub fn decide<'a>(args: &BootArgs<'a>, seed: Option<(u64, SeedSource)>, image_size: u64, ram: &RangeList) -> Kaslr<'a> {
    let window = window_from_args(args.kaslr_window, args.kaslr_align, image_size);
    let mut k = Kaslr {
        offset: 0,
        placement: Placement::NoSeed,
        seed: None,
        window: *window.as_ref().unwrap_or(&Window::default_window()),
        slots: 0,
        image: at_link_address(image_size),
        modules: module_windows::windows(at_link_address(image_size), None),
        // A refused window turns KASLR off, the linear map's part too.
        linear: linear_base(args, seed.filter(|_| window.is_ok()).map(|(s, _)| s), ram),
    };
    k.slots = k.window.slots(image_size);
    k.placement = match (args.nokaslr, window, seed) {
        (true, window, _) => Placement::NoKaslr(window.err()),
        (false, Err(e), _) => Placement::BadWindow(e),
        (false, Ok(_), None) => Placement::NoSeed,
        (false, Ok(w), Some((seed, source))) => {
            k.seed = Some(seed);
            if let Some(text) = w.pick(seed, image_size) {
                k.offset = text - KIMAGE_VADDR;
                k.image = Span {
                    start: text,
                    end: text + image_size,
                };
                k.modules = module_windows::windows(k.image, Some(seed));
            }
            Placement::Random(source)
        }
    };
    k
}

/// The linear map's `PHYS_OFFSET`: RAM's first GiB, or with `kaslr.linear=on`
/// (and KASLR on, with a seed and a usable window) that moved down by a random number of GiB, so
/// the linear map starts higher.
fn linear_base(args: &BootArgs<'_>, seed: Option<u64>, ram: &RangeList) -> LinearBase {
    match seed {
        Some(seed) if args.kaslr_linear && !args.nokaslr => LinearBase {
            phys_offset: linear::randomised_phys_offset(ram, draw(seed, Stream::LinearBase)),
            random: true,
        },
        _ => LinearBase {
            phys_offset: linear::fixed_phys_offset(ram),
            random: false,
        },
    }
}

/// The decision when there is no RAM to build anything in (boot reports that
/// and stops): KASLR off, for want of anything to randomise.
pub fn without_ram<'a>() -> Kaslr<'a> {
    decide(
        &BootArgs {
            nokaslr: true,
            ..BootArgs::default()
        },
        None,
        0,
        &RangeList::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::bootargs;
    use crate::mm::ranges::PhysRange;

    const SIZE: u64 = 0x88000;

    fn ram() -> RangeList {
        let mut ram = RangeList::new();
        ram.insert(PhysRange::new(0x4000_0000, 1 << 30).unwrap()).unwrap();
        ram
    }

    fn run(line: &str, seed: Option<(u64, SeedSource)>) -> Kaslr<'_> {
        decide(&bootargs::parse(line, |_| {}), seed, SIZE, &ram())
    }

    const SEED: Option<(u64, SeedSource)> = Some((0x5, SeedSource::Dtb));

    #[test]
    fn a_seed_moves_the_image_into_its_window_and_the_modules_with_it() {
        let k = run("", SEED);
        assert_eq!(k.placement, Placement::Random(SeedSource::Dtb));
        assert_eq!(k.seed, Some(0x5), "the seed is kept, to replay the boot");
        assert!(k.moves());
        assert_eq!(k.image.start, KIMAGE_VADDR + k.offset);
        assert!(k.image.start >= k.window.start && k.image.end <= k.window.end);
        assert!(k.image.start.is_multiple_of(k.window.align));
        assert!(k.modules.hold(k.image));
        assert_eq!(k, run("", SEED), "the same seed, the same decision");
        assert_ne!(k.offset, run("", Some((0x6, SeedSource::Dtb))).offset);
    }

    #[test]
    fn precedence_nokaslr_then_refused_window_then_missing_seed() {
        let bad = "kaslr.align=3M";
        let line = format!("nokaslr {bad}");
        let off = run(&line, SEED);
        assert_eq!(off.placement, Placement::NoKaslr(Some(WindowError::Align("3M"))));
        assert_eq!(
            off.window_error(),
            Some(WindowError::Align("3M")),
            "reported all the same"
        );
        assert_eq!(run("nokaslr", SEED).window_error(), None);
        assert!(matches!(
            run(bad, SEED).placement,
            Placement::BadWindow(WindowError::Align("3M"))
        ));
        assert!(matches!(run(bad, None).placement, Placement::BadWindow(_)));
        assert_eq!(run("", None).placement, Placement::NoSeed);
        for line in ["nokaslr", bad, ""] {
            let seed = if line.is_empty() { None } else { SEED };
            let k = run(line, seed);
            assert!(!k.moves(), "{line}");
            assert_eq!(k.image, at_link_address(SIZE), "{line}");
            assert_eq!(k.source(), None, "{line}");
            assert_eq!(
                k.window,
                Window::default_window(),
                "{line}: the default window is shown"
            );
        }
    }

    #[test]
    fn the_linear_base_moves_only_when_asked_with_a_seed_and_kaslr_on_in_a_good_window() {
        let fixed = linear::fixed_phys_offset(&ram());
        assert_eq!(run("", SEED).linear.phys_offset, fixed);
        assert!(!run("", SEED).linear.random);
        let random = run("kaslr.linear=on", SEED).linear;
        assert!(random.random);
        // Down by whole GiB (it may wrap below 0: only differences are taken).
        let moved_by = fixed.raw().wrapping_sub(random.phys_offset.raw());
        assert!(moved_by != 0 && moved_by.is_multiple_of(1 << 30), "{moved_by:#x}");
        assert!(!run("kaslr.linear=on nokaslr", SEED).linear.random);
        assert!(!run("kaslr.linear=on", None).linear.random);
        assert!(
            !run("kaslr.linear=on kaslr.align=3M", SEED).linear.random,
            "a refused window turns all of KASLR off"
        );
        // Its own draw: the image offset is the same with or without it.
        assert_eq!(run("kaslr.linear=on", SEED).offset, run("", SEED).offset);
    }

    #[test]
    fn a_window_argument_narrows_the_choice() {
        let k = run(
            "kaslr.window=0xffff900000000000-0xffff900000400000 kaslr.align=4K",
            SEED,
        );
        assert_eq!(k.window.align, 0x1000);
        assert_eq!(k.slots, (0x40_0000 - SIZE) / 0x1000 + 1);
        assert!(k.image.start >= 0xffff_9000_0000_0000 && k.image.end <= 0xffff_9000_0040_0000);
    }

    #[test]
    fn no_ram_means_no_move() {
        let k = without_ram();
        assert_eq!(k.placement, Placement::NoKaslr(None));
        assert!(!k.moves());
    }
}
