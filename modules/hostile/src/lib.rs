//! A hostile module: its `hostile` command masks every interrupt and waits
//! for one (`msr daifset, #0xf; wfi`), then spins. Nothing at EL1 could
//! pre-empt it, so the loader refuses the module when it scans its code:
//! `.text.hostile_command+0x8: msr daifset masks interrupts, …`. Written in
//! assembly, in a section of its own, so the offset is known.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".section .text.hostile_command,\"ax\",%progbits",
    ".p2align 2",
    ".globl hostile_command",
    ".type hostile_command,%function",
    "hostile_command:",
    "    nop",
    "    nop",
    "    msr daifset, #0xf",
    "    wfi",
    "    b .",
    ".size hostile_command, . - hostile_command",
);

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    /// The `hostile` shell command, above.
    fn hostile_command(args: *const u8, len: usize);
}

/// Called once the module is loaded (it never is); 0 means success.
#[cfg(target_arch = "aarch64")]
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    match splitmap::register_command("hostile", hostile_command_shim) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// The command as the kernel calls it: straight into the assembly.
#[cfg(target_arch = "aarch64")]
extern "C" fn hostile_command_shim(args: *const u8, len: usize) {
    // SAFETY: the assembly takes the kernel's arguments and never returns.
    unsafe { hostile_command(args, len) }
}
