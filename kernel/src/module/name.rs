//! A module's name, spelt one way everywhere: the file `NAME.ko` in the
//! initrd holds module `NAME`; `insmod`, `rmmod` and `lsmod` take and show
//! `NAME` (or `NAME.ko`, which means the same); `modules` lists `NAME`, and
//! names the files no `insmod` could load, with the reason; `splitmap
//! initrd` refuses to pack them. A name is what the shell can type as one
//! word: printable ASCII without spaces, and not so long that `insmod NAME`
//! overflows a line.

use core::fmt;

/// The longest module name, in bytes: Linux's `MODULE_NAME_LEN` less its NUL.
pub const NAME_MAX: usize = 55;

/// Why a name is no module's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// A file of the initrd whose name does not end in `.ko`.
    NotKo,
    /// Nothing before the `.ko`.
    Empty,
    /// `NAME` itself ends in `.ko`: `data.ko.ko` would be module
    /// `data.ko`, and `rmmod data.ko` would then mean `data`.
    EndsInKo,
    /// A byte the shell cannot put in a word: a space, a control
    /// character or a non-ASCII one, at this offset of the name.
    Untypable { byte: u8, at: usize },
    /// Longer than [`NAME_MAX`] (this many bytes).
    TooLong(usize),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NameError::NotKo => write!(f, "not a .ko file (insmod NAME loads NAME.ko)"),
            NameError::Empty => write!(f, "no module name before .ko (insmod NAME loads NAME.ko)"),
            NameError::EndsInKo => write!(
                f,
                "a module name does not end in .ko (NAME and NAME.ko both mean module NAME)"
            ),
            NameError::Untypable { byte, at } => {
                let what = match byte {
                    b' ' => "a space",
                    0x80.. => "a non-ASCII byte",
                    _ => "a control character",
                };
                write!(
                    f,
                    "a module name is printable ASCII without spaces, as the shell types it; this one has {what} ({byte:#04x}) at byte {at}"
                )
            }
            NameError::TooLong(len) => {
                write!(f, "a module name is at most {NAME_MAX} bytes; this one has {len}")
            }
        }
    }
}

/// Checks a bare name (no `.ko`).
fn check(bare: &str) -> Result<&str, NameError> {
    if bare.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some((at, &byte)) = bare
        .as_bytes()
        .iter()
        .enumerate()
        .find(|(_, b)| !(0x21..=0x7e).contains(*b))
    {
        return Err(NameError::Untypable { byte, at });
    }
    if bare.ends_with(".ko") {
        return Err(NameError::EndsInKo);
    }
    if bare.len() > NAME_MAX {
        return Err(NameError::TooLong(bare.len()));
    }
    Ok(bare)
}

/// The module a file of the initrd named `file` holds: `NAME` for
/// `NAME.ko`, by the rules above.
///
/// # Errors
/// Why `insmod` could never load it.
pub fn of_file(file: &str) -> Result<&str, NameError> {
    check(file.strip_suffix(".ko").ok_or(NameError::NotKo)?)
}

/// The module a name typed to `insmod` or `rmmod` means: `NAME` for `NAME`
/// or `NAME.ko`.
///
/// # Errors
/// Why it names no module.
pub fn of_typed(typed: &str) -> Result<&str, NameError> {
    check(typed.strip_suffix(".ko").unwrap_or(typed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_typed_names_follow_one_rule() {
        let long = "m".repeat(NAME_MAX);
        let long_file = format!("{long}.ko");
        let longer_file = format!("{long}x.ko");
        // (initrd file, what `of_file` says, what `of_typed` says of the same text)
        type Said<'a> = Result<&'a str, NameError>;
        let rows: &[(&str, Said<'_>, Said<'_>)] = &[
            ("hello.ko", Ok("hello"), Ok("hello")),
            ("hello-truncated.ko", Ok("hello-truncated"), Ok("hello-truncated")),
            ("hello", Err(NameError::NotKo), Ok("hello")),
            ("README", Err(NameError::NotKo), Ok("README")),
            ("hello.KO", Err(NameError::NotKo), Ok("hello.KO")),
            (".ko", Err(NameError::Empty), Err(NameError::Empty)),
            ("", Err(NameError::NotKo), Err(NameError::Empty)),
            ("data.ko.ko", Err(NameError::EndsInKo), Err(NameError::EndsInKo)),
            ("x.ko.ko.ko", Err(NameError::EndsInKo), Err(NameError::EndsInKo)),
            (
                "my module.ko",
                Err(NameError::Untypable { byte: b' ', at: 2 }),
                Err(NameError::Untypable { byte: b' ', at: 2 }),
            ),
            (
                "tab\t.ko",
                Err(NameError::Untypable { byte: b'\t', at: 3 }),
                Err(NameError::Untypable { byte: b'\t', at: 3 }),
            ),
            (
                "\x1b[31mred.ko",
                Err(NameError::Untypable { byte: 0x1b, at: 0 }),
                Err(NameError::Untypable { byte: 0x1b, at: 0 }),
            ),
            (
                "del\x7f.ko",
                Err(NameError::Untypable { byte: 0x7f, at: 3 }),
                Err(NameError::Untypable { byte: 0x7f, at: 3 }),
            ),
            (
                "caf\u{e9}.ko",
                Err(NameError::Untypable { byte: 0xc3, at: 3 }),
                Err(NameError::Untypable { byte: 0xc3, at: 3 }),
            ),
            (&long_file, Ok(&long), Ok(&long)),
            (
                &longer_file,
                Err(NameError::TooLong(NAME_MAX + 1)),
                Err(NameError::TooLong(NAME_MAX + 1)),
            ),
            // Typable punctuation is a name like any other.
            ("dir/x.ko", Ok("dir/x"), Ok("dir/x")),
            ("-v.ko", Ok("-v"), Ok("-v")),
        ];
        for (text, file, typed) in rows {
            assert_eq!(of_file(text), *file, "of_file({text:?})");
            assert_eq!(of_typed(text), *typed, "of_typed({text:?})");
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        assert_eq!(
            format!("{}", NameError::EndsInKo),
            "a module name does not end in .ko (NAME and NAME.ko both mean module NAME)"
        );
        let space = NameError::Untypable { byte: b' ', at: 2 }.to_string();
        assert!(space.contains("has a space (0x20) at byte 2"), "{space}");
        let control = NameError::Untypable { byte: 0x1b, at: 0 }.to_string();
        assert!(control.contains("a control character (0x1b)"), "{control}");
        assert!(
            NameError::TooLong(56)
                .to_string()
                .contains("at most 55 bytes; this one has 56")
        );
    }
}
