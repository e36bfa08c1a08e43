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

/// A contained fault costs the kernel heap a few bytes (the module's fault
/// record) and no more, however many came before: the abandoned frames own
/// nothing on the heap. A faulted module stays loaded (its commands gone,
/// `rmmod` refused), so each fault needs a module of its own: copies of
/// `faulty` under other names, in an initrd of their own.
#[test]
fn contained_faults_leave_no_heap_behind_however_many() {
    const COPIES: usize = 40;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faulty-copies");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let faulty = module_file("faulty");
    for i in 0..COPIES {
        std::fs::write(dir.join(format!("f{i:02}.ko")), &faulty).unwrap();
    }
    let initrd = dir.with_extension("cpio").display().to_string();
    let packed = splitmap(&["initrd", &dir.display().to_string(), "-o", &initrd]);
    assert!(packed.success, "{}", packed.stderr);
    // Each way of faulting in turn: in the module, and in an export for it.
    let kinds = ["null", "bad-log", "undef", "bad-unregister"];
    let mut cmds = vec![];
    for i in 0..COPIES {
        cmds.push(format!("insmod f{i:02}"));
        cmds.push("mem".into());
        cmds.push(format!("faulty {}", kinds[i % kinds.len()]));
        cmds.push("mem".into());
    }
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let out = session(&["--initrd", &initrd], &refs);
    assert!(!out.contains("kernel panic"), "{out}");
    assert_eq!(out.matches(" faulted: ").count(), COPIES, "{out}");
    let heap = heap_in_use(&out);
    assert_eq!(heap.len(), 2 * COPIES, "{out}");
    // The fault record (a line of text, rounded up by the buddy heap) less
    // the registrations the fault took away.
    let per_fault: Vec<i64> = heap.chunks(2).map(|p| p[1] as i64 - p[0] as i64).collect();
    assert!(per_fault.iter().all(|&d| d.abs() <= 256), "{per_fault:?}");
    // The same kind of fault costs the same the 10th time as the 1st.
    for k in 0..kinds.len() {
        let same: Vec<i64> = per_fault.iter().skip(k).step_by(kinds.len()).copied().collect();
        assert!(same.iter().all(|&d| d == same[0]), "{}: {same:?}", kinds[k]);
    }
    // The kernel's own count of what abandoned frames held: nothing.
    let leaked: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("bytes of kernel heap left by the abandoned frames"))
        .collect();
    assert_eq!(leaked.len(), COPIES, "{out}");
    assert!(
        leaked.iter().all(|l| l.contains(", 0 bytes of kernel heap")),
        "{leaked:#?}"
    );
}
