//! How a session ended comes from QEMU's control socket, not from console
//! text: lines that only look like a panic or a halt (typed, logged by a
//! module, held in the device tree's command line) end a session cleanly,
//! and a real panic fails it through the guest's reset.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use vm_fdt::FdtWriter;

/// The kernel's own line when it halts without PSCI, typed or forged.
const HALT_LINE: &str =
    "splitmap: power-off is unavailable: PSCI does not answer over hvc; halted (Ctrl-A X leaves QEMU)";

#[test]
fn typed_lines_that_look_like_a_verdict_end_cleanly() {
    let run = splitmap(&[
        "run",
        "--nokaslr",
        "--cmd",
        "kernel panic: x",
        "--cmd",
        HALT_LINE,
        "--cmd",
        "help",
    ]);
    assert!(run.success, "{}\n{}", run.stderr, run.stdout);
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.contains("error: unknown command 'kernel'"), "{}", run.stdout);
    // The session went on after both: `help` answered, then `poweroff`.
    assert!(run.stdout.contains("commands:"), "{}", run.stdout);
    assert!(run.stdout.contains("splitmap: powering off"), "{}", run.stdout);
}

#[test]
fn a_module_logging_kernel_lines_ends_cleanly() {
    let run = splitmap(&[
        "run",
        "--nokaslr",
        "--cmd",
        "insmod faulty",
        "--cmd",
        "faulty forge",
        "--cmd",
        "help",
    ]);
    assert!(run.success, "{}\n{}", run.stderr, run.stdout);
    // One line, after the module's name, its line ends escaped.
    let want = "faulty: forged\\r\\nkernel panic: forged by a module\\r\\nsplitmap: reset is unavailable: PSCI does not answer over hvc; halted (Ctrl-A X leaves QEMU)\\r\\nsplitmap> ";
    assert!(run.stdout.lines().any(|l| l == want), "{}", run.stdout);
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("kernel panic:")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("commands:"), "{}", run.stdout);
}

#[test]
fn bootargs_holding_a_panic_line_end_cleanly() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "/pl011@9000000").unwrap();
    w.property_string("bootargs", "nokaslr\nkernel panic: boom\r\nsplitmap> \x1b[2J")
        .unwrap();
    w.end_node(chosen).unwrap();
    let memory = w.begin_node("memory").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[RAM_BASE, GIB]).unwrap();
    w.end_node(memory).unwrap();
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
    w.end_node(uart).unwrap();
    let psci = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci-0.2").unwrap();
    w.property_string("method", "hvc").unwrap();
    w.end_node(psci).unwrap();
    w.end_node(root).unwrap();
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("verdict-bootargs.dtb");
    std::fs::write(&path, w.finish().unwrap()).unwrap();
    // No --append (nor --nokaslr, which appends): QEMU keeps the tree's bootargs.
    let run = splitmap(&[
        "run",
        "--dtb",
        path.to_str().unwrap(),
        "--cmd",
        "bootargs",
        "--cmd",
        "help",
    ]);
    assert!(run.success, "{}\n{}", run.stderr, run.stdout);
    assert!(
        run.stdout
            .lines()
            .any(|l| l == "cmdline: nokaslr\\nkernel panic: boom\\r\\nsplitmap> \\x1b[2J"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("kernel panic:")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("commands:"), "{}", run.stdout);
}

#[test]
fn a_real_panic_fails_through_the_guests_reset() {
    let run = splitmap(&["run", "--nokaslr", "--cmd", "crash brk"]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stderr, run.stdout);
    assert_eq!(run.stderr.trim(), "splitmap: kernel panic", "{}", run.stdout);
    assert!(
        run.stdout.contains("kernel panic: unhandled exception"),
        "{}",
        run.stdout
    );
    // PSCI answered the reset: no halt line.
    assert!(!run.stdout.contains("is unavailable"), "{}", run.stdout);
}

#[test]
fn a_typed_panic_line_in_a_terminal_session_ends_cleanly() {
    // `script` gives the tool a terminal, as a person at a keyboard has.
    let tool = env!("CARGO_BIN_EXE_splitmap");
    let mut script = Command::new("script")
        .args(["-qec", &format!("{tool} run --nokaslr --timeout 120"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    script
        .stdin
        .take()
        .unwrap()
        .write_all(b"kernel panic: x\rpoweroff\r")
        .unwrap();
    let out = script.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("error: unknown command 'kernel'"), "{stdout}");
    assert!(out.status.success(), "a typed line is no panic:\n{stdout}");
}
