//! Device trees QEMU would never generate, passed with `-dtb`: malformed nodes
//! are reported by name and ignored, the rest of the tree still boots.

mod common;
use common::*;
use vm_fdt::{FdtReserveEntry, FdtWriter};

/// A minimal tree for QEMU `virt` (QEMU fills /memory's reg and /chosen's
/// bootargs), plus whatever `extra` adds.
fn tree(stdout: bool, extra: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
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
    let memory = w.begin_node("memory").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000]).unwrap();
    w.end_node(memory).unwrap();
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
    w.end_node(uart).unwrap();
    let psci = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci-0.2").unwrap();
    w.property_string("method", "hvc").unwrap();
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
        // so malformed RAM nodes are covered by the host tests of kernel/src/dtb.rs.)
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
fn no_console_in_the_tree_ends_the_run_instead_of_hanging() {
    let dtb = write("no-stdout.dtb", &tree(false, |_| {}));
    let run = splitmap(&["run", "--timeout", "30", "--dtb", &dtb, "--cmd", "help"]);
    assert!(!run.success);
    assert!(
        run.stderr.contains("qemu exited after 0 of"),
        "a clear reason, not a timeout: {}",
        run.stderr
    );
}
