//! `cpus` and `on CPU COMMAND`: the CPUs boot brought up, and running a
//! command line on one of them through its mailbox (`arch::smp`).

use crate::arch::counter;
use crate::arch::smp::{self, PostError};
use crate::boot::smp::{State, Why};
use crate::println;

/// How long `on` waits for a CPU to finish a line, in seconds of the
/// counter: far past any command (a whole `test` run included).
const ON_LIMIT_S: u64 = 60;

/// One line per numbered CPU; an online one says what it is doing.
pub fn cpus() {
    for (n, c) in crate::boot::smp::cpus().iter().enumerate() {
        let Some(c) = c else { continue };
        let line = alloc::format!(
            "cpu={n} mpidr={:#x} state={} stack={:#x}-{:#x}",
            c.mpidr,
            c.state.name(),
            c.stack.0,
            c.stack.1
        );
        match c.why {
            Some(why) if c.state != State::Online => println!("{line} why={why}"),
            _ => println!("{line} doing={}", doing(n)),
        }
    }
}

/// What online CPU `n` is doing: `shell` (CPU 0), `module:NAME` (in that
/// module's code), `command` (a line from `on`) or `idle` (in `wfe`).
fn doing(n: usize) -> alloc::string::String {
    if let Some(name) = crate::module::insmod::running_on(n) {
        return alloc::format!("module:{name}");
    }
    let what = match n {
        0 => "shell",
        n if smp::busy(n) => "command",
        _ => "idle",
    };
    what.into()
}

/// `guard.N` and `stack.N` with their windows, for every numbered CPU but
/// CPU 0 (whose are the `guard` and `stack` rows themselves).
pub fn stack_rows() -> alloc::vec::Vec<(alloc::string::String, (u64, u64))> {
    let mut rows = alloc::vec::Vec::new();
    for (n, c) in crate::boot::smp::cpus().iter().enumerate().skip(1) {
        if c.is_some() {
            let slot = pi::kmap::stack_slot(n);
            rows.push((alloc::format!("guard.{n}"), slot.guard));
            rows.push((alloc::format!("stack.{n}"), slot.stack));
        }
    }
    rows
}

/// Runs `command` on another CPU, `n`, through its mailbox, waiting until
/// it is done (the shell runs a command for its own CPU itself). Its output
/// is its own `println!`s, through the same console.
pub fn on(n: usize, command: &str) {
    if n == 0 {
        println!("error: cpu 0 runs the shell and takes no commands from `on`; type the command itself");
        return;
    }
    let table = crate::boot::smp::cpus();
    let Some(Some(cpu)) = table.get(n) else {
        println!("error: no cpu {n}; `cpus` lists the CPUs");
        return;
    };
    if cpu.state != State::Online {
        println!(
            "error: cpu {n} is {} ({}); `on` needs an online CPU",
            cpu.state.name(),
            cpu.why.map_or(alloc::string::String::new(), |w| alloc::format!("{w}"))
        );
        return;
    }
    let deadline = counter::now() + counter::frequency() * ON_LIMIT_S;
    if let Some(line) = command.strip_suffix('&') {
        return in_background(n, line.trim_end(), deadline);
    }
    match smp::post_and_wait(n, command, deadline) {
        Ok(()) => {}
        Err(PostError::TooLong) => println!("error: on: the command is longer than {} bytes", smp::LINE_MAX),
        Err(PostError::Busy) => println!("error: cpu {n} is running another command; try again when it is done"),
        Err(PostError::TimedOut) => {
            crate::boot::smp::mark_failed(n, Why::Stuck);
            println!("error: cpu {n} did not finish within {ON_LIMIT_S} s; it is marked failed");
        }
    }
}

/// `on N CMD &`: posts the line and returns once CPU `n` has taken it and,
/// if it is a module's command, entered the module's code (or finished),
/// so that what is typed next finds it there. Nobody waits for the end:
/// the CPU frees its mailbox itself, and `cpus` says what it is doing.
fn in_background(n: usize, line: &str, deadline: u64) {
    if line.is_empty() {
        println!("error: usage: on CPU COMMAND [&]");
        return;
    }
    match smp::post_detached(n, line, deadline) {
        Ok(()) => {}
        Err(PostError::TooLong) => return println!("error: on: the command is longer than {} bytes", smp::LINE_MAX),
        Err(PostError::Busy) => {
            return println!("error: cpu {n} is running another command; try again when it is done");
        }
        Err(PostError::TimedOut) => {
            crate::boot::smp::mark_failed(n, Why::Stuck);
            return println!("error: cpu {n} did not take the command within {ON_LIMIT_S} s; it is marked failed");
        }
    }
    let word = line.split_whitespace().next().unwrap_or("");
    if crate::module::abi::command(word).is_some() {
        while crate::module::insmod::running_on(n).is_none() && smp::busy(n) && counter::now() <= deadline {
            smp::wait_for_event();
        }
    }
    println!("cpu={n} background={}", crate::console::escape::Escaped(line));
}
