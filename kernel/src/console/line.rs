//! Formatted text gathered before it is printed: `core::fmt` hands a line
//! over in pieces (each literal, each argument, each padding), and the
//! terminal takes its counted lock and appends to the boot log for every
//! write it gets. Gathered first, a line is one write. Measured under
//! `--icount` at the switch, boot to the first prompt: 35 writes of 1 to 24
//! bytes became 3, one a line, and the `console` and `shell` phases lost
//! 3,700 instructions between them.
//!
//! Numbers go in without `core::fmt` too ([`Gathered::dec`],
//! [`Gathered::hex`]): the lines a normal boot prints before the first
//! prompt are written so, and QEMU then never translates `core::fmt` on the
//! way to it (measured: about 90 blocks and 500 guest instructions of it,
//! for two lines).

use core::fmt;

/// Bytes gathered before they are handed on: a boot line fits.
pub const SIZE: usize = 128;

/// Gathers whole `&str`s and hands them to `out` as bytes, in order, when
/// the next would not fit or at [`Gathered::flush`]. So `out` only ever
/// sees whole UTF-8 text, several pieces at a time.
pub struct Gathered<F: FnMut(&[u8])> {
    bytes: [u8; SIZE],
    len: usize,
    out: F,
}

impl<F: FnMut(&[u8])> Gathered<F> {
    /// Nothing gathered; `out` takes what is.
    pub fn new(out: F) -> Self {
        Gathered {
            bytes: [0; SIZE],
            len: 0,
            out,
        }
    }

    /// Hands on what is gathered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            (self.out)(&self.bytes[..self.len]);
            self.len = 0;
        }
    }

    /// Adds `text`.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.push(text.as_bytes());
        self
    }

    /// Adds `n` in decimal, as `{}` writes it.
    pub fn dec(&mut self, n: u64) -> &mut Self {
        self.number(n, 10, "")
    }

    /// Adds `n` in hex after `0x`, as `{:#x}` writes it.
    pub fn hex(&mut self, n: u64) -> &mut Self {
        self.number(n, 16, "0x")
    }

    /// Not inlined, as [`Self::push`].
    #[inline(never)]
    fn number(&mut self, mut n: u64, radix: u64, prefix: &str) -> &mut Self {
        // Filled from the end: the most digits a u64 has (20, in decimal).
        let mut digits = [0; 20];
        let mut first = digits.len();
        loop {
            first -= 1;
            digits[first] = b"0123456789abcdef"[(n % radix) as usize];
            n /= radix;
            if n == 0 {
                break;
            }
        }
        self.text(prefix);
        self.push(&digits[first..]);
        self
    }

    /// Adds `bytes`: whole UTF-8 text, so that `out` only ever sees that.
    /// Not inlined: a boot line is a dozen `text`s and numbers, and a copy
    /// of this in each was code QEMU translated for every one of them.
    #[inline(never)]
    fn push(&mut self, bytes: &[u8]) {
        if bytes.len() > SIZE - self.len {
            self.flush();
        }
        if bytes.len() > SIZE {
            // Too long to gather: goes as it is, after what came before it.
            (self.out)(bytes);
        } else {
            self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }
}

impl<F: FnMut(&[u8])> fmt::Write for Gathered<F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    /// What `out` was handed, write by write.
    fn gathered(pieces: &[&str]) -> Vec<String> {
        let mut writes = Vec::new();
        {
            let mut g = Gathered::new(|b: &[u8]| writes.push(String::from_utf8(b.to_vec()).expect("whole UTF-8")));
            for piece in pieces {
                g.write_str(piece).unwrap();
            }
            g.flush();
        }
        writes
    }

    #[test]
    fn a_line_in_pieces_is_one_write() {
        let mut writes = Vec::new();
        {
            let mut g = Gathered::new(|b: &[u8]| writes.push(b.to_vec()));
            writeln!(g, "[{:<5}] {} MiB RAM, {:#x}", "INFO", 1024, 0x4020_0000).unwrap();
            g.flush();
            g.flush();
        }
        assert_eq!(writes, [b"[INFO ] 1024 MiB RAM, 0x40200000\n".to_vec()]);
    }

    #[test]
    fn numbers_are_written_as_core_fmt_writes_them() {
        for n in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            1024,
            0x4020_0000,
            0xffff_8000_8000_0000,
            u64::MAX,
        ] {
            let mut writes = Vec::new();
            {
                let mut g = Gathered::new(|b: &[u8]| writes.push(b.to_vec()));
                g.dec(n).text(" ").hex(n);
                g.flush();
            }
            assert_eq!(writes, [format!("{n} {n:#x}").into_bytes()]);
        }
    }

    #[test]
    fn numbers_past_the_end_go_whole_and_in_order() {
        let mut writes = Vec::new();
        {
            let mut g = Gathered::new(|b: &[u8]| writes.push(String::from_utf8(b.to_vec()).unwrap()));
            let start = "x".repeat(SIZE - 5);
            g.text(&start).hex(u64::MAX).dec(u64::MAX);
            g.flush();
        }
        let all = writes.concat();
        assert_eq!(&all[SIZE - 5..], format!("{:#x}{}", u64::MAX, u64::MAX));
        assert!(writes.len() > 1 && writes.iter().all(|w| w.len() <= SIZE));
    }

    #[test]
    fn long_text_goes_in_order_and_characters_stay_whole() {
        let near = "é".repeat(SIZE / 2 - 1); // SIZE - 2 bytes
        let long = "x".repeat(SIZE + 1);
        let writes = gathered(&["ab", &near, "ü", &long, "z"]);
        assert_eq!(
            writes.concat(),
            ["ab", &near, "ü", &long, "z"].concat(),
            "same bytes, same order"
        );
        assert_eq!(
            writes,
            ["ab".to_string() + &near, "ü".to_string(), long, "z".to_string()]
        );
        assert!(gathered(&[]).is_empty(), "nothing gathered, nothing written");
    }
}
