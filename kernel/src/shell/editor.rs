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
    /// More was typed than the buffer holds: the line is refused at Enter.
    overflowed: bool,
    /// Inside a terminal escape sequence (an arrow key, say), which is
    /// consumed whole rather than typed as text.
    escape: Escape,
}

/// Where the editor is in an escape sequence: `ESC`, then `[` or `O` and
/// parameter bytes, up to a final byte in `@`..`~`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    None,
    /// Just after `ESC`.
    Started,
    /// After `ESC [` or `ESC O`: parameters until the final byte.
    Sequence,
}

/// The finished line was longer than the buffer; nothing of it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineTooLong;

impl core::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "line too long (max {LINE_MAX} characters); nothing was run")
    }
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
            overflowed: false,
            escape: Escape::None,
        }
    }

    /// Takes one byte from the terminal.
    pub fn feed(&mut self, byte: u8) -> Echo {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match (self.escape, byte) {
            (Escape::Started, b'[' | b'O') => {
                self.escape = Escape::Sequence;
                return Echo::None;
            }
            (Escape::Sequence, 0x20..=0x3f) => return Echo::None,
            (Escape::Sequence, 0x40..=0x7e) | (Escape::Started, 0x40..=0x7e) => {
                self.escape = Escape::None;
                return Echo::None;
            }
            // A sequence cut short: the byte counts as typed.
            (Escape::Started | Escape::Sequence, _) => self.escape = Escape::None,
            (Escape::None, _) => {}
        }
        match byte {
            b'\r' => Echo::Enter,
            b'\n' if after_cr => Echo::None,
            b'\n' => Echo::Enter,
            0x1b => {
                self.escape = Escape::Started;
                Echo::None
            }
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
            0x20..=0x7e => {
                self.overflowed = true;
                Echo::Bell
            }
            _ => Echo::Bell,
        }
    }

    /// The completed line, or [`LineTooLong`] if more was typed than fits;
    /// the editor is empty again afterwards.
    ///
    /// # Errors
    /// [`LineTooLong`]: running what fits would run a different command.
    pub fn take_line(&mut self) -> Result<LineBuf, LineTooLong> {
        let line = LineBuf {
            buf: self.buf,
            len: self.len,
        };
        self.len = 0;
        self.escape = Escape::None;
        if core::mem::take(&mut self.overflowed) {
            return Err(LineTooLong);
        }
        Ok(line)
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
                lines.push(match ed.take_line() {
                    Ok(line) => line.as_str().to_string(),
                    Err(e) => e.to_string(),
                });
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
            // Arrow keys and other escape sequences are consumed whole.
            (b"a\x1b[Ab\r", &["ab"]),
            (b"a\x1bOAb\r", &["ab"]),
            (b"x\x1b[1;5Cy\r", &["xy"]),
            // An escape cut short by a printable byte: the byte is typed.
            (b"\x1b1\r", &["1"]),
            (b"a\xff\xc3\xa9b\r", &["ab"]),
        ];
        for (bytes, lines) in rows {
            assert_eq!(type_bytes(bytes).0, *lines, "{bytes:?}");
        }
    }

    #[test]
    fn overlong_lines_ring_the_bell_and_are_refused_whole() {
        let mut bytes = vec![b'a'; LINE_MAX + 10];
        bytes.extend(b"\rhelp\r");
        let (lines, echoes) = type_bytes(&bytes);
        assert_eq!(lines[0], LineTooLong.to_string());
        assert_eq!(echoes.iter().filter(|e| **e == Echo::Bell).count(), 10);
        assert_eq!(lines[1], "help", "the next line is fine again");
        let exactly = [vec![b'a'; LINE_MAX], b"\r".to_vec()].concat();
        assert_eq!(type_bytes(&exactly).0[0].len(), LINE_MAX, "a full line is not too long");
    }
}
