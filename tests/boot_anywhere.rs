//! The stage-0 loader puts the kernel at any 4 KiB-aligned physical address in
//! RAM; the text stays at KIMAGE_VADDR and the linear map still covers all RAM.

mod common;
use common::*;

/// RAM end on QEMU `virt` for `mem` bytes.
fn ram_end(mem: u64) -> u64 {
    RAM_BASE + mem
}

/// Boots at `load` (an address, or "random") and checks the promise.
fn check_load(mem: u64, load: &str) {
    let mem_arg = format!("{}M", mem >> 20);
    let out = session(
        &["--mem", &mem_arg, "--load-addr", load, "--nokaslr"],
        &["layout", "test"],
    );
    let (pa, va) = boot_line(&out);
    let placed = out
        .lines()
        .find_map(|l| l.strip_prefix("stage0: kernel Image "))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("pa=")))
        .map(hex)
        .expect("stage-0 says where it put the kernel");
    if load == "random" {
        assert_eq!(pa, placed, "the boot line shows where stage-0 put it");
    } else {
        assert_eq!(pa, hex(load), "the boot line's pa= is the requested address");
    }
    assert_eq!(pa % 4096, 0);
    assert_eq!(va, KIMAGE_VADDR, "same text VA wherever the image is");

    let rows = layout_rows(&out);
    let text = row(&rows, "text");
    assert_eq!((text.va.0, text.pa.unwrap().0), (KIMAGE_VADDR, pa));
    let linear: Vec<&Row> = rows.iter().filter(|r| r.name == "linear").collect();
    assert_eq!(linear.len(), 1);
    assert_eq!(
        linear[0].pa,
        Some((RAM_BASE, ram_end(mem))),
        "all RAM, below the image too"
    );
    assert_eq!(
        linear[0].map,
        expected_linear_descriptors(RAM_BASE, mem),
        "1 GiB blocks whatever the load address"
    );
    let (passed, failed) = ktap_totals(&out);
    assert!(
        passed > 0 && failed == 0,
        "load {load}: {passed} passed, {failed} failed:\n{out}"
    );
}

#[test]
fn load_address_matrix() {
    let size = image_size();
    let last_slot = |mem: u64| (ram_end(mem) - size) & !0xfff;
    let cases: Vec<(u64, String)> = vec![
        (GIB, format!("{:#x}", RAM_BASE + 2 * MIB)),
        (GIB, format!("{:#x}", RAM_BASE + 0x123_4000)),
        (GIB, format!("{:#x}", last_slot(GIB))),
        // Straddling the 512 MiB line at PA 0x6000_0000.
        (GIB, format!("{:#x}", 0x6000_0000 - 0x1_0000)),
        // Straddling the 1 GiB line at PA 0x8000_0000.
        (4 * GIB, format!("{:#x}", 0x8000_0000u64 - 0x2_0000)),
        // Straddling the 512 MiB line at PA 0xa000_0000.
        (4 * GIB, format!("{:#x}", 0xa000_0000u64 - 0x8000)),
        // Above 4 GiB.
        (4 * GIB, format!("{:#x}", 0x1_0000_5000u64)),
        (4 * GIB, format!("{:#x}", last_slot(4 * GIB))),
        (6 * GIB, format!("{:#x}", 0x1_8000_3000u64)),
        // Straddling 4 GiB.
        (6 * GIB, format!("{:#x}", 0x1_0000_0000u64 - 0x4000)),
        (6 * GIB, "random".to_string()),
        (GIB, "random".to_string()),
    ];
    in_parallel(&cases, |(mem, load)| check_load(*mem, load));
}

/// Runs a boot that stage-0 must refuse; returns its stderr.
fn refused(mem: &str, load: &str) -> String {
    let run = splitmap(&[
        "run",
        "--mem",
        mem,
        "--load-addr",
        load,
        "--timeout",
        "60",
        "--cmd",
        "help",
    ]);
    assert!(!run.success, "load {load} was accepted:\n{}", run.stdout);
    assert!(!run.stdout.contains("splitmap> "), "the kernel must not start");
    let error = run
        .stdout
        .lines()
        .find(|l| l.starts_with("stage0: error:"))
        .expect("stage-0's message");
    assert!(run.stderr.contains("the stage-0 loader refused"), "{}", run.stderr);
    error.to_string()
}

#[test]
fn bad_load_addresses_are_refused() {
    assert!(refused("1G", "0x40201234").contains("not 4 KiB-aligned"));
    assert!(refused("1G", "0x90000000").contains("does not fit inside RAM"));
    assert!(refused("1G", "0x20000000").contains("does not fit inside RAM"));
    // Overlapping the DTB: ask the kernel where QEMU put it, then aim there.
    let mem = session(&["--mem", "1G"], &["mem"]);
    let dtb = mem
        .lines()
        .find(|l| l.starts_with("reserved") && l.ends_with(" dtb"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("pa=")))
        .map(|r| hex(r.split('-').next().unwrap()))
        .expect("mem lists the dtb");
    let error = refused("1G", &format!("{:#x}", dtb - 0x1000));
    assert!(error.contains("overlap the dtb"), "{error}");
}

#[test]
fn two_numa_nodes() {
    let numa = [
        "--smp",
        "2",
        "--mem",
        "2G",
        "--qemu-arg=-object",
        "--qemu-arg=memory-backend-ram,id=m0,size=1G",
        "--qemu-arg=-object",
        "--qemu-arg=memory-backend-ram,id=m1,size=1G",
        "--qemu-arg=-numa",
        "--qemu-arg=node,memdev=m0,cpus=0",
        "--qemu-arg=-numa",
        "--qemu-arg=node,memdev=m1,cpus=1",
    ];
    let out = session(&numa, &["layout", "test"]);
    // Two /memory nodes, adjacent, become one range mapped with 1 GiB blocks.
    let rows = layout_rows(&out);
    let linear = row(&rows, "linear");
    assert_eq!(linear.pa, Some((RAM_BASE, RAM_BASE + 2 * GIB)));
    assert_eq!(linear.map, (2, 0, 0));
    assert_eq!(ktap_totals(&out).1, 0, "{out}");
}

#[test]
fn memory_below_the_image_is_free_and_used() {
    // Image near the top of 1 GiB: almost all RAM lies below it.
    let load = (ram_end(GIB) - image_size() - 64 * 4096) & !0xfff;
    let out = session(&["--load-addr", &format!("{load:#x}")], &["mem", "test frame"]);
    let free = out.lines().find(|l| l.starts_with("free")).expect("mem's free line");
    let below: u64 = free
        .split_whitespace()
        .find_map(|w| w.strip_prefix("below-image="))
        .unwrap()
        .parse()
        .unwrap();
    // Everything from RAM base up to the image except what QEMU and the kernel
    // reserved there (DTB, initrd: a few MiB at most).
    assert!(below * 4096 > load - RAM_BASE - 8 * MIB, "{free}");
    // frame_below_image_is_usable and frames_past_those_above_the_image_come_from_below
    assert_eq!(ktap_totals(&out), (2, 0), "{out}");
}

#[test]
fn a_raw_tree_address_outside_ram_is_refused_by_stage0() {
    for dtb in ["0x1000", "0x200000000", "0x46000004"] {
        let run = splitmap(&[
            "run",
            "--load-addr",
            "0x40200000",
            "--append",
            &format!("splitmap.dtb={dtb}"),
            "--timeout",
            "60",
            "--cmd",
            "help",
        ]);
        assert!(!run.success, "{dtb}");
        assert!(
            run.stdout.contains(&format!(
                "stage0: error: splitmap.dtb={dtb}: the device tree there is not in RAM"
            )),
            "{dtb}: {}",
            run.stdout
        );
        assert!(run.stderr.contains("the stage-0 loader refused"), "{}", run.stderr);
    }
}

#[test]
fn the_in_kernel_tests_hold_at_the_lowest_load_addresses() {
    // One and two frames below the image: boot's own frames may take them all.
    for load in ["0x40001000", "0x40002000", "0x40011000"] {
        let out = session(&["--load-addr", load, "--nokaslr"], &["test"]);
        let (passed, failed) = ktap_totals(&out);
        assert_eq!(failed, 0, "{load}:\n{out}");
        assert!(passed > 0, "{load}");
    }
}
