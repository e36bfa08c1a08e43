//! Boots under QEMU at several RAM sizes and checks what the shell reports
//! against independent arithmetic.

mod common;
use common::*;

fn check_boot(mem: &str, ram_size: u64) {
    let out = session(
        &["--mem", mem, "--nokaslr"],
        &["layout", "walk 0xffff000000000000", "test"],
    );

    let (pa, va) = boot_line(&out);
    assert_eq!(va, KIMAGE_VADDR, "text VA is the link address");
    assert_eq!(pa, RAM_BASE + 2 * MIB, "QEMU's -kernel placement");

    let rows = layout_rows(&out);
    let mut names: Vec<&str> = rows
        .iter()
        .filter(|r| r.name != "linear")
        .map(|r| r.name.as_str())
        .collect();
    let before = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), before, "row names other than linear are unique: {names:?}");
    let text = row(&rows, "text");
    assert_eq!(text.va.0, KIMAGE_VADDR);
    assert_eq!(text.pa.unwrap().0, pa);
    assert_eq!(text.prot, "r-x");
    let linear: Vec<&Row> = rows.iter().filter(|r| r.name == "linear").collect();
    assert_eq!(linear.len(), 1, "one RAM range on QEMU virt");
    assert_eq!(
        linear[0].pa,
        Some((RAM_BASE, RAM_BASE + ram_size)),
        "the linear map covers all RAM"
    );
    assert_eq!(
        linear[0].va,
        (PAGE_OFFSET, PAGE_OFFSET + ram_size),
        "PHYS_OFFSET = RAM base (1 GiB aligned)"
    );
    assert_eq!(
        linear[0].map,
        expected_linear_descriptors(RAM_BASE, ram_size),
        "{mem}: largest blocks"
    );
    assert_eq!(linear[0].prot, "rw-");

    let result = out.lines().find(|l| l.starts_with("=> ")).expect("walk result");
    let expected = if ram_size >= GIB {
        "level=1 size=1G"
    } else {
        "level=2 size=2M"
    };
    assert_eq!(result, format!("=> pa={RAM_BASE:#x} {expected} prot=rw-"));

    let (passed, failed) = ktap_totals(&out);
    assert!(passed > 0 && failed == 0, "{passed} passed, {failed} failed:\n{out}");
}

#[test]
fn mem_512m() {
    check_boot("512M", 512 * MIB);
}

#[test]
fn mem_1g() {
    check_boot("1G", GIB);
}

#[test]
fn mem_1536m() {
    check_boot("1536M", 1536 * MIB);
}

#[test]
fn mem_4g() {
    check_boot("4G", 4 * GIB);
}

#[test]
fn unknown_command_is_an_error_and_the_shell_goes_on() {
    let out = session(&[], &["frobnicate", "help"]);
    let error = out.lines().find(|l| l.starts_with("error:")).expect("an error line");
    assert!(error.contains("frobnicate") && error.contains("help"), "{error}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("layout")),
        "help answered after the error"
    );
}

#[test]
fn entered_at_el2_it_drops_to_el1_and_boots() {
    let out = session(
        &["--icount", "--qemu-arg=-machine", "--qemu-arg=virt,virtualization=on"],
        &["test", "phases"],
    );
    assert_eq!(ktap_totals(&out).1, 0, "{out}");
    // The PMU counters were handed to EL1 (MDCR_EL2.HPMN) before the drop.
    assert!(out.contains("total instructions="), "{out}");
}

#[test]
fn build_prints_artifacts_and_the_image_header_is_valid() {
    let run = splitmap(&["build"]);
    assert!(run.success);
    let keys: Vec<&str> = run.stdout.lines().map(|l| l.split(": ").next().unwrap()).collect();
    assert_eq!(keys, ["image", "elf", "initrd", "boot"]);
    let image = artifact("image");
    let u64_at = |off: usize| u64::from_le_bytes(image[off..off + 8].try_into().unwrap());
    assert_eq!(&image[56..60], b"ARM\x64", "magic");
    assert_eq!(u64_at(8), 0, "text_offset");
    assert!(u64_at(16) >= image.len() as u64, "image_size covers the file");
    assert_eq!(
        u64_at(24) & 0b1111,
        0b1010,
        "flags: little-endian, 4 KiB pages, anywhere"
    );
    // code0 is "MZ" for the PE/COFF door (`ccmp x18, #0, #0xd, pl`, an
    // instruction that changes nothing the entry relies on), and code1 the
    // branch to the entry (B imm26: top six bits 000101).
    assert_eq!(&image[0..2], b"MZ");
    assert_eq!(u32::from_le_bytes(image[0..4].try_into().unwrap()), 0xfa40_5a4d);
    assert_eq!(u32::from_le_bytes(image[4..8].try_into().unwrap()) >> 26, 0b000101);
    let elf = artifact("elf");
    assert_eq!(&elf[..4], b"\x7fELF");
}
