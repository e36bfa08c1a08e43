//! The boot log: everything the kernel printed until the shell started, kept
//! so `dmesg` can show it again — and, before there is a console at all, the
//! only place early messages can go until the console shows them. Fixed
//! size: it fills before the heap exists.

/// Bytes kept.
pub const SIZE: usize = 16 << 10;

/// The first [`SIZE`] bytes of the boot's output.
pub struct BootLog {
    bytes: [u8; SIZE],
    len: usize,
    /// Bytes that did not fit.
    dropped: usize,
}

impl Default for BootLog {
    fn default() -> Self {
        Self::new()
    }
}

impl BootLog {
    /// An empty log.
    pub const fn new() -> Self {
        BootLog {
            bytes: [0; SIZE],
            len: 0,
            dropped: 0,
        }
    }

    /// Adds `text` (whole UTF-8 text: a `&str`, or several end to end), as
    /// much of it as fits (whole characters only).
    pub fn push(&mut self, text: &[u8]) {
        let room = SIZE - self.len;
        let mut take = text.len().min(room);
        // Back to a character's first byte (never a continuation byte,
        // 0b10xx_xxxx), as `str::is_char_boundary` does.
        while take < text.len() && text[take] & 0xc0 == 0x80 {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&text[..take]);
        self.len += take;
        self.dropped += text.len() - take;
    }

    /// What was kept: whole UTF-8 text (only whole characters are copied
    /// in), as the bytes the UART takes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Bytes that did not fit.
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_start_and_counts_the_rest() {
        let mut log = Box::new(BootLog::new());
        log.push(b"x");
        let text = |log: &BootLog| String::from_utf8(log.as_bytes().to_vec()).expect("whole UTF-8");
        assert_eq!(text(&log), "x");
        // Two-byte characters into an odd number of free bytes: the last
        // byte stays free rather than hold half a character.
        let long = "é".repeat(SIZE);
        log.push(long.as_bytes());
        assert_eq!(text(&log).len(), SIZE - 1);
        assert!(text(&log).ends_with('é'));
        assert_eq!(log.dropped(), long.len() - (SIZE - 2));
    }
}
