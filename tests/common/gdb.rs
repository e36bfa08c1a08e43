//! Helpers for the tests that run `splitmap run --gdb` beside `splitmap gdb`.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use super::{Run, splitmap};

/// A TCP port nothing listens on right now, and no other call in this
/// process returned: below Linux's ephemeral ports (32768 and up, where
/// `bind` to port 0 and every outgoing connection, gdb's own among them,
/// take theirs), so no client socket can hold it by the time QEMU binds it.
/// Test binaries run one at a time; the tests in one run in parallel, each
/// with a port of its own.
///
/// Looked up in the socket table, never tried with a bind: a test's
/// listening socket, however briefly held, is copied into any child another
/// test forks in that moment, and stays open there until the child execs.
/// It then listens in the test's name: the wait below would take it for
/// QEMU, and QEMU itself could not bind the port.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 1000) as u16 * 10;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 2_000;
        if !splitmap::qemu::listening(port) {
            return port;
        }
    }
}

/// Waits until QEMU listens on `port`; `run` is the process that starts it,
/// whose early end (a port taken after all, a QEMU that would not start) is
/// reported with its status and what it said.
pub fn wait_until_listening(port: u16, run: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !splitmap::qemu::listening(port) {
        if let Some(status) = run.try_wait().unwrap() {
            let mut said = String::new();
            if let Some(mut err) = run.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut said);
            }
            panic!("the run ended ({status}) before QEMU listened on {port}: {said}");
        }
        assert!(Instant::now() < deadline, "QEMU never listened on {port} in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `splitmap run --gdb` on `port` with `args`, once QEMU listens there.
/// Without a `--timeout` in `args` it gets one: waiting for a debugger,
/// `run` would otherwise wait for good on a gdb that failed to attach.
pub fn run_waiting_for_gdb(port: u16, args: &[&str]) -> std::process::Child {
    let limit: &[&str] = if args.contains(&"--timeout") {
        &[]
    } else {
        &["--timeout", "120"]
    };
    let mut run = Command::new(env!("CARGO_BIN_EXE_splitmap"))
        .args(["run", "--gdb", "--gdb-port", &port.to_string()])
        .args(limit)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(port, &mut run);
    run
}

/// `splitmap gdb --batch` on `port`, running each of `exs` (`--ex`).
pub fn gdb_batch(port: u16, exs: &[&str]) -> Run {
    gdb_batch_with(port, &[], exs)
}

/// [`gdb_batch`] with `--early`: the symbols at the physical address the
/// code runs at before the MMU is on.
pub fn early_gdb_batch(port: u16, exs: &[&str]) -> Run {
    gdb_batch_with(port, &["--early"], exs)
}

fn gdb_batch_with(port: u16, options: &[&str], exs: &[&str]) -> Run {
    let port = port.to_string();
    let mut args = vec!["gdb", "--gdb-port", &port, "--batch"];
    args.extend(options);
    for ex in exs {
        args.extend(["--ex", ex]);
    }
    splitmap(&args)
}

/// Waits for the `run --gdb` beside `gdb` to end; its console, once both
/// succeeded.
pub fn both_succeeded(run: std::process::Child, gdb: &Run) -> String {
    let out = run.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        gdb.success && out.status.success(),
        "gdb: {}\n{}\nrun: {console}\n{}",
        gdb.stdout,
        gdb.stderr,
        String::from_utf8_lossy(&out.stderr)
    );
    console
}
