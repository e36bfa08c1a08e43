//! Bad input gets a clear error and changes nothing: shell lines, boot
//! arguments and KASLR windows that used to kill the kernel, run something
//! else than was typed, or fail silently.

mod common;
use common::*;

/// The kernel stack's guard page (kernel/pi/src/layout.rs: STACKS_VADDR).
const GUARD: u64 = 0xffff_ffff_ff00_0000;

#[test]
fn odd_shell_lines_are_refused_or_reported_and_the_shell_goes_on() {
    let long = format!("help {}", "x".repeat(300));
    let arrows = "\u{1b}[A\u{1b}[Dlsmod";
    let out = session(
        &["--nokaslr"],
        &[
            &format!("peek {GUARD:#x}"),
            &long,
            "walk 0x0001000000000000",
            "walk 0x1000",
            arrows,
            "help",
        ],
    );
    // A peek in the guard page is a fault like any other, not an "overflow".
    assert!(
        out.contains(&format!("fault at {GUARD:#x}: translation fault at level 3")),
        "{out}"
    );
    assert!(!out.contains("kernel stack overflow"), "{out}");
    // A line longer than the buffer runs nothing, not its first 256 bytes.
    assert!(out.contains("error: line too long (max 256 characters)"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.trim_end() == "commands:").count(),
        1,
        "only the last line ran help:\n{out}"
    );
    assert!(out.contains("error: 0x1000000000000 is not canonical"), "{out}");
    assert!(out.contains("error: 0x1000 is in the lower half (TTBR0)"), "{out}");
    // Arrow keys are consumed; what follows them runs (lsmod: nothing loaded).
    assert!(!out.contains("unknown command"), "{out}");
    assert!(!out.contains("[A"), "an escape sequence was typed as text:\n{out}");
}

/// Ctrl-C drops the line being typed, as in a shell: `^C`, a new prompt, and
/// the next line runs alone; a test filter that matches nothing says so.
#[test]
fn ctrl_c_drops_the_line_and_a_test_filter_that_matches_nothing_says_so() {
    let out = session(&["--nokaslr"], &["crash null\u{3}mem", "test nosuch"]);
    assert!(out.contains("splitmap> crash null^C\nsplitmap> mem\n"), "{out}");
    assert!(!out.contains("crash: null"), "the dropped line did not run:\n{out}");
    assert!(out.lines().any(|l| l.starts_with("ram ")), "mem ran:\n{out}");
    let ktap = out.split("splitmap> test nosuch\n").nth(1).unwrap();
    assert!(
        ktap.contains("1..0\n# no test name contains 'nosuch'; `test` alone runs all "),
        "{ktap}"
    );
}

#[test]
fn boot_argument_problems_are_printed_at_boot_and_bootargs_shows_every_setting() {
    let out = session(
        &["--nokaslr", "--append", "frob loglevel=loud kaslr.seed=0 rodata=full"],
        &["bootargs"],
    );
    let boot = out.split("splitmap> ").next().unwrap();
    for warning in [
        "[WARN ] unknown boot argument 'frob' ignored",
        "[WARN ] boot argument loglevel=loud rejected",
        "[WARN ] boot argument kaslr.seed=0 rejected: expected a non-zero 64-bit number (0x…); 0 means no seed",
    ] {
        assert!(boot.contains(warning), "not said at boot: {warning}\n{boot}");
    }
    assert!(
        out.contains("loglevel=INFO nokaslr=true kaslr.seed=none kaslr.window=default kaslr.align=default kaslr.linear=off rodata=full module.region=near"),
        "{out}"
    );
    assert!(out.contains("warning: unknown boot argument 'frob' ignored"), "{out}");
}

#[test]
fn a_zero_seed_is_refused_by_the_host_tool() {
    let run = splitmap(&["run", "--kaslr-seed", "0", "--cmd", "help"]);
    assert!(!run.success);
    assert!(run.stderr.contains("0 means no seed"), "{}", run.stderr);
}

#[test]
fn a_window_whose_later_slots_overlap_the_link_address_is_refused_by_name() {
    // Slot 0 is the link address itself; at 4K or 64K steps, the slots after
    // it overlap the image still mapped there while it moves.
    for align in ["4K", "64K"] {
        let window = format!("kaslr.window={KIMAGE_VADDR:#x}-0xffff800090000000 kaslr.align={align}");
        let out = session(&["--kaslr-seed", "0x3", "--append", &window], &["kaslr", "bootargs"]);
        assert!(
            out.contains("overlaps the image at its link address") && out.contains("KASLR off"),
            "{align}: {out}"
        );
        assert!(out.contains("source=disabled (window refused)"), "{align}: {out}");
        assert!(
            out.contains("warning: kaslr.window=0xffff800080000000-0xffff800090000000 overlaps"),
            "bootargs lists it too: {align}: {out}"
        );
    }
}

#[test]
fn a_bad_kaslr_window_is_reported_under_nokaslr_too() {
    let out = session(&["--append", "nokaslr kaslr.align=3K"], &["bootargs"]);
    assert!(
        out.contains("[WARN ] kaslr.align=3K: expected 4K, 64K or 2M; ignored (nokaslr)"),
        "{out}"
    );
    assert!(out.contains("warning: kaslr.align=3K: expected 4K, 64K or 2M"), "{out}");
}

#[test]
fn a_module_is_known_by_its_file_name_without_ko_and_loads_once() {
    let out = session(
        &["--nokaslr"],
        &[
            "insmod data",
            "insmod data.ko",
            "insmod data.ko.ko",
            "lsmod",
            "rmmod data.ko",
            "lsmod",
            "rmmod data",
        ],
    );
    assert!(out.contains("error: insmod data is already loaded"), "{out}");
    assert!(
        out.contains("error: insmod data.ko.ko: a module name does not end in .ko"),
        "one .ko is the file's; a name that ends in .ko after it is refused:\n{out}"
    );
    let listed = out.lines().filter(|l| l.starts_with("data base=")).count();
    assert_eq!(listed, 2, "insmod's line and one lsmod line:\n{out}");
    assert!(
        out.contains("error: rmmod data is not loaded"),
        "rmmod data.ko removed it:\n{out}"
    );
}
