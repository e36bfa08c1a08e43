//! Device trees built with vm-fdt (an independent FDT writer), read back.
#![allow(clippy::type_complexity)] // table-driven rows read best spelled out

use super::*;
use vm_fdt::{FdtReserveEntry, FdtWriter};

struct Tree {
    ram: Vec<(u64, u64)>,
    memreserve: Vec<(u64, u64)>,
    reserved_memory: Vec<(u64, u64)>,
    initrd: Option<(u64, u64)>,
    stdout_path: &'static str,
    address_cells: u32,
    split_memory_nodes: bool,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            ram: vec![(0x4000_0000, 0x4000_0000)],
            memreserve: vec![],
            reserved_memory: vec![],
            initrd: None,
            stdout_path: "/pl011@9000000",
            address_cells: 2,
            split_memory_nodes: false,
        }
    }
}

fn reg_cells(ac: u32, entries: &[(u64, u64)]) -> Vec<u32> {
    let mut cells = Vec::new();
    for &(a, s) in entries {
        if ac == 2 {
            cells.push((a >> 32) as u32);
        }
        cells.push(a as u32);
        cells.push((s >> 32) as u32);
        cells.push(s as u32);
    }
    cells
}

fn build(t: &Tree) -> Vec<u8> {
    let rsv: Vec<_> = t
        .memreserve
        .iter()
        .map(|&(a, s)| FdtReserveEntry::new(a, s).unwrap())
        .collect();
    let mut w = FdtWriter::new_with_mem_reserv(&rsv).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", t.address_cells).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", "loglevel=debug foo").unwrap();
    w.property_string("stdout-path", t.stdout_path).unwrap();
    w.property_u64("kaslr-seed", 0x0123_4567_89ab_cdef).unwrap();
    w.property("rng-seed", &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0xff])
        .unwrap();
    if let Some((s, e)) = t.initrd {
        w.property_u64("linux,initrd-start", s).unwrap();
        w.property_u32("linux,initrd-end", e as u32).unwrap();
    }
    w.end_node(chosen).unwrap();
    let aliases = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "/pl011@9000000").unwrap();
    w.end_node(aliases).unwrap();
    let groups: Vec<Vec<(u64, u64)>> = if t.split_memory_nodes {
        t.ram.iter().map(|r| vec![*r]).collect()
    } else {
        vec![t.ram.clone()]
    };
    for g in groups.iter().filter(|g| !g.is_empty()) {
        let m = w.begin_node(&format!("memory@{:x}", g[0].0)).unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u32("reg", &reg_cells(t.address_cells, g)).unwrap();
        w.end_node(m).unwrap();
    }
    if !t.reserved_memory.is_empty() {
        let rm = w.begin_node("reserved-memory").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        for (i, r) in t.reserved_memory.iter().enumerate() {
            let n = w.begin_node(&format!("area@{i}")).unwrap();
            w.property_array_u32("reg", &reg_cells(2, &[*r])).unwrap();
            w.end_node(n).unwrap();
        }
        w.end_node(rm).unwrap();
    }
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()])
        .unwrap();
    w.property_array_u32("reg", &reg_cells(t.address_cells, &[(0x900_0000, 0x1000)]))
        .unwrap();
    w.end_node(uart).unwrap();
    let psci = w.begin_node("psci").unwrap();
    w.property_string("method", "hvc").unwrap();
    w.end_node(psci).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// The reader wants a 4-byte aligned buffer; a Vec<u8> promises only 1. (The
/// device-tree readers' tests all build trees through here.)
pub(in crate::boot::dtb) fn aligned(bytes: &[u8]) -> Vec<u32> {
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    // SAFETY: `words` has at least `bytes.len()` bytes and u8 has no alignment.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), words.as_mut_ptr() as *mut u8, bytes.len()) };
    words
}

/// The bytes of [`aligned`]'s words (a multiple of 4: the tree padded).
pub(in crate::boot::dtb) fn as_bytes(words: &[u32]) -> &[u8] {
    // SAFETY: initialised u32s viewed as bytes: same memory, byte alignment.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast(), words.len() * 4) }
}

fn parse_tree(
    t: &Tree,
) -> Result<
    (
        Vec<(u64, u64)>,
        Vec<(u64, u64)>,
        Option<(u64, u64)>,
        Option<Uart>,
        Option<PsciConduit>,
    ),
    DtbError,
> {
    let blob = build(t);
    let words = aligned(&blob);
    // SAFETY: reinterpreting initialised u32s as bytes.
    let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
    let info = parse(bytes)?;
    if let Some(problem) = info.problems[0] {
        return Err(problem);
    }
    if info.memory.is_empty() {
        return Err(DtbError::NoMemory);
    }
    assert_eq!(info.bootargs, "loglevel=debug foo");
    let (seed, at) = info.kaslr_seed.unwrap();
    assert_eq!(seed, 0x0123_4567_89ab_cdef);
    assert_eq!(
        bytes[at..at + 8],
        seed.to_be_bytes(),
        "the offset locates the value in the blob"
    );
    assert_eq!(info.rng_seed, Some(1 ^ 3 ^ 0xff00_0000_0000_0000));
    assert_eq!(info.totalsize, blob.len() as u64);
    let pairs = |l: &RangeList| l.iter().map(|r| (r.start.raw(), r.size())).collect::<Vec<_>>();
    Ok((
        pairs(&info.memory),
        pairs(&info.reserved),
        info.initrd.map(|r| (r.start.raw(), r.end.raw())),
        info.uart,
        info.psci,
    ))
}

#[test]
fn reads_qemu_like_tree() {
    let (ram, reserved, initrd, uart, psci) = parse_tree(&Tree::default()).unwrap();
    assert_eq!(ram, [(0x4000_0000, 0x4000_0000)]);
    assert!(reserved.is_empty());
    assert_eq!(initrd, None);
    assert_eq!(
        uart,
        Some(Uart {
            regs: PhysRange::new(0x900_0000, 0x1000).unwrap(),
            pl011: true
        })
    );
    assert_eq!(psci, Some(PsciConduit::Hvc));
}

#[test]
fn several_memory_nodes_and_ranges() {
    // (RAM as listed, split into one node each?, expected merged ranges)
    let rows: &[(&[(u64, u64)], bool, &[(u64, u64)])] = &[
        (
            &[(0x4000_0000, 0x2000_0000), (0x1_0000_0000, 0x4000_0000)],
            false,
            &[(0x4000_0000, 0x2000_0000), (0x1_0000_0000, 0x4000_0000)],
        ),
        (
            &[(0x1_0000_0000, 0x4000_0000), (0x4000_0000, 0x2000_0000)],
            true,
            &[(0x4000_0000, 0x2000_0000), (0x1_0000_0000, 0x4000_0000)],
        ),
        // Adjacent NUMA nodes merge into one range.
        (
            &[(0x4000_0000, 0x4000_0000), (0x8000_0000, 0x4000_0000)],
            true,
            &[(0x4000_0000, 0x8000_0000)],
        ),
    ];
    for (ram, split, expected) in rows {
        let t = Tree {
            ram: ram.to_vec(),
            split_memory_nodes: *split,
            ..Tree::default()
        };
        assert_eq!(parse_tree(&t).unwrap().0, *expected, "{ram:x?}");
    }
}

#[test]
fn empty_and_overlapping_memory_ranges_are_reported_and_handled() {
    let t = Tree {
        ram: vec![(0x4000_0000, 0x4000_0000), (0x9000_0000, 0), (0x6000_0000, 0x1000_0000)],
        ..Tree::default()
    };
    let blob = build(&t);
    let words = aligned(&blob);
    // SAFETY: reinterpreting initialised u32s as bytes.
    let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
    let info = parse(bytes).unwrap();
    let problems: Vec<DtbError> = info.problems.iter().flatten().copied().collect();
    assert_eq!(
        problems,
        [
            DtbError::EmptyRange(0x9000_0000),
            DtbError::Overlap(0x6000_0000, 0x7000_0000)
        ]
    );
    assert_eq!(problems[0].consequence(), "ignored");
    assert_eq!(problems[1].consequence(), "merged");
    let memory: Vec<(u64, u64)> = info.memory.iter().map(|r| (r.start.raw(), r.size())).collect();
    assert_eq!(
        memory,
        [(0x4000_0000, 0x4000_0000)],
        "the empty one dropped, the overlap merged"
    );
}

#[test]
fn reservations_and_initrd() {
    let t = Tree {
        memreserve: vec![(0x4800_0000, 0x1000)],
        reserved_memory: vec![(0x5000_0000, 0x10_0000)],
        initrd: Some((0x4400_0000, 0x4410_0000)),
        ..Tree::default()
    };
    let (_, reserved, initrd, _, _) = parse_tree(&t).unwrap();
    assert_eq!(reserved, [(0x4800_0000, 0x1000), (0x5000_0000, 0x10_0000)]);
    assert_eq!(initrd, Some((0x4400_0000, 0x4410_0000)));
}

#[test]
fn stdout_path_forms() {
    for path in [
        "/pl011@9000000",
        "/pl011@9000000:115200n8",
        "serial0",
        "serial0:115200",
        "/pl011",
    ] {
        let t = Tree {
            stdout_path: path,
            ..Tree::default()
        };
        assert!(parse_tree(&t).unwrap().3.is_some(), "{path}");
    }
    let t = Tree {
        stdout_path: "/nothing@0",
        ..Tree::default()
    };
    assert_eq!(parse_tree(&t).unwrap().3, None);
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    assert_eq!(
        parse_tree(&Tree {
            ram: vec![],
            ..Tree::default()
        })
        .unwrap_err(),
        DtbError::NoMemory
    );
    assert_eq!(
        parse_tree(&Tree {
            address_cells: 3,
            ..Tree::default()
        })
        .unwrap_err(),
        DtbError::BadCells(Node::Memory)
    );
    let blob = build(&Tree::default());
    let words = aligned(&blob);
    // SAFETY: reinterpreting initialised u32s as bytes.
    let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
    assert_eq!(
        parse(&bytes[..blob.len() - 8]).unwrap_err(),
        DtbError::BadSize(blob.len() as u64)
    );
    let mut bad = words.clone();
    bad[0] = 0;
    // SAFETY: as above.
    let bad = unsafe { core::slice::from_raw_parts(bad.as_ptr() as *const u8, blob.len()) };
    assert_eq!(parse(bad).unwrap_err(), DtbError::BadMagic(0));
    assert!(DtbError::NoMemory.to_string().contains("/memory"));
}

#[test]
fn a_malformed_ram_node_is_reported_and_the_others_kept() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    for (name, reg) in [
        (
            "memory@40000000",
            &[0u8, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0][..],
        ),
        ("memory@100000000", &[0, 0, 0, 1, 0][..]),
    ] {
        let m = w.begin_node(name).unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property("reg", reg).unwrap();
        w.end_node(m).unwrap();
    }
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let words = aligned(&blob);
    // SAFETY: reinterpreting initialised u32s as bytes.
    let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
    let info = parse(bytes).unwrap();
    assert_eq!(info.problems[0], Some(DtbError::BadReg(Node::Memory)));
    assert_eq!(
        info.memory
            .iter()
            .map(|r| (r.start.raw(), r.size()))
            .collect::<Vec<_>>(),
        [(0x4000_0000, 0x4000_0000)]
    );
}

/// Parses `t`, problems and all.
fn parse_with_problems(t: &Tree) -> Result<(Vec<(u64, u64)>, Vec<(u64, u64)>, Vec<DtbError>), DtbError> {
    let blob = build(t);
    let words = aligned(&blob);
    // SAFETY: reinterpreting initialised u32s as bytes.
    let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
    let info = parse(bytes)?;
    let pairs = |l: &RangeList| l.iter().map(|r| (r.start.raw(), r.size())).collect::<Vec<_>>();
    Ok((
        pairs(&info.memory),
        pairs(&info.reserved),
        info.problems.iter().flatten().copied().collect(),
    ))
}

#[test]
fn memory_ranges_past_the_limit_are_reported_and_the_first_kept() {
    let ram: Vec<(u64, u64)> = (0..MAX_MEMORY_RANGES as u64 + 3)
        .map(|i| (0x4000_0000 + i * 0x200_0000, 0x100_0000))
        .collect();
    let (memory, _, problems) = parse_with_problems(&Tree {
        ram: ram.clone(),
        ..Tree::default()
    })
    .unwrap();
    assert_eq!(memory, ram[..MAX_MEMORY_RANGES]);
    assert_eq!(problems, [DtbError::TooManyRanges(Node::Memory)]);
    assert!(problems[0].to_string().contains(&MAX_MEMORY_RANGES.to_string()));
}

#[test]
fn more_reservations_than_can_be_honoured_refuse_the_tree() {
    let reserved: Vec<(u64, u64)> = (0..MAX_RESERVED_RANGES as u64 + 1)
        .map(|i| (0x5000_0000 + i * 0x2000, 0x1000))
        .collect();
    let all_kept = parse_with_problems(&Tree {
        reserved_memory: reserved[..MAX_RESERVED_RANGES].to_vec(),
        ..Tree::default()
    })
    .unwrap();
    assert_eq!(all_kept.1.len(), MAX_RESERVED_RANGES);
    for t in [
        Tree {
            reserved_memory: reserved.clone(),
            ..Tree::default()
        },
        Tree {
            memreserve: reserved.clone(),
            ..Tree::default()
        },
    ] {
        let e = parse_with_problems(&t).unwrap_err();
        assert!(matches!(e, DtbError::TooManyRanges(_)), "{e:?}");
        assert!(e.to_string().contains("cannot all honour"), "{e}");
    }
}

#[test]
fn a_reservation_to_the_top_of_the_address_space_is_kept() {
    // (vm-fdt will not write such a /memreserve/ entry; it shares the reader.)
    let start = 0x7f00_0000u64;
    let (_, reserved, problems) = parse_with_problems(&Tree {
        reserved_memory: vec![(start, start.wrapping_neg())],
        ..Tree::default()
    })
    .unwrap();
    assert_eq!(reserved, [(start, u64::MAX - start)], "saturated at the top");
    assert!(problems.is_empty(), "{problems:?}");
}

fn source(blob: &[u8], path: &str) -> Result<String, source::SourceError> {
    let words = aligned(blob);
    // SAFETY: `words` holds `blob.len()` initialised bytes.
    let blob = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
    let mut text = String::new();
    source::write_source(blob, path, &mut text).map(|()| text)
}

#[test]
fn the_tree_prints_as_source_with_reg_ranges_decoded() {
    let blob = build(&Tree {
        memreserve: vec![(0x5000_0000, 0x1_0000)],
        reserved_memory: vec![(0x6000_0000, 0x20_0000)],
        ..Tree::default()
    });
    let text = source(&blob, "/").unwrap();
    let expected = [
        "/memreserve/ 0x0000000050000000 0x0000000000010000;",
        "/ {",
        "  #address-cells = <0x02>;",
        "  #size-cells = <0x02>;",
        "  chosen {",
        "    bootargs = \"loglevel=debug foo\";",
        "    stdout-path = \"/pl011@9000000\";",
        "    kaslr-seed = <0x1234567 0x89abcdef>;",
        "    rng-seed = [00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 03 ff];",
        "  };",
        "  aliases {",
        "    serial0 = \"/pl011@9000000\";",
        "  };",
        "  memory@40000000 {",
        "    device_type = \"memory\";",
        "    reg = <0x00 0x40000000 0x00 0x40000000>; // 0x40000000-0x80000000",
        "  };",
        "  reserved-memory {",
        "    #address-cells = <0x02>;",
        "    #size-cells = <0x02>;",
        "    area@0 {",
        "      reg = <0x00 0x60000000 0x00 0x200000>; // 0x60000000-0x60200000",
        "    };",
        "  };",
        "  pl011@9000000 {",
        "    compatible = \"arm,pl011\\0arm,primecell\";",
        "    reg = <0x00 0x9000000 0x00 0x1000>; // 0x9000000-0x9001000",
        "  };",
        "  psci {",
        "    method = \"hvc\";",
        "  };",
        "};",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn one_node_prints_by_its_path_with_or_without_the_unit_address() {
    let blob = build(&Tree::default());
    let uart = ["/pl011@9000000 {", "  compatible = \"arm,pl011\\0arm,primecell\";"];
    for path in ["/pl011@9000000", "/pl011", "/pl011/"] {
        let text = source(&blob, path).unwrap();
        assert_eq!(text.lines().take(2).collect::<Vec<_>>(), uart, "{path}");
        assert_eq!(text.lines().last(), Some("};"), "{path}");
    }
    assert_eq!(source(&blob, "/psci").unwrap(), "/psci {\n  method = \"hvc\";\n};\n");
    for missing in ["/nothing", "/pl011@9000001", "/chosen/psci"] {
        assert_eq!(
            source(&blob, missing),
            Err(source::SourceError::NoSuchNode),
            "{missing}"
        );
    }
    let mut broken = blob.clone();
    broken[4..8].copy_from_slice(&8u32.to_be_bytes());
    assert_eq!(source(&broken, "/"), Err(source::SourceError::Malformed));
}

/// A tree whose `/chosen` comes last, as QEMU writes it, with a PL011 near
/// the root and another UART six levels down.
fn tree_with_chosen_last(stdout_path: &str) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let memory = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &reg_cells(2, &[(0x4000_0000, 0x4000_0000)]))
        .unwrap();
    w.end_node(memory).unwrap();
    let uart = w.begin_node("pl011@9000000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u32("reg", &reg_cells(2, &[(0x900_0000, 0x1000)]))
        .unwrap();
    w.end_node(uart).unwrap();
    let mut open = Vec::new();
    for level in ["soc", "a", "b", "c", "d"] {
        open.push(w.begin_node(level).unwrap());
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        // Each level maps its children's addresses 1:1 onto its parent's
        // (without `ranges` they would not reach the CPU at all).
        w.property_null("ranges").unwrap();
    }
    let deep = w.begin_node("serial@a000000").unwrap();
    w.property_string("compatible", "ns16550a").unwrap();
    w.property_array_u32("reg", &reg_cells(2, &[(0xa00_0000, 0x100)]))
        .unwrap();
    w.end_node(deep).unwrap();
    for node in open.into_iter().rev() {
        w.end_node(node).unwrap();
    }
    let aliases = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "/pl011@9000000").unwrap();
    w.property_string("serial1", "/soc/a/b/c/d/serial@a000000").unwrap();
    w.end_node(aliases).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", stdout_path).unwrap();
    w.end_node(chosen).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn stdout_path_after_its_node_is_still_found() {
    // (stdout-path, the UART it names): by path or alias, kept from the
    // first walk (the PL011) or found by a second (the deep non-PL011).
    let rows = [
        ("/pl011@9000000", Some((0x900_0000, true))),
        ("serial0:115200n8", Some((0x900_0000, true))),
        ("/soc/a/b/c/d/serial@a000000", Some((0xa00_0000, false))),
        ("serial1", Some((0xa00_0000, false))),
        ("/soc/a/b/c/d/serial", Some((0xa00_0000, false))),
        ("/nothing", None),
        ("serial7", None),
    ];
    for (path, expected) in rows {
        let blob = tree_with_chosen_last(path);
        let words = aligned(&blob);
        // SAFETY: reinterpreting initialised u32s as bytes.
        let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
        let info = parse(bytes).unwrap();
        let uart = info.uart.map(|u| (u.regs.start.raw(), u.pl011));
        assert_eq!(uart, expected, "{path}");
        assert_eq!(info.memory.total(), 1 << 30, "{path}");
    }
}

/// The console's node as messages name it: its path, an alias resolved,
/// the options after `:` dropped; a path or alias the tree lacks as
/// written, so that the warning can say what was not found.
#[test]
fn the_console_node_is_named_by_its_path() {
    let rows = [
        ("/pl011@9000000", "/pl011@9000000", true),
        ("serial0:115200n8", "/pl011@9000000", true),
        ("serial1", "/soc/a/b/c/d/serial@a000000", true),
        ("/nothing:115200n8", "/nothing", false),
        ("serial7", "serial7", false),
    ];
    for (path, node, found) in rows {
        let blob = tree_with_chosen_last(path);
        let words = aligned(&blob);
        // SAFETY: reinterpreting initialised u32s as bytes.
        let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
        let info = parse(bytes).unwrap();
        assert_eq!((info.uart_node, info.uart_node_found), (node, found), "{path}");
    }
    // No stdout-path: nothing named, nothing found.
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("bootargs", "").unwrap();
    w.end_node(chosen).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let words = aligned(&blob);
    let info = parse(&as_bytes(&words)[..blob.len()]).unwrap();
    assert_eq!((info.uart_node, info.uart_node_found), ("", false));
}

#[test]
fn a_kaslr_seed_of_another_size_is_reported_not_used() {
    for len in [4usize, 16] {
        let mut w = vm_fdt::FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property("kaslr-seed", &vec![0x5a; len]).unwrap();
        w.end_node(chosen).unwrap();
        let memory = w.begin_node("memory").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000]).unwrap();
        w.end_node(memory).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();
        let words = aligned(&blob);
        // SAFETY: reinterpreting initialised u32s as bytes.
        let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
        let info = parse(bytes).unwrap();
        assert_eq!(info.kaslr_seed, None, "{len} bytes");
        assert!(
            info.problems.contains(&Some(DtbError::BadKaslrSeed(len))),
            "{:?}",
            info.problems
        );
        assert_eq!(DtbError::BadKaslrSeed(len).consequence(), "not used as a seed");
    }
}

/// Trees that a tokeniser alone would read without a word but that no loader makes:
/// each is refused by name.
#[test]
fn structurally_wrong_trees_are_refused() {
    let good = build(&Tree::default());
    let be32 = |blob: &[u8], at: usize| u32::from_be_bytes(blob[at..at + 4].try_into().unwrap());
    let with = |at: usize, value: u32| {
        let mut blob = good.clone();
        blob[at..at + 4].copy_from_slice(&value.to_be_bytes());
        blob
    };
    let parsed = |blob: &[u8]| {
        let words = aligned(blob);
        // SAFETY: reinterpreting initialised u32s as bytes.
        let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
        parse(bytes).map(|_| ())
    };
    assert_eq!(parsed(&good), Ok(()));
    for version in [0, 1, 0xffff_ffff] {
        assert_eq!(parsed(&with(20, version)), Err(DtbError::BadVersion(version)));
    }
    assert_eq!(parsed(&with(32, 0)), Err(DtbError::Malformed), "no strings block");
    assert_eq!(parsed(&with(36, 0)), Err(DtbError::Malformed), "no structure block");
    // The root's END_NODE, just before FDT_END, made a NOP.
    let end = (be32(&good, 8) + be32(&good, 36)) as usize;
    assert_eq!((be32(&good, end - 4), be32(&good, end - 8)), (9, 2));
    assert_eq!(parsed(&with(end - 8, 4)), Err(DtbError::Malformed), "root never closed");
    assert!(DtbError::BadVersion(1).to_string().contains("version 1"));
}

/// `blob` parsed from 4-byte-aligned storage.
fn parse_copy(blob: &[u8], check: impl FnOnce(&DeviceTree<'_>)) {
    let words = aligned(blob);
    // SAFETY: reinterpreting initialised u32s as bytes.
    let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, blob.len()) };
    check(&parse(bytes).unwrap());
}

#[test]
fn the_raspi3b_tree_reads_through_soc_ranges_and_an_alias() {
    // The tree `splitmap run --machine raspi3b` passes.
    parse_copy(include_bytes!("../../../../boot/boards/raspi3b.dtb"), |info| {
        assert_eq!(
            info.memory
                .iter()
                .map(|r| (r.start.raw(), r.size()))
                .collect::<Vec<_>>(),
            [(0, 0x3c00_0000)]
        );
        let reserved: Vec<_> = info.reserved.iter().map(|r| (r.start.raw(), r.size())).collect();
        assert_eq!(reserved, [(0, 0x1000), (0x3c00_0000, 0x0400_0000)]);
        // "serial0:115200n8" → /soc/serial@7e201000, bus 0x7e201000 → CPU 0x3f201000.
        let uart = info.uart.unwrap();
        assert_eq!(
            (uart.regs.start.raw(), uart.regs.size(), uart.pl011),
            (0x3f20_1000, 0x200, true)
        );
        assert_eq!(info.power.map(|r| r.start.raw()), Some(0x3f10_0000));
        assert_eq!(info.psci, None);
        assert!(info.problems.iter().all(Option::is_none), "{:?}", info.problems);
    });
}

/// A Pi-like tree whose `/soc` has `ranges` (`Some`) or none (`None`).
fn soc_tree(ranges: Option<&[u32]>) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let memory = w.begin_node("memory@0").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0, 0x4000_0000]).unwrap();
    w.end_node(memory).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "/soc/serial@7e201000:115200n8")
        .unwrap();
    w.end_node(chosen).unwrap();
    let soc = w.begin_node("soc").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    if let Some(cells) = ranges {
        w.property_array_u32("ranges", cells).unwrap();
    }
    let uart = w.begin_node("serial@7e201000").unwrap();
    w.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()])
        .unwrap();
    w.property_array_u32("reg", &[0x7e20_1000, 0x200]).unwrap();
    w.end_node(uart).unwrap();
    let pm = w.begin_node("watchdog@7e100000").unwrap();
    w.property_string_list(
        "compatible",
        vec!["brcm,bcm2835-pm".into(), "brcm,bcm2835-pm-wdt".into()],
    )
    .unwrap();
    w.property_array_u32("reg", &[0x7e10_0000, 0x114]).unwrap();
    w.end_node(pm).unwrap();
    w.end_node(soc).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn a_reg_is_translated_or_reported_as_unreachable() {
    parse_copy(&soc_tree(Some(&[0x7e00_0000, 0x3f00_0000, 0x0100_0000])), |info| {
        assert_eq!(info.uart.map(|u| u.regs.start.raw()), Some(0x3f20_1000));
        assert_eq!(info.power.map(|r| r.start.raw()), Some(0x3f10_0000));
    });
    // Identity `ranges;`: the bus address is the CPU's.
    parse_copy(&soc_tree(Some(&[])), |info| {
        assert_eq!(info.uart.map(|u| u.regs.start.raw()), Some(0x7e20_1000));
    });
    // No `ranges`: the children do not reach the CPU; no console, and said why.
    parse_copy(&soc_tree(None), |info| {
        assert_eq!(info.uart, None);
        assert_eq!(info.power, None);
        let said: Vec<String> = info.problems.iter().flatten().map(ToString::to_string).collect();
        assert!(
            said.contains(
                &"device tree node stdout-path's reg does not reach the CPU: its ancestor at depth 1 has no ranges"
                    .to_string()
            ),
            "{said:?}"
        );
    });
    // A window that misses the UART.
    parse_copy(&soc_tree(Some(&[0x7e00_0000, 0x3f00_0000, 0x1000])), |info| {
        assert_eq!(info.uart, None);
        assert!(matches!(
            info.problems[0],
            Some(DtbError::Untranslatable(
                Node::StdoutPath,
                ranges::Untranslatable::Outside(1)
            ))
        ));
    });
}

#[test]
fn a_node_is_the_first_compatible_entry_the_kernel_knows() {
    use intc::GicVersion::V2;
    let rows: &[(&[u8], Option<Compatible>)] = &[
        (b"virtio,mmio\0", None),
        (b"arm,pl011\0arm,primecell\0", Some(Compatible::Pl011)),
        // Known entries after unknown ones, of both vendors.
        (b"vendor,uart\0arm,pl011\0", Some(Compatible::Pl011)),
        (
            b"brcm,bcm2835-pm\0brcm,bcm2835-pm-wdt\0",
            Some(Compatible::PowerManagement),
        ),
        // The first known wins.
        (b"arm,gic-400\0arm,cortex-a15-gic\0", Some(Compatible::Gic(V2))),
        (b"arm,armv8-timer\0arm,pl011\0", Some(Compatible::Timer)),
        // No last NUL, empty entries, a prefix of a known entry, nothing.
        (b"x\0arm,pl011", Some(Compatible::Pl011)),
        (b"\0\0arm,pl011\0", Some(Compatible::Pl011)),
        (b"arm,pl01\0arm,pl0111\0", None),
        (b"", None),
    ];
    for &(value, known) in rows {
        assert_eq!(
            Compatible::first_in(value),
            known,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn a_path_matches_component_by_component_unit_addresses_optional() {
    let path: [&[u8]; 3] = [b"", b"soc@0", b"serial@7e201000"];
    for wanted in ["/soc/serial@7e201000", "/soc@0/serial", "/soc/serial", "//soc/serial/"] {
        assert!(path_matches(&path, wanted), "{wanted}");
        let target = Target::of(wanted);
        assert_eq!(
            (target.depth, target.name.starts_with(b"serial")),
            (3, true),
            "{wanted}"
        );
    }
    // Another node, a parent, a child, another parent, a unit address that
    // differs, a name that only starts the same.
    for wanted in [
        "/soc/serial@7e215040",
        "/soc",
        "/soc/serial/port",
        "/bus/serial",
        "/soc/serial@7e2",
        "/soc/seri",
        "/",
        "",
    ] {
        assert!(!path_matches(&path, wanted), "{wanted}");
    }
    // The root is no node `stdout-path` can name.
    assert!(!path_matches(&[b""], "/"));
}
