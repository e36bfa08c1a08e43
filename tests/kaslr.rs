//! KASLR: seed sources in order, reproducible placements, the window and the
//! alignment respected, bad windows refused, and the kernel's own tests
//! passing wherever it lands.

mod common;
use common::*;

/// `kaslr=0x… (SOURCE)` from the boot line.
fn kaslr_field(out: &str) -> (u64, String) {
    let line = out
        .lines()
        .find(|l| l.starts_with("splitmap: image "))
        .expect("boot line");
    let field = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("kaslr="))
        .expect("kaslr=");
    let source = line
        .rsplit_once('(')
        .map(|(_, s)| s.trim_end_matches(')').to_string())
        .unwrap();
    (hex(field), source)
}

/// `key=value` from the `kaslr` command's output.
fn kaslr_value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .flat_map(|l| l.split_whitespace())
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
}

#[test]
fn same_seed_same_place_different_seeds_different_places() {
    let seeds = ["0x1", "0x1", "0xdeadbeef", "0x123456789abcdef"];
    let vas: Vec<u64> = seeds
        .iter()
        .map(|seed| {
            let out = session(&["--kaslr-seed", seed], &["test"]);
            let (_, va) = boot_line(&out);
            let (offset, source) = kaslr_field(&out);
            assert_eq!(source, "bootarg");
            assert_eq!(va, KIMAGE_VADDR + offset);
            assert_eq!(ktap_totals(&out).1, 0, "seed {seed}:\n{out}");
            va
        })
        .collect();
    assert_eq!(vas[0], vas[1], "same seed, same VA");
    assert!(vas[1] != vas[2] && vas[2] != vas[3] && vas[1] != vas[3], "{vas:x?}");
}

#[test]
fn placements_stay_in_the_window_with_the_alignment() {
    let window = "0xffff900000000000-0xffff900040000000";
    for (align, step) in [("4K", 0x1000u64), ("64K", 0x10000), ("2M", 0x20_0000)] {
        for seed in ["0x5", "0x77777", "0xfedcba9876543210"] {
            let append = format!("kaslr.window={window} kaslr.align={align}");
            let out = session(&["--kaslr-seed", seed, "--append", &append], &["kaslr", "layout"]);
            let (_, va) = boot_line(&out);
            let text = row(&layout_rows(&out), "text").clone();
            assert_eq!(text.va.0, va);
            let image_end = va + image_size();
            assert!(
                va >= 0xffff_9000_0000_0000 && image_end <= 0xffff_9000_4000_0000,
                "{va:#x} outside {window}"
            );
            assert_eq!(va % step, 0, "{va:#x} not {align}-aligned");
            assert_eq!(kaslr_value(&out, "align"), align);
            // Slots in the window, computed here: (end - size - start) / step + 1.
            let slots = (0x4000_0000 - image_size()) / step + 1;
            assert_eq!(kaslr_value(&out, "slots").parse::<u64>().unwrap(), slots);
        }
    }
}

#[test]
fn nokaslr_stays_at_the_link_address_without_relocating() {
    let out = session(&["--nokaslr"], &["kaslr"]);
    assert_eq!(boot_line(&out).1, KIMAGE_VADDR);
    assert_eq!(kaslr_field(&out), (0, "disabled".to_string()));
    assert_eq!(
        kaslr_value(&out, "relocations"),
        "0",
        "a nokaslr boot applies no relocation"
    );
}

#[test]
fn qemu_dtb_seed_is_used_and_zeroed() {
    let out = session(&[], &["kaslr", "test"]);
    let (offset, source) = kaslr_field(&out);
    assert_eq!(source, "dtb");
    assert!(offset != 0);
    assert_eq!(kaslr_value(&out, "now"), "0x0", "the DTB's seed is zeroed after use");
    assert!(kaslr_value(&out, "relocations").parse::<u64>().unwrap() > 0);
    assert_eq!(ktap_totals(&out).1, 0, "{out}");
}

#[test]
fn rndr_is_the_fallback_and_no_seed_means_off() {
    let no_dtb_seed = ["--qemu-arg=-machine", "--qemu-arg=virt,dtb-randomness=off"];
    let mut with_rng = no_dtb_seed.to_vec();
    with_rng.extend(["--qemu-arg=-cpu", "--qemu-arg=max"]);
    let out = session(&with_rng, &["test"]);
    assert_eq!(kaslr_field(&out).1, "rndr");
    assert_eq!(ktap_totals(&out).1, 0, "{out}");
    let out = session(&no_dtb_seed, &["kaslr"]);
    assert_eq!(kaslr_field(&out), (0, "disabled".to_string()));
    assert!(out.contains("KASLR off: no seed"), "said clearly:\n{out}");
}

#[test]
fn bad_windows_are_refused_and_kaslr_is_off() {
    for (append, message) in [
        (
            "kaslr.window=0xffff000000000000-0xffff000100000000",
            "leaves the image area",
        ),
        ("kaslr.window=0xffff900000000000-0xffff900000001000", "no aligned slot"),
        ("kaslr.align=3M", "expected 4K, 64K or 2M"),
    ] {
        let out = session(&["--append", append], &["test"]);
        assert!(
            out.lines().any(|l| l.starts_with("[ERROR]") && l.contains(message)),
            "{append}:\n{out}"
        );
        assert_eq!(
            boot_line(&out).1,
            KIMAGE_VADDR,
            "{append}: falls back to the link address"
        );
        assert_eq!(ktap_totals(&out).1, 0);
    }
}

#[test]
fn sweep_reports_the_distribution() {
    let svg = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sweep.svg");
    let svg_arg = svg.display().to_string();
    // 16 slots of 2 MiB: 40 boots must stay on them and cover most.
    let window = "0xffff900000000000-0xffff900002000000";
    let run = splitmap(&[
        "sweep", "--boots", "40", "--window", window, "--align", "2M", "--bins", "8", "--svg", &svg_arg,
    ]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let line = |prefix: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}"))
            .to_string()
    };
    let slots = (0x200_0000 - image_size()) / 0x20_0000 + 1;
    assert!(
        line("window ").contains(&format!(": {slots} slots")),
        "{}",
        line("window ")
    );
    let placements = line("placements: ");
    assert!(placements.ends_with("off the slot grid 0"), "{placements}");
    let distinct: u64 = placements["placements: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(distinct <= slots && distinct >= slots / 2, "{placements}");
    let histogram: u64 = line("histogram")
        .rsplit(": ")
        .next()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(histogram, 40);
    assert!(line("chi2 = ").contains("dof"));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

/// (direct, plt) module windows from `kaslr`, and the image span.
fn module_windows(out: &str) -> ((u64, u64), (u64, u64), (u64, u64)) {
    let span = |key| {
        let (a, b) = kaslr_value(out, key).split_once('-').unwrap();
        (hex(a), hex(b))
    };
    let text = hex(kaslr_value(out, "text"));
    let size = hex(kaslr_value(out, "image"));
    (span("direct"), span("plt"), (text, text + size))
}

/// The base of module `name` from `lsmod`.
fn module_base(out: &str, name: &str) -> u64 {
    let line = out
        .lines()
        .rfind(|l| l.starts_with(&format!("{name} base=")))
        .unwrap_or_else(|| panic!("no {name} in lsmod:\n{out}"));
    hex(line.split_whitespace().find_map(|w| w.strip_prefix("base=")).unwrap())
}

#[test]
fn module_windows_are_randomised_around_the_image_like_linux() {
    let cmds = ["kaslr", "insmod farcalls", "lsmod"];
    let runs: Vec<_> = ["0x1", "0x1", "0xdeadbeef"]
        .iter()
        .map(|seed| {
            let out = session(&["--kaslr-seed", seed], &cmds);
            let (direct, plt, image) = module_windows(&out);
            assert_eq!(direct.1 - direct.0, 128 << 20, "{out}");
            assert_eq!(plt.1 - plt.0, 2 << 30, "{out}");
            assert!(
                direct.0 <= image.0 && image.1 <= direct.1,
                "the image is in the direct window"
            );
            assert!(
                plt.0 <= direct.0 && direct.1 <= plt.1,
                "the direct window is in the PLT window"
            );
            let base = module_base(&out, "farcalls");
            assert!(direct.0 <= base && base < direct.1, "{base:#x} in {direct:x?}");
            assert!(kaslr_value(&out, "entropy").parse::<f64>().is_ok());
            (direct, plt, base)
        })
        .collect();
    assert_eq!(runs[0], runs[1], "same seed, same windows");
    assert!(runs[1].0 != runs[2].0 && runs[1].1 != runs[2].1, "{runs:x?}");

    // Far: in the PLT window, out of a branch's reach of the whole image.
    let out = session(&["--kaslr-seed", "0xdeadbeef", "--append", "module.region=far"], &cmds);
    let (_, plt, image) = module_windows(&out);
    let base = module_base(&out, "farcalls");
    assert!(plt.0 <= base && base < plt.1);
    assert!(
        base + 0x2000 + (128 << 20) <= image.0 || base >= image.1 + (128 << 20),
        "{base:#x}"
    );
}

#[test]
fn without_kaslr_the_module_windows_end_where_the_image_ends() {
    let out = session(&["--nokaslr"], &["kaslr", "layout"]);
    let (direct, plt, image) = module_windows(&out);
    assert_eq!(direct, (image.1 - (128 << 20), image.1));
    assert_eq!(plt, (image.1 - (2 << 30), image.1));
    let modules = row(&layout_rows(&out), "modules").clone();
    assert_eq!(modules.va, plt, "layout shows the PLT window");
    assert!(!out.contains("modules entropy"), "nothing random without KASLR");
}

#[test]
fn icount_shows_the_instructions_spent_relocating() {
    let out = session(&["--icount", "--kaslr-seed", "0x5"], &["kaslr"]);
    let relocations: u64 = kaslr_value(&out, "relocations").parse().unwrap();
    let instructions: u64 = kaslr_value(&out, "instructions").parse().unwrap();
    assert!(relocations > 100, "{out}");
    // At least a load, an add, a store and a cache clean per site; and far
    // from unbounded.
    assert!(
        (4 * relocations..200 * relocations).contains(&instructions),
        "{instructions} instructions for {relocations} relocations"
    );
    let out = session(&["--icount", "--nokaslr"], &["kaslr"]);
    assert_eq!(kaslr_value(&out, "relocations"), "0", "nokaslr relocates nothing");
    assert!(!out.contains("instructions="), "and counts nothing:\n{out}");
    let out = session(&["--kaslr-seed", "0x5"], &["kaslr"]);
    assert!(
        !out.contains("instructions="),
        "without -icount TCG has no such counter:\n{out}"
    );
}

#[test]
fn kaslr_linear_on_moves_the_linear_map_by_whole_gib() {
    let seeds = ["0x5", "0x5", "0x77"];
    let linear_vas: Vec<u64> = seeds
        .iter()
        .map(|seed| {
            let out = session(
                &["--kaslr-seed", seed, "--append", "kaslr.linear=on rodata=full"],
                &["kaslr", "layout", "test", "insmod hello"],
            );
            let linear = row(&layout_rows(&out), "linear").clone();
            assert_eq!(linear.pa.unwrap().0, RAM_BASE, "{out}");
            let shift = linear.va.0 - PAGE_OFFSET;
            assert!(shift > 0 && shift.is_multiple_of(GIB), "{shift:#x}");
            let reported = out
                .lines()
                .find_map(|l| l.strip_prefix("linear base=random offset="))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_else(|| panic!("{out}"));
            assert_eq!(hex(reported), shift, "kaslr and layout agree");
            assert_eq!(
                ktap_totals(&out).1,
                0,
                "the in-kernel tests hold with a moved linear map:\n{out}"
            );
            assert!(out.lines().any(|l| l == "hello: loaded"), "{out}");
            linear.va.0
        })
        .collect();
    assert_eq!(linear_vas[0], linear_vas[1], "same seed, same linear base");
    assert_ne!(linear_vas[1], linear_vas[2], "different seeds, different bases");

    // The walk of a linear address follows the moved map.
    let va = format!("{:#x}", linear_vas[0] + 0x1234);
    let out = session(
        &["--kaslr-seed", "0x5", "--append", "kaslr.linear=on"],
        &[&format!("walk {va}")],
    );
    assert!(
        out.lines().any(|l| l == "=> pa=0x40001234 level=1 size=1G prot=rw-"),
        "{out}"
    );

    // Without KASLR, or by default, the base stays put.
    for options in [
        &["--nokaslr", "--append", "kaslr.linear=on"][..],
        &["--kaslr-seed", "0x5"][..],
    ] {
        let out = session(options, &["kaslr", "layout"]);
        assert_eq!(row(&layout_rows(&out), "linear").va.0, PAGE_OFFSET, "{options:?}");
        assert!(out.contains("linear base=fixed"), "{out}");
    }
}
