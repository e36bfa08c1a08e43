//! 16 KiB and 64 KiB kernels (`--granule`): built from the same code, they
//! boot where their pages allow, with and without KASLR, map the linear map
//! with their own largest blocks, pass the in-kernel test suite, load
//! modules far from the kernel; and a CPU without the granule refuses to
//! boot, by name.

mod common;
use common::*;

/// `splitmap run --granule G` with `options`, typing `cmds`.
fn boot(granule: &str, options: &[&str], cmds: &[&str]) -> String {
    let mut args = vec!["--granule", granule];
    args.extend_from_slice(options);
    session(&args, cmds)
}

#[test]
fn each_granule_boots_anywhere_its_pages_allow_and_passes_its_tests() {
    // (granule, a load address aligned to its pages but not to 2 MiB, leaf sizes)
    let cases = [
        ("16k", "0x41234000", "32M", "16K"),
        ("64k", "0x41230000", "512M", "64K"),
    ];
    in_parallel(&cases, |&(granule, odd_pa, block, page)| {
        for options in [
            vec!["--nokaslr"],
            vec!["--load-addr", odd_pa, "--mem", "4G"],
            vec!["--load-addr", "random", "--append", "rodata=full"],
        ] {
            let out = boot(granule, &options, &["insmod hello", "hello", "layout", "test"]);
            let (passed, failed) = ktap_totals(&out);
            assert!(
                failed == 0 && passed >= 16,
                "{granule} {options:?}: {passed} passed, {failed} failed\n{out}"
            );
            assert!(out.contains("hello from a module"), "{granule} {options:?}\n{out}");
            let linear = out.lines().find(|l| l.starts_with("linear ")).unwrap();
            assert!(
                linear.contains(&format!("map={block}:")) && linear.contains(&format!(",{page}:")),
                "{linear}"
            );
            if options.contains(&odd_pa) {
                assert!(
                    out.contains(&format!("image pa={odd_pa} ")),
                    "{granule} at {odd_pa}\n{out}"
                );
            }
        }
    });
}

#[test]
fn the_linear_map_uses_the_granules_largest_blocks() {
    // 64 KiB pages, RAM from 1 GiB: 512 MiB blocks, one level-2 table.
    for (mem, blocks) in [("1G", 2), ("1536M", 3)] {
        let out = boot(
            "64k",
            &["--nokaslr", "--mem", mem],
            &["layout", "walk 0xffff000000001234"],
        );
        let linear = out.lines().find(|l| l.starts_with("linear ")).unwrap();
        assert!(linear.contains(&format!("map=512M:{blocks},64K:0")), "{linear}");
        assert!(out.contains("=> pa=0x40001234 level=2 size=512M"), "{out}");
        // 64 KiB pages with 48-bit VAs have no level 0: the walk starts at 1.
        assert!(out.contains("\nL1 table=") && !out.contains("\nL0 table="), "{out}");
        assert!(
            out.contains("# linear map: 1 table pages (minimum for this RAM: 1)"),
            "{out}"
        );
    }
    // 16 KiB: 32 MiB blocks under a level-1 and a level-2 table.
    let out = boot("16k", &["--nokaslr"], &["layout"]);
    assert!(out.contains("map=32M:32,16K:0"), "{out}");
    assert!(
        out.contains("# linear map: 2 table pages (minimum for this RAM: 2)"),
        "{out}"
    );
}

#[test]
fn a_cpu_without_the_granule_and_a_misaligned_address_are_refused_by_name() {
    let run = splitmap(&[
        "run",
        "--granule",
        "16k",
        "--cpu",
        "cortex-a72",
        "--timeout",
        "60",
        "--cmd",
        "poweroff",
    ]);
    assert!(!run.success);
    assert!(
        run.stdout.contains("kernel panic: this kernel is built for 16K pages, which this CPU cannot use (ID_AA64MMFR0_EL1.TGran16 = 0x0)"),
        "{}",
        run.stdout
    );
    let run = splitmap(&[
        "run",
        "--granule",
        "64k",
        "--load-addr",
        "0x41234000",
        "--cmd",
        "poweroff",
    ]);
    assert!(!run.success);
    assert!(
        run.stderr
            .contains("load address 0x41234000 is not 64 KiB-aligned (the Image is built for 64 KiB pages)"),
        "{}",
        run.stderr
    );
    // A sweep the kernel would answer with "KASLR off" on every boot.
    let sweep = splitmap(&["sweep", "--granule", "64k", "--align", "4K", "--boots", "2"]);
    assert!(
        !sweep.success && sweep.stderr.contains("--align 4K: finer than the 64K kernel's pages"),
        "{}",
        sweep.stderr
    );
    assert!(sweep.stdout.is_empty(), "no boot: {}", sweep.stdout);
    let run = splitmap(&["run", "--granule", "8k", "--cmd", "poweroff"]);
    assert!(
        run.code == Some(2)
            && run
                .stderr
                .contains("'8k' for '--granule <4k|16k|64k>': say 4k, 16k or 64k"),
        "{}",
        run.stderr
    );
}
