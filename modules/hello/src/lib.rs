//! The smallest splitmap module: logs when it is loaded and unloaded, and
//! adds a `hello` shell command while it is loaded.
//!
//! A module is an ELF relocatable object. Its only undefined symbols are
//! kernel exports, resolved by the module loader; `init_module` and
//! `exit_module` are its entry points.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

unsafe extern "C" {
    /// Kernel export: print a line on the console.
    fn splitmap_log(message: *const u8, len: usize);
    /// Kernel export: add a shell command; 0 on success.
    fn splitmap_register_command(name: *const u8, len: usize, handler: extern "C" fn(*const u8, usize)) -> i32;
    /// Kernel export: remove a shell command.
    fn splitmap_unregister_command(name: *const u8, len: usize);
}

const COMMAND: &str = "hello";

/// The `hello` shell command.
extern "C" fn hello_command(_args: *const u8, _len: usize) {
    log("hello from a module");
}

fn log(message: &str) {
    // SAFETY: the kernel export reads `len` bytes at `message`, which is a
    // valid string for the duration of the call.
    unsafe { splitmap_log(message.as_ptr(), message.len()) }
}

/// Called once the module is loaded; 0 means success.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    log("hello: loaded");
    // SAFETY: a valid string and a handler that lives as long as the module.
    unsafe { splitmap_register_command(COMMAND.as_ptr(), COMMAND.len(), hello_command) }
}

/// Called before the module is unloaded.
#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {
    log("hello: unloading");
    // SAFETY: a valid string.
    unsafe { splitmap_unregister_command(COMMAND.as_ptr(), COMMAND.len()) }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    log("hello: panic");
    loop {
        core::hint::spin_loop();
    }
}
