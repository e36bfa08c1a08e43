//! Where KASLR's randomness comes from, and how one seed serves several
//! independent choices.
//!
//! A boot has one seed: `kaslr.seed=` (reproducible experiments), else the
//! bootloader's `/chosen/kaslr-seed`, else the CPU's RNDR. The image offset
//! uses it as it is; every other random choice (the module windows, the
//! linear map's base) draws from its own named [`Stream`], so knowing one
//! choice says nothing about the others.

/// Where a seed came from, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedSource {
    /// `kaslr.seed=` on the command line (reproducible experiments).
    Bootarg,
    /// `/chosen/kaslr-seed` from the bootloader (zeroed after reading).
    Dtb,
    /// The CPU's RNDR instruction (FEAT_RNG).
    Rndr,
}

impl SeedSource {
    /// The name in the boot line and `kaslr`.
    pub fn name(self) -> &'static str {
        match self {
            SeedSource::Bootarg => "bootarg",
            SeedSource::Dtb => "dtb",
            SeedSource::Rndr => "rndr",
        }
    }
}

/// Picks the seed: bootarg, then DTB, then RNDR; a zero seed counts as none.
/// `rndr` is asked only when neither of the others has one.
pub fn choose_seed(
    bootarg: Option<u64>,
    dtb: Option<u64>,
    rndr: impl FnOnce() -> Option<u64>,
) -> Option<(u64, SeedSource)> {
    let given = [(bootarg, SeedSource::Bootarg), (dtb, SeedSource::Dtb)];
    let nonzero = |(seed, source): (Option<u64>, SeedSource)| seed.filter(|&s| s != 0).map(|s| (s, source));
    given
        .into_iter()
        .find_map(nonzero)
        .or_else(|| nonzero((rndr(), SeedSource::Rndr)))
}

/// The draws taken from one seed besides the image offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Where the 128 MiB direct module window sits around the image.
    DirectModules = 1,
    /// Where the 2 GiB PLT module window sits around the direct one.
    PltModules = 2,
    /// The linear map's base (`kaslr.linear=on`).
    LinearBase = 3,
}

/// The draw of `stream` from `seed`: one SplitMix64 step, well mixed, cheap
/// and reproducible.
pub fn draw(seed: u64, stream: Stream) -> u64 {
    let mut z = seed.wrapping_add((stream as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_order() {
        let rndr = || Some(3);
        assert_eq!(choose_seed(Some(1), Some(2), rndr), Some((1, SeedSource::Bootarg)));
        assert_eq!(choose_seed(None, Some(2), rndr), Some((2, SeedSource::Dtb)));
        assert_eq!(
            choose_seed(None, Some(0), rndr),
            Some((3, SeedSource::Rndr)),
            "a zeroed DTB seed is no seed"
        );
        assert_eq!(choose_seed(None, None, || None), None);
        assert_eq!(
            choose_seed(None, None, || Some(0)),
            None,
            "RNDR's zero is no seed either"
        );
    }

    #[test]
    fn rndr_is_read_only_when_needed() {
        let mut asked = false;
        choose_seed(Some(1), None, || {
            asked = true;
            Some(3)
        });
        assert!(!asked, "a bootarg seed must not consume an RNDR value");
    }

    #[test]
    fn streams_are_independent_of_each_other_and_of_the_seed() {
        let seed = 0x5;
        let draws = [Stream::DirectModules, Stream::PltModules, Stream::LinearBase].map(|s| draw(seed, s));
        assert!(draws.iter().all(|&d| d != seed));
        assert!(draws[0] != draws[1] && draws[1] != draws[2] && draws[0] != draws[2]);
        // Reproducible: the same seed gives the same draws.
        assert_eq!(draw(seed, Stream::LinearBase), draws[2]);
    }
}
