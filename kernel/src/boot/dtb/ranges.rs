//! From a node's `reg` to a CPU physical address: each `reg` is in its
//! parent's bus address space, which the parent's `ranges` maps into the
//! grandparent's, and so on up to the root, whose space is the CPU's
//! (devicetree specification, "ranges"). Real boards need it: the
//! Raspberry Pi's peripherals are named by VideoCore bus address
//! (0x7e201000) under a `/soc` whose `ranges` maps bus 0x7e000000 to CPU
//! 0x3f000000.

/// One ancestor of a node, as the translation needs it.
#[derive(Clone, Copy, Debug)]
pub struct Bus<'dt> {
    /// This ancestor's `#address-cells` and `#size-cells` (of the addresses
    /// it gives its children, the child side of its `ranges`).
    pub address_cells: u32,
    pub size_cells: u32,
    /// Its `ranges`: `None` when it has none, which means its children's
    /// addresses do not reach its parent; empty for an identity mapping.
    pub ranges: Option<&'dt [u8]>,
}

/// What [`translate`] reads of an ancestor: a [`Bus`], or the walk's own
/// record of an open node, read where it is (a copy of every ancestor's
/// into an array of `Bus` was a 16-entry array filled per look-up).
pub trait AsBus {
    /// The ancestor's cells and `ranges`.
    fn bus(&self) -> Bus<'_>;
}

impl AsBus for Bus<'_> {
    fn bus(&self) -> Bus<'_> {
        *self
    }
}

/// Why an address cannot be translated to the CPU's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untranslatable {
    /// An ancestor (this many levels below the root) has no `ranges`.
    NoRanges(usize),
    /// No entry of an ancestor's `ranges` (this deep) covers the range.
    Outside(usize),
    /// A `ranges` entry is malformed, or its cells are more than 2.
    BadRanges(usize),
}

/// Translates `[addr, addr + size)`, given in the address space of
/// `buses`' last element (the node's parent), through every ancestor's
/// `ranges` up to the root (`buses[0]`, whose space is the CPU's, and whose
/// own `ranges` is never used). The whole range must fall inside one entry.
pub fn translate(mut addr: u64, size: u64, buses: &[impl AsBus]) -> Result<u64, Untranslatable> {
    for depth in (1..buses.len()).rev() {
        let (bus, parent) = (buses[depth].bus(), buses[depth - 1].bus());
        let ranges = bus.ranges.ok_or(Untranslatable::NoRanges(depth))?;
        if ranges.is_empty() {
            continue;
        }
        let (child, up, len) = (
            bus.address_cells as usize,
            parent.address_cells as usize,
            bus.size_cells as usize,
        );
        let entry = 4 * (child + up + len);
        if !(1..=2).contains(&child) || !(1..=2).contains(&up) || !(1..=2).contains(&len) {
            return Err(Untranslatable::BadRanges(depth));
        }
        if !ranges.len().is_multiple_of(entry) {
            return Err(Untranslatable::BadRanges(depth));
        }
        let end = addr.checked_add(size).ok_or(Untranslatable::Outside(depth))?;
        let found = ranges.chunks_exact(entry).find_map(|e| {
            let from = super::be_number(&e[..4 * child])?;
            let to = super::be_number(&e[4 * child..4 * (child + up)])?;
            let length = super::be_number(&e[4 * (child + up)..])?;
            let covers = from <= addr && from.checked_add(length).is_some_and(|last| end <= last);
            covers.then(|| to.checked_add(addr - from)).flatten()
        });
        addr = found.ok_or(Untranslatable::Outside(depth))?;
    }
    Ok(addr)
}

/// What follows an `/aliases` name or a path in `stdout-path`: the path (or
/// alias) and the options after the first `:` (`serial0:115200n8` →
/// (`serial0`, `115200n8`)), as the devicetree specification writes them.
pub fn split_options(stdout_path: &str) -> (&str, Option<&str>) {
    // By bytes: `split_once` sets up a string searcher, a hundred-odd
    // instructions for one character.
    match stdout_path.bytes().position(|b| b == b':') {
        Some(at) => (&stdout_path[..at], Some(&stdout_path[at + 1..])),
        None => (stdout_path, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(cells: &[u32]) -> Vec<u8> {
        cells.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    const ROOT: Bus<'static> = Bus {
        address_cells: 1,
        size_cells: 1,
        ranges: None,
    };

    #[test]
    fn the_pis_soc_maps_bus_addresses_to_the_cpus() {
        let soc_ranges = be(&[0x7e00_0000, 0x3f00_0000, 0x0100_0000]);
        let soc = Bus {
            ranges: Some(&soc_ranges),
            ..ROOT
        };
        assert_eq!(translate(0x7e20_1000, 0x200, &[ROOT, soc]), Ok(0x3f20_1000));
        assert_eq!(translate(0x7e10_0000, 0x114, &[ROOT, soc]), Ok(0x3f10_0000));
        // The last byte of the window, and one past it.
        assert_eq!(translate(0x7eff_fffc, 4, &[ROOT, soc]), Ok(0x3fff_fffc));
        assert_eq!(translate(0x7eff_fffc, 8, &[ROOT, soc]), Err(Untranslatable::Outside(1)));
        assert_eq!(translate(0x1000, 4, &[ROOT, soc]), Err(Untranslatable::Outside(1)));
        // The root's own `ranges` and a direct child of the root: untouched.
        assert_eq!(translate(0x0900_0000, 0x1000, &[ROOT]), Ok(0x0900_0000));
    }

    #[test]
    fn every_level_translates_and_empty_ranges_is_identity() {
        // root (2 cells) > bus (1 cell, 0x0 -> 0x1_0000_0000) > empty > node.
        let root = Bus {
            address_cells: 2,
            size_cells: 2,
            ranges: None,
        };
        let outer = be(&[0x0, 0x1, 0x0, 0x1000_0000]);
        let bus = Bus {
            address_cells: 1,
            size_cells: 1,
            ranges: Some(&outer),
        };
        let inner = Bus {
            ranges: Some(&[]),
            ..bus
        };
        assert_eq!(translate(0x20, 0x10, &[root, bus, inner]), Ok(0x1_0000_0020));
        // Without `ranges` a level does not reach its parent.
        let closed = Bus { ranges: None, ..bus };
        assert_eq!(
            translate(0x20, 0x10, &[root, bus, closed]),
            Err(Untranslatable::NoRanges(2))
        );
        // A second entry is found; a cut one is refused.
        let two = be(&[0x0, 0x0, 0x0, 0x100, 0x1000, 0x0, 0x5000, 0x100]);
        let bus2 = Bus {
            ranges: Some(&two),
            ..bus
        };
        assert_eq!(translate(0x1010, 4, &[root, bus2]), Ok(0x5010));
        let cut = Bus {
            ranges: Some(&two[..20]),
            ..bus
        };
        assert_eq!(translate(0x10, 4, &[root, cut]), Err(Untranslatable::BadRanges(1)));
        let three_cells = Bus {
            address_cells: 3,
            ..bus2
        };
        assert_eq!(
            translate(0x10, 4, &[root, three_cells]),
            Err(Untranslatable::BadRanges(1))
        );
    }

    #[test]
    fn stdout_path_options_are_split_off() {
        assert_eq!(split_options("serial0:115200n8"), ("serial0", Some("115200n8")));
        assert_eq!(split_options("/soc/serial@7e201000"), ("/soc/serial@7e201000", None));
        assert_eq!(split_options("/pl011@9000000:"), ("/pl011@9000000", Some("")));
    }
}
