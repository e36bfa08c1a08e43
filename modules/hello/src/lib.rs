//! The smallest splitmap module: logs when it is loaded and unloaded, and
//! adds a `hello` shell command while it is loaded.
//!
//! A module is an ELF relocatable object. Its only undefined symbols are
//! kernel exports, resolved by the module loader; `init_module` and
//! `exit_module` are its entry points.
#![cfg_attr(target_os = "none", no_std)]

const COMMAND: &str = "hello";

/// The `hello` shell command.
extern "C" fn hello_command(_args: *const u8, _len: usize) {
    splitmap::log("hello from a module");
}

/// Called once the module is loaded; 0 means success.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    splitmap::log("hello: loaded");
    match splitmap::register_command_usage(COMMAND, "", hello_command) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Called before the module is unloaded.
#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {
    splitmap::log("hello: unloading");
    splitmap::unregister_command(COMMAND);
}
