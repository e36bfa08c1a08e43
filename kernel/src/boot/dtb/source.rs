//! The device tree as source text, the way `dtc -I dtb -O dts` writes it: one
//! property a line, values guessed as strings, 32-bit cells or bytes as dtc
//! guesses them (so the two can be compared line by line). Each
//! `reg` also gets its ranges decoded, from the parent's `#address-cells` and
//! `#size-cells`: `// 0x40000000-0x80000000`.

use core::fmt::{self, Write};

use crate::console::escape::Escaped;

use super::walk;
use super::{DtbError, MAX_DEPTH, be_number, path_matches};

/// Why [`write_source`] printed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The blob did not tokenise (boot read it, so this means it changed).
    Malformed,
    /// No node has that path.
    NoSuchNode,
    /// The console refused the text.
    Write,
}

impl From<fmt::Error> for SourceError {
    fn from(_: fmt::Error) -> Self {
        SourceError::Write
    }
}

/// Writes the node at `path` (`/` for the whole tree; a component may omit
/// its unit address, as in `/memory`) and everything below it to `out`.
/// The whole tree starts with the `/memreserve/` entries.
///
/// # Errors
/// [`SourceError::NoSuchNode`] if no node is at `path`; nothing is written then.
pub fn write_source(blob: &[u8], path: &str, out: &mut impl Write) -> Result<(), SourceError> {
    let blocks = walk::blocks(blob)?;
    let whole = path.trim_end_matches('/').is_empty();
    if whole {
        for entry in super::memreserve(blocks.memreserve) {
            let r = entry?;
            writeln!(out, "/memreserve/ {:#018x} {:#018x};", r.start.raw(), r.size())?;
        }
    }
    let mut source = Source {
        out,
        blocks,
        path,
        whole,
        names: [""; MAX_DEPTH],
        cells: [(2, 1); MAX_DEPTH],
        inside: None,
        found: false,
    };
    walk::walk(blocks.structure, &mut source)?;
    if source.found {
        Ok(())
    } else {
        Err(SourceError::NoSuchNode)
    }
}

impl From<DtbError> for SourceError {
    fn from(_: DtbError) -> Self {
        SourceError::Malformed
    }
}

/// The walk that writes the source.
struct Source<'o, 'dt, W> {
    out: &'o mut W,
    blocks: walk::Blocks<'dt>,
    /// The node wanted, and whether it is the root.
    path: &'o str,
    whole: bool,
    /// The open nodes' names.
    names: [&'dt str; MAX_DEPTH],
    /// (#address-cells, #size-cells) each open node sets for its children.
    cells: [(u32, u32); MAX_DEPTH],
    /// The depth at which the wanted node was opened, while inside it.
    inside: Option<usize>,
    found: bool,
}

impl<'dt, W: Write> walk::Visit<'dt> for Source<'_, 'dt, W> {
    type Error = SourceError;

    fn begin(&mut self, depth: usize, name: &'dt [u8]) -> Result<(), SourceError> {
        let out = &mut *self.out;
        self.names[depth - 1] = core::str::from_utf8(name).map_err(|_| SourceError::Malformed)?;
        self.cells[depth - 1] = (2, 1);
        let here = &self.names[..depth];
        if self.inside.is_none()
            && (if self.whole {
                depth == 1
            } else {
                path_matches(here, self.path)
            })
        {
            self.inside = Some(depth);
            self.found = true;
            // The node's own full path, unit addresses included.
            for name in &here[1..] {
                write!(out, "/{}", Escaped(name))?;
            }
            writeln!(out, "{} {{", if self.whole { "/" } else { "" })?;
        } else if let Some(top) = self.inside {
            writeln!(
                out,
                "{:indent$}{} {{",
                "",
                Escaped(self.names[depth - 1]),
                indent = 2 * (depth - top)
            )?;
        }
        Ok(())
    }

    fn end(&mut self, depth: usize) -> Result<(), SourceError> {
        // `depth` is the closed node's parent's.
        if let Some(top) = self.inside {
            writeln!(self.out, "{:indent$}}};", "", indent = 2 * (depth + 1 - top))?;
            if depth + 1 == top {
                self.inside = None;
            }
        }
        Ok(())
    }

    fn prop(&mut self, depth: usize, offset: u32, value: &'dt [u8]) -> Result<(), SourceError> {
        let node = depth - 1;
        let name = self.blocks.name(offset)?;
        let name = core::str::from_utf8(name).unwrap_or("");
        match name {
            "#address-cells" => self.cells[node].0 = be_number(value).map_or(0, |n| n as u32),
            "#size-cells" => self.cells[node].1 = be_number(value).map_or(0, |n| n as u32),
            _ => {}
        }
        if let Some(top) = self.inside {
            let out = &mut *self.out;
            write!(out, "{:indent$}", "", indent = 2 * (depth + 1 - top))?;
            write_property(out, name, value)?;
            if name == "reg" && node > 0 {
                write_reg_ranges(out, value, self.cells[node - 1])?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// `name = value;` as dtc guesses the value's type, or `name;` if empty.
fn write_property(out: &mut impl Write, name: &str, value: &[u8]) -> fmt::Result {
    // Names are the tree's text: escaped, as values are below.
    let name = Escaped(name);
    if value.is_empty() {
        return write!(out, "{name};");
    }
    write!(out, "{name} = ")?;
    if is_string_list(value) {
        out.write_char('"')?;
        for &b in &value[..value.len() - 1] {
            match b {
                0 => out.write_str("\\0")?,
                b'"' | b'\\' => write!(out, "\\{}", b as char)?,
                0x20..=0x7e => out.write_char(b as char)?,
                _ => write!(out, "\\{}", ESCAPES.iter().find(|e| e.0 == b).map_or('?', |e| e.1))?,
            }
        }
        out.write_char('"')?;
    } else if value.len().is_multiple_of(4) {
        out.write_char('<')?;
        for (i, cell) in value.chunks_exact(4).enumerate() {
            let cell = u32::from_be_bytes([cell[0], cell[1], cell[2], cell[3]]);
            write!(out, "{}{cell:#04x}", if i == 0 { "" } else { " " })?;
        }
        out.write_char('>')?;
    } else {
        out.write_char('[')?;
        for (i, b) in value.iter().enumerate() {
            write!(out, "{}{b:02x}", if i == 0 { "" } else { " " })?;
        }
        out.write_char(']')?;
    }
    out.write_char(';')
}

/// Control characters a string may hold, and their escapes.
const ESCAPES: [(u8, char); 7] = [
    (0x07, 'a'),
    (0x08, 'b'),
    (b'\t', 't'),
    (b'\n', 'n'),
    (0x0b, 'v'),
    (0x0c, 'f'),
    (b'\r', 'r'),
];

/// dtc's guess: a string (list) if it ends in NUL, holds only printable
/// characters, escapable controls and NULs, and at most half of it is NULs.
fn is_string_list(value: &[u8]) -> bool {
    let nuls = value.iter().filter(|&&b| b == 0).count();
    value.last() == Some(&0)
        && nuls <= value.len() - nuls
        && value
            .iter()
            .all(|&b| b == 0 || (0x20..=0x7e).contains(&b) || ESCAPES.iter().any(|e| e.0 == b))
}

/// ` // START-END, …` for a `reg` whose parent uses 1 or 2 cells for
/// addresses and sizes; nothing for other shapes (PCI, CPUs without sizes).
fn write_reg_ranges(out: &mut impl Write, reg: &[u8], (address_cells, size_cells): (u32, u32)) -> fmt::Result {
    let (ac, sc) = (address_cells as usize, size_cells as usize);
    let entry = 4 * (ac + sc);
    if !(1..=2).contains(&ac) || !(1..=2).contains(&sc) || !reg.len().is_multiple_of(entry) {
        return Ok(());
    }
    out.write_str(" //")?;
    for (i, chunk) in reg.chunks_exact(entry).enumerate() {
        let (addr, size) = chunk.split_at(4 * ac);
        let (addr, size) = (be_number(addr).unwrap_or(0), be_number(size).unwrap_or(0));
        let sep = if i == 0 { " " } else { ", " };
        write!(out, "{sep}{addr:#x}-{:#x}", addr.saturating_add(size))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(name: &str, value: &[u8]) -> String {
        let mut s = String::new();
        write_property(&mut s, name, value).unwrap();
        s
    }

    #[test]
    fn values_print_as_dtc_guesses_them() {
        assert_eq!(prop("dma-coherent", b""), "dma-coherent;");
        assert_eq!(
            prop("compatible", b"arm,pl011\0arm,primecell\0"),
            r#"compatible = "arm,pl011\0arm,primecell";"#
        );
        assert_eq!(prop("bootargs", b"say \"hi\"\t\\\0"), r#"bootargs = "say \"hi\"\t\\";"#);
        assert_eq!(prop("s", b"ab\0\0"), r#"s = "ab\0";"#);
        assert_eq!(prop("reg", &[0, 0, 0, 0, 0x40, 0, 0, 0]), "reg = <0x00 0x40000000>;");
        assert_eq!(prop("x", &[0, 0, 0, 0x0f, 0, 0, 0x80, 0]), "x = <0x0f 0x8000>;");
        // Not strings: more NULs than text, a missing NUL, a control byte.
        assert_eq!(prop("a", b"a\0\0\0"), "a = <0x61000000>;");
        assert_eq!(prop("b", b"abc"), "b = [61 62 63];");
        assert_eq!(prop("c", b"a\x01\0"), "c = [61 01 00];");
        assert_eq!(prop("d", b"\0abc"), "d = <0x616263>;");
    }

    #[test]
    fn reg_ranges_follow_the_parents_cells() {
        let reg = |value: &[u8], cells| {
            let mut s = String::new();
            write_reg_ranges(&mut s, value, cells).unwrap();
            s
        };
        let two_two = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0];
        assert_eq!(reg(&two_two, (2, 2)), " // 0x40000000-0x80000000");
        assert_eq!(reg(&two_two, (1, 1)), " // 0x0-0x40000000, 0x0-0x40000000");
        assert_eq!(reg(&two_two, (3, 2)), "", "PCI addresses are not ranges");
        assert_eq!(reg(&[0, 0, 0, 1], (1, 0)), "", "a CPU's reg has no size");
        assert_eq!(reg(&two_two[..12], (2, 2)), "", "a partial entry");
    }
}
