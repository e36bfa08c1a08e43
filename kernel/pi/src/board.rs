//! What the kernel must know about a machine before it has read the
//! machine's device tree, and nothing more: where a UART is, for the early
//! code's last words and for a console when the tree names none, and how
//! the early code stops the machine after them. One row a board, keyed by
//! the root node's `compatible`; everything else about the machine comes
//! from the tree.
//!
//! The early code reads this with the MMU off, so the table holds no
//! pointers (each would be an absolute address): names are inline bytes.

/// One machine.
pub struct Board {
    /// The entry of the root node's `compatible` that names it.
    compatible: [u8; 32],
    /// Its name for people, as in "console on QEMU virt's UART".
    name: [u8; 16],
    /// A PL011's physical address, usable before the tree is read.
    pub early_uart: u64,
    /// The BCM2835 power-management block's physical address (`pi::pm`),
    /// through which the early code resets the board after a refusal; None
    /// where power is PSCI's, whose conduit only the tree names (the early
    /// code then halts, and says so).
    pub early_reset: Option<u64>,
    /// What to do about a granule its CPU lacks (the early code's refusal
    /// ends with it): on `virt` another `-cpu`; a board's own CPU is fixed.
    granule_hint: [u8; 112],
}

impl Board {
    /// The board's name for people.
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }

    /// What to do about a granule this board's CPU lacks, byte by byte (no
    /// slicing: the early code prints it, and may not reach a panic path).
    pub fn granule_hint(&self) -> impl Iterator<Item = u8> + '_ {
        self.granule_hint.iter().copied().take_while(|&b| b != 0)
    }

    /// Whether `entry` (one string of a `compatible` list) names this board:
    /// its bytes, and the row's padding right after them (no count of the
    /// row's length first: for each entry of the list, each board).
    fn is(&self, entry: &[u8]) -> bool {
        self.compatible.get(entry.len()) == Some(&0) && starts_with(&self.compatible, entry)
    }
}

/// Copies `text` into a zero-padded array (a `const` table needs no loop
/// at run time).
const fn inline<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() < N, "a board's name does not fit its row");
    let mut out = [0; N];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

const fn row(compatible: &str, name: &str, early_uart: u64, early_reset: Option<u64>, granule_hint: &str) -> Board {
    Board {
        compatible: inline(compatible),
        name: inline(name),
        early_uart,
        early_reset,
        granule_hint: inline(granule_hint),
    }
}

/// The BCM2837's power-management block: bus 0x7e100000 at CPU 0x3f100000,
/// as the Pi's tree has it (`/soc/watchdog@7e100000`).
const BCM2837_PM: Option<u64> = Some(0x3f10_0000);

/// A Pi's CPU is the SoC's: no `-cpu` gives it another granule.
const PI_GRANULE_HINT: &str =
    "this board's Cortex-A53 cannot change: build it for 4K or 64K pages (splitmap run --granule 4k)";

/// Every board splitmap knows; the first is the default, used when the
/// tree names none of them (or cannot be read).
pub static BOARDS: [Board; 3] = [
    // QEMU `virt`: the machine `splitmap run` boots.
    row(
        "linux,dummy-virt",
        "QEMU virt",
        0x0900_0000,
        None,
        "run it on a CPU that has them (QEMU: -cpu max; splitmap run --cpu max) or build it for another granule",
    ),
    // Raspberry Pi 3 (QEMU `raspi3b`, `splitmap run --machine raspi3b`):
    // the PL011 at bus 0x7e201000, which `/soc`'s `ranges` puts at CPU
    // 0x3f201000. On this board virt's UART address is RAM.
    row(
        "raspberrypi,3-model-b",
        "Raspberry Pi 3",
        0x3f20_1000,
        BCM2837_PM,
        PI_GRANULE_HINT,
    ),
    // The SoC's own entry, for a Pi 3 variant's tree that names no model
    // splitmap knows.
    row("brcm,bcm2837", "BCM2837", 0x3f20_1000, BCM2837_PM, PI_GRANULE_HINT),
];

/// The board a device tree's root `compatible` list names, or the default
/// (`BOARDS[0]`): its index in [`BOARDS`]. An index, not a reference, so a
/// value that crosses the KASLR move holds no address of the image.
///
/// The early code calls this with the MMU off: no panic path, no call out
/// of this crate (the build's `relacheck` would refuse either).
pub fn of_compatible(list: Option<&[u8]>) -> usize {
    let list = list.unwrap_or(&[]);
    let named = list
        .split(|&b| b == 0)
        .find_map(|entry| BOARDS.iter().position(|board| board.is(entry)));
    named.unwrap_or(0)
}

/// Board `index` of [`BOARDS`] (the default for an index out of range).
pub fn board(index: usize) -> &'static Board {
    BOARDS.get(index).unwrap_or(&BOARDS[0])
}

/// Whether `text` starts with `prefix`, byte by byte: the slice comparison
/// would call `memcmp`, which the early code cannot reach.
fn starts_with(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text.iter().zip(prefix).all(|(a, b)| a == b)
}

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;

fn be32(fdt: &[u8], at: usize) -> Option<u32> {
    let word: &[u8; 4] = fdt.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(*word))
}

/// The root node's `compatible` property in a flattened device tree, if the
/// tree reads that far. Only the root's own properties are looked at, and
/// every read is checked: a broken tree gives `None`, never a fault. As
/// [`of_compatible`], safe for the early code.
pub fn root_compatible(fdt: &[u8]) -> Option<&[u8]> {
    if be32(fdt, 0)? != FDT_MAGIC {
        return None;
    }
    let structs = be32(fdt, 8)? as usize;
    let strings = be32(fdt, 12)? as usize;
    let mut at = structs;
    while be32(fdt, at)? == FDT_NOP {
        at += 4;
    }
    // The root: FDT_BEGIN_NODE and an empty name, padded to 4 bytes.
    if be32(fdt, at)? != FDT_BEGIN_NODE || *fdt.get(at + 4)? != 0 {
        return None;
    }
    at += 8;
    loop {
        match be32(fdt, at)? {
            FDT_NOP => at += 4,
            FDT_PROP => {
                let len = be32(fdt, at + 4)? as usize;
                let name_at = strings.checked_add(be32(fdt, at + 8)? as usize)?;
                let value = fdt.get(at + 12..(at + 12).checked_add(len)?)?;
                let name = fdt.get(name_at..)?;
                if starts_with(name, b"compatible\0") {
                    return Some(value.strip_suffix(&[0]).unwrap_or(value));
                }
                at = at.checked_add(12)?.checked_add(len.checked_add(3)? & !3)?;
            }
            // A child node or the end: the root has no `compatible`.
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_granule_hint_fits_the_board() {
        let hint = |i: usize| String::from_utf8(board(i).granule_hint().collect()).unwrap();
        assert!(hint(0).contains("-cpu max"), "{}", hint(0));
        for pi in [1, 2] {
            assert!(
                !hint(pi).contains("-cpu") && hint(pi).contains("--granule"),
                "{}",
                hint(pi)
            );
        }
    }

    /// A tree whose root holds `props` (name, value), then one child.
    fn tree(props: &[(&str, &[u8])]) -> Vec<u8> {
        let mut structs = Vec::new();
        let mut strings = Vec::new();
        let word = |v: &mut Vec<u8>, w: u32| v.extend_from_slice(&w.to_be_bytes());
        word(&mut structs, FDT_BEGIN_NODE);
        word(&mut structs, 0);
        for (name, value) in props {
            word(&mut structs, FDT_PROP);
            word(&mut structs, value.len() as u32);
            word(&mut structs, strings.len() as u32);
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            structs.extend_from_slice(value);
            structs.resize(structs.len().next_multiple_of(4), 0);
        }
        word(&mut structs, FDT_BEGIN_NODE);
        structs.extend_from_slice(b"cpus\0\0\0\0");
        let mut fdt = Vec::new();
        for w in [FDT_MAGIC, 0, 40, 40 + structs.len() as u32, 0, 0, 17, 16, 0, 0] {
            word(&mut fdt, w);
        }
        fdt.extend_from_slice(&structs);
        fdt.extend_from_slice(&strings);
        fdt
    }

    #[test]
    fn the_roots_compatible_picks_the_board() {
        let virt = tree(&[("#address-cells", &[0, 0, 0, 2]), ("compatible", b"linux,dummy-virt\0")]);
        assert_eq!(root_compatible(&virt), Some(&b"linux,dummy-virt"[..]));
        assert_eq!(board(of_compatible(root_compatible(&virt))).name(), "QEMU virt");
        // A later entry of the list names it as well.
        let listed = tree(&[("compatible", b"vendor,board\0linux,dummy-virt\0")]);
        assert_eq!(board(of_compatible(root_compatible(&listed))).early_uart, 0x0900_0000);
        // A prefix is not a match; an unknown board gets the default.
        assert!(!BOARDS[0].is(b"linux,dummy"));
        assert!(!BOARDS[0].is(b"linux,dummy-virt2"));
        assert_eq!(of_compatible(Some(b"vendor,board")), 0);
        assert_eq!(of_compatible(None), 0);
        // The Pi's tree names the model first, then the SoC.
        let pi = tree(&[("compatible", b"raspberrypi,3-model-b\0brcm,bcm2837\0")]);
        assert_eq!(board(of_compatible(root_compatible(&pi))).early_uart, 0x3f20_1000);
        assert_eq!(board(of_compatible(root_compatible(&pi))).name(), "Raspberry Pi 3");
        let soc = tree(&[("compatible", b"raspberrypi,3-model-b-plus\0brcm,bcm2837\0")]);
        assert_eq!(board(of_compatible(root_compatible(&soc))).name(), "BCM2837");
    }

    #[test]
    fn a_broken_tree_reads_as_none() {
        let good = tree(&[("model", b"x\0"), ("compatible", b"linux,dummy-virt\0")]);
        assert!(root_compatible(&good).is_some());
        // Every truncation before the value's end (header 40, root 8,
        // `model` 16, then 12 + 17), and a child before any `compatible`.
        for len in 0..40 + 8 + 16 + 12 + 17 {
            assert_eq!(root_compatible(&good[..len]), None, "{len}");
        }
        assert_eq!(root_compatible(&tree(&[("model", b"x\0")])), None);
        let mut bad_magic = good.clone();
        bad_magic[0] ^= 1;
        assert_eq!(root_compatible(&bad_magic), None);
        let mut huge_len = good.clone();
        huge_len[40 + 12..40 + 16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(root_compatible(&huge_len), None);
    }
}
