//! RELR, the packed format of relative relocations (`-z pack-relative-relocs`):
//! the linker's list of every 64-bit word in the image that holds a link-time
//! address. Moving the image by `offset` means adding `offset` to each.
//!
//! An even entry is an address: relocate it, and continue at the next word.
//! An odd entry is a bitmap of the 63 words that follow: bit `i + 1` set means
//! relocate word `i`. A 24-byte RELA entry per word is what this replaces:
//! the kernel's few hundred relocations fit in a few hundred bytes of RELR
//! (`kaslr` shows the count; docs/kaslr.md the measured sizes).

/// Calls `site` with the link-time address of each word to relocate;
/// returns how many there were.
pub fn for_each_site(entries: &[u64], mut site: impl FnMut(u64)) -> u64 {
    let mut next = 0u64;
    let mut sites = 0;
    for &entry in entries {
        if entry & 1 == 0 {
            site(entry);
            sites += 1;
            next = entry + 8;
        } else {
            // From one set bit to the next, not bit by bit: the image's
            // bitmaps are sparse, and stepping over every bit was most of
            // the 41 k instructions the relocation pass took (10 k now,
            // for ~870 sites; `kaslr` prints both figures).
            let mut bits = entry >> 1;
            while bits != 0 {
                site(next + 8 * u64::from(bits.trailing_zeros()));
                sites += 1;
                bits &= bits - 1;
            }
            next += 63 * 8;
        }
    }
    sites
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent encoder: addresses (sorted, 8-byte aligned) to RELR, the
    /// way lld packs them.
    fn encode(sites: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < sites.len() {
            out.push(sites[i]);
            let mut base = sites[i] + 8;
            i += 1;
            loop {
                let mut bitmap = 0u64;
                while i < sites.len() && sites[i] >= base && sites[i] < base + 63 * 8 {
                    bitmap |= 1 << ((sites[i] - base) / 8 + 1);
                    i += 1;
                }
                if bitmap == 0 {
                    break;
                }
                out.push(bitmap | 1);
                base += 63 * 8;
            }
        }
        out
    }

    #[test]
    fn decodes_what_an_encoder_packs() {
        let base = 0xffff_8000_8001_0000u64;
        let layouts: &[Vec<u64>] = &[
            vec![base],
            (0..10).map(|i| base + 8 * i).collect(),
            (0..200).map(|i| base + 8 * i).collect(),
            vec![
                base,
                base + 8 * 62,
                base + 8 * 63,
                base + 8 * 64,
                base + 4096,
                base + 4096 + 8 * 200,
            ],
            (0..300).map(|i| base + 24 * i).collect(),
        ];
        for sites in layouts {
            let encoded = encode(sites);
            let mut decoded = Vec::new();
            let count = for_each_site(&encoded, |s| decoded.push(s));
            assert_eq!(&decoded, sites);
            assert_eq!(count, sites.len() as u64);
        }
        // Contiguous words pack 63 to an entry after the first address.
        assert_eq!(encode(&(0..64).map(|i| base + 8 * i).collect::<Vec<_>>()).len(), 2);
    }
}
