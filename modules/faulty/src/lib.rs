//! A module with bugs on request: `faulty null` reads address 0, `faulty
//! undef` runs an undefined instruction, `faulty bad-log` hands the kernel a
//! pointer to nothing. Each faults inside the module (or inside the kernel
//! on its behalf); the kernel reports it, marks the module `faulted`, takes
//! its commands away and returns to the prompt.
#![cfg_attr(target_os = "none", no_std)]

const COMMAND: &str = "faulty";

unsafe extern "C" {
    // The kernel export, declared here to call it with a bad pointer.
    fn splitmap_log(message: *const u8, len: usize);
}

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
        _ => splitmap::log("usage: faulty null|undef|bad-log"),
    }
}

/// Called once the module is loaded; 0 means success.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    match splitmap::register_command(COMMAND, command) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Called before the module is unloaded.
#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {
    splitmap::unregister_command(COMMAND);
}
