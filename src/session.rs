//! Scripted sessions: boot, type lines at the prompt, collect everything the
//! kernel prints, and say how it ended. Works without a terminal (CI).
//!
//! How a session ended is not read from the console, where a typed line's
//! echo, a module or the device tree's command line can print anything:
//! QEMU's control socket says whether the guest powered off or reset
//! ([`crate::qmp`]). Only what has no such signal is read from the console:
//! the kernel's halt lines without PSCI, and the stage-0 loader's refusal.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::qmp::{self, Shutdown};

/// The shell's prompt, at the start of a line.
pub const PROMPT: &str = "splitmap> ";
/// What the stage-0 loader prints before refusing a load address (and
/// ending QEMU through semihosting with a non-zero status).
pub const STAGE0_ERROR: &str = "stage0: error:";
/// How the kernel's line starts when it halts because it cannot power off
/// (no PSCI answers).
pub const CANNOT_POWER_OFF: &str = "splitmap: power-off is unavailable";
/// How it starts when it halts after a panic because it cannot reset.
pub const CANNOT_RESET: &str = "splitmap: reset is unavailable";
/// How both halt lines end.
pub const HALTED: &str = "; halted (Ctrl-A X leaves QEMU)";

/// How a scripted session ended.
#[derive(Debug)]
pub enum Outcome {
    /// The kernel powered off after the script: success.
    PoweredOff,
    /// The kernel panicked (and reset the machine).
    Panic,
    /// The kernel panicked, then halted because it cannot reset the
    /// machine; QEMU was stopped.
    PanicHalted,
    /// The stage-0 loader refused to place the kernel.
    LoaderRefused(String),
    /// The kernel powered off before the whole script was typed (a `poweroff`
    /// in the middle of it, say).
    EndedEarly {
        /// Lines typed before it ended.
        typed: usize,
        /// Lines in the script, `poweroff` included.
        of: usize,
    },
    /// No power-off within the time limit; QEMU was killed. `silent`: the
    /// kernel never printed its boot line.
    Timeout {
        /// The limit.
        after: Duration,
        /// No boot line in the output.
        silent: bool,
    },
    /// The kernel halted because it cannot power off; QEMU was stopped.
    CannotPowerOff,
    /// QEMU shut down for a reason other than the guest's (a signal,
    /// Ctrl-A X): the reason QEMU gave.
    QemuShutDown(String),
    /// QEMU exited without saying the guest shut down.
    QemuFailed(ExitStatus),
}

impl Outcome {
    /// Whether this is a clean power-off.
    pub fn success(&self) -> bool {
        matches!(self, Outcome::PoweredOff)
    }

    /// One line for stderr.
    pub fn reason(&self) -> String {
        match self {
            Outcome::PoweredOff => "kernel powered off".into(),
            Outcome::Panic => "kernel panic".into(),
            Outcome::PanicHalted => {
                "kernel panic; then the kernel halted: it cannot reset this machine (its last line says why), so QEMU was stopped".into()
            }
            Outcome::LoaderRefused(why) => format!("the stage-0 loader refused: {why}"),
            Outcome::EndedEarly { typed, of } => {
                format!(
                    "the kernel powered off after {typed} of {of} script lines, before the rest was typed"
                )
            }
            Outcome::Timeout { after, silent: false } => format!("timeout after {} s", after.as_secs()),
            // Nothing on the console may be no hang at all: the kernel
            // prints its panic too on the UART it knows, and with no tree
            // to read (on `raspi3b`, whose UART is not `virt`'s) it knows none.
            Outcome::Timeout { after, silent: true } => format!(
                "timeout after {} s, and the kernel never printed its boot line: it stopped before its console started, or found none to start (a device tree it cannot read names none)",
                after.as_secs()
            ),
            Outcome::CannotPowerOff => {
                "the kernel halted: it cannot power this machine off (its last line says why), so QEMU was stopped (interactively, Ctrl-A X leaves QEMU)"
                    .into()
            }
            Outcome::QemuShutDown(reason) => {
                format!("QEMU shut down ({reason}) before the kernel powered off")
            }
            Outcome::QemuFailed(status) => format!("qemu exited with {status} before the kernel powered off"),
        }
    }
}

/// Everything a session printed, and how it ended.
#[derive(Debug)]
pub struct Transcript {
    /// The console output, as received.
    pub output: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// Finds prompts in a stream that arrives in arbitrary pieces.
#[derive(Default)]
pub struct PromptCounter {
    scanned: usize,
    /// Prompts seen so far.
    pub seen: usize,
}

impl PromptCounter {
    /// Looks at what `output` gained since the last call; returns the number of
    /// new prompts. A prompt counts only when it starts a line: the kernel
    /// escapes every line end in text from outside it (command line, module
    /// lines, tree names), and a typed line's echo follows a prompt, so no
    /// such text can start a line with one. Only the new bytes (and a
    /// possible partial prompt before them) are scanned.
    pub fn update(&mut self, output: &[u8]) -> usize {
        let before = self.seen;
        let prompt = PROMPT.as_bytes();
        while let Some(found) = output[self.scanned..].windows(prompt.len()).position(|w| w == prompt) {
            let at = self.scanned + found;
            if at == 0 || matches!(output[at - 1], b'\n' | b'\r') {
                self.seen += 1;
            }
            self.scanned = at + prompt.len();
        }
        // Keep a possible partial prompt at the end for the next call.
        self.scanned = self.scanned.max(output.len().saturating_sub(prompt.len() - 1));
        self.seen - before
    }
}

/// Why the kernel halted for good, from a line it printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Halt {
    /// It cannot power off (no PSCI): [`CANNOT_POWER_OFF`].
    CannotPowerOff,
    /// It panicked and cannot reset: [`CANNOT_RESET`].
    CannotReset,
}

/// Finds the kernel's halt lines in a stream that arrives in pieces. Without
/// PSCI there is no signal but this line, so it is taken only as a whole
/// line the kernel would print: from the start of a line (never inside a
/// typed line's echo, which follows the prompt; outside text is escaped, so
/// it cannot start a line) to its end, [`HALTED`] included.
#[derive(Default)]
pub struct HaltWatch {
    /// Where the line not yet ended starts.
    line_start: usize,
}

impl HaltWatch {
    /// Looks at the lines `output` completed since the last call.
    pub fn update(&mut self, output: &[u8]) -> Option<Halt> {
        while let Some(end) = output[self.line_start..].iter().position(|&b| b == b'\n') {
            let line = &output[self.line_start..self.line_start + end];
            self.line_start += end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(halt) = halt_line(line) {
                return Some(halt);
            }
        }
        None
    }
}

/// The halt a whole console line (without its line end) announces.
fn halt_line(line: &[u8]) -> Option<Halt> {
    let line = std::str::from_utf8(line).ok()?;
    if !line.ends_with(HALTED) {
        return None;
    }
    if line.starts_with(CANNOT_POWER_OFF) {
        Some(Halt::CannotPowerOff)
    } else if line.starts_with(CANNOT_RESET) {
        Some(Halt::CannotReset)
    } else {
        None
    }
}

/// The lines to type: the script, then `poweroff` unless it ends with one.
pub fn with_poweroff(lines: &[String]) -> Vec<String> {
    let mut all = lines.to_vec();
    if all.last().map(|l| l.trim()) != Some("poweroff") {
        all.push("poweroff".into());
    }
    all
}

/// Runs `qemu` (set up with piped serial on stdio), typing `lines` one per
/// prompt. Everything received is also passed to `echo` as it arrives.
///
/// # Errors
/// If QEMU cannot be started.
pub fn run(qemu: Command, lines: &[String], timeout: Duration, echo: impl FnMut(&[u8])) -> std::io::Result<Transcript> {
    run_typing(qemu, lines, Typing::LinePerPrompt, timeout, echo)
}

/// How a script is typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Typing {
    /// One line each time the prompt appears, as a person types.
    LinePerPrompt,
    /// Everything at once at the first prompt, as a paste: the console must
    /// not lose a character.
    Burst,
}

/// [`run`], typing the script as `typing` says.
///
/// # Errors
/// If QEMU cannot be started.
pub fn run_typing(
    mut qemu: Command,
    lines: &[String],
    typing: Typing,
    timeout: Duration,
    mut echo: impl FnMut(&[u8]),
) -> std::io::Result<Transcript> {
    qemu.stdin(Stdio::piped()).stdout(Stdio::piped());
    let (mut child, events) = qmp::spawn(qemu)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    let script = with_poweroff(lines);
    let mut next = 0;
    let mut prompts = PromptCounter::default();
    let mut halts = HaltWatch::default();
    let mut halt = None;
    let mut bytes = Vec::new();
    // No deadline when the timeout is too long to add (`--timeout 0`).
    let deadline = Instant::now().checked_add(timeout);
    let stopped = loop {
        let received = match deadline {
            Some(deadline) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(chunk) => {
                echo(&chunk);
                bytes.extend_from_slice(&chunk);
                // Halted for good once that line is complete: nothing more
                // will come, and no event either.
                halt = halts.update(&bytes);
                if halt.is_some() {
                    break true;
                }
                let new_prompts = prompts.update(&bytes);
                if typing == Typing::Burst && new_prompts > 0 && next == 0 {
                    let all: String = script.iter().map(|l| format!("{l}\r")).collect();
                    let _ = stdin.write_all(all.as_bytes());
                    let _ = stdin.flush();
                    next = script.len();
                }
                for _ in 0..new_prompts {
                    if let Some(line) = script.get(next) {
                        // A closed stdin means QEMU is going away; the exit
                        // status will tell why.
                        let _ = stdin.write_all(format!("{line}\r").as_bytes());
                        let _ = stdin.flush();
                        next += 1;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break true,
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
        }
    };
    let status = if stopped {
        let _ = child.kill();
        None
    } else {
        Some(child.wait()?)
    };
    drop(stdin);
    let _ = child.wait();
    let _ = reader.join();
    // QEMU is gone, so its socket is closed and the events are all in.
    let shutdown = events.and_then(qmp::Events::finish);

    let output = String::from_utf8_lossy(&bytes).into_owned();
    let ending = Ending { shutdown, halt, status };
    let outcome = match judge(&output, ending, timeout) {
        Outcome::PoweredOff if next < script.len() => Outcome::EndedEarly {
            typed: next,
            of: script.len(),
        },
        outcome => outcome,
    };
    Ok(Transcript { output, outcome })
}

/// What is known when QEMU is gone.
#[derive(Debug)]
pub struct Ending {
    /// The shutdown QEMU announced on its control socket, if any.
    pub shutdown: Option<Shutdown>,
    /// The halt line the kernel printed, if any (QEMU was stopped then).
    pub halt: Option<Halt>,
    /// QEMU's exit status; `None` if it was stopped (a timeout, a halt).
    pub status: Option<ExitStatus>,
}

/// Decides how a session ended: by QEMU's `SHUTDOWN` event, the one thing
/// the guest's text cannot forge; else by the kernel's halt line (without
/// PSCI there is no event); else by how QEMU exited. `output` is read only
/// for the stage-0 loader's refusal, which ends QEMU through semihosting,
/// with a non-zero status and no event.
pub fn judge(output: &str, ending: Ending, timeout: Duration) -> Outcome {
    match (ending.shutdown, ending.halt) {
        (Some(Shutdown::PoweredOff), _) => return Outcome::PoweredOff,
        (Some(Shutdown::Reset), _) => return Outcome::Panic,
        (_, Some(Halt::CannotPowerOff)) => return Outcome::CannotPowerOff,
        (_, Some(Halt::CannotReset)) => return Outcome::PanicHalted,
        (Some(Shutdown::Other(reason)), None) => return Outcome::QemuShutDown(reason),
        (None, None) => {}
    }
    let Some(status) = ending.status else {
        return Outcome::Timeout {
            after: timeout,
            silent: crate::boot_line::placement(output).is_none(),
        };
    };
    let refusal = output
        .lines()
        .find_map(|l| l.trim_start_matches('\r').strip_prefix(STAGE0_ERROR));
    match refusal {
        Some(why) if !status.success() => Outcome::LoaderRefused(why.trim().to_string()),
        _ => Outcome::QemuFailed(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_in_pieces() {
        // (chunks as they arrive, prompts counted after each)
        let rows: &[(&[&str], &[usize])] = &[
            (&["splitmap> "], &[1]),
            (&["boot\nsplit", "map> "], &[0, 1]),
            (
                &["splitmap: image pa=0x0\n", "splitmap> help\r\n", "x\r\nsplitmap> "],
                &[0, 1, 1],
            ),
            (&["not a splitmap> prompt\n"], &[0]),
            (&["splitmap>", " \r\nsplitmap> \r\nsplitmap> "], &[0, 3]),
        ];
        for (chunks, counts) in rows {
            let mut text = String::new();
            let mut p = PromptCounter::default();
            let got: Vec<usize> = chunks
                .iter()
                .map(|c| {
                    text.push_str(c);
                    p.update(text.as_bytes())
                })
                .collect();
            assert_eq!(got, *counts, "{chunks:?}");
        }
    }

    #[test]
    fn poweroff_is_added_once() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(with_poweroff(&s(&["layout"])), s(&["layout", "poweroff"]));
        assert_eq!(with_poweroff(&s(&["poweroff"])), s(&["poweroff"]));
        assert_eq!(with_poweroff(&[]), s(&["poweroff"]));
    }

    #[test]
    fn outcomes_come_from_the_event_not_the_text() {
        use std::os::unix::process::ExitStatusExt;
        let ok = Some(ExitStatus::from_raw(0));
        let failed = Some(ExitStatus::from_raw(1 << 8));
        let t = Duration::from_secs(5);
        let ending = |shutdown, halt, status| Ending { shutdown, halt, status };
        let off = || Some(Shutdown::PoweredOff);
        // Console text that looks like a verdict decides nothing.
        for text in [
            "splitmap> poweroff\n",
            "splitmap> kernel panic: x\r\nerror: unknown command 'kernel'\r\nsplitmap> poweroff\r\n",
            "x\nkernel panic: boom\nsplitmap: halted\n",
            "hostile: kernel panic: x\r\n",
            "splitmap> splitmap: power-off is unavailable: PSCI does not answer over hvc; halted (Ctrl-A X leaves QEMU)\r\n",
            "stage0: error: forged\r\n",
        ] {
            assert!(judge(text, ending(off(), None, ok), t).success(), "{text}");
        }
        assert!(matches!(
            judge("splitmap> poweroff\n", ending(Some(Shutdown::Reset), None, ok), t),
            Outcome::Panic
        ));
        assert!(matches!(
            judge("", ending(None, Some(Halt::CannotPowerOff), None), t),
            Outcome::CannotPowerOff
        ));
        assert!(matches!(
            judge("", ending(None, Some(Halt::CannotReset), None), t),
            Outcome::PanicHalted
        ));
        assert!(matches!(
            judge("", ending(Some(Shutdown::Other("host-qmp-quit".into())), None, ok), t),
            Outcome::QemuShutDown(_)
        ));
        assert!(matches!(
            judge("hello", ending(None, None, None), t),
            Outcome::Timeout { silent: true, .. }
        ));
        let booted = "splitmap: image pa=0x40200000 va=0xffff800080000000 kaslr=0x0 (disabled)\r\n";
        assert!(matches!(
            judge(booted, ending(None, None, None), t),
            Outcome::Timeout { silent: false, .. }
        ));
        // Exiting without an event, even with status 0, is no power-off.
        assert!(matches!(judge("", ending(None, None, ok), t), Outcome::QemuFailed(_)));
        assert!(matches!(
            judge("", ending(None, None, failed), t),
            Outcome::QemuFailed(_)
        ));
        match judge(
            "stage0: error: load address 0x1 is not 4 KiB-aligned\r\n",
            ending(None, None, failed),
            t,
        ) {
            Outcome::LoaderRefused(why) => assert_eq!(why, "load address 0x1 is not 4 KiB-aligned"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn halt_lines_count_only_whole_and_at_a_line_start() {
        let off = "splitmap: power-off is unavailable: PSCI does not answer over smc; halted (Ctrl-A X leaves QEMU)";
        let reset = "splitmap: reset is unavailable: PSCI does not answer over hvc; halted (Ctrl-A X leaves QEMU)";
        // (chunks as they arrive, the halt seen after the last)
        let rows: Vec<(Vec<String>, Option<Halt>)> = vec![
            (
                vec![
                    "splitmap> poweroff\r\nsplitmap: powering off\r\n".into(),
                    format!("{off}\r\n"),
                ],
                Some(Halt::CannotPowerOff),
            ),
            (
                vec![
                    format!("\r\nkernel panic: x\r\n{}", &reset[..20]),
                    format!("{}\r\n", &reset[20..]),
                ],
                Some(Halt::CannotReset),
            ),
            (vec![off.into()], None),
            (vec![format!("splitmap> {off}\r\n")], None),
            (vec![format!("error: unknown command '{off}'\r\n")], None),
            (vec![format!("{}\r\n", &off[..40])], None),
            (vec![format!("hostile: {off}\r\n")], None),
        ];
        for (chunks, want) in rows {
            let mut text = Vec::new();
            let mut watch = HaltWatch::default();
            let mut got = None;
            for c in &chunks {
                text.extend_from_slice(c.as_bytes());
                got = got.or(watch.update(&text));
            }
            assert_eq!(got, want, "{chunks:?}");
        }
    }
}
