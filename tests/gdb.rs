//! gdb follows KASLR and modules: `splitmap run --gdb` waits, `splitmap gdb
//! --batch` attaches, and breakpoints on kernel and module functions hit at
//! the addresses this boot chose, with backtraces that name them.

mod common;
use common::gdb::*;
use common::*;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The frames of the backtrace gdb printed from a stop in `function`.
fn backtrace<'a>(gdb_out: &'a str, function: &str) -> Vec<&'a str> {
    let first = format!("#0  {function}");
    gdb_out
        .lines()
        .skip_while(|l| !l.starts_with(&first))
        .take_while(|l| l.starts_with('#'))
        .collect()
}

#[test]
fn breakpoints_follow_kaslr_and_modules() {
    let port = free_port();
    // A seed of the test's own, different every run: nothing may depend on it.
    let seed = format!("{:#x}", (std::process::id() as u64) << 21 | 0x5);
    let run = run_waiting_for_gdb(
        port,
        &[
            "--kaslr-seed",
            &seed,
            "--cmd",
            "va2pa 0xffff000000001000",
            "--cmd",
            "insmod hello",
            "--cmd",
            "hello",
        ],
    );
    let gdb = gdb_batch(
        port,
        &[
            "sm-kaslr",
            "break kernel::mm::frames::init_frames",
            "continue",
            "bt",
            "break kernel::shell::explore::va2pa",
            "continue",
            "bt",
            "sm-walk 0xffff000000001234",
            "sm-layout",
            "break init_module",
            "continue",
            "bt",
            "detach",
        ],
    );
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
    // The backtrace goes on to the shell loop, and ends on the first frame
    // of the kernel stack, without a complaint about the stack.
    let shell_frames = backtrace(&gdb.stdout, "kernel::shell::explore::va2pa");
    assert!(
        shell_frames.iter().any(|l| l.contains("kernel::shell::commands::run")),
        "{shell_frames:?}"
    );
    assert!(
        shell_frames
            .last()
            .is_some_and(|l| l.contains(" splitmap_first_frame ")),
        "{shell_frames:?}"
    );
    assert!(!gdb.stdout.contains("corrupt stack"), "{}", gdb.stdout);
    // So does one during boot, at the address KASLR moved the image to.
    let boot_frames = backtrace(&gdb.stdout, "kernel::mm::frames::init_frames");
    assert!(
        boot_frames.len() >= 2 && boot_frames.last().is_some_and(|l| l.contains(" splitmap_first_frame ")),
        "{}",
        gdb.stdout
    );
    // The module's entry point, from symbols loaded where insmod put it,
    // called from the kernel's insmod through the recovery point every call
    // into a module starts from (an assembly routine, with call-frame
    // information for gdb).
    // With the module's debug info (NAME.ko.debug) the stop is past the
    // prologue, where a function of the module API may be inlined: then
    // frame #0 is that function, and #1 `hello::init_module`, with its line.
    let lines: Vec<&str> = gdb.stdout.lines().collect();
    let frames: Vec<&str> = lines
        .split(|l| !l.starts_with('#'))
        .find(|bt| bt.iter().any(|l| l.contains("init_module (")))
        .unwrap_or_default()
        .to_vec();
    let entry = frames
        .iter()
        .position(|l| l.contains("hello::init_module () at modules/hello/src/lib.rs:"));
    let point = frames.iter().position(|l| l.contains(" splitmap_contained_call "));
    let insmod = frames.iter().position(|l| l.contains("kernel::module::insmod"));
    assert!(
        entry.is_some_and(|e| e <= 1) && entry < point && point < insmod,
        "{frames:?}"
    );
    assert!(console.contains("hello from a module"), "{console}");
}

/// Before the MMU is on, the code runs at the physical address the loader
/// chose: `gdb --early` puts the symbols there, found by itself when QEMU
/// loaded the image, or given when a loader copies it later. Then, until
/// KASLR moves it, at its link address: `sm-link`.
#[test]
fn early_code_breaks_at_its_physical_address_then_at_its_link_address() {
    let image_size = image_size();
    let seed = format!("{:#x}", (std::process::id() as u64) << 21 | 0x7);
    for (load, at) in [(None, 0x4020_0000u64), (Some("0x41234000"), 0x4123_4000)] {
        let port = free_port();
        let mut options = vec!["--kaslr-seed", &seed, "--cmd", "kaslr"];
        options.extend(load.map(|pa| ["--load-addr", pa]).into_iter().flatten());
        let run = run_waiting_for_gdb(port, &options);
        let given = format!("sm-early {at:#x}");
        let mut exs = vec![];
        if load.is_some() {
            exs.push(given.as_str());
        }
        exs.extend([
            "break pi::boot::create_boot_tables",
            "continue",
            "bt 1",
            "p/x $pc",
            "sm-link",
            "break kernel::kaslr::decide::decide",
            "continue",
            "bt",
            "sm-boot",
            "sm-kaslr",
            "detach",
        ]);
        let gdb = early_gdb_batch(port, &exs);
        let console = both_succeeded(run, &gdb);
        let pc = gdb
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("$1 = "))
            .map(hex)
            .unwrap_or_else(|| panic!("{}", gdb.stdout));
        assert!(
            (at..at + image_size).contains(&pc),
            "pc {pc:#x} in the image at {at:#x}: {}",
            gdb.stdout
        );
        assert!(
            gdb.stdout.contains(&format!("splitmap: early symbols at pa={at:#x}")),
            "{}",
            gdb.stdout
        );
        assert!(
            gdb.stdout.contains("#0  pi::boot::create_boot_tables"),
            "{}",
            gdb.stdout
        );
        if load.is_some() {
            assert!(
                gdb.stderr.contains("the kernel image is not in memory yet"),
                "stage-0 copies the image after the first instruction: {}",
                gdb.stderr
            );
        }
        // With the MMU on and before the move, at the link address: KASLR's
        // choice, called from the early code's entry into Rust.
        let decide = backtrace(&gdb.stdout, "kernel::kaslr::decide::decide");
        assert!(
            decide.iter().any(|l| l.contains("::splitmap_kernel_main "))
                && decide.last().is_some_and(|l| l.contains(" splitmap_first_frame ")),
            "{}",
            gdb.stdout
        );
        // And sm-boot then follows the kernel to where KASLR put it.
        let (_, text) = boot_line(&console);
        assert!(
            gdb.stdout.contains(&format!("text={text:#x} image_pa={at:#x}")),
            "{}",
            gdb.stdout
        );
    }
}

/// The code that runs with the MMU off stays in the top of the boot stack
/// that `__pi_primary_entry` cleans and invalidates (`__early_stack_start`
/// on, kernel/linker.ld.in): a watchpoint on the whole stack below it
/// (from `__boot_stack_start` up to it) does not fire before
/// `__pi_enable_mmu`. TCG has no caches, so a store there would
/// corrupt nothing under QEMU; on hardware an eviction of a dirty line could
/// overwrite it. Only this sees it.
#[test]
fn the_mmu_off_code_stays_in_the_cleaned_top_of_the_boot_stack() {
    let port = free_port();
    let run = run_waiting_for_gdb(port, &["--nokaslr", "--cmd", "poweroff"]);
    // The sizes as the linker script sets them (`N;` or `NK;`), in bytes.
    let script = std::fs::read_to_string("kernel/linker.ld.in").unwrap();
    let size = |name: &str| -> u64 {
        let line = script.lines().find(|l| l.starts_with(&format!("{name} = "))).unwrap();
        let value = line[name.len() + 3..].trim_end_matches(';');
        match value.strip_suffix('K') {
            Some(kib) => kib.parse::<u64>().unwrap() * 1024,
            None => value.parse().unwrap(),
        }
    };
    let below = size("BOOT_STACK_SIZE") - size("EARLY_STACK_SIZE");
    let watch = format!("watch -l *(char(*)[{below}])&__boot_stack_start");
    let gdb = early_gdb_batch(port, &[&watch, "break __pi_enable_mmu", "continue", "detach"]);
    both_succeeded(run, &gdb);
    // A watchpoint that fires stops with its old and new values instead.
    assert!(
        gdb.stdout.contains("Breakpoint 2, ") && !gdb.stdout.contains("Old value"),
        "the MMU-off code wrote below __early_stack_start:\n{}",
        gdb.stdout
    );
}

/// gdb's own walk and layout read the granule from the live TCR_EL1: in a
/// 64 KiB kernel they agree with the kernel's `walk`, level by level.
#[test]
fn the_walk_in_gdb_follows_the_granule() {
    // Built first, so that building the 64K kernel (on first use, minutes
    // on a slow machine) does not count against QEMU's time to listen.
    let built = splitmap(&["build", "--granule", "64k"]);
    assert!(built.success, "{}", built.stderr);
    let port = free_port();
    let vas = ["0xffff000000001234", "0xffff800080001000", "0xfffffffffe400000"];
    let mut options = vec!["--granule", "64k", "--nokaslr"];
    let walks: Vec<String> = vas.iter().map(|va| format!("walk {va}")).collect();
    for walk in &walks {
        options.extend(["--cmd", walk]);
    }
    let run = run_waiting_for_gdb(port, &options);
    let port = port.to_string();
    let sm_walks: Vec<String> = vas.iter().map(|va| format!("sm-walk {va}")).collect();
    let mut args = vec!["gdb", "--granule", "64k", "--gdb-port", &port, "--batch"];
    for ex in sm_walks.iter().map(String::as_str).chain(["sm-layout", "detach"]) {
        args.extend(["--ex", ex]);
    }
    let gdb = splitmap(&args);
    let out = run.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(gdb.success, "gdb: {}\n{}", gdb.stdout, gdb.stderr);
    // The kernel's lines end `=> pa=… level=N size=… prot=…`; gdb's stop
    // before `prot` (it does not decode permissions).
    let kernel: Vec<&str> = console.lines().filter(|l| l.starts_with("=> ")).collect();
    let ours: Vec<&str> = gdb.stdout.lines().filter(|l| l.starts_with("=> ")).collect();
    assert_eq!(kernel.len(), vas.len(), "{console}");
    assert_eq!(ours.len(), vas.len(), "{}", gdb.stdout);
    for (k, g) in kernel.iter().zip(&ours) {
        assert!(k.starts_with(&format!("{g} ")), "kernel {k:?} vs gdb {g:?}");
    }
    assert!(ours[0].ends_with("level=2 size=512M"), "{ours:?}");
    assert!(
        gdb.stdout.contains("debug    va=0xfffffffffe400000-0xfffffffffe410000"),
        "{}",
        gdb.stdout
    );
}

/// Seen from outside, by gdb through QEMU's gdbstub: the exception vector's
/// common code runs with SP 16-byte aligned (the vector index is in x1) for
/// a fault from the shell (`peek 0`), one in a module (`faulty null`), and
/// one taken on the handler's own stack, at EL1h (the in-kernel test's
/// probe). Under TCG nothing else would notice a misaligned SP.
#[test]
fn exception_entry_keeps_sp_aligned_seen_from_gdb() {
    let port = free_port();
    let run = run_waiting_for_gdb(
        port,
        &[
            "--nokaslr",
            "--cmd",
            "peek 0",
            "--cmd",
            "insmod faulty",
            "--cmd",
            "faulty null",
            "--cmd",
            "test exception_entry_keeps_sp_aligned",
        ],
    );
    let gdb = gdb_batch(
        port,
        &[
            r#"dprintf __exception_common,"entry sp=%#lx vector=%lu\n",$sp,$x1"#,
            "continue",
        ],
    );
    let out = run.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "the run: {console}");
    assert!(console.contains("module faulty faulted: "), "{console}");
    let entries: Vec<(u64, u64)> = gdb
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("entry sp="))
        .map(|l| {
            let (sp, vector) = l.split_once(" vector=").unwrap();
            (hex(sp), vector.trim().parse().unwrap())
        })
        .collect();
    // peek 0, faulty null, and the test's two probes (EL1t, then EL1h).
    let from_el1t = entries.iter().filter(|(_, v)| *v == 0).count();
    let from_el1h = entries.iter().filter(|(_, v)| *v == 4).count();
    assert!(from_el1t >= 3 && from_el1h >= 1, "{entries:x?}\n{}", gdb.stdout);
    for (sp, vector) in &entries {
        assert_eq!(sp % 16, 0, "vector {vector} entered with sp={sp:#x}");
    }
}

/// A module's functions by their Rust path, with source lines: gdb reads
/// the module's symbols from `NAME.ko.debug`, the copy with debug info the
/// build writes beside the `NAME.ko` it puts, stripped, in the initrd.
#[test]
fn module_functions_by_their_rust_path_with_source_lines() {
    let port = free_port();
    let run = run_waiting_for_gdb(port, &["--nokaslr", "--cmd", "insmod hello", "--cmd", "hello"]);
    let gdb = gdb_batch(
        port,
        &["break hello::hello_command", "continue", "bt", "list", "detach"],
    );
    both_succeeded(run, &gdb);
    assert!(!gdb.stdout.contains("not defined"), "{}", gdb.stdout);
    let frames = backtrace(&gdb.stdout, "hello::hello_command");
    assert!(
        frames
            .first()
            .is_some_and(|f| f.contains(" at modules/hello/src/lib.rs:")),
        "{}",
        gdb.stdout
    );
    assert!(
        frames.iter().any(|f| f.contains("kernel::module::insmod::run_command")),
        "{frames:?}"
    );
    assert!(
        gdb.stdout.contains(r#"splitmap::log("hello from a module");"#),
        "`list` shows the module's source: {}",
        gdb.stdout
    );
    // The initrd's copy stays without debug info.
    let ko = module_file("hello");
    assert!(!ko.windows(11).any(|w| w == b".debug_info"), "hello.ko is stripped");
}

/// A child that is killed if the test ends before it does.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a reader thread has collected so far from a child's output.
fn collect(from: impl std::io::Read + Send + 'static) -> std::sync::Arc<std::sync::Mutex<String>> {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let into = text.clone();
    std::thread::spawn(move || {
        let mut from = std::io::BufReader::new(from);
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut from, &mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// Waits until `text` contains `want`; if it never does, fails showing
/// everything `seen` (the console and gdb's output side by side).
fn wait_for(text: &std::sync::Mutex<String>, want: &str, seen: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !text.lock().unwrap().contains(want) {
        assert!(Instant::now() < deadline, "no {want:?}: {}", seen());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// As in any gdb: `continue`, Ctrl-C, `bt`. The terminal sends SIGINT to
/// the whole foreground process group, the tool with gdb: the tool lets gdb
/// have it (gdb stops the kernel), and lives on. And gdb ends with the
/// tool, however the tool ends, letting the kernel go (the console answers).
#[test]
fn ctrl_c_stops_the_kernel_in_gdb_and_gdb_ends_with_the_tool() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let port = free_port();
    // Interactively, on a terminal of its own (`script`), the kernel waits
    // at its prompt for as long as it takes.
    let run_line = format!(
        "{} run --gdb --gdb-port {port} --nokaslr --timeout 120",
        env!("CARGO_BIN_EXE_splitmap")
    );
    let mut run = Reaped(
        Command::new("script")
            .args(["-qfec", &run_line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let console = collect(run.0.stdout.take().unwrap());
    wait_until_listening(port, &mut run.0);
    // In a process group of its own, as a shell puts a command.
    let mut tool = Reaped(
        Command::new(env!("CARGO_BIN_EXE_splitmap"))
            .args(["gdb", "--gdb-port", &port.to_string(), "-ex", "continue"])
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let gdb_out = collect(tool.0.stdout.take().unwrap());
    let gdb_err = collect(tool.0.stderr.take().unwrap());
    let seen = || {
        format!(
            "\n--- console\n{}\n--- gdb\n{}\n--- gdb's stderr\n{}",
            console.lock().unwrap(),
            gdb_out.lock().unwrap(),
            gdb_err.lock().unwrap()
        )
    };
    // On a terminal, the wait says how to leave it.
    wait_for(&console, "in another terminal; Ctrl-A X leaves QEMU", &seen);
    wait_for(&console, "splitmap> ", &seen);
    let group = tool.0.id() as libc::pid_t;
    // SAFETY: a plain system call; the group is the tool's, still running.
    assert_eq!(unsafe { libc::kill(-group, libc::SIGINT) }, 0);
    wait_for(&gdb_out, "SIGINT", &seen);
    let mut to_gdb = tool.0.stdin.take().unwrap();
    to_gdb.write_all(b"bt\n").unwrap();
    wait_for(&gdb_out, " splitmap_first_frame ", &seen);
    assert!(
        tool.0.try_wait().unwrap().is_none(),
        "the tool outlives Ctrl-C: {}{}",
        gdb_out.lock().unwrap(),
        gdb_err.lock().unwrap()
    );
    // The tool's one child is gdb.
    let children = std::fs::read_to_string(format!("/proc/{group}/task/{group}/children")).unwrap();
    let gdb_pid: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    tool.0.kill().unwrap();
    tool.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(format!("/proc/{gdb_pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(Instant::now() < deadline, "gdb outlived the tool");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The kernel runs again, and the console answers.
    let mut to_console = run.0.stdin.take().unwrap();
    to_console.write_all(b"poweroff\r").unwrap();
    wait_for(&console, "powering off", &seen);
    drop(to_console);
    let status = run.0.wait().unwrap();
    assert!(status.success(), "{}", console.lock().unwrap());
}

/// `run --gdb` says QEMU waits for gdb once it listens (gdb started on the
/// word attaches), and a port in use is refused in the tool's words, not
/// QEMU's.
#[test]
fn run_gdb_says_it_waits_once_qemu_listens_and_refuses_a_busy_port() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let refused = splitmap(&["run", "--gdb", "--gdb-port", &port.to_string(), "--cmd", "help"]);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains(&format!("port {port} is in use: pick another with --gdb-port")),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("qemu-system"), "{}", refused.stderr);
    drop(busy);

    let port = free_port();
    let mut run = Command::new(env!("CARGO_BIN_EXE_splitmap"))
        .args([
            "run",
            "--gdb",
            "--gdb-port",
            &port.to_string(),
            "--nokaslr",
            "--cmd",
            "help",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(run.stderr.take().unwrap()), &mut said).unwrap();
    assert!(said.contains(&format!("QEMU waits for gdb on port {port}")), "{said}");
    assert!(
        splitmap::qemu::listening(port),
        "QEMU listens by the time the tool says it waits"
    );
    let gdb = gdb_batch(port, &["detach"]);
    let out = run.wait_with_output().unwrap();
    assert!(gdb.success && out.status.success(), "{}{}", gdb.stdout, gdb.stderr);
}

/// `splitmap gdb --granule 64k` against a running 4 KiB kernel would load
/// another build's symbols without a word: it says which granule runs and
/// what to pass, detaches (the kernel runs on), and fails.
#[test]
fn gdb_with_another_granule_says_which_one_runs() {
    let built = splitmap(&["build", "--granule", "64k"]);
    assert!(built.success, "{}", built.stderr);
    let port = free_port();
    let run = run_waiting_for_gdb(port, &["--cmd", "help"]);
    let port = port.to_string();
    let gdb = splitmap(&["gdb", "--granule", "64k", "--gdb-port", &port, "--batch", "--ex", "bt"]);
    let out = run.wait_with_output().unwrap();
    assert!(!gdb.success, "gdb: {}\n{}", gdb.stdout, gdb.stderr);
    assert!(
        gdb.stderr.contains("the running kernel uses 4 KiB pages")
            && gdb.stderr.contains("run `splitmap gdb --granule 4k`"),
        "{}",
        gdb.stderr
    );
    assert!(
        out.status.success(),
        "the kernel runs on after gdb detached: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `splitmap gdb --early --granule 64k` against a 4 KiB kernel stopped at
/// its first instruction: the MMU is off, so TCR_EL1 says nothing yet; the
/// kernel Image's header in memory does (its flags name the page size). gdb
/// says which granule the kernel was built for and what to pass, detaches
/// (the kernel runs on), and fails, instead of looking for an image of the
/// other build's size and not finding one.
#[test]
fn gdb_early_with_another_granule_says_which_one_runs() {
    let built = splitmap(&["build", "--granule", "64k"]);
    assert!(built.success, "{}", built.stderr);
    let port = free_port();
    let run = run_waiting_for_gdb(port, &["--cmd", "help"]);
    let port = port.to_string();
    let gdb = splitmap(&[
        "gdb",
        "--early",
        "--granule",
        "64k",
        "--gdb-port",
        &port,
        "--batch",
        "--ex",
        "bt",
    ]);
    let out = run.wait_with_output().unwrap();
    assert!(!gdb.success, "gdb: {}\n{}", gdb.stdout, gdb.stderr);
    assert!(
        gdb.stderr.contains("the kernel in memory was built for 4 KiB pages")
            && gdb.stderr.contains("run `splitmap gdb --early --granule 4k`"),
        "{}",
        gdb.stderr
    );
    assert!(
        out.status.success(),
        "the kernel runs on after gdb detached: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Under UEFI (`run --uefi --gdb`) QEMU stops at the firmware's first
/// instruction; `splitmap gdb` runs through EDK2 and the EFI stub to the
/// kernel and finds it where the stub put it, physically and virtually.
#[test]
fn gdb_finds_the_kernel_the_efi_stub_placed() {
    if !std::path::Path::new(splitmap::efi_output::FIRMWARE).is_file() {
        eprintln!("skipped: no EDK2 firmware (scripts/setup.sh installs qemu-efi-aarch64)");
        return;
    }
    let port = free_port();
    let run = run_waiting_for_gdb(port, &["--uefi", "--cmd", "help"]);
    let gdb = gdb_batch(
        port,
        &[
            "sm-kaslr",
            "break kernel::mm::frames::init_frames",
            "continue",
            "bt",
            "detach",
        ],
    );
    let console = both_succeeded(run, &gdb);
    let (pa, text) = boot_line(&console);
    assert!(
        gdb.stdout.contains(&format!("text={text:#x} image_pa={pa:#x}")),
        "{}",
        gdb.stdout
    );
    assert!(
        console.contains(&format!("splitmap: efi placed the image at pa={pa:#x}")),
        "{console}"
    );
    assert!(gdb.stdout.contains("kernel::mm::frames::init_frames"), "{}", gdb.stdout);
}

/// `gdb --early` under UEFI: at the reset the firmware has not loaded the
/// image, so `sm-early` needs the address the stub will place it at, which
/// `efistub.seed=` replays; there the early code's breakpoints hit (the
/// stub enters it with the MMU off, so the PC is that physical address).
#[test]
fn gdb_early_stops_in_the_early_code_where_a_replayed_efi_seed_puts_it() {
    if !std::path::Path::new(splitmap::efi_output::FIRMWARE).is_file() {
        eprintln!("skipped: no EDK2 firmware (scripts/setup.sh installs qemu-efi-aarch64)");
        return;
    }
    let seed = ["--uefi", "--append", "efistub.seed=0x5eed0000c0ffee"];
    let first = splitmap(&[&["run", "--cmd", "poweroff"][..], &seed].concat());
    assert!(first.success, "{}{}", first.stdout, first.stderr);
    let (pa, _) = boot_line(&first.stdout);
    let port = free_port();
    let run = run_waiting_for_gdb(port, &[&seed[..], &["--cmd", "poweroff"]].concat());
    let early = format!("sm-early {pa:#x}");
    let gdb = early_gdb_batch(
        port,
        &[
            "sm-early",
            &early,
            "break pi::boot::create_boot_tables",
            "continue",
            "bt 1",
            "detach",
        ],
    );
    let console = both_succeeded(run, &gdb);
    assert_eq!(boot_line(&console).0, pa, "the seed replays the placement:\n{console}");
    let said = format!("{}{}", gdb.stdout, gdb.stderr);
    assert!(said.contains("the kernel image is not in memory yet"), "{said}");
    assert!(said.contains(&format!("early symbols at pa={pa:#x}")), "{said}");
    assert!(
        gdb.stdout.contains("Breakpoint 1, pi::boot::create_boot_tables"),
        "{said}"
    );
}

/// gdb breakpoints, placed at physical addresses (before the MMU is on;
/// sm-link would move one set by name), that change what EL2's exit does
/// (`__pi_el2_to_el1`, kernel/pi/src/boot.rs): the probe finds HCR_EL2.E2H
/// stuck, as on a CPU without FEAT_E2H0 (QEMU's `max` CPU can clear it).
const E2H_STUCK: &str = r#"python exec("class Stuck(gdb.Breakpoint):\n def stop(self):\n  gdb.execute('set $x1 = 2')\n  print('splitmap-test: E2H stuck')\n  return False\nStuck('*%d' % int(gdb.parse_and_eval('(long)&__pi_el2_e2h_probed')))")"#;
/// And HCR_EL2 traps EL1's `smc` (TSC), a trap the exit leaves off.
const SMC_TRAPPED: &str = r#"python exec("class Tsc(gdb.Breakpoint):\n def stop(self):\n  gdb.execute('set $x0 = $x0 | (1 << 19)')\n  return False\nTsc('*%d' % int(gdb.parse_and_eval('(long)&__pi_el2_hcr')))")"#;

/// And HCR_EL2 holds a virtual SError pending for EL1 (VSE, with AMO),
/// which EL1 takes once it unmasks SErrors: on the CPU that passes here
/// in the `{}`th place (1, the boot CPU; 2, the first secondary).
const SERROR_PENDING: &str = r#"python exec("class Vse(gdb.Breakpoint):\n hits = 0\n def stop(self):\n  Vse.hits += 1\n  if Vse.hits == {}:\n   gdb.execute('set $x0 = $x0 | (1 << 8) | (1 << 5)')\n  return False\nVse('*%d' % int(gdb.parse_and_eval('(long)&__pi_el2_hcr')))")"#;

/// Options for a boot entered at EL2 on QEMU's `max` CPU, waiting for gdb.
const AT_EL2: [&str; 8] = [
    "--cpu",
    "max",
    "--nokaslr",
    "--timeout",
    "60",
    "--qemu-arg=-machine",
    "--qemu-arg=virt,virtualization=on",
    "--cmd",
];

/// A CPU whose HCR_EL2.E2H cannot be cleared (one without FEAT_E2H0:
/// Apple's, or a nested guest's) renames EL1's registers at EL2 and lays
/// out CPTR_EL2 and CNTHCTL_EL2 differently; the EL2 exit tells by a probe
/// (`__pi_el2_e2h_probed`) and takes a path of its own. QEMU's `max` CPU
/// can clear E2H, so the probe finds the usual layout; with gdb making it
/// find E2H stuck, on both CPUs, the exit sets E2H itself and must still
/// reach the shell with FP/SIMD, the timer and the second CPU working. On
/// a CPU without VHE (`cortex-a72`) that path hangs: the test fails.
#[test]
fn a_cpu_whose_e2h_cannot_be_cleared_leaves_el2_by_its_own_layout() {
    const E2H: u64 = 1 << 34;
    for stuck in [false, true] {
        let port = free_port();
        let run = run_waiting_for_gdb(port, &[&AT_EL2[..], &["irqs", "--cmd", "test", "--smp", "2"]].concat());
        let mut exs = vec![];
        if stuck {
            exs.push(E2H_STUCK);
        }
        exs.extend([
            "sm-link",
            "break kernel::shell::commands::irqs",
            "continue",
            "thread 2",
            "p/x $HCR_EL2",
            "p/x $CPTR_EL2",
            "p/x $CNTHCTL_EL2",
            "thread 1",
            "p/x $HCR_EL2",
            "detach",
        ]);
        let gdb = early_gdb_batch(port, &exs);
        let console = both_succeeded(run, &gdb);
        let printed: Vec<u64> = (1..=4)
            .map(|n| {
                let prefix = format!("${n} = ");
                let line = gdb.stdout.lines().find_map(|l| l.strip_prefix(&prefix));
                hex(line.unwrap_or_else(|| panic!("no ${n}: {}", gdb.stdout)))
            })
            .collect();
        let [hcr1, cptr, cnthctl, hcr0] = printed[..] else {
            unreachable!()
        };
        let forced = gdb.stdout.matches("splitmap-test: E2H stuck").count();
        assert_eq!(forced, if stuck { 2 } else { 0 }, "{}", gdb.stdout);
        // CPTR_EL2's FP/SIMD trap and CNTHCTL_EL2's EL1 timer bits, in the
        // layout E2H selects (bits 21:20 and 11:10 with it, 10 and 1:0
        // without).
        let want = if stuck {
            (E2H, 0x30_0000, 0xc00)
        } else {
            (0, 0x33ff, 0x3)
        };
        assert_eq!((hcr1 & E2H, cptr, cnthctl), want, "{}", gdb.stdout);
        assert_eq!(hcr0 & E2H, want.0, "both CPUs: {}", gdb.stdout);
        let (passed, failed) = ktap_totals(&console);
        assert!(passed > 0 && failed == 0, "{console}");
        assert!(console.contains("cpu=1"), "{console}");
    }
}

/// A trap EL2 takes from EL1 after the exit (one firmware left on that the
/// exit does not clear) reaches EL2's vectors (`__pi_el2_vectors`), which
/// hand it down to EL1: the kernel reports it decoded, says EL2 trapped it,
/// and stops; with no vectors at EL2 the CPU would hang without a word.
/// Here gdb adds HCR_EL2.TSC, so the kernel's first PSCI call (an `smc`
/// under `virtualization=on`) traps, in both of the exit's layouts. Its
/// panic's reset is an `smc` too, trapped again: the CPU parks.
#[test]
fn a_trap_el2_takes_is_handed_down_to_the_kernel_and_reported() {
    for stuck in [false, true] {
        let port = free_port();
        let run = run_waiting_for_gdb(port, &[&AT_EL2[..], &["poweroff"]].concat());
        let mut exs = vec![SMC_TRAPPED];
        if stuck {
            exs.push(E2H_STUCK);
        }
        exs.extend(["sm-link", "break kernel::arch::cpu::park", "continue", "bt", "kill"]);
        let gdb = early_gdb_batch(port, &exs);
        let out = run.wait_with_output().unwrap();
        let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        assert!(
            gdb.stdout.contains("#0  kernel::arch::cpu::park"),
            "the CPU parked: {}{}\n{console}",
            gdb.stdout,
            gdb.stderr
        );
        for line in [
            "SMC trapped (EC 0x17)",
            "EL2 trapped this and handed it down",
            "splitmap_psci_smc",
            "kernel panic: unhandled exception: SMC trapped",
        ] {
            assert!(console.contains(line), "{line:?} in:\n{console}");
        }
        let forced = gdb.stdout.contains("splitmap-test: E2H stuck");
        assert_eq!(forced, stuck, "{}", gdb.stdout);
    }
}

/// An SError (on hardware, often what an access nothing answers comes back
/// as) is taken as soon as the kernel's vectors are in place, reported
/// decoded, and ends the kernel; masked, as from reset, it would stay
/// pending for good. TCG raises none of its own: gdb has EL2 hold a
/// virtual one pending for EL1 (HCR_EL2.VSE).
#[test]
fn a_pending_serror_is_taken_and_reported() {
    for (nth, panic) in [(1, "kernel panic: "), (2, "kernel panic: cpu=1 ")] {
        let port = free_port();
        let run = run_waiting_for_gdb(port, &[&AT_EL2[..], &["help", "--smp", "2"]].concat());
        let gdb = early_gdb_batch(port, &[&SERROR_PENDING.replace("{}", &nth.to_string()), "continue"]);
        let out = run.wait_with_output().unwrap();
        let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        assert!(!out.status.success(), "{console}");
        let said = format!("{panic}unhandled exception: SError");
        for line in ["SError (EC 0x2f)", &said] {
            assert!(
                console.contains(line),
                "{line:?} in:\n{console}\n{}\nrun: {}",
                gdb.stderr,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if nth == 1 {
            assert!(!console.contains("splitmap> "), "{console}");
        }
    }
}
