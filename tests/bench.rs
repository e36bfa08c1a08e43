//! `splitmap bench --quick` works: every table it promises is there, every
//! figure is a number. What the figures are is for the bench's reader, not
//! for a test: no thresholds here.

mod common;
use common::*;

#[test]
fn the_quick_bench_fills_every_table_with_numbers() {
    let run = splitmap(&["bench", "--quick"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    // As words: function names (`boot::info`) may contain the letters.
    let not_numbers = run
        .stdout
        .split(|c: char| c.is_whitespace() || c == '|' || c == '*' || c == ',')
        .any(|w| ["NaN", "inf", "-inf"].contains(&w));
    assert!(!not_numbers, "{}", run.stdout);
    let json = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench/bench.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let boots = v["boots"].as_array().unwrap();
    assert_eq!(
        boots.len(),
        4,
        "1 GiB with KASLR off and on, the tree of many ranges, the second board's"
    );
    for boot in boots {
        let phases = boot["phases"].as_array().unwrap();
        assert_eq!(phases.len(), 7, "{boot}");
        let sum: u64 = phases.iter().map(|p| p["instructions"].as_u64().unwrap()).sum();
        assert_eq!(sum, boot["total"].as_u64().unwrap(), "{boot}");
        // Tokens only once the kernel says them; when it does, a number.
        if let Some(tokens) = boot["devicetree_tokens"].as_u64() {
            assert!(tokens > 0, "{boot}");
            assert!(boot["devicetree_instructions_per_token"].as_f64().unwrap().is_finite());
        }
    }
    let machines: Vec<&str> = boots.iter().map(|b| b["machine"].as_str().unwrap()).collect();
    assert_eq!(machines[..2], ["virt", "virt"]);
    assert!(
        machines[2].contains("32 RAM ranges and 28 reservations"),
        "{machines:?}"
    );
    assert_eq!(machines[3], "raspi3b");
    assert_ne!(
        boots[2]["total"], boots[0]["total"],
        "the raw tree is read, not QEMU's: {boots:?}"
    );
    let wall = &v["wall"];
    for key in ["null_kernel_s", "splitmap_s"] {
        for stat in ["min", "median", "max"] {
            let x = wall[key][stat].as_f64().unwrap();
            assert!(x.is_finite() && x > 0.0, "{key}.{stat} = {x}");
        }
    }
    assert!(wall["ratio_of_medians"].as_f64().unwrap().is_finite());
    for stat in ["min", "median", "max"] {
        let x = wall["ratio_by_pair"][stat].as_f64().unwrap();
        assert!(x.is_finite() && x > 0.0, "ratio_by_pair.{stat} = {x}");
    }
    assert!(run.stdout.contains("Target: ≤ 1.20"), "{}", run.stdout);
    let costs = v["tcg_costs"].as_array().unwrap();
    assert_eq!(costs.len(), 3, "a block, a load, a store pair: {costs:?}");
    for c in costs {
        assert!(c["user_us_per_unit"].as_f64().unwrap().is_finite(), "{c}");
        assert!(c["wall_us_per_unit"].as_f64().unwrap().is_finite(), "{c}");
    }
    assert!(
        run.stdout.contains("what QEMU charges for code run once"),
        "{}",
        run.stdout
    );
    let blocks = &v["prompt_blocks"];
    let functions = blocks["functions"].as_array().unwrap();
    let named: u64 = functions.iter().map(|f| f["blocks"].as_u64().unwrap()).sum();
    assert_eq!(named, blocks["total"].as_u64().unwrap(), "every block named once");
    let instructions: u64 = functions.iter().map(|f| f["instructions"].as_u64().unwrap()).sum();
    assert_eq!(
        instructions,
        blocks["instructions"].as_u64().unwrap(),
        "and each instruction"
    );
    assert!(
        functions.iter().any(|f| f["function"] == "splitmap_kernel_main"),
        "blocks at the kernel's addresses are named by its symbols: {functions:?}"
    );
    assert!(
        functions.iter().any(|f| f["function"] == "__pi_primary_entry"),
        "and the early code's, at its physical address: {functions:?}"
    );
    assert!(
        blocks["total"].as_u64().unwrap() < v["translated"]["splitmap"]["blocks"].as_u64().unwrap(),
        "to the prompt is less than to power-off"
    );
    let cpu = &v["qemu_cpu_s_median"];
    for key in ["null_kernel", "splitmap"] {
        for mode in ["user", "system"] {
            let x = cpu[key][mode].as_f64().unwrap();
            assert!(x.is_finite() && x > 0.0, "{key}.{mode} = {x}");
        }
    }
    let wall_phases = v["wall_phases"].as_array().unwrap();
    assert_eq!(wall_phases.len(), 2, "KASLR off and on");
    for boot in wall_phases {
        let phases = boot["phases"].as_array().unwrap();
        assert_eq!(phases.len(), 7, "{boot}");
        for p in phases {
            assert!(p["instructions"].as_u64().unwrap() > 0, "{p}");
            assert!(p["wall_us_median"].as_u64().is_some(), "{p}");
        }
        assert!(boot["total"]["wall_us_median"].as_u64().unwrap() > 0, "{boot}");
        let again = &boot["devicetree_again"];
        assert!(again["instructions"].as_u64().unwrap() > 0, "{boot}");
        assert!(again["wall_us_median"].as_u64().is_some(), "{boot}");
    }
    assert!(
        v["translated"]["splitmap"]["blocks"].as_u64().unwrap()
            > v["translated"]["null_kernel"]["blocks"].as_u64().unwrap()
    );
    assert_eq!(
        v["linear"].as_array().unwrap().len(),
        18,
        "three granules; 1, 4 and 8 GiB; in blocks and in pages"
    );
    let pie = &v["pie"];
    assert!(
        pie["relocations"].as_u64().unwrap() > 0 && pie["relr_bytes"].as_u64().unwrap() > 0,
        "{pie}"
    );
    assert!(
        pie["instructions_to_prompt_nokaslr"]["static"].as_u64().unwrap() > 0,
        "{pie}"
    );
    let modules = v["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 4, "hello and farcalls, near and far");
    for m in modules {
        let (whole, loader) = (
            m["insmod_instructions"].as_u64().unwrap(),
            m["loader_instructions"].as_u64().unwrap(),
        );
        assert!(0 < loader && loader < whole, "the loader is a part of insmod: {m}");
    }
    let far = modules.iter().find(|m| m["far"] == true).unwrap();
    assert!(far["veneers"].as_u64().unwrap() > 0, "{far}");
}

#[test]
fn with_secondaries_the_bench_says_what_each_cost() {
    let md = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-smp.md");
    let run = splitmap(&["bench", "--quick", "--smp", "3", "-o", md.to_str().unwrap()]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("| virt, --smp 3 |"))
        .collect();
    // Two boots (KASLR off and on), each a row of phases and a row per
    // secondary (CPUs 1 and 2) with two counts.
    assert_eq!(rows.len(), 2 + 4, "{}", run.stdout);
    for cpu in [1, 2] {
        let cells: Vec<&str> = rows
            .iter()
            .find(|r| r.split('|').nth(5).map(str::trim) == Some(&cpu.to_string()))
            .unwrap_or_else(|| panic!("no row for cpu {cpu}:\n{}", run.stdout))
            .split('|')
            .map(str::trim)
            .collect();
        for cell in &cells[6..8] {
            assert!(cell.parse::<u64>().is_ok_and(|n| n > 0), "{cells:?}");
        }
    }
    assert_eq!(std::fs::read_to_string(&md).unwrap(), run.stdout);
}

#[test]
fn what_the_bench_cannot_measure_is_refused_before_any_boot() {
    for (args, says) in [
        (&["--smp", "2", "--only", "wall"][..], "--only wall with --smp 2"),
        (&["--machine", "raspi3b", "--uefi"][..], "raspi3b has no UEFI firmware"),
        (&["--machine", "raspi3b", "--smp", "5"][..], "--smp takes 1 to 4 there"),
        (&["--smp", "9"][..], "--smp 9"),
        (&["--only", "everything"][..], "--only everything: say one of"),
    ] {
        let run = splitmap(&[&["bench"][..], args].concat());
        assert_eq!(run.code, Some(2), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: nothing measured: {}", run.stdout);
    }
}
