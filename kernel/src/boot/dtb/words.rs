//! The strings the kernel looks for in a device tree, in one table: the
//! property names it reads ([`Name`], the EFI stub's among them), the
//! children of the root it reads ([`Kind`]), the `compatible` entries it
//! drives ([`Compatible`]) and the few values it tells apart. One table
//! and one search, so a name is looked up once whatever it turns out to
//! be, and one small loop is all the code that runs for it.
//!
//! Searched as a hash table, by length and first byte: a string's length is
//! known before its bytes are compared (the walk finds it looking for the
//! NUL), and most strings are no word, told so without a comparison. Under
//! QEMU's TCG, code run for the first time
//! costs microseconds to translate, so boot's wall time follows its code
//! size (docs/bench.md): a `match` on byte strings compiles to a tree of a
//! hundred-odd branches, and a search generic over its table to one copy a
//! table, each unrolled.

use super::intc::GicVersion;
use super::{Compatible, Kind, Name, PsciConduit};
use crate::boot::efi::Field;

/// What a string in the tree is to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Word {
    /// A property name.
    Name(Name),
    /// The name of a child of the root.
    Kind(Kind),
    /// A `compatible` entry.
    Compatible(Compatible),
    /// A `device_type` of RAM (`memory`) or of a CPU (`cpu`): values, looked
    /// up here as the rest are (compared in line, the two were six
    /// translated blocks of the walk).
    Memory,
    Cpu,
    /// A `/psci` `method`.
    Conduit(PsciConduit),
}

/// Every word, in no order (the search goes by [`CHAINS`]).
const WORDS: [(&[u8], Word); 44] = [
    (b"#address-cells", Word::Name(Name::AddressCells)),
    (b"#size-cells", Word::Name(Name::SizeCells)),
    (b"reg", Word::Name(Name::Reg)),
    (b"device_type", Word::Name(Name::DeviceType)),
    (b"compatible", Word::Name(Name::Compatible)),
    (b"stdout-path", Word::Name(Name::StdoutPath)),
    (b"bootargs", Word::Name(Name::Bootargs)),
    (b"kaslr-seed", Word::Name(Name::KaslrSeed)),
    (b"rng-seed", Word::Name(Name::RngSeed)),
    (b"linux,initrd-start", Word::Name(Name::InitrdStart)),
    (b"linux,initrd-end", Word::Name(Name::InitrdEnd)),
    (b"method", Word::Name(Name::Method)),
    (b"ranges", Word::Name(Name::Ranges)),
    (b"interrupts", Word::Name(Name::Interrupts)),
    (b"#interrupt-cells", Word::Name(Name::InterruptCells)),
    (b"#redistributor-regions", Word::Name(Name::RedistributorRegions)),
    (b"redistributor-stride", Word::Name(Name::RedistributorStride)),
    (b"enable-method", Word::Name(Name::EnableMethod)),
    (b"cpu-release-addr", Word::Name(Name::CpuReleaseAddr)),
    // What the EFI stub sets in `/chosen` (kernel/efistub).
    (b"linux,uefi-mmap-start", Word::Name(Name::Efi(Field::MmapStart))),
    (b"linux,uefi-mmap-size", Word::Name(Name::Efi(Field::MmapSize))),
    (b"linux,uefi-mmap-desc-size", Word::Name(Name::Efi(Field::DescSize))),
    (b"linux,uefi-mmap-desc-ver", Word::Name(Name::Efi(Field::DescVer))),
    (b"splitmap,efi-seed", Word::Name(Name::Efi(Field::Seed))),
    (b"splitmap,efi-seed-source", Word::Name(Name::Efi(Field::SeedSource))),
    (b"splitmap,efi-slot", Word::Name(Name::Efi(Field::Slot))),
    (b"splitmap,efi-slots", Word::Name(Name::Efi(Field::Slots))),
    (b"chosen", Word::Kind(Kind::Chosen)),
    (b"aliases", Word::Kind(Kind::Aliases)),
    (b"psci", Word::Kind(Kind::Psci)),
    (b"reserved-memory", Word::Kind(Kind::ReservedMemory)),
    (b"cpus", Word::Kind(Kind::Cpus)),
    (b"arm,pl011", Word::Compatible(Compatible::Pl011)),
    (b"brcm,bcm2835-pm-wdt", Word::Compatible(Compatible::PowerManagement)),
    (b"arm,cortex-a15-gic", Word::Compatible(Compatible::Gic(GicVersion::V2))),
    (b"arm,gic-400", Word::Compatible(Compatible::Gic(GicVersion::V2))),
    (b"arm,cortex-a7-gic", Word::Compatible(Compatible::Gic(GicVersion::V2))),
    (b"arm,gic-v3", Word::Compatible(Compatible::Gic(GicVersion::V3))),
    (b"arm,armv8-timer", Word::Compatible(Compatible::Timer)),
    (b"arm,armv7-timer", Word::Compatible(Compatible::Timer)),
    (b"memory", Word::Memory),
    (b"cpu", Word::Cpu),
    (b"hvc", Word::Conduit(PsciConduit::Hvc)),
    (b"smc", Word::Conduit(PsciConduit::Smc)),
];

/// How many chains [`Chains`] has.
const SLOTS: usize = 128;
/// Ends a chain.
const END: u8 = u8::MAX;
// A word's index is a byte, and none may be taken for END.
const _: () = assert!(WORDS.len() < END as usize);

/// Which chain a string is in: by its length and first byte, which tell
/// most strings apart, and most of the tree's own from every word here
/// (QEMU virt's tree: 146 look-ups, 22 words found, 56 compared; with the
/// length and first byte merely added, 154).
const fn slot(key: &[u8]) -> usize {
    let first = if key.is_empty() { 0 } else { key[0] as usize };
    (key.len() * 8 + first) % SLOTS
}

/// The words in chains: `first[s]` is the index in [`WORDS`] of the first
/// word whose [`slot`] is `s`, `next[i]` that of the next word in the chain
/// of word `i`; [`END`] ends a chain.
struct Chains {
    first: [u8; SLOTS],
    next: [u8; WORDS.len()],
}

/// Built when the kernel is compiled.
const CHAINS: Chains = {
    let mut chains = Chains {
        first: [END; SLOTS],
        next: [END; WORDS.len()],
    };
    // From the last word back, so each chain lists its words in table order.
    let mut i = WORDS.len();
    while i > 0 {
        i -= 1;
        let s = slot(WORDS[i].0);
        chains.next[i] = chains.first[s];
        chains.first[s] = i as u8;
    }
    chains
};

/// What `key` is to the kernel, if anything. Out of line: the one copy of
/// the search, for every caller.
#[inline(never)]
pub(super) fn lookup(key: &[u8]) -> Option<Word> {
    let mut i = CHAINS.first[slot(key)];
    while let Some(&(word, what)) = WORDS.get(usize::from(i)) {
        // Byte by byte from the first, which tells most apart, in a loop of
        // its own, not a call to `memcmp`.
        if word.len() == key.len() && word.iter().zip(key).all(|(a, b)| a == b) {
            return Some(what);
        }
        i = CHAINS.next[usize::from(i)];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_found_and_nothing_else() {
        for &(word, what) in &WORDS {
            assert_eq!(lookup(word), Some(what), "{}", String::from_utf8_lossy(word));
            // One byte more, one changed: no word; one less: not this one
            // (`splitmap,efi-slots` less its `s` is a word).
            assert_eq!(lookup(&[word, b"x"].concat()), None);
            assert_ne!(lookup(&word[..word.len() - 1]), Some(what));
            let mut other = word.to_vec();
            other[word.len() / 2] ^= 0x20;
            assert_eq!(lookup(&other), None);
        }
        assert_eq!(lookup(b""), None);
        assert_eq!(lookup(&[b'x'; 300]), None, "longer than every word");
        assert_eq!(lookup(b"virtio,mmio"), None);
    }

    #[test]
    fn no_word_is_listed_twice() {
        for (i, a) in WORDS.iter().enumerate() {
            assert!(WORDS[i + 1..].iter().all(|b| b.0 != a.0), "{:?}", a.1);
        }
    }
}
