//! A module that calls back into itself across sections.
//!
//! `ping` and `pong` sit in sections of their own and call each other,
//! counting the steps of the Collatz sequence (`ping` takes even numbers,
//! `pong` odd ones). Every such call is a CALL26 or JUMP26 relocation against
//! a symbol in *another section of the same module*: Linux counts a PLT slot
//! for each (sections could in principle land far apart), yet the loader
//! places a module's sections together, so they always reach directly. The
//! kernel calls back in too, through the command and test the module registers.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use splitmap::log;

const COMMAND: &str = "pingpong";
const TEST: &str = "pingpong_calls_cross_sections";

/// Steps from an even `n` down to 1.
#[inline(never)]
#[unsafe(link_section = ".text.pingpong.ping")]
extern "C" fn ping(n: u64, steps: u32) -> u32 {
    let next = n / 2;
    if next == 1 {
        steps + 1
    } else if next.is_multiple_of(2) {
        ping(next, steps + 1)
    } else {
        pong(next, steps + 1)
    }
}

/// Steps from an odd `n` down to 1.
#[inline(never)]
#[unsafe(link_section = ".text.pingpong.pong")]
extern "C" fn pong(n: u64, steps: u32) -> u32 {
    if n == 1 {
        return steps;
    }
    // 3n + 1 is even.
    ping(3 * n + 1, steps + 1)
}

/// Collatz steps from `n` to 1 (0 for n = 0).
fn steps(n: u64) -> u32 {
    match n {
        0 => 0,
        n if n.is_multiple_of(2) => ping(n, 0),
        n => pong(n, 0),
    }
}

/// The registered test: 0 passes; otherwise the first wrong count.
extern "C" fn test() -> i32 {
    // Well-known counts: 27 takes 111 steps, 97 takes 118, 871 takes 178.
    for (n, want) in [(1, 0), (2, 1), (6, 8), (27, 111), (97, 118), (871, 178)] {
        let got = steps(core::hint::black_box(n));
        if got != want {
            return got as i32;
        }
    }
    0
}

/// A line of at most 64 bytes, formatted on the stack.
struct Line {
    bytes: [u8; 64],
    len: usize,
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Numbers below this reach 1 without overflowing a u64 on the way.
const LIMIT: u64 = 1_000_000_000;

/// `pingpong N`: the Collatz steps of N, computed across sections.
extern "C" fn command(args: *const u8, len: usize) {
    use core::fmt::Write;
    // SAFETY: the kernel passes the rest of the command line.
    let args = unsafe { splitmap::command_args(args, len) };
    let n = core::str::from_utf8(args).ok().and_then(|s| s.parse::<u64>().ok());
    let mut line = Line { bytes: [0; 64], len: 0 };
    let _ = match n {
        Some(n) if n < LIMIT => write!(line, "pingpong: {n} takes {} steps", steps(n)),
        _ => write!(line, "usage: pingpong N (a number below {LIMIT})"),
    };
    log(core::str::from_utf8(&line.bytes[..line.len]).unwrap_or("pingpong: ?"));
}

#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    if test() != 0 {
        log("pingpong: wrong step counts");
        return -1;
    }
    // rmmod takes these back (this module has no exit_module on purpose).
    let registered =
        splitmap::register_command_usage(COMMAND, "N", command).is_ok() && splitmap::register_test(TEST, test).is_ok();
    log("pingpong: loaded; 27 takes 111 steps");
    if registered { 0 } else { -1 }
}
