//! The terminal on the console UART: `print!`/`println!`, the `log` backend,
//! the bytes the shell reads, and the boot log: everything printed until the
//! shell starts is kept (`dmesg`), and what is printed before the console
//! exists is shown as soon as it does.

use core::fmt::{self, Write};

use crate::arch::lock::Mutex;

use super::bootlog::BootLog;
use super::line::Gathered;
use super::pl011::Pl011;

/// The console and the boot log, under one lock: every line printed during
/// boot goes to both, and one lock taken is half the code two were.
static TERMINAL: Mutex<Terminal> = Mutex::new(Terminal {
    uart: None,
    log: BootLog::new(),
    booted: false,
});

struct Terminal {
    /// The console, once there is one.
    uart: Option<Pl011>,
    /// What boot printed, until the shell starts.
    log: BootLog,
    /// The shell has started: what is printed no longer goes to `log`.
    /// False at first, so that the static is all zeros and stays in .bss
    /// (in .data, its 16 KiB would be in the Image file).
    booted: bool,
}

/// Installs the UART as the console, and shows what was printed before it.
pub fn init(uart: Pl011) {
    let mut terminal = TERMINAL.lock();
    let Terminal { uart: console, log, .. } = &mut *terminal;
    console.insert(uart).write_text(log.as_bytes());
}

/// Boot is over: the boot log keeps what it has, for `dmesg`.
pub fn end_boot_log() {
    TERMINAL.lock().booted = true;
}

/// Prints the boot log again (`dmesg`).
pub fn print_boot_log() {
    let dropped = {
        let mut terminal = TERMINAL.lock();
        let Terminal { uart, log, .. } = &mut *terminal;
        if let Some(uart) = uart {
            uart.write_text(log.as_bytes());
        }
        log.dropped()
    };
    if dropped > 0 {
        crate::println!("# {dropped} more bytes of boot output were not kept");
    }
}

/// Whether a console exists yet.
pub fn ready() -> bool {
    TERMINAL.lock().uart.is_some()
}

/// A `fmt::Write` on the console, turning `\n` into `\r\n`.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_text(s.as_bytes());
        Ok(())
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        print_fmt(args);
        Ok(())
    }
}

/// Prints `args`, a line (or [`super::line::SIZE`] bytes) at a time: see
/// `console::line`. Text gathered is lost if formatting it panics; the
/// panic's own lines still print.
pub fn print_fmt(args: fmt::Arguments<'_>) {
    match args.as_str() {
        Some(text) => write_text(text.as_bytes()),
        None => {
            let mut line: Line = Gathered::new(write_text);
            let _ = line.write_fmt(args);
            line.flush();
        }
    }
}

/// A line on its way to the console: see [`print_line`].
pub type Line = Gathered<fn(&[u8])>;

/// Prints the line `build` writes into a [`Line`], then a newline. A line of
/// text and numbers written so takes no `core::fmt`, which the boot's own
/// lines then never run (see `console::line`).
pub fn print_line(build: impl FnOnce(&mut Line)) {
    let mut line: Line = Gathered::new(write_text);
    build(&mut line);
    line.text("\n").flush();
}

/// [`print_line`] for a message `log` would print at `level`: only at the
/// levels it prints, and as it prints them.
pub fn log_line(level: log::Level, build: impl FnOnce(&mut Line)) {
    if level <= log::STATIC_MAX_LEVEL && level <= log::max_level() {
        print_line(|line| build(line.text(tag(level)).text(" ")));
    }
}

/// A log line's start: `[{:<5}]` of the level, spelled out (padding is
/// formatting code of its own, which no other line before the first prompt
/// needs).
fn tag(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "[ERROR]",
        log::Level::Warn => "[WARN ]",
        log::Level::Info => "[INFO ]",
        log::Level::Debug => "[DEBUG]",
        log::Level::Trace => "[TRACE]",
    }
}

/// Prints `text` as it is: what `print!` of a literal does, for a `&str`
/// that is not one.
pub fn print_str(text: &str) {
    write_text(text.as_bytes());
}

/// Puts whole UTF-8 `text` in the boot log while boot lasts, and on the
/// console if there is one. Not inlined: its callers are all on the boot
/// path, and each inlined copy was more code for QEMU to translate.
#[inline(never)]
fn write_text(text: &[u8]) {
    let mut terminal = TERMINAL.lock();
    if !terminal.booted {
        terminal.log.push(text);
    }
    if let Some(uart) = terminal.uart.as_mut() {
        uart.write_text(text);
    }
}

/// Reads a byte if one is waiting.
pub fn try_read() -> Option<u8> {
    TERMINAL.lock().uart.as_mut().and_then(Pl011::get)
}

/// Writes raw bytes (echo, bell), no newline translation.
pub fn put_bytes(bytes: &[u8]) {
    if let Some(uart) = TERMINAL.lock().uart.as_mut() {
        bytes.iter().for_each(|&b| uart.put(b));
    }
}

/// Takes the console away from whoever holds it: used by the panic path and
/// by the exception handler's fatal reports, which must print even if the
/// code that stopped was printing.
pub fn force_unlock() {
    // SAFETY: only called on the way to stopping the machine, with
    // interrupts masked and one CPU: the interrupted holder never runs again.
    unsafe { TERMINAL.force_unlock() }
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        $crate::console::print_fmt(format_args!($($arg)*));
    }};
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*)));
    }};
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            crate::println!("{} {}", tag(record.level()), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

// `log` keeps `&LOGGER` from before the KASLR move: its vtable half is
// relocated, its data half is not (`kaslr::relocate`), which is harmless
// only while nothing is behind it.
const _: () = assert!(core::mem::size_of::<Logger>() == 0);

/// Routes `log` to the console (the boot log until there is one) at `level`.
pub fn init_log(level: log::LevelFilter) {
    // A second call only fails with "already set", which leaves the first
    // logger in place: nothing to report.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
