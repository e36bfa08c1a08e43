//! A module that breaks the module ABI on request, where `faulty` has bugs:
//! each command is something the kernel must refuse or contain at the call
//! boundary, the module named, the shell going on.
//!
//! - `rogue-recurse` calls itself without end: the kernel stack overflows
//!   into its guard page.
//! - `rogue-x19`, `rogue-sp`, `rogue-d8` return with a callee-saved register
//!   changed (x19; SP 16 bytes lower; d8), which AAPCS64 forbids.
//! - `rogue alloc-all` allocates 64 KiB blocks until the kernel says no, and
//!   logs how many it got; `rogue alloc-huge` asks for more than exists.
//! - `rogue long-name` registers a command with a 3 MiB name, `rogue
//!   bad-name` one with an escape character in it; `rogue many-names`
//!   registers commands until the kernel says no.
//!
//! The ABI breakers are assembly, each its own command: a Rust function in
//! between would save and restore what the assembly changes.
#![cfg_attr(target_os = "none", no_std)]
// Assembly for aarch64 only: on any other target the crate is empty.
#![cfg(target_arch = "aarch64")]

core::arch::global_asm!(
    ".section .text.rogue_recurse,\"ax\",%progbits",
    ".p2align 2",
    ".globl rogue_recurse",
    ".type rogue_recurse,%function",
    "rogue_recurse:",
    "    stp x29, x30, [sp, #-16]!",
    "    mov x29, sp",
    "    bl rogue_recurse",
    "    ldp x29, x30, [sp], #16",
    "    ret",
    ".size rogue_recurse, . - rogue_recurse",
    "",
    ".section .text.rogue_x19,\"ax\",%progbits",
    ".p2align 2",
    ".globl rogue_x19",
    ".type rogue_x19,%function",
    "rogue_x19:",
    "    mov x19, #0x5a5a",
    "    ret",
    ".size rogue_x19, . - rogue_x19",
    "",
    ".section .text.rogue_sp,\"ax\",%progbits",
    ".p2align 2",
    ".globl rogue_sp",
    ".type rogue_sp,%function",
    "rogue_sp:",
    "    sub sp, sp, #16",
    "    ret",
    ".size rogue_sp, . - rogue_sp",
    "",
    ".section .text.rogue_d8,\"ax\",%progbits",
    ".p2align 2",
    ".globl rogue_d8",
    ".type rogue_d8,%function",
    "rogue_d8:",
    "    fmov d8, #1.0",
    "    ret",
    ".size rogue_d8, . - rogue_d8",
);

unsafe extern "C" {
    /// Calls itself until the stack runs out.
    safe fn rogue_recurse(args: *const u8, len: usize);
    /// Returns with x19 changed.
    safe fn rogue_x19(args: *const u8, len: usize);
    /// Returns with SP 16 bytes lower.
    safe fn rogue_sp(args: *const u8, len: usize);
    /// Returns with d8 changed.
    safe fn rogue_d8(args: *const u8, len: usize);
}

unsafe extern "C" {
    // Declared here to hand the kernel lengths the safe wrappers would not.
    fn splitmap_alloc(size: usize, align: usize) -> *mut u8;
    fn splitmap_register_command(name: *const u8, len: usize, handler: splitmap::CommandFn) -> i32;
}

/// What `rogue` takes, for `help rogue`.
const USAGE: &str = "alloc-all|alloc-huge|long-name|bad-name|many-names";

/// 3 MiB of name, in the module's own memory (bss, filled when used).
const LONG: usize = 3 << 20;
static mut LONG_NAME: [u8; LONG] = [0; LONG];

/// Logs `what` and a number.
fn log_count(what: &str, n: usize) {
    let mut line = [0u8; 64];
    let mut at = 0;
    for &b in what.as_bytes().iter().take(40) {
        line[at] = b;
        at += 1;
    }
    let mut digits = [0u8; 20];
    let mut d = 0;
    let mut n = n;
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        line[at] = digits[d];
        at += 1;
    }
    splitmap::log(core::str::from_utf8(&line[..at]).unwrap_or("?"));
}

/// The `rogue KIND` shell command.
extern "C" fn command(args: *const u8, len: usize) {
    // SAFETY: the kernel passes the rest of the line.
    let kind = unsafe { splitmap::command_args(args, len) };
    match kind {
        b"alloc-all" => {
            let mut blocks = 0;
            // SAFETY: plain sizes; the kernel checks them.
            while !unsafe { splitmap_alloc(64 << 10, 16) }.is_null() {
                blocks += 1;
            }
            log_count("rogue: blocks of 64 KiB before null: ", blocks);
        }
        b"alloc-huge" => {
            // SAFETY: as above.
            let null = unsafe { splitmap_alloc(usize::MAX / 4, 16) }.is_null();
            splitmap::log(if null {
                "rogue: huge: null"
            } else {
                "rogue: huge: granted"
            });
        }
        b"long-name" => {
            let name = &raw mut LONG_NAME;
            // SAFETY: the module's own bss, written by this command only.
            unsafe { core::ptr::write_bytes(name.cast::<u8>(), b'a', LONG) };
            // SAFETY: LONG readable bytes.
            let code = unsafe { splitmap_register_command(name.cast::<u8>(), LONG, command) };
            log_count("rogue: long-name: ", code.unsigned_abs() as usize);
        }
        b"bad-name" => {
            let refused = splitmap::register_command("bad\x1b[2Jname", command).is_err();
            splitmap::log(if refused {
                "rogue: bad-name: refused"
            } else {
                "rogue: bad-name: registered"
            });
        }
        b"many-names" => {
            let mut name = *b"rogue-n0000";
            let mut n = 0;
            loop {
                let mut k = n;
                for at in (7..11).rev() {
                    name[at] = b'0' + (k % 10) as u8;
                    k /= 10;
                }
                // SAFETY: a valid buffer for the call.
                if unsafe { splitmap_register_command(name.as_ptr(), name.len(), command) } != 0 || n == 9999 {
                    break;
                }
                n += 1;
            }
            log_count("rogue: names registered: ", n);
        }
        _ => splitmap::log("usage: rogue alloc-all|alloc-huge|long-name|bad-name|many-names"),
    }
}

/// Called once the module is loaded; 0 means success.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let all: [(&'static str, splitmap::CommandFn); 4] = [
        ("rogue-recurse", rogue_recurse),
        ("rogue-x19", rogue_x19),
        ("rogue-sp", rogue_sp),
        ("rogue-d8", rogue_d8),
    ];
    for (name, handler) in all {
        if splitmap::register_command(name, handler).is_err() {
            return -1;
        }
    }
    match splitmap::register_command_usage("rogue", USAGE, command) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}
