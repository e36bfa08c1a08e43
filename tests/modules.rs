//! Modules from the initrd: loaded, called, unloaded, with veneers exactly
//! when the kernel is out of a branch's reach.

mod common;
use common::*;

/// From hello.ko itself, parsed here on the host: (all CALL26/JUMP26 branches,
/// branches to kernel exports, distinct exports branched to).
fn hello_branches() -> (u64, u64, u64) {
    use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};
    // build.rs writes hello.ko next to the initrd.
    let build = splitmap(&["build"]).stdout;
    let initrd = build.lines().find_map(|l| l.strip_prefix("initrd: ")).unwrap();
    let bytes = std::fs::read(std::path::Path::new(initrd).with_file_name("hello.ko")).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let (mut all, mut to_kernel) = (0, 0);
    let mut exports = std::collections::BTreeSet::new();
    for section in file.sections() {
        for (_, r) in section.relocations() {
            let RelocationFlags::Elf { r_type: 282 | 283 } = r.flags() else {
                continue;
            };
            all += 1;
            if let RelocationTarget::Symbol(i) = r.target() {
                let symbol = file.symbol_by_index(i).unwrap();
                if symbol.is_undefined() {
                    to_kernel += 1;
                    exports.insert(symbol.name().unwrap().to_string());
                }
            }
        }
    }
    (all, to_kernel, exports.len() as u64)
}

/// `free frames=N` from `mem`, each time it appears.
fn free_frames(out: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|l| l.strip_prefix("free     frames="))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// The `lsmod` line for `hello`: (plt, direct, distance).
fn hello_line(out: &str) -> (u64, u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("hello base="))
        .expect("a hello line");
    let field = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap();
    (
        field("plt=").parse().unwrap(),
        field("direct=").parse().unwrap(),
        hex(field("distance=")),
    )
}

#[test]
fn near_modules_call_the_kernel_directly() {
    let out = session(&[], &["mem", "insmod hello", "lsmod", "rmmod hello", "lsmod", "mem"]);
    assert!(
        out.lines().any(|l| l == "hello: loaded"),
        "init_module ran and called splitmap_log:\n{out}"
    );
    assert!(out.lines().any(|l| l == "hello: unloading"), "exit_module ran:\n{out}");
    let (plt, direct, distance) = hello_line(&out);
    let (branches, _, _) = hello_branches();
    assert_eq!((plt, direct), (0, branches), "every branch reaches its target directly");
    assert!(distance < 128 << 20, "{distance:#x} is within bl reach");
    let after_rmmod = out.split("splitmap> lsmod").nth(2).unwrap();
    assert!(
        !after_rmmod.lines().any(|l| l.starts_with("hello ")),
        "lsmod is empty after rmmod"
    );
    let free = free_frames(&out);
    assert_eq!(free[0], free[1], "rmmod gives back every frame");
}

#[test]
fn far_modules_go_through_one_veneer_per_target() {
    let out = session(&["--append", "module.region=far"], &["insmod hello", "lsmod"]);
    let (plt, direct, distance) = hello_line(&out);
    // One veneer per export called, however often (Linux's counting rule);
    // branches inside the module still reach directly.
    let (branches, to_kernel, exports) = hello_branches();
    assert!(
        to_kernel > exports,
        "hello calls some export twice, so sharing is tested"
    );
    assert_eq!((plt, direct), (exports, branches - to_kernel));
    assert!(distance >= 128 << 20, "{distance:#x} is out of bl reach");
    assert!(
        out.lines().any(|l| l == "hello: loaded"),
        "the call through the veneer arrived:\n{out}"
    );
}

#[test]
fn modules_load_at_the_link_address_too() {
    let out = session(&["--nokaslr"], &["insmod hello", "lsmod"]);
    let (_, direct, _) = hello_line(&out);
    assert_eq!(direct, hello_branches().0);
}

#[test]
fn a_hundred_loads_and_unloads_leak_nothing() {
    let mut cmds = vec!["mem"];
    for _ in 0..100 {
        cmds.extend(["insmod hello", "rmmod hello"]);
    }
    cmds.extend(["mem", "lsmod"]);
    let out = session(&[], &cmds);
    assert_eq!(out.lines().filter(|l| *l == "hello: loaded").count(), 100);
    assert_eq!(out.lines().filter(|l| *l == "hello: unloading").count(), 100);
    let free = free_frames(&out);
    assert_eq!(free[0], free[1], "free frames back where they started");
    assert!(!out.contains("error:"), "{out}");
}

#[test]
fn bad_requests_are_errors_and_change_nothing() {
    let out = session(
        &[],
        &[
            "insmod hello",
            "insmod hello",
            "insmod nope",
            "rmmod nope",
            "insmod",
            "lsmod",
        ],
    );
    for want in [
        "error: insmod hello is already loaded",
        "error: insmod no module nope in the initrd",
        "error: rmmod nope is not loaded",
        "error: usage: insmod NAME",
    ] {
        assert!(out.lines().any(|l| l.starts_with(want)), "{want}:\n{out}");
    }
    let last = out.rsplit("splitmap> lsmod").next().unwrap();
    assert_eq!(
        last.lines().filter(|l| l.starts_with("hello base=")).count(),
        1,
        "still exactly one hello"
    );
}

#[test]
fn broken_modules_are_refused_by_name_and_change_nothing() {
    // build.rs puts broken copies of hello in the initrd (src/kbuild.rs, broken_variants).
    let out = session(
        &[],
        &[
            "mem",
            "insmod hello-truncated",
            "insmod hello-badreloc",
            "insmod hello-undefined",
            "lsmod",
            "mem",
            "insmod hello",
        ],
    );
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: insmod ")).collect();
    assert_eq!(errors.len(), 3, "{out}");
    assert!(
        errors[0].starts_with("error: insmod hello-truncated: not an ELF file"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("unsupported relocation type 1023 in .text"),
        "{}",
        errors[1]
    );
    assert!(errors[2].ends_with("undefined symbol splitmap_lox"), "{}", errors[2]);
    let free = free_frames(&out);
    assert_eq!(free[0], free[1], "a refused load frees everything it took");
    let lsmod = out
        .split("splitmap> lsmod")
        .nth(1)
        .unwrap()
        .split("splitmap> ")
        .next()
        .unwrap();
    assert!(!lsmod.contains("base="), "nothing half-loaded: {lsmod}");
    assert!(
        out.lines().any(|l| l == "hello: loaded"),
        "the intact module still loads"
    );
}

#[test]
fn a_module_adds_a_shell_command_and_rmmod_takes_it_away() {
    let out = session(&[], &["hello", "insmod hello", "hello", "help", "rmmod hello", "hello"]);
    let answers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("error: unknown command 'hello'") || *l == "hello from a module")
        .collect();
    assert_eq!(answers.len(), 3, "{out}");
    assert!(
        answers[0].starts_with("error:") && answers[1] == "hello from a module" && answers[2].starts_with("error:"),
        "{answers:?}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("hello") && l.ends_with("(from module hello)")),
        "help lists it:\n{out}"
    );
}

#[test]
fn pointer_tables_in_module_data_are_relocated() {
    use object::{Object, ObjectSection, RelocationFlags, SectionFlags};
    // data.ko, parsed here: its allocated data really holds ABS64 relocations.
    let build = splitmap(&["build"]).stdout;
    let initrd = build.lines().find_map(|l| l.strip_prefix("initrd: ")).unwrap();
    let bytes = std::fs::read(std::path::Path::new(initrd).with_file_name("data.ko")).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let abs64_in_allocated = file
        .sections()
        .filter(|s| matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & 2 != 0))
        .flat_map(|s| s.relocations().collect::<Vec<_>>())
        .filter(|(_, r)| r.flags() == RelocationFlags::Elf { r_type: 257 })
        .count();
    assert!(
        abs64_in_allocated >= 6,
        "three function pointers and three string pointers: {abs64_in_allocated}"
    );
    for region in ["module.region=near", "module.region=far"] {
        let out = session(&["--append", region], &["insmod data"]);
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("data: ")).collect();
        assert_eq!(
            lines,
            [
                "data: one",
                "data: two",
                "data: three",
                "data: function and string tables relocated"
            ],
            "{region}:\n{out}"
        );
    }
}
