//! Numbers as users type them — on the shell, in boot arguments and in the
//! stage-0 loader's options: one reader, so all three agree.

/// Reads `0x`-prefixed hex or decimal, with optional `_` separators.
pub fn parse_u64(word: &str) -> Option<u64> {
    let (digits, radix) = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (word, 10),
    };
    if digits.is_empty() || digits.starts_with('_') {
        return None;
    }
    let mut value: u64 = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        let d = u64::from(c.to_digit(radix)?);
        value = value.checked_mul(radix as u64)?.checked_add(d)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0x0"), Some(0));
        assert_eq!(parse_u64("0xFFFFFFFFFFFFFFFF"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64("0x"), None);
        assert_eq!(parse_u64("-1"), None);
    }
}
