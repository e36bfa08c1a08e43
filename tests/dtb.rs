//! Device trees QEMU would never generate. Passed with `-dtb`, QEMU fixes
//! them up (it rewrites /memory, refuses blobs it cannot parse); passed with
//! `--raw-dtb`, the kernel gets them exactly as written. Malformed nodes are
//! reported by name and ignored; a tree the kernel cannot use at all is
//! reported on QEMU virt's UART (the early console) and the run ends.

mod common;
use common::*;
use vm_fdt::{FdtReserveEntry, FdtWriter};

/// A minimal tree for QEMU `virt`, plus whatever `extra` adds.
fn tree(stdout: bool, extra: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    tree_with_memory(stdout, &[0x4000_0000, 0x4000_0000], extra)
}

/// The same with `/memory`'s `reg` as given (none if empty).
fn tree_with_memory(stdout: bool, reg: &[u64], extra: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    tree_with_psci(stdout, reg, "hvc", extra)
}

/// The same with `/psci`'s `method` as given.
fn tree_with_psci(stdout: bool, reg: &[u64], method: &str, extra: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    // A /memreserve/ entry that overlaps RAM the kernel must not hand out.
    let mut w = FdtWriter::new_with_mem_reserv(&[FdtReserveEntry::new(0x5000_0000, 0x1_0000).unwrap()]).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    if stdout {
        w.property_string("stdout-path", "/pl011@9000000").unwrap();
    }
    w.end_node(chosen).unwrap();
    if !reg.is_empty() {
        let memory = w.begin_node("memory").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", reg).unwrap();
        w.end_node(memory).unwrap();
    }
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
    w.end_node(uart).unwrap();
    let psci = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci-0.2").unwrap();
    w.property_string("method", method).unwrap();
    w.end_node(psci).unwrap();
    extra(&mut w);
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

fn write(name: &str, blob: &[u8]) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, blob).unwrap();
    path.display().to_string()
}

#[test]
fn malformed_nodes_are_named_and_ignored() {
    let blob = tree(true, |w| {
        // (QEMU replaces every device_type="memory" node with its own /memory,
        // so malformed RAM nodes are covered by the host tests of kernel/src/boot/dtb.rs.)
        // Absurd cells under /reserved-memory.
        let rm = w.begin_node("reserved-memory").unwrap();
        w.property_u32("#address-cells", 7).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let area = w.begin_node("area@0").unwrap();
        w.property_array_u32("reg", &[0; 9]).unwrap();
        w.end_node(area).unwrap();
        w.end_node(rm).unwrap();
    });
    let dtb = write("malformed-nodes.dtb", &blob);
    let out = session(&["--nokaslr", "--dtb", &dtb], &["mem", "test"]);
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("[WARN ]")).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("reserved-memory has an unsupported #address-cells")),
        "{out}"
    );
    assert_eq!(warnings.len(), 1, "nothing else is reported: {warnings:?}");
    // The good RAM is there, the /memreserve/ entry is honoured.
    assert!(
        out.lines().any(|l| l.starts_with("ram      pa=0x40000000-0x80000000")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l == "reserved pa=0x50000000-0x50010000 memreserve"),
        "{out}"
    );
    assert_eq!(ktap_totals(&out).1, 0, "{out}");
}

#[test]
fn no_console_in_the_tree_falls_back_to_qemu_virts_uart() {
    let dtb = write("no-stdout.dtb", &tree(false, |_| {}));
    let out = session(&["--dtb", &dtb], &["help"]);
    assert!(
        out.lines().any(|l| l.starts_with("[WARN ]")
            && l.ends_with("the device tree has no /chosen/stdout-path; console on QEMU virt's UART at 0x9000000")),
        "{out}"
    );
    assert!(out.contains("commands:"), "the shell answers:\n{out}");
}

/// The fallback UART comes from the board table, and never from an address
/// the tree's `/memory` calls RAM: a write there would land in memory. With
/// nothing to speak through, the kernel powers off instead of guessing.
#[test]
fn the_fallback_uart_is_never_where_the_tree_says_ram_is() {
    // RAM from 0 to 2 GiB: over QEMU virt's UART at 0x9000000 (and over the
    // 1 GiB at 0x40000000 the machine really has, where the kernel sits).
    let blob = tree_with_memory(false, &[0, 0x8000_0000], |_| {});
    let run = raw("ram-over-uart.dtb", &blob, &["help"]);
    assert!(!run.success, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("powered off after 0 of"),
        "it powered off, not hung:
{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("splitmap: image") && !run.stdout.contains("console on QEMU virt's UART"),
        "nothing was written to the 'UART' inside RAM:\n{}",
        run.stdout
    );
}

/// RAM that starts off a page boundary: the kernel maps and uses its whole
/// pages, and its own tests check those, not the ragged start.
#[test]
fn a_ram_base_off_a_page_passes_the_in_kernel_tests() {
    let blob = tree_with_memory(true, &[0x4000_0800, 0x3fff_f800], |_| {});
    let run = raw("ram-off-a-page.dtb", &blob, &["test"]);
    let (passed, failed) = ktap_totals(&run.stdout);
    assert!(
        run.success && failed == 0 && passed >= 19,
        "{}{}",
        run.stdout,
        run.stderr
    );
}

/// Boots with `blob` handed to the kernel as it is; the run's output.
fn raw(name: &str, blob: &[u8], cmds: &[&str]) -> Run {
    let dtb = write(name, blob);
    let mut args = vec!["run", "--timeout", "30", "--raw-dtb", &dtb];
    for c in cmds {
        args.extend(["--cmd", c]);
    }
    splitmap(&args)
}

#[test]
fn a_raw_tree_boots_as_written() {
    let run = raw("raw-good.dtb", &tree(true, |_| {}), &["mem"]);
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("stage0: handing the kernel the device tree at 0x46000000 as it is")
    );
    assert!(
        run.stdout.contains("reserved pa=0x46000000-"),
        "the raw tree is reserved:\n{}",
        run.stdout
    );
}

#[test]
fn unusable_raw_trees_are_explained_on_the_early_console() {
    let good = tree(true, |_| {});
    let mut garbage = b"this is not a device tree".to_vec();
    garbage.resize(64, 0);
    let mut no_size = good.clone();
    no_size[4..8].fill(0);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "raw-no-memory.dtb",
            tree_with_memory(true, &[], |_| {}),
            "kernel panic: device tree has no /memory node with a non-empty reg",
        ),
        (
            "raw-truncated.dtb",
            good[..good.len() / 2].to_vec(),
            "kernel panic: the device tree at 0x46000000 is unusable: device tree structure block is malformed",
        ),
        (
            // At a page boundary, a totalsize of 0 once mapped nothing and hung.
            "raw-totalsize-zero.dtb",
            no_size,
            "kernel panic: the device tree at 0x46000000 is unusable: device tree totalsize 0x0 is outside 40 bytes..2 MiB",
        ),
        (
            "raw-garbage.dtb",
            garbage,
            "kernel panic: the device tree at 0x46000000 is unusable: no device tree: magic is 0x74686973",
        ),
        (
            // No console named either: the message still gets out.
            "raw-truncated-no-stdout.dtb",
            {
                let t = tree(false, |_| {});
                t[..t.len() / 2].to_vec()
            },
            "kernel panic: the device tree at 0x46000000 is unusable:",
        ),
    ];
    in_parallel(&cases, |(name, blob, want)| {
        let run = raw(name, blob, &["help"]);
        assert!(!run.success, "{name}: the run fails");
        assert!(
            run.stdout.lines().any(|l| l.starts_with(want)),
            "{name}: {want}\n{}{}",
            run.stdout,
            run.stderr
        );
        assert!(run.stderr.contains("kernel panic"), "{name}: {}", run.stderr);
    });
}

#[test]
fn entered_without_a_tree_in_x0_the_kernel_says_so() {
    // QEMU's generic loader starts the CPU at the image itself, past the boot
    // stub that loads x0, so x0 is 0.
    let run = splitmap(&[
        "run",
        "--timeout",
        "30",
        "--qemu-arg=-device",
        "--qemu-arg=loader,addr=0x40200000,cpu-num=0",
        "--cmd",
        "mem",
    ]);
    assert!(!run.success);
    assert!(
        run.stdout.lines().any(|l| l.starts_with(
            "kernel panic: the device tree at 0x0 is unusable: x0 (0x0) must hold a device tree's address, 8-byte aligned"
        )),
        "{}{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn odd_memory_ranges_are_reported_and_the_rest_used() {
    let reg = [
        0x4000_0000,
        0x4000_0000, // 1 GiB, good
        0x9000_0000,
        0, // zero-sized
        0x6000_0000,
        0x1000_0000, // inside the first: overlapping
        0x1_0000_0000_0000,
        0x4000_0000, // beyond a cortex-a72's 44-bit physical addresses
    ];
    let run = raw(
        "raw-odd-memory.dtb",
        &tree_with_memory(true, &reg, |_| {}),
        &["mem", "test"],
    );
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    let warnings: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("[WARN ]")).collect();
    for want in [
        "device tree memory range at 0x90000000 has size 0; ignored",
        "device tree memory ranges overlap at 0x60000000-0x70000000; merged",
        "RAM beyond this CPU's 44-bit physical address space ignored",
    ] {
        assert!(warnings.iter().any(|w| w.ends_with(want)), "{want}: {warnings:?}");
    }
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("ram      pa=0x40000000-0x80000000")),
        "{}",
        run.stdout
    );
    assert_eq!(ktap_totals(&run.stdout).1, 0, "{}", run.stdout);
}

#[test]
fn qemus_own_tree_boots_raw_and_fails_clearly_once_mutated() {
    let dtb = qemu_tree("qemu-virt", "virt", &[]);
    let run = raw("qemu-virt.dtb", &dtb, &["mem"]);
    assert!(run.success, "QEMU's tree as it is boots:\n{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("ram      pa=0x40000000-0x80000000"),
        "{}",
        run.stdout
    );

    // The structure block's offset is at 8 in the header; cut the file inside it.
    let structure = u32::from_be_bytes(dtb[8..12].try_into().unwrap()) as usize;
    let mut wrong_magic = dtb.clone();
    wrong_magic[0] ^= 0xff;
    let cases = [
        (
            "qemu-cut.dtb",
            dtb[..structure + 64].to_vec(),
            "is unusable: device tree structure block is malformed",
        ),
        (
            "qemu-magic.dtb",
            wrong_magic,
            "is unusable: no device tree: magic is 0x2f0dfeed",
        ),
    ];
    in_parallel(&cases, |(name, blob, want)| {
        let run = raw(name, blob, &["help"]);
        assert!(!run.success, "{name}");
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with("kernel panic:") && l.contains(want)),
            "{name}: {want}\n{}",
            run.stdout
        );
    });
}

/// A `/reserved-memory` child per range.
fn reserved_memory(w: &mut FdtWriter, ranges: &[(u64, u64)]) {
    let rm = w.begin_node("reserved-memory").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property_null("ranges").unwrap();
    for (i, &(start, size)) in ranges.iter().enumerate() {
        let node = w.begin_node(&format!("r{i}@{start:x}")).unwrap();
        w.property_array_u64("reg", &[start, size]).unwrap();
        w.end_node(node).unwrap();
    }
    w.end_node(rm).unwrap();
}

#[test]
fn thirty_two_memory_ranges_boot_and_every_one_is_used() {
    // 32 ranges of 16 MiB with 1 MiB gaps from the RAM base: the image (at
    // +2 MiB) and the raw tree (at 0x46000000) both fall inside one.
    let reg: Vec<u64> = (0..32).flat_map(|i| [RAM_BASE + i * 17 * MIB, 16 * MIB]).collect();
    let run = raw(
        "raw-32-ranges.dtb",
        &tree_with_memory(true, &reg, |_| {}),
        &["mem", "test linear"],
    );
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    let ram = run.stdout.lines().filter(|l| l.starts_with("ram      ")).count();
    assert_eq!(ram, 32, "{}", run.stdout);
    assert_eq!(ktap_totals(&run.stdout).1, 0, "{}", run.stdout);
}

/// RAM in more pieces than the image's table pool can map, in each
/// granule (each range needs a leaf table of its own: 28 ranges of 4 MiB
/// off a 2 MiB boundary with 4 KiB pages; 20 of 16 MiB, each ending in the
/// middle of a 32 MiB block, with 16 KiB pages; 20 of 64 MiB, one to a
/// 512 MiB block, with 64 KiB pages): the kernel says so on the early
/// console, by name, instead of dying silently while it builds the linear
/// map.
#[test]
fn ram_in_more_pieces_than_the_table_pool_maps_is_named() {
    let cases: [(&str, Vec<u64>); 3] = [
        (
            "4k",
            (0..28).flat_map(|i| [RAM_BASE + i * 9 * MIB + 4096, 4 * MIB]).collect(),
        ),
        (
            "16k",
            (0..20).flat_map(|i| [RAM_BASE + i * 32 * MIB, 16 * MIB]).collect(),
        ),
        (
            "64k",
            (0..20).flat_map(|i| [RAM_BASE + i * 512 * MIB, 64 * MIB]).collect(),
        ),
    ];
    in_parallel(&cases, |(granule, reg)| {
        let name = format!("raw-ragged-{granule}.dtb");
        let dtb = write(&name, &tree_with_memory(true, reg, |_| {}));
        let run = splitmap(&[
            "run",
            "--granule",
            granule,
            "--timeout",
            "30",
            "--raw-dtb",
            &dtb,
            "--cmd",
            "mem",
        ]);
        assert!(!run.success, "{granule}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains(&format!(
                "kernel panic: the linear map of these RAM ranges needs more page-table pages than the image's pool holds ({}): {} ranges",
                match *granule { "4k" => 64, "16k" => 32, _ => 16 },
                reg.len() / 2
            )),
            "{granule}: {}{}",
            run.stdout,
            run.stderr
        );
    });
}

#[test]
fn every_reservation_is_honoured_however_many() {
    // Twenty reservations, the last the top 16 MiB of RAM, where the heap
    // would otherwise go.
    let top = (RAM_BASE + GIB - 16 * MIB, 16 * MIB);
    let mut ranges: Vec<(u64, u64)> = (0..19).map(|i| (0x5800_0000 + i * 0x10_0000, 0x1000)).collect();
    ranges.push(top);
    let run = raw(
        "raw-20-reservations.dtb",
        &tree(true, |w| reserved_memory(w, &ranges)),
        &["mem"],
    );
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    let listed = run.stdout.lines().filter(|l| l.ends_with(" memreserve")).count();
    assert!(listed >= 20, "every reservation is listed:\n{}", run.stdout);
    let heap = run.stdout.lines().find(|l| l.ends_with(" heap")).expect("a heap line");
    let (start, end) = heap
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pa="))
        .and_then(|r| r.split_once('-'))
        .map(|(a, b)| (hex(a), hex(b)))
        .unwrap();
    assert!(
        end <= top.0 || start >= top.0 + top.1,
        "the heap {heap} is in a reservation"
    );
}

#[test]
fn a_reservation_up_to_the_top_of_the_address_space_is_kept() {
    // [RAM top - 16 MiB, 2^64): its end does not fit in 64 bits.
    let start = RAM_BASE + GIB - 16 * MIB;
    let run = raw(
        "raw-reserve-to-2-64.dtb",
        &tree(true, |w| reserved_memory(w, &[(start, start.wrapping_neg())])),
        &["mem"],
    );
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!("reserved pa={start:#x}-")),
        "{}",
        run.stdout
    );
    let heap = run.stdout.lines().find(|l| l.ends_with(" heap")).expect("heap");
    assert!(!heap.contains("pa=0x7f"), "the heap took the reserved top: {heap}");
}

#[test]
fn an_initrd_outside_ram_is_reported_and_not_used() {
    let blob = tree(true, |w| {
        // A second /chosen is merged by path; put the properties in one of
        // its own instead.
        let chosen = w.begin_node("chosen").unwrap();
        w.property_u64("linux,initrd-start", 0x1_0000_0000).unwrap();
        w.property_u64("linux,initrd-end", 0x1_0010_0000).unwrap();
        w.end_node(chosen).unwrap();
    });
    let run = raw("raw-initrd-outside.dtb", &blob, &["modules", "insmod hello"]);
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("initrd at 0x100000000-0x100100000 is outside RAM; ignored"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("error: no initrd"), "{}", run.stdout);
}

#[test]
fn a_uart_that_cannot_be_mapped_falls_back_to_the_early_console() {
    let uart_at = |reg: [u64; 2]| {
        tree(false, move |w| {
            let chosen = w.begin_node("chosen").unwrap();
            w.property_string("stdout-path", "/pl011@9000000").unwrap();
            w.end_node(chosen).unwrap();
            let uart = w.begin_node("pl011@9000000").unwrap();
            w.property_string("compatible", "arm,pl011").unwrap();
            w.property_array_u64("reg", &reg).unwrap();
            w.end_node(uart).unwrap();
        })
    };
    // (file, reg, what the warning says): larger than the window; past the
    // Cortex-A72's 44-bit physical addresses (a descriptor would have cut
    // the address to 48 bits, or mapped nothing in the last page).
    let cases = [
        (
            "raw-huge-uart.dtb",
            [0x900_0000, 0x1000_0000],
            "do not fit the MMIO window",
        ),
        (
            "raw-far-uart.dtb",
            [0x1_0000_0900_0000, 0x1000],
            "lie past this CPU's 44-bit physical addresses",
        ),
        (
            "raw-top-uart.dtb",
            [0xffff_ffff_ffff_f800, 0x100],
            "lie past this CPU's 44-bit physical addresses",
        ),
    ];
    in_parallel(&cases, |(name, reg, why)| {
        let run = raw(name, &uart_at(*reg), &["help"]);
        assert!(run.success, "{name}: {}{}", run.stdout, run.stderr);
        let warning = format!(
            "[WARN ] the console UART's registers at {:#x} ({:#x} bytes) {why}",
            reg[0], reg[1]
        );
        assert!(run.stdout.contains(&warning), "{name}: {warning}\n{}", run.stdout);
        assert!(run.stdout.contains("commands:"), "{name}: {}", run.stdout);
    });
}

#[test]
fn a_tree_outside_ram_keeps_its_seed_and_boots() {
    // RAM around the raw tree at 0x46000000, not under it.
    let ram = [RAM_BASE, 0x600_0000, 0x4620_0000, 0x39e0_0000];
    let blob = tree_with_memory(true, &ram, |w| {
        let chosen = w.begin_node("chosen").unwrap();
        w.property_u64("kaslr-seed", 0x1234_5678).unwrap();
        w.end_node(chosen).unwrap();
    });
    let run = raw("raw-tree-outside-ram.dtb", &blob, &["kaslr"]);
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("source=dtb"), "{}", run.stdout);
    assert!(run.stdout.contains("outside RAM"), "{}", run.stdout);
}

#[test]
fn a_kernel_outside_the_described_ram_is_named_not_a_silent_fault() {
    // RAM from 0x48000000 only: the image at 0x40200000 is outside it.
    let blob = tree_with_memory(true, &[0x4800_0000, 0x3800_0000], |_| {});
    let run = raw("raw-image-outside-ram.dtb", &blob, &["help"]);
    assert!(!run.success);
    assert!(
        run.stdout.contains("kernel panic: the kernel image at 0x40200000-")
            && run.stdout.contains("is not inside the RAM"),
        "{}",
        run.stdout
    );
}

#[test]
fn ram_the_machine_does_not_have_is_named_when_it_is_touched() {
    // 4 GiB from 1 GiB in the tree; QEMU gives 1 GiB.
    let blob = tree_with_memory(true, &[0x4000_0000, 0x1_0000_0000], |_| {});
    let run = raw("raw-ram-not-there.dtb", &blob, &["help"]);
    assert!(!run.success);
    assert!(
        run.stdout.contains("synchronous external abort")
            && run
                .stdout
                .contains("nothing answered at this address: no RAM or device is behind it"),
        "{}",
        run.stdout
    );
}

#[test]
fn psci_over_a_conduit_with_nothing_behind_it_halts_with_a_reason() {
    // QEMU virt has no EL3 firmware: `smc` is an undefined instruction there.
    let blob = tree_with_psci(true, &[RAM_BASE, GIB], "smc", |_| {});
    let run = raw("raw-psci-smc.dtb", &blob, &["help"]);
    assert!(
        run.stdout.contains("PSCI does not answer over smc"),
        "warned at boot:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("commands:"), "the shell works:\n{}", run.stdout);
    assert!(
        run.stdout
            .contains("splitmap: power-off is unavailable: PSCI does not answer over smc; halted"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("exception:"), "no fault loop:\n{}", run.stdout);
    assert!(!run.success, "the run could not power off");
    assert!(
        run.stderr.contains("it cannot power this machine off"),
        "{}",
        run.stderr
    );

    // A panic there halts once, too (it used to fault again in `smc`): its
    // reset is unavailable, and the tool says both.
    let run = raw("raw-psci-smc.dtb", &blob, &["crash brk"]);
    assert!(run.stderr.contains("kernel panic"), "{}", run.stderr);
    let faults = run.stdout.lines().filter(|l| l.starts_with("exception:")).count();
    assert_eq!(faults, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("splitmap: reset is unavailable: PSCI does not answer over smc; halted"),
        "{}",
        run.stdout
    );
}

/// SplitMix64, for choosing mutations reproducibly.
fn mix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Mutant `i` of `dtb`: one structural edit chosen from the seed — a header
/// field, a cut, a token, a property's length or name offset, a cell count,
/// or a few bytes of the structure block.
fn dtb_mutant(dtb: &[u8], seed: u64, i: u64) -> (String, Vec<u8>) {
    let r = mix(seed ^ i.wrapping_mul(0x1000_0001));
    let mut b = dtb.to_vec();
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let (off_struct, size_struct) = (be32(dtb, 8) as usize, be32(dtb, 36) as usize);
    // Where the structure block has a PROP token whose length passes `len`
    // (a token word may also be data that happens to look like one: fine).
    let props = |len: fn(u32) -> bool| -> Vec<usize> {
        (off_struct..off_struct + size_struct - 8)
            .step_by(4)
            .filter(|&at| be32(dtb, at) == 3 && len(be32(dtb, at + 4)))
            .collect()
    };
    // A 4-byte aligned word inside the structure block.
    let word = off_struct + ((r >> 8) as usize % (size_struct / 4)) * 4;
    let what = match i % 8 {
        0 => {
            // One header field (after the magic): totalsize, the offsets,
            // versions, the sizes.
            let field = 4 + 4 * ((r >> 16) as usize % 9);
            let value = [0, 1, 0xffff_ffff, be32(dtb, field) ^ 0x80, be32(dtb, field) + 4][(r >> 32) as usize % 5];
            b[field..field + 4].copy_from_slice(&value.to_be_bytes());
            format!("header word at {field} = {value:#x}")
        }
        1 => {
            let len = off_struct + (r >> 8) as usize % (b.len() - off_struct);
            b.truncate(len);
            format!("cut at {len}")
        }
        2 => {
            // A token replaced: FDT_BEGIN_NODE, END_NODE, PROP, NOP, END or junk.
            let token = [1u32, 2, 3, 4, 9, 0x42][(r >> 32) as usize % 6];
            b[word..word + 4].copy_from_slice(&token.to_be_bytes());
            format!("word at {word:#x} = token {token}")
        }
        3 | 4 => {
            // The word after a PROP token is its length, the next its name.
            let props = props(|_| true);
            let at = props[(r >> 8) as usize % props.len()] + 4 * (1 + i as usize % 2);
            let value = [0, 3, 0xffff, 0x7fff_fff0, be32(dtb, at) + 1][(r >> 32) as usize % 5];
            b[at..at + 4].copy_from_slice(&value.to_be_bytes());
            format!("property field at {at:#x} = {value:#x}")
        }
        5 => {
            b[word..word + 4].copy_from_slice(&((r >> 32) as u32).to_be_bytes());
            format!("word at {word:#x} random")
        }
        6 => {
            // A #address-cells or #size-cells value: 0, 3 or huge.
            let cells = props(|len| len == 4);
            let at = cells[(r >> 8) as usize % cells.len()] + 12;
            let value = [0u32, 3, 0xffff_ffff][(r >> 32) as usize % 3];
            b[at..at + 4].copy_from_slice(&value.to_be_bytes());
            format!("a cells value at {at:#x} = {value}")
        }
        _ => {
            for k in 0..4 {
                let at = off_struct + (mix(r + k) as usize % size_struct);
                b[at] ^= 1 << (mix(r + k + 7) % 8);
            }
            "four bit flips".to_string()
        }
    };
    (what, b)
}

#[test]
fn mutated_trees_reach_the_prompt_or_stop_with_a_named_error() {
    let dtb = qemu_tree("qemu-virt", "virt", &[]);
    let cases: Vec<(String, String, Vec<u8>)> = (0..40)
        .map(|i| {
            let (what, blob) = dtb_mutant(&dtb, 0xd7b, i);
            (format!("qemu-mutant-{i:02}.dtb"), what, blob)
        })
        .collect();
    in_parallel(&cases, |(name, what, blob)| {
        let run = raw(name, blob, &["mem"]);
        let out = &run.stdout;
        assert!(!out.contains("\nexception:"), "{name} ({what}) faulted:\n{out}");
        if run.success {
            assert!(out.contains("splitmap> mem"), "{name} ({what})");
        } else {
            let panic = out.lines().find(|l| l.starts_with("kernel panic:"));
            assert!(
                panic.is_some_and(|l| l.contains("device tree")),
                "{name} ({what}): neither the prompt nor a named device-tree error:\n{out}\n{}",
                run.stderr
            );
        }
    });
}

/// `stdout-path` naming a "PL011" whose `reg` is no PL011's: unassigned
/// MMIO (the console's first access faulted before there was a console: a
/// silent power-off), QEMU virt's PL031 RTC, RAM, and an address off the
/// block's start (each once a hang or a console writing nowhere). The
/// kernel reads the PrimeCell ID registers before it trusts the tree, and
/// falls back to the board's UART, naming the node and the reason.
#[test]
fn a_stdout_path_that_is_no_pl011_falls_back_by_name() {
    let serial_at = |at: u64| {
        tree(false, move |w| {
            let chosen = w.begin_node("chosen").unwrap();
            w.property_string("stdout-path", &format!("/serial@{at:x}:115200n8"))
                .unwrap();
            w.end_node(chosen).unwrap();
            let uart = w.begin_node(&format!("serial@{at:x}")).unwrap();
            w.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()])
                .unwrap();
            w.property_array_u64("reg", &[at, 0x1000]).unwrap();
            w.end_node(uart).unwrap();
        })
    };
    let cases = [
        (
            "raw-uart-unaligned.dtb",
            0x900_0004,
            "is not on a 0x1000-byte boundary, where a PL011's registers start",
        ),
        (
            "raw-uart-unassigned.dtb",
            0xb00_0000,
            "does not answer: reading its ID registers at +0xfe0 faulted (synchronous external abort",
        ),
        (
            "raw-uart-rtc.dtb",
            0x901_0000,
            "is another PrimeCell: part 0x031 by designer 0x41, not a PL011",
        ),
        ("raw-uart-ram.dtb", 0x7000_0000, "is in RAM (the tree's /memory)"),
    ];
    in_parallel(&cases, |(name, at, why)| {
        let run = raw(name, &serial_at(*at), &["help"]);
        assert!(run.success, "{name}: {}{}", run.stdout, run.stderr);
        let warning = format!("[WARN ] the console UART /serial@{at:x} at {at:#x} {why}");
        let line = run.stdout.lines().find(|l| l.starts_with(&warning));
        assert!(
            line.is_some_and(|l| l.ends_with("; console on QEMU virt's UART at 0x9000000")),
            "{name}: {warning}\n{}",
            run.stdout
        );
        assert!(run.stdout.contains("commands:"), "{name}: {}", run.stdout);
    });
}

/// Trees wrong in their structure, as the kernel gets them raw: a header
/// version it does not know, an empty structure or strings block, the
/// root's END_NODE made a NOP. Each is refused by name on the early console.
#[test]
fn structurally_wrong_raw_trees_are_refused_by_name() {
    let good = tree(true, |_| {});
    let be32 = |at: usize| u32::from_be_bytes(good[at..at + 4].try_into().unwrap()) as usize;
    let with = |at: usize, value: u32| {
        let mut blob = good.clone();
        blob[at..at + 4].copy_from_slice(&value.to_be_bytes());
        blob
    };
    let end = be32(8) + be32(36);
    assert_eq!(
        (be32(end - 4), be32(end - 8)),
        (9, 2),
        "FDT_END after the root's END_NODE"
    );
    let unusable = "kernel panic: the device tree at 0x46000000 is unusable: ";
    let malformed = "device tree structure block is malformed";
    let cases = [
        (
            "raw-version-0.dtb",
            with(20, 0),
            "device tree header version 0 is not 16 or 17",
        ),
        (
            "raw-version-1.dtb",
            with(20, 1),
            "device tree header version 1 is not 16 or 17",
        ),
        (
            "raw-version-max.dtb",
            with(20, u32::MAX),
            "device tree header version 4294967295 is not 16 or 17",
        ),
        ("raw-no-strings.dtb", with(32, 0), malformed),
        ("raw-no-structure.dtb", with(36, 0), malformed),
        ("raw-root-not-closed.dtb", with(end - 8, 4), malformed),
    ];
    in_parallel(&cases, |(name, blob, why)| {
        let run = raw(name, blob, &["help"]);
        assert!(!run.success, "{name}: {}{}", run.stdout, run.stderr);
        let want = format!("{unusable}{why}");
        assert!(
            run.stdout.lines().any(|l| l.starts_with(&want)),
            "{name}: {want}\n{}{}",
            run.stdout,
            run.stderr
        );
    });
}

/// A `/chosen/kaslr-seed` of 4 or 16 bytes is not the 8 the kernel reads:
/// named, not silently ignored, and the boot goes on without it.
#[test]
fn a_kaslr_seed_of_another_size_is_named_on_the_console() {
    let cases = [4usize, 16];
    in_parallel(&cases, |&len| {
        let blob = tree(true, |w| {
            let chosen = w.begin_node("chosen").unwrap();
            w.property("kaslr-seed", &vec![0x5a; len]).unwrap();
            w.end_node(chosen).unwrap();
        });
        let run = raw(&format!("raw-seed-{len}.dtb"), &blob, &["kaslr"]);
        assert!(run.success, "{len}: {}{}", run.stdout, run.stderr);
        let want = format!("[WARN ] /chosen/kaslr-seed is {len} bytes, not 8; not used as a seed");
        assert!(run.stdout.contains(&want), "{want}\n{}", run.stdout);
        assert!(!run.stdout.contains("source=dtb"), "{}", run.stdout);
    });
}

/// A tree without an interrupt controller (QEMU's GIC is there, but the
/// kernel only knows what the tree says): the kernel boots, says the module
/// watchdog is unavailable, and module calls run unwatched.
#[test]
fn without_a_gic_in_the_tree_module_calls_run_unwatched() {
    let dtb = write("no-gic.dtb", &tree(true, |_| {}));
    let out = session(
        &["--dtb", &dtb],
        &["irqs", "test timer_tick_arrives", "insmod hello", "hello"],
    );
    assert!(
        out.lines().any(|l| l.starts_with("[INFO ]")
            && l.contains("no interrupts: the device tree names no GICv2 or GICv3 interrupt controller; module calls run without a watchdog")),
        "{out}"
    );
    assert!(
        out.contains("error: no interrupts on this machine (the device tree names no GICv2 or GICv3 interrupt controller): the module watchdog is unavailable and module calls run unwatched"),
        "{out}"
    );
    assert!(out.contains("ok 1 timer_tick_arrives # SKIP"), "{out}");
    assert!(out.contains("hello from a module"), "{out}");
}

/// A GIC whose `reg` is shorter than the registers the kernel touches: the
/// kernel names the frame and boots without interrupts, instead of taking
/// a data abort while setting the GIC up.
#[test]
fn a_gic_reg_too_short_is_named_and_module_calls_run_unwatched() {
    let dtb = write(
        "short-gic.dtb",
        &tree(true, |w| {
            let gic = w.begin_node("intc@8000000").unwrap();
            w.property_string("compatible", "arm,cortex-a15-gic").unwrap();
            w.property_null("interrupt-controller").unwrap();
            w.property_u32("#interrupt-cells", 3).unwrap();
            w.property_array_u64("reg", &[0x800_0000, 0x100, 0x801_0000, 0x1000])
                .unwrap();
            w.end_node(gic).unwrap();
            let timer = w.begin_node("timer").unwrap();
            w.property_string("compatible", "arm,armv8-timer").unwrap();
            w.property_array_u32("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
                .unwrap();
            w.end_node(timer).unwrap();
        }),
    );
    let out = session(&["--dtb", &dtb], &["irqs", "insmod hello", "hello"]);
    assert!(
        out.contains("the GICv2 distributor's reg at 0x8000000 is 0x100 bytes, fewer than the 0x420 the kernel uses"),
        "{out}"
    );
    assert!(out.contains("hello: hello from a module"), "{out}");
}
