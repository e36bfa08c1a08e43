//! Text that comes from outside the kernel (the command line, device-tree
//! names, initrd file names, module log lines) printed so that it cannot
//! pass for the kernel's own: every byte outside printable ASCII becomes an
//! escape (`\n`, `\r`, `\t`, `\\`, else `\xNN`), so such text never ends a
//! line, moves the cursor or starts a line of its own. What the host tool
//! still reads from the console (the prompt, the halt lines) is therefore
//! only ever at the start of a line the kernel began.

use core::fmt::{self, Display, Write};

/// `T`'s text, escaped: `println!("cmdline: {}", Escaped(bootargs))`.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<T>(pub T);

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

/// A writer that escapes what passes through it.
struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Runs of plain characters go through whole; only the rest is
        // escaped, byte by byte (a run never starts or ends inside a
        // character: plain bytes are ASCII).
        let mut plain = 0;
        for (at, b) in s.bytes().enumerate() {
            if is_plain(b) {
                continue;
            }
            if plain < at {
                self.0.write_str(&s[plain..at])?;
            }
            match b {
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                b'\\' => self.0.write_str("\\\\")?,
                _ => write!(self.0, "\\x{b:02x}")?,
            }
            plain = at + 1;
        }
        if plain < s.len() {
            self.0.write_str(&s[plain..])?;
        }
        Ok(())
    }
}

/// Printable ASCII, the backslash (the escapes' own start) excepted.
fn is_plain(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) && b != b'\\'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_printable_ascii_passes_unchanged() {
        let rows = [
            ("console=ttyAMA0 nokaslr", "console=ttyAMA0 nokaslr"),
            ("a\nkernel panic: boom", "a\\nkernel panic: boom"),
            ("x\r\nsplitmap> ", "x\\r\\nsplitmap> "),
            ("\x1b[2J\x07\x7f\0", "\\x1b[2J\\x07\\x7f\\x00"),
            ("tab\there", "tab\\there"),
            ("C:\\x41", "C:\\\\x41"),
            ("caf\u{e9}", "caf\\xc3\\xa9"),
            ("", ""),
        ];
        for (raw, want) in rows {
            assert_eq!(format!("{}", Escaped(raw)), want, "{raw:?}");
        }
    }

    #[test]
    fn a_display_is_escaped_as_it_is_written() {
        struct Two(&'static str);
        impl Display for Two {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "one\n{}", self.0)
            }
        }
        assert_eq!(format!("<{}>", Escaped(Two("two\x1b"))), "<one\\ntwo\\x1b>");
    }
}
