//! Text formats that scripts parse: `layout` rows, `walk` lines, the `kaslr`
//! report and the KTAP test report. Kept here, away from the hardware, so the
//! formats are unit-tested.

use core::fmt::{self, Write};

use pi::layout::{GRANULE, KIMAGE_VADDR, PAGE_OFFSET};
use pi::pgtable::{self, Entry, MapCounts, Walk};

use crate::console::line::Gathered;
use crate::kaslr::decide::{Kaslr, Placement};
use crate::kaslr::module_windows;
use crate::kaslr::window::entropy_tenths;
use crate::mm::linear;
use crate::mm::ptdump::Attributes;
use crate::mm::ranges::RangeList;

/// One row of `layout`.
#[derive(Clone, Copy, Debug)]
pub struct LayoutRow<'a> {
    /// Region name: `text`, `rodata`, `data`, `linear`, …
    pub name: &'a str,
    /// `[start, end)` virtual.
    pub va: (u64, u64),
    /// `[start, end)` physical, where the region maps 1:1 onto one range.
    pub pa: Option<(u64, u64)>,
    /// `r-x`, `r--`, `rw-`, or `---` when nothing is mapped.
    pub prot: &'a str,
    /// Descriptors found in the live tables for the range.
    pub map: MapCounts,
}

impl fmt::Display for LayoutRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<8} va={:#x}-{:#x}", self.name, self.va.0, self.va.1)?;
        if let Some((start, end)) = self.pa {
            write!(f, " pa={start:#x}-{end:#x}")?;
        }
        write!(f, " prot={} map={}", self.prot, Leaves(self.map, ","))
    }
}

/// The leaf descriptors of `MapCounts` by size, in the granule's sizes and
/// separated by the `&str`: `1G:1,2M:0,4K:0` with 4 KiB pages, `512M:2,64K:0`
/// with 64 KiB (levels that cannot hold a block are left out), then
/// `+cont:N` if N runs of them carry the contiguous bit.
pub struct Leaves(pub MapCounts, pub &'static str);

/// [`size_name`] of each level's entries in this kernel's granule, worked
/// out when the kernel is built: looked up at each print, the sizes were
/// a tree of compares, 9 of the 32 translated blocks `Leaves` ran at boot.
const LEVEL_NAMES: [&str; pgtable::LAST_LEVEL + 1] = {
    let mut names = ["?"; pgtable::LAST_LEVEL + 1];
    let mut level = GRANULE.first_block_level();
    while level <= pgtable::LAST_LEVEL {
        names[level] = size_name(GRANULE.level_size(level));
        level += 1;
    }
    names
};

impl Leaves {
    /// Writes the counts into `line` without `core::fmt`: boot prints them
    /// (its `[INFO ]` line), and no other line before the first prompt
    /// needs `core::fmt` (see `console::line`).
    pub fn write_to<F: FnMut(&[u8])>(&self, line: &mut Gathered<F>) {
        let Leaves(m, sep) = self;
        for (level, name) in LEVEL_NAMES.iter().enumerate().skip(GRANULE.first_block_level()) {
            if level != GRANULE.first_block_level() {
                line.text(sep);
            }
            line.text(name).text(":").dec(m.at_level(level));
        }
        if m.contiguous > 0 {
            line.text("+cont:").dec(m.contiguous);
        }
    }
}

impl fmt::Display for Leaves {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = Ok(());
        let mut line = Gathered::new(|text: &[u8]| {
            // Whole UTF-8 text, as `Gathered` hands it on.
            written = written.and_then(|()| f.write_str(core::str::from_utf8(text).unwrap_or("")));
        });
        self.write_to(&mut line);
        line.flush();
        written
    }
}

/// Writes a page-table walk: one line per level, then the result line
/// `=> pa=0x… level=N size=1G|2M|4K prot=…` (or `=> fault: …`).
pub fn write_walk(out: &mut dyn Write, va: u64, walk: &Walk) -> fmt::Result {
    for step in walk.steps() {
        write!(
            out,
            "L{} table={:#x} [{:3}] = {:#018x} ",
            step.level,
            step.table.raw(),
            step.index,
            step.raw
        )?;
        match Entry::decode(step.raw, step.level) {
            Entry::Invalid => writeln!(out, "invalid")?,
            Entry::Table(next) => writeln!(out, "table next={:#x}", next.raw())?,
            Entry::Leaf { pa, .. } => writeln!(
                out,
                "{} {} pa={:#x} {} {}",
                if step.level == pgtable::LAST_LEVEL {
                    "page"
                } else {
                    "block"
                },
                size_name(pgtable::level_size(step.level)),
                pa.raw(),
                Attributes(step.raw),
                LeafBits(step.raw)
            )?,
        }
    }
    match walk.translation {
        Some(t) => writeln!(
            out,
            "=> pa={:#x} level={} size={} prot={}",
            t.pa.raw(),
            t.level,
            size_name(t.size),
            t.prot.as_str()
        ),
        None => {
            let level = walk.steps().last().map_or(0, |s| s.level);
            writeln!(
                out,
                "=> fault: {va:#x} is not mapped (translation fault at level {level})"
            )
        }
    }
}

/// The attribute bits of a leaf descriptor that `ap=`, `x=` and `attr=` are
/// decoded from, by their Arm ARM names: `(AttrIndx=N SH=0bNN AF=N
/// AP=0bNN PXN=N UXN=N)`. AP is AP[2:1] (bits 7:6: 0b10 read-only, 0b01
/// also EL0), SH bits 9:8, AF bit 10, PXN bit 53 (no kernel execute), UXN
/// bit 54 (no EL0 execute), AttrIndx bits 4:2 (the MAIR slot).
pub struct LeafBits(pub u64);

impl fmt::Display for LeafBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.0;
        write!(
            f,
            "(AttrIndx={} SH={:#04b} AF={} AP={:#04b} PXN={} UXN={})",
            (raw >> 2) & 7,
            (raw >> 8) & 3,
            (raw >> 10) & 1,
            (raw >> 6) & 3,
            (raw >> 53) & 1,
            (raw >> 54) & 1
        )
    }
}

/// The permissions of several mappings in one `prot=` field: each distinct
/// one once, in the order given, joined by `,` (`r-x,r--,rw-`); `---` for
/// none. For a window that holds areas of different permissions, such as
/// the module window.
pub struct ProtList<'a>(pub &'a [&'a str]);

impl fmt::Display for ProtList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mapped = |(i, prot): &(usize, &&str)| **prot != "---" && !self.0[..*i].contains(prot);
        let mut any = false;
        for (_, prot) in self.0.iter().enumerate().filter(mapped) {
            if any {
                f.write_str(",")?;
            }
            f.write_str(prot)?;
            any = true;
        }
        if !any {
            f.write_str("---")?;
        }
        Ok(())
    }
}

/// Why `walk` does not walk an address: only the kernel half has live tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkRefusal {
    /// A lower-half address: TTBR0's, switched off after boot.
    LowerHalf(u64),
    /// Neither half: bits 63:48 are not all copies of bit 47.
    NonCanonical(u64),
}

impl WalkRefusal {
    /// The refusal for `va`, if any (48-bit virtual addresses).
    pub fn of(va: u64) -> Option<WalkRefusal> {
        match va >> 48 {
            0xffff => None,
            0 => Some(WalkRefusal::LowerHalf(va)),
            _ => Some(WalkRefusal::NonCanonical(va)),
        }
    }
}

impl fmt::Display for WalkRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WalkRefusal::LowerHalf(va) => write!(
                f,
                "{va:#x} is in the lower half (TTBR0), which is disabled after boot; try a kernel address, such as one `layout` lists (where the linear map starts moves with kaslr.linear=on)"
            ),
            WalkRefusal::NonCanonical(va) => write!(
                f,
                "{va:#x} is not canonical: with 48-bit virtual addresses, bits 63:48 must all be 0 (lower half, TTBR0) or all 1 (kernel half, TTBR1); any other address faults before a table is read"
            ),
        }
    }
}

/// A block or page size by name: `1G`, `512M`, `32M`, `2M`, `64K`, `16K`
/// or `4K` (the ones the granules use), else `?`.
pub const fn size_name(size: u64) -> &'static str {
    match size {
        0x4000_0000 => "1G",
        0x2000_0000 => "512M",
        0x200_0000 => "32M",
        0x20_0000 => "2M",
        0x1_0000 => "64K",
        0x4000 => "16K",
        0x1000 => "4K",
        _ => "?",
    }
}

/// What `kaslr` prints: `key=value` lines, one topic a line.
pub struct KaslrReport<'a> {
    /// The boot's decision.
    pub k: &'a Kaslr<'a>,
    /// The image's size in bytes.
    pub image_size: u64,
    /// Relocations the move applied.
    pub relocations: u64,
    /// Instructions they took, if the PMU counted them (`--icount`).
    pub instructions: Option<u64>,
    /// RAM, for what randomising the linear base would give.
    pub ram: &'a RangeList,
    /// `/chosen/kaslr-seed` as the DTB holds it now.
    pub dtb_seed_now: u64,
}

/// `N.N`: entropy in bits, to a tenth, of `choices` equally likely ones.
struct Bits(u64);

impl fmt::Display for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = entropy_tenths(self.0);
        write!(f, "{}.{}", t / 10, t % 10)
    }
}

impl fmt::Display for KaslrReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.k;
        let source = match k.placement {
            Placement::Random(s) => s.name(),
            Placement::NoKaslr(_) => "disabled (nokaslr)",
            Placement::BadWindow(_) => "disabled (window refused)",
            Placement::NoSeed => "disabled (no seed)",
        };
        write!(f, "source={source}")?;
        match k.seed {
            Some(seed) => write!(f, " seed={seed:#x}")?,
            None => write!(f, " seed=none")?,
        }
        writeln!(f, " offset={:#x} text={:#x}", k.offset, KIMAGE_VADDR + k.offset)?;
        let align = match k.window.align {
            0x1000 => "4K",
            0x10000 => "64K",
            _ => "2M",
        };
        writeln!(
            f,
            "window={:#x}-{:#x} align={align} slots={} entropy={} bits",
            k.window.start,
            k.window.end,
            k.slots,
            Bits(k.slots)
        )?;
        write!(f, "image={:#x} bytes relocations={}", self.image_size, self.relocations)?;
        match self.instructions {
            Some(n) => writeln!(f, " instructions={n}")?,
            None => writeln!(f)?,
        }
        let (direct, plt) = (k.modules.direct, k.modules.plt);
        writeln!(
            f,
            "modules direct={:#x}-{:#x} plt={:#x}-{:#x}",
            direct.start, direct.end, plt.start, plt.end
        )?;
        if k.source().is_some() {
            // Linux's random_bounding_box: one choice per page of slack.
            writeln!(
                f,
                "modules entropy direct={} bits plt={} bits",
                Bits(module_windows::bounding_box_choices(
                    module_windows::DIRECT_SIZE,
                    k.image
                )),
                Bits(module_windows::bounding_box_choices(module_windows::PLT_SIZE, direct))
            )?;
        }
        // Linux randomised the linear map's base too, until v6.16; here that
        // is the `kaslr.linear=on` experiment.
        let choices = linear::randomisation_choices(self.ram);
        if k.linear.random {
            let first = linear::fixed_phys_offset(self.ram).raw();
            let offset = linear::linear_va(first, k.linear.phys_offset) - PAGE_OFFSET;
            writeln!(
                f,
                "linear base=random offset={offset:#x} ({choices} 1G-aligned places, {} bits)",
                Bits(choices)
            )?;
        } else {
            writeln!(
                f,
                "linear base=fixed ({choices} 1G-aligned places would give {} bits with kaslr.linear=on)",
                Bits(choices)
            )?;
        }
        writeln!(f, "dtb /chosen/kaslr-seed now={:#x}", self.dtb_seed_now)
    }
}

/// Outcome of one in-kernel test.
pub type TestResult = Result<(), TestFailure>;

/// Why a test did not pass.
#[derive(Clone, Copy, Debug)]
pub struct TestFailure {
    /// What went wrong, or why the test does not apply.
    pub message: &'static str,
    /// A value to show with it (an address, a count).
    pub value: u64,
    /// The test does not apply to this machine (reported as `# SKIP`).
    pub skipped: bool,
}

/// Fails with `message` and `value` unless `cond` holds.
pub fn check(cond: bool, message: &'static str, value: u64) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(TestFailure {
            message,
            value,
            skipped: false,
        })
    }
}

/// The test does not apply here, for `reason`.
pub fn skip(reason: &'static str) -> TestResult {
    Err(TestFailure {
        message: reason,
        value: 0,
        skipped: true,
    })
}

/// Runs the tests whose names contain `filter` and prints KTAP, then the
/// closing line `N passed, N failed` (and `, N skipped` if any). Returns the
/// number failed.
pub fn run_ktap<T>(
    out: &mut dyn Write,
    tests: &[(&str, T)],
    filter: Option<&str>,
    run: impl Fn(&T) -> TestResult,
) -> Result<usize, fmt::Error> {
    let selected = || tests.iter().filter(|(name, _)| filter.is_none_or(|f| name.contains(f)));
    writeln!(out, "KTAP version 1")?;
    writeln!(out, "1..{}", selected().count())?;
    if let Some(filter) = filter
        && selected().count() == 0
    {
        writeln!(
            out,
            "# no test name contains '{filter}'; `test` alone runs all {}",
            tests.len()
        )?;
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (n, (name, test)) in selected().enumerate() {
        match run(test) {
            Ok(()) => {
                passed += 1;
                writeln!(out, "ok {} {name}", n + 1)?;
            }
            Err(e) if e.skipped => {
                skipped += 1;
                writeln!(out, "ok {} {name} # SKIP {}", n + 1, e.message)?;
            }
            Err(e) => {
                failed += 1;
                writeln!(out, "# {name}: {} ({:#x})", e.message, e.value)?;
                writeln!(out, "not ok {} {name}", n + 1)?;
            }
        }
    }
    if skipped > 0 {
        writeln!(out, "{passed} passed, {failed} failed, {skipped} skipped")?;
    } else {
        writeln!(out, "{passed} passed, {failed} failed")?;
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::bootargs;
    use crate::kaslr::decide::decide;
    use crate::kaslr::seed::SeedSource;
    use crate::mm::ranges::PhysRange;

    /// `kaslr` for 1 GiB of RAM at 1 GiB and an image of `size` bytes.
    fn kaslr_report(line: &str, seed: Option<(u64, SeedSource)>, size: u64) -> String {
        let mut ram = RangeList::new();
        ram.insert(PhysRange::new(0x4000_0000, 1 << 30).unwrap()).unwrap();
        let k = decide(&bootargs::parse(line, |_| {}), seed, size, &ram);
        KaslrReport {
            k: &k,
            image_size: size,
            relocations: 600,
            instructions: Some(27844),
            ram: &ram,
            dtb_seed_now: 0,
        }
        .to_string()
    }

    /// A real session (`--kaslr-seed 0x5 --icount`, as in the README, with
    /// an image of 0xad000 bytes), rebuilt from the same inputs on the host:
    /// every line but the measured counts follows from the seed and sizes.
    #[test]
    fn kaslr_report_matches_a_real_session() {
        let text = kaslr_report("kaslr.seed=0x5", Some((5, SeedSource::Bootarg)), 0xad000);
        let expected = "\
source=bootarg seed=0x5 offset=0x1fffdca00000 text=0xffffa0005ca00000
window=0xffffa0005c000000-0xffffe00014000000 align=2M slots=33553856 entropy=25.0 bits
image=0xad000 bytes relocations=600 instructions=27844
modules direct=0xffffa0005b61a000-0xffffa0006361a000 plt=0xffffa00029b7e000-0xffffa000a9b7e000
modules entropy direct=15.0 bits plt=18.9 bits
linear base=fixed (131072 1G-aligned places would give 17.0 bits with kaslr.linear=on)
dtb /chosen/kaslr-seed now=0x0
";
        assert_eq!(text, expected);
    }

    #[test]
    fn kaslr_report_says_why_it_is_off() {
        let off = kaslr_report("nokaslr", None, 0x88000);
        assert!(
            off.starts_with("source=disabled (nokaslr) seed=none offset=0x0 text=0xffff800080000000\n"),
            "{off}"
        );
        assert!(!off.contains("modules entropy"), "no module entropy without KASLR");
        let refused = kaslr_report("kaslr.align=3M", Some((5, SeedSource::Dtb)), 0x88000);
        assert!(refused.starts_with("source=disabled (window refused)"), "{refused}");
        assert!(kaslr_report("", None, 0x88000).starts_with("source=disabled (no seed)"));
        let linear = kaslr_report("kaslr.linear=on", Some((5, SeedSource::Dtb)), 0x88000);
        assert!(linear.contains("linear base=random offset=0x"), "{linear}");
    }

    #[test]
    fn a_walk_decodes_every_descriptor_and_ends_with_the_result() {
        use pi::addr::PhysAddr;
        use pi::pgtable::host::HostTables;
        use pi::pgtable::{Attrs, Granularity, map, walk};
        let (mut tables, root) = HostTables::new(8);
        let va = PAGE_OFFSET + (1 << 30);
        map(
            &mut tables,
            root,
            va,
            PhysAddr::new(1 << 30),
            1 << 30,
            Attrs::DATA,
            Granularity::LargestBlocks,
        )
        .unwrap();
        let mut out = String::new();
        write_walk(&mut out, va + 0x1234, &walk(&tables, root, va + 0x1234)).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].starts_with("L0 table=") && lines[0].contains(" table next=0x"),
            "{out}"
        );
        assert!(
            lines[1].ends_with(
                " block 1G pa=0x40000000 attr=normal ap=rw x=never ng=0 cont=0 (AttrIndx=1 SH=0b11 AF=1 AP=0b00 PXN=1 UXN=1)"
            ),
            "{out}"
        );
        assert_eq!(lines[2], "=> pa=0x40001234 level=1 size=1G prot=rw-");
        let mut out = String::new();
        write_walk(&mut out, va + (1 << 30), &walk(&tables, root, va + (1 << 30))).unwrap();
        assert!(out.lines().nth(1).unwrap().ends_with(" invalid"), "{out}");
        assert!(out.ends_with("is not mapped (translation fault at level 1)\n"), "{out}");
    }

    #[test]
    fn walk_refuses_the_lower_half_and_non_canonical_addresses() {
        assert_eq!(WalkRefusal::of(0xffff_0000_0000_0000), None);
        assert_eq!(WalkRefusal::of(u64::MAX), None);
        assert_eq!(WalkRefusal::of(0x1000), Some(WalkRefusal::LowerHalf(0x1000)));
        assert_eq!(
            WalkRefusal::of(0x0000_ffff_ffff_ffff),
            Some(WalkRefusal::LowerHalf(0x0000_ffff_ffff_ffff))
        );
        for va in [0x0001_0000_0000_0000, 0xfffe_ffff_ffff_ffff, 0x8000_0000_0000_0000] {
            let refusal = WalkRefusal::of(va).unwrap();
            assert_eq!(refusal, WalkRefusal::NonCanonical(va));
            assert!(refusal.to_string().contains("not canonical"), "{va:#x}");
        }
    }

    #[test]
    fn layout_row_format() {
        let row = LayoutRow {
            name: "linear",
            va: (0xffff_0000_0000_0000, 0xffff_0000_6000_0000),
            pa: Some((0x4000_0000, 0xa000_0000)),
            prot: "rw-",
            map: MapCounts {
                blocks_l1: 1,
                blocks_l2: 256,
                pages: 0,
                tables: 2,
                contiguous: 16,
            },
        };
        assert_eq!(
            row.to_string(),
            "linear   va=0xffff000000000000-0xffff000060000000 pa=0x40000000-0xa0000000 prot=rw- map=1G:1,2M:256,4K:0+cont:16"
        );
        let row = LayoutRow {
            name: "modules",
            pa: None,
            prot: "---",
            map: MapCounts::default(),
            ..row
        };
        assert!(
            row.to_string()
                .starts_with("modules  va=0xffff000000000000-0xffff000060000000 prot=---")
        );
    }

    #[test]
    fn leaf_bits_are_named_as_the_arm_arm_names_them() {
        // Read-only executable text: AP[2] set, PXN clear, UXN set.
        let raw = 0x0040_0000_4020_0783;
        assert_eq!(
            LeafBits(raw).to_string(),
            "(AttrIndx=0 SH=0b11 AF=1 AP=0b10 PXN=0 UXN=1)"
        );
        assert_eq!(
            LeafBits(0x0060_0000_0900_0407).to_string(),
            "(AttrIndx=1 SH=0b00 AF=1 AP=0b00 PXN=1 UXN=1)"
        );
    }

    #[test]
    fn a_window_of_mixed_areas_lists_each_permission_once() {
        let list = |prots: &[&str]| ProtList(prots).to_string();
        assert_eq!(list(&["r-x", "r--", "r-x", "r--", "rw-"]), "r-x,r--,rw-");
        assert_eq!(list(&["r--", "---"]), "r--");
        assert_eq!(list(&[]), "---");
        assert_eq!(list(&["---"]), "---");
    }

    #[test]
    fn ktap_says_when_no_test_matched() {
        let tests = [("alpha", true), ("beta", true)];
        let mut out = String::new();
        run_ktap(&mut out, &tests, Some("nosuch"), |ok| check(*ok, "wrong", 7)).unwrap();
        assert_eq!(
            out,
            "KTAP version 1\n1..0\n# no test name contains 'nosuch'; `test` alone runs all 2\n0 passed, 0 failed\n"
        );
        let mut out = String::new();
        run_ktap(&mut out, &tests, Some("alp"), |ok| check(*ok, "wrong", 7)).unwrap();
        assert!(!out.contains("# no test"), "{out}");
    }

    #[test]
    fn ktap_report() {
        let tests = [("alpha", Some(true)), ("beta", Some(false)), ("alphabet", Some(true))];
        let mut out = String::new();
        let failed = run_ktap(&mut out, &tests, None, |ok| check(ok.unwrap(), "wrong", 7)).unwrap();
        assert_eq!(failed, 1);
        assert_eq!(
            out,
            "KTAP version 1\n1..3\nok 1 alpha\n# beta: wrong (0x7)\nnot ok 2 beta\nok 3 alphabet\n2 passed, 1 failed\n"
        );
        let mut out = String::new();
        run_ktap(&mut out, &tests, Some("alpha"), |ok| check(ok.unwrap(), "wrong", 7)).unwrap();
        assert!(
            out.ends_with("1..2\nok 1 alpha\nok 2 alphabet\n2 passed, 0 failed\n"),
            "{out}"
        );
        let tests = [("a", Some(true)), ("b", None)];
        let mut out = String::new();
        let run = |t: &Option<bool>| t.map_or_else(|| skip("not here"), |ok| check(ok, "wrong", 7));
        assert_eq!(run_ktap(&mut out, &tests, None, run).unwrap(), 0);
        assert!(
            out.ends_with("ok 1 a\nok 2 b # SKIP not here\n1 passed, 0 failed, 1 skipped\n"),
            "{out}"
        );
    }
}
