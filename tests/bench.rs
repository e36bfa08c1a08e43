//! `splitmap bench --quick` works: every table it promises is there, every
//! figure is a number. What the figures are is for the bench's reader, not
//! for a test: no thresholds here.

mod common;
use common::*;

#[test]
fn the_quick_bench_fills_every_table_with_numbers() {
    let run = splitmap(&["bench", "--quick"]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(
        !run.stdout.contains("NaN") && !run.stdout.contains("inf"),
        "{}",
        run.stdout
    );
    let json = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench/bench.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let boots = v["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 2, "1 GiB with KASLR off and on");
    for boot in boots {
        let phases = boot["phases"].as_array().unwrap();
        assert_eq!(phases.len(), 7, "{boot}");
        let sum: u64 = phases.iter().map(|p| p["instructions"].as_u64().unwrap()).sum();
        assert_eq!(sum, boot["total"].as_u64().unwrap(), "{boot}");
    }
    let wall = &v["wall"];
    for key in ["null_kernel_s", "splitmap_s"] {
        for stat in ["min", "median", "max"] {
            let x = wall[key][stat].as_f64().unwrap();
            assert!(x.is_finite() && x > 0.0, "{key}.{stat} = {x}");
        }
    }
    assert!(wall["ratio_of_medians"].as_f64().unwrap().is_finite());
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
