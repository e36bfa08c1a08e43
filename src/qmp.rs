//! QEMU's control socket (QMP), the channel a session's verdict comes from.
//! The console carries text anyone can put there (a typed line's echo, a
//! module's log, the command line the tree holds); QEMU's `SHUTDOWN` event
//! carries what the guest asked of the machine: `guest-shutdown` (PSCI
//! SYSTEM_OFF, the kernel's `poweroff`) or `guest-reset` (PSCI
//! SYSTEM_RESET, which the kernel asks for after a panic; `-no-reboot` makes
//! QEMU exit instead of rebooting). Guest text cannot forge either.
//!
//! QEMU connects to a socket this tool listens on, in a directory of its
//! own, and starts paused (`-S`): the guest runs only once the tool has
//! negotiated and said `cont`, so no event can come before anyone listens
//! (QMP drops events while a client is still negotiating).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long QEMU may take to connect and negotiate: it connects while it
/// starts up, before the guest exists.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// How the guest ended the machine, as QEMU's `SHUTDOWN` event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// `guest-shutdown`: the guest powered off (PSCI SYSTEM_OFF).
    PoweredOff,
    /// `guest-reset` (with `-no-reboot`): the guest asked for a reset
    /// (PSCI SYSTEM_RESET), which the kernel does only after a panic.
    Reset,
    /// Any other reason (`host-signal`, `host-qmp-quit` for Ctrl-A X, …).
    Other(String),
}

/// The shutdown a line from QMP announces, if it is a `SHUTDOWN` event.
pub fn shutdown_of(line: &str) -> Option<Shutdown> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message.get("event")?.as_str()? != "SHUTDOWN" {
        return None;
    }
    let reason = message.get("data")?.get("reason")?.as_str()?;
    Some(match reason {
        "guest-shutdown" => Shutdown::PoweredOff,
        "guest-reset" => Shutdown::Reset,
        other => Shutdown::Other(other.to_string()),
    })
}

/// A socket for one QEMU to connect to, before QEMU starts.
pub struct Listener {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl Listener {
    /// A socket in a new directory only this user may enter.
    ///
    /// # Errors
    /// The file system's.
    pub fn new() -> std::io::Result<Listener> {
        use std::os::unix::fs::DirBuilderExt;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "splitmap-qmp-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let path = dir.join("qmp");
        let listener = UnixListener::bind(&path).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        listener.set_nonblocking(true)?;
        Ok(Listener { dir, path, listener })
    }

    /// Adds QEMU's options for it: start paused, and connect here.
    pub fn add_to(&self, command: &mut Command) {
        command
            .args(["-S", "-qmp"])
            .arg(format!("unix:{}", self.path.display()));
    }

    /// Waits for `qemu` (started with [`Listener::add_to`]'s options) to
    /// connect, negotiates, lets the guest run unless `resume` is false (a
    /// debugger will: the caller asked for `-S` itself), and listens for
    /// the shutdown from then on. `None` if QEMU exited without connecting
    /// (its status and stderr tell why).
    ///
    /// # Errors
    /// QEMU neither connected nor exited in time, or spoke no QMP.
    pub fn attach(self, qemu: &mut Child, resume: bool) -> std::io::Result<Option<Events>> {
        let deadline = Instant::now() + CONNECT_LIMIT;
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if qemu.try_wait()?.is_some() {
                return Ok(None);
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "QEMU did not connect to its control socket within {} s",
                    CONNECT_LIMIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(CONNECT_LIMIT))?;
        let mut to_qemu = stream.try_clone()?;
        let mut from_qemu = BufReader::new(stream);
        // The greeting, then capabilities: events flow from here on.
        let mut greeting = String::new();
        from_qemu.read_line(&mut greeting)?;
        // While QEMU is paused nothing can end it but this tool: the guest
        // has not run yet.
        let mut shutdown = None;
        to_qemu.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
        await_return(&mut from_qemu, &mut shutdown)?;
        from_qemu.get_ref().set_read_timeout(None)?;
        // `cont`'s answer is not awaited: once the guest runs, QEMU may be
        // gone before it is read (the stage-0 loader's refusal exits within
        // milliseconds). Whatever comes is read below, to the end.
        if resume {
            to_qemu.write_all(b"{\"execute\":\"cont\"}\n")?;
        }
        let thread = std::thread::spawn(move || {
            // Kept open until QEMU closes it, as it does when it exits.
            let _keep = to_qemu;
            for line in from_qemu.lines() {
                let Ok(line) = line else { break };
                if shutdown.is_none() {
                    shutdown = shutdown_of(&line);
                }
            }
            shutdown
        });
        Ok(Some(Events { thread }))
    }
}

/// Reads QMP lines up to a command's answer, noting a shutdown on the way
/// (none can come before the guest runs; the note costs nothing).
fn await_return(from_qemu: &mut BufReader<UnixStream>, shutdown: &mut Option<Shutdown>) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if from_qemu.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("QEMU closed its control socket while starting"));
        }
        let message: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if message.get("return").is_some() {
            return Ok(());
        }
        if let Some(error) = message.get("error") {
            return Err(std::io::Error::other(format!("QEMU's control socket refused: {error}")));
        }
        if shutdown.is_none() {
            *shutdown = shutdown_of(&line);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // QEMU is connected or gone: the socket's name is no longer needed.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The events of one connected QEMU.
pub struct Events {
    thread: JoinHandle<Option<Shutdown>>,
}

impl Events {
    /// The shutdown QEMU announced, once it has exited (or been killed):
    /// `None` if it announced none.
    pub fn finish(self) -> Option<Shutdown> {
        self.thread.join().ok().flatten()
    }
}

/// Starts `qemu` (its stdio already set up) with a control socket: QEMU,
/// and its events once the guest runs (`None` if QEMU exited before it
/// connected: its status and stderr say why).
///
/// # Errors
/// QEMU could not be started, or did not speak QMP; it is stopped then.
pub fn spawn(mut qemu: Command) -> std::io::Result<(Child, Option<Events>)> {
    let resume = !held_for_debugger(&qemu);
    let monitor = Listener::new()?;
    monitor.add_to(&mut qemu);
    let mut child = qemu.spawn()?;
    match monitor.attach(&mut child, resume) {
        Ok(events) => Ok((child, events)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Whether QEMU's arguments already hold it at the first instruction (`-S`,
/// for a debugger): then the debugger, not this tool, lets the guest run.
pub fn held_for_debugger(command: &Command) -> bool {
    command.get_args().any(|a| a == "-S")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_events_and_their_reasons() {
        let event = |reason: &str| {
            format!(
                r#"{{"timestamp": {{"seconds": 1, "microseconds": 2}}, "event": "SHUTDOWN", "data": {{"guest": true, "reason": "{reason}"}}}}"#
            )
        };
        assert_eq!(shutdown_of(&event("guest-shutdown")), Some(Shutdown::PoweredOff));
        assert_eq!(shutdown_of(&event("guest-reset")), Some(Shutdown::Reset));
        assert_eq!(
            shutdown_of(&event("host-qmp-quit")),
            Some(Shutdown::Other("host-qmp-quit".into()))
        );
        assert_eq!(shutdown_of(r#"{"timestamp": {}, "event": "RESUME"}"#), None);
        assert_eq!(shutdown_of(r#"{"return": {}}"#), None);
        assert_eq!(shutdown_of("kernel panic: guest-reset"), None);
    }
}
