//! `splitmap gdb`: gdb-multiarch attached to `run --gdb`.

use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus};

use splitmap::qemu::Artifacts;

use crate::GdbArgs;

/// Starts gdb-multiarch on the kernel's ELF, attached to `run --gdb`, with
/// splitmap's gdb commands loaded and the kernel run up to where it says
/// where it is (`sm-boot`), so breakpoints follow KASLR.
pub fn gdb(args: &GdbArgs) -> Result<ExitCode, String> {
    let artifacts = Artifacts::for_granule(&args.kernel.granule)?;
    // gdb itself would retry for seconds and then fail in our script; say
    // at once what is missing. Looked up, not connected to: QEMU's stub
    // takes one connection, and stops the machine for it.
    let stub = std::net::SocketAddr::from(([127, 0, 0, 1], args.gdb_port));
    if !splitmap::qemu::listening(args.gdb_port) {
        return Err(format!(
            "nothing listens on {stub}: start the kernel with `cargo run -- run --gdb{}` first, in another terminal",
            if args.gdb_port == 1234 {
                String::new()
            } else {
                format!(" --gdb-port {}", args.gdb_port)
            }
        ));
    }
    let modules = args
        .modules
        .clone()
        .or_else(|| artifacts.initrd.parent().map(PathBuf::from))
        .unwrap_or_default();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gdb/splitmap.py");
    let mut command = Command::new("gdb-multiarch");
    command
        .env("SPLITMAP_ELF", &artifacts.elf)
        .env("SPLITMAP_MODULES", &modules)
        .arg("-q");
    if args.batch {
        command.args(["-nx", "-batch"]);
    }
    let check = granule_check(&args.kernel.granule, args.batch, args.early);
    // The running kernel's granule is known from TCR_EL1 once `sm-boot` has
    // the MMU on; before it, from the Image header in memory, and checked
    // first: `sm-early` looks for an image of this build's size.
    let (before, after) = if args.early {
        (Some(check), None)
    } else {
        (None, Some(check))
    };
    for setup in [
        "set confirm off".to_string(),
        "set breakpoint pending on".to_string(),
        format!("file {}", artifacts.elf.display()),
        format!("source {script}"),
        format!("target remote 127.0.0.1:{}", args.gdb_port),
    ]
    .iter()
    .chain(&before)
    .chain([if args.early { "sm-early" } else { "sm-boot" }.to_string()].iter())
    .chain(&after)
    .chain(&args.commands)
    {
        command.args(["-ex", setup]);
    }
    let status = run_owning_ctrl_c(command).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "gdb-multiarch not found: run scripts/setup.sh".to_string(),
        _ => format!("cannot start gdb-multiarch: {e}"),
    })?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A gdb command (Python) that compares the running kernel's granule with
/// `granule`, the one whose ELF gdb loaded: once `sm-boot` has the MMU on,
/// from its tables' (TCR_EL1.TG1); `early`, at the first instruction, from
/// the kernel Image's header in memory (`header_granule` in splitmap.py).
/// Another granule's kernel has other symbols, so on a mismatch the symbols
/// are dropped, gdb detaches (the kernel runs on, and the right `splitmap
/// gdb` can attach again) and says what to pass; with `--batch` gdb ends
/// with status 1.
fn granule_check(granule: &str, batch: bool, early: bool) -> String {
    let want = granule.to_ascii_lowercase();
    let end = if batch {
        "gdb.execute('quit 1')"
    } else {
        "raise gdb.GdbError(say)"
    };
    let (have, says, option) = if early {
        (
            vec!["have = header_granule()".to_string()],
            "the kernel in memory was built for {have[:-1]} KiB pages (its Image header says so)",
            "--early ",
        )
    } else {
        (
            vec![
                "tg1 = (int(gdb.parse_and_eval('$TCR_EL1')) >> 30) & 3".to_string(),
                "have = {1: '16k', 2: '4k', 3: '64k'}.get(tg1)".to_string(),
            ],
            "the running kernel uses {have[:-1]} KiB pages (TCR_EL1.TG1 = {tg1})",
            "",
        )
    };
    let code = have.into_iter().chain([
        format!("if have is not None and have != '{want}':"),
        format!(
            "  say = f'splitmap: {says}, but --granule {want} loaded the symbols of another build: run `splitmap gdb {option}--granule {{have}}` (gdb has detached; the kernel runs on)'"
        ),
        "  gdb.execute('symbol-file', to_string=True)".to_string(),
        "  gdb.execute('detach', to_string=True)".to_string(),
        "  gdb.write(say + '\\n', gdb.STDERR)".to_string(),
        format!("  {end}"),
    ]);
    format!("python exec({:?})", code.collect::<Vec<_>>().join("\n"))
}

/// Runs gdb as any gdb runs: Ctrl-C (SIGINT, sent by the terminal to the
/// whole foreground process group, this tool included) is gdb's, to stop
/// the kernel and give the prompt back, so this tool ignores it while gdb
/// runs instead of dying and leaving gdb orphaned, the kernel stopped. And
/// gdb ends with this tool, however it ends (SIGTERM: gdb detaches and
/// quits), as QEMU does with `run` (see `qemu::command`).
fn run_owning_ctrl_c(mut command: Command) -> std::io::Result<ExitStatus> {
    use std::os::unix::process::CommandExt;
    // SAFETY: a plain system call.
    let parent = unsafe { libc::getpid() };
    // SAFETY: runs in the child between fork and exec, and only makes
    // async-signal-safe system calls.
    unsafe {
        command.pre_exec(move || {
            // An ignored signal stays ignored across exec: give gdb the default
            // back, for it to install its own handler.
            if libc::signal(libc::SIGINT, libc::SIG_DFL) == libc::SIG_ERR
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The tool may have ended before the line above: then no signal comes.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("splitmap ended before gdb started"));
            }
            Ok(())
        });
    }
    // Ignored from before the fork, so that no Ctrl-C can find the tool
    // with its default action while gdb runs.
    // SAFETY: a plain system call; nothing else in this process handles SIGINT.
    let before = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let status = command.status();
    // SAFETY: as above; puts back what was there.
    unsafe { libc::signal(libc::SIGINT, before) };
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_granule_check_is_one_line_of_python_naming_what_to_pass() {
        let check = granule_check("64K", true, false);
        assert!(!check.contains('\n'), "one gdb command: {check}");
        assert!(check.starts_with("python exec(\""), "{check}");
        assert!(
            check.contains("have != '64k'") && check.contains("run `splitmap gdb --granule {have}`"),
            "{check}"
        );
        assert!(check.contains("TCR_EL1") && check.contains("quit 1"));
        assert!(granule_check("4k", false, false).contains("raise gdb.GdbError"));
        // Before the MMU is on, the Image header says; the advice keeps --early.
        let early = granule_check("16k", true, true);
        assert!(!early.contains('\n') && !early.contains("TCR_EL1"), "{early}");
        assert!(
            early.contains("header_granule()") && early.contains("run `splitmap gdb --early --granule {have}`"),
            "{early}"
        );
    }
}
