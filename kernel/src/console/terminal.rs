//! The terminal on the console UART: `print!`/`println!`, the `log` backend,
//! the bytes the shell reads, and the boot log: everything printed until the
//! shell starts is kept (`dmesg`), and what is printed before the console
//! exists is shown as soon as it does.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::lock::Mutex;

use super::bootlog::BootLog;
use super::pl011::Pl011;

static CONSOLE: Mutex<Option<Pl011>> = Mutex::new(None);

/// What boot printed, until the shell starts.
static BOOT_LOG: Mutex<BootLog> = Mutex::new(BootLog::new());
static BOOTING: AtomicBool = AtomicBool::new(true);

/// Installs the UART as the console, and shows what was printed before it.
pub fn init(uart: Pl011) {
    let mut console = CONSOLE.lock();
    let uart = console.insert(uart);
    let _ = uart.write_str(BOOT_LOG.lock().as_str());
}

/// Boot is over: the boot log keeps what it has, for `dmesg`.
pub fn end_boot_log() {
    BOOTING.store(false, Ordering::SeqCst);
}

/// Prints the boot log again (`dmesg`).
pub fn print_boot_log() {
    let log = BOOT_LOG.lock();
    let mut console = Console;
    let _ = console.write_str(log.as_str());
    if log.dropped() > 0 {
        let _ = writeln!(console, "# {} more bytes of boot output were not kept", log.dropped());
    }
}

/// Whether a console exists yet.
pub fn ready() -> bool {
    CONSOLE.lock().is_some()
}

/// A `fmt::Write` on the console, turning `\n` into `\r\n`.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if BOOTING.load(Ordering::SeqCst) {
            BOOT_LOG.lock().push(s);
        }
        match CONSOLE.lock().as_mut() {
            Some(uart) => uart.write_str(s),
            None => Ok(()),
        }
    }
}

/// Reads a byte if one is waiting.
pub fn try_read() -> Option<u8> {
    CONSOLE.lock().as_mut().and_then(Pl011::get)
}

/// Writes raw bytes (echo, bell), no newline translation.
pub fn put_bytes(bytes: &[u8]) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        bytes.iter().for_each(|&b| uart.put(b));
    }
}

/// Takes the console away from whoever holds it: used by the panic path and
/// by the exception handler's fatal reports, which must print even if the
/// code that stopped was printing.
pub fn force_unlock() {
    // SAFETY: only called on the way to stopping the machine, with
    // interrupts masked and one CPU: the interrupted holder never runs again.
    unsafe {
        CONSOLE.force_unlock();
        BOOT_LOG.force_unlock();
    }
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Console, format_args!($($arg)*));
    }};
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Console, format_args!("{}\n", format_args!($($arg)*)));
    }};
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            crate::println!("[{:<5}] {}", record.level(), record.args());
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
