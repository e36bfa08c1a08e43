//! Text formats that scripts parse (DESIGN §8): `layout` rows, `walk` lines and
//! the KTAP test report. Kept here, away from the hardware, so the formats are
//! unit-tested.

use core::fmt::{self, Write};

use pi::pgtable::{MapCounts, Walk};

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
        let m = &self.map;
        write!(
            f,
            " prot={} map=1G:{},2M:{},4K:{}",
            self.prot, m.blocks_1g, m.blocks_2m, m.pages_4k
        )
    }
}

/// Writes a page-table walk: one line per level, then the result line
/// `=> pa=0x… level=N size=1G|2M|4K prot=…` (or `=> fault: …`).
pub fn write_walk(out: &mut dyn Write, va: u64, walk: &Walk) -> fmt::Result {
    for step in walk.steps() {
        writeln!(
            out,
            "L{} table={:#x} [{:3}] = {:#018x}",
            step.level,
            step.table.raw(),
            step.index,
            step.raw
        )?;
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

/// `1G`, `2M` or `4K`.
pub fn size_name(size: u64) -> &'static str {
    match size {
        0x4000_0000 => "1G",
        0x20_0000 => "2M",
        _ => "4K",
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

    #[test]
    fn layout_row_format() {
        let row = LayoutRow {
            name: "linear",
            va: (0xffff_0000_0000_0000, 0xffff_0000_6000_0000),
            pa: Some((0x4000_0000, 0xa000_0000)),
            prot: "rw-",
            map: MapCounts {
                blocks_1g: 1,
                blocks_2m: 256,
                pages_4k: 0,
                tables: 2,
            },
        };
        assert_eq!(
            row.to_string(),
            "linear   va=0xffff000000000000-0xffff000060000000 pa=0x40000000-0xa0000000 prot=rw- map=1G:1,2M:256,4K:0"
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
