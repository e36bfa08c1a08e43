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
        assert!(
            run.stdout.lines().any(|l| l == format!("crash: {kind}, on purpose")),
            "{kind}: the kind as typed:\n{}",
            run.stdout
        );
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
            !run.stdout.lines().any(|l| l.trim_end() == "commands:"),
            "{kind}: nothing runs after the fault (help's first line is absent)"
        );
    });
}

#[test]
fn stack_overflow_hits_the_guard_page_and_is_reported() {
    let run = splitmap(&[
        "run",
        "--timeout",
        "60",
        "--cmd",
        "layout",
        "--cmd",
        "crash stack-overflow",
        "--cmd",
        "help",
    ]);
    assert!(!run.success);
    assert!(run.stderr.contains("splitmap: kernel panic"), "{}", run.stderr);
    let guard = row(&layout_rows(&run.stdout), "guard").va;
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("kernel stack overflow: "))
        .expect("reported as a stack overflow");
    let far = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("FAR="))
        .map(hex)
        .unwrap();
    assert!(
        (guard.0..guard.1).contains(&far),
        "{far:#x} not in the guard {guard:x?}"
    );
    assert!(
        !run.stdout.contains("exception: "),
        "not a recursive fault:\n{}",
        run.stdout
    );
}

#[test]
fn unknown_crash_kind_is_an_error() {
    let out = session(&[], &["crash sideways"]);
    assert!(out.lines().any(|l| l.starts_with("error: usage: crash null|")), "{out}");
}

#[test]
fn peek_reads_or_reports_the_fault_and_the_shell_goes_on() {
    // First, where things are (nokaslr: the text is at KIMAGE_VADDR).
    let out = session(&["--nokaslr"], &["layout"]);
    let rows = layout_rows(&out);
    let mmio = row(&rows, "mmio").va.0;
    let (image_pa, _) = boot_line(&out);
    let linear_alias = PAGE_OFFSET + (image_pa - RAM_BASE);
    let peeks = [
        format!("peek {KIMAGE_VADDR:#x}"),
        format!("peek {linear_alias:#x}"),
        "peek 0x1000".to_string(),
        "peek 0xffff7fff00000000 8".to_string(),
        format!("peek {:#x} 32", mmio + 0xfe0),
        format!("peek {:#x} 32 force", mmio + 0xfe0),
        "help".to_string(),
    ];
    let cmds: Vec<&str> = peeks.iter().map(String::as_str).collect();
    let out = session(&["--nokaslr"], &cmds);
    let answers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("0x") || l.starts_with("fault at "))
        .collect();
    // The first 8 bytes of the Image file, read here on the host: code0, code1.
    let head = u64::from_le_bytes(artifact("image")[..8].try_into().unwrap());
    assert_eq!(
        answers[0],
        format!("{KIMAGE_VADDR:#x}: {head:#x} (64-bit)"),
        "text through the image mapping"
    );
    assert_eq!(
        answers[1],
        format!("{linear_alias:#x}: {head:#x} (64-bit)"),
        "the same bytes through the linear map"
    );
    assert_eq!(
        answers[2], "fault at 0x1000: translation fault at level 0",
        "TTBR0 is off"
    );
    assert!(
        answers[3].starts_with("fault at 0xffff7fff00000000: translation fault"),
        "{}",
        answers[3]
    );
    // Device memory only when asked twice; then PL011 UARTPeriphID0 reads
    // 0x11 (ARM PL011 TRM).
    assert!(
        out.contains(&format!("error: {:#x} is device memory", mmio + 0xfe0)),
        "{out}"
    );
    assert_eq!(answers[4], format!("{:#x}: 0x11 (32-bit)", mmio + 0xfe0));
    assert!(out.contains("commands:"), "the shell still answers");
}

#[test]
fn the_image_alias_is_writable_by_default_and_read_only_with_rodata_full() {
    // Default: pure 1 GiB blocks, the alias is writable (the write puts back
    // the word it read), and the shell goes on.
    let out = session(&[], &["layout", "crash write-alias", "test image_alias"]);
    assert!(
        out.contains("crash: no fault: the linear alias of the text is writable"),
        "{out}"
    );
    assert_eq!(row(&layout_rows(&out), "linear").map, (1, 0, 0));
    assert_eq!(ktap_totals(&out), (1, 0));

    // rodata=full: only the covering block is split, the alias write faults.
    let run = splitmap(&[
        "run",
        "--append",
        "rodata=full",
        "--cmd",
        "layout",
        "--cmd",
        "test",
        "--cmd",
        "crash write-alias",
    ]);
    assert!(!run.success);
    let rows = layout_rows(&run.stdout);
    let linear: Vec<&Row> = rows.iter().filter(|r| r.name == "linear").collect();
    // Text and rodata fit inside one 2 MiB block: 511 blocks + 512 pages, two tables more.
    let total = linear
        .iter()
        .fold((0, 0, 0), |t, r| (t.0 + r.map.0, t.1 + r.map.1, t.2 + r.map.2));
    assert_eq!(total, (0, 511, 512), "{}", run.stdout);
    // The alias is a row of its own, read-only; the rest of RAM is data.
    let prots: Vec<&str> = linear.iter().map(|r| r.prot.as_str()).collect();
    assert_eq!(prots, ["rw-", "r--", "rw-"], "{}", run.stdout);
    assert!(run.stdout.contains("the split cost 2 table pages"), "{}", run.stdout);
    assert_eq!(ktap_totals(&run.stdout).1, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("permission fault at level 3 on write"),
        "{}",
        run.stdout
    );
}

#[test]
fn exceptions_print_a_symbolised_backtrace_with_link_time_addresses() {
    use object::{Object, ObjectSymbol};
    let run = splitmap(&["run", "--timeout", "60", "--cmd", "crash null"]);
    assert!(!run.success);
    let (_, text) = boot_line(&run.stdout);
    let offset = text - KIMAGE_VADDR;
    let frames: Vec<&str> = run.stdout.lines().filter(|l| l.trim_start().starts_with('#')).collect();
    assert!(frames.len() >= 2, "{}", run.stdout);
    // The ELF on the host, read independently: each frame's link-time address
    // must fall inside the symbol the kernel named.
    let elf_bytes = artifact("elf");
    let elf = object::File::parse(&*elf_bytes).unwrap();
    for frame in &frames {
        let words: Vec<&str> = frame.split_whitespace().collect();
        let (runtime, link) = (hex(words[1]), hex(words[3].trim_end_matches(')')));
        assert_eq!(runtime - offset, link, "{frame}");
        let name = words[4].rsplit_once('+').unwrap().0;
        let symbol = elf
            .symbols()
            .find(|s| s.size() > 0 && (s.address()..s.address() + s.size()).contains(&link))
            .unwrap_or_else(|| panic!("no ELF symbol covers {link:#x}"));
        let elf_name = format!("{:#}", rustc_demangle::demangle(symbol.name().unwrap()));
        assert_eq!(elf_name, name, "{frame}");
    }
    assert!(
        frames[0].contains(" kernel::shell::crash::crash+0x"),
        "the fault is in crash(): {}",
        frames[0]
    );
    // The chain ends on the first frame of the kernel stack, its record at
    // the very top of the stack.
    assert!(
        frames.last().is_some_and(|f| f.ends_with(" splitmap_first_frame+0x0")),
        "{frames:?}"
    );
}

/// A branch into the linear map faults at a PC outside every function, with
/// no frame record of its own: the backtrace names the caller from LR, and
/// gives no link-time address for a PC outside the image.
#[test]
fn a_backtrace_from_outside_the_image_names_the_caller_from_lr() {
    let run = splitmap(&["run", "--timeout", "60", "--cmd", "crash exec-linear"]);
    assert!(!run.success);
    let frames: Vec<&str> = run.stdout.lines().filter(|l| l.trim_start().starts_with('#')).collect();
    assert!(frames.len() >= 3, "{}", run.stdout);
    assert!(
        frames[0].ends_with(" ? (not in the kernel image or a module)") && !frames[0].contains("(link"),
        "{frames:?}"
    );
    assert!(
        frames[1].contains(" kernel::shell::crash::crash+0x") && frames[1].contains("(from LR"),
        "crash() called it: {frames:?}"
    );
    assert!(frames[2].contains(" kernel::shell::commands::"), "{frames:?}");
}

/// The exception vector checks SP's alignment before its first store, since
/// hardware faults a store through a misaligned SP and TCG does not: a
/// kernel built with the test-only feature `misaligned-frame` (8 bytes too
/// many reserved per frame) is caught at the first exception, by name.
#[test]
fn a_misaligned_exception_frame_is_reported_at_entry() {
    use splitmap::qemu::{Boot, Console};
    let boot = Boot {
        nokaslr: true,
        console: Console::Piped,
        ..Boot::default()
    };
    let out = boot_kernel_with_feature("misaligned-frame", boot, &["peek 0", "help"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("exception entry: SP="))
        .unwrap_or_else(|| panic!("the entry check said nothing:\n{out}"));
    let sp = hex(line
        .trim_start_matches("exception entry: SP=")
        .split_whitespace()
        .next()
        .unwrap());
    assert_eq!(sp % 16, 8, "{line}");
    assert!(line.contains("(SP mod 16 = 8)"), "{line}");
    assert!(
        out.contains("kernel panic: exception entered with a misaligned stack pointer"),
        "{out}"
    );
    assert!(
        !out.lines().any(|l| l.trim_end() == "commands:"),
        "nothing runs after it:\n{out}"
    );
}
