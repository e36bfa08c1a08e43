//! gdb follows KASLR and modules: `splitmap run --gdb` waits, `splitmap gdb
//! --batch` attaches, and breakpoints on kernel and module functions hit at
//! the addresses this boot chose, with backtraces that name them.

mod common;
use common::*;

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn breakpoints_follow_kaslr_and_modules() {
    let port = free_port();
    // A seed of the test's own, different every run: nothing may depend on it.
    let seed = format!("{:#x}", (std::process::id() as u64) << 21 | 0x5);
    let port_arg = port.to_string();
    let run = Command::new(env!("CARGO_BIN_EXE_splitmap"))
        .args(["run", "--gdb", "--gdb-port", &port_arg, "--kaslr-seed", &seed])
        .args([
            "--cmd",
            "va2pa 0xffff000000001000",
            "--cmd",
            "insmod hello",
            "--cmd",
            "hello",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "QEMU never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let gdb = splitmap(&[
        "gdb",
        "--gdb-port",
        &port_arg,
        "--batch",
        "--ex",
        "sm-kaslr",
        "--ex",
        "break kernel::shell::explore::va2pa",
        "--ex",
        "continue",
        "--ex",
        "bt 1",
        "--ex",
        "sm-walk 0xffff000000001234",
        "--ex",
        "sm-layout",
        "--ex",
        "break init_module",
        "--ex",
        "continue",
        "--ex",
        "bt 2",
        "--ex",
        "detach",
    ]);
    let out = run.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(gdb.success, "gdb: {}\n{}", gdb.stdout, gdb.stderr);
    assert!(
        out.status.success(),
        "the run: {console}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // gdb learned this boot's offset, the one the kernel reports.
    let (_, text) = boot_line(&console);
    let offset = text - KIMAGE_VADDR;
    assert!(
        gdb.stdout.contains(&format!("offset={offset:#x} text={text:#x}")),
        "{}",
        gdb.stdout
    );
    // gdb's own walk of the live tables agrees with the kernel's va2pa.
    let va2pa = console
        .lines()
        .find(|l| l.starts_with("va=0xffff000000001000 "))
        .expect("va2pa ran");
    let pa = hex(va2pa.split_whitespace().nth(1).unwrap().strip_prefix("pa=").unwrap());
    assert!(
        gdb.stdout.contains(&format!("=> pa={:#x} level=1 size=1G", pa + 0x234)),
        "{}",
        gdb.stdout
    );
    assert!(
        gdb.stdout.contains(&format!("image    va={text:#x}-")),
        "{}",
        gdb.stdout
    );
    // The kernel breakpoint hit in the shell command, named.
    assert!(
        gdb.stdout.contains("#0  kernel::shell::explore::va2pa"),
        "{}",
        gdb.stdout
    );
    // The module's entry point, from symbols loaded where insmod put it,
    // called from the kernel's insmod.
    let frames: Vec<&str> = gdb.stdout.lines().filter(|l| l.starts_with('#')).collect();
    assert!(
        frames
            .iter()
            .any(|l| l.starts_with("#0") && l.contains(" in init_module ")),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|l| l.starts_with("#1") && l.contains("kernel::module::insmod")),
        "{frames:?}"
    );
    assert!(console.contains("hello from a module"), "{console}");
}
