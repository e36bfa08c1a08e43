//! `splitmap run`: one boot, typed into from this terminal or from a script.

use std::io::{IsTerminal, Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use splitmap::qemu::{self, Console};
use splitmap::qmp;
use splitmap::relay::InputGate;
use splitmap::session;
use splitmap::watchdog::Watchdog;

use crate::RunArgs;
use crate::boots::{SCRIPT_TIMEOUT, boot_of, time_limit};

/// `splitmap run`.
pub fn run(mut args: RunArgs) -> Result<ExitCode, String> {
    check_run(&args)?;
    // Lines piped in are a script: typed one per prompt, then `poweroff`, so
    // the end of the input ends the session instead of leaving QEMU waiting.
    if args.cmds.is_empty() && !std::io::stdin().is_terminal() {
        let input = piped_script()?;
        args.cmds = input.lines().map(str::to_string).collect();
        if args.cmds.is_empty() {
            args.cmds.push("poweroff".into());
        }
        check_script(&args.cmds)?;
    }
    let scripted = !args.cmds.is_empty();
    // Under --uefi the tool stands between the terminal and the serial
    // port (`splitmap::relay`): the firmware's terminal queries must not
    // reach the terminal, nor keys for the shell the firmware.
    let console = match (scripted, args.uefi) {
        (true, _) => Console::Piped,
        (false, false) => Console::Interactive,
        (false, true) => Console::Relayed,
    };
    let (boot, qemu_args) = boot_of(&args, console)?;
    if args.verbose {
        eprintln!("{}", qemu::shell_quoted(qemu::QEMU, &qemu_args));
    }
    if let Some(port) = boot.gdb {
        check_port_free(port)?;
        announce_when_listening(port);
    }
    let command = qemu::command(&qemu_args);
    let not_found = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} not found: run scripts/setup.sh", qemu::QEMU),
        _ => format!("cannot start {}: {e}", qemu::QEMU),
    };

    // Someone at a debugger or a keyboard takes the time they take.
    let default = (scripted && boot.gdb.is_none()).then_some(SCRIPT_TIMEOUT);
    let firmware = args
        .uefi
        .then(|| splitmap::efi_output::FirmwareFilter::new(args.verbose));
    let limit = time_limit(args.timeout, default);
    if !scripted {
        return interactive(command, limit, firmware).map_err(not_found);
    }
    let timeout = limit.unwrap_or(Duration::MAX);
    let mut stdout = Passed::new(firmware);
    let transcript = session::run(command, &args.cmds, timeout, |bytes| stdout.write(bytes)).map_err(not_found)?;
    if transcript.outcome.success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("splitmap: {}", transcript.outcome.reason());
        Ok(ExitCode::from(1))
    }
}

/// Refuses `run` options that cannot be honoured, before QEMU starts: lines
/// after `poweroff`, `--kaslr-seed` with `--nokaslr`, an `--accel` the host
/// or the other options rule out, and with `--raw-dtb` options the tree
/// would override.
pub fn check_run(args: &RunArgs) -> Result<(), String> {
    check_script(&args.cmds)?;
    if args.boot.nokaslr && args.boot.kaslr_seed.is_some() {
        return Err(
            "--nokaslr keeps the image at its link address, so --kaslr-seed would choose nothing: give one or the other"
                .into(),
        );
    }
    check_files(args)?;
    check_machine(args)?;
    if let Some(cpu) = &args.boot.cpu {
        splitmap::qemu::check_cpu(cpu)?;
    }
    let accel = splitmap::qemu::Accel::parse(&args.boot.accel)?;
    let used = splitmap::qemu::AccelUse {
        load_addr: args.load_addr.is_some(),
        raw_dtb: args.raw_dtb.is_some(),
        icount: args.icount,
        cpu: args.boot.cpu.as_deref(),
    };
    splitmap::qemu::check_accel(accel, used, splitmap::qemu::Host::this())?;
    if args.raw_dtb.is_some() {
        let ignored: Vec<&str> = [
            (!args.append.is_empty(), "--append"),
            (args.boot.nokaslr, "--nokaslr"),
            (args.boot.kaslr_seed.is_some(), "--kaslr-seed"),
        ]
        .into_iter()
        .filter_map(|(given, name)| given.then_some(name))
        .collect();
        if !ignored.is_empty() {
            return Err(format!(
                "--raw-dtb hands the kernel the tree as written, its /chosen/bootargs included: {} would be ignored; put them in the tree's bootargs instead",
                ignored.join(", ")
            ));
        }
    }
    Ok(())
}

/// Refuses what `--machine` cannot do (see `Machine::check`); and on
/// `raspi3b`, `--gic` and `--uefi`, which assume `virt`.
fn check_machine(args: &RunArgs) -> Result<(), String> {
    use splitmap::machine::Machine;
    let boot = &args.boot;
    let machine = Machine::parse(&boot.machine)?;
    let mem = splitmap::qemu::parse_size(&boot.mem)?;
    machine.check(mem, boot.smp, &boot.kernel.granule, boot.cpu.as_deref())?;
    if machine == Machine::Raspi3b {
        if boot.gic.is_some() {
            return Err("--gic picks virt's interrupt controller; raspi3b has no GIC: drop --gic".into());
        }
        if args.uefi {
            return Err("--uefi boots EDK2 built for virt; raspi3b has no UEFI firmware here: drop --uefi".into());
        }
    }
    Ok(())
}

/// Refuses a `--dtb`, `--raw-dtb` or `--initrd` QEMU could not load whole
/// (a FIFO, a device, too big): QEMU would wait on it or read it forever.
fn check_files(args: &RunArgs) -> Result<(), String> {
    if let Some(dtb) = &args.dtb {
        splitmap::qemu::check_dtb("--dtb", dtb)?;
    }
    if let Some(raw) = &args.raw_dtb {
        splitmap::qemu::check_dtb("--raw-dtb", raw)?;
    }
    if let Some(initrd) = &args.initrd {
        splitmap::input::check_file("--initrd", initrd, splitmap::input::INITRD_LIMIT)?;
    }
    Ok(())
}

/// Refuses a `--gdb-port` something already listens on, before QEMU says
/// so in its own words.
fn check_port_free(port: u16) -> Result<(), String> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(format!("port {port} is in use: pick another with --gdb-port"))
        }
        _ => Ok(()),
    }
}

/// Says that QEMU waits for gdb once it does: when it listens on `port`,
/// not before (a `splitmap gdb` started on the word would find no one).
fn announce_when_listening(port: u16) {
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !splitmap::qemu::listening(port) {
            if std::time::Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // QEMU may have put the terminal in raw mode (-nographic) by now;
        // there, waiting is left with QEMU's own keys.
        let (leave, end) = if std::io::stderr().is_terminal() {
            ("; Ctrl-A X leaves QEMU", "\r\n")
        } else {
            ("", "\n")
        };
        eprint!(
            "splitmap: QEMU waits for gdb on port {port}: run `splitmap gdb --gdb-port {port}` (cargo run -- gdb) in another terminal{leave}{end}"
        );
    });
}

/// All of standard input, which is not a terminal. Input that stays open
/// (a pipe from a program that never closes it) would keep QEMU from
/// starting without a word: after a moment, say what is awaited.
fn piped_script() -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut input = String::new();
        let _ = tx.send(std::io::stdin().read_to_string(&mut input).map(|_| input));
    });
    let read = match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(read) => read,
        Err(_) => {
            eprintln!(
                "splitmap: waiting for standard input to end: it is not a terminal, so its lines are the script to type (close it, or use --cmd)"
            );
            rx.recv().map_err(|e| e.to_string())?
        }
    };
    read.map_err(|e| format!("reading standard input: {e}"))
}

/// Refuses a script with lines after `poweroff`: they could never run.
pub fn check_script(cmds: &[String]) -> Result<(), String> {
    match cmds.iter().position(|c| c.trim() == "poweroff") {
        Some(at) if at + 1 < cmds.len() => Err(format!(
            "--cmd '{}' comes after poweroff, which ends the session",
            cmds[at + 1]
        )),
        _ => Ok(()),
    }
}

/// Runs QEMU on this terminal. Its output is passed through as it comes;
/// the run ends as a scripted one would be judged ([`session::judge`]): by
/// QEMU's `SHUTDOWN` event, so a panic fails the run and text that only
/// looks like one (typed, logged by a module) does not. After `limit` QEMU
/// is asked to stop (SIGTERM: it gives the terminal back) and the run fails.
/// Under --uefi (`firmware`) the tool relays the terminal's keys itself
/// ([`Relay`]).
fn interactive(
    mut command: Command,
    limit: Option<Duration>,
    firmware: Option<splitmap::efi_output::FirmwareFilter>,
) -> std::io::Result<ExitCode> {
    /// The stage-0 loader speaks first: its refusal is in the first bytes.
    const HEAD: usize = 64 << 10;
    command.stdout(Stdio::piped());
    let relayed = firmware.is_some();
    if relayed {
        command.stdin(Stdio::piped());
    }
    let (mut child, events) = qmp::spawn(command)?;
    let watchdog = limit.map(|limit| Watchdog::start(child.id(), limit, libc::SIGTERM));
    let mut from_qemu = child.stdout.take().expect("piped stdout");
    let mut relay = match child.stdin.take() {
        Some(to_qemu) => Some(Relay::start(to_qemu)?),
        None => None,
    };
    let mut stdout = Passed::new(firmware);
    let mut head: Vec<u8> = Vec::new();
    // Lines are watched for the kernel's halt lines (no PSCI, no event);
    // only the line not yet ended is kept.
    let mut line: Vec<u8> = Vec::new();
    let mut halts = session::HaltWatch::default();
    let mut halt = None;
    let mut buf = [0u8; 4096];
    while let Ok(n) = from_qemu.read(&mut buf) {
        if n == 0 {
            break;
        }
        stdout.write(&buf[..n]);
        if let Some(relay) = &mut relay
            && stdout.kernel_spoke()
        {
            relay.open();
        }
        head.extend_from_slice(&buf[..n.min(HEAD.saturating_sub(head.len()))]);
        line.extend_from_slice(&buf[..n]);
        halt = halt.or(halts.update(&line));
        if let Some(end) = line.iter().rposition(|&b| b == b'\n') {
            line.drain(..=end);
            halts = session::HaltWatch::default();
        }
    }
    // QEMU's output ended with it; stand the watchdog down before reaping.
    // The terminal gets its settings back (the relay dropped) before any
    // verdict is printed.
    drop(relay);
    let timed_out = watchdog.is_some_and(Watchdog::stop);
    let status = child.wait()?;
    let shutdown = events.and_then(qmp::Events::finish);
    let ending = session::Ending {
        // A timeout's SIGTERM makes QEMU announce a shutdown of its own.
        shutdown: if timed_out { None } else { shutdown },
        halt,
        status: (!timed_out).then_some(status),
    };
    let outcome = session::judge(&String::from_utf8_lossy(&head), ending, limit.unwrap_or_default());
    Ok(if outcome.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("splitmap: {}", outcome.reason());
        ExitCode::from(1)
    })
}

/// This tool's standard output, where the console goes as it comes: as
/// the kernel sends it (`\r\n`) to a terminal, with `\n` alone elsewhere
/// (a file, a pipe), as text files end their lines.
struct Passed {
    out: std::io::Stdout,
    terminal: bool,
    /// Under --uefi: hides the firmware's output (shown with -v, without
    /// its escape sequences).
    firmware: Option<splitmap::efi_output::FirmwareFilter>,
}

impl Passed {
    fn new(firmware: Option<splitmap::efi_output::FirmwareFilter>) -> Passed {
        let out = std::io::stdout();
        let terminal = out.is_terminal();
        Passed {
            out,
            terminal,
            firmware,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let shown;
        let bytes = match &mut self.firmware {
            Some(filter) => {
                shown = filter.feed(bytes);
                &shown[..]
            }
            None => bytes,
        };
        let _ = if self.terminal {
            self.out.write_all(bytes)
        } else {
            let lines: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'\r').collect();
            self.out.write_all(&lines)
        };
        let _ = self.out.flush();
    }

    /// Whether the kernel has spoken (always, without firmware).
    fn kernel_spoke(&self) -> bool {
        self.firmware
            .as_ref()
            .is_none_or(splitmap::efi_output::FirmwareFilter::kernel_spoke)
    }
}

/// The terminal in raw mode, its keys copied to QEMU's serial through an
/// [`InputGate`] by a thread of their own (it stays blocked reading the
/// terminal when QEMU ends; the process's end ends it).
struct Relay {
    /// Gives the terminal its settings back when dropped.
    _raw: splitmap::relay::RawTerminal,
    to_qemu: std::sync::Arc<std::sync::Mutex<(InputGate, std::process::ChildStdin)>>,
    opened: bool,
}

impl Relay {
    fn start(to_qemu: std::process::ChildStdin) -> std::io::Result<Relay> {
        use std::os::fd::AsRawFd;
        let raw = splitmap::relay::RawTerminal::enter(std::io::stdin().as_raw_fd())?;
        let to_qemu = std::sync::Arc::new(std::sync::Mutex::new((InputGate::default(), to_qemu)));
        let keys = std::sync::Arc::clone(&to_qemu);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            let mut stdin = std::io::stdin();
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                let mut keys = keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let (gate, qemu) = &mut *keys;
                let now = gate.typed(&buf[..n]);
                if qemu.write_all(&now).and_then(|()| qemu.flush()).is_err() {
                    return;
                }
            }
        });
        Ok(Relay {
            _raw: raw,
            to_qemu,
            opened: false,
        })
    }

    /// The kernel has spoken: keys held for it go to it.
    fn open(&mut self) {
        if std::mem::replace(&mut self.opened, true) {
            return;
        }
        let mut keys = self.to_qemu.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (gate, qemu) = &mut *keys;
        let held = gate.open();
        let _ = qemu.write_all(&held).and_then(|()| qemu.flush());
    }
}
