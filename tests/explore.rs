//! The explorer commands answer from the live tables, and agree with
//! independent sources: `va2pa` with `walk`, `pa2va` with `va2pa` (every
//! alias maps back), `sym` with the kernel ELF's own symbol table read here.

mod common;
use common::*;

use object::{Object, ObjectSymbol};

/// `key=0x…` in `line`.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .map(hex)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn va2pa_agrees_with_walk_and_pa2va_maps_back() {
    let out = session(&["--kaslr-seed", "0x33"], &["layout"]);
    let rows = layout_rows(&out);
    // The first page of every mapped region, and one inside the linear map.
    let mut vas: Vec<u64> = rows.iter().filter(|r| r.prot != "---").map(|r| r.va.0).collect();
    vas.push(row(&rows, "linear").va.0 + 0x1234_5678);
    let mut cmds = vec![];
    for va in &vas {
        cmds.push(format!("va2pa {va:#x}"));
        cmds.push(format!("walk {va:#x}"));
    }
    let text_pa = row(&rows, "text").pa.unwrap().0;
    cmds.push(format!("pa2va {text_pa:#x}"));
    cmds.push("va2pa 0xffffffffff000000".into());
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let out = session(&["--kaslr-seed", "0x33"], &refs);
    let answers: Vec<&str> = out.lines().filter(|l| l.starts_with("va=")).collect();
    let walks: Vec<&str> = out.lines().filter(|l| l.starts_with("=> pa=")).collect();
    assert_eq!(answers.len(), vas.len(), "{out}");
    for ((va, answer), walked) in vas.iter().zip(&answers).zip(&walks) {
        assert_eq!(field(answer, "va="), *va);
        assert_eq!(field(answer, "pa="), field(walked, "pa="), "{answer} vs {walked}");
    }
    // The image's first byte has two names, lowest first: the linear map and
    // the image mapping.
    // Each with the permissions of that alias.
    let aliases: Vec<&str> = out.lines().filter(|l| l.starts_with("pa=")).collect();
    let regions: Vec<Vec<&str>> = aliases.iter().map(|l| l.split_whitespace().skip(2).collect()).collect();
    assert_eq!(
        regions,
        [["region=linear", "prot=rw-"], ["region=text", "prot=r-x"]],
        "{aliases:?}"
    );
    // Each leaf a walk reaches names the bits its attributes come from.
    let leaves: Vec<&str> = out.lines().filter(|l| l.contains(" ap=")).collect();
    assert_eq!(leaves.len(), walks.len(), "{out}");
    for leaf in leaves {
        let bits = leaf.rsplit_once(" (").map(|(_, b)| b).unwrap_or("");
        let names: Vec<&str> = bits
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["AttrIndx", "SH", "AF", "AP", "PXN", "UXN"], "{leaf}");
    }
    assert_eq!(field(aliases[1], "va="), row(&rows, "text").va.0);
    assert!(
        out.contains("error: 0xffffffffff000000 is not mapped (region=guard)"),
        "{out}"
    );
}

#[test]
fn sym_agrees_with_the_kernel_elf_and_names_module_functions() {
    // The ELF's own symbol table, demangled here.
    let elf = artifact("elf");
    let file = object::File::parse(&*elf).unwrap();
    let name = "kernel::shell::commands::run";
    let link = file
        .symbols()
        .find(|s| format!("{:#}", rustc_demangle::demangle(s.name().unwrap_or(""))) == name)
        .map(|s| s.address())
        .expect("the ELF has the shell's loop");
    let out = session(
        &["--kaslr-seed", "0x44"],
        &[
            &format!("sym {name}"),
            "insmod hello",
            "sym hello::hello_command",
            "sym nothing::by::this::name",
            "sym __pi_primary_entry",
            "sym splitmap_psci_hvc",
        ],
    );
    let (_, text) = boot_line(&out);
    let slide = text - KIMAGE_VADDR;
    let line = out
        .lines()
        .find(|l| l.contains(&format!(" {name}+")))
        .expect("sym line");
    assert_eq!(line, format!("{:#x} {name}+0x0 section=.text", link + slide));
    let module = out.lines().find(|l| l.ends_with(" [hello]")).expect("a module symbol");
    assert!(module.contains(" hello::hello_command+0x0 section=.text"), "{module}");
    assert!(
        out.contains("error: no function named nothing::by::this::name"),
        "{out}"
    );
    for routine in ["__pi_primary_entry", "splitmap_psci_hvc"] {
        assert!(
            out.contains(&format!(" {routine}+0x0 section=.text")),
            "assembly routines are functions too:\n{out}"
        );
    }

    // And back: an address inside each function names it, with the offset.
    let addr = hex(line.split_whitespace().next().unwrap()) + 0x10;
    let in_module = hex(module.split_whitespace().next().unwrap()) + 4;
    let out = session(
        &["--kaslr-seed", "0x44"],
        &[
            "insmod hello",
            &format!("sym {addr:#x}"),
            &format!("sym {in_module:#x}"),
            &format!("sym {text:#x}"),
        ],
    );
    assert!(
        out.contains(&format!(
            "error: no function at {text:#x}: the kernel's text there is not a function (the Image header"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("{addr:#x} {name}+0x10 section=.text")), "{out}");
    assert!(
        out.contains(&format!("{in_module:#x} hello::hello_command+0x4 section=")),
        "{out}"
    );
}

/// A `ptdump` line: (va start, va end, pa start, block size, leaves, prot as
/// `walk` prints it).
fn ptdump_line(line: &str) -> (u64, u64, u64, u64, u64, String) {
    let w: Vec<&str> = line.split_whitespace().collect();
    let (va0, va1) = w[0].split_once('-').unwrap();
    let pa0 = hex(w[2].strip_prefix("pa=").unwrap().split('-').next().unwrap());
    let blk = match w[3].strip_prefix("blk=").unwrap() {
        "1G" => 1 << 30,
        "2M" => 2 << 20,
        _ => 4 << 10,
    };
    let n = w[4].strip_prefix("n=").unwrap().parse().unwrap();
    let prot = match (w[6], w[7]) {
        ("ap=ro", "x=kernel") => "r-x",
        ("ap=ro", "x=never") => "r--",
        ("ap=rw", "x=never") => "rw-",
        other => panic!("unexpected attributes {other:?} in {line}"),
    };
    (hex(va0), hex(va1), pa0, blk, n, prot.to_string())
}

#[test]
fn ptdump_agrees_with_walk_and_with_layout() {
    for options in [&["--kaslr-seed", "0x55"][..], &["--nokaslr", "--append", "rodata=full"]] {
        let out = session(options, &["layout", "ptdump"]);
        let rows = layout_rows(&out);
        let runs: Vec<_> = out
            .lines()
            .filter(|l| l.starts_with("0x") && l.contains(" blk="))
            .map(ptdump_line)
            .collect();
        assert!(runs.len() >= 6, "{out}");
        // Every run's first and last leaf, walked.
        let mut cmds = vec![];
        for (va0, va1, _, blk, _, _) in &runs {
            cmds.push(format!("walk {va0:#x}"));
            cmds.push(format!("walk {:#x}", va1 - blk));
        }
        let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
        let walked = session(options, &refs);
        let results: Vec<&str> = walked.lines().filter(|l| l.starts_with("=> ")).collect();
        assert_eq!(results.len(), 2 * runs.len(), "{walked}");
        for (i, (va0, va1, pa0, blk, n, prot)) in runs.iter().enumerate() {
            assert_eq!((va1 - va0) / blk, *n, "run {i}: leaves times block size");
            for (at, result) in [(0, results[2 * i]), (va1 - va0 - blk, results[2 * i + 1])] {
                let size = match *blk {
                    0x4000_0000 => "1G",
                    0x20_0000 => "2M",
                    _ => "4K",
                };
                let want = format!("=> pa={:#x} level=", pa0 + at);
                assert!(result.starts_with(&want), "run {i} at +{at:#x}: {result} (want {want})");
                assert!(
                    result.ends_with(&format!("size={size} prot={prot}")),
                    "run {i}: {result}"
                );
            }
        }
        // Leaves per block size inside each mapped layout row match its counts.
        for row in rows.iter().filter(|r| r.prot != "---" && r.name != "modules") {
            let (mut g, mut m, mut k) = (0, 0, 0);
            for (va0, va1, _, blk, _, _) in &runs {
                let (start, end) = ((*va0).max(row.va.0), (*va1).min(row.va.1.next_multiple_of(4096)));
                if start < end {
                    let leaves = (end - start).div_ceil(*blk);
                    match *blk {
                        0x4000_0000 => g += leaves,
                        0x20_0000 => m += leaves,
                        _ => k += leaves,
                    }
                }
            }
            assert_eq!((g, m, k), row.map, "{options:?}: row {}", row.name);
        }
    }
}

#[test]
fn x_dumps_what_the_image_file_holds_and_stops_at_a_fault_and_x_and_peek_ask_before_reading_a_device() {
    let out = session(
        &["--nokaslr"],
        &[
            &format!("x {KIMAGE_VADDR:#x} 8 32"),
            &format!("x {:#x} 2 8", KIMAGE_VADDR + 0x38),
            "x 0xffffffffff00fff8 4",
            "x 0xfffffffff0000018 1 32",
            "x 0xfffffffff0000018 1 32 force",
            "peek 0xfffffffff0000018 32",
            "peek 0xfffffffff0000018 32 force",
        ],
    );
    // The Image file on the host: its first 32 bytes as little-endian words,
    // then the "ARM\x64" magic at 0x38.
    let image = artifact("image");
    let word = |i: usize| u32::from_le_bytes(image[4 * i..4 * i + 4].try_into().unwrap());
    let want = |first: usize| {
        (first..first + 4)
            .map(|i| format!("{:08x}", word(i)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(out.contains(&format!("{KIMAGE_VADDR:#x}: {}", want(0))), "{out}");
    assert!(out.contains(&format!("{:#x}: {}", KIMAGE_VADDR + 16, want(4))), "{out}");
    assert!(
        out.contains(&format!("{:#x}: 41 52", KIMAGE_VADDR + 0x38)),
        "ARM magic:\n{out}"
    );
    assert!(
        out.contains("fault at 0xffffffffff00fff8: translation fault at level 3"),
        "{out}"
    );
    assert_eq!(
        out.matches("error: 0xfffffffff0000018 is device memory").count(),
        2,
        "x and peek:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("0xfffffffff0000018: ") && !l.ends_with("-bit)")),
        "x forced:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("0xfffffffff0000018: 0x") && l.ends_with("(32-bit)")),
        "peek forced:\n{out}"
    );
}

#[test]
fn help_names_usage_and_an_example_that_works_for_every_command() {
    let out = session(&["--nokaslr"], &["help"]);
    let names: Vec<&str> = out
        .lines()
        .skip_while(|l| l.trim_end() != "commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A description under a usage too wide for its column is indented more.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.len() >= 19, "{names:?}");
    let asks: Vec<String> = names.iter().map(|n| format!("help {n}")).collect();
    let refs: Vec<&str> = asks.iter().map(String::as_str).collect();
    // The examples name addresses as the boot placed them: the same on
    // every boot of one layout, and mapped with the linear map moved too.
    for layout in [
        &["--nokaslr"][..],
        &["--kaslr-seed", "0x9", "--append", "kaslr.linear=on"],
    ] {
        let out = session(layout, &refs);
        let examples: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("example: ")).collect();
        assert_eq!(examples.len(), names.len(), "{out}");
        for name in &names {
            assert!(
                out.lines().any(|l| l.starts_with(&format!("usage: {name}"))),
                "{name}:\n{out}"
            );
        }
        // Every example runs (all but those that end the session, and `efi`,
        // which needs a boot through the EFI stub: tests/uefi.rs runs it), in
        // order, on two CPUs so `on`'s has another to run on.
        let runnable: Vec<&str> = examples
            .iter()
            .copied()
            .filter(|e| !e.starts_with("crash") && *e != "poweroff" && *e != "efi")
            .collect();
        let out = session(&[layout, &["--smp", "2"][..]].concat(), &runnable);
        assert!(!out.contains("error:"), "{layout:?}:\n{out}");
    }
}

#[test]
fn loglevel_debug_shows_each_boot_phase_and_dmesg_replays_the_boot() {
    let out = session(&["--kaslr-seed", "0x9", "--append", "loglevel=debug"], &["dmesg"]);
    let (boot, rest) = out.split_once("splitmap> dmesg\n").expect("dmesg typed");
    for phase in [
        "[DEBUG] early code: MMU on",
        "[DEBUG] device tree at ",
        "[DEBUG] linear map built: PHYS_OFFSET=",
        "[DEBUG] KASLR: moving the image by ",
        "relocations applied; link address unmapped",
        "[DEBUG] frames: ",
        "[DEBUG] initrd at ",
        "[DEBUG] switching to the kernel stack",
    ] {
        assert!(boot.contains(phase), "boot does not say {phase:?}:\n{boot}");
    }
    // The phases before the console came up are shown once it is, in order.
    let early = boot.find("[DEBUG] early code").unwrap();
    assert!(early < boot.find("splitmap: image").unwrap(), "{boot}");
    // dmesg prints what boot printed: from the first kernel line to the prompt.
    let kernel_boot = &boot[early..boot.rfind("splitmap> ").unwrap_or(boot.len())];
    let replay = rest.split("splitmap> ").next().unwrap();
    assert_eq!(replay, kernel_boot);
    // At the default level, the phases are kept quiet.
    let quiet = session(&["--kaslr-seed", "0x9"], &["dmesg"]);
    assert!(!quiet.contains("[DEBUG]"), "{quiet}");
}

#[test]
fn lsmod_v_lists_sections_with_their_permissions_and_veneers_with_their_targets() {
    let out = session(
        &["--kaslr-seed", "0x66", "--append", "module.region=far"],
        &[
            "insmod hello",
            "lsmod -v",
            "sym splitmap_log",
            "sym splitmap_register_command_usage",
        ],
    );
    let sections: Vec<&str> = out.lines().filter(|l| l.starts_with("  section ")).collect();
    assert!(
        sections
            .iter()
            .any(|l| l.contains(".text.init_module") && l.ends_with("prot=r-x")),
        "{out}"
    );
    assert!(
        sections
            .iter()
            .any(|l| l.contains(".rodata") && l.ends_with("prot=r--")),
        "{out}"
    );
    let veneers: Vec<&str> = out.lines().filter(|l| l.starts_with("  veneer ")).collect();
    let plt = out
        .lines()
        .find(|l| l.starts_with("hello base="))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("plt=")))
        .map(|n| n.parse::<usize>().unwrap())
        .unwrap();
    assert_eq!(veneers.len(), plt, "{out}");
    // The words shown are adrp x16 / add x16, x16, #imm / br x16, and they
    // lead where the line says (decoded here from the ARM ARM encodings).
    for v in &veneers {
        let words: Vec<u64> = v.rsplit_once("words=").unwrap().1.split(',').map(hex).collect();
        let (at, target) = (
            hex(v.split_whitespace().nth(1).unwrap()),
            hex(v.split_whitespace().nth(3).unwrap()),
        );
        assert_eq!(words[0] & 0x9f00_001f, 0x9000_0010, "adrp x16: {v}");
        assert_eq!(words[1] & 0xffc0_03ff, 0x9100_0210, "add x16, x16, #imm: {v}");
        assert_eq!(words[2], 0xd61f_0200, "br x16: {v}");
        let pages = ((words[0] >> 29) & 3) | (((words[0] >> 5) & 0x7ffff) << 2);
        let pages = ((pages << 43) as i64 >> 43) as u64; // 21-bit signed
        let page = (at & !0xfff).wrapping_add(pages << 12);
        assert_eq!(page + ((words[1] >> 10) & 0xfff), target, "{v}");
    }
    // Each export's veneer leads where `sym` says the export is.
    for export in ["splitmap_log", "splitmap_register_command_usage"] {
        let at = out
            .lines()
            .find(|l| l.ends_with(&format!(" {export}+0x0 section=.text")))
            .and_then(|l| l.split_whitespace().next())
            .map(hex)
            .unwrap_or_else(|| panic!("sym {export}:\n{out}"));
        assert!(
            veneers.iter().any(|v| v.contains(&format!("-> {at:#x} {export}+0x0"))),
            "{export} at {at:#x}: {veneers:?}"
        );
    }
}

#[test]
fn a_random_boot_says_how_to_replay_it_and_the_replay_lands_in_the_same_place() {
    let first = session(&["--load-addr", "random"], &["kaslr"]);
    let line = |out: &str, marker: &str| {
        out.lines()
            .find(|l| l.contains(marker))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {marker:?} in\n{out}"))
    };
    let word_after = |l: &str, key: &str| {
        l.split(key)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let seed = word_after(&line(&first, "] KASLR seed "), "--kaslr-seed ");
    let load = word_after(&line(&first, "stage0: --load-addr"), "--load-addr ");
    assert_eq!(hex(&seed), hex(&word_after(&line(&first, "source=dtb seed="), "seed=")));
    let again = session(&["--load-addr", &load, "--kaslr-seed", &seed], &["kaslr"]);
    assert_eq!(
        boot_line(&again),
        boot_line(&first),
        "same PA and VA:\n{first}\n{again}"
    );
}

#[test]
fn layout_gives_each_loaded_module_area_a_row_with_its_own_permissions() {
    let out = session(&["--kaslr-seed", "0x77"], &["insmod data", "layout"]);
    let rows = layout_rows(&out);
    let text = row(&rows, "data:text");
    let rodata = row(&rows, "data:rodata");
    assert_eq!((text.prot.as_str(), rodata.prot.as_str()), ("r-x", "r--"), "{out}");
    // The window they are in has both: its row lists each, not the first page's.
    assert_eq!(row(&rows, "modules").prot, "r-x,r--", "{out}");
    let base = out
        .lines()
        .find(|l| l.starts_with("data base="))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|w| hex(w.strip_prefix("base=").unwrap()))
        .unwrap();
    assert_eq!(text.va.0, base);
    // The module's own mapping, walked: the row's PA is what the MMU uses.
    let walked = session(
        &["--kaslr-seed", "0x77"],
        &["insmod data", &format!("va2pa {:#x}", rodata.va.0)],
    );
    let answer = walked.lines().find(|l| l.starts_with("va=")).expect("va2pa");
    assert!(
        answer.contains(&format!("pa={:#x}", rodata.pa.unwrap().0)),
        "{answer} vs {rodata:?}"
    );
}

#[test]
fn the_arrow_keys_recall_lines_and_tab_completes_names() {
    // What a terminal sends: Tab, and ESC [ A for the Up arrow.
    let out = common::session(&["--nokaslr"], &["lay\t", "mem", "\x1b[A", "help wa\t", "\x1b[A\x1b[A"]);
    let layout_rows = common::layout_rows(&out);
    assert!(!layout_rows.is_empty(), "`lay` + Tab ran layout:\n{out}");
    assert_eq!(
        out.matches("\nram ").count(),
        3,
        "mem ran three times, twice from the history:\n{out}"
    );
    assert!(out.contains("usage: walk VA"), "`help wa` + Tab ran help walk:\n{out}");
}

/// Source lines as both printers write them, without indentation, blank
/// lines, dtc's header or splitmap's decoded-range comments; the two seeds
/// differ from boot to boot (and the kernel zeroes kaslr-seed once read).
fn dts_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(" //").next().unwrap_or(l).trim())
        .filter(|l| !l.is_empty() && *l != "/dts-v1/;")
        .map(|l| match l.split(" = ").next() {
            Some(seed @ ("rng-seed" | "kaslr-seed")) => format!("{seed} = …"),
            _ => l.to_string(),
        })
        .collect()
}

#[test]
fn dtb_prints_the_tree_qemu_made_as_dtc_decodes_it() {
    // QEMU writes the tree it would hand over, /chosen filled in, and exits.
    let dumped = std::env::temp_dir().join(format!("splitmap-dtb-{}.dtb", std::process::id()));
    let machine = format!("virt,dumpdtb={}", dumped.display());
    common::splitmap(&[
        "run",
        "--nokaslr",
        "--qemu-arg=-machine",
        &format!("--qemu-arg={machine}"),
        "--cmd",
        "poweroff",
    ]);
    let decoded = common::dtc("dtb", "dts", &std::fs::read(&dumped).unwrap());
    let _ = std::fs::remove_file(&dumped);
    let expected = String::from_utf8(decoded).unwrap();
    assert!(expected.contains("memory@40000000"), "dtc printed:\n{expected}");

    let out = common::session(&["--nokaslr"], &["dtb", "dtb /memory", "dtb /nothing", "dtb memory"]);
    let answers: Vec<&str> = out.split("splitmap> ").collect();
    let whole = answers.iter().find(|a| a.starts_with("dtb\n")).expect("the dtb answer");
    assert_eq!(dts_lines(&whole["dtb\n".len()..]), dts_lines(&expected));
    assert!(
        out.contains("reg = <0x00 0x40000000 0x00 0x40000000>; // 0x40000000-0x80000000\n"),
        "/memory's reg decoded:\n{out}"
    );
    assert!(
        out.contains("\n/memory@40000000 {\n"),
        "found without its unit address:\n{out}"
    );
    assert!(out.contains("error: no node /nothing in the device tree"), "{out}");
    assert!(out.contains("error: usage: dtb [PATH]"), "{out}");
}

/// `phases` under --icount: one line per phase whose counts add up to the
/// total, relocating under KASLR shows up in the kaslr phase, and reading
/// the device tree again costs what the phase did, less its few other
/// steps; without --icount, the same lines in microseconds.
#[test]
fn phases_add_up_and_show_what_kaslr_costs() {
    let phases = |options: &[&str]| -> Vec<(String, u64)> {
        let mut args = vec!["--icount"];
        args.extend_from_slice(options);
        let out = common::session(&args, &["phases"]);
        out.lines()
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let count = words
                    .iter()
                    .find_map(|w| w.strip_prefix("instructions="))?
                    .parse()
                    .ok()?;
                Some((words[if words[0] == "phase" { 1 } else { 0 }].to_string(), count))
            })
            .collect()
    };
    let fixed = phases(&["--nokaslr"]);
    let moved = phases(&["--kaslr-seed", "0x5"]);
    let names: Vec<&str> = fixed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "early",
            "devicetree",
            "linear",
            "kaslr",
            "console",
            "frames",
            "shell",
            "total",
            "again"
        ]
    );
    for run in [&fixed, &moved] {
        let sum: u64 = run[..7].iter().map(|(_, c)| c).sum();
        assert_eq!(sum, run[7].1, "{run:?}");
        let (phase, again) = (run[1].1, run[8].1);
        assert!(again <= phase && again * 4 >= phase * 3, "{run:?}");
    }
    assert!(
        moved[3].1 > fixed[3].1 + 10_000,
        "relocating costs instructions: {moved:?} vs {fixed:?}"
    );
    // Without --icount: wall time by the generic timer, in the same form.
    let out = common::session(&["--nokaslr"], &["phases"]);
    let micros: Vec<u64> = out
        .lines()
        .filter(|l| l.starts_with("phase ") || l.starts_with("total "))
        .map(|l| {
            let us = l.split_whitespace().find_map(|w| w.strip_prefix("us="));
            us.and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no us= in {l:?}:\n{out}"))
        })
        .collect();
    assert_eq!(micros.len(), 8, "seven phases and the total:\n{out}");
    assert_eq!(micros[..7].iter().sum::<u64>(), micros[7], "{out}");
    assert!(micros[7] > 0 && out.contains("--icount"), "{out}");
    assert!(out.contains("\nagain devicetree us="), "{out}");
}

/// The linear map marks aligned runs contiguous (16 × 2 MiB, 16 × 4 KiB with
/// 4 KiB pages); `layout` counts them, `ptdump` shows the bit on each
/// descriptor, and `rodata=full` breaks the run it splits.
#[test]
fn contiguous_runs_in_layout_are_the_descriptors_ptdump_marks() {
    for options in [
        vec!["--nokaslr", "--mem", "512M"],
        vec!["--nokaslr", "--mem", "512M", "--append", "rodata=full"],
        vec!["--append", "rodata=full"],
    ] {
        let out = common::session(&options, &["layout", "ptdump linear"]);
        let in_layout: u64 = common::layout_rows(&out)
            .iter()
            .filter(|r| r.name == "linear")
            .map(|r| r.cont)
            .sum();
        let in_ptdump: u64 = out
            .lines()
            .filter(|l| l.starts_with("0xffff0000") && l.ends_with("cont=1"))
            .map(|l| {
                let n = l.split_whitespace().find_map(|w| w.strip_prefix("n=")).unwrap();
                n.parse::<u64>().unwrap() / 16
            })
            .sum();
        assert!(in_layout > 0, "{options:?}\n{out}");
        assert_eq!(in_layout, in_ptdump, "{options:?}\n{out}");
    }
}
