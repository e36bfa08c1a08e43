//! Translated blocks per function: under TCG a boot pays for translating
//! each distinct block of guest code once (docs/bench.md), so the bench
//! lists which functions the blocks QEMU translated belong to. QEMU's
//! `-d in_asm` log gives each block's first address; the kernel's ELF
//! names it.
//!
//! A block's address is where the code ran: the image's physical address
//! for the early code (MMU off), its running virtual address after, and
//! neither for QEMU's own boot code. Both map back to the link address the
//! ELF's symbols have, by the offset of the image's start in each.

use std::collections::BTreeMap;

use crate::boot_line::Placement;

/// One block QEMU translated: its first address and how many guest
/// instructions it holds (QEMU pays per block and per instruction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub start: u64,
    pub instructions: u64,
}

/// Each block in a QEMU `-d in_asm` log, in the order QEMU translated them
/// (a block translated twice, after a TLB flush or at a second address,
/// counts twice: QEMU paid for it twice).
pub fn blocks(log: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut in_block = false;
    for line in log.lines() {
        if line.starts_with("IN:") {
            in_block = true;
        } else if let Some(addr) = line.strip_prefix("0x").and_then(|l| l.split(':').next())
            && let Ok(addr) = u64::from_str_radix(addr, 16)
        {
            match blocks.last_mut() {
                Some(block) if !in_block => block.instructions += 1,
                _ => blocks.push(Block {
                    start: addr,
                    instructions: 1,
                }),
            }
            in_block = false;
        }
    }
    blocks
}

/// The kernel's function symbols at their link addresses.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    /// (start, demangled name), by start; one name per start.
    starts: Vec<(u64, String)>,
    /// `_text`'s link address and the image's size from there.
    link: u64,
    size: u64,
}

/// What the blocks outside the image are named: QEMU's boot code (the
/// few instructions that load x0 and jump to the kernel), or firmware.
pub const OUTSIDE: &str = "(outside the image: QEMU's boot code or firmware)";

impl Symbols {
    /// Reads the function symbols of the kernel's ELF.
    ///
    /// # Errors
    /// If it is no ELF, or has no `_text`/`_end`.
    pub fn of_elf(elf: &[u8]) -> Result<Symbols, String> {
        use object::{Object, ObjectSymbol, SymbolKind};
        let file = object::File::parse(elf).map_err(|e| format!("kernel ELF: {e}"))?;
        let at = |name: &str| {
            file.symbol_by_name(name)
                .map(|s| s.address())
                .ok_or(format!("kernel ELF: no {name} symbol"))
        };
        let (link, end) = (at("_text")?, at("_end")?);
        let starts = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && (link..end).contains(&s.address()))
            .filter_map(|s| Some((s.address(), format!("{:#}", rustc_demangle::demangle(s.name().ok()?)))))
            .collect();
        Ok(Symbols::new(starts, link, end - link))
    }

    /// Symbols from (start, name) pairs, for an image of `size` bytes
    /// linked at `link`.
    pub fn new(mut starts: Vec<(u64, String)>, link: u64, size: u64) -> Symbols {
        starts.sort();
        // Aliases at one address: the first name by order, for a stable table.
        starts.dedup_by_key(|s| s.0);
        Symbols { starts, link, size }
    }

    /// The function `addr` is in, where the image ran as `at` says.
    pub fn name(&self, addr: u64, at: Placement) -> &str {
        let link = if (at.va..at.va.saturating_add(self.size)).contains(&addr) {
            addr - at.va + self.link
        } else if (at.pa..at.pa.saturating_add(self.size)).contains(&addr) {
            addr - at.pa + self.link
        } else {
            return OUTSIDE;
        };
        match self.starts.partition_point(|(start, _)| *start <= link) {
            0 => OUTSIDE,
            i => &self.starts[i - 1].1,
        }
    }
}

/// What QEMU translated of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translated {
    pub function: String,
    pub blocks: u64,
    pub instructions: u64,
}

/// Blocks and instructions per function, most blocks first, then by name.
pub fn per_function(blocks: &[Block], symbols: &Symbols, at: Placement) -> Vec<Translated> {
    let mut counts: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for block in blocks {
        let count = counts.entry(symbols.name(block.start, at)).or_default();
        *count = (count.0 + 1, count.1 + block.instructions);
    }
    let mut counts: Vec<Translated> = counts
        .into_iter()
        .map(|(f, (blocks, instructions))| Translated {
            function: f.to_string(),
            blocks,
            instructions,
        })
        .collect();
    counts.sort_by(|a, b| b.blocks.cmp(&a.blocks).then_with(|| a.function.cmp(&b.function)));
    counts
}

/// Blocks translated from the first instruction to the prompt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptBlocks {
    /// Every block, QEMU's boot code included.
    pub total: u64,
    /// Guest instructions in them.
    pub instructions: u64,
    /// Every function, most blocks first.
    pub functions: Vec<Translated>,
}

/// The target for blocks to the prompt (4 KiB pages, 1 GiB, KASLR off).
pub const TARGET: u64 = 700;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_line::placement;

    const LOG: &str = "----------------\nIN: \n0x40000000:  580000c0  ldr      x0, #0x40000018\n0x40000004:  aa1f03e1  mov      x1, xzr\n\n----------------\nIN: \n0x40200000:  fa405a4d  ccmp     x18, #0, #0xd, pl\n\n----------------\nIN: \n0x40201004:  aa020034  orr      x20, x1, x2\n\n----------------\nIN: splitmap_kernel_main\n0xffff800080001008:  d503201f  nop\n\nIN: \n0xffff800080002000:  d503201f  nop\n";

    #[test]
    fn a_block_is_named_by_its_first_address_wherever_it_ran() {
        let blocks = blocks(LOG);
        let starts: Vec<(u64, u64)> = blocks.iter().map(|b| (b.start, b.instructions)).collect();
        assert_eq!(
            starts,
            [
                (0x4000_0000, 2),
                (0x4020_0000, 1),
                (0x4020_1004, 1),
                (0xffff_8000_8000_1008, 1),
                (0xffff_8000_8000_2000, 1)
            ]
        );
        let link = 0xffff_8000_8000_0000;
        let symbols = Symbols::new(
            vec![
                (link + 0x2000, "later".into()),
                (link, "_text".into()),
                (link + 0x1000, "__pi_primary_entry".into()),
                (link + 0x1000, "alias".into()),
            ],
            link,
            0x10_0000,
        );
        let at = placement("x\nsplitmap: image pa=0x40200000 va=0xffff800080000000 kaslr=0x0 (disabled)\n").unwrap();
        assert_eq!(
            at,
            Placement {
                pa: 0x4020_0000,
                va: link
            }
        );
        // MMU off at the physical address, MMU on at the virtual one: the
        // same function either way; QEMU's loader below the image is neither.
        assert_eq!(symbols.name(0x4020_1004, at), "__pi_primary_entry");
        assert_eq!(symbols.name(link + 0x1008, at), "__pi_primary_entry");
        assert_eq!(symbols.name(0x4000_0000, at), OUTSIDE);
        assert_eq!(symbols.name(link + 0x20_0000, at), OUTSIDE, "past the image");
        let per: Vec<(String, u64, u64)> = per_function(&blocks, &symbols, at)
            .into_iter()
            .map(|t| (t.function, t.blocks, t.instructions))
            .collect();
        assert_eq!(
            per,
            [
                ("__pi_primary_entry".to_string(), 2, 2),
                (OUTSIDE.to_string(), 1, 2),
                ("_text".to_string(), 1, 1),
                ("later".to_string(), 1, 1)
            ]
        );
    }

    #[test]
    fn a_moved_image_maps_back_to_its_link_address() {
        let link = 0xffff_8000_8000_0000;
        let symbols = Symbols::new(vec![(link, "a".into()), (link + 0x100, "b".into())], link, 0x1000);
        let moved = Placement {
            pa: 0x4020_0000,
            va: 0xffff_9000_0000_0000,
        };
        assert_eq!(symbols.name(0xffff_9000_0000_0104, moved), "b");
        assert_eq!(symbols.name(0x4020_0004, moved), "a");
        assert_eq!(placement("no boot line"), None);
    }
}
