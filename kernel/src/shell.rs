//! The serial shell's pure half: line editing and command parsing. The
//! commands themselves run in `arch::shell`, against the live machine.

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

/// A parsed command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Blank line.
    Empty,
    /// `help`
    Help,
    /// `layout`
    Layout,
    /// `walk VA`
    Walk(u64),
    /// `mem`
    Mem,
    /// `bootargs`
    Bootargs,
    /// `test [FILTER]`
    Test(Option<&'a str>),
    /// `poweroff`
    Poweroff,
    /// `kaslr`
    Kaslr,
    /// `modules`: what the initrd holds.
    Modules,
    /// `insmod NAME`
    Insmod(&'a str),
    /// `rmmod NAME`
    Rmmod(&'a str),
    /// `lsmod`
    Lsmod,
    /// `peek VA [WIDTH]`: read 8, 16, 32 or 64 bits.
    Peek(u64, u8),
    /// `crash KIND`
    Crash(CrashKind),
}

/// Faults `crash` triggers on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    /// Load from address 0 (TTBR0 is off: a translation fault).
    Null,
    /// Store to kernel text (a permission fault).
    WriteText,
    /// Branch into writable data (an instruction abort: data is never executable).
    ExecData,
    /// `brk` (a breakpoint exception).
    Brk,
    /// `udf` (an undefined instruction).
    Undef,
    /// Unbounded recursion into the guard page below the kernel stack.
    StackOverflow,
    /// Branch into the linear map (never executable).
    ExecLinear,
    /// Rewrite a word of text through its linear alias (faults with `rodata=full`).
    WriteAlias,
}

/// `crash` kinds by name.
pub const CRASH_KINDS: &[(&str, CrashKind)] = &[
    ("null", CrashKind::Null),
    ("write-text", CrashKind::WriteText),
    ("exec-data", CrashKind::ExecData),
    ("brk", CrashKind::Brk),
    ("undef", CrashKind::Undef),
    ("stack-overflow", CrashKind::StackOverflow),
    ("exec-linear", CrashKind::ExecLinear),
    ("write-alias", CrashKind::WriteAlias),
];

/// One line of `help`: name, arguments, what it does.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "", "list commands"),
    (
        "layout",
        "",
        "memory regions: VA and PA ranges, permissions, descriptors per block size",
    ),
    (
        "walk",
        "VA",
        "walk the page tables for a virtual address, level by level",
    ),
    (
        "mem",
        "",
        "RAM, reserved ranges, free frames (and how many lie below the image)",
    ),
    ("bootargs", "", "the kernel command line and what was made of it"),
    (
        "kaslr",
        "",
        "where KASLR put the image (source, offset, window, alignment, slots, entropy), the module windows, the linear base",
    ),
    (
        "test",
        "[FILTER]",
        "run the in-kernel test suite (KTAP), optionally only names containing FILTER",
    ),
    ("peek", "VA [8|16|32|64]", "read memory; a fault is reported, not fatal"),
    ("modules", "", "the modules in the initrd"),
    (
        "insmod",
        "NAME",
        "load a module from the initrd and run its init_module",
    ),
    (
        "rmmod",
        "NAME",
        "run a module's exit_module and free everything it took",
    ),
    (
        "lsmod",
        "",
        "loaded modules: base, size, PLT veneers used and slots counted, direct branches, distance from the kernel",
    ),
    (
        "crash",
        "KIND",
        "fault on purpose: null, write-text, write-alias, exec-data, exec-linear, brk, undef, stack-overflow",
    ),
    ("poweroff", "", "power off through PSCI (QEMU exits 0)"),
];

/// Why a line was not a command. Printed after `error: `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// The first word is not a command.
    Unknown(&'a str),
    /// A command got the wrong arguments; the text says what it takes.
    Usage(&'static str),
    /// A number could not be read.
    BadNumber(&'a str),
}

impl core::fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ParseError::Unknown(word) => write!(f, "unknown command '{word}'; type 'help' for the list"),
            ParseError::Usage(usage) => write!(f, "usage: {usage}"),
            ParseError::BadNumber(word) => {
                write!(
                    f,
                    "'{word}' is not a 64-bit number; use hex with 0x (0xffff000000000000) or decimal"
                )
            }
        }
    }
}

/// Parses one line.
///
/// # Errors
/// A [`ParseError`] naming what is wrong.
pub fn parse(line: &str) -> Result<Command<'_>, ParseError<'_>> {
    let mut words = line.split_ascii_whitespace();
    let Some(name) = words.next() else {
        return Ok(Command::Empty);
    };
    let arg = words.next();
    let extra = words.next().is_some();
    let no_args = |cmd, usage| {
        if arg.is_some() {
            Err(ParseError::Usage(usage))
        } else {
            Ok(cmd)
        }
    };
    match name {
        "help" => no_args(Command::Help, "help"),
        "layout" => no_args(Command::Layout, "layout"),
        "mem" => no_args(Command::Mem, "mem"),
        "bootargs" => no_args(Command::Bootargs, "bootargs"),
        "kaslr" => no_args(Command::Kaslr, "kaslr"),
        "modules" => no_args(Command::Modules, "modules"),
        "lsmod" => no_args(Command::Lsmod, "lsmod"),
        "insmod" => match (arg, extra) {
            (Some(name), false) => Ok(Command::Insmod(name)),
            _ => Err(ParseError::Usage("insmod NAME (see `modules`)")),
        },
        "rmmod" => match (arg, extra) {
            (Some(name), false) => Ok(Command::Rmmod(name)),
            _ => Err(ParseError::Usage("rmmod NAME (see `lsmod`)")),
        },
        "poweroff" => no_args(Command::Poweroff, "poweroff"),
        "walk" => match (arg, extra) {
            (Some(va), false) => parse_u64(va).map(Command::Walk).ok_or(ParseError::BadNumber(va)),
            _ => Err(ParseError::Usage("walk VA (e.g. walk 0xffff000000000000)")),
        },
        "test" if !extra => Ok(Command::Test(arg)),
        "test" => Err(ParseError::Usage("test [FILTER]")),
        "peek" => {
            let mut words = line.split_ascii_whitespace().skip(1);
            let usage = ParseError::Usage("peek VA [8|16|32|64] (e.g. peek 0xffff000000000000)");
            let va = words.next().ok_or(usage)?;
            let va = parse_u64(va).ok_or(ParseError::BadNumber(va))?;
            let width = match words.next() {
                None | Some("64") => 64,
                Some("32") => 32,
                Some("16") => 16,
                Some("8") => 8,
                Some(_) => return Err(usage),
            };
            if words.next().is_some() {
                return Err(usage);
            }
            Ok(Command::Peek(va, width))
        }
        "crash" => match (arg, extra) {
            (Some(kind), false) => CRASH_KINDS
                .iter()
                .find(|(name, _)| *name == kind)
                .map(|&(_, k)| Command::Crash(k))
                .ok_or(ParseError::Usage(CRASH_USAGE)),
            _ => Err(ParseError::Usage(CRASH_USAGE)),
        },
        _ => Err(ParseError::Unknown(name)),
    }
}

const CRASH_USAGE: &str = "crash null|write-text|write-alias|exec-data|exec-linear|brk|undef|stack-overflow";

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

    #[test]
    fn commands() {
        let rows: &[(&str, Result<Command<'_>, ParseError<'_>>)] = &[
            ("", Ok(Command::Empty)),
            ("   ", Ok(Command::Empty)),
            ("help", Ok(Command::Help)),
            (" layout ", Ok(Command::Layout)),
            ("walk 0xffff000000000000", Ok(Command::Walk(0xffff_0000_0000_0000))),
            ("walk 0xffff_8000_8000_0000", Ok(Command::Walk(0xffff_8000_8000_0000))),
            ("walk 4096", Ok(Command::Walk(4096))),
            ("walk", Err(ParseError::Usage("walk VA (e.g. walk 0xffff000000000000)"))),
            (
                "walk 0x1 2",
                Err(ParseError::Usage("walk VA (e.g. walk 0xffff000000000000)")),
            ),
            (
                "walk 0x1_0000_0000_0000_0000",
                Err(ParseError::BadNumber("0x1_0000_0000_0000_0000")),
            ),
            ("walk zz", Err(ParseError::BadNumber("zz"))),
            ("test", Ok(Command::Test(None))),
            ("test linear", Ok(Command::Test(Some("linear")))),
            ("mem now", Err(ParseError::Usage("mem"))),
            ("frobnicate", Err(ParseError::Unknown("frobnicate"))),
            ("crash null", Ok(Command::Crash(CrashKind::Null))),
            ("peek 0x10", Ok(Command::Peek(0x10, 64))),
            ("peek 0x10 8", Ok(Command::Peek(0x10, 8))),
            (
                "peek 0x10 12",
                Err(ParseError::Usage("peek VA [8|16|32|64] (e.g. peek 0xffff000000000000)")),
            ),
            (
                "peek",
                Err(ParseError::Usage("peek VA [8|16|32|64] (e.g. peek 0xffff000000000000)")),
            ),
            ("peek zz", Err(ParseError::BadNumber("zz"))),
            ("crash exec-data", Ok(Command::Crash(CrashKind::ExecData))),
            ("crash", Err(ParseError::Usage(CRASH_USAGE))),
            ("crash stack-overflow", Ok(Command::Crash(CrashKind::StackOverflow))),
            ("crash sideways", Err(ParseError::Usage(CRASH_USAGE))),
        ];
        for (line, expected) in rows {
            assert_eq!(parse(line), *expected, "{line:?}");
        }
        assert!(ParseError::Unknown("x").to_string().contains("help"));
    }

    #[test]
    fn help_lists_every_command() {
        let lines = [
            "help",
            "layout",
            "walk 0",
            "mem",
            "bootargs",
            "kaslr",
            "test",
            "peek 0",
            "modules",
            "insmod hello",
            "rmmod hello",
            "lsmod",
            "crash null",
            "poweroff",
        ];
        for line in lines {
            assert!(!matches!(parse(line), Err(_) | Ok(Command::Empty)), "{line}");
            let name = line.split(' ').next().unwrap();
            assert!(COMMANDS.iter().any(|(n, _, _)| *n == name), "help does not list {name}");
        }
        assert_eq!(
            COMMANDS.len(),
            lines.len(),
            "a command in help that the parser does not know"
        );
    }

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
