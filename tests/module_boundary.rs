//! The module boundary (docs/design-notes.md): what `modules/rogue` does to
//! break the module ABI is refused or contained, the module named, the shell
//! going on. Each fault is its own boot: a faulted module's commands are
//! taken away.

mod common;
use common::*;

/// `rogue COMMAND` (after `insmod rogue`), then `lsmod -v` and `insmod
/// hello`: the shell must go on, and `hello` must still load and run.
fn rogue(command: &str) -> String {
    let out = session(
        &[],
        &[
            "insmod rogue",
            command,
            "lsmod -v",
            "insmod hello",
            "hello",
            "rmmod hello",
        ],
    );
    assert!(!out.contains("kernel panic"), "{command}:\n{out}");
    assert!(out.contains("hello: loaded"), "{command}: the shell went on:\n{out}");
    assert!(
        out.lines().any(|l| l == "hello: hello from a module"),
        "{command}:\n{out}"
    );
    out
}

/// The `module rogue faulted: ...` line.
fn fault_line(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("module rogue faulted: "))
        .unwrap_or_else(|| panic!("no fault line:\n{out}"))
}

#[test]
fn a_stack_overflow_in_module_code_is_a_contained_fault() {
    let out = rogue("rogue-recurse");
    assert!(
        out.contains("overflowed the kernel stack (FAR=0x"),
        "the report names the overflow:\n{out}"
    );
    let line = fault_line(&out);
    assert!(
        line.contains("stack overflow (FAR=0x")
            && line.contains("in the guard page below the kernel stack) at rogue_recurse+0x"),
        "{line}"
    );
    assert!(out.contains("rogue base=") && out.contains(" faulted\n"), "{out}");
}

#[test]
fn callee_saved_registers_clobbered_by_a_module_are_a_contained_fault() {
    for (command, register) in [("rogue-x19", "x19"), ("rogue-sp", "sp"), ("rogue-d8", "d8")] {
        let out = rogue(command);
        let line = fault_line(&out);
        let function = command.replace('-', "_");
        assert!(
            line.contains(&format!(
                "clobbered {register}, which AAPCS64 has a callee preserve, returning from {function}+0x0 [rogue]"
            )),
            "{command}: {line}"
        );
        // Only that register: the check compares each one.
        assert!(!line.contains(", x2") && !line.contains(", d"), "{command}: {line}");
    }
}

#[test]
fn exports_refuse_what_would_exhaust_the_kernel_heap() {
    let out = session(
        &[],
        &[
            "insmod rogue",
            "rogue alloc-all",
            "lsmod -v",
            "rogue alloc-huge",
            "rogue long-name",
            "rogue bad-name",
            "rogue many-names",
            "help",
            "rmmod rogue",
            "insmod hello",
        ],
    );
    assert!(!out.contains("kernel panic"), "{out}");
    // 1 MiB of budget in 64 KiB blocks.
    assert!(
        out.lines().any(|l| l == "rogue: blocks of 64 KiB before null: 16"),
        "{out}"
    );
    let holds = out.lines().find(|l| l.starts_with("  holds pages=")).unwrap();
    assert!(
        holds.ends_with("heap-blocks=16 heap-bytes=1048576 heap-budget=1048576 block-budget=256"),
        "{holds}"
    );
    assert!(out.lines().any(|l| l == "rogue: huge: null"), "{out}");
    // -1, refused by its length before a byte of it was read or copied.
    assert!(out.lines().any(|l| l == "rogue: long-name: 1"), "{out}");
    assert!(
        out.contains("register_command refused: the name is 3145728 bytes, longer than 32"),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "rogue: bad-name: refused"), "{out}");
    assert!(
        out.contains("register_command refused: the name has byte 0x1b"),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "nothing of the name reached the console");
    // rogue has 5 commands of its own: 27 more make 32.
    assert!(out.lines().any(|l| l == "rogue: names registered: 27"), "{out}");
    assert!(
        out.contains("the module has 32 registrations of this kind already"),
        "{out}"
    );
    assert!(out.contains("  rogue-n0026 "), "help lists the last one:\n{out}");
    assert!(!out.contains("rogue-n0027"), "{out}");
    // rmmod takes back the 16 blocks and 32 commands.
    assert!(
        out.contains("rmmod: rogue left 32 registration(s) and 16 allocation(s) (1048576 bytes); taken back"),
        "{out}"
    );
    assert!(out.contains("hello: loaded"), "{out}");
}

/// The `heap     in-use=N` values `mem` printed, in order.
fn heap_in_use(out: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|l| l.strip_prefix("heap     in-use="))
        .map(|n| n.parse().unwrap())
        .collect()
}

/// Contained faults cost nothing that outlives `rmmod`, however many there
/// are: `rmmod` removes a faulted module without running its code and frees
/// all it held, so one module can be loaded, faulted and removed again and
/// again. The heap after 200 rounds is the heap after 10 (the first rounds
/// grow the kernel's lists to their size), and every frame comes back.
/// Before, `rmmod` refused a faulted module: each fault kept its module for
/// good, and `insmod faulty` a second time was refused.
#[test]
fn contained_faults_leave_no_heap_behind_however_many() {
    const ROUNDS: usize = 200;
    // Each way of faulting in turn: in the module, in an export for it, and
    // in `exit_module` (the first `rmmod` faults, the second removes it).
    let kinds = ["null", "bad-log", "undef", "bad-unregister", "exit-null"];
    let mut cmds = vec!["mem".to_string()];
    for i in 1..=ROUNDS {
        let kind = kinds[i % kinds.len()];
        cmds.push("insmod faulty".into());
        cmds.push(format!("faulty {kind}"));
        if kind == "exit-null" {
            cmds.push("rmmod faulty".into());
        }
        cmds.push("rmmod faulty".into());
        if i == 10 || i == ROUNDS {
            cmds.push("mem".into());
            cmds.push("lsmod -v".into());
        }
    }
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let out = session(&[], &refs);
    assert!(!out.contains("kernel panic"), "{out}");
    assert!(!out.contains("error: insmod"), "every load succeeded:\n{out}");
    assert_eq!(out.matches("\nmodule faulty faulted: ").count(), ROUNDS, "{out}");
    let removed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("rmmod: faulty had faulted ("))
        .collect();
    assert_eq!(removed.len(), ROUNDS, "{out}");
    assert!(
        removed.iter().all(|l| l.contains(
            "exit_module not run, since its code is not trusted to run again; its 3 pages, tables, 0 veneer(s) and records freed"
        )),
        "{removed:#?}"
    );
    // exit-null's exit_module faulted once, at the first rmmod, and never
    // ran again: its fault line is the only one naming exit.
    assert_eq!(
        out.matches("error: rmmod faulty: exit_module faulted").count(),
        ROUNDS / kinds.len(),
        "{out}"
    );
    // Nothing stays listed.
    for listing in out.split("splitmap> lsmod -v").skip(1) {
        let listing = listing.split("splitmap> ").next().unwrap();
        assert!(!listing.contains("base="), "{listing}");
    }
    let heap = heap_in_use(&out);
    assert_eq!(heap.len(), 3, "{out}");
    assert!(
        heap[2].abs_diff(heap[1]) <= 64,
        "the heap after {ROUNDS} rounds is the heap after 10: {heap:?}"
    );
    let free = free_frames(&out);
    assert_eq!(free.len(), 3, "{out}");
    assert_eq!(free[0], free[1], "every frame came back after 10 rounds: {free:?}");
    assert_eq!(free[0], free[2], "and after {ROUNDS}: {free:?}");
    // The kernel's own count of what abandoned frames held: nothing.
    let leaked: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("bytes of kernel heap left by the abandoned frames"))
        .collect();
    assert_eq!(leaked.len(), ROUNDS, "{out}");
    assert!(
        leaked.iter().all(|l| l.contains(", 0 bytes of kernel heap")),
        "{leaked:#?}"
    );
    assert!(
        out.contains("# kernel heap left behind by frames a module fault abandoned: 0 bytes"),
        "{out}"
    );
}
