//! The command line as the firmware hands it over: the load options, UCS-2
//! text, to the ASCII `/chosen/bootargs` the kernel reads.

use crate::mem::strip_prefix;

/// Why the load options are not a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError {
    /// A character outside printable ASCII (or an odd byte count).
    NotText,
    /// Longer than the room for it.
    TooLong,
}

impl CmdlineError {
    /// What the stub prints (see [`crate::mem::nth_str`] for why not a `match`).
    pub fn message(self) -> &'static [u8] {
        crate::mem::nth_str(
            b"the load options are not a UTF-16 command line of printable ASCII: pass the kernel's arguments as text\0\
              the command line in the load options is too long (at most 1023 characters)",
            self as usize,
        )
    }
}

/// Converts the load options `raw` (UTF-16LE bytes, maybe NUL-terminated)
/// into ASCII in `out`, leaving out every `initrd=…` word: the firmware
/// adds one for the initrd it serves, which is a file name for it and means
/// nothing to the kernel. Returns the length written (no NUL).
///
/// # Errors
/// [`CmdlineError`] when a character is not printable ASCII or space.
pub fn from_load_options(raw: &[u8], out: &mut [u8]) -> Result<usize, CmdlineError> {
    if !raw.len().is_multiple_of(2) {
        return Err(CmdlineError::NotText);
    }
    let mut len = 0;
    let mut word_start = 0;
    let mut i = 0;
    while let Some(&[lo, hi]) = raw.get(i..i + 2) {
        i += 2;
        let c = u16::from_le_bytes([lo, hi]);
        if c == 0 {
            break;
        }
        let c = match c {
            0x20..=0x7e => c as u8,
            0x09 | 0x0a | 0x0d => b' ',
            _ => return Err(CmdlineError::NotText),
        };
        if c == b' ' {
            len = end_word(out, word_start, len);
            if len > word_start {
                *out.get_mut(len).ok_or(CmdlineError::TooLong)? = b' ';
                len += 1;
            }
            word_start = len;
            continue;
        }
        *out.get_mut(len).ok_or(CmdlineError::TooLong)? = c;
        len += 1;
    }
    len = end_word(out, word_start, len);
    // A trailing separator left by the last word or a dropped initrd=.
    while len > 0 && out.get(len - 1) == Some(&b' ') {
        len -= 1;
    }
    if len >= out.len() {
        return Err(CmdlineError::TooLong);
    }
    Ok(len)
}

/// Drops the word `out[start..len]` if it is `initrd=…`; returns the new length.
fn end_word(out: &[u8], start: usize, len: usize) -> usize {
    match out.get(start..len) {
        Some(word) if crate::mem::strip_prefix(word, b"initrd=").is_some() => start,
        _ => len,
    }
}

/// The value of the first `name=0x…` (or decimal) word of `cmdline`.
pub fn number_arg(cmdline: &[u8], name: &[u8]) -> Option<u64> {
    let mut rest = cmdline;
    loop {
        let word_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let word = rest.get(..word_end)?;
        if let Some(value) = strip_prefix(word, name).and_then(|w| strip_prefix(w, b"=")) {
            return parse_number(value);
        }
        rest = rest.get(word_end + 1..)?;
    }
}

/// The path of the first `initrd=PATH` word of the load options `raw`
/// (UTF-16LE), as a NUL-terminated UCS-2 file name in `out` for the
/// firmware's file protocol: `/` becomes the `\\` UEFI paths use, as
/// Linux's stub does. Returns the units written before the NUL; `None`
/// without such a word or when it does not fit.
pub fn initrd_path(raw: &[u8], out: &mut [u16]) -> Option<usize> {
    const KEY: &[u8] = b"initrd=";
    let units = raw.chunks_exact(2).map(|p| match p {
        [lo, hi] => u16::from_le_bytes([*lo, *hi]),
        _ => 0,
    });
    // Position in the current word, or None after a mismatch in it.
    let mut matched = Some(0usize);
    let mut len = None::<usize>;
    for c in units {
        if c == 0 {
            break;
        }
        let space = matches!(c, 0x20 | 0x09 | 0x0a | 0x0d);
        match (len, space) {
            (Some(_), true) => break,
            (Some(n), false) => {
                let c = if c == u16::from(b'/') { u16::from(b'\\') } else { c };
                *out.get_mut(n)? = c;
                len = Some(n + 1);
            }
            (None, true) => matched = Some(0),
            (None, false) => {
                matched = match matched {
                    Some(i) if KEY.get(i).is_some_and(|&k| u16::from(k) == c) => Some(i + 1),
                    _ => None,
                };
                if matched == Some(KEY.len()) {
                    len = Some(0);
                }
            }
        }
    }
    let n = len.filter(|&n| n > 0)?;
    *out.get_mut(n)? = 0;
    Some(n)
}

/// Whether `word` is one of the words of `cmdline`.
pub fn has_word(cmdline: &[u8], word: &[u8]) -> bool {
    cmdline.split(|&b| b == b' ').any(|w| crate::mem::eq(w, word))
}

/// The value of the first `name=…` word, as bytes.
pub fn word_arg<'a>(cmdline: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    cmdline
        .split(|&b| b == b' ')
        .find_map(|w| strip_prefix(strip_prefix(w, name)?, b"="))
}

fn parse_number(text: &[u8]) -> Option<u64> {
    let (digits, radix) = match strip_prefix(text, b"0x") {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        if u32::from(v) >= radix {
            return None;
        }
        value = value.checked_mul(u64::from(radix))?.checked_add(u64::from(v))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn convert(s: &str) -> Result<String, CmdlineError> {
        let mut out = [0u8; 64];
        let n = from_load_options(&utf16(s), &mut out)?;
        Ok(String::from_utf8(out[..n].to_vec()).unwrap())
    }

    #[test]
    fn initrd_words_are_dropped() {
        assert_eq!(convert("initrd=initrd nokaslr\0"), Ok("nokaslr".into()));
        assert_eq!(convert("a initrd=x b"), Ok("a b".into()));
        assert_eq!(convert("a  b initrd=\\x"), Ok("a b".into()));
        assert_eq!(convert(""), Ok(String::new()));
    }

    #[test]
    fn the_initrd_path_is_a_ucs2_file_name() {
        let path = |s: &str| {
            let mut out = [0u16; 16];
            initrd_path(&utf16(s), &mut out).map(|n| {
                assert_eq!(out[n], 0, "NUL-terminated");
                String::from_utf16(&out[..n]).unwrap()
            })
        };
        assert_eq!(path("nokaslr initrd=/boot/initrd x"), Some("\\boot\\initrd".into()));
        assert_eq!(path("initrd=a\0initrd=b"), Some("a".into()));
        assert_eq!(path("xinitrd=a initrd=b"), Some("b".into()));
        assert_eq!(path("initrd= nokaslr"), None);
        assert_eq!(path("nokaslr"), None);
        assert_eq!(path("initrd=0123456789abcdef"), None, "too long for the room");
    }

    #[test]
    fn not_text_is_refused() {
        assert_eq!(convert("caf\u{e9}"), Err(CmdlineError::NotText));
        assert_eq!(from_load_options(b"a", &mut [0; 8]), Err(CmdlineError::NotText));
        assert_eq!(convert(&"x".repeat(64)), Err(CmdlineError::TooLong));
    }

    #[test]
    fn numbers() {
        assert_eq!(number_arg(b"a efistub.seed=0x1f b", b"efistub.seed"), Some(0x1f));
        assert_eq!(number_arg(b"efistub.seed=12", b"efistub.seed"), Some(12));
        assert_eq!(number_arg(b"efistub.seed=0xz", b"efistub.seed"), None);
        assert_eq!(number_arg(b"x=1", b"efistub.seed"), None);
        assert!(has_word(b"a nokaslr b", b"nokaslr") && has_word(b"nokaslr", b"nokaslr"));
        assert!(!has_word(b"nokaslrx kaslr.seed=1", b"nokaslr") && !has_word(b"", b"nokaslr"));
        assert_eq!(
            word_arg(b"a efistub.test=no-alloc", b"efistub.test"),
            Some(&b"no-alloc"[..])
        );
    }
}
