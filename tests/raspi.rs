//! `--machine raspi3b`: the same Image on QEMU's Raspberry Pi 3, where RAM
//! starts at physical address 0, the console sits under `/soc` by bus
//! address, and there is no PSCI (power-off is the board's watchdog, so
//! every clean `session` here also proves that).

mod common;
use common::*;

const PI: [&str; 2] = ["--machine", "raspi3b"];

fn pi(options: &[&str], cmds: &[&str]) -> String {
    let mut all = PI.to_vec();
    all.extend_from_slice(options);
    session(&all, cmds)
}

/// The field `key=` of the first line starting with `prefix`.
fn field(out: &str, prefix: &str, key: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line '{prefix}' in:\n{out}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .map(|v| hex(v.split('-').next().unwrap()))
        .unwrap_or_else(|| panic!("{key} in {line}"))
}

#[test]
fn the_committed_tree_is_its_source_compiled() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("boot/boards");
    let compiled = dtc("dts", "dtb", &std::fs::read(dir.join("raspi3b.dts")).unwrap());
    assert!(
        compiled == std::fs::read(dir.join("raspi3b.dtb")).unwrap(),
        "boot/boards/raspi3b.dtb is stale: run dtc -q -I dts -O dtb -o boot/boards/raspi3b.dtb boot/boards/raspi3b.dts"
    );
}

#[test]
fn boots_with_ram_at_zero_and_kaslr_off() {
    let out = pi(
        &["--nokaslr"],
        &[
            "layout",
            "mem",
            "pa2va 0",
            "walk 0xffff000000000000",
            "va2pa 0xffff000000000000",
            "test",
        ],
    );
    let (pa, va) = boot_line(&out);
    // QEMU's -kernel puts the Image at 2 MiB on this board.
    assert_eq!((pa, va), (0x20_0000, KIMAGE_VADDR), "{out}");
    // Only `layout`'s lines (pa2va's have a `va=` second too).
    let layout = out
        .split("splitmap> layout\n")
        .nth(1)
        .unwrap()
        .split("splitmap>")
        .next()
        .unwrap();
    let rows = layout_rows(layout);
    let linear = row(&rows, "linear");
    // PHYS_OFFSET 0: PA 0 is the linear map's first byte, in 2 MiB blocks.
    assert_eq!(linear.pa.map(|p| p.0), Some(0), "{out}");
    assert!(out.contains("pa=0x0 va=0xffff000000000000 region=linear"), "{out}");
    assert!(out.contains("=> pa=0x0 level=2 size=2M prot=rw-"), "{out}");
    assert!(out.contains("va=0xffff000000000000 pa=0x0"), "{out}");
    // The console: bus 0x7e201000 under /soc, CPU 0x3f201000.
    assert_eq!(row(&rows, "mmio").pa.map(|p| p.0), Some(0x3f20_1000), "{out}");
    // RAM from 0, frame 0 kept for the spin table (/memreserve/).
    assert_eq!(field(&out, "ram ", "pa="), 0, "{out}");
    assert!(out.contains("reserved pa=0x0-0x1000 memreserve"), "{out}");
    let (passed, failed) = ktap_totals(&out);
    assert!(passed > 0 && failed == 0, "{out}");
}

#[test]
fn kaslr_moves_the_image_with_the_trees_seed_and_replays_it() {
    let seeds = [
        "0x1",
        "0x5eed",
        "0xdeadbeef",
        "0x123456789abcdef",
        "0x2",
        "0x40000",
        "0x7fffffff",
        "0xfedcba9876543210",
        "0xffffffffffffffff",
        "0x31",
    ];
    in_parallel(&seeds, |seed| {
        let out = pi(&["--kaslr-seed", seed], &["layout"]);
        let (pa, va) = boot_line(&out);
        assert_eq!(pa, 0x20_0000, "{seed}: {out}");
        assert_ne!(va, KIMAGE_VADDR, "{seed}: {out}");
        let again = pi(&["--kaslr-seed", seed], &[]);
        assert_eq!(boot_line(&again).1, va, "{seed}: the same seed, the same place");
    });
    // No seed given: the tool writes a fresh one into the tree each run.
    let first = pi(&[], &[]);
    assert!(
        first.contains("(dtb)"),
        "the seed comes from /chosen/kaslr-seed: {first}"
    );
    let second = pi(&[], &[]);
    assert_ne!(boot_line(&first).1, boot_line(&second).1, "two runs, two seeds");
}

#[test]
fn modules_load_run_and_unload_near_and_far() {
    for region in ["module.region=near", "module.region=far"] {
        let out = pi(
            &["--append", region],
            &[
                "insmod hello",
                "insmod farcalls",
                "farcalls",
                "lsmod",
                "rmmod farcalls",
                "rmmod hello",
                "lsmod",
            ],
        );
        assert!(!out.contains("error:"), "{region}: {out}");
        assert!(
            out.contains("hello: loaded") && out.contains("farcalls: loaded"),
            "{region}: {out}"
        );
        assert!(out.contains("hello: unloading"), "{region}: {out}");
    }
}

#[test]
fn the_64k_granule_boots() {
    let out = pi(&["--granule", "64k", "--nokaslr"], &["pa2va 0", "test"]);
    assert!(out.contains("pa=0x0 va=0xffff000000000000 region=linear"), "{out}");
    let (passed, failed) = ktap_totals(&out);
    assert!(passed > 0 && failed == 0, "{out}");
}

#[test]
fn what_the_board_cannot_be_is_refused_by_name() {
    let rows: [(&[&str], &str); 4] = [
        (
            &["--granule", "16k"],
            "--granule 16k: the Raspberry Pi 3's Cortex-A53 has no 16 KiB granule",
        ),
        (&["--mem", "2G"], "--machine raspi3b has 1 GiB of RAM"),
        (&["--smp", "5"], "--machine raspi3b has 4 CPUs"),
        (&["--cpu", "max"], "drop --cpu"),
    ];
    for (options, says) in rows {
        let mut args = vec!["run"];
        args.extend(PI);
        args.extend_from_slice(options);
        let run = splitmap(&args);
        assert_eq!(run.code, Some(2), "{options:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{options:?}: {}", run.stderr);
    }
    let run = splitmap(&["run", "--machine", "raspi4b"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

/// QEMU's `raspi3b` run directly on `image` with the Pi's tree, `-no-reboot`
/// or not, until it exits or has printed `enough` (then it is stopped), or
/// a minute passes: its exit status if it exited by itself, and its console.
fn qemu_on_the_pi(
    image: &str,
    no_reboot: bool,
    enough: impl Fn(&str) -> bool + Send + 'static,
) -> (Option<std::process::ExitStatus>, String) {
    use std::io::Read;
    let dtb = concat!(env!("CARGO_MANIFEST_DIR"), "/boot/boards/raspi3b.dtb");
    let mut qemu = std::process::Command::new("qemu-system-aarch64");
    qemu.args(["-M", "raspi3b", "-m", "1G", "-smp", "4", "-display", "none"])
        .args(["-serial", "stdio", "-monitor", "none", "-kernel", image, "-dtb", dtb])
        .args(["-append", "nokaslr"]);
    if no_reboot {
        qemu.arg("-no-reboot");
    }
    let mut qemu = qemu
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("qemu-system-aarch64");
    let mut stdout = qemu.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        // Until QEMU closes its end (it exited) or enough was said.
        while stdout.read(&mut byte).is_ok_and(|n| n == 1) {
            seen.push(byte[0]);
            if enough(&String::from_utf8_lossy(&seen)) {
                break;
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
    });
    let said = rx.recv_timeout(std::time::Duration::from_secs(60));
    let exited = qemu.try_wait().unwrap();
    let exited = match exited {
        Some(status) => Some(status),
        None => {
            // The output ended or was enough: give an exiting QEMU a moment.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                if let Some(status) = qemu.try_wait().unwrap() {
                    break Some(status);
                }
                if std::time::Instant::now() > deadline {
                    let _ = qemu.kill();
                    let _ = qemu.wait();
                    break None;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    };
    (exited, said.expect("QEMU said something within a minute"))
}

/// The kernel's own refusal, past the tool's: QEMU run directly with a
/// 16 KiB kernel, on the Pi's tree. The early code finds the board's UART
/// (0x3f201000) and its power-management block by the tree's root
/// `compatible`; virt's UART address is RAM here, and a message written
/// there would show nowhere. Then, as after any panic, the board resets
/// through its watchdog: QEMU with `-no-reboot` exits by itself (no park,
/// no halt line), and without it the machine starts again and refuses again.
#[test]
fn a_16k_kernel_refuses_itself_on_the_pis_console_and_resets() {
    let built = splitmap(&["build", "--granule", "16k"]);
    assert!(built.success, "{}", built.stderr);
    let image = built
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("image: "))
        .expect("build prints the image")
        .to_string();
    const REFUSAL: &str =
        "kernel panic: this kernel is built for 16K pages, which this CPU cannot use (ID_AA64MMFR0_EL1.TGran16 = 0x0)";
    let (exited, said) = qemu_on_the_pi(&image, true, |said| said.contains("Ctrl-A X leaves QEMU)"));
    assert!(said.contains(REFUSAL), "{said}");
    // The board's CPU is fixed: the hint is another granule, not -cpu.
    assert!(
        said.contains("): this board's Cortex-A53 cannot change: build it for 4K or 64K pages"),
        "{said}"
    );
    assert!(!said.contains("-cpu max"), "{said}");
    assert!(!said.contains("halted"), "the watchdog reset, no park: {said}");
    assert!(
        exited.is_some_and(|status| status.success()),
        "QEMU (-no-reboot) exits by itself on the reset: {exited:?}\n{said}"
    );
    // A reset, not a power-off: without -no-reboot the board boots again.
    let (exited, said) = qemu_on_the_pi(&image, false, |said| said.matches(REFUSAL).count() >= 2);
    assert_eq!(exited, None, "{said}");
    assert!(said.matches(REFUSAL).count() >= 2, "{said}");
}

/// A panic on the Pi ends in the board's own reset (no PSCI there): the
/// tool hears a guest reset and fails the run, with no halt line.
#[test]
fn a_panic_resets_the_board_and_fails_the_run() {
    let run = splitmap(&["run", "--machine", "raspi3b", "--nokaslr", "--cmd", "crash brk"]);
    assert_eq!(run.code, Some(1), "{}\n{}", run.stderr, run.stdout);
    assert_eq!(run.stderr.trim(), "splitmap: kernel panic", "{}", run.stdout);
    assert!(
        run.stdout.contains("kernel panic: unhandled exception"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("is unavailable"), "{}", run.stdout);
}

/// The Pi's tree source with `edit` applied, compiled by dtc into
/// target/raspi-trees/NAME.dtb; its path.
fn pi_tree(name: &str, edit: Edit) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("boot/boards/raspi3b.dts")).unwrap();
    let edited = edit(source.clone());
    assert_ne!(edited, source, "{name}: the edit changed nothing");
    let dir = root.join("target/raspi-trees");
    std::fs::create_dir_all(&dir).unwrap();
    let dtb = dir.join(format!("{name}.dtb"));
    std::fs::write(&dtb, dtc("dts", "dtb", edited.as_bytes())).unwrap();
    dtb.display().to_string()
}

/// An edit of the tree's source.
type Edit = fn(String) -> String;

fn without_memory(source: String) -> String {
    let start = source.find("\tmemory@0 {").expect("the tree's /memory");
    let end = start + source[start..].find("\n\t};\n").unwrap() + "\n\t};\n".len();
    format!("{}{}", &source[..start], &source[end..])
}

/// RAM from 256 MiB only: the Image, at 2 MiB, lies below it.
fn ram_above_the_image(source: String) -> String {
    source.replace("reg = <0x00000000 0x3c000000>;", "reg = <0x10000000 0x10000000>;")
}

/// The tree's `/chosen/stdout-path` (`serial0:115200n8`) replaced by
/// `path`, as written into the source.
fn with_stdout_path(source: String, path: &str) -> String {
    let pi = "stdout-path = \"serial0:115200n8\"";
    assert!(source.contains(pi), "the Pi's stdout-path");
    source.replace(pi, &format!("stdout-path = \"{path}\""))
}

/// A `stdout-path` to a node the tree lacks, with options, and a byte the
/// warning must escape (an ESC that would start a terminal sequence).
fn stdout_nowhere(source: String) -> String {
    with_stdout_path(source, "/soc/serial@7e999000\\x1b[2J:115200n8")
}

/// `--raw-dtb` on the Pi: the tree reaches the kernel as written (through
/// the stage-0 loader, at RAM base + 96 MiB = 0x6000000, inside the Pi's
/// RAM). What cannot boot stops with the kernel's reason, never a hang.
#[test]
fn raw_pi_trees_that_cannot_boot_stop_with_a_named_reason() {
    let rows: [(&str, Edit, &str); 2] = [
        (
            "no-memory",
            without_memory,
            "kernel panic: device tree has no /memory node with a non-empty reg",
        ),
        (
            // The panic comes before the console: its last words must go
            // to the Pi's UART, not virt's address (RAM here).
            "ram-above-image",
            ram_above_the_image,
            "kernel panic: the kernel image at 0x200000-",
        ),
    ];
    in_parallel(&rows, |&(name, edit, says)| {
        let dtb = pi_tree(name, edit);
        let run = splitmap(&[
            "run",
            "--machine",
            "raspi3b",
            "--raw-dtb",
            &dtb,
            "--timeout",
            "60",
            "--cmd",
            "help",
        ]);
        assert_eq!(run.code, Some(1), "{name}: {}\n{}", run.stderr, run.stdout);
        assert!(
            run.stdout
                .contains("stage0: handing the kernel the device tree at 0x6000000 as it is"),
            "{name}: {}",
            run.stdout
        );
        assert!(run.stdout.contains(says), "{name}: {}", run.stdout);
        assert!(!run.stdout.contains("splitmap> "), "{name}: {}", run.stdout);
        assert!(run.stderr.contains("kernel panic"), "{name}: {}", run.stderr);
        assert!(!run.stderr.contains("timeout"), "{name}: {}", run.stderr);
    });
}

/// A `stdout-path` naming no node: the warning names the path it could not
/// find (escaped: it is the tree's text), the console falls back to the
/// board's UART, and the shell answers — raw or through QEMU's `-dtb`.
#[test]
fn a_stdout_path_to_nowhere_falls_back_to_the_pis_uart_by_name() {
    let dtb = pi_tree("stdout-nowhere", stdout_nowhere);
    for option in ["--raw-dtb", "--dtb"] {
        let out = pi(&[option, &dtb], &["mem"]);
        assert!(
            out.contains(
                "[WARN ] /chosen/stdout-path names /soc/serial@7e999000\\x1b[2J, which is not in the device tree; console on Raspberry Pi 3's UART at 0x3f201000"
            ),
            "{option}: {out}"
        );
        assert!(
            !out.contains('\x1b'),
            "{option}: the tree's ESC reached the terminal: {out}"
        );
        assert!(out.contains("ram      pa=0x0-0x3c000000"), "{option}: {out}");
    }
}

fn stdout_to_the_watchdog(source: String) -> String {
    with_stdout_path(source, "/soc/watchdog@7e100000")
}

fn stdout_to_soc(source: String) -> String {
    with_stdout_path(source, "/soc:115200n8")
}

fn stdout_to_a_missing_alias(source: String) -> String {
    with_stdout_path(source, "serial1:115200n8")
}

/// Each way `stdout-path` can fail to name a PL011 is its own warning, naming
/// the path (an alias the tree lacks as written), and the shell answers on
/// the board's UART.
#[test]
fn every_stdout_path_that_names_no_pl011_is_told_apart() {
    let rows: [(&str, Edit, &str); 3] = [
        (
            "stdout-watchdog",
            stdout_to_the_watchdog,
            "the console node /soc/watchdog@7e100000 is not an arm,pl011",
        ),
        (
            "stdout-soc",
            stdout_to_soc,
            "the console node /soc has no reg the CPU can reach",
        ),
        (
            "stdout-alias",
            stdout_to_a_missing_alias,
            "/chosen/stdout-path names serial1, which is not in the device tree",
        ),
    ];
    in_parallel(&rows, |&(name, edit, says)| {
        let dtb = pi_tree(name, edit);
        let out = pi(&["--raw-dtb", &dtb], &["help"]);
        let warning = format!("[WARN ] {says}; console on Raspberry Pi 3's UART at 0x3f201000");
        assert!(out.lines().any(|l| l == warning), "{name}: {warning}\n{out}");
        assert!(out.contains("commands:"), "{name}: {out}");
    });
}

/// cpu@2's release word at 0x3c000000, the first byte past the Pi's RAM
/// (the VideoCore's share).
fn release_past_ram(source: String) -> String {
    source.replace(
        "cpu-release-addr = <0x0 0x000000e8>;",
        "cpu-release-addr = <0x0 0x3c000000>;",
    )
}

/// A spin-table CPU whose `cpu-release-addr` lies outside RAM is not
/// released (the kernel would write its entry there): named, skipped, and
/// the other three come up and the shell answers.
#[test]
fn a_release_word_outside_ram_skips_that_cpu_by_name() {
    let dtb = pi_tree("release-past-ram", release_past_ram);
    let out = pi(&["--raw-dtb", &dtb], &["cpus"]);
    assert!(
        out.contains("[WARN ] cpu node cpu@2: cpu-release-addr 0x3c000000 is outside RAM; skipped"),
        "{out}"
    );
    let online: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("cpu=") && l.contains(" state=online"))
        .collect();
    assert_eq!(online.len(), 3, "{out}");
    assert!(!out.contains("mpidr=0x2 "), "cpu@2 (mpidr 0x2) stays parked: {out}");
}

/// Through `-dtb` (not raw), QEMU's `raspi3b` writes `/memory` itself: a
/// tree without one, or with RAM elsewhere, boots with the board's RAM.
/// That is why the trees above go raw.
#[test]
fn qemu_writes_the_pis_memory_into_a_dtb_tree() {
    let rows: [(&str, Edit); 2] = [
        ("dtb-no-memory", without_memory),
        ("dtb-ram-above-image", ram_above_the_image),
    ];
    in_parallel(&rows, |&(name, edit)| {
        let dtb = pi_tree(name, edit);
        let out = pi(&["--dtb", &dtb, "--nokaslr"], &["mem"]);
        assert!(out.contains("ram      pa=0x0-0x3c000000 size=960 MiB"), "{name}: {out}");
    });
}

/// The Pi's own tree, raw: boots as written, the tree where stage-0 says.
#[test]
fn the_pis_tree_boots_raw() {
    let tree = concat!(env!("CARGO_MANIFEST_DIR"), "/boot/boards/raspi3b.dtb");
    let out = pi(&["--raw-dtb", tree], &["mem"]);
    assert!(
        out.contains("stage0: handing the kernel the device tree at 0x6000000 as it is"),
        "{out}"
    );
    assert!(out.contains("reserved pa=0x6000000-"), "{out}");
    assert_eq!(boot_line(&out).0, 0x20_0000, "{out}");
}

/// Where the Pi firmware puts an Image: 0x80000, which runs into stage-0
/// (at RAM base + 1 MiB); stage-0 moves itself out of the way first.
#[test]
fn the_firmwares_load_address_boots_through_stage0() {
    let out = pi(&["--load-addr", "0x80000", "--nokaslr"], &["layout", "test"]);
    assert!(out.contains("stage0: moving from 0x100000 to "), "{out}");
    assert!(
        out.contains("stage0: kernel Image (") && out.contains(") at pa=0x80000 (requested)"),
        "{out}"
    );
    assert_eq!(boot_line(&out), (0x8_0000, KIMAGE_VADDR), "{out}");
    let rows = layout_rows(&out);
    assert_eq!(row(&rows, "text").pa.map(|p| p.0), Some(0x8_0000), "{out}");
    assert_eq!(row(&rows, "linear").pa.map(|p| p.0), Some(0), "{out}");
    let (passed, failed) = ktap_totals(&out);
    assert!(passed > 0 && failed == 0, "{out}");
}

/// Stage-0's refusals on the Pi end the run through semihosting, as on virt.
#[test]
fn stage0_refuses_addresses_outside_the_pis_ram() {
    for (load, says) in [
        ("0x3c000000", "does not fit inside RAM"),
        ("0x80800", "is not 4 KiB-aligned"),
    ] {
        let run = splitmap(&[
            "run",
            "--machine",
            "raspi3b",
            "--load-addr",
            load,
            "--timeout",
            "60",
            "--cmd",
            "help",
        ]);
        assert_eq!(run.code, Some(1), "{load}: {}", run.stderr);
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with("stage0: error:") && l.contains(says)),
            "{load}: {}",
            run.stdout
        );
        assert!(
            run.stderr.contains("the stage-0 loader refused"),
            "{load}: {}",
            run.stderr
        );
    }
}

/// With KASLR on, the linear map still starts at PA 0 (ptdump's first row)
/// and PA 0's alias walks to PA 0, while the text runs where the seed says.
#[test]
fn ptdump_and_walk_see_pa_zero_with_kaslr_on() {
    let out = pi(
        &["--kaslr-seed", "0x5eed"],
        &["ptdump", "walk 0xffff000000000000", "pa2va 0x0"],
    );
    let (pa, va) = boot_line(&out);
    assert_ne!(va, KIMAGE_VADDR, "{out}");
    let dump: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.ends_with("> ptdump"))
        .skip(1)
        .take_while(|l| !l.starts_with("splitmap>"))
        .collect();
    assert!(
        dump[0]
            .starts_with("0xffff000000000000-0xffff00003c000000 960M pa=0x0-0x3c000000 blk=2M n=480 attr=normal ap=rw"),
        "{out}"
    );
    let text = dump
        .iter()
        .find(|l| l.starts_with(&format!("{va:#x}-")))
        .unwrap_or_else(|| panic!("no ptdump row at the text {va:#x}: {out}"));
    assert!(
        text.contains(&format!(" pa={pa:#x}-")) && text.contains("x=kernel"),
        "{text}"
    );
    assert!(out.contains("=> pa=0x0 level=2 size=2M prot=rw-"), "{out}");
    assert!(out.contains("pa=0x0 va=0xffff000000000000 region=linear"), "{out}");
}

/// `sweep --machine raspi3b`: every boot on the Pi, each with its seed,
/// every placement on the window's grid.
#[test]
fn a_sweep_runs_on_the_pi() {
    let svg = concat!(env!("CARGO_MANIFEST_DIR"), "/target/raspi-sweep.svg");
    let run = splitmap(&[
        "sweep",
        "--machine",
        "raspi3b",
        "--boots",
        "10",
        "--jobs",
        "2",
        "--bins",
        "2",
        "--svg",
        svg,
    ]);
    assert!(run.success, "{}\n{}", run.stderr, run.stdout);
    assert!(
        run.stdout.starts_with("sweep: 10 boots on raspi3b in "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(", off the slot grid 0\n"), "{}", run.stdout);
    let distinct: u64 = run
        .stdout
        .split("placements: ")
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the placements line");
    assert!(distinct > 1, "{}", run.stdout);
    let refused = splitmap(&["sweep", "--machine", "raspi3b", "--granule", "16k", "--boots", "1"]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("no 16 KiB granule"), "{}", refused.stderr);
}

/// The Pi's tree with its first token made one the format does not have:
/// the kernel can read nothing of it, not even where its console is. Under
/// `name`: tests run in parallel, each with files of its own.
fn unreadable_pi_tree(name: &str) -> String {
    let mut bad = std::fs::read(pi_tree(name, without_memory)).unwrap();
    let structure = u32::from_be_bytes(bad[8..12].try_into().unwrap()) as usize;
    bad[structure..structure + 4].copy_from_slice(&7u32.to_be_bytes());
    let dtb = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.dtb"));
    std::fs::write(&dtb, bad).unwrap();
    dtb.display().to_string()
}

/// With a tree it cannot read, the kernel on the Pi knows no console (its
/// panic goes to `virt`'s UART, which is RAM here): the tool's timeout
/// says the kernel never printed its boot line, and why that may be.
#[test]
fn a_silent_kernel_is_named_silent_when_the_run_times_out() {
    let dtb = unreadable_pi_tree("bad-token-silent");
    let run = splitmap(&[
        "run",
        "--machine",
        "raspi3b",
        "--raw-dtb",
        &dtb,
        "--timeout",
        "5",
        "--cmd",
        "help",
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("timeout after 5 s, and the kernel never printed its boot line")
            && run.stderr.contains("a device tree it cannot read names none"),
        "{}",
        run.stderr
    );
}

/// The Pi's A53s have EL3, so HCR_EL2.HCD (which makes `hvc` undefined at
/// EL1) is RES0 there, and an `hvc` goes to EL2. EL2's vectors hand it down
/// as HCD would have made it, undefined at the `hvc` itself, so the PSCI
/// guess a panic makes before the device tree is read (a tree whose first
/// token is no token) is caught by the exception table and the panic's
/// reset ends in `system_reset`'s own halt, as on `virt`. Handed down as
/// the `hvc` it was, it would be one more unhandled exception, reported
/// (to no console: the tree named none) down the nested-panic ladder.
#[test]
fn a_psci_guess_over_hvc_is_caught_on_the_pi_too() {
    let dtb = unreadable_pi_tree("bad-token-hvc");
    let port = common::gdb::free_port();
    let options = [
        "--machine",
        "raspi3b",
        "--raw-dtb",
        &dtb,
        "--timeout",
        "60",
        "--cmd",
        "help",
    ];
    let run = common::gdb::run_waiting_for_gdb(port, &options);
    let exs = ["sm-link", "break kernel::arch::cpu::park", "continue", "bt 2", "kill"];
    let gdb = common::gdb::early_gdb_batch(port, &exs);
    let _ = run.wait_with_output();
    let frames: Vec<&str> = gdb.stdout.lines().filter(|l| l.starts_with('#')).collect();
    assert!(
        frames.len() == 2
            && frames[0].contains("kernel::arch::cpu::park")
            && frames[1].contains("kernel::arch::psci::system_reset"),
        "{}{}",
        gdb.stdout,
        gdb.stderr
    );
}

/// `gdb --early` on the Pi: the symbols go where QEMU loaded the Image
/// (0x200000, found by gdb itself), and the early code stops there.
#[test]
fn gdb_early_finds_the_image_on_the_pi() {
    let port = common::gdb::free_port();
    let run = common::gdb::run_waiting_for_gdb(
        port,
        &["--machine", "raspi3b", "--nokaslr", "--timeout", "120", "--cmd", "help"],
    );
    let gdb = common::gdb::early_gdb_batch(
        port,
        &["break pi::boot::create_boot_tables", "continue", "p/x $pc", "detach"],
    );
    common::gdb::both_succeeded(run, &gdb);
    assert!(
        gdb.stdout.contains("splitmap: early symbols at pa=0x200000"),
        "{}",
        gdb.stdout
    );
    let pc = gdb
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("$1 = "))
        .map(hex)
        .unwrap_or_else(|| panic!("{}", gdb.stdout));
    assert!((0x20_0000..0x20_0000 + image_size()).contains(&pc), "{pc:#x}");
}

/// `splitmap gdb` (no `--machine`: it reads where this boot put the image
/// from the kernel's own record) on the Pi with KASLR on: breakpoints land
/// at the addresses the seed chose, and gdb's walk of the live tables finds
/// PA 0's linear alias in a 2 MiB block, as the kernel's `va2pa` does.
#[test]
fn gdb_follows_kaslr_on_the_pi() {
    let port = common::gdb::free_port();
    // A seed of the test's own, different every run: nothing may depend on it.
    let seed = format!("{:#x}", (std::process::id() as u64) << 21 | 0x5);
    let run = common::gdb::run_waiting_for_gdb(
        port,
        &[
            "--machine",
            "raspi3b",
            "--kaslr-seed",
            &seed,
            "--timeout",
            "120",
            "--cmd",
            "va2pa 0xffff000000001234",
        ],
    );
    let gdb = common::gdb::gdb_batch(
        port,
        &[
            "sm-kaslr",
            "break kernel::shell::explore::va2pa",
            "continue",
            "bt",
            "sm-walk 0xffff000000001234",
            "detach",
        ],
    );
    let console = common::gdb::both_succeeded(run, &gdb);
    let (pa, text) = boot_line(&console);
    assert_eq!(pa, 0x20_0000, "{console}");
    assert_ne!(text, KIMAGE_VADDR, "{console}");
    assert!(
        gdb.stdout.contains(&format!(
            "offset={:#x} text={text:#x} image_pa=0x200000",
            text - KIMAGE_VADDR
        )),
        "{}",
        gdb.stdout
    );
    assert!(
        gdb.stdout
            .lines()
            .any(|l| l.starts_with("#0  kernel::shell::explore::va2pa")),
        "{}",
        gdb.stdout
    );
    assert!(
        console.contains("va=0xffff000000001234 pa=0x1234 region=linear"),
        "{console}"
    );
    assert!(gdb.stdout.contains("=> pa=0x1234 level=2 size=2M"), "{}", gdb.stdout);
}
