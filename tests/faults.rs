//! Faults on purpose: each is decoded on the console, the kernel panics and
//! halts, and the host tool reports the panic with a non-zero exit.

mod common;
use common::*;

#[test]
fn crash_kinds_are_decoded_and_halt() {
    // (kind, exception class line, fault detail or "")
    let cases = [
        ("null", "data abort (EC 0x25)", "translation fault at level 0"),
        (
            "write-text",
            "data abort (EC 0x25)",
            "permission fault at level 3 on write",
        ),
        (
            "exec-data",
            "instruction abort (EC 0x21)",
            "permission fault at level 3",
        ),
        ("brk", "BRK instruction (EC 0x3c)", ""),
        ("undef", "undefined instruction) (EC 0x00)", ""),
    ];
    in_parallel(&cases, |(kind, class, detail)| {
        let cmd = format!("crash {kind}");
        let run = splitmap(&["run", "--timeout", "60", "--cmd", &cmd, "--cmd", "help"]);
        assert!(!run.success, "{kind}: the run must fail");
        assert!(run.stderr.contains("splitmap: kernel panic"), "{kind}: {}", run.stderr);
        let exception = run
            .stdout
            .lines()
            .find(|l| l.starts_with("exception: "))
            .expect("exception line");
        assert!(exception.ends_with(class), "{kind}: {exception}");
        assert!(run.stdout.contains(detail), "{kind}:\n{}", run.stdout);
        let elr = run
            .stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ELR="))
            .map(hex)
            .expect("ELR");
        let (_, text) = boot_line(&run.stdout);
        assert!(
            (text..text + image_size()).contains(&elr),
            "ELR {elr:#x} is not in the running image at {text:#x}"
        );
        assert!(run.stdout.lines().any(|l| l == "splitmap: halted"));
        assert!(
            !run.stdout.contains("commands:"),
            "{kind}: nothing runs after the fault"
        );
    });
}

#[test]
fn unknown_crash_kind_is_an_error() {
    let out = session(&[], &["crash sideways"]);
    assert!(out.lines().any(|l| l.starts_with("error: usage: crash null|")), "{out}");
}
