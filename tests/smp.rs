//! Several CPUs (`--smp N`): every secondary the device tree lists is
//! started at the physical address of the kernel's secondary entry, walks
//! the same tables, and runs shell commands posted to it with `on`.

mod common;
use common::*;
use vm_fdt::FdtWriter;

/// One line of `cpus`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cpu {
    n: usize,
    mpidr: u64,
    state: String,
    stack: (u64, u64),
    why: Option<String>,
}

/// Every `cpu=` line of the last `cpus` in `out`.
fn cpus(out: &str) -> Vec<Cpu> {
    let last = out.rsplit("splitmap> cpus\n").next().unwrap();
    last.lines()
        .take_while(|l| l.starts_with("cpu="))
        .map(|l| {
            let field = |key: &str| {
                l.split(' ')
                    .find_map(|w| w.strip_prefix(key))
                    .unwrap_or_else(|| panic!("{key} in {l}"))
                    .to_string()
            };
            let (a, b) = field("stack=").split_once('-').map(|(a, b)| (hex(a), hex(b))).unwrap();
            Cpu {
                n: field("cpu=").parse().unwrap(),
                mpidr: hex(&field("mpidr=")),
                state: field("state="),
                stack: (a, b),
                why: l.split_once(" why=").map(|(_, w)| w.to_string()),
            }
        })
        .collect()
}

const LINEAR_VA: &str = "0xffff000000201000";

fn four_online(out: &str) {
    let cpus = cpus(out);
    assert_eq!(cpus.len(), 4, "{out}");
    for (i, c) in cpus.iter().enumerate() {
        assert_eq!((c.n, c.state.as_str(), &c.why), (i, "online", &None), "{out}");
        assert_eq!(c.stack.1 - c.stack.0, 64 << 10, "{c:?}");
    }
    // Distinct MPIDRs, and stacks that neither overlap nor touch: an
    // unmapped guard lies between each two.
    for (i, a) in cpus.iter().enumerate() {
        for b in &cpus[i + 1..] {
            assert_ne!(a.mpidr, b.mpidr, "{out}");
            assert!(a.stack.1 < b.stack.0 || b.stack.1 < a.stack.0, "{a:?} {b:?}");
        }
    }
}

/// Every CPU comes up, and every CPU walks the same tables to the same
/// physical address, KASLR on and off.
#[test]
fn four_cpus_come_up_and_walk_the_same_tables() {
    for kaslr in [&["--kaslr-seed", "0x1234"][..], &["--nokaslr"][..]] {
        let mut options = vec!["--smp", "4"];
        options.extend_from_slice(kaslr);
        let walk = format!("walk {LINEAR_VA}");
        let va2pa = format!("va2pa {LINEAR_VA}");
        let on_walk = format!("on 2 {walk}");
        let on_va2pa = format!("on 3 {va2pa}");
        let out = session(&options, &["cpus", &walk, &on_walk, &va2pa, &on_va2pa, "on 1 cpus"]);
        four_online(&out);
        assert_eq!(output(&out, &walk), output(&out, &on_walk), "{kaslr:?}");
        assert!(output(&out, &va2pa).contains("region=linear"), "{out}");
        assert_eq!(output(&out, &va2pa), output(&out, &on_va2pa), "{kaslr:?}");
        // `cpus` on CPU 1 says what it says on CPU 0, but for what CPU 1
        // is doing: running that very line.
        let doing = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| l.split(" doing=").next().unwrap().to_string())
                .collect()
        };
        assert_eq!(doing(output(&out, "on 1 cpus")), doing(output(&out, "cpus")));
        let here = output(&out, "cpus");
        assert!(
            here.contains(" doing=shell\n") && here.matches(" doing=idle\n").count() == 3,
            "{out}"
        );
        let there = output(&out, "on 1 cpus");
        assert!(there.lines().nth(1).unwrap().ends_with(" doing=command"), "{out}");
    }
}

/// One CPU, as every boot before: no secondaries, nothing said of them.
#[test]
fn one_cpu_is_the_default_and_on_refuses_cpus_that_are_not_there() {
    let out = session(&[], &["cpus", "on 1 cpus", "on 0 va2pa 0xffff000000201000", "on 1"]);
    let cpus = cpus(&out);
    assert_eq!(cpus.len(), 1, "{out}");
    assert_eq!(cpus[0].state, "online");
    // QEMU names no enable-method for a lone CPU: the boot CPU needs none,
    // and nothing is said of it.
    assert!(!out.contains("cpu node"), "{out}");
    assert!(output(&out, "on 1 cpus").starts_with("error: no cpu 1; "), "{out}");
    assert!(
        output(&out, "on 0 va2pa 0xffff000000201000").contains("region=linear"),
        "{out}"
    );
    assert!(
        output(&out, "on 1").starts_with("error: usage: on CPU COMMAND"),
        "{out}"
    );
}

/// The in-kernel suite passes on a secondary, and the SMP tests pass.
#[test]
fn the_in_kernel_tests_pass_on_a_secondary() {
    let out = session(&["--smp", "4"], &["on 3 test", "test smp"]);
    let on3 = output(&out, "on 3 test");
    assert!(on3.contains("\nok ") || on3.starts_with("KTAP"), "{out}");
    assert!(!on3.contains("not ok"), "{on3}");
    let smp = output(&out, "test smp");
    assert!(smp.contains("ok ") && !smp.contains("not ok"), "{smp}");
    assert!(smp.matches("\nok ").count() >= 3, "{smp}");
}

/// `maxcpus=2`: two CPUs up, the others offline and saying why.
#[test]
fn maxcpus_leaves_the_rest_offline_by_name() {
    let out = session(
        &["--smp", "4", "--append", "maxcpus=2"],
        &["cpus", "on 2 cpus", "on 1 cpus"],
    );
    let cpus = cpus(&out);
    let states: Vec<_> = cpus.iter().map(|c| (c.state.as_str(), c.why.as_deref())).collect();
    assert_eq!(
        states,
        [
            ("online", None),
            ("online", None),
            ("offline", Some("maxcpus=2")),
            ("offline", Some("maxcpus=2"))
        ],
        "{out}"
    );
    assert!(
        output(&out, "on 2 cpus").starts_with("error: cpu 2 is offline (maxcpus=2)"),
        "{out}"
    );
}

/// Four CPUs start wherever the image is loaded (one load address only
/// page-aligned, one 2 MiB-aligned), in each granule, with 1 and 4 GiB,
/// KASLR on and off, and `rodata=full` (the linear map in pages, split at
/// boot): every one online, and the in-kernel SMP tests pass (same PA on
/// every CPU, own stacks, an unmap every CPU sees).
#[test]
fn secondaries_start_at_any_load_address_granule_and_size() {
    let cases: [&[&str]; 3] = [
        &[
            "--load-addr",
            "0x40011000",
            "--mem",
            "4G",
            "--append",
            "rodata=full",
            "--kaslr-seed",
            "0x5eed",
        ],
        &["--load-addr", "0x50000000", "--granule", "64k", "--nokaslr"],
        &[
            "--granule",
            "16k",
            "--cpu",
            "max",
            "--mem",
            "4G",
            "--append",
            "rodata=full",
        ],
    ];
    in_parallel(&cases, |case| {
        let mut options = vec!["--smp", "4"];
        options.extend_from_slice(case);
        let out = session(&options, &["cpus", "on 3 va2pa 0xffff000000201000", "test smp"]);
        let cpus = cpus(&out);
        assert!(
            cpus.iter().all(|c| c.state == "online") && cpus.len() == 4,
            "{options:?}\n{out}"
        );
        assert!(
            output(&out, "on 3 va2pa 0xffff000000201000").contains("region=linear"),
            "{out}"
        );
        let smp = output(&out, "test smp");
        assert!(!smp.contains("not ok") && !smp.contains("# SKIP"), "{options:?}\n{smp}");
        assert!(smp.matches("\nok ").count() >= 4, "{options:?}\n{smp}");
    });
}

/// A module loaded on CPU 0 runs on another, far from the kernel too; a
/// fault in it there is contained, and the module marked faulted.
#[test]
fn module_code_runs_and_faults_contained_on_a_secondary() {
    let out = session(
        &["--smp", "4", "--append", "module.region=far"],
        &[
            "insmod hello",
            "on 3 hello",
            "hello",
            "insmod faulty",
            "on 2 faulty null",
            "lsmod",
            "on 2 cpus",
        ],
    );
    assert_eq!(output(&out, "on 3 hello"), "hello: hello from a module\n", "{out}");
    assert_eq!(output(&out, "on 3 hello"), output(&out, "hello"), "{out}");
    let fault = output(&out, "on 2 faulty null");
    assert!(fault.contains("\nmodule fault: the module at "), "{fault}");
    assert!(fault.contains("\nmodule faulty faulted: "), "{fault}");
    assert!(output(&out, "lsmod").contains(" faulted"), "{out}");
    // CPU 2 goes on serving its mailbox.
    assert_eq!(cpus(&out.replace("on 2 cpus", "cpus")).len(), 4, "{out}");
}

/// A panic on a secondary names its CPU and ends the run as a failure.
#[test]
fn a_panic_on_a_secondary_names_its_cpu() {
    let run = splitmap(&["run", "--timeout", "60", "--smp", "2", "--cmd", "on 1 crash null"]);
    assert!(!run.success, "{}", run.stdout);
    assert!(run.stdout.contains("kernel panic: cpu=1 "), "{}", run.stdout);
}

/// A page of RAM the tree reserves: the spin-table release word of a CPU
/// that nothing watches.
const UNWATCHED_RELEASE: u64 = 0x7000_0000;

/// A device tree whose CPU nodes are wrong (see below), with or without
/// the one whose mpidr PSCI refuses.
fn bad_cpus_tree(with_refused: bool) -> std::path::PathBuf {
    let reserved = vm_fdt::FdtReserveEntry::new(UNWATCHED_RELEASE, 0x1000).unwrap();
    let mut w = FdtWriter::new_with_mem_reserv(&[reserved]).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "/pl011@9000000").unwrap();
    w.end_node(chosen).unwrap();
    let memory = w.begin_node("memory").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000]).unwrap();
    w.end_node(memory).unwrap();
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
    w.end_node(uart).unwrap();
    let psci = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci-0.2").unwrap();
    w.property_string("method", "hvc").unwrap();
    w.end_node(psci).unwrap();
    let cpus_node = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for (name, reg, method, release) in [
        ("cpu@0", 0u32, "psci", None),
        ("cpu@1", 1, "magic-wand", None),
        ("cpu@2", 2, "psci", None),
        ("cpu@3", 2, "psci", None),
        ("cpu@4", 4, "spin-table", Some(0x1_0000_0000u64)),
        ("cpu@5", 5, "psci", None),
        ("cpu@6", 3, "spin-table", Some(UNWATCHED_RELEASE)),
    ]
    .into_iter()
    .filter(|&(_, reg, ..)| with_refused || reg != 5)
    {
        let n = w.begin_node(name).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_string("compatible", "arm,cortex-a57").unwrap();
        w.property_u32("reg", reg).unwrap();
        w.property_string("enable-method", method).unwrap();
        if let Some(a) = release {
            w.property_u64("cpu-release-addr", a).unwrap();
        }
        w.end_node(n).unwrap();
    }
    w.end_node(cpus_node).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let name = format!("smp-bad-cpus-{with_refused}.dtb");
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, blob).unwrap();
    path
}

/// A device tree whose CPU nodes are wrong: each bad one is named and
/// skipped, the rest come up; a CPU that PSCI cannot start is failed by
/// name, and so is one that never reports in (CPU 3 waits for PSCI, not on
/// the spin-table word its node names), after a bounded wait, boot going on.
/// The CPU PSCI refused never ran, so its stacks are given back (its stack
/// slot unmapped, as many frames free as without its node); the one that
/// did not report in may yet run, late, and keeps them.
#[test]
fn bad_cpu_nodes_are_named_and_skipped() {
    // QEMU has CPUs 0-3: mpidr 5 is nobody PSCI can start.
    let path = bad_cpus_tree(true);
    let out = session(
        &["--smp", "4", "--dtb", path.to_str().unwrap()],
        &["cpus", "on 1 va2pa 0xffff000000201000", "mem"],
    );
    for want in [
        "cpu node cpu@1: enable-method \"magic-wand\" is neither psci nor spin-table; skipped",
        "cpu node cpu@3: reg 0x2 repeats an earlier CPU's; skipped",
        "cpu node cpu@4: cpu-release-addr 0x100000000 is outside RAM; skipped",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    assert!(
        out.contains("cpu 3 (cpu@6, mpidr 0x3): did not report in within 1000 ms; going on without it"),
        "{out}"
    );
    let cpus = cpus(&out);
    let seen: Vec<_> = cpus.iter().map(|c| (c.mpidr, c.state.as_str())).collect();
    assert_eq!(
        seen,
        [(0, "online"), (2, "online"), (5, "failed"), (3, "failed")],
        "{out}"
    );
    assert!(
        cpus[2]
            .why
            .as_deref()
            .is_some_and(|w| w.starts_with("PSCI CPU_ON refused it")),
        "{out}"
    );
    assert_eq!(
        cpus[3].why.as_deref(),
        Some("did not report in within 1000 ms"),
        "{out}"
    );
    assert!(
        output(&out, "on 1 va2pa 0xffff000000201000").contains("region=linear"),
        "{out}"
    );
    let (refused, late) = (cpus[2].stack.0, cpus[3].stack.0);
    let stacks = [format!("va2pa {refused:#x}"), format!("va2pa {late:#x}")];
    let again = session(
        &["--smp", "4", "--dtb", path.to_str().unwrap()],
        &[&stacks[0], &stacks[1]],
    );
    assert!(output(&again, &stacks[0]).contains("is not mapped"), "{again}");
    assert!(output(&again, &stacks[1]).contains("pa="), "{again}");
    let without = session(
        &["--smp", "4", "--dtb", bad_cpus_tree(false).to_str().unwrap()],
        &["mem"],
    );
    let free = (free_frames(&out), free_frames(&without));
    assert!(free.0.len() == 1 && free.0 == free.1, "{free:?}\n{out}\n{without}");
}

/// The unmap test can fail: a kernel built with the test-only feature
/// `local-tlbi` invalidates TLBs after an unmap on its own CPU only
/// (`tlbi vmalle1`), and QEMU keeps a TLB per virtual CPU, so the other
/// CPUs still read the page and `smp_an_unmap_is_seen_by_every_cpu` says
/// so. (The same test passes on the real kernel: the test above.)
#[test]
fn a_local_only_tlb_invalidation_is_caught() {
    use splitmap::qemu::{Boot, Console};
    let boot = Boot {
        smp: 4,
        console: Console::Piped,
        ..Boot::default()
    };
    let out = boot_kernel_with_feature("local-tlbi", boot, &["test smp_an_unmap", "poweroff"]);
    assert!(
        out.contains(
            "# smp_an_unmap_is_seen_by_every_cpu: a CPU still reads an unmapped page: its TLB was not invalidated"
        ),
        "{out}"
    );
    assert!(out.contains("not ok 1 smp_an_unmap_is_seen_by_every_cpu"), "{out}");
}

/// `layout` shows each other CPU's stack above its guard (and `va2pa` and
/// `walk` name them); a CPU left off has its slot, unmapped.
#[test]
fn layout_shows_every_cpus_stack_and_guard() {
    let out = session(
        &["--smp", "3", "--append", "maxcpus=2"],
        &["layout", "va2pa 0xffffffffff030000", "walk 0xffffffffff020000"],
    );
    // va2pa and walk name CPU 1's rows as layout does.
    assert!(
        output(&out, "va2pa 0xffffffffff030000").contains(" region=stack.1\n"),
        "{out}"
    );
    assert!(
        output(&out, "walk 0xffffffffff020000").starts_with("# region=guard.1: unmapped guard"),
        "{out}"
    );
    let row = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{out}"))
            .to_string()
    };
    assert!(row("stack.1").contains("prot=rw-"), "{out}");
    assert!(row("guard.1").contains("prot=---"), "{out}");
    assert!(row("stack.2").contains("prot=---"), "offline: nothing mapped\n{out}");
    assert!(!out.contains("stack.3"), "{out}");
}

/// The Pi's CPUs wait in QEMU's firmware stub on spin-table release words:
/// written, cleaned to PoC and `SEV`d, they come up; `--smp` is maxcpus.
#[test]
fn the_pis_cpus_come_up_through_the_spin_table() {
    let out = session(
        &["--machine", "raspi3b", "--smp", "3"],
        &["cpus", "on 2 va2pa 0xffff000000201000", "va2pa 0xffff000000201000"],
    );
    let cpus = cpus(&out);
    let states: Vec<_> = cpus.iter().map(|c| (c.state.as_str(), c.why.as_deref())).collect();
    assert_eq!(
        states,
        [
            ("online", None),
            ("online", None),
            ("online", None),
            ("offline", Some("maxcpus=3"))
        ],
        "{out}"
    );
    assert_eq!(
        output(&out, "on 2 va2pa 0xffff000000201000"),
        output(&out, "va2pa 0xffff000000201000")
    );
}

/// A secondary that runs its stack out hits its own guard, and the report
/// says which CPU.
#[test]
fn a_stack_overflow_on_a_secondary_hits_its_own_guard() {
    let run = splitmap(&[
        "run",
        "--timeout",
        "60",
        "--smp",
        "3",
        "--cmd",
        "on 2 crash stack-overflow",
    ]);
    assert!(!run.success, "{}", run.stdout);
    assert!(run.stdout.contains("kernel stack overflow: FAR="), "{}", run.stdout);
    assert!(
        run.stdout.contains("kernel panic: cpu=2 kernel stack overflow"),
        "{}",
        run.stdout
    );
}

/// `rmmod` on CPU 0 while CPU 1 runs the module's code: it waits until
/// CPU 1 has left it (the code ends, or CPU 1's watchdog ends it, before
/// the module goes), or, where no watchdog will end it, past the module
/// watchdog's period refuses and leaves the module loaded; never frees code
/// another CPU runs. `on N CMD &` returns once CPU N is in the module's
/// code, and `cpus` says so.
#[test]
fn rmmod_waits_for_other_cpus_to_leave_the_modules_code() {
    let out = session(
        &["--smp", "2", "--append", "module.watchdog=5000"],
        &[
            "insmod spin",
            "on 1 spin 2500 &",
            "cpus",
            "rmmod spin",
            "lsmod",
            "insmod spin",
            "on 1 spin &",
            "rmmod spin",
            "lsmod",
        ],
    );
    assert!(
        output(&out, "on 1 spin 2500 &").contains("cpu=1 background=spin 2500"),
        "{out}"
    );
    // CPU 1 prints while CPU 0 answers, and its lines may come between a
    // prompt and the echo of what was typed there: the first part is cut
    // out by `on`'s answer and the second `insmod`, which CPU 1 (idle by
    // then) cannot interleave with.
    let first = &out[out.find("cpu=1 background=spin 2500\n").unwrap()..out.rfind("splitmap> insmod spin\n").unwrap()];
    assert!(first.contains("cpu=1 mpidr=0x1 state=online"), "{out}");
    assert!(
        first
            .lines()
            .any(|l| l.starts_with("cpu=1 ") && l.ends_with(" doing=module:spin")),
        "{out}"
    );
    // The first rmmod: CPU 1 finishes its loop, then the module goes.
    let done = first.find("spin: done").unwrap_or_else(|| panic!("{out}"));
    let note = first
        .find("rmmod: waited ")
        .unwrap_or_else(|| panic!("rmmod did not wait\n{out}"));
    assert!(done < note, "the module went before CPU 1 left it\n{out}");
    assert!(first.contains(" ms for another CPU to leave spin's code"), "{out}");
    assert!(!first.contains("error"), "{out}");
    assert_eq!(output(&out, "lsmod"), "", "{out}");
    // The second: CPU 1 never leaves by itself; its watchdog ends the call
    // (as a fault), and then the module goes, as a faulted one: its
    // exit_module is not run. (From `on`'s answer: CPU 1's "looping
    // forever" may come before `rmmod`'s echo.)
    let second = &out[out.rfind("cpu=1 background=spin\n").unwrap()..];
    let fault = second
        .find("module spin faulted: watchdog: no return after 5000 ms")
        .unwrap_or_else(|| panic!("{out}"));
    let note = second
        .find("rmmod: waited ")
        .unwrap_or_else(|| panic!("rmmod did not wait\n{out}"));
    assert!(fault < note, "the module went before CPU 1 left it\n{out}");
    assert!(
        second.contains("rmmod: spin had faulted (watchdog: no return after 5000 ms"),
        "{out}"
    );
    assert!(!second.contains("error"), "{out}");
    let lsmod = out.rsplit("splitmap> lsmod\n").next().unwrap();
    assert!(lsmod.starts_with("splitmap> poweroff"), "the module is gone:\n{out}");
}

/// Where no watchdog ends module code (`module.watchdog=0`), `rmmod`
/// gives up after the default period (2000 ms) and leaves the module
/// loaded, its code untouched, while CPU 1 still runs it.
#[test]
fn rmmod_refuses_while_unwatched_module_code_runs_on_another_cpu() {
    let out = session(
        &["--smp", "2", "--append", "module.watchdog=0"],
        &["insmod spin", "on 1 spin &", "rmmod spin", "lsmod", "cpus"],
    );
    // (CPU 1's "looping forever" may come before `rmmod`'s echo.)
    assert!(
        out.contains(
            "\nerror: rmmod spin: cpu 1 still runs its code after 2000 ms (module.watchdog=); spin stays loaded"
        ),
        "{out}"
    );
    assert!(output(&out, "lsmod").contains("spin base="), "{out}");
    assert!(
        output(&out, "cpus")
            .lines()
            .any(|l| l.starts_with("cpu=1 ") && l.ends_with(" doing=module:spin")),
        "{out}"
    );
}

/// One CPU at a time loads or removes modules: while CPU 2's `rmmod`
/// waits for CPU 1 to leave the module's code, an `insmod` on CPU 0 is
/// refused by name and changes nothing (two at once could pick the same
/// address, or map one before the other's TLB entries for it are gone).
#[test]
fn one_cpu_at_a_time_loads_or_removes_modules() {
    let out = session(
        &["--smp", "3", "--append", "module.watchdog=3000"],
        &[
            "insmod spin",
            "on 1 spin &",
            "on 2 rmmod spin &",
            "cpus",
            "insmod hello",
            "lsmod",
        ],
    );
    assert!(
        out.contains("\nerror: insmod hello: another CPU is loading or removing a module; try again when it is done\n"),
        "{out}"
    );
    let lsmod = &out[out.rfind("splitmap> lsmod\n").unwrap()..];
    assert!(!lsmod.contains("\nhello base="), "{out}");
}
