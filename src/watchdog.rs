//! A time limit on a child process: a thread that signals it when the time
//! is up, unless told first that it has ended; and the waits that keep the
//! signal from reaching anyone else (the child stays unreaped until then).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Watches one child; [`Watchdog::stop`] before reaping it.
pub struct Watchdog {
    done: mpsc::Sender<()>,
    thread: JoinHandle<bool>,
}

impl Watchdog {
    /// Sends `signal` to process `pid` after `limit`, unless stopped first.
    /// `pid` must be a child of ours that stays unreaped until [`stop`]
    /// returns, so the signal cannot reach a process that reused the number.
    ///
    /// [`stop`]: Watchdog::stop
    pub fn start(pid: u32, limit: Duration, signal: libc::c_int) -> Watchdog {
        let (done, finished) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let fired = finished.recv_timeout(limit) == Err(RecvTimeoutError::Timeout);
            if fired {
                // SAFETY: a plain system call; the caller keeps `pid` its
                // unreaped child until this thread is joined in `stop`.
                unsafe { libc::kill(pid as libc::pid_t, signal) };
            }
            fired
        });
        Watchdog { done, thread }
    }

    /// Stands the watchdog down: whether it had already signalled.
    pub fn stop(self) -> bool {
        let _ = self.done.send(());
        self.thread.join().unwrap_or(false)
    }
}

/// Blocks until child `pid` has exited, without reaping it (so a
/// [`Watchdog`] on it can still be stopped safely).
///
/// # Errors
/// The system call's.
pub fn wait_for_exit(pid: u32) -> std::io::Result<()> {
    // SAFETY: an all-zero siginfo_t is a valid one, for the call to fill in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: a plain system call, given a valid pointer.
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reaps child `pid`, which has exited (see [`wait_for_exit`]): its exit
/// status and the CPU time it used, (user, system).
///
/// # Errors
/// The system call's.
pub fn reap_with_cpu_time(pid: u32) -> std::io::Result<(std::process::ExitStatus, (Duration, Duration))> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid one, for the call to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: a plain system call, given valid pointers.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r != -1 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let time = |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    Ok((
        std::process::ExitStatus::from_raw(status),
        (time(usage.ru_utime), time(usage.ru_stime)),
    ))
}
