//! Modules from the initrd: loaded, called, unloaded, with veneers exactly
//! when the kernel is out of a branch's reach.

mod common;
use common::*;

/// Branches in module `name`.ko, parsed here on the host.
struct Branches {
    /// Every CALL26/JUMP26.
    all: u64,
    /// Those to kernel exports.
    to_kernel: u64,
    /// Distinct exports branched to.
    exports: u64,
}

fn branches(name: &str) -> Branches {
    use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};
    let bytes = module_file(name);
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
    Branches {
        all,
        to_kernel,
        exports: exports.len() as u64,
    }
}

/// A module's `lsmod` line, as numbers.
#[derive(Debug)]
struct Line {
    plt: u64,
    slots: u64,
    direct: u64,
    distance: u64,
}

/// The last `lsmod` line for module `name`.
fn module_line(out: &str, name: &str) -> Line {
    let line = out
        .lines()
        .rfind(|l| l.starts_with(&format!("{name} base=")))
        .unwrap_or_else(|| panic!("no {name} line:\n{out}"));
    let field = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap();
    Line {
        plt: field("plt=").parse().unwrap(),
        slots: field("slots=").parse().unwrap(),
        direct: field("direct=").parse().unwrap(),
        distance: hex(field("distance=")),
    }
}

#[test]
fn near_modules_call_the_kernel_directly() {
    let out = session(&[], &["mem", "insmod hello", "lsmod", "rmmod hello", "lsmod", "mem"]);
    assert!(
        out.lines().any(|l| l == "hello: loaded"),
        "init_module ran and called splitmap_log:\n{out}"
    );
    assert!(out.lines().any(|l| l == "hello: unloading"), "exit_module ran:\n{out}");
    let line = module_line(&out, "hello");
    assert_eq!(
        (line.plt, line.direct),
        (0, branches("hello").all),
        "every branch reaches directly"
    );
    assert!(line.distance < 128 << 20, "{:#x} is within bl reach", line.distance);
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
    let mut cmds = vec![];
    for m in MODULES {
        cmds.push(format!("insmod {m}"));
    }
    cmds.push("lsmod".into());
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let out = session(&["--append", "module.region=far"], &cmds);
    assert!(!out.contains("error:"), "{out}");
    for m in MODULES {
        let line = module_line(&out, m);
        // One veneer per export called, however often (Linux's counting rule);
        // branches inside the module, across its sections too, reach directly.
        let b = branches(m);
        assert_eq!(
            (line.plt, line.direct),
            (b.exports, b.all - b.to_kernel),
            "{m}: {line:?}"
        );
        assert!(line.plt <= line.slots, "{m}: never more veneers than counted: {line:?}");
        assert!(
            line.distance >= 128 << 20,
            "{m}: {:#x} is out of bl reach",
            line.distance
        );
    }
    let far = branches("farcalls");
    assert!(far.exports >= 8, "farcalls calls every export");
    assert!(
        far.to_kernel > far.exports,
        "and some from several places, so sharing is tested"
    );
    for (m, greeting) in [
        ("hello", "hello: loaded"),
        ("farcalls", "farcalls: loaded"),
        ("pingpong", "pingpong: loaded; 27 takes 111 steps"),
        ("data", "data: pointer, offset and string tables relocated"),
    ] {
        assert!(
            out.lines().any(|l| l == greeting),
            "{m}: the calls through veneers arrived:\n{out}"
        );
    }
}

#[test]
fn modules_load_at_the_link_address_too() {
    let out = session(&["--nokaslr"], &["insmod hello", "lsmod"]);
    assert_eq!(module_line(&out, "hello").direct, branches("hello").all);
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
    refused_took_nothing(&out);
    assert!(
        out.lines().any(|l| l == "hello: loaded"),
        "the intact module still loads"
    );
}

#[test]
fn a_module_adds_a_shell_command_and_rmmod_takes_it_away() {
    let out = session(
        &[],
        &[
            "hello",
            "insmod hello",
            "insmod faulty",
            "hello",
            "help",
            "help faulty",
            "rmmod hello",
            "hello",
        ],
    );
    let answers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("error: unknown command 'hello'") || *l == "hello: hello from a module")
        .collect();
    assert_eq!(answers.len(), 3, "{out}");
    assert!(
        answers[0].starts_with("error:")
            && answers[1] == "hello: hello from a module"
            && answers[2].starts_with("error:"),
        "{answers:?}"
    );
    // help lists module commands apart, each with its usage and module.
    let help = out.split("splitmap> help\n").nth(1).unwrap();
    let modules = help
        .split("commands from loaded modules")
        .nth(1)
        .unwrap_or_else(|| panic!("module commands are marked:\n{help}"));
    assert!(
        modules
            .lines()
            .any(|l| l.starts_with("  hello ") && l.ends_with(" [module hello]")),
        "help lists it:\n{help}"
    );
    assert!(
        modules.contains("  faulty null|undef|bad-log|bad-unregister|exit-null|forge|unregister NAME\n"),
        "{help}"
    );
    // help NAME: the usage the module registered.
    let faulty = out.split("splitmap> help faulty\n").nth(1).unwrap();
    assert!(
        faulty.starts_with("usage: faulty null|undef|bad-log|bad-unregister|exit-null|forge|unregister NAME\n"),
        "{faulty}"
    );
}

#[test]
fn pointer_and_offset_tables_in_module_data_are_relocated() {
    use object::{Object, ObjectSection, RelocationFlags, SectionFlags};
    // data.ko, parsed here: its allocated sections really hold ABS64, PREL32
    // and PREL64 relocations.
    let bytes = module_file("data");
    let file = object::File::parse(&*bytes).unwrap();
    let in_allocated = |r_type| {
        file.sections()
            .filter(|s| matches!(s.flags(), SectionFlags::Elf { sh_flags } if sh_flags & 2 != 0))
            .flat_map(|s| s.relocations().collect::<Vec<_>>())
            .filter(|(_, r)| r.flags() == RelocationFlags::Elf { r_type })
            .count()
    };
    assert!(in_allocated(257) >= 6, "three function and three string pointers");
    assert_eq!((in_allocated(261), in_allocated(260)), (1, 1), "one PREL32, one PREL64");
    for region in ["module.region=near", "module.region=far"] {
        let out = session(&["--append", region], &["insmod data"]);
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("data: ")).collect();
        assert_eq!(
            lines,
            [
                "data: one",
                "data: two",
                "data: three",
                "data: pointer, offset and string tables relocated"
            ],
            "{region}:\n{out}"
        );
    }
}

#[test]
fn modules_add_tests_to_the_suite_and_rmmod_takes_back_what_they_leave() {
    let out = session(
        &["--append", "module.region=far"],
        &[
            "insmod farcalls",
            "insmod pingpong",
            "test",
            "pingpong 27",
            "farcalls",
            "farcalls leak",
            "rmmod farcalls",
            "rmmod pingpong",
            "pingpong 27",
            "test pingpong",
        ],
    );
    let ktap = out.split("splitmap> test\n").nth(1).unwrap();
    for name in ["farcalls_heap_blocks_round_trip", "pingpong_calls_cross_sections"] {
        assert!(
            ktap.lines().any(|l| l.starts_with("ok ") && l.ends_with(name)),
            "{name} ran and passed:\n{ktap}"
        );
    }
    let (_, failed) = ktap_totals(ktap);
    assert_eq!(failed, 0, "{ktap}");
    for want in [
        "pingpong: 27 takes 111 steps",
        "farcalls: heap round trip ok",
        "farcalls: leaked 4096 bytes",
        "farcalls: unloading",
        "rmmod: farcalls left 0 registration(s) and 1 allocation(s) (4096 bytes); taken back",
        "rmmod: pingpong left 2 registration(s) and 0 allocation(s) (0 bytes); taken back",
        "error: unknown command 'pingpong'",
    ] {
        assert!(out.lines().any(|l| l.starts_with(want)), "{want}:\n{out}");
    }
    let last = out.rsplit("splitmap> test pingpong").next().unwrap();
    assert!(last.contains("1..0"), "the module's test left with it:\n{last}");
}

#[test]
fn a_module_panic_stops_the_kernel_naming_the_module() {
    let run = splitmap(&[
        "run",
        "--timeout",
        "30",
        "--cmd",
        "insmod farcalls",
        "--cmd",
        "farcalls panic",
    ]);
    assert!(!run.success, "a panic is a failed run");
    let base = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("farcalls base="))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{}", run.stdout));
    let want = format!("kernel panic: module at {base} panicked: farcalls: asked to panic");
    assert!(run.stdout.lines().any(|l| l == want), "{want}\n{}", run.stdout);
    assert!(run.stderr.contains("kernel panic"), "{}", run.stderr);
}

#[test]
fn every_sample_loads_runs_and_unloads_near_and_far() {
    let cmds = [
        "mem",
        "insmod hello",
        "hello",
        "insmod data",
        "insmod farcalls",
        "farcalls",
        "insmod pingpong",
        "pingpong 97",
        "insmod faulty",
        "faulty",
        "lsmod",
        "rmmod hello",
        "rmmod data",
        "rmmod farcalls",
        "rmmod pingpong",
        "rmmod faulty",
        "lsmod",
        "mem",
    ];
    let regions = ["module.region=near", "module.region=far"];
    in_parallel(&regions, |region| {
        let out = session(&["--append", region], &cmds);
        assert!(!out.contains("error:"), "{region}:\n{out}");
        for want in [
            "hello: hello from a module",
            "data: pointer, offset and string tables relocated",
            "farcalls: heap round trip ok",
            "pingpong: 97 takes 118 steps",
            "faulty: usage: faulty null|undef|bad-log|bad-unregister|exit-null|forge|unregister NAME",
        ] {
            assert!(out.lines().any(|l| l == want), "{region}: {want}\n{out}");
        }
        for m in MODULES {
            let line = module_line(&out, m);
            assert!(line.plt <= line.slots, "{region} {m}: {line:?}");
            assert_eq!(line.plt == 0, *region == "module.region=near", "{region} {m}: {line:?}");
        }
        let last = out.rsplit("splitmap> lsmod").next().unwrap();
        assert!(!last.contains("base="), "{region}: all unloaded:\n{last}");
        let free = free_frames(&out);
        assert_eq!(free[0], free[1], "{region}: every frame back");
    });
}

#[test]
fn a_fault_in_module_code_is_contained_and_the_shell_goes_on() {
    // (kind, where the fault is named: in the module, or in the kernel on
    // the module's behalf)
    let cases = [
        ("null", "faulty::read+0x"),
        ("undef", "faulty::command+0x"),
        ("bad-log", "core::str::converts::from_utf8+0x"),
        // Unregistering reads the name before taking the registry's lock:
        // a fault under it would leave it held, and the kernel would hang.
        // The name's bytes are checked (printable ASCII) by the export itself.
        ("bad-unregister", "splitmap_unregister_command+0x"),
    ];
    in_parallel(&cases, |(kind, at)| {
        let run = format!("faulty {kind}");
        let out = session(
            &["--kaslr-seed", "0x77"],
            &[
                "mem",
                "insmod faulty",
                &run,
                "lsmod -v",
                "faulty null",
                "rmmod faulty",
                "insmod faulty",
                "faulty",
                "rmmod faulty",
                "insmod hello",
                "hello",
                "rmmod hello",
                "mem",
            ],
        );
        assert!(out.contains("module fault: the module at 0x"), "{kind}:\n{out}");
        assert!(!out.contains("kernel panic"), "{kind}:\n{out}");
        let summary = out
            .lines()
            .find(|l| l.starts_with("module faulty faulted: "))
            .unwrap_or_else(|| panic!("{kind}: no summary:\n{out}"));
        assert!(summary.contains(at), "{kind}: {summary}");
        assert!(summary.contains("1 command(s)/test(s) taken away"), "{summary}");
        if !kind.starts_with("bad-") {
            // The backtrace names the module's own function.
            assert!(
                out.lines()
                    .any(|l| l.trim_start().starts_with("#0 ") && l.contains(" [faulty]")),
                "{kind}:\n{out}"
            );
        }
        // Listed as faulted, with what it holds; its command is gone;
        // `rmmod` removes it without running its code, and it loads afresh,
        // its command back; other modules work.
        // insmod printed the first line; lsmod -v the second.
        let pages = faulted_pages(&out);
        assert!(out.contains("error: unknown command 'faulty'"), "{kind}:\n{out}");
        let removed = out
            .lines()
            .find(|l| l.starts_with("rmmod: faulty had faulted ("))
            .unwrap_or_else(|| panic!("{kind}: rmmod removed it:\n{out}"));
        assert!(
            removed.ends_with(&format!(
                "exit_module not run, since its code is not trusted to run again; its {pages} pages, tables, 0 veneer(s) and records freed"
            )),
            "{kind}: {removed}"
        );
        assert!(!out.contains("error: insmod"), "{kind}: it loads again:\n{out}");
        assert!(
            out.lines().any(|l| l.starts_with("faulty: usage: faulty ")),
            "{kind}: its command is back:\n{out}"
        );
        assert!(out.contains("hello from a module"), "{kind}:\n{out}");
        // Every frame came back.
        let free = free_frames(&out);
        assert_eq!(free[0], free[1], "{kind}: {free:?}");
    });
}

/// A refused `insmod` changed nothing: the first two `mem`s count the same
/// free frames, and the first `lsmod` lists no module.
fn refused_took_nothing(out: &str) {
    let free = free_frames(out);
    assert_eq!(free[0], free[1], "a refused load frees everything it took");
    let lsmod = out
        .split("splitmap> lsmod")
        .nth(1)
        .unwrap()
        .split("splitmap> ")
        .next()
        .unwrap();
    assert!(!lsmod.contains("base="), "nothing half-loaded: {lsmod}");
}

/// The pages `lsmod -v` (after insmod's line) says faulted `faulty` holds,
/// once it is listed as faulted.
fn faulted_pages(out: &str) -> u64 {
    let listed = out.lines().filter(|l| l.starts_with("faulty base=")).nth(1).unwrap();
    assert!(listed.ends_with(" faulted"), "{listed}");
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix("holds pages="))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("lsmod -v:\n{out}"))
}

#[test]
fn a_fault_in_exit_module_leaves_the_module_listed_and_faulted_until_rmmod() {
    let out = session(
        &[],
        &[
            "mem",
            "insmod faulty",
            "faulty exit-null",
            "rmmod faulty",
            "lsmod -v",
            "insmod faulty",
            "insmod hello",
            "hello",
            "rmmod hello",
            "rmmod faulty",
            "lsmod",
            "mem",
        ],
    );
    assert!(out.lines().any(|l| l == "faulty: exit_module will fault"), "{out}");
    assert!(out.contains("module fault: the module at 0x"), "{out}");
    assert!(!out.contains("kernel panic"), "{out}");
    let summary = out
        .lines()
        .find(|l| l.starts_with("module faulty faulted: "))
        .unwrap_or_else(|| panic!("the faulting exit found its module:\n{out}"));
    assert!(summary.contains("faulty::read+0x"), "{summary}");
    // Still listed, faulted, holding its pages; it cannot be loaded again,
    // and its place is not given to another module.
    let pages = faulted_pages(&out);
    assert!(
        out.contains("error: rmmod faulty: exit_module faulted; it stays, marked faulted (see lsmod -v; rmmod faulty again removes it without running its code)"),
        "{out}"
    );
    assert!(out.contains("error: insmod faulty is already loaded"), "{out}");
    let base = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} base=")))
            .and_then(|l| l.split_whitespace().next())
            .map(hex)
            .unwrap()
    };
    assert_ne!(base("hello"), base("faulty"), "{out}");
    assert!(out.lines().any(|l| l == "hello: hello from a module"), "{out}");
    assert!(!out.contains("rmmod: hello left"), "hello inherited nothing:\n{out}");
    // The second rmmod removes it without running exit_module again: one fault.
    assert_eq!(out.matches("module fault: the module at 0x").count(), 1, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("rmmod: faulty had faulted (")
            && l.ends_with(&format!("its {pages} pages, tables, 0 veneer(s) and records freed"))),
        "{out}"
    );
    let last = out.rsplit("splitmap> lsmod").next().unwrap();
    assert!(!last.contains("base="), "nothing listed:\n{last}");
    let free = free_frames(&out);
    assert_eq!(free[0], free[1], "every frame came back: {free:?}");
}

#[test]
fn a_module_cannot_unregister_another_modules_command() {
    let out = session(
        &[],
        &[
            "insmod hello",
            "insmod faulty",
            "faulty unregister hello",
            "hello",
            "rmmod hello",
            "hello",
        ],
    );
    let answers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("error: unknown command 'hello'") || *l == "hello: hello from a module")
        .collect();
    assert!(
        answers.len() == 2 && answers[0] == "hello: hello from a module" && answers[1].starts_with("error:"),
        "hello's command survived faulty's attempt, and left with hello:\n{out}"
    );
    assert!(!out.contains("error: rmmod"), "{out}");
}

#[test]
fn a_module_file_the_heap_cannot_copy_is_refused_and_changes_nothing() {
    // An initrd with a file of more than 2 MiB, more than the 4 MiB kernel
    // heap can hand out in one block, beside an ordinary module.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("big-module");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut big = module_file("hello");
    big.resize((2 << 20) + 8, 0);
    std::fs::write(dir.join("big.ko"), &big).unwrap();
    std::fs::write(dir.join("hello.ko"), module_file("hello")).unwrap();
    let initrd = dir.with_extension("cpio").display().to_string();
    let packed = splitmap(&["initrd", &dir.display().to_string(), "-o", &initrd]);
    assert!(packed.success, "{}", packed.stderr);

    let out = session(
        &["--initrd", &initrd],
        &["mem", "insmod big", "mem", "lsmod", "insmod hello", "hello"],
    );
    let refusal = out
        .lines()
        .find(|l| l.starts_with("error: insmod big: "))
        .unwrap_or_else(|| panic!("big.ko was not refused:\n{out}"));
    assert!(
        refusal.contains(&format!("the file is {} bytes; a module file is at most", big.len())),
        "{refusal}"
    );
    refused_took_nothing(&out);
    assert!(out.lines().any(|l| l == "hello: hello from a module"), "{out}");
}

#[test]
fn hostile_modules_are_refused_by_name_and_offset_and_change_nothing() {
    // modules/hostile: its command would run `msr daifset, #0xf; wfi`.
    // A name ending in .ko.ko has no module: `data.ko.ko` is not `data.ko`.
    let out = session(
        &[],
        &[
            "mem",
            "insmod hostile",
            "insmod hostile.ko",
            "insmod data.ko.ko",
            "rmmod data.ko.ko",
            "lsmod",
            "mem",
            "insmod data.ko",
            "lsmod",
            "rmmod data",
        ],
    );
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 4, "{out}");
    let scan =
        "hostile: .text.hostile_command+0x8: msr daifset masks interrupts, which no watchdog could then interrupt";
    assert_eq!(errors[0], format!("error: insmod {scan}"));
    assert_eq!(errors[1], format!("error: insmod {scan}"));
    for (error, command) in errors[2..].iter().zip(["insmod", "rmmod"]) {
        assert_eq!(
            *error,
            format!(
                "error: {command} data.ko.ko: a module name does not end in .ko (NAME and NAME.ko both mean module NAME)"
            )
        );
    }
    refused_took_nothing(&out);
    // `data.ko` is module `data`, in insmod, lsmod and rmmod alike.
    assert!(out.lines().any(|l| l.starts_with("data base=")), "{out}");
    assert!(!out.contains("data.ko base="), "{out}");
}

/// `tables   module-windows=N from-frames=F freed=R` from `mem`, each time,
/// as (N, F, R).
fn table_lines(out: &str) -> Vec<(u64, u64, u64)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("tables   "))
        .map(|l| {
            let field = |key: &str| -> u64 {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .unwrap_or_else(|| panic!("{key} in {l}"))
                    .parse()
                    .unwrap()
            };
            (field("module-windows="), field("from-frames="), field("freed="))
        })
        .collect()
}

/// `data.ko` with `bss` more bytes of bss: its empty `.note.GNU-stack`
/// section made an allocated, writable NOBITS one of that size. Mapped in
/// pages, such a module needs a level-3 table for every 2 MiB it spans.
fn data_with_bss(bss: u64) -> Vec<u8> {
    let mut ko = module_file("data");
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let (shoff, shnum, shstrndx) = (u64_at(&ko, 0x28), u16_at(&ko, 0x3c), u16_at(&ko, 0x3e));
    let names = u64_at(&ko, shoff + shstrndx * 64 + 24);
    let header = (0..shnum)
        .map(|i| shoff + i * 64)
        .find(|&h| ko[names + u32_at(&ko, h)..].starts_with(b".note.GNU-stack\0"))
        .expect("data.ko has a .note.GNU-stack section");
    ko[header + 4..header + 8].copy_from_slice(&8u32.to_le_bytes()); // SHT_NOBITS
    ko[header + 8..header + 16].copy_from_slice(&3u64.to_le_bytes()); // SHF_WRITE | SHF_ALLOC
    ko[header + 32..header + 40].copy_from_slice(&bss.to_le_bytes());
    ko[header + 48..header + 56].copy_from_slice(&4096u64.to_le_bytes());
    ko
}

/// Fills the module windows as far as RAM allows (48 modules of 15 MiB,
/// the direct window first, then the PLT window), unloads them in an order
/// that leaves holes on the way, then loads and unloads small modules near
/// and far of them: afterwards `mem` counts the table pages of before, the
/// frames of before, and no table page from frames; `ptdump modules` finds
/// nothing mapped, `lsmod -v` no module. Before `rmmod` gave table pages
/// back, the 384 and more level-3 tables stayed (`module-windows=` grew by
/// them, `free frames=` shrank).
#[test]
fn rmmod_gives_back_the_table_pages_of_a_filled_window() {
    const COUNT: usize = 48;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bss-modules");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let big = data_with_bss(15 << 20);
    for i in 0..COUNT {
        std::fs::write(dir.join(format!("big{i:02}.ko")), &big).unwrap();
    }
    std::fs::write(dir.join("hello.ko"), module_file("hello")).unwrap();
    let initrd = dir.with_extension("cpio").display().to_string();
    let packed = splitmap(&["initrd", &dir.display().to_string(), "-o", &initrd]);
    assert!(packed.success, "{}", packed.stderr);

    let mut cmds = vec!["mem".to_string()];
    cmds.extend((0..COUNT).map(|i| format!("insmod big{i:02}")));
    cmds.push("mem".into());
    // Odd ones first: each leaves a hole between two still mapped.
    cmds.extend((1..COUNT).step_by(2).map(|i| format!("rmmod big{i:02}")));
    cmds.push("mem".into());
    cmds.extend((0..COUNT).step_by(2).map(|i| format!("rmmod big{i:02}")));
    cmds.push("mem".into());
    for _ in 0..20 {
        cmds.extend(["insmod hello".into(), "rmmod hello".into()]);
    }
    cmds.extend(["mem".into(), "ptdump modules".into(), "lsmod -v".into()]);
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let out = session(&["--initrd", &initrd], &cmds);
    assert!(!out.contains("error:"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("big") && l.contains(" base="))
            .count(),
        COUNT,
        "every module loaded:\n{out}"
    );

    let tables = table_lines(&out);
    let free = free_frames(&out);
    let (before, full, half, emptied, after) = (tables[0], tables[1], tables[2], tables[3], tables[4]);
    // Each module spans more than 7 level-3 tables (15 MiB of bss in 4 KiB pages).
    assert!(full.0 >= before.0 + 7 * COUNT as u64, "{tables:?}");
    assert!(
        full.1 > 0,
        "the image's pool ran out: tables came from frames too: {tables:?}"
    );
    assert!(
        before.0 < half.0 && half.0 < full.0,
        "the holes gave tables back: {tables:?}"
    );
    for now in [emptied, after] {
        assert_eq!(now.0, before.0, "table pages back where they started: {tables:?}");
        assert_eq!(now.1, 0, "no table page from frames is left: {tables:?}");
    }
    assert_eq!(emptied.2, full.0 - before.0, "each table freed once: {tables:?}");
    // hello's tables (one or two, wherever KASLR put the direct window), each time.
    let per_load = (after.2 - emptied.2) / 20;
    assert!(per_load > 0 && after.2 - emptied.2 == 20 * per_load, "{tables:?}");
    assert_eq!(free[0], free[3], "free frames back where they started: {free:?}");
    assert_eq!(free[0], free[4], "and after hello: {free:?}");

    let ptdump = out.split("splitmap> ptdump modules").nth(1).unwrap();
    let ptdump = ptdump.split("splitmap> ").next().unwrap();
    assert_eq!(ptdump.trim(), "# nothing mapped there", "{ptdump}");
    let lsmod = out.split("splitmap> lsmod -v").nth(1).unwrap();
    assert!(!lsmod.contains("base="), "no module listed: {lsmod}");
}
