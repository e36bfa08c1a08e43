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
    let out = std::process::Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb"])
        .arg(dir.join("raspi3b.dts"))
        .output()
        .expect("dtc (device-tree-compiler, scripts/setup.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.stdout == std::fs::read(dir.join("raspi3b.dtb")).unwrap(),
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
    let seeds = ["0x1", "0x5eed", "0xdeadbeef", "0x123456789abcdef"];
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
    let rows: [(&[&str], &str); 5] = [
        (
            &["--granule", "16k"],
            "--granule 16k: the Raspberry Pi 3's Cortex-A53 has no 16 KiB granule",
        ),
        (&["--mem", "2G"], "--machine raspi3b has 1 GiB of RAM"),
        (&["--smp", "5"], "--machine raspi3b has 4 CPUs"),
        (&["--cpu", "max"], "drop --cpu"),
        (
            &["--load-addr", "0x80000"],
            "--load-addr goes through the stage-0 loader",
        ),
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

/// The kernel's own refusal, past the tool's: QEMU run directly with a
/// 16 KiB kernel, on the Pi's tree. The early code finds the board's UART
/// (0x3f201000) by the tree's root `compatible`; virt's UART address is RAM
/// here, and a message written there would show nowhere.
#[test]
fn a_16k_kernel_refuses_itself_on_the_pis_console() {
    use std::io::Read;
    let built = splitmap(&["build", "--granule", "16k"]);
    assert!(built.success, "{}", built.stderr);
    let image = built
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("image: "))
        .expect("build prints the image")
        .to_string();
    let dtb = concat!(env!("CARGO_MANIFEST_DIR"), "/boot/boards/raspi3b.dtb");
    let mut qemu = std::process::Command::new("qemu-system-aarch64")
        .args([
            "-M", "raspi3b", "-m", "1G", "-smp", "4", "-display", "none", "-serial", "stdio",
        ])
        .args([
            "-monitor",
            "none",
            "-no-reboot",
            "-kernel",
            &image,
            "-dtb",
            dtb,
            "-append",
            "nokaslr",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("qemu-system-aarch64");
    let mut stdout = qemu.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).is_ok_and(|n| n == 1) {
            seen.push(byte[0]);
            if seen.ends_with(b"Ctrl-A X leaves QEMU)") {
                break;
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
    });
    // The kernel halts after saying why (it has no tree read to power off
    // with); QEMU is stopped once the line is out, or after a minute.
    let said = rx.recv_timeout(std::time::Duration::from_secs(60));
    let _ = qemu.kill();
    let _ = qemu.wait();
    let said = said.expect("the refusal within a minute");
    assert!(
        said.contains("this kernel is built for 16K pages, which this CPU cannot use (ID_AA64MMFR0_EL1.TGran16 = 0x0)"),
        "{said}"
    );
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
