//! The host tool keeps its word: QEMU never outlives it, nor leaves the
//! terminal raw when it goes with the tool; the end of piped input ends the
//! session; a panic is a failure however the session was run; and options it
//! cannot honour are refused before QEMU starts.

mod common;
use common::*;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The direct children of process `pid`, from every thread's list.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    // A zombie has exited: only its exit status is left for the parent.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn qemu_dies_with_the_tool_even_on_sigkill() {
    // `-S`: QEMU starts paused, so the session can only end by a kill.
    let mut tool = Command::new(env!("CARGO_BIN_EXE_splitmap"))
        .args(["run", "--timeout", "0", "--qemu-arg=-S", "--cmd", "help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut qemu = vec![];
    wait_until("QEMU to start", || {
        qemu = children(tool.id());
        !qemu.is_empty()
    });
    tool.kill().unwrap(); // SIGKILL: no handler of ours runs
    tool.wait().unwrap();
    wait_until("QEMU to die with the tool", || qemu.iter().all(|&pid| !alive(pid)));
}

/// The tool on a fresh terminal, as a person at a keyboard runs it: the
/// tool, the terminal (to look at its modes), and everything written to it,
/// as it comes.
struct OnTerminal {
    tool: std::process::Child,
    terminal: std::os::fd::OwnedFd,
    printed: std::sync::mpsc::Receiver<String>,
}

impl OnTerminal {
    fn start(args: &[&str]) -> OnTerminal {
        use std::os::fd::{FromRawFd, OwnedFd};
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty fills in two descriptors, which are owned from here on.
        let (master, slave) = unsafe {
            let made = libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            );
            assert_eq!(made, 0, "openpty: {}", std::io::Error::last_os_error());
            (std::fs::File::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
        };
        let tool = Command::new(env!("CARGO_BIN_EXE_splitmap"))
            .args(args)
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap())
            .spawn()
            .unwrap();
        let (tx, printed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut master = master;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = master.read(&mut buf) {
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        OnTerminal {
            tool,
            terminal: slave,
            printed,
        }
    }

    /// Everything printed until `text` appears in it.
    fn until(&self, text: &str) -> String {
        let mut out = String::new();
        while !out.contains(text) {
            match self.printed.recv_timeout(Duration::from_secs(60)) {
                Ok(more) => out += &more,
                Err(_) => panic!("no {text:?} in:\n{out}"),
            }
        }
        out
    }

    /// Whether the terminal echoes what is typed (QEMU turns that off).
    fn echoes(&self) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: an all-zero termios is a valid one, for tcgetattr to fill in.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a plain system call on an open descriptor and a valid pointer.
        assert_eq!(unsafe { libc::tcgetattr(self.terminal.as_raw_fd(), &mut t) }, 0);
        t.c_lflag & libc::ECHO != 0
    }
}

#[test]
fn a_killed_tool_gives_the_terminal_back() {
    let mut run = OnTerminal::start(&["run", "--nokaslr"]);
    run.until("splitmap> ");
    assert!(!run.echoes(), "QEMU sets the terminal raw for -nographic");
    let qemu = children(run.tool.id());
    // SAFETY: a plain system call, to our child.
    unsafe { libc::kill(run.tool.id() as libc::pid_t, libc::SIGTERM) };
    run.tool.wait().unwrap();
    wait_until("QEMU to end with the tool", || qemu.iter().all(|&pid| !alive(pid)));
    assert!(run.echoes(), "the terminal is left raw");
}

#[test]
fn a_timeout_ends_an_interactive_run_and_gives_the_terminal_back() {
    let mut run = OnTerminal::start(&["run", "--nokaslr", "--timeout", "2"]);
    run.until("splitmap> ");
    run.until("splitmap: timeout after 2 s");
    assert_eq!(run.tool.wait().unwrap().code(), Some(1));
    assert!(run.echoes(), "the terminal is left raw");
}

/// `splitmap run` with its input, output and errors piped, as a program
/// drives it.
fn run_with_piped_input() -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_splitmap"))
        .args(["run", "--nokaslr"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn piped_input_is_typed_and_its_end_powers_off() {
    let mut tool = run_with_piped_input();
    tool.stdin.take().unwrap().write_all(b"help\nmem\n").unwrap();
    let out = tool.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("commands:") && stdout.contains("ram      pa="),
        "{stdout}"
    );
    assert!(stdout.contains("splitmap: powering off"), "{stdout}");
}

#[test]
fn input_that_stays_open_is_waited_for_out_loud() {
    use std::io::BufRead;
    let mut tool = run_with_piped_input();
    let mut stdin = tool.stdin.take().unwrap();
    let mut stderr = std::io::BufReader::new(tool.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("waiting for standard input to end"), "{line}");
    stdin.write_all(b"mem\n").unwrap();
    drop(stdin);
    let out = tool.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("ram      pa="), "{stdout}");
}

#[test]
fn a_panic_in_a_terminal_session_fails_the_run() {
    // `script` gives the tool a terminal, as a person at a keyboard has.
    let tool = env!("CARGO_BIN_EXE_splitmap");
    let mut script = Command::new("script")
        .args(["-qec", &format!("{tool} run --nokaslr"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    script.stdin.take().unwrap().write_all(b"crash null\r").unwrap();
    let out = script.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kernel panic:"), "{stdout}");
    assert!(!out.status.success(), "a panic must fail the run:\n{stdout}");
}

#[test]
fn a_zero_timeout_means_none() {
    let run = splitmap(&["run", "--nokaslr", "--timeout", "0", "--cmd", "help"]);
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("commands:"));
    // The same for `map`, which boots through the same options.
    let md = std::env::temp_dir().join(format!("splitmap-timeout-{}.md", std::process::id()));
    let map = splitmap(&["map", "--nokaslr", "--timeout", "0", "-o", md.to_str().unwrap()]);
    let _ = std::fs::remove_file(&md);
    assert!(map.success, "{}{}", map.stdout, map.stderr);
}

#[test]
fn a_bare_memory_size_is_mib_as_in_qemu() {
    let out = session(&["--nokaslr", "--mem", "1024"], &["mem"]);
    assert!(out.contains("size=1024 MiB"), "{out}");
}

#[test]
fn options_that_cannot_be_honoured_are_refused_before_qemu_starts() {
    let after = splitmap(&["run", "--cmd", "poweroff", "--cmd", "layout"]);
    assert!(!after.success);
    assert!(
        after.stderr.contains("'layout' comes after poweroff"),
        "{}",
        after.stderr
    );
    assert!(after.stdout.is_empty(), "QEMU must not start:\n{}", after.stdout);

    let dtb = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("host-tool.dtb");
    std::fs::write(&dtb, [0u8; 64]).unwrap();
    let dtb = dtb.display().to_string();
    for extra in [
        &["--append", "loglevel=debug"][..],
        &["--nokaslr"],
        &["--kaslr-seed", "0x5"],
    ] {
        let mut args = vec!["run", "--raw-dtb", &dtb, "--cmd", "help"];
        args.extend_from_slice(extra);
        let run = splitmap(&args);
        assert!(!run.success, "{extra:?}");
        assert!(
            run.stderr.contains(extra[0]) && run.stderr.contains("would be ignored"),
            "{extra:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "QEMU must not start:\n{}", run.stdout);
    }

    // `map` boots as `run` does, with the same refusals, and types its own
    // lines after the user's.
    let md = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("host-tool.md");
    let md = md.display().to_string();
    let map = splitmap(&["map", "-o", &md, "--raw-dtb", &dtb, "--nokaslr"]);
    assert!(
        !map.success && map.stderr.contains("--nokaslr would be ignored"),
        "{}",
        map.stderr
    );
    let map = splitmap(&["map", "-o", &md, "--cmd", "poweroff"]);
    assert!(!map.success && map.stderr.contains("--cmd poweroff"), "{}", map.stderr);

    // QEMU would pick a port of its own, and nothing could attach to it.
    for args in [&["run", "--gdb", "--gdb-port", "0"][..], &["gdb", "--gdb-port", "0"]] {
        let zero = splitmap(args);
        assert!(
            !zero.success && zero.stderr.contains("invalid value '0' for '--gdb-port"),
            "{args:?}: {}",
            zero.stderr
        );
    }

    // An output nowhere to be written is refused before the work for it.
    let nowhere = "/nonexistent/splitmap/out";
    let modules = env!("CARGO_TARGET_TMPDIR");
    for args in [
        &["map", "-o", &format!("{nowhere}.svg")][..],
        &["sweep", "--boots", "1", "--svg", &format!("{nowhere}.svg")],
        &["bench", "--only", "linear", "-o", &format!("{nowhere}.md")],
        &["initrd", modules, "-o", &format!("{nowhere}.cpio")],
    ] {
        let run = splitmap(args);
        assert!(
            !run.success && run.stderr.contains("cannot write there"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: nothing done:\n{}", run.stdout);
    }

    // A sweep of no boots, or a histogram of one bin, has nothing to test;
    // with no boots running at once it would never end.
    for (option, value) in [("--boots", "0"), ("--bins", "1"), ("--jobs", "0")] {
        let sweep = splitmap(&["sweep", option, value]);
        assert!(!sweep.success && sweep.stderr.contains(option), "{}", sweep.stderr);
    }
}

#[test]
fn gdb_with_no_kernel_waiting_says_so_at_once() {
    // A port nothing listens on: bound and released.
    let port = common::gdb::free_port().to_string();
    let started = Instant::now();
    let gdb = splitmap(&["gdb", "--batch", "--gdb-port", &port]);
    assert!(!gdb.success);
    assert!(
        gdb.stderr.contains(&format!("nothing listens on 127.0.0.1:{port}"))
            && gdb.stderr.contains(&format!("run --gdb --gdb-port {port}")),
        "{}",
        gdb.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "gdb must not retry for long"
    );
}

/// Exit status 2, for every command line that cannot be read or is refused,
/// before anything runs: as clap's own errors, not 1 as a failed boot.
#[test]
fn a_command_line_that_cannot_be_read_or_is_refused_exits_2() {
    let dtb = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exit-2.dtb");
    std::fs::write(&dtb, [0u8; 64]).unwrap();
    let dtb = dtb.display().to_string();
    let cases: [(&[&str], &str); 15] = [
        (&["run", "--mem", "3X"], "size '3X'"),
        (&["run", "--granule", "8k"], "say 4k, 16k or 64k"),
        (&["gdb", "--granule", "8k"], "say 4k, 16k or 64k"),
        (&["run", "--kaslr-seed", "xyz"], "seed 'xyz'"),
        (&["run", "--load-addr", "here"], "load address 'here'"),
        (&["map", "-o", "out.png"], "say FILE.svg, FILE.html or FILE.md"),
        (&["sweep", "--align", "3K"], "expected 4K, 64K or 2M"),
        (&["sweep", "--window", "low-high"], "expected 0xSTART-0xEND"),
        // Read, but refused as the kernel would refuse the window.
        (
            &["sweep", "--window", "0xffff900000000000-0xffff900000001000"],
            "kaslr.window",
        ),
        (
            &["sweep", "--granule", "64k", "--align", "4K"],
            "finer than the 64K kernel's pages",
        ),
        (&["run", "--nokaslr", "--kaslr-seed", "0x5"], "give one or the other"),
        (
            &["map", "-o", "x.svg", "--nokaslr", "--kaslr-seed", "5"],
            "give one or the other",
        ),
        (&["run", "--cmd", "poweroff", "--cmd", "mem"], "comes after poweroff"),
        (&["run", "--raw-dtb", &dtb, "--nokaslr"], "would be ignored"),
        (&["map", "-o", "x.svg", "--icount"], "map does not take --icount"),
    ];
    for (args, why) in cases {
        let run = splitmap(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(why), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: nothing runs:\n{}", run.stdout);
    }
    // `map --help` lists the options map uses, not run's others.
    let help = splitmap(&["map", "--help"]).stdout;
    for option in ["--gdb", "--icount", "--verbose"] {
        let listed = help.lines().any(|l| l.trim_start().starts_with(option));
        assert!(!listed, "{option} in map --help:\n{help}");
    }
    assert!(help.contains("--kaslr-seed") && help.contains("--cmd"), "{help}");
}

/// Output sent to a file or a pipe ends its lines with `\n`, as text files
/// do, not with the `\r\n` the kernel sends a terminal.
#[test]
fn redirected_output_has_no_carriage_returns() {
    let out = Command::new(env!("CARGO_BIN_EXE_splitmap"))
        .args(["run", "--cmd", "mem"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\nsplitmap> mem\n"), "{text}");
    assert!(!out.stdout.contains(&b'\r'), "{text:?}");
}

/// Runs `splitmap ARGS`, killing it if it takes more than 30 seconds (a
/// file it should have refused may hang it): (exit code, stdout, stderr).
fn bounded(args: &[&str]) -> (Option<i32>, String, String) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_splitmap"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run splitmap");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status.code(), out, err)
}

/// A file named on the command line that is no regular file (a FIFO, a
/// device, a symlink to one) or is too big is refused, by name, with exit
/// status 2, before it is opened: it would hang the tool or QEMU, or fill
/// their memory. And so is a CPU that cannot run an arm64 kernel.
#[test]
fn unreadable_files_and_32_bit_cpus_are_refused_by_name() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("refused-files");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let fifo = fifo.display().to_string();
    let link = dir.join("zero.dtb");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let link = link.display().to_string();
    let big = dir.join("big.dtb");
    std::fs::write(&big, vec![0u8; (2 << 20) + 1]).unwrap();
    let big = big.display().to_string();
    // The size of QEMU's own `dumpdtb=` tree: QEMU's -dtb would hand it on
    // doubled, past 2 MiB, and the kernel would stop (found by the campaign).
    let dumped = dir.join("dumped.dtb");
    std::fs::write(&dumped, vec![0u8; 1 << 20]).unwrap();
    let dumped = dumped.display().to_string();
    let svg = dir.join("x.svg").display().to_string();
    let cases: [(&[&str], String); 11] = [
        (
            &["map", "-o", &svg, "--from", &fifo],
            format!("--from {fifo}: is a FIFO"),
        ),
        (
            &["map", "-o", &svg, "--from", "/dev/zero"],
            "--from /dev/zero: is a device".into(),
        ),
        (
            &["map", "-o", &svg, "--from", &link],
            format!("--from {link}: is a device"),
        ),
        (
            &["run", "--dtb", &fifo, "--timeout", "20"],
            format!("--dtb {fifo}: is a FIFO"),
        ),
        (
            &["run", "--dtb", &link, "--timeout", "20"],
            format!("--dtb {link}: is a device"),
        ),
        (
            &["run", "--dtb", &big, "--timeout", "20"],
            "caps a device tree at 2 MiB".into(),
        ),
        (
            &["run", "--dtb", &dumped, "--timeout", "20"],
            format!("--dtb {dumped}: 1048576 bytes; QEMU grows a tree it is given to twice its size"),
        ),
        (
            &["run", "--raw-dtb", &fifo, "--timeout", "20"],
            format!("--raw-dtb {fifo}: is a FIFO"),
        ),
        (
            &["run", "--initrd", &fifo, "--timeout", "20"],
            format!("--initrd {fifo}: is a FIFO"),
        ),
        (
            &["run", "--cpu", "cortex-a15", "--timeout", "20", "--cmd", "help"],
            "--cpu cortex-a15: a 32-bit CPU, without AArch64".into(),
        ),
        (
            &["map", "-o", &svg, "--cpu", "cortex-m3", "--timeout", "20"],
            "--cpu cortex-m3: a 32-bit CPU".into(),
        ),
    ];
    for (args, why) in cases {
        let (code, out, err) = bounded(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(&why), "{args:?}: want {why:?} in {err}");
        assert!(out.is_empty(), "{args:?}: nothing runs:\n{out}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--accel kvm|hvf` is refused by name, with exit status 2 and before QEMU
/// starts, where the host has no such hypervisor, and with the options only
/// TCG can honour (on any host: those are checked first).
#[test]
fn a_hypervisor_this_host_or_the_options_rule_out_is_refused_by_name() {
    let host_kvm = std::env::consts::ARCH == "aarch64"
        && std::env::consts::OS == "linux"
        && std::path::Path::new("/dev/kvm").exists();
    let host_hvf = std::env::consts::ARCH == "aarch64" && std::env::consts::OS == "macos";
    let mut cases: Vec<(&[&str], &str)> = vec![
        (
            &["run", "--accel", "kvm", "--load-addr", "0x41000000", "--cmd", "help"],
            "--accel kvm runs the kernel on the host's own cores, and --load-addr needs TCG",
        ),
        (
            &["run", "--accel", "hvf", "--icount", "--cmd", "help"],
            "--accel hvf runs the kernel on the host's own cores, and --icount needs TCG",
        ),
        (
            &["run", "--accel", "kvm", "--cpu", "cortex-a72", "--cmd", "help"],
            "--cpu cortex-a72 cannot be emulated there",
        ),
        (
            &["run", "--accel", "xen"],
            "invalid value 'xen' for '--accel <tcg|kvm|hvf>'",
        ),
    ];
    if !host_kvm {
        cases.push((
            &["run", "--accel", "kvm", "--cmd", "help"],
            "--accel kvm: needs an arm64 Linux host with /dev/kvm",
        ));
        cases.push((
            &["map", "-o", "target/never.svg", "--accel", "kvm"],
            "--accel kvm: needs an arm64 Linux host with /dev/kvm",
        ));
    }
    if !host_hvf {
        cases.push((
            &["run", "--accel", "hvf", "--cmd", "help"],
            "--accel hvf: needs macOS on an arm64 host (Apple silicon)",
        ));
    }
    for (args, why) in cases {
        let (code, out, err) = bounded(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: want {why:?} in {err}");
        assert!(out.is_empty(), "{args:?}: nothing runs:\n{out}");
    }
}

/// An output that is no file (a FIFO here; `-o /dev/null` is the same
/// case) is refused before any work, and stays what it was: writing a new
/// file and renaming it into place would have replaced the device.
#[test]
fn an_output_that_is_no_file_is_refused_and_left_alone() {
    use std::os::unix::fs::FileTypeExt;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("output-fifo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("out.cpio");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let modules = dir.join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    let run = splitmap(&[
        "initrd",
        &modules.display().to_string(),
        "-o",
        &fifo.display().to_string(),
    ]);
    assert!(!run.success, "{}", run.stderr);
    assert!(run.stderr.contains("is a FIFO, not a file"), "{}", run.stderr);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}
