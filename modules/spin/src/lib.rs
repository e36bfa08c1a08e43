//! A module whose `spin` command never returns: `b .`, a branch to itself,
//! with interrupts as the kernel left them. The loader's scan lets it in
//! (it masks nothing); without the module watchdog (`module.watchdog=`) the
//! shell would wait for it forever. With it, the timer's interrupt ends the
//! call after the watchdog's period as a contained fault naming the module
//! and the PC, and the shell goes on. Written in assembly, in a section of
//! its own, so the PC is known.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".section .text.spin_forever,\"ax\",%progbits",
    ".p2align 2",
    ".globl spin_forever",
    ".type spin_forever,%function",
    "spin_forever:",
    "    nop",
    "    b .",
    ".size spin_forever, . - spin_forever",
);

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    /// The loop, above.
    fn spin_forever(args: *const u8, len: usize);
}

/// Called once the module is loaded; 0 means success.
#[cfg(target_arch = "aarch64")]
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    match splitmap::register_command("spin", command) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// The `spin` shell command: straight into the loop.
#[cfg(target_arch = "aarch64")]
extern "C" fn command(args: *const u8, len: usize) {
    splitmap::log("spin: looping forever");
    // SAFETY: the loop takes the kernel's arguments, touches nothing, and
    // never returns: the watchdog ends the call.
    unsafe { spin_forever(args, len) }
}

/// Called before the module is unloaded.
#[cfg(target_arch = "aarch64")]
#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {
    splitmap::unregister_command("spin");
}
