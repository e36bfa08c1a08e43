//! Host tests for the mapper and walker. Table pages live in host memory under
//! made-up physical addresses; expected shapes come from independent arithmetic.

use super::host::HostTables;
use super::*;
use std::collections::BTreeSet;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;
const LINEAR: u64 = crate::layout::PAGE_OFFSET;

/// Maps each RAM range at its linear address (`PAGE_OFFSET + pa`, i.e. a
/// PHYS_OFFSET of 0) and returns the summed counts.
fn map_linear(ram: &[(u64, u64)]) -> (HostTables, PhysAddr, MapCounts) {
    map_ranges(Granule::K4, ram, Granularity::LargestBlocks)
}

/// The same in any granule and granularity.
fn map_ranges(granule: Granule, ram: &[(u64, u64)], granularity: Granularity) -> (HostTables, PhysAddr, MapCounts) {
    let (mut tables, root) = HostTables::with_granule(granule, 4096);
    let mut total = MapCounts::default();
    for &(start, size) in ram {
        let c = map(
            &mut tables,
            root,
            LINEAR + start,
            PhysAddr::new(start),
            size,
            Attrs::DATA,
            granularity,
        )
        .expect("map");
        total += c;
    }
    (tables, root, total)
}

fn counts(g: u64, m: u64, k: u64, tables: u64) -> MapCounts {
    MapCounts {
        blocks_l1: g,
        blocks_l2: m,
        pages: k,
        tables,
        contiguous: 0,
    }
}

/// Maps `[va, va + len)` to `pa` as data with the largest blocks, which must work.
fn map_data(tables: &mut HostTables, root: PhysAddr, va: u64, pa: PhysAddr, len: u64) -> MapCounts {
    map(tables, root, va, pa, len, Attrs::DATA, Granularity::LargestBlocks).unwrap()
}

#[test]
fn block_choice_for_ram_layouts() {
    // (RAM ranges, expected 1G/2M/4K descriptors and table pages below the root)
    let rows: &[(&[(u64, u64)], MapCounts)] = &[
        (&[(GIB, GIB)], counts(1, 0, 0, 1)),
        (&[(GIB, 512 * MIB)], counts(0, 256, 0, 2)),
        (&[(GIB, 1536 * MIB)], counts(1, 256, 0, 2)),
        (&[(GIB, 3000 * MIB)], counts(2, 476, 0, 2)),
        (&[(GIB, 4 * GIB)], counts(4, 0, 0, 1)),
        (&[(GIB, 6 * GIB)], counts(6, 0, 0, 1)),
        // Unaligned start: 4 KiB pages up to 2 MiB, 2 MiB blocks up to 1 GiB.
        (&[(GIB + 4 * KIB, GIB - 4 * KIB)], counts(0, 511, 511, 3)),
        // Unaligned both ends, crossing a 1 GiB line: two level-2 and two level-3 tables.
        (&[(GIB + 4 * KIB, GIB)], counts(0, 511, 512, 5)),
        // Two nodes, one below 4 GiB and one above.
        (&[(GIB, 512 * MIB), (4 * GIB, GIB)], counts(1, 256, 0, 2)),
        // Crossing a 512 GiB (level-0) line needs a level-1 table on each side.
        (&[(511 * GIB, 2 * GIB)], counts(2, 0, 0, 2)),
    ];
    for (ram, expected) in rows {
        let (tables, root, got) = map_linear(ram);
        assert_eq!(got, *expected, "RAM {ram:x?}");
        // The tables hold exactly what the mapper said it wrote.
        let mut seen = MapCounts::default();
        for &(start, size) in *ram {
            let c = count(&tables, root, LINEAR + start, size);
            seen += c;
        }
        assert_eq!(
            (seen.blocks_l1, seen.blocks_l2, seen.pages),
            (got.blocks_l1, got.blocks_l2, got.pages)
        );
    }
}

/// Independent count of the fewest descriptors and table pages that can map
/// `ram` (disjoint, non-adjacent ranges) when VA and PA agree modulo 1 GiB: a
/// span needs a next-level table exactly when a range touches it without
/// covering it whole.
fn minimum_shape(ram: &[(u64, u64)]) -> MapCounts {
    let covers = |span: u64, base: u64| ram.iter().any(|&(s, n)| s <= base && base + span <= s + n);
    let mut l1_tables = BTreeSet::new();
    let mut l2_tables = BTreeSet::new();
    let mut l3_tables = BTreeSet::new();
    let mut c = MapCounts::default();
    for &(start, size) in ram {
        let end = start + size;
        let mut pa = start;
        while pa < end {
            l1_tables.insert((LINEAR + pa) >> 39);
            let g = pa & !(GIB - 1);
            let m = pa & !(2 * MIB - 1);
            if covers(GIB, g) {
                c.blocks_l1 += 1;
                pa = g + GIB;
            } else if covers(2 * MIB, m) {
                l2_tables.insert(g);
                c.blocks_l2 += 1;
                pa = m + 2 * MIB;
            } else {
                l2_tables.insert(g);
                l3_tables.insert(m);
                c.pages += 1;
                pa += 4 * KIB;
            }
        }
    }
    c.tables = (l1_tables.len() + l2_tables.len() + l3_tables.len()) as u64;
    c
}

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 16
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_layouts_use_the_minimum_shape() {
    let mut rng = Lcg(0x5eed);
    for _ in 0..300 {
        let mut ram = Vec::new();
        let mut cursor = GIB + rng.below(4096) * 4 * KIB * (rng.below(2) * 511 + 1);
        for _ in 0..1 + rng.below(4) {
            // Sizes from 4 KiB to ~3 GiB, in units that hit every block size.
            let unit = [4 * KIB, 2 * MIB, GIB][rng.below(3) as usize];
            let size = unit * (1 + rng.below(3)) + 4 * KIB * rng.below(3);
            ram.push((cursor, size));
            cursor += size + 4 * KIB * (1 + rng.below(1024));
        }
        let (tables, root, got) = map_linear(&ram);
        assert_eq!(got, minimum_shape(&ram), "RAM {ram:x?}");
        // Spot-check translations: first and last page of each range, and the gap after.
        for &(start, size) in &ram {
            for pa in [start, start + size - 4 * KIB] {
                let t = walk(&tables, root, LINEAR + pa + 8).translation.expect("mapped");
                assert_eq!(t.pa, PhysAddr::new(pa + 8));
                assert_eq!(t.prot.as_str(), "rw-");
            }
            assert_eq!(
                walk(&tables, root, LINEAR + start + size).translation,
                None,
                "gap after {start:#x}"
            );
        }
    }
}

#[test]
fn walk_reports_each_level_and_the_leaf() {
    let (tables, root, _) = map_linear(&[(GIB, 1536 * MIB)]);
    let w = walk(&tables, root, LINEAR + GIB + 0x1234);
    let t = w.translation.unwrap();
    assert_eq!((t.level, t.size, t.pa), (1, GIB, PhysAddr::new(GIB + 0x1234)));
    assert_eq!(w.steps().count(), 2);
    let w = walk(&tables, root, LINEAR + 2 * GIB + 3 * MIB + 5);
    let t = w.translation.unwrap();
    assert_eq!(
        (t.level, t.size, t.pa),
        (2, 2 * MIB, PhysAddr::new(2 * GIB + 3 * MIB + 5))
    );
    let levels: Vec<usize> = w.steps().map(|s| s.level).collect();
    assert_eq!(levels, [0, 1, 2]);
    assert_eq!(walk(&tables, root, LINEAR).translation, None);
}

#[test]
fn permissions_encode_and_decode() {
    let (mut tables, root) = HostTables::new(8);
    let va = crate::layout::KIMAGE_VADDR;
    for (i, (attrs, want)) in [
        (Attrs::TEXT, "r-x"),
        (Attrs::RODATA, "r--"),
        (Attrs::DATA, "rw-"),
        (Attrs::DEVICE, "rw-"),
    ]
    .into_iter()
    .enumerate()
    {
        let page_va = va + i as u64 * 4096;
        map(
            &mut tables,
            root,
            page_va,
            PhysAddr::new(0x4000_0000),
            4096,
            attrs,
            Granularity::PagesOnly,
        )
        .unwrap();
        let t = walk(&tables, root, page_va).translation.unwrap();
        assert_eq!(t.prot.as_str(), want);
        assert_eq!(t.prot.device, attrs.mem == MemType::Device);
        assert_eq!(t.level, 3);
    }
}

#[test]
fn known_descriptor_encodings() {
    // Independent encodings worked out from the ARM ARM bit positions.
    // 1 GiB RW block at 0x4000_0000, Normal (AttrIndx 1), inner shareable, AF, PXN, UXN.
    assert_eq!(
        leaf_descriptor(PhysAddr::new(0x4000_0000), 1, Attrs::DATA),
        0x0060_0000_4000_0705
    );
    // Text page: AP[2] set, PXN clear, UXN set, bit 1 set for a level-3 page.
    assert_eq!(
        leaf_descriptor(PhysAddr::new(0x4020_0000), 3, Attrs::TEXT),
        0x0040_0000_4020_0787
    );
    // Device page: AttrIndx 0, PXN and UXN.
    assert_eq!(
        leaf_descriptor(PhysAddr::new(0x0900_0000), 3, Attrs::DEVICE),
        0x0060_0000_0900_0703
    );
    assert_eq!(table_descriptor(PhysAddr::new(0x4123_4000)), 0x4123_4003);
}

#[test]
fn refuses_rather_than_overwrites() {
    let (mut tables, root) = HostTables::new(8);
    let va = LINEAR + GIB;
    map_data(&mut tables, root, va, PhysAddr::new(GIB), 2 * MIB);
    let before = walk(&tables, root, va);
    // (va, pa, len, attrs, refusal): over a live entry, misaligned, empty,
    // past what a descriptor holds (which would map 0 instead).
    let (far, beyond) = (va + 2 * MIB, MapError::BeyondOutputAddress);
    let rows = [
        (va, 0, 4096, Attrs::TEXT, MapError::AlreadyMapped { va }),
        (va + 1, 0, 4096, Attrs::DATA, MapError::Misaligned),
        (va, 0, 0, Attrs::DATA, MapError::Misaligned),
        (far, 1 << 48, 4096, Attrs::DEVICE, beyond),
        (far, (1 << 48) - 4096, 8192, Attrs::DATA, beyond),
        (far, 0u64.wrapping_sub(4096), 4096, Attrs::DATA, beyond),
    ];
    for (at, pa, len, attrs, refusal) in rows {
        let r = map(
            &mut tables,
            root,
            at,
            PhysAddr::new(pa),
            len,
            attrs,
            Granularity::LargestBlocks,
        );
        assert_eq!(r, Err(refusal), "{at:#x} +{len:#x}");
        assert_eq!(walk(&tables, root, va), before, "the live entry is unchanged");
    }
}

#[test]
fn out_of_tables_is_an_error() {
    let (mut tables, root) = HostTables::new(2);
    let r = map(
        &mut tables,
        root,
        LINEAR + GIB + 4096,
        PhysAddr::new(GIB + 4096),
        4096,
        Attrs::DATA,
        Granularity::LargestBlocks,
    );
    assert_eq!(r, Err(MapError::OutOfTables));
}

#[test]
fn pages_only_never_uses_blocks() {
    let (mut tables, root) = HostTables::new(8);
    let c = map(
        &mut tables,
        root,
        LINEAR + GIB,
        PhysAddr::new(GIB),
        4 * MIB,
        Attrs::DATA,
        Granularity::PagesOnly,
    )
    .unwrap();
    assert_eq!(c, counts(0, 0, 1024, 4));
}

#[test]
fn unmap_clears_exactly_the_range() {
    let (mut tables, root) = HostTables::new(8);
    let va = crate::layout::KIMAGE_VADDR;
    map(
        &mut tables,
        root,
        va,
        PhysAddr::new(GIB),
        16 * 4096,
        Attrs::DATA,
        Granularity::PagesOnly,
    )
    .unwrap();
    assert_eq!(unmap(&mut tables, root, va + 4096, 8 * 4096), Ok(8));
    assert!(walk(&tables, root, va).translation.is_some());
    for i in 1..9 {
        assert_eq!(walk(&tables, root, va + i * 4096).translation, None, "page {i}");
    }
    assert!(walk(&tables, root, va + 9 * 4096).translation.is_some());
    // A block is never split: half of a 2 MiB block is refused.
    let lin = LINEAR + GIB;
    map_data(&mut tables, root, lin, PhysAddr::new(GIB), 2 * MIB);
    assert_eq!(unmap(&mut tables, root, lin, MIB), Err(MapError::Misaligned));
    assert_eq!(unmap(&mut tables, root, lin, 2 * MIB), Ok(1));
    assert_eq!(walk(&tables, root, lin).translation, None);
}

#[test]
fn split_keeps_the_translation_and_protects_only_the_inner_range() {
    let (mut tables, root) = HostTables::new(16);
    // A 1 GiB block, split so that 3 pages at 1 GiB + 2 MiB + 4 KiB become read-only.
    let va = LINEAR + GIB;
    map_data(&mut tables, root, va, PhysAddr::new(GIB), GIB);
    let inner = va + 2 * MIB + 4096;
    let (table, c) = build_split(
        &mut tables,
        1,
        va,
        PhysAddr::new(GIB),
        inner,
        3 * 4096,
        Attrs::RODATA,
        Attrs::DATA,
    )
    .unwrap();
    // One level-2 table, one level-3 table; 511 2 MiB blocks, 512 pages.
    // Contiguous runs: 31 of the 32 runs of 16 blocks (the first holds the
    // split block), and of the pages the 31 runs of 16 from page 16 on (the
    // first 16 hold the read-only ones).
    assert_eq!(
        c,
        MapCounts {
            contiguous: 31 + 31,
            ..counts(0, 511, 512, 2)
        }
    );
    let step = walk(&tables, root, va).steps().last().copied().unwrap();
    set_entry(&mut tables, step.table, step.index, table_descriptor(table));
    for (probe, prot, size) in [
        (va, "rw-", 2 * MIB),
        (inner - 4096, "rw-", 4096),
        (inner, "r--", 4096),
        (inner + 2 * 4096, "r--", 4096),
        (inner + 3 * 4096, "rw-", 4096),
        (va + GIB - 1, "rw-", 2 * MIB),
    ] {
        let t = walk(&tables, root, probe).translation.unwrap();
        assert_eq!(t.pa, PhysAddr::new(probe - LINEAR), "{probe:#x}");
        assert_eq!((t.prot.as_str(), t.size), (prot, size), "{probe:#x}");
    }
    // Outside the block: before it, and a length that would wrap past it.
    for (inner_va, inner_len) in [(va - 4096, 4096), (va + 4096, 0u64.wrapping_sub(4096))] {
        assert_eq!(
            build_split(
                &mut tables,
                1,
                va,
                PhysAddr::new(GIB),
                inner_va,
                inner_len,
                Attrs::RODATA,
                Attrs::DATA
            ),
            Err(MapError::Misaligned),
            "{inner_va:#x} +{inner_len:#x}"
        );
    }
}

/// Maps `size` bytes of RAM from `start` at `PAGE_OFFSET + start` in `granule`.
fn map_in(granule: Granule, start: u64, size: u64, granularity: Granularity) -> (HostTables, PhysAddr, MapCounts) {
    map_ranges(granule, &[(start, size)], granularity)
}

#[test]
fn every_granule_maps_with_its_own_largest_blocks() {
    // (granule, RAM from 1 GiB, level-1 blocks, level-2 blocks, pages, tables below the root)
    let rows = [
        // 4 KiB: a 1 GiB block needs only the level-1 table.
        (Granule::K4, GIB, 1, 0, 0, 1),
        // 16 KiB: 32 blocks of 32 MiB, under a level-1 and a level-2 table.
        (Granule::K16, GIB, 0, 32, 0, 2),
        // 64 KiB: the walk starts at level 1; two 512 MiB blocks in one level-2 table.
        (Granule::K64, GIB, 0, 2, 0, 1),
        (Granule::K64, GIB + 512 * MIB, 0, 3, 0, 1),
        // 64 KiB at a 64 KiB-aligned edge: pages up to the next 512 MiB.
        (Granule::K64, 512 * MIB - 64 * KIB, 0, 0, 8191, 2),
    ];
    for (g, size, l1, l2, pages, tables) in rows {
        let start = if pages > 0 { GIB + 64 * KIB } else { GIB };
        let (_, _, c) = map_in(g, start, size, Granularity::LargestBlocks);
        assert_eq!(c, counts(l1, l2, pages, tables), "{g:?} {size:#x}");
    }
}

#[test]
fn walks_end_at_the_granules_block_and_page_sizes() {
    for (g, block, levels) in [
        (Granule::K4, GIB, 2),
        (Granule::K16, 32 * MIB, 3),
        (Granule::K64, 512 * MIB, 2),
    ] {
        let (tables, root, _) = map_in(g, GIB, GIB, Granularity::LargestBlocks);
        // In the last block of the GiB.
        let offset = GIB - block + 0x1234;
        let va = LINEAR + GIB + offset;
        let w = walk(&tables, root, va);
        let t = w.translation.expect("mapped");
        assert_eq!((t.pa.raw(), t.size), (GIB + offset, block), "{g:?}");
        assert_eq!(w.steps().count(), levels, "{g:?}: levels read");
        assert_eq!(w.steps().next().unwrap().level, g.first_level(), "{g:?}");

        let (tables, root, c) = map_in(g, GIB, GIB, Granularity::PagesOnly);
        assert_eq!(c.pages, GIB / g.page_size(), "{g:?}");
        let t = walk(&tables, root, va).translation.expect("mapped");
        assert_eq!((t.level, t.size), (LAST_LEVEL, g.page_size()), "{g:?}");
        assert_eq!(
            count(&tables, root, LINEAR + GIB, GIB),
            c,
            "{g:?}: count agrees with map"
        );
    }
}

#[test]
fn other_granules_refuse_what_is_only_4k_aligned_and_unmap_whole_blocks() {
    let (mut tables, root) = HostTables::with_granule(Granule::K64, 16);
    let four_k = map(
        &mut tables,
        root,
        LINEAR,
        PhysAddr::new(GIB + 4096),
        64 * KIB,
        Attrs::DATA,
        Granularity::LargestBlocks,
    );
    assert_eq!(four_k, Err(MapError::Misaligned));
    let (mut tables, root, _) = map_in(Granule::K16, GIB, GIB, Granularity::LargestBlocks);
    assert_eq!(unmap(&mut tables, root, LINEAR + GIB, 32 * MIB), Ok(1));
    assert_eq!(
        unmap(&mut tables, root, LINEAR + GIB + 32 * MIB, 16 * KIB),
        Err(MapError::Misaligned),
        "half a block"
    );
    assert!(walk(&tables, root, LINEAR + GIB).translation.is_none());
}

#[test]
fn the_contiguous_bit_marks_every_aligned_run_and_nothing_else() {
    // 4 KiB: RAM from 1 GiB + 2 MiB - 64 KiB to 1 GiB + 66 MiB: 16 pages
    // (one run), then 2 MiB blocks (one run of 16 from 1 GiB + 32 MiB; the
    // 15 before it are not aligned to a run), then 16 pages (one run).
    let start = GIB + 2 * MIB - 64 * KIB;
    let size = 64 * KIB + 64 * MIB + 64 * KIB;
    let (tables, root, c) = map_in(Granule::K4, start, size, Granularity::Contiguous);
    assert_eq!((c.blocks_l2, c.pages, c.contiguous), (32, 32, 3), "{c:?}");
    assert_eq!(
        count(&tables, root, LINEAR + start, size),
        c,
        "count finds the same runs"
    );
    let bit = |va: u64| walk(&tables, root, va).steps().last().unwrap().raw & CONTIGUOUS != 0;
    assert!(bit(LINEAR + start) && bit(LINEAR + GIB + 32 * MIB) && !bit(LINEAR + GIB + 2 * MIB));
    // The same without asking: no bit anywhere.
    let (_, _, plain) = map_in(Granule::K4, start, size, Granularity::LargestBlocks);
    assert_eq!(plain, MapCounts { contiguous: 0, ..c });
    // 64 KiB: 32 × 512 MiB = 16 GiB runs; 8 GiB from 16 GiB has none, pages
    // at the start make 32-page runs.
    let (_, _, c) = map_in(
        Granule::K64,
        16 * GIB - 2 * MIB,
        2 * MIB + 8 * GIB,
        Granularity::Contiguous,
    );
    assert_eq!((c.blocks_l2, c.pages, c.contiguous), (16, 32, 1), "{c:?}");
}

#[test]
fn a_contiguous_run_is_unmapped_whole_or_not_at_all() {
    // 16 pages from 1 GiB + 2 MiB - 64 KiB: one run.
    let start = GIB + 2 * MIB - 64 * KIB;
    let (mut tables, root, c) = map_in(Granule::K4, start, 64 * KIB, Granularity::Contiguous);
    assert_eq!(c.contiguous, 1);
    let va = LINEAR + start;
    for (at, len) in [(va, 4096), (va + 15 * 4096, 4096), (va - 4096, 8 * 4096)] {
        assert_eq!(
            unmap(&mut tables, root, at, len),
            Err(MapError::Misaligned),
            "{at:#x} +{len:#x}"
        );
    }
    assert!(walk(&tables, root, va).translation.is_some(), "nothing cleared");
    assert_eq!(unmap(&mut tables, root, va - 4096, 18 * 4096), Ok(16));
    assert_eq!(walk(&tables, root, va + 15 * 4096).translation, None);
}

#[test]
fn a_run_is_written_whole_or_not_at_all() {
    let (mut tables, root) = HostTables::new(16);
    // One page in the middle of a future run.
    map(
        &mut tables,
        root,
        LINEAR + 5 * 4096,
        PhysAddr::new(GIB + 5 * 4096),
        4096,
        Attrs::DATA,
        Granularity::PagesOnly,
    )
    .unwrap();
    let e = map(
        &mut tables,
        root,
        LINEAR,
        PhysAddr::new(GIB),
        64 * KIB,
        Attrs::DATA,
        Granularity::Contiguous,
    );
    assert_eq!(e, Err(MapError::AlreadyMapped { va: LINEAR + 5 * 4096 }));
    assert!(
        walk(&tables, root, LINEAR).translation.is_none(),
        "nothing of the run was written"
    );
}

/// One case of [`unmap_free`]: what is mapped, what is unmapped, from which
/// level tables may go, and what must happen.
struct FreeCase {
    what: &'static str,
    granule: Granule,
    /// (offset from the base, length, pages only or the largest blocks).
    mapped: &'static [(u64, u64, Granularity)],
    /// Ranges a plain `unmap` clears first, leaving their tables empty.
    plain_first: &'static [(u64, u64)],
    unmap: (u64, u64),
    first_freeable: usize,
    want: Result<Unmapped, MapError>,
    /// Levels of the tables handed to `free_table`, in order.
    freed_levels: &'static [usize],
    /// Table pages still in use afterwards, the root among them.
    in_use: usize,
}

/// Aligned to every level of every granule: the module area's start.
const FREE_BASE: u64 = crate::layout::MODULES_VADDR;

const fn freed(leaves: u64, tables: u64) -> Result<Unmapped, MapError> {
    Ok(Unmapped { leaves, tables })
}

const PAGES: Granularity = Granularity::PagesOnly;
const BLOCKS: Granularity = Granularity::LargestBlocks;

#[test]
fn unmap_free_frees_exactly_the_tables_left_empty_at_the_levels_allowed() {
    let k4 = Granule::K4;
    #[rustfmt::skip]
    let rows = [
        FreeCase { what: "the last page of a region: its level-3 and level-2 tables go",
            granule: k4, mapped: &[(0, 4 * KIB, PAGES)], plain_first: &[], unmap: (0, 4 * KIB),
            first_freeable: 2, want: freed(1, 2), freed_levels: &[3, 2], in_use: 2 },
        FreeCase { what: "a neighbouring page keeps its table",
            granule: k4, mapped: &[(0, 8 * KIB, PAGES)], plain_first: &[], unmap: (0, 4 * KIB),
            first_freeable: 2, want: freed(1, 0), freed_levels: &[], in_use: 4 },
        FreeCase { what: "a page under another level-3 table keeps the level-2 table",
            granule: k4, mapped: &[(0, 4 * KIB, PAGES), (2 * MIB, 4 * KIB, PAGES)], plain_first: &[],
            unmap: (0, 4 * KIB), first_freeable: 2, want: freed(1, 1), freed_levels: &[3], in_use: 4 },
        FreeCase { what: "two whole level-3 tables, then their level-2 table",
            granule: k4, mapped: &[(0, 4 * MIB, PAGES)], plain_first: &[], unmap: (0, 4 * MIB),
            first_freeable: 2, want: freed(1024, 3), freed_levels: &[3, 3, 2], in_use: 2 },
        FreeCase { what: "a 2 MiB block keeps the level-2 table it is in",
            granule: k4, mapped: &[(0, 2 * MIB, BLOCKS), (2 * MIB, 4 * KIB, PAGES)], plain_first: &[],
            unmap: (2 * MIB, 4 * KIB), first_freeable: 2, want: freed(1, 1), freed_levels: &[3], in_use: 3 },
        FreeCase { what: "across a 1 GiB line: two level-3 and two level-2 tables",
            granule: k4, mapped: &[(GIB - 4 * KIB, 8 * KIB, PAGES)], plain_first: &[],
            unmap: (GIB - 4 * KIB, 8 * KIB), first_freeable: 2, want: freed(2, 4),
            freed_levels: &[3, 2, 3, 2], in_use: 2 },
        FreeCase { what: "level 3 only: the level-2 table stays",
            granule: k4, mapped: &[(0, 4 * KIB, PAGES)], plain_first: &[], unmap: (0, 4 * KIB),
            first_freeable: 3, want: freed(1, 1), freed_levels: &[3], in_use: 3 },
        FreeCase { what: "no level allowed: a plain unmap",
            granule: k4, mapped: &[(0, 4 * KIB, PAGES)], plain_first: &[], unmap: (0, 4 * KIB),
            first_freeable: LAST_LEVEL + 1, want: freed(1, 0), freed_levels: &[], in_use: 4 },
        FreeCase { what: "every level allowed: all but the root go",
            granule: k4, mapped: &[(0, 4 * KIB, PAGES)], plain_first: &[], unmap: (0, 4 * KIB),
            first_freeable: 0, want: freed(1, 3), freed_levels: &[3, 2, 1], in_use: 1 },
        FreeCase { what: "tables an earlier plain unmap left empty go too",
            granule: k4, mapped: &[(0, 4 * KIB, PAGES)], plain_first: &[(0, 4 * KIB)], unmap: (0, 4 * KIB),
            first_freeable: 2, want: freed(0, 2), freed_levels: &[3, 2], in_use: 2 },
        FreeCase { what: "nothing mapped, no tables: nothing happens",
            granule: k4, mapped: &[], plain_first: &[], unmap: (0, 2 * MIB),
            first_freeable: 2, want: freed(0, 0), freed_levels: &[], in_use: 1 },
        FreeCase { what: "half a block is refused; the table emptied before it is freed already",
            granule: k4, mapped: &[(0, 4 * KIB, PAGES), (2 * MIB, 2 * MIB, BLOCKS)], plain_first: &[],
            unmap: (0, 3 * MIB), first_freeable: 2, want: Err(MapError::Misaligned), freed_levels: &[3],
            in_use: 3 },
        FreeCase { what: "16 KiB: a page's level-3 (32 MiB) and level-2 (64 GiB) tables",
            granule: Granule::K16, mapped: &[(0, 16 * KIB, PAGES)], plain_first: &[], unmap: (0, 16 * KIB),
            first_freeable: 2, want: freed(1, 2), freed_levels: &[3, 2], in_use: 2 },
        FreeCase { what: "64 KiB: the walk starts at level 1, so only the root stays",
            granule: Granule::K64, mapped: &[(0, 64 * KIB, PAGES)], plain_first: &[], unmap: (0, 64 * KIB),
            first_freeable: 2, want: freed(1, 2), freed_levels: &[3, 2], in_use: 1 },
        FreeCase { what: "64 KiB: level 1 is the root there, and never freed",
            granule: Granule::K64, mapped: &[(0, 64 * KIB, PAGES)], plain_first: &[], unmap: (0, 64 * KIB),
            first_freeable: 0, want: freed(1, 2), freed_levels: &[3, 2], in_use: 1 },
    ];
    for case in rows {
        let what = case.what;
        let (mut tables, root) = HostTables::with_granule(case.granule, 64);
        for &(offset, len, granularity) in case.mapped {
            let pa = PhysAddr::new(GIB + offset);
            map(&mut tables, root, FREE_BASE + offset, pa, len, Attrs::DATA, granularity).expect(what);
        }
        for &(offset, len) in case.plain_first {
            unmap(&mut tables, root, FREE_BASE + offset, len).expect(what);
        }
        let (offset, len) = case.unmap;
        let got = unmap_free(&mut tables, root, FREE_BASE + offset, len, case.first_freeable);
        assert_eq!(got, case.want, "{what}");
        let levels: Vec<usize> = tables.freed.iter().map(|f| f.level).collect();
        assert_eq!(levels, case.freed_levels, "{what}");
        assert_eq!(tables.in_use(), case.in_use, "{what}");
        // Each freed table's span is where it sat: its first VA is aligned
        // to what its parent entry covered, inside the range unmapped.
        for f in &tables.freed {
            let span = case.granule.level_size(f.level - 1);
            assert!(f.va.is_multiple_of(span), "{what}: {f:x?}");
            assert!(
                f.va < FREE_BASE + offset + len && FREE_BASE + offset < f.va + span,
                "{what}: {f:x?}"
            );
        }
        // No table is lost or dangling: every page still in use is reached
        // from the root, and no walk reaches a freed (poisoned) page.
        let reached = count(&tables, root, FREE_BASE, 8 * GIB);
        assert_eq!(reached.tables as usize, case.in_use - 1, "{what}");
        // What was mapped outside the range still translates, and the
        // range does not (a refused unmap left the block in place).
        let page = case.granule.page_size();
        for &(m_offset, m_len, _) in case.mapped {
            for at in (m_offset..m_offset + m_len).step_by(page as usize) {
                let t = walk(&tables, root, FREE_BASE + at).translation;
                let inside = at >= offset && at < offset + len;
                if !inside {
                    assert_eq!(t.map(|t| t.pa), Some(PhysAddr::new(GIB + at)), "{what}: {at:#x}");
                } else if got.is_ok() {
                    assert_eq!(t, None, "{what}: {at:#x}");
                }
            }
        }
    }
}

#[test]
fn freed_tables_are_reused_and_loads_and_unloads_keep_the_count() {
    // A module's life, a hundred times, at addresses that need a new
    // level-2 table: afterwards only the root and the level-1 table (kept:
    // level 2 is the first freed) are in use, every time.
    let (mut tables, root) = HostTables::new(16);
    for i in 0..100u64 {
        let va = FREE_BASE + GIB * (i % 3) + 4 * KIB * i;
        map(
            &mut tables,
            root,
            va,
            PhysAddr::new(GIB),
            3 * 4 * KIB,
            Attrs::TEXT,
            PAGES,
        )
        .unwrap();
        assert_eq!(walk(&tables, root, va).translation.unwrap().pa, PhysAddr::new(GIB));
        assert_eq!(unmap_free(&mut tables, root, va, 3 * 4 * KIB, 2), freed(3, 2));
        assert_eq!(tables.in_use(), 2, "load {i}");
    }
    assert_eq!(tables.freed.len(), 200);
}

#[test]
fn pages_are_written_a_table_at_a_time_each_table_whole_or_not_at_all() {
    // 3 MiB of pages from 1 MiB into a 2 MiB region: two last-level tables,
    // the second holding a live page 1 MiB + 8 KiB into the range's second
    // half. The first table is written, the second not at all.
    let (mut tables, root) = HostTables::new(16);
    let (va, pa) = (LINEAR + GIB + MIB, GIB + MIB);
    let live = LINEAR + GIB + 2 * MIB + 8 * KIB;
    map_data(&mut tables, root, live, PhysAddr::new(0), 4096);
    let e = map(
        &mut tables,
        root,
        va,
        PhysAddr::new(pa),
        3 * MIB,
        Attrs::DATA,
        Granularity::PagesOnly,
    );
    assert_eq!(e, Err(MapError::AlreadyMapped { va: live }));
    for (at, mapped) in [
        (va, true),
        (va + MIB - 4096, true),
        (va + MIB, false),
        (live - 4096, false),
    ] {
        let t = walk(&tables, root, at).translation;
        assert_eq!(t.is_some(), mapped, "{at:#x}");
        if let Some(t) = t {
            assert_eq!(t.pa, PhysAddr::new(pa + (at - va)), "each page keeps its own address");
        }
    }
    assert_eq!(
        walk(&tables, root, live).translation.map(|t| t.pa),
        Some(PhysAddr::new(0))
    );
}

/// `entry_runs` reports, table by table, exactly the entries `map` wrote:
/// every valid entry the range reaches lies in a run, and every entry of a
/// run is valid (an image at any page-aligned PA, straddling a 2 MiB
/// boundary, in pages below its segments' tables).
#[test]
fn entry_runs_are_the_entries_map_wrote() {
    let (mut tables, root) = HostTables::new(16);
    let (va, len) = (0x4_01ff_4000u64, 0x3_5000u64);
    map_data(&mut tables, root, va, PhysAddr::new(va), len);
    let mut runs = Vec::new();
    entry_runs(&tables, root, va, len, &mut |table, first, n| {
        runs.push((table, first, n))
    });
    let in_runs: usize = runs.iter().map(|&(_, _, n)| n).sum();
    for &(table, first, n) in &runs {
        for i in first..first + n {
            assert_ne!(
                entry(&tables, table, i) & 1,
                0,
                "{table:?}[{i}] is in a run but invalid"
            );
        }
    }
    // Root, level 1, two level-2 entries in one table, two level-3 tables.
    let pages = (len / 0x1000) as usize;
    assert_eq!(runs.len(), 5, "{runs:x?}");
    assert_eq!(in_runs, 1 + 1 + 2 + pages, "{runs:x?}");
}
