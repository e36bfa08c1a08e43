//! The kernel's own symbol table, embedded in the image so that exceptions
//! print function names. build.rs writes it into the reserved `.ksyms` section
//! after linking (`src/kbuild.rs`, `encode`); offsets are from `_text`, so the
//! table stays right when KASLR moves the image.
//!
//! Layout, little-endian: `"KSYM"`, count, then `count` records of (offset,
//! size, name offset, name length) as u32, sorted by offset, then the names.

/// First four bytes of a filled table.
pub const MAGIC: &[u8; 4] = b"KSYM";
const HEADER: usize = 8;
const RECORD: usize = 16;

/// A symbol found for an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    /// Demangled name (without the hash).
    pub name: &'a str,
    /// Bytes from the symbol's start.
    pub offset: u64,
}

fn u32_at(table: &[u8], at: usize) -> Option<u32> {
    table
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Number of symbols in `table` (0 if it was never filled).
pub fn count(table: &[u8]) -> usize {
    if table.get(..4) != Some(MAGIC) {
        return 0;
    }
    let n = u32_at(table, 4).unwrap_or(0) as usize;
    if HEADER + n * RECORD > table.len() { 0 } else { n }
}

/// The symbol containing `text_offset` (an address minus `_text`).
pub fn lookup(table: &[u8], text_offset: u64) -> Option<Found<'_>> {
    let n = count(table);
    let record = |i: usize| {
        let at = HEADER + i * RECORD;
        Some((
            u32_at(table, at)?,
            u32_at(table, at + 4)?,
            u32_at(table, at + 8)?,
            u32_at(table, at + 12)?,
        ))
    };
    // Last record whose start is <= text_offset.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if u64::from(record(mid)?.0) <= text_offset {
            lo = mid + 1
        } else {
            hi = mid
        }
    }
    let (start, size, name_at, name_len) = record(lo.checked_sub(1)?)?;
    let offset = text_offset - u64::from(start);
    if offset >= u64::from(size.max(1)) {
        return None;
    }
    let name = table.get(name_at as usize..(name_at + name_len) as usize)?;
    Some(Found {
        name: core::str::from_utf8(name).ok()?,
        offset,
    })
}

/// Where function `name` starts (offset from `_text`) and its size.
pub fn find(table: &[u8], name: &str) -> Option<(u64, u64)> {
    (0..count(table)).find_map(|i| {
        let at = HEADER + i * RECORD;
        let (start, size, name_at, name_len) = (
            u32_at(table, at)?,
            u32_at(table, at + 4)?,
            u32_at(table, at + 8)?,
            u32_at(table, at + 12)?,
        );
        let this = table.get(name_at as usize..(name_at + name_len) as usize)?;
        (this == name.as_bytes()).then_some((u64::from(start), u64::from(size)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent encoder for the test: the format as documented above.
    fn encode(symbols: &[(u32, u32, &str)]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend((symbols.len() as u32).to_le_bytes());
        let mut names = Vec::new();
        let base = HEADER + symbols.len() * RECORD;
        for (start, size, name) in symbols {
            for v in [*start, *size, (base + names.len()) as u32, name.len() as u32] {
                out.extend(v.to_le_bytes());
            }
            names.extend(name.bytes());
        }
        out.extend(names);
        out
    }

    #[test]
    fn lookups() {
        let table = encode(&[
            (0x40, 0x20, "boot"),
            (0x100, 0x80, "kernel::shell::run"),
            (0x180, 4, "tiny"),
        ]);
        assert_eq!(count(&table), 3);
        // (text offset, symbol, offset into it); None between symbols.
        let rows = [
            (0x40, Some(("boot", 0))),
            (0x5f, Some(("boot", 0x1f))),
            (0x60, None),
            (0x17c, Some(("kernel::shell::run", 0x7c))),
            (0x183, Some(("tiny", 3))),
        ];
        for (at, expected) in rows {
            let expected = expected.map(|(name, offset)| Found { name, offset });
            assert_eq!(lookup(&table, at), expected, "{at:#x}");
        }
        assert_eq!(lookup(&table, 0x10), None, "before the first");
        assert_eq!(find(&table, "kernel::shell::run"), Some((0x100, 0x80)));
        assert_eq!(find(&table, "kernel::shell"), None, "whole names only");
        assert_eq!(lookup(&[0u8; 64], 0x40), None, "an unfilled table");
        assert_eq!(count(&table[..20]), 0, "a truncated table is empty");
    }
}
