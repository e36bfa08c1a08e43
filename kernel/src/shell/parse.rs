//! Shell lines into commands: every command `help` lists, and every refusal
//! a user can get from a typo. The commands run in `shell::commands`.

use crate::num::parse_u64;
use core::fmt;

/// A parsed command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Blank line.
    Empty,
    /// `help [COMMAND]`
    Help(Option<&'a str>),
    /// `layout`
    Layout,
    /// `walk VA`
    Walk(u64),
    /// `mem`
    Mem,
    /// `efi`: the UEFI memory map the EFI stub handed over.
    Efi,
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
    /// `lsmod [-v]`: with `-v`, what each module holds.
    Lsmod(bool),
    /// `peek VA [WIDTH] [force]`: read 8, 16, 32 or 64 bits (one value:
    /// `count` is 1).
    Peek(Examine),
    /// `crash KIND`
    Crash(CrashKind),
    /// `va2pa VA`
    Va2pa(u64),
    /// `pa2va PA`
    Pa2va(u64),
    /// `sym ADDR|NAME`
    Sym(Symbol<'a>),
    /// `ptdump [linear|image|modules|all]`
    Ptdump(Part),
    /// `x VA [COUNT] [WIDTH] [force]`: a hexdump.
    Examine(Examine),
    /// `dmesg`: the boot log again.
    Dmesg,
    /// `dtb [PATH]`: the device tree as source, from `PATH` down.
    Dtb(&'a str),
    /// `phases`: what each boot phase cost, in instructions or wall time.
    Phases,
    /// `irqs`: interrupts taken, per source.
    Irqs,
    /// `cpus`: every CPU, its MPIDR, state and stack.
    Cpus,
    /// `on CPU COMMAND [&]`: run a command line on another CPU (with `&`,
    /// without waiting for it to finish).
    On(usize, &'a str),
}

/// What `x` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Examine {
    /// First address.
    pub va: u64,
    /// How many values.
    pub count: u64,
    /// Bits per value: 8, 16, 32 or 64.
    pub width: u8,
    /// Read device memory too (reads there can have side effects).
    pub force: bool,
}

/// `VA [COUNT] [WIDTH] [force]` after the command's name in `line`: `x`'s
/// arguments, or with `takes_count` false `peek`'s, which reads one value.
fn examine<'a>(line: &'a str, usage: &'static str, takes_count: bool) -> Result<Examine, ParseError<'a>> {
    let mut words = line.split_ascii_whitespace().skip(1).peekable();
    let usage = ParseError::Usage(usage);
    let va = words.next().ok_or(usage)?;
    let mut x = Examine {
        va: parse_u64(va).ok_or(ParseError::BadNumber(va))?,
        count: if takes_count { 8 } else { 1 },
        width: 64,
        force: false,
    };
    if takes_count && let Some(count) = words.next_if(|w| *w != "force") {
        x.count = parse_u64(count)
            .filter(|n| (1..=EXAMINE_MAX).contains(n))
            .ok_or(usage)?;
    }
    if let Some(width) = words.next_if(|w| *w != "force") {
        x.width = parse_width(width).ok_or(usage)?;
    }
    x.force = words.next_if(|w| *w == "force").is_some();
    if words.next().is_some() {
        return Err(usage);
    }
    Ok(x)
}

/// A value's width in bits, as `peek` and `x` take it.
fn parse_width(word: &str) -> Option<u8> {
    match word {
        "64" => Some(64),
        "32" => Some(32),
        "16" => Some(16),
        "8" => Some(8),
        _ => None,
    }
}

/// Most values `x` reads at once.
pub const EXAMINE_MAX: u64 = 1024;

const DTB_USAGE: &str = "dtb [PATH] (a path from the root, e.g. dtb /chosen or dtb /memory)";

const X_USAGE: &str = "x VA [COUNT] [WIDTH] [force] (COUNT 1-1024, WIDTH 8|16|32|64; e.g. x 0xfffffffffe000000 16 8)";
const PEEK_USAGE: &str = "peek VA [WIDTH] [force] (WIDTH 8|16|32|64; e.g. peek 0xfffffffffe000000 32)";

/// What `ptdump` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The linear map.
    Linear,
    /// The kernel image.
    Image,
    /// The module windows.
    Modules,
    /// The whole kernel half.
    All,
}

/// `ptdump` parts by name.
pub const PARTS: &[(&str, Part)] = &[
    ("linear", Part::Linear),
    ("image", Part::Image),
    ("modules", Part::Modules),
    ("all", Part::All),
];

/// What `sym` looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symbol<'a> {
    /// The function an address is in.
    At(u64),
    /// Where a function starts.
    Named(&'a str),
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
    (
        "help",
        "[COMMAND]",
        "list commands, or one command's usage and an example",
    ),
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
    (
        "efi",
        "",
        "the UEFI memory map the kernel received (--uefi): each region's type and what the kernel did with it",
    ),
    (
        "bootargs",
        "",
        "the kernel command line, every setting made of it, and its problems",
    ),
    (
        "dmesg",
        "",
        "what boot printed, again (loglevel=debug shows each boot phase)",
    ),
    (
        "phases",
        "",
        "what each boot phase took, and in all to the first prompt: instructions under --icount, else wall time; then the device tree read again",
    ),
    (
        "irqs",
        "",
        "interrupts taken, one line per source (the timer the module watchdog runs on; spurious ones)",
    ),
    (
        "dtb",
        "[PATH]",
        "the device tree the kernel read, as source: the node at PATH (default /) and all below it",
    ),
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
    (
        "peek",
        "VA [WIDTH] [force]",
        "read one value of WIDTH bits (8, 16, 32 or 64; 64 by default); a fault is reported, not fatal; device memory only with force",
    ),
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
        "[-v]",
        "loaded modules: base, size, PLT veneers used and slots counted, direct branches, distance from the kernel; faulted ones marked; -v: what each holds",
    ),
    (
        "crash",
        "KIND",
        "fault on purpose: null, write-text, write-alias, exec-data, exec-linear, brk, undef, stack-overflow",
    ),
    (
        "va2pa",
        "VA",
        "the physical address a virtual one maps to, and its region",
    ),
    (
        "pa2va",
        "PA",
        "every virtual address that maps a physical one: linear map, image, module, device",
    ),
    (
        "sym",
        "ADDR|NAME",
        "the kernel or module function an address is in, or where one starts",
    ),
    (
        "x",
        "VA [COUNT] [WIDTH] [force]",
        "hexdump COUNT values of WIDTH bits (8 of 64 by default; COUNT up to 1024); a fault is reported; device memory only with force",
    ),
    (
        "ptdump",
        "[linear|image|modules|all]",
        "the live tables as runs of like mappings: VA and PA ranges, block size, attributes",
    ),
    (
        "cpus",
        "",
        "every CPU: number, MPIDR, state (online, offline, failed), kernel stack; why, if not online; what it is doing",
    ),
    (
        "on",
        "CPU COMMAND [&]",
        "run COMMAND on CPU (a number `cpus` lists) and print its output; with `&`, without waiting for it",
    ),
    ("poweroff", "", "power off through PSCI (QEMU exits 0)"),
];

/// Whether the shell has a built-in command called `name` (modules cannot
/// take it).
pub fn is_builtin(name: &str) -> bool {
    COMMANDS.iter().any(|(n, _, _)| *n == name)
}

/// An example of each command, for `help COMMAND`. `{image-pa}` stands for
/// the image's physical address and `{image-linear}` for its alias in the
/// linear map, as this boot placed them ([`filled`]): a fixed number would
/// name unmapped space with `kaslr.linear=on`, or RAM another board lacks.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("help", "help walk"),
    ("layout", "layout"),
    ("walk", "walk {image-linear}"),
    ("mem", "mem"),
    ("efi", "efi"),
    ("bootargs", "bootargs"),
    ("kaslr", "kaslr"),
    ("dmesg", "dmesg"),
    ("dtb", "dtb /chosen"),
    ("phases", "phases"),
    ("irqs", "irqs"),
    ("test", "test linear"),
    ("peek", "peek 0xfffffffffe000000 32"),
    ("modules", "modules"),
    ("insmod", "insmod hello"),
    ("rmmod", "rmmod hello"),
    ("lsmod", "lsmod -v"),
    ("crash", "crash null"),
    ("va2pa", "va2pa {image-linear}"),
    ("pa2va", "pa2va {image-pa}"),
    ("sym", "sym kernel::shell::commands::run"),
    ("x", "x 0xfffffffffe000000 16 8"),
    ("ptdump", "ptdump image"),
    ("cpus", "cpus"),
    ("on", "on 1 va2pa {image-linear}"),
    ("poweroff", "poweroff"),
];

/// An example with its placeholders filled in ([`EXAMPLES`]) for an image
/// at `image_pa` whose linear-map alias is `image_linear`. (A `Display`,
/// not a `String`: this file builds without a heap, for stage 0 too.)
pub struct Filled<'a> {
    pub example: &'a str,
    pub image_pa: u64,
    pub image_linear: u64,
}

impl fmt::Display for Filled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.example;
        while let Some(at) = rest.find('{') {
            f.write_str(&rest[..at])?;
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("{image-pa}") {
                write!(f, "{:#x}", self.image_pa)?;
                rest = after;
            } else if let Some(after) = rest.strip_prefix("{image-linear}") {
                write!(f, "{:#x}", self.image_linear)?;
                rest = after;
            } else {
                f.write_str("{")?;
                rest = &rest[1..];
            }
        }
        f.write_str(rest)
    }
}

/// What `help COMMAND` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Help {
    /// `walk VA`: the name and its arguments.
    pub usage: (&'static str, &'static str),
    /// What it does.
    pub what: &'static str,
    /// A line that runs it, once [`Filled`].
    pub example: &'static str,
}

/// `help COMMAND` for a kernel command.
pub fn help_for(name: &str) -> Option<Help> {
    let &(name, args, what) = COMMANDS.iter().find(|(n, _, _)| *n == name)?;
    let example = EXAMPLES.iter().find(|(n, _)| *n == name).map_or(name, |(_, e)| *e);
    Some(Help {
        usage: (name, args),
        what,
        example,
    })
}

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
        "help" if !extra => Ok(Command::Help(arg)),
        "help" => Err(ParseError::Usage("help [COMMAND]")),
        "layout" => no_args(Command::Layout, "layout"),
        "mem" => no_args(Command::Mem, "mem"),
        "efi" => no_args(Command::Efi, "efi"),
        "bootargs" => no_args(Command::Bootargs, "bootargs"),
        "kaslr" => no_args(Command::Kaslr, "kaslr"),
        "dmesg" => no_args(Command::Dmesg, "dmesg"),
        "phases" => no_args(Command::Phases, "phases"),
        "irqs" => no_args(Command::Irqs, "irqs"),
        "dtb" => match (arg, extra) {
            (None, _) => Ok(Command::Dtb("/")),
            // No empty node names: `//` is a typo, not the root again.
            (Some(path), false) if path.starts_with('/') && !path.contains("//") => Ok(Command::Dtb(path)),
            _ => Err(ParseError::Usage(DTB_USAGE)),
        },
        "modules" => no_args(Command::Modules, "modules"),
        "lsmod" => match (arg, extra) {
            (None, _) => Ok(Command::Lsmod(false)),
            (Some("-v"), false) => Ok(Command::Lsmod(true)),
            _ => Err(ParseError::Usage("lsmod [-v]")),
        },
        "insmod" => match (arg, extra) {
            (Some(name), false) => Ok(Command::Insmod(name)),
            _ => Err(ParseError::Usage("insmod NAME (see `modules`)")),
        },
        "rmmod" => match (arg, extra) {
            (Some(name), false) => Ok(Command::Rmmod(name)),
            _ => Err(ParseError::Usage("rmmod NAME (see `lsmod`)")),
        },
        "poweroff" => no_args(Command::Poweroff, "poweroff"),
        "cpus" => no_args(Command::Cpus, "cpus"),
        "on" => {
            let cpu = arg.ok_or(ParseError::Usage(ON_USAGE))?;
            let n = parse_u64(cpu).ok_or(ParseError::BadNumber(cpu))?;
            // The words are slices of `line`: the command is what follows
            // the CPU's number, as typed.
            let after = cpu.as_ptr() as usize - line.as_ptr() as usize + cpu.len();
            match line[after..].trim() {
                "" => Err(ParseError::Usage(ON_USAGE)),
                command => Ok(Command::On(usize::try_from(n).unwrap_or(usize::MAX), command)),
            }
        }
        "va2pa" => match (arg, extra) {
            (Some(va), false) => parse_u64(va).map(Command::Va2pa).ok_or(ParseError::BadNumber(va)),
            _ => Err(ParseError::Usage("va2pa VA (e.g. va2pa 0xffff000000001000)")),
        },
        "pa2va" => match (arg, extra) {
            (Some(pa), false) => parse_u64(pa).map(Command::Pa2va).ok_or(ParseError::BadNumber(pa)),
            _ => Err(ParseError::Usage("pa2va PA (e.g. pa2va 0x40200000)")),
        },
        "ptdump" => match (arg, extra) {
            (None, false) => Ok(Command::Ptdump(Part::All)),
            (Some(word), false) => PARTS
                .iter()
                .find(|(name, _)| *name == word)
                .map(|&(_, part)| Command::Ptdump(part))
                .ok_or(ParseError::Usage("ptdump [linear|image|modules|all]")),
            _ => Err(ParseError::Usage("ptdump [linear|image|modules|all]")),
        },
        "sym" => match (arg, extra) {
            (Some(word), false) => match parse_u64(word) {
                Some(addr) => Ok(Command::Sym(Symbol::At(addr))),
                // No symbol's name starts with a digit: this was a number.
                None if word.starts_with(|c: char| c.is_ascii_digit()) => Err(ParseError::BadNumber(word)),
                None => Ok(Command::Sym(Symbol::Named(word))),
            },
            _ => Err(ParseError::Usage(
                "sym ADDR|NAME (e.g. sym kernel::shell::commands::run)",
            )),
        },
        "walk" => match (arg, extra) {
            (Some(va), false) => parse_u64(va).map(Command::Walk).ok_or(ParseError::BadNumber(va)),
            _ => Err(ParseError::Usage("walk VA (e.g. walk 0xffff000000000000)")),
        },
        "test" if !extra => Ok(Command::Test(arg)),
        "test" => Err(ParseError::Usage("test [FILTER]")),
        "peek" => examine(line, PEEK_USAGE, false).map(Command::Peek),
        "x" => examine(line, X_USAGE, true).map(Command::Examine),
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

const ON_USAGE: &str = "on CPU COMMAND (e.g. on 1 walk 0xffff000000001000; `cpus` lists the CPUs)";

const CRASH_USAGE: &str = "crash null|write-text|write-alias|exec-data|exec-linear|brk|undef|stack-overflow";

#[cfg(test)]
mod tests {
    use super::*;

    fn peek(va: u64, width: u8, force: bool) -> Examine {
        Examine {
            va,
            count: 1,
            width,
            force,
        }
    }

    #[test]
    fn commands() {
        let rows: &[(&str, Result<Command<'_>, ParseError<'_>>)] = &[
            ("", Ok(Command::Empty)),
            ("   ", Ok(Command::Empty)),
            ("help", Ok(Command::Help(None))),
            ("help walk", Ok(Command::Help(Some("walk")))),
            ("help walk x", Err(ParseError::Usage("help [COMMAND]"))),
            (" layout ", Ok(Command::Layout)),
            ("cpus", Ok(Command::Cpus)),
            ("cpus 1", Err(ParseError::Usage("cpus"))),
            ("on 2 walk 0x10", Ok(Command::On(2, "walk 0x10"))),
            ("  on  0x3   peek 0x10  32 ", Ok(Command::On(3, "peek 0x10  32"))),
            ("on 1 on 2 cpus", Ok(Command::On(1, "on 2 cpus"))),
            ("on 1", Err(ParseError::Usage(ON_USAGE))),
            ("on", Err(ParseError::Usage(ON_USAGE))),
            ("on one walk 0", Err(ParseError::BadNumber("one"))),
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
            ("peek 0x10", Ok(Command::Peek(peek(0x10, 64, false)))),
            ("peek 0x10 8", Ok(Command::Peek(peek(0x10, 8, false)))),
            ("peek 0x10 force", Ok(Command::Peek(peek(0x10, 64, true)))),
            ("peek 0x10 32 force", Ok(Command::Peek(peek(0x10, 32, true)))),
            ("peek 0x10 12", Err(ParseError::Usage(PEEK_USAGE))),
            ("peek 0x10 force 8", Err(ParseError::Usage(PEEK_USAGE))),
            ("peek", Err(ParseError::Usage(PEEK_USAGE))),
            ("peek zz", Err(ParseError::BadNumber("zz"))),
            ("crash exec-data", Ok(Command::Crash(CrashKind::ExecData))),
            ("crash", Err(ParseError::Usage(CRASH_USAGE))),
            ("crash stack-overflow", Ok(Command::Crash(CrashKind::StackOverflow))),
            ("crash sideways", Err(ParseError::Usage(CRASH_USAGE))),
            ("va2pa 0x1000", Ok(Command::Va2pa(0x1000))),
            ("pa2va 0x40200000", Ok(Command::Pa2va(0x4020_0000))),
            (
                "va2pa",
                Err(ParseError::Usage("va2pa VA (e.g. va2pa 0xffff000000001000)")),
            ),
            ("pa2va zz", Err(ParseError::BadNumber("zz"))),
            (
                "sym 0xffff800080001000",
                Ok(Command::Sym(Symbol::At(0xffff_8000_8000_1000))),
            ),
            (
                "sym kernel::shell::commands::run",
                Ok(Command::Sym(Symbol::Named("kernel::shell::commands::run"))),
            ),
            (
                "sym a b",
                Err(ParseError::Usage(
                    "sym ADDR|NAME (e.g. sym kernel::shell::commands::run)",
                )),
            ),
            (
                "sym 18446744073709551616",
                Err(ParseError::BadNumber("18446744073709551616")),
            ),
            (
                "sym 0xfffffffffffffffff",
                Err(ParseError::BadNumber("0xfffffffffffffffff")),
            ),
            ("lsmod -v", Ok(Command::Lsmod(true))),
            ("dtb /psci", Ok(Command::Dtb("/psci"))),
            ("dtb //", Err(ParseError::Usage(DTB_USAGE))),
            ("dtb /psci//", Err(ParseError::Usage(DTB_USAGE))),
            ("dtb psci", Err(ParseError::Usage(DTB_USAGE))),
            ("ptdump", Ok(Command::Ptdump(Part::All))),
            (
                "x 0x10",
                Ok(Command::Examine(Examine {
                    va: 0x10,
                    count: 8,
                    width: 64,
                    force: false,
                })),
            ),
            (
                "x 0x10 4 8 force",
                Ok(Command::Examine(Examine {
                    va: 0x10,
                    count: 4,
                    width: 8,
                    force: true,
                })),
            ),
            (
                "x 0x10 force",
                Ok(Command::Examine(Examine {
                    va: 0x10,
                    count: 8,
                    width: 64,
                    force: true,
                })),
            ),
            ("x 0x10 0", Err(ParseError::Usage(X_USAGE))),
            ("x 0x10 2000", Err(ParseError::Usage(X_USAGE))),
            ("x 0x10 4 12", Err(ParseError::Usage(X_USAGE))),
            ("x 0x10 4 8 force now", Err(ParseError::Usage(X_USAGE))),
            ("ptdump image", Ok(Command::Ptdump(Part::Image))),
            (
                "ptdump sideways",
                Err(ParseError::Usage("ptdump [linear|image|modules|all]")),
            ),
            ("lsmod -x", Err(ParseError::Usage("lsmod [-v]"))),
            ("dtb", Ok(Command::Dtb("/"))),
            ("dtb /chosen", Ok(Command::Dtb("/chosen"))),
            ("dtb chosen", Err(ParseError::Usage(DTB_USAGE))),
            ("dtb / /chosen", Err(ParseError::Usage(DTB_USAGE))),
        ];
        for (line, expected) in rows {
            assert_eq!(parse(line), *expected, "{line:?}");
        }
        assert!(ParseError::Unknown("x").to_string().contains("help"));
        assert!(X_USAGE.contains(&format!("COUNT 1-{EXAMINE_MAX}")), "{X_USAGE}");
    }

    #[test]
    fn every_command_has_an_example_that_runs_it() {
        for (name, _, _) in COMMANDS {
            let (_, example) = EXAMPLES
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no example for {name}"));
            let example = Filled {
                example,
                image_pa: 0x4020_0000,
                image_linear: 0xffff_0000_0020_0000,
            }
            .to_string();
            assert!(example.split(' ').next() == Some(*name), "{example}");
            assert!(!example.contains('{'), "every placeholder filled: {example}");
            assert!(!matches!(parse(&example), Err(_) | Ok(Command::Empty)), "{example}");
        }
        assert_eq!(EXAMPLES.len(), COMMANDS.len());
        assert!(help_for("walk").is_some() && help_for("frobnicate").is_none());
    }

    #[test]
    fn an_example_names_this_boots_addresses() {
        let filled = |example| {
            Filled {
                example,
                image_pa: 0x20_0000,
                image_linear: 0xffff_1234_0020_0000,
            }
            .to_string()
        };
        assert_eq!(filled("walk {image-linear}"), "walk 0xffff123400200000");
        assert_eq!(filled("pa2va {image-pa} {image-pa}"), "pa2va 0x200000 0x200000");
        assert_eq!(
            filled("dtb {/chosen} {"),
            "dtb {/chosen} {",
            "no placeholder: as written"
        );
    }

    #[test]
    fn help_lists_every_command() {
        let lines = [
            "help",
            "layout",
            "walk 0",
            "mem",
            "efi",
            "bootargs",
            "kaslr",
            "test",
            "peek 0",
            "modules",
            "insmod hello",
            "rmmod hello",
            "lsmod",
            "crash null",
            "va2pa 0",
            "pa2va 0",
            "sym 0",
            "ptdump",
            "x 0",
            "dmesg",
            "dtb",
            "phases",
            "irqs",
            "cpus",
            "on 1 cpus",
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
}
