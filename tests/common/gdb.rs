//! Helpers for the tests that run `splitmap run --gdb` beside `splitmap gdb`.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Run, splitmap};

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until QEMU listens on `port`.
pub fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !splitmap::qemu::listening(port) {
        assert!(Instant::now() < deadline, "QEMU never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `splitmap run --gdb` on `port` with `args`, once QEMU listens there.
pub fn run_waiting_for_gdb(port: u16, args: &[&str]) -> std::process::Child {
    let run = Command::new(env!("CARGO_BIN_EXE_splitmap"))
        .args(["run", "--gdb", "--gdb-port", &port.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(port);
    run
}

/// `splitmap gdb --batch` on `port`, running each of `exs` (`--ex`).
pub fn gdb_batch(port: u16, exs: &[&str]) -> Run {
    let port = port.to_string();
    let mut args = vec!["gdb", "--gdb-port", &port, "--batch"];
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
        "gdb: {}\n{}\nrun: {console}",
        gdb.stdout,
        gdb.stderr
    );
    console
}
