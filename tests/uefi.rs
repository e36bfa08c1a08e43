//! Booting under UEFI (`run --uefi`): the Image is also a PE/COFF EFI
//! application, and its stub (kernel/efistub) places the kernel at a random
//! physical address under EDK2, hands over the UEFI memory map and enters the
//! normal boot path. QEMU tests skip, saying why, without EDK2's firmware
//! (scripts/setup.sh installs it).

mod common;
use common::*;

use object::pe;
use object::read::pe::{ImageNtHeaders, PeFile64};

fn firmware_present() -> bool {
    let present = std::path::Path::new(splitmap::efi_output::FIRMWARE).is_file();
    if !present {
        eprintln!(
            "skipped: no EDK2 firmware at {} (scripts/setup.sh installs qemu-efi-aarch64)",
            splitmap::efi_output::FIRMWARE
        );
    }
    present
}

/// `splitmap: efi placed the image at pa=0x… (SOURCE), --load-addr 0x… replays it`
/// → (pa, source, the replay address).
fn efi_line(out: &str) -> (u64, String, u64) {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("splitmap: efi placed the image at pa="))
        .unwrap_or_else(|| panic!("no efi boot line in:\n{out}"));
    let (pa, rest) = line.split_once(" (").unwrap();
    let (source, rest) = rest.split_once("), --load-addr ").unwrap();
    let replay = rest.strip_suffix(" replays it").unwrap();
    (hex(pa), source.to_string(), hex(replay))
}

/// The `efi` command's regions: (type, start, end, use).
fn efi_regions(out: &str) -> Vec<(String, u64, u64, String)> {
    out.lines()
        .filter(|l| l.starts_with("type="))
        .map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .unwrap_or_else(|| panic!("no {k} in {l}"))
                    .to_string()
            };
            let (a, b) = field("pa=").split_once('-').map(|(a, b)| (hex(a), hex(b))).unwrap();
            assert!(hex(&field("attr=")) != 0 || l.contains("attr=0x0"));
            (field("type="), a, b, field("use="))
        })
        .collect()
}

#[test]
fn the_image_is_a_pe_coff_efi_application_for_an_independent_reader() {
    let image = artifact("image");
    // Door one: the arm64 Image header, its first word an MZ that is an instruction.
    assert_eq!(&image[..2], b"MZ");
    assert_eq!(
        u32::from_le_bytes(image[0..4].try_into().unwrap()),
        0xfa40_5a4d,
        "ccmp x18, #0, #0xd, pl"
    );
    assert_eq!(image[7] & 0xfc, 0x14, "code1 is a branch (b) to the early code");
    assert_eq!(&image[56..60], b"ARM\x64");
    // Door two: PE32+, read by the object crate.
    let file = PeFile64::parse(&*image).expect("the object crate reads the Image as PE32+");
    let nt = file.nt_headers();
    let (fh, oh) = (nt.file_header(), nt.optional_header());
    assert_eq!(fh.machine.get(object::LittleEndian), pe::IMAGE_FILE_MACHINE_ARM64);
    assert_eq!(
        oh.subsystem.get(object::LittleEndian),
        pe::IMAGE_SUBSYSTEM_EFI_APPLICATION
    );
    let align = oh.section_alignment.get(object::LittleEndian);
    assert_eq!(align, 4096, "SectionAlignment is the page size of the 4 KiB kernel");
    assert_eq!(u64::from(oh.size_of_image.get(object::LittleEndian)), image_size());
    let entry = oh.address_of_entry_point.get(object::LittleEndian);
    let sections: Vec<_> = file.section_table().iter().collect();
    let (text, data) = (sections[0], sections[1]);
    let le = object::LittleEndian;
    assert_eq!(&text.name, b".text\0\0\0");
    assert!(
        text.virtual_address.get(le) <= entry && entry < text.virtual_address.get(le) + text.virtual_size.get(le),
        "the entry point lies in .text"
    );
    // Sections are page-aligned, file offset = RVA, and cover the file and
    // the image to its end.
    for s in &sections {
        assert_eq!(s.virtual_address.get(le) % align, 0);
        assert_eq!(s.virtual_address.get(le), s.pointer_to_raw_data.get(le));
    }
    assert_eq!(
        text.virtual_address.get(le) + text.virtual_size.get(le),
        data.virtual_address.get(le)
    );
    assert_eq!(
        u64::from(data.virtual_address.get(le) + data.virtual_size.get(le)),
        image_size()
    );
    assert_eq!(
        (data.pointer_to_raw_data.get(le) + data.size_of_raw_data.get(le)) as usize,
        image.len(),
        "the raw data ends with the file"
    );
    // llvm-objdump (when installed) agrees it is an arm64 COFF file.
    let path = std::env::temp_dir().join(format!("splitmap-uefi-image-{}", std::process::id()));
    std::fs::write(&path, &image).unwrap();
    let objdump = std::process::Command::new("llvm-objdump").arg("-f").arg(&path).output();
    let _ = std::fs::remove_file(&path);
    match objdump {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("coff-arm64"), "llvm-objdump -f says:\n{text}");
        }
        Err(_) => eprintln!("llvm-objdump not installed: checked with the object crate only"),
    }
}

#[test]
fn boots_under_edk2_with_kaslr_and_without_and_lists_the_memory_map() {
    if !firmware_present() {
        return;
    }
    for kaslr in [true, false] {
        let mut options = vec!["--uefi"];
        if !kaslr {
            options.push("--nokaslr");
        }
        let out = session(&options, &["efi", "mem", "modules", "test"]);
        let (pa, va) = boot_line(&out);
        let (efi_pa, source, replay) = efi_line(&out);
        assert_eq!((efi_pa, replay), (pa, pa), "the efi line names the image's placement");
        assert_eq!(source, "rng", "the virtio RNG gives EFI_RNG_PROTOCOL");
        assert_eq!(pa % 4096, 0);
        assert_eq!(
            va == KIMAGE_VADDR,
            !kaslr,
            "KASLR moves the image virtually only when on:\n{out}"
        );
        assert!(!out.contains("UEFI firmware"), "firmware output is hidden without -v");
        let regions = efi_regions(&out);
        assert!(regions.len() > 5, "efi lists the map:\n{out}");
        // The image is where the stub allocated it, in a loader-code region.
        let holder = regions
            .iter()
            .find(|r| r.1 <= pa && pa < r.2)
            .unwrap_or_else(|| panic!("no region holds pa={pa:#x}:\n{out}"));
        assert_eq!((holder.0.as_str(), holder.3.as_str()), ("loader-code", "image"));
        // Runtime services regions are kept, never free.
        let runtime: Vec<_> = regions.iter().filter(|r| r.0.starts_with("runtime")).collect();
        assert!(!runtime.is_empty(), "EDK2 has runtime services regions:\n{out}");
        assert!(runtime.iter().all(|r| r.3 == "kept"), "{runtime:?}");
        assert!(
            out.contains("reserved pa=") && out.contains(" efi-mmap"),
            "mem shows the map reserved:\n{out}"
        );
        assert!(
            out.lines().any(|l| l.starts_with("hello size=")),
            "the initrd came through LoadFile2:\n{out}"
        );
        let (passed, failed) = ktap_totals(&out);
        assert!(passed > 0 && failed == 0, "in-kernel tests under UEFI:\n{out}");
    }
}

#[test]
fn boots_land_at_distinct_physical_addresses() {
    if !firmware_present() {
        return;
    }
    let boots: Vec<u32> = (0..6).collect();
    let placed = std::sync::Mutex::new(std::collections::BTreeSet::new());
    in_parallel(&boots, |_| {
        let out = session(&["--uefi", "--nokaslr"], &[]);
        placed.lock().unwrap().insert(efi_line(&out).0);
    });
    let placed = placed.into_inner().unwrap();
    assert!(placed.len() >= 5, "6 boots under the RNG land at {placed:x?}");
}

#[test]
fn efistub_seed_replays_a_placement_and_no_rng_falls_back_saying_so() {
    if !firmware_present() {
        return;
    }
    let first = session(&["--uefi", "--nokaslr", "--append", "efistub.seed=0x5eed"], &[]);
    let second = session(&["--uefi", "--nokaslr", "--append", "efistub.seed=0x5eed"], &[]);
    let (a, source, _) = efi_line(&first);
    assert_eq!(source, "efistub.seed");
    assert_eq!(
        a,
        efi_line(&second).0,
        "the same seed places the image at the same address"
    );

    let out = session(&["--uefi", "--no-rng"], &["efi"]);
    assert!(
        out.contains("efistub: no EFI_RNG_PROTOCOL"),
        "the fallback is said:\n{out}"
    );
    assert_eq!(efi_line(&out).1, "fallback");
}

#[test]
fn refusals_are_named() {
    for extra in [&["--load-addr", "0x40000000"][..], &["--raw-dtb", "Cargo.toml"][..]] {
        let mut args = vec!["run", "--uefi", "--cmd", "help"];
        args.extend_from_slice(extra);
        let run = splitmap(&args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    }
    if !firmware_present() {
        return;
    }
    // ACPI on: EDK2 puts no device tree in the configuration table.
    let run = splitmap(&[
        "run",
        "--uefi",
        "--timeout",
        "120",
        "--qemu-arg=-machine",
        "--qemu-arg=acpi=on",
        "--cmd",
        "help",
    ]);
    assert!(!run.success);
    assert!(
        run.stdout
            .contains("efistub: error: the firmware's configuration table holds no device tree"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("efistub: powering off"),
        "the stub shuts down instead of hanging"
    );
    // Allocation failure and a stale map key, forced by test-only arguments.
    let run = splitmap(&[
        "run",
        "--uefi",
        "--timeout",
        "120",
        "--append",
        "efistub.test=no-alloc",
        "--cmd",
        "help",
    ]);
    assert!(!run.success);
    assert!(
        run.stdout.contains("efistub: error: no conventional memory region"),
        "{}",
        run.stdout
    );
    let out = session(&["--uefi", "--append", "efistub.test=stale-map"], &[]);
    assert!(out.contains("efistub: test: the memory map changes"), "{out}");
    boot_line(&out);
}

#[test]
fn each_granule_boots_under_uefi() {
    if !firmware_present() {
        return;
    }
    for granule in ["16k", "64k"] {
        let out = session(&["--uefi", "--granule", granule], &["test"]);
        let (pa, _) = boot_line(&out);
        let page = if granule == "16k" { 16 << 10 } else { 64 << 10 };
        assert_eq!(pa % page, 0, "{granule}: placed at the Image's own page size");
        assert_eq!(efi_line(&out).0, pa);
        let (passed, failed) = ktap_totals(&out);
        assert!(passed > 0 && failed == 0, "{granule} under UEFI:\n{out}");
    }
}
