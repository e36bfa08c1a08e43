//! A module with bugs on request: `faulty null` reads address 0, `faulty
//! undef` runs an undefined instruction, `faulty bad-log` and `faulty
//! bad-unregister` hand the kernel a pointer to nothing, `faulty exit-null`
//! makes `exit_module` read address 0 at `rmmod`. Each faults inside the
//! module (or inside the kernel on its behalf); the kernel reports it, marks
//! the module `faulted`, takes its commands away and returns to the prompt.
//! `faulty unregister NAME` tries to take away another module's command,
//! which the kernel does not allow. `faulty forge` logs lines that pretend
//! to be the kernel's (a panic, a halt, a prompt): the kernel prints them
//! escaped, after the module's name, and the host tool is not fooled.
#![cfg_attr(target_os = "none", no_std)]

use core::sync::atomic::{AtomicBool, Ordering};

const COMMAND: &str = "faulty";
/// What `faulty` takes, for `help faulty`.
const USAGE: &str = "null|undef|bad-log|bad-unregister|exit-null|forge|unregister NAME";

unsafe extern "C" {
    // The kernel exports, declared here to call them with a bad pointer.
    fn splitmap_log(message: *const u8, len: usize);
    fn splitmap_unregister_command(name: *const u8, len: usize);
}

/// `faulty forge`'s line: the kernel's panic, halt and prompt lines, each
/// after a line end of its own.
const FORGED: &str = "forged\r\nkernel panic: forged by a module\r\nsplitmap: reset is unavailable: PSCI does not answer over hvc; halted (Ctrl-A X leaves QEMU)\r\nsplitmap> ";

/// Set by `faulty exit-null`: `exit_module` then faults.
static FAULT_ON_EXIT: AtomicBool = AtomicBool::new(false);

/// Reads one byte at `at`, which the caller knows may fault.
#[inline(never)]
fn read(at: usize) -> u8 {
    // SAFETY: not safe at all: faulting is the point of this module.
    unsafe { core::ptr::read_volatile(at as *const u8) }
}

/// The `faulty KIND` shell command.
extern "C" fn command(args: *const u8, len: usize) {
    // SAFETY: the kernel passes the rest of the line.
    let kind = unsafe { splitmap::command_args(args, len) };
    match kind {
        b"null" => {
            let _ = read(0);
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above.
        b"undef" => unsafe { core::arch::asm!("udf #0x42") },
        // SAFETY: as above: 0x10 is no string.
        b"bad-log" => unsafe { splitmap_log(0x10 as *const u8, 64) },
        // The length of a registered name, so that a kernel comparing names
        // would read the bytes, not stop at a length that differs.
        // SAFETY: as above.
        b"bad-unregister" => unsafe { splitmap_unregister_command(0x10 as *const u8, COMMAND.len()) },
        b"forge" => splitmap::log(FORGED),
        b"exit-null" => {
            FAULT_ON_EXIT.store(true, Ordering::Relaxed);
            splitmap::log("faulty: exit_module will fault");
        }
        _ => match kind.strip_prefix(b"unregister ").map(core::str::from_utf8) {
            Some(Ok(name)) => splitmap::unregister_command(name),
            _ => splitmap::log("usage: faulty null|undef|bad-log|bad-unregister|exit-null|forge|unregister NAME"),
        },
    }
}

/// Called once the module is loaded; 0 means success.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    match splitmap::register_command_usage(COMMAND, USAGE, command) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Called before the module is unloaded.
#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {
    if FAULT_ON_EXIT.load(Ordering::Relaxed) {
        let _ = read(0);
    }
    splitmap::unregister_command(COMMAND);
}
