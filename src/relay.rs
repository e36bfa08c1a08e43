//! The tool between the terminal and QEMU's serial port, for interactive
//! runs under `--uefi`: QEMU's serial (with its monitor multiplexed, so
//! QEMU's own Ctrl-A keys work) is on pipes, the terminal in raw mode, and
//! the tool copies one to the other. Output goes through
//! [`crate::efi_output::FirmwareFilter`], so no firmware escape sequence
//! reaches the terminal and the terminal has nothing to answer; what is
//! typed goes through an [`InputGate`], so keys meant for the kernel's shell
//! do not reach the firmware (U-Boot stops its autoboot at any key, EDK2
//! opens its setup on Escape).

use std::os::fd::RawFd;

/// QEMU's multiplexer escape key (Ctrl-A): Ctrl-A X quits, Ctrl-A C
/// switches to the monitor, Ctrl-A Ctrl-A types a Ctrl-A.
const CTRL_A: u8 = 0x01;

/// The most typed-ahead bytes held for the kernel; a key held down for the
/// whole of a slow boot is cut there, not kept without bound.
pub const HELD_LIMIT: usize = 4096;

/// What the user types, held while the firmware runs and passed once the
/// kernel has spoken. QEMU's own keys (Ctrl-A and the key after it, but a
/// second Ctrl-A, which types one) pass at once, so Ctrl-A X leaves QEMU
/// at any time.
#[derive(Debug, Default)]
pub struct InputGate {
    /// The kernel has spoken: everything passes.
    open: bool,
    /// The last byte typed was a Ctrl-A (the rest of its command to come).
    escape: bool,
    /// Typed while the firmware runs, for the kernel.
    held: Vec<u8>,
}

impl InputGate {
    /// What of `typed` to send to QEMU now.
    pub fn typed(&mut self, typed: &[u8]) -> Vec<u8> {
        if self.open {
            return typed.to_vec();
        }
        let mut now = Vec::new();
        for &b in typed {
            if self.escape {
                self.escape = false;
                if b == CTRL_A {
                    self.hold(&[CTRL_A, CTRL_A]);
                } else {
                    now.extend_from_slice(&[CTRL_A, b]);
                }
            } else if b == CTRL_A {
                self.escape = true;
            } else {
                self.hold(&[b]);
            }
        }
        now
    }

    /// The kernel has spoken: what was held, to send now. A Ctrl-A whose
    /// command has not come yet stays with the gate's caller: the next
    /// byte typed passes after it.
    pub fn open(&mut self) -> Vec<u8> {
        self.open = true;
        let mut now = std::mem::take(&mut self.held);
        if std::mem::take(&mut self.escape) {
            now.push(CTRL_A);
        }
        now
    }

    fn hold(&mut self, bytes: &[u8]) {
        if self.held.len() + bytes.len() <= HELD_LIMIT {
            self.held.extend_from_slice(bytes);
        }
    }
}

/// The terminal on `fd` in raw mode, as QEMU's `-nographic` sets it: keys
/// arrive one by one, unechoed, Ctrl-C and Ctrl-Z as bytes for the guest;
/// output processing stays on. The settings it found come back when this
/// is dropped, or when the tool is ended by SIGTERM, SIGINT or SIGHUP.
pub struct RawTerminal {
    fd: RawFd,
    saved: libc::termios,
}

/// The settings to restore from a signal handler (one raw terminal at a time).
static SAVED: std::sync::OnceLock<(RawFd, libc::termios)> = std::sync::OnceLock::new();

impl RawTerminal {
    /// Puts the terminal on `fd` in raw mode.
    ///
    /// # Errors
    /// When `fd` is no terminal.
    pub fn enter(fd: RawFd) -> std::io::Result<RawTerminal> {
        // SAFETY: termios is plain data; tcgetattr fills it in or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a plain system call with a valid pointer.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut raw = saved;
        raw.c_iflag &= !(libc::IGNBRK
            | libc::BRKINT
            | libc::PARMRK
            | libc::ISTRIP
            | libc::INLCR
            | libc::IGNCR
            | libc::ICRNL
            | libc::IXON);
        raw.c_oflag |= libc::OPOST;
        raw.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN | libc::ISIG);
        raw.c_cflag &= !(libc::CSIZE | libc::PARENB);
        raw.c_cflag |= libc::CS8;
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        let _ = SAVED.set((fd, saved));
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: installs a handler that only makes async-signal-safe
            // calls (tcsetattr, signal, raise).
            unsafe { libc::signal(signal, restore_and_die as *const () as libc::sighandler_t) };
        }
        // SAFETY: a plain system call with a valid pointer.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RawTerminal { fd, saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: a plain system call with a valid pointer.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Gives the terminal its settings back, then dies of `signal` as if no
/// handler had been there.
extern "C" fn restore_and_die(signal: libc::c_int) {
    if let Some((fd, saved)) = SAVED.get() {
        // SAFETY: async-signal-safe calls with valid arguments.
        unsafe { libc::tcsetattr(*fd, libc::TCSANOW, saved) };
    }
    // SAFETY: async-signal-safe calls.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_wait_for_the_kernel_but_qemus_own_keys_do_not() {
        let mut gate = InputGate::default();
        assert_eq!(gate.typed(b"help\r"), b"");
        // Ctrl-A H (QEMU's help) passes, split across reads or not.
        assert_eq!(gate.typed(b"x\x01"), b"");
        assert_eq!(gate.typed(b"h\x1b"), b"\x01h");
        // Ctrl-A Ctrl-A types a Ctrl-A: for the kernel, so it waits.
        assert_eq!(gate.typed(b"\x01\x01"), b"");
        assert_eq!(gate.typed(b"\x01"), b"");
        assert_eq!(gate.open(), b"help\rx\x1b\x01\x01\x01");
        assert_eq!(gate.typed(b"x"), b"x", "the Ctrl-A held at the opening is completed");
        assert_eq!(gate.typed(b"ls\r\x01x"), b"ls\r\x01x");
    }

    #[test]
    fn held_keys_are_bounded() {
        let mut gate = InputGate::default();
        gate.typed(&[b'a'; HELD_LIMIT + 100]);
        assert_eq!(gate.typed(b"\x01x"), b"\x01x", "Ctrl-A X leaves even then");
        assert_eq!(gate.open().len(), HELD_LIMIT);
    }
}
