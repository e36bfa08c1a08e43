//! The shell's line editor: bytes from the terminal in, echo out, one line
//! at a time. Printable ASCII only, so the parser only ever sees UTF-8.

/// Longest command line kept; further characters are refused with a bell.
pub const LINE_MAX: usize = 256;

/// What the terminal should see after one input byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// Nothing.
    None,
    /// This byte.
    Byte(u8),
    /// Erase the character left of the cursor ("\x08 \x08").
    Erase,
    /// The line is full or the byte is not allowed: ring the bell.
    Bell,
    /// The line is complete: print a newline, then run [`LineEditor::line`].
    Enter,
}

/// A line being typed.
pub struct LineEditor {
    buf: [u8; LINE_MAX],
    len: usize,
    /// The previous byte was CR, so an LF right after it is the same Enter.
    after_cr: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line.
    pub const fn new() -> Self {
        LineEditor {
            buf: [0; LINE_MAX],
            len: 0,
            after_cr: false,
        }
    }

    /// Takes one byte from the terminal.
    pub fn feed(&mut self, byte: u8) -> Echo {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\r' => Echo::Enter,
            b'\n' if after_cr => Echo::None,
            b'\n' => Echo::Enter,
            0x08 | 0x7f if self.len > 0 => {
                self.len -= 1;
                Echo::Erase
            }
            0x08 | 0x7f => Echo::None,
            // Printable ASCII only: other control bytes and non-UTF-8 input
            // never reach the parser.
            0x20..=0x7e if self.len < LINE_MAX => {
                self.buf[self.len] = byte;
                self.len += 1;
                Echo::Byte(byte)
            }
            _ => Echo::Bell,
        }
    }

    /// The completed line; the editor is empty again afterwards.
    pub fn take_line(&mut self) -> LineBuf {
        let line = LineBuf {
            buf: self.buf,
            len: self.len,
        };
        self.len = 0;
        line
    }
}

/// A finished line.
pub struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl LineBuf {
    /// The text (printable ASCII by construction).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_bytes(bytes: &[u8]) -> (Vec<String>, Vec<Echo>) {
        let mut ed = LineEditor::new();
        let mut lines = Vec::new();
        let mut echoes = Vec::new();
        for &b in bytes {
            let e = ed.feed(b);
            if e == Echo::Enter {
                lines.push(ed.take_line().as_str().to_string());
            }
            echoes.push(e);
        }
        (lines, echoes)
    }

    #[test]
    fn line_editing() {
        // (bytes typed, lines completed)
        let rows: &[(&[u8], &[&str])] = &[
            (b"help\r", &["help"]),
            (b"help\n", &["help"]),
            (b"help\r\nmem\r\n", &["help", "mem"]),
            (b"\r\r", &["", ""]),
            (b"hellp\x7f\x7fp\r", &["help"]),
            (b"\x08\x08x\r", &["x"]),
            (b"a\x1b[Ab\r", &["a[Ab"]),
            (b"a\xff\xc3\xa9b\r", &["ab"]),
        ];
        for (bytes, lines) in rows {
            assert_eq!(type_bytes(bytes).0, *lines, "{bytes:?}");
        }
    }

    #[test]
    fn overlong_lines_ring_the_bell_and_keep_the_start() {
        let mut bytes = vec![b'a'; LINE_MAX + 10];
        bytes.push(b'\r');
        let (lines, echoes) = type_bytes(&bytes);
        assert_eq!(lines[0].len(), LINE_MAX);
        assert_eq!(echoes.iter().filter(|e| **e == Echo::Bell).count(), 10);
    }
}
