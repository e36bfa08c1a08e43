//! A module whose `spin` command never returns: `b .`, a branch to itself,
//! with interrupts as the kernel left them. The loader's scan lets it in
//! (it masks nothing); without the module watchdog (`module.watchdog=`) the
//! shell would wait for it forever. With it, the timer's interrupt ends the
//! call after the watchdog's period as a contained fault naming the module
//! and the PC, and the shell goes on. Written in assembly, in a section of
//! its own, so the PC is known. `spin MS` loops MS milliseconds of the
//! counter and returns: module code another CPU is known to be in for a
//! while (`on 1 spin 500 &`, then `rmmod spin`).
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
    // SAFETY: the kernel passes the rest of the command line, `len` bytes.
    let line = unsafe { core::slice::from_raw_parts(args, len) };
    if let Some(ms) = milliseconds(line) {
        splitmap::log("spin: looping for a while");
        spin_for(ms);
        splitmap::log("spin: done");
        return;
    }
    splitmap::log("spin: looping forever");
    // SAFETY: the loop takes the kernel's arguments, touches nothing, and
    // never returns: the watchdog ends the call.
    unsafe { spin_forever(args, len) }
}

/// `spin MS`'s number, if the line is one (at most an hour).
#[cfg(target_arch = "aarch64")]
fn milliseconds(line: &[u8]) -> Option<u64> {
    if line.is_empty() || line.len() > 7 {
        return None;
    }
    line.iter()
        .try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// Loops until `ms` milliseconds of the generic timer's counter passed:
/// module code that runs a known while and returns (`rmmod` on another
/// CPU waits for it).
#[cfg(target_arch = "aarch64")]
fn spin_for(ms: u64) {
    let read = || {
        let (count, frequency): (u64, u64);
        // SAFETY: reads of the counter and its frequency, which EL1 may always make.
        unsafe {
            core::arch::asm!("isb", "mrs {}, cntvct_el0", "mrs {}, cntfrq_el0", out(reg) count, out(reg) frequency, options(nomem, nostack))
        };
        (count, frequency)
    };
    let (start, frequency) = read();
    let ticks = frequency / 1000 * ms;
    while read().0.wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Called before the module is unloaded.
#[cfg(target_arch = "aarch64")]
#[unsafe(no_mangle)]
pub extern "C" fn exit_module() {
    splitmap::unregister_command("spin");
}
