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
        &["insmod rogue", command, "lsmod -v", "insmod hello", "hello", "rmmod hello"],
    );
    assert!(!out.contains("kernel panic"), "{command}:\n{out}");
    assert!(out.contains("hello: loaded"), "{command}: the shell went on:\n{out}");
    assert!(out.lines().any(|l| l == "hello from a module"), "{command}:\n{out}");
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
        line.contains("stack overflow (FAR=0x") && line.contains("in the guard page below the kernel stack) at rogue_recurse+0x"),
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
    assert!(out.lines().any(|l| l == "rogue: blocks of 64 KiB before null: 16"), "{out}");
    let holds = out.lines().find(|l| l.starts_with("  holds pages=")).unwrap();
    assert!(
        holds.ends_with("heap-blocks=16 heap-bytes=1048576 heap-budget=1048576 block-budget=256"),
        "{holds}"
    );
    assert!(out.lines().any(|l| l == "rogue: huge: null"), "{out}");
    // -1, refused by its length before a byte of it was read or copied.
    assert!(out.lines().any(|l| l == "rogue: long-name: 1"), "{out}");
    assert!(out.contains("register_command refused: the name is 3145728 bytes, longer than 32"), "{out}");
    assert!(out.lines().any(|l| l == "rogue: bad-name: refused"), "{out}");
    assert!(out.contains("register_command refused: the name has byte 0x1b"), "{out}");
    assert!(!out.contains('\x1b'), "nothing of the name reached the console");
    // rogue has 5 commands of its own: 27 more make 32.
    assert!(out.lines().any(|l| l == "rogue: names registered: 27"), "{out}");
    assert!(out.contains("the module has 32 registrations of this kind already"), "{out}");
    assert!(out.contains("  rogue-n0026 "), "help lists the last one:\n{out}");
    assert!(!out.contains("rogue-n0027"), "{out}");
    // rmmod takes back the 16 blocks and 32 commands.
    assert!(
        out.contains("rmmod: rogue left 32 registration(s) and 16 allocation(s) (1048576 bytes); taken back"),
        "{out}"
    );
    assert!(out.contains("hello: loaded"), "{out}");
}
