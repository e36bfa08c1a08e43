//! Byte copies that never become calls to `memcpy`.
//!
//! The compiler recognises a copy loop and replaces it with a call to
//! `memcpy`, which lives outside the checked crates (src/relacheck.rs refuses
//! such calls). On the machine the loop is assembly; on the host, where the
//! tests run, it is the library's copy.

/// Copies `min(dst.len(), src.len())` bytes from `src` to the start of `dst`;
/// returns how many.
pub fn copy(dst: &mut [u8], src: &[u8]) -> usize {
    let n = dst.len().min(src.len());
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    if n > 0 {
        // SAFETY: both slices hold at least `n` bytes (n is their minimum),
        // and `&mut` makes them disjoint.
        unsafe {
            core::arch::asm!(
                "1:",
                "ldrb {t:w}, [{s}], #1",
                "strb {t:w}, [{d}], #1",
                "subs {n}, {n}, #1",
                "b.ne 1b",
                s = inout(reg) src.as_ptr() => _,
                d = inout(reg) dst.as_mut_ptr() => _,
                n = inout(reg) n => _,
                t = out(reg) _,
                options(nostack),
            );
        }
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
    n
}

/// Whether `a` and `b` hold the same bytes. A loop, not `==`, which becomes a
/// call to `memcmp`/`bcmp`.
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// `text` without its leading `prefix`, if it has one.
pub fn strip_prefix<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = text.get(..prefix.len())?;
    eq(head, prefix).then(|| text.get(prefix.len()..)).flatten()
}

/// The `index`th of the NUL-separated strings in `all`.
///
/// Messages live in one string and are picked by number because a `match`
/// that returns a different `&str` per arm compiles to a table of absolute
/// pointers, which is wrong before the image sits at its link address.
pub fn nth_str(all: &'static [u8], index: usize) -> &'static [u8] {
    all.split(|&b| b == 0).nth(index).unwrap_or(b"?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let mut d = [0u8; 3];
        assert_eq!(copy(&mut d, b"abcd"), 3);
        assert_eq!(&d, b"abc");
        assert!(eq(b"ab", b"ab") && !eq(b"ab", b"abc") && !eq(b"ab", b"ac"));
        assert_eq!(strip_prefix(b"initrd=x", b"initrd="), Some(&b"x"[..]));
        assert_eq!(strip_prefix(b"ini", b"initrd="), None);
        assert_eq!(nth_str(b"a\0bc\0d", 1), b"bc");
        assert_eq!(nth_str(b"a", 3), b"?");
    }
}
