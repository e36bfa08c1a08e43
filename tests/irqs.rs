//! Interrupts and the module watchdog, on the machine: a module command
//! that never returns (`spin`, a branch to itself) is ended by the timer's
//! interrupt as a contained fault naming the module and the PC, under
//! GICv2 and GICv3 (entered at EL1, and at EL2 for GICv3), on the boot
//! CPU and on another (`on 1 spin`), and the shell goes on; `irqs` counts
//! the ticks; the GIC's registers are mapped as device memory in their own
//! `layout` row; bad settings are refused.

mod common;
use common::*;

/// `irqs`' lines after the `n`th `irqs` prompt: (intid, name, count, cpu).
fn irqs(out: &str, n: usize) -> Vec<(u32, String, u64, u32)> {
    let after = out.split("splitmap> irqs\n").nth(n + 1).expect("an irqs answer");
    after
        .lines()
        .take_while(|l| l.starts_with("irq="))
        .map(|l| {
            let field = |key: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .unwrap_or_else(|| panic!("no {key} in {l:?}"))
                    .to_string()
            };
            (
                field("irq=").parse().unwrap(),
                field("name="),
                field("count=").parse().unwrap(),
                field("cpu=").parse().unwrap(),
            )
        })
        .collect()
}

fn timer_count(lines: &[(u32, String, u64, u32)]) -> u64 {
    let timer = lines.iter().find(|l| l.1 == "timer").expect("a timer line");
    assert_eq!((timer.0, timer.3), (27, 0), "the virtual timer's PPI 11 on CPU 0");
    timer.2
}

/// The module's base and size, from `lsmod`.
fn module_span(out: &str, name: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{name} base=")))
        .unwrap_or_else(|| panic!("no lsmod line for {name}:\n{out}"));
    let word = |key: &str| hex(line.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap());
    (word("base="), word("size="))
}

/// Boots with `options`, lets `spin` loop, and checks the watchdog ended it.
/// Returns the second GIC frame's physical range (CPU interface or
/// redistributor).
fn spin_is_ended(options: &[&str]) -> (u64, u64) {
    let mut options = options.to_vec();
    options.extend(["--append", "module.watchdog=300"]);
    let out = session(
        &options,
        &[
            "irqs",
            "insmod spin",
            "spin",
            "irqs",
            "lsmod",
            "spin",
            "insmod hello",
            "hello",
            "layout",
        ],
    );
    let report = out
        .lines()
        .find(|l| l.starts_with("module fault: ") && l.contains("did not return within 300 ms"))
        .unwrap_or_else(|| panic!("no watchdog report:\n{out}"));
    let pc = hex(report.rsplit("pc=").next().unwrap());
    let (base, size) = module_span(&out, "spin");
    assert!(
        (base..base + size).contains(&pc),
        "the PC {pc:#x} is in spin's code:\n{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(
            "module spin faulted: watchdog: no return after 300 ms at spin_forever+0x4 [spin]; 1 command(s)/test(s) taken away"
        )),
        "the fault names the module and where it looped:\n{out}"
    );
    // The ticks were counted; the shell went on: the module is marked, its
    // command gone, another module runs.
    assert_eq!(timer_count(&irqs(&out, 0)), 0, "nothing armed the timer before:\n{out}");
    assert!(timer_count(&irqs(&out, 1)) >= 1, "{out}");
    assert!(irqs(&out, 1).iter().any(|l| l.0 == 1023 && l.1 == "spurious"));
    assert!(out.contains(" faulted\n"), "lsmod marks it:\n{out}");
    assert!(out.contains("error: unknown command 'spin'"), "{out}");
    assert!(out.contains("hello from a module"), "{out}");
    // The GIC's frames: in their own rows, device memory, read-write.
    let rows = layout_rows(&out);
    let (dist, cpu) = (row(&rows, "gic-dist"), row(&rows, "gic-cpu"));
    assert_eq!(
        dist.pa.map(|p| p.0),
        Some(0x0800_0000),
        "the distributor, from the tree"
    );
    assert!([dist, cpu].iter().all(|r| r.prot == "rw-"), "{dist:?} {cpu:?}");
    cpu.pa.unwrap()
}

#[test]
fn a_module_that_never_returns_is_ended_by_the_watchdog_under_gicv2() {
    // QEMU virt's GICv2 CPU interface, from the tree.
    assert_eq!(spin_is_ended(&["--gic", "2"]).0, 0x0801_0000);
}

#[test]
fn a_module_that_never_returns_is_ended_by_the_watchdog_under_gicv3() {
    // Room for the redistributors of as many CPUs as the kernel runs (8),
    // four 64 KiB frames each as with virtual LPIs: 2 MiB of the region.
    assert_eq!(spin_is_ended(&["--gic", "3"]), (0x080a_0000, 0x082a_0000));
}

/// Module code another CPU runs (`on 1 spin`) is under the watchdog too:
/// each CPU takes its own timer's interrupt through its own CPU interface
/// (GICv2's banked registers; GICv3's redistributor, found by affinity),
/// the call there ends as a contained fault, and the CPU goes on serving
/// `on`. Under GICv3 entered at EL2 as well, where a secondary leaves EL2
/// by the boot CPU's own sequence, and under UEFI, after firmware used the
/// GIC.
#[test]
fn module_code_on_another_cpu_is_ended_by_that_cpus_watchdog() {
    let el2 = ["--gic", "3", "--qemu-arg=-machine", "--qemu-arg=virt,virtualization=on"];
    let cases: [&[&str]; 4] = [&["--gic", "2"], &["--gic", "3"], &el2, &["--uefi", "--gic", "3"]];
    in_parallel(&cases, |options| {
        let mut options = options.to_vec();
        options.extend(["--smp", "2", "--append", "module.watchdog=300"]);
        let out = session(
            &options,
            &[
                "insmod spin",
                "on 1 spin",
                "irqs",
                "cpus",
                "on 1 test timer_tick_arrives",
                "on 1 spin",
            ],
        );
        assert!(
            out.lines()
                .any(|l| l
                    .starts_with("module spin faulted: watchdog: no return after 300 ms at spin_forever+0x4 [spin]")),
            "{options:?}:\n{out}"
        );
        // CPU 1's own timer ended it; CPU 0's never fired.
        let lines = irqs(&out, 0);
        assert_eq!(timer_count(&lines), 0, "{options:?}:\n{out}");
        assert!(
            lines
                .iter()
                .any(|l| (l.0, l.1.as_str(), l.3) == (27, "timer", 1) && l.2 >= 1),
            "{options:?}:\n{out}"
        );
        let cpus = output(&out, "cpus");
        assert!(
            cpus.lines()
                .any(|l| l.starts_with("cpu=1 mpidr=0x1 state=online ") && l.ends_with(" doing=idle")),
            "{options:?}:\n{out}"
        );
        assert!(out.contains("ok 1 timer_tick_arrives\n"), "{options:?}:\n{out}");
        // The command was taken away; CPU 1 still answers.
        let last = out.rsplit("splitmap> on 1 spin\n").next().unwrap();
        assert!(last.starts_with("error: unknown command 'spin'"), "{options:?}:\n{out}");
        assert!(!out.contains("takes no interrupts"), "{options:?}:\n{out}");
    });
}

/// Entered at EL2, the early code hands EL1 the GICv3 system register
/// interface (ICC_SRE_EL2) before it drops there.
#[test]
fn gicv3_entered_at_el2_works_too() {
    spin_is_ended(&["--gic", "3", "--qemu-arg=-machine", "--qemu-arg=virt,virtualization=on"]);
    // Without the option, QEMU virt's default, GICv2, is what boots.
    assert_eq!(spin_is_ended(&[]).0, 0x0801_0000);
}

#[test]
fn the_in_kernel_test_sees_a_tick_under_both_gics() {
    in_parallel(&["2", "3"], |gic| {
        let out = session(&["--gic", gic], &["test timer_tick_arrives", "irqs"]);
        assert!(out.contains("ok 1 timer_tick_arrives"), "{out}");
        assert_eq!(ktap_totals(&out), (1, 0), "{out}");
        assert!(timer_count(&irqs(&out, 0)) >= 1, "{out}");
    });
}

/// The watchdog never ends kernel code running for a module, with a
/// kernel lock held or without: the in-kernel test runs a kernel function as
/// untrusted code past the watchdog's expiry holding a lock, then past its
/// next look without one, and it must return. (Before, the second look
/// ended it: an export's frame abandoned, with whatever heap it held.)
#[test]
fn the_watchdog_never_ends_kernel_code_under_both_gics() {
    in_parallel(&["2", "3"], |gic| {
        let out = session(
            &["--gic", gic, "--append", "module.watchdog=50"],
            &["test watchdog_never_ends_kernel_code", "irqs"],
        );
        assert!(out.contains("ok 1 watchdog_never_ends_kernel_code\n"), "{out}");
        assert_eq!(ktap_totals(&out), (1, 0), "{out}");
        assert!(!out.contains("module fault"), "{out}");
        assert!(timer_count(&irqs(&out, 0)) >= 2, "{out}");
        // Past the grace (1 s), it is ended in kernel code too: a module
        // that only loops through exports does not run for ever.
        let out = session(
            &["--gic", gic, "--append", "module.watchdog=50"],
            &["test watchdog_ends_kernel_code_after_its_grace"],
        );
        assert!(
            out.contains("ok 1 watchdog_ends_kernel_code_after_its_grace\n"),
            "{out}"
        );
        assert!(out.contains("did not return within 50 ms"), "{out}");
    });
}

/// With a watchdog as short as it goes (1 ms), its interrupt can come
/// while the kernel is still entering or already leaving a module call:
/// IRQs are unmasked a little before the recovery point is saved and a
/// little after the code returns. There it must find nothing to resume, and
/// look again later. Before, it resumed at a recovery point not yet saved
/// (every register zero): a return to address 0, contained again, for ever.
/// (Found by the campaign, scripts/campaign.py.)
#[test]
fn the_shortest_watchdog_never_resumes_a_call_not_yet_entered() {
    let mut cmds = vec!["insmod hello", "insmod spin"];
    cmds.extend(std::iter::repeat_n("hello", 20));
    cmds.extend(["spin", "rmmod spin", "insmod spin", "spin", "lsmod", "irqs"]);
    let out = session(&["--append", "module.watchdog=1"], &cmds);
    assert!(!out.contains("kernel panic"), "{out}");
    assert!(!out.contains("ELR=0x0000000000000000"), "resumed at nothing:\n{out}");
    // Whether a call as short as hello's ends within 1 ms of TCG's time is
    // not for this test to say; spin's never does.
    assert!(
        out.contains("module spin faulted: watchdog: no return after 1 ms at spin_forever+0x4 [spin]"),
        "{out}"
    );
    // Never ended in the kernel's own code (an export).
    assert!(!out.contains("no return after 1 ms at kernel::"), "{out}");
    assert!(!out.contains("no return after 1 ms at <kernel::"), "{out}");
    assert!(!out.contains("no return after 1 ms at splitmap_"), "{out}");
}

#[test]
fn bad_watchdog_settings_are_refused_with_what_would_do() {
    let out = session(&["--append", "module.watchdog=abc"], &["bootargs"]);
    assert!(
        out.contains(
            "warning: boot argument module.watchdog=abc rejected: expected milliseconds, 0 to 3600000 (0 turns the watchdog off); ignored"
        ),
        "{out}"
    );
    assert!(out.contains(" module.watchdog=2000"), "the default stays:\n{out}");
    let run = splitmap(&["run", "--gic", "4", "--cmd", "help"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("'--gic <2|3>': say 2 (GICv2, QEMU virt's default) or 3 (GICv3)"),
        "{}",
        run.stderr
    );
}

/// QEMU's own GICv3 tree for `virt` with two CPUs (as `-machine dumpdtb=`
/// writes it), its source text edited by `edit` (through `dtc`, which
/// also packs it: QEMU dumps a MiB, mostly free space, which `--dtb`
/// refuses).
fn gicv3_tree(name: &str, edit: impl Fn(&str) -> String) -> std::path::PathBuf {
    let dumped = qemu_tree(&format!("{name}-dumped"), "virt,gic-version=3", &["-smp", "2"]);
    let source = String::from_utf8(dtc("dtb", "dts", &dumped)).unwrap();
    let edited = edit(&source);
    assert_ne!(edited, source, "the edit changed nothing");
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.dtb"));
    std::fs::write(&path, dtc("dts", "dtb", edited.as_bytes())).unwrap();
    path
}

/// The GIC's reg in QEMU's GICv3 tree: the distributor, then one region of
/// redistributors (123 CPUs' worth).
const QEMU_GICV3_REG: &str = "reg = <0x00 0x8000000 0x00 0x10000 0x00 0x80a0000 0x00 0xf60000>;";

/// A CPU whose redistributor the tree leaves out takes no interrupts: boot
/// warns, and `irqs` says so in an `error:` line for that CPU, not by
/// leaving it out; CPU 0 still counts its ticks.
#[test]
fn irqs_names_a_cpu_the_gic_refused() {
    let tree = gicv3_tree("one-redistributor", |dts| {
        dts.replace(QEMU_GICV3_REG, &QEMU_GICV3_REG.replace("0xf60000", "0x20000"))
    });
    let out = session(
        &["--gic", "3", "--smp", "2", "--dtb", tree.to_str().unwrap()],
        &["test timer_tick_arrives", "irqs"],
    );
    let why = "no GICv3 redistributor in the mapped regions belongs to this CPU (affinity 0x1)";
    assert!(
        out.contains(&format!(
            "cpu 1 takes no interrupts ({why}): module code it runs is unwatched"
        )),
        "{out}"
    );
    assert!(timer_count(&irqs(&out, 0)) >= 1, "{out}");
    assert!(irqs(&out, 0).iter().all(|l| l.3 == 0), "{out}");
    let answer = output(&out, "irqs");
    assert!(
        answer.contains(&format!(
            "error: cpu=1 takes no interrupts ({why}): module code it runs is unwatched"
        )),
        "{answer}"
    );
}

/// A GICv3 whose redistributors come in two regions
/// (`#redistributor-regions`, as QEMU's past 123 CPUs and large servers'):
/// CPU 1's, in the second, is found there, and both CPUs take their
/// timer's interrupts. The tree's `redistributor-stride` is the natural
/// 128 KiB (QEMU pads none): read and followed, but only `gicr`'s host
/// tests see a padded one.
#[test]
fn gicv3_redistributors_in_two_regions_serve_both_cpus() {
    let tree = gicv3_tree("two-regions", |dts| {
        dts.replace(
            QEMU_GICV3_REG,
            "reg = <0x00 0x8000000 0x00 0x10000 0x00 0x80a0000 0x00 0x20000 0x00 0x80c0000 0x00 0xf40000>;\nredistributor-stride = <0x00 0x20000>;",
        )
        .replace("#redistributor-regions = <0x01>;", "#redistributor-regions = <0x02>;")
    });
    let out = session(
        &["--gic", "3", "--smp", "2", "--dtb", tree.to_str().unwrap()],
        &["on 1 test timer_tick_arrives", "irqs"],
    );
    assert!(!out.contains("takes no interrupts"), "{out}");
    let lines = irqs(&out, 0);
    let timer_at = |cpu| lines.iter().find(|l| l.1 == "timer" && l.3 == cpu).map(|l| l.2);
    assert!(timer_at(0).is_some(), "{out}");
    assert!(timer_at(1).is_some_and(|n| n >= 1), "CPU 1 took its tick: {out}");
}
