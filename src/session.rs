//! Scripted sessions: boot, type lines at the prompt, collect everything the
//! kernel prints, and say how it ended. Works without a terminal (CI).

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The shell's prompt, at the start of a line.
pub const PROMPT: &str = "splitmap> ";
/// The first line the kernel prints when it panics.
pub const PANIC_MARKER: &str = "kernel panic:";
/// What the stage-0 loader prints before refusing a load address.
pub const STAGE0_ERROR: &str = "stage0: error:";
/// What the kernel prints before halting when it cannot power off.
pub const CANNOT_POWER_OFF: &str = "splitmap: power-off is unavailable";

/// How a scripted session ended.
#[derive(Debug)]
pub enum Outcome {
    /// The kernel powered off after the script: success.
    PoweredOff,
    /// The kernel panicked.
    Panic,
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
    /// No power-off within the time limit; QEMU was killed.
    Timeout(Duration),
    /// The kernel halted because it cannot power off; QEMU was stopped.
    CannotPowerOff,
    /// QEMU ended in another way.
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
            Outcome::LoaderRefused(why) => format!("the stage-0 loader refused: {why}"),
            Outcome::EndedEarly { typed, of } => {
                format!(
                    "the kernel powered off after {typed} of {of} script lines, before the rest was typed"
                )
            }
            Outcome::Timeout(t) => format!("timeout after {} s", t.as_secs()),
            Outcome::CannotPowerOff => {
                "the kernel halted: PSCI cannot power it off here, so QEMU was stopped (interactively, Ctrl-A X leaves QEMU)"
                    .into()
            }
            Outcome::QemuFailed(status) => format!("qemu exited with {status}"),
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
    /// new prompts. A prompt counts when it starts a line. Only the new bytes
    /// (and a possible partial prompt before them) are scanned.
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
    let mut child = qemu.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
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
    let mut bytes = Vec::new();
    // No deadline when the timeout is too long to add (`--timeout 0`).
    let deadline = Instant::now().checked_add(timeout);
    let mut halted_at = None;
    let timed_out = loop {
        let received = match deadline {
            Some(deadline) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(chunk) => {
                echo(&chunk);
                bytes.extend_from_slice(&chunk);
                // Halted for good once that line is complete: nothing more
                // will come. (Only the new bytes, and a marker's length
                // before them, need looking at.)
                if halted_at.is_none() {
                    let from = bytes.len().saturating_sub(chunk.len() + CANNOT_POWER_OFF.len());
                    halted_at = bytes[from..]
                        .windows(CANNOT_POWER_OFF.len())
                        .position(|w| w == CANNOT_POWER_OFF.as_bytes())
                        .map(|at| from + at);
                }
                if halted_at.is_some_and(|at| bytes[at..].contains(&b'\n')) {
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
    let status = if timed_out {
        let _ = child.kill();
        None
    } else {
        Some(child.wait()?)
    };
    drop(stdin);
    let _ = child.wait();
    let _ = reader.join();

    let output = String::from_utf8_lossy(&bytes).into_owned();
    let outcome = match judge(&output, status, timeout) {
        Outcome::PoweredOff if next < script.len() => Outcome::EndedEarly {
            typed: next,
            of: script.len(),
        },
        outcome => outcome,
    };
    Ok(Transcript { output, outcome })
}

/// Decides how a session ended from what it printed and QEMU's status
/// (`None` after a timeout).
pub fn judge(output: &str, status: Option<ExitStatus>, timeout: Duration) -> Outcome {
    let line_starting = |marker: &str| output.lines().find(|l| l.trim_start_matches('\r').starts_with(marker));
    if line_starting(PANIC_MARKER).is_some() {
        return Outcome::Panic;
    }
    if line_starting(CANNOT_POWER_OFF).is_some() {
        return Outcome::CannotPowerOff;
    }
    if let Some(line) = line_starting(STAGE0_ERROR) {
        return Outcome::LoaderRefused(line.trim_start_matches('\r')[STAGE0_ERROR.len()..].trim().to_string());
    }
    match status {
        None => Outcome::Timeout(timeout),
        Some(s) if s.success() => Outcome::PoweredOff,
        Some(s) => Outcome::QemuFailed(s),
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
    fn outcomes() {
        use std::os::unix::process::ExitStatusExt;
        let ok = Some(ExitStatus::from_raw(0));
        let t = Duration::from_secs(5);
        assert!(judge("splitmap> poweroff\n", ok, t).success());
        assert!(matches!(
            judge("x\nkernel panic: boom\nsplitmap: halted\n", ok, t),
            Outcome::Panic
        ));
        assert!(matches!(judge("hello", None, t), Outcome::Timeout(_)));
        assert!(matches!(
            judge("", Some(ExitStatus::from_raw(1 << 8)), t),
            Outcome::QemuFailed(_)
        ));
        match judge(
            "stage0: error: load address 0x1 is not 4 KiB-aligned\r\n",
            Some(ExitStatus::from_raw(1 << 8)),
            t,
        ) {
            Outcome::LoaderRefused(why) => assert_eq!(why, "load address 0x1 is not 4 KiB-aligned"),
            other => panic!("{other:?}"),
        }
    }
}
