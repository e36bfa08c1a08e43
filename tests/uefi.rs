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
        let expected = if kaslr { "rng" } else { "firmware" };
        assert_eq!(
            source, expected,
            "the virtio RNG gives EFI_RNG_PROTOCOL; nokaslr keeps the firmware's placement"
        );
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
fn twenty_boots_land_at_fifteen_or_more_places_each_passing_test() {
    if !firmware_present() {
        return;
    }
    // Every boot runs the whole in-kernel suite; the virtual KASLR is on
    // (its seed is the RNG's second 8 bytes). `nokaslr` turns the physical
    // placement off too (nokaslr_keeps_the_firmwares_placement).
    let boots: Vec<u32> = (0..20).collect();
    let placed = std::sync::Mutex::new(Vec::new());
    in_parallel(&boots, |_| {
        let out = session(&["--uefi"], &["test"]);
        let (pa, va) = boot_line(&out);
        let (efi_pa, source, _) = efi_line(&out);
        assert_eq!((efi_pa, source.as_str()), (pa, "rng"), "{out}");
        assert_ne!(va, KIMAGE_VADDR, "KASLR moved the image virtually:\n{out}");
        let (passed, failed) = ktap_totals(&out);
        assert!(passed > 0 && failed == 0, "in-kernel tests at pa={pa:#x}:\n{out}");
        placed.lock().unwrap().push(pa);
    });
    let placed: std::collections::BTreeSet<u64> = placed.into_inner().unwrap().into_iter().collect();
    assert!(placed.len() >= 15, "20 boots under the RNG land at {placed:x?}");
}

#[test]
fn nokaslr_keeps_the_firmwares_placement() {
    if !firmware_present() {
        return;
    }
    let size = image_size().next_multiple_of(4096);
    let runs = [
        &["--uefi", "--nokaslr"][..],
        &["--uefi", "--nokaslr"][..],
        &["--uefi", "--append", "efistub.seed=0x1234"][..],
    ];
    let outs = std::sync::Mutex::new(vec![String::new(); runs.len()]);
    let cases: Vec<usize> = (0..runs.len()).collect();
    in_parallel(&cases, |&i| {
        let out = session(runs[i], &["efi", "test"]);
        outs.lock().unwrap()[i] = out;
    });
    let outs = outs.into_inner().unwrap();
    let (mut kept, mut vas) = (Vec::new(), Vec::new());
    for out in &outs[..2] {
        assert!(
            out.contains("efistub: nokaslr: the image stays where the firmware loaded it"),
            "{out}"
        );
        let (pa, va) = boot_line(out);
        let (efi_pa, source, _) = efi_line(out);
        assert_eq!((efi_pa, source.as_str()), (pa, "firmware"));
        assert!(!out.contains("EFI placement seed"), "no seed placed it:\n{out}");
        let regions = efi_regions(out);
        let image = regions.iter().find(|r| r.3 == "image").unwrap();
        assert_eq!((image.0.as_str(), image.1, image.2), ("loader-code", pa, pa + size));
        let (passed, failed) = ktap_totals(out);
        assert!(passed > 0 && failed == 0, "{out}");
        kept.push(pa);
        vas.push(va);
    }
    assert_eq!(
        kept[0], kept[1],
        "the firmware loads the image at the same place each time"
    );
    assert_eq!(vas, [KIMAGE_VADDR; 2], "and the kernel stays at its link address");
    // Where the firmware loaded it, seen from a boot whose stub moved the
    // image away: the firmware's loader-code allocation of the image's size,
    // left behind (free), at exactly the address the nokaslr boots ran at.
    let moved = &outs[2];
    assert_ne!(boot_line(moved).0, kept[0]);
    let left = efi_regions(moved)
        .into_iter()
        .find(|r| r.0 == "loader-code" && r.3 == "free")
        .unwrap_or_else(|| panic!("no loader-code region the firmware loaded into:\n{moved}"));
    assert_eq!((left.1, left.2), (kept[0], kept[0] + size), "{moved}");
}

/// Types the OS must leave alone (UEFI specification): reserved, runtime
/// services code and data, unusable, ACPI, MMIO, PAL code.
fn firmware_keeps(ty: &str) -> bool {
    ty == "reserved"
        || ty.starts_with("runtime")
        || ty == "unusable"
        || ty.starts_with("acpi")
        || ty.starts_with("mmio")
        || ty == "pal-code"
}

#[test]
fn with_3g_the_image_lands_only_in_conventional_memory() {
    if !firmware_present() {
        return;
    }
    let size = image_size().next_multiple_of(4096);
    let boots: Vec<u32> = (0..6).collect();
    let maps = std::sync::Mutex::new(Vec::new());
    in_parallel(&boots, |_| {
        let out = session(&["--uefi", "--mem", "3G"], &["efi"]);
        let pa = boot_line(&out).0;
        assert_eq!(efi_line(&out).0, pa);
        maps.lock().unwrap().push((pa, efi_regions(&out), out));
    });
    let maps = maps.into_inner().unwrap();
    for (pa, regions, out) in &maps {
        // EDK2 scatters: runtime regions lie apart, not all in one run at
        // the top.
        let runtime: Vec<_> = regions.iter().filter(|r| r.0.starts_with("runtime")).collect();
        assert!(
            runtime.windows(2).any(|w| w[0].2 != w[1].1),
            "runtime regions in more than one place:\n{out}"
        );
        // In its own map the image is the stub's allocation, exactly.
        let image: Vec<_> = regions.iter().filter(|r| r.1 < pa + size && *pa < r.2).collect();
        assert_eq!(image.len(), 1, "{out}");
        assert_eq!(
            (image[0].0.as_str(), image[0].1, image[0].2, image[0].3.as_str()),
            ("loader-code", *pa, pa + size, "image"),
            "{out}"
        );
        // In every boot's map, where this image went is memory the
        // firmware gives away: conventional then, or the other boot's own
        // allocations (loader), never a region the firmware keeps.
        for (_, other, _) in &maps {
            for r in other.iter().filter(|r| r.1 < pa + size && *pa < r.2) {
                assert!(
                    r.0 == "conventional"
                        || r.0.starts_with("loader")
                        || !firmware_keeps(&r.0) && r.0.starts_with("boot"),
                    "pa={pa:#x} overlaps {r:?}"
                );
            }
        }
    }
}

#[test]
fn runtime_regions_stay_intact_through_a_frame_hungry_run() {
    if !firmware_present() {
        return;
    }
    // Their first word of each 64 KiB (arm64 runtime images are 64 KiB
    // aligned: PE headers, code, variable stores), through the linear map.
    let probe = session(&["--uefi"], &["efi"]);
    let runtime: Vec<(u64, u64)> = efi_regions(&probe)
        .into_iter()
        .filter(|r| r.0.starts_with("runtime"))
        .map(|r| (r.1, r.2))
        .collect();
    assert!(!runtime.is_empty(), "{probe}");
    let peeks: Vec<String> = runtime
        .iter()
        .flat_map(|&(a, b)| (a..b).step_by(0x10000))
        .map(|pa| format!("peek {:#x}", PAGE_OFFSET + pa - RAM_BASE))
        .collect();
    // Hungry: the in-kernel suite (page tables past the image's pool, every
    // frame above the image when it sits near the top of RAM: the seed's
    // low 32 bits all ones pick the highest slot) and every sample module.
    let mut cmds: Vec<&str> = vec!["efi"];
    cmds.extend(peeks.iter().map(String::as_str));
    cmds.push("test");
    let insmods: Vec<String> = MODULES
        .iter()
        .filter(|m| **m != "faulty")
        .map(|m| format!("insmod {m}"))
        .collect();
    cmds.extend(insmods.iter().map(String::as_str));
    cmds.extend(peeks.iter().map(String::as_str));
    let out = session(&["--uefi", "--append", "efistub.seed=0xffffffff"], &cmds);
    let kept: Vec<(u64, u64)> = efi_regions(&out)
        .into_iter()
        .filter(|r| r.0.starts_with("runtime"))
        .map(|r| (r.1, r.2))
        .collect();
    assert_eq!(kept, runtime, "the same firmware, the same runtime regions");
    let values: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("0xffff") && l.ends_with("(64-bit)"))
        .collect();
    assert_eq!(values.len(), 2 * peeks.len(), "every peek answered:\n{out}");
    let (before, after) = values.split_at(peeks.len());
    assert!(
        before.iter().filter(|l| !l.contains(": 0x0 ")).count() >= runtime.len(),
        "the regions hold the firmware's bytes, not zeros:\n{before:#?}"
    );
    assert_eq!(before, after, "runtime services regions changed under the kernel");
    let (passed, failed) = ktap_totals(&out);
    assert!(passed > 0 && failed == 0, "{out}");
}

#[test]
fn efistub_seed_replays_a_placement_and_no_rng_falls_back_saying_so() {
    if !firmware_present() {
        return;
    }
    let first = session(&["--uefi", "--append", "efistub.seed=0x5eed"], &[]);
    let second = session(&["--uefi", "--append", "efistub.seed=0x5eed"], &[]);
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
    // Load options that are not a UTF-16 command line of ASCII: EDK2 widens
    // QEMU's -append byte by byte, so UTF-8's é arrives as two non-ASCII units.
    let run = splitmap(&[
        "run",
        "--uefi",
        "--timeout",
        "120",
        "--append",
        "caf\u{e9}",
        "--cmd",
        "help",
    ]);
    assert!(!run.success);
    assert!(
        run.stdout
            .contains("efistub: error: the load options are not a UTF-16 command line of printable ASCII"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("efistub: powering off"), "{}", run.stdout);
    assert!(!run.stdout.contains("splitmap: image"), "the kernel never started");
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

fn u_boot_present() -> bool {
    let present = std::path::Path::new(splitmap::uboot::FIRMWARE).is_file();
    if !present {
        eprintln!(
            "skipped: no U-Boot at {} (scripts/setup.sh installs u-boot-qemu)",
            splitmap::uboot::FIRMWARE
        );
    }
    present
}

#[test]
fn u_boot_bootefi_starts_the_same_image_and_the_fallbacks_run() {
    if !u_boot_present() {
        return;
    }
    // No virtio RNG: U-Boot's UEFI has no EFI_RNG_PROTOCOL. It never has
    // LoadFile2: the initrd comes from the `initrd=` file on the disk.
    let out = session(
        &["--uefi", "--firmware", "u-boot", "--no-rng"],
        &["modules", "efi", "test"],
    );
    assert!(!out.contains("U-Boot"), "firmware output is hidden without -v:\n{out}");
    assert!(out.contains("efistub: no EFI_RNG_PROTOCOL"), "{out}");
    assert!(
        out.contains("efistub: no LoadFile2 initrd: reading the initrd= file from the boot volume"),
        "{out}"
    );
    let (pa, _) = boot_line(&out);
    let (efi_pa, source, _) = efi_line(&out);
    assert_eq!((efi_pa, source.as_str()), (pa, "fallback"));
    for m in MODULES {
        assert!(out.lines().any(|l| l.starts_with(&format!("{m} size="))), "{m}:\n{out}");
    }
    let regions = efi_regions(&out);
    let image = regions.iter().find(|r| r.3 == "image").expect("the image's region");
    assert_eq!((image.0.as_str(), image.1), ("loader-code", pa), "{out}");
    let (passed, failed) = ktap_totals(&out);
    assert!(passed > 0 && failed == 0, "in-kernel tests under U-Boot:\n{out}");

    // With a virtio RNG this U-Boot does offer EFI_RNG_PROTOCOL.
    let out = session(
        &["--uefi", "--firmware", "u-boot", "--append", "loglevel=debug"],
        &["bootargs"],
    );
    assert_eq!(efi_line(&out).1, "rng", "{out}");
    assert!(
        out.lines().any(|l| l == "cmdline: loglevel=debug"),
        "bootargs reach the kernel through the load options, the stub's initrd= gone:\n{out}"
    );

    // An initrd= that names no file is refused by name, then the machine is
    // powered off.
    let run = splitmap(&[
        "run",
        "--uefi",
        "--firmware",
        "u-boot",
        "--timeout",
        "120",
        "--append",
        "initrd=/no/such",
        "--cmd",
        "help",
    ]);
    assert!(!run.success);
    assert!(
        run.stdout
            .contains("efistub: error: initrd=: no such file on the boot volume"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("efistub: powering off"), "{}", run.stdout);
}

#[test]
fn sweep_uefi_charts_the_stubs_physical_placements() {
    if !firmware_present() {
        return;
    }
    let svg = std::env::temp_dir().join(format!("splitmap-sweep-uefi-{}.svg", std::process::id()));
    let run = splitmap(&[
        "sweep",
        "--uefi",
        "--boots",
        "9",
        "--jobs",
        "3",
        "--bins",
        "3",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(run.success, "{}\n{}", run.stderr, run.stdout);
    let line = |prefix: &str| {
        run.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in:\n{}", run.stdout))
            .to_string()
    };
    assert!(line("sweep: ").starts_with("9 boots under UEFI"));
    // As many slots as 4 KiB places the image has in 1 GiB, less what the
    // firmware keeps or uses: most of them, never more.
    let slots: u64 = line("efi slots: ").split_whitespace().next().unwrap().parse().unwrap();
    let all = (GIB - image_size()) / 4096 + 1;
    assert!(slots <= all && slots > all * 3 / 4, "{slots} of {all}");
    let distinct: u64 = line("placements: ").split_whitespace().next().unwrap().parse().unwrap();
    assert!(distinct >= 8, "seeds spread over {slots} slots:\n{}", run.stdout);
    let histogram: u64 = line("histogram (3 bins, low to high slot): ")
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(histogram, 9);
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    assert!(drawn.starts_with("<svg") && drawn.contains("EFI slot: the image's page-aligned places"));

    let refused = splitmap(&["sweep", "--uefi", "--align", "64K"]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
}

#[test]
fn map_draws_a_boot_under_uefi() {
    if !firmware_present() {
        return;
    }
    let md = std::env::temp_dir().join(format!("splitmap-map-uefi-{}.md", std::process::id()));
    let run = splitmap(&["map", "--uefi", "-o", md.to_str().unwrap()]);
    let table = std::fs::read_to_string(&md).unwrap_or_default();
    let _ = std::fs::remove_file(&md);
    assert!(run.success, "{}\n{}", run.stderr, run.stdout);
    assert!(table.contains("| kernel text (`r-x`) |"), "{table}");
}

/// `splitmap run OPTIONS` on a terminal of its own (`script`), as a person
/// at a keyboard runs it, with the test as that person's terminal: what the
/// tool shows is collected, and every cursor-position query it lets through
/// (`ESC[6n`) is answered by typing `ESC[24;80R`, as a terminal does.
struct Terminal {
    script: std::process::Child,
    keys: std::process::ChildStdin,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
    answered: usize,
}

impl Terminal {
    fn run(options: &str) -> Terminal {
        use std::process::{Command, Stdio};
        let line = format!("{} run {options}", env!("CARGO_BIN_EXE_splitmap"));
        let mut script = Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux) runs");
        let keys = script.stdin.take().unwrap();
        let mut from = script.stdout.take().unwrap();
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let into = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut from, &mut buf) {
                into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal {
            script,
            keys,
            screen,
            answered: 0,
        }
    }

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Waits until the screen shows `want` after its first `after` bytes;
    /// returns where it ends.
    fn wait_for(&mut self, want: &str, after: usize) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let screen = self.screen();
            let queries = screen.matches("\x1b[6n").count();
            for _ in self.answered..queries {
                self.type_keys(b"\x1b[24;80R");
            }
            self.answered = queries;
            if let Some(at) = screen.get(after..).and_then(|s| s.find(want)) {
                return after + at + want.len();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {want:?} on the screen:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        use std::io::Write;
        self.keys.write_all(keys).unwrap();
        self.keys.flush().unwrap();
    }

    /// Waits for the tool to end; whether it succeeded.
    fn ended(&mut self) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = self.script.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the tool did not end:\n{}",
                self.screen()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.script.kill();
        let _ = self.script.wait();
    }
}

/// Interactively, firmware output stays hidden, the shell answers what is
/// typed, and Ctrl-A X (QEMU's key, through the tool) leaves: the tool puts
/// the terminal in raw mode (else Ctrl-A X would wait for a line's end).
#[test]
fn interactive_run_hides_edk2_and_ctrl_a_x_leaves() {
    if !firmware_present() {
        return;
    }
    let mut t = Terminal::run("--uefi --timeout 300");
    let at = t.wait_for("splitmap> ", 0);
    t.type_keys(b"help\r");
    let help = t.wait_for("commands:", at);
    let at = t.wait_for("splitmap> ", help);
    t.type_keys(b"\x01x");
    t.ended();
    let screen = t.screen();
    assert!(
        !screen.contains("UEFI firmware"),
        "firmware output is hidden without -v:\n{screen}"
    );
    assert!(
        !screen.contains('\x1b') && !screen.contains("error:"),
        "no escape sequence, no junk typed:\n{screen}"
    );
    assert!(screen[at..].contains("QEMU: Terminated"), "{screen}");
}

/// With -v, U-Boot's output is shown but not its size query (`ESC[6n`): a
/// terminal would answer it by typing, and an answer late for U-Boot would
/// reach the kernel's shell as a command. Keys typed while the firmware runs
/// wait for the kernel: U-Boot would stop its autoboot at them.
#[test]
fn interactive_run_under_u_boot_shows_no_query_and_keeps_early_keys_for_the_shell() {
    if !u_boot_present() {
        return;
    }
    let mut t = Terminal::run("--uefi --firmware u-boot --no-rng -v --timeout 300");
    let at = t.wait_for("U-Boot", 0);
    t.type_keys(b"help\r");
    let help = t.wait_for("commands:", at);
    let at = t.wait_for("splitmap> ", help);
    t.type_keys(b"poweroff\r");
    t.wait_for("splitmap: powering off", at);
    assert!(t.ended(), "{}", t.screen());
    let screen = t.screen();
    assert!(
        screen.contains("Hit any key to stop autoboot"),
        "-v shows the firmware:\n{screen}"
    );
    assert_eq!(t.answered, 0, "the terminal saw a query:\n{screen}");
    assert!(!screen.contains("error:"), "junk typed into the shell:\n{screen}");
    assert_eq!(screen.matches("splitmap> help").count(), 1, "{screen}");
}
